//! What both engines share: the decisions taken around the SQL (what
//! recording a review changes, which statuses `retry` may touch, what a
//! failed attempt leaves in `last_error`, whether a review may be resent),
//! the column lists, and the `WHERE` clauses of the filters, written once
//! with `?` placeholders that each engine binds its own way.

use super::{
    AttemptRecord, IncomingReview, LedgerError, LogFilter, PageRecord, ResendOutcome, ReviewFilter,
    Sightings, Status, time,
};
use crate::domain::GroupRef;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The `reviews` columns a [`super::ReviewRow`] is read from, in a `SELECT`.
pub(super) const REVIEW_COLUMNS: &str = "platform, review_id, source_name, location_id, group_id,
    group_external_ref, status, payload, content_hash, first_seen_at, source_updated_at,
    delivered_at, request_id, attempts, last_error, removed_at, next_attempt_at, notes";

/// The `attempts` columns an [`super::AttemptRow`] is read from, in a `SELECT`.
pub(super) const ATTEMPT_COLUMNS: &str = "id, platform, review_id, attempted_at, content_hash,
    group_id, group_external_ref, body_hash, http_status, error_type, error_message,
    request_id, duration_ms, outcome";

/// The `quarantine` columns a [`super::QuarantineRow`] is read from.
pub(super) const QUARANTINE_COLUMNS: &str = "id, source_name, location_id, platform, reference,
    reason, raw, first_seen_at, last_seen_at, seen_count";

/// The `polls` columns a [`super::PollRow`] is read from.
pub(super) const POLL_COLUMNS: &str = "id, source_name, location_id, kind, started_at, ended_at,
    pages, requests, fetched, new, edited, unchanged, quarantined, removed, reported_total, gap,
    error";

/// The order of statuses in [`super::Stats`]: the lifecycle order auditors read in.
pub(super) const STATUS_ORDER: [Status; 4] = [
    Status::Pending,
    Status::Delivered,
    Status::Held,
    Status::Rejected,
];

/// `ORDER BY` term sorting statuses in [`STATUS_ORDER`].
pub(super) const STATUS_RANK: &str = "CASE status WHEN 'pending' THEN 0 WHEN 'delivered' THEN 1
    WHEN 'held' THEN 2 ELSE 3 END";

/// The key `ledger stats` groups reviews by group under.
pub(super) const GROUP_KEY: &str = "CASE WHEN group_external_ref IS NOT NULL
          THEN 'group_external_ref=' || group_external_ref
      WHEN group_id IS NOT NULL THEN 'group_id=' || group_id
      ELSE '(unmapped)' END";

/// Held and rejected counts; the `WHERE` is the partial index's, word for
/// word, which is what lets SQLite use it (PostgreSQL too).
pub(super) const ATTENTION_COUNTS: &str = "SELECT status, COUNT(*) FROM reviews
    WHERE status IN ('held','rejected') GROUP BY status";

/// Rows purged per transaction: a first purge of a large ledger must not
/// hold a write lock for seconds, or the daemon's (and any other
/// process's) writes would wait. A batch of 500 takes a few milliseconds.
pub(super) const PURGE_BATCH: i64 = 500;

/// The (`group_id`, `group_external_ref`) column values of a group.
pub(super) fn group_columns(group: Option<&GroupRef>) -> (Option<&str>, Option<&str>) {
    match group {
        Some(GroupRef::Id(v)) => (Some(v), None),
        Some(GroupRef::ExternalRef(v)) => (None, Some(v)),
        None => (None, None),
    }
}

/// The group the (`group_id`, `group_external_ref`) columns name. The
/// columns always name the payload's group: recording a page and
/// `retry`/`resend` write both in one statement.
pub(super) fn group_of(id: Option<String>, external: Option<String>) -> Option<GroupRef> {
    match (id, external) {
        (Some(id), _) => Some(GroupRef::Id(id)),
        (None, Some(external)) => Some(GroupRef::ExternalRef(external)),
        (None, None) => None,
    }
}

/// What recording one review did.
pub(super) enum Change {
    New,
    Edited,
    Unchanged,
}

impl Change {
    /// What recording `review` does to the stored version, if any:
    /// (content hash, marked removed). `touch` says whether an unchanged
    /// review's row is written at all (its sighting stamped, its removal
    /// cleared).
    pub(super) fn of(
        stored: Option<(&str, bool)>,
        review: &IncomingReview,
        sightings: Sightings,
    ) -> (Change, bool) {
        match stored {
            None => (Change::New, true),
            Some((hash, removed)) if hash == review.content_hash => {
                (Change::Unchanged, removed || sightings == Sightings::Stamp)
            }
            Some(_) => (Change::Edited, true),
        }
    }
}

