//! The ledger contract as the engines see it: one trait per part of the
//! ledger, each implemented by the SQLite engine (`sqlite/`) and the
//! PostgreSQL engine (`postgres/`) in the file of the same name. [`Engine`]
//! is all of them; [`super::Ledger`] holds one and documents each method.
//!
//! Every method has the meaning `Ledger`'s method of the same name
//! documents; the one suite in `tests/` runs against both engines.

use super::{
    AttemptFilter, AttemptRecord, AttemptRow, BackupReport, Claim, CycleReport, LedgerError,
    LogFilter, PageCounts, PageRecord, PollLog, PollRow, PollState, Purge, PurgeRow, PurgedBy,
    QuarantineRow, ReleasedClaim, RequeueRow, ResendOutcome, ReviewFilter, ReviewRow, Sightings,
    Stats, Status, StatusCounts,
};
use crate::domain::GroupRef;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// A callback for each row of a walk.
pub(super) type Each<'a, T> = &'a mut dyn FnMut(&T) -> Result<(), LedgerError>;
/// Where a walk reports rows it cannot read; `None` ends the walk with the error.
pub(super) type Corrupt<'a> = Option<&'a mut dyn FnMut(LedgerError)>;
/// The location's current group, given its source and location.
pub(super) type Regroup<'a> = &'a dyn Fn(&str, &str) -> Option<GroupRef>;

/// Opening, identity, health and copies (`migrations.rs`, `backup.rs`).
pub(super) trait Storage {
    /// The file, or the database's URL without its password, as errors name it.
    fn path(&self) -> &Path;
    /// `Err(Moved)` when the storage under the ledger was swapped.
    fn check_identity(&self) -> Result<(), LedgerError>;
    /// Grows with every committed write of this connection.
    fn writes(&self) -> u64;
    fn schema_version(&self) -> Result<i64, LedgerError>;
    fn probe_writable(&mut self) -> Result<(), LedgerError>;
    fn backup_to(&self, dest: &Path, overwrite: bool) -> Result<BackupReport, LedgerError>;
    fn rescue_copy(&self) -> Result<PathBuf, LedgerError>;
    /// The SQLite engine, for tests of SQLite's own behaviour.
    #[cfg(test)]
    fn as_sqlite(&self) -> Option<&super::sqlite::Sqlite> {
        None
    }
}

/// Recording pages (`reviews.rs`).
pub(super) trait Reviews {
    fn record_page_as(
        &mut self,
        page: &PageRecord,
        now: DateTime<Utc>,
        sightings: Sightings,
    ) -> Result<PageCounts, LedgerError>;
    fn mark_removed(
        &mut self,
        source: &str,
        location: &str,
        pass_started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError>;
    fn mark_first_seen_by_push(
        &mut self,
        source: &str,
        location: &str,
        read_started: DateTime<Utc>,
        hint_at: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, LedgerError>;
}

/// The outbox (`delivery.rs`).
pub(super) trait Delivery {
    fn delivery_cycle(
        &mut self,
        attempts: &[AttemptRecord],
        released: &[ReleasedClaim],
        claim: Option<Claim>,
    ) -> Result<CycleReport, LedgerError>;
    fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, LedgerError>;
    fn pending_count(&self) -> Result<u64, LedgerError>;
    fn make_pending_due(&mut self, at: DateTime<Utc>) -> Result<u64, LedgerError>;
}

/// Auditors' questions and putting reviews back to pending (`queries.rs`).
pub(super) trait Queries {
    fn stats(&self) -> Result<Stats, LedgerError>;
    fn walk_reviews(
        &self,
        filter: &ReviewFilter,
        f: Each<'_, ReviewRow>,
        corrupt: Corrupt<'_>,
    ) -> Result<(), LedgerError>;
    fn platforms_of(&self, review_id: &str) -> Result<Vec<String>, LedgerError>;
    fn review_status(&self, platform: &str, review_id: &str)
    -> Result<Option<Status>, LedgerError>;
    fn show(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<(ReviewRow, Vec<AttemptRow>)>, LedgerError>;
    fn requeues_of(&self, platform: &str, review_id: &str) -> Result<Vec<RequeueRow>, LedgerError>;
    fn resend(
        &mut self,
        platform: &str,
        review_id: &str,
        now: DateTime<Utc>,
        regroup: Regroup<'_>,
    ) -> Result<ResendOutcome, LedgerError>;
    fn retry(
        &mut self,
        filter: &ReviewFilter,
        now: DateTime<Utc>,
        regroup: Regroup<'_>,
    ) -> Result<(u64, u64), LedgerError>;
    fn pending_summary(&self) -> Result<(u64, Option<DateTime<Utc>>), LedgerError>;
    fn status_counts(&self) -> Result<StatusCounts, LedgerError>;
    fn attempt_count(&self) -> Result<u64, LedgerError>;
}

/// The other tables, listed for auditors, and the poll log's retention
/// (`listings.rs`).
pub(super) trait Listings {
    fn for_each_attempt(
        &self,
        filter: &AttemptFilter,
        f: Each<'_, AttemptRow>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError>;
    fn for_each_quarantined(
        &self,
        filter: &LogFilter,
        f: Each<'_, QuarantineRow>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError>;
    fn for_each_poll(
        &self,
        filter: &LogFilter,
        f: Each<'_, PollRow>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError>;
    fn delete_polls_step(&mut self, cutoff: DateTime<Utc>) -> Result<u64, LedgerError>;
}

/// Text purges (`retention.rs`).
pub(super) trait Retention {
    fn start_purge(
        &mut self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        by: PurgedBy,
    ) -> Result<Purge, LedgerError>;
    fn purge_step(&mut self, purge: &mut Purge) -> Result<bool, LedgerError>;
    fn purges(&self) -> Result<Vec<PurgeRow>, LedgerError>;
    fn text_purged_at(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<DateTime<Utc>>, LedgerError>;
}

/// Poll state and the poll log (`polls.rs`).
pub(super) trait Polls {
    fn poll_state(&self, source: &str, location: &str) -> Result<PollState, LedgerError>;
    fn finish_poll(&mut self, log: &PollLog, state: Option<&PollState>) -> Result<(), LedgerError>;
    fn location_review_count(&self, source: &str, location: &str) -> Result<u64, LedgerError>;
}

/// Leases of work only one daemon of those sharing the ledger may do at a
/// time (`leases.rs`). Times are the database server's, so the daemons'
/// clocks play no part.
pub(super) trait Leases {
    /// Whether other daemons may share this ledger (PostgreSQL). When not,
    /// every lease is granted without a write.
    fn shared(&self) -> bool;
    /// Names this process in the leases it takes and the rows it claims.
    fn set_holder(&mut self, holder: &str);
    fn take_lease(&mut self, name: &str, ttl: std::time::Duration) -> Result<bool, LedgerError>;
    fn renew_lease(&mut self, name: &str, ttl: std::time::Duration) -> Result<bool, LedgerError>;
    fn end_lease(
        &mut self,
        name: &str,
        keep: Option<std::time::Duration>,
    ) -> Result<(), LedgerError>;
}

/// The whole contract: what an engine must do to be a ledger.
pub(super) trait Engine:
    Storage + Reviews + Delivery + Queries + Listings + Retention + Polls + Leases + Send
{
}

impl<T: Storage + Reviews + Delivery + Queries + Listings + Retention + Polls + Leases + Send>
    Engine for T
{
}
