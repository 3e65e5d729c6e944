//! `review-sync sync`: one pass now, a summary, and an exit status that says
//! whether everything was delivered.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use review_sync::app::{App, SyncReport};
use review_sync::escape::Escaped;
use review_sync::poll::{PassKind, is_stop_error, was_not_read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `sync` options.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Poll only this source (repeatable; default: all).
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Print the exact JSON bodies that would be POSTed (one per line) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Make this a full reconciliation pass: read every review of every
    /// location, and mark those that vanished from the platform as removed.
    #[arg(long, conflicts_with = "dry_run")]
    pub reconcile: bool,
    /// The most this sync may take, polling included; it delivers while it
    /// reads, then keeps retrying failed deliveries until this runs out. It
    /// then stops cleanly: what was read is recorded, what was not delivered
    /// stays pending for the next pass, and it exits non-zero saying what
    /// was left. At most 1 week.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = super::values::wait)]
    pub wait: Duration,
}

/// Runs one pass.
pub(super) async fn sync(config_path: &Path, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    if args.dry_run {
        return dry_run(&config, &args.sources).await;
    }
    let app = App::open(config).await.context("cannot open the ledger")?;
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
    }
    let (kind, reading) = if args.reconcile {
        (PassKind::Reconcile, "reconciling")
    } else {
        (PassKind::Incremental, "polling")
    };
    let bar = review_sync::telemetry::progress_bar();
    bar.set_style(
        // `wide_msg`: cut to the terminal's width, so the bar stays one line.
        ProgressStyle::with_template("{spinner} [{elapsed}] {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(reading);
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = (!bar.is_hidden())
        .then(|| tokio::spawn(show_progress(bar.clone(), progress_source(&app), reading)));
    let result = app.sync_pass(&args.sources, kind, args.wait, &cancel).await;
    if let Some(progress) = progress {
        progress.abort();
    }
    review_sync::telemetry::finish_progress_bar(&bar);
    let report = result?;
    print_summary(&report);
    if report.all_delivered() {
        return Ok(ExitCode::SUCCESS);
    }
    let locations = |stopped: bool| {
        report
            .sources
            .iter()
            .flat_map(|s| s.locations.iter().map(move |l| (s, l)))
            .filter(move |(_, l)| {
                l.error
                    .as_deref()
                    .is_some_and(|e| is_stop_error(e) == stopped)
            })
            .map(|(s, l)| format!("{} {}", s.source, l.location_id))
            .collect::<Vec<_>>()
    };
    let failed = locations(false);
    let stopped = locations(true);
    if let Some(reason) = &report.stopped {
        note(&format!(
            "review-sync: stopped: {reason}{}: {} location(s) not read to the end{}; what was read is recorded, and what was not delivered stays pending for the next sync or `run`",
            if reason.contains("--wait") {
                " (a longer --wait gives it more time)"
            } else {
                ""
            },
            stopped.len(),
            named(&stopped),
        ));
    }
    let undiscovered: usize = report.sources.iter().map(|s| s.discovery_failed()).sum();
    let consent = report.sources.iter().any(|s| s.needs_consent.is_some());
    if report.pending + report.held + report.rejected > 0
        || !failed.is_empty()
        || undiscovered > 0
        || consent
    {
        note(&format!(
            "review-sync: not everything was delivered: {} pending, {} held, {} rejected, {} location(s) failed{}, {undiscovered} account(s) not discovered (see `review-sync ledger list --status ...`)",
            report.pending,
            report.held,
            report.rejected,
            failed.len(),
            named(&failed),
        ));
    }
    Ok(ExitCode::FAILURE)
}

/// A note for the operator on stderr; with `--log-format json`, a log
/// event instead, so that every stderr line is JSON.
fn note(line: &str) {
    if review_sync::telemetry::logs_are_json() {
        tracing::warn!("{}", line.trim_start_matches("review-sync: "));
    } else {
        eprintln!("{line}");
    }
}

/// " (a, b, c and 2 more)" for a list of locations; nothing when empty.
fn named(items: &[String]) -> String {
    const SHOWN: usize = 5;
    match items.len() {
        0 => String::new(),
        n if n <= SHOWN => format!(" ({})", items.join(", ")),
        n => format!(" ({} and {} more)", items[..SHOWN].join(", "), n - SHOWN),
    }
}

/// What the progress line reads, shared with the sync while it runs.
struct ProgressSource {
    progress: std::sync::Arc<review_sync::poll::PassProgress>,
    deliverer: std::sync::Arc<review_sync::deliver::Deliverer>,
    ledger: review_sync::ledger::LedgerHandle,
    delivered_before: u64,
}

fn progress_source(app: &App) -> ProgressSource {
    ProgressSource {
        progress: app.progress.clone(),
        deliverer: app.deliverer.clone(),
        ledger: app.ledger.clone(),
        delivered_before: app.deliverer.counters.delivered.load(Ordering::Relaxed),
    }
}

/// Updates the bar's counts until aborted: locations read of those planned,
/// reviews new and edited, delivered, pending in the ledger (read twice a
/// second), and the waits for a platform's request budget: how many and
/// how long in all, and the longest one in progress (source, scope, time
/// left and why).
async fn show_progress(bar: ProgressBar, from: ProgressSource, reading: &'static str) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut pending: Option<u64> = None;
    let mut pending_read = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if pending.is_none() || pending_read.elapsed() >= Duration::from_millis(500) {
            pending_read = tokio::time::Instant::now();
            // A failed count shows as unknown; the sync itself reports ledger errors.
            pending = from.ledger.run(|l| l.pending_count()).await.ok();
        }
        let p = &from.progress;
        let planned = p.locations.load(Ordering::Relaxed);
        let done = p.locations_done.load(Ordering::Relaxed);
        let delivered = from
            .deliverer
            .counters
            .delivered
            .load(Ordering::Relaxed)
            .saturating_sub(from.delivered_before);
        let (waits, waited) = review_sync::quota::waits::totals();
        // The longest wait in progress, named: a sync waiting for a
        // budget never looks hung.
        // It goes first: a narrow terminal cuts the end of the line.
        let waiting = review_sync::quota::waits::longest_in_progress()
            .map(|w| format!("{} | ", w.describe(tokio::time::Instant::now())))
            .unwrap_or_default();
        let phase = if planned > 0 && done >= planned {
            "delivering"
        } else {
            reading
        };
        bar.set_message(format!(
            "{waiting}{phase} {done}/{planned} locations, {} new, {} edited; {delivered} delivered, {} pending; {waits} rate waits ({}s)",
            p.new.load(Ordering::Relaxed),
            p.edited.load(Ordering::Relaxed),
            pending.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            waited.as_secs(),
        ));
    }
}

