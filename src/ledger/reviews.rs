//! Recording fetched reviews: insert new ones, queue edits again, skip
//! repeats, quarantine bad records; one transaction per page.

use super::{Ledger, LedgerError, PageCounts, PageRecord};
use chrono::{DateTime, Utc};

impl Ledger {
    /// Records one page in one transaction and returns what changed.
    ///
    /// For each review: unknown (platform, review_id) -> insert `pending`
    /// (or `held` with `hold_reason` when `group` is `None`), `first_seen_at`
    /// = `now`, `next_attempt_at` = `now`; known with the same `content_hash`
    /// -> unchanged (only `removed_at` cleared if set); known with another
    /// hash -> edited: new payload/hash/source_updated_at, status `pending`
    /// (or `held` if unmapped), `next_attempt_at` = `now`, `retry_count` = 0,
    /// `last_error` cleared, `delivered_at`/`request_id` kept (they describe
    /// the last delivered version). Quarantined records are inserted with
    /// `now`; an identical (source, location, raw) one is not stored twice.
    pub fn record_page(
        &mut self,
        page: &PageRecord,
        now: DateTime<Utc>,
    ) -> Result<PageCounts, LedgerError> {
        let _ = (page, now);
        todo!("ledger helper")
    }
}
