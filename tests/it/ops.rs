//! Operations: the systemd unit (exposure score, `verify`), the daemon's
//! `/metrics` and `/healthz` over loopback, retention run by the daemon, and
//! what the logs of full passes may contain.

use crate::helpers::{LedgerBlock, TestEnv, on_postgres, seed, spawn_env, text, wait_until};
use review_sync::ledger::PurgedBy;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const WAIT: Duration = Duration::from_secs(30);

/// The exposure score we hold the unit to (systemd-analyze's 0..10 scale).
const MAX_EXPOSURE: f64 = 1.1;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// systemd-analyze, when this machine has it.
fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join("systemd-analyze"))
        .find(|p| p.is_file())
}

#[test]
fn the_unit_scores_at_most_1_1_and_verifies_clean() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("skipped: systemd-analyze is not installed, so the unit cannot be checked here");
        return;
    };
    let unit = root().join("systemd/review-sync.service");
    let out = std::process::Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let report = String::from_utf8_lossy(&out.stdout);
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall score in:\n{report}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{report}"
    );

    // `verify` checks that ExecStart's binary exists: point it at ours. And
    // Documentation=man:review-sync(1) at our man page, when `man` is here.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(&unit)
        .expect("unit")
        .replace("/usr/bin/review-sync", env!("CARGO_BIN_EXE_review-sync"));
    let copy = dir.path().join("review-sync.service");
    std::fs::write(&copy, text).expect("write unit");
    let mut verify = std::process::Command::new(&analyze);
    verify.arg("verify");
    let has_man = std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_man {
        let man1 = dir.path().join("man/man1");
        std::fs::create_dir_all(&man1).expect("mkdir");
        std::fs::copy(
            root().join("docs/man/review-sync.1"),
            man1.join("review-sync.1"),
        )
        .expect("man page");
        verify.env("MANPATH", dir.path().join("man"));
    } else {
        verify.arg("--man=no");
    }
    let out = verify.arg(&copy).output().expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed:\n{stderr}");
    assert!(stderr.trim().is_empty(), "verify is not clean:\n{stderr}");
}

#[test]
fn every_credential_of_the_example_config_is_loaded_by_the_unit() {
    let example = std::fs::read_to_string(root().join("config.example.toml")).expect("example");
    let unit = std::fs::read_to_string(root().join("systemd/review-sync.service")).expect("unit");
    let loaded: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("LoadCredential="))
        .filter_map(|l| l.split(':').next())
        .collect();
    let mut used = Vec::new();
    for line in example.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if let Some((_, rest)) = line.split_once("credential = \"")
            && let Some((name, _)) = rest.split_once('"')
        {
            used.push(name);
        }
    }
    assert!(!used.is_empty(), "the example uses credentials");
    for name in used {
        assert!(
            loaded.contains(&name),
            "{{ credential = \"{name}\" }} in config.example.toml has no LoadCredential={name}:... in the unit"
        );
    }
}

