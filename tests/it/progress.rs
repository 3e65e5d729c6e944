//! What the operator sees (issue 13, item 7), through the real binary:
//! `sync`'s progress on a terminal (counts, log lines above the bar, no bar
//! at all for JSON logs), JSON logs that are JSON on every stderr line,
//! `review-sync sandbox > cfg.toml` giving a valid config, and `check`
//! printing each warning once.
//!
//! A terminal is a real pseudo-terminal (`openpty`) as the child's stderr.

use crate::helpers::{TestEnv, seed, spawn_env, text};
use sandbox::{Endpoint, FaultRates, Misbehaviour};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const HANG: Duration = Duration::from_secs(120);

/// An env whose list answers each take 700 ms (so that a `sync` runs for
/// a couple of seconds: long enough for the bar to be drawn, and for log
/// lines to come while it is) and whose first location answers invalid
/// JSON (so that the sync fails, with a note on stderr).
async fn slow_failing_env() -> TestEnv {
    let env = spawn_env(seed(5)).await;
    let bad = env.sb.google().locations()[0].clone();
    env.sb.google().misbehave(&bad, Misbehaviour::InvalidJson);
    env.sb.faults().set_rates(
        Endpoint::GoogleList,
        FaultRates {
            slow: 1.0,
            slow_by: Duration::from_millis(700),
            ..FaultRates::default()
        },
    );
    env
}

/// Runs the binary with `args` and its stderr on a new pseudo-terminal of
/// 40 x 200; returns the exit status and everything written to the
/// terminal.
pub(crate) async fn on_a_terminal(
    env: &TestEnv,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 200,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors into the integers we own;
    // null name and termios are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(&env.config_path)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .kill_on_drop(true)
        .spawn()
        .expect("binary runs");
    // The command held our only copy of the slave side and is gone: the
    // master reads EIO once the child has exited.
    let reader = std::thread::spawn(move || {
        let mut master = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    });
    let status = tokio::time::timeout(HANG, child.wait())
        .await
        .expect("the binary ends")
        .expect("wait");
    let out = tokio::task::spawn_blocking(move || reader.join().expect("reader"))
        .await
        .expect("join");
    (status, String::from_utf8_lossy(&out).into_owned())
}

/// `text` without ANSI escape sequences (CSI `ESC [ ... letter`).
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// What a terminal shows on each line: the text after the line's last
/// carriage return (earlier text was overwritten), escapes removed.
fn screen_lines(raw: &str) -> Vec<String> {
    raw.split('\n')
        .map(|line| {
            // The terminal ends its lines with "\r\n".
            let line = strip_ansi(line.trim_end_matches('\r'));
            line.rsplit('\r').next().unwrap_or("").to_owned()
        })
        .collect()
}

/// Regression (issue 13, item 7): on a terminal `sync` showed only
/// "polling and delivering [4s]", and log lines were written into the
/// spinner's line. It now shows counts, and each log line starts a line of
/// its own above the bar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_sync_shows_counts_and_logs_above_the_bar() {
    let env = slow_failing_env().await;
    let (status, raw) = on_a_terminal(&env, &["sync"]).await;
    assert!(!status.success(), "{raw}");
    let plain = strip_ansi(&raw);
    assert!(
        plain.contains("locations")
            && plain.contains(" new, ")
            && plain.contains(" delivered, ")
            && plain.contains(" pending; ")
            && plain.contains(" rate waits"),
        "the bar shows counts:\n{plain}"
    );
    // Every log line (the failed location and the pass summary, logged
    // while the bar is drawn) is whole on its own line.
    let logs: Vec<String> = screen_lines(&raw)
        .into_iter()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN "))
        .collect();
    assert!(
        logs.iter().any(|l| l.contains("poll pass finished"))
            && logs.iter().any(|l| l.contains("location poll failed")),
        "{raw}"
    );
    for line in &logs {
        assert!(
            line.starts_with("20"),
            "a log line shares its line with the bar: {line:?}"
        );
    }
}

/// Regression (issue 13, item 7): with `--log-format json` on a terminal,
/// spinner frames were drawn between the JSON lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_json_logs_carry_no_spinner_bytes() {
    let env = slow_failing_env().await;
    let (status, raw) = on_a_terminal(&env, &["--log-format", "json", "sync"]).await;
    assert!(!status.success(), "{raw}");
    let mut lines = 0;
    for line in raw.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        lines += 1;
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
    }
    assert!(lines > 0, "logs were written");
}

