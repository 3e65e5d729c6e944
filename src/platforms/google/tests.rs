//! The Google client against the sandbox's emulator on loopback (paging,
//! incremental polls, retries, token renewal and refusal), plus a scripted
//! server for what the emulator cannot be made to do (a paging loop), and
//! pure tests of URL building and error mapping; a recorded real list page.

use super::*;
use crate::platforms::FetchedPage;
use crate::platforms::test_server::{Answer, Server};
use crate::platforms::test_support::source_from_toml;
use crate::poll::Cursor;
use crate::poll::location::LocationPoll;
use crate::retry::Backoff;
use crate::timestamps::travtus_format;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use sandbox::{Endpoint, Fault, GoogleSeed, NewGoogleReview, Sandbox, SandboxOptions};
use std::time::Duration;

/// Retries in milliseconds, so fault tests stay fast.
const FAST: Backoff = Backoff {
    base: Duration::from_millis(1),
    cap: Duration::from_millis(5),
};

fn client_for(api_base_url: &str, token_url: &str, refresh_token: &str) -> GoogleClient {
    let source = source_from_toml(&format!(
        "[[source]]\nname = \"test-google\"\nkind = \"google_business_profile\"\nschedule = \"0 */15 * * * *\"\nrequests_per_minute = 6000\ntimeout = \"5s\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{refresh_token}\"\napi_base_url = \"{api_base_url}\"\ntoken_url = \"{token_url}\"\n\n  [[source.location]]\n  id = \"accounts/1/locations/1\"\n  group_id = \"g\"\n",
        sandbox::GOOGLE_CLIENT_ID,
        sandbox::GOOGLE_CLIENT_SECRET,
    ));
    let Some(cfg) = source.kind.settings::<GoogleConfig>() else {
        panic!("expected google_business_profile");
    };
    let client = GoogleClient::new(
        &source,
        cfg,
        crate::app::http_client().expect("http client"),
        &std::sync::Arc::new(crate::quota::Quotas::new()),
    );
    GoogleClient {
        http: client
            .http
            .with_retries(FAST, crate::platforms::http::MAX_RETRIES),
        ..client
    }
}

