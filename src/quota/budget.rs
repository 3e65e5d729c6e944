//! Budgets shared per quota scope, and the per-source side: taking a call
//! from a budget (waiting, visibly, when it is spent), following what the
//! platform says about its limits, and the registry that hands every
//! source of a scope the same budget.

use super::headers::Adjustment;
use super::meter::{Meter, Notice, Now, Why};
use super::scope::ScopeKey;
use super::waits::{self, CurrentWait, InProgress};
use super::window::{Window, nanos};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Waits longer than this are logged at info, naming source, scope, how
/// long and why: a `sync` or a pass must never look hung.
pub const LOG_AFTER: Duration = Duration::from_secs(2);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while counting leaves a count at worst one call off: go on.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `d` rounded to whole seconds for display (`2m 5s`), at least `1s`.
fn shown(d: Duration) -> String {
    let secs = (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// `epoch + at`, or far in the future when that overflows.
fn instant_at(epoch: Instant, at: u64) -> Instant {
    epoch
        .checked_add(Duration::from_nanos(at))
        .unwrap_or_else(|| Instant::now() + crate::clock::FAR_FUTURE)
}

/// No call could go within the time a caller allowed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{scope}: no request possible for {}: {why}", shown(*wait))]
pub struct OverBudget {
    /// The scope.
    pub scope: ScopeKey,
    /// How long the next call would have to wait.
    pub wait: Duration,
    /// Why.
    pub why: Why,
}

/// One quota scope's budget, shared by every source using the scope.
pub struct Budget {
    key: ScopeKey,
    /// The meter's monotonic zero.
    epoch: Instant,
    /// Held only to check and count, never across an await.
    meter: Mutex<Meter>,
}

/// A source's side of its budgets: its name for logs and metrics, its own
/// `requests_per_minute` cap when it set one, and its waiting time per
/// scope (for the metric).
pub struct SourceBudget {
    name: String,
    epoch: Instant,
    /// `requests_per_minute` as set on the source: its own calls only, in
    /// every scope it uses.
    cap: Option<Mutex<Meter>>,
    /// Time waited per scope label, whole runs (the metric's value).
    waited: Mutex<HashMap<String, Duration>>,
}

impl SourceBudget {
    /// The side of source `name`; `requests_per_minute` when the source set
    /// one (not the kind's default: the scope's budget is that).
    pub fn new(name: &str, requests_per_minute: Option<NonZeroU32>) -> SourceBudget {
        SourceBudget {
            name: name.to_owned(),
            epoch: Instant::now(),
            cap: requests_per_minute.map(|n| Mutex::new(Meter::source_cap(n.get(), Utc::now()))),
            waited: Mutex::new(HashMap::new()),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `waited` for `scope` to the metric: whole seconds, the
    /// fraction carried to the next wait. The counter is only ever
    /// incremented, so a reload (a new `SourceBudget` for the same source)
    /// continues it rather than setting it back.
    fn account(&self, scope: &ScopeKey, waited: Duration) {
        let label = scope.label();
        let (before, after) = {
            let mut by_scope = lock(&self.waited);
            let total = by_scope.entry(label.clone()).or_default();
            let before = total.as_secs();
            *total = total.saturating_add(waited);
            (before, total.as_secs())
        };
        waits::add_seconds(&self.name, &label, after - before);
    }
}

impl Budget {
    fn new(key: ScopeKey, windows: &[Window]) -> Budget {
        Budget {
            key,
            epoch: Instant::now(),
            meter: Mutex::new(Meter::new(windows, Utc::now())),
        }
    }

    /// The scope.
    pub fn key(&self) -> &ScopeKey {
        &self.key
    }

    /// The windows as they stand (raised by an override, or as the
    /// platform reported them).
    pub fn windows(&self) -> Vec<Window> {
        lock(&self.meter).windows()
    }

    /// The daily window's calls left and its reset, when it has one.
    pub fn daily(&self) -> Option<(u32, DateTime<Utc>)> {
        lock(&self.meter).daily()
    }

    fn now(epoch: Instant, instant: Instant, wall: DateTime<Utc>) -> Now {
        Now {
            mono: nanos(instant.saturating_duration_since(epoch)),
            wall,
        }
    }

    /// Takes a call now if the source's cap and the scope both allow one,
    /// counting it in both; else when one could go, and why.
    fn try_take(&self, source: &SourceBudget) -> Option<(Instant, Why)> {
        let instant = Instant::now();
        let wall = Utc::now();
        let source_now = Budget::now(source.epoch, instant, wall);
        let scope_now = Budget::now(self.epoch, instant, wall);
        // Lock order: the source's cap, then the scope.
        let mut cap = source.cap.as_ref().map(lock);
        let mut meter = lock(&self.meter);
        let by_cap = cap
            .as_mut()
            .and_then(|c| c.check(source_now))
            .map(|b| (instant_at(source.epoch, b.at), b.why));
        let by_scope = meter
            .check(scope_now)
            .map(|b| (instant_at(self.epoch, b.at), b.why));
        match (by_cap, by_scope) {
            (None, None) => {
                if let Some(c) = cap.as_mut() {
                    c.grant(source_now);
                }
                meter.grant(scope_now);
                None
            }
            (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
            (Some(a), None) | (None, Some(a)) => Some(a),
        }
    }

    /// Takes one call for `source`, waiting as long as the budget needs.
    /// Returns how long it waited. Cancel-safe: dropping the future before
    /// it returns takes nothing.
    pub async fn take(&self, source: &SourceBudget) -> Duration {
        match self.take_within(source, crate::clock::FAR_FUTURE).await {
            Ok(waited) => waited,
            // Thirty years: not a wait anyone sees end.
            Err(over) => over.wait,
        }
    }

    /// [`Budget::take`], unless the call could not go within `longest`
    /// (counted from the start): then [`OverBudget`] at once, naming why,
    /// and nothing is taken (a daily cap spent until midnight fails the
    /// location's poll with a clear error instead of holding it for hours).
    ///
    /// A wait longer than [`LOG_AFTER`] is an info line naming the source,
    /// the scope, how long and why, logged when it starts (and again if the
    /// reason changes); shorter waits that add up to more are logged when
    /// they end. Waits are counted in [`waits::totals`], shown in
    /// [`waits::in_progress`] while they last, and added to the metric.
    pub async fn take_within(
        &self,
        source: &SourceBudget,
        longest: Duration,
    ) -> Result<Duration, OverBudget> {
        let started = Instant::now();
        let mut said: Option<Why> = None;
        let mut showing: Option<InProgress> = None;
        while let Some((until, why)) = self.try_take(source) {
            let now = Instant::now();
            let wait = until.saturating_duration_since(now);
            let planned = now.saturating_duration_since(started) + wait;
            if planned > longest {
                if showing.take().is_some() {
                    self.settle(source, started.elapsed());
                }
                return Err(OverBudget {
                    scope: self.key.clone(),
                    wait,
                    why,
                });
            }
            if wait > LOG_AFTER && said.as_ref() != Some(&why) {
                tracing::info!(
                    source = %source.name,
                    scope = %self.key,
                    wait_s = wait.as_secs_f64().ceil() as u64,
                    "waiting {} for the request budget of {}: {why}",
                    shown(wait),
                    self.key,
                );
                said = Some(why.clone());
            }
            match &showing {
                Some(entry) => entry.update(until, why.to_string()),
                None => {
                    showing = Some(InProgress::start(CurrentWait {
                        source: source.name.clone(),
                        scope: self.key.to_string(),
                        until,
                        why: why.to_string(),
                    }))
                }
            }
            tokio::time::sleep_until(until).await;
        }
        // Without a wait, the time spent checking is not a wait.
        let waited = match showing.take() {
            Some(_) => started.elapsed(),
            None => Duration::ZERO,
        };
        if waited > LOG_AFTER && said.is_none() {
            tracing::info!(
                source = %source.name,
                scope = %self.key,
                wait_s = waited.as_secs_f64().ceil() as u64,
                "waited {} for the request budget of {} (several short waits)",
                shown(waited),
                self.key,
            );
        }
        self.settle(source, waited);
        Ok(waited)
    }

    /// Counts a finished wait.
    fn settle(&self, source: &SourceBudget, waited: Duration) {
        if waited.is_zero() {
            return;
        }
        waits::finished(waited);
        source.account(&self.key, waited);
    }

    /// Follows what the platform said in an answer to `source`
    /// ([`super::headers`]); a new stop or slow-down is logged once.
    pub fn follow(&self, source: &str, adjustments: &[Adjustment]) {
        let instant = Instant::now();
        let now = Budget::now(self.epoch, instant, Utc::now());
        let notices: Vec<Notice> = {
            let mut meter = lock(&self.meter);
            adjustments
                .iter()
                .filter_map(|a| meter.apply(a, now))
                .collect()
        };
        for notice in notices {
            match notice {
                Notice::Stop { for_, why } if for_ > LOG_AFTER => tracing::info!(
                    source,
                    scope = %self.key,
                    wait_s = for_.as_secs_f64().ceil() as u64,
                    "no request to {} for {}: {why}",
                    self.key,
                    shown(for_),
                ),
                Notice::Stop { .. } => {}
                Notice::Slow { every, why } => tracing::info!(
                    source,
                    scope = %self.key,
                    "slowing requests to {} to one every {}: {why}",
                    self.key,
                    humantime::format_duration(Duration::from_millis(
                        u64::try_from(every.as_millis()).unwrap_or(u64::MAX)
                    )),
                ),
                Notice::Resumed => tracing::info!(
                    source,
                    scope = %self.key,
                    "usage of {} is down again: requests at the normal pace",
                    self.key,
                ),
            }
        }
    }
}

/// The budgets of a process, one per scope, handed out to every source of
/// the scope. Keep one for the process's life (across config reloads):
/// a daily count must survive a reload.
#[derive(Default)]
pub struct Quotas {
    budgets: Mutex<HashMap<ScopeKey, Arc<Budget>>>,
}

impl Quotas {
    /// No budgets yet.
    pub fn new() -> Quotas {
        Quotas::default()
    }

    /// The budget of `key`, created with `windows` (the platform's
    /// published quota, from its registry entry) on first use: the same
    /// budget for every later caller, whatever windows it passes.
    ///
    /// `requests_per_minute`, when a source sets it, combines with the
    /// shared scope so: it is that source's own cap
    /// ([`SourceBudget::new`]), and when it is higher than the scope's
    /// one-minute window (a Cloud project whose quota was raised), it raises
    /// that window for the whole scope; the highest such value wins. It
    /// never lowers a shared window, and scopes without a one-minute window
    /// (Yelp, Facebook, Trustpilot: quotas the vendor fixes or reports) are
    /// not raised.
    pub fn budget(
        &self,
        key: &ScopeKey,
        windows: &[Window],
        requests_per_minute: Option<NonZeroU32>,
    ) -> Arc<Budget> {
        let budget = {
            let mut budgets = lock(&self.budgets);
            budgets
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Budget::new(key.clone(), windows)))
                .clone()
        };
        if let Some(n) = requests_per_minute {
            lock(&budget.meter).raise_per_minute(n.get());
        }
        budget
    }

    /// Every budget handed out, in no particular order.
    pub fn budgets(&self) -> Vec<Arc<Budget>> {
        lock(&self.budgets).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpm(n: u32) -> Option<NonZeroU32> {
        NonZeroU32::new(n)
    }

    /// The published windows of `key`'s platform (its registry entry).
    fn known(key: &ScopeKey) -> Vec<Window> {
        crate::platforms::registry::by_kind(key.kind()).map_or_else(Vec::new, |p| (p.quota)())
    }

    #[tokio::test(start_paused = true)]
    async fn sources_of_one_scope_share_its_budget_and_other_scopes_do_not() {
        let quotas = Quotas::new();
        let key = ScopeKey::google_client("client-a.apps.googleusercontent.com");
        let a = SourceBudget::new("google-east", None);
        let b = SourceBudget::new("google-west", None);
        let scope = |k: &ScopeKey| quotas.budget(k, &[Window::per_minute(3)], None);
        assert!(Arc::ptr_eq(&scope(&key), &scope(&key)));
        let start = Instant::now();
        scope(&key).take(&a).await;
        scope(&key).take(&b).await;
        scope(&key).take(&a).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "three fit in the minute");
        // The fourth, from either source, waits for the minute to pass.
        let waited = scope(&key).take(&b).await;
        assert!(waited >= Duration::from_secs(60), "{waited:?}");
        // Another client is another project: no wait.
        let other = ScopeKey::google_client("client-b.apps.googleusercontent.com");
        assert_eq!(scope(&other).take(&a).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sources_own_cap_slows_only_that_source_and_can_raise_the_scope() {
        let quotas = Quotas::new();
        let key = ScopeKey::google_client("client");
        let capped = SourceBudget::new("capped", rpm(1));
        let free = SourceBudget::new("free", None);
        let budget = quotas.budget(&key, &known(&key), rpm(1));
        assert_eq!(
            budget.windows(),
            vec![Window::per_minute(300)],
            "never lowered"
        );
        assert_eq!(budget.take(&capped).await, Duration::ZERO);
        assert_eq!(budget.take(&free).await, Duration::ZERO);
        assert!(budget.take(&capped).await >= Duration::from_secs(59));
        // A raised project quota: the scope's minute window follows.
        let raised = quotas.budget(&key, &known(&key), rpm(1200));
        assert!(Arc::ptr_eq(&budget, &raised));
        assert_eq!(raised.windows(), vec![Window::per_minute(1200)]);
        // Scopes without a minute window are not raised.
        let yelp_key = ScopeKey::yelp_key("k");
        let yelp = quotas.budget(&yelp_key, &known(&yelp_key), rpm(1000));
        assert_eq!(yelp.windows(), known(&yelp_key));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_allowed_time_is_refused_at_once_and_takes_nothing() {
        let quotas = Quotas::new();
        let key = ScopeKey::trustpilot_key("tp");
        let budget = quotas.budget(&key, &[Window::per_minute(1)], None);
        let source = SourceBudget::new("tp", None);
        budget.take(&source).await;
        let start = Instant::now();
        let over = budget
            .take_within(&source, Duration::from_secs(5))
            .await
            .expect_err("a minute is more than 5 s");
        assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
        assert!(over.wait >= Duration::from_secs(59), "{over:?}");
        assert_eq!(over.why, Why::Window(Window::per_minute(1)));
        assert!(
            over.to_string().starts_with("trustpilot API key #")
                && over
                    .to_string()
                    .ends_with(": the 1 per minute window is full"),
            "{over}"
        );
        // Nothing was taken: after the minute, one call goes at once.
        tokio::time::advance(over.wait).await;
        assert_eq!(
            budget.take_within(&source, Duration::ZERO).await.ok(),
            Some(Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_yelp_key_with_nothing_left_stops_until_the_reset() {
        let quotas = Quotas::new();
        let key = ScopeKey::yelp_key("yelp-key");
        let budget = quotas.budget(&key, &known(&key), None);
        let source = SourceBudget::new("yelp-sf", None);
        budget.take(&source).await;
        // Yelp's answer said nothing is left today.
        let mut answer = reqwest::header::HeaderMap::new();
        answer.insert("ratelimit-dailylimit", "300".parse().unwrap());
        answer.insert("ratelimit-remaining", "0".parse().unwrap());
        budget.follow(
            "yelp-sf",
            &crate::platforms::yelp::quota::daily(&answer)
                .into_iter()
                .collect::<Vec<_>>(),
        );
        assert_eq!(budget.daily().map(|d| d.0), Some(0));
        let over = budget
            .take_within(&source, Duration::from_secs(60))
            .await
            .expect_err("nothing left today");
        assert!(
            matches!(over.why, Why::Window(w) if w.limit == 300),
            "{:?}",
            over.why
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_takes_nothing_and_leaves_no_trace() {
        let quotas = Quotas::new();
        let key = ScopeKey::places_key("dropped-wait-key");
        let budget = quotas.budget(&key, &[Window::per_minute(1)], None);
        let source = SourceBudget::new("places-dropped-wait", None);
        budget.take(&source).await;
        let shown_while_waiting = tokio::select! {
            biased;
            _ = budget.take(&source) => panic!("the minute cannot have passed"),
            shown = async {
                // The take has started waiting: it shows so.
                tokio::task::yield_now().await;
                waits::in_progress()
                    .into_iter()
                    .filter(|w| w.source == "places-dropped-wait")
                    .inspect(|w| assert!(w.why.contains("per minute"), "{w:?}"))
                    .count()
            } => shown,
        };
        assert_eq!(shown_while_waiting, 1);
        assert!(
            !waits::in_progress()
                .iter()
                .any(|w| w.source == "places-dropped-wait"),
            "the dropped wait is gone"
        );
        // It took nothing: one call goes after the minute, not two minutes.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(budget.take(&source).await, Duration::ZERO);
    }

    /// What `emit` logs at info and above, as text.
    fn logs<F: std::future::Future<Output = ()>>(emit: F) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::INFO)
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || runtime.block_on(emit));
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_wait_over_two_seconds_is_an_info_line_with_source_scope_time_and_why() {
        let logged = logs(async {
            let quotas = Quotas::new();
            let key = ScopeKey::trustpilot_key("secret-trustpilot-key");
            let budget = quotas.budget(&key, &[Window::per_minutes(2, 5)], None);
            let source = SourceBudget::new("trustpilot-uk", None);
            for _ in 0..3 {
                budget.take(&source).await;
            }
            // A short wait says nothing.
            let quick = quotas.budget(
                &ScopeKey::places_key("quick"),
                &[Window::per_second(1)],
                None,
            );
            quick.take(&source).await;
            quick.take(&source).await;
        });
        let lines: Vec<&str> = logged.lines().collect();
        assert_eq!(lines.len(), 1, "{logged}");
        let line = lines[0];
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("waiting 5m "), "{line}");
        assert!(
            line.contains("for the request budget of trustpilot API key #"),
            "{line}"
        );
        assert!(
            line.contains("the 2 per 5 minutes window is full"),
            "{line}"
        );
        assert!(line.contains("source=trustpilot-uk"), "{line}");
        assert!(line.contains("wait_s="), "{line}");
        assert!(!line.contains("secret-trustpilot-key"), "{line}");
    }

    #[test]
    fn a_stop_or_slow_down_from_the_platform_is_said_once() {
        let logged = logs(async {
            let quotas = Quotas::new();
            let key = ScopeKey::facebook_page("100000000000001");
            let budget = quotas.budget(&key, &known(&key), None);
            let mut answer = reqwest::header::HeaderMap::new();
            answer.insert(
                "x-business-use-case-usage",
                r#"{"100000000000001":[{"type":"pages","call_count":95,"total_cputime":10,"total_time":12,"estimated_time_to_regain_access":0}]}"#
                    .parse()
                    .unwrap(),
            );
            let adjustments = crate::platforms::facebook::quota::usage(&answer, key.location_id());
            budget.follow("fb", &adjustments);
            budget.follow("fb", &adjustments);
            let source = SourceBudget::new("fb", None);
            budget.take(&source).await;
            let waited = budget.take(&source).await;
            assert_eq!(waited, Duration::from_millis(7500));
        });
        let lines: Vec<&str> = logged.lines().collect();
        assert_eq!(lines.len(), 2, "{logged}");
        assert!(
            lines[0].contains(
                "slowing requests to facebook Page 100000000000001 to one every 7s 500ms: X-Business-Use-Case-Usage reports call_count at 95%"
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("waiting 8s for the request budget of facebook Page 100000000000001: X-Business-Use-Case-Usage reports call_count at 95%: slowing down"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("source=fb"), "{}", lines[1]);
    }

    #[test]
    fn waiting_seconds_are_a_metric_per_source_and_scope_without_keys() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let key = ScopeKey::yelp_key("yelp-secret-for-metrics");
        let source = SourceBudget::new("yelp-sf", None);
        metrics::with_local_recorder(&recorder, || {
            waits::register("yelp-sf", &key.label());
            source.account(&key, Duration::from_millis(1500));
            source.account(&key, Duration::from_millis(1600));
        });
        let text = handle.render();
        let line = text
            .lines()
            .find(|l| l.starts_with(waits::WAIT_SECONDS))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("source=\"yelp-sf\""), "{line}");
        assert!(
            line.contains(&format!("scope=\"{}\"", key.label())),
            "{line}"
        );
        // 3.1 s: 3 whole seconds, the fraction carried.
        assert!(line.ends_with(" 3"), "{line}");
        assert!(!text.contains("yelp-secret-for-metrics"));
    }

    #[tokio::test]
    async fn a_take_that_did_not_wait_reports_no_wait_on_the_real_clock() {
        // Regression: the time spent checking was reported (and counted)
        // as a wait of some microseconds.
        let quotas = Quotas::new();
        let key = ScopeKey::places_key("real-clock");
        let budget = quotas.budget(&key, &known(&key), None);
        let source = SourceBudget::new("real-clock", None);
        for _ in 0..3 {
            assert_eq!(budget.take(&source).await, Duration::ZERO);
        }
        assert!(
            lock(&source.waited).is_empty(),
            "nothing to put in the metric"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waits_add_up_in_the_process_totals() {
        let quotas = Quotas::new();
        let budget = quotas.budget(
            &ScopeKey::places_key("totals"),
            &[Window::per_minute(1)],
            None,
        );
        let source = SourceBudget::new("totals", None);
        let (waits_before, waited_before) = waits::totals();
        budget.take(&source).await;
        budget.take(&source).await;
        let (waits_after, waited_after) = waits::totals();
        // Other tests run in parallel: at least ours is counted.
        assert!(waits_after > waits_before);
        assert!(waited_after - waited_before >= Duration::from_secs(59));
    }
}
