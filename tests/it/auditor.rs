//! The auditor's view, through the real binary: output that a hostile
//! upstream cannot use against the terminal or the spreadsheet that shows it,
//! corrupt rows named and skipped, an audit trail that records where each
//! attempt went, the `ledger` queries an auditor asks in one command, putting
//! reviews back (and resending on purpose) with a trace, and the poll log's
//! retention.

use crate::helpers::{Sql, TestEnv, on_postgres, quoted, seed, spawn_env, text, wait_until};
use review_sync::ledger::{IncomingReview, Ledger, PageRecord, PollLog};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// An upstream error message that, shown raw, recolours the terminal, goes
/// back to the start of the line and forges a log line of its own.
const EVIL: &str = "\u{1b}[31mRED\u{1b}[0m\r\nFAKE LOG LINE";

/// How [`EVIL`] reads once escaped.
const EVIL_ESCAPED: &str = "\\u001b[31mRED\\u001b[0m\\r\\nFAKE LOG LINE";

/// A review id with a right-to-left override: shown raw, the rest of the
/// line reads backwards.
const BIDI_ID: &str = "invoice\u{202e}fdp.exe";

/// Panics if `s` holds a character a terminal would act on, or a forged line.
fn assert_terminal_safe(what: &str, s: &str) {
    let raw: Vec<char> = s
        .chars()
        .filter(|c| *c != '\n' && review_sync::escape::needs_escape(*c))
        .collect();
    assert!(
        raw.is_empty(),
        "{what}: raw control characters {raw:?} in:\n{}",
        s.escape_debug()
    );
    assert!(
        !s.lines().any(|l| l.starts_with("FAKE LOG LINE")),
        "{what}: a forged line:\n{s}"
    );
}

/// Both streams of a command's output, checked.
fn assert_output_safe(what: &str, out: &Output) {
    let (stdout, stderr) = text(out);
    assert_terminal_safe(&format!("{what} (stdout)"), &stdout);
    assert_terminal_safe(&format!("{what} (stderr)"), &stderr);
}

