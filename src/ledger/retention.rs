//! Retention (`[ledger] retain_text_days`, `ledger purge`): removing review
//! text and reviewer names from reviews delivered long ago, and the record of
//! every purge (table `purges`).
//!
//! What goes is decided by `travtus::body::purge_text`, which knows the
//! body: the text a reviewer wrote and the name they wrote it under
//! ([`PURGED_FIELDS`]). The ledger only stores its answer. What stays: every column
//! (ids, `content_hash`, group, status, times, `request_id`, `notes`), the
//! rest of the body (source, rating, `is_anonymous`, dates), and the whole
//! `attempts` history. Because `content_hash` is unchanged, a later poll
//! that sees the same review finds it unchanged and sends nothing; an edit
//! on the platform (a new hash) is stored and sent as usual, text included,
//! and purged again once it is old enough.
//!
//! `notes` are kept: they hold platform facts such as `{"excerpt":"true"}`,
//! never text written by or about a person. Quarantined raw records are kept
//! too: they were never delivered and are the evidence needed to fix them.
//!
//! **Invariant:** a purge changes only `payload` and `text_purged_at` of
//! `delivered` rows; rows are never deleted.

use super::{Ledger, LedgerError, sql_err, sql_int, time};
use crate::travtus::body::{self, Purged};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{TransactionBehavior, params_from_iter};

pub use crate::travtus::body::PURGED_FIELDS;

/// Rows purged per transaction: a first purge of a large ledger must not
/// hold SQLite's write lock for seconds, or the daemon's (and any other
/// process's) writes would wait out their busy timeout and fail. A batch of
/// 500 takes a few milliseconds.
const BATCH: i64 = 500;

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
    id: i64,
    cutoff: String,
    now: String,
    /// The walk goes by rowid, so each step starts where the last one
    /// stopped instead of re-reading purged rows.
    after: i64,
    rows_purged: u64,
}

impl Purge {
    /// Rows purged so far.
    pub fn rows_purged(&self) -> u64 {
        self.rows_purged
    }
}

impl Ledger {
    /// Removes [`PURGED_FIELDS`] from the body of every `delivered` review
    /// delivered before `cutoff` that still has any of them (or was never
    /// marked purged), sets its `text_purged_at` to `now`, and records the
    /// purge in `purges` (also when nothing was left to purge, so auditors
    /// see the policy run). Returns the rows purged. One transaction per
    /// [`BATCH`] rows (see [`Ledger::purge_step`]).
    pub fn purge_text(
        &mut self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        by: PurgedBy,
    ) -> Result<u64, LedgerError> {
        let mut purge = self.start_purge(cutoff, now, by)?;
        while self.purge_step(&mut purge)? {}
        Ok(purge.rows_purged)
    }

