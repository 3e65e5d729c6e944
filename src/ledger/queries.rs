//! What auditors and the `ledger` commands ask: stats, lists, one review's
//! history, exports, and putting reviews back to `pending` (`retry` after a
//! fix, `resend` on purpose), each such change a row of `requeues`.

use super::reviews::group_columns;
use super::row::RowReader;
use super::{
    AttemptRow, Ledger, LedgerError, RequeueCommand, RequeueRow, ResendOutcome, ReviewFilter,
    ReviewRow, Stats, Status, sql_err, time,
};
use crate::domain::GroupRef;
use crate::travtus::body;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{
    Connection, OptionalExtension, Row, TransactionBehavior, named_params, params_from_iter,
};
use std::path::Path;

/// The `reviews` columns [`read_review`] expects, in a `SELECT`.
const REVIEW_COLUMNS: &str = "platform, review_id, source_name, location_id, group_id,
    group_external_ref, status, payload, content_hash, first_seen_at, source_updated_at,
    delivered_at, request_id, attempts, last_error, removed_at, next_attempt_at, notes";

/// The order of statuses in [`Stats`]: the lifecycle order auditors read in.
const STATUS_ORDER: [Status; 4] = [
    Status::Pending,
    Status::Delivered,
    Status::Held,
    Status::Rejected,
];

/// `ORDER BY` term sorting statuses in [`STATUS_ORDER`].
const STATUS_RANK: &str = "CASE status WHEN 'pending' THEN 0 WHEN 'delivered' THEN 1
    WHEN 'held' THEN 2 ELSE 3 END";

/// Held and rejected counts; the `WHERE` is the partial index's, word for
/// word, which is what lets SQLite use it.
const ATTENTION_COUNTS: &str = "SELECT status, COUNT(*) FROM reviews
    WHERE status IN ('held','rejected') GROUP BY status";

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

impl Ledger {
    /// Counts by status, platform, source and group; oldest pending.
    ///
    /// Read in one transaction, so the numbers agree with each other even
    /// while the daemon writes.
    pub fn stats(&self) -> Result<Stats, LedgerError> {
        // A read transaction only: `&self` cannot be inside another one.
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let stats = Stats {
            total: self.count("SELECT COUNT(*) FROM reviews", [])?,
            by_status: self.by_status()?,
            by_platform: self.grouped_by("platform")?,
            by_source: self.grouped_by("source_name")?,
            by_group: self.grouped_by(
                "CASE WHEN group_external_ref IS NOT NULL
                          THEN 'group_external_ref=' || group_external_ref
                      WHEN group_id IS NOT NULL THEN 'group_id=' || group_id
                      ELSE '(unmapped)' END",
            )?,
            oldest_pending: self.oldest_pending()?,
            removed: self.count(
                "SELECT COUNT(*) FROM reviews WHERE removed_at IS NOT NULL",
                [],
            )?,
            quarantined: self.count("SELECT COUNT(*) FROM quarantine", [])?,
            attempts: self.count("SELECT COUNT(*) FROM attempts", [])?,
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(stats)
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
        self.walk_reviews(filter, f, None)
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
        self.walk_reviews(filter, f, Some(corrupt))
    }

    fn walk_reviews(
        &self,
        filter: &ReviewFilter,
        f: &mut dyn FnMut(&ReviewRow) -> Result<(), LedgerError>,
        corrupt: Option<&mut dyn FnMut(LedgerError)>,
    ) -> Result<(), LedgerError> {
        let (clause, params) = filter_clause(filter, &filter.statuses);
        let sql = format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews{clause}
             ORDER BY first_seen_at, platform, review_id"
        );
        self.walk(&sql, params, read_review, f, corrupt)
    }

