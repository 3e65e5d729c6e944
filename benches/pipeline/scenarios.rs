//! The daemon's scenarios: a backfill through `run` and through `sync`, a
//! quiet `sync` pass, and start-ups on a large ledger followed by an idle
//! window. Each runs the release binary as a child process against the
//! in-process sandbox.

use crate::measure::{Child, own_cpu_time, wait_for, wait_for_every};
use crate::setup::{
    backfill_phases, delivery_progress, generate_ledger, open_reader, temp_dir, write_config,
};
use crate::{
    BACKFILL_LOCATIONS, BACKFILL_REVIEWS_PER_LOCATION, BenchResult, IDLE_SETTLE, IDLE_WINDOW,
    QUIET_ACCOUNTS, QUIET_LOCATIONS_PER_ACCOUNT, QUIET_REVIEWS_PER_LOCATION, STARTUP_ROWS,
    STARTUP_RUNS,
};
use chrono::Timelike;
use sandbox::{GoogleSeed, Sandbox, SandboxOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Scenario 1: `run` backfilling every review of the sandbox.
pub(crate) struct Backfill {
    pub(crate) reviews: u64,
    pub(crate) wall_s: f64,
    pub(crate) rate: f64,
    pub(crate) peak_rss_mib: f64,
    pub(crate) cpu_s: f64,
    /// POSTs the emulator received beyond one per review (a lease that ran
    /// out, a retry after a lost answer); negative would mean a lost review.
    pub(crate) duplicates: i64,
    pub(crate) token_fetches: u64,
    /// CPU time of this process (the emulators) during the backfill.
    pub(crate) sandbox_cpu_s: f64,
    /// From the daemon's start to the first platform request.
    pub(crate) tick_wait_s: f64,
    /// Seconds after the pass started: the last location poll of the first
    /// pass ended, the first and the last delivery attempt began.
    pub(crate) phases: [f64; 3],
    /// Kept alive for the raw scenario, which reads the bodies from it
    /// (then removed).
    pub(crate) dir: Option<tempfile::TempDir>,
    pub(crate) ledger: PathBuf,
}

/// Runs scenario 1; the sandbox is handed back for the raw baseline.
pub(crate) async fn backfill(bin: &Path) -> BenchResult<(Backfill, Sandbox)> {
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
    // One pass, at the next whole second but one (UTC, as the scheduler
    // reads cron), and then not again for a day: the backfill is measured
    // alone, as with a real schedule (`0 */15 * * * *`) it would run.
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let schedule = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    let config = write_config(dir.path(), &sb, &schedule, None)?;
    let ledger = dir.path().join("ledger.db");

    let spawned = Instant::now();
    let daemon = Child::spawn(bin, &config, &["run"], None)?;
    // The clock starts with the pass: the first request to the platform
    // (the cron tick decides when, up to 1.5 s after start; reported apart).
    let google = sb.google().clone();
    let first_request = || google.token_requests() + google.list_requests_total() > 0;
    wait_for_every(
        "the first pass to start",
        &daemon,
        Duration::from_millis(1),
        first_request,
    )
    .await?;
    let started = Instant::now();
    let started_utc = chrono::Utc::now();
    let bench_cpu_before = own_cpu_time();
    let tick_wait_s = (started - spawned).as_secs_f64();
    let travtus = sb.travtus().clone();
    // PIPELINE_TIMELINE=1: reviews listed and delivered every 250 ms.
    let timeline = std::env::var_os("PIPELINE_TIMELINE").is_some();
    let mut next_sample = Instant::now();
    let daemon_cpu = || daemon.cpu_time().map(|d| d.as_secs_f64()).unwrap_or(0.0);
    wait_for("Travtus to receive every review", &daemon, || {
        if timeline && Instant::now() >= next_sample {
            next_sample += Duration::from_millis(250);
            eprintln!(
                "      t={:5.2}s listed={:6} delivered={:6} daemon_cpu={:5.2}s bench_cpu={:5.2}s",
                started.elapsed().as_secs_f64(),
                google.list_requests_total() * 50,
                travtus.message_count(),
                daemon_cpu(),
                own_cpu_time().as_secs_f64(),
            );
        }
        travtus.message_count() as u64 >= reviews
    })
    .await?;
    // The rate counts until the ledger has recorded the last delivery.
    let reader = open_reader(&ledger)?;
    wait_for(
        "the ledger to record every delivery",
        &daemon,
        || matches!(delivery_progress(&reader), Ok((total, 0)) if total == reviews),
    )
    .await?;
    let wall = started.elapsed();
    let cpu = daemon.cpu_time()?;
    let sandbox_cpu = own_cpu_time() - bench_cpu_before;
    let peak_rss_kib = daemon.status_kib("VmHWM")?;
    let exit = daemon.terminate().await?;
    if !exit.success() {
        return Err(format!(
            "the backfill daemon exited with {}: {}",
            exit.status,
            exit.stderr_tail()
        ));
    }
    let delivered: i64 = reader
        .query_row(
            "SELECT COUNT(*) FROM reviews WHERE status = 'delivered'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| format!("ledger: {e}"))?;
    let delivered = delivered.unsigned_abs();
    if delivered != reviews {
        return Err(format!("{delivered} of {reviews} reviews delivered"));
    }
    let wall_s = wall.as_secs_f64();
    let phases = backfill_phases(&reader, started_utc).map_err(|e| format!("ledger: {e}"))?;
    let figures = Backfill {
        tick_wait_s,
        phases,
        sandbox_cpu_s: sandbox_cpu.as_secs_f64(),
        reviews,
        wall_s,
        rate: reviews as f64 / wall_s,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        cpu_s: cpu.as_secs_f64(),
        duplicates: sb.travtus().message_requests() as i64 - reviews as i64,
        token_fetches: sb.travtus().token_requests(),
        dir: Some(dir),
        ledger,
    };
    Ok((figures, sb))
}

/// Scenario 3: the same backfill through `sync` (one pass, then every
/// review delivered, then exit), as a new user's first command runs it.
pub(crate) struct SyncBackfill {
    pub(crate) reviews: u64,
    /// From the first platform request to the moment the ledger holds
    /// every review as delivered: the same span as [`Backfill::rate`]'s.
    pub(crate) wall_s: f64,
    pub(crate) rate: f64,
    /// From the first platform request to the process's exit.
    pub(crate) to_exit_s: f64,
    /// From the spawn to the exit.
    pub(crate) from_spawn_s: f64,
}

/// Runs scenario 3 on a fresh sandbox of the backfill's shape.
pub(crate) async fn sync_backfill(bin: &Path) -> BenchResult<SyncBackfill> {
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
    let config = write_config(dir.path(), &sb, "0 0 0 1 1 *", None)?;
    let spawned = Instant::now();
    let sync = Child::spawn(bin, &config, &["sync"], None)?;
    let google = sb.google().clone();
    wait_for_every(
        "the sync's first platform request",
        &sync,
        Duration::from_millis(1),
        || google.token_requests() + google.list_requests_total() > 0,
    )
    .await?;
    let started = Instant::now();
    // The same end as scenario 1's: the ledger holds every review as
    // delivered (then the process ends, after its statistics and summary).
    let travtus = sb.travtus().clone();
    wait_for("Travtus to receive every review", &sync, || {
        travtus.message_count() as u64 >= reviews
    })
    .await?;
    let ledger = dir.path().join("ledger.db");
    let reader = open_reader(&ledger)?;
    wait_for(
        "the ledger to record every delivery",
        &sync,
        || matches!(delivery_progress(&reader), Ok((total, 0)) if total == reviews),
    )
    .await?;
    let wall = started.elapsed();
    let exit = sync.wait().await?;
    let to_exit = started.elapsed();
    let from_spawn = spawned.elapsed();
    let delivered = sb.travtus().message_count() as u64;
    sb.shutdown().await;
    if !exit.success() || delivered < reviews {
        return Err(format!(
            "the backfill sync failed ({}; {delivered} of {reviews} delivered): {}",
            exit.status,
            exit.stderr_tail()
        ));
    }
    let wall_s = wall.as_secs_f64();
    Ok(SyncBackfill {
        reviews,
        wall_s,
        rate: reviews as f64 / wall_s,
        to_exit_s: to_exit.as_secs_f64(),
        from_spawn_s: from_spawn.as_secs_f64(),
    })
}

/// Scenario 4: a `sync` that finds nothing new.
pub(crate) struct Quiet {
    pub(crate) list_requests: u64,
    /// `batchGetReviews` calls (each one request, whatever it names).
    pub(crate) batch_requests: u64,
    pub(crate) posts: u64,
    pub(crate) wall_s: f64,
    pub(crate) write_bytes: u64,
}

/// A first `sync` fills the ledger (not measured); the second finds nothing
/// new and is measured.
pub(crate) async fn quiet_pass(bin: &Path, sb: &Sandbox) -> BenchResult<Quiet> {
    let dir = temp_dir()?;
    let config = write_config(dir.path(), sb, "0 0 0 1 1 *", None)?;
    let first = Child::spawn(bin, &config, &["sync"], None)?.wait().await?;
    let seeded =
        (QUIET_ACCOUNTS * QUIET_LOCATIONS_PER_ACCOUNT * QUIET_REVIEWS_PER_LOCATION) as usize;
    if !first.success() || sb.travtus().message_count() != seeded {
        return Err(format!(
            "the first quiet-pass sync failed ({}; {} of {seeded} delivered): {}",
            first.status,
            sb.travtus().message_count(),
            first.stderr_tail()
        ));
    }
    let lists_before = sb.google().list_requests_total();
    let batches_before = sb.google().batch_requests();
    let posts_before = sb.travtus().message_requests();
    let started = Instant::now();
    let exit = Child::spawn(bin, &config, &["sync"], None)?.wait().await?;
    let wall_s = started.elapsed().as_secs_f64();
    if !exit.success() {
        return Err(format!(
            "the quiet sync failed ({}): {}",
            exit.status,
            exit.stderr_tail()
        ));
    }
    let block = u64::try_from(exit.rusage.ru_oublock).unwrap_or(0);
    Ok(Quiet {
        list_requests: sb.google().list_requests_total() - lists_before,
        batch_requests: sb.google().batch_requests() - batches_before,
        posts: sb.travtus().message_requests() - posts_before,
        wall_s,
        write_bytes: block * 512,
    })
}

/// Scenarios 5 and 6: start-up on a large ledger, then idle.
pub(crate) struct Startup {
    pub(crate) ready_ms: f64,
    pub(crate) ready_ms_all: Vec<f64>,
    pub(crate) fixture_s: f64,
    pub(crate) idle_rss_mib: f64,
    pub(crate) idle_cpu_ms: f64,
}

/// Runs scenarios 4 and 5: [`crate::STARTUP_RUNS`] start-ups until READY (the
/// first then idles for [`crate::IDLE_WINDOW`]).
pub(crate) async fn startup_and_idle(bin: &Path, sb: &Sandbox) -> BenchResult<Startup> {
    let dir = temp_dir()?;
    let ledger = dir.path().join("ledger.db");
    let fixture_started = Instant::now();
    {
        let ledger = ledger.clone();
        tokio::task::spawn_blocking(move || generate_ledger(&ledger, STARTUP_ROWS))
            .await
            .map_err(|e| format!("fixture task: {e}"))??;
    }
    let fixture_s = fixture_started.elapsed().as_secs_f64();
    // Far in the future: nothing but the daemon's own housekeeping runs.
    let config = write_config(dir.path(), sb, "0 0 0 1 1 *", Some(100))?;
    let socket_path = dir.path().join("notify.sock");

    let mut ready_ms_all = Vec::new();
    let mut idle = None;
    for run in 0..STARTUP_RUNS {
        let _ = std::fs::remove_file(&socket_path);
        let socket = tokio::net::UnixDatagram::bind(&socket_path)
            .map_err(|e| format!("notify socket: {e}"))?;
        let started = Instant::now();
        let daemon = Child::spawn(bin, &config, &["run"], Some(&socket_path))?;
        wait_ready(&socket, &daemon).await?;
        ready_ms_all.push(started.elapsed().as_secs_f64() * 1000.0);
        if run == 0 {
            tokio::time::sleep(IDLE_SETTLE).await;
            let cpu_before = daemon.cpu_time()?;
            tokio::time::sleep(IDLE_WINDOW).await;
            let cpu = daemon.cpu_time()? - cpu_before;
            let rss_kib = daemon.status_kib("VmRSS")?;
            idle = Some((rss_kib as f64 / 1024.0, cpu.as_secs_f64() * 1000.0));
        }
        let exit = daemon.terminate().await?;
        if !exit.success() {
            return Err(format!(
                "the start-up daemon exited with {}: {}",
                exit.status,
                exit.stderr_tail()
            ));
        }
    }
    let (idle_rss_mib, idle_cpu_ms) = idle.ok_or("no idle measurement")?;
    let mut sorted = ready_ms_all.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Startup {
        ready_ms: sorted[sorted.len() / 2],
        ready_ms_all,
        fixture_s,
        idle_rss_mib,
        idle_cpu_ms,
    })
}

/// Waits for `READY=1` on the notify socket.
async fn wait_ready(socket: &tokio::net::UnixDatagram, daemon: &Child) -> BenchResult<()> {
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
                {
                    return Ok(());
                }
            }
            Ok(Err(e)) => return Err(format!("notify socket: {e}")),
            Err(_) => {
                return Err(format!("no READY=1 within 30 s: {}", daemon.stderr_tail()));
            }
        }
    }
}
