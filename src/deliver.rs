//! The delivery worker: claims due reviews from the ledger's outbox, POSTs
//! them with bounded concurrency, and records every attempt and its outcome
//! (group-committed, one transaction per batch). `deliver_once` is one step
//! that tests drive; `run` loops it until cancelled; `drain` loops it until
//! nothing is due before a deadline (for `sync`).

use crate::config::{TravtusAuth, TravtusConfig};
use crate::ledger::{AttemptOutcome, AttemptRecord, DueReview, LedgerError, LedgerHandle};
use crate::oauth::{Grant, TokenCache, TokenError};
use crate::retry::Backoff;
use crate::travtus::{Class, PostResult, TravtusClient, classify, idempotency_key};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Reviews claimed per step, per unit of concurrency: enough to keep every
/// worker busy between two ledger transactions, small enough that a
/// shutdown waits for little.
const CLAIM_PER_WORKER: usize = 16;

/// The most reviews a worker with `concurrency` has claimed but not yet
/// recorded at any moment: what a crash (SIGKILL, OOM, power loss) can send
/// a second time after the restart. The crash test (`tests/it/crash.rs`)
/// asserts duplicates <= kills x this; keep it true if claiming changes.
pub const fn max_in_flight(concurrency: usize) -> usize {
    concurrency * CLAIM_PER_WORKER
}

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
}

/// The worker. Cheap to share behind an `Arc`.
pub struct Deliverer {
    ledger: LedgerHandle,
    client: TravtusClient,
    tokens: TokenCache,
    concurrency: usize,
    lease: Duration,
    wake: Notify,
    // Set when Travtus refuses our credentials or rate-limits us: the
    // problem is per API key, so every worker waits, not just one review.
    pause: Mutex<Pause>,
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
            // A claimed row comes back by itself after this if we crash
            // mid-flight: one request timeout plus room for the ledger write.
            lease: travtus.timeout + Duration::from_secs(10),
            wake: Notify::new(),
            pause: Mutex::new(Pause::default()),
            counters: DeliveryCounters::default(),
        }
    }

    /// Tokens fetched from the Travtus token endpoint so far.
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    /// Tells the worker that new reviews may be due (after a poll recorded some).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// When deliveries are paused (credentials refused, rate limited), until when.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock_pause().until.filter(|u| *u > Instant::now())
    }

    /// One step: claims what is due now, sends it, records every attempt.
    pub async fn deliver_once(&self) -> Result<StepReport, LedgerError> {
        self.step(&CancellationToken::new()).await
    }

    /// [`Deliverer::deliver_once`] that stops sending when `stop` fires: a
    /// claimed review not sent yet (waiting for a free worker, or out a
    /// pause) is not sent and stays claimed until its lease runs out, and
    /// what was sent is recorded. So a shutdown waits only for the requests
    /// in flight, and never gives up a step whose sent reviews would then be
    /// sent again after the restart.
    async fn step(&self, stop: &CancellationToken) -> Result<StepReport, LedgerError> {
        if self.paused_until().is_some() {
            return Ok(StepReport::default());
        }
        let now = Utc::now();
        let lease_until = now + self.lease;
        let limit = max_in_flight(self.concurrency);
        let due = self
            .ledger
            .run(move |l| l.claim_due(now, lease_until, limit))
            .await?;
        if due.is_empty() {
            return Ok(StepReport::default());
        }
        let claimed = due.len();
        let attempts: Vec<_> = due.into_iter().map(|d| self.attempt(d, stop)).collect();
        let records: Vec<AttemptRecord> = futures_util::stream::iter(attempts)
            .buffer_unordered(self.concurrency)
            .collect::<Vec<Vec<AttemptRecord>>>()
            .await
            .into_iter()
            .flatten()
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
        self.ledger
            .run(move |l| l.record_attempts(&records))
            .await?;
        Ok(report)
    }

    /// Delivers until `cancel` fires. A ledger error is logged and retried
    /// after a pause; in-flight requests of a step finish before it returns.
    pub async fn run(&self, cancel: &CancellationToken) {
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            match self.step(cancel).await {
                Ok(report) if report.claimed > 0 => {
                    failures = 0;
                    continue;
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    crate::metrics::ledger_error(&e);
                    tracing::error!(error = %e, "delivery step failed; retrying");
                }
            }
            let wait = if failures > 0 {
                Backoff::PLATFORM.ceiling(failures)
            } else {
                self.idle_wait().await
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Delivers until nothing is due before `deadline` (or `cancel` fires).
    pub async fn drain(
        &self,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<(), LedgerError> {
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            if self.step(cancel).await?.claimed > 0 {
                continue;
            }
            let next = match self.paused_until() {
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
        }
    }

    async fn idle_wait(&self) -> Duration {
        if let Some(until) = self.paused_until() {
            return until - Instant::now();
        }
        match self.ledger.run(|l| l.next_due_at()).await {
            Ok(Some(at)) => (instant_of(at) - Instant::now()).min(IDLE_RECHECK),
            _ => IDLE_RECHECK,
        }
    }

    /// Sends one review, renewing the token once when the API asks for it.
    async fn attempt(&self, due: DueReview, stop: &CancellationToken) -> Vec<AttemptRecord> {
        let key = idempotency_key(&due.platform, &due.review_id, &due.content_hash);
        let mut records = Vec::with_capacity(1);
        // A review claimed in this step but not yet sent when another one
        // met a 429 or a credential refusal waits out the pause too; its
        // lease covers a crash meanwhile. Once stopping, it is not sent at
        // all: no attempt to record, and the lease brings it back later.
        loop {
            if stop.is_cancelled() {
                return Vec::new();
            }
            let Some(until) = self.paused_until() else {
                break;
            };
            tokio::select! {
                _ = stop.cancelled() => return Vec::new(),
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        let mut token = match self.tokens.get().await {
            Ok(t) => t,
            Err(e) => return vec![self.token_failure(&due, e)],
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
                    let class = classify(status, error_type.as_deref());
                    record.http_status = Some(status);
                    record.error_type = error_type
                        .or_else(|| (class != Class::Delivered).then(|| format!("http_{status}")));
                    record.error_message = message;
                    record.request_id = request_id.clone();
                    match class {
                        Class::Delivered => {
                            self.lock_pause().auth_failures = 0;
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
                                    records.push(self.token_failure(&due, e));
                                    return records;
                                }
                            }
                        }
                        Class::TokenExpired | Class::AuthFailed => {
                            self.pause_for_auth(record.error_type.as_deref().unwrap_or("auth"));
                            record.outcome = self.retry_at(retries_so_far, None);
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
            records.push(record);
            return records;
        }
    }

    fn token_failure(&self, due: &DueReview, e: TokenError) -> AttemptRecord {
        let retry_after = match &e {
            TokenError::Http { retry_after, .. } => *retry_after,
            _ => None,
        };
        let error_type = if e.is_retryable() {
            "token_unavailable"
        } else {
            self.pause_for_auth("token_refused");
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

    fn pause_for_auth(&self, error_type: &str) {
        let wait = {
            let mut pause = self.lock_pause();
            pause.auth_failures += 1;
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

/// The tokio instant of a wall-clock time (clamped to now for past times).
fn instant_of(at: DateTime<Utc>) -> Instant {
    let ahead = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + ahead
}

/// Shared ownership helper for tasks.
pub type SharedDeliverer = Arc<Deliverer>;
