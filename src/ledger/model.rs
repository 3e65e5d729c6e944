//! The plain data that goes in and out of the ledger.

use crate::domain::GroupRef;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// A review's delivery status (the `reviews.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for delivery (new, edited, or being retried).
    Pending,
    /// The API answered 2xx with a request id for the current version.
    Delivered,
    /// Not sent because the mapping is wrong or missing; `ledger retry` after a fix.
    Held,
    /// The API refused it for good (4xx other than auth and mapping).
    Rejected,
}

impl Status {
    /// The text stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Held => "held",
            Status::Rejected => "rejected",
        }
    }
    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "delivered" => Status::Delivered,
            "held" => Status::Held,
            "rejected" => Status::Rejected,
            _ => return None,
        })
    }
}

/// One review version read from a platform, ready to be recorded.
#[derive(Debug, Clone)]
pub struct IncomingReview {
    /// `reviews.platform`.
    pub platform: String,
    /// `reviews.review_id`.
    pub review_id: String,
    /// The exact JSON body to POST (already contains the group key, or none
    /// when the location is unmapped).
    pub payload: String,
    /// Hash of the review content (not of the group): a different hash is an edit.
    pub content_hash: String,
    /// The platform's update time (else creation time) of this version.
    pub source_updated_at: Option<DateTime<Utc>>,
    /// `reviews.notes`: platform facts kept for auditors but not sent, as a
    /// JSON object; `None` when there are none.
    pub notes: Option<String>,
}

/// One page of a poll, recorded in one transaction.
#[derive(Debug, Clone)]
pub struct PageRecord {
    /// The source that fetched it.
    pub source_name: String,
    /// The location it belongs to.
    pub location_id: String,
    /// The mapped group; `None` means the location is not mapped and new or
    /// edited reviews are stored `held` with `hold_reason`.
    pub group: Option<GroupRef>,
    /// `last_error` for reviews held because the location is unmapped.
    pub hold_reason: Option<String>,
    /// The reviews on the page.
    pub reviews: Vec<IncomingReview>,
    /// Records of the page that could not become reviews.
    pub quarantined: Vec<QuarantineRecord>,
}

/// A record that could not become a review.
#[derive(Debug, Clone)]
pub struct QuarantineRecord {
    /// The platform name (e.g. `google`).
    pub platform: String,
    /// A review id when readable, or `file:line`.
    pub reference: String,
    /// Why it was refused.
    pub reason: String,
    /// The raw record.
    pub raw: String,
}

/// What recording a page changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Reviews never seen before.
    pub new: u64,
    /// Known reviews whose content hash changed (queued again).
    pub edited: u64,
    /// Known reviews seen again unchanged (the overlap), nothing written
    /// except `removed_at` cleared if it was set.
    pub unchanged: u64,
    /// Records quarantined (a record already in quarantine with the same raw
    /// text is counted but not stored twice).
    pub quarantined: u64,
}

impl std::ops::AddAssign for PageCounts {
    fn add_assign(&mut self, o: PageCounts) {
        self.new += o.new;
        self.edited += o.edited;
        self.unchanged += o.unchanged;
        self.quarantined += o.quarantined;
    }
}

/// How far a location has been read, as stored (`poll_state`): what it
/// means is the poll's business (`crate::poll::Cursor`); the ledger keeps
/// the mark and an opaque string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollState {
    /// The newest platform time seen at this location.
    pub high_water: Option<DateTime<Utc>>,
    /// Opaque to the ledger (a file source's content fingerprints).
    pub cursor: Option<String>,
}

