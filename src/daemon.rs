//! The long-running daemon (`review-sync run`): a cron task per source
//! schedule (its incremental `schedule` and, for kinds that can reconcile,
//! its `reconcile_schedule`; never two passes of one source at once), the
//! delivery worker, SIGHUP reloads
//! that keep the old config when the new one is invalid, a bounded drain on
//! SIGTERM/SIGINT, and systemd's READY/RELOADING/STOPPING/WATCHDOG.

use crate::app::{App, AppError};
use crate::config::{self, Config};
use crate::health::{Health, Phase};
use crate::ledger::{LedgerHandle, PurgedBy};
use crate::poll::{PassKind, SourcePoller};
use crate::schedule::Schedule;
use sd_notify::NotifyState;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stop or reload waits for in-flight polls and deliveries.
/// Within systemd's default `TimeoutStopSec` (90 s), with room to spare;
/// whatever is still in flight after it stays `pending` in the ledger and is
/// sent after the restart.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// How often the ledger's files are checked for deletion or replacement
/// when nothing else touches the ledger (every ledger call checks too): an
/// idle daemon reports it within this, for one `stat` per file.
pub const LEDGER_CHECK_EVERY: Duration = Duration::from_secs(10);

/// How often `[ledger] retain_text_days` and `retain_polls_days` are applied
/// (also once when a generation starts): the cutoffs are in days, so daily
/// is exact enough.
pub const RETENTION_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Start-up failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// A source's schedule could not be followed.
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(String),
    /// The `[metrics]` endpoint could not be started.
    #[error("{0}")]
    Metrics(String),
}

/// Events the daemon reacts to, so tests can drive it without signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Reload the config (SIGHUP).
    Reload,
    /// Stop (SIGTERM/SIGINT).
    Stop,
}

/// One configuration's running tasks; a reload replaces the whole generation.
struct Generation {
    app: Arc<App>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Generation {
    async fn start(app: App, health: &Health) -> Result<Generation, DaemonError> {
        let app = Arc::new(app);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut schedules = Vec::new();
        let mut pass_locks = std::collections::HashMap::new();
        for poller in &app.pollers {
            let slot = SourceSlot::default();
            pass_locks.insert(poller.name().to_owned(), Arc::clone(&slot.running));
            let mut kinds = vec![PassKind::Incremental];
            if poller.config().reconcile_schedule.is_some() {
                kinds.push(PassKind::Reconcile);
            }
            for kind in kinds {
                let cron = source_cron(
                    Arc::clone(poller),
                    Arc::clone(&app),
                    cancel.clone(),
                    tracker.clone(),
                    kind,
                    slot.clone(),
                )?;
                schedules.push(tracker.spawn(cron).abort_handle());
            }
        }
        let delivery = {
            let deliverer = Arc::clone(&app.deliverer);
            let cancel = cancel.clone();
            tracker.spawn(async move { deliverer.run(&cancel).await })
        };
        start_operations(&app, &cancel, &tracker);
        // Push hints read a location under the same pass lock as its source's ticks.
        health.set_push(crate::push::run::start(&app, pass_locks, &cancel, &tracker));
        health.running(
            delivery.abort_handle(),
            schedules,
            Some(Arc::clone(&app.deliverer)),
        );
        Ok(Generation {
            app,
            cancel,
            tracker,
        })
    }

    /// Stops scheduling, lets in-flight work finish up to the deadline.
    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_DEADLINE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                deadline_s = DRAIN_DEADLINE.as_secs(),
                "in-flight work did not finish in time; it stays pending in the ledger"
            );
        }
    }
}

/// What the jobs of one source share, so that its passes never overlap.
#[derive(Clone, Default)]
struct SourceSlot {
    /// Held for the whole of any pass of the source, incremental or not.
    running: Arc<tokio::sync::Mutex<()>>,
    /// A reconciliation tick is waiting for `running`: a second one is
    /// skipped rather than queued behind it.
    reconcile_waiting: Arc<AtomicBool>,
}

