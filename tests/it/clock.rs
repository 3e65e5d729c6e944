//! Time through the real binary: wall-clock steps under a running daemon
//! (both directions), a step between two runs and in the middle of a
//! reconciliation pass, out-of-range durations and times on the command
//! line and in the config, and a leap second sent by a platform.
//!
//! The clock is stepped as NTP or `date -s` step it: only the wall clock
//! moves, the monotonic clock runs on. libfaketime does that to the binary
//! alone (`LD_PRELOAD`, `FAKETIME_DONT_FAKE_MONOTONIC=1`), reading the
//! offset from a file on every call (`FAKETIME_NO_CACHE=1`), so the test
//! steps a running daemon by rewriting the file. The sandbox runs in the
//! test process on the real clock, as a remote API would. Where libfaketime
//! is not installed (`apt-get install faketime`; `.ci/run` installs it),
//! the step tests print that they were skipped and why.

use crate::chaos::census;
use crate::helpers::{
    Sql, TestEnv, google_reads, seed, spawn_env, text, try_ledger_sql, wait_until,
};
use review_sync::ledger::Target;
use sandbox::{Endpoint, Fault, FaultRates, NewGoogleReview};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// libfaketime where Debian's package (`/usr/lib/<triplet>/faketime/`),
/// Fedora's (`/usr/lib64/faketime/`) or a `make install`
/// (`/usr/local/lib/faketime/`) puts it.
fn faketime_lib() -> Option<PathBuf> {
    let multiarch = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|dir| dir.path());
    let others = ["/usr/lib", "/usr/lib64", "/usr/local/lib"].map(PathBuf::from);
    multiarch
        .chain(others)
        .map(|dir| dir.join("faketime/libfaketime.so.1"))
        .find(|lib| lib.exists())
}

/// The wall clock of the processes started through it: an offset from the
/// real time, in a file libfaketime reads on every clock call.
struct FakeClock {
    lib: PathBuf,
    file: PathBuf,
}

impl FakeClock {
    /// A clock at the real time, or why there can be none here.
    fn new(dir: &Path) -> Result<FakeClock, String> {
        let lib =
            faketime_lib().ok_or("libfaketime is not installed (apt-get install faketime)")?;
        let clock = FakeClock {
            lib,
            file: dir.join("faketime.rc"),
        };
        clock.set("+0");
        Ok(clock)
    }

