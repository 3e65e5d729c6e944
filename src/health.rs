//! The daemon's health, as systemd's watchdog and `/healthz` see it.
//!
//! Two questions, answered from the same state:
//! - **alive** (the watchdog ping): the scheduler ticks, the delivery loop
//!   has not ended, and the ledger answers a read. A wedged process stops
//!   pinging and systemd restarts it.
//! - **healthy** (`/healthz` 200): the same loops, and the ledger takes a
//!   write lock. A ledger that cannot be written makes the daemon useless
//!   but restarting it would not help, so it is reported, not fatal.
//!
//! How each loop is watched: the scheduler runs a heartbeat job every
//! second ([`HEARTBEAT_SCHEDULE`]) that stamps [`Health::beat`]; a stamp
//! older than [`SCHEDULER_STALE`] means the scheduler stopped ticking. The
//! delivery loop is a task whose end (return or panic) is visible through its
//! `AbortHandle`; it sleeps up to minutes when idle or paused, so a heartbeat
//! would not tell a sleeping loop from a dead one.

use crate::ledger::LedgerHandle;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The heartbeat job's cron schedule: every second.
pub const HEARTBEAT_SCHEDULE: &str = "* * * * * *";

/// A scheduler heartbeat older than this means the scheduler stopped: ten
/// missed ticks, far beyond any scheduling jitter of a busy machine.
pub const SCHEDULER_STALE: Duration = Duration::from_secs(10);

/// How long `/healthz` waits for the ledger before calling it unhealthy
/// (the write probe itself gives up after 1 s of lock contention; the rest is
/// room for a ledger call already in progress).
pub const LEDGER_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

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

#[derive(Debug)]
struct State {
    phase: Phase,
    // The last heartbeat of the current generation's scheduler (set to the
    // generation's start, so a fresh one is not stale before its first tick).
    beat: Instant,
    // The current generation's delivery task.
    delivery: Option<AbortHandle>,
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
                beat: Instant::now(),
                delivery: None,
            })),
            ledger,
        }
    }

    /// A new generation runs: its delivery task is `delivery`.
    pub fn running(&self, delivery: AbortHandle) {
        let mut s = self.lock();
        s.phase = Phase::Running;
        s.beat = Instant::now();
        s.delivery = Some(delivery);
    }

    /// The daemon moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// A scheduler heartbeat.
    pub fn beat(&self) {
        self.lock().beat = Instant::now();
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
        let since = s.beat.elapsed();
        if since > SCHEDULER_STALE {
            return Err(format!(
                "scheduler stalled: no tick for {}s",
                since.as_secs()
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
            Ok(Err(e)) => Err(format!("ledger: {e}")),
            Err(_) => Err(format!(
                "ledger did not answer within {}s",
                within.as_secs()
            )),
        }
    }

    /// For `/healthz`: the scheduler and the delivery loop run, and the
    /// ledger is writable. `Err` says why not, in one line.
    pub async fn check(&self) -> Result<(), String> {
        self.loops(false)?;
        let probe = self.ledger.run(|l| l.probe_writable());
        match tokio::time::timeout(LEDGER_PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("ledger not writable: {e}")),
            Err(_) => Err(format!(
                "ledger not writable: no answer within {}s",
                LEDGER_PROBE_TIMEOUT.as_secs()
            )),
        }
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
        h.running(task.abort_handle());
        assert_eq!(h.check().await, Ok(()));
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
    async fn a_scheduler_without_ticks_is_stalled() {
        let (_dir, h) = health();
        let task = tokio::spawn(std::future::pending::<()>());
        h.running(task.abort_handle());
        let long_ago = Instant::now().checked_sub(SCHEDULER_STALE + Duration::from_secs(1));
        h.lock().beat = long_ago.expect("the clock runs longer than 11 s");
        let e = h.loops(false).unwrap_err();
        assert!(e.starts_with("scheduler stalled"), "{e}");
        h.beat();
        assert_eq!(h.loops(false), Ok(()));
    }

    #[tokio::test]
    async fn a_write_lock_held_elsewhere_makes_the_ledger_unwritable() {
        let (dir, h) = health();
        let task = tokio::spawn(std::future::pending::<()>());
        h.running(task.abort_handle());
        let other = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let e = h.check().await.unwrap_err();
        assert!(e.starts_with("ledger not writable"), "{e}");
        assert!(e.contains("locked"), "{e}");
        // Reads still work: the watchdog keeps pinging.
        assert_eq!(h.alive(Duration::from_secs(2)).await, Ok(()));
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(h.check().await, Ok(()));
    }
}
