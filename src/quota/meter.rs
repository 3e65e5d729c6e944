//! The state of one budget, pure: its windows, the pace and pause the
//! platform's usage reports set, and the answer to "may a call go now, and
//! if not, until when and why". [`super::Budget`] wraps it with a lock and
//! the clocks.

use super::headers::Adjustment;
use super::window::{DAY, Daily, Mono, Rolling, Span, Window, nanos, spread_interval};
use chrono::{DateTime, Utc};
use std::fmt;
use std::time::Duration;

/// Usage reported at or above this percentage slows calls down
/// ([`usage_pace`]).
pub const SLOW_FROM_PERCENT: u32 = 80;

/// The time between calls just below 100% usage: the pace grows in
/// proportion from nothing at [`SLOW_FROM_PERCENT`] to this. Meta publishes
/// no absolute budget (only percentages of one), so this is a brake on a
/// burst (a backfill paging through thousands of ratings) that lets usage
/// be watched answer by answer; at 100% the platform's own estimate of when
/// access returns stops the scope.
pub const PACE_AT_FULL: Duration = Duration::from_secs(10);

/// Why a call waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// A window of the scope's quota is full (or, for a daily one, used up).
    Window(Window),
    /// The daily budget runs low: what is left is spread over the day.
    Spread {
        /// Calls left before the reset.
        remaining: u32,
        /// Time until the reset.
        until_reset: Duration,
    },
    /// The platform reports usage near its limit (`X-Business-Use-Case-Usage`).
    Usage {
        /// The header.
        header: &'static str,
        /// The metric at its highest (`call_count`, `total_time`, `total_cputime`).
        metric: &'static str,
        /// Its value.
        percent: u32,
    },
    /// The platform said stop: a refusal, or its estimate of when access
    /// returns. The text names the header or error.
    Stopped(String),
    /// The source's own `requests_per_minute`.
    SourceCap(u32),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Window(w) if matches!(w.span, Span::Daily { .. }) => {
                write!(f, "the daily cap ({w}) is used up")
            }
            Why::Window(w) => write!(f, "the {w} window is full"),
            Why::Spread {
                remaining,
                until_reset,
            } => write!(
                f,
                "the daily budget runs low: spreading the {remaining} call(s) left over the {} until the reset",
                humantime::format_duration(Duration::from_secs(until_reset.as_secs()))
            ),
            Why::Usage {
                header,
                metric,
                percent,
            } => write!(f, "{header} reports {metric} at {percent}%: slowing down"),
            Why::Stopped(what) => f.write_str(what),
            Why::SourceCap(n) => write!(f, "the source's requests_per_minute ({n})"),
        }
    }
}

/// The least time between calls at `percent` usage of a window the
/// platform only reports as a percentage: none below
/// [`SLOW_FROM_PERCENT`], then growing in proportion to [`PACE_AT_FULL`].
/// At 100% and above the platform's estimate (or a default pause) applies
/// instead, so this stays at its maximum.
pub fn usage_pace(percent: u32) -> Option<Duration> {
    if percent < SLOW_FROM_PERCENT {
        return None;
    }
    let over = f64::from(percent.min(100) - SLOW_FROM_PERCENT);
    let span = f64::from(100 - SLOW_FROM_PERCENT);
    Some(
        PACE_AT_FULL
            .mul_f64(over / span)
            .max(Duration::from_millis(1)),
    )
}

/// The time, on both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// Nanoseconds since the owner's epoch, monotonic.
    pub mono: Mono,
    /// The wall clock (daily resets).
    pub wall: DateTime<Utc>,
}

/// Not now: the earliest time a call could go, and the binding reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocked {
    pub at: Mono,
    pub why: Why,
}

#[derive(Debug, Clone)]
enum Counter {
    Rolling(Window, Rolling),
    Daily(Window, Daily),
}

/// Something a budget should say once, when it changes: a stop or a
/// slow-down set by the platform's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// No call before `for_` from now.
    Stop { for_: Duration, why: Why },
    /// Calls spaced by `every` from now on.
    Slow { every: Duration, why: Why },
    /// The pace set by usage is lifted.
    Resumed,
}

