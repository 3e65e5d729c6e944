//! The delivery worker: claims due reviews from the ledger's outbox, POSTs
//! them with bounded concurrency, and records every attempt and its outcome.
//!
//! `deliver_once` is one step that tests drive: claim a batch, send it,
//! record it. `run` (the daemon) and `drain` (`sync`) are a continuous
//! pipeline instead, with no batch barrier:
//!
//! ```text
//!   ledger ──claim (lease)──▶ queue ──▶ `concurrency` requests ──▶ outcomes ──group commit──▶ ledger
//! ```
//!
//! One task owns it all: a bounded queue of claimed rows, refilled before it
//! runs dry; up to `concurrency` requests in flight; outcomes committed
//! together every [`RECORD_DELAY`] or half of [`max_in_flight`] outcomes, in
//! the same transaction as the next claim (one blocking hop and one commit
//! per cycle, at most one cycle at a time). Every buffer is bounded, and a
//! slow ledger slows sending down rather than growing memory.

use crate::config::{TravtusAuth, TravtusConfig};
use crate::ledger::{
    AttemptOutcome, AttemptRecord, Claim, CycleReport, DueReview, LedgerError, LedgerHandle,
    ReleasedClaim,
};
use crate::oauth::{Grant, TokenCache, TokenError};
use crate::retry::Backoff;
use crate::travtus::{Class, PostResult, TravtusClient, classify, idempotency_key};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Reviews claimed per step of `deliver_once`, and kept claimed ahead of the
/// senders by the pipeline, per unit of concurrency: enough to keep every
/// request slot busy while the ledger commits a cycle (the pipeline bench
/// measured 16 and 32: 32 claims and commits half as often for 3% less
/// CPU), few enough that a stop hands back little and no lease runs out in
/// the queue.
const CLAIM_PER_WORKER: usize = 32;

/// The pipeline claims more when its queue falls below this, per unit of
/// concurrency: half full, so the claim lands before the queue runs dry.
const REFILL_PER_WORKER: usize = 16;

/// Reviews sent (or being sent) but not yet recorded, per unit of
/// concurrency, at most: see [`max_in_flight`]. The pipeline commits when
/// half of it is waiting, and starts no request while it is all taken, so a
/// slow or failing ledger slows delivery down instead of growing memory.
/// Not more than `deliver_once` claims in one step, so the bound holds for
/// both.
const UNRECORDED_PER_WORKER: usize = CLAIM_PER_WORKER;

/// Group commit: outcomes are written once half of [`max_in_flight`] are
/// waiting, or once the oldest has waited this long. It bounds what a crash
/// loses of the audit trail: those reviews are still pending under their
/// lease and are sent again (same `Idempotency-Key`), which SPEC allows.
const RECORD_DELAY: Duration = Duration::from_millis(40);

/// The most reviews a worker with `concurrency` has sent (or is sending)
/// but not yet recorded at any moment: what a crash (SIGKILL, OOM, power
/// loss) can send a second time after the restart. Reviews claimed but not
/// sent yet are not among them: they were never sent. The crash test
/// (`tests/it/crash.rs`) asserts duplicates <= kills x this; keep it true if
/// claiming or recording changes.
pub const fn max_in_flight(concurrency: usize) -> usize {
    concurrency * UNRECORDED_PER_WORKER
}

/// A queued row is sent only while its lease still covers a whole request
/// plus this much for recording the outcome; otherwise it is handed back
/// (after a long pause, say) and claimed again with a fresh lease.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// A lease is the request timeout plus this, room for recording the outcome.
pub(crate) const LEASE_SLACK: Duration = Duration::from_secs(10);

/// How long the worker sleeps when the ledger says nothing is due, unless
/// woken by a poll that recorded new reviews: a safety net, not the
/// mechanism.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// Backoff of the global pause after Travtus refused our credentials twice
/// in a row: long enough not to hammer the token endpoint, short enough
/// that a fixed credential is picked up within minutes.
const AUTH_PAUSE: Backoff = Backoff {
    base: Duration::from_secs(5),
    cap: Duration::from_secs(600),
};

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

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// Reviews claimed.
    pub claimed: usize,
    /// Attempts made (a token renewal makes two for one review).
    pub attempts: usize,
    /// Reviews delivered.
    pub delivered: usize,
}

#[derive(Default)]
struct Pause {
    until: Option<Instant>,
    auth_failures: u32,
    // When the last credential pause began: a refusal of a request sent
    // before it belongs to the same incident (the other workers' requests
    // in flight then), which must not step the backoff again.
    auth_paused_at: Option<Instant>,
    // The error type of that refusal, for `/healthz` and the metrics.
    auth_error: Option<String>,
}

