//! The continuous delivery pipeline behind `run`, `drain` and
//! `deliver_while`: the state of one running pipeline as a struct, and one
//! method per step of its loop.
//!
//! ```text
//!   loop {
//!     look at the clocks          (a wall-clock step: claim again, re-anchoring)
//!     hand back the queue         (stopping, or a drain meeting a pause past its deadline)
//!     start sends                 (queue -> in flight, within the bounds and the lease)
//!     start a cycle               (one transaction: commit outcomes + hand-backs, claim more)
//!     idle? stop, or let a drain wait for the next due row
//!     wait for an event           (cancel, an answer, the cycle, a timer, a wake-up)
//!     handle it                   (collect an answer, take what the cycle claimed, ...)
//!   }
//! ```
//!
//! Like mini-redis's `Listener`, the worker ([`Deliverer`]) owns what
//! outlives a pipeline and this struct what lives for one run; its steps
//! are plain methods over that state, so each can be driven and checked
//! on its own (see the tests at the end).

use super::Deliverer;
use super::in_hand::InHand;
use super::send::Attempted;
use crate::ledger::{AttemptRecord, Claim, CycleReport, DueReview, LedgerError, ReleasedClaim};
use crate::retry::Backoff;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Reviews kept claimed ahead of the senders, per unit of concurrency:
/// enough to keep every request slot busy while the ledger commits a cycle
/// (the pipeline bench measured 16 and 32: 32 claims and commits half as
/// often for 3% less CPU), few enough that a stop hands back little and no
/// lease runs out in the queue.
const CLAIM_PER_WORKER: usize = 32;

/// The pipeline claims more when its queue falls below this, per unit of
/// concurrency: half full, so the claim lands before the queue runs dry.
const REFILL_PER_WORKER: usize = 16;

/// Reviews sent (or being sent) but not yet recorded, per unit of
/// concurrency, at most: see [`max_in_flight`]. The pipeline commits when
/// half of it is waiting, and starts no request while it is all taken, so a
/// slow or failing ledger slows delivery down instead of growing memory.
const UNRECORDED_PER_WORKER: usize = CLAIM_PER_WORKER;

/// Group commit: outcomes are written once half of [`max_in_flight`] are
/// waiting, or once the oldest has waited this long. It bounds what a crash
/// loses of the audit trail: those reviews are still pending under their
/// lease and are sent again (same `Idempotency-Key`), which SPEC allows.
const RECORD_DELAY: Duration = Duration::from_millis(40);

/// A queued row is sent only while its lease still covers a whole request
/// plus this much for recording the outcome; otherwise it is handed back
/// (after a long pause, say) and claimed again with a fresh lease.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// How long the pipeline sleeps when the ledger says nothing is due, unless
/// woken by a poll that recorded new reviews: a safety net, not the
/// mechanism.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// The most reviews a worker with `concurrency` has sent (or is sending)
/// but not yet recorded at any moment: what a crash (SIGKILL, OOM, power
/// loss) can send a second time after the restart. Reviews claimed but not
/// sent yet are not among them: they were never sent. The crash test
/// (`tests/it/crash.rs`) asserts duplicates <= kills x this; keep it true if
/// claiming or recording changes.
pub const fn max_in_flight(concurrency: usize) -> usize {
    concurrency * UNRECORDED_PER_WORKER
}

/// `run` delivers until cancelled; `drain` until nothing is due before its deadline.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    Run,
    Drain { deadline: Instant },
}

/// The sizes of a pipeline, all from the worker's concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bounds {
    /// Requests in flight at once.
    concurrency: usize,
    /// Claimed rows queued ahead of the senders, at most.
    queue_size: usize,
    /// The queue is refilled when it falls below this.
    refill_below: usize,
    /// Sent (or being sent) but not yet recorded, at most: [`max_in_flight`].
    max_unrecorded: usize,
    /// A cycle commits once this many outcomes wait.
    record_batch: usize,
}

impl Bounds {
    const fn new(concurrency: usize) -> Bounds {
        Bounds {
            concurrency,
            queue_size: concurrency * CLAIM_PER_WORKER,
            refill_below: concurrency * REFILL_PER_WORKER,
            max_unrecorded: max_in_flight(concurrency),
            record_batch: max_in_flight(concurrency) / 2,
        }
    }
}

