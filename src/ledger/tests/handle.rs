//! The async face of the ledger (`handle.rs`): work runs on tokio's
//! blocking pool. For PostgreSQL that is also where the synchronous client
//! may drive its own small runtime; these tests run it there, inside a
//! multi-threaded runtime like the daemon's, and drop the last handle on an
//! async thread, as the daemon does when it stops.

use super::*;

async fn runs_ledger_work_off_the_async_threads(kind: Kind) {
    let Some((ledger, _db)) = tokio::task::spawn_blocking(move || match kind {
        Kind::Sqlite => Some(Probe::fresh(Kind::Sqlite).expect("a ledger")),
        Kind::Postgres => Probe::postgres("the_handle_runs_ledger_work_off_the_async_threads"),
    })
    .await
    .unwrap() else {
        return;
    };
    let handle = LedgerHandle::new(ledger);
    let counts = handle
        .run(|l| l.record_page(&page(vec![review("r1", "h1")]), t0()))
        .await
        .unwrap();
    assert_eq!(counts.new, 1);
    assert_eq!(handle.run(|l| l.pending_count()).await.unwrap(), 1);
    // The last handle goes on an async thread.
    drop(handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_runs_ledger_work_off_the_async_threads_sqlite() {
    runs_ledger_work_off_the_async_threads(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_runs_ledger_work_off_the_async_threads_postgres() {
    runs_ledger_work_off_the_async_threads(Kind::Postgres).await;
}