/// Why deliveries are paused, for `/healthz` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseStatus {
    /// Travtus refused our credentials (after a token renewal): nothing is
    /// delivered until a person fixes them; it clears at the next delivery.
    CredentialsRefused {
        /// The refusal's error type (`token_refused`, `http_401`, ...).
        error_type: String,
        /// How long until the next try (zero: trying again).
        retry_in: Duration,
    },
    /// Travtus answered 429: everyone waits this long.
    RateLimited {
        /// How long until deliveries resume.
        retry_in: Duration,
    },
}

impl PauseStatus {
    /// The `reason` label of `review_sync_deliveries_paused`.
    pub fn reason(&self) -> &'static str {
        match self {
            PauseStatus::CredentialsRefused { .. } => "credentials_refused",
            PauseStatus::RateLimited { .. } => "rate_limited",
        }
    }
}

impl std::fmt::Display for PauseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PauseStatus::CredentialsRefused {
                error_type,
                retry_in,
            } => write!(
                f,
                "deliveries paused: Travtus refused our credentials ({error_type}); \
                 next try in {}s (check [travtus] client_id/client_secret or token)",
                retry_in.as_secs()
            ),
            PauseStatus::RateLimited { retry_in } => write!(
                f,
                "deliveries paused for {}s: rate limited by Travtus (429)",
                retry_in.as_secs()
            ),
        }
    }
}

/// The worker. Cheap to share behind an `Arc`.
pub struct Deliverer {
    ledger: LedgerHandle,
    client: TravtusClient,
    tokens: TokenCache,
    concurrency: usize,
    /// The request timeout: a queued row is only sent while its lease covers one.
    timeout: Duration,
    lease: Duration,
    // Set when Travtus refuses our credentials or rate-limits us: the
    // problem is per API key, so every worker waits, not just one review.
    pause: Mutex<Pause>,
    // Held and rejected reviews, logged as one line per group and error.
    held_log: crate::held_log::HeldLog,
    /// Counters since start.
    pub counters: DeliveryCounters,
}