/// One budget's state.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    counters: Vec<Counter>,
    /// Set by usage reports: the least time between calls.
    pace: Option<(Mono, Why)>,
    /// Set by the platform's stop: no call before.
    paused_until: Option<(Mono, Why)>,
    /// The last call let through (the pace and the spread count from it).
    last: Option<Mono>,
    /// Why the caps of a source's own meter are named as such.
    source_cap: bool,
}

impl Meter {
    pub(crate) fn new(windows: &[Window], wall: DateTime<Utc>) -> Meter {
        let counters = windows
            .iter()
            .map(|&w| match w.span {
                Span::Rolling(period) => Counter::Rolling(w, Rolling::new(w.limit, period)),
                Span::Daily { resets_at } => {
                    Counter::Daily(w, Daily::new(w.limit, resets_at, wall))
                }
            })
            .collect();
        Meter {
            counters,
            pace: None,
            paused_until: None,
            last: None,
            source_cap: false,
        }
    }

    /// A source's own `requests_per_minute` cap.
    pub(crate) fn source_cap(per_minute: u32, wall: DateTime<Utc>) -> Meter {
        let mut meter = Meter::new(&[Window::per_minute(per_minute)], wall);
        meter.source_cap = true;
        meter
    }

    /// The windows as they stand (limits raised or reported included).
    pub(crate) fn windows(&self) -> Vec<Window> {
        self.counters
            .iter()
            .map(|c| match c {
                Counter::Rolling(w, r) => Window {
                    limit: r.limit(),
                    ..*w
                },
                Counter::Daily(w, d) => Window {
                    limit: d.limit(),
                    ..*w
                },
            })
            .collect()
    }

    /// Raises every one-minute window to `limit` (never lowers).
    pub(crate) fn raise_per_minute(&mut self, limit: u32) {
        for counter in &mut self.counters {
            if let Counter::Rolling(w, r) = counter
                && w.span == Span::Rolling(Duration::from_secs(60))
            {
                r.raise(limit);
            }
        }
    }

    /// The daily window's calls left and reset time, if it has one.
    pub(crate) fn daily(&self) -> Option<(u32, DateTime<Utc>)> {
        self.counters.iter().find_map(|c| match c {
            Counter::Daily(_, d) => Some((d.remaining(), d.resets_at())),
            Counter::Rolling(..) => None,
        })
    }

    fn why_window(&self, w: Window) -> Why {
        if self.source_cap {
            Why::SourceCap(w.limit)
        } else {
            Why::Window(w)
        }
    }

    /// `None` when a call may go at `now`, else the earliest time all
    /// limits would let one go and the limit that binds last.
    pub(crate) fn check(&mut self, now: Now) -> Option<Blocked> {
        let mut blocked: Option<Blocked> = None;
        let mut consider = |at: Mono, why: Why| {
            if at > now.mono && blocked.as_ref().is_none_or(|b| at > b.at) {
                blocked = Some(Blocked { at, why });
            }
        };
        if let Some((until, why)) = &self.paused_until {
            consider(*until, why.clone());
        }
        if let (Some((every, why)), Some(last)) = (&self.pace, self.last) {
            consider(last.saturating_add(*every), why.clone());
        }
        for index in 0..self.counters.len() {
            let found = match &mut self.counters[index] {
                Counter::Rolling(w, r) => {
                    let limit = r.limit();
                    r.earliest(now.mono)
                        .map(|at| (at, Window { limit, ..*w }))
                        .map(|(at, w)| (at, self.why_window(w)))
                }
                Counter::Daily(w, d) => {
                    d.roll(now.wall);
                    let until_reset = (d.resets_at() - now.wall)
                        .to_std()
                        .unwrap_or(Duration::ZERO);
                    let remaining = d.remaining();
                    if remaining == 0 {
                        let w = Window {
                            limit: d.limit(),
                            ..*w
                        };
                        Some((
                            now.mono.saturating_add(nanos(until_reset)),
                            self.why_window(w),
                        ))
                    } else {
                        spread_interval(d.limit(), remaining, until_reset, DAY)
                            .zip(self.last)
                            .map(|(every, last)| {
                                (
                                    last.saturating_add(nanos(every)),
                                    Why::Spread {
                                        remaining,
                                        until_reset,
                                    },
                                )
                            })
                    }
                }
            };
            if let Some((at, why)) = found {
                consider(at, why);
            }
        }
        blocked
    }