/// The summary table. Names, ids and errors come from the config and the
/// platforms, so each is escaped for the terminal.
fn print_summary(report: &SyncReport) {
    // Removal columns only when a reconciliation pass ran: an incremental
    // pass never marks anything removed.
    let reconciled = report.sources.iter().any(|s| s.reconcile);
    let mut header = format!(
        "{:<24} {:>9} {:>6} {:>6} {:>9} {:>11} {:>6}",
        "source", "locations", "new", "edited", "unchanged", "quarantined", "failed"
    );
    if reconciled {
        header.push_str(&format!(" {:>7} {:>8}", "removed", "returned"));
    }
    println!("{header}");
    for s in &report.sources {
        let t = s.totals();
        let mut line = format!(
            "{:<24} {:>9} {:>6} {:>6} {:>9} {:>11} {:>6}",
            Escaped(&s.source),
            s.locations.len(),
            t.new,
            t.edited,
            t.unchanged,
            t.quarantined,
            s.failed()
        );
        if reconciled && s.reconcile {
            line.push_str(&format!(" {:>7} {:>8}", s.removed(), s.returned()));
        } else if reconciled {
            line.push_str(&format!(" {:>7} {:>8}", "-", "-"));
        }
        println!("{line}");
        let source = Escaped(&s.source);
        if reconciled && !s.reconcile && s.needs_consent.is_none() {
            println!("  {source}: polled incrementally: its kind cannot list every review");
        }
        if let Some(reason) = &s.needs_consent {
            println!("  {source}: needs new consent: {}", Escaped(reason));
        }
        if let Some(d) = &s.discovery {
            println!(
                "  {}: discovered {} location(s) in {} account(s): {} mapped by store code, {} by [[source.location]], {} without a store code (reviews held)",
                source,
                d.found,
                d.accounts,
                d.by_store_code,
                d.configured,
                d.unmapped.len()
            );
            for (account, error) in &d.failures {
                println!(
                    "  {source} {}: discovery failed: {}",
                    Escaped(account),
                    Escaped(error)
                );
            }
            for u in &d.unmapped {
                match &u.title {
                    Some(title) => println!(
                        "  {source} {} (\"{}\"): no store code; its reviews are held",
                        Escaped(&u.id),
                        Escaped(title)
                    ),
                    None => println!(
                        "  {source} {}: no store code; its reviews are held",
                        Escaped(&u.id)
                    ),
                }
            }
        }
        // Locations a stop came before are one line, not one each.
        let not_read: Vec<&str> = s
            .locations
            .iter()
            .filter_map(|l| l.error.as_deref())
            .filter(|e| was_not_read(e))
            .collect();
        if let Some(first) = not_read.first() {
            println!(
                "  {source}: {} location(s) {}",
                not_read.len(),
                Escaped(first.trim_start_matches("stopped: "))
            );
        }
        if let Some(reason) = &s.stopped
            && s.locations.is_empty()
        {
            println!(
                "  {source}: stopped before its locations were listed: {}",
                Escaped(reason)
            );
        }
        for l in &s.locations {
            let location = Escaped(&l.location_id);
            if let Some(e) = l.error.as_deref().filter(|e| !was_not_read(e)) {
                println!("  {source} {location}: {}", Escaped(e));
            }
            if let Some(gap) = l.gap.filter(|g| *g > 0) {
                println!(
                    "  {source} {location}: the platform reports {gap} more review(s) than the ledger holds"
                );
            }
        }
    }
    println!(
        "delivered {}; pending {}, held {}, rejected {}",
        report.delivered, report.pending, report.held, report.rejected
    );
}

async fn dry_run(
    config: &review_sync::config::Config,
    sources: &[String],
) -> anyhow::Result<ExitCode> {
    let out = review_sync::dry_run::dry_run(config, sources).await?;
    for body in &out.bodies {
        println!("{body}");
    }
    eprintln!(
        "dry run: {} bodies would be POSTed ({} new, {} edited, {} already pending); {} record(s) would be quarantined; nothing was changed",
        out.bodies.len(),
        out.new,
        out.edited,
        out.pending,
        out.quarantined
    );
    if out.held > 0 {
        eprintln!(
            "  {} new or edited review(s) of discovered locations without a store code would be held, not POSTed",
            out.held
        );
    }
    for (source, location, error) in &out.failures {
        eprintln!(
            "  {} {}: {}",
            Escaped(source),
            Escaped(location),
            Escaped(error)
        );
    }
    Ok(if out.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