/// Regression (issue 13, item 7): with `--log-format json` and stderr a
/// pipe, `sync`'s closing note ("not everything was delivered") was plain
/// text among the JSON lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_to_a_pipe_are_json_on_every_line() {
    let env = slow_failing_env().await;
    let out: Output = tokio::time::timeout(HANG, env.bin(&["--log-format", "json", "sync"]))
        .await
        .expect("sync ends");
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    let mut notes = 0;
    for line in stderr.lines() {
        let json: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        let message = json["fields"]["message"].as_str().unwrap_or_default();
        if message.starts_with("not everything was delivered: ") {
            notes += 1;
        }
    }
    assert_eq!(notes, 1, "the closing note is a log event:\n{stderr}");
}

/// `review-sync sandbox --listen 127.0.0.1:0` started as a child: its
/// stdout once the banner (written after the config) is on stderr.
struct SandboxBinary {
    child: tokio::process::Child,
    config: String,
}

async fn sandbox_binary() -> SandboxBinary {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary runs");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.expect("read stderr") {
            if line.starts_with("sandbox listening on ") {
                return;
            }
        }
        panic!("the sandbox ended without its banner");
    })
    .await
    .expect("the banner comes");
    // Stdout is line-buffered and the config was flushed before the banner:
    // it is all in the pipe. Read what is there without waiting for EOF.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut config = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(Duration::from_millis(500), stdout.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => config.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read stdout: {e}"),
        }
    }
    SandboxBinary {
        child,
        config: String::from_utf8(config).expect("utf-8"),
    }
}

/// Runs the binary with `--config path` and `args`.
async fn with_config(path: &std::path::Path, args: &[&str]) -> Output {
    tokio::time::timeout(
        HANG,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
            .arg("--config")
            .arg(path)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ends")
    .expect("binary runs")
}

/// Regression (issue 13, item 7): `review-sync sandbox > cfg.toml` was not
/// valid TOML, because the banner was on stdout. Stdout is now exactly the
/// config: it parses, `check` accepts it, and a `sync` with it delivers
/// everything the running sandbox holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_stdout_is_exactly_a_working_config() {
    let mut sb = sandbox_binary().await;
    let table: toml::Table = toml::from_str(&sb.config)
        .unwrap_or_else(|e| panic!("stdout is not TOML: {e}\n{}", sb.config));
    assert!(table.contains_key("travtus") && table.contains_key("source"));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cfg.toml");
    std::fs::write(&path, &sb.config).expect("write");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let out = with_config(&path, &["check"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("warning") && !stderr.contains("WARN"),
        "{stdout}\n{stderr}"
    );

    let out = with_config(&path, &["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("pending 0, held 0, rejected 0"), "{stdout}");
    sb.child.start_kill().expect("stop the sandbox");
}

/// Regression (issue 13, item 7): `check` printed each warning twice (once
/// as a log line, once as its own output), e.g. for plain secrets (as in
/// the sandbox's config) in a file others can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_each_warning_once() {
    let env = spawn_env(seed(1)).await;
    // Plain-string secrets, as `review-sync sandbox` prints them, in a
    // file others can read.
    let config = std::fs::read_to_string(&env.config_path)
        .expect("config")
        .replace(
            "client_secret = { file = \"google_secret\" }",
            &format!("client_secret = \"{}\"", sandbox::GOOGLE_CLIENT_SECRET),
        )
        .replace(
            "refresh_token = { file = \"google_refresh\" }",
            &format!("refresh_token = \"{}\"", sandbox::GOOGLE_REFRESH_TOKEN),
        );
    std::fs::write(&env.config_path, config).expect("write");
    let path = env.config_path.clone();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let out = with_config(&path, &["check"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Every warning, the quota plan's too (the test's schedule is every
    // second), is printed once; two are the plain secrets'.
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("plain-string secret"))
            .count(),
        2,
        "plain secrets are warned about:\n{stdout}"
    );
    let both = format!("{stdout}\n{stderr}");
    for warning in warnings {
        let text = warning.trim_start_matches("warning: ");
        assert_eq!(
            both.matches(text).count(),
            1,
            "printed more than once: {text}"
        );
    }
}
