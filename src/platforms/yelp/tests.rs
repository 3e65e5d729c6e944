//! Yelp: the mapping (table-driven, excerpts, Pacific times across both DST
//! changes, refusals, 2016 answers without ids, a recorded real answer), property tests of the time conversion against
//! chrono-tz's own offsets, and the client against the sandbox's emulator
//! (one request per poll, the key, the daily limit, throttling, unknown
//! businesses).

use super::wire::{MISSING_ID, YELP_TIME_ZONE, map_reviews, parse_time_created};
use super::*;
use crate::domain::{Rating, Rejected, Review};
use crate::platforms::FetchedPage;
use crate::platforms::test_server::{Answer, Server};
use crate::platforms::test_support::source_from_toml;
use crate::poll::Cursor;
use crate::poll::location::LocationPoll;
use crate::retry::Backoff;
use crate::timestamps::travtus_format;
use chrono::{DateTime, Utc};
use chrono::{LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone};
use proptest::prelude::*;
use sandbox::{Endpoint, Fault, NewYelpReview, Sandbox, SandboxOptions};
use serde_json::json;
use std::time::Duration;

const FAST: Backoff = Backoff {
    base: Duration::from_millis(1),
    cap: Duration::from_millis(5),
};

fn full() -> Value {
    json!({
        "id": "xAG4O7l-t1ubbwVAlPnDKg",
        "url": "https://www.yelp.com/biz/x?hrid=xAG4O7l-t1ubbwVAlPnDKg",
        "text": "Went back again to this place since the last time i visited the bay area 5 months ago, and nothing has changed. Still the sketchy Mission, Still the cashier...",
        "rating": 4,
        "time_created": "2022-07-24 19:07:06",
        "user": {"id": "W8UK02IDdRS2GL_66fuq6w", "profile_url": "https://www.yelp.com/user_details?userid=W8", "image_url": null, "name": "James L."}
    })
}

fn with(changes: Value) -> Value {
    let mut v = full();
    if let (Value::Object(base), Value::Object(changes)) = (&mut v, changes) {
        for (k, val) in changes {
            if val == json!("__remove__") {
                base.remove(&k);
            } else {
                base.insert(k, val);
            }
        }
    }
    v
}

fn one(item: Value) -> Result<Review, Rejected> {
    let mapped = map_reviews(&json!({"reviews": [item], "total": 1, "possible_languages": ["en"]}))
        .expect("answer shape");
    match (
        mapped.page.reviews.into_iter().next(),
        mapped.page.rejected.into_iter().next(),
    ) {
        (Some(r), None) => Ok(r),
        (None, Some(j)) => Err(j),
        other => panic!("expected one record, got {other:?}"),
    }
}

#[test]
fn a_full_review_maps_every_field_and_is_flagged_as_an_excerpt() {
    let r = one(full()).expect("review");
    assert_eq!(r.platform.as_str(), "yelp");
    assert_eq!(r.review_id.as_str(), "xAG4O7l-t1ubbwVAlPnDKg");
    assert!(r.comment.as_deref().is_some_and(|c| c.ends_with("...")));
    assert_eq!(r.rating.map(Rating::get), Some(4));
    assert_eq!(r.display_name.as_deref(), Some("James L."));
    // 19:07 PDT (July) is 02:07 UTC the next day.
    assert_eq!(travtus_format(r.created_at), "2022-07-25T02:07:06");
    assert_eq!((r.title, r.updated_at, r.is_anonymous), (None, None, None));
    assert_eq!(r.notes.get("excerpt").map(String::as_str), Some("true"));
    // No text: nothing to flag.
    let r = one(with(json!({"text": "__remove__"}))).expect("no text");
    assert_eq!((r.comment, r.notes.get("excerpt")), (None, None));
}

