//! The other tables, listed for auditors (`ledger export --table attempts`,
//! `ledger quarantine`, `ledger polls`), streamed row by row, and the poll
//! log's retention (`[ledger] retain_polls_days`).
//!
//! **Invariant:** the poll log (`polls`) is the only table rows are deleted
//! from, and only rows whose poll started before the retention cutoff.

use super::queries::{ATTEMPT_COLUMNS, read_attempt};
use super::row::RowReader;
use super::{
    AttemptFilter, AttemptRow, Ledger, LedgerError, LogFilter, PollRow, QuarantineRow, time,
};
use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::Value;
use std::path::Path;

/// Poll-log rows deleted per statement: each batch is its own short write
/// transaction, so the daemon's polls and deliveries go on in between.
pub const POLL_BATCH: u64 = 500;

impl Ledger {
    /// Calls `f` for every attempt matching `filter`, in the order they were
    /// recorded; a row that cannot be read goes to `corrupt` and is skipped.
    pub fn for_each_attempt(
        &self,
        filter: &AttemptFilter,
        f: &mut dyn FnMut(&AttemptRow) -> Result<(), LedgerError>,
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
        self.walk(&sql, w.params, read_attempt, f, Some(corrupt))
    }

    /// Calls `f` for every quarantined record matching `filter` (times are
    /// `first_seen_at`), oldest first; unreadable rows go to `corrupt`.
    pub fn for_each_quarantined(
        &self,
        filter: &LogFilter,
        f: &mut dyn FnMut(&QuarantineRow) -> Result<(), LedgerError>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        let mut w = Where::default();
        w.place(filter);
        w.times("first_seen_at", filter.since, filter.until);
        let sql = format!(
            "SELECT id, source_name, location_id, platform, reference, reason, raw,
                 first_seen_at, last_seen_at, seen_count
             FROM quarantine{} ORDER BY id",
            w.clause()
        );
        self.walk(&sql, w.params, read_quarantined, f, Some(corrupt))
    }

    /// Calls `f` for every poll-log row matching `filter` (times are
    /// `started_at`), in the order recorded; unreadable rows go to `corrupt`.
    pub fn for_each_poll(
        &self,
        filter: &LogFilter,
        f: &mut dyn FnMut(&PollRow) -> Result<(), LedgerError>,
        corrupt: &mut dyn FnMut(LedgerError),
    ) -> Result<(), LedgerError> {
        let mut w = Where::default();
        w.place(filter);
        w.times("started_at", filter.since, filter.until);
        if filter.errors_only {
            w.terms.push("error IS NOT NULL".to_owned());
        }
        let sql = format!(
            "SELECT id, source_name, location_id, kind, started_at, ended_at, pages, requests,
                 fetched, new, edited, unchanged, quarantined, removed, reported_total, gap, error
             FROM polls{} ORDER BY id",
            w.clause()
        );
        self.walk(&sql, w.params, read_poll, f, Some(corrupt))
    }

    /// Deletes up to [`POLL_BATCH`] poll-log rows of polls started before
    /// `cutoff` (one statement, one transaction); returns how many. Call it
    /// until it returns less than [`POLL_BATCH`].
    pub fn delete_polls_step(&mut self, cutoff: DateTime<Utc>) -> Result<u64, LedgerError> {
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

/// A `WHERE` clause under construction, with its positional parameters.
#[derive(Default)]
struct Where {
    terms: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    fn term<const N: usize>(&mut self, sql: &str, params: [String; N]) {
        self.terms.push(sql.to_owned());
        self.params.extend(params.into_iter().map(Value::from));
    }

    fn place(&mut self, filter: &LogFilter) {
        if let Some(source) = &filter.source {
            self.term("source_name = ?", [source.clone()]);
        }
        if let Some(location) = &filter.location {
            self.term("location_id = ?", [location.clone()]);
        }
    }

    fn times(&mut self, column: &str, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) {
        if let Some(t) = since {
            self.term(&format!("{column} >= ?"), [time::to_text(t)]);
        }
        if let Some(t) = until {
            self.term(&format!("{column} < ?"), [time::to_text(t)]);
        }
    }

    fn clause(&self) -> String {
        if self.terms.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.terms.join(" AND "))
        }
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
