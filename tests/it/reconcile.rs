//! Reconciliation end to end: reviews deleted on the platform are marked
//! removed by a full pass (never by an incremental one), a review that comes
//! back is un-marked, nothing unchanged is sent again, a failed page leaves
//! its location unmarked, and the daemon runs the pass on its own schedule.

use crate::discovery::write_source_config;
use crate::helpers::{Sql, TestEnv, seed, spawn_env, text, wait_until};
use review_sync::app::SyncReport;
use review_sync::ledger::ReviewRow;
use review_sync::poll::PassKind;
use sandbox::{Endpoint, Fault, GoogleSeed};
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

/// The explicit mapping the helpers write: location `i` to `portfolio-{i+1}`.
fn default_mapping(env: &TestEnv) -> Vec<(String, String)> {
    env.sb
        .google()
        .locations()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                l.clone(),
                format!("group_external_ref = \"portfolio-{}\"", i % 10 + 1),
            )
        })
        .collect()
}

/// Review ids whose `removed_at` is set.
fn removed(rows: &[ReviewRow]) -> HashSet<String> {
    rows.iter()
        .filter(|r| r.removed_at.is_some())
        .map(|r| r.review_id.clone())
        .collect()
}

/// Deletes the review at `index` (in the default order) of `location` and
/// returns its JSON as served, to bring it back later.
fn delete_review(env: &TestEnv, location: &str, index: usize) -> serde_json::Value {
    let review = env.sb.google().reviews(location)[index].clone();
    let id = review["reviewId"].as_str().expect("id");
    assert!(env.sb.google().delete_review(location, id));
    review
}

fn id_of(review: &serde_json::Value) -> String {
    review["reviewId"].as_str().expect("id").to_owned()
}

async fn reconcile(app: &review_sync::app::App) -> SyncReport {
    app.sync_pass(&[], PassKind::Reconcile, WAIT, &CancellationToken::new())
        .await
        .expect("reconcile")
}

