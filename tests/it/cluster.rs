//! Several daemons on one PostgreSQL ledger (issue 15): three real
//! `review-sync run` processes share a backfill while one of them is
//! SIGKILLed and restarted again and again. Every review is delivered,
//! duplicates stay within kills x the in-flight bound, no location is read
//! by two daemons at once (the Google emulator counts list requests that
//! began while another for the same location was being answered: zero), and
//! `ledger stats` agrees with the ledger. Needs the throwaway PostgreSQL
//! server (`sandbox::postgres`); SKIPPED, with the reason, without one.
//!
//! Scaled down for `cargo test` (20 locations x 100 reviews); the bench
//! (`benches/pipeline/cluster.rs`) runs the 100 x 1,000 backfill.

use crate::chaos::census;
use crate::crash::{Daemon, inconsistencies};
use crate::helpers::{TestEnv, spawn_env, text, wait_until};
use review_sync::deliver::max_in_flight;
use sandbox::{Endpoint, FaultRates, GoogleSeed};
use std::path::PathBuf;
use std::time::Duration;

/// The daemons' delivery concurrency (the sandbox's default config's).
const CONCURRENCY: usize = 4;
/// Sources the locations are split over: passes of different sources can
/// run on different daemons at once, passes of one source never.
const SOURCES: usize = 4;

/// A PostgreSQL ledger's `[ledger]` lines for the test server, or `None`
/// (SKIPPED printed) without one.
fn postgres_ledger(env: &TestEnv, test: &str) -> Option<String> {
    let server = match sandbox::postgres::server() {
        Ok(server) => server,
        Err(reason) => {
            eprintln!("SKIPPED cluster::{test}: {reason}");
            return None;
        }
    };
    let database = server.create_database().expect("a database");
    let password = env.dir.path().join("ledger_password");
    std::fs::write(&password, sandbox::postgres::PASSWORD).expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    Some(format!(
        "url = \"{}\"\npassword = {{ file = \"ledger_password\" }}\nsslmode = \"disable\"\n",
        server.url(&database)
    ))
}