    /// Runs `sql` and calls `f` with each row as `read` makes it; a row
    /// `read` finds corrupt goes to `corrupt` when given (and the walk goes
    /// on), else ends the walk with its error.
    pub(super) fn walk<T>(
        &self,
        sql: &str,
        params: Vec<Value>,
        read: fn(&Row<'_>, &Path) -> Result<T, LedgerError>,
        f: &mut dyn FnMut(&T) -> Result<(), LedgerError>,
        mut corrupt: Option<&mut dyn FnMut(LedgerError)>,
    ) -> Result<(), LedgerError> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = st
            .query(params_from_iter(params))
            .map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            match read(row, &self.path) {
                Ok(item) => f(&item)?,
                Err(e @ LedgerError::CorruptRow { .. }) => match corrupt.as_mut() {
                    Some(report) => report(e),
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The platforms that hold a review with this id (for `ledger show
    /// REVIEW_ID`): one index seek per platform, however large the ledger.
    pub fn platforms_of(&self, review_id: &str) -> Result<Vec<String>, LedgerError> {
        // A skip-scan of the primary key by hand: the next platform after
        // the last one, then a seek for the id within it.
        let mut st = self
            .conn
            .prepare_cached(
                "WITH RECURSIVE p(name) AS (
                     SELECT MIN(platform) FROM reviews
                     UNION ALL
                     SELECT (SELECT MIN(platform) FROM reviews WHERE platform > p.name)
                     FROM p WHERE p.name IS NOT NULL)
                 SELECT r.platform AS platform FROM p
                 JOIN reviews r ON r.platform = p.name AND r.review_id = ?1
                 ORDER BY 1",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([review_id]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            out.push(RowReader::new(row, &self.path, "reviews").get("platform")?);
        }
        Ok(out)
    }

    /// The status of one review, `None` when the ledger has no such review.
    pub fn review_status(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<Status>, LedgerError> {
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT status FROM reviews WHERE platform = ?1 AND review_id = ?2")
            .and_then(|mut st| st.query_row((platform, review_id), |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        text.map(|t| {
            Status::parse(&t).ok_or_else(|| LedgerError::CorruptRow {
                path: self.path.clone(),
                table: "reviews",
                row: format!("{platform} {review_id}"),
                column: "status",
                value: format!("{t:?}"),
            })
        })
        .transpose()
    }

    /// One review and its attempts, oldest first.
    pub fn show(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<(ReviewRow, Vec<AttemptRow>)>, LedgerError> {
        // One snapshot: the attempts match the row shown.
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let filter = ReviewFilter {
            review: Some((platform.to_owned(), review_id.to_owned())),
            ..ReviewFilter::default()
        };
        let mut found = None;
        self.for_each_review(&filter, &mut |row| {
            found = Some(row.clone());
            Ok(())
        })?;
        let Some(row) = found else {
            return Ok(None);
        };
        let attempts = self.attempts_of(platform, review_id)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some((row, attempts)))
    }

    /// Every time a review was put back to `pending` by hand, oldest first.
    pub fn requeues_of(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Vec<RequeueRow>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, platform, review_id, requeued_at, command, from_status, content_hash,
                     group_id, group_external_ref
                 FROM requeues WHERE platform = ?1 AND review_id = ?2 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query((platform, review_id)).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let r = RowReader::new(row, &self.path, "requeues");
            out.push(RequeueRow {
                requeued_at: r.time("requeued_at")?,
                command: r.get("command")?,
                from_status: r.get("from_status")?,
                content_hash: r.get("content_hash")?,
                group_id: r.get("group_id")?,
                group_external_ref: r.get("group_external_ref")?,
            });
        }
        Ok(out)
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
        let err = sql_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let filter = ReviewFilter {
            review: Some((platform.to_owned(), review_id.to_owned())),
            ..ReviewFilter::default()
        };
        let Some(c) = retry_candidates(&tx, &self.path, &filter, &[])?.pop() else {
            return Ok(ResendOutcome::NotFound);
        };
        if c.status != Status::Delivered {
            return Ok(ResendOutcome::NotDelivered(c.status));
        }
        if let Some(at) = c.text_purged_at {
            return Ok(ResendOutcome::TextPurged(at));
        }
        let group = match regroup(&c.source_name, &c.location_id).or_else(|| c.group.clone()) {
            Some(g) => g,
            // A delivered row always went somewhere; a hand edit may say otherwise.
            None => {
                return Err(LedgerError::CorruptRow {
                    path: self.path.clone(),
                    table: "reviews",
                    row: format!("{platform} {review_id}"),
                    column: "group_external_ref",
                    value: "NULL (and group_id NULL) on a delivered review".into(),
                });
            }
        };
        let payload =
            body::regroup(&c.payload, &group).ok_or_else(|| bad_payload(&self.path, &c))?;
        let now = time::to_text(now);
        requeue(&tx, &c, &group, &payload, &now, RequeueCommand::Resend).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(ResendOutcome::Requeued(group))
    }

    /// Puts the rows matching `filter` (whose statuses must be held and/or
    /// rejected) back to `pending`, due at `now`, `retry_count` 0. For each
    /// row, `regroup(source_name, location_id)` gives the location's current
    /// group: the payload's group key is replaced with it (and the
    /// `group_id`/`group_external_ref` columns updated). A row for which it
    /// returns `None` is left as it is and counted as skipped.
    /// Returns (requeued, skipped).
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
        let statuses = retryable(&filter.statuses);
        if statuses.is_empty() {
            return Ok((0, 0));
        }
        let err = sql_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        // Collected first: updating rows while a SELECT walks them is legal
        // in SQLite but makes the walk's result depend on the update order.
        let candidates = retry_candidates(&tx, &self.path, filter, &statuses)?;
        let now = time::to_text(now);
        let (mut requeued, mut skipped) = (0, 0);
        for c in &candidates {
            let Some(group) = regroup(&c.source_name, &c.location_id) else {
                skipped += 1;
                continue;
            };
            let payload =
                body::regroup(&c.payload, &group).ok_or_else(|| bad_payload(&self.path, c))?;
            requeue(&tx, c, &group, &payload, &now, RequeueCommand::Retry).map_err(&err)?;
            requeued += 1;
        }
        tx.commit().map_err(&err)?;
        Ok((requeued, skipped))
    }

    /// Pending rows and the `first_seen_at` of the oldest, in one read (for
    /// the metrics gauges; both use the pending-only index).
    pub fn pending_summary(&self) -> Result<(u64, Option<DateTime<Utc>>), LedgerError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let summary = (self.pending_count()?, self.oldest_pending()?);
        tx.commit().map_err(|e| self.err(e))?;
        Ok(summary)
    }

    /// What the metrics read at each scrape, in one read: reviews pending,
    /// held and rejected, and quarantined records. Each count uses an
    /// index (`reviews_due`, `reviews_attention`), so a scrape stays cheap
    /// on a ledger of millions of delivered reviews.
    pub fn status_counts(&self) -> Result<StatusCounts, LedgerError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut counts = StatusCounts {
            pending: self.pending_count()?,
            quarantined: self.count("SELECT COUNT(*) FROM quarantine", [])?,
            ..StatusCounts::default()
        };
        let mut st = self
            .conn
            .prepare_cached(ATTENTION_COUNTS)
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let status: String = row.get(0).map_err(|e| self.err(e))?;
            let n: i64 = row.get(1).map_err(|e| self.err(e))?;
            match status.as_str() {
                "held" => counts.held = n.unsigned_abs(),
                "rejected" => counts.rejected = n.unsigned_abs(),
                _ => {}
            }
        }
        drop(rows);
        drop(st);
        tx.commit().map_err(|e| self.err(e))?;
        Ok(counts)
    }