/// One row of the poll log (table `polls`).
#[derive(Debug, Clone, Default)]
pub struct PollLog {
    /// Source name.
    pub source_name: String,
    /// Location id.
    pub location_id: String,
    /// When the poll of this location started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Pages read.
    pub pages: u64,
    /// Platform HTTP requests made (including retries and token calls).
    pub requests: u64,
    /// Reviews read (before dedup).
    pub fetched: u64,
    /// What was recorded.
    pub counts: PageCounts,
    /// The platform's reported total, when it has one.
    pub reported_total: Option<u64>,
    /// `reported_total` minus the reviews the ledger holds for the location
    /// (not removed), when there is a total.
    pub gap: Option<i64>,
    /// Why the poll failed, if it did (the pages before the failure stay recorded).
    pub error: Option<String>,
    /// A full reconciliation pass (`polls.kind = 'reconcile'`) rather than an
    /// incremental one.
    pub reconcile: bool,
    /// Reviews this pass marked removed from the platform (`polls.removed`).
    pub removed: u64,
}

/// A review claimed for delivery.
#[derive(Debug, Clone)]
pub struct DueReview {
    /// `platform`.
    pub platform: String,
    /// `review_id`.
    pub review_id: String,
    /// The exact body to POST.
    pub payload: String,
    /// The version being sent.
    pub content_hash: String,
    /// Failed attempts of this version so far (drives the backoff).
    pub retry_count: u32,
    /// Where `payload` goes and its hash, for the attempts made with it.
    pub sent: SentAs,
}

/// Where an attempt's body went and which exact body it was
/// (`attempts.group_id`, `group_external_ref`, `body_hash`), taken from the
/// claimed row, so the audit trail keeps them even after a mapping is fixed
/// and the review re-sent elsewhere. The default (nothing known) is what
/// attempts recorded before schema version 5 hold: NULL, never a guess.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentAs {
    /// The group the body named.
    pub group: Option<GroupRef>,
    /// SHA-256 (hex) of the exact bytes of the body.
    pub body_hash: Option<String>,
}

impl SentAs {
    /// What is sent when `payload` goes to `group`.
    pub fn new(group: Option<GroupRef>, payload: &str) -> SentAs {
        SentAs {
            group,
            body_hash: Some(body_hash(payload)),
        }
    }
}

/// SHA-256 (hex) of a body's bytes: `attempts.body_hash`.
pub fn body_hash(payload: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(payload.as_bytes()))
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// 2xx with a request id: status `delivered`.
    Delivered {
        /// The API's `request_id`.
        request_id: String,
    },
    /// Will be tried again at `next_attempt_at`: stays `pending`.
    Retry {
        /// When it is due again.
        next_attempt_at: DateTime<Utc>,
    },
    /// The mapping is wrong: status `held`.
    Held,
    /// The API refused it for good: status `rejected`.
    Rejected,
}

impl AttemptOutcome {
    /// The `attempts.outcome` text.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Delivered { .. } => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Held => "held",
            AttemptOutcome::Rejected => "rejected",
        }
    }
}

/// One delivery attempt, appended to `attempts` and applied to `reviews`.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// `platform`.
    pub platform: String,
    /// `review_id`.
    pub review_id: String,
    /// The version that was sent. The review row is only updated if it still
    /// holds this version (an edit that arrived meanwhile stays pending).
    pub content_hash: String,
    /// When the request was sent.
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status, `None` for a transport error or timeout.
    pub http_status: Option<u16>,
    /// The API's `error.type`, or our own class (`timeout`, `connection`, `http_500`...).
    pub error_type: Option<String>,
    /// Human-readable error (goes to `reviews.last_error` too).
    pub error_message: Option<String>,
    /// The API's `request_id`, when it gave one.
    pub request_id: Option<String>,
    /// How long the request took.
    pub duration_ms: u64,
    /// What happens to the review.
    pub outcome: AttemptOutcome,
    /// Where the body went and which body it was (the claim's [`DueReview::sent`]).
    pub sent: SentAs,
}