    /// Counts a call let through at `now`.
    pub(crate) fn grant(&mut self, now: Now) {
        for counter in &mut self.counters {
            match counter {
                Counter::Rolling(_, r) => r.record(now.mono),
                Counter::Daily(_, d) => {
                    d.roll(now.wall);
                    d.record();
                }
            }
        }
        self.last = Some(now.mono);
    }

    /// Follows what the platform said; what changed enough to be said once.
    pub(crate) fn apply(&mut self, adjustment: &Adjustment, now: Now) -> Option<Notice> {
        match adjustment {
            Adjustment::Daily {
                limit,
                remaining,
                resets_at,
                ..
            } => {
                let found = self.counters.iter_mut().find_map(|c| match c {
                    Counter::Daily(_, d) => Some(d),
                    Counter::Rolling(..) => None,
                });
                let daily = match found {
                    Some(d) => d,
                    None => {
                        // A platform reporting a daily cap we did not know of.
                        let limit = (*limit)?;
                        let reset_time = resets_at.map_or(chrono::NaiveTime::MIN, |at| at.time());
                        let w = Window::daily(limit, reset_time);
                        self.counters
                            .push(Counter::Daily(w, Daily::new(limit, reset_time, now.wall)));
                        match self.counters.last_mut() {
                            Some(Counter::Daily(_, d)) => d,
                            _ => return None,
                        }
                    }
                };
                let before = daily.remaining();
                daily.report(*limit, *remaining, *resets_at, now.wall);
                let after = daily.remaining();
                (after == 0 && before != 0).then(|| Notice::Stop {
                    for_: (daily.resets_at() - now.wall)
                        .to_std()
                        .unwrap_or(Duration::ZERO),
                    why: Why::Window(Window::daily(daily.limit(), daily.resets_at().time())),
                })
            }
            Adjustment::Usage {
                header,
                metric,
                percent,
            } => {
                let why = Why::Usage {
                    header,
                    metric,
                    percent: *percent,
                };
                let pace = usage_pace(*percent).map(|every| (nanos(every), why.clone()));
                let was = self.pace.take();
                self.pace = pace;
                match (&was, &self.pace) {
                    (None, Some((every, why))) => Some(Notice::Slow {
                        every: Duration::from_nanos(*every),
                        why: why.clone(),
                    }),
                    (Some(_), None) => Some(Notice::Resumed),
                    _ => None,
                }
            }
            Adjustment::Pause { for_, why } => {
                let until = now.mono.saturating_add(nanos(*for_));
                let later = self.paused_until.as_ref().is_none_or(|(u, _)| until > *u);
                if later {
                    self.paused_until = Some((until, why.clone()));
                }
                later.then(|| Notice::Stop {
                    for_: *for_,
                    why: why.clone(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    const S: u64 = 1_000_000_000;

    /// A fake clock: both readings move together.
    struct Clock {
        start: DateTime<Utc>,
        mono: Mono,
    }

    impl Clock {
        fn at(h: u32, m: u32) -> Clock {
            Clock {
                start: Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap(),
                mono: 0,
            }
        }
        fn now(&self) -> Now {
            Now {
                mono: self.mono,
                wall: self.start + TimeDelta::nanoseconds(self.mono as i64),
            }
        }
        fn advance_to(&mut self, mono: Mono) {
            self.mono = self.mono.max(mono);
        }
    }

    /// Takes calls as fast as the meter lets them go until `until`
    /// (fake time), returning the times they went.
    fn drain(meter: &mut Meter, clock: &mut Clock, until: Mono) -> Vec<Mono> {
        let mut sent = Vec::new();
        while clock.mono < until {
            match meter.check(clock.now()) {
                None => {
                    meter.grant(clock.now());
                    sent.push(clock.mono);
                }
                Some(b) => clock.advance_to(b.at),
            }
        }
        sent
    }

    /// The most calls of `sent` (sorted) in any interval of `period`.
    fn most_in_any(sent: &[Mono], period: Mono) -> usize {
        let mut most = 0;
        let mut start = 0;
        for (end, &t) in sent.iter().enumerate() {
            while sent[start] + period <= t {
                start += 1;
            }
            most = most.max(end + 1 - start);
        }
        most
    }

    #[test]
    fn the_pace_grows_from_80_percent_and_stops_growing_at_100() {
        assert_eq!(usage_pace(0), None);
        assert_eq!(usage_pace(79), None);
        assert_eq!(usage_pace(80), Some(Duration::from_millis(1)));
        assert_eq!(usage_pace(90), Some(Duration::from_secs(5)));
        assert_eq!(usage_pace(95), Some(Duration::from_millis(7500)));
        assert_eq!(usage_pace(100), Some(PACE_AT_FULL));
        assert_eq!(usage_pace(250), Some(PACE_AT_FULL));
    }

    #[test]
    fn trustpilots_two_windows_both_hold() {
        // 833 per 5 minutes and 10,000 per hour, offered as fast as allowed
        // for two hours.
        let mut clock = Clock::at(9, 0);
        let mut meter = Meter::new(
            &[Window::per_minutes(833, 5), Window::per_hour(10_000)],
            clock.now().wall,
        );
        let sent = drain(&mut meter, &mut clock, 2 * 3600 * S);
        assert!(most_in_any(&sent, 300 * S) <= 833);
        assert!(most_in_any(&sent, 3600 * S) <= 10_000);
        // The 5-minute window binds (833 x 12 = 9,996 an hour): close to it.
        assert!(sent.len() > 2 * 9_600, "{}", sent.len());
        // And a blocked call names the window.
        while meter.check(clock.now()).is_none() {
            meter.grant(clock.now());
        }
        let blocked = meter.check(clock.now()).expect("spent");
        assert!(matches!(blocked.why, Why::Window(w) if w.limit == 833 || w.limit == 10_000));
    }

    #[test]
    fn a_spent_daily_cap_waits_for_the_reset_and_names_it() {
        let mut clock = Clock::at(14, 0);
        let mut meter = Meter::new(&[Window::daily_from_midnight(3)], clock.now().wall);
        for _ in 0..3 {
            assert_eq!(meter.check(clock.now()), None);
            meter.grant(clock.now());
        }
        let blocked = meter.check(clock.now()).expect("cap used up");
        assert_eq!(blocked.at, 10 * 3600 * S, "ten hours to midnight UTC");
        assert_eq!(
            blocked.why.to_string(),
            "the daily cap (3 per day (resets 00:00 UTC)) is used up"
        );
        clock.advance_to(blocked.at);
        assert_eq!(meter.check(clock.now()), None, "a new day");
    }

    #[test]
    fn a_low_daily_budget_is_spread_over_the_rest_of_the_day() {
        // 300 a day; 20 calls every hour from midnight (the case).
        // Without the spread the cap runs out at 15:00; with it, calls go on
        // until the end of the day and never exceed the cap.
        let mut clock = Clock::at(0, 0);
        let mut meter = Meter::new(&[Window::daily_from_midnight(300)], clock.now().wall);
        let mut sent: Vec<Mono> = Vec::new();
        for hour in 0..24u64 {
            let pass_start = hour * 3600 * S;
            let pass_end = pass_start + 3600 * S;
            clock.advance_to(pass_start);
            // A pass: 20 calls, each waiting for the meter, given up at the
            // next pass (as a poll bounded by the schedule would be).
            for _ in 0..20 {
                let Some(go) = (match meter.check(clock.now()) {
                    None => Some(clock.mono),
                    Some(b) if b.at < pass_end => Some(b.at),
                    Some(_) => None,
                }) else {
                    break;
                };
                clock.advance_to(go);
                assert_eq!(meter.check(clock.now()), None);
                meter.grant(clock.now());
                sent.push(clock.mono);
            }
        }
        assert!(sent.len() <= 300, "{}", sent.len());
        let after_15 = sent.iter().filter(|&&t| t >= 15 * 3600 * S).count();
        let after_22 = sent.iter().filter(|&&t| t >= 22 * 3600 * S).count();
        assert!(after_15 >= 30, "only {after_15} calls after 15:00");
        assert!(after_22 >= 5, "only {after_22} calls after 22:00");
        // And before the budget ran low, passes burst: the first pass took
        // its 20 calls at once.
        assert!(sent[..20].iter().all(|&t| t == 0));
        // A spread wait says so.
        let mut clock = Clock::at(11, 0);
        let mut meter = Meter::new(&[Window::daily_from_midnight(300)], clock.now().wall);
        for _ in 0..230 {
            meter.grant(clock.now());
        }
        let blocked = meter.check(clock.now()).expect("spread");
        assert!(
            matches!(blocked.why, Why::Spread { remaining: 70, .. }),
            "{:?}",
            blocked.why
        );
        assert_eq!(blocked.at, (13 * 3600 * S) / 70);
        assert!(
            blocked.why.to_string().starts_with(
                "the daily budget runs low: spreading the 70 call(s) left over the 13h"
            )
        );
        clock.advance_to(blocked.at);
        assert_eq!(meter.check(clock.now()), None);
    }

    /// The daemon's case: each location's read may wait only up to its
    /// pass bound (`max_pass_time`, 5 minutes, `platforms::http`), so a
    /// call the spread would hold longer is refused at once (the location
    /// is read by a later pass). A pass that finds the budget behind the
    /// even pace again goes at once: calls go on until the end of the day
    /// instead of stopping at 15:00, and never past the cap.
    #[test]
    fn the_spread_keeps_calls_going_all_day_when_reads_may_wait_only_minutes() {
        let bound = 5 * 60 * S;
        let mut clock = Clock::at(0, 0);
        let mut meter = Meter::new(&[Window::daily_from_midnight(300)], clock.now().wall);
        let mut sent: Vec<Mono> = Vec::new();
        let mut refused = 0;
        for hour in 0..24u64 {
            clock.advance_to(hour * 3600 * S);
            for _ in 0..20 {
                let go = match meter.check(clock.now()) {
                    None => clock.mono,
                    Some(b) if b.at <= clock.mono + bound => b.at,
                    Some(_) => {
                        refused += 1;
                        continue;
                    }
                };
                clock.advance_to(go);
                assert_eq!(meter.check(clock.now()), None);
                meter.grant(clock.now());
                sent.push(clock.mono);
            }
        }
        // The day's calls (a pass near midnight may run into the next day).
        sent.retain(|&t| t < 24 * 3600 * S);
        assert!(sent.len() <= 300, "{}", sent.len());
        assert!(sent.len() >= 295, "only {} of 300 spent", sent.len());
        let after_15 = sent.iter().filter(|&&t| t >= 15 * 3600 * S).count();
        let after_22 = sent.iter().filter(|&&t| t >= 22 * 3600 * S).count();
        // From about 11:15, when a quarter is left, 75 calls over the 13
        // hours to midnight: about 5.8 an hour.
        assert!(after_15 >= 50, "only {after_15} calls after 15:00");
        assert!(after_22 >= 10, "only {after_22} calls after 22:00");
        // Every hourly pass after the spread began got its share.
        let last_pass = sent.iter().filter(|&&t| t >= 23 * 3600 * S).count();
        assert!(last_pass >= 3, "{last_pass} in the last hour");
        assert!(refused > 0, "some reads had to wait for a later pass");
    }

    #[test]
    fn usage_near_full_paces_and_a_stop_pauses() {
        let clock = Clock::at(9, 0);
        let mut meter = Meter::new(&[Window::rolling(4800, DAY)], clock.now().wall);
        let usage = |percent| Adjustment::Usage {
            header: "X-Business-Use-Case-Usage",
            metric: "call_count",
            percent,
        };
        assert_eq!(meter.apply(&usage(40), clock.now()), None);
        meter.grant(clock.now());
        assert_eq!(meter.check(clock.now()), None, "40%: no pace");
        let notice = meter.apply(&usage(95), clock.now());
        assert!(
            matches!(notice, Some(Notice::Slow { every, .. }) if every == Duration::from_millis(7500))
        );
        let blocked = meter.check(clock.now()).expect("paced");
        assert_eq!(blocked.at, 7_500_000_000);
        assert_eq!(
            blocked.why.to_string(),
            "X-Business-Use-Case-Usage reports call_count at 95%: slowing down"
        );
        // The same level again says nothing new.
        assert_eq!(meter.apply(&usage(96), clock.now()), None);
        // Back to low usage: the pace is lifted.
        assert_eq!(meter.apply(&usage(10), clock.now()), Some(Notice::Resumed));
        assert_eq!(meter.check(clock.now()), None);
        // The platform says stop for 19 minutes.
        let stop = Adjustment::Pause {
            for_: Duration::from_secs(19 * 60),
            why: Why::Stopped("estimated_time_to_regain_access 19 min".into()),
        };
        assert!(matches!(
            meter.apply(&stop, clock.now()),
            Some(Notice::Stop { .. })
        ));
        let blocked = meter.check(clock.now()).expect("stopped");
        assert_eq!(blocked.at, 19 * 60 * S);
        // A shorter pause does not cut the longer one short.
        let short = Adjustment::Pause {
            for_: Duration::from_secs(1),
            why: Why::Stopped("429".into()),
        };
        assert_eq!(meter.apply(&short, clock.now()), None);
        assert_eq!(meter.check(clock.now()).map(|b| b.at), Some(19 * 60 * S));
    }

    #[test]
    fn a_daily_report_of_nothing_left_stops_until_its_reset() {
        let mut clock = Clock::at(16, 30);
        let mut meter = Meter::new(
            &[Window::daily_from_midnight(300), Window::per_second(1)],
            clock.now().wall,
        );
        let reset = clock.now().wall + TimeDelta::minutes(7 * 60 + 30);
        let report = Adjustment::Daily {
            limit: Some(300),
            remaining: 0,
            resets_at: Some(reset),
            header: "RateLimit-Remaining",
        };
        let notice = meter.apply(&report, clock.now());
        assert!(
            matches!(&notice, Some(Notice::Stop { for_, .. }) if *for_ == Duration::from_secs(27_000)),
            "{notice:?}"
        );
        let blocked = meter.check(clock.now()).expect("used up");
        assert_eq!(blocked.at, 27_000 * S);
        assert_eq!(meter.daily(), Some((0, reset)));
        clock.advance_to(blocked.at);
        assert_eq!(meter.check(clock.now()), None);
    }

    #[test]
    fn an_unknown_daily_cap_reported_by_the_platform_is_adopted() {
        let clock = Clock::at(9, 0);
        let mut meter = Meter::new(&[Window::per_second(1)], clock.now().wall);
        let report = Adjustment::Daily {
            limit: Some(500),
            remaining: 499,
            resets_at: None,
            header: "RateLimit-Remaining",
        };
        assert_eq!(meter.apply(&report, clock.now()), None);
        assert_eq!(meter.windows().len(), 2);
        assert_eq!(meter.daily().map(|d| d.0), Some(499));
    }

    #[test]
    fn a_source_cap_names_itself_and_raising_touches_only_minute_windows() {
        let clock = Clock::at(9, 0);
        let mut cap = Meter::source_cap(1, clock.now().wall);
        cap.grant(clock.now());
        let blocked = cap.check(clock.now()).expect("capped");
        assert_eq!(blocked.why, Why::SourceCap(1));
        assert_eq!(
            blocked.why.to_string(),
            "the source's requests_per_minute (1)"
        );
        let mut google = Meter::new(
            &[Window::per_minute(300), Window::per_hour(1000)],
            clock.now().wall,
        );
        google.raise_per_minute(1200);
        assert_eq!(
            google.windows(),
            vec![Window::per_minute(1200), Window::per_hour(1000)]
        );
    }
}
