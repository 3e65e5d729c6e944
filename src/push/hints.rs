//! The hint queue: turns a stream of hints ("location L of source S may
//! have news") into reads of locations, coalesced, bounded, and settled.
//!
//! Rules:
//! - A burst of hints for one (source, location) becomes one pending read.
//! - A hint that arrives while that location's read runs schedules exactly
//!   one more read, after it: the running read may have listed the location
//!   before the hinted review existed.
//! - Reads of one location start at least [`HintQueueLimits::min_interval`]
//!   apart, so a storm of hints costs a few reads, not one per read's length.
//! - Memory is bounded: at most `max_locations` locations are tracked, and
//!   each holds at most `max_acks_per_location` ack ids. A hint over either
//!   bound is refused and its ack id handed back to be left unacknowledged
//!   (Pub/Sub redelivers it; the scheduled poll is the check anyway).
//! - A Pub/Sub hint carries an ack id. The ids that arrived before a read
//!   started ride on its [`ReadTicket`]; finishing the ticket with
//!   [`ReadOutcome::Committed`] hands them back to be acknowledged, with
//!   [`ReadOutcome::Failed`] to be redelivered later. A ticket dropped
//!   unfinished (a crash, a cancelled task) settles nothing: the ack ids
//!   run out on Pub/Sub's side and the messages come again.
//! - Hints carry no review data, so a duplicate, late or out-of-order hint
//!   costs at most one read that finds nothing new. Forged hints are
//!   refused before they get here (`webhook`).
//!
//! Time is tokio's, so tests run it paused.

use crate::domain::{LocationId, SourceName};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where a hint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HintChannel {
    /// A Cloud Pub/Sub message (Google Business Profile notifications).
    PubSub,
    /// A verified webhook of the platform of this kind
    /// (`crate::push::webhook::WebhookKind`).
    Webhook(&'static str),
}

impl HintChannel {
    /// The label used in logs and metrics: `pubsub`, or the platform's kind.
    pub fn as_str(self) -> &'static str {
        match self {
            HintChannel::PubSub => "pubsub",
            HintChannel::Webhook(kind) => kind,
        }
    }
}

/// "This location may have a new or edited review."
#[derive(Clone, Debug)]
pub struct Hint {
    /// The configured source the location belongs to.
    pub source: SourceName,
    /// The location to read, as configured.
    pub location: LocationId,
    /// The review the notification named, if any (for logs only: the read
    /// is of the whole location, incremental).
    pub review: Option<String>,
    /// Where it came from.
    pub channel: HintChannel,
    /// The Pub/Sub ack id to settle once the read it causes is committed.
    pub ack_id: Option<String>,
    /// When the notification reached us (for the push latency).
    pub received_at: SystemTime,
}

impl Hint {
    /// A hint received now, without an ack id.
    pub fn new(source: SourceName, location: LocationId, channel: HintChannel) -> Hint {
        Hint {
            source,
            location,
            review: None,
            channel,
            ack_id: None,
            received_at: SystemTime::now(),
        }
    }

    /// The same hint carrying a Pub/Sub ack id.
    pub fn with_ack_id(mut self, ack_id: impl Into<String>) -> Hint {
        self.ack_id = Some(ack_id.into());
        self
    }

    /// The same hint naming a review.
    pub fn with_review(mut self, review: impl Into<String>) -> Hint {
        self.review = Some(review.into());
        self
    }
}

/// What became of a pushed hint (the caller counts these in its metrics).
#[derive(Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// A read of the location is now pending (none was).
    Queued,
    /// A read was already pending: this hint joined it.
    Coalesced,
    /// Over the bound of locations: nothing was queued. The ack id, if any,
    /// is handed back; leave it unacknowledged (or nack it later) so that
    /// Pub/Sub delivers the message again.
    Refused {
        /// The hint's ack id.
        ack_id: Option<String>,
    },
    /// A read is pending, but the location already holds as many ack ids
    /// as it may: this one is handed back, as for `Refused`.
    AckNotKept {
        /// The hint's ack id.
        ack_id: String,
    },
}

/// How the read of a ticket ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Every page the read found was committed to the ledger.
    Committed,
    /// The read failed (or was given up) before committing.
    Failed,
}