/// A row of `reviews`, as shown by `ledger list/show/export`.
#[derive(Debug, Clone)]
pub struct ReviewRow {
    /// `platform`.
    pub platform: String,
    /// `review_id`.
    pub review_id: String,
    /// `source_name`.
    pub source_name: String,
    /// `location_id`.
    pub location_id: String,
    /// `group_id`.
    pub group_id: Option<String>,
    /// `group_external_ref`.
    pub group_external_ref: Option<String>,
    /// `status`.
    pub status: Status,
    /// `payload`.
    pub payload: String,
    /// `content_hash`.
    pub content_hash: String,
    /// `first_seen_at`.
    pub first_seen_at: DateTime<Utc>,
    /// `source_updated_at`.
    pub source_updated_at: Option<DateTime<Utc>>,
    /// `delivered_at`.
    pub delivered_at: Option<DateTime<Utc>>,
    /// `request_id`.
    pub request_id: Option<String>,
    /// `attempts`: delivery attempts of all versions.
    pub attempts: u64,
    /// `last_error`.
    pub last_error: Option<String>,
    /// `removed_at`.
    pub removed_at: Option<DateTime<Utc>>,
    /// `next_attempt_at` (pending rows only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// `notes`: platform facts kept for auditors but not sent (a JSON
    /// object, e.g. `{"excerpt":"true"}` for a Yelp excerpt); `None` when
    /// the platform had none.
    pub notes: Option<String>,
}

/// A row of `attempts`.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    /// `id`: the order attempts were recorded in.
    pub id: i64,
    /// `platform`.
    pub platform: String,
    /// `review_id`.
    pub review_id: String,
    /// `attempted_at`.
    pub attempted_at: DateTime<Utc>,
    /// `content_hash` of the version sent.
    pub content_hash: String,
    /// `group_id` the body named (NULL before schema version 5: unknown).
    pub group_id: Option<String>,
    /// `group_external_ref` the body named (NULL before schema version 5: unknown).
    pub group_external_ref: Option<String>,
    /// `body_hash`: SHA-256 of the exact body sent (NULL before schema version 5).
    pub body_hash: Option<String>,
    /// `http_status`.
    pub http_status: Option<u16>,
    /// `error_type`.
    pub error_type: Option<String>,
    /// `error_message`.
    pub error_message: Option<String>,
    /// `request_id`.
    pub request_id: Option<String>,
    /// `duration_ms`.
    pub duration_ms: u64,
    /// `outcome`.
    pub outcome: String,
}

/// Filters of `ledger list` / `ledger export` / `ledger retry`.
#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    /// Only these statuses (empty: all).
    pub statuses: Vec<Status>,
    /// Only this source.
    pub source: Option<String>,
    /// Only rows whose `group_external_ref` or `group_id` equals this.
    pub group: Option<String>,
    /// Only rows first seen at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only rows first seen before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only rows (last) delivered at or after this instant.
    pub delivered_since: Option<DateTime<Utc>>,
    /// Only rows (last) delivered before this instant.
    pub delivered_until: Option<DateTime<Utc>>,
    /// Only this one review: (platform, review_id).
    pub review: Option<(String, String)>,
}

/// Filters of `ledger export --table attempts`.
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    /// Only attempts whose body named this group (external ref or id).
    pub group: Option<String>,
    /// Only attempts made at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only attempts made before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// A row of `quarantine`.
#[derive(Debug, Clone)]
pub struct QuarantineRow {
    /// `source_name`.
    pub source_name: String,
    /// `location_id`.
    pub location_id: String,
    /// `platform`.
    pub platform: String,
    /// `reference`: a review id when readable, or `file:line`.
    pub reference: String,
    /// `reason`.
    pub reason: String,
    /// `raw`: the record as the platform sent it.
    pub raw: String,
    /// `first_seen_at`.
    pub first_seen_at: DateTime<Utc>,
    /// `last_seen_at`.
    pub last_seen_at: DateTime<Utc>,
    /// `seen_count`.
    pub seen_count: u64,
}

/// A row of `polls`.
#[derive(Debug, Clone)]
pub struct PollRow {
    /// `source_name`.
    pub source_name: String,
    /// `location_id`.
    pub location_id: String,
    /// `kind`: `incremental` or `reconcile`.
    pub kind: String,
    /// `started_at`.
    pub started_at: DateTime<Utc>,
    /// `ended_at`.
    pub ended_at: DateTime<Utc>,
    /// `pages`.
    pub pages: u64,
    /// `requests`.
    pub requests: u64,
    /// `fetched`.
    pub fetched: u64,
    /// `new`.
    pub new: u64,
    /// `edited`.
    pub edited: u64,
    /// `unchanged`.
    pub unchanged: u64,
    /// `quarantined`.
    pub quarantined: u64,
    /// `removed`.
    pub removed: u64,
    /// `reported_total`.
    pub reported_total: Option<u64>,
    /// `gap`.
    pub gap: Option<i64>,
    /// `error`.
    pub error: Option<String>,
}