impl Deliverer {
    /// A worker delivering to `travtus` through the shared `http` pool.
    pub fn new(ledger: LedgerHandle, travtus: &TravtusConfig, http: reqwest::Client) -> Deliverer {
        let (grant, token_url) = match &travtus.auth {
            TravtusAuth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
            } => (
                Grant::ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                },
                token_url.clone(),
            ),
            // The URL is never used for a static token.
            TravtusAuth::StaticToken(t) => (Grant::Static(t.clone()), travtus.base_url.clone()),
        };
        Deliverer {
            client: TravtusClient::new(http.clone(), &travtus.base_url, travtus.timeout),
            // The API's timeout bounds token requests too (see `TokenCache::with_timeout`).
            tokens: TokenCache::new(grant, token_url, http)
                .labelled("travtus", None)
                .with_timeout(travtus.timeout),
            ledger,
            concurrency: travtus.concurrency.get(),
            timeout: travtus.timeout,
            // A claimed row comes back by itself after this if we crash
            // mid-flight: one request timeout plus room for the ledger write.
            // (The config bounds the timeout; `min` keeps a library
            // caller's from overflowing `now + lease`.)
            lease: travtus.timeout.min(crate::config::MAX_TIMEOUT) + LEASE_SLACK,
            pause: Mutex::new(Pause::default()),
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
        self.lock_pause().until.filter(|u| *u > Instant::now())
    }

    /// Whether deliveries are paused, and why. Refused credentials count
    /// until a delivery succeeds again, also between pauses.
    pub fn pause_status(&self) -> Option<PauseStatus> {
        let pause = self.lock_pause();
        let retry_in = pause.until.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        });
        if pause.auth_failures > 0 {
            return Some(PauseStatus::CredentialsRefused {
                error_type: pause.auth_error.clone().unwrap_or_default(),
                retry_in,
            });
        }
        (!retry_in.is_zero()).then_some(PauseStatus::RateLimited { retry_in })
    }

    /// One step: claims what is due now, sends it, records every attempt.
    pub async fn deliver_once(&self) -> Result<StepReport, LedgerError> {
        let stop = CancellationToken::new();
        if self.paused_until().is_some() {
            return Ok(StepReport::default());
        }
        let now = Utc::now();
        let lease_until = now + self.lease;
        let limit = self.concurrency * CLAIM_PER_WORKER;
        let due = self
            .ledger
            .run(move |l| l.claim_due(now, lease_until, limit))
            .await?;
        if due.is_empty() {
            return Ok(StepReport::default());
        }
        let claimed = due.len();
        let attempts: Vec<_> = due
            .into_iter()
            .map(|d| self.attempt(d, lease_until, &stop))
            .collect();
        let records: Vec<AttemptRecord> = futures_util::stream::iter(attempts)
            .buffer_unordered(self.concurrency)
            .collect::<Vec<Attempted>>()
            .await
            .into_iter()
            .flat_map(Attempted::records)
            .collect();
        let report = StepReport {
            claimed,
            attempts: records.len(),
            delivered: records
                .iter()
                .filter(|r| matches!(r.outcome, AttemptOutcome::Delivered { .. }))
                .count(),
        };
        self.count(&records);
        self.held_log.flush();
        self.ledger
            .run(move |l| l.record_attempts(&records))
            .await?;
        Ok(report)
    }

    /// Delivers until `cancel` fires: the pipeline, woken by polls that
    /// recorded reviews. A ledger error is logged and retried after a pause.
    /// On cancel no new request starts; in-flight ones finish and are
    /// recorded, and claimed rows not yet sent are handed back.
    pub async fn run(&self, cancel: &CancellationToken) {
        if let Err(e) = self.pipeline(Mode::Run, cancel).await {
            tracing::error!(error = %e, "delivery stopped on a ledger error");
        }
    }

    /// Delivers until nothing is due before `deadline` (or `cancel` fires).
    pub async fn drain(
        &self,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<(), LedgerError> {
        self.pipeline(Mode::Drain { deadline }, cancel).await
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

    /// The continuous pipeline (see the module docs).
    async fn pipeline(&self, mode: Mode, cancel: &CancellationToken) -> Result<(), LedgerError> {
        // Stops the senders waiting out a pause: on cancel, and when a drain
        // meets a pause that outlasts its deadline. (Declared first: the
        // senders in `in_flight` borrow it.)
        let stop = cancel.child_token();
        let refill_below = self.concurrency * REFILL_PER_WORKER;
        let queue_size = self.concurrency * CLAIM_PER_WORKER;
        let max_unrecorded = max_in_flight(self.concurrency);
        let record_batch = max_unrecorded / 2;
        // Claimed rows not yet sent, with their lease.
        let mut queue: VecDeque<(DueReview, DateTime<Utc>)> = VecDeque::with_capacity(queue_size);
        let mut in_flight = FuturesUnordered::new();
        // Outcomes not yet committed, and when the oldest of them came in.
        let mut unrecorded: Vec<AttemptRecord> = Vec::new();
        let mut oldest: Option<Instant> = None;
        // Claims handed back unsent, for the next cycle.
        let mut released: Vec<ReleasedClaim> = Vec::new();
        // The ledger cycle in progress (at most one), and what it claims.
        let mut cycle: Option<CycleFuture<'_>> = None;
        let mut claiming: Option<Claim> = None;
        // Outcomes the running cycle is writing (sent, not yet recorded).
        let mut recording = 0usize;
        // The last claim found fewer rows than asked: no claim until a poll
        // wakes us or `recheck` (the next due time, capped) comes.
        let mut exhausted = false;
        let mut recheck = Instant::now();
        // Ledger failures in a row (run mode), and when to try again.
        let mut failures = 0u32;
        let mut retry_at: Option<Instant> = None;
        let mut stopping = false;
        // What this pipeline holds, and the wall-clock steps it has seen.
        let mut hand = InHand::new();

        loop {
            if hand.look() {
                exhausted = false;
            }
            if in_flight.is_empty() && queue.is_empty() {
                // Nothing in hand: the held and rejected of the last batch
                // get their line now.
                self.held_log.flush();
            }
            if stopping {
                // Claims that landed after the stop began (a cycle in
                // progress then) go back with the rest.
                released.extend(queue.drain(..).map(|(due, lease)| release(due, lease)));
            }
            let paused = self.paused_until();
            if let Mode::Drain { deadline } = mode
                && !stopping
                && paused.is_some_and(|until| until > deadline)
            {
                // Nothing more can be sent before the deadline: what is
                // claimed goes back, what is in flight is recorded.
                stopping = true;
                stop.cancel();
                released.extend(queue.drain(..).map(|(due, lease)| release(due, lease)));
            }
            // Nothing is sent while the ledger's files are deleted or
            // replaced: its answer could not be recorded anywhere that lasts.
            let ledger_stopped = self.ledger.stopped().is_some();
            if !stopping && paused.is_none() && !ledger_stopped {
                while in_flight.len() < self.concurrency
                    && in_flight.len() + unrecorded.len() + recording < max_unrecorded
                {
                    let Some((due, lease_until)) = queue.pop_front() else {
                        break;
                    };
                    let left = (lease_until - Utc::now())
                        .to_std()
                        .unwrap_or(Duration::ZERO);
                    if left < self.timeout + LEASE_MARGIN {
                        released.push(release(due, lease_until));
                        continue;
                    }
                    in_flight.push(self.attempt(due, lease_until, &stop));
                }
            }

            let can_cycle = cycle.is_none() && retry_at.is_none_or(|t| t <= Instant::now());
            if can_cycle {
                let want =
                    if stopping || paused.is_some() || exhausted || queue.len() >= refill_below {
                        0
                    } else {
                        queue_size - queue.len()
                    };
                let flush = unrecorded.len() >= record_batch
                    || oldest.is_some_and(|t| t.elapsed() >= RECORD_DELAY)
                    || (stopping && !(unrecorded.is_empty() && released.is_empty()))
                    || (want > 0 && !(unrecorded.is_empty() && released.is_empty()));
                if flush || want > 0 {
                    let now = Utc::now();
                    let claim = (want > 0).then(|| hand.claim(now, now + self.lease, want));
                    claiming = claim;
                    oldest = None;
                    let records = std::mem::take(&mut unrecorded);
                    recording = records.len();
                    let handed_back = std::mem::take(&mut released);
                    cycle = Some(Box::pin(self.ledger.run(move |l| {
                        let result = l.delivery_cycle(&records, &handed_back, claim);
                        Ok((records, handed_back, result))
                    })));
                }
            }

            let idle = queue.is_empty()
                && in_flight.is_empty()
                && cycle.is_none()
                && unrecorded.is_empty()
                && released.is_empty();
            if idle && stopping {
                return Ok(());
            }
            if idle
                && (exhausted || paused.is_some())
                && let Mode::Drain { deadline } = mode
            {
                let next = match paused {
                    Some(until) => until,
                    None => match self.ledger.run(|l| l.next_due_at()).await? {
                        Some(at) => instant_of(at),
                        None => return Ok(()),
                    },
                };
                if next > deadline {
                    return Ok(());
                }
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep_until(next) => {}
                }
                exhausted = false;
                continue;
            }

            let flush_at = oldest.map(|t| t + RECORD_DELAY);
            tokio::select! {
                biased;
                // The queue goes back at the top of the loop.
                _ = cancel.cancelled(), if !stopping => {
                    stopping = true;
                    stop.cancel();
                }
                Some(attempted) = in_flight.next(), if !in_flight.is_empty() => match attempted {
                    Attempted::Sent(records) => {
                        self.count(&records);
                        oldest.get_or_insert_with(Instant::now);
                        unrecorded.extend(records);
                    }
                    // Stopped while it waited out a pause: never sent.
                    Attempted::NotSent(due, lease) => released.push(release(due, lease)),
                },
                done = async { match cycle.as_mut() {
                    Some(c) => c.await,
                    None => std::future::pending().await,
                } }, if cycle.is_some() => {
                    cycle = None;
                    recording = 0;
                    let claim = claiming.take();
                    let outcome = match done {
                        Ok((records, handed_back, Ok(report))) => {
                            hand.settled(&records, &handed_back);
                            Ok(report)
                        }
                        Ok((records, handed_back, Err(e))) => {
                            // Nothing was written: keep them for the next cycle.
                            unrecorded.extend(records);
                            released.extend(handed_back);
                            oldest.get_or_insert_with(Instant::now);
                            Err(e)
                        }
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(report) => {
                            failures = 0;
                            if let Some(claim) = claim {
                                self.take_claimed(claim, report, &mut hand, &mut queue, &mut exhausted, &mut recheck);
                            }
                        }
                        Err(e) => {
                            if matches!(mode, Mode::Drain { .. }) || stopping {
                                return Err(e);
                            }
                            failures += 1;
                            crate::metrics::ledger_error(&e);
                            let wait = Backoff::PLATFORM.ceiling(failures);
                            tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "delivery ledger step failed; retrying");
                            retry_at = Some(Instant::now() + wait);
                        }
                    }
                }
                _ = sleep_until_some(flush_at), if flush_at.is_some() && cycle.is_none() => {}
                _ = sleep_until_some(retry_at), if retry_at.is_some() && cycle.is_none() => {
                    retry_at = None;
                }
                _ = self.ledger.due_notified(), if exhausted && !stopping => exhausted = false,
                _ = tokio::time::sleep_until(recheck), if exhausted && !stopping => exhausted = false,
                _ = sleep_until_some(paused), if paused.is_some() && !stopping => {}
                // Another task saw the wall clock step: re-anchor now.
                _ = hand.stepped_elsewhere(), if !stopping => exhausted = false,
            }
        }
    }

    /// Queues what a cycle claimed (but what this pipeline holds already)
    /// and notes whether the ledger ran out of due rows (and when to look
    /// again).
    fn take_claimed(
        &self,
        claim: Claim,
        report: CycleReport,
        hand: &mut InHand,
        queue: &mut VecDeque<(DueReview, DateTime<Utc>)>,
        exhausted: &mut bool,
        recheck: &mut Instant,
    ) {
        log_reanchored(&claim, report.reanchored);
        *exhausted = report.claimed.len() < claim.limit;
        if *exhausted {
            let cap = Instant::now() + IDLE_RECHECK;
            *recheck = report.next_due.map_or(cap, |at| instant_of(at).min(cap));
        }
        let (fresh, held) = hand.take(report.claimed);
        // A queued review claimed again (its lease ran out by a step) now
        // holds the new lease in the ledger: so does its queue entry, or it
        // would be handed back unsent and wait for the new lease to end.
        for again in held {
            if let Some(entry) = queue
                .iter_mut()
                .find(|(d, _)| d.platform == again.platform && d.review_id == again.review_id)
            {
                *entry = (again, claim.lease_until);
            }
        }
        queue.extend(fresh.into_iter().map(|d| (d, claim.lease_until)));
    }

    /// Sends one claimed review (see [`Deliverer::send`]), unless `stop`
    /// fires first. A review claimed but not yet sent when another one met
    /// a 429 or a credential refusal waits out the pause too; its lease
    /// covers a crash meanwhile. Once stopping, it is not sent at all: no
    /// attempt to record, and it is handed back (or its lease brings it
    /// back later).
    async fn attempt(
        &self,
        due: DueReview,
        lease_until: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Attempted {
        loop {
            if stop.is_cancelled() {
                return Attempted::NotSent(due, lease_until);
            }
            let Some(until) = self.paused_until() else {
                break;
            };
            tokio::select! {
                _ = stop.cancelled() => return Attempted::NotSent(due, lease_until),
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        Attempted::Sent(self.send(&due).await)
    }

    /// Sends one review, renewing the token once when the API asks for it.
    async fn send(&self, due: &DueReview) -> Vec<AttemptRecord> {
        let key = idempotency_key(&due.platform, &due.review_id, &due.content_hash);
        let mut records = Vec::with_capacity(1);
        let asked_at = Instant::now();
        let mut token = match self.tokens.get().await {
            Ok(t) => t,
            Err(e) => return vec![self.token_failure(due, e, asked_at)],
        };
        let mut renewed = false;
        loop {
            let attempted_at = Utc::now();
            let started = Instant::now();
            let result = self.client.post(&due.payload, &key, &token).await;
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let mut record = AttemptRecord {
                platform: due.platform.clone(),
                review_id: due.review_id.clone(),
                content_hash: due.content_hash.clone(),
                attempted_at,
                http_status: None,
                error_type: None,
                error_message: None,
                request_id: None,
                duration_ms,
                outcome: AttemptOutcome::Held,
                sent: due.sent.clone(),
            };
            let retries_so_far = due.retry_count + records.len() as u32;
            match result {
                PostResult::Transport {
                    error_type,
                    message,
                } => {
                    record.error_type = Some(error_type.to_owned());
                    record.error_message = Some(message);
                    record.outcome = self.retry_at(retries_so_far, None);
                }
                PostResult::Answer {
                    status,
                    request_id,
                    error_type,
                    message,
                    retry_after,
                } => {
                    let class = classify(status, request_id.as_deref(), error_type.as_deref());
                    record.http_status = Some(status);
                    record.error_type = error_type
                        .or_else(|| (class != Class::Delivered).then(|| format!("http_{status}")));
                    record.error_message = message;
                    record.request_id = request_id.clone();
                    match class {
                        Class::Delivered => {
                            let mut pause = self.lock_pause();
                            pause.auth_failures = 0;
                            pause.auth_paused_at = None;
                            drop(pause);
                            record.outcome = AttemptOutcome::Delivered {
                                request_id: request_id.unwrap_or_default(),
                            };
                        }
                        Class::TokenExpired | Class::AuthFailed if !renewed => {
                            renewed = true;
                            record.outcome = AttemptOutcome::Retry {
                                next_attempt_at: Utc::now(),
                            };
                            records.push(record);
                            match self.tokens.renew(&token).await {
                                Ok(t) => {
                                    token = t;
                                    continue;
                                }
                                Err(e) => {
                                    records.push(self.token_failure(due, e, started));
                                    return records;
                                }
                            }
                        }
                        Class::TokenExpired | Class::AuthFailed => {
                            self.pause_for_auth(
                                record.error_type.as_deref().unwrap_or("auth"),
                                started,
                            );
                            record.outcome = self.retry_at(retries_so_far, None);
                        }
                        Class::Anomaly => {
                            // Not a delivery, whatever the status: counted by
                            // its error_type in the delivery errors metric.
                            tracing::warn!(
                                platform = %due.platform,
                                review_id = %due.review_id,
                                http_status = status,
                                error_type = record.error_type.as_deref(),
                                error = record.error_message.as_deref(),
                                "Travtus answer is not a delivery; the review stays pending"
                            );
                            record.outcome = self.retry_at(retries_so_far, retry_after);
                        }
                        Class::Held => record.outcome = AttemptOutcome::Held,
                        Class::Rejected => record.outcome = AttemptOutcome::Rejected,
                        Class::Retry => {
                            if status == 429 {
                                // The limit is per API key: everyone waits.
                                self.pause_for(retry_after.unwrap_or(Backoff::DELIVERY.base));
                            }
                            record.outcome = self.retry_at(retries_so_far, retry_after);
                        }
                    }
                }
            }
            self.held_log.note(&due.payload, &record);
            records.push(record);
            return records;
        }
    }

    fn token_failure(&self, due: &DueReview, e: TokenError, asked_at: Instant) -> AttemptRecord {
        let retry_after = match &e {
            TokenError::Http { retry_after, .. } => *retry_after,
            _ => None,
        };
        let error_type = if let TokenError::Redirect(_) = &e {
            crate::travtus::client::ERROR_REDIRECT
        } else if e.is_retryable() {
            "token_unavailable"
        } else {
            self.pause_for_auth("token_refused", asked_at);
            "token_refused"
        };
        AttemptRecord {
            platform: due.platform.clone(),
            review_id: due.review_id.clone(),
            content_hash: due.content_hash.clone(),
            attempted_at: Utc::now(),
            http_status: None,
            error_type: Some(error_type.to_owned()),
            error_message: Some(e.to_string()),
            request_id: None,
            duration_ms: 0,
            outcome: self.retry_at(due.retry_count, retry_after),
            sent: due.sent.clone(),
        }
    }

    fn retry_at(&self, retry_count: u32, retry_after: Option<Duration>) -> AttemptOutcome {
        let delay = Backoff::DELIVERY.delay(retry_count, retry_after, &mut rand::rng());
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        AttemptOutcome::Retry {
            next_attempt_at: Utc::now() + delay,
        }
    }

    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait.min(crate::retry::MAX_RETRY_AFTER);
        let mut pause = self.lock_pause();
        pause.until = Some(pause.until.map_or(until, |u| u.max(until)));
    }

    /// Pauses every worker after Travtus refused our credentials for a
    /// request sent at `sent_at`. One incident, one step of the backoff:
    /// the refusals of requests already in flight when the pause began
    /// (every worker meets the same bad secret within milliseconds) are
    /// part of it, and only a request sent after it can start the next.
    fn pause_for_auth(&self, error_type: &str, sent_at: Instant) {
        let wait = {
            let mut pause = self.lock_pause();
            if pause.auth_paused_at.is_some_and(|began| sent_at <= began) {
                return;
            }
            pause.auth_failures += 1;
            pause.auth_paused_at = Some(Instant::now());
            pause.auth_error = Some(error_type.to_owned());
            AUTH_PAUSE.ceiling(pause.auth_failures - 1)
        };
        tracing::error!(
            error_type,
            pause_s = wait.as_secs(),
            "Travtus refused our credentials after a token refresh; all deliveries paused (check [travtus] client_id/client_secret or token)"
        );
        self.pause_for(wait);
    }

    fn lock_pause(&self) -> std::sync::MutexGuard<'_, Pause> {
        // Poisoning only means a panic elsewhere; the pause data stays valid.
        self.pause.lock().unwrap_or_else(|p| p.into_inner())
    }

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

/// What became of a claimed review handed to a sender.
enum Attempted {
    /// Sent: every attempt made (two when the token was renewed).
    Sent(Vec<AttemptRecord>),
    /// Not sent (stopped first), with the lease it was claimed under.
    NotSent(DueReview, DateTime<Utc>),
}

impl Attempted {
    fn records(self) -> Vec<AttemptRecord> {
        match self {
            Attempted::Sent(records) => records,
            Attempted::NotSent(..) => Vec::new(),
        }
    }
}

/// `run` delivers until cancelled; `drain` until nothing is due before its deadline.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Run,
    Drain { deadline: Instant },
}

