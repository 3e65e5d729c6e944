//! The pipeline's steps, driven one at a time on a real (empty) ledger
//! file: the bounds on what is in flight, the lease check, group commit,
//! re-claims of held reviews, and the hand-back on stop. Nothing is ever
//! sent: the senders started here are never polled.

use super::*;
use crate::config::Secret;
use crate::ledger::{AttemptOutcome, Ledger, LedgerHandle, SentAs};
use crate::oauth::{Grant, TokenCache};
use crate::travtus::TravtusClient;
use std::num::NonZeroUsize;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A worker with `concurrency` over a new ledger in `dir`, its Travtus a
/// closed loopback port.
fn deliverer(dir: &std::path::Path, concurrency: usize) -> Deliverer {
    let ledger = LedgerHandle::new(Ledger::open(&dir.join("ledger.db")).expect("ledger"));
    let http = reqwest::Client::new();
    let base = url::Url::parse("http://127.0.0.1:9/").expect("url");
    let client = TravtusClient::new(http.clone(), &base, TIMEOUT);
    let tokens = TokenCache::new(Grant::Static(Secret::new("t")), base, http);
    let concurrency = NonZeroUsize::new(concurrency).expect("non-zero");
    Deliverer::new(ledger, client, tokens, concurrency)
}

fn due(i: usize) -> DueReview {
    let payload = format!(r#"{{"n":{i}}}"#);
    DueReview {
        platform: "google".into(),
        review_id: format!("r{i}"),
        sent: SentAs::new(None, &payload),
        payload,
        content_hash: format!("h{i}"),
        retry_count: 0,
    }
}

fn record(i: usize) -> AttemptRecord {
    AttemptRecord {
        platform: "google".into(),
        review_id: format!("r{i}"),
        content_hash: format!("h{i}"),
        attempted_at: Utc::now(),
        http_status: Some(201),
        error_type: None,
        error_message: None,
        request_id: Some(format!("req-{i}")),
        duration_ms: 1,
        outcome: AttemptOutcome::Delivered {
            request_id: format!("req-{i}"),
        },
        sent: SentAs::default(),
    }
}

/// A lease that covers any request.
fn far() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::minutes(10)
}

fn queued(p: &Pipeline<'_>) -> Vec<(String, DateTime<Utc>)> {
    p.queue
        .iter()
        .map(|(d, lease)| (d.review_id.clone(), *lease))
        .collect()
}

#[test]
fn the_bounds_follow_the_concurrency() {
    assert_eq!(
        Bounds::new(4),
        Bounds {
            concurrency: 4,
            queue_size: 128,
            refill_below: 64,
            max_unrecorded: 128,
            record_batch: 64,
        }
    );
    assert_eq!(max_in_flight(4), Bounds::new(4).max_unrecorded);
}

#[tokio::test]
async fn sends_start_within_the_concurrency_and_the_in_flight_bound() {
    let dir = tempfile::tempdir().unwrap();
    let d = deliverer(dir.path(), 2);
    let cancel = CancellationToken::new();

    let mut p = Pipeline::new(&d, Mode::Run, &cancel);
    p.queue.extend((0..10).map(|i| (due(i), far())));
    p.start_sends(None);
    assert_eq!(p.in_flight.len(), 2, "at most `concurrency` in flight");
    assert_eq!(p.queue.len(), 8);

    // Answered but unrecorded outcomes, and those a cycle is writing, count
    // against max_in_flight: what a crash could send twice.
    let mut p = Pipeline::new(&d, Mode::Run, &cancel);
    p.queue.extend((0..10).map(|i| (due(i), far())));
    p.unrecorded = (0..p.bounds.max_unrecorded - 1).map(record).collect();
    p.start_sends(None);
    assert_eq!(p.in_flight.len(), 1, "one slot left under max_in_flight");
    p.start_cycle(None);
    assert_eq!(p.cycle.as_ref().map(|c| c.recording), Some(63));
    assert!(p.unrecorded.is_empty());
    p.start_sends(None);
    assert_eq!(p.in_flight.len(), 1, "outcomes being written still count");

    // Nothing starts while paused or stopping.
    let mut p = Pipeline::new(&d, Mode::Run, &cancel);
    p.queue.extend((0..10).map(|i| (due(i), far())));
    p.start_sends(Some(Instant::now() + Duration::from_secs(1)));
    assert_eq!(p.in_flight.len(), 0, "paused");
    p.begin_stop();
    p.start_sends(None);
    assert_eq!(p.in_flight.len(), 0, "stopping");
}

#[tokio::test]
async fn a_claim_whose_lease_no_longer_covers_a_request_goes_back_unsent() {
    let dir = tempfile::tempdir().unwrap();
    let d = deliverer(dir.path(), 2);
    let cancel = CancellationToken::new();
    let mut p = Pipeline::new(&d, Mode::Run, &cancel);
    // Covers a request, but not the margin for recording its outcome.
    let short = Utc::now() + chrono::Duration::from_std(TIMEOUT + LEASE_MARGIN / 2).unwrap();
    p.queue.push_back((due(0), short));
    p.queue.push_back((due(1), far()));
    p.start_sends(None);
    assert_eq!(p.in_flight.len(), 1, "only r1 is sent");
    let back: Vec<_> = p.released.iter().map(|r| r.review_id.as_str()).collect();
    assert_eq!(back, ["r0"]);
    assert_eq!(
        p.released[0].lease_until, short,
        "handed back under its lease"
    );
}

