//! The async face of the ledger: its work runs on tokio's blocking pool,
//! never on an async worker thread, one call at a time (SQLite has one
//! writer; a PostgreSQL ledger has one connection per process).
//!
//! It also keeps what the daemon's health reports about storage: whether the
//! ledger's files are still the ones it opened (checked before every call;
//! while they are not, no call runs at all), and the last storage failure
//! of any call, until a later write commits.

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
    // What went wrong with the storage, for `/healthz`; updated by `run`.
    faults: Arc<Mutex<Faults>>,
    // Other daemons may share the ledger (PostgreSQL): see `crate::cluster`.
    shared: bool,
}

#[derive(Debug, Default)]
struct Faults {
    // The files were deleted or replaced: every call is refused until the
    // same files are back at the path (a restart would open whatever is
    // there, which is why the daemon does not exit on it).
    moved: Option<String>,
    // The last storage failure (disk full, read-only, I/O) of any call,
    // cleared when a write commits again (a database that could not be
    // reached: when any call succeeds again), with its error type.
    write: Option<(String, &'static str)>,
}

impl LedgerHandle {
    /// Wraps an open ledger.
    pub fn new(ledger: Ledger) -> LedgerHandle {
        let shared = ledger.shared();
        LedgerHandle {
            shared,
            inner: Arc::new(Mutex::new(ledger)),
            due: Arc::new(Notify::new()),
            faults: Arc::default(),
        }
    }

    /// Whether other daemons may share the ledger ([`Ledger::shared`]).
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Why the ledger takes no work: its files were deleted or replaced
    /// under the process (as of the last call).
    pub fn stopped(&self) -> Option<String> {
        self.lock_faults().moved.clone()
    }

    /// The storage problem `/healthz` reports, as of the last call: files
    /// moved, or a storage failure not followed by a committed write.
    pub fn storage_fault(&self) -> Option<String> {
        let faults = self.lock_faults();
        faults
            .moved
            .clone()
            .or_else(|| faults.write.as_ref().map(|(e, _)| e.clone()))
    }

    /// Checks now that the ledger's files are still the ones it opened
    /// (`Err(LedgerError::Moved)` otherwise), recording the answer.
    pub async fn verify(&self) -> Result<(), LedgerError> {
        self.run(|_| Ok(())).await
    }

    fn lock_faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        // Two plain fields, valid even after a panic elsewhere.
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
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
        let faults = Arc::clone(&self.faults);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the ledger consistent (the
            // transaction rolls back on drop), so a poisoned lock is safe to reuse.
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            let identity = guard.check_identity();
            note_identity(&faults, identity.as_ref().err(), &guard);
            identity?;
            let changes = guard.writes();
            let result = f(&mut guard);
            let mut faults = faults.lock().unwrap_or_else(|p| p.into_inner());
            match &result {
                Ok(_) if guard.writes() != changes => faults.write = None,
                Ok(_)
                    if faults
                        .write
                        .as_ref()
                        .is_some_and(|(_, t)| *t == "unreachable") =>
                {
                    faults.write = None;
                }
                Err(e) if e.is_storage_fault() => {
                    faults.write = Some((e.to_string(), e.error_type()));
                }
                _ => {}
            }
            result
        })
        .await
        .map_err(|e| LedgerError::Task(e.to_string()))?
    }
}

/// Records the identity check's answer, logging when it changes (once,
/// not on every refused call).
///
/// The first time, it also saves a copy of the ledger as this connection
/// still sees it (the deleted file and its WAL), next to the path.
fn note_identity(faults: &Mutex<Faults>, moved: Option<&LedgerError>, ledger: &Ledger) {
    let mut faults = faults.lock().unwrap_or_else(|p| p.into_inner());
    match (moved, faults.moved.is_some()) {
        (Some(e), false) => {
            match ledger.rescue_copy() {
                Ok(copy) => tracing::error!(
                    error = %e,
                    rescued = %copy.display(),
                    "ledger file deleted or replaced under the daemon: no more polls or \
                     deliveries (nothing is written into a file nobody will read). A copy \
                     of the ledger as the daemon had it is saved as RESCUED: stop the \
                     daemon, move that copy to the ledger's path, start it again"
                ),
                Err(copy_error) => tracing::error!(
                    error = %e,
                    copy_error = %copy_error,
                    "ledger file deleted or replaced under the daemon: no more polls or \
                     deliveries (nothing is written into a file nobody will read). No copy \
                     could be saved: before stopping the daemon, copy the file from the \
                     /proc path given (a deleted -wal too, as PATH-wal), then stop it and \
                     move the copy to the ledger's path"
                ),
            }
            faults.moved = Some(e.to_string());
        }
        (None, true) => {
            tracing::warn!("the ledger's files are back at their paths: work resumes");
            faults.moved = None;
        }
        _ => {}
    }
}
