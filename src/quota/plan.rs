//! The quota plan: from each source's schedules, its locations, the
//! requests one pass costs and its scope's quota, how many requests each
//! scope needs per day and per window against what it may spend; which
//! schedules cannot fit, and the tightest schedule that would. Pure, so
//! `check` prints it (a table, or JSON) and the tests pin it.
//!
//! Fire times are counted exactly with the scheduler's own cron parser over
//! the seven UTC days that follow the day `from` falls in (a weekly
//! reconciliation falls on one of them), and the busiest day is the one
//! reported. Each pass's requests are counted at its fire time, as a pass
//! sends them back to back: a rolling window's need is the most requests
//! that start in any interval of its length, a daily window's the requests
//! between two of its resets.

use super::scope::ScopeKey;
use super::window::{DAY, Span, Window, next_reset};
use crate::escape::Escaped;
use crate::schedule::Schedule;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

/// Days looked at: a week, so that weekly schedules count.
const DAYS: i64 = 7;

/// What one pass of a schedule costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassCost {
    /// This many requests per location (1 for a quiet incremental pass of
    /// a platform read one location per request; a reconciliation reads
    /// every page, so 1 is its least).
    PerLocation(u32),
    /// Locations read `batch` at a time (Google's `batchGetReviews`):
    /// two pages per call, `2 * ceil(locations / batch)` requests. A call's
    /// first page holds the newest review of each named location, so only
    /// a second page can show the review older than a mark minus the
    /// overlap that proves a quiet location has nothing new.
    Batched {
        /// Locations per request (50 unless configured).
        batch: u32,
    },
}

impl PassCost {
    /// Requests of one pass over `locations` locations.
    pub fn requests(self, locations: u32) -> u64 {
        match self {
            PassCost::PerLocation(n) => u64::from(locations) * u64::from(n),
            PassCost::Batched { batch } => {
                2 * u64::from(locations).div_ceil(u64::from(batch.max(1)))
            }
        }
    }
}

/// Which schedule of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// `schedule`: incremental passes (the one a suggestion changes).
    Incremental,
    /// `reconcile_schedule`: full reconciliation passes.
    Reconcile,
}

/// One schedule of a source and what its passes cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPass {
    /// Which schedule.
    pub kind: PassKind,
    /// The cron expression (six fields, UTC).
    pub schedule: String,
    /// Requests per pass.
    pub cost: PassCost,
}

/// A source as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSource {
    /// The source's name.
    pub source: String,
    /// The scope its requests count against.
    pub scope: ScopeKey,
    /// Its locations.
    pub locations: u32,
    /// Its schedules.
    pub passes: Vec<PlannedPass>,
}

/// A schedule the plan could not read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("source {name:?}: schedule {schedule:?}: {reason}")]
pub struct PlanError {
    /// The source (not `source`: thiserror reserves that name for causes).
    pub name: String,
    /// The expression.
    pub schedule: String,
    /// The parser's reason.
    pub reason: String,
}

/// What a scope needs of one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowNeed {
    /// The window (its limit is the quota).
    pub window: Window,
    /// Requests needed in it at the busiest.
    pub needed: u64,
}

impl WindowNeed {
    /// Needed over allowed, in percent (rounded up).
    pub fn percent(&self) -> u64 {
        (self.needed * 100).div_ceil(u64::from(self.window.limit.max(1)))
    }

    /// Whether the need fits the window.
    pub fn fits(&self) -> bool {
        self.needed <= u64::from(self.window.limit)
    }
}

/// A schedule that fits, suggested for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The source to change.
    pub source: String,
    /// Its new `schedule`.
    pub schedule: String,
    /// In words: `every 2 hours`.
    pub every: &'static str,
    /// What the scope would then need on its busiest day.
    pub requests_per_day: u64,
}

/// Something the plan has to say about a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A daily cap cannot cover the schedules: the rest of the day's
    /// requests would be refused (or, with the daily spread, slowed).
    OverDailyCap {
        /// The window.
        window: Window,
        /// Requests needed in its busiest day.
        needed: u64,
        /// The fire time of the first pass the cap cannot cover.
        runs_out_at: DateTime<Utc>,
        /// The tightest schedule that fits, if any does.
        suggestion: Option<Suggestion>,
    },
    /// A rolling window is smaller than what starts within it: passes are
    /// stretched to at least `pass_takes`.
    Stretched {
        /// The window.
        window: Window,
        /// Requests needed in its busiest interval.
        needed: u64,
        /// The least time those requests take.
        pass_takes: Duration,
        /// The shortest time between two passes of the scope.
        between_passes: Duration,
    },
}

