//! Per-location polling state and the poll log.

use super::super::engine::Polls;
use super::super::{LedgerError, PollLog, PollState, time};
use super::row::RowReader;
use super::{Sqlite, sql_err, sql_int};
use rusqlite::{Connection, TransactionBehavior, named_params};

impl Polls for Sqlite {
    fn poll_state(&self, source: &str, location: &str) -> Result<PollState, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT high_water, cursor FROM poll_state
                 WHERE source_name = ?1 AND location_id = ?2",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query((source, location)).map_err(|e| self.err(e))?;
        let Some(row) = rows.next().map_err(|e| self.err(e))? else {
            return Ok(PollState::default());
        };
        let r = RowReader::new(row, &self.path, "poll_state");
        Ok(PollState {
            high_water: r.opt_time("high_water")?,
            cursor: r.get("cursor")?,
        })
    }

    fn finish_poll(&mut self, log: &PollLog, state: Option<&PollState>) -> Result<(), LedgerError> {
        let err = sql_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        append_poll(&tx, log).map_err(&err)?;
        if let Some(state) = state {
            store_state(&tx, log, state).map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    fn location_review_count(&self, source: &str, location: &str) -> Result<u64, LedgerError> {
        self.count(
            "SELECT COUNT(*) FROM reviews
             WHERE source_name = ?1 AND location_id = ?2 AND removed_at IS NULL",
            (source, location),
        )
    }
}

fn append_poll(conn: &Connection, log: &PollLog) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO polls (source_name, location_id, started_at, ended_at, pages, requests,
             fetched, new, edited, unchanged, quarantined, reported_total, gap, error, kind, removed)
         VALUES (:source, :location, :started, :ended, :pages, :requests,
             :fetched, :new, :edited, :unchanged, :quarantined, :reported_total, :gap, :error,
             :kind, :removed)",
    )?
    .execute(named_params! {
        ":source": log.source_name,
        ":location": log.location_id,
        ":started": time::to_text(log.started_at),
        ":ended": time::to_text(log.ended_at),
        ":pages": sql_int(log.pages),
        ":requests": sql_int(log.requests),
        ":fetched": sql_int(log.fetched),
        ":new": sql_int(log.counts.new),
        ":edited": sql_int(log.counts.edited),
        ":unchanged": sql_int(log.counts.unchanged),
        ":quarantined": sql_int(log.counts.quarantined),
        ":reported_total": log.reported_total.map(sql_int),
        ":gap": log.gap,
        ":error": log.error,
        ":kind": if log.reconcile { "reconcile" } else { "incremental" },
        ":removed": sql_int(log.removed),
    })?;
    Ok(())
}

fn store_state(conn: &Connection, log: &PollLog, state: &PollState) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO poll_state (source_name, location_id, high_water, cursor, updated_at)
         VALUES (:source, :location, :high_water, :cursor, :updated_at)
         ON CONFLICT (source_name, location_id) DO UPDATE SET
             high_water = excluded.high_water, cursor = excluded.cursor,
             updated_at = excluded.updated_at",
    )?
    .execute(named_params! {
        ":source": log.source_name,
        ":location": log.location_id,
        ":high_water": state.high_water.map(time::to_text),
        ":cursor": state.cursor,
        ":updated_at": time::to_text(log.ended_at),
    })?;
    Ok(())
}
