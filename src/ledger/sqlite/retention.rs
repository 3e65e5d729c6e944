//! Retention (`[ledger] retain_text_days`, `ledger purge`): removing review
//! text and reviewer names from reviews delivered long ago, and the record of
//! every purge (table `purges`).
//!
//! What goes is decided by `travtus::body::purge_text`, which knows the
//! body: the text a reviewer wrote and the name they wrote it under
//! (`PURGED_FIELDS`). The ledger only stores its answer. What stays: every column
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

use super::super::common::PURGE_BATCH;
use super::super::engine::Retention;
use super::super::{LedgerError, Purge, PurgeCursor, PurgeRow, PurgedBy, time};
use super::{Sqlite, sql_err, sql_int};
use crate::travtus::body::{self, Purged};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{TransactionBehavior, params_from_iter};

impl Retention for Sqlite {
    fn start_purge(
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
            after: PurgeCursor::Start,
            rows_purged: 0,
        })
    }

    fn purge_step(&mut self, purge: &mut Purge) -> Result<bool, LedgerError> {
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
        let after = match purge.after {
            PurgeCursor::Rowid(rowid) => rowid,
            PurgeCursor::Start | PurgeCursor::Key(..) => 0,
        };
        let mut params = vec![Value::from(after), Value::from(purge.cutoff.clone())];
        params.extend(hints.into_iter().map(Value::from));
        params.push(Value::from(PURGE_BATCH));
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
            Some((last, _, _)) if batch.len() as i64 == PURGE_BATCH => {
                purge.after = PurgeCursor::Rowid(*last);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn purges(&self) -> Result<Vec<PurgeRow>, LedgerError> {
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

    fn text_purged_at(
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