    /// Every attempt row, for `ledger export` of attempts and tests.
    pub fn attempt_count(&self) -> Result<u64, LedgerError> {
        self.count("SELECT COUNT(*) FROM attempts", [])
    }

    /// Every status with its count (zero when absent), in [`STATUS_ORDER`].
    fn by_status(&self) -> Result<Vec<(String, u64)>, LedgerError> {
        let counted = self.grouped_by("'all'")?;
        Ok(STATUS_ORDER
            .iter()
            .map(|s| {
                let n = counted
                    .iter()
                    .find(|(_, status, _)| status == s.as_str())
                    .map_or(0, |(_, _, n)| *n);
                (s.as_str().to_owned(), n)
            })
            .collect())
    }

    /// (key, status, count) grouped by the SQL expression `key`, sorted by
    /// key then status in [`STATUS_ORDER`].
    fn grouped_by(&self, key: &str) -> Result<Vec<(String, String, u64)>, LedgerError> {
        let sql = format!(
            "SELECT {key} AS key, status, COUNT(*) AS n FROM reviews
             GROUP BY 1, 2 ORDER BY 1, {STATUS_RANK}"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = st.query([]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let r = RowReader::new(row, &self.path, "reviews");
            out.push((r.get("key")?, r.get("status")?, r.count("n")?));
        }
        Ok(out)
    }

    fn oldest_pending(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT MIN(first_seen_at) AS first_seen_at FROM reviews
                 WHERE status = 'pending'",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(row) => RowReader::new(row, &self.path, "reviews").opt_time("first_seen_at"),
            None => Ok(None),
        }
    }

    fn attempts_of(&self, platform: &str, review_id: &str) -> Result<Vec<AttemptRow>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS}
                 FROM attempts WHERE platform = ?1 AND review_id = ?2
                 ORDER BY attempted_at, id"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = st.query((platform, review_id)).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            out.push(read_attempt(row, &self.path)?);
        }
        Ok(out)
    }
}

/// The `attempts` columns [`read_attempt`] expects, in a `SELECT`.
pub(super) const ATTEMPT_COLUMNS: &str = "id, platform, review_id, attempted_at, content_hash,
    group_id, group_external_ref, body_hash, http_status, error_type, error_message,
    request_id, duration_ms, outcome";

