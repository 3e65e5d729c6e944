//! Monitoring (issue 13.5 and its ship list): what Prometheus, Grafana and
//! an operator see of the daemon: the ledger's review counts by status,
//! build and process metrics, reloads, every series present from the start,
//! one pause per credential incident with `/healthz` saying so, held
//! warnings aggregated; the alert rules (promtool) and the dashboard
//! checked against what the daemon really exports.

use crate::crash::Daemon;
use crate::helpers::TestEnv;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The config of `env` written as `name`, with `/metrics` on a free port
/// and its ledger at `ledger` (relative to the config's directory).
pub(crate) fn config_with_metrics(env: &TestEnv, name: &str, ledger: &str) -> PathBuf {
    let path = crate::crash::config_with_ledger(env, name, ledger);
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        format!("{text}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("write config");
    path
}

/// `http://ADDR` of the daemon's `/metrics` and `/healthz`, once logged.
pub(crate) async fn endpoint(daemon: &Daemon) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = daemon.log();
        if let Some(addr) = log
            .lines()
            .find(|l| l.contains("serving /metrics and /healthz"))
            .and_then(|l| l.split("listen=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
        {
            return format!("http://{addr}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no metrics address logged: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET `url`: status and body.
pub(crate) async fn get(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The value of the sample of `name` whose labels include every `labels` pair.
pub(crate) fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until `check` (an async predicate) holds, every 100 ms; `what` on timeout.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `/healthz` answers `status` with a body containing `needle`;
/// the last answer on timeout.
pub(crate) async fn health_becomes(base: &str, status: u16, needle: &str) -> String {
    let url = format!("{base}/healthz");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (got, body) = get(&url).await;
        if got == status && body.contains(needle) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz never answered {status} with {needle:?}; last: {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[allow(dead_code)]
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
