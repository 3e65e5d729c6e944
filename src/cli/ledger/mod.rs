//! `review-sync ledger ...`: what auditors and admins ask of the ledger.
//! Queries open it read-only (safe while the daemon runs); `retry`,
//! `resend` and `purge` write.
//!
//! Every table and text output is escaped for the terminal
//! (`review_sync::escape`); JSON is exact; CSV is exact but for OWASP's
//! formula rule (`output`). Listings and exports go on past a row they
//! cannot read, name it on stderr and exit 65.
//!
//! This file holds the clap definitions (their doc comments are the help
//! and the man pages) and the dispatch; each subcommand has its own file,
//! `args.rs` the filters and formats several of them share, `rows.rs` a
//! review's and an attempt's fields as `list`, `show` and `export` print
//! them, and `output.rs` what every one of them writes with.

mod args;
mod backup;
mod export;
mod list;
mod output;
mod polls;
mod purge;
mod quarantine;
mod resend;
mod retry;
mod rows;
mod show;
mod stats;

use args::{ExportFormat, ExportTable, ListFormat, LogArgs, RetryStatus, ReviewArgs, ShowFormat};
pub(crate) use stats::{Coverage, print_coverage, print_stats};

use anyhow::Context;
use clap::Subcommand;
use review_sync::ledger::Ledger;
use review_sync::ledger::Target;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// `ledger` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum LedgerCommand {
    /// Counts by status, platform, source and group; oldest pending.
    Stats {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// One row per review.
    List {
        #[command(flatten)]
        filter: ReviewArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// CSV only: start with a UTF-8 byte-order mark (for spreadsheets).
        #[arg(long)]
        bom: bool,
    },
    /// One review: its row, its body (sent, or to send), every delivery
    /// attempt with the group and version it carried, and every requeue.
    Show {
        /// PLATFORM REVIEW_ID, or REVIEW_ID alone when no other platform
        /// has a review with that id.
        #[arg(num_args = 1..=2, required = true, value_names = ["PLATFORM", "REVIEW_ID"])]
        review: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
    },
    /// The whole ledger for audit, streamed (constant memory at any size).
    /// Rows that cannot be read are named on stderr and skipped (exit 65).
    Export {
        /// Output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Which table: reviews (one row per review) or attempts (one row
        /// per delivery attempt, in the order recorded; filters: --group is
        /// the group the attempt was sent to, --since/--until its time).
        #[arg(long, value_enum, default_value_t = ExportTable::Reviews)]
        table: ExportTable,
        #[command(flatten)]
        filter: ReviewArgs,
        /// CSV only: start with a UTF-8 byte-order mark (for spreadsheets).
        #[arg(long)]
        bom: bool,
    },
    /// The platform records that could not become reviews, with the reason
    /// (and the raw record in JSON and CSV).
    Quarantine {
        #[command(flatten)]
        filter: LogArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// CSV only: start with a UTF-8 byte-order mark.
        #[arg(long)]
        bom: bool,
    },
    /// The poll log: one row per location poll (kept `retain_polls_days`).
    Polls {
        #[command(flatten)]
        filter: LogArgs,
        /// Only polls that failed.
        #[arg(long)]
        errors: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// CSV only: start with a UTF-8 byte-order mark.
        #[arg(long)]
        bom: bool,
    },
    /// Remove review text and reviewer names (comment, title, display_name)
    /// of reviews delivered before DATE; ids, hashes and history stay.
    Purge {
        /// Cutoff: 2026-01-31 (midnight UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DATE", value_parser = super::values::time_arg)]
        before: String,
    },
    /// Write a consistent copy of the ledger (safe while the daemon runs).
    Backup {
        /// The copy to create (mode 0600).
        path: std::path::PathBuf,
        /// Replace PATH if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Send a delivered review again on purpose: back to pending, to the
    /// group the config maps it to now; recorded in the `requeues` table.
    Resend {
        /// Platform (`google`, ...).
        platform: String,
        /// The platform's review id.
        review_id: String,
    },
    /// Put held/rejected reviews back to pending (after fixing a mapping or
    /// credential); each is recorded in the `requeues` table. One named
    /// review that is missing, delivered or pending is explained (exit 1
    /// unless it is already pending).
    Retry {
        /// Only this status (default: held and rejected).
        #[arg(long, value_enum)]
        status: Option<RetryStatus>,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// One review: PLATFORM REVIEW_ID.
        #[arg(num_args = 2, value_names = ["PLATFORM", "REVIEW_ID"])]
        review: Vec<String>,
    },
}

/// Runs a `ledger` subcommand. Only `[ledger]` of the config is needed (an
/// auditor's shell has no `$CREDENTIALS_DIRECTORY`); `retry` also reads the
/// sources' mapping, still without their secrets, and `stats` their kinds
/// when they validate.
pub(crate) async fn ledger(config_path: &Path, cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    let path = review_sync::config::load_ledger(config_path)?.path;
    match cmd {
        LedgerCommand::Stats { format } => {
            // The table ends with what each source can see of its platform.
            let mapping = match format {
                ListFormat::Table => review_sync::config::load_source_map(config_path).ok(),
                _ => None,
            };
            blocking(move || stats::stats(&path, format, mapping.as_ref())).await
        }
        LedgerCommand::List {
            filter,
            format,
            bom,
        } => {
            read(path, move |l, out| {
                list::list(l, &filter.filter(), format, bom, out)
            })
            .await
        }
        LedgerCommand::Show { review, format } => {
            read(path, move |l, out| show::show(l, &review, format, out)).await
        }
        LedgerCommand::Export {
            format,
            table,
            filter,
            bom,
        } => {
            read(path, move |l, out| match table {
                ExportTable::Reviews => export::reviews(l, &filter.filter(), format, bom, out),
                ExportTable::Attempts => {
                    export::attempts(l, &filter.attempt_filter()?, format, bom, out)
                }
            })
            .await
        }
        LedgerCommand::Quarantine {
            filter,
            format,
            bom,
        } => {
            read(path, move |l, out| {
                quarantine::quarantine(l, &filter.filter(false), format, bom, out)
            })
            .await
        }
        LedgerCommand::Polls {
            filter,
            errors,
            format,
            bom,
        } => {
            read(path, move |l, out| {
                polls::polls(l, &filter.filter(errors), format, bom, out)
            })
            .await
        }
        LedgerCommand::Purge { before } => blocking(move || purge::purge(&path, &before)).await,
        LedgerCommand::Backup { path: dest, force } => {
            blocking(move || backup::backup(&path, &dest, force)).await
        }
        LedgerCommand::Resend {
            platform,
            review_id,
        } => {
            let mapping = review_sync::config::load_source_map(config_path)?;
            blocking(move || {
                let mut ledger = Ledger::open(&path)?;
                resend::resend(&mut ledger, &mapping, &platform, &review_id)
            })
            .await
        }
        LedgerCommand::Retry {
            status,
            source,
            group,
            review,
        } => {
            let ask = retry::Retry {
                status,
                source,
                group,
                review,
            };
            retry::retry(config_path, path, ask).await
        }
    }
}

/// Runs `f` on a blocking thread: the ledger is SQLite, and an export can
/// take a while.
async fn blocking(
    f: impl FnOnce() -> anyhow::Result<ExitCode> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(f)
        .await
        .context("ledger task")?
}

/// [`query`] on a blocking thread: the read-only subcommands.
async fn read(
    path: Target,
    f: impl FnOnce(&Ledger, &mut dyn Write) -> anyhow::Result<ExitCode> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    blocking(move || query(&path, f)).await
}

/// Opens the ledger at `path` read-only (safe while the daemon runs) and
/// runs `f` with it and a buffered stdout.
fn query(
    path: &Target,
    f: impl FnOnce(&Ledger, &mut dyn Write) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::open_readonly(path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = f(&ledger, &mut out)?;
    out.flush()?;
    Ok(code)
}