/// What to tell Pub/Sub about a finished read's ack ids.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// `:acknowledge` these: the read they caused is committed.
    pub acknowledge: Vec<String>,
    /// `:modifyAckDeadline` these to a retry delay: the read failed, so the
    /// messages should come back later (not at once, which would retry a
    /// failing platform in a tight loop).
    pub redeliver: Vec<String>,
}

/// Bounds and pacing of a [`HintQueue`].
#[derive(Clone, Copy, Debug)]
pub struct HintQueueLimits {
    /// Locations tracked at once (pending, running or cooling down).
    pub max_locations: usize,
    /// Ack ids held per location.
    pub max_acks_per_location: usize,
    /// The least time between the starts of two reads of one location.
    pub min_interval: Duration,
}

impl Default for HintQueueLimits {
    fn default() -> HintQueueLimits {
        HintQueueLimits {
            // Far above any configured portfolio; each entry is a few
            // hundred bytes.
            max_locations: 10_000,
            // One Pub/Sub pull returns at most a few hundred messages; a
            // location rarely has more than a handful outstanding.
            max_acks_per_location: 1_000,
            // A burst of 1,000 hints within a second costs two or three
            // reads, and a lone hint still waits at most this long behind
            // the previous read: well inside the 3 s push target.
            min_interval: Duration::from_secs(1),
        }
    }
}

type Key = (SourceName, LocationId);

#[derive(Default)]
struct Entry {
    /// A read is wanted (and not yet started).
    pending: bool,
    /// A ticket for this location is out.
    running: bool,
    /// Ack ids for the next read.
    acks: Vec<String>,
    /// Where the earliest hint of the pending read came from.
    first_channel: Option<HintChannel>,
    /// When the earliest hint of the pending read arrived.
    first_received: Option<SystemTime>,
    /// Hints folded into the pending read.
    hints: u64,
    /// When the last read of this location started.
    last_start: Option<Instant>,
    /// Whether the entry is in `State::ready` (to never queue it twice).
    queued: bool,
}

impl Entry {
    fn idle(&self) -> bool {
        !self.pending && !self.running
    }
}

struct State {
    entries: HashMap<Key, Entry>,
    /// Locations with a pending read and no running one, in hint order.
    ready: VecDeque<Key>,
    next_ticket: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Woken when a location becomes ready or a running read ends.
    wake: Notify,
    limits: HintQueueLimits,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// The queue (cheap to clone; clones share it).
#[derive(Clone)]
pub struct HintQueue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HintQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintQueue").finish_non_exhaustive()
    }
}

/// One read to do: of `source`/`location`, carrying the ack ids of the
/// hints that asked for it. Finish it with [`ReadTicket::finish`].
#[derive(Debug)]
pub struct ReadTicket {
    /// The source of the location.
    pub source: SourceName,
    /// The location to read.
    pub location: LocationId,
    /// Where the earliest of its hints came from.
    pub channel: HintChannel,
    /// When the earliest of its hints arrived: a review this read finds
    /// for the first time was "first seen via push" at about this moment.
    pub first_hint_at: SystemTime,
    /// How many hints this one read answers.
    pub hints: u64,
    /// The number of this read (increasing), for logs.
    pub number: u64,
    acks: Vec<String>,
    /// `None` once finished.
    queue: Option<Arc<Shared>>,
}

impl ReadTicket {
    /// The ack ids this read settles (for extending their deadline while
    /// it runs).
    pub fn ack_ids(&self) -> &[String] {
        &self.acks
    }

    /// Ends the read: frees the location for its next read and says what
    /// to do with the ack ids.
    pub fn finish(mut self, outcome: ReadOutcome) -> Settlement {
        let acks = std::mem::take(&mut self.acks);
        if let Some(shared) = self.queue.take() {
            release(&shared, &self.source, &self.location);
        }
        match outcome {
            ReadOutcome::Committed => Settlement {
                acknowledge: acks,
                redeliver: Vec::new(),
            },
            ReadOutcome::Failed => Settlement {
                acknowledge: Vec::new(),
                redeliver: acks,
            },
        }
    }
}

