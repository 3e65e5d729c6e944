//! Per-location polling state and the poll log.

use super::{Ledger, LedgerError, PollLog, PollState};

impl Ledger {
    /// How far a location has been read (default when never polled).
    pub fn poll_state(&self, source: &str, location: &str) -> Result<PollState, LedgerError> {
        let _ = (source, location);
        todo!("ledger helper")
    }

    /// Appends the poll log row and, when `state` is `Some`, stores the new
    /// polling state, in one transaction.
    pub fn finish_poll(&mut self, log: &PollLog, state: Option<&PollState>) -> Result<(), LedgerError> {
        let _ = (log, state);
        todo!("ledger helper")
    }

    /// Reviews the ledger holds for a location and are not marked removed.
    pub fn location_review_count(&self, source: &str, location: &str) -> Result<u64, LedgerError> {
        let _ = (source, location);
        todo!("ledger helper")
    }
}
