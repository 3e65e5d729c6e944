//! Storage faults (issue 5, "Prove that nothing is lost"): the ledger's
//! directory missing, its disk full, its file read-only, another process
//! holding its write lock. For each: the daemon says what is wrong and
//! names the file, takes no new work while it lasts (or refuses to start),
//! loses nothing (a fetched review that could not be recorded is read
//! again, because the high-water mark only moves after a recorded poll),
//! and delivers everything once the fault is cleared.
//!
//! The tests run as root (here and in CI), so file modes stop nothing. The
//! faults are made the way they happen: a full filesystem is a small tmpfs
//! filled up (needs `mount`; skipped with the reason when not permitted);
//! a read-only file is the immutable attribute (`chattr +i`, which stops
//! root too; skipped where the filesystem does not support it); a lock is a
//! second connection holding `BEGIN EXCLUSIVE` past the 5 s busy timeout.

use crate::chaos::census;
use crate::crash::{Daemon, config_with_ledger, inconsistencies, integrity};
use crate::helpers::{TestEnv, seed, spawn_env, sqlite_only, text, wait_until};
use crate::monitoring::{config_with_metrics, endpoint, get, health_becomes, sample};
use sandbox::NewGoogleReview;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Runs the binary with `config` and `args`.
async fn bin_with(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .kill_on_drop(true)
        .output()
        .await
        .expect("binary runs")
}

/// Adds a few reviews (one with a long text) and edits one: work that
/// cannot be recorded while the fault lasts.
fn add_work(env: &TestEnv, tag: &str) {
    let google = env.sb.google();
    let locations = google.locations();
    for (i, location) in locations.iter().take(3).enumerate() {
        google.add_review(
            location,
            NewGoogleReview {
                star_rating: Some(2),
                comment: Some(format!(
                    "{tag} {i}: {}",
                    "the heating is off again. ".repeat(40)
                )),
                display_name: format!("Resident {tag} {i}"),
                is_anonymous: false,
            },
        );
    }
    let old = google.reviews(&locations[3]).last().expect("a review")["reviewId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(google.edit_review(&locations[3], &old, Some(format!("{tag}: edited")), Some(1)));
}

/// Starts the daemon on `config` and waits until it delivered every review.
async fn running_daemon(env: &TestEnv, config: &Path, log: &str) -> Daemon {
    let daemon = Daemon::start(config, &env.dir.path().join(log));
    let sb = &env.sb;
    wait_until("the daemon to deliver every review", WAIT, || {
        census(sb).converged()
    })
    .await;
    daemon
}

/// Waits until the daemon's log contains `needle`; the log on failure.
async fn wait_for_log(daemon: &Daemon, needle: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !daemon.log().contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon never logged {needle:?}: {}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the emulators agree again; the daemon's log on failure.
async fn wait_for_convergence(env: &TestEnv, daemon: &Daemon, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !census(&env.sb).converged() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:?}\n{}",
            census(&env.sb),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every location's high-water mark in the ledger (read-only: readers
/// work through every one of these faults).
fn high_water(ledger: &Path) -> Vec<(String, Option<String>)> {
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("reader");
    conn.prepare("SELECT location_id, high_water FROM poll_state ORDER BY location_id")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<Result<_, _>>())
        })
        .expect("poll_state")
}

/// The log lines that name `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// SIGTERM, a clean exit, and a sound ledger.
async fn stop_cleanly(mut daemon: Daemon, ledger: &Path) {
    daemon.terminate();
    let status = daemon
        .wait(review_sync::daemon::DRAIN_DEADLINE + Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("not stopped in time: {}", daemon.log()));
    assert!(status.success(), "{status}: {}", daemon.log());
    assert_eq!(integrity(ledger), "ok");
    assert_eq!(inconsistencies(ledger), Vec::<String>::new());
}

