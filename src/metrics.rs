//! Prometheus metrics: their names, the one-line helpers the loops call on
//! each event (a delivery attempt is also logged here, with its ids), and the
//! daemon's HTTP endpoint (`[metrics] listen`) serving `/metrics` and
//! `/healthz`.
//!
//! Names follow `review_sync_<noun>_<unit>`, counters end in `_total`, and
//! labels are limited to `source`, `platform`, `outcome` and `error_type`,
//! each with a small, bounded set of values (configured sources, platforms,
//! outcome and error classes): never a review, location or group id.
//!
//! The recorder is process-wide and only installed by the daemon when
//! `[metrics]` is configured; without it every helper here is a no-op, so
//! `sync`, `demo` and the tests pay next to nothing.

use crate::health::Health;
use crate::ledger::{AttemptOutcome, AttemptRecord, LedgerError, LedgerHandle, PageCounts};
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

/// How long a scrape waits for the ledger's pending counts before serving
/// the previous values.
const SCRAPE_LEDGER_TIMEOUT: Duration = Duration::from_secs(3);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle). `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Some(h.clone());
    }
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    describe();
    Some(HANDLE.get_or_init(|| handle).clone())
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
}

/// A source's counters at zero, so dashboards see them before the first event.
pub fn register_source(source: &str) {
    for outcome in ["new", "edited", "unchanged"] {
        counter!(REVIEWS_FETCHED, "source" => source.to_owned(), "outcome" => outcome).increment(0);
    }
    counter!(RECORDS_QUARANTINED, "source" => source.to_owned()).increment(0);
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
/// the body) at debug, or at warn when the review ends held or rejected,
/// which needs a person (journal fields `PLATFORM`, `REVIEW_ID`, `OUTCOME`,
/// `HTTP_STATUS`, `ERROR_TYPE`).
pub fn attempt(record: &AttemptRecord) {
    let outcome = record.outcome.as_str();
    match record.outcome {
        AttemptOutcome::Held | AttemptOutcome::Rejected => tracing::warn!(
            platform = %record.platform,
            review_id = %record.review_id,
            outcome,
            http_status = record.http_status,
            error_type = record.error_type.as_deref(),
            "review not delivered: `review-sync ledger show` has the answer"
        ),
        _ => tracing::debug!(
            platform = %record.platform,
            review_id = %record.review_id,
            outcome,
            http_status = record.http_status,
            error_type = record.error_type.as_deref(),
            "delivery attempt"
        ),
    }
    counter!(
        DELIVERIES,
        "platform" => record.platform.clone(),
        "outcome" => record.outcome.as_str()
    )
    .increment(1);
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
    counter!(LEDGER_ERRORS, "error_type" => ledger_error_type(e)).increment(1);
}

/// Retention removed the text of `rows` reviews.
pub fn texts_purged(rows: u64) {
    counter!(TEXTS_PURGED).increment(rows);
}

/// The low-cardinality class of a ledger error.
pub fn ledger_error_type(e: &LedgerError) -> &'static str {
    use rusqlite::ErrorCode;
    match e {
        LedgerError::Sqlite {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        } => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => "busy",
            ErrorCode::ReadOnly | ErrorCode::PermissionDenied => "read_only",
            ErrorCode::DiskFull => "disk_full",
            ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => "io",
            _ => "other",
        },
        LedgerError::Io { .. } => "io",
        LedgerError::Moved { .. } => "moved",
        _ => "other",
    }
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
    let summary = s.ledger.run(|l| l.pending_summary());
    match tokio::time::timeout(SCRAPE_LEDGER_TIMEOUT, summary).await {
        Ok(Ok((pending, oldest))) => {
            gauge!(PENDING).set(pending as f64);
            let age = oldest.map_or(0.0, |t| {
                (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            gauge!(OLDEST_PENDING_AGE).set(age);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot read pending counts"),
        Err(_) => {
            tracing::warn!("metrics: the ledger did not answer; serving the last pending counts")
        }
    }
    let healthy = s.health.check().await.is_ok();
    gauge!(HEALTHY).set(if healthy { 1.0 } else { 0.0 });
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
