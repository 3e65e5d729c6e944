//! Per-location polling state and the poll log.

use super::super::engine::Polls;
use super::super::{LedgerError, PollLog, PollState, time};
use super::Postgres;
use super::row::RowReader;

/// A count as a BIGINT column takes it (no count reaches `i64::MAX`).
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Polls for Postgres {
    fn poll_state(&self, source: &str, location: &str) -> Result<PollState, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let row = st.query_opt(
            &mut *client,
            "SELECT source_name, location_id, high_water, cursor FROM poll_state
             WHERE source_name = $1 AND location_id = $2",
            &[&source, &location],
        )?;
        let Some(row) = row else {
            return Ok(PollState::default());
        };
        let r = RowReader::new(&row, &self.path, "poll_state");
        Ok(PollState {
            high_water: r.opt_time("high_water")?,
            cursor: r.get("cursor")?,
        })
    }

    fn finish_poll(&mut self, log: &PollLog, state: Option<&PollState>) -> Result<(), LedgerError> {
        let (mut client, mut st) = self.session()?;
        let mut tx = client.transaction().map_err(st.err())?;
        let ended = time::to_text(log.ended_at);
        st.execute(
            &mut tx,
            "INSERT INTO polls (source_name, location_id, started_at, ended_at, pages, requests,
                 fetched, new, edited, unchanged, quarantined, reported_total, gap, error,
                 kind, removed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            &[
                &log.source_name,
                &log.location_id,
                &time::to_text(log.started_at),
                &ended,
                &int(log.pages),
                &int(log.requests),
                &int(log.fetched),
                &int(log.counts.new),
                &int(log.counts.edited),
                &int(log.counts.unchanged),
                &int(log.counts.quarantined),
                &log.reported_total.map(int),
                &log.gap,
                &log.error,
                &if log.reconcile {
                    "reconcile"
                } else {
                    "incremental"
                },
                &int(log.removed),
            ],
        )?;
        if let Some(state) = state {
            st.execute(
                &mut tx,
                "INSERT INTO poll_state (source_name, location_id, high_water, cursor, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (source_name, location_id) DO UPDATE SET
                     high_water = EXCLUDED.high_water, cursor = EXCLUDED.cursor,
                     updated_at = EXCLUDED.updated_at",
                &[
                    &log.source_name,
                    &log.location_id,
                    &state.high_water.map(time::to_text),
                    &state.cursor,
                    &ended,
                ],
            )?;
        }
        tx.commit().map_err(st.err())?;
        self.wrote();
        Ok(())
    }

    fn location_review_count(&self, source: &str, location: &str) -> Result<u64, LedgerError> {
        let (mut client, mut st) = self.session()?;
        st.count(
            &mut *client,
            "SELECT COUNT(*) FROM reviews
             WHERE source_name = $1 AND location_id = $2 AND removed_at IS NULL",
            &[&source, &location],
        )
    }
}
