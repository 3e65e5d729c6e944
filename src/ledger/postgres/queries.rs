//! What auditors and the `ledger` commands ask: stats, lists, one review's
//! history, exports, and putting reviews back to `pending` (`retry` after a
//! fix, `resend` on purpose), each such change a row of `requeues`.
//!
//! Reads that must agree with each other (stats, `show`, a walk) run in one
//! repeatable-read, read-only transaction: one snapshot, while daemons write.

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
use super::{Postgres, Statements, bind, numbered};
use ::postgres::{GenericClient, IsolationLevel, Row, Transaction};
use chrono::{DateTime, Utc};
use std::path::Path;

impl Queries for Postgres {
    fn stats(&self) -> Result<Stats, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let mut tx = snapshot(&mut client, &st)?;
        let mut count = |tx: &mut Transaction<'_>, sql: &str| st.count(tx, sql, &[]);
        let total = count(&mut tx, "SELECT COUNT(*) FROM reviews")?;
        let removed = count(
            &mut tx,
            "SELECT COUNT(*) FROM reviews WHERE removed_at IS NOT NULL",
        )?;
        let quarantined = count(&mut tx, "SELECT COUNT(*) FROM quarantine")?;
        let attempts = count(&mut tx, "SELECT COUNT(*) FROM attempts")?;
        let stats = Stats {
            total,
            by_status: by_status(&grouped_by(&mut tx, &mut st, "'all'")?),
            by_platform: grouped_by(&mut tx, &mut st, "platform")?,
            by_source: grouped_by(&mut tx, &mut st, "source_name")?,
            by_group: grouped_by(&mut tx, &mut st, GROUP_KEY)?,
            oldest_pending: oldest_pending(&mut tx, &mut st)?,
            removed,
            quarantined,
            attempts,
        };
        tx.commit().map_err(st.err())?;
        Ok(stats)
    }

    fn walk_reviews(
        &self,
        filter: &ReviewFilter,
        f: Each<'_, ReviewRow>,
        corrupt: Corrupt<'_>,
    ) -> Result<(), LedgerError> {
        let (mut client, mut st) = self.session()?;
        let mut tx = snapshot(&mut client, &st)?;
        walk_reviews(&mut tx, &mut st, filter, f, corrupt)?;
        tx.commit().map_err(st.err())
    }

    fn platforms_of(&self, review_id: &str) -> Result<Vec<String>, LedgerError> {
        let (mut client, mut st) = self.session()?;
        // A skip-scan of the primary key by hand ("loose index scan"): the
        // next platform after the last one, then a seek for the id within it.
        let rows = st.query(
            &mut *client,
            "WITH RECURSIVE p(name) AS (
                 SELECT MIN(platform) FROM reviews
                 UNION ALL
                 SELECT (SELECT MIN(platform) FROM reviews WHERE platform > p.name)
                 FROM p WHERE p.name IS NOT NULL)
             SELECT r.platform AS platform FROM p
             JOIN reviews r ON r.platform = p.name AND r.review_id = $1
             ORDER BY 1",
            &[&review_id],
        )?;
        rows.iter()
            .map(|row| RowReader::new(row, &self.path, "reviews").get("platform"))
            .collect()
    }

    fn review_status(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<Status>, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let row = st.query_opt(
            &mut *client,
            "SELECT platform, review_id, status FROM reviews
             WHERE platform = $1 AND review_id = $2",
            &[&platform, &review_id],
        )?;
        row.map(|row| RowReader::new(&row, &self.path, "reviews").status("status"))
            .transpose()
    }

    fn show(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<(ReviewRow, Vec<AttemptRow>)>, LedgerError> {
        let (mut client, mut st) = self.session()?;
        // One snapshot: the attempts match the row shown.
        let mut tx = snapshot(&mut client, &st)?;
        let filter = ReviewFilter {
            review: Some((platform.to_owned(), review_id.to_owned())),
            ..ReviewFilter::default()
        };
        let mut found = None;
        walk_reviews(
            &mut tx,
            &mut st,
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
        let rows = st.query(
            &mut tx,
            &format!(
                "SELECT {ATTEMPT_COLUMNS}
                 FROM attempts WHERE platform = $1 AND review_id = $2
                 ORDER BY attempted_at, id"
            ),
            &[&platform, &review_id],
        )?;
        let attempts = rows
            .iter()
            .map(|r| read_attempt(r, &self.path))
            .collect::<Result<_, _>>()?;
        tx.commit().map_err(st.err())?;
        Ok(Some((row, attempts)))
    }

    fn requeues_of(&self, platform: &str, review_id: &str) -> Result<Vec<RequeueRow>, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let rows = st.query(
            &mut *client,
            "SELECT id, platform, review_id, requeued_at, command, from_status, content_hash,
                 group_id, group_external_ref
             FROM requeues WHERE platform = $1 AND review_id = $2 ORDER BY id",
            &[&platform, &review_id],
        )?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, &self.path, "requeues");
                Ok(RequeueRow {
                    requeued_at: r.time("requeued_at")?,
                    command: r.get("command")?,
                    from_status: r.get("from_status")?,
                    content_hash: r.get("content_hash")?,
                    group_id: r.get("group_id")?,
                    group_external_ref: r.get("group_external_ref")?,
                })
            })
            .collect()
    }

    fn resend(
        &mut self,
        platform: &str,
        review_id: &str,
        now: DateTime<Utc>,
        regroup: Regroup<'_>,
    ) -> Result<ResendOutcome, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let mut tx = client.transaction().map_err(st.err())?;
        let filter = ReviewFilter {
            review: Some((platform.to_owned(), review_id.to_owned())),
            ..ReviewFilter::default()
        };
        let Some(c) = candidates(&mut tx, &mut st, &self.path, &filter, &[])?.pop() else {
            return Ok(ResendOutcome::NotFound);
        };
        let to = match c.resend(&self.path, regroup)? {
            Ok(to) => to,
            Err(refused) => return Ok(refused),
        };
        requeue(
            &mut tx,
            &mut st,
            &c,
            &to,
            &time::to_text(now),
            RequeueCommand::Resend,
        )?;
        tx.commit().map_err(st.err())?;
        self.wrote();
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
        let (mut client, mut st) = self.session()?;
        let mut tx = client.transaction().map_err(st.err())?;
        let candidates = candidates(&mut tx, &mut st, &self.path, filter, &statuses)?;
        let now = time::to_text(now);
        let (mut requeued, mut skipped) = (0, 0);
        for c in &candidates {
            match c.retry(&self.path, regroup)? {
                Some(to) => {
                    requeue(&mut tx, &mut st, c, &to, &now, RequeueCommand::Retry)?;
                    requeued += 1;
                }
                None => skipped += 1,
            }
        }
        tx.commit().map_err(st.err())?;
        self.wrote();
        Ok((requeued, skipped))
    }

    fn pending_summary(&self) -> Result<(u64, Option<DateTime<Utc>>), LedgerError> {
        let (mut client, mut st) = self.session()?;
        let mut tx = snapshot(&mut client, &st)?;
        let pending = st.count(
            &mut tx,
            "SELECT COUNT(*) FROM reviews WHERE status = 'pending'",
            &[],
        )?;
        let oldest = oldest_pending(&mut tx, &mut st)?;
        tx.commit().map_err(st.err())?;
        Ok((pending, oldest))
    }

    fn status_counts(&self) -> Result<StatusCounts, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let mut tx = snapshot(&mut client, &st)?;
        let mut counts = StatusCounts {
            pending: st.count(
                &mut tx,
                "SELECT COUNT(*) FROM reviews WHERE status = 'pending'",
                &[],
            )?,
            quarantined: st.count(&mut tx, "SELECT COUNT(*) FROM quarantine", &[])?,
            ..StatusCounts::default()
        };
        for row in st.query(&mut tx, ATTENTION_COUNTS, &[])? {
            let status: String = row.try_get(0).map_err(st.err())?;
            let n: i64 = row.try_get(1).map_err(st.err())?;
            match status.as_str() {
                "held" => counts.held = n.unsigned_abs(),
                "rejected" => counts.rejected = n.unsigned_abs(),
                _ => {}
            }
        }
        tx.commit().map_err(st.err())?;
        Ok(counts)
    }

    fn attempt_count(&self) -> Result<u64, LedgerError> {
        let (mut client, mut st) = self.session()?;
        st.count(&mut *client, "SELECT COUNT(*) FROM attempts", &[])
    }
}

