//! Push's Prometheus series and the push-to-delivered latency: which
//! reviews a push read found first, remembered (bounded, in memory) until
//! Travtus accepts them, when the time since their hint arrived is
//! observed. Like `crate::metrics`, every helper is a no-op without the
//! daemon's recorder.
//!
//! Labels: `source` (a configured source), `channel` (`pubsub`, `webhook`),
//! `outcome` and `error_type` (small fixed sets).

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Hints received, by `channel` (`pubsub`, `webhook`) and `outcome`
/// (`queued`: a read is now pending; `coalesced`: joined a pending read;
/// `refused`: over the queue's bounds, left to redelivery and the polls;
/// `ignored`: not about a configured location or not about reviews).
pub const HINTS: &str = "review_sync_push_hints_total";
/// Reads of one location started by hints, by `source` and `outcome`
/// (`committed`, `failed`).
pub const READS: &str = "review_sync_push_reads_total";
/// 1 while a source's push channel works, 0 while it is broken (403, 404,
/// repeated failures, a webhook silent past `webhook_silence_alert`), by
/// `source`.
pub const CHANNEL_UP: &str = "review_sync_push_channel_up";
/// Failures of a push channel, by `source` and `error_type`.
pub const CHANNEL_ERRORS: &str = "review_sync_push_channel_errors_total";
/// Webhook requests by `outcome` (`verified`, `unauthorized`, `too_large`,
/// `unknown_source`, `handshake_ok`, `handshake_refused`).
pub const WEBHOOK_REQUESTS: &str = "review_sync_webhook_requests_total";
/// Seconds from a push hint's arrival to Travtus accepting a review that
/// the read it started found first, by `source`.
pub const LATENCY: &str = "review_sync_push_delivery_latency_seconds";

