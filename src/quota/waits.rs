//! Budget waits, process-wide: the totals and the waits in progress that
//! `sync`'s progress line shows, and the waiting-seconds metric.
//!
//! The metric is `review_sync_budget_wait_seconds_total{source,scope}`:
//! whole seconds waited (the fraction is carried, not lost), `scope` being
//! [`super::ScopeKey::label`] (never a key, bounded by the config's
//! credentials). Like every metric helper it is a no-op without a recorder.

use metrics::counter;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Seconds requests waited for a budget, by `source` and `scope`.
pub const WAIT_SECONDS: &str = "review_sync_budget_wait_seconds_total";

/// Takes that had to wait, since the process started.
static WAITS: AtomicU64 = AtomicU64::new(0);
/// Their waiting time in all, nanoseconds.
static WAITED_NANOS: AtomicU64 = AtomicU64::new(0);
/// Ids of [`InProgress`] entries.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// The waits in progress, by id: few (one per source at most, in practice).
static CURRENT: LazyLock<Mutex<BTreeMap<u64, CurrentWait>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

fn current_map() -> MutexGuard<'static, BTreeMap<u64, CurrentWait>> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

/// A wait in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentWait {
    /// The source waiting.
    pub source: String,
    /// The scope it waits for, as shown in logs (`yelp API key #1a2b3c4d`).
    pub scope: String,
    /// When it expects to go.
    pub until: Instant,
    /// Why (the window, or the platform's header).
    pub why: String,
}

impl CurrentWait {
    /// For a progress line: `yelp-sf waits 45s more for yelp API key
    /// #1a2b3c4d: the 1 per second window is full` (the source name
    /// escaped for a terminal).
    pub fn describe(&self, now: Instant) -> String {
        let left = self.until.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        format!(
            "{} waits {} more for {}: {}",
            crate::escape::Escaped(&self.source),
            humantime::format_duration(Duration::from_secs(secs)),
            self.scope,
            self.why
        )
    }
}

/// Takes that waited for a budget since the process started, and how long
/// they waited in all (what `sync`'s progress line shows; it replaces
/// the old per-source `budget_waits`).
pub fn totals() -> (u64, Duration) {
    (
        WAITS.load(Ordering::Relaxed),
        Duration::from_nanos(WAITED_NANOS.load(Ordering::Relaxed)),
    )
}

/// The waits in progress, the one that ends last first.
pub fn in_progress() -> Vec<CurrentWait> {
    let mut waits: Vec<CurrentWait> = current_map().values().cloned().collect();
    waits.sort_by_key(|w| std::cmp::Reverse(w.until));
    waits
}

/// The wait in progress that ends last: what a progress line names so that
/// a long wait never looks like a hang.
pub fn longest_in_progress() -> Option<CurrentWait> {
    in_progress().into_iter().next()
}

/// Registers `source`'s series for `scope_label` at zero, so it exists from
/// the first scrape (the daemon does this for every source and scope).
pub fn register(source: &str, scope_label: &str) {
    counter!(WAIT_SECONDS, "source" => source.to_owned(), "scope" => scope_label.to_owned())
        .increment(0);
}

/// A take finished after waiting `waited` (more than nothing).
pub(crate) fn finished(waited: Duration) {
    WAITS.fetch_add(1, Ordering::Relaxed);
    let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
    WAITED_NANOS.fetch_add(nanos, Ordering::Relaxed);
}

/// Adds `seconds` to the metric of (`source`, `scope_label`).
pub(crate) fn add_seconds(source: &str, scope_label: &str, seconds: u64) {
    if seconds > 0 {
        counter!(WAIT_SECONDS, "source" => source.to_owned(), "scope" => scope_label.to_owned())
            .increment(seconds);
    }
}

/// A wait shown by [`in_progress`] while it lives; dropping it (the take
/// done, or its future dropped) removes it.
pub(crate) struct InProgress(u64);

impl InProgress {
    pub(crate) fn start(wait: CurrentWait) -> InProgress {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        current_map().insert(id, wait);
        InProgress(id)
    }

    pub(crate) fn update(&self, until: Instant, why: String) {
        if let Some(wait) = current_map().get_mut(&self.0) {
            wait.until = until;
            wait.why = why;
        }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        current_map().remove(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_in_progress_is_described_for_a_progress_line() {
        let now = Instant::now();
        let wait = CurrentWait {
            source: "yelp\u{1b}[2J-sf".into(),
            scope: "yelp API key #1a2b3c4d".into(),
            until: now + Duration::from_millis(44_200),
            why: "the 1 per second window is full".into(),
        };
        assert_eq!(
            wait.describe(now),
            "yelp\\u001b[2J-sf waits 45s more for yelp API key #1a2b3c4d: the 1 per second window is full"
        );
        let shown = InProgress::start(wait.clone());
        assert!(in_progress().contains(&wait));
        shown.update(now + Duration::from_secs(1), "later".into());
        assert!(
            in_progress()
                .iter()
                .any(|w| w.source == wait.source && w.why == "later")
        );
        drop(shown);
        assert!(!in_progress().iter().any(|w| w.source == wait.source));
    }
}