impl Finding {
    /// Warnings need an admin; notes explain a slow pass.
    pub fn is_warning(&self) -> bool {
        match self {
            Finding::OverDailyCap { .. } => true,
            Finding::Stretched {
                pass_takes,
                between_passes,
                ..
            } => pass_takes >= between_passes,
        }
    }
}

/// The plan of one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePlan {
    /// The scope.
    pub scope: ScopeKey,
    /// Its sources, in config order.
    pub sources: Vec<String>,
    /// Requests on the busiest UTC day.
    pub requests_per_day: u64,
    /// Each window of its quota and the need.
    pub windows: Vec<WindowNeed>,
    /// What does not fit, or stretches passes.
    pub findings: Vec<Finding>,
    /// Other scopes of the same kind with exactly this plan (the Pages of
    /// one Facebook source), shown once.
    pub same: Vec<ScopeKey>,
}

impl ScopePlan {
    /// The scope as shown: `facebook Page 1001 and 99 more Pages` when
    /// others share its plan.
    pub fn name(&self) -> String {
        match self.same.len() {
            0 => self.scope.to_string(),
            n => {
                let what = match self.scope.location_noun() {
                    Some(noun) => format!("{noun}s"),
                    None => "scopes".to_owned(),
                };
                format!("{} and {n} more {what}", self.scope)
            }
        }
    }

    /// The window needed most, relative to its limit.
    pub fn tightest(&self) -> Option<&WindowNeed> {
        self.windows.iter().max_by_key(|w| w.percent())
    }
}

/// The plan of every scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaPlan {
    /// The first of the days looked at (UTC).
    pub from: NaiveDate,
    /// The scopes, in order of first use in the config.
    pub scopes: Vec<ScopePlan>,
}

/// A pass's requests at a fire time.
#[derive(Debug, Clone, Copy)]
struct Event {
    at: DateTime<Utc>,
    requests: u64,
}

/// Fire times of parsed expressions, computed once.
struct Fires {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    cache: HashMap<String, Vec<DateTime<Utc>>>,
}

impl Fires {
    fn of(&mut self, source: &str, expression: &str) -> Result<&[DateTime<Utc>], PlanError> {
        if !self.cache.contains_key(expression) {
            let schedule = Schedule::parse(expression).map_err(|e| PlanError {
                name: source.to_owned(),
                schedule: expression.to_owned(),
                reason: e.reason,
            })?;
            let mut times = Vec::new();
            let mut after = self.start - TimeDelta::seconds(1);
            while let Some(next) = schedule.next_after(after) {
                if next >= self.end {
                    break;
                }
                times.push(next);
                after = next;
            }
            self.cache.insert(expression.to_owned(), times);
        }
        Ok(self.cache.get(expression).map_or(&[], Vec::as_slice))
    }
}

/// The cadences a suggestion is picked from, most frequent first: each
/// an expression (seconds and minutes of the source's own schedule are
/// kept where they are plain numbers) and its words.
const CADENCES: [(&str, &str); 13] = [
    ("{s} */5 * * * *", "every 5 minutes"),
    ("{s} */10 * * * *", "every 10 minutes"),
    ("{s} */15 * * * *", "every 15 minutes"),
    ("{s} */20 * * * *", "every 20 minutes"),
    ("{s} */30 * * * *", "every 30 minutes"),
    ("{s} {m} * * * *", "every hour"),
    ("{s} {m} */2 * * *", "every 2 hours"),
    ("{s} {m} */3 * * *", "every 3 hours"),
    ("{s} {m} */4 * * *", "every 4 hours"),
    ("{s} {m} */6 * * *", "every 6 hours"),
    ("{s} {m} */8 * * *", "every 8 hours"),
    ("{s} {m} */12 * * *", "every 12 hours"),
    ("{s} {m} 0 * * *", "once a day"),
];

/// `cadence` with the seconds and minutes of `original` when those are
/// plain numbers (a schedule at :15 stays at :15), else 0.
fn cadence_for(cadence: &str, original: &str) -> String {
    let mut fields = original.split_whitespace();
    let plain = |f: Option<&str>| {
        f.filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or("0")
            .to_owned()
    };
    let seconds = plain(fields.next());
    let minutes = plain(fields.next());
    cadence.replace("{s}", &seconds).replace("{m}", &minutes)
}

