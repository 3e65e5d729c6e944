//! Where a pass's pages go. A pass reads every location the same way; what
//! becomes of each page, where each location's cursor comes from and what
//! is kept at its end is the sink's: the ledger ([`LedgerSink`], every
//! pass of `run` and `sync`), or nothing written at all (`sync --dry-run`,
//! `crate::dry_run`).

use super::Cursor;
use crate::ledger::{LedgerError, LedgerHandle, PageCounts, PageRecord, PollLog, Sightings};
use chrono::{DateTime, Utc};
use std::future::Future;

/// What a pass does with what it reads.
pub(crate) trait PassSink: Sync {
    /// The end of the error of a read cut short (by a bound or a stop):
    /// what became of the pages it read.
    const KEPT: &'static str;
    /// What the pass's last log line calls the pass.
    const PASS: &'static str;

    /// Where the read of a location starts.
    fn cursor(
        &self,
        source: &str,
        location: &str,
    ) -> impl Future<Output = Result<Cursor, LedgerError>> + Send;

    /// Takes one page of the `index`th location of the pass (in the plan's
    /// order), seen at `seen_at`; what it changed (or would change).
    fn take(
        &self,
        index: usize,
        page: PageRecord,
        seen_at: DateTime<Utc>,
        sightings: Sightings,
    ) -> impl Future<Output = Result<PageCounts, LedgerError>> + Send;

    /// After a location's read: its poll-log row, and the cursor to keep
    /// (`None` after a failed read, which reads again from the old one).
    fn finish(&self, log: PollLog, cursor: Option<Cursor>) -> impl Future<Output = ()> + Send;

    /// The ledger the pass writes, for what only it can answer: the gap to
    /// the platform's reported total, and a reconciliation's tally. `None`
    /// when nothing is written.
    fn ledger(&self) -> Option<&LedgerHandle>;
}

/// The pages of a pass recorded in the ledger, one transaction each;
/// delivery woken by each page that has something to send.
pub(crate) struct LedgerSink {
    ledger: LedgerHandle,
}

impl LedgerSink {
    /// Records into `ledger`.
    pub(crate) fn new(ledger: LedgerHandle) -> LedgerSink {
        LedgerSink { ledger }
    }
}

impl PassSink for LedgerSink {
    const KEPT: &'static str = "; the pages read are recorded, the high-water mark is unchanged";
    const PASS: &'static str = "poll pass";

    async fn cursor(&self, source: &str, location: &str) -> Result<Cursor, LedgerError> {
        let (s, l) = (source.to_owned(), location.to_owned());
        let state = self.ledger.run(move |x| x.poll_state(&s, &l)).await?;
        Ok(state.into())
    }

    async fn take(
        &self,
        _index: usize,
        page: PageRecord,
        seen_at: DateTime<Utc>,
        sightings: Sightings,
    ) -> Result<PageCounts, LedgerError> {
        let counts = self
            .ledger
            .run(move |x| x.record_page_as(&page, seen_at, sightings))
            .await?;
        // Delivery starts with the first page, not after the whole pass.
        if counts.new + counts.edited > 0 {
            self.ledger.notify_due();
        }
        Ok(counts)
    }

    async fn finish(&self, log: PollLog, cursor: Option<Cursor>) {
        let state = cursor.map(crate::ledger::PollState::from);
        if let Err(e) = self
            .ledger
            .run(move |l| l.finish_poll(&log, state.as_ref()))
            .await
        {
            crate::metrics::ledger_error(&e);
            tracing::error!(error = %e, "cannot record the poll");
        }
    }

    fn ledger(&self) -> Option<&LedgerHandle> {
        Some(&self.ledger)
    }
}