/// The histogram's buckets: the 3 s target sits between two of them.
pub const LATENCY_BUCKETS: [f64; 10] = [0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Reviews waiting for their first delivery: beyond this, new ones are not
/// timed (their latency is in the ledger anyway).
const MAX_TRACKED: usize = 100_000;

/// Describes the series and registers them at zero for `sources` (those
/// with push) so that alerts see them before the first event.
pub(crate) fn register(sources: &[String]) {
    ENABLED.store(true, Ordering::Relaxed);
    describe_counter!(HINTS, "Push hints by channel and outcome");
    describe_counter!(READS, "Reads started by push hints, by outcome");
    describe_gauge!(CHANNEL_UP, "1 while a source's push channel works");
    describe_counter!(CHANNEL_ERRORS, "Push channel failures by error type");
    describe_counter!(WEBHOOK_REQUESTS, "Webhook requests by outcome");
    describe_histogram!(
        LATENCY,
        metrics::Unit::Seconds,
        "Push hint received to Travtus accepted, for reviews a push read found first"
    );
    for channel in ["pubsub", "webhook"] {
        for outcome in ["queued", "coalesced", "refused", "ignored"] {
            counter!(HINTS, "channel" => channel, "outcome" => outcome).increment(0);
        }
    }
    for source in sources {
        for outcome in ["committed", "failed"] {
            counter!(READS, "source" => source.clone(), "outcome" => outcome).increment(0);
        }
        gauge!(CHANNEL_UP, "source" => source.clone()).set(1.0);
    }
}

/// A hint's fate.
pub(crate) fn hint(channel: &'static str, outcome: &'static str) {
    counter!(HINTS, "channel" => channel, "outcome" => outcome).increment(1);
}

/// The webhook receiver's counters, as totals.
pub(crate) fn webhook_totals(totals: &[(&'static str, u64)]) {
    for (outcome, n) in totals {
        counter!(WEBHOOK_REQUESTS, "outcome" => *outcome).absolute(*n);
    }
}

/// A push read ended.
pub(crate) fn read(source: &str, committed: bool) {
    let outcome = if committed { "committed" } else { "failed" };
    counter!(READS, "source" => source.to_owned(), "outcome" => outcome).increment(1);
}

/// A source's channel is up or broken.
pub(crate) fn channel(source: &str, up: bool) {
    gauge!(CHANNEL_UP, "source" => source.to_owned()).set(if up { 1.0 } else { 0.0 });
}

/// A channel failure.
pub(crate) fn channel_error(source: &str, error_type: &'static str) {
    counter!(CHANNEL_ERRORS, "source" => source.to_owned(), "error_type" => error_type)
        .increment(1);
}

/// Reviews a push read found first, waiting for delivery, and the last
/// deliveries not (yet) known as such: a delivery may be recorded before the
/// read that found the review has marked it (the pipeline starts with the
/// first page), so each side looks for the other under one lock.
#[derive(Default)]
struct Tracked {
    waiting: HashMap<(String, String), (String, SystemTime)>,
    recent: VecDeque<((String, String), SystemTime)>,
}

/// Deliveries remembered for a late mark.
const RECENT: usize = 4096;

/// Set once a generation has push on: before that, deliveries are not
/// remembered at all.
static ENABLED: AtomicBool = AtomicBool::new(false);

fn tracked() -> std::sync::MutexGuard<'static, Tracked> {
    static TRACKED: OnceLock<Mutex<Tracked>> = OnceLock::new();
    TRACKED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn observe(source: &str, hint_at: SystemTime, delivered_at: SystemTime) {
    let seconds = delivered_at
        .duration_since(hint_at)
        .unwrap_or_default()
        .as_secs_f64();
    histogram!(LATENCY, "source" => source.to_owned()).record(seconds);
}

/// Remembers reviews (platform, review id) that a push read of `source`
/// found first, with when their hint arrived; one already delivered is
/// observed at once.
pub(crate) fn first_seen_by_push(source: &str, reviews: &[(String, String)], hint_at: SystemTime) {
    let mut t = tracked();
    if t.waiting.len() + reviews.len() > MAX_TRACKED {
        // Drop what has waited more than a day (held, or Travtus down).
        let day_ago = SystemTime::now() - Duration::from_secs(24 * 60 * 60);
        t.waiting.retain(|_, (_, at)| *at > day_ago);
    }
    for review in reviews {
        if let Some(i) = t.recent.iter().position(|(k, _)| k == review) {
            if let Some((_, delivered_at)) = t.recent.remove(i) {
                observe(source, hint_at, delivered_at);
            }
        } else if t.waiting.len() < MAX_TRACKED {
            t.waiting
                .insert(review.clone(), (source.to_owned(), hint_at));
        }
    }
}

/// Travtus accepted a review: observes its push latency if a push read
/// found it first (once: its later versions are not timed).
pub fn delivered(platform: &str, review_id: &str) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let now = SystemTime::now();
    let key = (platform.to_owned(), review_id.to_owned());
    let mut t = tracked();
    match t.waiting.remove(&key) {
        Some((source, hint_at)) => {
            drop(t);
            observe(&source, hint_at, now);
        }
        None => {
            if t.recent.len() >= RECENT {
                t.recent.pop_front();
            }
            t.recent.push_back((key, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_before_or_after_the_mark_is_matched_once() {
        ENABLED.store(true, Ordering::Relaxed);
        let hint = SystemTime::now() - Duration::from_secs(2);
        let key = |id: &str| ("test-platform".to_owned(), id.to_owned());
        // Delivered first, marked after.
        delivered("test-platform", "early");
        first_seen_by_push("s", &[key("early")], hint);
        assert!(!tracked().waiting.contains_key(&key("early")));
        assert!(!tracked().recent.iter().any(|(k, _)| *k == key("early")));
        // Marked first, delivered after.
        first_seen_by_push("s", &[key("late")], hint);
        assert!(tracked().waiting.contains_key(&key("late")));
        delivered("test-platform", "late");
        assert!(!tracked().waiting.contains_key(&key("late")));
    }
}