/// Filters of `ledger quarantine` and `ledger polls`.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this source.
    pub source: Option<String>,
    /// Only this location.
    pub location: Option<String>,
    /// Only rows whose time (`first_seen_at`, `started_at`) is at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only rows whose time is before this.
    pub until: Option<DateTime<Utc>>,
    /// Polls only: only failed polls.
    pub errors_only: bool,
}

/// Which command put a review back to `pending` (`requeues.command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueCommand {
    /// `ledger retry`: a held or rejected review, after a fix.
    Retry,
    /// `ledger resend`: a delivered review, sent again on purpose.
    Resend,
}

impl RequeueCommand {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            RequeueCommand::Retry => "retry",
            RequeueCommand::Resend => "resend",
        }
    }
}

/// A row of `requeues`: a review put back to `pending` by hand.
#[derive(Debug, Clone)]
pub struct RequeueRow {
    /// `requeued_at`.
    pub requeued_at: DateTime<Utc>,
    /// `command`: `retry` or `resend`.
    pub command: String,
    /// `from_status`: the status it had.
    pub from_status: String,
    /// `content_hash` of the version put back.
    pub content_hash: String,
    /// `group_id` its body names now.
    pub group_id: Option<String>,
    /// `group_external_ref` its body names now.
    pub group_external_ref: Option<String>,
}

/// What `ledger resend` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResendOutcome {
    /// Back to `pending`, due now, going to this group.
    Requeued(GroupRef),
    /// No such review.
    NotFound,
    /// Only a delivered review is resent; this one has another status.
    NotDelivered(Status),
    /// Retention removed its text: resending would erase the text Travtus holds.
    TextPurged(DateTime<Utc>),
}

/// `ledger stats`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Total rows in `reviews`.
    pub total: u64,
    /// (status, count), every status present, in the order pending, delivered, held, rejected.
    pub by_status: Vec<(String, u64)>,
    /// (platform, status, count).
    pub by_platform: Vec<(String, String, u64)>,
    /// (source, status, count).
    pub by_source: Vec<(String, String, u64)>,
    /// (group key=value, status, count); unmapped rows under "(unmapped)".
    pub by_group: Vec<(String, String, u64)>,
    /// `first_seen_at` of the oldest pending row.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Rows with `removed_at` set.
    pub removed: u64,
    /// Rows in `quarantine`.
    pub quarantined: u64,
    /// Total rows in `attempts`.
    pub attempts: u64,
}

/// What [`Ledger::delivery_cycle`] should claim.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// Rows with `next_attempt_at <= now` are due.
    pub now: DateTime<Utc>,
    /// Their new `next_attempt_at` while in flight.
    pub lease_until: DateTime<Utc>,
    /// The most rows to claim.
    pub limit: usize,
    /// Pending rows due later than this are made due `now` first.
    pub reanchor_after: DateTime<Utc>,
}

impl Claim {
    /// A claim at `now` that re-anchors only rows due more than
    /// [`crate::clock::LONGEST_DELAY`] ahead: further than any retry or
    /// lease review-sync sets, so only a wall clock gone back put them there.
    pub fn new(now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: usize) -> Claim {
        let longest = chrono::Duration::from_std(crate::clock::LONGEST_DELAY)
            .unwrap_or(chrono::Duration::MAX);
        Claim {
            now,
            lease_until,
            limit,
            reanchor_after: now.checked_add_signed(longest).unwrap_or(now),
        }
    }

    /// After a detected wall-clock step: every pending row is made due now,
    /// since every retry time and lease was set by the old clock.
    pub fn after_step(self) -> Claim {
        Claim {
            reanchor_after: self.now,
            ..self
        }
    }
}

