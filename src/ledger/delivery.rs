//! The outbox side: claiming due reviews and recording attempt outcomes.
//!
//! **Invariant:** a review is `delivered` only after the API's 2xx for the
//! version it holds; every attempt is a row in `attempts`, never a deletion.

use super::reviews::group_columns;
use super::row::RowReader;
use super::{
    AttemptOutcome, AttemptRecord, DueReview, Ledger, LedgerError, SentAs, sql_err, sql_int, time,
};
use crate::domain::GroupRef;
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
    /// clock that has since gone back (see [`crate::clock`]).
    ///
    /// A failure rolls everything back: the caller still holds the attempts
    /// and records them again.
    pub fn delivery_cycle(
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
        next_due(&self.conn, &self.path)
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
        // The columns always name the payload's group: recording a page and
        // `retry`/`resend` write both in one statement.
        let group = match (r.get("group_id")?, r.get("group_external_ref")?) {
            (Some(id), _) => Some(GroupRef::Id(id)),
            (None, Some(external)) => Some(GroupRef::ExternalRef(external)),
            (None, None) => None,
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GroupRef;
    use crate::ledger::{IncomingReview, PageRecord, Status};
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn page(ids: &[(&str, &str)]) -> PageRecord {
        PageRecord {
            source_name: "acme-google".into(),
            location_id: "loc-1".into(),
            group: Some(GroupRef::ExternalRef("g1".into())),
            hold_reason: None,
            reviews: ids
                .iter()
                .map(|(id, hash)| IncomingReview {
                    platform: "google".into(),
                    review_id: (*id).into(),
                    payload: format!(r#"{{"review":{{"review_id":"{id}","comment":"{hash}"}}}}"#),
                    content_hash: (*hash).into(),
                    source_updated_at: None,
                    notes: None,
                })
                .collect(),
            quarantined: vec![],
        }
    }

    fn delivered(d: &DueReview, at: DateTime<Utc>) -> AttemptRecord {
        AttemptRecord {
            platform: d.platform.clone(),
            review_id: d.review_id.clone(),
            content_hash: d.content_hash.clone(),
            attempted_at: at,
            http_status: Some(200),
            error_type: None,
            error_message: None,
            request_id: Some(format!("req-{}", d.review_id)),
            duration_ms: 3,
            outcome: AttemptOutcome::Delivered {
                request_id: format!("req-{}", d.review_id),
            },
            sent: d.sent.clone(),
        }
    }

    fn handed_back(
        d: &DueReview,
        lease_until: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> ReleasedClaim {
        ReleasedClaim {
            platform: d.platform.clone(),
            review_id: d.review_id.clone(),
            content_hash: d.content_hash.clone(),
            lease_until,
            due_at,
        }
    }

    fn next_attempt(ledger: &Ledger, id: &str) -> Option<String> {
        ledger
            .conn
            .query_row(
                "SELECT next_attempt_at FROM reviews WHERE review_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_cycle_records_outcomes_then_claims_and_says_when_more_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        ledger
            .record_page(&page(&[("r1", "h1"), ("r2", "h2"), ("r3", "h3")]), t0())
            .unwrap();
        let lease = t0() + Duration::seconds(40);
        let first = ledger.claim_due(t0(), lease, 2).unwrap();
        assert_eq!(first.len(), 2);

        let now = t0() + Duration::seconds(1);
        let attempts: Vec<_> = first.iter().map(|d| delivered(d, now)).collect();
        let later_lease = now + Duration::seconds(40);
        let report = ledger
            .delivery_cycle(&attempts, &[], Some(Claim::new(now, later_lease, 10)))
            .unwrap();
        let ids: Vec<_> = report
            .claimed
            .iter()
            .map(|d| d.review_id.as_str())
            .collect();
        assert_eq!(ids, ["r3"], "the delivered rows are no longer due");
        // Fewer than asked: the earliest pending time is r3's new lease.
        assert_eq!(report.next_due, Some(later_lease));
        let stats: (i64, i64) = ledger
            .conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM reviews WHERE status = 'delivered' AND attempts = 1),
                        (SELECT COUNT(*) FROM attempts WHERE outcome = 'delivered')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(stats, (2, 2));
    }

    #[test]
    fn a_released_claim_is_due_at_once_unless_the_row_changed_since() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        ledger
            .record_page(&page(&[("r1", "h1"), ("r2", "h2"), ("r3", "h3")]), t0())
            .unwrap();
        let lease = t0() + Duration::seconds(40);
        let claimed = ledger.claim_due(t0(), lease, 3).unwrap();
        assert_eq!(claimed.len(), 3);
        // r2 is edited while claimed: the edit is due now with its new hash.
        let edit_at = t0() + Duration::seconds(2);
        ledger
            .record_page(&page(&[("r2", "h2-edited")]), edit_at)
            .unwrap();

        let back = t0() + Duration::seconds(3);
        let wrong_lease = lease + Duration::seconds(1);
        let released = [
            handed_back(&claimed[0], lease, back),
            handed_back(&claimed[1], lease, back),
            // A claim whose lease is not the row's (claimed again since).
            handed_back(&claimed[2], wrong_lease, back),
        ];
        ledger.delivery_cycle(&[], &released, None).unwrap();
        assert_eq!(next_attempt(&ledger, "r1"), Some(time::to_text(back)));
        assert_eq!(
            next_attempt(&ledger, "r2"),
            Some(time::to_text(edit_at)),
            "the edit keeps its own schedule"
        );
        assert_eq!(next_attempt(&ledger, "r3"), Some(time::to_text(lease)));
        let due: Vec<_> = ledger
            .claim_due(back, back + Duration::seconds(40), 10)
            .unwrap()
            .into_iter()
            .map(|d| (d.review_id, d.content_hash))
            .collect();
        assert_eq!(
            due,
            [
                ("r2".to_owned(), "h2-edited".to_owned()),
                ("r1".to_owned(), "h1".to_owned())
            ]
        );
        let status: String = ledger
            .conn
            .query_row(
                "SELECT status FROM reviews WHERE review_id = 'r1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(status, Status::Pending.as_str());
    }

    /// The clock went back a day after r1 was leased and r2 scheduled for a
    /// retry in 5 minutes: both now lie a day ahead, further than any delay
    /// review-sync sets, and the next claim makes them due. Fresh leases are
    /// left alone; after a detected step, they are due too.
    #[test]
    fn rows_due_further_ahead_than_any_delay_are_made_due_by_the_next_claim() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        ledger
            .record_page(&page(&[("r1", "h1"), ("r2", "h2")]), t0())
            .unwrap();
        let claimed = ledger
            .claim_due(t0(), t0() + Duration::seconds(40), 2)
            .unwrap();
        let mut retry = delivered(&claimed[1], t0());
        retry.outcome = AttemptOutcome::Retry {
            next_attempt_at: t0() + Duration::minutes(5),
        };
        ledger.record_attempts(&[retry]).unwrap();

        let back = t0() - Duration::days(1);
        ledger.record_page(&page(&[("r3", "h3")]), back).unwrap();
        let lease = back + Duration::seconds(40);
        let report = ledger
            .delivery_cycle(&[], &[], Some(Claim::new(back, lease, 10)))
            .unwrap();
        assert_eq!(report.reanchored, 2);
        let mut ids: Vec<_> = report
            .claimed
            .iter()
            .map(|d| d.review_id.as_str())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, ["r1", "r2", "r3"]);

        // Leases of the current clock are kept by an ordinary claim...
        let later = back + Duration::seconds(1);
        let report = ledger
            .delivery_cycle(
                &[],
                &[],
                Some(Claim::new(later, later + Duration::seconds(40), 10)),
            )
            .unwrap();
        assert_eq!((report.reanchored, report.claimed.len()), (0, 0));
        assert_eq!(next_attempt(&ledger, "r3"), Some(time::to_text(lease)));
        // ...and made due by one after a detected step.
        let report = ledger
            .delivery_cycle(
                &[],
                &[],
                Some(Claim::new(later, later + Duration::seconds(40), 10).after_step()),
            )
            .unwrap();
        assert_eq!(
            report.reanchored, 3,
            "after a step every pending row is due"
        );
        assert_eq!(report.claimed.len(), 3);
    }
}
