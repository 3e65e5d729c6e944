//! The async face of the ledger: SQLite work runs on tokio's blocking pool,
//! never on an async worker thread, one call at a time (SQLite has one writer).

use super::{Ledger, LedgerError};
use std::sync::{Arc, Mutex};

/// A cheap, cloneable handle to the one read-write [`Ledger`] of the process.
#[derive(Clone)]
pub struct LedgerHandle {
    // A std Mutex (not tokio's): it is only ever locked inside
    // `spawn_blocking`, where blocking is the point, and it serialises
    // writers the way SQLite would anyway.
    inner: Arc<Mutex<Ledger>>,
}

impl LedgerHandle {
    /// Wraps an open ledger.
    pub fn new(ledger: Ledger) -> LedgerHandle {
        LedgerHandle {
            inner: Arc::new(Mutex::new(ledger)),
        }
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
