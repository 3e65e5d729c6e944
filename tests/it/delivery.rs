//! Delivery end to end: what Travtus receives, what the ledger says, and
//! how failures on either side are survived.

use crate::helpers::{seed, spawn_env, wait_until};
use review_sync::ledger::Status;
use sandbox::{Endpoint, Fault, FaultRates, NewGoogleReview};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seeded_review_is_delivered_once_to_its_group_with_the_exact_body() {
    let env = spawn_env(seed(50)).await;
    let app = env.app().await;
    let report = app
        .sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync");

    let seeded = env.google_review_count();
    assert!(seeded >= 250, "a few hundred reviews, got {seeded}");
    assert!(report.all_delivered(), "{report:?}");
    let messages = env.sb.travtus().messages();
    assert_eq!(messages.len(), seeded, "each review exactly once");
    let ids: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m.body["review"]["review_id"].as_str())
        .collect();
    assert_eq!(ids.len(), seeded, "no review sent twice");

    // Right group per location: location i maps to portfolio-(i+1).
    let locations = env.sb.google().locations();
    let mut expected_group = HashMap::new();
    for (i, loc) in locations.iter().enumerate() {
        for r in env.sb.google().reviews(loc) {
            expected_group.insert(
                r["reviewId"].as_str().expect("id").to_owned(),
                format!("portfolio-{}", i % 10 + 1),
            );
        }
    }
    for m in &messages {
        let id = m.body["review"]["review_id"].as_str().expect("id");
        assert_eq!(
            m.body["group_external_ref"].as_str(),
            Some(expected_group[id].as_str()),
            "{id}"
        );
        assert!(m.body.get("group_id").is_none());
        assert_eq!(m.body["channel"], "review");
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        // No nulls anywhere in the review object: absent means missing.
        for (k, v) in m.body["review"].as_object().expect("object") {
            assert!(!v.is_null(), "{id}: {k} is null");
        }
        let created = m.body["review"]["created_datetime"]
            .as_str()
            .expect("created");
        assert_eq!(created.len(), 19, "YYYY-MM-DDThh:mm:ss, got {created}");
    }

    // Ledger: delivered with the request id the emulator returned, and the
    // idempotency key of the version sent.
    let by_request: HashMap<&str, &sandbox::ReceivedMessage> = messages
        .iter()
        .map(|m| (m.request_id.as_str(), m))
        .collect();
    let rows = env.rows();
    assert_eq!(rows.len(), seeded);
    for row in &rows {
        assert_eq!(row.status, Status::Delivered, "{}", row.review_id);
        let request_id = row.request_id.as_deref().expect("request id");
        let m = by_request[request_id];
        assert_eq!(
            m.body["review"]["review_id"].as_str(),
            Some(row.review_id.as_str())
        );
        assert_eq!(
            m.idempotency_key.as_deref(),
            Some(format!("google:{}:{}", row.review_id, row.content_hash).as_str())
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&row.payload).expect("payload"),
            m.body
        );
    }

    // Snapshot a few exact bodies (the seed is deterministic): a rating-only
    // review, an anonymous one, and one with non-ASCII text.
    let mut sorted: Vec<&sandbox::ReceivedMessage> = messages.iter().collect();
    sorted.sort_by_key(|m| {
        m.body["review"]["review_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    let rating_only = sorted
        .iter()
        .find(|m| m.body["review"].get("comment").is_none())
        .expect("a rating-only review");
    let anonymous = sorted
        .iter()
        .find(|m| m.body["review"]["is_anonymous"] == true)
        .expect("an anonymous review");
    let non_ascii = sorted
        .iter()
        .find(|m| {
            m.body["review"]["comment"]
                .as_str()
                .is_some_and(|c| !c.is_ascii())
        })
        .expect("a non-ASCII review");
    insta::assert_json_snapshot!("rating_only_body", rating_only.body);
    insta::assert_json_snapshot!("anonymous_body", anonymous.body);
    insta::assert_json_snapshot!("non_ascii_body", non_ascii.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_passes_send_exactly_the_changes_and_a_quiet_pass_costs_one_batch_call_per_account() {
    let env = spawn_env(seed(60)).await;
    let app = env.app().await;
    let cancel = CancellationToken::new();
    app.sync(&[], WAIT, &cancel).await.expect("pass 1");
    let after_first = env.sb.travtus().message_count();

    let google = env.sb.google();
    let locations = google.locations();
    let added: Vec<String> = locations
        .iter()
        .take(2)
        .map(|l| {
            google.add_review(
                l,
                NewGoogleReview {
                    star_rating: Some(3),
                    comment: Some("Nouveau avis".into()),
                    display_name: "New Resident".into(),
                    is_anonymous: false,
                },
            )
        })
        .collect();
    // Edit an old review (deep in the list: not on the first page).
    let old = google
        .reviews(&locations[2])
        .last()
        .and_then(|r| r["reviewId"].as_str().map(str::to_owned))
        .expect("a review");
    assert!(google.edit_review(&locations[2], &old, Some("Edited text".into()), Some(1)));

    let report = app.sync(&[], WAIT, &cancel).await.expect("pass 2");
    assert!(report.all_delivered());
    let second: Vec<_> = env.sb.travtus().messages().split_off(after_first);
    let sent: HashSet<String> = second
        .iter()
        .map(|m| {
            m.body["review"]["review_id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    let expected: HashSet<String> = added.iter().cloned().chain([old.clone()]).collect();
    assert_eq!(sent, expected, "exactly the added and edited reviews");
    let edited = second
        .iter()
        .find(|m| m.body["review"]["review_id"] == old.as_str())
        .expect("edit sent");
    assert_eq!(edited.body["review"]["comment"], "Edited text");
    assert_eq!(edited.body["review"]["rating"], 1);
    let totals: (u64, u64) = report.sources.iter().fold((0, 0), |acc, s| {
        (acc.0 + s.totals().new, acc.1 + s.totals().edited)
    });
    assert_eq!(totals, (2, 1));

    // Every location has a high-water mark now: a quiet pass reads each
    // account's three by one batchGetReviews call, and lists none.
    let before: Vec<u64> = locations.iter().map(|l| google.list_requests(l)).collect();
    let batches_before = google.batch_requests();
    let count_before = env.sb.travtus().message_requests();
    let report = app.sync(&[], WAIT, &cancel).await.expect("pass 3");
    assert!(report.all_delivered());
    assert_eq!(
        env.sb.travtus().message_requests(),
        count_before,
        "a quiet pass sends nothing"
    );
    for (l, b) in locations.iter().zip(before) {
        assert_eq!(google.list_requests(l) - b, 0, "no list request for {l}");
        assert!(google.batch_requests_naming(l) >= 1, "{l} read by batch");
    }
    assert_eq!(
        google.batch_requests() - batches_before,
        google.accounts().len() as u64,
        "one batch call per account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_tokens_on_both_sides_never_fail_a_delivery() {
    let env = spawn_env(seed(50)).await;
    env.sb.travtus().set_token_lifetime(Duration::from_secs(1));
    env.sb.google().set_token_lifetime(Duration::from_secs(1));
    // Make the pass long enough for many token lifetimes: every answer takes 15 ms.
    for endpoint in [Endpoint::TravtusMessages, Endpoint::GoogleList] {
        env.sb.faults().set_rates(
            endpoint,
            FaultRates {
                slow: 1.0,
                slow_by: Duration::from_millis(15),
                ..FaultRates::default()
            },
        );
    }
    let app = env.app().await;
    let report = app
        .sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync");

    let seeded = env.google_review_count();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(env.sb.travtus().message_count(), seeded);
    let rows = env.rows();
    assert!(rows.iter().all(|r| r.status == Status::Delivered));
    let tokens = env.sb.travtus().token_requests();
    assert!(tokens >= 2, "the pass outlived a token: {tokens} fetched");
    assert!(
        tokens * 10 < seeded as u64,
        "{tokens} token fetches for {seeded} reviews"
    );
    assert!(env.sb.google().token_requests() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_are_retried_until_everything_is_delivered() {
    let env = spawn_env(seed(20)).await;
    let faults = env.sb.faults();
    faults.push(Endpoint::TravtusMessages, Fault::Status(500), 3);
    faults.push(
        Endpoint::TravtusMessages,
        Fault::TooManyRequests {
            retry_after: Some(Duration::from_secs(1)),
        },
        2,
    );
    faults.push(Endpoint::TravtusMessages, Fault::Drop, 3);
    faults.push(Endpoint::TravtusMessages, Fault::Status(503), 2);
    faults.push(Endpoint::TravtusToken, Fault::Status(500), 1);
    faults.push(Endpoint::GoogleList, Fault::Status(500), 2);
    faults.push(Endpoint::GoogleList, Fault::Drop, 1);
    faults.push(
        Endpoint::GoogleToken,
        Fault::TooManyRequests { retry_after: None },
        1,
    );

    let app = env.app().await;
    let report = app
        .sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync");
    assert!(report.all_delivered(), "{report:?}");
    let seeded = env.google_review_count();
    let messages = env.sb.travtus().messages();
    let ids: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m.body["review"]["review_id"].as_str())
        .collect();
    assert_eq!(ids.len(), seeded, "every review arrived");
    assert_eq!(
        faults.pending(Endpoint::TravtusMessages),
        0,
        "every scripted fault was hit"
    );

    // The ledger kept every failed attempt, with its error type.
    let rows = env.rows();
    let attempts: u64 = rows.iter().map(|r| r.attempts).sum();
    assert!(
        attempts >= seeded as u64 + 10,
        "{attempts} attempts recorded"
    );

    // Retry-After respected: a review that met a 429 was not sent again
    // within the second the API asked for.
    let log = env.sb.travtus().request_log();
    let posts: Vec<_> = log.iter().filter(|e| e.path.contains("messages")).collect();
    let mut checked = 0;
    for (i, e) in posts.iter().enumerate() {
        if e.status != 429 {
            continue;
        }
        let next_same = posts[i + 1..]
            .iter()
            .find(|n| n.idempotency_key == e.idempotency_key)
            .expect("the review was retried");
        let gap = next_same.at - e.at;
        // The log records when answers were decided; allow the few ms
        // between our send and the emulator's answer.
        assert!(
            gap >= chrono::Duration::milliseconds(950),
            "retried {gap} after a 429 with Retry-After: 1"
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "both 429s seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_platform_record_is_quarantined_and_the_pass_goes_on() {
    let env = spawn_env(seed(5)).await;
    let location = env.sb.google().locations()[0].clone();
    env.sb.google().insert_raw_review(
        &location,
        serde_json::json!({"reviewId": "bad-1", "starRating": "SEVEN", "createTime": "2026-01-01T00:00:00Z", "updateTime": "2026-01-01T00:00:00Z"}),
    );
    env.sb.google().insert_raw_review(
        &location,
        serde_json::json!({"reviewId": "bad-2", "starRating": "FOUR", "createTime": "yesterday", "updateTime": "2026-01-01T00:00:01Z"}),
    );
    let app = env.app().await;
    app.sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync");
    let stats = app.ledger.run(|l| l.stats()).await.expect("stats");
    assert_eq!(stats.quarantined, 2);
    assert_eq!(
        env.sb.travtus().message_count(),
        env.google_review_count() - 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_stops_only_its_source() {
    let env = spawn_env(seed(5)).await;
    let base = env.sb.base_url();
    std::fs::write(env.dir.path().join("revoked_refresh"), "no-longer-valid").expect("write");
    let mut text = std::fs::read_to_string(&env.config_path).expect("config");
    text.push_str(&format!(
        r#"
[[source]]
name = "revoked-google"
kind = "google_business_profile"
schedule = "0 * * * * *"
client_id = "{id}"
client_secret = {{ file = "google_secret" }}
refresh_token = {{ file = "revoked_refresh" }}
api_base_url = "{base}/google"
token_url = "{base}/google/token"

  [[source.location]]
  id = "{loc}"
  group_external_ref = "portfolio-1"
"#,
        id = sandbox::GOOGLE_CLIENT_ID,
        loc = env.sb.google().locations()[0],
    ));
    std::fs::write(&env.config_path, text).expect("write");
    let app = env.app().await;
    let report = app
        .sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync");
    let revoked = report
        .sources
        .iter()
        .find(|s| s.source == "revoked-google")
        .expect("report");
    assert!(
        revoked
            .needs_consent
            .as_deref()
            .is_some_and(|r| r.contains("invalid_grant")),
        "{revoked:?}"
    );
    let good = report
        .sources
        .iter()
        .find(|s| s.source == "acme-google")
        .expect("report");
    assert_eq!(good.failed(), 0);
    assert_eq!(env.sb.travtus().message_count(), env.google_review_count());
    assert!(
        !report.all_delivered(),
        "a stopped source makes the pass incomplete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_worker_picks_up_reviews_as_polls_record_them() {
    let env = spawn_env(seed(10)).await;
    let app = env.app().await;
    let cancel = CancellationToken::new();
    let deliverer = std::sync::Arc::clone(&app.deliverer);
    let worker = {
        let cancel = cancel.clone();
        tokio::spawn(async move { deliverer.run(&cancel).await })
    };
    app.poll(&app.pollers).await;
    let expected = env.google_review_count();
    let travtus = env.sb.travtus().clone();
    wait_until("the worker to deliver everything", WAIT, || {
        travtus.message_count() >= expected
    })
    .await;
    cancel.cancel();
    worker.await.expect("worker stops cleanly");
    assert_eq!(env.sb.travtus().message_count(), expected);
}