/// Writes daemon `n`'s config: the same ledger and sources as the others,
/// its own `instance`, the shortest lease (3 s), each source polled every
/// second.
fn write_config(env: &TestEnv, ledger: &str, n: usize) -> PathBuf {
    let base = env.sb.base_url();
    let mut text = format!(
        r#"[travtus]
base_url = "{base}/travtus"
token_url = "{base}/travtus/oauth2/token"
client_id = "{client_id}"
client_secret = {{ file = "travtus_secret" }}
timeout = "2s"
concurrency = {CONCURRENCY}

[ledger]
{ledger}instance = "daemon-{n}"
lease = "3s"
"#,
        client_id = sandbox::TRAVTUS_CLIENT_ID,
    );
    let locations = env.sb.google().locations();
    for s in 0..SOURCES {
        text.push_str(&format!(
            r#"
[[source]]
name = "google-{s}"
kind = "google_business_profile"
schedule = "*/1 * * * * *"
client_id = "{g_id}"
client_secret = {{ file = "google_secret" }}
refresh_token = {{ file = "google_refresh" }}
api_base_url = "{base}/google"
token_url = "{base}/google/token"
"#,
            g_id = sandbox::GOOGLE_CLIENT_ID,
        ));
        for (i, location) in locations.iter().enumerate() {
            if i % SOURCES == s {
                text.push_str(&format!(
                    "\n  [[source.location]]\n  id = \"{location}\"\n  group_external_ref = \"portfolio-{}\"\n",
                    i % 10 + 1
                ));
            }
        }
    }
    let path = env.dir.path().join(format!("daemon-{n}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_share_a_backfill_while_one_is_killed_again_and_again() {
    let env = spawn_env(GoogleSeed {
        accounts: 4,
        locations_per_account: 5,
        reviews_per_location: 100,
    })
    .await;
    let Some(ledger) = postgres_ledger(&env, "three_daemons_share_a_backfill") else {
        return;
    };
    // Every list answer takes a moment, so two readers of one location
    // would be seen overlapping; every POST too, so kills find some in flight.
    env.sb.faults().set_rates(
        Endpoint::GoogleList,
        FaultRates {
            slow: 1.0,
            slow_by: Duration::from_millis(30),
            ..FaultRates::default()
        },
    );
    env.sb.faults().set_rates(
        Endpoint::TravtusMessages,
        FaultRates {
            slow: 1.0,
            slow_by: Duration::from_millis(20),
            ..FaultRates::default()
        },
    );
    let configs: Vec<PathBuf> = (1..=3).map(|n| write_config(&env, &ledger, n)).collect();
    let logs = |n: usize, k: usize| env.dir.path().join(format!("daemon-{n}.{k}.log"));
    let steady: Vec<Daemon> = (0..2)
        .map(|i| Daemon::start(&configs[i], &logs(i + 1, 0)))
        .collect();
    let total = env.google_review_count();
    let travtus = env.sb.travtus().clone();

    // Daemon 3 is killed each time the cluster has delivered another
    // eighth of the backfill (an event, not a clock), and started again.
    let mut victim = Daemon::start(&configs[2], &logs(3, 0));
    let mut kills = 0;
    let mut victim_logs = Vec::new();
    for k in 1..=6 {
        let target = total * k / 8;
        wait_until(
            "the cluster's next eighth of the backfill",
            Duration::from_secs(120),
            || travtus.message_count() >= target,
        )
        .await;
        victim_logs.push(victim.log());
        let status = victim.kill().await;
        assert!(
            !status.success(),
            "daemon 3 died by itself: {}",
            victim_logs.last().unwrap_or(&String::new())
        );
        kills += 1;
        victim = Daemon::start(&configs[2], &logs(3, k));
    }

    let ledger_target = review_sync::config::load_ledger(&configs[0])
        .expect("valid [ledger]")
        .path;
    wait_until(
        "every review delivered",
        Duration::from_secs(120),
        || {
            crate::helpers::rows_of(&ledger_target)
                .iter()
                .filter(|r| r.status == review_sync::ledger::Status::Delivered)
                .count()
                == total
        },
    )
    .await;
    victim_logs.push(victim.log());
    let steady_logs: Vec<String> = steady.iter().map(Daemon::log).collect();
    drop(victim);
    drop(steady);

    let end = census(&env.sb);
    let bound = max_in_flight(CONCURRENCY);
    let overlapping = env.sb.google().overlapping_list_requests();
    eprintln!(
        "cluster: {total} reviews, {} messages, {} duplicates (bound {} = {kills} kills x {bound}), overlapping list requests {overlapping:?}",
        end.messages,
        end.duplicates,
        kills * bound
    );
    assert!(end.lost.is_empty(), "lost: {:?}", end.lost);
    assert!(end.stale.is_empty(), "stale: {:?}", end.stale);
    assert!(end.unknown.is_empty(), "unknown: {:?}", end.unknown);
    assert!(
        end.duplicates <= kills * bound,
        "{} duplicates for {kills} kills of at most {bound} in flight",
        end.duplicates
    );
    assert!(
        overlapping.is_empty(),
        "locations read by two daemons at once: {overlapping:?}"
    );
    assert_eq!(inconsistencies(&ledger_target), Vec::<String>::new());

    // The daemons really shared the work: each steady one ran passes, and
    // found passes of another daemon under way.
    for log in &steady_logs {
        assert!(log.contains("review-sync running"), "{log}");
        assert!(
            log.contains("another daemon is running this source's pass"),
            "no lease was ever held elsewhere: {log}"
        );
    }

    // `ledger stats` (the real binary, on the shared database) agrees.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(&configs[0])
        .args(["ledger", "stats", "--format", "json"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("binary runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let stats: serde_json::Value = serde_json::from_str(&stdout).expect("stats json");
    assert_eq!(stats["total"].as_u64(), Some(total as u64), "{stdout}");
    let by_status = |status: &str| {
        stats["by_status"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["status"] == status))
            .and_then(|s| s["count"].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(by_status("delivered"), total as u64, "{stdout}");
    assert_eq!(by_status("pending"), 0, "{stdout}");
}
