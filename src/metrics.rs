//! Prometheus metrics: their names, the one-line helpers the loops call on
//! each event (a delivery attempt is also logged here, with its ids), and the
//! daemon's HTTP endpoint (`[metrics] listen`) serving `/metrics` and
//! `/healthz`.
//!
//! Names follow `review_sync_<noun>_<unit>`, counters end in `_total`, and
//! labels are limited to `source`, `platform`, `outcome`, `error_type`,
//! `status`, `reason` and `scope` (a quota scope's label: the platform and
//! 8 hex digits of a salted digest of its key, or `facebook:page`; never a
//! key), push's `channel` (and `build_info`'s `version`, `commit`, `target`),
//! each with a small, bounded set of values (configured sources, platforms,
//! outcome and error classes): never a review, location or group id. The
//! process metrics (`process_*`) have the standard names.
//!
//! The recorder is process-wide and only installed by the daemon when
//! `[metrics]` is configured; without it every helper here is a no-op, so
//! `sync`, `demo` and the tests pay next to nothing.

use crate::health::Health;
use crate::ledger::{AttemptRecord, LedgerError, LedgerHandle, PageCounts};
use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Reviews read from a platform, by `source` and `outcome`
/// (`new`, `edited`, `unchanged`: what the ledger made of them).
pub const REVIEWS_FETCHED: &str = "review_sync_reviews_fetched_total";
/// Platform records that could not become reviews (quarantined), by `source`.
pub const RECORDS_QUARANTINED: &str = "review_sync_records_quarantined_total";
/// Delivery attempts by `platform` and `outcome` (`delivered`, `retry`,
/// `held`, `rejected`).
pub const DELIVERIES: &str = "review_sync_deliveries_total";
/// Failed delivery attempts by `error_type` (the API's error type, or
/// `timeout`, `connection`, `http_<status>`, `token_unavailable`...).
pub const DELIVERY_ERRORS: &str = "review_sync_delivery_errors_total";
/// Reviews waiting for delivery (read from the ledger at each scrape).
pub const PENDING: &str = "review_sync_pending_reviews";
/// Age of the oldest pending review (0 when none), at each scrape.
pub const OLDEST_PENDING_AGE: &str = "review_sync_oldest_pending_age_seconds";
/// Location polls that failed, by `source` and `error_type`.
pub const POLL_ERRORS: &str = "review_sync_poll_errors_total";
/// Location polls, by `source` and `outcome` (`ok`, `error`).
pub const POLLS: &str = "review_sync_location_polls_total";
/// When a location of the source was last polled (Unix seconds), by `source`.
pub const LAST_POLL: &str = "review_sync_last_poll_timestamp_seconds";
/// Access tokens fetched, by `platform` (`travtus`, or a source's kind) and
/// `source` (absent for Travtus).
pub const TOKEN_REFRESHES: &str = "review_sync_token_refreshes_total";
/// Ledger operations of the daemon's loops that failed, by `error_type`
/// (`busy`, `read_only`, `disk_full`, `io`, `moved`, `other`).
pub const LEDGER_ERRORS: &str = "review_sync_ledger_errors_total";
/// Reviews whose text retention removed.
pub const TEXTS_PURGED: &str = "review_sync_review_texts_purged_total";
/// 1 while `/healthz` would answer 200, else 0 (at each scrape).
pub const HEALTHY: &str = "review_sync_healthy";
/// Reviews in the ledger by `status` (`pending`, `held`, `rejected`), read
/// at each scrape: held and rejected ones need a person.
pub const LEDGER_REVIEWS: &str = "review_sync_ledger_reviews";
/// Records in the ledger's quarantine, read at each scrape.
pub const LEDGER_QUARANTINED: &str = "review_sync_ledger_quarantined_records";
/// Always 1, labelled `version`, `commit` and `target`.
pub const BUILD_INFO: &str = "review_sync_build_info";
/// Config reloads (SIGHUP) by `outcome` (`success`, `failure`).
pub const CONFIG_RELOADS: &str = "review_sync_config_reloads_total";
/// 1 when the last reload was applied (or none was asked for), 0 when it
/// was refused and the old config runs on.
pub const CONFIG_LAST_RELOAD_OK: &str = "review_sync_config_last_reload_successful";
/// 1 while deliveries are paused, by `reason` (`credentials_refused`,
/// `rate_limited`), at each scrape.
pub const DELIVERIES_PAUSED: &str = "review_sync_deliveries_paused";
/// The interval of a source's (incremental) schedule, by `source`: the
/// longest gap between its next fire times, for "not polled for 3
/// intervals" alerts.
pub const SOURCE_SCHEDULE_INTERVAL: &str = "review_sync_source_schedule_interval_seconds";