/// A read-only transaction over one snapshot of the database.
pub(super) fn snapshot<'c>(
    client: &'c mut ::postgres::Client,
    st: &Statements<'_>,
) -> Result<Transaction<'c>, LedgerError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(st.err())
}

/// Streams the reviews matching `filter` to `f`, in export order.
fn walk_reviews(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    filter: &ReviewFilter,
    f: Each<'_, ReviewRow>,
    corrupt: Corrupt<'_>,
) -> Result<(), LedgerError> {
    let w = Where::reviews(filter, &filter.statuses);
    let sql = numbered(&format!(
        "SELECT {REVIEW_COLUMNS} FROM reviews{}
         ORDER BY first_seen_at, platform, review_id",
        w.clause()
    ));
    let path = st.path.to_path_buf();
    walk(tx, st, &sql, &w, &path, read_review, f, corrupt)
}

/// Runs `sql` with `w`'s parameters and calls `f` with each row as `read`
/// makes it; a row `read` finds corrupt goes to `corrupt` when given (and
/// the walk goes on), else ends the walk with its error.
#[allow(clippy::too_many_arguments, reason = "one walk, every part named")]
pub(super) fn walk<T>(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    sql: &str,
    w: &Where,
    path: &Path,
    read: fn(&Row, &Path) -> Result<T, LedgerError>,
    f: Each<'_, T>,
    mut corrupt: Corrupt<'_>,
) -> Result<(), LedgerError> {
    let params = bind(&w.params);
    st.stream(tx, sql, &params, &mut |row| match read(row, path) {
        Ok(item) => f(&item),
        Err(e @ LedgerError::CorruptRow { .. }) => match corrupt.as_mut() {
            Some(report) => {
                report(e);
                Ok(())
            }
            None => Err(e),
        },
        Err(e) => Err(e),
    })
}

