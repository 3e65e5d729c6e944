//! `review-sync sync`: one pass now, a summary, and an exit status that says
//! whether everything was delivered.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use review_sync::app::{App, SyncReport};
use review_sync::escape::Escaped;
use review_sync::poll::PassKind;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `sync` options.
#[derive(Debug, Args)]
pub struct SyncArgs {
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
    /// How long to keep retrying failed deliveries before giving up on this pass
    /// (they stay pending in the ledger for the next one); at most 1 week.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = super::values::wait)]
    pub wait: Duration,
}

/// Runs one pass.
pub async fn sync(config_path: &Path, args: SyncArgs) -> anyhow::Result<ExitCode> {
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
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.enable_steady_tick(Duration::from_millis(120));
    let kind = if args.reconcile {
        spinner.set_message("reconciling and delivering");
        PassKind::Reconcile
    } else {
        spinner.set_message("polling and delivering");
        PassKind::Incremental
    };
    let report = app
        .sync_pass(&args.sources, kind, args.wait, &cancel)
        .await?;
    spinner.finish_and_clear();
    print_summary(&report);
    if report.all_delivered() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "review-sync: not everything was delivered: {} pending, {} held, {} rejected, {} location(s) failed, {} account(s) not discovered (see `review-sync ledger list --status ...`)",
            report.pending,
            report.held,
            report.rejected,
            report.sources.iter().map(|s| s.failed()).sum::<usize>(),
            report
                .sources
                .iter()
                .map(|s| s.discovery_failed())
                .sum::<usize>()
        );
        Ok(ExitCode::FAILURE)
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
        for l in &s.locations {
            let location = Escaped(&l.location_id);
            if let Some(e) = &l.error {
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
