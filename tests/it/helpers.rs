//! `spawn_app()`-style helpers: a sandbox on port 0, a temp dir with a real
//! config (secrets in files, as an operator would have them) and a ledger.

use review_sync::app::App;
use review_sync::ledger::{Ledger, ReviewFilter, ReviewRow};
use sandbox::{GoogleSeed, Sandbox, SandboxOptions};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

/// A sandbox plus a config pointing at it.
pub struct TestEnv {
    pub sb: Sandbox,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub ledger_path: PathBuf,
}

/// Starts a sandbox seeded with `seed` and writes a config mapping location
/// `i` to `portfolio-{i+1}` (external ref).
pub async fn spawn_env(seed: GoogleSeed) -> TestEnv {
    let sb = Sandbox::start(SandboxOptions {
        google: seed,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    let ledger_path = dir.path().join("ledger.db");
    std::fs::write(
        dir.path().join("travtus_secret"),
        format!("{}\n", sandbox::TRAVTUS_CLIENT_SECRET),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("google_secret"),
        sandbox::GOOGLE_CLIENT_SECRET,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("google_refresh"),
        format!("{}\n", sandbox::GOOGLE_REFRESH_TOKEN),
    )
    .expect("write");
    // Readable by their owner only, as an admin keeps them (`check` warns
    // about a secret file others can read).
    for name in ["travtus_secret", "google_secret", "google_refresh"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join(name),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
    }
    let env = TestEnv {
        sb,
        dir,
        config_path,
        ledger_path,
    };
    let mapping: Vec<(String, String)> = env
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
    env.write_config(&mapping, "");
    env
}

impl TestEnv {
    /// Writes the config with these (location, group line) pairs and extra
    /// `[travtus]` lines.
    pub fn write_config(&self, mapping: &[(String, String)], travtus_extra: &str) {
        let base = self.sb.base_url();
        let mut text = format!(
            r#"[travtus]
base_url = "{base}/travtus"
token_url = "{base}/travtus/oauth2/token"
client_id = "{client_id}"
client_secret = {{ file = "travtus_secret" }}
timeout = "5s"
concurrency = 4
{travtus_extra}

[ledger]
path = "ledger.db"

[[source]]
name = "acme-google"
kind = "google_business_profile"
schedule = "*/1 * * * * *"
client_id = "{g_id}"
client_secret = {{ file = "google_secret" }}
refresh_token = {{ file = "google_refresh" }}
api_base_url = "{base}/google"
token_url = "{base}/google/token"
"#,
            client_id = sandbox::TRAVTUS_CLIENT_ID,
            g_id = sandbox::GOOGLE_CLIENT_ID,
        );
        for (location, group) in mapping {
            text.push_str(&format!(
                "\n  [[source.location]]\n  id = \"{location}\"\n  {group}\n"
            ));
        }
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// Loads the config and opens the app (ledger) on it.
    pub async fn app(&self) -> App {
        let config = review_sync::config::load(&self.config_path).expect("valid config");
        App::open(config).await.expect("app opens")
    }

    /// Every ledger row.
    pub fn rows(&self) -> Vec<ReviewRow> {
        let ledger = Ledger::open_readonly(&self.ledger_path).expect("ledger");
        let mut rows = Vec::new();
        ledger
            .for_each_review(&ReviewFilter::default(), &mut |r| {
                rows.push(r.clone());
                Ok(())
            })
            .expect("rows");
        rows
    }

    /// Total reviews seeded at the Google emulator.
    pub fn google_review_count(&self) -> usize {
        self.sb
            .google()
            .locations()
            .iter()
            .map(|l| self.sb.google().reviews(l).len())
            .sum()
    }

    /// Runs the real binary with `--config` and `args`, waiting for it.
    pub async fn bin(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .kill_on_drop(true)
            .output()
            .await
            .expect("binary runs")
    }
}

/// Waits (bounded) until `cond` holds, checking every 20 ms: waiting for an
/// event in another process, not sleeping in place of synchronisation.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Text of an output's stdout and stderr.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small account: 2 accounts x 3 locations x `reviews` reviews.
/// The reads of `location` the Google emulator served: its own list calls
/// and the batchGetReviews calls naming it (a pass reads a location with a
/// high-water mark by batch).
pub fn google_reads(sb: &Sandbox, location: &str) -> u64 {
    sb.google().list_requests(location) + sb.google().batch_requests_naming(location)
}

pub fn seed(reviews: u32) -> GoogleSeed {
    GoogleSeed {
        accounts: 2,
        locations_per_account: 3,
        reviews_per_location: reviews,
    }
}
