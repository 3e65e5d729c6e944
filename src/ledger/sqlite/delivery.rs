//! The outbox side: claiming due reviews and recording attempt outcomes.
//!
//! **Invariant:** a review is `delivered` only after the API's 2xx for the
//! version it holds; every attempt is a row in `attempts`, never a deletion.

use super::super::common::{group_columns, group_of, last_error};
use super::super::engine::Delivery;
use super::super::{
    AttemptOutcome, AttemptRecord, Claim, CycleReport, DueReview, LedgerError, ReleasedClaim,
    SentAs, time,
};
use super::row::RowReader;
use super::{Sqlite, sql_err, sql_int};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, named_params};

impl Delivery for Sqlite {
    fn delivery_cycle(
        &mut self,
        attempts: &[AttemptRecord],
        released: &[ReleasedClaim],
        claim: Option<Claim>,
    ) -> Result<CycleReport, LedgerError> {
        let err = sql_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        for a in attempts {
            append_attempt(&tx, a).map_err(&err)?;
            apply_outcome(&tx, a).map_err(&err)?;
        }
        for r in released {
            release(&tx, r).map_err(&err)?;
        }
        let mut report = CycleReport::default();
        if let Some(claim) = claim {
            report.reanchored = reanchor(&tx, &claim).map_err(&err)?;
            let due = select_due(&tx, &self.path, claim.now, claim.limit)?;
            let lease = time::to_text(claim.lease_until);
            {
                // By rowid: one b-tree seek instead of the primary-key index
                // and then the table.
                let mut push = tx
                    .prepare_cached("UPDATE reviews SET next_attempt_at = ?2 WHERE rowid = ?1")
                    .map_err(&err)?;
                for (rowid, _) in &due {
                    push.execute((rowid, &lease)).map_err(&err)?;
                }
            }
            let short = due.len() < claim.limit;
            report.claimed = due.into_iter().map(|(_, d)| d).collect();
            if short {
                report.next_due = next_due(&tx, &self.path)?;
            }
        }
        tx.commit().map_err(&err)?;
        Ok(report)
    }

    fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        next_due(&self.conn, &self.path)
    }

    fn pending_count(&self) -> Result<u64, LedgerError> {
        self.count("SELECT COUNT(*) FROM reviews WHERE status = 'pending'", [])
    }

    fn make_pending_due(&mut self, at: DateTime<Utc>) -> Result<u64, LedgerError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE reviews SET next_attempt_at = ?1
                 WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at > ?1)",
            )
            .and_then(|mut st| st.execute([time::to_text(at)]))
            .map_err(|e| self.err(e))?;
        Ok(changed as u64)
    }
}

/// Makes pending rows due later than `claim.reanchor_after` due at
/// `claim.now`; returns how many. The partial index `reviews_due` makes it
/// a range scan that finds nothing in the usual case.
fn reanchor(conn: &Connection, claim: &Claim) -> rusqlite::Result<u64> {
    let changed = conn
        .prepare_cached(
            "UPDATE reviews SET next_attempt_at = ?1
             WHERE status = 'pending' AND next_attempt_at > ?2",
        )?
        .execute((
            time::to_text(claim.now),
            time::to_text(claim.reanchor_after),
        ))?;
    Ok(changed as u64)
}

fn next_due(
    conn: &Connection,
    path: &std::path::Path,
) -> Result<Option<DateTime<Utc>>, LedgerError> {
    let err = sql_err(path);
    let mut st = conn
        .prepare_cached(
            "SELECT MIN(next_attempt_at) AS next_attempt_at FROM reviews
             WHERE status = 'pending'",
        )
        .map_err(&err)?;
    let mut rows = st.query([]).map_err(&err)?;
    match rows.next().map_err(&err)? {
        Some(row) => RowReader::new(row, path, "reviews").opt_time("next_attempt_at"),
        None => Ok(None),
    }
}

/// The due rows with their rowids (for the lease update).
fn select_due(
    conn: &Connection,
    path: &std::path::Path,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<(i64, DueReview)>, LedgerError> {
    let err = sql_err(path);
    // `status = 'pending'` spelled literally so the partial index applies.
    let mut st = conn
        .prepare_cached(
            "SELECT rowid, platform, review_id, payload, content_hash, retry_count,
                 group_id, group_external_ref FROM reviews
             WHERE status = 'pending' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT ?2",
        )
        .map_err(&err)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = st.query((time::to_text(now), limit)).map_err(&err)?;
    let mut due = Vec::new();
    while let Some(row) = rows.next().map_err(&err)? {
        let rowid: i64 = row.get(0).map_err(&err)?;
        let r = RowReader::new(row, path, "reviews");
        let payload: String = r.get("payload")?;
        let group = group_of(r.get("group_id")?, r.get("group_external_ref")?);
        due.push((
            rowid,
            DueReview {
                platform: r.get("platform")?,
                review_id: r.get("review_id")?,
                sent: SentAs::new(group, &payload),
                payload,
                content_hash: r.get("content_hash")?,
                retry_count: r.get("retry_count")?,
            },
        ));
    }
    Ok(due)
}

/// Ends the lease of a claim that was never sent. Only a row still pending
/// with that version and that very lease: anything else changed it since.
fn release(conn: &Connection, r: &ReleasedClaim) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE reviews SET next_attempt_at = :due
         WHERE platform = :platform AND review_id = :review_id AND content_hash = :hash
           AND status = 'pending' AND next_attempt_at = :lease",
    )?
    .execute(named_params! {
        ":platform": r.platform,
        ":review_id": r.review_id,
        ":hash": r.content_hash,
        ":lease": time::to_text(r.lease_until),
        ":due": time::to_text(r.due_at),
    })?;
    Ok(())
}