/// A `reviews` row selected with [`REVIEW_COLUMNS`].
fn read_review(row: &Row<'_>, path: &Path) -> Result<ReviewRow, LedgerError> {
    let r = RowReader::new(row, path, "reviews");
    Ok(ReviewRow {
        platform: r.get("platform")?,
        review_id: r.get("review_id")?,
        source_name: r.get("source_name")?,
        location_id: r.get("location_id")?,
        group_id: r.get("group_id")?,
        group_external_ref: r.get("group_external_ref")?,
        status: r.status("status")?,
        payload: r.get("payload")?,
        content_hash: r.get("content_hash")?,
        first_seen_at: r.time("first_seen_at")?,
        source_updated_at: r.opt_time("source_updated_at")?,
        delivered_at: r.opt_time("delivered_at")?,
        request_id: r.get("request_id")?,
        attempts: r.count("attempts")?,
        last_error: r.get("last_error")?,
        removed_at: r.opt_time("removed_at")?,
        next_attempt_at: r.opt_time("next_attempt_at")?,
        notes: r.get("notes")?,
    })
}

/// An `attempts` row selected with [`ATTEMPT_COLUMNS`].
pub(super) fn read_attempt(row: &Row<'_>, path: &Path) -> Result<AttemptRow, LedgerError> {
    let r = RowReader::new(row, path, "attempts");
    Ok(AttemptRow {
        id: r.get("id")?,
        platform: r.get("platform")?,
        review_id: r.get("review_id")?,
        attempted_at: r.time("attempted_at")?,
        content_hash: r.get("content_hash")?,
        group_id: r.get("group_id")?,
        group_external_ref: r.get("group_external_ref")?,
        body_hash: r.get("body_hash")?,
        http_status: r.get("http_status")?,
        error_type: r.get("error_type")?,
        error_message: r.get("error_message")?,
        request_id: r.get("request_id")?,
        duration_ms: r.count("duration_ms")?,
        outcome: r.get("outcome")?,
    })
}

/// The ` WHERE ...` clause (empty when nothing filters) and its positional
/// parameters for `filter`, with `statuses` in place of `filter.statuses`.
fn filter_clause(filter: &ReviewFilter, statuses: &[Status]) -> (String, Vec<Value>) {
    let mut terms: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    if !statuses.is_empty() {
        let marks = vec!["?"; statuses.len()].join(", ");
        terms.push(format!("status IN ({marks})"));
        params.extend(statuses.iter().map(|s| Value::from(s.as_str().to_owned())));
    }
    if let Some(source) = &filter.source {
        terms.push("source_name = ?".to_owned());
        params.push(Value::from(source.clone()));
    }
    if let Some(group) = &filter.group {
        terms.push("(group_external_ref = ? OR group_id = ?)".to_owned());
        params.push(Value::from(group.clone()));
        params.push(Value::from(group.clone()));
    }
    for (column, op, bound) in [
        ("first_seen_at", ">=", filter.since),
        ("first_seen_at", "<", filter.until),
        ("delivered_at", ">=", filter.delivered_since),
        ("delivered_at", "<", filter.delivered_until),
    ] {
        if let Some(t) = bound {
            terms.push(format!("{column} {op} ?"));
            params.push(Value::from(time::to_text(t)));
        }
    }
    if let Some((platform, review_id)) = &filter.review {
        terms.push("platform = ? AND review_id = ?".to_owned());
        params.push(Value::from(platform.clone()));
        params.push(Value::from(review_id.clone()));
    }
    if terms.is_empty() {
        return (String::new(), params);
    }
    (format!(" WHERE {}", terms.join(" AND ")), params)
}

/// The statuses `ledger retry` may act on, out of the ones asked for.
fn retryable(asked: &[Status]) -> Vec<Status> {
    if asked.is_empty() {
        return vec![Status::Held, Status::Rejected];
    }
    STATUS_ORDER
        .into_iter()
        .filter(|s| matches!(s, Status::Held | Status::Rejected) && asked.contains(s))
        .collect()
}

/// A stored body that is not a JSON object, so its group cannot be replaced.
fn bad_payload(path: &Path, c: &Candidate) -> LedgerError {
    LedgerError::CorruptRow {
        path: path.to_path_buf(),
        table: "reviews",
        row: format!("{} {}", c.platform, c.review_id),
        column: "payload",
        value: format!("{:?} (not a JSON object)", c.payload),
    }
}

/// A row `retry` (or `resend`) may put back to pending.
struct Candidate {
    platform: String,
    review_id: String,
    source_name: String,
    location_id: String,
    payload: String,
    status: Status,
    content_hash: String,
    group: Option<GroupRef>,
    text_purged_at: Option<DateTime<Utc>>,
}

