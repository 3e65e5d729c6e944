//! Quota windows as the platforms define them, and their counting: pure
//! (every function takes the time), so the rules are unit-tested with a
//! fake clock.
//!
//! Two kinds of window:
//! - **rolling** ("833 per 5 minutes"): at most `limit` calls in *any*
//!   interval of that length. Counted in [`BUCKETS`] + 1 buckets of
//!   `period / BUCKETS` each, so memory stays a few hundred bytes whatever
//!   the limit (a 24-hour window of 4,800 calls per Facebook Page, for
//!   thousands of Pages) and the count errs on the safe side by at most one
//!   bucket (1/60 of the period).
//! - **daily** ("300 per day, resets at midnight UTC"): a count since the
//!   last reset at a fixed UTC time of day, on the wall clock, which the
//!   platform's own report (Yelp's `RateLimit-*` headers) can overwrite.
//!
//! Why not `governor` (already a dependency, GCRA per quota): a GCRA has no
//! calendar, so a daily cap that resets at 00:00 UTC cannot be expressed;
//! with a burst of `n` it admits up to `2n - 1` calls in some interval of
//! the period (a full burst, then the refill), so "833 per 5 minutes" would
//! overshoot or need half the burst; its state cannot be set from a
//! platform's "remaining" count; and it cannot say which of several limits
//! a caller waits for, which every wait longer than 2 s must log.

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use std::fmt;
use std::time::Duration;

/// Buckets per rolling window: 1/60 of the period is the most a count errs
/// by (on the safe side), at 61 small counters per window.
pub const BUCKETS: u64 = 60;

/// One day, the period of a daily window.
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A limit the platform puts on calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Calls allowed in the span.
    pub limit: u32,
    /// Over what.
    pub span: Span,
}

/// The span of a [`Window`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// Any interval of this length.
    Rolling(Duration),
    /// A day that starts at this UTC time of day (Yelp: midnight).
    Daily {
        /// When the count starts again.
        resets_at: NaiveTime,
    },
}

impl Window {
    /// `limit` calls in any interval of `period` (at least 1 call, at
    /// least 1 ms: a zero would stop the scope for good).
    pub fn rolling(limit: u32, period: Duration) -> Window {
        Window {
            limit: limit.max(1),
            span: Span::Rolling(period.max(Duration::from_millis(1))),
        }
    }

    /// `limit` calls per second.
    pub fn per_second(limit: u32) -> Window {
        Window::rolling(limit, Duration::from_secs(1))
    }

    /// `limit` calls per minute.
    pub fn per_minute(limit: u32) -> Window {
        Window::rolling(limit, Duration::from_secs(60))
    }

    /// `limit` calls per `minutes` minutes.
    pub fn per_minutes(limit: u32, minutes: u64) -> Window {
        Window::rolling(limit, Duration::from_secs(60 * minutes))
    }

    /// `limit` calls per hour.
    pub fn per_hour(limit: u32) -> Window {
        Window::rolling(limit, Duration::from_secs(3600))
    }

    /// `limit` calls per day, counted from `resets_at` (UTC) each day.
    pub fn daily(limit: u32, resets_at: NaiveTime) -> Window {
        Window {
            limit,
            span: Span::Daily { resets_at },
        }
    }

    /// `limit` calls per day, counted from midnight UTC.
    pub fn daily_from_midnight(limit: u32) -> Window {
        Window::daily(limit, NaiveTime::MIN)
    }

    /// How long the window is.
    pub fn period(&self) -> Duration {
        match self.span {
            Span::Rolling(period) => period,
            Span::Daily { .. } => DAY,
        }
    }

    /// The span alone: `per minute`, `per 5 minutes`, `per day (resets
    /// 00:00 UTC)`.
    pub fn span_name(&self) -> String {
        match self.span {
            Span::Daily { resets_at } => {
                format!("per day (resets {} UTC)", resets_at.format("%H:%M"))
            }
            Span::Rolling(period) => {
                let secs = period.as_secs();
                let whole = period.subsec_nanos() == 0;
                match secs {
                    1 if whole => "per second".to_owned(),
                    60 if whole => "per minute".to_owned(),
                    3600 if whole => "per hour".to_owned(),
                    s if whole && s % 3600 == 0 => format!("per {} hours", s / 3600),
                    s if whole && s % 60 == 0 => format!("per {} minutes", s / 60),
                    _ => format!("per {}", humantime::format_duration(period)),
                }
            }
        }
    }
}

/// `300 per minute`, `300 per day (resets 00:00 UTC)`.
impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.limit, self.span_name())
    }
}

/// Nanoseconds since the owner's epoch on the monotonic clock.
pub(crate) type Mono = u64;