impl Drop for ReadTicket {
    fn drop(&mut self) {
        // Unfinished: free the location; the ack ids are left to expire.
        if let Some(shared) = self.queue.take() {
            release(&shared, &self.source, &self.location);
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // Every critical section leaves the state consistent: a panic in one
    // (there is no code that can) must not take push down for good.
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

fn release(shared: &Shared, source: &SourceName, location: &LocationId) {
    let mut state = lock(shared);
    let key = (source.clone(), location.clone());
    if let Some(entry) = state.entries.get_mut(&key) {
        entry.running = false;
        if entry.pending && !entry.queued {
            entry.queued = true;
            state.ready.push_back(key);
        }
    }
    drop(state);
    shared.wake.notify_waiters();
}

impl HintQueue {
    /// An empty queue.
    pub fn new(limits: HintQueueLimits) -> HintQueue {
        HintQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    entries: HashMap::new(),
                    ready: VecDeque::new(),
                    next_ticket: 1,
                }),
                wake: Notify::new(),
                limits,
            }),
        }
    }

    /// Records a hint. Never blocks on a read: a webhook handler answers
    /// right after this.
    pub fn push(&self, hint: Hint) -> PushOutcome {
        let limits = self.shared.limits;
        let key = (hint.source, hint.location);
        let mut state = lock(&self.shared);
        if !state.entries.contains_key(&key) && state.entries.len() >= limits.max_locations {
            forget_idle(&mut state, limits.min_interval);
            if state.entries.len() >= limits.max_locations {
                return PushOutcome::Refused {
                    ack_id: hint.ack_id,
                };
            }
        }
        let entry = state.entries.entry(key.clone()).or_default();
        // Still a hint for the read when its ack id is over the bound: only
        // the id is not kept.
        let mut unkept = None;
        if let Some(ack_id) = hint.ack_id {
            if entry.acks.len() >= limits.max_acks_per_location {
                unkept = Some(ack_id);
            } else {
                entry.acks.push(ack_id);
            }
        }
        entry.hints += 1;
        if entry.pending {
            return match unkept {
                Some(ack_id) => PushOutcome::AckNotKept { ack_id },
                None => PushOutcome::Coalesced,
            };
        }
        entry.pending = true;
        entry.first_channel = Some(hint.channel);
        entry.first_received = Some(hint.received_at);
        if !entry.running && !entry.queued {
            entry.queued = true;
            state.ready.push_back(key);
        }
        drop(state);
        self.shared.wake.notify_waiters();
        match unkept {
            Some(ack_id) => PushOutcome::AckNotKept { ack_id },
            None => PushOutcome::Queued,
        }
    }

    /// The next read to do, if one may start now.
    pub fn try_next(&self) -> Option<ReadTicket> {
        self.next_or_wait().0
    }

    /// Waits for the next read that may start, and hands it out. Several
    /// workers may wait at once; each location is handed to one at a time.
    pub async fn next(&self) -> ReadTicket {
        loop {
            let woken = self.shared.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let (ticket, wait_until) = self.next_or_wait();
            if let Some(ticket) = ticket {
                return ticket;
            }
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        _ = woken => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => woken.await,
            }
        }
    }

    /// How many locations have a read pending (started or not counts
    /// separately: see [`HintQueue::running`]).
    pub fn pending(&self) -> usize {
        lock(&self.shared)
            .entries
            .values()
            .filter(|e| e.pending)
            .count()
    }

    /// How many reads are out (tickets not yet finished).
    pub fn running(&self) -> usize {
        lock(&self.shared)
            .entries
            .values()
            .filter(|e| e.running)
            .count()
    }

    /// Every ack id held for reads not yet started (for extending their
    /// deadline; a running read's ids are on its ticket).
    pub fn waiting_ack_ids(&self) -> Vec<String> {
        lock(&self.shared)
            .entries
            .values()
            .flat_map(|e| e.acks.iter().cloned())
            .collect()
    }

    /// A ready location whose interval has passed, as a ticket; otherwise
    /// the earliest moment one may become startable.
    fn next_or_wait(&self) -> (Option<ReadTicket>, Option<Instant>) {
        let min_interval = self.shared.limits.min_interval;
        let now = Instant::now();
        let mut state = lock(&self.shared);
        let mut earliest: Option<Instant> = None;
        let mut found = None;
        for (index, key) in state.ready.iter().enumerate() {
            let Some(entry) = state.entries.get(key) else {
                continue;
            };
            let startable_at = entry.last_start.map_or(now, |t| t + min_interval);
            if startable_at <= now {
                found = Some(index);
                break;
            }
            earliest = Some(earliest.map_or(startable_at, |e| e.min(startable_at)));
        }
        let Some(index) = found else {
            return (None, earliest);
        };
        let Some(key) = state.ready.remove(index) else {
            return (None, earliest);
        };
        let number = state.next_ticket;
        state.next_ticket += 1;
        let Some(entry) = state.entries.get_mut(&key) else {
            return (None, earliest);
        };
        entry.queued = false;
        entry.pending = false;
        entry.running = true;
        entry.last_start = Some(now);
        let ticket = ReadTicket {
            source: key.0.clone(),
            location: key.1.clone(),
            channel: entry.first_channel.take().unwrap_or(HintChannel::PubSub),
            first_hint_at: entry.first_received.take().unwrap_or_else(SystemTime::now),
            hints: std::mem::take(&mut entry.hints),
            number,
            acks: std::mem::take(&mut entry.acks),
            queue: Some(Arc::clone(&self.shared)),
        };
        (Some(ticket), None)
    }
}