/// The per-page values every row of the page shares, computed once.
pub(super) struct PageContext<'a> {
    pub(super) page: &'a PageRecord,
    pub(super) now: String,
    pub(super) status: Status,
    pub(super) group_id: Option<&'a str>,
    pub(super) group_external_ref: Option<&'a str>,
    /// `last_error` of new/edited rows: the hold reason when unmapped.
    pub(super) hold_reason: Option<&'a str>,
    /// `next_attempt_at` of new/edited rows: now, or none for held rows.
    pub(super) next_attempt_at: Option<String>,
    pub(super) sightings: Sightings,
}

impl<'a> PageContext<'a> {
    pub(super) fn new(page: &'a PageRecord, now: DateTime<Utc>, sightings: Sightings) -> Self {
        let now = time::to_text(now);
        let (status, next_attempt_at, hold_reason) = match page.group {
            Some(_) => (Status::Pending, Some(now.clone()), None),
            None => (Status::Held, None, page.hold_reason.as_deref()),
        };
        let (group_id, group_external_ref) = group_columns(page.group.as_ref());
        PageContext {
            page,
            now,
            status,
            group_id,
            group_external_ref,
            hold_reason,
            next_attempt_at,
            sightings,
        }
    }
}

/// `quarantine.raw_hash`: hex SHA-256 of the raw text.
pub(super) fn raw_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// `reviews.last_error` for a failed attempt: "error_type: message", or
/// whichever of the two exists, or the HTTP status as a last resort.
pub(super) fn last_error(a: &AttemptRecord) -> Option<String> {
    match (&a.error_type, &a.error_message) {
        (Some(t), Some(m)) => Some(format!("{t}: {m}")),
        (Some(t), None) => Some(t.clone()),
        (None, Some(m)) => Some(m.clone()),
        (None, None) => a.http_status.map(|s| format!("http_{s}")),
    }
}

/// Every status with its count (zero when absent), in [`STATUS_ORDER`],
/// from (key, status, count) rows.
pub(super) fn by_status(counted: &[(String, String, u64)]) -> Vec<(String, u64)> {
    STATUS_ORDER
        .iter()
        .map(|s| {
            let n = counted
                .iter()
                .find(|(_, status, _)| status == s.as_str())
                .map_or(0, |(_, _, n)| *n);
            (s.as_str().to_owned(), n)
        })
        .collect()
}

/// The statuses `ledger retry` may act on, out of the ones asked for.
pub(super) fn retryable(asked: &[Status]) -> Vec<Status> {
    if asked.is_empty() {
        return vec![Status::Held, Status::Rejected];
    }
    STATUS_ORDER
        .into_iter()
        .filter(|s| matches!(s, Status::Held | Status::Rejected) && asked.contains(s))
        .collect()
}

/// A row `retry` (or `resend`) may put back to pending.
pub(super) struct Candidate {
    pub(super) platform: String,
    pub(super) review_id: String,
    pub(super) source_name: String,
    pub(super) location_id: String,
    pub(super) payload: String,
    pub(super) status: Status,
    pub(super) content_hash: String,
    pub(super) group: Option<GroupRef>,
    pub(super) text_purged_at: Option<DateTime<Utc>>,
}

/// The columns a [`Candidate`] is read from.
pub(super) const CANDIDATE_COLUMNS: &str = "platform, review_id, source_name, location_id, payload,
    status, content_hash, group_id, group_external_ref, text_purged_at";

/// What putting a candidate back to pending writes: its group and the
/// body rewritten for it.
pub(super) struct Requeue {
    pub(super) group: GroupRef,
    pub(super) payload: String,
}

impl Candidate {
    /// `ledger retry`: the row goes to its location's current group, or is
    /// skipped (`Ok(None)`) when `regroup` has none.
    pub(super) fn retry(
        &self,
        path: &Path,
        regroup: &dyn Fn(&str, &str) -> Option<GroupRef>,
    ) -> Result<Option<Requeue>, LedgerError> {
        let Some(group) = regroup(&self.source_name, &self.location_id) else {
            return Ok(None);
        };
        self.requeue(path, group).map(Some)
    }

