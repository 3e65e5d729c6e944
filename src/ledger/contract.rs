//! [`Ledger`]: the ledger's one public interface, whatever the engine
//! behind it (a SQLite file or a PostgreSQL database, see [`Target`]).
//! Each method is documented here once; the engines implement the traits
//! of `engine.rs` with that meaning.

use super::engine::Engine;
use super::target::AsTarget;
use super::{
    AttemptFilter, AttemptRecord, AttemptRow, BackupReport, Claim, CycleReport, DueReview,
    LedgerError, LogFilter, PageCounts, PageRecord, PollLog, PollRow, PollState, Purge, PurgeRow,
    PurgedBy, QuarantineRow, ReleasedClaim, RequeueRow, ResendOutcome, ReviewFilter, ReviewRow,
    Sightings, Stats, Status, StatusCounts, Target,
};
use crate::domain::GroupRef;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// An open ledger: one read-write (or read-only) connection to its engine.
pub struct Ledger {
    engine: Box<dyn Engine>,
}

impl Ledger {
    /// Opens the ledger at `at` (a path: a SQLite file; or a [`Target`]),
    /// creating and migrating its schema as needed.
    ///
    /// A SQLite file is created if needed (mode 0600) and set to WAL,
    /// `synchronous=NORMAL`, a busy timeout of 5 s and foreign keys; its
    /// parent directory must already exist: it is never created here
    /// (systemd's `StateDirectory=` creates the real one, and silently
    /// creating directories elsewhere would hide a typo in the config). A
    /// PostgreSQL database must exist; its tables are created in the
    /// connection's schema. Pending migrations are applied in one
    /// transaction each (on PostgreSQL under an advisory lock, so that two
    /// daemons starting together do not race). A missing directory, an
    /// unreachable server, a read-only file or a schema newer than this
    /// build is an error naming the ledger, never a panic.
    ///
    /// Blocking: call it from a blocking thread (`spawn_blocking`), never
    /// from an async task (the PostgreSQL client runs its own small runtime).
    pub fn open<P: AsTarget + ?Sized>(at: &P) -> Result<Ledger, LedgerError> {
        let engine: Box<dyn Engine> = match at.as_target() {
            Target::Sqlite(path) => Box::new(super::sqlite::open(&path)?),
            Target::Postgres(target) => Box::new(super::postgres::open(&target, true)?),
        };
        Ok(Ledger { engine })
    }

    /// Opens an existing ledger read-only (for `ledger` commands and
    /// auditors' tools while the daemon runs). Fails if it is missing or
    /// its schema is older than this build (run the daemon, or any
    /// read-write command, once to migrate).
    pub fn open_readonly<P: AsTarget + ?Sized>(at: &P) -> Result<Ledger, LedgerError> {
        let engine: Box<dyn Engine> = match at.as_target() {
            Target::Sqlite(path) => Box::new(super::sqlite::open_readonly(&path)?),
            Target::Postgres(target) => Box::new(super::postgres::open(&target, false)?),
        };
        Ok(Ledger { engine })
    }

    /// The ledger's file, or its database's URL (never with a password),
    /// as its errors name it.
    pub fn path(&self) -> &Path {
        self.engine.path()
    }

    /// `Err(LedgerError::Moved)` when the ledger file, or its `-wal` or
    /// `-shm`, was deleted or replaced since it was opened: writing on would
    /// write into a file nobody will read again. Always `Ok` on PostgreSQL,
    /// whose files are the server's.
    pub fn check_identity(&self) -> Result<(), LedgerError> {
        self.engine.check_identity()
    }

    /// Grows with every committed write of this connection (for
    /// [`super::LedgerHandle`]'s record of write failures).
    pub(super) fn writes(&self) -> u64 {
        self.engine.writes()
    }

    /// The schema version (SQLite's `PRAGMA user_version`, PostgreSQL's
    /// `ledger_schema.version`).
    pub fn schema_version(&self) -> Result<i64, LedgerError> {
        self.engine.schema_version()
    }

    /// Whether this connection can write, for `/healthz`, writing nothing.
    /// SQLite: takes the write lock (`BEGIN IMMEDIATE`) and releases it at
    /// once; fails when another process holds it for more than a second
    /// (e.g. an open write transaction in a `sqlite3` session) or when the
    /// file or its directory cannot be written. PostgreSQL: fails when the
    /// server cannot be reached (a reconnection is tried first) or only
    /// takes reads (a standby, a read-only transaction default).
    pub fn probe_writable(&mut self) -> Result<(), LedgerError> {
        self.engine.probe_writable()
    }