/// A missing ledger directory is a config error (issue 13.6): exit 78,
/// which systemd's unit does not restart on, with the `path` key's
/// position; `check` catches it before any start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ledger_directory_is_refused_at_start_naming_the_path() {
    if sqlite_only(
        "storage::a_missing_ledger_directory_is_refused_at_start_naming_the_path",
        "the directory of the ledger's file",
    ) {
        return;
    }
    let env = spawn_env(seed(3)).await;
    let config = config_with_ledger(&env, "state.toml", "state/ledger.db");
    let dir = env.dir.path().join("state");
    for command in ["check", "run", "sync"] {
        let out = bin_with(&config, &[command]).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(78), "{command}: {stderr}");
        let reasons = lines_with(&stderr, &format!("{}:", config.display()));
        assert_eq!(reasons.len(), 1, "{command}: one line says why: {stderr}");
        assert!(
            reasons[0].contains(&format!(
                ": path: directory {} does not exist",
                dir.display()
            )),
            "{command}: {stderr}"
        );
        eprintln!("storage: missing directory, {command}: {}", reasons[0]);
    }
    assert!(
        !dir.exists(),
        "the directory is not created behind the admin's back"
    );
    assert_eq!(env.sb.travtus().message_requests(), 0, "nothing was sent");
    assert_eq!(
        env.sb.google().list_requests_total(),
        0,
        "nothing was fetched that could not be recorded"
    );

    std::fs::create_dir(&dir).expect("the admin creates it");
    let out = bin_with(&config, &["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(census(&env.sb).converged());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_holding_the_lock_stops_new_work_until_it_lets_go() {
    if sqlite_only(
        "storage::another_writer_holding_the_lock_stops_new_work_until_it_lets_go",
        "SQLite's one write lock, held by a sqlite3 session (PostgreSQL locks rows, and claims skip them: ledger::tests::postgres)",
    ) {
        return;
    }
    let env = spawn_env(seed(5)).await;
    let daemon = running_daemon(&env, &env.config_path, "locked.log").await;

    // An auditor's write transaction left open (e.g. `sqlite3` with BEGIN
    // EXCLUSIVE), for longer than the daemon's 5 s busy timeout.
    let holder = rusqlite::Connection::open(&env.ledger_path).expect("second connection");
    holder
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");
    let sent_before = env.sb.travtus().message_count();
    let marks = high_water(&env.ledger_path);
    add_work(&env, "while locked");
    wait_for_log(&daemon, "database is locked").await;
    assert_eq!(
        high_water(&env.ledger_path),
        marks,
        "no high-water mark moved past reviews that were not recorded"
    );
    let ledger = env.ledger_path.display().to_string();
    let log = daemon.log();
    let errors = lines_with(&log, "database is locked");
    assert!(
        errors.iter().all(|l| l.contains(&ledger)),
        "every error names the ledger: {errors:#?}"
    );
    // A second process refuses to start rather than wait forever.
    let out = env.bin(&["sync"]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let reasons = lines_with(&stderr, "review-sync:");
    assert!(
        reasons.len() == 1
            && reasons[0].contains(&ledger)
            && reasons[0].contains("database is locked"),
        "{stderr}"
    );
    assert_eq!(
        env.sb.travtus().message_count(),
        sent_before,
        "no new work while the ledger cannot record it"
    );
    eprintln!("storage: locked: {}", errors[0].trim());
    eprintln!("storage: locked, sync: {}", reasons[0]);

    holder.execute_batch("ROLLBACK").expect("let go");
    drop(holder);
    wait_for_convergence(&env, &daemon, "the daemon to catch up after the lock").await;
    let end = census(&env.sb);
    eprintln!(
        "storage: locked: reviews {}, lost 0, duplicates {}",
        end.reviews, end.duplicates
    );
    stop_cleanly(daemon, &env.ledger_path).await;
}

/// A tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the daemon of a failed test may still hold files open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem is full; the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last partial page: byte by byte until nothing fits.
    while file.write(&[0]).is_ok_and(|n| n == 1) {
        written += 1;
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_new_work_and_nothing_is_lost_once_space_is_freed() {
    if sqlite_only(
        "storage::a_full_disk_stops_new_work_and_nothing_is_lost_once_space_is_freed",
        "a full filesystem under the ledger's file",
    ) {
        return;
    }
    let env = spawn_env(seed(5)).await;
    let disk = env.dir.path().join("disk");
    let _mounted = match Tmpfs::mount(&disk, "8m") {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("storage: disk full: SKIPPED, cannot mount a small tmpfs: {reason}");
            return;
        }
    };
    let config = config_with_metrics(&env, "disk.toml", "disk/ledger.db");
    let ledger = disk.join("ledger.db");
    let daemon = running_daemon(&env, &config, "disk-full.log").await;
    let base = endpoint(&daemon).await;
    health_becomes(&base, 200, "ok").await;

    // Empty the WAL (a checkpoint that truncates it), so that the next
    // write needs new blocks, then take every free block.
    let checkpointer = rusqlite::Connection::open(&ledger).expect("second connection");
    let mut truncated = false;
    for _ in 0..100 {
        let busy: i64 = checkpointer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .expect("checkpoint");
        if busy == 0 {
            truncated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(truncated, "the WAL could be checkpointed");
    drop(checkpointer);
    let filler = disk.join("filler");
    let filled = fill(&filler);
    let sent_before = env.sb.travtus().message_count();
    let marks = high_water(&ledger);
    add_work(&env, "disk full");
    wait_for_log(&daemon, "database or disk is full").await;
    assert_eq!(
        high_water(&ledger),
        marks,
        "no high-water mark moved past reviews that were not recorded"
    );
    let log = daemon.log();
    let errors = lines_with(&log, "database or disk is full");
    let named = ledger.display().to_string();
    assert!(
        errors.iter().all(|l| l.contains(&named)),
        "every error names the ledger: {errors:#?}"
    );
    assert_eq!(
        env.sb.travtus().message_count(),
        sent_before,
        "no new work while the ledger cannot record it"
    );
    eprintln!(
        "storage: disk full ({filled} bytes of filler): {}",
        errors[0].trim()
    );
    // Health is red with the reason (the lock probe alone sees nothing:
    // taking the write lock needs no space).
    let body = health_becomes(&base, 503, "database or disk is full").await;
    assert!(
        body.starts_with("unhealthy: ledger write failed: "),
        "{body}"
    );
    assert!(body.contains(&named), "{body}");
    let (_, m) = get(&format!("{base}/metrics")).await;
    assert_eq!(sample(&m, "review_sync_healthy", &[]), Some(0.0), "{m}");
    assert!(
        sample(
            &m,
            "review_sync_ledger_errors_total",
            &[("error_type", "disk_full")]
        ) >= Some(1.0),
        "{m}"
    );
    eprintln!("storage: disk full, /healthz: {}", body.trim());

    std::fs::remove_file(&filler).expect("free the space");
    wait_for_convergence(&env, &daemon, "the daemon to catch up once space is freed").await;
    health_becomes(&base, 200, "ok").await;
    let (_, m) = get(&format!("{base}/metrics")).await;
    assert_eq!(sample(&m, "review_sync_healthy", &[]), Some(1.0), "{m}");
    let end = census(&env.sb);
    eprintln!(
        "storage: disk full: reviews {}, lost 0, duplicates {}",
        end.reviews, end.duplicates
    );
    stop_cleanly(daemon, &ledger).await;
}

/// `chattr +i`/`-i` on `paths`; the reason when the filesystem refuses.
fn chattr(flag: &str, paths: &[PathBuf]) -> Result<(), String> {
    let out = Command::new("chattr")
        .arg(flag)
        .args(paths)
        .output()
        .map_err(|e| format!("cannot run chattr: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Clears the immutable attribute on drop, so the temp dir can be removed
/// whatever happened.
struct Immutable(Vec<PathBuf>);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = chattr("-i", &self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_ledger_stops_new_work_refuses_new_starts_and_resumes() {
    if sqlite_only(
        "storage::a_read_only_ledger_stops_new_work_refuses_new_starts_and_resumes",
        "a read-only ledger file",
    ) {
        return;
    }
    let env = spawn_env(seed(5)).await;
    let daemon = running_daemon(&env, &env.config_path, "read-only.log").await;
    let wal = PathBuf::from(format!("{}-wal", env.ledger_path.display()));
    let files = vec![env.ledger_path.clone(), wal];
    if let Err(reason) = chattr("+i", &files) {
        eprintln!("storage: read-only: SKIPPED, cannot make the ledger immutable: {reason}");
        stop_cleanly(daemon, &env.ledger_path).await;
        return;
    }
    let immutable = Immutable(files);
    let sent_before = env.sb.travtus().message_count();
    let marks = high_water(&env.ledger_path);
    add_work(&env, "read-only");
    let named = env.ledger_path.display().to_string();
    wait_for_log(&daemon, "location poll failed").await;
    assert_eq!(
        high_water(&env.ledger_path),
        marks,
        "no high-water mark moved past reviews that were not recorded"
    );
    let log = daemon.log();
    let errors = lines_with(&log, "location poll failed");
    assert!(
        errors.iter().all(|l| l.contains(&named)),
        "every error names the ledger: {errors:#?}"
    );
    assert_eq!(
        env.sb.travtus().message_count(),
        sent_before,
        "no new work while the ledger cannot record it"
    );
    eprintln!("storage: read-only: {}", errors[0].trim());
    // A new start refuses, saying the file is read-only.
    let out = env.bin(&["sync"]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let reasons = lines_with(&stderr, "review-sync:");
    assert!(
        reasons.len() == 1 && reasons[0].contains(&named) && reasons[0].contains("read-only"),
        "{stderr}"
    );
    eprintln!("storage: read-only, sync: {}", reasons[0]);

    drop(immutable);
    wait_for_convergence(&env, &daemon, "the daemon to catch up once writable").await;
    let end = census(&env.sb);
    eprintln!(
        "storage: read-only: reviews {}, lost 0, duplicates {}",
        end.reviews, end.duplicates
    );
    stop_cleanly(daemon, &env.ledger_path).await;
}

/// The ledger files (`ledger.db`, `-wal`, `-shm`) of `ledger`.
fn ledger_files(ledger: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", ledger.display())))
        .collect()
}

/// Waits until the daemon logged `n` more lines containing `needle` than
/// `before`: ticks it reacted to, so the test waits for events, not time.
async fn wait_for_more(daemon: &Daemon, needle: &str, before: usize, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while lines_with(&daemon.log(), needle).len() < before + n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon did not log {n} more {needle:?}: {}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a deleted or replaced ledger must do to a running daemon: health
/// red naming the file, one error line, and no work: no list request, no
/// delivery, for three ticks of every source while reviews wait.
async fn takes_no_work(env: &TestEnv, daemon: &Daemon, base: &str, what: &str) {
    let body = health_becomes(base, 503, what).await;
    assert!(
        body.contains(&env.ledger_path.display().to_string()),
        "{body}"
    );
    wait_for_log(daemon, "ledger file deleted or replaced under the daemon").await;
    let (_, m) = get(&format!("{base}/metrics")).await;
    assert_eq!(sample(&m, "review_sync_healthy", &[]), Some(0.0), "{m}");
    eprintln!("storage: {what}: /healthz: {}", body.trim());

    let google = env.sb.google();
    let reads = || google.list_requests_total() + google.batch_requests();
    let lists = reads();
    let sent = env.sb.travtus().message_requests();
    let skipped = lines_with(&daemon.log(), "pass skipped").len();
    add_work(env, what);
    wait_for_more(daemon, "pass skipped", skipped, 3).await;
    assert_eq!(reads(), lists, "nothing polled while the ledger is gone");
    assert_eq!(
        env.sb.travtus().message_requests(),
        sent,
        "nothing sent while the ledger is gone"
    );
    let log = daemon.log();
    assert_eq!(
        lines_with(&log, "ledger file deleted or replaced under the daemon").len(),
        1,
        "said once, not on every refused call: {log}"
    );
}

/// The rescued copy the daemon saved next to `ledger`.
fn rescued(ledger: &Path) -> PathBuf {
    let dir = ledger.parent().expect("dir");
    let prefix = format!(
        "{}.rescued-",
        ledger.file_name().expect("name").to_string_lossy()
    );
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    assert_eq!(found.len(), 1, "one rescued copy: {found:?}");
    found.into_iter().next().expect("one")
}

/// Regression (issue 10.6): the ledger deleted under a running daemon was
/// written on silently; a restart then opened an empty file and sent every
/// review again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_ledger_stops_all_work_turns_health_red_and_is_rescued() {
    if sqlite_only(
        "storage::a_deleted_ledger_stops_all_work_turns_health_red_and_is_rescued",
        "the ledger's files deleted under the daemon",
    ) {
        return;
    }
    let env = spawn_env(seed(5)).await;
    let config = config_with_metrics(&env, "deleted.toml", "ledger.db");
    let daemon = running_daemon(&env, &config, "deleted.log").await;
    let base = endpoint(&daemon).await;
    health_becomes(&base, 200, "ok").await;
    let delivered = env.sb.travtus().message_count();
    // Travtus has every review; the ledger records the last answers a
    // moment later: the copy is compared once they are all recorded.
    wait_until("every accepted review recorded delivered", WAIT, || {
        env.rows()
            .iter()
            .filter(|r| r.status == review_sync::ledger::Status::Delivered)
            .count()
            == delivered
    })
    .await;

    // What `rm /var/lib/review-sync/ledger.db*` does.
    for file in ledger_files(&env.ledger_path) {
        std::fs::remove_file(&file).expect("delete");
    }
    takes_no_work(
        &env,
        &daemon,
        &base,
        "was deleted while review-sync had it open",
    )
    .await;
    assert!(
        !env.ledger_path.exists(),
        "no new ledger created behind the operator's back"
    );

    // The copy holds everything the deleted file held.
    let copy = rescued(&env.ledger_path);
    assert_eq!(integrity(&copy), "ok");
    let rows: i64 = rusqlite::Connection::open(&copy)
        .expect("open")
        .query_row(
            "SELECT COUNT(*) FROM reviews WHERE status = 'delivered'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(rows as usize, delivered, "every delivery is in the copy");
    eprintln!("storage: deleted: rescued as {}", copy.display());

    // The recovery the log line gives: stop, move the copy into place, start.
    let mut daemon = daemon;
    daemon.terminate();
    daemon
        .wait(review_sync::daemon::DRAIN_DEADLINE + Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("not stopped in time: {}", daemon.log()));
    std::fs::rename(&copy, &env.ledger_path).expect("move the copy into place");
    let daemon = Daemon::start(&config, &env.dir.path().join("deleted-2.log"));
    wait_for_convergence(
        &env,
        &daemon,
        "the restarted daemon to deliver the new work",
    )
    .await;
    let end = census(&env.sb);
    assert_eq!(end.duplicates, 0, "nothing sent twice after the recovery");
    eprintln!(
        "storage: deleted: reviews {}, lost 0, duplicates {}",
        end.reviews, end.duplicates
    );
    stop_cleanly(daemon, &env.ledger_path).await;
}

/// Regression (issue 10.6): a ledger replaced under the daemon (a restored
/// copy moved over it) was not noticed. The replacement, in use by another
/// process, must come out of the daemon's stop intact, `-wal` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_ledger_stops_all_work_and_its_replacement_is_left_alone() {
    if sqlite_only(
        "storage::a_replaced_ledger_stops_all_work_and_its_replacement_is_left_alone",
        "the ledger's files replaced under the daemon",
    ) {
        return;
    }
    let env = spawn_env(seed(5)).await;
    let config = config_with_metrics(&env, "replaced.toml", "ledger.db");
    let daemon = running_daemon(&env, &config, "replaced.log").await;
    let base = endpoint(&daemon).await;
    health_becomes(&base, 200, "ok").await;

    // Another ledger moved over the path, in use by another process in WAL
    // mode, with a commit still in its -wal.
    let other = env.dir.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&other).expect("other");
        conn.execute_batch("CREATE TABLE kept (note TEXT)")
            .expect("schema");
    }
    // (Its own -wal and -shm, not the daemon's: those go.)
    for file in &ledger_files(&env.ledger_path)[1..] {
        std::fs::remove_file(file).expect("delete");
    }
    std::fs::rename(&other, &env.ledger_path).expect("replace");
    let conn = rusqlite::Connection::open(&env.ledger_path).expect("open the replacement");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         INSERT INTO kept VALUES ('committed to the new file');",
    )
    .expect("write the replacement");
    takes_no_work(&env, &daemon, &base, "was replaced by another file").await;

    let mut daemon = daemon;
    daemon.terminate();
    daemon
        .wait(review_sync::daemon::DRAIN_DEADLINE + Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("not stopped in time: {}", daemon.log()));
    let wal = PathBuf::from(format!("{}-wal", env.ledger_path.display()));
    assert!(
        wal.exists(),
        "the replacement's -wal was unlinked by the stopping daemon"
    );
    let note: String = rusqlite::Connection::open(&env.ledger_path)
        .expect("reopen")
        .query_row("SELECT note FROM kept", [], |r| r.get(0))
        .expect("the commit in the replacement's WAL survived");
    assert_eq!(note, "committed to the new file");
    drop(conn);
}