#[test]
fn pacific_times_become_utc_in_both_offsets_and_across_the_changes() {
    let cases = [
        // Standard time, UTC-8.
        ("2025-01-15 10:00:00", "2025-01-15T18:00:00"),
        ("2024-12-31 20:30:00", "2025-01-01T04:30:00"),
        // Daylight time, UTC-7.
        ("2025-07-04 12:00:00", "2025-07-04T19:00:00"),
        // Last second of PST before spring forward, first of PDT after.
        ("2025-03-09 01:59:59", "2025-03-09T09:59:59"),
        ("2025-03-09 03:00:00", "2025-03-09T10:00:00"),
        // In the spring gap: read with the offset before it (PST).
        ("2025-03-09 02:30:00", "2025-03-09T10:30:00"),
        // The repeated autumn hour: the earlier (PDT) reading.
        ("2025-11-02 01:30:00", "2025-11-02T08:30:00"),
        ("2025-11-02 02:00:00", "2025-11-02T10:00:00"),
        // An explicit offset, should Yelp ever send one.
        ("2025-01-15T10:00:00-08:00", "2025-01-15T18:00:00"),
        // The leap second 2016-12-31T23:59:60Z, in Pacific time: folded
        // into the second before, never sent as `:60`.
        ("2016-12-31 15:59:60", "2016-12-31T23:59:59"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59"),
    ];
    for (local, want) in cases {
        let r = one(with(json!({ "time_created": local }))).expect("review");
        assert_eq!(travtus_format(r.created_at), want, "{local}");
    }
}

#[test]
fn ratings_are_numbers_within_one_to_five() {
    let cases = [
        (json!(1), Some(1)),
        (json!(5), Some(5)),
        (json!(4.0), Some(4)),
        (Value::Null, None),
        (json!("__remove__"), None),
    ];
    for (rating, want) in cases {
        let r = one(with(json!({ "rating": rating.clone() })))
            .unwrap_or_else(|e| panic!("{rating}: {e:?}"));
        assert_eq!(r.rating.map(Rating::get), want, "{rating}");
    }
}

/// A real answer of `GET /v3/businesses/{id}/reviews` (2023), committed as
/// a fixture in `halim13/business-list`, `src/dummy/reviewsDummy.js`, commit
/// 33c1549bdfadf4e37670221a84da167b2aaa14c5. The reviewers' names, ids and
/// photo URLs are anonymised; the shape and everything else are kept, in
/// `src/platforms/yelp/fixtures/recorded_business_reviews.json`.
#[test]
fn a_recorded_real_answer_maps_every_record() {
    let json: Value = serde_json::from_str(include_str!("fixtures/recorded_business_reviews.json"))
        .expect("fixture is JSON");
    let mapped = map_reviews(&json).expect("answer");
    assert!(
        mapped.page.rejected.is_empty(),
        "{:?}",
        mapped.page.rejected
    );
    assert_eq!(
        mapped.page.reported_total, None,
        "total counts reviews we can never read"
    );
    // (id, created in UTC: PDT is UTC-7 in April..June, rating, name, text start)
    let want = [
        (
            "YazjnGL3tNGNp6v-BXi3gw",
            "2023-04-11T01:57:16",
            5,
            "Reviewer A.",
            "Eleven Madison Park exceeded",
        ),
        (
            "SY0E3asN2tPsYfC95Qg3Sw",
            "2023-06-11T18:33:42",
            1,
            "Reviewer B.",
            "This place is a very expensive joke.",
        ),
        (
            "CdNz5HNOGcAwcrt24Qaogw",
            "2023-05-28T23:52:27",
            4,
            "Reviewer C.",
            "I had no idea what to expect",
        ),
    ];
    assert_eq!(mapped.page.reviews.len(), want.len());
    for (r, (id, created, stars, name, text)) in mapped.page.reviews.iter().zip(want) {
        assert_eq!(r.review_id.as_str(), id);
        assert_eq!(travtus_format(r.created_at), created, "{id}");
        assert_eq!(r.rating.map(Rating::get), Some(stars), "{id}");
        assert_eq!(r.display_name.as_deref(), Some(name), "{id}");
        let comment = r.comment.as_deref().expect("text");
        assert!(
            comment.starts_with(text) && comment.ends_with("..."),
            "{id}: {comment}"
        );
        assert_eq!(r.notes.get("excerpt").map(String::as_str), Some("true"));
        assert_eq!(
            (r.title.as_deref(), r.updated_at, r.is_anonymous),
            (None, None, None)
        );
    }
    assert_eq!(
        mapped.page.reviews[1]
            .comment
            .as_deref()
            .map(|c| c.contains("We\nleft")),
        Some(true),
        "line breaks inside the excerpt are kept"
    );
}

/// Yelp's answers of 2016 (Yelp's own documented example of the time, per
/// the reference's settled facts) had no review `id`, no `user.id` and no
/// `profile_url`, and `image_url` could be null. Such a review is
/// quarantined with a reason that says why, not given a made-up id; the
/// rest of the answer goes on.
#[test]
fn a_2016_answer_without_review_ids_is_quarantined_with_its_reason() {
    let answer = json!({
        "reviews": [
            {
                "rating": 5,
                "user": {"image_url": null, "name": "Reviewer A."},
                "text": "Went back again to this place since the last time i visited the bay area 5 months ago, and nothing has changed. Still the sketchy Mission, Still the cashier...",
                "time_created": "2016-08-29 00:41:13",
                "url": "https://www.yelp.com/biz/la-palma-mexicatessen-san-francisco?hrid=hp8hAJ-AnlpqxCCu7kyCWA"
            },
            {
                "id": "1JNmYjJXr9ZbsfZUAgkeXQ",
                "rating": 4,
                "user": {"image_url": null, "name": "Reviewer B."},
                "text": "The \"restaurant\" is inside a small deli so there is no sit down area. Just grab and go.",
                "time_created": "2016-09-28 08:55:29",
                "url": "https://www.yelp.com/biz/la-palma-mexicatessen-san-francisco?hrid=fj87uymFDJbq0Cy5hXTHIA"
            }
        ],
        "total": 2
    });
    let mapped = map_reviews(&answer).expect("answer");
    assert_eq!(mapped.page.rejected.len(), 1);
    let rejected = &mapped.page.rejected[0];
    assert_eq!(rejected.reference, "item 1");
    assert_eq!(
        rejected.reason,
        "id: missing (as in Yelp's answers of 2016; no id is made up, as it would not match the one Yelp sends today)"
    );
    assert!(rejected.raw.contains("hp8hAJ-AnlpqxCCu7kyCWA"), "kept raw");
    assert_eq!(
        mapped.page.reviews.len(),
        1,
        "the rest of the answer goes on"
    );
    let r = &mapped.page.reviews[0];
    assert_eq!(r.review_id.as_str(), "1JNmYjJXr9ZbsfZUAgkeXQ");
    assert_eq!(
        r.display_name.as_deref(),
        Some("Reviewer B."),
        "image_url null is fine"
    );
    assert_eq!(travtus_format(r.created_at), "2016-09-28T15:55:29");
}

#[test]
fn bad_records_are_rejected_with_reason_and_raw() {
    let id = "xAG4O7l-t1ubbwVAlPnDKg";
    let cases: Vec<(Value, &str, &str)> = vec![
        (with(json!({"id": "__remove__"})), "item 1", MISSING_ID),
        (with(json!({"id": ""})), "item 1", "id: empty"),
        (
            with(json!({"id": ["a"]})),
            "item 1",
            "id: an array is not a string",
        ),
        (
            with(json!({"rating": 0})),
            id,
            "rating: 0 is not within 1..5",
        ),
        (
            with(json!({"rating": 6})),
            id,
            "rating: 6 is not within 1..5",
        ),
        (
            with(json!({"rating": "4"})),
            id,
            "rating: a string is not a number",
        ),
        (
            with(json!({"time_created": "__remove__"})),
            id,
            "time_created: missing",
        ),
        (
            with(json!({"time_created": "24/07/2022"})),
            id,
            "time_created: \"24/07/2022\" is not a date-time like 2024-01-31T12:00:00",
        ),
        (
            with(json!({"time_created": "1969-12-31 12:00:00"})),
            id,
            "time_created: year 1969 is outside 1970..=9999",
        ),
        (
            with(json!({"user": "James"})),
            id,
            "user: a string is not an object",
        ),
        (
            with(json!({"user": {"name": 5}})),
            id,
            "user.name: a number is not a string",
        ),
        (
            with(json!({"text": 5})),
            id,
            "text: a number is not a string",
        ),
        (json!(null), "item 1", "review: null is not an object"),
    ];
    for (item, reference, reason) in cases {
        let raw = item.to_string();
        let rejected = one(item).expect_err(reason);
        assert_eq!(rejected.reference, reference, "{reason}");
        assert_eq!(rejected.reason, reason);
        assert_eq!(rejected.raw, raw);
    }
}

#[test]
fn answer_shapes() {
    let empty = map_reviews(&json!({"reviews": [], "total": 0})).expect("empty");
    assert!(empty.page.reviews.is_empty() && empty.page.reported_total.is_none());
    let more_than_three = map_reviews(&json!({"reviews": [
        with(json!({"id": "a"})), with(json!({"id": "b"})), with(json!({"id": "c"})), with(json!({"id": "d"}))
    ]}))
    .expect("four");
    assert_eq!(
        more_than_three.page.reviews.len(),
        4,
        "a premium plan's extra reviews are kept"
    );
    for bad in [json!([]), json!({"reviews": "x"})] {
        assert!(
            matches!(map_reviews(&bad), Err(PlatformError::InvalidResponse(_))),
            "{bad}"
        );
    }
}

// ------------------------------------------------------- property tests

/// 2024 (a leap year): both DST changes, every second of the year.
fn local_2024() -> impl Strategy<Value = NaiveDateTime> {
    (0i64..366 * 86_400).prop_map(|secs| {
        NaiveDate::from_ymd_opt(2024, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default()
            + TimeDelta::seconds(secs)
    })
}

proptest! {
    #[test]
    fn every_pacific_wall_clock_time_of_a_year_converts_like_chrono_tz(local in local_2024()) {
        let text = local.format("%Y-%m-%d %H:%M:%S").to_string();
        let parsed = parse_time_created(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match YELP_TIME_ZONE.from_local_datetime(&local) {
            LocalResult::Single(dt) => prop_assert_eq!(parsed, dt.with_timezone(&Utc)),
            // The repeated autumn hour: the first (daylight) reading.
            LocalResult::Ambiguous(early, _) => prop_assert_eq!(parsed, early.with_timezone(&Utc)),
            // The skipped spring hour: read with the offset in force before
            // it (PST), which chrono-tz gives for the instant an hour earlier.
            LocalResult::None => {
                let before = YELP_TIME_ZONE
                    .from_local_datetime(&(local - TimeDelta::hours(1)))
                    .single()
                    .ok_or_else(|| TestCaseError::fail("an hour before the gap exists"))?;
                let offset = before.offset().fix();
                prop_assert_eq!(offset.local_minus_utc(), -8 * 3600);
                prop_assert_eq!(parsed, (local - TimeDelta::seconds(i64::from(offset.local_minus_utc()))).and_utc());
            }
        }
    }

    #[test]
    fn every_instant_of_a_year_survives_a_trip_through_pacific_wall_clock_time(
        secs in 1_704_067_200i64..1_735_689_600, // 2024-01-01 .. 2025-01-01 UTC
    ) {
        let instant = DateTime::from_timestamp(secs, 0).ok_or_else(|| TestCaseError::fail("instant"))?;
        let local = instant.with_timezone(&YELP_TIME_ZONE);
        let text = local.format("%Y-%m-%d %H:%M:%S").to_string();
        let parsed = parse_time_created(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // chrono-tz's own offset for that instant: -7 h in daylight time, -8 h otherwise.
        let offset = local.offset().fix().local_minus_utc();
        prop_assert!(offset == -7 * 3600 || offset == -8 * 3600);
        let ambiguous = matches!(
            YELP_TIME_ZONE.from_local_datetime(&local.naive_local()),
            LocalResult::Ambiguous(..)
        );
        if ambiguous {
            // The second 01:xx of the autumn change reads as the first.
            prop_assert!(parsed == instant || parsed == instant - TimeDelta::hours(1));
        } else {
            prop_assert_eq!(parsed, instant);
        }
        // The sandbox's hand-written US rules agree with chrono-tz.
        prop_assert_eq!(sandbox::pacific_wall_clock(instant), local.naive_local());
    }
}

// ------------------------------------------------------------ the client

fn client_for(api_base_url: &str, api_key: &str, extra: &str) -> YelpClient {
    let source = source_from_toml(&format!(
        "[[source]]\nname = \"y\"\nkind = \"yelp\"\nschedule = \"0 * * * * *\"\nrequests_per_minute = 6000\ntimeout = \"5s\"\napi_key = \"{api_key}\"\napi_base_url = \"{api_base_url}\"\n{extra}\n  [[source.location]]\n  id = \"x\"\n  group_id = \"g\"\n"
    ));
    let Some(cfg) = source.kind.settings::<YelpConfig>() else {
        panic!("expected yelp");
    };
    let client = YelpClient::new(
        &source,
        cfg,
        crate::app::http_client().expect("http client"),
        &std::sync::Arc::new(crate::quota::Quotas::new()),
    );
    YelpClient {
        http: client
            .http
            .with_retries(FAST, crate::platforms::http::MAX_RETRIES),
        ..client
    }
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts")
}

async fn poll_all(client: &YelpClient, business: &str) -> Result<Vec<FetchedPage>, PlatformError> {
    let mut poll = LocationPoll::new(client, &LocationId::new(business), Cursor::default());
    let mut pages = Vec::new();
    while let Some(page) = poll.next_page().await? {
        pages.push(page);
    }
    Ok(pages)
}

#[tokio::test]
async fn a_poll_is_one_request_for_the_three_newest_excerpts_by_id_or_alias() {
    let sb = sandbox().await;
    let business = sb.yelp().business_ids()[0].clone();
    let alias = sb.yelp().business_aliases()[0].clone();
    let client = client_for(
        &sb.yelp_base_url(),
        sandbox::YELP_API_KEY,
        "locale = \"en_US\"",
    );
    let pages = poll_all(&client, &business).await.expect("poll");
    assert_eq!(pages.len(), 1);
    let served = sb.yelp().served_reviews(&business);
    assert_eq!(served.len(), 3);
    for (review, wire) in pages[0].reviews.iter().zip(&served) {
        let id = wire["id"].as_str().expect("id");
        assert_eq!(review.review_id.as_str(), id);
        assert_eq!(Some(review.created_at), sb.yelp().created_at(id));
        assert_eq!(review.comment.as_deref(), wire["text"].as_str());
        assert_eq!(
            review.notes.get("excerpt").map(String::as_str),
            Some("true")
        );
    }
    assert_eq!(client.requests(), 1);
    assert_eq!(sb.yelp().requests(&business), 1);

    let by_alias = poll_all(&client, &alias).await.expect("alias");
    assert_eq!(by_alias[0].reviews, pages[0].reviews);

    let new_id = sb
        .yelp()
        .add_review(
            &business,
            NewYelpReview {
                rating: 2,
                text: "Short and new.".into(),
                user: "Ana P.".into(),
            },
        )
        .expect("business");
    let pages = poll_all(&client, &business)
        .await
        .expect("poll after a new review");
    assert_eq!(
        pages[0].reviews[0].review_id.as_str(),
        new_id,
        "newest first"
    );
}

#[tokio::test]
async fn the_daily_limit_is_final_and_says_when_it_resets() {
    let sb = sandbox().await;
    let business = sb.yelp().business_ids()[0].clone();
    let client = client_for(&sb.yelp_base_url(), sandbox::YELP_API_KEY, "");
    sb.yelp().set_daily_limit(300, 0);
    let err = poll_all(&client, &business).await.expect_err("limit");
    match &err {
        PlatformError::QuotaExhausted(text) => {
            assert!(text.contains("ACCESS_LIMIT_REACHED"), "{text}");
            assert!(text.contains("of 300 calls"), "{text}");
            assert!(text.contains("it resets at 20"), "{text}");
        }
        other => panic!("expected QuotaExhausted, got {other:?}"),
    }
    assert_eq!(err.error_type(), "quota_exhausted");
    assert_eq!(
        sb.yelp().requests(&business),
        1,
        "a daily limit is not retried"
    );
}

#[tokio::test]
async fn per_second_throttling_is_retried_and_other_errors_are_specific() {
    let sb = sandbox().await;
    let business = sb.yelp().business_ids()[1].clone();
    let client = client_for(&sb.yelp_base_url(), sandbox::YELP_API_KEY, "");
    sb.faults().push(
        Endpoint::YelpReviews,
        Fault::TooManyRequests {
            retry_after: Some(Duration::ZERO),
        },
        2,
    );
    let pages = poll_all(&client, &business).await.expect("after retries");
    assert_eq!(pages[0].reviews.len(), 3);
    assert_eq!(sb.yelp().requests(&business), 3);

    sb.faults().push(
        Endpoint::YelpReviews,
        Fault::TooManyRequests { retry_after: None },
        100,
    );
    let err = poll_all(&client, &business).await.expect_err("throttled");
    assert!(
        matches!(&err, PlatformError::Http { status: 429, detail } if detail.starts_with("TOO_MANY_REQUESTS_PER_SECOND")),
        "{err:?}"
    );
    sb.faults().clear();

    let err = poll_all(&client, "no-such-business")
        .await
        .expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "not found: Yelp business no-such-business (BUSINESS_NOT_FOUND)"
    );

    let client = client_for(&sb.yelp_base_url(), "wrong-s3cret", "");
    let err = poll_all(&client, &business).await.expect_err("bad key");
    assert!(
        matches!(&err, PlatformError::Unauthorized(t) if t.contains("TOKEN_INVALID") && !t.contains("s3cret")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_key_is_a_bearer_token_and_newest_first_is_asked_for() {
    let server = Server::start().await;
    server.script(
        "/y/v3/businesses/gary-danko-san-francisco/reviews",
        vec![Answer::json(200, r#"{"reviews":[],"total":0}"#)],
    );
    let client = client_for(&format!("{}/y", server.base), "k3y", "locale = \"fr_FR\"");
    poll_all(&client, "gary-danko-san-francisco")
        .await
        .expect("poll");
    let head = server.seen().remove(0);
    assert!(
        head.starts_with(
            "GET /y/v3/businesses/gary-danko-san-francisco/reviews?sort_by=newest&locale=fr_FR HTTP/1.1"
        ),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer k3y"),
        "{head}"
    );
}

#[test]
fn implausible_review_times_are_quarantined_naming_the_field() {
    for time in ["2099-01-01 00:00:00", "1999-12-31 12:00:00"] {
        let rejected = one(with(json!({"time_created": time}))).expect_err("quarantined");
        assert!(
            rejected.reason.starts_with("created time:"),
            "{}",
            rejected.reason
        );
        assert_eq!(rejected.reference, "xAG4O7l-t1ubbwVAlPnDKg");
    }
    // Regression: times near the ends of chrono's range panicked in the
    // time zone arithmetic, taking the daemon down with one bad record.
    for (time, year) in [
        ("+262142-12-31 23:59:59", "262142"),
        ("-262143-01-01 00:30:00", "-262143"),
    ] {
        let rejected = one(with(json!({"time_created": time}))).expect_err("quarantined");
        assert_eq!(
            rejected.reason,
            format!("time_created: year {year} is outside 1970..=9999")
        );
    }
}