/// `d` in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The count of a rolling window.
#[derive(Debug, Clone)]
pub(crate) struct Rolling {
    limit: u32,
    /// `period / BUCKETS`, at least 1 ns.
    width: u64,
    /// `(bucket index, calls)`; bucket `k` lives in slot `k % (BUCKETS + 1)`,
    /// so the `BUCKETS + 1` buckets counted at any time never share a slot.
    slots: Vec<(u64, u32)>,
}

impl Rolling {
    pub(crate) fn new(limit: u32, period: Duration) -> Rolling {
        Rolling {
            limit,
            width: (nanos(period) / BUCKETS).max(1),
            slots: vec![(0, 0); (BUCKETS + 1) as usize],
        }
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Raises the limit (a source's `requests_per_minute` above the
    /// platform's published default).
    pub(crate) fn raise(&mut self, limit: u32) {
        self.limit = self.limit.max(limit);
    }

    /// The counted buckets at `now`, oldest first: the current one and the
    /// `BUCKETS` before it, which together cover more than the period
    /// before `now` (so the count is never short).
    fn counted(&self, now: Mono) -> Vec<(u64, u32)> {
        let current = now / self.width;
        let oldest = current.saturating_sub(BUCKETS);
        let mut counted: Vec<(u64, u32)> = self
            .slots
            .iter()
            .copied()
            .filter(|&(k, n)| n > 0 && k >= oldest && k <= current)
            .collect();
        counted.sort_unstable();
        counted
    }

    /// Calls counted at `now`.
    #[cfg(test)]
    pub(crate) fn used(&self, now: Mono) -> u64 {
        self.counted(now).iter().map(|&(_, n)| u64::from(n)).sum()
    }

    /// `None` when a call fits at `now`, else the earliest time one would
    /// (when enough of the oldest buckets have left the window).
    pub(crate) fn earliest(&self, now: Mono) -> Option<Mono> {
        let counted = self.counted(now);
        let limit = u64::from(self.limit);
        let mut total: u64 = counted.iter().map(|&(_, n)| u64::from(n)).sum();
        if total < limit {
            return None;
        }
        for (k, n) in counted {
            total -= u64::from(n);
            if total < limit {
                // Bucket k stops being counted once the current bucket is
                // k + BUCKETS + 1.
                return Some((k + BUCKETS + 1).saturating_mul(self.width));
            }
        }
        // Only reachable with a limit of 0, which the constructors refuse.
        Some(Mono::MAX)
    }

    /// Counts a call at `now`.
    pub(crate) fn record(&mut self, now: Mono) {
        let current = now / self.width;
        let slot = (current % (BUCKETS + 1)) as usize;
        if let Some(entry) = self.slots.get_mut(slot) {
            if entry.0 != current {
                *entry = (current, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }
}

/// The count of a daily window, on the wall clock.
#[derive(Debug, Clone)]
pub(crate) struct Daily {
    limit: u32,
    reset_time: NaiveTime,
    used: u32,
    resets_at: DateTime<Utc>,
}

/// The first `time` (UTC time of day) strictly after `after`.
pub(super) fn next_reset(time: NaiveTime, after: DateTime<Utc>) -> DateTime<Utc> {
    let today = after.date_naive().and_time(time).and_utc();
    if today > after {
        today
    } else {
        today + TimeDelta::days(1)
    }
}

impl Daily {
    pub(crate) fn new(limit: u32, reset_time: NaiveTime, wall: DateTime<Utc>) -> Daily {
        Daily {
            limit,
            reset_time,
            used: 0,
            resets_at: next_reset(reset_time, wall),
        }
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Calls left before the reset.
    pub(crate) fn remaining(&self) -> u32 {
        self.limit.saturating_sub(self.used)
    }

    pub(crate) fn resets_at(&self) -> DateTime<Utc> {
        self.resets_at
    }

    /// Starts a new day once `wall` reaches the reset. A wall clock that
    /// went back more than a day leaves the count (the safe side) but
    /// re-anchors the reset, so the scope never waits more than a day.
    pub(crate) fn roll(&mut self, wall: DateTime<Utc>) {
        if wall >= self.resets_at {
            self.used = 0;
            self.resets_at = next_reset(self.reset_time, wall);
        } else if self.resets_at - wall > TimeDelta::days(1) {
            self.resets_at = next_reset(self.reset_time, wall);
        }
    }

    /// Counts a call.
    pub(crate) fn record(&mut self) {
        self.used = self.used.saturating_add(1);
    }

    /// The platform's count (Yelp's headers): `limit` (when given) replaces
    /// ours; `remaining` is taken when it says more was used than we
    /// counted (another client on the same key), kept otherwise (calls of
    /// ours still in flight); a reset time in the future replaces ours, and
    /// when it starts another day than ours, the platform's count is the
    /// whole truth.
    pub(crate) fn report(
        &mut self,
        limit: Option<u32>,
        remaining: u32,
        resets_at: Option<DateTime<Utc>>,
        wall: DateTime<Utc>,
    ) {
        if let Some(limit) = limit {
            self.limit = limit;
        }
        let theirs = self.limit.saturating_sub(remaining);
        match resets_at {
            Some(at) if at > wall && at - wall <= TimeDelta::days(1) + TimeDelta::hours(1) => {
                let same_day = (at - self.resets_at).abs() < TimeDelta::hours(1);
                self.used = if same_day {
                    self.used.max(theirs)
                } else {
                    theirs
                };
                self.resets_at = at;
            }
            _ => self.used = self.used.max(theirs),
        }
    }
}

/// The daily spread: the least time between calls that spreads the
/// `remaining` calls over the `until_reset` left, once the day's budget
/// runs low — at most a quarter of `limit` left, *and* less left than an
/// even spend over the whole day would have left by now. `None` while the
/// budget is on or behind an even pace (passes may burst), and when nothing
/// is left (that is a wait until the reset, not a spread).
///
/// So 20 Yelp businesses polled hourly against 300 a day (480 needed) burst
/// until about 11:15 UTC, then get one call every `time left / calls left`
/// (about 10 minutes) until midnight, instead of nothing from 15:00 on.
pub fn spread_interval(
    limit: u32,
    remaining: u32,
    until_reset: Duration,
    day: Duration,
) -> Option<Duration> {
    if remaining == 0 || limit == 0 || day.is_zero() {
        return None;
    }
    let low = u64::from(remaining) * 4 <= u64::from(limit);
    let even_share = f64::from(limit) * until_reset.as_secs_f64() / day.as_secs_f64();
    let ahead = f64::from(remaining) < even_share;
    (low && ahead).then(|| until_reset / remaining)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const S: u64 = 1_000_000_000;

    fn utc(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
    }

    #[test]
    fn windows_name_their_span() {
        assert_eq!(Window::per_minute(300).to_string(), "300 per minute");
        assert_eq!(Window::per_minutes(833, 5).to_string(), "833 per 5 minutes");
        assert_eq!(Window::per_hour(10_000).to_string(), "10000 per hour");
        assert_eq!(Window::per_second(1).to_string(), "1 per second");
        assert_eq!(Window::rolling(4800, DAY).to_string(), "4800 per 24 hours");
        assert_eq!(
            Window::daily_from_midnight(300).to_string(),
            "300 per day (resets 00:00 UTC)"
        );
        assert_eq!(
            Window::rolling(5, Duration::from_millis(1500)).span_name(),
            "per 1s 500ms"
        );
        // A zero limit or period would stop the scope for good.
        assert_eq!(Window::rolling(0, Duration::ZERO).limit, 1);
    }

    #[test]
    fn a_rolling_window_never_admits_more_than_its_limit_in_any_period() {
        // 3 per second, calls offered every 50 ms for 10 s: admitted calls
        // are recorded, and every 1 s interval is checked.
        let mut w = Rolling::new(3, Duration::from_secs(1));
        let mut admitted = Vec::new();
        for step in 0..200u64 {
            let t = step * 50_000_000;
            if w.earliest(t).is_none() {
                w.record(t);
                admitted.push(t);
            }
        }
        for (i, &start) in admitted.iter().enumerate() {
            let in_window = admitted[i..].iter().take_while(|&&t| t < start + S).count();
            assert!(
                in_window <= 3,
                "{in_window} calls in the second from {start}"
            );
        }
        // And it is not much stricter than the limit: close to 3 a second.
        assert!(admitted.len() >= 27, "{}", admitted.len());
    }

    #[test]
    fn a_full_rolling_window_names_when_the_oldest_calls_leave_it() {
        let mut w = Rolling::new(2, Duration::from_secs(60));
        w.record(0);
        w.record(10 * S);
        let at = w.earliest(20 * S).expect("full");
        // The call at 0 s stops counting a minute (and at most a bucket) later.
        assert!((60 * S..=61 * S).contains(&at), "{at}");
        assert_eq!(w.earliest(at), None);
        assert!(w.earliest(at - 1).is_some());
        assert_eq!(w.used(at), 1);
        // Long after: empty again, the old slots reused.
        assert_eq!(w.used(1000 * S), 0);
        w.record(1000 * S);
        assert_eq!(w.used(1000 * S), 1);
    }

    #[test]
    fn raising_keeps_the_higher_limit() {
        let mut w = Rolling::new(300, Duration::from_secs(60));
        w.raise(1200);
        assert_eq!(w.limit(), 1200);
        w.raise(60);
        assert_eq!(w.limit(), 1200);
    }

    #[test]
    fn a_daily_window_starts_again_at_its_reset_time() {
        let mut d = Daily::new(300, NaiveTime::MIN, utc(10, 0));
        assert_eq!(d.resets_at(), utc(0, 0) + TimeDelta::days(1));
        for _ in 0..300 {
            d.record();
        }
        assert_eq!(d.remaining(), 0);
        d.roll(utc(23, 59));
        assert_eq!(d.remaining(), 0);
        d.roll(utc(0, 0) + TimeDelta::days(1));
        assert_eq!(d.remaining(), 300);
        assert_eq!(d.resets_at(), utc(0, 0) + TimeDelta::days(2));
    }

    #[test]
    fn a_clock_gone_back_keeps_the_count_and_never_waits_more_than_a_day() {
        let mut d = Daily::new(300, NaiveTime::MIN, utc(10, 0));
        for _ in 0..300 {
            d.record();
        }
        // The wall clock steps back three days.
        let back = utc(10, 0) - TimeDelta::days(3);
        d.roll(back);
        assert_eq!(d.remaining(), 0, "the count is kept (safe side)");
        assert!(d.resets_at() - back <= TimeDelta::days(1));
    }

    #[test]
    fn the_platforms_count_wins_when_it_used_more() {
        // Yelp's own example (docs.developer.yelp.com/docs/places-rate-limiting):
        // RateLimit-DailyLimit: 500, RateLimit-Remaining: 499,
        // RateLimit-ResetTime: 2024-03-28T00:00:00+00:00.
        let wall = Utc.with_ymd_and_hms(2024, 3, 27, 9, 0, 0).unwrap();
        let reset = Utc.with_ymd_and_hms(2024, 3, 28, 0, 0, 0).unwrap();
        let mut d = Daily::new(300, NaiveTime::MIN, wall);
        d.record();
        d.report(Some(500), 499, Some(reset), wall);
        assert_eq!((d.limit(), d.remaining()), (500, 499));
        // Our 3 calls in flight are not lost to an older report.
        d.record();
        d.record();
        d.record();
        d.report(None, 498, Some(reset), wall);
        assert_eq!(d.remaining(), 496);
        // Another client on the key spent 100 more.
        d.report(None, 396, Some(reset), wall);
        assert_eq!(d.remaining(), 396);
        // A reset time that makes no sense (past) is ignored.
        d.report(None, 396, Some(wall - TimeDelta::hours(1)), wall);
        assert_eq!(d.resets_at(), reset);
        // The platform's day started at another time than ours: its count
        // is the whole truth.
        let mut other = Daily::new(300, NaiveTime::MIN, wall);
        for _ in 0..50 {
            other.record();
        }
        other.report(None, 290, Some(wall + TimeDelta::hours(3)), wall);
        assert_eq!(other.remaining(), 290);
        assert_eq!(other.resets_at(), wall + TimeDelta::hours(3));
    }

    #[test]
    fn the_daily_spread_starts_only_when_the_budget_runs_low_and_ahead() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        // Plenty left: no spread, passes burst.
        assert_eq!(spread_interval(300, 280, h(23), DAY), None);
        // A quarter left, but late in the day (behind an even pace): none.
        assert_eq!(spread_interval(300, 75, h(1), DAY), None);
        // A quarter left at 11:00 (13 h to go): spread 75 over 13 h.
        assert_eq!(spread_interval(300, 75, h(13), DAY), Some(h(13) / 75));
        // Nothing left: that is a wait for the reset, not a spread.
        assert_eq!(spread_interval(300, 0, h(13), DAY), None);
        assert_eq!(spread_interval(0, 0, h(13), DAY), None);
    }

    #[test]
    fn resets_fall_on_the_next_reset_time_strictly_after() {
        assert_eq!(
            next_reset(NaiveTime::MIN, utc(0, 0)),
            utc(0, 0) + TimeDelta::days(1)
        );
        assert_eq!(
            next_reset(NaiveTime::MIN, utc(23, 0)),
            utc(0, 0) + TimeDelta::days(1)
        );
        let seven = NaiveTime::from_hms_opt(7, 0, 0).unwrap();
        assert_eq!(next_reset(seven, utc(6, 59)), utc(7, 0));
        assert_eq!(next_reset(seven, utc(7, 0)), utc(7, 0) + TimeDelta::days(1));
    }
}