/// A claimed row waiting for a sender, with the lease it was claimed under.
type Queued = (DueReview, DateTime<Utc>);

/// What a ledger cycle ends with: the attempts and hand-backs it was given
/// (so a failed cycle loses nothing), and what it did.
type CycleOutput = Result<
    (
        Vec<AttemptRecord>,
        Vec<ReleasedClaim>,
        Result<CycleReport, LedgerError>,
    ),
    LedgerError,
>;

/// The ledger cycle in progress (at most one at a time: one blocking hop
/// and one commit per cycle).
struct Cycle<'a> {
    /// The transaction, on the ledger's blocking thread.
    done: BoxFuture<'a, CycleOutput>,
    /// What it claims, if anything.
    claim: Option<Claim>,
    /// Outcomes it is writing: sent and not yet recorded, so they count
    /// against [`max_in_flight`] until it ends.
    recording: usize,
}

/// What the pipeline woke up for.
enum Event {
    /// `cancel` fired.
    Cancelled,
    /// A sender finished.
    Attempted(Attempted),
    /// The ledger cycle ended.
    Committed(CycleOutput),
    /// Something may be due: a poll recorded reviews, the recheck time
    /// came, or another task saw the wall clock step.
    Woken,
    /// The wait after a ledger failure is over.
    RetryDue,
    /// A timer with nothing to do but look again (the group-commit delay,
    /// the end of a pause).
    Tick,
}

/// One running pipeline (see the module docs). Every field lives as long
/// as the run; none outlives it but what the ledger keeps.
pub(super) struct Pipeline<'a> {
    /// The worker: ledger, client, tokens, pause, counters.
    deliverer: &'a Deliverer,
    mode: Mode,
    /// From outside: the daemon's stop, `sync`'s deadline or Ctrl-C.
    cancel: &'a CancellationToken,
    /// Stops the senders waiting out a pause: on cancel, and when a drain
    /// meets a pause that outlasts its deadline (a child of `cancel`).
    stop: CancellationToken,
    bounds: Bounds,
    /// Claimed rows not yet sent, oldest due first: refilled before it runs
    /// dry, so the senders never wait for a claim.
    queue: VecDeque<Queued>,
    /// The senders: at most `concurrency`.
    in_flight: FuturesUnordered<BoxFuture<'a, Attempted>>,
    /// Outcomes answered but not yet handed to a cycle (group commit).
    unrecorded: Vec<AttemptRecord>,
    /// When the oldest of `unrecorded` came in: it waits [`RECORD_DELAY`]
    /// at most.
    oldest: Option<Instant>,
    /// Claims handed back unsent, for the next cycle to make due again.
    released: Vec<ReleasedClaim>,
    /// The ledger cycle in progress.
    cycle: Option<Cycle<'a>>,
    /// The last claim found fewer rows than asked: no claim until a poll
    /// wakes us, a clock step, or `recheck` (the next due time, capped).
    exhausted: bool,
    recheck: Instant,
    /// Ledger failures in a row (run mode), for the backoff, and when the
    /// next cycle may be tried: a failing disk is not hammered.
    failures: u32,
    retry_at: Option<Instant>,
    /// Stopping: no request starts, the queue goes back, and the run ends
    /// once everything in flight is recorded.
    stopping: bool,
    /// What this pipeline holds, and the wall-clock steps it has seen.
    hand: InHand,
}