/// A `review-sync run` child whose stderr is collected line by line.
struct Daemon {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn spawn(env: &TestEnv) -> Daemon {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
            .arg("--config")
            .arg(&env.config_path)
            .arg("run")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("daemon starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, lines }
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The address logged in "serving /metrics and /healthz listen=ADDR".
    async fn metrics_addr(&self) -> String {
        let lines = Arc::clone(&self.lines);
        let find = move || {
            lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("serving /metrics and /healthz"))
                .and_then(|l| l.split("listen=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        };
        let probe = find.clone();
        wait_until("the metrics address in the log", WAIT, move || {
            probe().is_some()
        })
        .await;
        find().expect("address")
    }

    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("stops in time")
            .expect("wait");
        let log = self.log();
        assert!(exit.success(), "clean exit:\n{log}");
        log
    }
}

async fn get(url: &str) -> (u16, String) {
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
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
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

/// Retries `check` (an async predicate) every 100 ms until it holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_metrics_and_a_health_check_that_sees_a_locked_ledger() {
    let env = spawn_env(seed(10)).await;
    let config = std::fs::read_to_string(&env.config_path)
        .expect("config")
        .replace("[ledger]\n", "[ledger]\nretain_text_days = 30\n");
    std::fs::write(
        &env.config_path,
        format!("{config}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("write config");
    let daemon = Daemon::spawn(&env);
    let base = format!("http://{}", daemon.metrics_addr().await);

    let expected = env.google_review_count();
    let travtus = env.sb.travtus().clone();
    wait_until("every review delivered", WAIT, || {
        travtus.message_count() >= expected
    })
    .await;
    let n = expected as f64;
    let url = format!("{base}/metrics");
    eventually("the metrics to count every delivery", || async {
        let (_, m) = get(&url).await;
        sample(
            &m,
            "review_sync_deliveries_total",
            &[("outcome", "delivered")],
        ) == Some(n)
            && sample(&m, "review_sync_pending_reviews", &[]) == Some(0.0)
    })
    .await;
    let (status, m) = get(&url).await;
    assert_eq!(status, 200);
    let fetched = |outcome| {
        sample(
            &m,
            "review_sync_reviews_fetched_total",
            &[("source", "acme-google"), ("outcome", outcome)],
        )
    };
    assert_eq!(fetched("new"), Some(n), "{m}");
    assert_eq!(fetched("edited"), Some(0.0));
    assert_eq!(
        sample(
            &m,
            "review_sync_deliveries_total",
            &[("platform", "google"), ("outcome", "delivered")]
        ),
        Some(n)
    );
    assert_eq!(
        sample(&m, "review_sync_deliveries_total", &[("outcome", "retry")]),
        Some(0.0),
        "registered at zero, never counted"
    );
    assert_eq!(
        sample(&m, "review_sync_oldest_pending_age_seconds", &[]),
        Some(0.0)
    );
    assert!(
        sample(
            &m,
            "review_sync_location_polls_total",
            &[("source", "acme-google"), ("outcome", "ok")]
        ) >= Some(6.0)
    );
    assert!(
        m.lines()
            .filter(|l| l.starts_with("review_sync_poll_errors_total{"))
            .all(|l| l.ends_with(" 0")),
        "no poll failed: {m}"
    );
    assert_eq!(
        sample(
            &m,
            "review_sync_token_refreshes_total",
            &[("platform", "travtus")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "review_sync_token_refreshes_total",
            &[
                ("platform", "google_business_profile"),
                ("source", "acme-google")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&m, "review_sync_healthy", &[]), Some(1.0));
    assert!(
        m.contains("# TYPE review_sync_deliveries_total counter"),
        "{m}"
    );
    for line in m.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if name.starts_with("process_") || name == "review_sync_build_info" {
            continue;
        }
        assert!(name.starts_with("review_sync_"), "{line}");
        let labels = line.split_once('{').map(|(_, r)| r).unwrap_or("");
        for pair in labels.split("\",").filter(|p| p.contains('=')) {
            let key = pair
                .split('=')
                .next()
                .unwrap_or_default()
                .trim_matches(['{', ' ']);
            assert!(
                [
                    "source",
                    "platform",
                    "outcome",
                    "scope",
                    "error_type",
                    "status",
                    "reason",
                    // The daemon's `[ledger] instance` (default its host name).
                    "instance"
                ]
                .contains(&key),
                "label {key} in {line}"
            );
        }
    }

    // Healthy; then the ledger takes no writes (another connection holds
    // a SQLite ledger's write lock; a PostgreSQL ledger's database cannot
    // be reached): 503 with the reason, and healthy again once it can.
    let health = format!("{base}/healthz");
    assert_eq!(get(&health).await, (200, "ok\n".to_owned()));
    let block = LedgerBlock::on(&env);
    let (status, body) = get(&health).await;
    assert_eq!(status, 503, "{body}");
    if on_postgres() {
        assert!(
            body.starts_with("unhealthy: database unreachable: ledger"),
            "{body}"
        );
    } else {
        assert!(body.starts_with("unhealthy: ledger not writable"), "{body}");
    }
    let (_, m) = get(&url).await;
    assert_eq!(sample(&m, "review_sync_healthy", &[]), Some(0.0));
    drop(block);
    eventually("healthy again", || async { get(&health).await.0 == 200 }).await;
    assert_eq!(get(&format!("{base}/nope")).await.0, 404);

    // The daemon applied retention when it started, and recorded it.
    let purges = env.with_ledger(|l| l.purges().expect("purges"));
    assert!(
        purges.iter().any(|p| p.purged_by == PurgedBy::Daemon),
        "{purges:?}"
    );
    let log = daemon.stop().await;
    assert!(
        log.contains("retention: review text of older deliveries purged"),
        "{log}"
    );
}

/// Every comment, reply and reviewer name of the emulated platform, in the
/// forms a log line could carry it (as is, JSON-escaped, Debug-escaped).
fn review_text(env: &TestEnv) -> Vec<String> {
    let mut texts = Vec::new();
    for location in env.sb.google().locations() {
        for review in env.sb.google().reviews(&location) {
            let pieces = [
                review["comment"].as_str(),
                review["reviewReply"]["comment"].as_str(),
                review["reviewer"]["displayName"].as_str(),
            ];
            for piece in pieces.into_iter().flatten() {
                // Each line alone (a joined comment may be logged in parts).
                for part in piece.split('\n').filter(|p| p.len() >= 4) {
                    texts.push(part.to_owned());
                    texts.push(serde_json::to_string(part).expect("json")[1..].to_owned());
                    texts.push(format!("{part:?}")[1..].to_owned());
                }
            }
        }
    }
    texts.sort();
    texts.dedup();
    texts.retain(|t| t != "A Google User");
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_full_passes_hold_no_review_text_names_or_secrets() {
    let env = spawn_env(seed(10)).await;
    // A failed attempt and its retry, so error paths log too.
    env.sb.faults().push(
        sandbox::Endpoint::TravtusMessages,
        sandbox::Fault::Status(500),
        1,
    );
    let first = env.bin(&["-v", "sync"]).await;
    let google = env.sb.google().clone();
    let location = google.locations()[0].clone();
    let some_review = google.reviews(&location)[0]["reviewId"]
        .as_str()
        .expect("id")
        .to_owned();
    google.edit_review(
        &location,
        &some_review,
        Some("Edited: the lift works now".into()),
        None,
    );
    google.add_review(
        &location,
        sandbox::NewGoogleReview {
            star_rating: Some(2),
            comment: Some("Unmistakable secret complaint about flat 4B".into()),
            display_name: "Wilhelmina Quartermaine".into(),
            is_anonymous: false,
        },
    );
    let second = env.bin(&["-v", "--log-format", "json", "sync"]).await;
    assert!(first.status.success(), "{}", text(&first).1);
    assert!(second.status.success(), "{}", text(&second).1);
    let (text_log, json_log) = (text(&first).1, text(&second).1);

    assert!(text_log.contains("DEBUG"), "the -v run logged at debug");
    assert!(
        text_log.contains("poll pass finished"),
        "one summary per pass"
    );
    let mut summaries = 0;
    for line in json_log.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            event["level"].is_string() && event["fields"].is_object(),
            "{line}"
        );
        if event["fields"]["message"] == "poll pass finished" {
            summaries += 1;
            assert_eq!(event["fields"]["new"], 1, "{line}");
            assert_eq!(event["fields"]["edited"], 1, "{line}");
        }
    }
    assert_eq!(summaries, 1, "one summary line for the one source");

    let logs = format!("{text_log}\n{json_log}");
    for needle in review_text(&env) {
        assert!(
            !logs.contains(&needle),
            "the logs contain review text {needle:?}"
        );
    }
    for secret in [
        sandbox::TRAVTUS_CLIENT_SECRET,
        sandbox::GOOGLE_CLIENT_SECRET,
        sandbox::GOOGLE_REFRESH_TOKEN,
        "tt_",
        "ya29.",
    ] {
        assert!(!logs.contains(secret), "the logs contain {secret:?}");
    }
}
