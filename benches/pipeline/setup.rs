//! Set-up for the scenarios: the binary under test, temp dirs, the config
//! (secrets as files), the 1,000,000-row start-up fixture, and the reads of
//! the ledger an auditor may make with any SQLite tool (see `main.rs` for
//! why the bench writes and reads SQL itself).

use crate::{BACKFILL_LOCATIONS, BenchResult, CONCURRENCY, REQUESTS_PER_MINUTE};
use review_sync::ledger::{Ledger, format_time};
use sandbox::Sandbox;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The release binary: `PIPELINE_BIN` if set, else the one cargo built for this bench, else
/// `target/release/review-sync`, built with `cargo build --release` if missing.
pub(crate) fn binary() -> BenchResult<PathBuf> {
    // To compare builds: PIPELINE_BIN=/path/to/another/review-sync.
    if let Some(path) = std::env::var_os("PIPELINE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let built = PathBuf::from(env!("CARGO_BIN_EXE_review-sync"));
    if built.is_file() {
        return Ok(built);
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/review-sync");
    if !fallback.is_file() {
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args(["build", "--release", "--bin", "review-sync"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map_err(|e| format!("cargo build --release: {e}"))?;
        if !status.success() {
            return Err("cargo build --release failed".into());
        }
    }
    Ok(fallback)
}

/// A new temporary directory, removed when dropped.
pub(crate) fn temp_dir() -> BenchResult<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("review-sync-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))
}

/// Writes secrets as files and a config of one Google source over every
/// location of `sb` (or the first `limit`), location i mapped to
/// `portfolio-{i%10+1}`, with the bench's concurrency and rate budget.
pub(crate) fn write_config(
    dir: &Path,
    sb: &Sandbox,
    schedule: &str,
    limit: Option<usize>,
) -> BenchResult<PathBuf> {
    let io = |e: std::io::Error| format!("config: {e}");
    std::fs::write(dir.join("travtus_secret"), sandbox::TRAVTUS_CLIENT_SECRET).map_err(io)?;
    std::fs::write(dir.join("google_secret"), sandbox::GOOGLE_CLIENT_SECRET).map_err(io)?;
    std::fs::write(dir.join("google_refresh"), sandbox::GOOGLE_REFRESH_TOKEN).map_err(io)?;
    let base = sb.base_url();
    let mut text = format!(
        r#"[travtus]
base_url = "{base}/travtus"
token_url = "{base}/travtus/oauth2/token"
client_id = "{travtus_id}"
client_secret = {{ file = "travtus_secret" }}
timeout = "10s"
concurrency = {CONCURRENCY}

[ledger]
path = "ledger.db"

[[source]]
name = "acme-google"
kind = "google_business_profile"
schedule = "{schedule}"
requests_per_minute = {REQUESTS_PER_MINUTE}
client_id = "{google_id}"
client_secret = {{ file = "google_secret" }}
refresh_token = {{ file = "google_refresh" }}
api_base_url = "{base}/google"
token_url = "{base}/google/token"
"#,
        travtus_id = sandbox::TRAVTUS_CLIENT_ID,
        google_id = sandbox::GOOGLE_CLIENT_ID,
    );
    let locations = sb.google().locations();
    let take = limit.unwrap_or(locations.len());
    for (i, location) in locations.iter().take(take).enumerate() {
        text.push_str(&format!(
            "\n[[source.location]]\nid = \"{location}\"\ngroup_external_ref = \"portfolio-{}\"\n",
            i % 10 + 1
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).map_err(io)?;
    Ok(path)
}

/// A read-only connection to the ledger at `ledger`, as an auditor opens it.
pub(crate) fn open_reader(ledger: &Path) -> BenchResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        ledger,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("ledger: {e}"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| format!("ledger: {e}"))?;
    Ok(conn)
}

/// When (seconds after `start`) the first pass's polls ended and the first
/// and last delivery attempts began, from the ledger's own timestamps.
pub(crate) fn backfill_phases(
    conn: &rusqlite::Connection,
    start: chrono::DateTime<chrono::Utc>,
) -> rusqlite::Result<[f64; 3]> {
    let (poll_end, first, last): (String, String, String) = conn.query_row(
        "SELECT (SELECT MAX(ended_at) FROM
                    (SELECT ended_at FROM polls ORDER BY id LIMIT ?1)),
                (SELECT MIN(attempted_at) FROM attempts),
                (SELECT MAX(attempted_at) FROM attempts)",
        [BACKFILL_LOCATIONS],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let since = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| (t.with_timezone(&chrono::Utc) - start).as_seconds_f64())
            .unwrap_or(f64::NAN)
    };
    Ok([since(&poll_end), since(&first), since(&last)])
}

/// (rows, pending rows) of the ledger; pending through the partial index.
pub(crate) fn delivery_progress(conn: &rusqlite::Connection) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT (SELECT COUNT(*) FROM reviews),
                (SELECT COUNT(*) FROM reviews WHERE status = 'pending')",
        [],
        |r| {
            let (rows, pending): (i64, i64) = (r.get(0)?, r.get(1)?);
            Ok((rows.unsigned_abs(), pending.unsigned_abs()))
        },
    )
}

/// The start-up fixture: `rows` reviews, all delivered but the last 100,
/// which are pending with a retry due tomorrow, and one attempt per review,
/// spread over 1,000 locations, as a ledger a few years old would hold.
pub(crate) fn generate_ledger(path: &Path, rows: u64) -> BenchResult<()> {
    let sql = |e: rusqlite::Error| format!("fixture: {e}");
    // The library creates the file (mode 0600) with the current schema.
    drop(Ledger::open(path).map_err(|e| format!("fixture: {e}"))?);
    let mut conn = rusqlite::Connection::open(path).map_err(sql)?;
    // A throwaway file written once: no journal, no syncs. It goes back to
    // WAL at the end, the mode the daemon expects (and sets anyway).
    let _: String = conn
        .query_row("PRAGMA journal_mode = OFF", [], |r| r.get(0))
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(sql)?;
    conn.pragma_update(None, "cache_size", -262_144)
        .map_err(sql)?;
    let tx = conn.transaction().map_err(sql)?;
    {
        let mut review = tx
            .prepare(
                "INSERT INTO reviews (platform, review_id, source_name, location_id,
                     group_external_ref, status, payload, content_hash, first_seen_at,
                     source_updated_at, delivered_at, request_id, attempts, last_error,
                     last_seen_at, next_attempt_at, retry_count)
                 VALUES ('google', ?1, 'acme-google', ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, 1,
                     ?10, ?7, ?11, ?12)",
            )
            .map_err(sql)?;
        let mut attempt = tx
            .prepare(
                "INSERT INTO attempts (platform, review_id, content_hash, attempted_at,
                     http_status, error_type, request_id, duration_ms, outcome)
                 VALUES ('google', ?1, ?2, ?3, ?4, ?5, ?6, 12, ?7)",
            )
            .map_err(sql)?;
        let start = chrono::Utc::now() - chrono::Duration::days(3 * 365);
        let tomorrow = format_time(chrono::Utc::now() + chrono::Duration::days(1));
        let step_ms = (3 * 365 * 86_400_000 / rows.max(1)) as i64;
        for i in 0..rows {
            let pending = i >= rows.saturating_sub(100);
            let review_id = format!("fixture-{i:08}");
            let location = format!("accounts/1000/locations/{}", 2000 + i / 1000);
            let group = format!("portfolio-{}", i / 1000 % 10 + 1);
            let at = format_time(start + chrono::Duration::milliseconds(step_ms * i as i64));
            let hash = format!(
                "{:016x}{:016x}{:016x}{:016x}",
                i,
                !i,
                i.rotate_left(17),
                i ^ 0x5bd1_e995
            );
            let request_id = format!("{:08x}-0000-4000-8000-{i:012x}", i as u32);
            let payload = format!(
                r#"{{"group_external_ref":"{group}","channel":"review","review":{{"source":"google","review_id":"{review_id}","comment":"Lovely apartment, great rent and service, would recommend! Maintenance took three weeks to fix the heating.","rating":{},"display_name":"Maria Lopez","is_anonymous":false,"created_datetime":"{}","updated_datetime":"{}"}}}}"#,
                i % 5 + 1,
                &at[..19],
                &at[..19],
            );
            let (status, delivered_at, request, error, next, retries, http, error_type, outcome) =
                if pending {
                    (
                        "pending",
                        None,
                        None,
                        Some("service_unavailable: Sandbox fault: HTTP 503."),
                        Some(tomorrow.as_str()),
                        5,
                        503,
                        Some("service_unavailable"),
                        "retry",
                    )
                } else {
                    (
                        "delivered",
                        Some(at.as_str()),
                        Some(request_id.as_str()),
                        None,
                        None,
                        0,
                        200,
                        None,
                        "delivered",
                    )
                };
            review
                .execute(rusqlite::params![
                    review_id,
                    location,
                    group,
                    status,
                    payload,
                    hash,
                    at,
                    delivered_at,
                    request,
                    error,
                    next,
                    retries,
                ])
                .map_err(sql)?;
            attempt
                .execute(rusqlite::params![
                    review_id, hash, at, http, error_type, request, outcome
                ])
                .map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)?;
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql)?;
    Ok(())
}