/// A claimed review handed back unsent: its lease ends now, unless the row
/// changed since the claim (an edit, another claim after the lease ran out).
#[derive(Debug, Clone)]
pub struct ReleasedClaim {
    /// `platform`.
    pub platform: String,
    /// `review_id`.
    pub review_id: String,
    /// The claimed version.
    pub content_hash: String,
    /// The lease it was claimed with.
    pub lease_until: DateTime<Utc>,
    /// When it is due again.
    pub due_at: DateTime<Utc>,
}

/// What [`Ledger::delivery_cycle`] claimed.
#[derive(Debug, Default)]
pub struct CycleReport {
    /// The claimed reviews, oldest due first.
    pub claimed: Vec<DueReview>,
    /// When fewer rows were due than asked for: the earliest
    /// `next_attempt_at` left among pending rows (leases included).
    pub next_due: Option<DateTime<Utc>>,
    /// Pending rows made due now before the claim (see [`Claim::reanchor_after`]).
    pub reanchored: u64,
}

/// Reviews by the statuses that are not final, and quarantined records
/// (see [`Ledger::status_counts`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatusCounts {
    /// `pending` reviews.
    pub pending: u64,
    /// `held` reviews.
    pub held: u64,
    /// `rejected` reviews.
    pub rejected: u64,
    /// Rows of `quarantine`.
    pub quarantined: u64,
}

/// Whether recording a page stamps `last_seen_at` on the reviews it saw
/// unchanged.
///
/// Only a reconciliation pass needs the stamps: [`Ledger::mark_removed`]
/// runs after one and compares against its start. An incremental pass sees
/// the same overlap page on every tick, and stamping it rewrote dozens of
/// rows per location for nothing (a quiet pass over 1,000 locations wrote
/// 26 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sightings {
    /// Stamp every review seen (a reconciliation pass, and the default).
    Stamp,
    /// Leave unchanged reviews as they are (an incremental pass).
    Skip,
}

/// Who ran a purge (`purges.purged_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgedBy {
    /// The daemon, from `[ledger] retain_text_days`.
    Daemon,
    /// `review-sync ledger purge`.
    Cli,
}

impl PurgedBy {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            PurgedBy::Daemon => "daemon",
            PurgedBy::Cli => "cli",
        }
    }
}

/// A row of `purges`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRow {
    /// When the purge ran.
    pub purged_at: DateTime<Utc>,
    /// Reviews delivered before this were purged.
    pub cutoff: DateTime<Utc>,
    /// Rows whose text was removed.
    pub rows_purged: u64,
    /// Who ran it.
    pub purged_by: PurgedBy,
}

/// A purge in progress: [`Ledger::start_purge`], then [`Ledger::purge_step`]
/// until it says done. Plain data, so the daemon can carry it between steps
/// and release the ledger to its other loops in between.
#[derive(Debug, Clone)]
pub struct Purge {
    /// `purges.id`.
    pub(super) id: i64,
    /// Ledger text of the cutoff and of the purge's time.
    pub(super) cutoff: String,
    pub(super) now: String,
    /// Where the walk stopped, so each step starts there instead of
    /// re-reading purged rows.
    pub(super) after: PurgeCursor,
    pub(super) rows_purged: u64,
}

/// Where a [`Purge`] goes on: each engine walks `reviews` in the order it
/// reads fastest.
#[derive(Debug, Clone)]
pub(super) enum PurgeCursor {
    /// Before the first row.
    Start,
    /// After this SQLite rowid.
    Rowid(i64),
    /// After this (platform, review_id), PostgreSQL's primary key order.
    Key(String, String),
}

impl Purge {
    /// Rows purged so far.
    pub fn rows_purged(&self) -> u64 {
        self.rows_purged
    }
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Rows in its `reviews` table.
    pub reviews: u64,
}

/// Poll-log rows deleted per statement: each batch is its own short write
/// transaction, so the daemon's polls and deliveries go on in between.
pub const POLL_BATCH: u64 = 500;
