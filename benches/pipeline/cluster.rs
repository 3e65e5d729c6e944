//! The PostgreSQL scenarios (issue 15): the backfill (100 locations x 1,000
//! reviews) with 1, 2 and 3 daemons sharing one PostgreSQL ledger, beside
//! SQLite's from scenario 1, and the quiet pass over 1,000 locations on
//! PostgreSQL. The server is the tests' throwaway one (`sandbox::postgres`:
//! the distribution's binaries, a fresh database per run); without it the
//! scenarios are skipped, saying why, and their figures are absent.
//!
//! The backfill's locations are split over [`SOURCES`] sources, because a
//! source's pass runs on one daemon at a time (its lease): with one source,
//! a second daemon could only help deliver. The rate is counted like
//! scenario 1's: from the first platform request to the moment the ledger
//! holds every review as delivered (read through the library, as `ledger
//! stats` reads it).

use crate::measure::{Child, wait_for, wait_for_every};
use crate::setup::temp_dir;
use crate::{
    BACKFILL_LOCATIONS, BACKFILL_REVIEWS_PER_LOCATION, BenchResult, CONCURRENCY, QUIET_ACCOUNTS,
    QUIET_LOCATIONS_PER_ACCOUNT, QUIET_REVIEWS_PER_LOCATION, REQUESTS_PER_MINUTE,
};
use chrono::Timelike;
use review_sync::ledger::Ledger;
use sandbox::{GoogleSeed, Sandbox, SandboxOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Sources the backfill's locations are split over.
const SOURCES: usize = 4;
/// The most daemons measured.
const DAEMONS: usize = 3;

/// The PostgreSQL figures.
pub(crate) struct Postgres {
    /// Backfill reviews/s with 1, 2 and 3 daemons.
    pub(crate) backfill_rates: Vec<f64>,
    /// POSTs beyond one per review, per run.
    pub(crate) duplicates: Vec<i64>,
    pub(crate) quiet_s: f64,
    pub(crate) quiet_list_requests: u64,
    pub(crate) quiet_posts: u64,
}

/// Runs the PostgreSQL scenarios, or says why they cannot run (`Ok(None)`).
pub(crate) async fn run(bin: &Path) -> BenchResult<Option<Postgres>> {
    let server = match sandbox::postgres::server() {
        Ok(server) => server,
        Err(reason) => {
            eprintln!("      PostgreSQL scenarios SKIPPED: {reason}");
            return Ok(None);
        }
    };
    let mut backfill_rates = Vec::new();
    let mut duplicates = Vec::new();
    for daemons in 1..=DAEMONS {
        let (rate, dup) = backfill(bin, server, daemons).await?;
        eprintln!("      {daemons} daemon(s): {rate:.0} reviews/s, {dup} duplicates");
        backfill_rates.push(rate);
        duplicates.push(dup);
    }
    let sb = Sandbox::start(SandboxOptions {
        google: GoogleSeed {
            accounts: QUIET_ACCOUNTS,
            locations_per_account: QUIET_LOCATIONS_PER_ACCOUNT,
            reviews_per_location: QUIET_REVIEWS_PER_LOCATION,
        },
        ..SandboxOptions::default()
    })
    .await
    .map_err(|e| format!("sandbox: {e}"))?;
    let dir = temp_dir()?;
    let config = write_config(dir.path(), &sb, server, "0 0 0 1 1 *", 1, 1)?;
    let first = Child::spawn(bin, &config, &["sync"], None)?.wait().await?;
    if !first.success() {
        return Err(format!(
            "the first PostgreSQL quiet-pass sync failed ({}): {}",
            first.status,
            first.stderr_tail()
        ));
    }
    let lists_before = sb.google().list_requests_total();
    let posts_before = sb.travtus().message_requests();
    let started = Instant::now();
    let exit = Child::spawn(bin, &config, &["sync"], None)?.wait().await?;
    let quiet_s = started.elapsed().as_secs_f64();
    if !exit.success() {
        return Err(format!(
            "the PostgreSQL quiet sync failed ({}): {}",
            exit.status,
            exit.stderr_tail()
        ));
    }
    let figures = Postgres {
        backfill_rates,
        duplicates,
        quiet_s,
        quiet_list_requests: sb.google().list_requests_total() - lists_before,
        quiet_posts: sb.travtus().message_requests() - posts_before,
    };
    sb.shutdown().await;
    eprintln!(
        "      quiet pass: {} list requests, {} POSTs, {:.3} s",
        figures.quiet_list_requests, figures.quiet_posts, figures.quiet_s
    );
    Ok(Some(figures))
}

/// One backfill with `daemons` daemons on a fresh database: (reviews/s,
/// duplicates).
async fn backfill(
    bin: &Path,
    server: &sandbox::postgres::PgServer,
    daemons: usize,
) -> BenchResult<(f64, i64)> {
    let reviews = u64::from(BACKFILL_LOCATIONS * BACKFILL_REVIEWS_PER_LOCATION);
    let sb = Sandbox::start(SandboxOptions {
        google: GoogleSeed {
            accounts: 1,
            locations_per_account: BACKFILL_LOCATIONS,
            reviews_per_location: BACKFILL_REVIEWS_PER_LOCATION,
        },
        travtus_token_lifetime: Duration::from_secs(60),
        ..SandboxOptions::default()
    })
    .await
    .map_err(|e| format!("sandbox: {e}"))?;
    let dir = temp_dir()?;
    // One pass per source, at the next whole second but two, as scenario 1.
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(2500);
    let schedule = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    let mut configs = Vec::new();
    let mut database = None;
    for n in 1..=daemons {
        let config = write_config_in(
            dir.path(),
            &sb,
            server,
            &schedule,
            SOURCES,
            n,
            &mut database,
        )?;
        configs.push(config);
    }
    let children = configs
        .iter()
        .map(|config| Child::spawn(bin, config, &["run"], None))
        .collect::<BenchResult<Vec<_>>>()?;
    let google = sb.google().clone();
    wait_for_every(
        "the first pass to start",
        &children[0],
        Duration::from_millis(1),
        || google.token_requests() + google.list_requests_total() > 0,
    )
    .await?;
    let started = Instant::now();
    let travtus = sb.travtus().clone();
    wait_for("Travtus to receive every review", &children[0], || {
        travtus.message_count() as u64 >= reviews
    })
    .await?;
    let target = review_sync::config::load_ledger(&configs[0])
        .map_err(|e| format!("ledger config: {e}"))?
        .path;
    let reader = tokio::task::spawn_blocking(move || Ledger::open_readonly(&target))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("ledger: {e}"))?;
    let reader = std::sync::Arc::new(std::sync::Mutex::new(reader));
    let deadline = Instant::now() + crate::SCENARIO_LIMIT;
    loop {
        let r = std::sync::Arc::clone(&reader);
        let counts = tokio::task::spawn_blocking(move || {
            let ledger = r.lock().unwrap_or_else(|p| p.into_inner());
            ledger.stats().map(|s| {
                let pending = s
                    .by_status
                    .iter()
                    .find(|(status, _)| status == "pending")
                    .map_or(0, |(_, n)| *n);
                (s.total, pending)
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("ledger: {e}"))?;
        if counts == (reviews, 0) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the ledger never recorded every delivery: {counts:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    for child in children {
        let exit = child.terminate().await?;
        if !exit.success() {
            return Err(format!(
                "a PostgreSQL backfill daemon exited with {}: {}",
                exit.status,
                exit.stderr_tail()
            ));
        }
    }
    // Dropped on a blocking thread: the client's runtime cannot stop on an async one.
    let _ = tokio::task::spawn_blocking(move || drop(reader)).await;
    let duplicates = i64::try_from(sb.travtus().message_requests()).unwrap_or(i64::MAX)
        - i64::try_from(reviews).unwrap_or(i64::MAX);
    sb.shutdown().await;
    Ok((reviews as f64 / wall, duplicates))
}

/// [`write_config_in`] for one daemon on a new database.
fn write_config(
    dir: &Path,
    sb: &Sandbox,
    server: &sandbox::postgres::PgServer,
    schedule: &str,
    sources: usize,
    n: usize,
) -> BenchResult<PathBuf> {
    write_config_in(dir, sb, server, schedule, sources, n, &mut None)
}

/// Daemon `n`'s config: every location of `sb` split over `sources`
/// sources, the ledger the database `database` names (created first when
/// `None`), the bench's concurrency and budget.
fn write_config_in(
    dir: &Path,
    sb: &Sandbox,
    server: &sandbox::postgres::PgServer,
    schedule: &str,
    sources: usize,
    n: usize,
    database: &mut Option<String>,
) -> BenchResult<PathBuf> {
    let io = |e: std::io::Error| format!("config: {e}");
    let database = match database {
        Some(name) => name.clone(),
        None => {
            let name = server.create_database()?;
            *database = Some(name.clone());
            name
        }
    };
    std::fs::write(dir.join("travtus_secret"), sandbox::TRAVTUS_CLIENT_SECRET).map_err(io)?;
    std::fs::write(dir.join("google_secret"), sandbox::GOOGLE_CLIENT_SECRET).map_err(io)?;
    std::fs::write(dir.join("google_refresh"), sandbox::GOOGLE_REFRESH_TOKEN).map_err(io)?;
    std::fs::write(dir.join("ledger_password"), sandbox::postgres::PASSWORD).map_err(io)?;
    {
        use std::os::unix::fs::PermissionsExt;
        for secret in [
            "travtus_secret",
            "google_secret",
            "google_refresh",
            "ledger_password",
        ] {
            std::fs::set_permissions(dir.join(secret), std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
    }
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
url = "{url}"
password = {{ file = "ledger_password" }}
sslmode = "disable"
instance = "bench-{n}"
"#,
        travtus_id = sandbox::TRAVTUS_CLIENT_ID,
        url = server.url(&database),
    );
    let locations = sb.google().locations();
    for s in 0..sources {
        text.push_str(&format!(
            r#"
[[source]]
name = "google-{s}"
kind = "google_business_profile"
schedule = "{schedule}"
requests_per_minute = {REQUESTS_PER_MINUTE}
client_id = "{google_id}"
client_secret = {{ file = "google_secret" }}
refresh_token = {{ file = "google_refresh" }}
api_base_url = "{base}/google"
token_url = "{base}/google/token"
"#,
            google_id = sandbox::GOOGLE_CLIENT_ID,
        ));
        for (i, location) in locations.iter().enumerate() {
            if i % sources == s {
                text.push_str(&format!(
                    "\n[[source.location]]\nid = \"{location}\"\ngroup_external_ref = \"portfolio-{}\"\n",
                    i % 10 + 1
                ));
            }
        }
    }
    let path = dir.join(format!("config-{n}.toml"));
    std::fs::write(&path, text).map_err(io)?;
    Ok(path)
}

/// The PostgreSQL rows of the table (figures for information: the targets
/// are SQLite's).
pub(crate) fn rows(table: &mut crate::report::Table, sqlite_rate: f64, pg: &Postgres) {
    table.info("sqlite_backfill_reviews_per_s", sqlite_rate, "reviews/s");
    for (i, rate) in pg.backfill_rates.iter().enumerate() {
        table.info(
            &format!("pg_backfill_reviews_per_s_{}", i + 1),
            *rate,
            "reviews/s",
        );
    }
    table.info("pg_quiet_pass_s", pg.quiet_s, "s");
}

/// The PostgreSQL figures as keys of the JSON line.
pub(crate) fn extend(json: &mut serde_json::Value, pg: &Postgres) {
    use crate::report::round;
    let Some(map) = json.as_object_mut() else {
        return;
    };
    for (i, rate) in pg.backfill_rates.iter().enumerate() {
        map.insert(
            format!("pg_backfill_reviews_per_s_{}", i + 1),
            round(*rate, 0).into(),
        );
        map.insert(
            format!("pg_backfill_duplicates_{}", i + 1),
            pg.duplicates[i].into(),
        );
    }
    map.insert("pg_quiet_pass_s".into(), round(pg.quiet_s, 3).into());
    map.insert(
        "pg_quiet_list_requests".into(),
        pg.quiet_list_requests.into(),
    );
    map.insert("pg_quiet_posts".into(), pg.quiet_posts.into());
}