    /// Steps the clock to `offset` from the real time (`-1d`, `+86400`, `+0`).
    /// Written aside and renamed, so that no clock call reads half a line.
    fn set(&self, offset: &str) {
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset}\n")).expect("write the faketime file");
        std::fs::rename(&tmp, &self.file).expect("rename the faketime file");
    }

    /// `review-sync --config CONFIG ARGS...` on this clock.
    fn command(&self, config: &Path, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"));
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .env("LD_PRELOAD", &self.lib)
            .env("FAKETIME_TIMESTAMP_FILE", &self.file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env_remove("FAKETIME")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .kill_on_drop(true);
        cmd
    }

    /// Runs a command to its end.
    async fn run(&self, config: &Path, args: &[&str]) -> Output {
        tokio::time::timeout(WAIT, self.command(config, args).output())
            .await
            .expect("the command ends in time")
            .expect("the binary runs")
    }

    /// Starts `run`, its stderr in `log`.
    fn daemon(&self, config: &Path, log: &Path) -> Daemon {
        let file = std::fs::File::create(log).expect("log file");
        let child = self
            .command(config, &["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the daemon starts");
        Daemon {
            child,
            log: log.to_owned(),
        }
    }
}

/// The clock of this test, or `None` after saying why the test is skipped.
fn fake_clock(test: &str, env: &TestEnv) -> Option<FakeClock> {
    match FakeClock::new(env.dir.path()) {
        Ok(clock) => Some(clock),
        Err(reason) => {
            eprintln!("clock: {test}: SKIPPED, cannot step the wall clock: {reason}");
            None
        }
    }
}

/// A daemon on a fake clock.
struct Daemon {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle`; the log on failure.
    async fn wait_for_log(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.log().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the daemon never logged {needle:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `cond` holds; the log on failure.
    async fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and the exit status.
    async fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the daemon stops in time")
            .expect("wait")
    }
}

/// `(pending rows, pending rows already attempted)` in the ledger.
fn pending(ledger: &Target) -> (i64, i64) {
    let rows = try_ledger_sql(
        ledger,
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE attempts > 0) FROM reviews WHERE status = 'pending'",
    );
    match rows.as_deref() {
        Ok([row]) => match row.as_slice() {
            [Sql::Int(all), Sql::Int(attempted)] => (*all, *attempted),
            _ => (0, 0),
        },
        _ => (0, 0),
    }
}

fn add_review(env: &TestEnv, comment: &str) {
    let google = env.sb.google();
    let location = google.locations()[0].clone();
    google.add_review(
        &location,
        NewGoogleReview {
            star_rating: Some(4),
            comment: Some(comment.into()),
            display_name: "Clock".into(),
            is_anonymous: false,
        },
    );
}

/// Issue 10 item 4: with the clock stepped back a day, the reviews waiting
/// for a retry stayed pending (due a day "ahead") and polling stopped until
/// SIGHUP, without a word. Now the step is logged with its size and
/// direction, every pending review is made due, the cron tasks re-anchor,
/// and everything is delivered without a signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_stepped_back_a_day_neither_stalls_delivery_nor_polling() {
    let env = spawn_env(seed(5)).await;
    let Some(clock) = fake_clock("stepped back", &env) else {
        return;
    };
    let travtus = env.sb.travtus().clone();
    travtus.faults().set_rates(
        Endpoint::TravtusMessages,
        FaultRates {
            status_500: 1.0,
            ..FaultRates::default()
        },
    );
    let daemon = clock.daemon(&env.config_path, &env.dir.path().join("back.log"));
    let expected = env.google_review_count();
    let ledger = env.ledger();
    daemon
        .wait_until("every review to wait for a retry", || {
            pending(&ledger) == (expected as i64, expected as i64)
        })
        .await;

    clock.set("-1d");
    daemon
        .wait_for_log("the wall clock stepped backward by 1day")
        .await;
    let locations = env.sb.google().locations();
    let reads: Vec<u64> = locations.iter().map(|l| google_reads(&env.sb, l)).collect();
    travtus.faults().clear();
    daemon
        .wait_until("every review to be delivered", || {
            census(&env.sb).converged()
        })
        .await;
    // The cron tasks tick on: a pass over the six locations (each read
    // again, by list or by batch), and a review written after the step is
    // delivered.
    daemon
        .wait_until("the schedules to poll again", || {
            locations
                .iter()
                .zip(&reads)
                .all(|(l, before)| google_reads(&env.sb, l) > *before)
        })
        .await;
    add_review(&env, "written after the step back");
    daemon
        .wait_until("the new review to be delivered", || {
            census(&env.sb).converged()
        })
        .await;
    let log = daemon.log();
    assert!(
        log.contains(
            "pending review(s) whose retry time or lease was set by the old clock made due now"
        ),
        "{log}"
    );
    assert_eq!(census(&env.sb).duplicates, 0, "{log}");
    assert!(daemon.stop().await.success(), "{log}");
}

/// The other direction: a day forward while deliveries are in flight. No
/// burst of the 86,400 fire times jumped over (one catch-up tick, then the
/// schedule as before), the step is logged, and a review whose lease "ran
/// out" by the step while it was being sent is not sent a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_stepped_forward_a_day_replays_no_ticks_and_sends_nothing_twice() {
    let env = spawn_env(seed(3)).await;
    let Some(clock) = fake_clock("stepped forward", &env) else {
        return;
    };
    let travtus = env.sb.travtus().clone();
    // The first requests take 4 s: the step lands while they are in flight
    // under a lease of 15 s (timeout 5 s + 10 s) that it ends at once.
    travtus.faults().push(
        Endpoint::TravtusMessages,
        Fault::Slow(Duration::from_secs(4)),
        4,
    );
    let daemon = clock.daemon(&env.config_path, &env.dir.path().join("forward.log"));
    daemon
        .wait_until("four deliveries in flight", || {
            travtus.message_requests() >= 4
        })
        .await;
    clock.set("+1d");
    daemon
        .wait_for_log("the wall clock stepped forward by 1day")
        .await;
    let first = env.sb.google().locations()[0].clone();
    let (reads, since) = (google_reads(&env.sb, &first), tokio::time::Instant::now());
    daemon
        .wait_until("every review to be delivered", || {
            census(&env.sb).converged()
        })
        .await;
    let census_after = census(&env.sb);
    let log = daemon.log();
    assert_eq!(
        census_after.duplicates, 0,
        "a review sent twice after the step: {census_after:?}\n{log}"
    );
    assert_eq!(census_after.messages, env.google_review_count(), "{log}");

    // A schedule ticking every second: at most a pass a second since the
    // step (and the one catch-up tick), not a replay of a day of ticks.
    // Each pass reads the first location once (by list or by batch).
    let quiet = since + Duration::from_secs(3);
    tokio::time::sleep_until(quiet.max(tokio::time::Instant::now())).await;
    let passes = (google_reads(&env.sb, &first) - reads) as f64;
    let seconds = since.elapsed().as_secs_f64();
    let log = daemon.log();
    assert!(
        passes <= seconds + 2.0,
        "{passes} passes in {seconds:.1} s after the step: ticks replayed\n{log}"
    );
    // The catch-up ticks of both schedules (incremental and reconcile)
    // may meet a running pass once; a replay would skip thousands.
    let skipped = log.matches("tick skipped").count();
    assert!(
        skipped <= 2,
        "{skipped} ticks skipped behind a running pass:\n{log}"
    );
    assert!(daemon.stop().await.success(), "{log}");
}

/// A step nobody saw: a `sync` left reviews waiting for a retry, and the
/// next one runs a day earlier by the clock (NTP corrected it while nothing
/// ran, or the machine restarted with a wrong clock). Their due times lie a
/// day ahead, further than any delay review-sync sets, so they are due now.
/// Before, the second `sync` left them pending (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_left_due_a_day_ahead_by_an_earlier_run_are_delivered_by_the_next() {
    let env = spawn_env(seed(2)).await;
    let Some(clock) = fake_clock("step between runs", &env) else {
        return;
    };
    let travtus = env.sb.travtus().clone();
    travtus.faults().set_rates(
        Endpoint::TravtusMessages,
        FaultRates {
            status_500: 1.0,
            ..FaultRates::default()
        },
    );
    let first = clock.run(&env.config_path, &["sync", "--wait", "1s"]).await;
    assert_eq!(first.status.code(), Some(1), "{:?}", text(&first));
    let expected = env.google_review_count() as i64;
    assert_eq!(pending(&env.ledger()), (expected, expected));

    travtus.faults().clear();
    clock.set("-1d");
    let second = clock
        .run(&env.config_path, &["sync", "--wait", "20s"])
        .await;
    let (stdout, stderr) = text(&second);
    assert_eq!(second.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(census(&env.sb).converged(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "were due more than 15m ahead, further than any retry or lease review-sync sets"
        ),
        "{stderr}"
    );
}

/// A reconciliation marks removed what it did not see since it started. A
/// step back in the middle of the pass stamped what it saw a day before
/// its start, and every review of the location was marked removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_back_during_a_reconciliation_marks_nothing_removed() {
    let env = spawn_env(sandbox::GoogleSeed {
        accounts: 1,
        locations_per_account: 1,
        reviews_per_location: 5,
    })
    .await;
    let Some(clock) = fake_clock("step during reconcile", &env) else {
        return;
    };
    let first = clock.run(&env.config_path, &["sync"]).await;
    assert!(first.status.success(), "{:?}", text(&first));

    // The reconciliation's list request waits 2 s: the step comes while
    // the pass is under way, after it started and before it records.
    let google = env.sb.google().clone();
    google
        .faults()
        .push(Endpoint::GoogleList, Fault::Slow(Duration::from_secs(2)), 1);
    let lists = google.list_requests_total();
    let pass = clock
        .command(&env.config_path, &["sync", "--reconcile"])
        .output();
    let pass = tokio::spawn(pass);
    wait_until("the reconciliation's list request", WAIT, || {
        google.list_requests_total() > lists
    })
    .await;
    clock.set("-1d");
    let out = tokio::time::timeout(WAIT, pass)
        .await
        .expect("the pass ends in time")
        .expect("task")
        .expect("the binary runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let removed = env.ledger_int("SELECT COUNT(*) FROM reviews WHERE removed_at IS NOT NULL");
    assert_eq!(
        removed, 0,
        "reviews seen by the pass marked removed:\n{stdout}\n{stderr}"
    );
}

/// Issue 10 item 5: `sync --wait 18446744073709551615s` (and `500000000000y`)
/// panicked with "overflow when adding duration to instant" (exit 101).
/// Now a usage error naming the flag and the bound; a week still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_beyond_a_week_is_a_usage_error_not_a_panic() {
    let env = spawn_env(seed(1)).await;
    for huge in ["18446744073709551615s", "500000000000y", "8days"] {
        let out = env.bin(&["sync", "--wait", huge]).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{huge}: {stderr}");
        assert!(stderr.contains("--wait"), "{huge}: {stderr}");
        assert!(stderr.contains("at most 7days"), "{huge}: {stderr}");
        assert!(!stderr.contains("panicked"), "{huge}: {stderr}");
    }
    let out = env.bin(&["sync", "--wait", "1week"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
}

/// Durations in the config that reach `Instant + d` or chrono arithmetic:
/// a huge `timeout` panicked `sync` and `run` (`now + lease`), a huge
/// `retain_text_days` the daemon's retention (`now - days`). Each is now a
/// config error (exit 78) at its file:line:column, from `check` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_durations_past_their_bound_are_config_errors_at_their_place() {
    let env = spawn_env(seed(1)).await;
    let good = std::fs::read_to_string(&env.config_path).expect("config");
    let cases = [
        (
            good.replacen("timeout = \"5s\"", "timeout = \"18446744073709551615s\"", 1),
            "timeout: \"18446744073709551615s\" is too long: at most 10m",
        ),
        (
            good.replacen("timeout = \"5s\"", "timeout = \"300000years\"", 1),
            "timeout: \"300000years\" is too long: at most 10m",
        ),
        (
            good.replace("[ledger]\n", "[ledger]\nretain_text_days = 4000000000\n"),
            "retain_text_days: must be a whole number of days from 1 to 36500 (got 4000000000)",
        ),
    ];
    let config = env.config_path.display().to_string();
    for (text_, problem) in cases {
        std::fs::write(&env.config_path, &text_).expect("write config");
        let line = text_
            .lines()
            .position(|l| {
                l.contains("18446744073709551615s")
                    || l.contains("300000years")
                    || l.contains("4000000000")
            })
            .map(|i| i + 1)
            .expect("the line");
        for args in [&["check"][..], &["sync", "--wait", "1s"]] {
            let out = env.bin(args).await;
            let (_, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(78), "{args:?} {problem}: {stderr}");
            assert!(
                stderr.contains(&format!("{config}:{line}:")) && stderr.contains(problem),
                "{args:?}: want {problem:?} at line {line}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

/// Times on the command line are bounded to the years the ledger stores:
/// `ledger purge --before=-99999-01-01` was accepted and recorded a purge
/// with that cutoff, and its errors named `--since`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_on_the_command_line_outside_years_0_to_9999_are_usage_errors() {
    let env = spawn_env(seed(1)).await;
    let sync = env.bin(&["sync"]).await;
    assert!(sync.status.success(), "{:?}", text(&sync));
    let cases: [&[&str]; 4] = [
        &["ledger", "purge", "--before=-99999-01-01"],
        &["ledger", "purge", "--before=+10000-01-01"],
        &["ledger", "list", "--since=99999-01-01"],
        &[
            "ledger",
            "export",
            "--format",
            "jsonl",
            "--since=-0001-12-31",
        ],
    ];
    for args in cases {
        let out = env.bin(args).await;
        let (_, stderr) = text(&out);
        let flag = args
            .iter()
            .find_map(|a| a.split_once('=').map(|(f, _)| f))
            .expect("a flag");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(
            stderr.contains("from 0 to 9999") || stderr.contains("expected a date"),
            "{args:?}: {stderr}"
        );
    }
    let purges = env.ledger_int("SELECT COUNT(*) FROM purges");
    assert_eq!(purges, 0, "a refused purge recorded nothing");
}

/// Issue 10 item 11: a platform time `2016-12-31T23:59:60Z` was sent as
/// `2016-12-31T23:59:60`, which is no time Travtus knows. It is sent as
/// the second before; a second pass finds the review unchanged (the edit
/// check and the high-water mark agree with the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leap_second_is_sent_as_the_second_before_and_stays_unchanged() {
    let env = spawn_env(sandbox::GoogleSeed {
        accounts: 1,
        locations_per_account: 1,
        reviews_per_location: 0,
    })
    .await;
    let google = env.sb.google().clone();
    let location = google.locations()[0].clone();
    assert!(google.insert_raw_review(
        &location,
        json!({
            "reviewId": "leap",
            "reviewer": {"displayName": "Leap", "isAnonymous": false},
            "starRating": "FIVE",
            "comment": "a second too late",
            "createTime": "2016-12-31T23:59:60Z",
            "updateTime": "2017-01-01T00:59:60.5+01:00",
        }),
    ));
    let first = env.bin(&["sync"]).await;
    assert!(first.status.success(), "{:?}", text(&first));
    let sent = env.sb.travtus().messages();
    assert_eq!(sent.len(), 1);
    let review = &sent[0].body["review"];
    for key in ["created_datetime", "updated_datetime"] {
        assert_eq!(review[key], json!("2016-12-31T23:59:59"), "{key}: {review}");
    }

    let second = env.bin(&["sync"]).await;
    let (stdout, stderr) = text(&second);
    assert!(second.status.success(), "{stdout}\n{stderr}");
    assert_eq!(env.sb.travtus().message_count(), 1, "sent again: {stdout}");
    let last = env.ledger_sql("SELECT new, edited, unchanged FROM polls ORDER BY id DESC LIMIT 1");
    assert_eq!(last, [[Sql::Int(0), Sql::Int(0), Sql::Int(1)]], "{stdout}");
    let high_water = env.ledger_sql("SELECT high_water FROM poll_state");
    assert_eq!(high_water, [[Sql::Text("2016-12-31T23:59:59.999Z".into())]]);
}