fn retry_candidates(
    conn: &Connection,
    path: &Path,
    filter: &ReviewFilter,
    statuses: &[Status],
) -> Result<Vec<Candidate>, LedgerError> {
    let err = sql_err(path);
    let (clause, params) = filter_clause(filter, statuses);
    let sql = format!(
        "SELECT platform, review_id, source_name, location_id, payload, status, content_hash,
             group_id, group_external_ref, text_purged_at
         FROM reviews{clause}
         ORDER BY first_seen_at, platform, review_id"
    );
    let mut st = conn.prepare_cached(&sql).map_err(&err)?;
    let mut rows = st.query(params_from_iter(params)).map_err(&err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(&err)? {
        let r = RowReader::new(row, path, "reviews");
        out.push(Candidate {
            platform: r.get("platform")?,
            review_id: r.get("review_id")?,
            source_name: r.get("source_name")?,
            location_id: r.get("location_id")?,
            payload: r.get("payload")?,
            status: r.status("status")?,
            content_hash: r.get("content_hash")?,
            group: match (r.get("group_id")?, r.get("group_external_ref")?) {
                (Some(id), _) => Some(GroupRef::Id(id)),
                (None, Some(external)) => Some(GroupRef::ExternalRef(external)),
                (None, None) => None,
            },
            text_purged_at: r.opt_time("text_purged_at")?,
        });
    }
    Ok(out)
}

/// Puts `c` back to pending with `payload` for `group`, and records it in
/// `requeues`.
fn requeue(
    conn: &Connection,
    c: &Candidate,
    group: &GroupRef,
    payload: &str,
    now: &str,
    command: RequeueCommand,
) -> rusqlite::Result<()> {
    let (group_id, group_external_ref) = group_columns(Some(group));
    conn.prepare_cached(
        "INSERT INTO requeues (platform, review_id, requeued_at, command, from_status,
             content_hash, group_id, group_external_ref)
         VALUES (:platform, :review_id, :now, :command, :from_status, :hash,
             :group_id, :group_external_ref)",
    )?
    .execute(named_params! {
        ":platform": c.platform,
        ":review_id": c.review_id,
        ":now": now,
        ":command": command.as_str(),
        ":from_status": c.status.as_str(),
        ":hash": c.content_hash,
        ":group_id": group_id,
        ":group_external_ref": group_external_ref,
    })?;
    conn.prepare_cached(
        "UPDATE reviews SET status = 'pending', next_attempt_at = :now, retry_count = 0,
             last_error = NULL, payload = :payload,
             group_id = :group_id, group_external_ref = :group_external_ref
         WHERE platform = :platform AND review_id = :review_id",
    )?
    .execute(named_params! {
        ":platform": c.platform,
        ":review_id": c.review_id,
        ":now": now,
        ":payload": payload,
        ":group_id": group_id,
        ":group_external_ref": group_external_ref,
    })?;
    Ok(())
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

#[cfg(test)]
mod status_count_tests {
    use super::ATTENTION_COUNTS;
    use crate::ledger::Ledger;

    /// The scrape's counts must not scan the reviews table: on a ledger of
    /// a million delivered reviews that is a second per scrape.
    #[test]
    fn held_and_rejected_are_counted_from_their_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        let plan: Vec<String> = ledger
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {ATTENTION_COUNTS}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("reviews_attention")),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|l| l.starts_with("SCAN reviews") && !l.contains("INDEX")),
            "{plan:?}"
        );
        assert_eq!(ledger.status_counts().unwrap(), Default::default());
    }

    #[test]
    fn migration_6_indexes_a_v5_file_with_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        {
            let l = crate::ledger::migrations::open_with(
                &path,
                &crate::ledger::migrations::MIGRATIONS[..5],
            )
            .unwrap();
            assert_eq!(l.schema_version().unwrap(), 5);
            l.conn
                .execute_batch(
                    "INSERT INTO reviews (platform, review_id, source_name, location_id, status,
                       payload, content_hash, first_seen_at, last_seen_at)
                     VALUES ('google', 'a', 's', 'l', 'held', '{}', 'h',
                       '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'),
                            ('google', 'b', 's', 'l', 'rejected', '{}', 'h',
                       '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'),
                            ('google', 'c', 's', 'l', 'delivered', '{}', 'h',
                       '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                )
                .unwrap();
        }
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.schema_version().unwrap(), 6);
        let counts = l.status_counts().unwrap();
        assert_eq!((counts.held, counts.rejected, counts.pending), (1, 1, 0));
    }
}
