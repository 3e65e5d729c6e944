//! The delivery worker: claims due reviews from the ledger's outbox, POSTs
//! them with bounded concurrency, and records every attempt and its outcome.
//!
//! `run` (the daemon), `drain` and `deliver_while` (`sync`) all drive one
//! continuous pipeline, with no batch barrier:
//!
//! ```text
//!   ledger ──claim (lease)──▶ queue ──▶ `concurrency` requests ──▶ outcomes ──group commit──▶ ledger
//! ```
//!
//! One task owns it all: a bounded queue of claimed rows, refilled before it
//! runs dry; up to `concurrency` requests in flight; outcomes committed
//! together every 40 ms or half of [`max_in_flight`] outcomes, in the same
//! transaction as the next claim (one blocking hop and one commit per
//! cycle, at most one cycle at a time). Every buffer is bounded, and a slow
//! ledger slows sending down rather than growing memory.
//!
//! The files, one concern each (after mini-redis's `Listener`/`Handler`):
//! - this one: the [`Deliverer`] (what lives as long as the worker: ledger,
//!   client, tokens, pause, counters) and its public API;
//! - `pipeline.rs`: the state of one running pipeline, a struct with one
//!   method per step (refill, start sends, collect answers, group commit,
//!   hand back on stop, the drain's waits);
//! - `send.rs`: one claimed review, sent (waiting out a pause, renewing the
//!   token once) and turned into attempt records;
//! - `outcome.rs`: what an answer or a token failure is as an
//!   [`AttemptRecord`] (pure);
//! - `pause.rs`: the global pause after a 429 or refused credentials;
//! - `in_hand.rs`: which reviews the pipeline holds, and wall-clock steps.

mod in_hand;
mod outcome;
mod pause;
mod pipeline;
mod send;

pub use pause::PauseStatus;
pub use pipeline::max_in_flight;

use crate::ledger::{AttemptOutcome, AttemptRecord, LedgerError, LedgerHandle};
use crate::oauth::TokenCache;
use crate::travtus::TravtusClient;
use pipeline::{Mode, Pipeline};
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A lease is the request timeout plus this, room for recording the outcome.
pub(crate) const LEASE_SLACK: Duration = Duration::from_secs(10);

/// Counts since start, for summaries, metrics and tests.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// Attempts that ended `delivered`.
    pub delivered: AtomicU64,
    /// Attempts that will be retried.
    pub retried: AtomicU64,
    /// Attempts that ended `held`.
    pub held: AtomicU64,
    /// Attempts that ended `rejected`.
    pub rejected: AtomicU64,
}

/// The worker: what outlives any one pipeline (a reload builds a new one).
/// Cheap to share behind an `Arc`.
pub struct Deliverer {
    ledger: LedgerHandle,
    client: TravtusClient,
    // Shared by every request of every pipeline: one token fetch serves
    // them all, and a refused token is renewed once, not once per sender.
    tokens: TokenCache,
    // Requests in flight at once; every pipeline bound derives from it.
    concurrency: usize,
    // How long a claimed row stays ours: one request timeout plus
    // `LEASE_SLACK`. A crash mid-flight makes the row due again by itself.
    lease: Duration,
    // Set when Travtus refuses our credentials or rate-limits us: the
    // problem is per API key, so every sender waits, not just one review.
    pause: pause::Pause,
    // Held and rejected reviews, logged as one line per group and error.
    held_log: crate::held_log::HeldLog,
    /// Counters since start.
    pub counters: DeliveryCounters,
}

impl Deliverer {
    /// A worker delivering through `client` with tokens from `tokens`
    /// (`travtus::auth::token_cache` builds it from the config), at most
    /// `concurrency` requests at once.
    pub fn new(
        ledger: LedgerHandle,
        client: TravtusClient,
        tokens: TokenCache,
        concurrency: NonZeroUsize,
    ) -> Deliverer {
        Deliverer {
            // The config bounds the timeout; `min` keeps a library caller's
            // from overflowing `now + lease`.
            lease: client.timeout().min(crate::config::MAX_TIMEOUT) + LEASE_SLACK,
            ledger,
            client,
            tokens,
            concurrency: concurrency.get(),
            pause: pause::Pause::default(),
            held_log: crate::held_log::HeldLog::default(),
            counters: DeliveryCounters::default(),
        }
    }

    /// Tokens fetched from the Travtus token endpoint so far.
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    /// Tells the worker that new reviews may be due (after a poll recorded
    /// some). Polls also say so through the ledger after every page.
    pub fn wake(&self) {
        self.ledger.notify_due();
    }

    /// When deliveries are paused (credentials refused, rate limited), until when.
    pub fn paused_until(&self) -> Option<Instant> {
        self.pause.until()
    }

    /// Whether deliveries are paused, and why. Refused credentials count
    /// until a delivery succeeds again, also between pauses.
    pub fn pause_status(&self) -> Option<PauseStatus> {
        self.pause.status()
    }

    /// Delivers until `cancel` fires: the pipeline, woken by polls that
    /// recorded reviews. A ledger error is logged and retried after a pause.
    /// On cancel no new request starts; in-flight ones finish and are
    /// recorded, and claimed rows not yet sent are handed back.
    pub async fn run(&self, cancel: &CancellationToken) {
        if let Err(e) = Pipeline::new(self, Mode::Run, cancel).run().await {
            tracing::error!(error = %e, "delivery stopped on a ledger error");
        }
    }

    /// Delivers until nothing is due before `deadline` (or `cancel` fires).
    /// Tests drive delivery through it (or through `sync`): it returns once
    /// the ledger has nothing due before `deadline`, so no test waits on
    /// time.
    pub async fn drain(
        &self,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<(), LedgerError> {
        Pipeline::new(self, Mode::Drain { deadline }, cancel)
            .run()
            .await
    }

    /// Delivers while `reading` runs (the pipeline of [`Deliverer::run`],
    /// woken by every page a poll records), then until nothing is due
    /// before `deadline`, as [`Deliverer::drain`]: `sync`. `cancel` stops
    /// both. Returns what `reading` returned.
    pub async fn deliver_while<T>(
        &self,
        reading: impl Future<Output = T>,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<T, LedgerError> {
        let read = cancel.child_token();
        let (out, ()) = tokio::join!(
            async {
                let out = reading.await;
                read.cancel();
                out
            },
            self.run(&read),
        );
        if !cancel.is_cancelled() {
            self.drain(deadline, cancel).await?;
        }
        Ok(out)
    }

    /// Counts answered attempts (counters and metrics).
    fn count(&self, records: &[AttemptRecord]) {
        for r in records {
            let counter = match r.outcome {
                AttemptOutcome::Delivered { .. } => &self.counters.delivered,
                AttemptOutcome::Retry { .. } => &self.counters.retried,
                AttemptOutcome::Held => &self.counters.held,
                AttemptOutcome::Rejected => &self.counters.rejected,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            crate::metrics::attempt(r);
        }
    }
}

#[cfg(test)]
mod tests;
