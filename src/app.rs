//! The assembled program for one configuration: the ledger, the shared HTTP
//! pool, the delivery worker and one poller per source. `run`, `sync`,
//! `demo` and the tests all start from here.

use crate::config::Config;
use crate::deliver::Deliverer;
use crate::ledger::{Ledger, LedgerError, LedgerHandle};
use crate::poll::{PassKind, PassProgress, PassStop, SourcePoller, SourceReport};
use crate::quota::Quotas;
use crate::travtus::TravtusClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why the program could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The ledger could not be opened or migrated.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The HTTP client could not be built (TLS roots unavailable).
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    /// `--source` named a source that is not configured.
    #[error("no source named {0:?} in the config")]
    UnknownSource(String),
}

/// Everything needed to poll and deliver for one configuration.
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The ledger.
    pub ledger: LedgerHandle,
    /// The delivery worker.
    pub deliverer: Arc<Deliverer>,
    /// One poller per configured source, in config order.
    pub pollers: Vec<Arc<SourcePoller>>,
    /// What the passes of [`App::sync`] have done so far (its progress line).
    pub progress: Arc<PassProgress>,
    /// The request budgets of every quota scope, shared by the sources of
    /// a scope; the daemon hands the same ones to the next generation on a
    /// reload, so daily counts survive it.
    pub quotas: Arc<Quotas>,
}

/// What `sync` did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// One report per source polled.
    pub sources: Vec<SourceReport>,
    /// Reviews delivered during this sync.
    pub delivered: u64,
    /// Rows of the synced sources still `pending` at the end.
    pub pending: u64,
    /// Rows of the synced sources `held`.
    pub held: u64,
    /// Rows of the synced sources `rejected`.
    pub rejected: u64,
    /// Set when the sync was cut short (`--wait` ran out, or Ctrl-C)
    /// before it was done: why. What it read is recorded, what it did not
    /// deliver stays pending.
    pub stopped: Option<String>,
}

impl SyncReport {
    /// Whether everything of the synced sources is delivered and every
    /// location was read (every discovered account listed, too).
    pub fn all_delivered(&self) -> bool {
        self.pending == 0
            && self.stopped.is_none()
            && self.held == 0
            && self.rejected == 0
            && self
                .sources
                .iter()
                .all(|s| s.failed() == 0 && s.discovery_failed() == 0 && s.needs_consent.is_none())
    }
}

/// The process-wide HTTP connection pool. TLS verification is always on: no
/// config key turns it off, so it cannot be disabled by accident. It follows
/// no redirect by itself: every caller applies `crate::redirect`'s rules.
pub fn http_client() -> Result<reqwest::Client, AppError> {
    reqwest::Client::builder()
        .user_agent(concat!("review-sync/", env!("CARGO_PKG_VERSION")))
        .redirect(crate::redirect::policy())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| AppError::Http(e.to_string()))
}

impl App {
    /// Opens the ledger of `config` and builds everything, with new
    /// request budgets.
    pub async fn open(config: Config) -> Result<App, AppError> {
        let path = config.ledger.path.clone();
        let ledger = tokio::task::spawn_blocking(move || Ledger::open(&path))
            .await
            .map_err(|e| LedgerError::Task(e.to_string()))??;
        App::with_ledger(config, LedgerHandle::new(ledger), Arc::new(Quotas::new()))
    }

    /// Builds everything around an already open ledger and the process's
    /// request budgets (a reload keeps both).
    pub fn with_ledger(
        config: Config,
        ledger: LedgerHandle,
        quotas: Arc<Quotas>,
    ) -> Result<App, AppError> {
        let http = http_client()?;
        let travtus = &config.travtus;
        let deliverer = Arc::new(Deliverer::new(
            ledger.clone(),
            TravtusClient::new(http.clone(), &travtus.base_url, travtus.timeout),
            crate::travtus::auth::token_cache(travtus, http.clone()),
            travtus.concurrency,
        ));
        let pollers = config
            .sources
            .iter()
            .map(|s| {
                Arc::new(SourcePoller::new(
                    s.clone(),
                    ledger.clone(),
                    http.clone(),
                    &quotas,
                ))
            })
            .collect();
        Ok(App {
            config,
            ledger,
            deliverer,
            pollers,
            progress: Arc::new(PassProgress::default()),
            quotas,
        })
    }