/// The need of every window over `events` (sorted), for the days from `first`.
fn needs(events: &[Event], windows: &[Window], first: DateTime<Utc>) -> Vec<(WindowNeed, Detail)> {
    windows
        .iter()
        .map(|&window| match window.span {
            Span::Daily { resets_at } => {
                let start = next_reset(resets_at, first - TimeDelta::nanoseconds(1));
                let mut busiest = (0u64, None);
                for day in 0..DAYS {
                    let from = start + TimeDelta::days(day);
                    let to = from + TimeDelta::days(1);
                    let mut total = 0u64;
                    let mut runs_out = None;
                    for e in events.iter().filter(|e| e.at >= from && e.at < to) {
                        if runs_out.is_none() && total + e.requests > u64::from(window.limit) {
                            runs_out = Some(e.at);
                        }
                        total += e.requests;
                    }
                    if total > busiest.0 {
                        busiest = (total, runs_out);
                    }
                }
                (
                    WindowNeed {
                        window,
                        needed: busiest.0,
                    },
                    Detail::Daily {
                        runs_out_at: busiest.1,
                    },
                )
            }
            Span::Rolling(period) => {
                let period = TimeDelta::from_std(period).unwrap_or(TimeDelta::days(1));
                let (mut most, mut sum, mut start) = (0u64, 0u64, 0usize);
                for (end, e) in events.iter().enumerate() {
                    sum += e.requests;
                    while events[start].at + period <= e.at && start < end {
                        sum -= events[start].requests;
                        start += 1;
                    }
                    most = most.max(sum);
                }
                (
                    WindowNeed {
                        window,
                        needed: most,
                    },
                    Detail::Rolling,
                )
            }
        })
        .collect()
}

/// What [`needs`] found beyond the count.
#[derive(Debug, Clone, Copy)]
enum Detail {
    Daily { runs_out_at: Option<DateTime<Utc>> },
    Rolling,
}

/// The first midnight UTC at or after `from`.
fn first_day(from: DateTime<Utc>) -> DateTime<Utc> {
    next_reset(chrono::NaiveTime::MIN, from - TimeDelta::nanoseconds(1))
}

/// Builds the plan: `sources` in config order, `windows_of` the quota of
/// each scope (the platform's published windows, raised as the budgets
/// would be), `from` the time it is made for (the days after it are
/// looked at).
pub fn plan(
    sources: &[PlannedSource],
    windows_of: &dyn Fn(&ScopeKey) -> Vec<Window>,
    from: DateTime<Utc>,
) -> Result<QuotaPlan, PlanError> {
    let first = first_day(from);
    let mut fires = Fires {
        // A day before, so that the first day's rolling windows see the
        // passes of the evening before.
        start: first - TimeDelta::days(1),
        end: first + TimeDelta::days(DAYS),
        cache: HashMap::new(),
    };
    let mut scopes: Vec<ScopeKey> = Vec::new();
    for s in sources {
        if !scopes.contains(&s.scope) {
            scopes.push(s.scope.clone());
        }
    }
    let mut plans = Vec::new();
    for scope in scopes {
        let members: Vec<&PlannedSource> = sources.iter().filter(|s| s.scope == scope).collect();
        let windows = windows_of(&scope);
        let events = scope_events(&members, None, &mut fires)?;
        let measured = needs(&events, &windows, first);
        let between_passes = shortest_gap(&events);
        let mut findings = Vec::new();
        for (need, detail) in &measured {
            match detail {
                Detail::Daily { runs_out_at } if !need.fits() => {
                    findings.push(Finding::OverDailyCap {
                        window: need.window,
                        needed: need.needed,
                        runs_out_at: runs_out_at.unwrap_or(first),
                        suggestion: suggest(&members, &windows, first, &mut fires)?,
                    });
                }
                Detail::Rolling if !need.fits() => {
                    let rounds = need.needed.div_ceil(u64::from(need.window.limit.max(1)));
                    let pass_takes = need.window.period().saturating_mul(
                        u32::try_from(rounds.saturating_sub(1)).unwrap_or(u32::MAX),
                    );
                    findings.push(Finding::Stretched {
                        window: need.window,
                        needed: need.needed,
                        pass_takes,
                        between_passes,
                    });
                }
                _ => {}
            }
        }
        let planned = ScopePlan {
            sources: members.iter().map(|s| s.source.clone()).collect(),
            requests_per_day: busiest_day(&events, first),
            windows: measured.into_iter().map(|(need, _)| need).collect(),
            findings,
            scope,
            same: Vec::new(),
        };
        // Scopes with the same label are the Pages of Facebook sources:
        // identical plans are shown once.
        let twin = plans.iter_mut().find(|p: &&mut ScopePlan| {
            p.scope.label() == planned.scope.label()
                && p.sources == planned.sources
                && p.requests_per_day == planned.requests_per_day
                && p.windows == planned.windows
                && p.findings == planned.findings
        });
        match twin {
            Some(twin) => twin.same.push(planned.scope),
            None => plans.push(planned),
        }
    }
    Ok(QuotaPlan {
        from: first.date_naive(),
        scopes: plans,
    })
}

