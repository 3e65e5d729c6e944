//! The long-running daemon (`review-sync run`): a cron job per source (never
//! two passes of one source at once), the delivery worker, SIGHUP reloads
//! that keep the old config when the new one is invalid, a bounded drain on
//! SIGTERM/SIGINT, and systemd's READY/RELOADING/STOPPING/WATCHDOG.

use crate::app::{App, AppError};
use crate::config::{self, Config};
use crate::ledger::LedgerHandle;
use crate::poll::SourcePoller;
use sd_notify::NotifyState;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stop or reload waits for in-flight polls and deliveries.
/// Within systemd's default `TimeoutStopSec` (90 s), with room to spare;
/// whatever is still in flight after it stays `pending` in the ledger and is
/// sent after the restart.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Start-up failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The scheduler could not be started.
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(String),
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
    scheduler: JobScheduler,
}

impl Generation {
    async fn start(app: App) -> Result<Generation, DaemonError> {
        let app = Arc::new(app);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let scheduler = JobScheduler::new()
            .await
            .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
        for poller in &app.pollers {
            let job = source_job(
                Arc::clone(poller),
                Arc::clone(&app),
                cancel.clone(),
                tracker.clone(),
            )?;
            scheduler
                .add(job)
                .await
                .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
        }
        {
            let deliverer = Arc::clone(&app.deliverer);
            let cancel = cancel.clone();
            tracker.spawn(async move { deliverer.run(&cancel).await });
        }
        scheduler
            .start()
            .await
            .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
        Ok(Generation {
            app,
            cancel,
            tracker,
            scheduler,
        })
    }

    /// Stops scheduling, lets in-flight work finish up to the deadline.
    async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "scheduler shutdown");
        }
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

fn source_job(
    poller: Arc<SourcePoller>,
    app: Arc<App>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) -> Result<Job, DaemonError> {
    let schedule = poller.config().schedule.clone();
    let name = poller.name().to_owned();
    // Held for the whole pass: a tick that finds it locked is skipped, so a
    // slow pass never overlaps the next one of the same source.
    let running = Arc::new(tokio::sync::Mutex::new(()));
    Job::new_async(schedule.as_str(), move |_id, _sched| {
        let (poller, app, cancel, tracker, running) = (
            Arc::clone(&poller),
            Arc::clone(&app),
            cancel.clone(),
            tracker.clone(),
            Arc::clone(&running),
        );
        Box::pin(async move {
            let Ok(guard) = running.try_lock_owned() else {
                tracing::warn!(
                    source = poller.name(),
                    "previous pass still running; tick skipped"
                );
                return;
            };
            tracker.spawn(async move {
                let _guard = guard;
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = poller.poll_once() => app.deliverer.wake(),
                }
            });
        })
    })
    .map_err(|e| DaemonError::Scheduler(format!("source {name}: {e}")))
}

/// Runs the daemon until `control` says stop (or its sender is dropped).
pub async fn run(
    config_path: PathBuf,
    config: Config,
    mut control: tokio::sync::mpsc::Receiver<Control>,
) -> Result<(), DaemonError> {
    let app = App::open(config).await?;
    let ledger = app.ledger.clone();
    let mut generation = Generation::start(app).await?;
    notify(&[
        NotifyState::Ready,
        NotifyState::Status("polling and delivering"),
    ]);
    tracing::info!(
        sources = generation.app.pollers.len(),
        ledger = %generation.app.config.ledger.path.display(),
        "review-sync running"
    );
    let watchdog = spawn_watchdog(ledger.clone());
    // A closed channel counts as Stop: nobody is left to ask for anything else.
    while let Some(Control::Reload) = control.recv().await {
        generation = reload(&config_path, generation, &ledger).await?;
    }
    notify(&[NotifyState::Stopping]);
    tracing::info!("stopping: finishing in-flight work");
    watchdog.abort();
    generation.stop().await;
    tracing::info!("stopped");
    Ok(())
}

async fn reload(
    path: &std::path::Path,
    old: Generation,
    ledger: &LedgerHandle,
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
                tracing::error!(problem, "new config refused; keeping the old one");
            }
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
    let app = match App::with_ledger(new_config, ledger.clone()) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "new config cannot start; keeping the old one");
            notify(&[NotifyState::Ready]);
            return Ok(old);
        }
    };
    old.stop().await;
    let generation = Generation::start(app).await?;
    tracing::info!(sources = generation.app.pollers.len(), "config reloaded");
    notify(&[NotifyState::Ready, NotifyState::Status("config reloaded")]);
    Ok(generation)
}

/// Pings systemd's watchdog only while the ledger answers: a wedged ledger
/// (the one thing every loop needs) makes systemd restart us.
fn spawn_watchdog(ledger: LedgerHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(interval) = sd_notify::watchdog_enabled() else {
            return;
        };
        let every = interval / 2;
        loop {
            let alive = tokio::time::timeout(every, ledger.run(|l| l.schema_version()))
                .await
                .is_ok_and(|r| r.is_ok());
            if alive {
                notify(&[NotifyState::Watchdog]);
            } else {
                tracing::error!("ledger not answering; withholding the watchdog ping");
            }
            tokio::time::sleep(every).await;
        }
    })
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