    /// The pollers named in `names` (all when empty).
    pub fn select(&self, names: &[String]) -> Result<Vec<Arc<SourcePoller>>, AppError> {
        if names.is_empty() {
            return Ok(self.pollers.clone());
        }
        names
            .iter()
            .map(|n| {
                self.pollers
                    .iter()
                    .find(|p| p.name() == n)
                    .cloned()
                    .ok_or_else(|| AppError::UnknownSource(n.clone()))
            })
            .collect()
    }

    /// Polls every location of `pollers` once (sources one after another, so
    /// a terminal's progress reads in order).
    pub async fn poll(&self, pollers: &[Arc<SourcePoller>]) -> Vec<SourceReport> {
        self.poll_pass(pollers, PassKind::Incremental).await
    }

    /// [`App::poll`] with a pass of `kind` (a reconciliation pass falls
    /// back to incremental for sources that cannot reconcile).
    pub async fn poll_pass(
        &self,
        pollers: &[Arc<SourcePoller>],
        kind: PassKind,
    ) -> Vec<SourceReport> {
        self.poll_until(pollers, kind, &PassStop::never()).await
    }

    /// [`App::poll_pass`] that `stop` can cut short.
    async fn poll_until(
        &self,
        pollers: &[Arc<SourcePoller>],
        kind: PassKind,
        stop: &PassStop,
    ) -> Vec<SourceReport> {
        let mut reports = Vec::with_capacity(pollers.len());
        for p in pollers {
            reports.push(p.pass_with(kind, stop, &self.progress).await);
            self.deliverer.wake();
        }
        reports
    }

    /// One `sync`: polls `names` (all when empty) while delivering what
    /// each page records, as `run` does, then delivers what is still due,
    /// waiting out retries. `max_wait` bounds all of it, polling included:
    /// when it runs out the sync stops cleanly (pages read are recorded,
    /// answers in flight are recorded, the rest stays pending) and the
    /// report says so ([`SyncReport::stopped`]). So does `cancel`.
    pub async fn sync(
        &self,
        names: &[String],
        max_wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<SyncReport, AppError> {
        self.sync_pass(names, PassKind::Incremental, max_wait, cancel)
            .await
    }

    /// [`App::sync`] with a pass of `kind`: `sync --reconcile` is a
    /// [`PassKind::Reconcile`] pass.
    pub async fn sync_pass(
        &self,
        names: &[String],
        kind: PassKind,
        max_wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<SyncReport, AppError> {
        let pollers = self.select(names)?;
        let delivered_before = self.delivered_count();
        // A wait too long for the clock is no limit at all.
        let deadline = Instant::now().checked_add(max_wait);
        // Stops the poll and delivery both, at the deadline or on `cancel`.
        let stop = cancel.child_token();
        let timer = deadline.map(|at| {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                stop.cancel();
            })
        });
        let pass_stop = PassStop {
            cancel: stop.clone(),
            deadline: deadline.map(|at| (at, max_wait)),
        };
        let far = Instant::now() + crate::clock::FAR_FUTURE;
        let delivered = self
            .deliverer
            .deliver_while(
                self.poll_until(&pollers, kind, &pass_stop),
                deadline.unwrap_or(far),
                &stop,
            )
            .await;
        if let Some(timer) = timer {
            timer.abort();
        }
        let sources = delivered?;
        let stats = self.ledger.run(|l| l.stats()).await?;
        let mut report = SyncReport {
            sources,
            delivered: self.delivered_count() - delivered_before,
            ..SyncReport::default()
        };
        for (source, status, count) in &stats.by_source {
            if !pollers.iter().any(|p| p.name() == source) {
                continue;
            }
            match status.as_str() {
                "pending" => report.pending += count,
                "held" => report.held += count,
                "rejected" => report.rejected += count,
                _ => {}
            }
        }
        // Cut short: a location was not read to the end, or reviews were
        // left pending when the limit came (a retry due after it, say).
        let cut = report.sources.iter().any(|s| s.stopped.is_some()) || report.pending > 0;
        report.stopped = pass_stop.reason().filter(|_| cut);
        Ok(report)
    }

    fn delivered_count(&self) -> u64 {
        self.deliverer
            .counters
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