    /// Copies the ledger to `dest`, a self-contained SQLite file (mode
    /// 0600, checked with `PRAGMA quick_check`, rollback journal) that
    /// `sqlite3 -readonly` opens anywhere. Refuses an existing `dest` unless
    /// `overwrite`, and the ledger's own file. Taken online: SQLite's backup
    /// API in one read transaction; from PostgreSQL, every table read in one
    /// repeatable-read snapshot into a new file at the same schema version.
    pub fn backup_to(&self, dest: &Path, overwrite: bool) -> Result<BackupReport, LedgerError> {
        self.engine.backup_to(dest, overwrite)
    }

    /// After a SQLite ledger's files were deleted or replaced under the
    /// daemon: a copy of the ledger as this connection still sees it, next
    /// to the path (`ledger.db.rescued-20261124T224552Z`), so that an
    /// operator can stop the daemon, move it into place and start again
    /// without sending anything twice. The path of the copy, or why there
    /// is none.
    pub(super) fn rescue_copy(&self) -> Result<PathBuf, LedgerError> {
        self.engine.rescue_copy()
    }

    /// The SQLite engine, for tests of SQLite's own behaviour.
    #[cfg(test)]
    pub(super) fn sqlite(&self) -> Option<&super::sqlite::Sqlite> {
        self.engine.as_sqlite()
    }

    // ------------------------------------------------------------- leases

    /// Whether other daemons may share this ledger (a PostgreSQL database).
    /// A SQLite ledger has one daemon: its leases are always granted and
    /// never written.
    pub fn shared(&self) -> bool {
        self.engine.shared()
    }

    /// Names this process (e.g. `web-1 pid 4242`) in the leases it takes
    /// (`leases.holder`) and the rows it claims (`reviews.claimed_by`, on
    /// PostgreSQL). Unique per process: a restarted daemon is a new holder
    /// and waits for its predecessor's leases to expire.
    pub fn set_holder(&mut self, holder: &str) {
        self.engine.set_holder(holder);
    }

