//! The async face of the ledger: SQLite work runs on tokio's blocking pool,
//! never on an async worker thread, one call at a time (SQLite has one writer).

use super::{Ledger, LedgerError};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A cheap, cloneable handle to the one read-write [`Ledger`] of the process.
#[derive(Clone)]
pub struct LedgerHandle {
    // A std Mutex (not tokio's): it is only ever locked inside
    // `spawn_blocking`, where blocking is the point, and it serialises
    // writers the way SQLite would anyway.
    inner: Arc<Mutex<Ledger>>,
    // Rows may have become due (a poll recorded a page with new or edited
    // reviews): the delivery worker sleeps on it, so a backfill is sent
    // while it is still being read instead of after the whole pass. One
    // stored permit at most, so a burst of pages wakes the worker once.
    due: Arc<Notify>,
}

impl LedgerHandle {
    /// Wraps an open ledger.
    pub fn new(ledger: Ledger) -> LedgerHandle {
        LedgerHandle {
            inner: Arc::new(Mutex::new(ledger)),
            due: Arc::new(Notify::new()),
        }
    }

    /// Says that reviews may be due now (after recording new or edited ones).
    pub fn notify_due(&self) {
        self.due.notify_one();
    }

    /// Waits for the next [`LedgerHandle::notify_due`] (or returns at once
    /// if one came since the last wait).
    pub async fn due_notified(&self) {
        self.due.notified().await;
    }

    /// Runs `f` with the ledger on a blocking thread.
    pub async fn run<R, F>(&self, f: F) -> Result<R, LedgerError>
    where
        F: FnOnce(&mut Ledger) -> Result<R, LedgerError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves SQLite consistent (the
            // transaction rolls back on drop), so a poisoned lock is safe to reuse.
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| LedgerError::Task(e.to_string()))?
    }
}
