//! Places: the mapping of `Place.reviews[]` (table-driven, every quirk and
//! every refusal), and the client against the sandbox's emulator on loopback
//! (one request per poll, the key and field mask, errors), plus a scripted
//! server for exact request heads.

use super::wire::map_place;
use super::*;
use crate::domain::{Rating, Rejected, Review};
use crate::platforms::FetchedPage;
use crate::platforms::test_server::{Answer, Server};
use crate::platforms::test_support::source_from_toml;
use crate::poll::Cursor;
use crate::poll::location::LocationPoll;
use crate::retry::Backoff;
use crate::timestamps::travtus_format;
use sandbox::{Endpoint, Fault, NewPlacesReview, Sandbox, SandboxOptions};
use serde_json::json;
use std::time::Duration;

const FAST: Backoff = Backoff {
    base: Duration::from_millis(1),
    cap: Duration::from_millis(5),
};

fn full() -> Value {
    json!({
        "name": "places/ChIJ1/reviews/r1",
        "relativePublishTimeDescription": "a week ago",
        "rating": 4.6,
        "text": {"text": "Very nice flat", "languageCode": "en"},
        "originalText": {"text": "  Sehr schöne Wohnung  ", "languageCode": "de"},
        "authorAttribution": {"displayName": "Zoë M.", "uri": "https://x", "photoUri": "https://y"},
        "publishTime": "2025-06-01T12:34:56.123456789Z"
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
    let mapped = map_place(&json!({"id": "ChIJ1", "reviews": [item]})).expect("place shape");
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
fn a_full_review_maps_every_field_and_nothing_it_lacks() {
    let r = one(full()).expect("review");
    assert_eq!(r.platform.as_str(), "google");
    assert_eq!(r.review_id.as_str(), "places/ChIJ1/reviews/r1");
    assert_eq!(r.comment.as_deref(), Some("Sehr schöne Wohnung"));
    assert_eq!(r.rating.map(Rating::get), Some(5));
    assert_eq!(r.display_name.as_deref(), Some("Zoë M."));
    assert_eq!(travtus_format(r.created_at), "2025-06-01T12:34:56");
    assert_eq!((r.title, r.updated_at, r.is_anonymous), (None, None, None));
    assert_eq!(r.notes.get("language").map(String::as_str), Some("de"));
}

#[test]
fn decimal_ratings_round_to_whole_stars() {
    let cases = [
        (json!(5), Some(5)),
        (json!(4.0), Some(4)),
        (json!(4.6), Some(5)),
        (json!(4.4), Some(4)),
        (json!(3.5), Some(4)),
        (json!(1.0), Some(1)),
        (json!(0.6), Some(1)),
        (Value::Null, None),
        (json!("__remove__"), None),
    ];
    for (rating, want) in cases {
        let r = one(with(json!({ "rating": rating.clone() })))
            .unwrap_or_else(|e| panic!("{rating}: {e:?}"));
        assert_eq!(r.rating.map(Rating::get), want, "{rating}");
    }
}

#[test]
fn the_original_text_wins_over_a_translation() {
    let cases = [
        // (text, originalText, comment, language note)
        (
            json!({"text": "Very nice flat", "languageCode": "en"}),
            json!({"text": "Sehr schöne Wohnung", "languageCode": "de"}),
            Some("Sehr schöne Wohnung"),
            Some("de"),
        ),
        (
            json!({"text": "Same words", "languageCode": "en"}),
            json!({"text": "Same words", "languageCode": "en"}),
            Some("Same words"),
            Some("en"),
        ),
        (
            json!({"text": "Only a translation", "languageCode": "en"}),
            json!("__remove__"),
            Some("Only a translation"),
            Some("en"),
        ),
        (json!("__remove__"), json!("__remove__"), None, None),
        (
            json!({"text": "Shown", "languageCode": "en"}),
            json!({"text": "   ", "languageCode": "fr"}),
            None,
            Some("fr"),
        ),
        (json!({"languageCode": "en"}), Value::Null, None, None),
    ];
    for (text, original, comment, language) in cases {
        let r = one(with(
            json!({"text": text.clone(), "originalText": original.clone()}),
        ))
        .unwrap_or_else(|e| panic!("{text} / {original}: {e:?}"));
        assert_eq!(r.comment.as_deref(), comment, "{text} / {original}");
        assert_eq!(
            r.notes.get("language").map(String::as_str),
            language,
            "{text} / {original}"
        );
    }
}

#[test]
fn bad_records_are_rejected_with_reason_and_raw() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(json!({"name": "__remove__"})),
            "item 1",
            "name: missing",
        ),
        (with(json!({"name": ""})), "item 1", "name: empty"),
        (
            with(json!({"name": 7})),
            "item 1",
            "name: a number is not a string",
        ),
        (
            with(json!({"publishTime": "__remove__"})),
            "places/ChIJ1/reviews/r1",
            "publishTime: missing",
        ),
        (
            with(json!({"publishTime": "last week"})),
            "places/ChIJ1/reviews/r1",
            "publishTime: \"last week\" is not an RFC 3339 timestamp",
        ),
        (
            with(json!({"rating": 0.4})),
            "places/ChIJ1/reviews/r1",
            "rating: 0.4 is not within 1..5",
        ),
        (
            with(json!({"rating": 5.6})),
            "places/ChIJ1/reviews/r1",
            "rating: 5.6 is not within 1..5",
        ),
        (
            with(json!({"rating": "5"})),
            "places/ChIJ1/reviews/r1",
            "rating: a string is not a number",
        ),
        (
            with(json!({"originalText": "Sehr gut"})),
            "places/ChIJ1/reviews/r1",
            "originalText: a string is not an object",
        ),
        (
            with(json!({"text": {"text": 3}})),
            "places/ChIJ1/reviews/r1",
            "text.text: a number is not a string",
        ),
        (
            with(json!({"authorAttribution": ["x"]})),
            "places/ChIJ1/reviews/r1",
            "authorAttribution: an array is not an object",
        ),
        (json!(12), "item 1", "review: a number is not an object"),
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
fn place_shapes() {
    let empty = map_place(&json!({"id": "ChIJ1", "displayName": {"text": "X"}})).expect("place");
    assert!(empty.page.reviews.is_empty() && empty.page.rejected.is_empty());
    assert_eq!(empty.page.reported_total, None);
    assert_eq!(empty.newest, None);
    let mixed = map_place(&json!({"reviews": [full(), with(json!({"rating": "x"})), with(json!({"name": "places/ChIJ1/reviews/r2", "publishTime": "2025-07-01T00:00:00Z"}))]}))
        .expect("place");
    assert_eq!(mixed.page.reviews.len(), 2);
    assert_eq!(mixed.page.rejected.len(), 1);
    assert_eq!(
        mixed.newest.map(travtus_format).as_deref(),
        Some("2025-07-01T00:00:00")
    );
    for bad in [json!([]), json!("x"), json!({"reviews": {}})] {
        assert!(
            matches!(map_place(&bad), Err(PlatformError::InvalidResponse(_))),
            "{bad}"
        );
    }
}

// ------------------------------------------------------------ the client

fn client_for(api_base_url: &str, api_key: &str, extra: &str) -> PlacesClient {
    let source = source_from_toml(&format!(
        "[[source]]\nname = \"p\"\nkind = \"google_places\"\nschedule = \"0 * * * * *\"\nrequests_per_minute = 6000\ntimeout = \"5s\"\napi_key = \"{api_key}\"\napi_base_url = \"{api_base_url}\"\n{extra}\n  [[source.location]]\n  id = \"x\"\n  group_id = \"g\"\n"
    ));
    let Some(cfg) = source.kind.settings::<PlacesConfig>() else {
        panic!("expected google_places");
    };
    let client = PlacesClient::new(
        &source,
        cfg,
        crate::app::http_client().expect("http client"),
        &std::sync::Arc::new(crate::quota::Quotas::new()),
    );
    PlacesClient {
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

async fn poll_all(
    client: &PlacesClient,
    place: &str,
    state: Cursor,
) -> Result<(Vec<FetchedPage>, Cursor), PlatformError> {
    let mut poll = LocationPoll::new(client, &LocationId::new(place), state);
    let mut pages = Vec::new();
    while let Some(page) = poll.next_page().await? {
        pages.push(page);
    }
    Ok((pages, poll.finish()))
}

#[tokio::test]
async fn a_poll_is_one_request_for_the_five_most_relevant_reviews() {
    let sb = sandbox().await;
    let place = sb.places().place_ids()[0].clone();
    let client = client_for(&sb.places_base_url(), sandbox::PLACES_API_KEY, "");
    let (pages, state) = poll_all(&client, &place, Cursor::default())
        .await
        .expect("poll");
    assert_eq!(pages.len(), 1);
    assert!(sb.places().all_reviews(&place).len() > 5, "more exist");
    let served = sb.places().served_reviews(&place);
    let got: Vec<&str> = pages[0]
        .reviews
        .iter()
        .map(|r| r.review_id.as_str())
        .collect();
    let want: Vec<&str> = served.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 5);
    for (review, wire) in pages[0].reviews.iter().zip(&served) {
        assert_eq!(
            review.comment.as_deref(),
            wire["originalText"]["text"].as_str()
        );
    }
    assert_eq!(sb.places().requests(&place), 1);
    assert_eq!(client.requests(), 1);
    let newest = pages[0].reviews.iter().map(|r| r.created_at).max();
    assert_eq!(state.high_water, newest);

    // The same again: still exactly one request (nothing to page).
    poll_all(&client, &format!("places/{place}"), state)
        .await
        .expect("second poll");
    assert_eq!(sb.places().requests(&place), 2);

    // A new review is the most relevant: it is served.
    let name = sb
        .places()
        .add_review(
            &place,
            NewPlacesReview {
                rating: 3.5,
                text: "Bon rapport qualité-prix".into(),
                language: "fr".into(),
                author: "Léa".into(),
            },
        )
        .expect("place exists");
    let (pages, _) = poll_all(&client, &place, Cursor::default())
        .await
        .expect("third poll");
    let new = pages[0]
        .reviews
        .iter()
        .find(|r| r.review_id.as_str() == name)
        .expect("the new review is served");
    assert_eq!(new.comment.as_deref(), Some("Bon rapport qualité-prix"));
    assert_eq!(new.rating.map(Rating::get), Some(4));
}

#[tokio::test]
async fn the_key_and_field_mask_are_sent_as_headers_with_the_language() {
    let server = Server::start().await;
    server.script(
        "/p/v1/places/ChIJabc",
        vec![Answer::json(200, r#"{"id":"ChIJabc"}"#)],
    );
    let client = client_for(
        &format!("{}/p/", server.base),
        "k3y-s3cret",
        "language_code = \"de\"",
    );
    let (pages, _) = poll_all(&client, "ChIJabc", Cursor::default())
        .await
        .expect("poll");
    assert!(pages[0].reviews.is_empty());
    let head = server.seen().remove(0);
    let lower = head.to_ascii_lowercase();
    assert!(
        head.starts_with("GET /p/v1/places/ChIJabc?languageCode=de HTTP/1.1"),
        "{head}"
    );
    assert!(lower.contains("x-goog-api-key: k3y-s3cret"), "{head}");
    assert!(
        lower.contains("x-goog-fieldmask: id,displayname,reviews"),
        "{head}"
    );
}

#[tokio::test]
async fn refused_keys_unknown_places_and_throttling_are_specific_errors() {
    let sb = sandbox().await;
    let place = sb.places().place_ids()[0].clone();

    let client = client_for(&sb.places_base_url(), "wrong-key-s3cret", "");
    let err = poll_all(&client, &place, Cursor::default())
        .await
        .expect_err("bad key");
    match &err {
        PlatformError::Unauthorized(text) => {
            assert!(
                text.starts_with("Google Places refused the API key"),
                "{text}"
            );
            assert!(text.contains("INVALID_ARGUMENT"), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(sb.places().requests(&place), 1, "not retried");

    let client = client_for(&sb.places_base_url(), sandbox::PLACES_API_KEY, "");
    let err = poll_all(&client, "ChIJnowhere", Cursor::default())
        .await
        .expect_err("unknown");
    assert_eq!(err.to_string(), "not found: place ChIJnowhere");

    sb.faults()
        .push(Endpoint::PlacesDetails, Fault::Status(503), 1);
    let (pages, _) = poll_all(&client, &place, Cursor::default())
        .await
        .expect("a 503 is retried");
    assert_eq!(pages[0].reviews.len(), 5);

    sb.faults().push(
        Endpoint::PlacesDetails,
        Fault::TooManyRequests {
            retry_after: Some(Duration::ZERO),
        },
        100,
    );
    let err = poll_all(&client, &place, Cursor::default())
        .await
        .expect_err("throttled");
    match &err {
        PlatformError::Http {
            status: 429,
            detail,
        } => {
            assert!(detail.starts_with("RESOURCE_EXHAUSTED"), "{detail}")
        }
        other => panic!("expected HTTP 429, got {other:?}"),
    }
}

#[test]
fn place_ids_become_one_escaped_segment() {
    let cases = [
        (
            "https://places.googleapis.com",
            "ChIJ1",
            "https://places.googleapis.com/v1/places/ChIJ1",
        ),
        (
            "https://places.googleapis.com/",
            "places/ChIJ1",
            "https://places.googleapis.com/v1/places/ChIJ1",
        ),
        (
            "http://127.0.0.1:9/places",
            "ChIJ1",
            "http://127.0.0.1:9/places/v1/places/ChIJ1",
        ),
        (
            "http://127.0.0.1:9/places",
            "a?b#c",
            "http://127.0.0.1:9/places/v1/places/a%3Fb%23c",
        ),
    ];
    for (base, place, want) in cases {
        let client = client_for(base, "k", "");
        let url = client.details_url(&LocationId::new(place)).expect("url");
        assert_eq!(url.as_str(), want, "{base} + {place}");
    }
}

/// A real Place Details (New) answer, published as the example of a Places
/// client's README: `StefanMedia/GooglePlaceDetails`, `README.md` ("Place
/// details answer example"), commit f2af7f89ab56ba5651f19734d787838e418d0130.
/// The authors' names, profile links and photo URLs are anonymised; the
/// shape and everything else are kept, in
/// `src/platforms/places/fixtures/recorded_place_details.json`. It shows the
/// settled facts: `publishTime` with six fractional digits, `rating` as a
/// whole number, review names with both the `ChZ` and `Chd` prefixes.
#[test]
fn a_recorded_real_place_maps_every_review() {
    let json: Value = serde_json::from_str(include_str!("fixtures/recorded_place_details.json"))
        .expect("fixture is JSON");
    let mapped = map_place(&json).expect("place");
    assert!(
        mapped.page.rejected.is_empty(),
        "{:?}",
        mapped.page.rejected
    );
    let place = "places/ChIJ32vwFWSAhYAR8wx7vbWoSPA/reviews/";
    // (review id after the place, publishTime in UTC, stars, author, text start)
    let want = [
        (
            "ChZDSUhNMG9nS0VJQ0FnSURmdVkyc1pBEAE",
            "2025-01-08T08:22:09",
            5,
            "Reviewer One",
            "They had only 2 signs",
        ),
        (
            "ChdDSUhNMG9nS0VQS0U3Ylh5bnM2d2p3RRAB",
            "2025-05-26T09:34:10",
            2,
            "Reviewer Two",
            "Here is proof for eveyone",
        ),
        (
            "ChZDSUhNMG9nS0VJQ0FnSURaaThfRFlREAE",
            "2024-08-31T21:41:39",
            5,
            "Reviewer Three",
            "The original Google San Francisco",
        ),
        (
            "ChZDSUhNMG9nS0VJQ0FnSUNmaGVDVElBEAE",
            "2024-12-30T20:41:31",
            4,
            "Reviewer Four",
            "Not very easy mission",
        ),
        (
            "ChdDSUhNMG9nS0VJQ0FnSUR6Mk9Ebm9nRRAB",
            "2024-06-07T09:38:36",
            5,
            "Reviewer Five",
            "Here is Google's San Francisco office",
        ),
    ];
    assert_eq!(mapped.page.reviews.len(), want.len());
    for (r, (id, published, stars, author, text)) in mapped.page.reviews.iter().zip(want) {
        assert_eq!(r.review_id.as_str(), format!("{place}{id}"));
        assert_eq!(travtus_format(r.created_at), published, "{id}");
        assert_eq!(r.rating.map(Rating::get), Some(stars), "{id}");
        assert_eq!(r.display_name.as_deref(), Some(author), "{id}");
        assert!(
            r.comment.as_deref().is_some_and(|c| c.starts_with(text)),
            "{id}: {:?}",
            r.comment
        );
        assert_eq!(
            r.notes.get("language").map(String::as_str),
            Some("en"),
            "{id}"
        );
        assert_eq!(
            (r.updated_at, r.is_anonymous, r.title.as_deref()),
            (None, None, None)
        );
    }
}

#[test]
fn publish_times_with_three_six_or_nine_fraction_digits_and_any_id_prefix() {
    for (name, time) in [
        (
            "places/p/reviews/ChZDSUhNMG9nS0VJ",
            "2025-01-08T08:22:09.598Z",
        ),
        (
            "places/p/reviews/ChdDSUhNMG9nS0VQ",
            "2025-01-08T08:22:09.598435Z",
        ),
        (
            "places/p/reviews/Ci9DQUlRQUNvZENo",
            "2025-01-08T08:22:09.598435123Z",
        ),
        ("places/p/reviews/ChZDSUhNMG9nS0VK", "2025-01-08T08:22:09Z"),
    ] {
        let r = one(with(
            json!({"name": name, "publishTime": time, "rating": 5}),
        ))
        .unwrap_or_else(|e| panic!("{time}: {e:?}"));
        assert_eq!(r.review_id.as_str(), name);
        assert_eq!(
            travtus_format(r.created_at),
            "2025-01-08T08:22:09",
            "{time}"
        );
        assert_eq!(r.rating.map(Rating::get), Some(5));
    }
}