/// Drops entries that are idle and past their interval: they hold no ack
/// ids and no pacing that still matters.
fn forget_idle(state: &mut State, min_interval: Duration) {
    let now = Instant::now();
    state.entries.retain(|_, e| {
        !(e.idle() && e.acks.is_empty() && e.last_start.is_none_or(|t| t + min_interval <= now))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(location: &str) -> Hint {
        Hint::new(
            SourceName::new("acme"),
            LocationId::new(location),
            HintChannel::PubSub,
        )
    }

    fn queue() -> HintQueue {
        HintQueue::new(HintQueueLimits::default())
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_hints_within_a_second_cost_at_most_a_few_reads() {
        let q = queue();
        let reader = q.clone();
        let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Arc::clone(&reads);
        let worker = tokio::spawn(async move {
            loop {
                let ticket = reader.next().await;
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // A read of one location takes a while.
                tokio::time::sleep(Duration::from_millis(50)).await;
                ticket.finish(ReadOutcome::Committed);
            }
        });
        let mut outcomes = HashMap::new();
        for i in 0..1000u64 {
            let outcome = q.push(hint("accounts/1/locations/2").with_ack_id(format!("a{i}")));
            *outcomes.entry(format!("{outcome:?}")).or_insert(0) += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Let every pending read run.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let reads = reads.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=3).contains(&reads), "{reads} reads for 1,000 hints");
        assert!(
            outcomes.get("Coalesced").copied().unwrap_or(0) >= 990,
            "{outcomes:?}"
        );
        assert_eq!(q.pending(), 0);
        assert_eq!(q.running(), 0);
        worker.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_during_a_read_schedules_exactly_one_more_read() {
        let q = queue();
        assert_eq!(q.push(hint("L").with_ack_id("first")), PushOutcome::Queued);
        let ticket = q.try_next().expect("a read");
        assert_eq!(ticket.ack_ids(), ["first"]);
        // While it runs: three hints, one read.
        assert_eq!(q.push(hint("L").with_ack_id("second")), PushOutcome::Queued);
        assert_eq!(
            q.push(hint("L").with_ack_id("third")),
            PushOutcome::Coalesced
        );
        assert_eq!(q.push(hint("L")), PushOutcome::Coalesced);
        // Not while the first runs, even past the interval.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(q.try_next().is_none());
        let settled = ticket.finish(ReadOutcome::Committed);
        // Only the ack id that came before the read started is settled.
        assert_eq!(settled.acknowledge, vec!["first".to_owned()]);
        let second = q.try_next().expect("the one more read");
        assert_eq!(second.ack_ids(), ["second", "third"]);
        assert_eq!(second.hints, 3);
        assert!(q.try_next().is_none());
        let settled = second.finish(ReadOutcome::Committed);
        assert_eq!(
            settled.acknowledge,
            vec!["second".to_owned(), "third".to_owned()]
        );
        assert!(q.try_next().is_none(), "nothing more without a new hint");
    }

    #[tokio::test(start_paused = true)]
    async fn reads_of_one_location_start_at_least_the_interval_apart() {
        let q = queue();
        q.push(hint("L"));
        q.try_next()
            .expect("first read")
            .finish(ReadOutcome::Committed);
        q.push(hint("L"));
        assert!(q.try_next().is_none(), "too soon after the last start");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(q.try_next().is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(q.try_next().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn next_waits_for_the_interval_instead_of_spinning() {
        let q = queue();
        q.push(hint("L"));
        q.try_next().expect("first").finish(ReadOutcome::Committed);
        q.push(hint("L"));
        let started = Instant::now();
        let ticket = q.next().await;
        assert_eq!(ticket.location.as_str(), "L");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn locations_do_not_wait_for_each_other() {
        let q = queue();
        q.push(hint("A"));
        q.push(hint("B"));
        let a = q.try_next().expect("A");
        let b = q.try_next().expect("B while A runs");
        assert_eq!((a.location.as_str(), b.location.as_str()), ("A", "B"));
        // Same location id under another source is another location.
        let other = Hint::new(
            SourceName::new("other"),
            LocationId::new("A"),
            HintChannel::Webhook("facebook"),
        );
        assert_eq!(q.push(other), PushOutcome::Queued);
        assert_eq!(
            q.try_next().expect("other/A").channel,
            HintChannel::Webhook("facebook")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_hands_its_ack_ids_back_for_redelivery() {
        let q = queue();
        q.push(hint("L").with_ack_id("x"));
        let settled = q.try_next().expect("read").finish(ReadOutcome::Failed);
        assert_eq!(
            settled,
            Settlement {
                acknowledge: vec![],
                redeliver: vec!["x".to_owned()]
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_ticket_settles_nothing_and_frees_the_location() {
        let q = queue();
        q.push(hint("L").with_ack_id("x"));
        let ticket = q.try_next().expect("read");
        q.push(hint("L").with_ack_id("y"));
        drop(ticket);
        assert_eq!(q.running(), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        let next = q
            .try_next()
            .expect("the hint that came during the dropped read");
        assert_eq!(next.ack_ids(), ["y"], "x is left to Pub/Sub to redeliver");
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_in_locations_and_ack_ids() {
        let q = HintQueue::new(HintQueueLimits {
            max_locations: 2,
            max_acks_per_location: 2,
            min_interval: Duration::from_secs(1),
        });
        assert_eq!(q.push(hint("A").with_ack_id("1")), PushOutcome::Queued);
        assert_eq!(q.push(hint("A").with_ack_id("2")), PushOutcome::Coalesced);
        assert_eq!(
            q.push(hint("A").with_ack_id("3")),
            PushOutcome::AckNotKept { ack_id: "3".into() }
        );
        assert_eq!(q.push(hint("B")), PushOutcome::Queued);
        assert_eq!(
            q.push(hint("C").with_ack_id("c")),
            PushOutcome::Refused {
                ack_id: Some("c".into())
            }
        );
        // Once A and B are read and their interval has passed, C fits.
        q.try_next().expect("A").finish(ReadOutcome::Committed);
        q.try_next().expect("B").finish(ReadOutcome::Committed);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(q.push(hint("C")), PushOutcome::Queued);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_whose_ack_id_is_over_the_bound_still_asks_for_a_read() {
        let q = HintQueue::new(HintQueueLimits {
            max_locations: 10,
            max_acks_per_location: 1,
            min_interval: Duration::from_secs(1),
        });
        q.push(hint("A").with_ack_id("1"));
        let running = q.try_next().expect("A");
        assert_eq!(q.push(hint("A").with_ack_id("2")), PushOutcome::Queued);
        assert_eq!(
            q.push(hint("A").with_ack_id("3")),
            PushOutcome::AckNotKept { ack_id: "3".into() }
        );
        running.finish(ReadOutcome::Committed);
        tokio::time::advance(Duration::from_secs(1)).await;
        let next = q.try_next().expect("the read asked for");
        assert_eq!(next.ack_ids(), ["2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ticket_remembers_the_earliest_hint() {
        let q = queue();
        let early = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut first = hint("L");
        first.received_at = early;
        first.channel = HintChannel::Webhook("trustpilot");
        q.push(first);
        q.push(hint("L"));
        let ticket = q.try_next().expect("read");
        assert_eq!(ticket.first_hint_at, early);
        assert_eq!(ticket.channel, HintChannel::Webhook("trustpilot"));
        assert_eq!(ticket.hints, 2);
    }
}
