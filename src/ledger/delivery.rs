//! The outbox side: claiming due reviews and recording attempt outcomes.

use super::{AttemptRecord, DueReview, Ledger, LedgerError};
use chrono::{DateTime, Utc};

impl Ledger {
    /// Claims up to `limit` pending reviews with `next_attempt_at <= now`,
    /// oldest due first, and in the same transaction pushes their
    /// `next_attempt_at` to `lease_until` so no other claim takes them while
    /// they are in flight (and a crash makes them due again after the lease).
    pub fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueReview>, LedgerError> {
        let _ = (now, lease_until, limit);
        todo!("ledger helper")
    }

    /// Appends every attempt to `attempts` and applies each outcome to its
    /// review row, all in one transaction (group commit). A row is only
    /// changed if its `content_hash` still equals the attempt's; `attempts`
    /// (the column) is incremented either way. Delivered: status `delivered`,
    /// `delivered_at` = attempted_at, `request_id`, `last_error` NULL,
    /// `retry_count` 0, `next_attempt_at` NULL. Retry: stays `pending`,
    /// `next_attempt_at`, `retry_count` + 1, `last_error`. Held/Rejected:
    /// that status, `last_error` = "error_type: message", `next_attempt_at` NULL.
    pub fn record_attempts(&mut self, attempts: &[AttemptRecord]) -> Result<(), LedgerError> {
        let _ = attempts;
        todo!("ledger helper")
    }

    /// The earliest `next_attempt_at` among pending rows (what the worker sleeps until).
    pub fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        todo!("ledger helper")
    }

    /// Number of pending rows.
    pub fn pending_count(&self) -> Result<u64, LedgerError> {
        todo!("ledger helper")
    }

    /// Makes every pending row due at `at` (used to resume after a pause or
    /// when `sync` should not wait out a long backoff). Returns rows changed.
    pub fn make_pending_due(&mut self, at: DateTime<Utc>) -> Result<u64, LedgerError> {
        let _ = at;
        todo!("ledger helper")
    }
}
