//! Cron schedules (`schedule`, `reconcile_schedule`): parsing, and a task
//! per schedule that sleeps until its next fire time.
//!
//! Why not a scheduler crate: tokio-cron-scheduler, used before, looks for
//! due jobs every 500 ms, and a daemon on it needed a heartbeat job every
//! second to prove the scheduler still ticked. An idle daemon woke three
//! times a second for nothing; here it wakes once per job per [`MAX_SLEEP`]
//! at most. croner computes the fire times, so the cron semantics are a
//! crate's, not ours.

use chrono::{DateTime, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest single sleep. Sleeps run on the monotonic clock while fire
/// times are wall-clock times, which can be stepped (NTP, a VM resumed):
/// looking at the wall clock again every minute bounds how late a tick can
/// be after a step, for one wakeup a minute (and a step another task
/// detects wakes every schedule at once: [`crate::clock::steps`]).
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A parsed cron expression: six fields, seconds first, evaluated in UTC;
/// a day must match both day-of-month and day-of-week when both are set.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
}

/// Two schedules are equal when written the same way.
impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Schedule {}

/// A cron expression that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct ScheduleError {
    /// What croner said, without a trailing period.
    pub reason: String,
}

impl Schedule {
    /// Parses `expression`. Config validation parses each schedule once and
    /// keeps the result in the config, so a schedule `check` accepts is the
    /// one `run` follows.
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        let parser = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build();
        parser
            .parse(expression)
            .map(|cron| Schedule { cron })
            .map_err(|e| ScheduleError {
                reason: e.to_string().trim_end_matches('.').to_owned(),
            })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        self.cron.as_str()
    }

    /// The first fire time strictly after `after` (whole seconds), or
    /// `None` when the expression never matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // croner steps from `after` as given, fraction included; fire times
        // are whole seconds.
        let whole = after.with_nanosecond(0).unwrap_or(after);
        self.cron.find_next_occurrence(&whole, false).ok()
    }
}

/// Calls `tick` at every fire time of `schedule` until `cancel` fires;
/// `label` names the schedule in log lines.
///
/// `tick` should return at once (spawn the work): the next fire time is
/// computed after it returns. Fire times missed while the process was not
/// running (suspended, or `tick` slow) or jumped over by a forward step of
/// the wall clock are not made up one by one: the first wakeup after them
/// ticks once, then the schedule resumes from the current time. When the
/// wall clock goes back, the next fire time is re-anchored to the new time
/// ([`reanchor`]) instead of waited for.
pub(crate) async fn run_every(
    schedule: &Schedule,
    label: &str,
    cancel: &CancellationToken,
    mut tick: impl FnMut(),
) {
    let mut steps = crate::clock::steps();
    let mut after = Utc::now();
    loop {
        let Some(mut next) = schedule.next_after(after) else {
            tracing::warn!(
                schedule = schedule.cron.as_str(),
                "{label}: the cron expression never matches again; nothing more is scheduled"
            );
            cancel.cancelled().await;
            return;
        };
        loop {
            crate::clock::observe();
            let now = Utc::now();
            if now >= next {
                break;
            }
            if let Some(sooner) = reanchor(schedule, next, now) {
                tracing::warn!(
                    schedule = schedule.cron.as_str(),
                    was = %next.to_rfc3339(),
                    now = %sooner.to_rfc3339(),
                    "{label}: the wall clock went back; next fire time re-anchored to the new time"
                );
                next = sooner;
                continue;
            }
            let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                // Another task saw the clock step: look again now.
                _ = steps.changed() => {}
            }
        }
        tick();
        after = next.max(Utc::now());
    }
}

