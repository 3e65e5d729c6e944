//! Hostile and broken platforms (issue 5, part 4): a location whose answers
//! never end, are hundreds of megabytes, are not JSON or not UTF-8, have the
//! wrong shape, or page forever gives that location's poll a specific error;
//! a bad record gives a quarantine entry whose reason names the field; and in
//! every case the other locations of the pass are delivered, nothing is sent
//! twice, and nothing panics.
//!
//! "Nothing panics" needs no hook: a pass runs on the test's own task, so a
//! panic while polling fails the test, and one in ledger work (a blocking
//! task) comes back as a location error, which `check_pass` refuses.
//!
//! Policy decided here (and documented in `platforms::google::wire`):
//! - a review time before 2000 or more than a day ahead is quarantined;
//! - HTML in a comment is delivered exactly as written (not our business to
//!   strip: Travtus receives text, and escaping is the renderer's job);
//! - control characters in text are delivered (the JSON body escapes them),
//!   in an id they are quarantined;
//! - Google's `starRating` 0 is the proto3 number of `STAR_RATING_UNSPECIFIED`
//!   and is delivered without a rating; 7 is quarantined. A file row's rating
//!   of 0 or 7 is quarantined.

use crate::helpers::{TestEnv, quoted, seed, spawn_env};
use review_sync::app::{App, SyncReport};
use review_sync::ledger::Status;
use sandbox::Misbehaviour;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

/// The source's request timeout in these tests: it is what ends an endless
/// body, so it is short.
const SOURCE_TIMEOUT: &str = "1s";

/// A sandbox with 2 accounts x 3 locations x `reviews` reviews, and a config
/// whose Google source has a 1 s timeout and a budget that never throttles.
async fn hostile_env(reviews: u32) -> TestEnv {
    let env = spawn_env(seed(reviews)).await;
    let text = std::fs::read_to_string(&env.config_path).expect("config");
    let token_line = format!("token_url = \"{}/google/token\"\n", env.sb.base_url());
    assert!(text.contains(&token_line), "the helper's config changed");
    let text = text.replacen(
        &token_line,
        &format!("{token_line}timeout = \"{SOURCE_TIMEOUT}\"\nrequests_per_minute = 60000\n"),
        1,
    );
    std::fs::write(&env.config_path, text).expect("write config");
    env
}

async fn sync(app: &App) -> SyncReport {
    app.sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync completes")
}

/// The error of `location` in the report, if its poll failed.
fn error_of<'r>(report: &'r SyncReport, location: &str) -> Option<&'r str> {
    report
        .sources
        .iter()
        .flat_map(|s| &s.locations)
        .find(|l| l.location_id == location)
        .and_then(|l| l.error.as_deref())
}

/// The locations in `failed` failed their poll and every other location
/// was read without error; every review of the locations not in `unchecked`
/// arrived at Travtus exactly once.
fn check_pass(env: &TestEnv, report: &SyncReport, failed: &[&str], unchecked: &[&str]) {
    let google = env.sb.google();
    let mut expected = HashSet::new();
    for location in google.locations() {
        let error = error_of(report, &location);
        if failed.contains(&location.as_str()) {
            assert!(error.is_some(), "{location} should have failed");
        } else {
            assert_eq!(error, None, "{location}");
        }
        if unchecked.contains(&location.as_str()) {
            continue;
        }
        for review in google.reviews(&location) {
            expected.insert(review["reviewId"].as_str().expect("id").to_owned());
        }
    }
    let messages = env.sb.travtus().messages();
    let mut sent: HashMap<String, usize> = HashMap::new();
    for m in &messages {
        let id = m.body["review"]["review_id"]
            .as_str()
            .expect("id")
            .to_owned();
        *sent.entry(id).or_default() += 1;
    }
    for id in &expected {
        assert_eq!(sent.get(id), Some(&1), "{id} delivered exactly once");
    }
}

