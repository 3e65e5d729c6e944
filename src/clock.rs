//! Wall-clock steps: detecting them, and the bounds that make the ledger's
//! wall-clock due times safe across them.
//!
//! review-sync waits on the monotonic clock (tokio timers, token expiry,
//! pauses), but cron fire times and a review's `next_attempt_at` (a retry
//! time or a delivery lease) are wall-clock times, because they are shared
//! through the ledger and must survive a restart. NTP, `date -s` or a VM
//! resumed after a pause can step the wall clock either way. Comparing how
//! far each clock moved between two looks tells a step from time passing:
//! [`observe`] does that wherever the daemon wakes anyway (every cron task
//! at least once a minute, the delivery loop at least every 30 s), logs each
//! step once, and wakes whoever re-anchors ([`steps`]).
//!
//! **Invariant:** a wall-clock step in either direction neither stalls nor
//! floods the daemon. Backwards: a cron task whose next fire time lies
//! further ahead than the schedule's next one from now re-anchors to the
//! latter (no day-long wait), and every pending review is made due at once
//! on a detected step; a pending row due more than [`LONGEST_DELAY`] ahead
//! is due now even without detection (after a restart, say), because no
//! delay review-sync sets is that long. Forwards: a cron task ticks once for
//! all the fire times it jumped over, never once each; leases that "ran
//! out" by the step do not make in-flight reviews sendable again in this
//! process, which tracks what it holds (`deliver`). At worst a review is
//! sent twice with the same `Idempotency-Key` (another process's lease cut
//! short), which SPEC §5 allows.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The smallest difference between the two clocks' progress reported as a
/// step. NTP slews (at most 500 ppm, 30 ms a minute) and the time between
/// reading the two clocks stay far below it; a step smaller than this only
/// moves due times by that much, which nothing needs to correct.
pub(crate) const STEP_THRESHOLD: Duration = Duration::from_secs(5);

/// The furthest ahead of now review-sync ever sets a pending review's
/// `next_attempt_at`: a retry is at most 10 minutes away
/// ([`crate::retry::MAX_RETRY_AFTER`], backoff caps at 5), and a delivery
/// lease is the Travtus `timeout` (at most [`crate::config::MAX_TIMEOUT`],
/// 10 minutes) plus 10 s; 15 minutes leaves room for clocks that disagree
/// by a few minutes. A row due further ahead was written before the wall
/// clock went back, and is due now.
pub(crate) const LONGEST_DELAY: Duration = Duration::from_secs(15 * 60);

/// What "no deadline" means for a monotonic deadline that would overflow:
/// thirty years ahead, as tokio's own far-future instant.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// A step of the wall clock, measured against the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// How far the wall clock moved beyond the time that passed: positive
    /// forwards, negative backwards.
    pub by: TimeDelta,
}

impl Step {
    /// `forward` or `backward`.
    pub(crate) fn direction(&self) -> &'static str {
        if self.by > TimeDelta::zero() {
            "forward"
        } else {
            "backward"
        }
    }

    /// The step in whole seconds, rounded (the two clocks are read a
    /// moment apart, so a step of a day measures a few microseconds off).
    pub(crate) fn seconds(&self) -> i64 {
        let millis = self.by.num_milliseconds();
        (millis + millis.signum() * 500) / 1000
    }

    /// The size of the step, whole seconds, in humantime (`1day 2h`).
    pub(crate) fn size(&self) -> String {
        let secs = self.seconds().unsigned_abs();
        humantime::format_duration(Duration::from_secs(secs)).to_string()
    }
}

/// Compares successive looks at both clocks. Pure, so that the rule is
/// unit-tested with any clock readings; [`observe`] feeds it the real ones.
#[derive(Debug, Default)]
pub(crate) struct StepDetector {
    last: Option<(DateTime<Utc>, Instant)>,
}

impl StepDetector {
    /// Records a look at both clocks; a [`Step`] when the wall clock moved
    /// by more than [`STEP_THRESHOLD`] more (or less) than the monotonic
    /// clock since the previous look.
    pub(crate) fn look(&mut self, wall: DateTime<Utc>, mono: Instant) -> Option<Step> {
        let previous = self.last.replace((wall, mono));
        let (last_wall, last_mono) = previous?;
        let passed = TimeDelta::from_std(mono.saturating_duration_since(last_mono)).ok()?;
        let moved = wall.signed_duration_since(last_wall);
        let by = moved.checked_sub(&passed)?;
        let threshold = TimeDelta::from_std(STEP_THRESHOLD).ok()?;
        (by.abs() > threshold).then_some(Step { by })
    }
}

