//! Local inputs (issues 10.7, 10.8, 10.11 and 13.1, 13.4, 13.6, 13.9): the
//! config, secret files, file-source inputs and the ledger's start-up, as
//! an operator meets them on a real install. Every file the binary opens is
//! a regular file of bounded size, read without ever blocking on a FIFO;
//! whatever cannot be read is named (file, line, reason), never a quiet
//! empty poll; `ledger` commands need only `[ledger]`; relative paths start
//! at the config's folder.
//!
//! Every run of the binary here is bounded: an address-space limit (so that
//! an unbounded read fails fast instead of taking the machine's memory) and
//! a deadline (so that a read blocked on a FIFO fails the test instead of
//! hanging it).

use crate::helpers::text as output;
use sandbox::{Sandbox, SandboxOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

/// How long one run of the binary may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(60);

/// The address space one run may use (`ulimit -v`, KiB): far above what the
/// daemon needs, far below what reading a device or a 1 GB line whole takes.
const ADDRESS_SPACE_KIB: u64 = 4 * 1024 * 1024;

/// A sandbox for Travtus and a folder holding a config that points at it.
struct Setup {
    sb: Sandbox,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    async fn new() -> Setup {
        let sb = Sandbox::start(SandboxOptions::default())
            .await
            .expect("sandbox starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        write_private(
            &dir.path().join("travtus_secret"),
            sandbox::TRAVTUS_CLIENT_SECRET,
        );
        Setup { sb, dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `[travtus]` (client secret in a file next to the config) and
    /// `[ledger] path = "ledger.db"`.
    fn head(&self) -> String {
        let base = self.sb.base_url();
        format!(
            "[travtus]\nbase_url = \"{base}/travtus\"\ntoken_url = \"{base}/travtus/oauth2/token\"\nclient_id = \"{}\"\nclient_secret = {{ file = \"travtus_secret\" }}\ntimeout = \"5s\"\n\n[ledger]\npath = \"ledger.db\"\n",
            sandbox::TRAVTUS_CLIENT_ID
        )
    }

    /// A config with one `file` source whose locations are `ids`.
    fn write_file_source(&self, ids: &[&str]) {
        let mut text = self.head();
        text.push_str("\n[[source]]\nname = \"drop\"\nkind = \"file\"\nplatform = \"partner\"\nschedule = \"0 0 * * * *\"\n");
        for id in ids {
            text.push_str(&format!(
                "\n  [[source.location]]\n  id = \"{id}\"\n  group_external_ref = \"portfolio-1\"\n"
            ));
        }
        self.write(&text);
    }

    fn write(&self, text: &str) {
        write_private(&self.config, text);
    }

    async fn bin(&self, args: &[&str]) -> Output {
        run(&self.config, args, &Run::default()).await
    }

    /// Review ids in the ledger, sorted.
    fn review_ids(&self) -> Vec<String> {
        query(
            &self.path("ledger.db"),
            "SELECT review_id FROM reviews ORDER BY review_id",
        )
    }
}

/// How to run the binary beyond `--config` and the arguments.
#[derive(Default)]
struct Run<'a> {
    cwd: Option<&'a Path>,
    env: Vec<(&'a str, &'a str)>,
    /// Run as this user (the tests run as root, whom file modes do not stop).
    uid: Option<u32>,
}

/// Runs the binary under [`ADDRESS_SPACE_KIB`] and [`DEADLINE`].
async fn run(config: &Path, args: &[&str], how: &Run<'_>) -> Output {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("REVIEW_SYNC_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in &how.env {
        cmd.env(k, v);
    }
    if let Some(dir) = how.cwd {
        cmd.current_dir(dir);
    }
    if let Some(uid) = how.uid {
        cmd.uid(uid).gid(uid);
    }
    match tokio::time::timeout(DEADLINE, cmd.output()).await {
        Ok(out) => out.expect("binary runs"),
        Err(_) => panic!("review-sync {args:?} did not finish within {DEADLINE:?}: it hangs"),
    }
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// One text column of every row of `sql`.
fn query(ledger: &Path, sql: &str) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("ledger opens");
    let mut st = conn.prepare(sql).expect("query");
    st.query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// A JSONL row of a valid review.
fn row(id: &str) -> String {
    format!(r#"{{"review_id":"{id}","created_datetime":"2024-01-01T00:00:00Z","rating":4}}"#)
}

/// Lines of `stderr` that say `review-sync:` (the one-line reason) or are
/// config problems.
fn reasons(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.contains(" WARN ") && !l.contains(" INFO "))
        .collect()
}

// ------------------------------------------------------------------ 10.7

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_files_that_are_devices_fifos_or_directories_are_refused_unread() {
    let s = Setup::new().await;
    s.write_file_source(&["drop/*.jsonl"]);
    let fifo = s.path("config-fifo.toml");
    mkfifo(&fifo);
    let big = s.path("big.toml");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(64 * 1024 * 1024))
        .expect("a sparse 64 MiB file");
    let cases: [(&Path, &str); 5] = [
        (
            Path::new("/dev/zero"),
            "a character device, not a regular file",
        ),
        (
            Path::new("/dev/urandom"),
            "a character device, not a regular file",
        ),
        (&fifo, "a FIFO (named pipe), not a regular file"),
        (s.dir.path(), "a directory, not a regular file"),
        (&big, "67108864 bytes, larger than the 16777216-byte cap"),
    ];
    for (path, reason) in cases {
        for command in [&["check"][..], &["ledger", "stats"], &["sync"]] {
            let out = run(path, command, &Run::default()).await;
            let (_, stderr) = output(&out);
            assert_eq!(
                out.status.code(),
                Some(78),
                "{path:?} {command:?}: {stderr}"
            );
            let lines = reasons(&stderr);
            let expected = format!("{}: cannot read config: {reason}", path.display());
            assert!(
                lines.first().is_some_and(|l| l.starts_with(&expected)),
                "{path:?} {command:?}: expected {expected:?}, got {stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_that_are_devices_or_fifos_are_refused_without_blocking() {
    let s = Setup::new().await;
    let fifo = s.path("secret-fifo");
    mkfifo(&fifo);
    for (secret, reason) in [
        (
            fifo.display().to_string(),
            "a FIFO (named pipe), not a regular file",
        ),
        (
            "/dev/zero".to_owned(),
            "a character device, not a regular file",
        ),
        (
            "/dev/urandom".to_owned(),
            "a character device, not a regular file",
        ),
        (
            s.dir.path().display().to_string(),
            "a directory, not a regular file",
        ),
    ] {
        let text = s.head().replace(
            "client_secret = { file = \"travtus_secret\" }",
            &format!("client_secret = {{ file = \"{secret}\" }}"),
        );
        s.write(&text);
        let out = s.bin(&["check"]).await;
        let (_, stderr) = output(&out);
        assert_eq!(out.status.code(), Some(78), "{secret}: {stderr}");
        let expected = format!(
            "{}:5:17: client_secret: cannot read secret file {secret}: {reason}",
            s.config.display()
        );
        assert_eq!(reasons(&stderr)[0], expected, "{stderr}");
    }
}

/// Runs the binary; its exit status, stderr and peak resident memory (KiB,
/// `wait4`).
fn run_measured(config: &Path, args: &[&str]) -> (std::process::ExitStatus, String, u64) {
    use std::os::unix::process::ExitStatusExt;
    // The peak RSS must be the binary's own. Linux carries the old address
    // space's high-water mark over an exec, and a child spawned straight from
    // this test process (vfork, or fork's copy) inherits the test process's,
    // which is large while other tests run in it. So a small Python process
    // forks and execs the binary and reports `wait4`'s figure for it alone.
    const SPAWNER: &str = "import os, sys\n\
        pid = os.fork()\n\
        if pid == 0:\n\
        \x20   fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\n\
        \x20   os.dup2(fd, 2)\n\
        \x20   os.dup2(os.open(os.devnull, os.O_WRONLY), 1)\n\
        \x20   os.execv(sys.argv[2], sys.argv[2:])\n\
        _, status, usage = os.wait4(pid, 0)\n\
        print(status, usage.ru_maxrss)\n";
    let log = config.with_extension("log");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(SPAWNER)
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs (it measures the binary's peak RSS)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, peak) = stdout
        .trim()
        .rsplit_once(' ')
        .and_then(|(s, p)| Some((s.parse::<i32>().ok()?, p.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("spawner said {stdout:?}, {:?}", out.stderr));
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    (std::process::ExitStatus::from_raw(status), stderr, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_jsonl_line_is_quarantined_unread_and_the_rows_around_it_are_ingested() {
    const LINE: usize = 96 * 1024 * 1024;
    let s = Setup::new().await;
    std::fs::create_dir(s.path("drop")).expect("mkdir");
    let file = s.path("drop/a.jsonl");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
        writeln!(w, "{}", row("before")).expect("write");
        // A well-formed row with a 96 MiB comment: valid JSON, no review.
        let head = br#"{"review_id":"huge","created_datetime":"2024-01-01T00:00:00Z","comment":""#;
        w.write_all(head).expect("write");
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..(LINE - head.len() - 2) / chunk.len() {
            w.write_all(&chunk).expect("write");
        }
        writeln!(w, "\"}}").expect("write");
        writeln!(w, "{}", row("after")).expect("write");
    }
    s.write_file_source(&["drop/*.jsonl"]);
    let offset = row("before").len() + 1;

    let config = s.config.clone();
    let (status, stderr, peak_kib) =
        tokio::task::spawn_blocking(move || run_measured(&config, &["sync", "--wait", "30s"]))
            .await
            .expect("measured run");
    assert!(status.success(), "{stderr}");
    assert_eq!(s.review_ids(), ["after", "before"], "{stderr}");
    let ledger = s.path("ledger.db");
    let reference = query(&ledger, "SELECT reference FROM quarantine");
    assert_eq!(reference, [format!("{}:2", file.display())]);
    let reason = query(&ledger, "SELECT reason FROM quarantine")[0].clone();
    assert!(
        reason.contains(&format!("byte offset {offset}")) && reason.contains("1048576-byte cap"),
        "{reason}"
    );
    let raw = query(&ledger, "SELECT raw FROM quarantine")[0].clone();
    assert!(
        raw.len() < 1024,
        "only the start of the line is kept: {} bytes",
        raw.len()
    );
    assert!(raw.starts_with(r#"{"review_id":"huge""#), "{raw}");
    eprintln!("inputs: a 96 MiB line, peak RSS {} MiB", peak_kib / 1024);
    assert!(
        peak_kib < 64 * 1024,
        "the line was read into memory: peak RSS {peak_kib} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_csv_record_is_quarantined_unread_and_the_rest_is_ingested() {
    let s = Setup::new().await;
    std::fs::create_dir(s.path("drop")).expect("mkdir");
    let header = "review_id,created_datetime,comment\n";
    let first = "c1,2024-01-01T00:00:00Z,\"fine, really\"\n";
    // A quoted field of 3 MiB spanning many lines: one record.
    let huge = format!(
        "huge,2024-01-01T00:00:00Z,\"{}\"\n",
        "line of a very long text\n".repeat(3 * 1024 * 1024 / 25)
    );
    let last = "c2,2024-01-01T00:00:00Z,bye\n";
    std::fs::write(s.path("drop/a.csv"), format!("{header}{first}{huge}{last}")).expect("write");
    s.write_file_source(&["drop/*.csv"]);
    let out = s.bin(&["sync", "--wait", "30s"]).await;
    let (stdout, stderr) = output(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(s.review_ids(), ["c1", "c2"]);
    let ledger = s.path("ledger.db");
    let reference = query(&ledger, "SELECT reference FROM quarantine");
    assert_eq!(reference, [format!("{}:3", s.path("drop/a.csv").display())]);
    let reason = query(&ledger, "SELECT reason FROM quarantine")[0].clone();
    let offset = header.len() + first.len();
    assert!(
        reason.contains(&format!("byte offset {offset}")) && reason.contains("cap"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_size_cap_is_named_and_the_other_files_are_read() {
    let s = Setup::new().await;
    std::fs::create_dir(s.path("drop")).expect("mkdir");
    std::fs::write(s.path("drop/a.jsonl"), row("small")).expect("write");
    let big = s.path("drop/b.jsonl");
    // Sparse: 1 GiB and one byte of nothing, made in an instant.
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(1024 * 1024 * 1024 + 1))
        .expect("sparse file");
    s.write_file_source(&["drop/*.jsonl"]);
    let out = s.bin(&["sync", "--wait", "30s"]).await;
    let (stdout, stderr) = output(&out);
    assert!(
        !out.status.success(),
        "a location failed: {stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: 1073741825 bytes, larger than the 1073741824-byte cap of one file",
            big.display()
        )),
        "{stderr}"
    );
    assert_eq!(s.review_ids(), ["small"]);
}

// ------------------------------------------------------------------ 10.8

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_file_source_inputs_are_named_by_sync_check_and_check_online() {
    let s = Setup::new().await;
    let drop = s.path("drop");
    std::fs::create_dir(&drop).expect("mkdir");
    std::fs::write(drop.join("good.jsonl"), row("good")).expect("write");
    std::fs::write(drop.join("notes.txt"), row("txt")).expect("write");
    mkfifo(&drop.join("pipe.jsonl"));
    std::fs::create_dir(drop.join("folder.jsonl")).expect("mkdir");
    let latin1 = drop.join(std::ffi::OsStr::from_bytes(b"caf\xe9.jsonl"));
    std::fs::write(&latin1, row("latin1")).expect("write");
    s.write_file_source(&["drop/*", "/dev/zero"]);
    let named = [
        (
            drop.join("notes.txt").display().to_string(),
            "not a .jsonl or .csv file",
        ),
        (
            drop.join("pipe.jsonl").display().to_string(),
            "a FIFO (named pipe), not a regular file",
        ),
        (
            drop.join("folder.jsonl").display().to_string(),
            "a directory, not a regular file",
        ),
        (
            format!("{}/caf\\xE9.jsonl", drop.display()),
            "the file name is not valid UTF-8",
        ),
        (
            "/dev/zero".to_owned(),
            "a character device, not a regular file",
        ),
    ];

    let out = s.bin(&["sync", "--wait", "30s"]).await;
    let (stdout, stderr) = output(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("drop") && stdout.lines().nth(1).is_some_and(|l| l.ends_with(" 2")),
        "two locations failed: {stdout}"
    );
    for (path, reason) in &named {
        assert!(
            stderr.contains(&format!("{path}: {reason}")),
            "sync does not name {path}: {reason}\n{stderr}"
        );
    }
    assert_eq!(s.review_ids(), ["good"], "the readable file is ingested");

    let out = s.bin(&["check", "--online"]).await;
    let (stdout, stderr) = output(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for (path, reason) in &named {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("{path}: {reason}")))
            .unwrap_or_else(|| panic!("check --online does not name {path}: {reason}\n{stdout}"));
        assert!(
            line.starts_with("drop ") && line.contains("FAILED"),
            "{line}"
        );
    }
    assert!(!stdout.contains("no reviews"), "{stdout}");

    // Offline, `check` says what each location matches, and warns.
    let out = s.bin(&["check"]).await;
    let (stdout, stderr) = output(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "drop drop/*: 1 file(s): {}",
            drop.join("good.jsonl").display()
        )),
        "{stdout}"
    );
    for (path, reason) in &named {
        assert!(
            stdout.lines().any(
                |l| l.starts_with("warning: drop ") && l.contains(&format!("{path}: {reason}"))
            ),
            "check does not warn about {path}\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_daemon_cannot_read_is_named() {
    let s = Setup::new().await;
    let drop = s.path("drop");
    std::fs::create_dir(&drop).expect("mkdir");
    let locked = drop.join("locked.jsonl");
    std::fs::write(&locked, row("locked")).expect("write");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    s.write_file_source(&["drop/*.jsonl"]);
    // Root reads any file: run as nobody, who can reach the folder and the
    // config but not the file.
    let root = rustix_is_root();
    let how = Run {
        uid: root.then_some(65534),
        ..Run::default()
    };
    if root {
        for p in [s.dir.path(), &drop] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for p in [&s.config, &s.path("travtus_secret")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
    let out = run(&s.config, &["check", "--online"], &how).await;
    let (stdout, stderr) = output(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.lines().any(|l| l.contains("FAILED")
            && l.contains(&format!(
                "{}: cannot open: Permission denied",
                locked.display()
            ))),
        "{stdout}\n{stderr}"
    );
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

// ------------------------------------------------------------------ 13.4

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_paths_start_at_the_config_folder_whatever_the_working_directory() {
    let s = Setup::new().await;
    std::fs::create_dir(s.path("drop")).expect("mkdir");
    std::fs::write(
        s.path("drop/a.jsonl"),
        format!("{}\n{}\n", row("a1"), row("a2")),
    )
    .expect("write");
    std::fs::write(s.path("drop/b.jsonl"), row("b1")).expect("write");
    s.write_file_source(&["drop/*.jsonl"]);
    let elsewhere = Run {
        cwd: Some(Path::new("/")),
        ..Run::default()
    };

    let out = run(&s.config, &["check"], &elsewhere).await;
    let (stdout, stderr) = output(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "drop drop/*.jsonl: 2 file(s): {}, {}",
            s.path("drop/a.jsonl").display(),
            s.path("drop/b.jsonl").display()
        )),
        "{stdout}"
    );
    let out = run(&s.config, &["check", "--online"], &elsewhere).await;
    let (stdout, stderr) = output(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("drop drop/*.jsonl: ok: 2 file(s), 3 review(s)"),
        "{stdout}"
    );

    let out = run(&s.config, &["sync", "--wait", "30s"], &elsewhere).await;
    let (stdout, stderr) = output(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(s.review_ids(), ["a1", "a2", "b1"]);
    assert_eq!(s.sb.travtus().messages().len(), 3);
}

// ------------------------------------------------------------------ 13.1

/// The example config as installed: `/etc/review-sync` becomes `etc`, the
/// state directory `state`, both under `root`.
fn installed_example(root: &Path) -> PathBuf {
    let etc = root.join("etc");
    let state = root.join("state");
    std::fs::create_dir_all(&etc).expect("etc");
    std::fs::create_dir_all(state.join("import")).expect("state");
    let text = include_str!("../../config.example.toml")
        .replace("/var/lib/review-sync", &state.display().to_string());
    let config = etc.join("config.toml");
    write_private(&config, &text);
    write_private(&etc.join("google_refresh_token"), "refresh\n");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_commands_need_only_the_ledger_section() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = installed_example(root.path());
    // An admin's slip in a source: ledger commands do not care.
    let text = std::fs::read_to_string(&config).expect("read");
    write_private(
        &config,
        &text.replacen("locale = \"en_US\"", "locale = \"english\"", 1),
    );
    let ledger = root.path().join("state/ledger.db");
    drop(review_sync::ledger::Ledger::open(&ledger).expect("ledger"));
    for args in [
        &["ledger", "stats"][..],
        &["ledger", "list", "--status", "held"],
        &["ledger", "export", "--format", "jsonl"],
    ] {
        let out = run(&config, args, &Run::default()).await;
        let (stdout, stderr) = output(&out);
        assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
        assert!(!stderr.contains("CREDENTIALS_DIRECTORY"), "{stderr}");
    }

    // A broken [ledger] is still refused, naming the line.
    write_private(
        &config,
        &text.replacen("# retain_text_days = 365", "retain_text_days = 0", 1),
    );
    let out = run(&config, &["ledger", "stats"], &Run::default()).await;
    let (_, stderr) = output(&out);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let problems: Vec<&str> = reasons(&stderr);
    assert_eq!(problems.len(), 2, "one problem and the summary: {stderr}");
    assert!(
        problems[0].starts_with(&format!("{}:", config.display()))
            && problems[0].contains(": retain_text_days: must be a whole number of days"),
        "{stderr}"
    );
    let line: usize = text
        .lines()
        .position(|l| l.starts_with("# retain_text_days"))
        .expect("the key")
        + 1;
    assert!(
        problems[0].contains(&format!(":{line}:20: ")),
        "line {line}: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_credentials_from_a_named_directory_and_says_how_when_none_is_set() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = installed_example(root.path());
    let credentials = root.path().join("credentials");
    std::fs::create_dir(&credentials).expect("mkdir");
    for name in [
        "travtus_client_secret",
        "google_client_secret",
        "google_refresh_token",
        "google_places_api_key",
        "yelp_api_key",
        "facebook_page_token",
        "facebook_page_token_789",
        "trustpilot_api_key",
        "trustpilot_api_secret",
        "trustpilot_username",
        "trustpilot_password",
    ] {
        write_private(&credentials.join(name), &format!("{name}-value\n"));
    }
    let with_env = Run {
        env: vec![("GOOGLE_CLIENT_SECRET", "google-secret")],
        ..Run::default()
    };

    let out = run(&config, &["check"], &with_env).await;
    let (stdout, stderr) = output(&out);
    assert_eq!(out.status.code(), Some(78), "{stdout}\n{stderr}");
    let problems = reasons(&stderr);
    assert_eq!(
        problems.len(),
        2,
        "one hint and the summary, not 11 problems: {stderr}"
    );
    assert!(
        problems[0].contains("11 secrets are systemd credentials")
            && problems[0].contains("--credentials-directory")
            && problems[0].contains("$CREDENTIALS_DIRECTORY"),
        "{stderr}"
    );

    let dir = credentials.display().to_string();
    let out = run(
        &config,
        &["check", "--credentials-directory", &dir],
        &with_env,
    )
    .await;
    let (stdout, stderr) = output(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(": ok: 6 source(s)"), "{stdout}");
    for secret in [
        "travtus_client_secret-value",
        "google_client_secret-value",
        "google_refresh_token-value",
    ] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }

    let under_systemd = Run {
        env: vec![
            ("GOOGLE_CLIENT_SECRET", "google-secret"),
            ("CREDENTIALS_DIRECTORY", &dir),
        ],
        ..Run::default()
    };
    let out = run(&config, &["check"], &under_systemd).await;
    assert!(out.status.success(), "{}", output(&out).1);
}

// ------------------------------------------------------------------ 13.6

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_in_a_missing_directory_is_a_config_error_that_check_catches() {
    let s = Setup::new().await;
    s.write_file_source(&["drop/*.jsonl"]);
    let text = std::fs::read_to_string(&s.config).expect("read");
    s.write(&text.replace("path = \"ledger.db\"", "path = \"state/ledger.db\""));
    let line = text
        .lines()
        .position(|l| l.starts_with("path = "))
        .expect("path")
        + 1;
    for command in [&["check"][..], &["sync"], &["run"], &["ledger", "stats"]] {
        let out = s.bin(command).await;
        let (_, stderr) = output(&out);
        assert_eq!(out.status.code(), Some(78), "{command:?}: {stderr}");
        let expected = format!(
            "{}:{line}:8: path: directory {} does not exist",
            s.config.display(),
            s.path("state").display()
        );
        assert!(
            reasons(&stderr)[0].starts_with(&expected),
            "{command:?}: {stderr}"
        );
    }
    assert!(!s.path("state").exists());
}

// ------------------------------------------------------------------ 13.9

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_others_can_read_is_warned_about_by_check_and_at_start() {
    let s = Setup::new().await;
    std::fs::create_dir(s.path("drop")).expect("mkdir");
    s.write_file_source(&["drop/*.jsonl"]);
    let secret = s.path("travtus_secret");
    for (mode, warned) in [
        (0o644, true),
        (0o640, true),
        (0o604, true),
        (0o600, false),
        (0o400, false),
    ] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let out = s.bin(&["check"]).await;
        let (stdout, stderr) = output(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(!stdout.contains(sandbox::TRAVTUS_CLIENT_SECRET));
        let expected = format!(
            "client_secret: secret file {} is readable by group or others (mode 0{mode:o})",
            secret.display()
        );
        let found = stdout
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains(&expected));
        assert_eq!(found, warned, "mode {mode:o}: {stdout}");
        let out = s.bin(&["sync", "--wait", "10s"]).await;
        let (_, stderr) = output(&out);
        assert_eq!(
            stderr
                .lines()
                .any(|l| l.contains(" WARN ") && l.contains(&expected)),
            warned,
            "at start, mode {mode:o}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_are_json_lines_with_log_format_json() {
    let s = Setup::new().await;
    s.write_file_source(&["drop/*.jsonl"]);
    let text = std::fs::read_to_string(&s.config).expect("read");
    s.write(
        &text
            .replace("timeout = \"5s\"", "timeout = \"soon\"")
            .replace("schedule = \"0 0 * * * *\"", "schedule = \"daily\""),
    );
    for command in [&["check"][..], &["sync"]] {
        let args: Vec<&str> = ["--log-format", "json"]
            .iter()
            .chain(command)
            .copied()
            .collect();
        let out = s.bin(&args).await;
        let (_, stderr) = output(&out);
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        let events: Vec<serde_json::Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let problems: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["fields"]["file"].is_string())
            .collect();
        assert_eq!(problems.len(), 2, "{stderr}");
        let config = s.config.display().to_string();
        let got: Vec<(String, u64, u64)> = problems
            .iter()
            .map(|e| {
                assert_eq!(e["level"], "ERROR");
                assert_eq!(e["fields"]["file"], config.as_str());
                (
                    e["fields"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    e["fields"]["line"].as_u64().unwrap_or(0),
                    e["fields"]["column"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert!(
            got[0].0.starts_with("timeout: invalid duration") && (got[0].1, got[0].2) == (6, 11),
            "{got:?}"
        );
        assert!(
            got[1].0.starts_with("schedule: invalid cron expression") && got[1].1 == 15,
            "{got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_failures_name_the_url_without_its_query() {
    let s = Setup::new().await;
    let base = s.sb.base_url();
    let mut text = s.head().replace(
        &format!("token_url = \"{base}/travtus/oauth2/token\""),
        &format!("token_url = \"{base}/travtus/oauth2/token?tenant=acme\""),
    );
    write_private(&s.path("travtus_secret"), "a wrong secret");
    write_private(&s.path("google_secret"), sandbox::GOOGLE_CLIENT_SECRET);
    write_private(&s.path("google_refresh"), sandbox::GOOGLE_REFRESH_TOKEN);
    text.push_str(&format!(
        "\n[[source]]\nname = \"g\"\nkind = \"google_business_profile\"\nschedule = \"0 0 * * * *\"\nclient_id = \"{}\"\nclient_secret = {{ file = \"google_secret\" }}\nrefresh_token = {{ file = \"google_refresh\" }}\napi_base_url = \"{base}/google\"\ntoken_url = \"{base}/google/token\"\n  [[source.location]]\n  id = \"accounts/404/locations/404\"\n  group_external_ref = \"p\"\n",
        sandbox::GOOGLE_CLIENT_ID
    ));
    s.write(&text);
    let out = s.bin(&["check", "--online"]).await;
    let (stdout, stderr) = output(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let travtus = stdout
        .lines()
        .find(|l| l.starts_with("travtus:"))
        .expect("travtus line");
    assert!(
        travtus.contains("FAILED")
            && travtus.contains(&format!("POST {base}/travtus/oauth2/token")),
        "{travtus}"
    );
    let google = stdout
        .lines()
        .find(|l| l.starts_with("g "))
        .expect("google line");
    assert!(
        google.contains("FAILED")
            && google.contains(&format!(
                "GET {base}/google/v4/accounts/404/locations/404/reviews"
            )),
        "{google}"
    );
    assert!(
        !stdout.contains("tenant=acme") && !stdout.contains("pageSize"),
        "{stdout}"
    );
    assert!(!stdout.contains("a wrong secret"));
}

// ----------------------------------------------------------------- 10.11

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_of_an_unknown_schema_version_gets_one_message_from_every_command() {
    let s = Setup::new().await;
    std::fs::create_dir(s.path("drop")).expect("mkdir");
    s.write_file_source(&["drop/*.jsonl"]);
    let ledger = s.path("ledger.db");
    drop(review_sync::ledger::Ledger::open(&ledger).expect("ledger"));
    for (version, says) in [
        (-1, "review-sync never writes a negative version"),
        (99, "written by a newer review-sync"),
    ] {
        rusqlite::Connection::open(&ledger)
            .and_then(|c| c.pragma_update(None, "user_version", version))
            .expect("user_version");
        let mut seen = Vec::new();
        for command in [
            &["ledger", "stats"][..],
            &["sync"],
            &["ledger", "retry"],
            &["run"],
        ] {
            let out = s.bin(command).await;
            let (_, stderr) = output(&out);
            assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
            let line = stderr
                .lines()
                .find(|l| l.starts_with("review-sync: "))
                .unwrap_or_else(|| panic!("{command:?}: {stderr}"));
            let at = line.find("ledger ").expect("names the ledger");
            seen.push(line[at..].to_owned());
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "one message: {seen:#?}"
        );
        assert!(
            seen[0].starts_with(&format!(
                "ledger {}: schema version {version} is not one this review-sync knows",
                ledger.display()
            )) && seen[0].contains(says),
            "{}",
            seen[0]
        );
    }
}

/// A tmpfs mounted on a directory, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path) -> Result<Mount, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Mount(dir.to_owned()))
    }

    fn read_only(&self) {
        let status = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount read-only");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_on_a_read_only_mount_is_named_as_such() {
    let s = Setup::new().await;
    let state = s.path("state");
    std::fs::create_dir(&state).expect("mkdir");
    let mount = match Mount::tmpfs(&state) {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("inputs: read-only mount: SKIPPED, cannot mount a tmpfs: {reason}");
            return;
        }
    };
    std::fs::create_dir(s.path("drop")).expect("mkdir");
    s.write_file_source(&["drop/*.jsonl"]);
    let text = std::fs::read_to_string(&s.config).expect("read");
    s.write(&text.replace("path = \"ledger.db\"", "path = \"state/ledger.db\""));
    let ledger = state.join("ledger.db");
    // A ledger closed cleanly: no -wal or -shm file beside it.
    drop(review_sync::ledger::Ledger::open(&ledger).expect("ledger"));
    rusqlite::Connection::open(&ledger)
        .and_then(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
        .expect("checkpoint");
    for extra in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{extra}", ledger.display()));
    }
    mount.read_only();
    for command in [&["ledger", "stats"][..], &["sync"], &["ledger", "retry"]] {
        let out = s.bin(command).await;
        let (_, stderr) = output(&out);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("review-sync: "))
            .unwrap_or_else(|| panic!("{command:?}: {stderr}"));
        assert!(
            line.contains(&format!("ledger {}", ledger.display()))
                && line.contains(&format!("{} is on a read-only filesystem", state.display())),
            "{command:?}: {line}"
        );
        assert!(!line.contains("unable to open database file"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_other_hosts_can_reach_is_warned_about() {
    let s = Setup::new().await;
    std::fs::create_dir(s.path("drop")).expect("mkdir");
    s.write_file_source(&["drop/*.jsonl"]);
    let text = std::fs::read_to_string(&s.config).expect("read");
    for (listen, warned) in [
        ("0.0.0.0:9187", true),
        ("[::]:9187", true),
        ("192.0.2.1:9187", true),
        ("127.0.0.1:0", false),
        ("[::1]:0", false),
    ] {
        s.write(&format!("{text}\n[metrics]\nlisten = \"{listen}\"\n"));
        let out = s.bin(&["check"]).await;
        let (stdout, stderr) = output(&out);
        assert!(out.status.success(), "{stderr}");
        let warning = stdout
            .lines()
            .find(|l| l.starts_with("warning: ") && l.contains("listen:"));
        assert_eq!(warning.is_some(), warned, "{listen}: {stdout}");
        if let Some(w) = warning {
            assert!(w.contains("no authentication"), "{w}");
        }
    }
    // `run` says it too, before it binds (TEST-NET-1 is never local, so the
    // daemon then stops: it never opens a port to other hosts here).
    s.write(&format!("{text}\n[metrics]\nlisten = \"192.0.2.1:9187\"\n"));
    let out = s.bin(&["run"]).await;
    let (_, stderr) = output(&out);
    assert!(
        stderr.lines().any(|l| l.contains(" WARN ")
            && l.contains("listen: 192.0.2.1:9187")
            && l.contains("no authentication")),
        "{stderr}"
    );
}