/// (kind, removed, error) of every poll-log row, in order.
fn poll_log(env: &TestEnv) -> Vec<(String, i64, Option<String>)> {
    env.ledger_sql("SELECT kind, removed, error FROM polls ORDER BY id")
        .into_iter()
        .map(|r| match r.as_slice() {
            [kind, Sql::Int(removed), error] => {
                (kind.text().expect("kind"), *removed, error.text())
            }
            other => panic!("a poll row: {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_reviews_are_marked_removed_by_reconciliation_only_and_come_back_without_a_resend()
{
    let env = spawn_env(seed(5)).await;
    let app = env.app().await;
    let cancel = CancellationToken::new();
    assert!(
        app.sync(&[], WAIT, &cancel)
            .await
            .expect("pass 1")
            .all_delivered()
    );
    let delivered = env.sb.travtus().message_count();
    assert_eq!(delivered, 30);

    let locations = env.sb.google().locations();
    // The newest review of the first location, an old one, and one elsewhere.
    let gone = [
        delete_review(&env, &locations[0], 0),
        delete_review(&env, &locations[0], 2),
        delete_review(&env, &locations[3], 4),
    ];
    let gone_ids: HashSet<String> = gone.iter().map(id_of).collect();
    let high_water_before = env.with_ledger(|ledger| {
        ledger
            .poll_state("acme-google", &locations[0])
            .expect("state")
            .high_water
    });

    // An incremental pass never marks anything removed.
    let report = app.sync(&[], WAIT, &cancel).await.expect("incremental");
    assert!(report.sources.iter().all(|s| !s.reconcile));
    assert_eq!(report.sources[0].removed(), 0);
    assert!(removed(&env.rows()).is_empty());

    // A reconciliation pass does, and sends nothing.
    let report = reconcile(&app).await;
    let source = &report.sources[0];
    assert!(source.reconcile);
    assert_eq!((source.removed(), source.returned()), (3, 0), "{report:?}");
    assert_eq!(source.failed(), 0);
    assert_eq!(source.totals().new + source.totals().edited, 0);
    assert_eq!(removed(&env.rows()), gone_ids);
    assert_eq!(
        env.sb.travtus().message_count(),
        delivered,
        "nothing resent"
    );
    assert!(report.all_delivered(), "{report:?}");
    // The high-water mark does not go back although the newest review is gone.
    let (high_water, removed_count) = env.with_ledger(|ledger| {
        (
            ledger
                .poll_state("acme-google", &locations[0])
                .expect("state")
                .high_water,
            ledger.stats().expect("stats").removed,
        )
    });
    assert_eq!(high_water, high_water_before);
    assert_eq!(removed_count, 3);
    // Every location got a reconcile row; the removals are where they happened.
    let log = poll_log(&env);
    let reconciled: Vec<_> = log
        .iter()
        .filter(|(kind, ..)| kind == "reconcile")
        .collect();
    assert_eq!(reconciled.len(), 6);
    assert_eq!(reconciled.iter().map(|(_, n, _)| n).sum::<i64>(), 3);
    assert!(
        log.iter()
            .filter(|(kind, ..)| kind == "incremental")
            .all(|(_, n, _)| *n == 0)
    );

    // `ledger stats` counts them; a second reconciliation changes nothing.
    let out = env.bin(&["ledger", "stats"]).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("removed") && l.contains('3')),
        "{stdout}"
    );
    let report = reconcile(&app).await;
    assert_eq!(
        (report.sources[0].removed(), report.sources[0].returned()),
        (0, 0)
    );

    // A review that comes back (the platform restored it) is un-marked,
    // and not sent again: its content did not change.
    assert!(
        env.sb
            .google()
            .insert_raw_review(&locations[3], gone[2].clone())
    );
    let report = reconcile(&app).await;
    assert_eq!(
        (report.sources[0].removed(), report.sources[0].returned()),
        (0, 1)
    );
    let still_gone: HashSet<String> = gone[..2].iter().map(id_of).collect();
    assert_eq!(removed(&env.rows()), still_gone);
    assert_eq!(
        env.sb.travtus().message_count(),
        delivered,
        "nothing resent"
    );

    // `sync --reconcile` on the command line prints the counts.
    assert!(env.sb.google().delete_review(
        &locations[5],
        &id_of(&env.sb.google().reviews(&locations[5])[1])
    ));
    let out = env.bin(&["sync", "--reconcile"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let header = stdout.lines().next().expect("header");
    assert!(header.ends_with("removed returned"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("acme-google"))
        .expect("source line");
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns[columns.len() - 2..], ["1", "0"], "{stdout}");
    assert_eq!(removed(&env.rows()).len(), 3);
    assert_eq!(env.sb.travtus().message_count(), delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_page_leaves_its_location_unmarked_until_a_complete_pass() {
    let env = spawn_env(GoogleSeed {
        accounts: 1,
        locations_per_account: 1,
        reviews_per_location: 120,
    })
    .await;
    let app = env.app().await;
    assert!(
        app.sync(&[], WAIT, &CancellationToken::new())
            .await
            .expect("pass 1")
            .all_delivered()
    );
    let location = env.sb.google().locations()[0].clone();
    let gone = id_of(&delete_review(&env, &location, 100));

    // Page 1 of the full read answers; page 2 fails past every retry.
    let faults = env.sb.faults();
    faults.push(Endpoint::GoogleList, Fault::Slow(Duration::ZERO), 1);
    faults.push(Endpoint::GoogleList, Fault::Status(500), 5);
    let report = reconcile(&app).await;
    let source = &report.sources[0];
    assert_eq!(source.failed(), 1, "{report:?}");
    assert_eq!(source.removed(), 0);
    assert_eq!(
        faults.pending(Endpoint::GoogleList),
        0,
        "the faults were used"
    );
    assert!(
        removed(&env.rows()).is_empty(),
        "nothing marked after a failed read"
    );
    let last = poll_log(&env).pop().expect("a poll row");
    assert_eq!(last.0, "reconcile");
    assert_eq!(last.1, 0);
    assert!(last.2.is_some_and(|e| e.contains("500")));

    // The next complete pass marks it.
    let report = reconcile(&app).await;
    assert_eq!(report.sources[0].removed(), 1, "{report:?}");
    assert_eq!(removed(&env.rows()), HashSet::from([gone]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_that_cannot_reconcile_gets_an_incremental_pass() {
    let env = spawn_env(seed(2)).await;
    let import = env.dir.path().join("import.jsonl");
    std::fs::write(
        &import,
        r#"{"review_id":"f-1","source":"yelp","rating":4,"comment":"Fine","created_datetime":"2025-01-01T00:00:00Z"}"#,
    )
    .expect("write import");
    write_source_config(&env, "", &default_mapping(&env));
    let mut text = std::fs::read_to_string(&env.config_path).expect("config");
    text.push_str(&format!(
        "\n[[source]]\nname = \"imports\"\nkind = \"file\"\nschedule = \"0 0 * * * *\"\n  [[source.location]]\n  id = \"{}\"\n  group_external_ref = \"portfolio-1\"\n",
        import.display()
    ));
    std::fs::write(&env.config_path, text).expect("config");
    let app = env.app().await;
    let report = reconcile(&app).await;
    let kinds: Vec<(&str, bool)> = report
        .sources
        .iter()
        .map(|s| (s.source.as_str(), s.reconcile))
        .collect();
    assert_eq!(kinds, [("acme-google", true), ("imports", false)]);
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(env.sb.travtus().message_count(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_reconciliation_on_its_own_schedule() {
    let env = spawn_env(seed(3)).await;
    // Incremental passes every second, a reconciliation every two: they
    // share the source's lock, so they never run at once.
    write_source_config(
        &env,
        "reconcile_schedule = \"*/2 * * * * *\"\n",
        &default_mapping(&env),
    );
    let config = review_sync::config::load(&env.config_path).expect("config");
    assert_eq!(
        config.sources[0]
            .reconcile_schedule
            .as_ref()
            .map(|s| s.as_str()),
        Some("*/2 * * * * *")
    );
    let (control, rx) = tokio::sync::mpsc::channel(1);
    let daemon = tokio::spawn(review_sync::daemon::run(
        env.config_path.clone(),
        config,
        rx,
    ));
    let travtus = env.sb.travtus().clone();
    wait_until("every review delivered", WAIT, || {
        travtus.message_count() >= 18
    })
    .await;
    let location = env.sb.google().locations()[1].clone();
    let gone = id_of(&delete_review(&env, &location, 1));
    wait_until("the deleted review marked removed", WAIT, || {
        env.rows()
            .iter()
            .any(|r| r.review_id == gone && r.removed_at.is_some())
    })
    .await;
    // The pass writes its poll-log row after it marked the review: await
    // that too before stopping the daemon (a stop in between would cut the
    // pass short of its row).
    wait_until("the reconciliation's poll-log row", WAIT, || {
        poll_log(&env)
            .iter()
            .any(|(kind, removed, _)| kind == "reconcile" && *removed == 1)
    })
    .await;
    control
        .send(review_sync::daemon::Control::Stop)
        .await
        .expect("daemon listening");
    daemon.await.expect("joined").expect("clean stop");
    assert_eq!(env.sb.travtus().message_count(), 18, "nothing resent");
    assert!(
        poll_log(&env)
            .iter()
            .any(|(kind, removed, _)| kind == "reconcile" && *removed == 1)
    );
}
