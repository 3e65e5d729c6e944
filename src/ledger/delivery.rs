//! The outbox side: claiming due reviews and recording attempt outcomes.
//!
//! **Invariant:** a review is `delivered` only after the API's 2xx for the
//! version it holds; every attempt is a row in `attempts`, never a deletion.

use super::row::RowReader;
use super::{
    AttemptOutcome, AttemptRecord, DueReview, Ledger, LedgerError, sql_err, sql_int, time,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, named_params};

impl Ledger {
    /// Claims up to `limit` pending reviews with `next_attempt_at <= now`,
    /// oldest due first, and in the same transaction pushes their
    /// `next_attempt_at` to `lease_until` so no other claim takes them while
    /// they are in flight (and a crash makes them due again after the lease).
    pub fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueReview>, LedgerError> {
        let err = sql_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let due = select_due(&tx, &self.path, now, limit)?;
        let lease = time::to_text(lease_until);
        {
            let mut push = tx
                .prepare_cached(
                    "UPDATE reviews SET next_attempt_at = ?3
                     WHERE platform = ?1 AND review_id = ?2",
                )
                .map_err(&err)?;
            for d in &due {
                push.execute((&d.platform, &d.review_id, &lease))
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)?;
        Ok(due)
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
        let err = sql_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        for a in attempts {
            append_attempt(&tx, a).map_err(&err)?;
            apply_outcome(&tx, a).map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    /// The earliest `next_attempt_at` among pending rows (what the worker sleeps until).
    pub fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT MIN(next_attempt_at) AS next_attempt_at FROM reviews
                 WHERE status = 'pending'",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(row) => RowReader::new(row, &self.path, "reviews").opt_time("next_attempt_at"),
            None => Ok(None),
        }
    }

    /// Number of pending rows.
    pub fn pending_count(&self) -> Result<u64, LedgerError> {
        self.count("SELECT COUNT(*) FROM reviews WHERE status = 'pending'", [])
    }

    /// Makes every pending row due at `at` (used to resume after a pause or
    /// when `sync` should not wait out a long backoff). Returns rows changed.
    ///
    /// This includes rows leased by [`Ledger::claim_due`]: call it when no
    /// delivery is in flight, or such a row may be sent twice (harmless for
    /// the API, which treats a repeat as an update, but wasted).
    pub fn make_pending_due(&mut self, at: DateTime<Utc>) -> Result<u64, LedgerError> {
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

fn select_due(
    conn: &Connection,
    path: &std::path::Path,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<DueReview>, LedgerError> {
    let err = sql_err(path);
    // `status = 'pending'` spelled literally so the partial index applies.
    let mut st = conn
        .prepare_cached(
            "SELECT platform, review_id, payload, content_hash, retry_count FROM reviews
             WHERE status = 'pending' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT ?2",
        )
        .map_err(&err)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = st.query((time::to_text(now), limit)).map_err(&err)?;
    let mut due = Vec::new();
    while let Some(row) = rows.next().map_err(&err)? {
        let r = RowReader::new(row, path, "reviews");
        due.push(DueReview {
            platform: r.get("platform")?,
            review_id: r.get("review_id")?,
            payload: r.get("payload")?,
            content_hash: r.get("content_hash")?,
            retry_count: r.get("retry_count")?,
        });
    }
    Ok(due)
}

fn append_attempt(conn: &Connection, a: &AttemptRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO attempts (platform, review_id, content_hash, attempted_at, http_status,
             error_type, error_message, request_id, duration_ms, outcome)
         VALUES (:platform, :review_id, :hash, :at, :http_status,
             :error_type, :error_message, :request_id, :duration_ms, :outcome)",
    )?
    .execute(named_params! {
        ":platform": a.platform,
        ":review_id": a.review_id,
        ":hash": a.content_hash,
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

/// Counts the attempt on the row, then applies the outcome if the row still
/// holds the version that was sent: an edit recorded while the request was
/// in flight must stay pending, or it would never be sent.
fn apply_outcome(conn: &Connection, a: &AttemptRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE reviews SET attempts = attempts + 1 WHERE platform = ?1 AND review_id = ?2",
    )?
    .execute((&a.platform, &a.review_id))?;
    match &a.outcome {
        AttemptOutcome::Delivered { request_id } => mark_delivered(conn, a, request_id),
        AttemptOutcome::Retry { next_attempt_at } => schedule_retry(conn, a, *next_attempt_at),
        AttemptOutcome::Held | AttemptOutcome::Rejected => settle_failed(conn, a),
    }
}

/// A 2xx wins whatever the row's status: the API has this version.
fn mark_delivered(conn: &Connection, a: &AttemptRecord, request_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE reviews SET status = 'delivered', delivered_at = :at, request_id = :request_id,
             last_error = NULL, retry_count = 0, next_attempt_at = NULL
         WHERE platform = :platform AND review_id = :review_id AND content_hash = :hash",
    )?
    .execute(named_params! {
        ":platform": a.platform,
        ":review_id": a.review_id,
        ":hash": a.content_hash,
        ":at": time::to_text(a.attempted_at),
        ":request_id": request_id,
    })?;
    Ok(())
}

// Failures apply only to a row still `pending`: when a lease ran out and the
// same version was sent twice, a late failure must not undo a delivery.

fn schedule_retry(
    conn: &Connection,
    a: &AttemptRecord,
    next_attempt_at: DateTime<Utc>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE reviews SET next_attempt_at = :next, retry_count = retry_count + 1,
             last_error = :last_error
         WHERE platform = :platform AND review_id = :review_id AND content_hash = :hash
           AND status = 'pending'",
    )?
    .execute(named_params! {
        ":platform": a.platform,
        ":review_id": a.review_id,
        ":hash": a.content_hash,
        ":next": time::to_text(next_attempt_at),
        ":last_error": last_error(a),
    })?;
    Ok(())
}

fn settle_failed(conn: &Connection, a: &AttemptRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE reviews SET status = :status, last_error = :last_error, next_attempt_at = NULL
         WHERE platform = :platform AND review_id = :review_id AND content_hash = :hash
           AND status = 'pending'",
    )?
    .execute(named_params! {
        ":platform": a.platform,
        ":review_id": a.review_id,
        ":hash": a.content_hash,
        ":status": a.outcome.as_str(),
        ":last_error": last_error(a),
    })?;
    Ok(())
}

/// `reviews.last_error` for a failed attempt: "error_type: message", or
/// whichever of the two exists, or the HTTP status as a last resort.
fn last_error(a: &AttemptRecord) -> Option<String> {
    match (&a.error_type, &a.error_message) {
        (Some(t), Some(m)) => Some(format!("{t}: {m}")),
        (Some(t), None) => Some(t.clone()),
        (None, Some(m)) => Some(m.clone()),
        (None, None) => a.http_status.map(|s| format!("http_{s}")),
    }
}