/// Seconds platform requests waited for the budget of their quota scope,
/// by `source` and `scope` (registered at zero per source at start;
/// counted by `crate::quota`).
pub const BUDGET_WAIT_SECONDS: &str = crate::quota::waits::WAIT_SECONDS;

/// The process metrics (metrics-process, collected at each scrape), with
/// the names every Prometheus client library uses.
pub const PROCESS_METRICS: [&str; 8] = [
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// Every metric name `/metrics` serves, each present from the start (a
/// test scrapes a fresh daemon for them, and the Grafana dashboard may
/// only query these).
pub const METRIC_NAMES: [&str; 29] = [
    REVIEWS_FETCHED,
    RECORDS_QUARANTINED,
    DELIVERIES,
    DELIVERY_ERRORS,
    PENDING,
    OLDEST_PENDING_AGE,
    POLL_ERRORS,
    POLLS,
    LAST_POLL,
    TOKEN_REFRESHES,
    LEDGER_ERRORS,
    TEXTS_PURGED,
    HEALTHY,
    LEDGER_REVIEWS,
    LEDGER_QUARANTINED,
    BUILD_INFO,
    CONFIG_RELOADS,
    CONFIG_LAST_RELOAD_OK,
    DELIVERIES_PAUSED,
    SOURCE_SCHEDULE_INTERVAL,
    BUDGET_WAIT_SECONDS,
    PROCESS_METRICS[0],
    PROCESS_METRICS[1],
    PROCESS_METRICS[2],
    PROCESS_METRICS[3],
    PROCESS_METRICS[4],
    PROCESS_METRICS[5],
    PROCESS_METRICS[6],
    PROCESS_METRICS[7],
];

/// The error classes of a location poll registered at zero per source
/// (`crate::platforms::PlatformError::error_type`, and `ledger`); others
/// appear when first counted.
const POLL_ERROR_TYPES: [&str; 10] = [
    "needs_consent",
    "unauthorized",
    "not_found",
    "http",
    "transport",
    "invalid_response",
    "quota_exhausted",
    "deprecated",
    "io",
    "ledger",
];

/// The delivery outcomes.
const DELIVERY_OUTCOMES: [&str; 4] = ["delivered", "retry", "held", "rejected"];

/// Why deliveries can be paused.
const PAUSE_REASONS: [&str; 2] = ["credentials_refused", "rate_limited"];

/// How long a scrape waits for the ledger's pending counts before serving
/// the previous values.
const SCRAPE_LEDGER_TIMEOUT: Duration = Duration::from_secs(3);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// `[ledger] instance`, the `instance` label of every series (see
/// [`set_instance`]).
static INSTANCE: OnceLock<String> = OnceLock::new();

/// Labels every series with `instance` = `name` (`[ledger] instance`), so
/// the daemons sharing one ledger tell their metrics apart. Call it before
/// [`install`]; the first name stays (a reload does not change it).
pub fn set_instance(name: &str) {
    let _ = INSTANCE.set(name.to_owned());
}

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle). `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Some(h.clone());
    }
    let mut builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(crate::push::metrics::LATENCY.to_owned()),
            &crate::push::metrics::LATENCY_BUCKETS,
        )
        .ok()?;
    if let Some(name) = INSTANCE.get() {
        builder = builder.add_global_label("instance", name);
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    describe();
    register_process();
    Some(HANDLE.get_or_init(|| handle).clone())
}

/// The series of the whole process at their start values, so that every
/// one exists from the first scrape (an alert on `increase()` or on a
/// missing series can only fire on a series that exists).
fn register_process() {
    gauge!(
        BUILD_INFO,
        "version" => crate::build::VERSION,
        "commit" => crate::build::COMMIT,
        "target" => crate::build::TARGET
    )
    .set(1.0);
    for outcome in ["success", "failure"] {
        counter!(CONFIG_RELOADS, "outcome" => outcome).increment(0);
    }
    gauge!(CONFIG_LAST_RELOAD_OK).set(1.0);
    for error_type in crate::ledger::ERROR_TYPES {
        counter!(LEDGER_ERRORS, "error_type" => error_type).increment(0);
    }
    for error_type in ["token_refused", "token_unavailable"] {
        counter!(DELIVERY_ERRORS, "error_type" => error_type).increment(0);
    }
    counter!(TOKEN_REFRESHES, "platform" => "travtus").increment(0);
    counter!(TEXTS_PURGED).increment(0);
    for reason in PAUSE_REASONS {
        gauge!(DELIVERIES_PAUSED, "reason" => reason).set(0.0);
    }
    for status in ["pending", "held", "rejected"] {
        gauge!(LEDGER_REVIEWS, "status" => status).set(0.0);
    }
    gauge!(LEDGER_QUARANTINED).set(0.0);
    gauge!(PENDING).set(0.0);
    gauge!(OLDEST_PENDING_AGE).set(0.0);
    gauge!(HEALTHY).set(0.0);
    process_collector().describe();
    collect_process();
}

/// `process_start_time_seconds` where the collector cannot tell it: it adds
/// the process's start (ticks since boot) to the boot time in `/proc/stat`,
/// which the unit's `ProcSubset=pid` hides. The time of the first collection
/// (when the daemon installs its recorder, in its first moments) stands in.
static START_FALLBACK: OnceLock<Option<f64>> = OnceLock::new();

/// The process metrics, now.
fn collect_process() {
    process_collector().collect();
    let fallback = START_FALLBACK.get_or_init(|| {
        metrics_process::collector::collect()
            .start_time_seconds
            .is_none()
            .then(|| chrono::Utc::now().timestamp_millis() as f64 / 1000.0)
    });
    if let Some(start) = fallback {
        gauge!("process_start_time_seconds").set(*start);
    }
}

/// The process metrics collector (one per process).
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

fn describe() {
    describe_counter!(
        REVIEWS_FETCHED,
        "Reviews read from platforms, by what the ledger made of them"
    );
    describe_counter!(RECORDS_QUARANTINED, "Platform records quarantined");
    describe_counter!(DELIVERIES, "Delivery attempts to Travtus by outcome");
    describe_counter!(DELIVERY_ERRORS, "Failed delivery attempts by error type");
    describe_gauge!(PENDING, "Reviews waiting for delivery");
    describe_gauge!(
        OLDEST_PENDING_AGE,
        "Age of the oldest pending review in seconds"
    );
    describe_counter!(POLL_ERRORS, "Location polls that failed, by error type");
    describe_counter!(POLLS, "Location polls by outcome");
    describe_gauge!(LAST_POLL, "Unix time of the last location poll of a source");
    describe_counter!(TOKEN_REFRESHES, "Access tokens fetched");
    describe_counter!(LEDGER_ERRORS, "Ledger operations of the daemon that failed");
    describe_counter!(TEXTS_PURGED, "Reviews whose text retention removed");
    describe_gauge!(HEALTHY, "1 while /healthz answers 200");
    describe_gauge!(
        LEDGER_REVIEWS,
        "Reviews in the ledger by status (pending, held, rejected)"
    );
    describe_gauge!(LEDGER_QUARANTINED, "Records in the ledger's quarantine");
    describe_gauge!(
        BUILD_INFO,
        "Always 1: the version, commit and target of the binary"
    );
    describe_counter!(CONFIG_RELOADS, "Config reloads by outcome");
    describe_counter!(
        BUDGET_WAIT_SECONDS,
        "Seconds platform requests waited for their quota scope's budget"
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_OK,
        "1 when the last config reload was applied, 0 when it was refused"
    );
    describe_gauge!(
        DELIVERIES_PAUSED,
        "1 while deliveries are paused, by reason"
    );
    describe_gauge!(
        SOURCE_SCHEDULE_INTERVAL,
        "The longest gap between a source's scheduled polls, in seconds"
    );
}

/// A source's series at zero, so dashboards and alerts see them before the
/// first event: `platform` is where its reviews come from (the `platform`
/// label of deliveries). Its last poll reads 0 until it is first polled.
pub fn register_source(source: &str, platform: &str) {
    let src = || source.to_owned();
    for outcome in ["new", "edited", "unchanged"] {
        counter!(REVIEWS_FETCHED, "source" => src(), "outcome" => outcome).increment(0);
    }
    counter!(RECORDS_QUARANTINED, "source" => src()).increment(0);
    for outcome in ["ok", "error"] {
        counter!(POLLS, "source" => src(), "outcome" => outcome).increment(0);
    }
    for error_type in POLL_ERROR_TYPES {
        counter!(POLL_ERRORS, "source" => src(), "error_type" => error_type).increment(0);
    }
    for outcome in DELIVERY_OUTCOMES {
        counter!(DELIVERIES, "platform" => platform.to_owned(), "outcome" => outcome).increment(0);
    }
    // A gauge registered without a value would not be rendered; 0 says
    // "not polled since the start" without inventing a time.
    let last = gauge!(LAST_POLL, "source" => src());
    last.increment(0.0);
}

/// The interval of `source`'s incremental schedule (see
/// [`SOURCE_SCHEDULE_INTERVAL`]).
pub fn source_scheduled(source: &str, interval: Duration) {
    gauge!(SOURCE_SCHEDULE_INTERVAL, "source" => source.to_owned()).set(interval.as_secs_f64());
}

/// A config reload (SIGHUP) was applied (`true`) or refused.
pub fn config_reloaded(applied: bool) {
    let outcome = if applied { "success" } else { "failure" };
    counter!(CONFIG_RELOADS, "outcome" => outcome).increment(1);
    gauge!(CONFIG_LAST_RELOAD_OK).set(if applied { 1.0 } else { 0.0 });
}

/// A location poll ended (successfully or not) having recorded `counts`.
pub fn location_polled(source: &str, counts: &PageCounts, failed: bool) {
    let src = || source.to_owned();
    for (outcome, n) in [
        ("new", counts.new),
        ("edited", counts.edited),
        ("unchanged", counts.unchanged),
    ] {
        counter!(REVIEWS_FETCHED, "source" => src(), "outcome" => outcome).increment(n);
    }
    counter!(RECORDS_QUARANTINED, "source" => src()).increment(counts.quarantined);
    let outcome = if failed { "error" } else { "ok" };
    counter!(POLLS, "source" => src(), "outcome" => outcome).increment(1);
    gauge!(LAST_POLL, "source" => src()).set(chrono::Utc::now().timestamp() as f64);
}

/// A location poll failed with `error_type` ([`crate::platforms::PlatformError::error_type`], or `ledger`).
pub fn poll_failed(source: &str, error_type: &'static str) {
    counter!(POLL_ERRORS, "source" => source.to_owned(), "error_type" => error_type).increment(1);
}

/// A delivery attempt was made: counted, and logged with its ids (never
/// the body) at debug (journal fields `PLATFORM`, `REVIEW_ID`, `OUTCOME`,
/// `HTTP_STATUS`, `ERROR_TYPE`). Held and rejected reviews, which need a
/// person, are also warned about, aggregated (`crate::held_log`).
pub fn attempt(record: &AttemptRecord) {
    let outcome = record.outcome.as_str();
    tracing::debug!(
        platform = %record.platform,
        review_id = %record.review_id,
        outcome,
        http_status = record.http_status,
        error_type = record.error_type.as_deref(),
        "delivery attempt"
    );
    counter!(
        DELIVERIES,
        "platform" => record.platform.clone(),
        "outcome" => record.outcome.as_str()
    )
    .increment(1);
    if matches!(
        record.outcome,
        crate::ledger::AttemptOutcome::Delivered { .. }
    ) {
        crate::push::metrics::delivered(&record.platform, &record.review_id);
    }
    if let Some(error_type) = &record.error_type {
        counter!(DELIVERY_ERRORS, "error_type" => error_type.clone()).increment(1);
    }
}

/// An access token was fetched for `platform` (and `source`, for a platform's
/// own credentials).
pub fn token_fetched(platform: &'static str, source: Option<&str>) {
    match source {
        Some(s) => {
            counter!(TOKEN_REFRESHES, "platform" => platform, "source" => s.to_owned()).increment(1)
        }
        None => counter!(TOKEN_REFRESHES, "platform" => platform).increment(1),
    }
}

/// A ledger operation of one of the daemon's loops failed.
pub fn ledger_error(e: &LedgerError) {
    counter!(LEDGER_ERRORS, "error_type" => e.error_type()).increment(1);
}

/// Retention removed the text of `rows` reviews.
pub fn texts_purged(rows: u64) {
    counter!(TEXTS_PURGED).increment(rows);
}

/// The running `/metrics` + `/healthz` endpoint.
pub struct Server {
    /// The address it listens on (the real port when configured with port 0).
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

struct ServerState {
    prometheus: PrometheusHandle,
    health: Health,
    ledger: LedgerHandle,
}

impl Server {
    /// Listens on `listen` and serves until [`Server::stop`].
    pub async fn start(
        listen: SocketAddr,
        health: Health,
        ledger: LedgerHandle,
    ) -> Result<Server, String> {
        let prometheus =
            install().ok_or("another metrics recorder is already installed in this process")?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("[metrics] cannot listen on {listen}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("[metrics] {listen}: {e}"))?;
        let state = Arc::new(ServerState {
            prometheus,
            health,
            ledger,
        });
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(scrape))
            .route("/healthz", axum::routing::get(healthz))
            .with_state(state);
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
        tracing::info!(listen = %addr, "serving /metrics and /healthz");
        Ok(Server { addr, stop, task })
    }

    /// Stops listening and waits (briefly) for requests in progress.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn scrape(
    axum::extract::State(s): axum::extract::State<Arc<ServerState>>,
) -> impl axum::response::IntoResponse {
    let summary = s
        .ledger
        .run(|l| Ok((l.pending_summary()?, l.status_counts()?)));
    match tokio::time::timeout(SCRAPE_LEDGER_TIMEOUT, summary).await {
        Ok(Ok(((pending, oldest), counts))) => {
            gauge!(PENDING).set(pending as f64);
            let age = oldest.map_or(0.0, |t| {
                (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            gauge!(OLDEST_PENDING_AGE).set(age);
            for (status, n) in [
                ("pending", counts.pending),
                ("held", counts.held),
                ("rejected", counts.rejected),
            ] {
                gauge!(LEDGER_REVIEWS, "status" => status).set(n as f64);
            }
            gauge!(LEDGER_QUARANTINED).set(counts.quarantined as f64);
        }
        // Said once, when the files went (see `LedgerHandle`); /healthz says why.
        Ok(Err(LedgerError::Moved { .. })) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot read pending counts"),
        Err(_) => {
            tracing::warn!("metrics: the ledger did not answer; serving the last pending counts")
        }
    }
    let healthy = s.health.check().await.is_ok();
    gauge!(HEALTHY).set(if healthy { 1.0 } else { 0.0 });
    let paused = s.health.pause_status();
    for reason in PAUSE_REASONS {
        let on = paused.as_ref().is_some_and(|p| p.reason() == reason);
        gauge!(DELIVERIES_PAUSED, "reason" => reason).set(if on { 1.0 } else { 0.0 });
    }
    collect_process();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.prometheus.render(),
    )
}

async fn healthz(
    axum::extract::State(s): axum::extract::State<Arc<ServerState>>,
) -> (axum::http::StatusCode, String) {
    match s.health.check().await {
        Ok(None) => (axum::http::StatusCode::OK, "ok\n".to_owned()),
        Ok(Some(detail)) => (axum::http::StatusCode::OK, format!("ok: {detail}\n")),
        Err(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        ),
    }
}