/// The cron task of one kind of pass over one source: it runs until
/// `cancel`, ticking at the schedule's fire times.
///
/// An incremental tick that finds a pass running is skipped (logged): the
/// next tick reads whatever it would have. A reconciliation tick instead
/// waits for the running pass to end, because it is rare (daily by
/// default) and its default time falls on the ticks of most incremental
/// schedules: skipping it would silently lose a day's reconciliation.
fn source_cron(
    poller: Arc<SourcePoller>,
    app: Arc<App>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    kind: PassKind,
    slot: SourceSlot,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, DaemonError> {
    let name = poller.name().to_owned();
    let schedule = match kind {
        PassKind::Incremental => poller.config().schedule.clone(),
        PassKind::Reconcile => poller.config().reconcile_schedule.clone().ok_or_else(|| {
            DaemonError::Scheduler(format!("source {name}: its kind cannot reconcile"))
        })?,
    };
    let label = format!("source {name} ({} pass)", kind.as_str());
    if kind == PassKind::Incremental
        && let Some(interval) = schedule_interval(&schedule)
    {
        crate::metrics::source_scheduled(&name, interval);
    }
    Ok(async move {
        let ticks = cancel.clone();
        crate::schedule::run_every(&schedule, &label, &ticks, || {
            let (poller, app, cancel, slot) = (
                Arc::clone(&poller),
                Arc::clone(&app),
                cancel.clone(),
                slot.clone(),
            );
            let guard = match Arc::clone(&slot.running).try_lock_owned() {
                Ok(guard) => Some(guard),
                Err(_) if kind.is_reconcile() => {
                    if slot.reconcile_waiting.swap(true, Ordering::SeqCst) {
                        tracing::warn!(
                            source = poller.name(),
                            pass = kind.as_str(),
                            "a reconciliation pass is already waiting; tick skipped"
                        );
                        return;
                    }
                    tracing::info!(
                        source = poller.name(),
                        pass = kind.as_str(),
                        "a pass is running; the reconciliation starts when it ends"
                    );
                    None
                }
                Err(_) => {
                    tracing::warn!(
                        source = poller.name(),
                        pass = kind.as_str(),
                        "previous pass still running; tick skipped"
                    );
                    return;
                }
            };
            let until_next = schedule
                .next_after(chrono::Utc::now())
                .and_then(|t| (t - chrono::Utc::now()).to_std().ok());
            tracker.spawn(async move {
                if !crate::cluster::claim_tick(&app.ledger, poller.name(), kind.as_str(), until_next).await {
                    return; // Another daemon sharing the ledger has this tick.
                }
                let _guard = match guard {
                    Some(guard) => guard,
                    None => {
                        let locked = tokio::select! {
                            _ = cancel.cancelled() => None,
                            guard = Arc::clone(&slot.running).lock_owned() => Some(guard),
                        };
                        slot.reconcile_waiting.store(false, Ordering::SeqCst);
                        match locked {
                            Some(guard) => guard,
                            None => return,
                        }
                    }
                };
                // Nothing is asked of a platform that could not be
                // recorded: not while the ledger's files are deleted or
                // replaced.
                if let Err(e) = app.ledger.verify().await {
                    tracing::warn!(source = poller.name(), pass = kind.as_str(), error = %e, "pass skipped: the ledger takes no work");
                    return;
                }
                // One daemon at a time per source (a lease, on a shared ledger).
                let lease = crate::cluster::pass_lease(poller.name());
                let ran = crate::cluster::exclusive(
                    &app.ledger,
                    &lease,
                    app.config.ledger.lease,
                    None,
                    &cancel,
                    poller.pass(kind),
                )
                .await;
                if crate::cluster::log_pass(poller.name(), kind.as_str(), &ran) {
                    app.deliverer.wake();
                }
            });
        })
        .await;
    })
}

/// The longest gap between the next fire times of `schedule` (16 of
/// them: a schedule like `0 0 9,17 * * *` has uneven gaps, and an alert on
/// "3 intervals without a poll" must use the longest). `None` when it
/// stops firing.
fn schedule_interval(schedule: &Schedule) -> Option<Duration> {
    let mut at = schedule.next_after(chrono::Utc::now())?;
    let mut longest = Duration::ZERO;
    for _ in 0..16 {
        let next = schedule.next_after(at)?;
        longest = longest.max((next - at).to_std().unwrap_or(Duration::ZERO));
        at = next;
    }
    Some(longest)
}

/// Runs the daemon until `control` says stop (or its sender is dropped).
pub async fn run(
    config_path: PathBuf,
    config: Config,
    mut control: tokio::sync::mpsc::Receiver<Control>,
) -> Result<(), DaemonError> {
    let app = App::open(config).await?;
    let ledger = app.ledger.clone();
    let holder = format!("{} pid {}", app.config.ledger.instance, std::process::id());
    crate::metrics::set_instance(&app.config.ledger.instance);
    // Infallible: it only names this process in the rows it writes.
    let _ = ledger
        .run(move |l| {
            l.set_holder(&holder);
            Ok(())
        })
        .await;
    let health = Health::new(ledger.clone());
    let mut metrics = MetricsEndpoint::default();
    metrics
        .configure(&app.config, &health, &ledger)
        .await
        .map_err(DaemonError::Metrics)?;
    let mut generation = Generation::start(app, &health).await?;
    notify(&[
        NotifyState::Ready,
        NotifyState::Status("polling and delivering"),
    ]);
    tracing::info!(
        sources = generation.app.pollers.len(),
        ledger = %generation.app.config.ledger.path.display(),
        "review-sync running"
    );
    let watchdog = spawn_watchdog(health.clone());
    // A closed channel counts as Stop: nobody is left to ask for anything else.
    while let Some(Control::Reload) = control.recv().await {
        health.set_phase(Phase::Reloading);
        generation = reload(&config_path, generation, &ledger, &health).await?;
        if health.phase() == Phase::Reloading {
            // Refused: the old generation runs on.
            health.set_phase(Phase::Running);
        }
        if let Err(e) = metrics
            .configure(&generation.app.config, &health, &ledger)
            .await
        {
            tracing::error!(error = %e, "[metrics] unchanged");
        }
    }
    health.set_phase(Phase::Stopping);
    notify(&[NotifyState::Stopping]);
    tracing::info!("stopping: finishing in-flight work");
    watchdog.abort();
    generation.stop().await;
    metrics.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// What every generation runs besides its sources and deliveries: the
/// sources' metrics at zero, and retention (of the poll log always, of
/// review text when configured).
fn start_operations(app: &Arc<App>, cancel: &CancellationToken, tracker: &TaskTracker) {
    for poller in &app.pollers {
        crate::metrics::register_source(poller.name(), &poller.platform());
        if let Some(scope) = poller.config().kind.quota_scope().label() {
            crate::quota::waits::register(poller.name(), &scope);
        }
    }
    {
        // The check logs when the files go (and come back); see `LedgerHandle::run`.
        let (ledger, cancel) = (app.ledger.clone(), cancel.clone());
        tracker.spawn(async move {
            loop {
                let _ = ledger.verify().await;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(LEDGER_CHECK_EVERY) => {}
                }
            }
        });
    }
    {
        let days = app.config.ledger.retain_polls_days.get();
        let (ledger, cancel) = (app.ledger.clone(), cancel.clone());
        let lease = app.config.ledger.lease;
        tracker.spawn(async move {
            loop {
                let job = prune_poll_log(&ledger, days, &cancel);
                once_for_cluster(&ledger, "job:retain-polls", lease, &cancel, job).await;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(RETENTION_EVERY) => {}
                }
            }
        });
    }
    if let Some(days) = app.config.ledger.retain_text_days {
        let (ledger, cancel) = (app.ledger.clone(), cancel.clone());
        let lease = app.config.ledger.lease;
        tracker.spawn(async move {
            loop {
                let job = apply_retention(&ledger, days.get(), &cancel);
                once_for_cluster(&ledger, "job:retain-text", lease, &cancel, job).await;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(RETENTION_EVERY) => {}
                }
            }
        });
    }
}