/// One ledger cycle in progress: it hands back the attempts and releases it
/// was given, so a failed cycle loses nothing.
type CycleFuture<'a> = Pin<
    Box<
        dyn Future<
                Output = Result<
                    (
                        Vec<AttemptRecord>,
                        Vec<ReleasedClaim>,
                        Result<CycleReport, LedgerError>,
                    ),
                    LedgerError,
                >,
            > + Send
            + 'a,
    >,
>;

/// A claim handed back unsent: due again now.
fn release(due: DueReview, lease_until: DateTime<Utc>) -> ReleasedClaim {
    ReleasedClaim {
        platform: due.platform,
        review_id: due.review_id,
        content_hash: due.content_hash,
        lease_until,
        due_at: Utc::now(),
    }
}

/// Sleeps until `at`; never completes for `None` (a disabled timer).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The tokio instant of a wall-clock time (clamped to now for past times,
/// and for times further ahead than any delay we set: the wall clock went
/// back since, and the next claim makes such a row due).
fn instant_of(at: DateTime<Utc>) -> Instant {
    let ahead = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    let ahead = if ahead > crate::clock::LONGEST_DELAY {
        Duration::ZERO
    } else {
        ahead
    };
    Instant::now() + ahead
}

/// Says what a claim re-anchored ([`Claim::reanchor_after`]), if anything.
fn log_reanchored(claim: &Claim, reanchored: u64) {
    if reanchored == 0 {
        return;
    }
    if claim.reanchor_after <= claim.now {
        tracing::warn!(
            reviews = reanchored,
            "wall-clock step: {reanchored} pending review(s) whose retry time or lease was set by the old clock made due now"
        );
    } else {
        tracing::warn!(
            reviews = reanchored,
            "{reanchored} pending review(s) were due more than {} ahead, further than any retry or lease review-sync sets: the wall clock went back (before a restart, or in another process); made due now",
            humantime::format_duration(crate::clock::LONGEST_DELAY)
        );
    }
}