    /// Records a new purge in `purges` (0 rows so far) and returns it.
    pub fn start_purge(
        &mut self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        by: PurgedBy,
    ) -> Result<Purge, LedgerError> {
        let (now, cutoff) = (time::to_text(now), time::to_text(cutoff));
        let id = self
            .conn
            .prepare_cached(
                "INSERT INTO purges (purged_at, cutoff, rows_purged, purged_by)
                 VALUES (?1, ?2, 0, ?3) RETURNING id",
            )
            .and_then(|mut st| st.query_row((&now, &cutoff, by.as_str()), |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        Ok(Purge {
            id,
            cutoff,
            now,
            after: 0,
            rows_purged: 0,
        })
    }

    /// Purges the next [`BATCH`] rows of `purge` in one transaction, which
    /// also updates the purge's `rows_purged`, so the record always matches
    /// what was committed, even after a crash. Returns whether rows may be
    /// left.
    pub fn purge_step(&mut self, purge: &mut Purge) -> Result<bool, LedgerError> {
        let err = sql_err(&self.path);
        // Rows never purged, and rows that may hold text again (a hand
        // edit): the body module says which substrings such a body holds.
        let hints: Vec<String> = body::purge_hints().collect();
        let may_hold_text = hints
            .iter()
            .map(|_| "instr(payload, ?) > 0")
            .collect::<Vec<_>>()
            .join(" OR ");
        let select = format!(
            "SELECT rowid, payload, text_purged_at IS NULL FROM reviews
             WHERE rowid > ? AND status = 'delivered' AND delivered_at < ?
               AND (text_purged_at IS NULL OR {may_hold_text})
             ORDER BY rowid LIMIT ?"
        );
        let mut params = vec![Value::from(purge.after), Value::from(purge.cutoff.clone())];
        params.extend(hints.into_iter().map(Value::from));
        params.push(Value::from(BATCH));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let batch: Vec<(i64, String, bool)> = {
            let mut st = tx.prepare_cached(&select).map_err(&err)?;
            st.query_map(params_from_iter(params), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(&err)?
        };
        let mut purged = 0u64;
        for (rowid, payload, never_stamped) in &batch {
            let new_payload = match body::purge_text(payload) {
                Purged::Removed(text) => Some(text),
                // Nothing left to remove: stamped once, so auditors see
                // the policy reached it.
                Purged::NothingToRemove if *never_stamped => None,
                Purged::NothingToRemove | Purged::NotJson => continue,
            };
            tx.prepare_cached(
                "UPDATE reviews SET payload = coalesce(?2, payload), text_purged_at = ?3
                 WHERE rowid = ?1",
            )
            .and_then(|mut st| st.execute((rowid, new_payload, &purge.now)))
            .map_err(&err)?;
            purged += 1;
        }
        let rows_purged = purge.rows_purged + purged;
        tx.prepare_cached("UPDATE purges SET rows_purged = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute((purge.id, sql_int(rows_purged))))
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        purge.rows_purged = rows_purged;
        match batch.last() {
            Some((last, _, _)) if batch.len() as i64 == BATCH => {
                purge.after = *last;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Every purge, oldest first.
    pub fn purges(&self) -> Result<Vec<PurgeRow>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT purged_at, cutoff, rows_purged, purged_by FROM purges ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let r = super::row::RowReader::new(row, &self.path, "purges");
            let by: String = r.get("purged_by")?;
            out.push(PurgeRow {
                purged_at: r.time("purged_at")?,
                cutoff: r.time("cutoff")?,
                rows_purged: r.count("rows_purged")?,
                purged_by: if by == "daemon" {
                    PurgedBy::Daemon
                } else {
                    PurgedBy::Cli
                },
            });
        }
        Ok(out)
    }

    /// When the text of a review was purged (`None`: never, or it was
    /// edited since and holds text again).
    pub fn text_purged_at(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT platform, review_id, text_purged_at FROM reviews
                 WHERE platform = ?1 AND review_id = ?2",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query((platform, review_id)).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(row) => {
                super::row::RowReader::new(row, &self.path, "reviews").opt_time("text_purged_at")
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{AttemptOutcome, AttemptRecord, IncomingReview, PageRecord};
    use chrono::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn review(id: &str, hash: &str, comment: &str) -> IncomingReview {
        IncomingReview {
            platform: "google".into(),
            review_id: id.into(),
            payload: format!(
                r#"{{"group_external_ref":"g1","channel":"review","review":{{"source":"google","review_id":"{id}","title":"T {id}","comment":"{comment}","rating":4,"display_name":"Ann {id}","is_anonymous":false,"created_datetime":"2026-01-01T00:00:00"}}}}"#
            ),
            content_hash: hash.into(),
            source_updated_at: Some(at("2026-01-01T00:00:00Z")),
            notes: Some(r#"{"excerpt":"true"}"#.into()),
        }
    }

    fn page(reviews: Vec<IncomingReview>) -> PageRecord {
        PageRecord {
            source_name: "acme".into(),
            location_id: "loc".into(),
            group: Some(crate::domain::GroupRef::ExternalRef("g1".into())),
            hold_reason: None,
            reviews,
            quarantined: vec![],
        }
    }

    fn delivered(id: &str, hash: &str, when: DateTime<Utc>) -> AttemptRecord {
        AttemptRecord {
            platform: "google".into(),
            review_id: id.into(),
            content_hash: hash.into(),
            attempted_at: when,
            http_status: Some(201),
            error_type: None,
            error_message: None,
            request_id: Some(format!("req-{id}")),
            duration_ms: 3,
            outcome: AttemptOutcome::Delivered {
                request_id: format!("req-{id}"),
            },
            sent: crate::ledger::SentAs::default(),
        }
    }

    fn payload(ledger: &Ledger, id: &str) -> serde_json::Value {
        let (row, _) = ledger.show("google", id).unwrap().unwrap();
        serde_json::from_str(&row.payload).unwrap()
    }

    /// old1/old2 delivered in January, new1 delivered in June, pend pending.
    fn seeded() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        let t = at("2026-01-10T00:00:00Z");
        l.record_page(
            &page(vec![
                review("old1", "h1", "great flat"),
                review("old2", "h2", "noisy"),
                review("new1", "h3", "fine"),
                review("pend", "h4", "waiting"),
            ]),
            t,
        )
        .unwrap();
        l.record_attempts(&[
            delivered("old1", "h1", t),
            delivered("old2", "h2", t),
            delivered("new1", "h3", at("2026-06-01T00:00:00Z")),
        ])
        .unwrap();
        (dir, l)
    }

    #[test]
    fn purge_removes_text_and_names_of_old_deliveries_only() {
        let (_dir, mut l) = seeded();
        let before = l.show("google", "old1").unwrap().unwrap().0;
        let now = at("2026-07-01T00:00:00Z");
        let n = l
            .purge_text(at("2026-03-01T00:00:00Z"), now, PurgedBy::Cli)
            .unwrap();
        assert_eq!(n, 2);
        let old = payload(&l, "old1");
        for f in PURGED_FIELDS {
            assert!(old["review"].get(f).is_none(), "{f} purged: {old}");
        }
        assert_eq!(old["review"]["rating"], 4);
        assert_eq!(old["review"]["review_id"], "old1");
        assert_eq!(old["group_external_ref"], "g1");
        assert_eq!(old["review"]["created_datetime"], "2026-01-01T00:00:00");
        let after = l.show("google", "old1").unwrap().unwrap().0;
        assert_eq!(after.content_hash, before.content_hash, "hash kept");
        assert_eq!(after.request_id, before.request_id);
        assert_eq!(after.delivered_at, before.delivered_at);
        assert_eq!(l.text_purged_at("google", "old1").unwrap(), Some(now));
        // Newer deliveries and undelivered rows keep their text.
        assert_eq!(payload(&l, "new1")["review"]["comment"], "fine");
        assert_eq!(payload(&l, "pend")["review"]["display_name"], "Ann pend");
        assert_eq!(l.text_purged_at("google", "new1").unwrap(), None);
        // Notes are not personal data and stay.
        let notes: String = l
            .conn
            .query_row(
                "SELECT notes FROM reviews WHERE review_id = 'old1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(notes, r#"{"excerpt":"true"}"#);
        assert_eq!(
            l.purges().unwrap(),
            vec![PurgeRow {
                purged_at: now,
                cutoff: at("2026-03-01T00:00:00Z"),
                rows_purged: 2,
                purged_by: PurgedBy::Cli,
            }]
        );
    }

    #[test]
    fn a_purged_review_seen_again_is_unchanged_and_an_edit_brings_text_back() {
        let (_dir, mut l) = seeded();
        l.purge_text(
            at("2026-03-01T00:00:00Z"),
            at("2026-07-01T00:00:00Z"),
            PurgedBy::Daemon,
        )
        .unwrap();
        let now = at("2026-07-02T00:00:00Z");
        let counts = l
            .record_page(&page(vec![review("old1", "h1", "great flat")]), now)
            .unwrap();
        assert_eq!((counts.unchanged, counts.edited), (1, 0), "nothing to send");
        assert_eq!(l.claim_due(now, now, 10).unwrap().len(), 1, "only `pend`");

        let counts = l
            .record_page(&page(vec![review("old2", "h2b", "quieter now")]), now)
            .unwrap();
        assert_eq!(counts.edited, 1);
        assert_eq!(payload(&l, "old2")["review"]["comment"], "quieter now");
        assert_eq!(
            l.text_purged_at("google", "old2").unwrap(),
            None,
            "an edit holds text again"
        );
    }

    #[test]
    fn purging_again_finds_nothing_and_is_still_recorded() {
        let (_dir, mut l) = seeded();
        let cutoff = at("2026-12-01T00:00:00Z");
        assert_eq!(l.purge_text(cutoff, cutoff, PurgedBy::Cli).unwrap(), 3);
        assert_eq!(l.purge_text(cutoff, cutoff, PurgedBy::Daemon).unwrap(), 0);
        let purges = l.purges().unwrap();
        assert_eq!(purges.len(), 2);
        assert_eq!(purges[1].rows_purged, 0);
        assert_eq!(purges[1].purged_by, PurgedBy::Daemon);
    }

    /// Text put back by hand into a purged row is purged again; a row
    /// whose body is not JSON is left alone and not counted.
    #[test]
    fn text_edited_back_into_a_purged_row_is_found_again() {
        let (_dir, mut l) = seeded();
        let cutoff = at("2026-03-01T00:00:00Z");
        assert_eq!(l.purge_text(cutoff, cutoff, PurgedBy::Cli).unwrap(), 2);
        l.conn
            .execute_batch(
                r#"UPDATE reviews SET payload = '{"review":{"title":"back"}}' WHERE review_id = 'old1';
                   UPDATE reviews SET payload = 'not json', text_purged_at = NULL WHERE review_id = 'old2';"#,
            )
            .unwrap();
        assert_eq!(l.purge_text(cutoff, cutoff, PurgedBy::Cli).unwrap(), 1);
        assert_eq!(payload(&l, "old1"), serde_json::json!({"review": {}}));
        let (row, _) = l.show("google", "old2").unwrap().unwrap();
        assert_eq!(row.payload, "not json");
    }

    #[test]
    fn a_purge_larger_than_a_batch_purges_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        let t = at("2026-01-10T00:00:00Z");
        let n = 1234;
        let reviews: Vec<_> = (0..n)
            .map(|i| review(&format!("r{i}"), &format!("h{i}"), "text"))
            .collect();
        l.record_page(&page(reviews), t).unwrap();
        let attempts: Vec<_> = (0..n)
            .map(|i| delivered(&format!("r{i}"), &format!("h{i}"), t))
            .collect();
        l.record_attempts(&attempts).unwrap();
        let purged = l
            .purge_text(t + Duration::days(1), t + Duration::days(2), PurgedBy::Cli)
            .unwrap();
        assert_eq!(purged, n);
        let left: i64 = l
            .conn
            .query_row(
                "SELECT COUNT(*) FROM reviews WHERE json_type(payload, '$.review.comment') IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        assert_eq!(l.purges().unwrap()[0].rows_purged, n);
    }

    #[test]
    fn migration_4_applies_to_a_v3_file_with_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        {
            let mut l = super::super::migrations::open_with(
                &path,
                &super::super::migrations::MIGRATIONS[..3],
            )
            .unwrap();
            l.record_page(
                &page(vec![review("a", "h", "c")]),
                at("2026-01-01T00:00:00Z"),
            )
            .unwrap();
            assert_eq!(l.schema_version().unwrap(), 3);
        }
        let l = Ledger::open(&path).unwrap();
        assert_eq!(
            l.schema_version().unwrap(),
            super::super::migrations::latest_version()
        );
        assert_eq!(l.stats().unwrap().total, 1);
        assert_eq!(l.text_purged_at("google", "a").unwrap(), None);
        // Migration 4's deliveries view is rebuilt by migration 5 under SPEC's name.
        for view in [
            "pending_by_age",
            "held_by_reason",
            "deliveries_per_day_group",
        ] {
            let n: i64 = l
                .conn
                .query_row(&format!("SELECT COUNT(*) FROM {view}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, i64::from(view == "pending_by_age"), "{view}");
        }
    }
}