/// The fire time to wait for instead of `next` at `now`, when the wall
/// clock went back since `next` was computed: the schedule's next fire time
/// from `now` comes sooner than `next` exactly when the clock now reads
/// earlier than the time `next` was computed from (`next` is the first fire
/// time after that). `None` when `next` is still the one to wait for.
fn reanchor(schedule: &Schedule, next: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.next_after(now).filter(|sooner| *sooner < next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn at(h: u32, m: u32, s: u32, ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, s).unwrap() + chrono::Duration::milliseconds(ms)
    }

    #[test]
    fn the_next_fire_time_is_strictly_later_in_whole_seconds() {
        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(
            every_second.next_after(at(10, 0, 0, 0)),
            Some(at(10, 0, 1, 0))
        );
        // Just after a tick: the same second is not fired twice.
        assert_eq!(
            every_second.next_after(at(10, 0, 0, 3)),
            Some(at(10, 0, 1, 0))
        );

        let quarterly = Schedule::parse("0 */15 * * * *").unwrap();
        assert_eq!(
            quarterly.next_after(at(10, 0, 0, 0)),
            Some(at(10, 15, 0, 0))
        );
        assert_eq!(
            quarterly.next_after(at(10, 14, 59, 999)),
            Some(at(10, 15, 0, 0))
        );
    }

    #[test]
    fn a_clock_gone_back_re_anchors_the_next_fire_time_and_nothing_else_does() {
        let quarterly = Schedule::parse("0 */15 * * * *").unwrap();
        let next = at(10, 15, 0, 0);
        // Time passing, or a small step back within the same interval: wait on.
        assert_eq!(reanchor(&quarterly, next, at(10, 0, 1, 0)), None);
        assert_eq!(reanchor(&quarterly, next, at(10, 14, 59, 999)), None);
        assert_eq!(reanchor(&quarterly, next, at(10, 0, 0, 0)), None);
        // Back past the previous fire time: the next one from the new time.
        assert_eq!(
            reanchor(&quarterly, next, at(9, 50, 0, 0)),
            Some(at(10, 0, 0, 0))
        );
        // A day back: a quarter of an hour, not a day.
        let day_back = at(10, 5, 0, 0) - chrono::Duration::days(1);
        assert_eq!(
            reanchor(&quarterly, next, day_back),
            Some(at(10, 15, 0, 0) - chrono::Duration::days(1))
        );
        // A daily schedule stepped back an hour before its time: it still
        // fires at its wall-clock time (cron is wall-clock time).
        let daily = Schedule::parse("0 0 3 * * *").unwrap();
        assert_eq!(reanchor(&daily, at(3, 0, 0, 0), at(1, 0, 0, 0)), None);
    }

    #[test]
    fn both_day_fields_must_match_and_seconds_are_required() {
        // The 13th that is a Friday: 2026-11-13 is one.
        let friday_13th = Schedule::parse("0 0 0 13 * FRI").unwrap();
        let next = friday_13th.next_after(at(10, 0, 0, 0)).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2027, 8, 13, 0, 0, 0).unwrap());

        let e = Schedule::parse("*/15 * * * *").unwrap_err();
        assert!(!e.reason.is_empty() && !e.reason.ends_with('.'), "{e}");
        assert!(Schedule::parse("0 0 0 1 1 *").is_ok());
    }

    #[tokio::test]
    async fn ticks_on_schedule_until_cancelled() {
        let schedule = Schedule::parse("* * * * * *").unwrap();
        let cancel = CancellationToken::new();
        let ticks = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = {
            let (cancel, ticks) = (cancel.clone(), Arc::clone(&ticks));
            tokio::spawn(async move {
                run_every(&schedule, "test", &cancel, || {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tx.send(Utc::now()).ok();
                })
                .await;
            })
        };
        let first = rx.recv().await.expect("a first tick");
        let second = rx.recv().await.expect("a second tick");
        assert!(
            second.timestamp() > first.timestamp(),
            "one tick per fire time: {first} then {second}"
        );
        cancel.cancel();
        task.await.unwrap();
        assert!(ticks.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn an_expression_that_never_matches_waits_for_the_stop() {
        // February 30th never comes.
        let schedule = Schedule::parse("0 0 0 30 2 *").unwrap();
        assert_eq!(schedule.next_after(at(10, 0, 0, 0)), None);
        let cancel = CancellationToken::new();
        let stopped = cancel.clone();
        let task = tokio::spawn(async move {
            run_every(&schedule, "test", &stopped, || panic!("never ticks")).await;
        });
        // A current-thread runtime: one yield runs the task until it waits.
        tokio::task::yield_now().await;
        assert!(
            !task.is_finished(),
            "it waits for the stop instead of ending"
        );
        cancel.cancel();
        task.await.unwrap();
    }
}