/// A loopback server playing Travtus (every message refused with [`EVIL`] as
/// the reason) and a Google API (every reviews list refused the same way).
async fn evil_upstream() -> String {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/travtus/messages/",
            post(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({"error": {"type": "invalid_review", "message": EVIL}})),
                )
            }),
        )
        .route(
            "/google/token",
            post(|| async {
                Json(serde_json::json!({
                    "access_token": "evil-access", "expires_in": 3600, "token_type": "Bearer"
                }))
            }),
        )
        .fallback(|| async {
            (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": {"code": 400, "message": EVIL}})),
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    format!("http://{addr}")
}

/// A raw Google review (the emulator's shape) with this id and comment.
fn raw_google_review(location: &str, id: &str, comment: &str) -> serde_json::Value {
    serde_json::json!({
        "name": format!("{location}/reviews/{id}"),
        "reviewId": id,
        "reviewer": {"displayName": "Mallory"},
        "starRating": "FOUR",
        "comment": comment,
        "createTime": "2026-01-02T03:04:05Z",
        "updateTime": "2026-01-02T03:04:05Z",
    })
}

fn exit_code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn read_only(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open read-only")
}

// ------------------------------------------------------------ 10.10

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_control_characters_are_escaped_in_every_human_output() {
    let env = spawn_env(seed(1)).await;
    let evil = evil_upstream().await;
    let google = env.sb.google().clone();
    let location = google.locations()[0].clone();
    google.insert_raw_review(&location, raw_google_review(&location, BIDI_ID, EVIL));
    let base = env.sb.base_url();
    std::fs::write(
        &env.config_path,
        format!(
            r#"[travtus]
base_url = "{evil}/travtus"
token = "static-token"
timeout = "5s"

[ledger]
{ledger}
[[source]]
name = "acme-google"
kind = "google_business_profile"
schedule = "0 * * * * *"
client_id = "{g_id}"
client_secret = {{ file = "google_secret" }}
refresh_token = {{ file = "google_refresh" }}
api_base_url = "{base}/google"
token_url = "{base}/google/token"
  [[source.location]]
  id = "{location}"
  group_external_ref = "portfolio-1"

[[source]]
name = "evil-google"
kind = "google_business_profile"
schedule = "0 * * * * *"
client_id = "evil"
client_secret = {{ file = "google_secret" }}
refresh_token = {{ file = "google_refresh" }}
api_base_url = "{evil}/google"
token_url = "{evil}/google/token"
  [[source.location]]
  id = "accounts/1/locations/1"
  group_external_ref = "portfolio-1"
"#,
            g_id = sandbox::GOOGLE_CLIENT_ID,
            ledger = env.ledger_lines,
        ),
    )
    .expect("config");
    std::fs::set_permissions(&env.config_path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod");

    let sync = env.bin(&["sync", "--wait", "5s"]).await;
    assert!(!sync.status.success(), "rejected reviews and a failed poll");
    assert_output_safe("sync", &sync);
    let (stdout, stderr) = text(&sync);
    assert!(
        stdout.contains(EVIL_ESCAPED),
        "the summary names the error:\n{stdout}"
    );
    assert!(
        stderr.contains(EVIL_ESCAPED),
        "the log line has the error, escaped:\n{stderr}"
    );

    // The ledger keeps the platform's words exactly; only the display escapes.
    let rows = env.rows();
    let row = rows
        .iter()
        .find(|r| r.review_id == BIDI_ID)
        .expect("the bidi review is recorded");
    assert_eq!(
        row.last_error.as_deref(),
        Some(format!("invalid_review: {EVIL}").as_str())
    );

    for args in [
        vec!["ledger", "list"],
        vec!["ledger", "list", "--status", "rejected"],
        vec!["ledger", "stats"],
        vec!["ledger", "show", "google", BIDI_ID],
        vec!["ledger", "polls"],
        vec!["ledger", "polls", "--errors"],
        vec!["check", "--online"],
    ] {
        let out = env.bin(&args).await;
        assert_output_safe(&args.join(" "), &out);
    }
    let list = text(&env.bin(&["ledger", "list"]).await).0;
    assert!(list.contains("invoice\\u202efdp.exe"), "{list}");
    assert!(list.contains(EVIL_ESCAPED), "{list}");
    let show = text(&env.bin(&["ledger", "show", "google", BIDI_ID]).await).0;
    assert!(show.contains(EVIL_ESCAPED), "{show}");
    let polls = text(&env.bin(&["ledger", "polls", "--errors"]).await).0;
    assert!(polls.contains(EVIL_ESCAPED), "{polls}");
    let check = env.bin(&["check", "--online"]).await;
    assert!(text(&check).0.contains(EVIL_ESCAPED), "{}", text(&check).0);

    // JSON stays exact (it decodes to the stored text) and terminal-safe.
    for args in [
        vec!["ledger", "show", "google", BIDI_ID, "--format", "json"],
        vec!["ledger", "list", "--format", "json"],
    ] {
        let out = env.bin(&args).await;
        assert_output_safe(&args.join(" "), &out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("valid JSON");
    }
    let show: serde_json::Value = serde_json::from_slice(
        &env.bin(&["ledger", "show", "google", BIDI_ID, "--format", "json"])
            .await
            .stdout,
    )
    .expect("json");
    assert_eq!(show["review_id"], BIDI_ID);
    assert_eq!(show["last_error"], format!("invalid_review: {EVIL}"));
    assert_eq!(show["payload"]["review"]["comment"], EVIL);
    let jsonl = env.bin(&["ledger", "export", "--format", "jsonl"]).await;
    assert_output_safe("export jsonl", &jsonl);

    // An error line on stderr quotes what was typed, escaped.
    let out = env
        .bin(&["ledger", "show", "google", "\u{1b}[2Jgone\r\nFAKE LOG LINE"])
        .await;
    assert!(!out.status.success());
    assert_output_safe("show of a hostile id", &out);
    assert!(text(&out).1.contains("\\u001b[2Jgone"), "{}", text(&out).1);
}

// ------------------------------------------------------------ 10.11

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_row_is_named_and_export_and_list_go_on_past_it() {
    let env = spawn_env(seed(2)).await;
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let rows = env.rows();
    assert_eq!(rows.len(), 12);
    let bad = rows[4].review_id.clone();
    // Bytes that are not UTF-8, as a failing disk or a bad hand edit
    // leaves (PostgreSQL refuses those: there, a time edited by hand).
    let (corruption, column) = if on_postgres() {
        ("delivered_at = 'last week'", "delivered_at")
    } else {
        ("source_name = CAST(X'61636DFF65' AS TEXT)", "source_name")
    };
    env.ledger_sql(&format!(
        "UPDATE reviews SET {corruption} WHERE review_id = {}",
        quoted(&bad)
    ));

    let names_the_row = |stderr: &str| {
        assert!(stderr.contains("corrupt"), "{stderr}");
        assert!(stderr.contains("reviews"), "the table: {stderr}");
        assert!(
            stderr.contains(&format!("google {bad}")),
            "the row: {stderr}"
        );
        assert!(stderr.contains(column), "the column: {stderr}");
        assert!(
            !stderr.contains("invalid utf-8 sequence of 1 bytes"),
            "{stderr}"
        );
    };

    for format in ["jsonl", "csv"] {
        let out = env.bin(&["ledger", "export", "--format", format]).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(exit_code(&out), Some(65), "EX_DATAERR: {stderr}");
        let exported = if format == "csv" {
            csv::Reader::from_reader(stdout.as_bytes())
                .records()
                .count()
        } else {
            stdout.lines().count()
        };
        assert_eq!(exported, 11, "every other row exported ({format})");
        assert!(!stdout.contains(&bad), "{stdout}");
        names_the_row(&stderr);
        assert!(
            stderr.contains("1 corrupt row(s) skipped"),
            "a count at the end: {stderr}"
        );
    }
    let out = env.bin(&["ledger", "list"]).await;
    assert_eq!(exit_code(&out), Some(65));
    assert_eq!(text(&out).0.lines().count(), 12, "header + 11 rows");
    names_the_row(&text(&out).1);

    let out = env.bin(&["ledger", "show", "google", &bad]).await;
    assert_eq!(exit_code(&out), Some(1));
    names_the_row(&text(&out).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_says_why_nothing_changed_and_resend_puts_a_delivered_review_back_on_purpose() {
    let env = spawn_env(seed(1)).await;
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let sent = env.sb.travtus().message_count();
    let id = env.rows()[0].review_id.clone();

    let out = env.bin(&["ledger", "retry", "google", "nonexistent"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(exit_code(&out), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("no review google nonexistent in the ledger"),
        "{stderr}"
    );
    assert!(!stdout.contains("put back"), "{stdout}");

    let out = env.bin(&["ledger", "retry", "google", &id]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(exit_code(&out), Some(1), "{stdout}{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(said.contains("is delivered"), "{said}");
    assert!(
        said.contains(&format!("ledger resend google {id}")),
        "{said}"
    );

    let out = env
        .bin(&["ledger", "resend", "google", "nonexistent"])
        .await;
    assert_eq!(exit_code(&out), Some(1));
    assert!(text(&out).1.contains("no review google nonexistent"));

    let out = env.bin(&["ledger", "resend", "google", &id]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        text(&out).0.contains("put back to pending"),
        "{}",
        text(&out).0
    );
    let row = env
        .rows()
        .into_iter()
        .find(|r| r.review_id == id)
        .expect("row");
    assert_eq!(row.status.as_str(), "pending");
    assert!(
        row.request_id.is_some(),
        "the last delivery is still described"
    );

    // Recorded in the audit trail.
    let requeue = env.ledger_sql(&format!(
        "SELECT command, from_status FROM requeues WHERE platform = 'google' AND review_id = {}",
        quoted(&id)
    ));
    assert_eq!(
        requeue,
        [[Sql::Text("resend".into()), Sql::Text("delivered".into())]]
    );
    let show = text(&env.bin(&["ledger", "show", "google", &id]).await).0;
    assert!(show.contains("requeues (1)"), "{show}");
    assert!(show.contains("resend"), "{show}");

    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        env.sb.travtus().message_count(),
        sent + 1,
        "sent again, once"
    );
    let row = env
        .rows()
        .into_iter()
        .find(|r| r.review_id == id)
        .expect("row");
    assert_eq!(row.status.as_str(), "delivered");
    assert_eq!(row.attempts, 2);

    // A review whose text retention removed is never resent: the body would
    // erase the text Travtus holds.
    let now = chrono::Utc::now().to_rfc3339();
    let out = env.bin(&["ledger", "purge", "--before", &now]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let out = env.bin(&["ledger", "resend", "google", &id]).await;
    assert_eq!(exit_code(&out), Some(1));
    assert!(text(&out).1.contains("purged"), "{}", text(&out).1);
}

// ------------------------------------------------------------ 13.2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_records_the_group_and_the_version_it_was_sent_with() {
    let env = spawn_env(seed(2)).await;
    let locations = env.sb.google().locations();
    let mapping = |first: &str| -> Vec<(String, String)> {
        locations
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let group = if i == 0 {
                    first.to_owned()
                } else {
                    format!("portfolio-{}", i + 1)
                };
                (l.clone(), format!("group_external_ref = \"{group}\""))
            })
            .collect()
    };
    env.write_config(&mapping("portfolio-typo"), "");
    let out = env.bin(&["sync"]).await;
    assert!(!out.status.success(), "two reviews held");
    let held: Vec<_> = env
        .rows()
        .into_iter()
        .filter(|r| r.status.as_str() == "held")
        .collect();
    assert_eq!(held.len(), 2);

    // The mapping is fixed, the held reviews go out to the right group.
    env.write_config(&mapping("portfolio-1"), "");
    let out = env.bin(&["ledger", "retry", "--status", "held"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let id = held[0].review_id.clone();
    let show = text(&env.bin(&["ledger", "show", "google", &id]).await).0;
    assert!(
        show.contains("body to send"),
        "the regrouped body was never sent:\n{show}"
    );
    assert!(!show.contains("exact body sent"), "{show}");
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);

    // "What was sent to portfolio-typo?" has a true answer.
    let to_typo =
        env.ledger_int("SELECT COUNT(*) FROM attempts WHERE group_external_ref = 'portfolio-typo'");
    assert_eq!(to_typo, 2);
    let delivered_to_typo = env.ledger_int(
        "SELECT COALESCE(SUM(deliveries), 0) FROM deliveries_per_day_group
         WHERE group_external_ref = 'portfolio-typo'",
    );
    assert_eq!(delivered_to_typo, 0, "nothing was delivered there");
    let to_one = env.ledger_int(
        "SELECT SUM(deliveries) FROM deliveries_per_day_group
         WHERE group_external_ref = 'portfolio-1'",
    );
    assert_eq!(
        to_one, 2,
        "the two retried reviews, under the group they went to"
    );
    let old_view = env.ledger_int(if on_postgres() {
        "SELECT COUNT(*) FROM pg_views WHERE viewname = 'deliveries_by_day_and_group'"
    } else {
        "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'deliveries_by_day_and_group'"
    });
    assert_eq!(old_view, 0, "one name for the view, SPEC's");

    let show: serde_json::Value = serde_json::from_slice(
        &env.bin(&["ledger", "show", "google", &id, "--format", "json"])
            .await
            .stdout,
    )
    .expect("json");
    let attempts = show["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["group_external_ref"], "portfolio-typo");
    assert_eq!(attempts[0]["outcome"], "held");
    assert_eq!(attempts[1]["group_external_ref"], "portfolio-1");
    assert_eq!(attempts[1]["outcome"], "delivered");
    for a in attempts {
        assert_eq!(a["content_hash"], show["content_hash"]);
        assert_eq!(a["body_hash"].as_str().map(str::len), Some(64));
    }
    assert_ne!(attempts[0]["body_hash"], attempts[1]["body_hash"]);
    let table = text(&env.bin(&["ledger", "show", "google", &id]).await).0;
    let lines: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("portfolio-typo") || l.contains("portfolio-1"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("held") && l.contains("portfolio-typo")),
        "{table}"
    );
    assert!(
        table.contains("exact body sent"),
        "sent and delivered now:\n{table}"
    );

    let out = env
        .bin(&[
            "ledger",
            "export",
            "--table",
            "attempts",
            "--format",
            "jsonl",
            "--group",
            "portfolio-typo",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out).1);
    let lines: Vec<serde_json::Value> = text(&out)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|a| a["outcome"] == "held"));
}

// ------------------------------------------------------------ 13.3

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_cells_a_spreadsheet_would_run_as_formulas_are_neutralised() {
    let env = spawn_env(seed(1)).await;
    let google = env.sb.google().clone();
    let location = google.locations()[0].clone();
    let hostile = [
        ("=cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil\",\"x\")"),
        ("+1+cmd", "+SUM(1,1)"),
        ("-2+3+cmd", "-1+1"),
        ("@SUM(1+1)", "@SUM(1,1)"),
        ("tab-id", "\t=1+1"),
        ("cr-id", "\r=1+1"),
    ];
    for (id, comment) in hostile {
        google.insert_raw_review(&location, raw_google_review(&location, id, comment));
    }
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);

    for args in [
        vec!["ledger", "export", "--format", "csv"],
        vec!["ledger", "list", "--format", "csv"],
        vec!["ledger", "stats", "--format", "csv"],
        vec!["ledger", "export", "--table", "attempts", "--format", "csv"],
    ] {
        let out = env.bin(&args).await;
        assert!(out.status.success(), "{}", text(&out).1);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(out.stdout.as_slice());
        let mut rows = 0;
        for record in reader.records() {
            let record = record.expect("valid CSV");
            rows += 1;
            for cell in record.iter() {
                let plain_number = cell.parse::<f64>().is_ok();
                assert!(
                    plain_number || !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{}: a cell a spreadsheet would run: {cell:?}",
                    args.join(" ")
                );
            }
        }
        assert!(rows > 0, "{}", args.join(" "));
    }
    let out = env.bin(&["ledger", "export", "--format", "csv"]).await;
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header = reader.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (id_col, comment_col) = (col("review_id"), col("comment"));
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let cell = |id: &str, c: usize| -> String {
        records
            .iter()
            .find(|r| r[id_col].trim_start_matches('\'') == id)
            .unwrap_or_else(|| panic!("row {id}"))[c]
            .to_owned()
    };
    // OWASP: a leading apostrophe; the rest of the text is kept as it was.
    assert_eq!(cell("=cmd|' /C calc'!A0", id_col), "'=cmd|' /C calc'!A0");
    assert_eq!(cell("@SUM(1+1)", comment_col), "'@SUM(1,1)");
    // Google's mapping trims the comment's leading tab or CR; what is left
    // starts with `=` and is neutralised too (tab and CR: `output::tests`).
    assert_eq!(cell("tab-id", comment_col), "'=1+1");
    assert_eq!(cell("cr-id", comment_col), "'=1+1");
    assert_eq!(cell("-2+3+cmd", id_col), "'-2+3+cmd");
    // JSON keeps the values exact.
    let jsonl = text(&env.bin(&["ledger", "export", "--format", "jsonl"]).await).0;
    assert!(jsonl.lines().any(
        |l| serde_json::from_str::<serde_json::Value>(l).expect("json")["review_id"]
            == "=cmd|' /C calc'!A0"
    ));
}

// ------------------------------------------------------------ 13.8

/// A ledger with delivered, held and pending reviews, a quarantined record
/// and a failed poll (the `audit` module's seeded ledger).
async fn seeded() -> TestEnv {
    crate::audit::seeded().await
}

fn json_rows(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", text(out).1);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    value.as_array().expect("an array").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_queries_are_one_command_each() {
    let env = seeded().await;
    let rows = env.rows();
    let count =
        |f: &dyn Fn(&review_sync::ledger::ReviewRow) -> bool| rows.iter().filter(|r| f(r)).count();
    let held = count(&|r| r.status.as_str() == "held");
    let pending = count(&|r| r.status.as_str() == "pending");
    assert!(held > 0 && pending > 0);

    // Several statuses at once, and the `undelivered` alias.
    let both = env
        .bin(&[
            "ledger",
            "list",
            "--status",
            "held,pending",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(json_rows(&both).len(), held + pending);
    let undelivered = env
        .bin(&[
            "ledger",
            "list",
            "--status",
            "undelivered",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(
        json_rows(&undelivered).len(),
        count(&|r| r.status.as_str() != "delivered")
    );
    let repeated = env
        .bin(&[
            "ledger", "export", "--format", "jsonl", "--status", "held", "--status", "pending",
        ])
        .await;
    assert_eq!(text(&repeated).0.lines().count(), held + pending);

    // --since / --until on first sight, and on delivery time.
    let boundary = rows
        .iter()
        .filter(|r| r.status.as_str() == "pending")
        .map(|r| r.first_seen_at)
        .min()
        .expect("pending rows");
    let b = boundary.to_rfc3339();
    let before = env
        .bin(&["ledger", "list", "--until", &b, "--format", "json"])
        .await;
    assert_eq!(
        json_rows(&before).len(),
        count(&|r| r.first_seen_at < boundary)
    );
    let window = env
        .bin(&[
            "ledger",
            "list",
            "--since",
            &b,
            "--until",
            "2999-01-01",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(
        json_rows(&window).len(),
        count(&|r| r.first_seen_at >= boundary)
    );
    let mut delivered: Vec<_> = rows.iter().filter_map(|r| r.delivered_at).collect();
    delivered.sort();
    let d = delivered[delivered.len() / 2];
    let ds = d.to_rfc3339();
    let since = env
        .bin(&[
            "ledger",
            "list",
            "--delivered-since",
            &ds,
            "--format",
            "json",
        ])
        .await;
    assert_eq!(
        json_rows(&since).len(),
        count(&|r| r.delivered_at.is_some_and(|t| t >= d))
    );
    let until = env
        .bin(&[
            "ledger",
            "export",
            "--format",
            "jsonl",
            "--delivered-until",
            &ds,
        ])
        .await;
    assert_eq!(
        text(&until).0.lines().count(),
        count(&|r| r.delivered_at.is_some_and(|t| t < d))
    );

    // `show REVIEW_ID` alone when the id is unambiguous.
    let one = &rows[0];
    let by_id = env
        .bin(&["ledger", "show", &one.review_id, "--format", "json"])
        .await;
    assert!(by_id.status.success(), "{}", text(&by_id).1);
    let by_id: serde_json::Value = serde_json::from_slice(&by_id.stdout).expect("json");
    assert_eq!(by_id["platform"], "google");
    assert_eq!(by_id["review_id"], one.review_id.as_str());
    env.ledger_sql(&format!(
        "INSERT INTO reviews (platform, review_id, source_name, location_id, group_external_ref,
             status, payload, content_hash, first_seen_at, last_seen_at)
         SELECT 'yelp', review_id, source_name, location_id, group_external_ref, status,
             payload, content_hash, first_seen_at, last_seen_at
         FROM reviews WHERE platform = 'google' AND review_id = {}",
        quoted(&one.review_id)
    ));
    let ambiguous = env.bin(&["ledger", "show", &one.review_id]).await;
    assert_eq!(exit_code(&ambiguous), Some(1));
    let stderr = text(&ambiguous).1;
    assert!(
        stderr.contains("ambiguous") && stderr.contains("google") && stderr.contains("yelp"),
        "{stderr}"
    );
    let missing = env.bin(&["ledger", "show", "no-such-review"]).await;
    assert_eq!(exit_code(&missing), Some(1));

    // Quarantined records and polls.
    let quarantine = env.bin(&["ledger", "quarantine", "--format", "json"]).await;
    let quarantine = json_rows(&quarantine);
    assert_eq!(quarantine.len(), 1);
    assert_eq!(quarantine[0]["reference"], "bad-1");
    assert!(
        quarantine[0]["raw"]
            .as_str()
            .is_some_and(|r| r.contains("SIX"))
    );
    let table = text(&env.bin(&["ledger", "quarantine"]).await).0;
    assert!(table.contains("bad-1"), "{table}");
    let polls = env.bin(&["ledger", "polls", "--format", "json"]).await;
    let polls = json_rows(&polls);
    let poll_rows = env.ledger_int("SELECT COUNT(*) FROM polls");
    assert_eq!(polls.len() as i64, poll_rows);
    let errors = env
        .bin(&["ledger", "polls", "--errors", "--format", "json"])
        .await;
    let errors = json_rows(&errors);
    assert!(!errors.is_empty());
    assert!(errors.iter().all(|p| p["error"].is_string()));
    assert!(
        errors
            .iter()
            .any(|p| p["location_id"] == "accounts/999/locations/999")
    );
    let csv = text(&env.bin(&["ledger", "polls", "--format", "csv"]).await).0;
    assert!(
        csv.starts_with("source_name,location_id,kind,started_at"),
        "{csv}"
    );

    // Attempts in exports.
    let attempts = env.ledger_int("SELECT COUNT(*) FROM attempts");
    let out = env
        .bin(&[
            "ledger", "export", "--table", "attempts", "--format", "jsonl",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out).1);
    let lines: Vec<serde_json::Value> = text(&out)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len() as i64, attempts);
    assert!(lines.iter().all(|a| a["attempted_at"].is_string()
        && a.get("group_external_ref").is_some()
        && a.get("content_hash").is_some()));
    let refused = env
        .bin(&[
            "ledger", "export", "--table", "attempts", "--format", "csv", "--status", "held",
        ])
        .await;
    assert!(
        !refused.status.success(),
        "a reviews filter on attempts is an error"
    );

    // CSV with flat columns (and a BOM on request); JSONL with the payload as an object.
    let out = env
        .bin(&["ledger", "export", "--format", "csv", "--bom"])
        .await;
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(out.stdout.starts_with(b"\xEF\xBB\xBF"), "a UTF-8 BOM");
    let mut reader = csv::Reader::from_reader(&out.stdout[3..]);
    let header = reader.headers().expect("header").clone();
    for column in ["rating", "title", "comment", "reviewer"] {
        assert!(header.iter().any(|h| h == column), "{column} in {header:?}");
    }
    let rating = header.iter().position(|h| h == "rating").expect("rating");
    let records: Vec<_> = reader.records().map(|r| r.expect("row")).collect();
    assert!(records.iter().any(|r| r[rating].parse::<u8>().is_ok()));
    let plain = env.bin(&["ledger", "export", "--format", "csv"]).await;
    assert!(
        !plain.stdout.starts_with(b"\xEF\xBB\xBF"),
        "no BOM by default"
    );
    let jsonl = text(&env.bin(&["ledger", "export", "--format", "jsonl"]).await).0;
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert!(v["payload"].is_object(), "payload as an object: {line}");
    }
}

// ------------------------------------------------------------ 13.9

/// A config for `ledger` commands and `run` on `ledger.db` in `dir` (no
/// sources), with `extra` lines in `[ledger]`.
fn ledger_only_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!("[travtus]\ntoken = \"t\"\n[ledger]\npath = \"ledger.db\"\n{extra}\n"),
    )
    .expect("config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

async fn review_sync(config: &Path, args: &[&str]) -> Output {
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
async fn show_calls_a_body_never_sent_the_body_to_send() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ledger_only_config(dir.path(), "");
    let mut ledger = Ledger::open(&dir.path().join("ledger.db")).expect("ledger");
    ledger
        .record_page(
            &PageRecord {
                source_name: "acme".into(),
                location_id: "loc".into(),
                group: Some(review_sync::domain::GroupRef::ExternalRef("g".into())),
                hold_reason: None,
                reviews: vec![IncomingReview {
                    platform: "google".into(),
                    review_id: "fresh".into(),
                    payload: r#"{"group_external_ref":"g","channel":"review","review":{"source":"google","review_id":"fresh"}}"#.into(),
                    content_hash: "h".into(),
                    source_updated_at: None,
                    notes: None,
                }],
                quarantined: vec![],
            },
            chrono::Utc::now(),
        )
        .expect("record");
    drop(ledger);
    let out = review_sync(&config, &["ledger", "show", "google", "fresh"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let show = text(&out).0;
    assert!(show.contains("body to send (not sent yet)"), "{show}");
    assert!(!show.contains("exact body sent"), "{show}");
}

fn poll_log(location: &str, started: chrono::DateTime<chrono::Utc>) -> PollLog {
    PollLog {
        source_name: "acme".into(),
        location_id: location.into(),
        started_at: started,
        ended_at: started,
        ..PollLog::default()
    }
}

fn poll_locations(path: &Path) -> Vec<String> {
    let conn = read_only(path);
    let mut st = conn
        .prepare("SELECT location_id FROM polls ORDER BY location_id")
        .expect("prepare");
    st.query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .expect("rows")
}

/// Runs the daemon on `config` until the poll log holds exactly `expected`.
async fn run_until_polls_are(config: &Path, ledger: &Path, expected: &[&str]) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("daemon starts");
    let mut exited = None;
    wait_until("poll-log retention", Duration::from_secs(30), || {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            return true;
        }
        poll_locations(ledger) == expected
    })
    .await;
    assert!(exited.is_none(), "the daemon exited: {exited:?}");
    let pid = child.id().expect("pid") as i32;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().await.expect("wait");
    assert!(status.success(), "a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_log_is_kept_for_90_days_by_default_and_as_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let now = chrono::Utc::now();
    {
        let mut ledger = Ledger::open(&path).expect("ledger");
        for (location, days) in [("d100", 100), ("d30", 30), ("d0", 0)] {
            ledger
                .finish_poll(
                    &poll_log(location, now - chrono::Duration::days(days)),
                    None,
                )
                .expect("poll row");
        }
        ledger
            .record_page(
                &PageRecord {
                    source_name: "acme".into(),
                    location_id: "d100".into(),
                    group: Some(review_sync::domain::GroupRef::ExternalRef("g".into())),
                    hold_reason: None,
                    reviews: vec![],
                    quarantined: vec![review_sync::ledger::QuarantineRecord {
                        platform: "google".into(),
                        reference: "old".into(),
                        reason: "kept".into(),
                        raw: "{}".into(),
                    }],
                },
                now - chrono::Duration::days(100),
            )
            .expect("quarantine row");
    }
    // The default: 90 days.
    let config = ledger_only_config(dir.path(), "");
    run_until_polls_are(&config, &path, &["d0", "d30"]).await;
    // As configured.
    let config = ledger_only_config(dir.path(), "retain_polls_days = 7");
    run_until_polls_are(&config, &path, &["d0"]).await;
    let conn = read_only(&path);
    let quarantined: i64 = conn
        .query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))
        .expect("count");
    assert_eq!(quarantined, 1, "only poll-log rows are deleted");

    let bad = ledger_only_config(dir.path(), "retain_polls_days = 0");
    let out = review_sync(&bad, &["check"]).await;
    assert_eq!(exit_code(&out), Some(78));
    assert!(
        text(&out).1.contains("retain_polls_days"),
        "{}",
        text(&out).1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_say_what_the_logs_and_schedules_do() {
    // One summary line per pass and source, whatever the number of locations.
    let env = spawn_env(seed(1)).await;
    assert!(env.sb.google().locations().len() > 1);
    let out = env.bin(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out).1);
    let summaries = text(&out)
        .1
        .lines()
        .filter(|l| l.contains("poll pass finished"))
        .count();
    assert_eq!(summaries, 1, "{}", text(&out).1);
    let readme = include_str!("../../README.md");
    let quick = &readme[readme.find("## Quick start").expect("Quick start")..];
    let quick = &quick[..quick.find("\n### Admins").expect("next section")];
    assert!(
        quick.contains("one summary line per pass and source"),
        "README Quick start says what the journal shows"
    );
    assert!(!readme.contains("per pass and location"));

    // Schedules are UTC, and every document says so.
    let example = include_str!("../../config.example.toml");
    let line = example
        .lines()
        .find(|l| l.trim_start().starts_with("#   schedule "))
        .expect("the schedule key is documented");
    assert!(line.contains("UTC"), "{line}");
    let man = include_str!("../../docs/man/review-sync-run.1");
    assert!(
        man.contains("UTC"),
        "review-sync-run(1) says schedules are UTC"
    );
    assert!(readme.contains("schedule` is a cron expression in UTC"));
}
