//! The outbox side: claiming due reviews and recording attempt outcomes.
//!
//! **Invariant:** a review is `delivered` only after the API's 2xx for the
//! version it holds; every attempt is a row in `attempts`, never a deletion.
//!
//! **Invariant:** a claim selects its rows `FOR UPDATE SKIP LOCKED` and
//! moves their `next_attempt_at` to the lease in the same statement, so two
//! daemons sharing the database never claim the same row: a row another
//! transaction is claiming is skipped, and one it claimed is no longer due.

use super::super::common::{group_columns, group_of, last_error};
use super::super::engine::Delivery;
use super::super::{
    AttemptOutcome, AttemptRecord, Claim, CycleReport, DueReview, LedgerError, ReleasedClaim,
    SentAs, time,
};
use super::row::RowReader;
use super::{Postgres, Statements};
use ::postgres::Transaction;
use chrono::{DateTime, Utc};

impl Delivery for Postgres {
    fn delivery_cycle(
        &mut self,
        attempts: &[AttemptRecord],
        released: &[ReleasedClaim],
        claim: Option<Claim>,
    ) -> Result<CycleReport, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let mut tx = client.transaction().map_err(st.err())?;
        for a in attempts {
            append_attempt(&mut tx, &mut st, a)?;
            apply_outcome(&mut tx, &mut st, a)?;
        }
        for r in released {
            // Only a row still pending with that version and that very
            // lease: anything else changed it since.
            st.execute(
                &mut tx,
                "UPDATE reviews SET next_attempt_at = $5
                 WHERE platform = $1 AND review_id = $2 AND content_hash = $3
                   AND status = 'pending' AND next_attempt_at = $4",
                &[
                    &r.platform,
                    &r.review_id,
                    &r.content_hash,
                    &time::to_text(r.lease_until),
                    &time::to_text(r.due_at),
                ],
            )?;
        }
        let mut report = CycleReport::default();
        if let Some(claim) = claim {
            // After a step of our clock, only rows no other daemon holds:
            // another daemon's lease was set by its clock, not by ours, and
            // making it due here would send its review twice. A row due
            // further ahead than any retry or lease (`clock::LONGEST_DELAY`)
            // is nobody's lease: a clock gone back put it there, whoever's.
            let longest = chrono::Duration::from_std(crate::clock::LONGEST_DELAY)
                .unwrap_or(chrono::Duration::MAX);
            let beyond_any_lease = claim.now.checked_add_signed(longest).unwrap_or(claim.now);
            report.reanchored = st.execute(
                &mut tx,
                "UPDATE reviews SET next_attempt_at = $1
                 WHERE status = 'pending' AND next_attempt_at > $2
                   AND (claimed_by IS NULL OR claimed_by = $3 OR next_attempt_at > $4)",
                &[
                    &time::to_text(claim.now),
                    &time::to_text(claim.reanchor_after),
                    &self.holder,
                    &time::to_text(beyond_any_lease),
                ],
            )?;
            report.claimed = claim_due(&mut tx, &mut st, self, &claim)?;
            if report.claimed.len() < claim.limit {
                report.next_due = next_due(&mut tx, &mut st, self)?;
            }
        }
        tx.commit().map_err(st.err())?;
        if !attempts.is_empty() || !released.is_empty() || !report.claimed.is_empty() {
            self.wrote();
        }
        Ok(report)
    }

    fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let (mut client, mut st) = self.session()?;
        next_due(&mut *client, &mut st, self)
    }

    fn pending_count(&self) -> Result<u64, LedgerError> {
        let (mut client, mut st) = self.session()?;
        st.count(
            &mut *client,
            "SELECT COUNT(*) FROM reviews WHERE status = 'pending'",
            &[],
        )
    }

    fn make_pending_due(&mut self, at: DateTime<Utc>) -> Result<u64, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let changed = st.execute(
            &mut *client,
            "UPDATE reviews SET next_attempt_at = $1
             WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at > $1)",
            &[&time::to_text(at)],
        )?;
        self.wrote();
        Ok(changed)
    }
}