/// Every pass of `members` as events, sorted; `replace` swaps one source's
/// incremental schedule for another expression.
fn scope_events(
    members: &[&PlannedSource],
    replace: Option<(&str, &str)>,
    fires: &mut Fires,
) -> Result<Vec<Event>, PlanError> {
    let mut events = Vec::new();
    for source in members {
        for pass in &source.passes {
            let expression = match replace {
                Some((name, with))
                    if name == source.source && pass.kind == PassKind::Incremental =>
                {
                    with
                }
                _ => pass.schedule.as_str(),
            };
            let requests = pass.cost.requests(source.locations);
            if requests == 0 {
                continue;
            }
            for &at in fires.of(&source.source, expression)? {
                events.push(Event { at, requests });
            }
        }
    }
    events.sort_by_key(|e| e.at);
    Ok(events)
}

/// Requests on the busiest of the UTC days from `first`.
fn busiest_day(events: &[Event], first: DateTime<Utc>) -> u64 {
    (0..DAYS)
        .map(|day| {
            let from = first + TimeDelta::days(day);
            let to = from + TimeDelta::days(1);
            events
                .iter()
                .filter(|e| e.at >= from && e.at < to)
                .map(|e| e.requests)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

/// The shortest time between two distinct fire times (a day when there is
/// at most one).
fn shortest_gap(events: &[Event]) -> Duration {
    events
        .windows(2)
        .filter_map(|pair| (pair[1].at - pair[0].at).to_std().ok())
        .filter(|gap| !gap.is_zero())
        .min()
        .unwrap_or(DAY)
}

/// The most frequent cadence, for the source that needs the most, under
/// which every daily window of the scope fits; `None` when not even once a
/// day does.
fn suggest(
    members: &[&PlannedSource],
    windows: &[Window],
    first: DateTime<Utc>,
    fires: &mut Fires,
) -> Result<Option<Suggestion>, PlanError> {
    let daily: Vec<Window> = windows
        .iter()
        .copied()
        .filter(|w| matches!(w.span, Span::Daily { .. }))
        .collect();
    // The source with the most requests on its own busiest day.
    let mut heaviest: Option<(&PlannedSource, u64, usize)> = None;
    for source in members {
        let own = scope_events(&[*source], None, fires)?;
        let per_day = busiest_day(&own, first);
        let Some(pass) = source
            .passes
            .iter()
            .find(|p| p.kind == PassKind::Incremental)
        else {
            continue;
        };
        let fires_per_day = fires.of(&source.source, &pass.schedule)?.len() / (DAYS as usize + 1);
        if heaviest.is_none_or(|(_, most, _)| per_day > most) {
            heaviest = Some((*source, per_day, fires_per_day));
        }
    }
    let Some((source, _, current_fires)) = heaviest else {
        return Ok(None);
    };
    let Some(original) = source
        .passes
        .iter()
        .find(|p| p.kind == PassKind::Incremental)
    else {
        return Ok(None);
    };
    for (cadence, every) in CADENCES {
        let expression = cadence_for(cadence, &original.schedule);
        let per_day_fires = fires.of(&source.source, &expression)?.len() / (DAYS as usize + 1);
        if per_day_fires >= current_fires.max(1) {
            // Not sparser than what does not fit.
            continue;
        }
        let events = scope_events(members, Some((&source.source, &expression)), fires)?;
        let fits = needs(&events, &daily, first)
            .iter()
            .all(|(need, _)| need.fits());
        if fits {
            return Ok(Some(Suggestion {
                source: source.source.clone(),
                schedule: expression,
                every,
                requests_per_day: busiest_day(&events, first),
            }));
        }
    }
    Ok(None)
}

/// `2h 30m`, whole seconds.
fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

impl Finding {
    /// The finding in words, for `check` (names escaped for a terminal).
    pub fn message(&self, scope: &str) -> String {
        match self {
            Finding::OverDailyCap {
                window,
                needed,
                runs_out_at,
                suggestion,
            } => {
                let mut text = format!(
                    "{scope}: the schedules need {needed} requests a day against a quota of {window}: it runs out at {} UTC",
                    runs_out_at.format("%H:%M")
                );
                match suggestion {
                    Some(s) => {
                        let _ = write!(
                            text,
                            "; the tightest schedule that fits: {} (`{}` for source \"{}\") → {} requests a day",
                            s.every,
                            s.schedule,
                            Escaped(&s.source),
                            s.requests_per_day
                        );
                    }
                    None => text.push_str(
                        "; no schedule of a source fits: fewer locations per key, or a larger quota",
                    ),
                }
                text
            }
            Finding::Stretched {
                window,
                needed,
                pass_takes,
                between_passes,
            } => {
                let mut text = format!(
                    "{scope}: {needed} requests start within the {window} window: a pass takes at least {}",
                    human(*pass_takes)
                );
                if pass_takes >= between_passes {
                    let _ = write!(
                        text,
                        ", longer than the {} between passes: passes will overlap and be skipped",
                        human(*between_passes)
                    );
                }
                text
            }
        }
    }
}

impl QuotaPlan {
    /// Every warning, in words.
    pub fn warnings(&self) -> Vec<String> {
        self.findings(true)
    }

    /// Every note (passes stretched, but keeping up), in words.
    pub fn notes(&self) -> Vec<String> {
        self.findings(false)
    }

    fn findings(&self, warnings: bool) -> Vec<String> {
        self.scopes
            .iter()
            .flat_map(|s| {
                s.findings
                    .iter()
                    .filter(move |f| f.is_warning() == warnings)
                    .map(|f| f.message(&s.name()))
            })
            .collect()
    }

    /// The plan as a table, with its warnings and notes, for `check`.
    pub fn render_table(&self) -> String {
        let header = ["scope", "sources", "window", "needed", "quota", "use"];
        let mut rows: Vec<[String; 6]> = Vec::new();
        for scope in &self.scopes {
            let sources = scope
                .sources
                .iter()
                .map(|s| Escaped(s).to_string())
                .collect::<Vec<_>>()
                .join(", ");
            for (i, need) in scope.windows.iter().enumerate() {
                let (name, names) = if i == 0 {
                    (scope.name(), sources.clone())
                } else {
                    (String::new(), String::new())
                };
                rows.push([
                    name,
                    names,
                    need.window.span_name(),
                    need.needed.to_string(),
                    need.window.limit.to_string(),
                    format!("{}%", need.percent()),
                ]);
            }
        }
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 6]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w.saturating_sub(cell.chars().count());
                if i >= 3 {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if i < 5 {
                        out.push_str(&" ".repeat(pad));
                    }
                }
                if i < 5 {
                    out.push_str("  ");
                }
            }
            out.trim_end().to_owned()
        };
        let mut out = format!(
            "quota plan: requests on the busiest day of the week from {} (UTC)\n",
            self.from
        );
        out.push_str(&line(header));
        out.push('\n');
        for row in &rows {
            out.push_str(&line([
                &row[0], &row[1], &row[2], &row[3], &row[4], &row[5],
            ]));
            out.push('\n');
        }
        for warning in self.warnings() {
            let _ = writeln!(out, "warning: {warning}");
        }
        for note in self.notes() {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// The plan as JSON (`check --format json`).
    pub fn to_json(&self) -> Value {
        let scopes: Vec<Value> = self
            .scopes
            .iter()
            .map(|s| {
                let windows: Vec<Value> = s
                    .windows
                    .iter()
                    .map(|w| {
                        json!({
                            "window": w.window.span_name(),
                            "daily": matches!(w.window.span, Span::Daily { .. }),
                            "period_s": w.window.period().as_secs(),
                            "limit": w.window.limit,
                            "needed": w.needed,
                            "fits": w.fits(),
                        })
                    })
                    .collect();
                let findings: Vec<Value> = s
                    .findings
                    .iter()
                    .map(|f| {
                        let mut value = match f {
                            Finding::OverDailyCap {
                                window,
                                needed,
                                runs_out_at,
                                suggestion,
                            } => json!({
                                "kind": "over_daily_cap",
                                "window": window.span_name(),
                                "limit": window.limit,
                                "needed": needed,
                                "runs_out_at": runs_out_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                "suggestion": suggestion.as_ref().map(|g| json!({
                                    "source": g.source,
                                    "schedule": g.schedule,
                                    "every": g.every,
                                    "requests_per_day": g.requests_per_day,
                                })),
                            }),
                            Finding::Stretched {
                                window,
                                needed,
                                pass_takes,
                                between_passes,
                            } => json!({
                                "kind": "pass_stretched",
                                "window": window.span_name(),
                                "limit": window.limit,
                                "needed": needed,
                                "pass_takes_s": pass_takes.as_secs(),
                                "between_passes_s": between_passes.as_secs(),
                            }),
                        };
                        value["level"] = json!(if f.is_warning() { "warning" } else { "note" });
                        value["message"] = json!(f.message(&s.name()));
                        value
                    })
                    .collect();
                json!({
                    "scope": s.scope.to_string(),
                    "same_plan": s.same.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "label": s.scope.label(),
                    "platform": s.scope.kind(),
                    "sources": s.sources,
                    "requests_per_day": s.requests_per_day,
                    "tightest": s.tightest().map(|w| w.window.span_name()),
                    "windows": windows,
                    "findings": findings,
                })
            })
            .collect();
        json!({
            "from": self.from.to_string(),
            "scopes": scopes,
            "warnings": self.warnings(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn from() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 30, 0).unwrap()
    }

    fn incremental(schedule: &str, cost: PassCost) -> PlannedPass {
        PlannedPass {
            kind: PassKind::Incremental,
            schedule: schedule.into(),
            cost,
        }
    }

    fn source(
        name: &str,
        scope: &ScopeKey,
        locations: u32,
        passes: Vec<PlannedPass>,
    ) -> PlannedSource {
        PlannedSource {
            source: name.into(),
            scope: scope.clone(),
            locations,
            passes,
        }
    }

    /// The published windows of `key`'s platform (its registry entry).
    fn known_windows(key: &ScopeKey) -> Vec<Window> {
        crate::platforms::registry::by_kind(key.kind()).map_or_else(Vec::new, |p| (p.quota)())
    }

    #[test]
    fn twenty_yelp_businesses_hourly_do_not_fit_300_a_day_and_every_two_hours_does() {
        let key = ScopeKey::yelp_key("yelp-key");
        let sources = [source(
            "yelp-sf",
            &key,
            20,
            vec![incremental("0 0 * * * *", PassCost::PerLocation(1))],
        )];
        let plan = plan(&sources, &known_windows, from()).unwrap();
        let scope = &plan.scopes[0];
        assert_eq!(scope.requests_per_day, 480);
        assert_eq!(
            scope.windows,
            vec![
                WindowNeed {
                    window: Window::daily_from_midnight(300),
                    needed: 480
                },
                WindowNeed {
                    window: Window::per_second(1),
                    needed: 20
                },
            ]
        );
        let Finding::OverDailyCap {
            runs_out_at,
            suggestion,
            ..
        } = &scope.findings[0]
        else {
            panic!("{:?}", scope.findings);
        };
        assert_eq!(runs_out_at.format("%H:%M").to_string(), "15:00");
        assert_eq!(
            suggestion.as_ref(),
            Some(&Suggestion {
                source: "yelp-sf".into(),
                schedule: "0 0 */2 * * *".into(),
                every: "every 2 hours",
                requests_per_day: 240,
            })
        );
        // The per-second window stretches a pass to 19 s: a note.
        assert!(matches!(
            &scope.findings[1],
            Finding::Stretched { pass_takes, .. } if *pass_takes == Duration::from_secs(19)
        ));
        let warnings = plan.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("yelp API key #"), "{}", warnings[0]);
        assert!(
            warnings[0].ends_with(": the schedules need 480 requests a day against a quota of 300 per day (resets 00:00 UTC): it runs out at 15:00 UTC; the tightest schedule that fits: every 2 hours (`0 0 */2 * * *` for source \"yelp-sf\") → 240 requests a day"),
            "{}",
            warnings[0]
        );
        assert_eq!(plan.notes().len(), 1);
    }

    #[test]
    fn the_plan_renders_as_a_table_and_as_json() {
        let key = ScopeKey::yelp_key("yelp-key");
        let google = ScopeKey::google_client("client.apps.googleusercontent.com");
        let sources = [
            source(
                "yelp-sf",
                &key,
                20,
                vec![incremental("0 15 * * * *", PassCost::PerLocation(1))],
            ),
            source(
                "google-all",
                &google,
                1000,
                vec![
                    incremental("0 */15 * * * *", PassCost::Batched { batch: 50 }),
                    PlannedPass {
                        kind: PassKind::Reconcile,
                        schedule: "0 30 3 * * *".into(),
                        cost: PassCost::PerLocation(1),
                    },
                ],
            ),
        ];
        let plan = plan(&sources, &known_windows, from()).unwrap();
        // Google's busiest minute is 03:30: the reconciliation (1,000) and
        // a batched pass (40: two pages per call) start together.
        let table = plan.render_table();
        let yelp = key.to_string();
        let google_name = google.to_string();
        let expected = format!(
            "quota plan: requests on the busiest day of the week from 2026-11-26 (UTC)
{s:<w$}  sources     window                      needed  quota    use
{yelp:<w$}  yelp-sf     per day (resets 00:00 UTC)     480    300   160%
{e:<w$}              per second                      20      1  2000%
{google_name:<w$}  google-all  per minute                    1040    300   347%
warning: {yelp}: the schedules need 480 requests a day against a quota of 300 per day (resets 00:00 UTC): it runs out at 15:15 UTC; the tightest schedule that fits: every 2 hours (`0 15 */2 * * *` for source \"yelp-sf\") → 240 requests a day
note: {yelp}: 20 requests start within the 1 per second window: a pass takes at least 19s
note: {google_name}: 1040 requests start within the 300 per minute window: a pass takes at least 3m
",
            s = "scope",
            e = "",
            w = google_name.len(),
        );
        assert_eq!(table, expected);
        // Google: 96 batched passes of 40 requests (20 calls of two pages), and the daily
        // reconciliation of 1,000.
        assert_eq!(plan.scopes[1].requests_per_day, 96 * 40 + 1000);
        let json = plan.to_json();
        assert_eq!(json["from"], "2026-11-26");
        assert_eq!(json["warnings"].as_array().map(Vec::len), Some(1));
        let yelp_json = &json["scopes"][0];
        assert_eq!(yelp_json["label"], key.label());
        assert_eq!(yelp_json["platform"], "yelp");
        assert_eq!(yelp_json["sources"], json!(["yelp-sf"]));
        assert_eq!(yelp_json["requests_per_day"], 480);
        assert_eq!(yelp_json["tightest"], "per second");
        assert_eq!(
            yelp_json["windows"][0],
            json!({"window": "per day (resets 00:00 UTC)", "daily": true, "period_s": 86400, "limit": 300, "needed": 480, "fits": false})
        );
        let finding = &yelp_json["findings"][0];
        assert_eq!(finding["kind"], "over_daily_cap");
        assert_eq!(finding["level"], "warning");
        assert_eq!(finding["runs_out_at"], "2026-11-26T15:15:00Z");
        assert_eq!(
            finding["suggestion"],
            json!({"source": "yelp-sf", "schedule": "0 15 */2 * * *", "every": "every 2 hours", "requests_per_day": 240})
        );
        assert_eq!(yelp_json["findings"][1]["kind"], "pass_stretched");
        assert_eq!(yelp_json["findings"][1]["level"], "note");
        assert_eq!(yelp_json["findings"][1]["pass_takes_s"], 19);
        let text = json.to_string();
        assert!(
            !text.contains("yelp-key") && !text.contains("client.apps"),
            "{text}"
        );
    }

    #[test]
    fn sources_sharing_a_scope_add_up_against_it() {
        // Two Google sources on one OAuth client: 2 x 200 locations every
        // minute, one request each, against 300 a minute: passes cannot keep up.
        let key = ScopeKey::google_client("shared-client");
        let sources = [
            source(
                "east",
                &key,
                200,
                vec![incremental("0 * * * * *", PassCost::PerLocation(1))],
            ),
            source(
                "west",
                &key,
                200,
                vec![incremental("0 * * * * *", PassCost::PerLocation(1))],
            ),
        ];
        let plan = plan(&sources, &known_windows, from()).unwrap();
        assert_eq!(plan.scopes.len(), 1);
        let scope = &plan.scopes[0];
        assert_eq!(scope.sources, vec!["east", "west"]);
        assert_eq!(scope.windows[0].needed, 400);
        assert_eq!(scope.requests_per_day, 400 * 1440);
        assert!(matches!(
            &scope.findings[..],
            [Finding::Stretched { pass_takes, between_passes, .. }]
                if *pass_takes == Duration::from_secs(60) && *between_passes == Duration::from_secs(60)
        ));
        assert_eq!(plan.warnings().len(), 1);
        assert!(plan.warnings()[0].ends_with("passes will overlap and be skipped"));
        // With batch reads the same locations fit easily.
        let batched = [
            source(
                "east",
                &key,
                200,
                vec![incremental("0 * * * * *", PassCost::Batched { batch: 50 })],
            ),
            source(
                "west",
                &key,
                200,
                vec![incremental("0 * * * * *", PassCost::Batched { batch: 50 })],
            ),
        ];
        let plan = super::plan(&batched, &known_windows, from()).unwrap();
        assert_eq!(plan.scopes[0].windows[0].needed, 16);
        assert!(plan.scopes[0].findings.is_empty());
    }

    #[test]
    fn weekly_schedules_count_on_their_day_and_rolling_windows_see_the_evening_before() {
        let key = ScopeKey::trustpilot_key("tp");
        let sources = [source(
            "tp",
            &key,
            900,
            vec![
                incremental("0 59 23 * * *", PassCost::PerLocation(1)),
                PlannedPass {
                    kind: PassKind::Reconcile,
                    schedule: "0 0 0 * * SUN".into(),
                    cost: PassCost::PerLocation(1),
                },
            ],
        )];
        let plan = plan(&sources, &known_windows, from()).unwrap();
        let scope = &plan.scopes[0];
        // The busiest day is Sunday's: the weekly pass at 00:00 and the
        // daily one at 23:59.
        assert_eq!(scope.requests_per_day, 1800);
        // 23:59 Saturday and 00:00 Sunday fall within 5 minutes of each other.
        assert_eq!(scope.windows[0].needed, 1800);
        assert!(!scope.windows[0].fits());
    }

    #[test]
    fn when_nothing_fits_the_plan_says_so_and_bad_schedules_are_named() {
        let key = ScopeKey::yelp_key("k");
        let sources = [source(
            "yelp-big",
            &key,
            400,
            vec![incremental("0 0 * * * *", PassCost::PerLocation(1))],
        )];
        let plan = plan(&sources, &known_windows, from()).unwrap();
        assert!(matches!(
            &plan.scopes[0].findings[0],
            Finding::OverDailyCap { suggestion: None, runs_out_at, .. } if runs_out_at.format("%H:%M").to_string() == "00:00"
        ));
        assert!(
            plan.warnings()[0].ends_with(
                "no schedule of a source fits: fewer locations per key, or a larger quota"
            )
        );
        let broken = [source(
            "x",
            &key,
            1,
            vec![incremental("every hour", PassCost::PerLocation(1))],
        )];
        let error = super::plan(&broken, &known_windows, from()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("source \"x\": schedule \"every hour\": "),
            "{error}"
        );
    }

    #[test]
    fn the_pages_of_a_facebook_source_are_shown_once() {
        // Every 15 seconds: 5,760 calls a day per Page against 4,800 in
        // any 24 hours.
        let pages: Vec<PlannedSource> = (1..=3)
            .map(|n| {
                source(
                    "facebook-all",
                    &ScopeKey::facebook_page(&format!("100{n}")),
                    1,
                    vec![incremental("*/15 * * * * *", PassCost::PerLocation(1))],
                )
            })
            .collect();
        let plan = plan(&pages, &known_windows, from()).unwrap();
        assert_eq!(plan.scopes.len(), 1);
        let scope = &plan.scopes[0];
        assert_eq!(scope.name(), "facebook Page 1001 and 2 more Pages");
        assert_eq!(scope.requests_per_day, 5760);
        let warnings = plan.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("facebook Page 1001 and 2 more Pages: 5760 requests start within the 4800 per 24 hours window"),
            "{}",
            warnings[0]
        );
        assert_eq!(
            plan.to_json()["scopes"][0]["same_plan"],
            json!(["facebook Page 1002", "facebook Page 1003"])
        );
        assert!(
            plan.render_table()
                .contains("\nfacebook Page 1001 and 2 more Pages  facebook-all  per 24 hours")
        );
    }

    #[test]
    fn batched_costs_round_up_and_names_are_escaped_in_the_table() {
        assert_eq!(PassCost::Batched { batch: 50 }.requests(1000), 40);
        assert_eq!(PassCost::Batched { batch: 50 }.requests(1001), 42);
        assert_eq!(PassCost::Batched { batch: 0 }.requests(3), 6);
        assert_eq!(PassCost::PerLocation(2).requests(3), 6);
        let key = ScopeKey::places_key("p");
        let sources = [source(
            "evil\u{1b}[31m",
            &key,
            1,
            vec![incremental("0 0 * * * *", PassCost::PerLocation(1))],
        )];
        let table = plan(&sources, &known_windows, from())
            .unwrap()
            .render_table();
        assert!(table.contains("evil\\u001b[31m"), "{table}");
        assert!(!table.contains('\u{1b}'));
    }
}