/// The reviews a pipeline holds: claimed, and not yet recorded or handed
/// back. A claim never gives it one of them again: after a forward step of
/// the wall clock a lease "runs out" while its review is still queued or in
/// flight, and the ledger alone would let the next claim take it, sending it
/// twice. Also watches for wall-clock steps ([`crate::clock`]), after which
/// the next claim makes every pending review due.
struct InHand {
    keys: HashSet<(String, String)>,
    steps: tokio::sync::watch::Receiver<u64>,
    /// A step was seen and the next claim has not re-anchored yet.
    stepped: bool,
}

impl InHand {
    fn new() -> InHand {
        InHand {
            keys: HashSet::new(),
            steps: crate::clock::steps(),
            stepped: false,
        }
    }

    /// Looks at the clocks; true when a step (seen here or by another task)
    /// is new since the last look.
    fn look(&mut self) -> bool {
        crate::clock::observe();
        if !self.steps.has_changed().unwrap_or(false) {
            return false;
        }
        self.steps.borrow_and_update();
        self.stepped = true;
        true
    }

    /// Waits until another task sees a step (then the next claim
    /// re-anchors, as after [`InHand::look`] found one).
    async fn stepped_elsewhere(&mut self) {
        match self.steps.changed().await {
            Ok(()) => self.stepped = true,
            // The sender is a static: it is never dropped.
            Err(_) => std::future::pending::<()>().await,
        }
    }

