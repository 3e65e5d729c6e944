//! The other tables, listed for auditors (`ledger export --table attempts`,
//! `ledger quarantine`, `ledger polls`), streamed row by row, and the poll
//! log's retention (`[ledger] retain_polls_days`).
//!
//! **Invariant:** the poll log (`polls`) is the only table rows are deleted
//! from, and only rows whose poll started before the retention cutoff.

use super::super::common::{ATTEMPT_COLUMNS, POLL_COLUMNS, QUARANTINE_COLUMNS, Where};
use super::super::engine::{Each, Listings};
use super::super::{
    AttemptFilter, AttemptRow, LedgerError, LogFilter, POLL_BATCH, PollRow, QuarantineRow, time,
};
use super::queries::read_attempt;
use super::row::RowReader;
use super::{Sqlite, values};
use chrono::{DateTime, Utc};
use rusqlite::Row;
use std::path::Path;

impl Listings for Sqlite {
    fn for_each_attempt(
        &self,
        filter: &AttemptFilter,
        f: Each<'_, AttemptRow>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        let mut w = Where::default();
        if let Some(group) = &filter.group {
            w.term(
                "(group_external_ref = ? OR group_id = ?)",
                [group.clone(), group.clone()],
            );
        }
        w.times("attempted_at", filter.since, filter.until);
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts{} ORDER BY id",
            w.clause()
        );
        self.walk(&sql, values(w.params), read_attempt, f, Some(corrupt))
    }

    fn for_each_quarantined(
        &self,
        filter: &LogFilter,
        f: Each<'_, QuarantineRow>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        let mut w = Where::default();
        w.place(filter);
        w.times("first_seen_at", filter.since, filter.until);
        let sql = format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine{} ORDER BY id",
            w.clause()
        );
        self.walk(&sql, values(w.params), read_quarantined, f, Some(corrupt))
    }

    fn for_each_poll(
        &self,
        filter: &LogFilter,
        f: Each<'_, PollRow>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        let mut w = Where::default();
        w.place(filter);
        w.times("started_at", filter.since, filter.until);
        if filter.errors_only {
            w.fixed("error IS NOT NULL");
        }
        let sql = format!("SELECT {POLL_COLUMNS} FROM polls{} ORDER BY id", w.clause());
        self.walk(&sql, values(w.params), read_poll, f, Some(corrupt))
    }

    fn delete_polls_step(&mut self, cutoff: DateTime<Utc>) -> Result<u64, LedgerError> {
        let deleted = self
            .conn
            .prepare_cached(
                "DELETE FROM polls WHERE id IN (
                     SELECT id FROM polls WHERE started_at < ?1 LIMIT ?2)",
            )
            .and_then(|mut st| st.execute((time::to_text(cutoff), POLL_BATCH as i64)))
            .map_err(|e| self.err(e))?;
        Ok(deleted as u64)
    }
}

fn read_quarantined(row: &Row<'_>, path: &Path) -> Result<QuarantineRow, LedgerError> {
    let r = RowReader::new(row, path, "quarantine");
    Ok(QuarantineRow {
        source_name: r.get("source_name")?,
        location_id: r.get("location_id")?,
        platform: r.get("platform")?,
        reference: r.get("reference")?,
        reason: r.get("reason")?,
        raw: r.get("raw")?,
        first_seen_at: r.time("first_seen_at")?,
        last_seen_at: r.time("last_seen_at")?,
        seen_count: r.count("seen_count")?,
    })
}

fn read_poll(row: &Row<'_>, path: &Path) -> Result<PollRow, LedgerError> {
    let r = RowReader::new(row, path, "polls");
    let reported_total: Option<i64> = r.get("reported_total")?;
    Ok(PollRow {
        source_name: r.get("source_name")?,
        location_id: r.get("location_id")?,
        kind: r.get("kind")?,
        started_at: r.time("started_at")?,
        ended_at: r.time("ended_at")?,
        pages: r.count("pages")?,
        requests: r.count("requests")?,
        fetched: r.count("fetched")?,
        new: r.count("new")?,
        edited: r.count("edited")?,
        unchanged: r.count("unchanged")?,
        quarantined: r.count("quarantined")?,
        removed: r.count("removed")?,
        reported_total: match reported_total {
            None => None,
            Some(_) => Some(r.count("reported_total")?),
        },
        gap: r.get("gap")?,
        error: r.get("error")?,
    })
}