async fn sandbox_with(reviews_per_location: u32) -> Sandbox {
    Sandbox::start(SandboxOptions {
        google: GoogleSeed {
            accounts: 1,
            locations_per_account: 2,
            reviews_per_location,
        },
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts")
}

fn sandbox_client(sb: &Sandbox) -> GoogleClient {
    client_for(
        &sb.google_base_url(),
        &sb.google_token_url(),
        sandbox::GOOGLE_REFRESH_TOKEN,
    )
}

/// Reads a whole poll: its pages and the state to store.
async fn poll_all(
    client: &GoogleClient,
    location: &str,
    state: Cursor,
) -> Result<(Vec<FetchedPage>, Cursor), PlatformError> {
    let mut poll = LocationPoll::new(client, &LocationId::new(location), state);
    let mut pages = Vec::new();
    while let Some(page) = poll.next_page().await? {
        pages.push(page);
    }
    Ok((pages, poll.finish()))
}

fn ids(pages: &[FetchedPage]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.reviews.iter().map(|r| r.review_id.as_str().to_owned()))
        .collect()
}

fn newest_update_time(sb: &Sandbox, location: &str) -> DateTime<Utc> {
    sb.google()
        .reviews(location)
        .iter()
        .filter_map(|r| r.get("updateTime").and_then(Value::as_str))
        .filter_map(|t| crate::timestamps::parse_rfc3339(t).ok())
        .max()
        .expect("seeded reviews have update times")
}

#[tokio::test]
async fn a_first_poll_reads_everything_and_a_quiet_poll_costs_one_request() {
    let sb = sandbox_with(120).await;
    let location = sb.google().locations()[0].clone();
    let client = sandbox_client(&sb);

    let (pages, state) = poll_all(&client, &location, Cursor::default())
        .await
        .expect("first poll");
    assert_eq!(pages.len(), 3, "120 reviews in pages of 50");
    let got = ids(&pages);
    let want: Vec<String> = sb
        .google()
        .reviews(&location)
        .iter()
        .filter_map(|r| r.get("reviewId").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert_eq!(got, want, "every review, newest first");
    assert!(pages.iter().all(|p| p.rejected.is_empty()));
    assert_eq!(pages.last().and_then(|p| p.reported_total), Some(120));
    assert_eq!(sb.google().list_requests(&location), 3);
    assert_eq!(client.requests(), 4, "three list calls and one token call");
    assert_eq!(state.high_water, Some(newest_update_time(&sb, &location)));

    // Nothing changed: one list request, and the mark stays.
    let (pages, again) = poll_all(&client, &location, state.clone())
        .await
        .expect("quiet poll");
    assert_eq!(pages.len(), 1);
    assert_eq!(sb.google().list_requests(&location), 4);
    assert_eq!(again, state);

    // A new review and an edit of an old one are both on the first page.
    let oldest = want.last().cloned().expect("reviews");
    let new_id = sb.google().add_review(
        &location,
        NewGoogleReview {
            star_rating: Some(2),
            comment: Some("Lift broken again".into()),
            display_name: "Cy".into(),
            is_anonymous: false,
        },
    );
    assert!(
        sb.google()
            .edit_review(&location, &oldest, Some("Edited".into()), Some(5))
    );
    let (pages, after) = poll_all(&client, &location, again)
        .await
        .expect("poll after changes");
    assert_eq!(pages.len(), 1);
    assert_eq!(sb.google().list_requests(&location), 5);
    let got = ids(&pages);
    assert!(got.contains(&new_id) && got.contains(&oldest), "{got:?}");
    let edited = pages[0]
        .reviews
        .iter()
        .find(|r| r.review_id.as_str() == oldest)
        .expect("edited review");
    assert_eq!(edited.comment.as_deref(), Some("Edited"));
    assert_eq!(edited.rating.map(crate::domain::Rating::get), Some(5));
    assert_eq!(after.high_water, Some(newest_update_time(&sb, &location)));
    assert!(after.high_water > state.high_water);
}

#[tokio::test]
async fn paging_stops_after_the_page_that_reaches_the_overlap() {
    let sb = sandbox_with(120).await;
    let location = sb.google().locations()[1].clone();
    let client = sandbox_client(&sb);
    // A mark in the middle of page 2: page 2 ends with reviews far older
    // than the mark minus the overlap (seeded reviews are days apart), so
    // page 3 is never asked for.
    let reviews = sb.google().reviews(&location);
    let mark = reviews[70]
        .get("updateTime")
        .and_then(Value::as_str)
        .and_then(|t| crate::timestamps::parse_rfc3339(t).ok())
        .expect("update time");
    let state = Cursor {
        high_water: Some(mark),
        position: Some("kept".into()),
    };
    let (pages, after) = poll_all(&client, &location, state).await.expect("poll");
    assert_eq!(pages.len(), 2);
    assert_eq!(sb.google().list_requests(&location), 2);
    assert_eq!(after.high_water, Some(newest_update_time(&sb, &location)));
    assert_eq!(
        after.position.as_deref(),
        Some("kept"),
        "the cursor is passed through"
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let sb = sandbox_with(10).await;
    let location = sb.google().locations()[0].clone();
    let client = sandbox_client(&sb);
    sb.faults()
        .push(Endpoint::GoogleList, Fault::Status(500), 2);
    sb.faults().push(Endpoint::GoogleList, Fault::Drop, 1);
    sb.faults()
        .push(Endpoint::GoogleToken, Fault::Status(503), 1);
    let (pages, _) = poll_all(&client, &location, Cursor::default())
        .await
        .expect("poll after retries");
    assert_eq!(ids(&pages).len(), 10);
    assert_eq!(
        sb.google().list_requests(&location),
        4,
        "three faults, then the answer"
    );
    assert_eq!(client.requests(), 6, "four list calls, two token calls");
}

#[tokio::test]
async fn persistent_throttling_gives_up_with_the_status() {
    let sb = sandbox_with(10).await;
    let location = sb.google().locations()[0].clone();
    let client = sandbox_client(&sb);
    sb.faults()
        .push(Endpoint::GoogleList, Fault::Status(429), 100);
    let err = poll_all(&client, &location, Cursor::default())
        .await
        .expect_err("throttled");
    match &err {
        PlatformError::Http {
            status: 429,
            detail,
        } => assert!(detail.starts_with("RESOURCE_EXHAUSTED"), "{detail}"),
        other => panic!("expected HTTP 429, got {other:?}"),
    }
    assert_eq!(
        sb.google().list_requests(&location),
        5,
        "one try and four retries"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_needs_consent() {
    let sb = sandbox_with(5).await;
    let location = sb.google().locations()[0].clone();
    let client = sandbox_client(&sb);
    sb.google().revoke_refresh_token();
    let err = poll_all(&client, &location, Cursor::default())
        .await
        .expect_err("revoked");
    match &err {
        PlatformError::NeedsConsent(text) => assert!(text.starts_with("invalid_grant"), "{text}"),
        other => panic!("expected NeedsConsent, got {other:?}"),
    }
    assert_eq!(sb.google().list_requests(&location), 0);
    assert_eq!(client.requests(), 1, "the refused token call");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(sandbox::GOOGLE_REFRESH_TOKEN)
            && !shown.contains(sandbox::GOOGLE_CLIENT_SECRET)
    );
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_once() {
    let sb = sandbox_with(5).await;
    let location = sb.google().locations()[0].clone();
    let client = sandbox_client(&sb);
    poll_all(&client, &location, Cursor::default())
        .await
        .expect("first poll");
    sb.google().expire_all_tokens();
    poll_all(&client, &location, Cursor::default())
        .await
        .expect("poll with a renewed token");
    assert_eq!(sb.google().token_requests(), 2);
    assert_eq!(sb.google().list_requests(&location), 3, "ok, 401, ok");
    assert_eq!(client.requests(), 5);
}

#[tokio::test]
async fn unknown_locations_and_trailing_slashes() {
    let sb = sandbox_with(5).await;
    let base = format!("{}/", sb.google_base_url());
    let client = client_for(&base, &sb.google_token_url(), sandbox::GOOGLE_REFRESH_TOKEN);
    let location = sb.google().locations()[0].clone();
    let (pages, _) = poll_all(&client, &format!("/{location}/"), Cursor::default())
        .await
        .expect("slashes tolerated");
    assert_eq!(ids(&pages).len(), 5);

    let err = poll_all(&client, "accounts/1/locations/999999", Cursor::default())
        .await
        .expect_err("unknown");
    assert!(
        matches!(&err, PlatformError::NotFound(l) if l == "accounts/1/locations/999999"),
        "{err:?}"
    );
}

#[tokio::test]
async fn malformed_records_are_rejected_and_the_page_goes_on() {
    let sb = sandbox_with(3).await;
    let location = sb.google().locations()[0].clone();
    let bad = serde_json::json!({
        "reviewId": "bad-star",
        "starRating": "SIX",
        "createTime": "2025-06-01T00:00:00Z",
        "updateTime": "2025-06-01T00:00:00Z"
    });
    assert!(sb.google().insert_raw_review(&location, bad.clone()));
    assert!(
        sb.google()
            .insert_raw_review(&location, serde_json::json!({"comment": "no id, no time"}))
    );
    let client = sandbox_client(&sb);
    let (pages, _) = poll_all(&client, &location, Cursor::default())
        .await
        .expect("poll");
    assert_eq!(ids(&pages).len(), 3);
    let rejected: Vec<(&str, &str)> = pages
        .iter()
        .flat_map(|p| {
            p.rejected
                .iter()
                .map(|r| (r.reference.as_str(), r.reason.as_str()))
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            ("bad-star", "starRating: \"SIX\" is not one of ONE..FIVE"),
            ("page 1 item 5", "reviewId: missing (and no name)"),
        ]
    );
    assert_eq!(pages[0].rejected[0].raw, bad.to_string());
}

#[tokio::test]
async fn a_repeated_page_token_is_a_paging_loop() {
    let server = Server::start().await;
    server.script(
        "/token",
        vec![Answer::json(
            200,
            r#"{"access_token":"t0k","expires_in":3600}"#,
        )],
    );
    let page = r#"{"reviews":[{"reviewId":"a","createTime":"2025-01-01T00:00:00Z"}],"nextPageToken":"same token/+"}"#;
    server.script(
        "/g/v4/accounts/1/locations/2/reviews",
        vec![Answer::json(200, page)],
    );
    let client = client_for(
        &format!("{}/g", server.base),
        &format!("{}/token", server.base),
        "r",
    );
    let mut poll = LocationPoll::new(
        &client,
        &LocationId::new("accounts/1/locations/2"),
        Cursor::default(),
    );
    assert!(poll.next_page().await.expect("page 1").is_some());
    assert!(
        poll.next_page()
            .await
            .expect("page 2 is still handed out")
            .is_some()
    );
    let err = poll.next_page().await.expect_err("loop");
    assert!(
        matches!(&err, PlatformError::InvalidResponse(m) if m.starts_with("paging loop")),
        "{err:?}"
    );

    let heads = server.seen();
    let lists: Vec<&str> = heads
        .iter()
        .filter_map(|h| h.lines().next())
        .filter(|l| l.contains("/reviews"))
        .collect();
    assert_eq!(
        lists,
        vec![
            "GET /g/v4/accounts/1/locations/2/reviews?pageSize=50&orderBy=updateTime%20desc HTTP/1.1",
            "GET /g/v4/accounts/1/locations/2/reviews?pageSize=50&orderBy=updateTime%20desc&pageToken=same+token%2F%2B HTTP/1.1",
        ]
    );
}

#[test]
fn urls_join_without_double_slashes() {
    let cases = [
        (
            "https://mybusiness.googleapis.com",
            "accounts/1/locations/2",
        ),
        (
            "https://mybusiness.googleapis.com/",
            "accounts/1/locations/2",
        ),
        ("http://127.0.0.1:9/google", "accounts/1/locations/2"),
        ("http://127.0.0.1:9/google/", "/accounts/1/locations/2/"),
        ("http://127.0.0.1:9/google?x=1", "accounts/1//locations/2"),
    ];
    let want = [
        "https://mybusiness.googleapis.com/v4/accounts/1/locations/2/reviews",
        "https://mybusiness.googleapis.com/v4/accounts/1/locations/2/reviews",
        "http://127.0.0.1:9/google/v4/accounts/1/locations/2/reviews",
        "http://127.0.0.1:9/google/v4/accounts/1/locations/2/reviews",
        "http://127.0.0.1:9/google/v4/accounts/1/locations/2/reviews",
    ];
    for ((base, location), want) in cases.into_iter().zip(want) {
        let client = client_for(base, "http://127.0.0.1:9/token", "r");
        let url = client.reviews_url(&LocationId::new(location)).expect("url");
        assert_eq!(url.as_str(), want, "{base} + {location}");
    }
    // Segments are escaped, so an odd location id cannot leave the path.
    let client = client_for("http://127.0.0.1:9/google", "http://127.0.0.1:9/token", "r");
    let url = client
        .reviews_url(&LocationId::new("accounts/1?x=#/locations/2"))
        .expect("url");
    assert_eq!(url.query(), None);
    assert_eq!(
        url.path(),
        "/google/v4/accounts/1%3Fx=%23/locations/2/reviews"
    );
}

#[test]
fn google_error_bodies_are_mapped() {
    let location = LocationId::new("accounts/1/locations/2");
    let map = |status: u16, body: Value| {
        let status = StatusCode::from_u16(status).expect("status");
        google_error(
            &ErrorAnswer {
                status,
                json: Some(&body),
                headers: &reqwest::header::HeaderMap::new(),
                retries_exhausted: false,
            },
            &location,
        )
    };
    let body = |code: u16, status: &str, message: &str| serde_json::json!({"error": {"code": code, "message": message, "status": status}});

    let err = map(
        403,
        body(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        ),
    );
    assert_eq!(
        err.to_string(),
        "not authorized: accounts/1/locations/2: PERMISSION_DENIED: The caller does not have permission"
    );
    let err = map(403, serde_json::json!({}));
    assert_eq!(
        err.to_string(),
        "not authorized: accounts/1/locations/2: PERMISSION_DENIED: Forbidden"
    );
    let err = map(
        401,
        body(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        ),
    );
    assert!(matches!(err, PlatformError::Unauthorized(_)), "{err:?}");
    let err = map(
        404,
        body(404, "NOT_FOUND", "Requested entity was not found."),
    );
    assert!(matches!(&err, PlatformError::NotFound(l) if l == "accounts/1/locations/2"));
    let err = map(
        400,
        body(400, "INVALID_ARGUMENT", "Invalid value for pageSize."),
    );
    assert_eq!(
        err.to_string(),
        "HTTP 400: INVALID_ARGUMENT: Invalid value for pageSize."
    );
    let err = map(
        400,
        serde_json::json!({"error": {"errors": [{"domain": "global", "reason": "badRequest", "message": "Legacy shape"}]}}),
    );
    assert_eq!(err.to_string(), "HTTP 400: Legacy shape");
    let err = map(
        503,
        serde_json::json!({"error": {"status": "UNAVAILABLE", "message": "x".repeat(1000)}}),
    );
    assert!(err.to_string().len() < 400, "long messages are cut");
}

// --------------------------------------------------------------- discovery

/// A client of `sb` that discovers `accounts` through its Business
/// Information emulator.
fn discovering_client(sb: &Sandbox, accounts: &[&str]) -> GoogleClient {
    GoogleClient {
        business_information_base_url: Url::parse(&sb.google_business_info_base_url())
            .expect("bi url"),
        discover_accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
        ..sandbox_client(sb)
    }
}

#[tokio::test]
async fn discovery_pages_through_every_location_of_every_account() {
    let sb = Sandbox::start(SandboxOptions {
        google: GoogleSeed {
            accounts: 2,
            locations_per_account: 150,
            reviews_per_location: 0,
        },
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts");
    let client = discovering_client(&sb, &["accounts/1000", "accounts/1001"]);
    let discovery = client.discover_all().await;
    assert!(discovery.failures.is_empty(), "{:?}", discovery.failures);
    let found: Vec<&str> = discovery.locations.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(found, sb.google().locations(), "every location, in order");
    // 150 locations per account: two pages of at most 100 each.
    assert_eq!(sb.business_info().list_requests(), 4);
    for location in &discovery.locations {
        let name = location.id.as_str();
        assert_eq!(location.store_code, sb.google().store_code(name), "{name}");
        assert_eq!(location.title, sb.google().title(name), "{name}");
    }
    let without = discovery
        .locations
        .iter()
        .filter(|l| l.store_code.is_none())
        .count();
    assert!(
        without > 0 && without < 300,
        "{without} without a store code"
    );
}

#[tokio::test]
async fn one_refused_account_does_not_stop_discovery_of_the_others() {
    let sb = sandbox_with(0).await;
    sb.faults()
        .push(Endpoint::GoogleBusinessInfo, Fault::Status(503), 1);
    let client = discovering_client(&sb, &["accounts/404", "accounts/1000"]);
    let discovery = client.discover_all().await;
    assert_eq!(discovery.locations.len(), 2, "accounts/1000 is listed");
    let [(account, error)] = discovery.failures.as_slice() else {
        panic!("one failure expected: {:?}", discovery.failures);
    };
    assert_eq!(account, "accounts/404");
    assert_eq!(
        error.to_string(),
        "not authorized: accounts/404: PERMISSION_DENIED: The caller does not have permission"
    );
    // The 503 (on the first request) was retried.
    assert_eq!(sb.faults().injected_for(Endpoint::GoogleBusinessInfo), 1);
}

#[tokio::test]
async fn discovery_asks_for_the_documented_fields_and_page_size() {
    let server = Server::start().await;
    server.script(
        "/token",
        vec![Answer::json(
            200,
            r#"{"access_token":"t0k","expires_in":3600}"#,
        )],
    );
    server.script(
        "/bi/v1/accounts/7/locations",
        vec![
            Answer::json(
                200,
                r#"{"locations":[{"name":"locations/1","storeCode":"s1"}],"nextPageToken":"n/1"}"#,
            ),
            Answer::json(200, r#"{"locations":[{"name":"locations/2"}]}"#),
        ],
    );
    let client = GoogleClient {
        business_information_base_url: Url::parse(&format!("{}/bi/", server.base)).expect("url"),
        discover_accounts: vec!["accounts/7".into()],
        ..client_for(
            &format!("{}/g", server.base),
            &format!("{}/token", server.base),
            "r",
        )
    };
    let discovery = client.discover_all().await;
    assert!(discovery.failures.is_empty(), "{:?}", discovery.failures);
    let found: Vec<(&str, Option<&str>)> = discovery
        .locations
        .iter()
        .map(|l| (l.id.as_str(), l.store_code.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            ("accounts/7/locations/1", Some("s1")),
            ("accounts/7/locations/2", None)
        ]
    );
    let heads = server.seen();
    let lists: Vec<&str> = heads
        .iter()
        .filter_map(|h| h.lines().next())
        .filter(|l| l.contains("/locations"))
        .collect();
    assert_eq!(
        lists,
        vec![
            "GET /bi/v1/accounts/7/locations?readMask=name,title,storeCode&pageSize=100 HTTP/1.1",
            "GET /bi/v1/accounts/7/locations?readMask=name,title,storeCode&pageSize=100&pageToken=n%2F1 HTTP/1.1",
        ]
    );
    assert!(
        heads
            .iter()
            .filter(|h| h.contains("/locations"))
            .all(|h| h.to_ascii_lowercase().contains("authorization: bearer t0k")),
        "the source's bearer token on every listing"
    );
}

/// A real `ListReviewsResponse`, committed as a test fixture by a Google
/// Business Profile client: `Newgarden-Solutions/google_my_business`,
/// `test/src/managers/reviews_manager_test.dart` (`testReviewsJson`), commit
/// 835b2f9cb825490efe644ef4fc81f4898718668f. The reviewers' names and photo
/// URLs are anonymised; everything else is kept, in
/// `src/platforms/google/fixtures/recorded_list_reviews.json`. It shows the
/// settled facts: `isAnonymous` left out when false, a rating-only review
/// without `comment`, and a comment carrying Google's translation, of which
/// the reviewer's own words are what is sent.
#[test]
fn a_recorded_real_list_page_maps_every_record() {
    let json: Value = serde_json::from_str(include_str!("fixtures/recorded_list_reviews.json"))
        .expect("fixture is JSON");
    let mapped = wire::map_page(&json, 1).expect("page");
    assert!(
        mapped.page.rejected.is_empty(),
        "{:?}",
        mapped.page.rejected
    );
    assert_eq!(mapped.page.reported_total, Some(2));
    assert_eq!(mapped.next_page_token, None);
    let [rating_only, translated] = &mapped.page.reviews[..] else {
        panic!("two reviews: {:?}", mapped.page.reviews);
    };
    assert_eq!(
        rating_only.review_id.as_str(),
        "AbFvOqmfI-JoFLOEqmBN-JqT0BFKxGR5b5t9ZuutWki9hbnFnp6h_tWsI-8SajSWhxmvwAFBAAgH"
    );
    assert_eq!(rating_only.rating.map(|r| r.get()), Some(1));
    assert_eq!(rating_only.comment, None, "rating-only: no comment field");
    assert_eq!(rating_only.display_name.as_deref(), Some("Reviewer One"));
    assert_eq!(
        rating_only.is_anonymous,
        Some(false),
        "isAnonymous absent is false"
    );
    assert_eq!(
        travtus_format(rating_only.created_at),
        "2019-12-19T16:55:27"
    );
    assert_eq!(
        rating_only.updated_at.map(travtus_format).as_deref(),
        Some("2019-12-19T16:55:27")
    );

    assert_eq!(
        translated.review_id.as_str(),
        "AbFvOqkNhKOO17hiA6Dg1-HNrS6Vtjv71nAMxEdVXdIlVOC4xshndwUfGS9uSLgisU6T7hDMHMjsKg"
    );
    assert_eq!(translated.rating.map(|r| r.get()), Some(5));
    assert_eq!(
        translated.comment.as_deref(),
        Some("Вкусно, сытно и недорого"),
        "the original text, without Google's translation or markers"
    );
    assert_eq!(translated.display_name.as_deref(), Some("Reviewer Two"));
    assert_eq!(translated.is_anonymous, Some(false));
    assert_eq!(travtus_format(translated.created_at), "2020-09-07T19:27:46");
    assert_eq!(
        translated.updated_at.map(travtus_format).as_deref(),
        Some("2020-09-07T19:27:46"),
        "the owner's reply is not the review's update"
    );
}

/// How a batchGetReviews error answer is judged: refused for one of the
/// call's locations (named in a ResourceInfo detail, or alone in the
/// message), unserved as a whole (a client error naming none), or failed.
#[test]
fn a_batch_error_names_its_location_or_the_call() {
    let names: Vec<LocationId> = ["accounts/1/locations/1", "accounts/1/locations/12"]
        .into_iter()
        .map(LocationId::new)
        .collect();
    let headers = reqwest::header::HeaderMap::new();
    let judge = |status: u16, body: serde_json::Value| {
        let answer = ErrorAnswer {
            status: StatusCode::from_u16(status).expect("status"),
            json: Some(&body),
            headers: &headers,
            retries_exhausted: status >= 500,
        };
        match google_batch_error(&answer, &names, "accounts/1").1 {
            BatchJudged::Refused(index) => format!("refused {index}"),
            BatchJudged::Unserved => "unserved".to_owned(),
            BatchJudged::Failed => "failed".to_owned(),
        }
    };
    let detail = |name: &str| {
        serde_json::json!({"error": {"code": 404, "message": "Requested entity was not found.",
            "status": "NOT_FOUND", "details": [{
                "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                "resourceName": name}]}})
    };
    let message = |text: &str| {
        serde_json::json!({"error": {"code": 400, "message": text, "status": "INVALID_ARGUMENT"}})
    };
    assert_eq!(judge(404, detail("accounts/1/locations/12")), "refused 1");
    // The message names `locations/12`, which does not name `locations/1`.
    assert_eq!(
        judge(404, message("Location accounts/1/locations/12 is not verified.")),
        "refused 1"
    );
    assert_eq!(
        judge(404, message("Location accounts/1/locations/1 is not verified.")),
        "refused 0"
    );
    // Both named, or neither: the call's refusal, not a location's.
    assert_eq!(
        judge(
            400,
            message("accounts/1/locations/1 and accounts/1/locations/12 differ")
        ),
        "unserved"
    );
    assert_eq!(judge(400, message("Too many location names.")), "unserved");
    assert_eq!(judge(503, detail("accounts/1/locations/1")), "failed");
    assert_eq!(judge(429, message("Quota exceeded.")), "failed");
}