    /// The claim to make now: after a step, one that re-anchors every
    /// pending review.
    fn claim(&mut self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: usize) -> Claim {
        let claim = Claim::new(now, lease_until, limit);
        if std::mem::take(&mut self.stepped) {
            claim.after_step()
        } else {
            claim
        }
    }

    /// A cycle committed these outcomes and hand-backs: no longer held.
    fn settled(&mut self, records: &[AttemptRecord], released: &[ReleasedClaim]) {
        for r in records {
            self.keys.remove(&(r.platform.clone(), r.review_id.clone()));
        }
        for r in released {
            self.keys.remove(&(r.platform.clone(), r.review_id.clone()));
        }
    }

    /// Splits what a claim returned into reviews new to the pipeline and
    /// reviews it holds already (queued, in flight or not yet recorded),
    /// which must not be sent again: the earlier claim's outcome settles
    /// the row.
    fn take(&mut self, claimed: Vec<DueReview>) -> (Vec<DueReview>, Vec<DueReview>) {
        let (fresh, held): (Vec<DueReview>, Vec<DueReview>) = claimed
            .into_iter()
            .partition(|d| self.keys.insert((d.platform.clone(), d.review_id.clone())));
        if !held.is_empty() {
            tracing::info!(
                reviews = held.len(),
                "{} review(s) claimed again while this worker holds them (their lease ran out early: the wall clock went forward); none is sent twice",
                held.len()
            );
        }
        (fresh, held)
    }
}