    /// `ledger resend`: only a delivered review whose text was not purged
    /// (its body would erase the text Travtus holds); its body goes to the
    /// location's current group when `regroup` gives one, else where it went.
    pub(super) fn resend(
        &self,
        path: &Path,
        regroup: &dyn Fn(&str, &str) -> Option<GroupRef>,
    ) -> Result<Result<Requeue, ResendOutcome>, LedgerError> {
        if self.status != Status::Delivered {
            return Ok(Err(ResendOutcome::NotDelivered(self.status)));
        }
        if let Some(at) = self.text_purged_at {
            return Ok(Err(ResendOutcome::TextPurged(at)));
        }
        let group =
            match regroup(&self.source_name, &self.location_id).or_else(|| self.group.clone()) {
                Some(g) => g,
                // A delivered row always went somewhere; a hand edit may say otherwise.
                None => {
                    return Err(LedgerError::CorruptRow {
                        path: path.to_path_buf(),
                        table: "reviews",
                        row: format!("{} {}", self.platform, self.review_id),
                        column: "group_external_ref",
                        value: "NULL (and group_id NULL) on a delivered review".into(),
                    });
                }
            };
        self.requeue(path, group).map(Ok)
    }

    fn requeue(&self, path: &Path, group: GroupRef) -> Result<Requeue, LedgerError> {
        let payload = crate::travtus::body::regroup(&self.payload, &group).ok_or_else(|| {
            // A stored body that is not a JSON object: its group cannot be replaced.
            LedgerError::CorruptRow {
                path: path.to_path_buf(),
                table: "reviews",
                row: format!("{} {}", self.platform, self.review_id),
                column: "payload",
                value: format!("{:?} (not a JSON object)", self.payload),
            }
        })?;
        Ok(Requeue { group, payload })
    }
}

/// A bound value of a [`Where`] clause.
#[derive(Debug, Clone)]
pub(super) enum Param {
    Text(String),
}

/// A `WHERE` clause under construction, with `?` placeholders and their
/// values in order (each engine numbers or binds them its own way).
#[derive(Default)]
pub(super) struct Where {
    terms: Vec<String>,
    pub(super) params: Vec<Param>,
}

impl Where {
    /// Adds `sql`, whose `?`s take `params` in order.
    pub(super) fn term<const N: usize>(&mut self, sql: &str, params: [String; N]) {
        self.terms.push(sql.to_owned());
        self.params.extend(params.into_iter().map(Param::Text));
    }

    /// Adds `sql`, which takes no value.
    pub(super) fn fixed(&mut self, sql: &str) {
        self.terms.push(sql.to_owned());
    }

    /// `source_name` and `location_id` of a log filter.
    pub(super) fn place(&mut self, filter: &LogFilter) {
        if let Some(source) = &filter.source {
            self.term("source_name = ?", [source.clone()]);
        }
        if let Some(location) = &filter.location {
            self.term("location_id = ?", [location.clone()]);
        }
    }

    /// `column` at or after `since` and before `until`.
    pub(super) fn times(
        &mut self,
        column: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) {
        if let Some(t) = since {
            self.term(&format!("{column} >= ?"), [time::to_text(t)]);
        }
        if let Some(t) = until {
            self.term(&format!("{column} < ?"), [time::to_text(t)]);
        }
    }

    /// The clause for `filter` over `reviews`, with `statuses` in place of
    /// `filter.statuses`.
    pub(super) fn reviews(filter: &ReviewFilter, statuses: &[Status]) -> Where {
        let mut w = Where::default();
        if !statuses.is_empty() {
            let marks = vec!["?"; statuses.len()].join(", ");
            w.terms.push(format!("status IN ({marks})"));
            w.params
                .extend(statuses.iter().map(|s| Param::Text(s.as_str().to_owned())));
        }
        if let Some(source) = &filter.source {
            w.term("source_name = ?", [source.clone()]);
        }
        if let Some(group) = &filter.group {
            w.term(
                "(group_external_ref = ? OR group_id = ?)",
                [group.clone(), group.clone()],
            );
        }
        w.times("first_seen_at", filter.since, filter.until);
        w.times(
            "delivered_at",
            filter.delivered_since,
            filter.delivered_until,
        );
        if let Some((platform, review_id)) = &filter.review {
            w.term(
                "platform = ? AND review_id = ?",
                [platform.clone(), review_id.clone()],
            );
        }
        w
    }

    /// ` WHERE ...`, or nothing when nothing filters.
    pub(super) fn clause(&self) -> String {
        if self.terms.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.terms.join(" AND "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_acts_only_on_held_and_rejected() {
        assert_eq!(retryable(&[]), vec![Status::Held, Status::Rejected]);
        assert_eq!(
            retryable(&[Status::Rejected, Status::Pending]),
            vec![Status::Rejected]
        );
        assert!(retryable(&[Status::Delivered]).is_empty());
    }
}
