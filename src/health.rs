//! The daemon's health, as systemd's watchdog and `/healthz` see it.
//!
//! Two questions, answered from the same state:
//! - **alive** (the watchdog ping): the scheduler ticks, the delivery loop
//!   has not ended, and the ledger answers a read. A wedged process stops
//!   pinging and systemd restarts it.
//! - **healthy** (`/healthz` 200): the same loops; the ledger's files are
//!   the ones it opened, no storage failure (disk full, read-only, I/O) of
//!   any loop since the last committed write, and the ledger takes a write
//!   lock; and Travtus has not refused our credentials. A ledger that
//!   cannot be written makes the daemon useless but restarting it would not
//!   help (after a deleted ledger it would do harm: a restart opens an empty
//!   file and sends every review again), so it is reported, not fatal. A
//!   429 pause is healthy, with the pause as detail.
//!
//! How each loop is watched: the delivery loop and every cron task (one per
//! source schedule, see `schedule`) are tasks whose end (return or panic)
//! is visible through their `AbortHandle`. They sleep for minutes when idle,
//! so a heartbeat would not tell a sleeping loop from a dead one, and would
//! wake an idle daemon for nothing.

use crate::deliver::{Deliverer, PauseStatus};
use crate::ledger::{LedgerError, LedgerHandle};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

/// How long `/healthz` waits for the ledger before calling it unhealthy
/// (the write probe itself gives up after 1 s of lock contention; the rest is
/// room for a ledger call already in progress).
pub(crate) const LEDGER_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the daemon is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the ledger and starting the first generation.
    Starting,
    /// Scheduling and delivering.
    Running,
    /// Replacing the generation after SIGHUP (the old one drains first).
    Reloading,
    /// Draining after SIGTERM/SIGINT.
    Stopping,
}

struct State {
    phase: Phase,
    // The current generation's delivery task.
    delivery: Option<AbortHandle>,
    // The current generation's cron tasks.
    schedules: Vec<AbortHandle>,
    // The current generation's delivery worker, for its pause.
    deliverer: Option<Arc<Deliverer>>,
    /// The push channels of the running generation, if any.
    push: Option<Arc<crate::push::run::PushStatus>>,
}

/// Shared health state; cheap to clone.
#[derive(Clone)]
pub struct Health {
    state: Arc<Mutex<State>>,
    ledger: LedgerHandle,
}

impl Health {
    /// The health of a daemon using `ledger`, in [`Phase::Starting`].
    pub fn new(ledger: LedgerHandle) -> Health {
        Health {
            state: Arc::new(Mutex::new(State {
                phase: Phase::Starting,
                delivery: None,
                schedules: Vec::new(),
                deliverer: None,
                push: None,
            })),
            ledger,
        }
    }

    /// A new generation runs: its delivery task is `delivery` (of
    /// `deliverer`), its cron tasks are `schedules`.
    pub fn running(
        &self,
        delivery: AbortHandle,
        schedules: Vec<AbortHandle>,
        deliverer: Option<Arc<Deliverer>>,
    ) {
        let mut s = self.lock();
        s.phase = Phase::Running;
        s.delivery = Some(delivery);
        s.schedules = schedules;
        s.deliverer = deliverer;
    }

    /// Whether deliveries are paused, and why.
    pub fn pause_status(&self) -> Option<PauseStatus> {
        self.lock().deliverer.as_ref()?.pause_status()
    }

    /// The daemon moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// The loops' state: `Err(reason)` when one of them is not running.
    /// A reload in progress counts as alive when `reloading_ok`.
    fn loops(&self, reloading_ok: bool) -> Result<(), String> {
        let s = self.lock();
        match s.phase {
            Phase::Starting => return Err("starting".into()),
            Phase::Stopping => return Err("stopping".into()),
            Phase::Reloading if reloading_ok => return Ok(()),
            Phase::Reloading => return Err("reloading the config".into()),
            Phase::Running => {}
        }
        if let Some(ended) = s.schedules.iter().position(AbortHandle::is_finished) {
            return Err(format!(
                "scheduler stopped: cron task {} of {} ended",
                ended + 1,
                s.schedules.len()
            ));
        }
        match &s.delivery {
            Some(d) if !d.is_finished() => Ok(()),
            _ => Err("delivery loop not running".into()),
        }
    }

    /// For the watchdog: the loops run (or a reload is under way) and the
    /// ledger answers a read within `within`.
    pub async fn alive(&self, within: Duration) -> Result<(), String> {
        self.loops(true)?;
        match tokio::time::timeout(within, self.ledger.run(|l| l.schema_version())).await {
            Ok(Ok(_)) => Ok(()),
            // Alive, and it must stay so: a restart by the watchdog would
            // open whatever is at the path now, and send every review again.
            Ok(Err(LedgerError::Moved { .. })) => Ok(()),
            // A database outage is not this process's fault, and a restart
            // cannot end it: the loops retry, `/healthz` says so, and the
            // next call connects again once the server is back.
            Ok(Err(e)) if e.error_type() == "unreachable" => Ok(()),
            Ok(Err(e)) => Err(format!("ledger: {e}")),
            Err(_) => Err(format!(
                "ledger did not answer within {}s",
                within.as_secs()
            )),
        }
    }