/// Claims up to `claim.limit` due rows, oldest due first, skipping rows
/// another transaction holds, and leases them in the same statement.
fn claim_due(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    ledger: &Postgres,
    claim: &Claim,
) -> Result<Vec<DueReview>, LedgerError> {
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    let rows = st.query(
        tx,
        "WITH due AS (
             SELECT platform, review_id, next_attempt_at AS due_at FROM reviews
             WHERE status = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE reviews r SET next_attempt_at = $3, claimed_by = $4
         FROM due
         WHERE r.platform = due.platform AND r.review_id = due.review_id
         RETURNING r.platform, r.review_id, r.payload, r.content_hash, r.retry_count,
             r.group_id, r.group_external_ref, due.due_at",
        &[
            &time::to_text(claim.now),
            &limit,
            &time::to_text(claim.lease_until),
            &ledger.holder,
        ],
    )?;
    let mut due = Vec::with_capacity(rows.len());
    for row in &rows {
        let r = RowReader::new(row, &ledger.path, "reviews");
        let payload: String = r.get("payload")?;
        let retry_count: i64 = r.get("retry_count")?;
        let due_at: String = r.get("due_at")?;
        due.push((
            due_at,
            DueReview {
                platform: r.get("platform")?,
                review_id: r.get("review_id")?,
                sent: SentAs::new(
                    group_of(r.get("group_id")?, r.get("group_external_ref")?),
                    &payload,
                ),
                payload,
                content_hash: r.get("content_hash")?,
                retry_count: u32::try_from(retry_count).unwrap_or(u32::MAX),
            },
        ));
    }
    // RETURNING has no order: oldest due first, as the claim chose them.
    due.sort_by(|(a, x), (b, y)| {
        (a, &x.platform, &x.review_id).cmp(&(b, &y.platform, &y.review_id))
    });
    Ok(due.into_iter().map(|(_, d)| d).collect())
}

fn next_due(
    c: &mut impl ::postgres::GenericClient,
    st: &mut Statements<'_>,
    ledger: &Postgres,
) -> Result<Option<DateTime<Utc>>, LedgerError> {
    let row = st.query_one(
        c,
        "SELECT MIN(next_attempt_at) AS next_attempt_at FROM reviews WHERE status = 'pending'",
        &[],
    )?;
    RowReader::new(&row, &ledger.path, "reviews").opt_time("next_attempt_at")
}

fn append_attempt(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    a: &AttemptRecord,
) -> Result<(), LedgerError> {
    let (group_id, group_external_ref) = group_columns(a.sent.group.as_ref());
    let duration_ms = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
    st.execute(
        tx,
        "INSERT INTO attempts (platform, review_id, content_hash, attempted_at, http_status,
             error_type, error_message, request_id, duration_ms, outcome,
             group_id, group_external_ref, body_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &a.platform,
            &a.review_id,
            &a.content_hash,
            &time::to_text(a.attempted_at),
            &a.http_status.map(i64::from),
            &a.error_type,
            &a.error_message,
            &a.request_id,
            &duration_ms,
            &a.outcome.as_str(),
            &group_id,
            &group_external_ref,
            &a.sent.body_hash,
        ],
    )?;
    Ok(())
}

/// Counts the attempt on the row and applies the outcome if the row still
/// holds the version that was sent (see the SQLite engine's notes).
fn apply_outcome(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    a: &AttemptRecord,
) -> Result<(), LedgerError> {
    let at = time::to_text(a.attempted_at);
    let applied = match &a.outcome {
        // A 2xx wins whatever the row's status: the API has this version.
        AttemptOutcome::Delivered { request_id } => st.execute(
            tx,
            "UPDATE reviews SET status = 'delivered', delivered_at = $4, request_id = $5,
                 last_error = NULL, retry_count = 0, next_attempt_at = NULL,
                 attempts = attempts + 1
             WHERE platform = $1 AND review_id = $2 AND content_hash = $3",
            &[&a.platform, &a.review_id, &a.content_hash, &at, request_id],
        )?,
        // Failures apply only to a row still `pending`: when a lease ran
        // out and the same version was sent twice, a late failure must not
        // undo a delivery.
        AttemptOutcome::Retry { next_attempt_at } => st.execute(
            tx,
            "UPDATE reviews SET next_attempt_at = $4, retry_count = retry_count + 1,
                 last_error = $5, attempts = attempts + 1
             WHERE platform = $1 AND review_id = $2 AND content_hash = $3
               AND status = 'pending'",
            &[
                &a.platform,
                &a.review_id,
                &a.content_hash,
                &time::to_text(*next_attempt_at),
                &last_error(a),
            ],
        )?,
        AttemptOutcome::Held | AttemptOutcome::Rejected => st.execute(
            tx,
            "UPDATE reviews SET status = $4, last_error = $5, next_attempt_at = NULL,
                 attempts = attempts + 1
             WHERE platform = $1 AND review_id = $2 AND content_hash = $3
               AND status = 'pending'",
            &[
                &a.platform,
                &a.review_id,
                &a.content_hash,
                &a.outcome.as_str(),
                &last_error(a),
            ],
        )?,
    };
    if applied == 0 {
        st.execute(
            tx,
            "UPDATE reviews SET attempts = attempts + 1 WHERE platform = $1 AND review_id = $2",
            &[&a.platform, &a.review_id],
        )?;
    }
    Ok(())
}
