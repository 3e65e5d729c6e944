//! The report: a table of figures with their targets (PASS/MISS) and, last,
//! one JSON line with every figure and the state of the machine.

use crate::measure::cores;
use crate::raw::Raw;
use crate::scenarios::{Backfill, Quiet, Startup, SyncBackfill};
use crate::{CONCURRENCY, QUIET_ACCOUNTS, QUIET_LOCATIONS_PER_ACCOUNT, STARTUP_ROWS};
use serde_json::json;

/// The machine around the run: two shared cores move every figure.
pub(crate) struct Machine {
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) compilers_before: usize,
    pub(crate) compilers_after: usize,
    pub(crate) total_s: f64,
}

/// The most `quiet_google_requests` may be (issue 12): 1,000 locations
/// read 50 to a `batchGetReviews` call.
const QUIET_GOOGLE_REQUESTS_TARGET: f64 = 20.0;

/// `PIPELINE_BACKFILL_ONLY=1`: the JSON line of scenarios 1 to 3.
pub(crate) fn backfill_only(
    backfill: &Backfill,
    raw: &Raw,
    sync: &SyncBackfill,
) -> serde_json::Value {
    json!({
        "backfill_reviews_per_s": round(backfill.rate, 0),
        "sync_backfill_reviews_per_s": round(sync.rate, 0),
        "sync_backfill_ratio": round(sync.rate / backfill.rate, 3),
        "raw_posts_per_s": round(raw.rate, 0),
        "backfill_ratio": round(backfill.rate / raw.rate, 3),
        "backfill_peak_rss_mib": round(backfill.peak_rss_mib, 1),
        "backfill_cpu_s": round(backfill.cpu_s, 2),
        "backfill_duplicates": backfill.duplicates,
        "backfill_sandbox_cpu_s": round(backfill.sandbox_cpu_s, 2),
        "raw_cpu_s": round(raw.cpu_s, 2),
    })
}

/// The figures with a target, and a few for information.
pub(crate) fn table(
    backfill: &Backfill,
    raw: &Raw,
    sync: &SyncBackfill,
    quiet: &Quiet,
    startup: &Startup,
) -> Table {
    let ratio = backfill.rate / raw.rate;
    let mut table = Table::default();
    table.at_least(
        "backfill_reviews_per_s",
        backfill.rate,
        5_000.0,
        "reviews/s",
    );
    table.info("raw_posts_per_s", raw.rate, "POSTs/s");
    table.at_least("backfill_ratio", ratio, 0.70, "of raw");
    table.at_most("backfill_peak_rss_mib", backfill.peak_rss_mib, 32.0, "MiB");
    table.info("backfill_cpu_s", backfill.cpu_s, "s");
    table.at_least(
        "sync_backfill_reviews_per_s",
        sync.rate,
        0.9 * backfill.rate,
        "reviews/s",
    );
    table.at_most(
        "quiet_google_requests",
        (quiet.list_requests + quiet.batch_requests) as f64,
        QUIET_GOOGLE_REQUESTS_TARGET,
        "",
    );
    table.info("quiet_list_requests", quiet.list_requests as f64, "");
    table.info("quiet_batch_requests", quiet.batch_requests as f64, "");
    table.exactly("quiet_posts", quiet.posts as f64, 0.0);
    table.at_most("quiet_wall_s", quiet.wall_s, 2.0, "s");
    table.info(
        "quiet_ledger_write_kib",
        quiet.write_bytes as f64 / 1024.0,
        "KiB",
    );
    table.at_most("startup_ready_ms", startup.ready_ms, 250.0, "ms");
    table.at_most("idle_rss_mib", startup.idle_rss_mib, 16.0, "MiB");
    table.at_most("idle_cpu_ms_per_10s", startup.idle_cpu_ms, 10.0, "ms");
    table
}