impl<'a> Pipeline<'a> {
    /// A pipeline of `deliverer` in `mode`, stopped by `cancel`.
    pub(super) fn new(
        deliverer: &'a Deliverer,
        mode: Mode,
        cancel: &'a CancellationToken,
    ) -> Pipeline<'a> {
        let bounds = Bounds::new(deliverer.concurrency);
        Pipeline {
            deliverer,
            mode,
            cancel,
            stop: cancel.child_token(),
            bounds,
            queue: VecDeque::with_capacity(bounds.queue_size),
            in_flight: FuturesUnordered::new(),
            unrecorded: Vec::new(),
            oldest: None,
            released: Vec::new(),
            cycle: None,
            exhausted: false,
            recheck: Instant::now(),
            failures: 0,
            retry_at: None,
            stopping: false,
            hand: InHand::new(),
        }
    }

    /// Runs until stopped (and everything in flight recorded), or, for a
    /// drain, until nothing is due before its deadline. A ledger error ends
    /// a drain or a stopping pipeline; a running one retries with backoff.
    pub(super) async fn run(mut self) -> Result<(), LedgerError> {
        loop {
            if self.hand.look() {
                self.exhausted = false;
            }
            if self.in_flight.is_empty() && self.queue.is_empty() {
                // Nothing in hand: the held and rejected of the last batch
                // get their line now.
                self.deliverer.held_log.flush();
            }
            if self.stopping {
                // Claims that landed after the stop began (a cycle in
                // progress then) go back with the rest.
                self.hand_back_queue();
            }
            let paused = self.deliverer.paused_until();
            self.end_drain_at_a_long_pause(paused);
            self.start_sends(paused);
            self.start_cycle(paused);
            if self.idle() {
                if self.stopping {
                    return Ok(());
                }
                if let Mode::Drain { deadline } = self.mode
                    && (self.exhausted || paused.is_some())
                {
                    if self.wait_for_due(deadline, paused).await? {
                        continue;
                    }
                    return Ok(());
                }
            }
            let event = self.next_event(paused).await;
            self.handle(event)?;
        }
    }

    /// Stops: no new request; senders waiting out a pause give up (their
    /// reviews come back as not sent). The queue goes back at the top of
    /// the loop.
    fn begin_stop(&mut self) {
        self.stopping = true;
        self.stop.cancel();
    }

    /// Every queued claim goes back, due again now, in the next cycle.
    fn hand_back_queue(&mut self) {
        self.released
            .extend(self.queue.drain(..).map(|(due, lease)| release(due, lease)));
    }

    /// A drain that meets a pause ending after its deadline can send
    /// nothing more: what is claimed goes back, what is in flight is
    /// recorded.
    fn end_drain_at_a_long_pause(&mut self, paused: Option<Instant>) {
        if let Mode::Drain { deadline } = self.mode
            && !self.stopping
            && paused.is_some_and(|until| until > deadline)
        {
            self.begin_stop();
            self.hand_back_queue();
        }
    }

    /// Moves queued claims to senders while the bounds allow (see
    /// [`Pipeline::may_send`]). A claim whose lease no longer covers a whole
    /// request goes back instead.
    fn start_sends(&mut self, paused: Option<Instant>) {
        // Nothing is sent while the ledger's files are deleted or replaced:
        // its answer could not be recorded anywhere that lasts.
        let ledger_stopped = self.deliverer.ledger.stopped().is_some();
        if self.stopping || paused.is_some() || ledger_stopped {
            return;
        }
        let deliverer = self.deliverer;
        let timeout = deliverer.client.timeout();
        while self.may_send() {
            let Some((due, lease_until)) = self.queue.pop_front() else {
                break;
            };
            if !lease_covers(lease_until, Utc::now(), timeout) {
                self.released.push(release(due, lease_until));
                continue;
            }
            let attempt = deliverer.attempt(due, lease_until, self.stop.clone());
            self.in_flight.push(Box::pin(attempt));
        }
    }

    /// Whether one more request may start: fewer than `concurrency` in
    /// flight, and fewer than [`max_in_flight`] sent but not yet recorded
    /// (in flight, answered, or in the cycle being written).
    fn may_send(&self) -> bool {
        let recording = self.cycle.as_ref().map_or(0, |c| c.recording);
        self.in_flight.len() < self.bounds.concurrency
            && self.in_flight.len() + self.unrecorded.len() + recording < self.bounds.max_unrecorded
    }

    /// How many rows to claim now: none while stopping, paused, exhausted
    /// or with the queue at least half full; else up to a full queue.
    fn claim_size(&self, paused: Option<Instant>) -> usize {
        if self.stopping
            || paused.is_some()
            || self.exhausted
            || self.queue.len() >= self.bounds.refill_below
        {
            0
        } else {
            self.bounds.queue_size - self.queue.len()
        }
    }

    /// Whether what waits must be written now (group commit): half of
    /// [`max_in_flight`] outcomes, or the oldest waited [`RECORD_DELAY`],
    /// or the pipeline is stopping with anything to write.
    fn commit_due(&self) -> bool {
        let waiting = !(self.unrecorded.is_empty() && self.released.is_empty());
        self.unrecorded.len() >= self.bounds.record_batch
            || self.oldest.is_some_and(|t| t.elapsed() >= RECORD_DELAY)
            || (self.stopping && waiting)
    }

    /// Starts a ledger cycle when none runs (and no failure backoff holds
    /// it) and there is a claim to make or a commit due: one transaction
    /// records the outcomes, hands back the released claims and claims the
    /// next rows. A claim always takes what waits along.
    fn start_cycle(&mut self, paused: Option<Instant>) {
        if self.cycle.is_some() || self.retry_at.is_some_and(|t| t > Instant::now()) {
            return;
        }
        let want = self.claim_size(paused);
        if want == 0 && !self.commit_due() {
            return;
        }
        let now = Utc::now();
        let claim = (want > 0).then(|| self.hand.claim(now, now + self.deliverer.lease, want));
        self.oldest = None;
        let records = std::mem::take(&mut self.unrecorded);
        let handed_back = std::mem::take(&mut self.released);
        let recording = records.len();
        let done = self.deliverer.ledger.run(move |l| {
            let result = l.delivery_cycle(&records, &handed_back, claim);
            Ok((records, handed_back, result))
        });
        self.cycle = Some(Cycle {
            done: Box::pin(done),
            claim,
            recording,
        });
    }

    /// Nothing queued, in flight, being written or waiting to be.
    fn idle(&self) -> bool {
        self.queue.is_empty()
            && self.in_flight.is_empty()
            && self.cycle.is_none()
            && self.unrecorded.is_empty()
            && self.released.is_empty()
    }

    /// An idle drain: sleeps until the next row is due (or the pause
    /// ends), unless that comes after `deadline`. `false`: the drain is
    /// over (nothing due before the deadline, or cancelled).
    async fn wait_for_due(
        &mut self,
        deadline: Instant,
        paused: Option<Instant>,
    ) -> Result<bool, LedgerError> {
        let next = match paused {
            Some(until) => until,
            None => match self.deliverer.ledger.run(|l| l.next_due_at()).await? {
                Some(at) => instant_of(at),
                None => return Ok(false),
            },
        };
        if next > deadline {
            return Ok(false);
        }
        tokio::select! {
            _ = self.cancel.cancelled() => return Ok(false),
            _ = tokio::time::sleep_until(next) => {}
        }
        self.exhausted = false;
        Ok(true)
    }

    /// Waits for the next thing to do. Every wait point selects on
    /// cancellation (until stopping), and there is always one branch
    /// enabled: a pipeline that is not idle has a sender, a cycle, or a
    /// commit it may start once a timer fires.
    async fn next_event(&mut self, paused: Option<Instant>) -> Event {
        let stopping = self.stopping;
        let waiting_for_claims = self.exhausted && !stopping;
        let sending = !self.in_flight.is_empty();
        let committing = self.cycle.is_some();
        let flush_at = self.oldest.map(|t| t + RECORD_DELAY);
        let (retry_at, recheck) = (self.retry_at, self.recheck);
        let ledger = &self.deliverer.ledger;
        let (in_flight, cycle, hand) = (&mut self.in_flight, &mut self.cycle, &mut self.hand);
        tokio::select! {
            biased;
            _ = self.cancel.cancelled(), if !stopping => Event::Cancelled,
            Some(attempted) = in_flight.next(), if sending => Event::Attempted(attempted),
            done = cycle_end(cycle), if committing => Event::Committed(done),
            _ = sleep_until_some(flush_at), if flush_at.is_some() && !committing => Event::Tick,
            _ = sleep_until_some(retry_at), if retry_at.is_some() && !committing => Event::RetryDue,
            _ = ledger.due_notified(), if waiting_for_claims => Event::Woken,
            _ = tokio::time::sleep_until(recheck), if waiting_for_claims => Event::Woken,
            _ = sleep_until_some(paused), if paused.is_some() && !stopping => Event::Tick,
            // Another task saw the wall clock step: re-anchor now.
            _ = hand.stepped_elsewhere(), if !stopping => Event::Woken,
        }
    }

    /// Applies what [`Pipeline::next_event`] found.
    fn handle(&mut self, event: Event) -> Result<(), LedgerError> {
        match event {
            Event::Cancelled => self.begin_stop(),
            Event::Attempted(attempted) => self.collect(attempted),
            Event::Committed(done) => {
                let claim = self.cycle.take().and_then(|c| c.claim);
                return self.committed(claim, done);
            }
            Event::Woken => self.exhausted = false,
            Event::RetryDue => self.retry_at = None,
            Event::Tick => {}
        }
        Ok(())
    }

    /// A sender finished: its records wait for the next commit (counted
    /// now), or its unsent claim goes back.
    fn collect(&mut self, attempted: Attempted) {
        match attempted {
            Attempted::Sent(records) => {
                self.deliverer.count(&records);
                self.oldest.get_or_insert_with(Instant::now);
                self.unrecorded.extend(records);
            }
            // Stopped while it waited out a pause: never sent.
            Attempted::NotSent(due, lease) => self.released.push(release(due, lease)),
        }
    }

    /// A cycle ended. Committed: what it wrote is no longer held, and what
    /// it claimed is queued. Failed: nothing was written, so its outcomes
    /// and hand-backs wait for the next cycle.
    fn committed(&mut self, claim: Option<Claim>, done: CycleOutput) -> Result<(), LedgerError> {
        let report = match done {
            Ok((records, handed_back, Ok(report))) => {
                self.hand.settled(&records, &handed_back);
                Ok(report)
            }
            Ok((records, handed_back, Err(e))) => {
                self.unrecorded.extend(records);
                self.released.extend(handed_back);
                self.oldest.get_or_insert_with(Instant::now);
                Err(e)
            }
            Err(e) => Err(e),
        };
        match report {
            Ok(report) => {
                self.failures = 0;
                if let Some(claim) = claim {
                    self.take_claimed(claim, report);
                }
                Ok(())
            }
            Err(e) => self.ledger_failed(e),
        }
    }

    /// A cycle failed. A drain (`sync`) or a stopping pipeline ends with
    /// the error; a running one logs it and tries again after a backoff.
    fn ledger_failed(&mut self, e: LedgerError) -> Result<(), LedgerError> {
        if matches!(self.mode, Mode::Drain { .. }) || self.stopping {
            return Err(e);
        }
        self.failures += 1;
        crate::metrics::ledger_error(&e);
        let wait = Backoff::PLATFORM.ceiling(self.failures);
        tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "delivery ledger step failed; retrying");
        self.retry_at = Some(Instant::now() + wait);
        Ok(())
    }

    /// Queues what a cycle claimed (but what this pipeline holds already)
    /// and notes whether the ledger ran out of due rows (and when to look
    /// again).
    fn take_claimed(&mut self, claim: Claim, report: CycleReport) {
        log_reanchored(&claim, report.reanchored);
        self.exhausted = report.claimed.len() < claim.limit;
        if self.exhausted {
            let cap = Instant::now() + IDLE_RECHECK;
            self.recheck = report.next_due.map_or(cap, |at| instant_of(at).min(cap));
        }
        let (fresh, held) = self.hand.take(report.claimed);
        // A queued review claimed again (its lease ran out by a step) now
        // holds the new lease in the ledger: so does its queue entry, or it
        // would be handed back unsent and wait for the new lease to end.
        for again in held {
            if let Some(entry) = self
                .queue
                .iter_mut()
                .find(|(d, _)| d.platform == again.platform && d.review_id == again.review_id)
            {
                *entry = (again, claim.lease_until);
            }
        }
        self.queue
            .extend(fresh.into_iter().map(|d| (d, claim.lease_until)));
    }
}

/// Whether a claim leased until `lease_until` may still be sent at `now`:
/// its lease covers a whole request (`timeout`) and the recording after it.
fn lease_covers(lease_until: DateTime<Utc>, now: DateTime<Utc>, timeout: Duration) -> bool {
    let left = (lease_until - now).to_std().unwrap_or(Duration::ZERO);
    left >= timeout + LEASE_MARGIN
}

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

/// The end of the cycle in progress; never completes without one.
async fn cycle_end(cycle: &mut Option<Cycle<'_>>) -> CycleOutput {
    match cycle {
        Some(c) => (&mut c.done).await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests;
