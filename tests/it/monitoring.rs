//! Monitoring (issue 13.5 and its ship list): what Prometheus, Grafana and
//! an operator see of the daemon: the ledger's review counts by status,
//! build and process metrics, reloads, every series present from the start,
//! one pause per credential incident with `/healthz` saying so, held
//! warnings aggregated; the alert rules (promtool) and the dashboard
//! checked against what the daemon really exports.

use crate::crash::Daemon;
use crate::helpers::{TestEnv, seed, spawn_env, text, wait_until};
use review_sync::metrics::METRIC_NAMES;
use std::collections::BTreeSet;
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

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Sends `signal` (`HUP`, `TERM`) to the daemon.
fn signal(daemon: &Daemon, signal: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &daemon.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// The metric names of a scrape (sample lines, labels and suffixes kept apart).
fn names_in(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The log lines of `log` containing `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// A fresh daemon exports every metric of the registry, and nothing else,
/// before it has polled or delivered anything: alerts on staleness or on
/// `increase()` need the series to exist from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_daemon_exports_every_registered_series_and_counts_reloads() {
    let env = spawn_env(seed(2)).await;
    // A schedule that never fires while the test runs: nothing happens but
    // the start.
    let text = std::fs::read_to_string(&env.config_path)
        .expect("config")
        .replace("schedule = \"*/1 * * * * *\"", "schedule = \"0 0 3 1 1 *\"");
    std::fs::write(&env.config_path, text).expect("write");
    let config = config_with_metrics(&env, "fresh.toml", "ledger.db");
    let daemon = Daemon::start(&config, &env.dir.path().join("fresh.log"));
    let base = endpoint(&daemon).await;
    let (status, m) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    let registry: BTreeSet<String> = METRIC_NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(names_in(&m), registry, "{m}");
    assert_eq!(
        env.sb.google().list_requests_total(),
        0,
        "nothing polled yet"
    );

    let source = [("source", "acme-google")];
    assert_eq!(
        sample(&m, "review_sync_last_poll_timestamp_seconds", &source),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "review_sync_source_schedule_interval_seconds", &source),
        Some(366.0 * 86400.0),
        "a yearly schedule: its longest gap, over a leap year"
    );
    for outcome in ["delivered", "retry", "held", "rejected"] {
        let labels = [("platform", "google"), ("outcome", outcome)];
        assert_eq!(
            sample(&m, "review_sync_deliveries_total", &labels),
            Some(0.0),
            "{outcome}"
        );
    }
    for status in ["pending", "held", "rejected"] {
        assert_eq!(
            sample(&m, "review_sync_ledger_reviews", &[("status", status)]),
            Some(0.0)
        );
    }
    for reason in ["credentials_refused", "rate_limited"] {
        assert_eq!(
            sample(&m, "review_sync_deliveries_paused", &[("reason", reason)]),
            Some(0.0)
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--version")
        .output()
        .expect("--version");
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("{version}"));
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("commit", commit),
        ("target", "linux"),
    ];
    let line = m
        .lines()
        .find(|l| l.starts_with("review_sync_build_info{"))
        .unwrap_or_else(|| panic!("{m}"));
    for (k, v) in build {
        assert!(
            line.contains(&format!("{k}=\"")) && line.contains(v),
            "{k}: {line}"
        );
    }
    assert!(line.ends_with(" 1"), "{line}");
    let started = sample(&m, "process_start_time_seconds", &[]).expect("start time");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(
        (now - 600.0..=now + 1.0).contains(&started),
        "{started} vs {now}"
    );
    assert!(
        sample(&m, "process_resident_memory_bytes", &[]) > Some(1e6),
        "{m}"
    );
    assert!(sample(&m, "process_open_fds", &[]) > Some(3.0), "{m}");
    let cpu = sample(&m, "process_cpu_seconds_total", &[]).expect("cpu");
    assert!(cpu >= 0.0);
    for outcome in ["success", "failure"] {
        assert_eq!(
            sample(
                &m,
                "review_sync_config_reloads_total",
                &[("outcome", outcome)]
            ),
            Some(0.0)
        );
    }
    assert_eq!(
        sample(&m, "review_sync_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // A refused reload, then an applied one.
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("{good}\nnot toml [")).expect("break");
    signal(&daemon, "HUP");
    let url = format!("{base}/metrics");
    eventually("the refused reload counted", || async {
        let (_, m) = get(&url).await;
        sample(
            &m,
            "review_sync_config_reloads_total",
            &[("outcome", "failure")],
        ) == Some(1.0)
            && sample(&m, "review_sync_config_last_reload_successful", &[]) == Some(0.0)
    })
    .await;
    std::fs::write(&config, &good).expect("fix");
    signal(&daemon, "HUP");
    eventually("the applied reload counted", || async {
        let (_, m) = get(&url).await;
        sample(
            &m,
            "review_sync_config_reloads_total",
            &[("outcome", "success")],
        ) == Some(1.0)
            && sample(&m, "review_sync_config_last_reload_successful", &[]) == Some(1.0)
    })
    .await;
    let (_, m) = get(&url).await;
    assert_eq!(names_in(&m), registry, "the same series after a reload");
    signal(&daemon, "TERM");
}

/// `--version` names the git commit and the target, and `completions`
/// prints scripts the shells accept.
#[tokio::test]
async fn version_names_commit_and_target_and_completions_are_valid() {
    let bin = env!("CARGO_BIN_EXE_review-sync");
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .expect("runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line = stdout.trim();
    assert!(
        line.starts_with(&format!(
            "review-sync {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{line}"
    );
    assert!(
        line.contains(", target x86_64-") || line.contains(", target aarch64-"),
        "{line}"
    );
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output();
    match git {
        Ok(g) if g.status.success() => {
            let head = String::from_utf8_lossy(&g.stdout).trim().to_owned();
            assert!(
                line.contains(&format!("(commit {head},")),
                "{line} vs HEAD {head}"
            );
        }
        _ => eprintln!("monitoring: no git checkout here; the commit is not compared"),
    }
    for (shell, check) in [("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")] {
        let out = std::process::Command::new(bin)
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            script.contains("ledger") && script.contains("completions"),
            "{shell}"
        );
        let file = match shell {
            "bash" => "review-sync.bash",
            "zsh" => "_review-sync",
            _ => "review-sync.fish",
        };
        let committed =
            std::fs::read_to_string(root().join("docs/completions").join(file)).expect("committed");
        assert_eq!(
            script, committed,
            "{shell}: docs/completions/{file} is what the binary prints"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file);
        std::fs::write(&path, &script).expect("write");
        match std::process::Command::new(shell)
            .arg(check)
            .arg(&path)
            .output()
        {
            Ok(o) => assert!(
                o.status.success(),
                "{shell} refuses the script: {}",
                text(&o).1
            ),
            Err(_) => eprintln!("monitoring: {shell} is not installed; its script is not parsed"),
        }
    }
}

/// Regression (issue 13.5): a location mapped to an unknown group showed
/// nowhere but a counter, and logged one warning per review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_mapping_shows_in_the_status_gauges_and_one_warning_per_group() {
    let env = spawn_env(seed(5)).await;
    let mut mapping: Vec<(String, String)> = env
        .sb
        .google()
        .locations()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                l.clone(),
                format!("group_external_ref = \"portfolio-{}\"", i % 10 + 1),
            )
        })
        .collect();
    mapping[0].1 = "group_external_ref = \"portfolio-typo\"".to_owned();
    env.write_config(&mapping, "");
    let config = config_with_metrics(&env, "typo.toml", "ledger.db");
    let daemon = Daemon::start(&config, &env.dir.path().join("typo.log"));
    let base = endpoint(&daemon).await;
    let url = format!("{base}/metrics");
    let typo_reviews = env.sb.google().reviews(&mapping[0].0).len();
    let others = env.google_review_count() - typo_reviews;
    wait_until("the other reviews delivered", WAIT, || {
        env.sb.travtus().message_count() >= others
    })
    .await;
    eventually("the held reviews in the gauges", || async {
        let (_, m) = get(&url).await;
        sample(&m, "review_sync_ledger_reviews", &[("status", "held")]) == Some(typo_reviews as f64)
            && sample(&m, "review_sync_ledger_reviews", &[("status", "pending")]) == Some(0.0)
    })
    .await;
    let (_, m) = get(&url).await;
    assert_eq!(
        sample(&m, "review_sync_ledger_reviews", &[("status", "rejected")]),
        Some(0.0)
    );
    assert_eq!(sample(&m, "review_sync_pending_reviews", &[]), Some(0.0));
    let deadline = tokio::time::Instant::now() + WAIT;
    while lines_with(&daemon.log(), "reviews not delivered").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = daemon.log();
    let warnings = lines_with(&log, "reviews not delivered");
    assert_eq!(
        warnings.len(),
        1,
        "one line for the group, not one per review: {warnings:#?}"
    );
    let line = warnings[0];
    assert!(line.contains("group_external_ref=portfolio-typo"), "{line}");
    assert!(line.contains(&format!("reviews={typo_reviews}")), "{line}");
    assert!(
        line.contains("outcome=\"held\"") || line.contains("outcome=held"),
        "{line}"
    );
    eprintln!("monitoring: held: {}", line.trim());
    // Restarting keeps the gauge (it is read from the ledger, not counted).
    signal(&daemon, "TERM");
    let mut daemon = daemon;
    daemon.wait(WAIT).await.expect("stops");
    let daemon = Daemon::start(&config, &env.dir.path().join("typo-2.log"));
    let base = endpoint(&daemon).await;
    let (_, m) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&m, "review_sync_ledger_reviews", &[("status", "held")]),
        Some(typo_reviews as f64),
        "{m}"
    );
    signal(&daemon, "TERM");
}

/// Regression (issue 13.5): with a wrong Travtus secret, each of the 4
/// workers stepped the pause up (5, 10, 20, 40 s within a millisecond), and
/// `/healthz` said ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_pause_once_per_incident_and_health_says_why() {
    let env = spawn_env(seed(5)).await;
    let secret = env.dir.path().join("travtus_secret");
    std::fs::write(&secret, "not-the-secret\n").expect("write");
    let config = config_with_metrics(&env, "secret.toml", "ledger.db");
    let daemon = Daemon::start(&config, &env.dir.path().join("secret.log"));
    let base = endpoint(&daemon).await;
    let url = format!("{base}/metrics");
    // Every worker's attempt refused (4 in flight at once, concurrency 4).
    eventually("4 refused attempts", || async {
        let (_, m) = get(&url).await;
        sample(
            &m,
            "review_sync_delivery_errors_total",
            &[("error_type", "token_refused")],
        ) >= Some(4.0)
    })
    .await;
    let log = daemon.log();
    let pauses = lines_with(&log, "all deliveries paused");
    assert_eq!(pauses.len(), 1, "one incident, one pause: {pauses:#?}");
    assert!(pauses[0].contains("pause_s=5"), "{}", pauses[0]);
    let body = health_becomes(&base, 503, "Travtus refused our credentials").await;
    assert!(body.contains("token_refused"), "{body}");
    eprintln!("monitoring: refused: /healthz: {}", body.trim());
    let (_, m) = get(&url).await;
    assert_eq!(
        sample(
            &m,
            "review_sync_deliveries_paused",
            &[("reason", "credentials_refused")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(sample(&m, "review_sync_healthy", &[]), Some(0.0));
    assert_eq!(env.sb.travtus().message_count(), 0);

    // The admin fixes the secret and reloads: deliveries resume, health is green.
    std::fs::write(&secret, format!("{}\n", sandbox::TRAVTUS_CLIENT_SECRET)).expect("fix");
    signal(&daemon, "HUP");
    let expected = env.google_review_count();
    wait_until("every review delivered after the fix", WAIT, || {
        env.sb.travtus().message_count() >= expected
    })
    .await;
    health_becomes(&base, 200, "ok").await;
    let (_, m) = get(&url).await;
    assert_eq!(
        sample(
            &m,
            "review_sync_deliveries_paused",
            &[("reason", "credentials_refused")]
        ),
        Some(0.0)
    );
    signal(&daemon, "TERM");
}

/// `name` on the PATH (or in /usr/bin), when this machine has it.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The metric names a PromQL text refers to (ours and the process ones).
fn metrics_in(promql: &str) -> BTreeSet<String> {
    promql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("review_sync_") || t.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// Every `expr` in a Grafana dashboard (panels nest in rows).
fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_query_only_exported_metrics() {
    let dir = root().join("deploy/prometheus");
    let rules = std::fs::read_to_string(dir.join("review-sync.rules.yml")).expect("rules");
    let registry: BTreeSet<String> = METRIC_NAMES.iter().map(|n| n.to_string()).collect();
    let used = metrics_in(&rules);
    assert!(used.len() >= 8, "{used:?}");
    let unknown: Vec<_> = used.difference(&registry).collect();
    assert!(
        unknown.is_empty(),
        "the rules query metrics the daemon does not export: {unknown:?}"
    );
    let Some(promtool) = which("promtool") else {
        eprintln!(
            "monitoring: SKIPPED promtool check/test rules: promtool is not installed \
             (Debian package prometheus; .ci/run installs it)"
        );
        return;
    };
    for args in [
        ["check", "rules", "review-sync.rules.yml"],
        ["test", "rules", "review-sync.rules.test.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool runs");
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains("SUCCESS"), "{stdout}");
        eprintln!(
            "monitoring: promtool {}: {}",
            args.join(" "),
            stdout.trim().replace('\n', " ")
        );
    }
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let path = root().join("deploy/grafana/review-sync.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    let used: BTreeSet<String> = all.iter().flat_map(|e| metrics_in(e)).collect();
    let registry: BTreeSet<String> = METRIC_NAMES.iter().map(|n| n.to_string()).collect();
    let unknown: Vec<_> = used.difference(&registry).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the daemon does not export: {unknown:?}"
    );
    // Nothing the daemon exports is left off the dashboard.
    let missing: Vec<_> = registry.difference(&used).collect();
    assert!(missing.is_empty(), "exported but on no panel: {missing:?}");
    let panels = dashboard["panels"].as_array().expect("panels");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert!(
            p["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "panel {} has no query",
            p["title"]
        );
    }
    assert_eq!(dashboard["uid"], "review-sync");
}
