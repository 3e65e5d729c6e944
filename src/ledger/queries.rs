//! What auditors and the `ledger` commands ask: stats, lists, one review's
//! history, exports, and putting reviews back to `pending`.

use super::{AttemptRow, Ledger, LedgerError, ReviewFilter, ReviewRow, Stats};
use crate::domain::GroupRef;
use chrono::{DateTime, Utc};

impl Ledger {
    /// Counts by status, platform, source and group; oldest pending.
    pub fn stats(&self) -> Result<Stats, LedgerError> {
        todo!("ledger helper")
    }

    /// Calls `f` for every review row matching `filter`, ordered by
    /// `first_seen_at` then platform and review id, streaming (constant memory).
    pub fn for_each_review(
        &self,
        filter: &ReviewFilter,
        f: &mut dyn FnMut(&ReviewRow) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let _ = (filter, f);
        todo!("ledger helper")
    }

    /// One review and its attempts, oldest first.
    pub fn show(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<(ReviewRow, Vec<AttemptRow>)>, LedgerError> {
        let _ = (platform, review_id);
        todo!("ledger helper")
    }

    /// Puts the rows matching `filter` (whose statuses must be held and/or
    /// rejected) back to `pending`, due at `now`, `retry_count` 0. For each
    /// row, `regroup(source_name, location_id)` gives the location's current
    /// group: the payload's group key is replaced with it (and the
    /// `group_id`/`group_external_ref` columns updated). A row for which it
    /// returns `None` is left as it is and counted as skipped.
    /// Returns (requeued, skipped).
    pub fn retry(
        &mut self,
        filter: &ReviewFilter,
        now: DateTime<Utc>,
        regroup: &dyn Fn(&str, &str) -> Option<GroupRef>,
    ) -> Result<(u64, u64), LedgerError> {
        let _ = (filter, now, regroup);
        todo!("ledger helper")
    }

    /// Every attempt row, for `ledger export` of attempts and tests.
    pub fn attempt_count(&self) -> Result<u64, LedgerError> {
        todo!("ledger helper")
    }
}
