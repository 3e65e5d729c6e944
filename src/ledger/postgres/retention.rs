//! Retention (`[ledger] retain_text_days`, `ledger purge`): the reviewer's
//! text and name removed from reviews delivered long ago (what goes is
//! `travtus::body::purge_text`'s to say), and the record of every purge.
//!
//! **Invariant:** a purge changes only `payload` and `text_purged_at` of
//! `delivered` rows; rows are never deleted.

use super::super::common::PURGE_BATCH;
use super::super::engine::Retention;
use super::super::{LedgerError, Purge, PurgeCursor, PurgeRow, PurgedBy, time};
use super::row::RowReader;
use super::{Postgres, numbered};
use crate::travtus::body::{self, Purged};
use ::postgres::types::ToSql;
use chrono::{DateTime, Utc};

impl Retention for Postgres {
    fn start_purge(
        &mut self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        by: PurgedBy,
    ) -> Result<Purge, LedgerError> {
        let (now, cutoff) = (time::to_text(now), time::to_text(cutoff));
        let (mut client, mut st) = self.session()?;
        let row = st.query_one(
            &mut *client,
            "INSERT INTO purges (purged_at, cutoff, rows_purged, purged_by)
             VALUES ($1, $2, 0, $3) RETURNING id",
            &[&now, &cutoff, &by.as_str()],
        )?;
        let id: i64 = row.try_get(0).map_err(st.err())?;
        drop((client, st));
        self.wrote();
        Ok(Purge {
            id,
            cutoff,
            now,
            after: PurgeCursor::Start,
            rows_purged: 0,
        })
    }

    fn purge_step(&mut self, purge: &mut Purge) -> Result<bool, LedgerError> {
        // Rows never purged, and rows that may hold text again (a hand
        // edit): the body module says which substrings such a body holds.
        // The walk goes by primary key, locking the batch it rewrites.
        let hints: Vec<String> = body::purge_hints().collect();
        let may_hold_text = hints
            .iter()
            .map(|_| "strpos(payload, ?) > 0")
            .collect::<Vec<_>>()
            .join(" OR ");
        let (after, resume) = match &purge.after {
            PurgeCursor::Key(platform, review_id) => (
                "(platform, review_id) > (?, ?) AND ",
                vec![platform.clone(), review_id.clone()],
            ),
            PurgeCursor::Start | PurgeCursor::Rowid(_) => ("", Vec::new()),
        };
        let select = numbered(&format!(
            "SELECT platform, review_id, payload, text_purged_at IS NULL FROM reviews
             WHERE {after}status = 'delivered' AND delivered_at < ?
               AND (text_purged_at IS NULL OR {may_hold_text})
             ORDER BY platform, review_id LIMIT ?
             FOR UPDATE"
        ));
        let mut params: Vec<&(dyn ToSql + Sync)> =
            resume.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        params.push(&purge.cutoff);
        params.extend(hints.iter().map(|h| h as &(dyn ToSql + Sync)));
        params.push(&PURGE_BATCH);
        let (mut client, mut st) = self.session()?;
        let mut tx = client.transaction().map_err(st.err())?;
        let batch = st.query(&mut tx, &select, &params)?;
        let mut purged = 0u64;
        let mut last = None;
        for row in &batch {
            let r = RowReader::new(row, &self.path, "reviews");
            let (platform, review_id): (String, String) = (r.get("platform")?, r.get("review_id")?);
            let payload: String = r.get("payload")?;
            let never_stamped: bool = row.try_get(3).map_err(st.err())?;
            let new_payload = match body::purge_text(&payload) {
                Purged::Removed(text) => Some(text),
                // Nothing left to remove: stamped once, so auditors see
                // the policy reached it.
                Purged::NothingToRemove if never_stamped => None,
                Purged::NothingToRemove | Purged::NotJson => {
                    last = Some((platform, review_id));
                    continue;
                }
            };
            st.execute(
                &mut tx,
                "UPDATE reviews SET payload = coalesce($3, payload), text_purged_at = $4
                 WHERE platform = $1 AND review_id = $2",
                &[&platform, &review_id, &new_payload, &purge.now],
            )?;
            purged += 1;
            last = Some((platform, review_id));
        }
        let rows_purged = purge.rows_purged + purged;
        st.execute(
            &mut tx,
            "UPDATE purges SET rows_purged = $2 WHERE id = $1",
            &[&purge.id, &i64::try_from(rows_purged).unwrap_or(i64::MAX)],
        )?;
        tx.commit().map_err(st.err())?;
        drop((client, st));
        self.wrote();
        purge.rows_purged = rows_purged;
        match last {
            Some((platform, review_id)) if batch.len() as i64 == PURGE_BATCH => {
                purge.after = PurgeCursor::Key(platform, review_id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn purges(&self) -> Result<Vec<PurgeRow>, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let rows = st.query(
            &mut *client,
            "SELECT id, purged_at, cutoff, rows_purged, purged_by FROM purges ORDER BY id",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                let r = RowReader::new(row, &self.path, "purges");
                let by: String = r.get("purged_by")?;
                Ok(PurgeRow {
                    purged_at: r.time("purged_at")?,
                    cutoff: r.time("cutoff")?,
                    rows_purged: r.count("rows_purged")?,
                    purged_by: if by == "daemon" {
                        PurgedBy::Daemon
                    } else {
                        PurgedBy::Cli
                    },
                })
            })
            .collect()
    }

    fn text_purged_at(
        &self,
        platform: &str,
        review_id: &str,
    ) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let row = st.query_opt(
            &mut *client,
            "SELECT platform, review_id, text_purged_at FROM reviews
             WHERE platform = $1 AND review_id = $2",
            &[&platform, &review_id],
        )?;
        match row {
            Some(row) => RowReader::new(&row, &self.path, "reviews").opt_time("text_purged_at"),
            None => Ok(None),
        }
    }
}
