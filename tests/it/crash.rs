//! The crash test (issue 5, "Prove that nothing is lost"): the real binary
//! in `run` mode, polling every second, killed with SIGKILL at seeded random
//! moments (during a migration on a fresh ledger, during polls, during
//! deliveries, during token refreshes, anywhere) and restarted each time,
//! while reviews are added and edited. After a final clean run: nothing
//! lost, the ledger intact and self-consistent, and at most one in-flight
//! batch sent twice per kill. And SIGTERM: a clean stop within the drain
//! deadline with nothing half-written.

use crate::chaos::{census, mutate_platform, set_timeouts, stuck_without_reason};
use crate::helpers::{
    Sql, TestEnv, ledger_lines, ledger_sql, on_postgres, seed, spawn_env, sqlite_only, text,
    wait_until,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use review_sync::deliver::max_in_flight;
use review_sync::ledger::{AsTarget, Ledger, Status, Target};
use sandbox::{Endpoint, Fault, FaultRates};
use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// The seed of the kill schedule and of the reviews added between kills.
const CRASH_SEED: u64 = 0xdead_5eed_0009;

/// SIGKILLs within milliseconds of a fresh ledger's creation: the window in
/// which the file is switched to WAL and the schema is created and migrated.
const MIGRATION_KILLS: usize = 8;

/// SIGKILLs of the daemon on the shared ledger.
const KILLS: usize = 24;

/// `[travtus] concurrency` in the helpers' config.
const CONCURRENCY: usize = 4;

/// Every client's request timeout here: short, so that the lease of a
/// review claimed by a killed daemon (timeout + 10 s) runs out soon.
const TIMEOUT: &str = "2s";

/// Where SIGKILL is aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// While a list request is in flight (pages of other locations being
    /// recorded meanwhile).
    Poll,
    /// While `POST /messages/` requests are in flight.
    Delivery,
    /// While a token request (Travtus or Google) is in flight, after the
    /// first token has been used for a while (so a refresh).
    Token,
    /// At a random time.
    Anytime,
}

const MOMENTS: [Moment; 4] = [
    Moment::Poll,
    Moment::Delivery,
    Moment::Token,
    Moment::Anytime,
];

/// The daemon as a child process, its stderr in a file.
pub(crate) struct Daemon {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `review-sync --config CONFIG run`, logging to `log`.
    pub(crate) fn start(config: &Path, log: &Path) -> Daemon {
        let file = std::fs::File::create(log).expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .expect("daemon starts");
        Daemon {
            child,
            log: log.to_owned(),
        }
    }

    /// What the daemon logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then the exit status.
    pub(crate) async fn kill(mut self) -> ExitStatus {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("wait")
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    /// Waits at most `limit` for the daemon to exit.
    pub(crate) async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|s| s.expect("wait"))
    }
}

/// Waits at most `limit` for `cond`; false if it never held (not a
/// failure: the kill then lands wherever the daemon is).
async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// `PRAGMA integrity_check` of a ledger file ("ok" when sound). A
/// PostgreSQL ledger's pages are the server's to check: "ok".
pub(crate) fn integrity(ledger: &(impl AsTarget + ?Sized)) -> String {
    match ledger.as_target() {
        Target::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("open ledger");
            conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("integrity_check")
        }
        Target::Postgres(_) => "ok".to_owned(),
    }
}

