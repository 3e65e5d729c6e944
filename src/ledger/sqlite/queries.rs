//! What auditors and the `ledger` commands ask: stats, lists, one review's
//! history, exports, and putting reviews back to `pending` (`retry` after a
//! fix, `resend` on purpose), each such change a row of `requeues`.

use super::super::common::{
    ATTEMPT_COLUMNS, ATTENTION_COUNTS, CANDIDATE_COLUMNS, Candidate, GROUP_KEY, REVIEW_COLUMNS,
    Requeue, STATUS_RANK, Where, by_status, group_columns, group_of, retryable,
};
use super::super::engine::{Corrupt, Each, Queries, Regroup};
use super::super::{
    AttemptRow, LedgerError, RequeueCommand, RequeueRow, ResendOutcome, ReviewFilter, ReviewRow,
    Stats, Status, StatusCounts, time,
};
use super::row::RowReader;
use super::{Sqlite, sql_err, values};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, named_params};
use std::path::Path;

impl Queries for Sqlite {
    fn stats(&self) -> Result<Stats, LedgerError> {
        // A read transaction only: `&self` cannot be inside another one.
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let stats = Stats {
            total: self.count("SELECT COUNT(*) FROM reviews", [])?,
            by_status: by_status(&self.grouped_by("'all'")?),
            by_platform: self.grouped_by("platform")?,
            by_source: self.grouped_by("source_name")?,
            by_group: self.grouped_by(GROUP_KEY)?,
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

    fn walk_reviews(
        &self,
        filter: &ReviewFilter,
        f: Each<'_, ReviewRow>,
        corrupt: Corrupt<'_>,
    ) -> Result<(), LedgerError> {
        let w = Where::reviews(filter, &filter.statuses);
        let sql = format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews{}
             ORDER BY first_seen_at, platform, review_id",
            w.clause()
        );
        self.walk(&sql, values(w.params), read_review, f, corrupt)
    }

    fn platforms_of(&self, review_id: &str) -> Result<Vec<String>, LedgerError> {
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

    fn review_status(
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

    fn show(
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
        self.walk_reviews(
            &filter,
            &mut |row| {
                found = Some(row.clone());
                Ok(())
            },
            None,
        )?;
        let Some(row) = found else {
            return Ok(None);
        };
        let attempts = self.attempts_of(platform, review_id)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some((row, attempts)))
    }

    fn requeues_of(&self, platform: &str, review_id: &str) -> Result<Vec<RequeueRow>, LedgerError> {
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

    fn resend(
        &mut self,
        platform: &str,
        review_id: &str,
        now: DateTime<Utc>,
        regroup: Regroup<'_>,
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
        let to = match c.resend(&self.path, regroup)? {
            Ok(to) => to,
            Err(refused) => return Ok(refused),
        };
        let now = time::to_text(now);
        requeue(&tx, &c, &to, &now, RequeueCommand::Resend).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(ResendOutcome::Requeued(to.group))
    }

    fn retry(
        &mut self,
        filter: &ReviewFilter,
        now: DateTime<Utc>,
        regroup: Regroup<'_>,
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
            match c.retry(&self.path, regroup)? {
                Some(to) => {
                    requeue(&tx, c, &to, &now, RequeueCommand::Retry).map_err(&err)?;
                    requeued += 1;
                }
                None => skipped += 1,
            }
        }
        tx.commit().map_err(&err)?;
        Ok((requeued, skipped))
    }

    fn pending_summary(&self) -> Result<(u64, Option<DateTime<Utc>>), LedgerError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let summary = (self.pending()?, self.oldest_pending()?);
        tx.commit().map_err(|e| self.err(e))?;
        Ok(summary)
    }

    fn status_counts(&self) -> Result<StatusCounts, LedgerError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut counts = StatusCounts {
            pending: self.pending()?,
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

    fn attempt_count(&self) -> Result<u64, LedgerError> {
        self.count("SELECT COUNT(*) FROM attempts", [])
    }
}

impl Sqlite {
    /// Runs `sql` and calls `f` with each row as `read` makes it; a row
    /// `read` finds corrupt goes to `corrupt` when given (and the walk goes
    /// on), else ends the walk with its error.
    pub(super) fn walk<T>(
        &self,
        sql: &str,
        params: Vec<Value>,
        read: fn(&Row<'_>, &Path) -> Result<T, LedgerError>,
        f: Each<'_, T>,
        mut corrupt: Corrupt<'_>,
    ) -> Result<(), LedgerError> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = st
            .query(rusqlite::params_from_iter(params))
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

    /// Pending rows (the pending-only index).
    pub(super) fn pending(&self) -> Result<u64, LedgerError> {
        self.count("SELECT COUNT(*) FROM reviews WHERE status = 'pending'", [])
    }

    /// (key, status, count) grouped by the SQL expression `key`, sorted by
    /// key then status in lifecycle order.
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

fn retry_candidates(
    conn: &Connection,
    path: &Path,
    filter: &ReviewFilter,
    statuses: &[Status],
) -> Result<Vec<Candidate>, LedgerError> {
    let err = sql_err(path);
    let w = Where::reviews(filter, statuses);
    let sql = format!(
        "SELECT {CANDIDATE_COLUMNS} FROM reviews{}
         ORDER BY first_seen_at, platform, review_id",
        w.clause()
    );
    let mut st = conn.prepare_cached(&sql).map_err(&err)?;
    let mut rows = st
        .query(rusqlite::params_from_iter(values(w.params)))
        .map_err(&err)?;
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
            group: group_of(r.get("group_id")?, r.get("group_external_ref")?),
            text_purged_at: r.opt_time("text_purged_at")?,
        });
    }
    Ok(out)
}

/// Puts `c` back to pending with `to`'s payload and group, and records it
/// in `requeues`.
fn requeue(
    conn: &Connection,
    c: &Candidate,
    to: &Requeue,
    now: &str,
    command: RequeueCommand,
) -> rusqlite::Result<()> {
    let (group_id, group_external_ref) = group_columns(Some(&to.group));
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
        ":payload": to.payload,
        ":group_id": group_id,
        ":group_external_ref": group_external_ref,
    })?;
    Ok(())
}