/// (reference, reason) of every quarantined record.
fn quarantine(env: &TestEnv) -> Vec<(String, String)> {
    env.ledger_sql("SELECT reference, reason FROM quarantine ORDER BY id")
        .into_iter()
        .map(|r| {
            (
                r[0].text().expect("reference"),
                r[1].text().expect("reason"),
            )
        })
        .collect()
}

/// The error recorded in the poll log for `location`'s last poll.
fn logged_error(env: &TestEnv, location: &str) -> Option<String> {
    let rows = env.ledger_sql(&format!(
        "SELECT error FROM polls WHERE location_id = {} ORDER BY id DESC LIMIT 1",
        quoted(location)
    ));
    rows.first().expect("a poll of the location was logged")[0].text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_never_ends_is_cut_by_the_source_timeout() {
    let env = hostile_env(5).await;
    let bad = env.sb.google().locations()[0].clone();
    env.sb.google().misbehave(&bad, Misbehaviour::EndlessBody);
    let app = env.app().await;

    let started = Instant::now();
    let report = sync(&app).await;
    let took = started.elapsed();

    let error = error_of(&report, &bad).expect("the endless location failed");
    assert!(error.contains("timed out"), "{error}");
    // Five attempts of one second each, and at most 7.5 s of backoff: the
    // body never holds the pass for long.
    assert!(took < Duration::from_secs(30), "the pass took {took:?}");
    assert_eq!(
        env.sb.google().list_requests(&bad),
        1 + u64::from(review_sync::platforms::http::MAX_RETRIES),
        "a timeout is retried, a bounded number of times"
    );
    assert!(env.sb.google().streamed_bytes() > 0, "the body did start");
    assert_eq!(logged_error(&env, &bad).as_deref(), Some(error));
    assert!(env.rows().iter().all(|r| r.location_id != bad));
    check_pass(&env, &report, &[&bad], &[&bad]);

    // Once the platform behaves again, the location is read in full.
    env.sb.google().behave(&bad);
    let report = sync(&app).await;
    assert!(report.all_delivered(), "{report:?}");
    check_pass(&env, &report, &[], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_hundreds_of_megabytes_is_refused_at_the_cap_without_reading_it_all() {
    let env = hostile_env(5).await;
    let bad = env.sb.google().locations()[1].clone();
    let huge: u64 = 512 * 1024 * 1024;
    env.sb
        .google()
        .misbehave(&bad, Misbehaviour::HugeBody { bytes: huge });
    let app = env.app().await;
    let report = sync(&app).await;

    let cap = review_sync::platforms::http::MAX_BODY_BYTES;
    let error = error_of(&report, &bad).expect("the huge location failed");
    assert_eq!(
        error,
        format!("invalid response: body larger than the {cap} byte cap")
    );
    assert_eq!(
        env.sb.google().list_requests(&bad),
        1,
        "an oversized body is not asked for again"
    );
    // The client stopped reading at the cap: the emulator produced the cap
    // plus what fits in the socket buffers, not the half gigabyte.
    let streamed = env.sb.google().streamed_bytes();
    assert!(
        streamed < 4 * cap as u64,
        "{streamed} bytes streamed for a {cap} byte cap"
    );
    check_pass(&env, &report, &[&bad], &[&bad]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_invalid_utf8_and_the_wrong_shape_fail_only_their_location() {
    let env = hostile_env(5).await;
    let locations = env.sb.google().locations();
    let cases = [
        (
            Misbehaviour::InvalidJson,
            "invalid response: HTTP 200 body is not JSON: EOF while parsing",
        ),
        (
            Misbehaviour::InvalidUtf8,
            "invalid response: HTTP 200 body is not JSON: invalid unicode code point",
        ),
        (
            Misbehaviour::WrongShape,
            "invalid response: reviews is an object, not an array",
        ),
    ];
    for ((misbehaviour, _), location) in cases.iter().zip(&locations) {
        env.sb.google().misbehave(location, misbehaviour.clone());
    }
    let app = env.app().await;
    let report = sync(&app).await;
    let bad: Vec<&str> = locations
        .iter()
        .take(cases.len())
        .map(String::as_str)
        .collect();
    for ((misbehaviour, expected), location) in cases.iter().zip(&bad) {
        let error = error_of(&report, location).unwrap_or_else(|| panic!("{misbehaviour:?}"));
        assert!(error.starts_with(expected), "{misbehaviour:?}: {error}");
        assert_eq!(
            env.sb.google().list_requests(location),
            1,
            "{misbehaviour:?}: a malformed answer is not asked for again"
        );
    }
    assert!(
        env.rows()
            .iter()
            .all(|r| !bad.contains(&r.location_id.as_str()))
    );
    check_pass(&env, &report, &bad, &bad);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_token_that_loops_is_a_paging_loop_and_the_pages_read_are_kept() {
    // 120 reviews: three pages, then the last page points back to the first.
    let env = hostile_env(120).await;
    let bad = env.sb.google().locations()[2].clone();
    env.sb
        .google()
        .misbehave(&bad, Misbehaviour::LoopingPageToken);
    let app = env.app().await;
    let report = sync(&app).await;

    let error = error_of(&report, &bad).expect("the looping location failed");
    assert_eq!(
        error,
        "invalid response: paging loop: page token repeated after 4 pages"
    );
    assert_eq!(env.sb.google().list_requests(&bad), 4);
    // What was read is recorded and delivered, once each.
    check_pass(&env, &report, &[&bad], &[]);

    // The high-water mark did not move: the next pass reads it all again,
    // meets the loop again, and sends nothing twice.
    let sent = env.sb.travtus().message_count();
    let report = sync(&app).await;
    assert!(error_of(&report, &bad).is_some_and(|e| e.contains("paging loop")));
    assert_eq!(env.sb.google().list_requests(&bad), 8);
    assert_eq!(env.sb.travtus().message_count(), sent, "nothing resent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_page_tokens_forever_stop_at_twice_the_reported_total() {
    let env = hostile_env(5).await;
    let bad = env.sb.google().locations()[3].clone();
    env.sb.google().misbehave(&bad, Misbehaviour::EndlessPaging);
    let app = env.app().await;
    let report = sync(&app).await;

    let error = error_of(&report, &bad).expect("the endless location failed");
    assert!(
        error.starts_with("invalid response: paging loop: ")
            && error.ends_with("but the location reports 5 reviews"),
        "{error}"
    );
    // 5 reviews a page: stopped once 2 x 5 + 500 records were passed, not
    // after review_sync's 10,000-page limit.
    let requests = env.sb.google().list_requests(&bad);
    assert_eq!(requests, (2 * 5 + 500) / 5 + 1, "{requests} pages read");
    check_pass(&env, &report, &[&bad], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_review_on_two_pages_is_delivered_once() {
    let env = hostile_env(120).await;
    let bad = env.sb.google().locations()[4].clone();
    env.sb
        .google()
        .misbehave(&bad, Misbehaviour::DuplicateAcrossPages);
    let app = env.app().await;
    let report = sync(&app).await;

    assert!(report.all_delivered(), "{report:?}");
    let location = report
        .sources
        .iter()
        .flat_map(|s| &s.locations)
        .find(|l| l.location_id == bad)
        .expect("report");
    assert_eq!(location.pages, 3);
    assert_eq!(location.counts.new, 120);
    assert_eq!(location.counts.unchanged, 2, "the repeats are seen as such");
    check_pass(&env, &report, &[], &[]);
    assert_eq!(
        env.sb.travtus().message_count(),
        env.google_review_count(),
        "nothing sent twice"
    );
}

/// A raw Google review with `changes` over a valid one.
fn raw_review(id: &str, changes: Value) -> Value {
    let mut review = json!({
        "reviewId": id,
        "reviewer": {"displayName": "Hostile Tester"},
        "starRating": "FOUR",
        "comment": "fine",
        "createTime": "2026-01-02T00:00:00Z",
        "updateTime": "2026-01-02T00:00:00Z",
    });
    if let (Some(base), Value::Object(changes)) = (review.as_object_mut(), changes) {
        base.extend(changes);
    }
    review
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_quarantined_with_the_field_and_odd_text_is_delivered_as_written() {
    let env = hostile_env(3).await;
    let google = env.sb.google().clone();
    let location = google.locations()[0].clone();
    let future = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let long_id = "x".repeat(10 * 1024);
    let quarantined: Vec<(Value, &str, String)> = vec![
        (
            raw_review(
                "future",
                json!({"createTime": future, "updateTime": future}),
            ),
            "future",
            format!(
                "createTime: {} is more than a day in the future",
                &future[..19]
            ),
        ),
        (
            raw_review(
                "y1999",
                json!({"createTime": "1999-12-31T23:59:59Z", "updateTime": "1999-12-31T23:59:59Z"}),
            ),
            "y1999",
            "createTime: 1999-12-31T23:59:59 is before 2000: no review platform is that old".into(),
        ),
        (
            raw_review("seven", json!({"starRating": 7})),
            "seven",
            "starRating: 7 is not within 1..5".into(),
        ),
        (
            raw_review("minus", json!({"starRating": -1})),
            "minus",
            "starRating: -1 is not within 1..5".into(),
        ),
        (
            raw_review(&long_id, json!({})),
            "page 1 item",
            "reviewId: 10240 bytes, more than 1024".into(),
        ),
        (
            raw_review("bell\u{7}id", json!({})),
            "page 1 item",
            "reviewId: contains control characters".into(),
        ),
        (
            raw_review(
                "nul-in-name",
                json!({"reviewId": null, "name": "accounts/1/locations/2/reviews/a\u{0}b"}),
            ),
            "page 1 item",
            "name: contains control characters".into(),
        ),
    ];
    for (review, _, _) in &quarantined {
        assert!(google.insert_raw_review(&location, review.clone()));
    }
    let html = "<script>alert('x')</script><b>Great</b> &amp; <a href=\"javascript:1\">flat</a>";
    let control = "line one\u{0}\u{7}\u{1b}[31m red \u{7f} tab\there\r\nend";
    let delivered = [
        ("html", raw_review("html", json!({"comment": html}))),
        (
            "control",
            raw_review(
                "control",
                json!({"comment": control, "reviewer": {"displayName": "Ctl\u{1}Name"}}),
            ),
        ),
        ("zero", raw_review("zero", json!({"starRating": 0}))),
        (
            "bidi",
            raw_review(
                "bidi",
                json!({"comment": "\u{202e}txet desrever\u{202c} and \u{feff}zero width"}),
            ),
        ),
    ];
    for (_, review) in &delivered {
        assert!(google.insert_raw_review(&location, review.clone()));
    }

    let app = env.app().await;
    let report = sync(&app).await;
    assert_eq!(
        error_of(&report, &location),
        None,
        "bad records never fail a poll"
    );
    assert_eq!(
        report.pending + report.held + report.rejected,
        0,
        "{report:?}"
    );

    let found = quarantine(&env);
    assert_eq!(found.len(), quarantined.len(), "{found:#?}");
    for (_, reference, reason) in &quarantined {
        assert!(
            found
                .iter()
                .any(|(r, why)| r.starts_with(reference) && why == reason),
            "no quarantine entry {reference}: {reason} in {found:#?}"
        );
    }

    let messages = env.sb.travtus().messages();
    let body_of = |id: &str| -> Value {
        messages
            .iter()
            .find(|m| m.body["review"]["review_id"] == id)
            .map(|m| m.body["review"].clone())
            .unwrap_or_else(|| panic!("{id} was not delivered"))
    };
    assert_eq!(
        body_of("html")["comment"],
        html,
        "HTML is delivered as written"
    );
    assert_eq!(
        body_of("control")["comment"],
        control,
        "control characters too"
    );
    assert_eq!(body_of("control")["display_name"], "Ctl\u{1}Name");
    assert!(body_of("zero").get("rating").is_none(), "0 is no rating");
    assert_eq!(
        body_of("bidi")["comment"],
        "\u{202e}txet desrever\u{202c} and \u{feff}zero width"
    );
    // Every seeded review, and the four odd ones, arrived once.
    check_pass(&env, &report, &[], &[&location]);
    assert_eq!(
        env.rows()
            .iter()
            .filter(|r| r.status == Status::Delivered)
            .count(),
        6 * 3 + delivered.len()
    );
    // The stored payload of the control-character review is valid JSON with
    // the characters escaped.
    let row = env
        .rows()
        .into_iter()
        .find(|r| r.review_id == "control")
        .expect("row");
    assert!(row.payload.contains("\\u0000") && row.payload.contains("\\u001b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_rows_that_are_not_utf8_not_json_or_out_of_range_are_quarantined() {
    let env = hostile_env(2).await;
    let dir = env.dir.path().join("drop");
    std::fs::create_dir(&dir).expect("mkdir");
    let mut jsonl: Vec<u8> = Vec::new();
    let rows: [&[u8]; 8] = [
        br#"{"review_id":"ok-1","created_datetime":"2024-01-01T00:00:00Z","rating":5,"comment":"<i>fine</i>"}"#,
        b"{\"review_id\":\"latin1\",\"created_datetime\":\"2024-01-01T00:00:00Z\",\"comment\":\"caf\xe9\"}",
        br#"{"review_id":"cut","created_datetime":"#,
        br#"{"review_id":"zero","created_datetime":"2024-01-01T00:00:00Z","rating":0}"#,
        br#"{"review_id":"seven","created_datetime":"2024-01-01T00:00:00Z","rating":7}"#,
        br#"{"review_id":"old","created_datetime":"1999-06-01 12:00:00"}"#,
        br#"{"review_id":"later","created_datetime":4102444800}"#,
        br#"["an","array"]"#,
    ];
    for row in rows {
        jsonl.extend_from_slice(row);
        jsonl.push(b'\n');
    }
    std::fs::write(dir.join("a.jsonl"), &jsonl).expect("write");
    let mut text = std::fs::read_to_string(&env.config_path).expect("config");
    text.push_str(&format!(
        "\n[[source]]\nname = \"drop\"\nkind = \"file\"\nplatform = \"partner\"\nschedule = \"0 * * * * *\"\n\n  [[source.location]]\n  id = \"{}/*.jsonl\"\n  group_external_ref = \"portfolio-1\"\n",
        dir.display()
    ));
    std::fs::write(&env.config_path, text).expect("write");

    let app = env.app().await;
    let report = sync(&app).await;
    assert!(report.sources.iter().all(|s| s.failed() == 0), "{report:?}");
    let reasons: Vec<String> = quarantine(&env).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        reasons,
        [
            "row: not UTF-8",
            "row: not JSON (EOF while parsing a value at line 1 column 38)",
            "rating: 0 is not within 1..5",
            "rating: 7 is not within 1..5",
            "created_datetime: 1999-06-01T12:00:00 is before 2000: no review platform is that old",
            "created_datetime: 2100-01-01T00:00:00 is more than a day in the future",
            "row: an array is not an object",
        ]
    );
    let ok = env
        .sb
        .travtus()
        .messages()
        .into_iter()
        .find(|m| m.body["review"]["review_id"] == "ok-1")
        .expect("the good row was delivered");
    assert_eq!(ok.body["review"]["comment"], "<i>fine</i>");
    check_pass(&env, &report, &[], &[]);
}