#[tokio::test]
async fn outcomes_are_committed_in_groups_by_count_by_age_and_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let d = deliverer(dir.path(), 2);
    let cancel = CancellationToken::new();
    // Nothing to claim (the ledger ran dry): only commits start a cycle.
    let pipeline = || {
        let mut p = Pipeline::new(&d, Mode::Run, &cancel);
        p.exhausted = true;
        p
    };

    let mut p = pipeline();
    let batch = p.bounds.record_batch;
    p.unrecorded = (0..batch - 1).map(record).collect();
    p.oldest = Some(Instant::now());
    p.start_cycle(None);
    assert!(
        p.cycle.is_none(),
        "fewer than half of max_in_flight, and fresh"
    );
    p.unrecorded.push(record(batch));
    p.start_cycle(None);
    let cycle = p.cycle.as_ref().expect("a cycle at half of max_in_flight");
    assert_eq!((cycle.recording, cycle.claim.is_none()), (batch, true));
    assert_eq!(p.oldest, None);

    let mut p = pipeline();
    p.unrecorded.push(record(0));
    p.oldest = Some(Instant::now() - RECORD_DELAY);
    p.start_cycle(None);
    assert!(p.cycle.is_some(), "the oldest outcome waited RECORD_DELAY");

    let mut p = pipeline();
    p.released.push(release(due(0), far()));
    p.start_cycle(None);
    assert!(p.cycle.is_none(), "a hand-back alone waits");
    p.begin_stop();
    p.start_cycle(None);
    assert!(p.cycle.is_some(), "a stopping pipeline writes what it has");

    // A failed cycle holds the next one back until its backoff ends.
    let mut p = pipeline();
    p.unrecorded = (0..batch).map(record).collect();
    p.retry_at = Some(Instant::now() + Duration::from_secs(1));
    p.start_cycle(None);
    assert!(p.cycle.is_none(), "backing off after a ledger failure");
}

#[tokio::test]
async fn the_queue_is_refilled_when_half_empty_and_not_while_paused() {
    let dir = tempfile::tempdir().unwrap();
    let d = deliverer(dir.path(), 2);
    let cancel = CancellationToken::new();
    let mut p = Pipeline::new(&d, Mode::Run, &cancel);
    let (queue_size, refill_below) = (p.bounds.queue_size, p.bounds.refill_below);
    p.queue.extend((0..refill_below).map(|i| (due(i), far())));
    assert_eq!(p.claim_size(None), 0, "half full: no claim yet");
    p.queue.pop_back();
    assert_eq!(p.claim_size(None), queue_size - refill_below + 1);
    assert_eq!(p.claim_size(Some(Instant::now())), 0, "paused");
    p.start_cycle(None);
    let claim = p.cycle.as_ref().and_then(|c| c.claim).expect("a claim");
    assert_eq!(claim.limit, queue_size - refill_below + 1);
    assert!(claim.lease_until > claim.now + chrono::Duration::from_std(TIMEOUT).unwrap());
}

#[tokio::test]
async fn a_review_claimed_again_while_held_is_queued_once_under_the_new_lease() {
    let dir = tempfile::tempdir().unwrap();
    let d = deliverer(dir.path(), 1);
    let cancel = CancellationToken::new();
    let mut p = Pipeline::new(&d, Mode::Run, &cancel);
    let now = Utc::now();
    let (first, second) = (now + chrono::Duration::seconds(15), far());
    let report = |ids: &[usize]| CycleReport {
        claimed: ids.iter().map(|i| due(*i)).collect(),
        next_due: None,
        reanchored: 0,
    };
    p.take_claimed(Claim::new(now, first, 2), report(&[0]));
    assert_eq!(queued(&p), [("r0".to_owned(), first)]);
    assert!(p.exhausted, "fewer rows than asked: the ledger ran dry");

    // A forward clock step ended r0's lease early: the ledger gave it again.
    p.take_claimed(Claim::new(now, second, 2), report(&[0, 1]));
    assert_eq!(
        queued(&p),
        [("r0".to_owned(), second), ("r1".to_owned(), second)],
        "r0 once, under the lease the ledger holds now"
    );
    assert!(!p.exhausted);
}

/// A stop hands every queued claim back in one last cycle, through the
/// real ledger, and the pipeline is then idle: `run` returns.
#[tokio::test]
async fn a_stopping_pipeline_hands_back_its_queue_in_one_last_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let d = deliverer(dir.path(), 2);
    let cancel = CancellationToken::new();
    let mut p = Pipeline::new(&d, Mode::Run, &cancel);
    p.take_claimed(
        Claim::new(Utc::now(), far(), 3),
        CycleReport {
            claimed: (0..3).map(due).collect(),
            next_due: None,
            reanchored: 0,
        },
    );
    cancel.cancel();
    let event = p.next_event(None).await;
    assert!(matches!(event, Event::Cancelled));
    p.handle(event).unwrap();
    assert!(p.stop.is_cancelled(), "senders waiting out a pause give up");
    p.hand_back_queue();
    p.start_sends(None);
    p.start_cycle(None);
    assert!(p.in_flight.is_empty() && p.queue.is_empty());
    let cycle = p.cycle.as_ref().expect("the last cycle");
    assert!(cycle.claim.is_none(), "a stopping pipeline claims nothing");
    assert!(!p.idle());

    let event = p.next_event(None).await;
    assert!(matches!(event, Event::Committed(Ok((_, ref back, Ok(_)))) if back.len() == 3));
    p.handle(event).unwrap();
    assert!(p.idle(), "nothing left in hand");
    assert!(
        p.hand.take(vec![due(0)]).1.is_empty(),
        "r0 is no longer held"
    );
}