fn append_attempt(conn: &Connection, a: &AttemptRecord) -> rusqlite::Result<()> {
    let (group_id, group_external_ref) = group_columns(a.sent.group.as_ref());
    conn.prepare_cached(
        "INSERT INTO attempts (platform, review_id, content_hash, attempted_at, http_status,
             error_type, error_message, request_id, duration_ms, outcome,
             group_id, group_external_ref, body_hash)
         VALUES (:platform, :review_id, :hash, :at, :http_status,
             :error_type, :error_message, :request_id, :duration_ms, :outcome,
             :group_id, :group_external_ref, :body_hash)",
    )?
    .execute(named_params! {
        ":platform": a.platform,
        ":review_id": a.review_id,
        ":hash": a.content_hash,
        ":group_id": group_id,
        ":group_external_ref": group_external_ref,
        ":body_hash": a.sent.body_hash,
        ":at": time::to_text(a.attempted_at),
        ":http_status": a.http_status,
        ":error_type": a.error_type,
        ":error_message": a.error_message,
        ":request_id": a.request_id,
        ":duration_ms": sql_int(a.duration_ms),
        ":outcome": a.outcome.as_str(),
    })?;
    Ok(())
}

/// Counts the attempt on the row and applies the outcome if the row still
/// holds the version that was sent: an edit recorded while the request was
/// in flight must stay pending, or it would never be sent. One statement in
/// the usual case (the row holds the version sent); when it does not, the
/// attempt is still counted.
fn apply_outcome(conn: &Connection, a: &AttemptRecord) -> rusqlite::Result<()> {
    let applied = match &a.outcome {
        AttemptOutcome::Delivered { request_id } => mark_delivered(conn, a, request_id)?,
        AttemptOutcome::Retry { next_attempt_at } => schedule_retry(conn, a, *next_attempt_at)?,
        AttemptOutcome::Held | AttemptOutcome::Rejected => settle_failed(conn, a)?,
    };
    if applied == 0 {
        conn.prepare_cached(
            "UPDATE reviews SET attempts = attempts + 1 WHERE platform = ?1 AND review_id = ?2",
        )?
        .execute((&a.platform, &a.review_id))?;
    }
    Ok(())
}

/// A 2xx wins whatever the row's status: the API has this version.
fn mark_delivered(
    conn: &Connection,
    a: &AttemptRecord,
    request_id: &str,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE reviews SET status = 'delivered', delivered_at = :at, request_id = :request_id,
             last_error = NULL, retry_count = 0, next_attempt_at = NULL,
             attempts = attempts + 1
         WHERE platform = :platform AND review_id = :review_id AND content_hash = :hash",
    )?
    .execute(named_params! {
        ":platform": a.platform,
        ":review_id": a.review_id,
        ":hash": a.content_hash,
        ":at": time::to_text(a.attempted_at),
        ":request_id": request_id,
    })
}

// Failures apply only to a row still `pending`: when a lease ran out and the
// same version was sent twice, a late failure must not undo a delivery.

fn schedule_retry(
    conn: &Connection,
    a: &AttemptRecord,
    next_attempt_at: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE reviews SET next_attempt_at = :next, retry_count = retry_count + 1,
             last_error = :last_error, attempts = attempts + 1
         WHERE platform = :platform AND review_id = :review_id AND content_hash = :hash
           AND status = 'pending'",
    )?
    .execute(named_params! {
        ":platform": a.platform,
        ":review_id": a.review_id,
        ":hash": a.content_hash,
        ":next": time::to_text(next_attempt_at),
        ":last_error": last_error(a),
    })
}

fn settle_failed(conn: &Connection, a: &AttemptRecord) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE reviews SET status = :status, last_error = :last_error, next_attempt_at = NULL,
             attempts = attempts + 1
         WHERE platform = :platform AND review_id = :review_id AND content_hash = :hash
           AND status = 'pending'",
    )?
    .execute(named_params! {
        ":platform": a.platform,
        ":review_id": a.review_id,
        ":hash": a.content_hash,
        ":status": a.outcome.as_str(),
        ":last_error": last_error(a),
    })
}