/// The process's detector and the count of steps it found.
struct Watch {
    detector: Mutex<StepDetector>,
    steps: tokio::sync::watch::Sender<u64>,
}

static WATCH: LazyLock<Watch> = LazyLock::new(|| Watch {
    detector: Mutex::new(StepDetector::default()),
    steps: tokio::sync::watch::Sender::new(0),
});

/// Looks at both clocks; on a step, logs one warning naming its size and
/// direction and tells every [`steps`] receiver. Cheap (two clock reads
/// under a mutex): call it wherever a task wakes anyway.
pub(crate) fn observe() -> Option<Step> {
    let step = {
        let mut detector = WATCH.detector.lock().unwrap_or_else(|p| p.into_inner());
        detector.look(Utc::now(), Instant::now())
    }?;
    tracing::warn!(
        step_s = step.seconds(),
        direction = step.direction(),
        "the wall clock stepped {} by {} (measured against the monotonic clock): cron fire times are re-anchored to the new time, and every pending review is made due now",
        step.direction(),
        step.size()
    );
    WATCH.steps.send_modify(|n| *n += 1);
    Some(step)
}

/// A receiver that changes after every step [`observe`] finds, wherever it
/// found it: the tasks that re-anchor wait on it.
pub(crate) fn steps() -> tokio::sync::watch::Receiver<u64> {
    WATCH.steps.subscribe()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn only_a_difference_past_the_threshold_between_the_clocks_is_a_step() {
        let mut d = StepDetector::default();
        let t0 = Instant::now();
        assert_eq!(
            d.look(at(0), t0),
            None,
            "the first look has nothing to compare"
        );
        // A minute on both clocks: time passing.
        assert_eq!(d.look(at(60), t0 + Duration::from_secs(60)), None);
        // Slewed by 4 s: below the threshold.
        assert_eq!(d.look(at(124), t0 + Duration::from_secs(120)), None);
        // A day back while a second passed.
        let back = d.look(at(124 + 1 - 86_400), t0 + Duration::from_secs(121));
        assert_eq!(
            back,
            Some(Step {
                by: TimeDelta::seconds(-86_400)
            })
        );
        let back = back.unwrap();
        assert_eq!((back.direction(), back.size()), ("backward", "1day".into()));
        // Measured a little off, as two clock reads are: rounded.
        let off = Step {
            by: TimeDelta::seconds(86_400) - TimeDelta::microseconds(40),
        };
        assert_eq!((off.seconds(), off.size()), (86_400, "1day".into()));
        let off = Step {
            by: TimeDelta::seconds(-86_400) - TimeDelta::microseconds(40),
        };
        assert_eq!((off.seconds(), off.size()), (-86_400, "1day".into()));
        // Forward again, by an hour and a half, in two seconds.
        let forward = d
            .look(at(124 + 3 - 86_400 + 5_400), t0 + Duration::from_secs(123))
            .unwrap();
        assert_eq!(
            (forward.direction(), forward.size()),
            ("forward", "1h 30m".into())
        );
        // A machine suspended for ten minutes: the monotonic clock stood
        // still, so it looks like a forward step, which it is for us.
        let suspended = d
            .look(
                at(124 + 3 - 86_400 + 5_400 + 600),
                t0 + Duration::from_secs(123),
            )
            .unwrap();
        assert_eq!(suspended.by, TimeDelta::seconds(600));
    }

    #[test]
    fn the_longest_delay_covers_every_delay_review_sync_sets() {
        let lease = crate::config::MAX_TIMEOUT + crate::deliver::LEASE_SLACK;
        for (what, d) in [
            ("Retry-After cap", crate::retry::MAX_RETRY_AFTER),
            ("delivery backoff cap", crate::retry::Backoff::DELIVERY.cap),
            ("longest lease", lease),
        ] {
            assert!(d < LONGEST_DELAY, "{what} {d:?} >= {LONGEST_DELAY:?}");
        }
    }
}