/// Runs a retention job unless another daemon sharing the ledger ran it
/// within the last [`RETENTION_EVERY`] (less a margin for the daemons'
/// different start times), or runs it now.
async fn once_for_cluster(
    ledger: &LedgerHandle,
    name: &str,
    lease: Duration,
    cancel: &CancellationToken,
    job: impl std::future::Future<Output = ()>,
) {
    let keep = RETENTION_EVERY - Duration::from_secs(3600);
    if let crate::cluster::Leased::Lost(reason) =
        crate::cluster::exclusive(ledger, name, lease, Some(keep), cancel, job).await
    {
        tracing::warn!(
            job = name,
            reason,
            "retention not run; trying again at the next run"
        );
    }
}

/// Deletes the poll-log rows of polls started more than `days` days ago, one
/// batch per ledger call so that polls and deliveries go on in between.
async fn prune_poll_log(ledger: &LedgerHandle, days: u32, cancel: &CancellationToken) {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let mut deleted = 0;
    while !cancel.is_cancelled() {
        match ledger.run(move |l| l.delete_polls_step(cutoff)).await {
            Ok(n) => {
                deleted += n;
                if n < crate::ledger::POLL_BATCH {
                    break;
                }
            }
            Err(e) => {
                crate::metrics::ledger_error(&e);
                tracing::error!(error = %e, "retention: poll log not pruned; trying again at the next run");
                return;
            }
        }
    }
    if deleted > 0 {
        tracing::info!(
            rows = deleted,
            cutoff = %crate::ledger::format_time(cutoff),
            retain_polls_days = days,
            "retention: older poll-log rows deleted"
        );
    }
}

