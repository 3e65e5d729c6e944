//! The pipeline end to end against the sandbox: a real ledger file, real
//! HTTP over loopback, stopped and drained at awkward moments.

use super::*;
use crate::app::App;
use crate::ledger::Ledger;
use chrono::Utc;
use sandbox::{Endpoint, FaultRates, GoogleSeed, Sandbox, SandboxOptions};
use std::sync::Arc;

/// An app on `sb` (every location mapped) with this Travtus concurrency.
async fn app(sb: &Sandbox, dir: &std::path::Path, concurrency: usize) -> App {
    let base = sb.base_url();
    let mut text = format!(
        r#"[travtus]
base_url = "{base}/travtus"
token_url = "{base}/travtus/oauth2/token"
client_id = "{travtus_id}"
client_secret = "{travtus_secret}"
timeout = "5s"
concurrency = {concurrency}

[ledger]
path = "ledger.db"

[[source]]
name = "acme-google"
kind = "google_business_profile"
schedule = "0 0 0 1 1 *"
requests_per_minute = 100000
client_id = "{google_id}"
client_secret = "{google_secret}"
refresh_token = "{refresh}"
api_base_url = "{base}/google"
token_url = "{base}/google/token"
"#,
        travtus_id = sandbox::TRAVTUS_CLIENT_ID,
        travtus_secret = sandbox::TRAVTUS_CLIENT_SECRET,
        google_id = sandbox::GOOGLE_CLIENT_ID,
        google_secret = sandbox::GOOGLE_CLIENT_SECRET,
        refresh = sandbox::GOOGLE_REFRESH_TOKEN,
    );
    for location in sb.google().locations() {
        text.push_str(&format!(
            "\n[[source.location]]\nid = \"{location}\"\ngroup_external_ref = \"portfolio-1\"\n"
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    App::open(crate::config::load(&path).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_records_every_answer_and_hands_back_unsent_claims() {
    let sb = Sandbox::start(SandboxOptions {
        google: GoogleSeed {
            accounts: 1,
            locations_per_account: 2,
            reviews_per_location: 100,
        },
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    // Slow answers: the stop comes with requests in flight and claims queued.
    sb.faults().set_rates(
        Endpoint::TravtusMessages,
        FaultRates {
            slow: 1.0,
            slow_by: Duration::from_millis(40),
            ..FaultRates::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let app = app(&sb, dir.path(), 4).await;
    app.poll(&app.pollers).await;

    let cancel = CancellationToken::new();
    let worker = {
        let (deliverer, cancel) = (Arc::clone(&app.deliverer), cancel.clone());
        tokio::spawn(async move { deliverer.run(&cancel).await })
    };
    let travtus = sb.travtus().clone();
    while travtus.message_count() < 12 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("stops in time")
        .expect("worker task");

    let stopped_at = Utc::now();
    let ledger = Ledger::open_readonly(&dir.path().join("ledger.db")).unwrap();
    let stats = ledger.stats().unwrap();
    let count = |status: &str| {
        stats
            .by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    };
    let sent = travtus.message_count() as u64;
    assert!(sent < 200, "stopped early ({sent} sent)");
    assert_eq!(count("delivered"), sent, "every answered POST is recorded");
    assert_eq!(count("pending"), 200 - sent);
    // No claim outlives the worker: what it did not send is due now. (An
    // auditor's query, through a plain connection.)
    let leased: i64 = rusqlite::Connection::open(dir.path().join("ledger.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND next_attempt_at > ?1",
            [crate::ledger::format_time(stopped_at)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leased, 0, "claims left behind by the stopped worker");
}

/// Regression (found by `chaos::`): a claim that landed after the stop
/// began was queued, and the worker, with nothing left to wait for,
/// panicked in `select!` instead of handing it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_landing_after_the_stop_is_handed_back() {
    let sb = Sandbox::start(SandboxOptions {
        google: GoogleSeed {
            accounts: 1,
            locations_per_account: 1,
            reviews_per_location: 50,
        },
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = app(&sb, dir.path(), 2).await;
    app.poll(&app.pollers).await;

    // Hold the ledger so the worker's first claim is still running when
    // the stop comes.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let ledger = app.ledger.clone();
    let hold = tokio::spawn(async move {
        ledger
            .run(move |_| {
                held_tx.send(()).ok();
                std::thread::sleep(Duration::from_millis(400));
                Ok(())
            })
            .await
    });
    tokio::task::spawn_blocking(move || held_rx.recv())
        .await
        .unwrap()
        .unwrap();
    let cancel = CancellationToken::new();
    let worker = {
        let (deliverer, cancel) = (Arc::clone(&app.deliverer), cancel.clone());
        tokio::spawn(async move { deliverer.run(&cancel).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("stops in time")
        .expect("the worker does not panic");
    hold.await.unwrap().unwrap();

    assert_eq!(
        sb.travtus().message_count(),
        0,
        "nothing sent after the stop"
    );
    let leased: i64 = rusqlite::Connection::open(dir.path().join("ledger.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND next_attempt_at > ?1",
            [crate::ledger::format_time(Utc::now())],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leased, 0, "the late claim was handed back");
}

/// Regression: a drain (`sync`) with claims queued when a 429 asked for
/// a pause longer than its deadline waited the pause out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_at_a_pause_past_its_deadline_and_hands_back_its_claims() {
    let sb = Sandbox::start(SandboxOptions {
        google: GoogleSeed {
            accounts: 1,
            locations_per_account: 1,
            reviews_per_location: 60,
        },
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    sb.faults().push(
        Endpoint::TravtusMessages,
        sandbox::Fault::TooManyRequests {
            retry_after: Some(Duration::from_secs(120)),
        },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = app(&sb, dir.path(), 1).await;
    app.poll(&app.pollers).await;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(2);
    app.deliverer
        .drain(deadline, &CancellationToken::new())
        .await
        .expect("drain");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the drain waited out the pause: {:?}",
        started.elapsed()
    );
    assert!(app.deliverer.paused_until().is_some());
    let ledger = Ledger::open_readonly(&dir.path().join("ledger.db")).unwrap();
    let pending = ledger.pending_count().unwrap();
    assert_eq!(
        pending, 60,
        "the 429 was the first answer: nothing delivered"
    );
    let leased: i64 = rusqlite::Connection::open(dir.path().join("ledger.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND next_attempt_at > ?1
               AND retry_count = 0",
            [crate::ledger::format_time(Utc::now())],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leased, 0, "claims left behind by the drain");
}