/// (key, status, count) grouped by the SQL expression `key`, sorted by key
/// then status in lifecycle order.
fn grouped_by(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    key: &str,
) -> Result<Vec<(String, String, u64)>, LedgerError> {
    let sql = format!(
        "SELECT {key} AS key, status, COUNT(*) AS n FROM reviews
         GROUP BY 1, 2 ORDER BY 1, {STATUS_RANK}"
    );
    let path = st.path.to_path_buf();
    st.query(tx, &sql, &[])?
        .iter()
        .map(|row| {
            let r = RowReader::new(row, &path, "reviews");
            Ok((r.get("key")?, r.get("status")?, r.count("n")?))
        })
        .collect()
}

fn oldest_pending(
    c: &mut impl GenericClient,
    st: &mut Statements<'_>,
) -> Result<Option<DateTime<Utc>>, LedgerError> {
    let row = st.query_one(
        c,
        "SELECT MIN(first_seen_at) AS first_seen_at FROM reviews WHERE status = 'pending'",
        &[],
    )?;
    RowReader::new(&row, st.path, "reviews").opt_time("first_seen_at")
}

/// A `reviews` row selected with [`REVIEW_COLUMNS`].
fn read_review(row: &Row, path: &Path) -> Result<ReviewRow, LedgerError> {
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
pub(super) fn read_attempt(row: &Row, path: &Path) -> Result<AttemptRow, LedgerError> {
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
        http_status: r.opt_int("http_status")?,
        error_type: r.get("error_type")?,
        error_message: r.get("error_message")?,
        request_id: r.get("request_id")?,
        duration_ms: r.count("duration_ms")?,
        outcome: r.get("outcome")?,
    })
}

/// The rows `retry` or `resend` may put back, locked until the transaction ends.
fn candidates(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    path: &Path,
    filter: &ReviewFilter,
    statuses: &[Status],
) -> Result<Vec<Candidate>, LedgerError> {
    let w = Where::reviews(filter, statuses);
    let sql = numbered(&format!(
        "SELECT {CANDIDATE_COLUMNS} FROM reviews{}
         ORDER BY first_seen_at, platform, review_id
         FOR UPDATE",
        w.clause()
    ));
    let params = bind(&w.params);
    st.query(tx, &sql, &params)?
        .iter()
        .map(|row| {
            let r = RowReader::new(row, path, "reviews");
            Ok(Candidate {
                platform: r.get("platform")?,
                review_id: r.get("review_id")?,
                source_name: r.get("source_name")?,
                location_id: r.get("location_id")?,
                payload: r.get("payload")?,
                status: r.status("status")?,
                content_hash: r.get("content_hash")?,
                group: group_of(r.get("group_id")?, r.get("group_external_ref")?),
                text_purged_at: r.opt_time("text_purged_at")?,
            })
        })
        .collect()
}

/// Puts `c` back to pending with `to`'s payload and group, and records it
/// in `requeues`.
fn requeue(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    c: &Candidate,
    to: &Requeue,
    now: &str,
    command: RequeueCommand,
) -> Result<(), LedgerError> {
    let (group_id, group_external_ref) = group_columns(Some(&to.group));
    st.execute(
        tx,
        "INSERT INTO requeues (platform, review_id, requeued_at, command, from_status,
             content_hash, group_id, group_external_ref)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &c.platform,
            &c.review_id,
            &now,
            &command.as_str(),
            &c.status.as_str(),
            &c.content_hash,
            &group_id,
            &group_external_ref,
        ],
    )?;
    st.execute(
        tx,
        "UPDATE reviews SET status = 'pending', next_attempt_at = $3, retry_count = 0,
             last_error = NULL, payload = $4, group_id = $5, group_external_ref = $6
         WHERE platform = $1 AND review_id = $2",
        &[
            &c.platform,
            &c.review_id,
            &now,
            &to.payload,
            &group_id,
            &group_external_ref,
        ],
    )?;
    Ok(())
}
