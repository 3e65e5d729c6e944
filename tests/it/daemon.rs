//! The daemon through the real binary: systemd notifications (READY,
//! WATCHDOG, RELOADING, STOPPING), continuous delivery, a refused reload
//! that keeps the old config, a clean stop.

use crate::helpers::{seed, spawn_env, wait_until};
use std::time::Duration;
use tokio::net::UnixDatagram;

const WAIT: Duration = Duration::from_secs(30);

async fn next_notification(sock: &UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, sock.recv(&mut buf))
        .await
        .expect("a notification in time")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn wait_for_state(sock: &UnixDatagram, state: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let msg = next_notification(sock).await;
        let done = msg.lines().any(|l| l == state);
        seen.push(msg);
        if done {
            return seen;
        }
    }
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", sig, &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_notifies_systemd_delivers_refuses_a_bad_reload_and_stops_cleanly() {
    let env = spawn_env(seed(10)).await;
    let sock_path = env.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(&env.config_path)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        // A 2 s watchdog: the daemon pings every second while alive.
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("daemon starts");

    let first = wait_for_state(&sock, "READY=1").await;
    assert_eq!(first.len(), 1, "READY=1 comes first: {first:?}");
    let expected = env.google_review_count();
    let travtus = env.sb.travtus().clone();
    wait_until("the daemon to deliver every review", WAIT, || {
        travtus.message_count() >= expected
    })
    .await;
    // Alive (scheduler ticking, delivery loop running, ledger answering):
    // the watchdog pings.
    wait_for_state(&sock, "WATCHDOG=1").await;

    // An invalid config on SIGHUP is refused; the daemon keeps running on the old one.
    let good = std::fs::read_to_string(&env.config_path).expect("config");
    std::fs::write(
        &env.config_path,
        good.replace("schedule = \"*/1 * * * * *\"", "schedule = \"bogus\""),
    )
    .expect("write");
    signal(&child, "HUP");
    let seen = wait_for_state(&sock, "READY=1").await;
    assert!(seen.iter().any(|m| m.contains("RELOADING=1")), "{seen:?}");
    let reloading = seen.iter().position(|m| m.contains("RELOADING=1"));
    assert!(
        seen[reloading.unwrap_or_default()].contains("MONOTONIC_USEC="),
        "systemd >= 253 wants MONOTONIC_USEC with RELOADING=1: {seen:?}"
    );
    // The daemon kept its old config and is still alive: the watchdog pings on.
    wait_for_state(&sock, "WATCHDOG=1").await;
    let google = env.sb.google().clone();
    let location = google.locations()[0].clone();
    google.add_review(
        &location,
        sandbox::NewGoogleReview {
            star_rating: Some(4),
            comment: Some("after reload".into()),
            display_name: "X".into(),
            is_anonymous: false,
        },
    );
    wait_until("the old config to keep polling", WAIT, || {
        travtus.message_count() > expected
    })
    .await;

    std::fs::write(&env.config_path, good).expect("restore");
    signal(&child, "TERM");
    wait_for_state(&sock, "STOPPING=1").await;
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("stops in time")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "clean exit: {stderr}");
    assert!(stderr.contains("new config refused"), "{stderr}");
    assert!(
        stderr.contains("schedule"),
        "the refusal says why: {stderr}"
    );
}