/// Purges the text of reviews delivered more than `days` days ago, one batch
/// per ledger call so that polls and deliveries go on in between.
async fn apply_retention(ledger: &LedgerHandle, days: u32, cancel: &CancellationToken) {
    let now = chrono::Utc::now();
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let mut purge = match ledger
        .run(move |l| l.start_purge(cutoff, now, PurgedBy::Daemon))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::ledger_error(&e);
            tracing::error!(error = %e, "retention: cannot start the purge; trying again at the next run");
            return;
        }
    };
    while !cancel.is_cancelled() {
        let before = purge.rows_purged();
        let step = ledger
            .run(move |l| {
                let more = l.purge_step(&mut purge)?;
                Ok((purge, more))
            })
            .await;
        let more = match step {
            Ok((p, more)) => {
                crate::metrics::texts_purged(p.rows_purged() - before);
                purge = p;
                more
            }
            Err(e) => {
                crate::metrics::ledger_error(&e);
                tracing::error!(error = %e, "retention: purge interrupted; it resumes at the next run");
                return;
            }
        };
        if !more {
            break;
        }
    }
    tracing::info!(
        rows = purge.rows_purged(),
        cutoff = %crate::ledger::format_time(cutoff),
        retain_text_days = days,
        "retention: review text of older deliveries purged"
    );
}

async fn reload(
    path: &std::path::Path,
    old: Generation,
    ledger: &LedgerHandle,
    health: &Health,
) -> Result<Generation, DaemonError> {
    notify_reloading();
    let loaded = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|e| DaemonError::Signals(e.to_string()))?
    };
    let new_config = match loaded {
        Ok(c) => c,
        Err(e) => {
            for problem in &e.problems {
                tracing::error!(problem = %problem, "new config refused; keeping the old one");
            }
            crate::metrics::config_reloaded(false);
            notify(&[
                NotifyState::Ready,
                NotifyState::Status("reload refused: config invalid, old config kept"),
            ]);
            return Ok(old);
        }
    };
    if new_config.ledger.path != old.app.config.ledger.path {
        tracing::warn!("[ledger] path changed: the new path takes effect after a restart");
    }
    // The same budgets: what a scope spent today still counts.
    let app = match App::with_ledger(new_config, ledger.clone(), old.app.quotas.clone()) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "new config cannot start; keeping the old one");
            crate::metrics::config_reloaded(false);
            notify(&[NotifyState::Ready]);
            return Ok(old);
        }
    };
    old.stop().await;
    let generation = Generation::start(app, health).await?;
    tracing::info!(sources = generation.app.pollers.len(), "config reloaded");
    crate::metrics::config_reloaded(true);
    notify(&[NotifyState::Ready, NotifyState::Status("config reloaded")]);
    Ok(generation)
}

/// Pings systemd's watchdog at half its interval, only while the daemon is
/// alive ([`Health::alive`]): the scheduler ticks, the delivery loop runs and
/// the ledger answers. A wedged daemon stops pinging and systemd restarts it.
fn spawn_watchdog(health: Health) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(interval) = sd_notify::watchdog_enabled() else {
            return;
        };
        let every = interval / 2;
        loop {
            match health.alive(every).await {
                Ok(()) => notify(&[NotifyState::Watchdog]),
                Err(reason) => tracing::error!(reason, "withholding the watchdog ping"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The `[metrics]` endpoint, following the config across reloads.
#[derive(Default)]
struct MetricsEndpoint {
    server: Option<crate::metrics::Server>,
    listen: Option<std::net::SocketAddr>,
}

impl MetricsEndpoint {
    /// Starts, moves or stops the endpoint to match `config`. On error the
    /// endpoint is left as it was.
    async fn configure(
        &mut self,
        config: &Config,
        health: &Health,
        ledger: &LedgerHandle,
    ) -> Result<(), String> {
        let wanted = config.metrics.as_ref().map(|m| m.listen);
        if wanted == self.listen {
            return Ok(());
        }
        let server = match wanted {
            Some(listen) => {
                Some(crate::metrics::Server::start(listen, health.clone(), ledger.clone()).await?)
            }
            None => None,
        };
        self.stop().await;
        self.server = server;
        self.listen = wanted;
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.listen = None;
    }
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

fn notify_reloading() {
    // systemd >= 253 requires MONOTONIC_USEC with RELOADING=1.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// Turns SIGHUP/SIGTERM/SIGINT into [`Control`] events.
pub fn signal_control() -> Result<tokio::sync::mpsc::Receiver<Control>, DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut hup = signal(SignalKind::hangup()).map_err(|e| DaemonError::Signals(e.to_string()))?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| DaemonError::Signals(e.to_string()))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| DaemonError::Signals(e.to_string()))?;
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = hup.recv() => Control::Reload,
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
            };
            if tx.send(event).await.is_err() || event == Control::Stop {
                break;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_interval_is_its_longest_gap() {
        let every = |cron: &str| schedule_interval(&Schedule::parse(cron).unwrap());
        assert_eq!(every("0 */15 * * * *"), Some(Duration::from_secs(900)));
        assert_eq!(
            every("0 0 9,17 * * *"),
            Some(Duration::from_secs(16 * 3600))
        );
        assert_eq!(every("*/1 * * * * *"), Some(Duration::from_secs(1)));
    }
}
