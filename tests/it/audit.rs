//! Auditing: the README's example queries against a seeded ledger, the
//! `ledger` commands' formats and filters, retention (`ledger purge`) that
//! never causes a resend, backups taken while a writer is busy, and an export
//! whose memory stays flat as the ledger grows.

use crate::helpers::{TestEnv, on_postgres, seed, spawn_env, text, try_ledger_sql};
use review_sync::ledger::{IncomingReview, Ledger, PURGED_FIELDS, PageRecord, PurgedBy, Target};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The SQL statements of the README's "Auditing" section, in order.
fn readme_queries() -> Vec<String> {
    readme_queries_in("sql")
}

/// The queries of the ```` ```LANG ```` blocks of the README's Auditing section.
fn readme_queries_in(lang: &str) -> Vec<String> {
    let fence = format!("```{lang}");
    let readme = include_str!("../../README.md");
    let start = readme
        .find("\n## Auditing\n")
        .expect("README has an \"## Auditing\" section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut queries = Vec::new();
    let mut in_sql = false;
    let mut current = String::new();
    for line in section.lines() {
        match line.trim() {
            l if l == fence => in_sql = true,
            "```" if in_sql => in_sql = false,
            l if in_sql && !l.starts_with("--") && !l.is_empty() => {
                current.push_str(line);
                current.push('\n');
                if l.ends_with(';') {
                    queries.push(std::mem::take(&mut current));
                }
            }
            _ => {}
        }
    }
    assert!(current.trim().is_empty(), "unterminated query: {current}");
    queries
}

/// A ledger with a bit of everything: delivered, retried, held, pending,
/// quarantined, a failed poll and a purge.
pub(crate) async fn seeded() -> TestEnv {
    let env = spawn_env(seed(4)).await;
    let google = env.sb.google().clone();
    let locations = google.locations();
    let mut mapping: Vec<(String, String)> = locations
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let group = if i == 4 {
                "no-such-group".to_owned()
            } else {
                format!("portfolio-{}", i % 3 + 1)
            };
            (l.clone(), format!("group_external_ref = \"{group}\""))
        })
        .collect();
    mapping.push((
        "accounts/999/locations/999".to_owned(),
        "group_external_ref = \"portfolio-1\"".to_owned(),
    ));
    env.write_config(&mapping, "");
    google.insert_raw_review(
        &locations[0],
        serde_json::json!({
            "name": format!("{}/reviews/bad-1", locations[0]),
            "reviewId": "bad-1",
            "starRating": "SIX",
            "createTime": "2026-01-01T00:00:00Z",
            "updateTime": "2026-01-01T00:00:00Z",
        }),
    );
    env.sb.faults().push(
        sandbox::Endpoint::TravtusMessages,
        sandbox::Fault::Status(500),
        1,
    );
    let out = env.bin(&["sync"]).await;
    assert!(
        !out.status.success(),
        "held reviews and a failed location: exit 1"
    );
    let now = chrono::Utc::now().to_rfc3339();
    let out = env.bin(&["ledger", "purge", "--before", &now]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    // Two more reviews that Travtus refuses for now: they stay pending.
    for comment in ["one", "two"] {
        google.add_review(
            &locations[1],
            sandbox::NewGoogleReview {
                star_rating: Some(3),
                comment: Some(comment.into()),
                display_name: "P".into(),
                is_anonymous: false,
            },
        );
    }
    env.sb.faults().push(
        sandbox::Endpoint::TravtusMessages,
        sandbox::Fault::Status(503),
        50,
    );
    // `--wait` bounds the whole sync, polling included: long enough to
    // read the two reviews and try them, not to wait out every retry.
    let out = env.bin(&["sync", "--wait", "5s"]).await;
    assert!(!out.status.success());
    env.sb.faults().clear();
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_audit_queries_run_and_answer_on_a_seeded_ledger() {
    let queries = readme_queries();
    assert_eq!(
        queries.len(),
        10,
        "the README promises ten queries: {queries:#?}"
    );
    let env = seeded().await;
    // On PostgreSQL, queries 6 and 7 in the forms the README gives for psql.
    let queries = if on_postgres() {
        let psql = readme_queries_in("pgsql");
        assert_eq!(psql.len(), 2, "the README gives psql forms of 6 and 7");
        let mut queries = queries;
        queries[5] = psql[0].clone();
        queries[6] = psql[1].clone();
        queries
    } else {
        queries
    };
    for (i, sql) in queries.iter().enumerate() {
        let rows = try_ledger_sql(&env.ledger(), sql)
            .unwrap_or_else(|e| panic!("query {} fails: {e}\n{sql}", i + 1));
        assert!(
            !rows.is_empty(),
            "query {} answers nothing on a ledger seeded for it:\n{sql}",
            i + 1
        );
    }

    // The same text through the tool auditors use: psql, or sqlite3 where
    // installed.
    if let Target::Postgres(pg) = env.ledger() {
        let server = sandbox::postgres::server().expect("the test server");
        let database = pg.url().rsplit('/').next().expect("a database").to_owned();
        for (i, sql) in queries.iter().enumerate() {
            let out = server
                .psql(&database, sql)
                .unwrap_or_else(|e| panic!("psql, query {}: {e}", i + 1));
            assert!(!out.is_empty(), "psql, query {}: no rows", i + 1);
        }
        return;
    }
    let sqlite3 = std::process::Command::new("sqlite3")
        .arg("-version")
        .output();
    if sqlite3.is_ok_and(|o| o.status.success()) {
        for (i, sql) in queries.iter().enumerate() {
            let out = std::process::Command::new("sqlite3")
                .arg("-readonly")
                .arg(&env.ledger_path)
                .arg(sql)
                .output()
                .expect("sqlite3 runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.is_empty(),
                "sqlite3, query {}: {stderr}",
                i + 1
            );
            assert!(!out.stdout.is_empty(), "sqlite3, query {}: no rows", i + 1);
        }
    } else {
        eprintln!("sqlite3 not installed: the queries were run through rusqlite only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_commands_take_formats_and_filters() {
    let env = seeded().await;
    let stats = env.bin(&["ledger", "stats", "--format", "json"]).await;
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats json");
    let total = stats["total"].as_u64().expect("total");
    assert_eq!(total as usize, env.rows().len());
    let held = stats["by_status"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["status"] == "held"))
        .and_then(|s| s["count"].as_u64());
    assert_eq!(held, Some(4));
    let csv = text(&env.bin(&["ledger", "stats", "--format", "csv"]).await).0;
    assert!(
        csv.starts_with("dimension,key,status,count\ntotal,,,"),
        "{csv}"
    );

    let held_rows = text(
        &env.bin(&["ledger", "export", "--format", "jsonl", "--status", "held"])
            .await,
    )
    .0;
    assert_eq!(held_rows.lines().count(), 4);
    let pending = text(
        &env.bin(&["ledger", "list", "--status", "pending", "--format", "json"])
            .await,
    )
    .0;
    let pending: serde_json::Value = serde_json::from_str(&pending).expect("list json");
    assert_eq!(pending.as_array().map(Vec::len), Some(2));
    let by_group = text(
        &env.bin(&[
            "ledger",
            "export",
            "--format",
            "csv",
            "--group",
            "portfolio-2",
            "--source",
            "acme-google",
        ])
        .await,
    )
    .0;
    assert!(by_group.lines().count() > 1);
    assert!(
        by_group.lines().skip(1).all(|l| l.contains("portfolio-2")),
        "{by_group}"
    );

    let retried = env
        .rows()
        .into_iter()
        .find(|r| r.attempts == 2)
        .expect("a retried review");
    let show = env
        .bin(&[
            "ledger",
            "show",
            &retried.platform,
            &retried.review_id,
            "--format",
            "json",
        ])
        .await;
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("show json");
    assert_eq!(show["attempts"].as_array().map(Vec::len), Some(2));
    assert_eq!(show["attempts"][0]["http_status"], 500);
    assert_eq!(show["attempts"][1]["outcome"], "delivered");
    assert!(show["payload"]["review"].is_object(), "the body, parsed");
    assert!(
        show["text_purged_at"].is_string(),
        "delivered before the purge"
    );
    let table = text(
        &env.bin(&["ledger", "show", &retried.platform, &retried.review_id])
            .await,
    )
    .0;
    assert!(table.contains("text_purged_at"), "{table}");
    assert!(table.contains("its text since purged"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_reviews_keep_their_hash_and_are_never_sent_again() {
    let env = spawn_env(seed(5)).await;
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let before = env.rows();
    let sent = env.sb.travtus().message_count();
    assert_eq!(sent, before.len());

    let out = env
        .bin(&[
            "ledger",
            "purge",
            "--before",
            &chrono::Utc::now().to_rfc3339(),
        ])
        .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("purged from {} review(s)", before.len())),
        "{stdout}"
    );

    let after = env.rows();
    let (purged_at, purges) = env.with_ledger(|ledger| {
        let purged_at: Vec<_> = after
            .iter()
            .map(|r| {
                ledger
                    .text_purged_at(&r.platform, &r.review_id)
                    .expect("read")
            })
            .collect();
        (purged_at, ledger.purges().expect("purges"))
    });
    for ((old, new), purged_at) in before.iter().zip(&after).zip(&purged_at) {
        assert_eq!(
            (&old.review_id, &old.content_hash),
            (&new.review_id, &new.content_hash)
        );
        assert_eq!(new.request_id, old.request_id);
        let body: serde_json::Value = serde_json::from_str(&new.payload).expect("json");
        for field in PURGED_FIELDS {
            assert!(
                body["review"].get(field).is_none(),
                "{field} left in {body}"
            );
        }
        assert!(
            body["review"]["review_id"].is_string()
                && body["review"]["created_datetime"].is_string()
        );
        assert!(purged_at.is_some());
    }
    assert_eq!(purges.len(), 1);
    assert_eq!(
        (purges[0].purged_by, purges[0].rows_purged),
        (PurgedBy::Cli, before.len() as u64)
    );

    // A later pass reads the same reviews: unchanged, nothing sent.
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(env.sb.travtus().message_count(), sent, "nothing sent twice");

    // An edit on the platform is a new version: sent, with its text.
    let google = env.sb.google().clone();
    let location = google.locations()[0].clone();
    let id = google.reviews(&location)[0]["reviewId"]
        .as_str()
        .expect("id")
        .to_owned();
    google.edit_review(&location, &id, Some("Edited after the purge".into()), None);
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(env.sb.travtus().message_count(), sent + 1);
    let last = env.sb.travtus().last_message().expect("a message");
    assert_eq!(last.body["review"]["comment"], "Edited after the purge");
    let purged_at = env.with_ledger(|l| l.text_purged_at("google", &id).expect("read"));
    assert_eq!(purged_at, None);

    // A cutoff in the future is refused.
    let out = env
        .bin(&["ledger", "purge", "--before", "2999-01-01"])
        .await;
    assert!(!out.status.success());
}

fn page(batch: u64, size: u64) -> PageRecord {
    PageRecord {
        source_name: "busy".into(),
        location_id: "loc".into(),
        group: Some(review_sync::domain::GroupRef::ExternalRef("g".into())),
        hold_reason: None,
        reviews: (0..size)
            .map(|i| IncomingReview {
                platform: "google".into(),
                review_id: format!("w{batch}-{i}"),
                payload: format!(r#"{{"review":{{"review_id":"w{batch}-{i}","comment":"text"}}}}"#),
                content_hash: format!("h{batch}-{i}"),
                source_updated_at: None,
                notes: None,
            })
            .collect(),
        quarantined: vec![],
    }
}

/// A config for `ledger` commands on `ledger.db` in `dir` (no sources).
fn ledger_only_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "[travtus]\ntoken = \"t\"\n[ledger]\npath = \"ledger.db\"\n",
    )
    .expect("config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

async fn review_sync(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_a_writer_commits_is_a_consistent_private_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ledger_only_config(dir.path());
    let ledger_path = dir.path().join("ledger.db");
    let mut ledger = Ledger::open(&ledger_path).expect("ledger");
    ledger
        .record_page(&page(0, 2000), chrono::Utc::now())
        .expect("seed");

    // A writer committing a page of 50 reviews after another, as the daemon does.
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(2000));
    let writer = {
        let (stop, committed) = (Arc::clone(&stop), Arc::clone(&committed));
        std::thread::spawn(move || {
            let mut batch = 1;
            while !stop.load(Ordering::Relaxed) {
                ledger
                    .record_page(&page(batch, 50), chrono::Utc::now())
                    .expect("write");
                committed.fetch_add(50, Ordering::SeqCst);
                batch += 1;
            }
        })
    };
    while committed.load(Ordering::SeqCst) < 2500 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut copies = Vec::new();
    for i in 0..3 {
        let low = committed.load(Ordering::SeqCst);
        let dest = dir.path().join(format!("copy-{i}.db"));
        let out = review_sync(
            &config,
            &["ledger", "backup", dest.to_str().expect("utf-8")],
        )
        .await;
        assert!(out.status.success(), "{}", text(&out).1);
        let high = committed.load(Ordering::SeqCst);
        copies.push((dest, low, high));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(
        committed.load(Ordering::SeqCst) > copies[0].1,
        "the writer was busy throughout"
    );

    for (dest, low, high) in &copies {
        let mode = std::fs::metadata(dest).expect("copy").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", dest.display());
        let conn =
            rusqlite::Connection::open_with_flags(dest, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("the copy opens");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(check, "ok");
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM reviews", [], |r| r.get(0))
            .expect("count");
        let n = n.unsigned_abs();
        assert!((*low..=*high).contains(&n), "{n} not within {low}..={high}");
        assert_eq!(n % 50, 0, "whole pages only: a consistent snapshot");
        let copy = Ledger::open_readonly(dest).expect("a ledger");
        assert_eq!(copy.stats().expect("stats").total, n);
    }

    // An existing file is kept unless --force.
    let (dest, _, _) = &copies[0];
    let before = std::fs::read(dest).expect("copy");
    let out = review_sync(
        &config,
        &["ledger", "backup", dest.to_str().expect("utf-8")],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("--force"), "{}", text(&out).1);
    assert_eq!(std::fs::read(dest).expect("copy"), before);
    let out = review_sync(
        &config,
        &["ledger", "backup", "--force", dest.to_str().expect("utf-8")],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out).1);
}

/// Writes `n` delivered reviews of about 600 bytes each straight into the
/// ledger (one INSERT ... SELECT: seconds, not minutes, for 100k rows).
fn bulk_ledger(dir: &Path, n: u64) -> std::path::PathBuf {
    let path = dir.join("ledger.db");
    drop(Ledger::open(&path).expect("ledger"));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let comment = "Lovely apartment, great rent and service, would recommend! ".repeat(6);
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO reviews (platform, review_id, source_name, location_id, group_external_ref,
             status, payload, content_hash, first_seen_at, delivered_at, request_id, attempts,
             last_seen_at)
         SELECT 'google', printf('r%09d', i), 'acme', 'accounts/1/locations/1', 'portfolio-1',
             'delivered',
             json_object('group_external_ref', 'portfolio-1', 'channel', 'review',
                 'review', json_object('source', 'google', 'review_id', printf('r%09d', i),
                 'comment', ?2, 'rating', 5, 'display_name', 'Maria Lopez')),
             printf('%064d', i), '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z',
             printf('req-%d', i), 1, '2026-01-01T00:00:00.000Z'
         FROM n",
        rusqlite::params![n as i64, comment],
    )
    .expect("bulk insert");
    path
}

/// Peak resident memory (kB) of `ledger export` over a ledger of `n`
/// reviews, sampled while it still has rows to write (the test stops
/// reading, so the pipe fills and the exporter waits, alive).
async fn export_peak_kb(n: u64) -> u64 {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    bulk_ledger(dir.path(), n);
    let config = ledger_only_config(dir.path());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(&config)
        .args(["-q", "ledger", "export", "--format", "jsonl"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("export starts");
    let pid = child.id().expect("pid");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut lines = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    while lines < n * 9 / 10 {
        let got = stdout.read(&mut buf).await.expect("read");
        assert!(got > 0, "export ended after {lines} of {n} lines");
        lines += buf[..got].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    loop {
        let got = stdout.read(&mut buf).await.expect("read");
        if got == 0 {
            break;
        }
        lines += buf[..got].iter().filter(|b| **b == b'\n').count() as u64;
    }
    assert!(child.wait().await.expect("wait").success());
    assert_eq!(lines, n, "every review exported");
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_memory_stays_flat_as_the_ledger_grows_tenfold() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc to read the exporter's peak memory from");
        return;
    }
    let small = export_peak_kb(10_000).await;
    let large = export_peak_kb(100_000).await;
    // 90,000 more rows are ~60 MB more JSON: buffering them would show.
    assert!(
        large < small + 16 * 1024,
        "export peak grew from {small} kB (10k reviews) to {large} kB (100k reviews)"
    );
}
