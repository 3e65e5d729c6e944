//! The async face of the ledger (`handle.rs`).

use super::*;

// ---------------------------------------------------------------- handle

#[tokio::test]
async fn the_handle_runs_ledger_work_off_the_async_threads() {
    let (_dir, ledger) = fresh();
    let handle = LedgerHandle::new(ledger);
    let counts = handle
        .run(|l| l.record_page(&page(vec![review("r1", "h1")]), t0()))
        .await
        .unwrap();
    assert_eq!(counts.new, 1);
    assert_eq!(handle.run(|l| l.pending_count()).await.unwrap(), 1);
}