/// Shared ownership helper for tasks.
pub type SharedDeliverer = Arc<Deliverer>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::ledger::Ledger;
    use sandbox::{Endpoint, FaultRates, GoogleSeed, Sandbox, SandboxOptions};

    /// An app on `sb` (every location mapped) with this Travtus concurrency.
    async fn app(sb: &Sandbox, dir: &std::path::Path, concurrency: usize) -> App {
        let base = sb.base_url();
        let mut text = format!(
            r#"[travtus]
base_url = "{base}/travtus"
token_url = "{base}/travtus/oauth2/token"
client_id = "{travtus_id}"
client_secret = "{travtus_secret}"
timeout = "5s"
concurrency = {concurrency}

[ledger]
path = "ledger.db"

[[source]]
name = "acme-google"
kind = "google_business_profile"
schedule = "0 0 0 1 1 *"
requests_per_minute = 100000
client_id = "{google_id}"
client_secret = "{google_secret}"
refresh_token = "{refresh}"
api_base_url = "{base}/google"
token_url = "{base}/google/token"
"#,
            travtus_id = sandbox::TRAVTUS_CLIENT_ID,
            travtus_secret = sandbox::TRAVTUS_CLIENT_SECRET,
            google_id = sandbox::GOOGLE_CLIENT_ID,
            google_secret = sandbox::GOOGLE_CLIENT_SECRET,
            refresh = sandbox::GOOGLE_REFRESH_TOKEN,
        );
        for location in sb.google().locations() {
            text.push_str(&format!(
                "\n[[source.location]]\nid = \"{location}\"\ngroup_external_ref = \"portfolio-1\"\n"
            ));
        }
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        App::open(crate::config::load(&path).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_worker_records_every_answer_and_hands_back_unsent_claims() {
        let sb = Sandbox::start(SandboxOptions {
            google: GoogleSeed {
                accounts: 1,
                locations_per_account: 2,
                reviews_per_location: 100,
            },
            ..SandboxOptions::default()
        })
        .await
        .unwrap();
        // Slow answers: the stop comes with requests in flight and claims queued.
        sb.faults().set_rates(
            Endpoint::TravtusMessages,
            FaultRates {
                slow: 1.0,
                slow_by: Duration::from_millis(40),
                ..FaultRates::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let app = app(&sb, dir.path(), 4).await;
        app.poll(&app.pollers).await;

        let cancel = CancellationToken::new();
        let worker = {
            let (deliverer, cancel) = (Arc::clone(&app.deliverer), cancel.clone());
            tokio::spawn(async move { deliverer.run(&cancel).await })
        };
        let travtus = sb.travtus().clone();
        while travtus.message_count() < 12 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .expect("stops in time")
            .expect("worker task");

        let stopped_at = Utc::now();
        let ledger = Ledger::open_readonly(&dir.path().join("ledger.db")).unwrap();
        let stats = ledger.stats().unwrap();
        let count = |status: &str| {
            stats
                .by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n)
        };
        let sent = travtus.message_count() as u64;
        assert!(sent < 200, "stopped early ({sent} sent)");
        assert_eq!(count("delivered"), sent, "every answered POST is recorded");
        assert_eq!(count("pending"), 200 - sent);
        // No claim outlives the worker: what it did not send is due now. (An
        // auditor's query, through a plain connection.)
        let leased: i64 = rusqlite::Connection::open(dir.path().join("ledger.db"))
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND next_attempt_at > ?1",
                [crate::ledger::format_time(stopped_at)],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leased, 0, "claims left behind by the stopped worker");
    }

    /// Regression (found by `chaos::`): a claim that landed after the stop
    /// began was queued, and the worker, with nothing left to wait for,
    /// panicked in `select!` instead of handing it back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_landing_after_the_stop_is_handed_back() {
        let sb = Sandbox::start(SandboxOptions {
            google: GoogleSeed {
                accounts: 1,
                locations_per_account: 1,
                reviews_per_location: 50,
            },
            ..SandboxOptions::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let app = app(&sb, dir.path(), 2).await;
        app.poll(&app.pollers).await;

        // Hold the ledger so the worker's first claim is still running when
        // the stop comes.
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let ledger = app.ledger.clone();
        let hold = tokio::spawn(async move {
            ledger
                .run(move |_| {
                    held_tx.send(()).ok();
                    std::thread::sleep(Duration::from_millis(400));
                    Ok(())
                })
                .await
        });
        tokio::task::spawn_blocking(move || held_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let cancel = CancellationToken::new();
        let worker = {
            let (deliverer, cancel) = (Arc::clone(&app.deliverer), cancel.clone());
            tokio::spawn(async move { deliverer.run(&cancel).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .expect("stops in time")
            .expect("the worker does not panic");
        hold.await.unwrap().unwrap();

        assert_eq!(
            sb.travtus().message_count(),
            0,
            "nothing sent after the stop"
        );
        let leased: i64 = rusqlite::Connection::open(dir.path().join("ledger.db"))
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND next_attempt_at > ?1",
                [crate::ledger::format_time(Utc::now())],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leased, 0, "the late claim was handed back");
    }

    /// Regression: a drain (`sync`) with claims queued when a 429 asked for
    /// a pause longer than its deadline waited the pause out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drain_ends_at_a_pause_past_its_deadline_and_hands_back_its_claims() {
        let sb = Sandbox::start(SandboxOptions {
            google: GoogleSeed {
                accounts: 1,
                locations_per_account: 1,
                reviews_per_location: 60,
            },
            ..SandboxOptions::default()
        })
        .await
        .unwrap();
        sb.faults().push(
            Endpoint::TravtusMessages,
            sandbox::Fault::TooManyRequests {
                retry_after: Some(Duration::from_secs(120)),
            },
            1,
        );
        let dir = tempfile::tempdir().unwrap();
        let app = app(&sb, dir.path(), 1).await;
        app.poll(&app.pollers).await;

        let started = Instant::now();
        let deadline = started + Duration::from_secs(2);
        app.deliverer
            .drain(deadline, &CancellationToken::new())
            .await
            .expect("drain");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the drain waited out the pause: {:?}",
            started.elapsed()
        );
        assert!(app.deliverer.paused_until().is_some());
        let ledger = Ledger::open_readonly(&dir.path().join("ledger.db")).unwrap();
        let pending = ledger.pending_count().unwrap();
        assert_eq!(
            pending, 60,
            "the 429 was the first answer: nothing delivered"
        );
        let leased: i64 = rusqlite::Connection::open(dir.path().join("ledger.db"))
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND next_attempt_at > ?1
                   AND retry_count = 0",
                [crate::ledger::format_time(Utc::now())],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leased, 0, "claims left behind by the drain");
    }
}