    /// For `/healthz`: the scheduler and the delivery loop run, the
    /// ledger's files are the ones it opened, its last storage failure was
    /// followed by a committed write, it takes a write lock, and Travtus
    /// has not refused our credentials. `Err` says why not, in one line;
    /// `Ok(Some(detail))` is healthy with something to say (a 429 pause).
    pub async fn check(&self) -> Result<Option<String>, String> {
        self.loops(false)?;
        // Anything but moved files is the probe's to report.
        if let Ok(Err(e @ LedgerError::Moved { .. })) =
            tokio::time::timeout(LEDGER_PROBE_TIMEOUT, self.ledger.verify()).await
        {
            return Err(e.to_string());
        }
        let probe = self.ledger.run(|l| l.probe_writable());
        let probe = tokio::time::timeout(LEDGER_PROBE_TIMEOUT, probe).await;
        if let Ok(Err(e)) = &probe
            && e.error_type() == "unreachable"
        {
            return Err(format!("database unreachable: {e}"));
        }
        if let Some(fault) = self.ledger.storage_fault() {
            return Err(format!("ledger write failed: {fault}"));
        }
        match probe {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("ledger not writable: {e}")),
            Err(_) => {
                return Err(format!(
                    "ledger not writable: no answer within {}s",
                    LEDGER_PROBE_TIMEOUT.as_secs()
                ));
            }
        }
        let push = self.push_detail();
        match self.pause_status() {
            Some(p @ PauseStatus::CredentialsRefused { .. }) => Err(p.to_string()),
            Some(p @ PauseStatus::RateLimited { .. }) => Ok(Some(match push {
                Some(push) => format!("{p}; {push}"),
                None => p.to_string(),
            })),
            // A broken push channel leaves the daemon healthy: the polls carry on.
            None => Ok(push),
        }
    }

    /// Sets the push channels of the generation now running.
    pub fn set_push(&self, push: Option<Arc<crate::push::run::PushStatus>>) {
        self.lock().push = push;
    }

    /// What is broken in push, when something is.
    fn push_detail(&self) -> Option<String> {
        self.lock().push.as_ref()?.detail()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few plain fields, valid even after a panic elsewhere.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;

    fn health() -> (tempfile::TempDir, Health) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
        (dir, Health::new(LedgerHandle::new(ledger)))
    }

    #[tokio::test]
    async fn healthy_only_while_running_with_a_live_delivery_task() {
        let (_dir, h) = health();
        assert_eq!(h.check().await, Err("starting".into()));
        let task = tokio::spawn(std::future::pending::<()>());
        h.running(task.abort_handle(), vec![], None);
        assert_eq!(h.check().await, Ok(None));
        assert_eq!(h.alive(Duration::from_secs(1)).await, Ok(()));

        h.set_phase(Phase::Reloading);
        assert_eq!(h.check().await, Err("reloading the config".into()));
        assert_eq!(
            h.alive(Duration::from_secs(1)).await,
            Ok(()),
            "a reload is alive"
        );
        h.set_phase(Phase::Running);

        task.abort();
        let _ = task.await;
        assert_eq!(h.check().await, Err("delivery loop not running".into()));
        assert!(h.alive(Duration::from_secs(1)).await.is_err());
    }

    #[tokio::test]
    async fn an_ended_cron_task_means_the_scheduler_stopped() {
        let (_dir, h) = health();
        let delivery = tokio::spawn(std::future::pending::<()>());
        let crons: Vec<_> = (0..2)
            .map(|_| tokio::spawn(std::future::pending::<()>()))
            .collect();
        h.running(
            delivery.abort_handle(),
            crons.iter().map(|c| c.abort_handle()).collect(),
            None,
        );
        assert_eq!(h.loops(false), Ok(()));
        let mut crons = crons.into_iter();
        let first = crons.next().unwrap();
        first.abort();
        let _ = first.await;
        assert_eq!(
            h.loops(false),
            Err("scheduler stopped: cron task 1 of 2 ended".into())
        );
    }

    #[tokio::test]
    async fn a_write_lock_held_elsewhere_makes_the_ledger_unwritable() {
        let (dir, h) = health();
        let task = tokio::spawn(std::future::pending::<()>());
        h.running(task.abort_handle(), vec![], None);
        let other = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let e = h.check().await.unwrap_err();
        assert!(e.starts_with("ledger not writable"), "{e}");
        assert!(e.contains("locked"), "{e}");
        // Reads still work: the watchdog keeps pinging.
        assert_eq!(h.alive(Duration::from_secs(2)).await, Ok(()));
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(h.check().await, Ok(None));
    }
}