/// Every figure, the machine and whether every target was met: the last
/// line of the output.
pub(crate) fn figures(
    backfill: &Backfill,
    raw: &Raw,
    sync: &SyncBackfill,
    quiet: &Quiet,
    startup: &Startup,
    machine: &Machine,
    table: &Table,
) -> serde_json::Value {
    let ratio = backfill.rate / raw.rate;
    json!({
        "backfill_reviews": backfill.reviews,
        "backfill_wall_s": round(backfill.wall_s, 3),
        "backfill_reviews_per_s": round(backfill.rate, 0),
        "backfill_duplicates": backfill.duplicates,
        "backfill_token_fetches": backfill.token_fetches,
        "backfill_tick_wait_s": round(backfill.tick_wait_s, 3),
        "backfill_reviews_per_s_from_spawn": round(
            backfill.reviews as f64 / (backfill.wall_s + backfill.tick_wait_s),
            0
        ),
        "backfill_polls_done_s": round(backfill.phases[0], 3),
        "backfill_first_attempt_s": round(backfill.phases[1], 3),
        "sync_backfill_reviews_per_s": round(sync.rate, 0),
        "sync_backfill_reviews": sync.reviews,
        "sync_backfill_wall_s": round(sync.wall_s, 3),
        "sync_backfill_to_exit_s": round(sync.to_exit_s, 3),
        "sync_backfill_from_spawn_s": round(sync.from_spawn_s, 3),
        "sync_backfill_ratio": round(sync.rate / backfill.rate, 3),
        "raw_posts_per_s": round(raw.rate, 0),
        "raw_failures": raw.failures,
        "raw_cpu_s": round(raw.cpu_s, 2),
        "backfill_sandbox_cpu_s": round(backfill.sandbox_cpu_s, 2),
        "backfill_ratio": round(ratio, 3),
        "backfill_peak_rss_mib": round(backfill.peak_rss_mib, 1),
        "backfill_cpu_s": round(backfill.cpu_s, 2),
        "concurrency": CONCURRENCY,
        "quiet_locations": QUIET_ACCOUNTS * QUIET_LOCATIONS_PER_ACCOUNT,
        "quiet_google_requests": quiet.list_requests + quiet.batch_requests,
        "quiet_list_requests": quiet.list_requests,
        "quiet_batch_requests": quiet.batch_requests,
        "quiet_posts": quiet.posts,
        "quiet_wall_s": round(quiet.wall_s, 3),
        "quiet_ledger_write_bytes": quiet.write_bytes,
        "startup_rows": STARTUP_ROWS,
        "startup_ready_ms": round(startup.ready_ms, 1),
        "startup_ready_ms_all": startup.ready_ms_all.iter().map(|v| round(*v, 1)).collect::<Vec<_>>(),
        "startup_fixture_s": round(startup.fixture_s, 1),
        "idle_rss_mib": round(startup.idle_rss_mib, 1),
        "idle_cpu_ms_per_10s": round(startup.idle_cpu_ms, 2),
        "cores": cores(),
        "load_before": machine.load_before,
        "load_after": machine.load_after,
        "compilers_before": machine.compilers_before,
        "compilers_after": machine.compilers_after,
        "bench_total_s": round(machine.total_s, 1),
        "all_targets_met": table.all_pass(),
    })
}

/// Figures with their target and result, printed as a table.
#[derive(Default)]
pub(crate) struct Table {
    rows: Vec<(String, String, String, Option<bool>)>,
}

impl Table {
    pub(crate) fn at_least(&mut self, name: &str, value: f64, target: f64, unit: &str) {
        self.push(
            name,
            value,
            format!(">= {} {unit}", fmt(target)),
            Some(value >= target),
            unit,
        );
    }

    pub(crate) fn at_most(&mut self, name: &str, value: f64, target: f64, unit: &str) {
        self.push(
            name,
            value,
            format!("<= {} {unit}", fmt(target)),
            Some(value <= target),
            unit,
        );
    }

    pub(crate) fn exactly(&mut self, name: &str, value: f64, target: f64) {
        self.push(
            name,
            value,
            format!("= {}", fmt(target)),
            Some(value == target),
            "",
        );
    }

    pub(crate) fn info(&mut self, name: &str, value: f64, unit: &str) {
        self.push(name, value, String::new(), None, unit);
    }

    fn push(&mut self, name: &str, value: f64, target: String, pass: Option<bool>, unit: &str) {
        let value = format!("{} {unit}", fmt(value)).trim_end().to_owned();
        self.rows.push((name.to_owned(), value, target, pass));
    }

    pub(crate) fn all_pass(&self) -> bool {
        self.rows.iter().all(|r| r.3 != Some(false))
    }

    pub(crate) fn print(&self) {
        println!();
        println!("{:<28} {:>18}   {:<18} result", "figure", "value", "target");
        println!("{}", "-".repeat(74));
        for (name, value, target, pass) in &self.rows {
            let result = match pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "",
            };
            println!("{name:<28} {value:>18}   {target:<18} {result}");
        }
        println!();
    }
}

/// A figure as the table shows it.
fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// `v` rounded to `digits` decimals, for the JSON line.
pub(crate) fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}