/// What an auditor would find inconsistent in a ledger: attempt counts that
/// disagree with the attempts table, deliveries without their request id,
/// attempts of reviews the ledger does not hold.
pub(crate) fn inconsistencies(ledger: &(impl AsTarget + ?Sized)) -> Vec<String> {
    let ledger = ledger.as_target();
    let checks = [
        (
            "reviews whose attempts column disagrees with the attempts table",
            "SELECT COUNT(*) FROM reviews r WHERE r.attempts != (SELECT COUNT(*) FROM attempts a
                 WHERE a.platform = r.platform AND a.review_id = r.review_id)",
        ),
        (
            "delivered reviews without request_id or delivered_at",
            "SELECT COUNT(*) FROM reviews WHERE status = 'delivered'
                 AND (request_id IS NULL OR delivered_at IS NULL)",
        ),
        (
            "delivered reviews whose request id is not a delivered attempt",
            "SELECT COUNT(*) FROM reviews r WHERE status = 'delivered' AND NOT EXISTS
                 (SELECT 1 FROM attempts a WHERE a.platform = r.platform
                  AND a.review_id = r.review_id AND a.outcome = 'delivered'
                  AND a.request_id = r.request_id)",
        ),
        (
            "pending reviews that are never due",
            "SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND next_attempt_at IS NULL",
        ),
        (
            "attempts of reviews the ledger does not hold",
            "SELECT COUNT(*) FROM attempts a WHERE NOT EXISTS (SELECT 1 FROM reviews r
                 WHERE r.platform = a.platform AND r.review_id = a.review_id)",
        ),
    ];
    checks
        .iter()
        .filter_map(|(what, sql)| {
            let n = match ledger_sql(&ledger, sql).as_slice() {
                [row] => match row.as_slice() {
                    [Sql::Int(n)] => *n,
                    other => panic!("{what}: {other:?}"),
                },
                other => panic!("{what}: {other:?}"),
            };
            (n != 0).then(|| format!("{n} {what}"))
        })
        .collect()
}

/// The config of the helpers with its ledger at `ledger` (relative to the
/// config's directory), written as `name`.
///
/// On PostgreSQL, `"ledger.db"` is the env's own database, and any other
/// path a new database.
pub(crate) fn config_with_ledger(env: &TestEnv, name: &str, ledger: &str) -> PathBuf {
    let text = std::fs::read_to_string(&env.config_path).expect("config");
    assert!(text.contains(&env.ledger_lines));
    let lines = match (on_postgres(), ledger) {
        (true, "ledger.db") => env.ledger_lines.clone(),
        (true, _) => ledger_lines(env.dir.path()),
        (false, _) => format!("path = \"{ledger}\"\n"),
    };
    let path = env.dir.path().join(name);
    std::fs::write(&path, text.replace(&env.ledger_lines, &lines)).expect("write config");
    path
}