    /// Takes the lease `name` (e.g. `pass:google-main`) for `ttl` of the
    /// database server's time, if nobody holds it: no row, or its row has
    /// expired (its holder died or lost it). `false` when another holder's
    /// lease is still running. A holder's own unexpired lease is not taken
    /// again either (a job [`Ledger::end_lease`] kept is not run twice).
    pub fn take_lease(
        &mut self,
        name: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, LedgerError> {
        self.engine.take_lease(name, ttl)
    }

    /// Moves this holder's lease `name` to expire `ttl` from now (server
    /// time). `false` when it is no longer this holder's (it expired and
    /// another daemon took it): whatever it covered must stop.
    pub fn renew_lease(
        &mut self,
        name: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, LedgerError> {
        self.engine.renew_lease(name, ttl)
    }

    /// Ends this holder's lease `name`: released at once (`keep` `None`),
    /// or kept until `keep` from now, so that a job done once for the
    /// cluster is not started again by another daemon before then.
    pub fn end_lease(
        &mut self,
        name: &str,
        keep: Option<std::time::Duration>,
    ) -> Result<(), LedgerError> {
        self.engine.end_lease(name, keep)
    }

    // ------------------------------------------------------------ reviews

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
    ///
    /// Every sighting also sets the internal `last_seen_at` to `now` (what
    /// [`Ledger::mark_removed`] compares against). A `held` row has no
    /// `next_attempt_at`: it is never due until `ledger retry`.
    pub fn record_page(
        &mut self,
        page: &PageRecord,
        now: DateTime<Utc>,
    ) -> Result<PageCounts, LedgerError> {
        self.record_page_as(page, now, Sightings::Stamp)
    }

    /// [`Ledger::record_page`], stamping `last_seen_at` on unchanged reviews
    /// only when `sightings` says so. New and edited rows are always
    /// stamped, and a review marked removed is always un-marked.
    pub fn record_page_as(
        &mut self,
        page: &PageRecord,
        now: DateTime<Utc>,
        sightings: Sightings,
    ) -> Result<PageCounts, LedgerError> {
        self.engine.record_page_as(page, now, sightings)
    }

    /// Marks as removed (`removed_at` = `now`) every review of a location
    /// that a full reconciliation pass did not see: rows whose `last_seen_at`
    /// is before `pass_started` and that are not already marked. Call it only
    /// after a pass that read the location completely. Returns rows marked.
    pub fn mark_removed(
        &mut self,
        source: &str,
        location: &str,
        pass_started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        self.engine
            .mark_removed(source, location, pass_started, now)
    }

    /// Marks the reviews of a location first recorded since `read_started`
    /// as first seen by push (`first_seen_via = 'push'`, `push_hint_at` =
    /// `hint_at`): called after a read that a push hint started, while the
    /// caller still keeps the source's other passes out. Returns the
    /// (platform, review id) of each row marked.
    pub fn mark_first_seen_by_push(
        &mut self,
        source: &str,
        location: &str,
        read_started: DateTime<Utc>,
        hint_at: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        self.engine
            .mark_first_seen_by_push(source, location, read_started, hint_at)
    }

    // ----------------------------------------------------------- delivery

    /// Claims up to `limit` pending reviews with `next_attempt_at <= now`,
    /// oldest due first, and in the same transaction pushes their
    /// `next_attempt_at` to `lease_until` so no other claim takes them while
    /// they are in flight (and a crash makes them due again after the lease).
    /// On PostgreSQL the rows are selected `FOR UPDATE SKIP LOCKED`: two
    /// daemons sharing the database never claim the same row.
    pub fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueReview>, LedgerError> {
        let cycle = self.delivery_cycle(&[], &[], Some(Claim::new(now, lease_until, limit)))?;
        Ok(cycle.claimed)
    }

    /// One step of the delivery pipeline in one transaction (one commit):
    /// records `attempts` (as [`Ledger::record_attempts`]), hands back
    /// `released` claims that were never sent (due again at once instead of
    /// at the end of their lease), then makes `claim` (as
    /// [`Ledger::claim_due`]). When the claim finds fewer rows than asked,
    /// the cycle also reports the earliest `next_attempt_at` left among
    /// pending rows, so the worker knows how long it may sleep.
    ///
    /// Before claiming, pending rows due later than the claim's
    /// `reanchor_after` are made due now (counted in
    /// [`CycleReport::reanchored`]): rows whose due time was set by a wall
    /// clock that has since gone back (see [`crate::clock`]). On PostgreSQL
    /// only rows this process claimed (`claimed_by`, see
    /// [`Ledger::set_holder`]) or no daemon ever claimed: another daemon's
    /// lease was set by its own clock, and making it due here would send
    /// its review twice. A claim there names the claimer in `claimed_by`.
    ///
    /// A failure rolls everything back: the caller still holds the attempts
    /// and records them again.
    pub fn delivery_cycle(
        &mut self,
        attempts: &[AttemptRecord],
        released: &[ReleasedClaim],
        claim: Option<Claim>,
    ) -> Result<CycleReport, LedgerError> {
        self.engine.delivery_cycle(attempts, released, claim)
    }

    /// Appends every attempt to `attempts` and applies each outcome to its
    /// review row, all in one transaction (group commit). A row is only
    /// changed if its `content_hash` still equals the attempt's; `attempts`
    /// (the column) is incremented either way. Delivered: status `delivered`,
    /// `delivered_at` = attempted_at, `request_id`, `last_error` NULL,
    /// `retry_count` 0, `next_attempt_at` NULL. Retry: stays `pending`,
    /// `next_attempt_at`, `retry_count` + 1, `last_error`. Held/Rejected:
    /// that status, `last_error` = "error_type: message", `next_attempt_at` NULL.
    ///
    /// Retry, Held and Rejected only change a row that is still `pending`:
    /// when a lease ran out and one version was sent twice, a late failure
    /// does not undo the delivery.
    pub fn record_attempts(&mut self, attempts: &[AttemptRecord]) -> Result<(), LedgerError> {
        self.delivery_cycle(attempts, &[], None).map(|_| ())
    }

    /// The earliest `next_attempt_at` among pending rows (what the worker sleeps until).
    pub fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        self.engine.next_due_at()
    }

    /// Number of pending rows.
    pub fn pending_count(&self) -> Result<u64, LedgerError> {
        self.engine.pending_count()
    }

    /// Makes every pending row due at `at` (used to resume after a pause or
    /// when `sync` should not wait out a long backoff). Returns rows changed.
    ///
    /// This includes rows leased by [`Ledger::claim_due`]: call it when no
    /// delivery is in flight, or such a row may be sent twice (harmless for
    /// the API, which treats a repeat as an update, but wasted).
    pub fn make_pending_due(&mut self, at: DateTime<Utc>) -> Result<u64, LedgerError> {
        self.engine.make_pending_due(at)
    }

    // ------------------------------------------------------------ queries

    /// Counts by status, platform, source and group; oldest pending.
    ///
    /// Read in one transaction, so the numbers agree with each other even
    /// while the daemon writes.
    pub fn stats(&self) -> Result<Stats, LedgerError> {
        self.engine.stats()
    }

    /// Calls `f` for every review row matching `filter`, ordered by
    /// `first_seen_at` then platform and review id, streaming (constant memory).
    /// A row that cannot be read stops the walk with
    /// [`LedgerError::CorruptRow`]; [`Ledger::for_each_review_lenient`] goes on.
    pub fn for_each_review(
        &self,
        filter: &ReviewFilter,
        f: &mut dyn FnMut(&ReviewRow) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        self.engine.walk_reviews(filter, f, None)
    }

    /// [`Ledger::for_each_review`], going on past rows that cannot be read:
    /// each one's [`LedgerError::CorruptRow`] is handed to `corrupt` and the
    /// walk continues with the next row (`ledger export` and `list`).
    pub fn for_each_review_lenient(
        &self,
        filter: &ReviewFilter,
        f: &mut dyn FnMut(&ReviewRow) -> Result<(), LedgerError>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        self.engine.walk_reviews(filter, f, Some(corrupt))
    }

    /// The platforms that hold a review with this id (for `ledger show
    /// REVIEW_ID`): one index seek per platform, however large the ledger.
    pub fn platforms_of(&self, review_id: &str) -> Result<Vec<String>, LedgerError> {
        self.engine.platforms_of(review_id)
    }

    /// The status of one review, `None` when the ledger has no such review.
    pub fn review_status(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<Status>, LedgerError> {
        self.engine.review_status(platform, review_id)
    }

    /// One review and its attempts, oldest first, read in one snapshot.
    pub fn show(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<(ReviewRow, Vec<AttemptRow>)>, LedgerError> {
        self.engine.show(platform, review_id)
    }

    /// Every time a review was put back to `pending` by hand, oldest first.
    pub fn requeues_of(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Vec<RequeueRow>, LedgerError> {
        self.engine.requeues_of(platform, review_id)
    }

    /// Puts one `delivered` review back to `pending`, due at `now`, to be
    /// sent again on purpose (`ledger resend`): its body goes to
    /// `regroup(source_name, location_id)` when that gives a group (the
    /// mapping may have been fixed since), else to the group it went to.
    /// `delivered_at` and `request_id` keep describing the last delivery
    /// until the new one. Recorded in `requeues`. A review whose text
    /// retention removed is refused: its body would erase the text Travtus
    /// holds. One transaction.
    pub fn resend(
        &mut self,
        platform: &str,
        review_id: &str,
        now: DateTime<Utc>,
        regroup: &dyn Fn(&str, &str) -> Option<GroupRef>,
    ) -> Result<ResendOutcome, LedgerError> {
        self.engine.resend(platform, review_id, now, regroup)
    }

    /// Puts the rows matching `filter` (whose statuses must be held and/or
    /// rejected) back to `pending`, due at `now`, `retry_count` 0. For each
    /// row, `regroup(source_name, location_id)` gives the location's current
    /// group: the payload's group key is replaced with it
    /// (`travtus::body::regroup`, and the `group_id`/`group_external_ref`
    /// columns updated). A row for which it returns `None` is left as it is
    /// and counted as skipped. Returns (requeued, skipped).
    ///
    /// An empty `filter.statuses` means held and rejected; `pending` and
    /// `delivered` in it are ignored (they are not retried). `last_error` is
    /// cleared (the attempts table keeps the history), and each review put
    /// back is a row of `requeues`. All in one transaction.
    pub fn retry(
        &mut self,
        filter: &ReviewFilter,
        now: DateTime<Utc>,
        regroup: &dyn Fn(&str, &str) -> Option<GroupRef>,
    ) -> Result<(u64, u64), LedgerError> {
        self.engine.retry(filter, now, regroup)
    }

    /// Pending rows and the `first_seen_at` of the oldest, in one read (for
    /// the metrics gauges; both use the pending-only index).
    pub fn pending_summary(&self) -> Result<(u64, Option<DateTime<Utc>>), LedgerError> {
        self.engine.pending_summary()
    }

    /// What the metrics read at each scrape, in one read: reviews pending,
    /// held and rejected, and quarantined records. Each count uses an
    /// index (`reviews_due`, `reviews_attention`), so a scrape stays cheap
    /// on a ledger of millions of delivered reviews.
    pub fn status_counts(&self) -> Result<StatusCounts, LedgerError> {
        self.engine.status_counts()
    }

    /// Every attempt row, for `ledger export` of attempts and tests.
    pub fn attempt_count(&self) -> Result<u64, LedgerError> {
        self.engine.attempt_count()
    }

    // ----------------------------------------------------------- listings

    /// Calls `f` for every attempt matching `filter`, in the order they were
    /// recorded; a row that cannot be read goes to `corrupt` and is skipped.
    pub fn for_each_attempt(
        &self,
        filter: &AttemptFilter,
        f: &mut dyn FnMut(&AttemptRow) -> Result<(), LedgerError>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        self.engine.for_each_attempt(filter, f, corrupt)
    }

    /// Calls `f` for every quarantined record matching `filter` (times are
    /// `first_seen_at`), oldest first; unreadable rows go to `corrupt`.
    pub fn for_each_quarantined(
        &self,
        filter: &LogFilter,
        f: &mut dyn FnMut(&QuarantineRow) -> Result<(), LedgerError>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        self.engine.for_each_quarantined(filter, f, corrupt)
    }

    /// Calls `f` for every poll-log row matching `filter` (times are
    /// `started_at`), in the order recorded; unreadable rows go to `corrupt`.
    pub fn for_each_poll(
        &self,
        filter: &LogFilter,
        f: &mut dyn FnMut(&PollRow) -> Result<(), LedgerError>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        self.engine.for_each_poll(filter, f, corrupt)
    }

    /// Deletes up to [`super::POLL_BATCH`] poll-log rows of polls started
    /// before `cutoff` (one statement, one transaction); returns how many.
    /// Call it until it returns less than [`super::POLL_BATCH`].
    pub fn delete_polls_step(&mut self, cutoff: DateTime<Utc>) -> Result<u64, LedgerError> {
        self.engine.delete_polls_step(cutoff)
    }

    // ---------------------------------------------------------- retention

    /// Removes the reviewer's text and name (`travtus::body::purge_text`)
    /// from the body of every `delivered` review delivered before `cutoff`
    /// that still has any of them (or was never marked purged), sets its
    /// `text_purged_at` to `now`, and records the purge in `purges` (also
    /// when nothing was left to purge, so auditors see the policy run).
    /// Returns the rows purged. One transaction per 500 rows (see
    /// [`Ledger::purge_step`]).
    pub fn purge_text(
        &mut self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        by: PurgedBy,
    ) -> Result<u64, LedgerError> {
        let mut purge = self.start_purge(cutoff, now, by)?;
        while self.purge_step(&mut purge)? {}
        Ok(purge.rows_purged())
    }

    /// Records a new purge in `purges` (0 rows so far) and returns it.
    pub fn start_purge(
        &mut self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        by: PurgedBy,
    ) -> Result<Purge, LedgerError> {
        self.engine.start_purge(cutoff, now, by)
    }

    /// Purges the next 500 rows of `purge` in one transaction, which also
    /// updates the purge's `rows_purged`, so the record always matches what
    /// was committed, even after a crash. Returns whether rows may be left.
    pub fn purge_step(&mut self, purge: &mut Purge) -> Result<bool, LedgerError> {
        self.engine.purge_step(purge)
    }

    /// Every purge, oldest first.
    pub fn purges(&self) -> Result<Vec<PurgeRow>, LedgerError> {
        self.engine.purges()
    }

    /// When the text of a review was purged (`None`: never, or it was
    /// edited since and holds text again).
    pub fn text_purged_at(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<DateTime<Utc>>, LedgerError> {
        self.engine.text_purged_at(platform, review_id)
    }

    // -------------------------------------------------------------- polls

    /// How far a location has been read (default when never polled).
    pub fn poll_state(&self, source: &str, location: &str) -> Result<PollState, LedgerError> {
        self.engine.poll_state(source, location)
    }

    /// Appends the poll log row and, when `state` is `Some`, stores the new
    /// polling state, in one transaction. The state's `updated_at` is the
    /// poll's `ended_at`.
    pub fn finish_poll(
        &mut self,
        log: &PollLog,
        state: Option<&PollState>,
    ) -> Result<(), LedgerError> {
        self.engine.finish_poll(log, state)
    }

    /// Reviews the ledger holds for a location and are not marked removed.
    pub fn location_review_count(&self, source: &str, location: &str) -> Result<u64, LedgerError> {
        self.engine.location_review_count(source, location)
    }
}