fn killed_by_sigkill(status: ExitStatus) -> bool {
    status.signal() == Some(9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_and_sends_at_most_the_in_flight_batch_twice() {
    // Two pages per location, so kills land between the pages of a poll.
    let env = spawn_env(seed(60)).await;
    set_timeouts(&env, TIMEOUT);
    let (travtus, google, faults) = (env.sb.travtus(), env.sb.google(), env.sb.faults());
    // Tokens refreshed every 750 ms on both sides.
    travtus.set_token_lifetime(Duration::from_secs(1));
    google.set_token_lifetime(Duration::from_secs(1));
    // Some answers take a little while, so that kills find requests in flight.
    faults.set_rates(
        Endpoint::TravtusMessages,
        FaultRates {
            slow: 0.3,
            slow_by: Duration::from_millis(120),
            ..FaultRates::default()
        },
    );
    // Lists (first reads) and batch calls (later passes' reads) alike.
    for endpoint in [Endpoint::GoogleList, Endpoint::GoogleBatch] {
        faults.set_rates(
            endpoint,
            FaultRates {
                slow: 0.2,
                slow_by: Duration::from_millis(100),
                ..FaultRates::default()
            },
        );
    }
    let mut rng = StdRng::seed_from_u64(CRASH_SEED);
    let started = Instant::now();

    // 1. Kills during the schema's creation and migration, each on a fresh
    //    ledger: whatever the moment, the file opens afterwards at a whole
    //    version, migrates to the latest and is intact.
    //    (A SQLite file's: the kills are timed on its files appearing. On
    //    PostgreSQL, migrations are transactions under an advisory lock:
    //    `ledger::tests::postgres`.)
    let mut versions_at_kill = Vec::new();
    let mut latest = 0;
    let migration_kills = if sqlite_only(
        "crash: kills during a fresh ledger's creation",
        "timed on the file and its -wal appearing",
    ) {
        0
    } else {
        MIGRATION_KILLS
    };
    for i in 0..migration_kills {
        let ledger = format!("fresh-{i}.db");
        let config = config_with_ledger(&env, &format!("fresh-{i}.toml"), &ledger);
        let path = env.dir.path().join(&ledger);
        let daemon = Daemon::start(&config, &env.dir.path().join(format!("fresh-{i}.log")));
        // The file appears just before SQLite opens it and switches it to
        // WAL (through a rollback journal, fsynced); its `-wal` appears just
        // before the migrations run, in a few milliseconds. Even runs are
        // killed within 40 ms of the first, odd runs within 3 ms of the
        // second, from a thread that watches for them.
        let pid = i32::try_from(daemon.child.id().expect("running")).expect("pid");
        let (watched, after) = if i % 2 == 0 {
            (path.clone(), rng.random_range(0..40_000))
        } else {
            (
                env.dir.path().join(format!("{ledger}-wal")),
                rng.random_range(0..3_000),
            )
        };
        let after = Duration::from_micros(after);
        let appeared = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !watched.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(100));
            }
            std::thread::sleep(after);
            // SAFETY: kill(2) on the pid of our own child, which has not been
            // reaped yet (the test waits for it only below).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            watched.exists()
        })
        .await
        .expect("watcher");
        assert!(appeared, "fresh run {i} never created its ledger");
        let status = daemon.kill().await;
        assert!(
            killed_by_sigkill(status),
            "fresh run {i} died by itself: {status}"
        );
        let version: Option<i64> = path.exists().then(|| {
            rusqlite::Connection::open(&path)
                .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
                .expect("user_version readable after a kill")
        });
        versions_at_kill.push(version);
        let reopened =
            Ledger::open(&path).expect("a killed first start leaves a ledger that opens");
        assert_eq!(integrity(&path), "ok", "fresh ledger {i}");
        latest = reopened.schema_version().expect("version");
        drop(reopened);
        assert!(latest >= 1 && version.is_none_or(|v| (0..=latest).contains(&v)));
    }

    // 2. Kills of the daemon on one ledger, each aimed at a moment.
    let mut aimed = Vec::new();
    for k in 0..KILLS {
        mutate_platform(&env.sb, &mut rng, &format!("k{k}"), 2, 1);
        let moment = MOMENTS[k % MOMENTS.len()];
        let daemon = Daemon::start(
            &env.config_path,
            &env.dir.path().join(format!("run-{k}.log")),
        );
        let seen = match moment {
            Moment::Poll => {
                // A page of a poll: a list page, or a batch page once the
                // locations have marks.
                let reads = || {
                    faults.injected_for(Endpoint::GoogleList)
                        + faults.injected_for(Endpoint::GoogleBatch)
                };
                let before = reads();
                for endpoint in [Endpoint::GoogleList, Endpoint::GoogleBatch] {
                    faults.push(endpoint, Fault::Slow(Duration::from_millis(300)), 1);
                }
                let seen = wait_for(Duration::from_secs(5), || reads() > before).await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..280))).await;
                seen
            }
            Moment::Delivery => {
                let before = faults.injected_for(Endpoint::TravtusMessages);
                faults.push(
                    Endpoint::TravtusMessages,
                    Fault::Slow(Duration::from_millis(250)),
                    8,
                );
                let seen = wait_for(Duration::from_secs(5), || {
                    faults.injected_for(Endpoint::TravtusMessages) > before
                })
                .await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
                seen
            }
            Moment::Token => {
                // Let the first tokens be fetched and used, then slow the
                // next token request down and kill while it is in flight.
                tokio::time::sleep(Duration::from_millis(rng.random_range(800..1600))).await;
                let endpoint = if k % 8 == 2 {
                    Endpoint::TravtusToken
                } else {
                    Endpoint::GoogleToken
                };
                let before = faults.injected_for(endpoint);
                faults.push(endpoint, Fault::Slow(Duration::from_millis(300)), 1);
                let seen = wait_for(Duration::from_secs(3), || {
                    faults.injected_for(endpoint) > before
                })
                .await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..280))).await;
                seen
            }
            Moment::Anytime => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..2500))).await;
                true
            }
        };
        let log = daemon.log();
        let status = daemon.kill().await;
        assert!(
            killed_by_sigkill(status),
            "run {k} died by itself ({status}): {log}"
        );
        aimed.push((moment, seen));
    }
    let kills_done = started.elapsed();

    // 3. A clean run drains everything (leases of the last kill included).
    faults.clear();
    let out = env.bin(&["sync", "--wait", "40s"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "final sync: {stdout}\n{stderr}");

    let end = census(&env.sb);
    let rows = env.rows();
    let bound = max_in_flight(CONCURRENCY);
    let seen = |m: Moment| {
        let of: Vec<_> = aimed.iter().filter(|(a, _)| *a == m).collect();
        format!("{}/{}", of.iter().filter(|(_, s)| *s).count(), of.len())
    };
    let mid_migration = versions_at_kill
        .iter()
        .filter(|v| matches!(v, Some(v) if *v > 0 && *v < latest))
        .count();
    eprintln!(
        "crash: {} kills in {:.0}s ({migration_kills} on fresh ledgers, schema versions found {versions_at_kill:?}, {mid_migration} between two migrations; {KILLS} of the daemon aimed at polls {}, deliveries {}, token refreshes {}, anytime {} (aimed/total)); faults injected {}; reviews {}; messages {}; lost {}; stale {}; duplicates {} (bound {} = {KILLS} kills x {bound} in flight); Travtus tokens {}, Google tokens {}",
        migration_kills + KILLS,
        kills_done.as_secs_f64(),
        seen(Moment::Poll),
        seen(Moment::Delivery),
        seen(Moment::Token),
        seen(Moment::Anytime),
        faults.injected(),
        end.reviews,
        end.messages,
        end.lost.len(),
        end.stale.len(),
        end.duplicates,
        KILLS * bound,
        travtus.token_requests(),
        google.token_requests(),
    );
    assert_eq!(integrity(&env.ledger()), "ok");
    assert_eq!(inconsistencies(&env.ledger()), Vec::<String>::new());
    assert!(end.lost.is_empty(), "lost: {:?}", end.lost);
    assert!(end.stale.is_empty(), "stale: {:#?}", end.stale);
    assert!(end.unknown.is_empty(), "unknown: {:?}", end.unknown);
    assert_eq!(stuck_without_reason(&rows), Vec::<String>::new());
    assert!(rows.iter().all(|r| r.status == Status::Delivered));
    assert_eq!(rows.len(), end.reviews);
    assert!(
        end.duplicates <= KILLS * bound,
        "{} duplicates for {KILLS} kills of at most {bound} in flight",
        end.duplicates
    );
    // The kills really interrupted work: deliveries were aimed at and seen.
    assert!(aimed.iter().any(|(m, s)| *m == Moment::Delivery && *s));
    assert!(aimed.iter().any(|(m, s)| *m == Moment::Poll && *s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_drain_deadline_with_nothing_half_written() {
    let env = spawn_env(seed(40)).await;
    let travtus = env.sb.travtus().clone();
    // Every POST takes 150 ms: 240 reviews take seconds, so the stop
    // comes with a batch in flight.
    env.sb.faults().set_rates(
        Endpoint::TravtusMessages,
        FaultRates {
            slow: 1.0,
            slow_by: Duration::from_millis(150),
            ..FaultRates::default()
        },
    );
    let mut daemon = Daemon::start(&env.config_path, &env.dir.path().join("run.log"));
    // More messages than one batch holds: the first batch was recorded and
    // the next one is in flight.
    let bound = max_in_flight(CONCURRENCY);
    wait_until("a second batch in flight", Duration::from_secs(30), || {
        travtus.message_count() > bound + 8
    })
    .await;
    daemon.terminate();
    let limit = review_sync::daemon::DRAIN_DEADLINE + Duration::from_secs(5);
    let stopped = Instant::now();
    let status = daemon.wait(limit).await;
    let log = daemon.log();
    let status = status.unwrap_or_else(|| panic!("not stopped within {limit:?}: {log}"));
    assert!(status.success(), "clean exit: {status}: {log}");
    assert!(log.contains("stopping"), "{log}");

    // Nothing half-written: the file is intact and consistent, every row
    // is delivered or pending, and every message Travtus accepted is a
    // delivered attempt in the ledger (the in-flight batch was recorded).
    assert_eq!(integrity(&env.ledger()), "ok");
    assert_eq!(inconsistencies(&env.ledger()), Vec::<String>::new());
    let rows = env.rows();
    assert!(
        rows.iter()
            .all(|r| matches!(r.status, Status::Delivered | Status::Pending))
    );
    let pending = rows.iter().filter(|r| r.status == Status::Pending).count();
    assert!(pending > 0, "the stop came before the end of the work");
    let accepted: HashSet<String> = travtus
        .messages()
        .into_iter()
        .map(|m| m.request_id)
        .collect();
    let recorded: HashSet<String> = env
        .ledger_sql("SELECT request_id FROM attempts WHERE outcome = 'delivered'")
        .into_iter()
        .map(|r| r[0].text().expect("a request id"))
        .collect();
    assert_eq!(
        accepted, recorded,
        "every accepted message recorded as delivered"
    );
    let delivered = rows.len() - pending;
    eprintln!(
        "sigterm: stopped in {:.1}s (deadline {}s) with {delivered} delivered, {pending} pending, {} messages accepted",
        stopped.elapsed().as_secs_f64(),
        review_sync::daemon::DRAIN_DEADLINE.as_secs(),
        accepted.len()
    );

    // The restart sends the rest, and nothing twice.
    env.sb.faults().clear();
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let end = census(&env.sb);
    assert!(end.converged(), "{end:?}");
    assert_eq!(end.duplicates, 0, "a clean stop sends nothing twice");
}

/// Regression: a batch whose remaining reviews waited out a rate-limit
/// pause (a 429 asking for minutes) could not be stopped: SIGTERM waited the
/// whole drain deadline, then gave the batch up, so the reviews of it that
/// Travtus had already accepted were never recorded, and were sent again
/// after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_rate_limit_pause_records_what_was_sent_and_sends_nothing_twice() {
    let env = spawn_env(seed(20)).await;
    let (travtus, faults) = (env.sb.travtus().clone(), env.sb.faults());
    // Ten answers of 100 ms, then a 429 that asks for two minutes.
    faults.push(
        Endpoint::TravtusMessages,
        Fault::Slow(Duration::from_millis(100)),
        10,
    );
    faults.push(
        Endpoint::TravtusMessages,
        Fault::TooManyRequests {
            retry_after: Some(Duration::from_secs(120)),
        },
        1,
    );
    let mut daemon = Daemon::start(&env.config_path, &env.dir.path().join("pause.log"));
    wait_until(
        "the 429 that pauses deliveries",
        Duration::from_secs(30),
        || travtus.request_log().iter().any(|e| e.status == 429),
    )
    .await;
    daemon.terminate();
    let limit = review_sync::daemon::DRAIN_DEADLINE + Duration::from_secs(5);
    let stopped = Instant::now();
    let status = daemon.wait(limit).await;
    let log = daemon.log();
    let status = status.unwrap_or_else(|| panic!("not stopped within {limit:?}: {log}"));
    assert!(status.success(), "clean exit: {status}: {log}");
    assert!(
        !log.contains("did not finish in time"),
        "the paused batch was given up: {log}"
    );
    assert_eq!(integrity(&env.ledger()), "ok");
    assert_eq!(inconsistencies(&env.ledger()), Vec::<String>::new());
    let accepted = travtus.message_count();
    let recorded = env.ledger_int("SELECT COUNT(*) FROM attempts WHERE outcome = 'delivered'");
    assert_eq!(
        usize::try_from(recorded).expect("count"),
        accepted,
        "every message Travtus accepted before the stop is recorded"
    );
    eprintln!(
        "sigterm during a 429 pause: stopped in {:.1}s with {accepted} delivered",
        stopped.elapsed().as_secs_f64()
    );

    // The review that met the 429 is due in two minutes, as asked, and the
    // batch's unsent reviews when their lease runs out: stand in for that
    // wait, then restart.
    faults.clear();
    env.with_ledger_mut(|l| l.make_pending_due(chrono::Utc::now()))
        .expect("fast-forward");
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let end = census(&env.sb);
    assert!(end.converged(), "{end:?}");
    assert_eq!(end.duplicates, 0, "a clean stop sends nothing twice");
}
