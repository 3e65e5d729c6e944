//! `review-sync ledger ...`: what auditors and admins ask of the ledger.
//! Queries open it read-only (safe while the daemon runs); `retry`,
//! `resend` and `purge` write.
//!
//! Every table and text output is escaped for the terminal
//! (`review_sync::escape`); JSON is exact; CSV is exact but for OWASP's
//! formula rule (`output`). Listings and exports go on past a row they
//! cannot read, name it on stderr and exit 65.

mod output;
mod polls;
mod quarantine;
mod resend;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use output::{CorruptRows, CsvOut, io_to_ledger, json_line};
use review_sync::escape::{Escaped, escape, escape_lines};
use review_sync::ledger::{
    AttemptFilter, AttemptRow, Ledger, LogFilter, PurgedBy, RequeueRow, ReviewFilter, ReviewRow,
    Stats, Status, body_hash, format_time,
};
use review_sync::locations::DiscoveredGroups;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// A time on the command line: RFC 3339, or a date (midnight UTC).
type Time = chrono::DateTime<chrono::Utc>;

fn time_arg(s: &str) -> Result<Time, String> {
    super::parse_time(s).map_err(|e| e.to_string())
}

/// `ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
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

/// The review filters of `list` and `export`.
#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// Only these statuses: comma-separated or repeated
    /// (`--status held,pending`); `undelivered` is pending, held and rejected.
    #[arg(long, value_enum, value_delimiter = ',')]
    status: Vec<StatusArg>,
    /// Only this source.
    #[arg(long)]
    source: Option<String>,
    /// Only this group (external ref or id).
    #[arg(long)]
    group: Option<String>,
    /// Only reviews first seen at or after this (2026-01-31: midnight UTC,
    /// or an RFC 3339 time).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<Time>,
    /// Only reviews first seen before this.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<Time>,
    /// Only reviews (last) delivered at or after this.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    delivered_since: Option<Time>,
    /// Only reviews (last) delivered before this.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    delivered_until: Option<Time>,
}

impl ReviewArgs {
    fn filter(self) -> ReviewFilter {
        let mut statuses: Vec<Status> = Vec::new();
        for s in self.status.iter().flat_map(|s| s.statuses()) {
            if !statuses.contains(s) {
                statuses.push(*s);
            }
        }
        ReviewFilter {
            statuses,
            source: self.source,
            group: self.group,
            since: self.since,
            until: self.until,
            delivered_since: self.delivered_since,
            delivered_until: self.delivered_until,
            review: None,
        }
    }

    /// For `export --table attempts`: only --group, --since and --until apply.
    fn attempt_filter(self) -> anyhow::Result<AttemptFilter> {
        let refused = [
            ("--status", !self.status.is_empty()),
            ("--source", self.source.is_some()),
            ("--delivered-since", self.delivered_since.is_some()),
            ("--delivered-until", self.delivered_until.is_some()),
        ];
        if let Some((flag, _)) = refused.iter().find(|(_, given)| *given) {
            anyhow::bail!(
                "{flag} filters reviews, not attempts; with --table attempts use --group, --since or --until (the attempt's time)"
            );
        }
        Ok(AttemptFilter {
            group: self.group,
            since: self.since,
            until: self.until,
        })
    }
}

/// The filters of `quarantine` and `polls`.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Only this source.
    #[arg(long)]
    source: Option<String>,
    /// Only this location.
    #[arg(long)]
    location: Option<String>,
    /// Only rows at or after this time (quarantine: first seen; polls: started).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<Time>,
    /// Only rows before this time.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<Time>,
}

impl LogArgs {
    fn filter(self, errors_only: bool) -> LogFilter {
        LogFilter {
            source: self.source,
            location: self.location,
            since: self.since,
            until: self.until,
            errors_only,
        }
    }
}

/// `--status` of `list` and `export`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    /// Waiting for delivery.
    Pending,
    /// Delivered.
    Delivered,
    /// Held (mapping problem).
    Held,
    /// Rejected by the API.
    Rejected,
    /// Pending, held and rejected: everything not delivered.
    Undelivered,
}

impl StatusArg {
    fn statuses(self) -> &'static [Status] {
        match self {
            StatusArg::Pending => &[Status::Pending],
            StatusArg::Delivered => &[Status::Delivered],
            StatusArg::Held => &[Status::Held],
            StatusArg::Rejected => &[Status::Rejected],
            StatusArg::Undelivered => &[Status::Pending, Status::Held, Status::Rejected],
        }
    }
}

/// `export --table`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportTable {
    /// One row per review.
    Reviews,
    /// One row per delivery attempt.
    Attempts,
}

/// `--status` of `retry`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RetryStatus {
    /// Held rows.
    Held,
    /// Rejected rows.
    Rejected,
}

/// `list --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
    /// CSV with a header row.
    Csv,
}

/// `show --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ShowFormat {
    /// Aligned fields, the body, and a table of attempts.
    Table,
    /// One JSON object, the body and attempts included.
    Json,
}

/// `export --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// Runs a `ledger` subcommand. Only `[ledger]` of the config is needed (an
/// auditor's shell has no `$CREDENTIALS_DIRECTORY`); `retry` also reads the
/// sources' mapping, still without their secrets, and `stats` their kinds
/// when they validate.
pub async fn ledger(config_path: &Path, cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    let path = review_sync::config::load_ledger(config_path)?.path;
    let (mapping, discovered) = match &cmd {
        LedgerCommand::Retry { source, .. } => {
            let mapping = review_sync::config::load_source_map(config_path)?;
            let discovered = retry_discovery(config_path, &mapping, source.as_deref()).await?;
            (Some(mapping), discovered)
        }
        LedgerCommand::Resend { .. } => (
            Some(review_sync::config::load_source_map(config_path)?),
            DiscoveredGroups::default(),
        ),
        LedgerCommand::Stats {
            format: ListFormat::Table,
        } => (
            review_sync::config::load_source_map(config_path).ok(),
            DiscoveredGroups::default(),
        ),
        _ => (None, DiscoveredGroups::default()),
    };
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        match cmd {
            LedgerCommand::Retry {
                status,
                source,
                group,
                review,
            } => {
                let mut ledger = Ledger::open(&path)?;
                let statuses = match status {
                    Some(RetryStatus::Held) => vec![Status::Held],
                    Some(RetryStatus::Rejected) => vec![Status::Rejected],
                    None => vec![Status::Held, Status::Rejected],
                };
                let one = match review.as_slice() {
                    [p, id] => Some((p.clone(), id.clone())),
                    _ => None,
                };
                if let Some((p, id)) = &one
                    && let Some(code) = explain_unretryable(&ledger, p, id, &statuses)?
                {
                    return Ok(code);
                }
                let filter = ReviewFilter {
                    statuses,
                    source,
                    group,
                    review: one.clone(),
                    ..ReviewFilter::default()
                };
                // The config's mapping wins; else a discovered location's
                // store code as the platform lists it now.
                let regroup = |s: &str, l: &str| {
                    mapping
                        .as_ref()
                        .and_then(|m| m.group_of(s, l))
                        .or_else(|| discovered.group_of(s, l))
                        .cloned()
                };
                let (requeued, skipped) = ledger.retry(&filter, chrono::Utc::now(), &regroup)?;
                println!("{requeued} review(s) put back to pending");
                if skipped > 0 {
                    println!("{skipped} review(s) left as they are: their location has no mapping in the config (nor a store code on the platform, for a discovered location)");
                }
                // One named review that stayed as it was: the command did
                // not do what was asked.
                Ok(if one.is_some() && requeued == 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            }
            LedgerCommand::Resend {
                platform,
                review_id,
            } => {
                let mut ledger = Ledger::open(&path)?;
                let mapping = mapping.context("the sources' mapping")?;
                resend::resend(&mut ledger, &mapping, &platform, &review_id)
            }
            LedgerCommand::Purge { before } => {
                let cutoff = super::parse_time(&before).context("--before")?;
                let now = chrono::Utc::now();
                if cutoff > now {
                    anyhow::bail!("--before {before}: the cutoff is in the future");
                }
                let mut ledger = Ledger::open(&path)?;
                let rows = ledger.purge_text(cutoff, now, PurgedBy::Cli)?;
                println!(
                    "review text purged from {rows} review(s) delivered before {}; recorded in the purges table",
                    format_time(cutoff)
                );
                Ok(ExitCode::SUCCESS)
            }
            LedgerCommand::Backup { path: dest, force } => {
                let ledger = Ledger::open_readonly(&path)?;
                let report = ledger.backup_to(&dest, force)?;
                println!(
                    "ledger copied to {} ({} reviews, {} bytes)",
                    Escaped(report.path.display()),
                    report.reviews,
                    report.bytes
                );
                Ok(ExitCode::SUCCESS)
            }
            other => {
                let with_coverage = matches!(
                    other,
                    LedgerCommand::Stats {
                        format: ListFormat::Table
                    }
                );
                let ledger = Ledger::open_readonly(&path)?;
                let code = query(&ledger, other)?;
                if with_coverage {
                    let mut out = std::io::stdout().lock();
                    match &mapping {
                        Some(mapping) => print_coverage(
                            &mut out,
                            mapping.sources.iter().map(|s| Coverage {
                                source: s.name.as_str(),
                                kind: s.kind,
                                note: s.coverage_note,
                            }),
                        )?,
                        None => writeln!(
                            out,
                            "\n(coverage by source not shown: the config's [[source]] sections do not validate; `review-sync check` says why)"
                        )?,
                    }
                }
                Ok(code)
            }
        }
    })
    .await
    .context("ledger task")?
}

/// For `retry PLATFORM REVIEW_ID`: why the named review cannot be put back,
/// as the exit status to return (`None`: it can). Missing or delivered is an
/// error; already pending is not.
fn explain_unretryable(
    ledger: &Ledger,
    platform: &str,
    review_id: &str,
    statuses: &[Status],
) -> anyhow::Result<Option<ExitCode>> {
    let (p, id) = (Escaped(platform), Escaped(review_id));
    match ledger.review_status(platform, review_id)? {
        None => anyhow::bail!("no review {p} {id} in the ledger"),
        Some(Status::Delivered) => anyhow::bail!(
            "{p} {id} is delivered: `ledger retry` puts back held and rejected reviews; to send it again on purpose, run `review-sync ledger resend {p} {id}`"
        ),
        Some(Status::Pending) => {
            println!("{p} {id} is already pending: it is sent when due; nothing to put back");
            Ok(Some(ExitCode::SUCCESS))
        }
        Some(s) if !statuses.contains(&s) => anyhow::bail!(
            "{p} {id} is {}, which --status leaves out: nothing put back",
            s.as_str()
        ),
        Some(_) => Ok(None),
    }
}

/// For `retry` with a source that discovers its locations: the groups their
/// store codes give now (asking the platform), so that reviews held because
/// their location had no store code go out once it has one. That needs the
/// sources' credentials: when they cannot be read (a shell without the
/// unit's `$CREDENTIALS_DIRECTORY`), or an account cannot be listed, it
/// says so, and those reviews stay held.
async fn retry_discovery(
    config_path: &Path,
    mapping: &review_sync::config::SourceMap,
    source: Option<&str>,
) -> anyhow::Result<DiscoveredGroups> {
    if !mapping.discovers() {
        return Ok(DiscoveredGroups::default());
    }
    let config = match review_sync::config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            let first = e.lines().into_iter().next().unwrap_or_default();
            eprintln!(
                "warning: cannot ask the platforms for the store codes of discovered locations: the config's secrets cannot be read ({first}); reviews held for want of a store code stay held"
            );
            return Ok(DiscoveredGroups::default());
        }
    };
    let http = review_sync::app::http_client()?;
    let discovered = DiscoveredGroups::fetch(&config, source, http).await;
    for (source, account, error) in &discovered.failures {
        eprintln!(
            "warning: {} {}: cannot list its locations ({}); reviews held for want of a store code there stay held",
            Escaped(source),
            Escaped(account),
            Escaped(error)
        );
    }
    Ok(discovered)
}

fn query(ledger: &Ledger, cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match cmd {
        LedgerCommand::Stats { format } => {
            let stats = ledger.stats()?;
            match format {
                ListFormat::Table => print_stats(&mut out, &stats)?,
                ListFormat::Json => writeln!(out, "{}", json_line(&stats_json(&stats)))?,
                ListFormat::Csv => stats_csv(&mut out, &stats)?,
            }
            ExitCode::SUCCESS
        }
        LedgerCommand::List {
            filter,
            format,
            bom,
        } => list(ledger, &filter.filter(), format, bom, &mut out)?,
        LedgerCommand::Show { review, format } => show(ledger, &review, format, &mut out)?,
        LedgerCommand::Export {
            format,
            table: ExportTable::Reviews,
            filter,
            bom,
        } => export(ledger, &filter.filter(), format, bom, &mut out)?,
        LedgerCommand::Export {
            format,
            table: ExportTable::Attempts,
            filter,
            bom,
        } => export_attempts(ledger, &filter.attempt_filter()?, format, bom, &mut out)?,
        LedgerCommand::Quarantine {
            filter,
            format,
            bom,
        } => quarantine::quarantine(ledger, &filter.filter(false), format, bom, &mut out)?,
        LedgerCommand::Polls {
            filter,
            errors,
            format,
            bom,
        } => polls::polls(ledger, &filter.filter(errors), format, bom, &mut out)?,
        LedgerCommand::Retry { .. }
        | LedgerCommand::Resend { .. }
        | LedgerCommand::Purge { .. }
        | LedgerCommand::Backup { .. } => {
            unreachable!("writes and backups are handled by the caller")
        }
    };
    out.flush()?;
    Ok(code)
}

/// `show [PLATFORM] REVIEW_ID`.
fn show(
    ledger: &Ledger,
    review: &[String],
    format: ShowFormat,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let (platform, review_id) = match review {
        [platform, review_id] => (platform.clone(), review_id.clone()),
        [review_id] => {
            let platforms = ledger.platforms_of(review_id)?;
            match platforms.as_slice() {
                [] => anyhow::bail!("no review {review_id} in the ledger (on any platform)"),
                [platform] => (platform.clone(), review_id.clone()),
                several => anyhow::bail!(
                    "review id {review_id} is ambiguous: it is on {}; give the platform: `ledger show PLATFORM {review_id}`",
                    several.join(", ")
                ),
            }
        }
        _ => anyhow::bail!("expected PLATFORM REVIEW_ID, or REVIEW_ID"),
    };
    let Some((row, attempts)) = ledger.show(&platform, &review_id)? else {
        anyhow::bail!("no review {platform} {review_id} in the ledger");
    };
    let purged = ledger.text_purged_at(&platform, &review_id)?;
    let requeues = ledger.requeues_of(&platform, &review_id)?;
    if format == ShowFormat::Json {
        writeln!(
            out,
            "{}",
            json_line(&show_json(&row, &attempts, &requeues, purged))
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for (k, v) in row_fields(&row) {
        writeln!(out, "{k:<19} {}", escape(&v.unwrap_or_default()))?;
    }
    writeln!(
        out,
        "next_attempt_at     {}",
        opt_time(row.next_attempt_at).unwrap_or_default()
    )?;
    if let Some(t) = purged {
        writeln!(
            out,
            "text_purged_at      {} (retention removed {} from the body below)",
            format_time(t),
            review_sync::ledger::PURGED_FIELDS.join(", ")
        )?;
    }
    let pretty = serde_json::from_str::<serde_json::Value>(&row.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(row.payload.clone());
    writeln!(
        out,
        "\npayload ({}):\n{}\n{}",
        body_label(&row, &attempts, purged),
        escape(&row.payload),
        escape_lines(&pretty)
    )?;
    writeln!(out, "\nattempts ({}):", attempts.len())?;
    writeln!(
        out,
        "{:<24} {:>6} {:<10} {:<28} {:<36} {:<12} {:<38} {:>7} message",
        "attempted_at",
        "status",
        "outcome",
        "error_type",
        "sent to group",
        "content_hash",
        "request_id",
        "ms"
    )?;
    for a in &attempts {
        writeln!(
            out,
            "{:<24} {:>6} {:<10} {:<28} {:<36} {:<12} {:<38} {:>7} {}",
            format_time(a.attempted_at),
            a.http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            escape(&a.outcome),
            escape(a.error_type.as_deref().unwrap_or_default()),
            escape(&group_label(
                a.group_id.as_deref(),
                a.group_external_ref.as_deref(),
                "(not recorded)"
            )),
            short_hash(&a.content_hash),
            escape(a.request_id.as_deref().unwrap_or_default()),
            a.duration_ms,
            escape(a.error_message.as_deref().unwrap_or_default())
        )?;
    }
    if !requeues.is_empty() {
        writeln!(out, "\nrequeues ({}):", requeues.len())?;
        writeln!(
            out,
            "{:<24} {:<8} {:<12} {:<12} group",
            "requeued_at", "command", "from_status", "content_hash"
        )?;
        for q in &requeues {
            writeln!(
                out,
                "{:<24} {:<8} {:<12} {:<12} {}",
                format_time(q.requeued_at),
                escape(&q.command),
                escape(&q.from_status),
                short_hash(&q.content_hash),
                escape(&group_label(
                    q.group_id.as_deref(),
                    q.group_external_ref.as_deref(),
                    "(none)"
                ))
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the stored body is: sent (and delivered), sent but not delivered,
/// or not sent yet (new, held before any attempt, or regrouped by `retry`
/// since its last attempt). An attempt recorded before schema version 5
/// has no body hash; its version (`content_hash`) stands in for it.
fn body_label(
    row: &ReviewRow,
    attempts: &[AttemptRow],
    purged: Option<chrono::DateTime<chrono::Utc>>,
) -> &'static str {
    if purged.is_some() {
        return "body sent, its text since purged";
    }
    let hash = body_hash(&row.payload);
    let with_this_body = |a: &&AttemptRow| match &a.body_hash {
        Some(h) => *h == hash,
        None => a.content_hash == row.content_hash,
    };
    let mut sent = attempts.iter().filter(with_this_body).peekable();
    if sent.peek().is_none() {
        "body to send (not sent yet)"
    } else if sent.any(|a| a.outcome == "delivered") {
        "exact body sent"
    } else {
        "exact body sent, not delivered: see the attempts"
    }
}

/// `group_external_ref=X`, `group_id=X`, or `none` when neither is known.
fn group_label(group_id: Option<&str>, external_ref: Option<&str>, none: &str) -> String {
    match (external_ref, group_id) {
        (Some(r), _) => format!("group_external_ref={r}"),
        (None, Some(id)) => format!("group_id={id}"),
        (None, None) => none.to_owned(),
    }
}

/// The first 12 hex digits of a hash: enough to tell versions apart in a
/// table (JSON and exports carry the whole hash).
fn short_hash(hash: &str) -> String {
    escape(hash).chars().take(12).collect()
}

fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    t.map(format_time)
}

/// The columns shown by `list`, `show` and exports, in SPEC order.
fn row_fields(r: &ReviewRow) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("platform", Some(r.platform.clone())),
        ("review_id", Some(r.review_id.clone())),
        ("source_name", Some(r.source_name.clone())),
        ("location_id", Some(r.location_id.clone())),
        ("group_id", r.group_id.clone()),
        ("group_external_ref", r.group_external_ref.clone()),
        ("status", Some(r.status.as_str().to_owned())),
        ("content_hash", Some(r.content_hash.clone())),
        ("first_seen_at", Some(format_time(r.first_seen_at))),
        ("source_updated_at", opt_time(r.source_updated_at)),
        ("delivered_at", opt_time(r.delivered_at)),
        ("request_id", r.request_id.clone()),
        ("attempts", Some(r.attempts.to_string())),
        ("last_error", r.last_error.clone()),
        ("removed_at", opt_time(r.removed_at)),
        ("notes", r.notes.clone()),
    ]
}

fn list(
    ledger: &Ledger,
    filter: &ReviewFilter,
    format: ListFormat,
    bom: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let mut corrupt = CorruptRows::default();
    match format {
        ListFormat::Table => {
            writeln!(
                out,
                "{:<10} {:<28} {:<18} {:<10} {:<24} {:>8} {:<24} last_error",
                "platform", "review_id", "source", "status", "group", "attempts", "delivered_at"
            )?;
            ledger.for_each_review_lenient(
                filter,
                &mut |r| {
                    let group = r
                        .group_external_ref
                        .clone()
                        .or_else(|| r.group_id.clone())
                        .unwrap_or_else(|| "(unmapped)".into());
                    writeln!(
                        out,
                        "{:<10} {:<28} {:<18} {:<10} {:<24} {:>8} {:<24} {}",
                        escape(&r.platform),
                        escape(&r.review_id),
                        escape(&r.source_name),
                        r.status.as_str(),
                        escape(&group),
                        r.attempts,
                        opt_time(r.delivered_at).unwrap_or_default(),
                        escape(r.last_error.as_deref().unwrap_or_default())
                    )
                    .map_err(io_to_ledger)
                },
                &mut |e| corrupt.report(e),
            )?;
        }
        ListFormat::Json => {
            write!(out, "[")?;
            let mut first = true;
            ledger.for_each_review_lenient(
                filter,
                &mut |r| {
                    let sep = if std::mem::take(&mut first) { "" } else { "," };
                    write!(out, "{sep}\n{}", json_line(&row_json(r, false))).map_err(io_to_ledger)
                },
                &mut |e| corrupt.report(e),
            )?;
            writeln!(out, "\n]")?;
        }
        ListFormat::Csv => write_csv(ledger, filter, false, bom, out, &mut corrupt)?,
    }
    Ok(corrupt.finish())
}

fn export(
    ledger: &Ledger,
    filter: &ReviewFilter,
    format: ExportFormat,
    bom: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let mut corrupt = CorruptRows::default();
    match format {
        ExportFormat::Jsonl => {
            if bom {
                anyhow::bail!("--bom is for CSV");
            }
            ledger.for_each_review_lenient(
                filter,
                &mut |r| writeln!(out, "{}", json_line(&row_json(r, true))).map_err(io_to_ledger),
                &mut |e| corrupt.report(e),
            )?
        }
        ExportFormat::Csv => write_csv(ledger, filter, true, bom, out, &mut corrupt)?,
    }
    Ok(corrupt.finish())
}

/// A review's JSON object; with the payload, it is the parsed body (an
/// object), or the stored text when that is not JSON.
fn row_json(r: &ReviewRow, with_payload: bool) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in row_fields(r) {
        let value = match (k, v) {
            ("attempts", _) => serde_json::Value::from(r.attempts),
            (_, Some(v)) => serde_json::Value::from(v),
            (_, None) => serde_json::Value::Null,
        };
        m.insert(k.to_owned(), value);
    }
    if with_payload {
        m.insert("payload".into(), payload_value(&r.payload));
    }
    serde_json::Value::Object(m)
}

fn payload_value(payload: &str) -> serde_json::Value {
    serde_json::from_str(payload).unwrap_or_else(|_| payload.into())
}

/// The review's own words and rating, flat, for spreadsheets: `rating`,
/// `title`, `comment`, `reviewer` (the `review` object's `rating`, `title`,
/// `comment` and `display_name`; empty when absent or purged).
const FLAT_COLUMNS: [(&str, &str); 4] = [
    ("rating", "rating"),
    ("title", "title"),
    ("comment", "comment"),
    ("reviewer", "display_name"),
];

fn flat_cells(payload: &str) -> [String; 4] {
    let body = serde_json::from_str::<serde_json::Value>(payload).unwrap_or_default();
    FLAT_COLUMNS.map(|(_, key)| match &body["review"][key] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn write_csv(
    ledger: &Ledger,
    filter: &ReviewFilter,
    export: bool,
    bom: bool,
    out: &mut dyn Write,
    corrupt: &mut CorruptRows,
) -> anyhow::Result<()> {
    let mut csv = CsvOut::new(out, bom)?;
    let mut header: Vec<&str> = row_fields_header();
    if export {
        header.extend(FLAT_COLUMNS.map(|(name, _)| name));
        header.push("payload");
    }
    csv.row(&header)?;
    ledger.for_each_review_lenient(
        filter,
        &mut |r| {
            let mut fields: Vec<String> = row_fields(r)
                .into_iter()
                .map(|(_, v)| v.unwrap_or_default())
                .collect();
            if export {
                fields.extend(flat_cells(&r.payload));
                fields.push(r.payload.clone());
            }
            csv.row(&fields).map_err(io_to_ledger)
        },
        &mut |e| corrupt.report(e),
    )?;
    csv.flush()?;
    Ok(())
}

fn row_fields_header() -> Vec<&'static str> {
    vec![
        "platform",
        "review_id",
        "source_name",
        "location_id",
        "group_id",
        "group_external_ref",
        "status",
        "content_hash",
        "first_seen_at",
        "source_updated_at",
        "delivered_at",
        "request_id",
        "attempts",
        "last_error",
        "removed_at",
        "notes",
    ]
}

/// `export --table attempts`.
fn export_attempts(
    ledger: &Ledger,
    filter: &AttemptFilter,
    format: ExportFormat,
    bom: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let mut corrupt = CorruptRows::default();
    match format {
        ExportFormat::Jsonl => {
            if bom {
                anyhow::bail!("--bom is for CSV");
            }
            ledger.for_each_attempt(
                filter,
                &mut |a| writeln!(out, "{}", json_line(&attempt_json(a))).map_err(io_to_ledger),
                &mut |e| corrupt.report(e),
            )?;
        }
        ExportFormat::Csv => {
            let mut csv = CsvOut::new(out, bom)?;
            csv.row(ATTEMPT_HEADER)?;
            ledger.for_each_attempt(
                filter,
                &mut |a| {
                    let cells = ATTEMPT_HEADER.map(|k| match &attempt_json(a)[k] {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                    csv.row(cells).map_err(io_to_ledger)
                },
                &mut |e| corrupt.report(e),
            )?;
            csv.flush()?;
        }
    }
    Ok(corrupt.finish())
}

/// The columns of an exported attempt, in order.
const ATTEMPT_HEADER: [&str; 14] = [
    "platform",
    "review_id",
    "attempted_at",
    "content_hash",
    "group_id",
    "group_external_ref",
    "body_hash",
    "http_status",
    "outcome",
    "error_type",
    "error_message",
    "request_id",
    "duration_ms",
    "id",
];

fn attempt_json(a: &AttemptRow) -> serde_json::Value {
    serde_json::json!({
        "platform": a.platform,
        "review_id": a.review_id,
        "attempted_at": format_time(a.attempted_at),
        "content_hash": a.content_hash,
        "group_id": a.group_id,
        "group_external_ref": a.group_external_ref,
        "body_hash": a.body_hash,
        "http_status": a.http_status,
        "outcome": a.outcome,
        "error_type": a.error_type,
        "error_message": a.error_message,
        "request_id": a.request_id,
        "duration_ms": a.duration_ms,
        "id": a.id,
    })
}

pub fn print_stats(out: &mut dyn Write, s: &Stats) -> anyhow::Result<()> {
    writeln!(
        out,
        "reviews: {} (removed from platform: {}), quarantined records: {}, delivery attempts: {}",
        s.total, s.removed, s.quarantined, s.attempts
    )?;
    writeln!(
        out,
        "oldest pending: {}",
        opt_time(s.oldest_pending).unwrap_or_else(|| "none".into())
    )?;
    writeln!(out, "\n{:<12} {:>8}", "status", "count")?;
    for (status, n) in &s.by_status {
        writeln!(out, "{:<12} {n:>8}", escape(status))?;
    }
    for (title, rows) in [
        ("platform", &s.by_platform),
        ("source", &s.by_source),
        ("group", &s.by_group),
    ] {
        writeln!(out, "\n{:<32} {:<12} {:>8}", title, "status", "count")?;
        for (key, status, n) in rows {
            writeln!(out, "{:<32} {:<12} {n:>8}", escape(key), escape(status))?;
        }
    }
    Ok(())
}

/// What each configured source can see of its platform, one line per
/// source (`SourceKind::coverage_note`): an auditor reading the counts above
/// must know that a Places or Yelp source can never hold every review.
pub fn print_coverage<'a>(
    out: &mut dyn Write,
    sources: impl IntoIterator<Item = Coverage<'a>>,
) -> anyhow::Result<()> {
    let mut sources = sources.into_iter().peekable();
    if sources.peek().is_none() {
        return Ok(());
    }
    writeln!(out, "\n{:<32} {:<24} coverage", "source", "kind")?;
    for source in sources {
        let note = source
            .note
            .unwrap_or("every review of each location can be read");
        writeln!(
            out,
            "{:<32} {:<24} {note}",
            escape(source.source),
            source.kind
        )?;
    }
    Ok(())
}

/// One line of [`print_coverage`].
pub struct Coverage<'a> {
    /// The source's name.
    pub source: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// What it cannot see, if anything.
    pub note: Option<&'a str>,
}

/// `stats --format json`: one object.
fn stats_json(s: &Stats) -> serde_json::Value {
    let grouped = |name: &str, rows: &[(String, String, u64)]| -> serde_json::Value {
        rows.iter()
            .map(|(key, status, n)| serde_json::json!({ name: key, "status": status, "count": n }))
            .collect()
    };
    serde_json::json!({
        "total": s.total,
        "removed": s.removed,
        "quarantined": s.quarantined,
        "attempts": s.attempts,
        "oldest_pending": opt_time(s.oldest_pending),
        "by_status": s.by_status.iter()
            .map(|(status, n)| serde_json::json!({ "status": status, "count": n }))
            .collect::<serde_json::Value>(),
        "by_platform": grouped("platform", &s.by_platform),
        "by_source": grouped("source", &s.by_source),
        "by_group": grouped("group", &s.by_group),
    })
}

/// `stats --format csv`: `dimension,key,status,count`, one row per count
/// (dimension `total`, `status`, `platform`, `source` or `group`).
fn stats_csv(out: &mut dyn Write, s: &Stats) -> anyhow::Result<()> {
    let mut w = CsvOut::new(out, false)?;
    w.row(["dimension", "key", "status", "count"])?;
    w.row(["total", "", "", &s.total.to_string()])?;
    for (status, n) in &s.by_status {
        w.row(["status", "", status, &n.to_string()])?;
    }
    for (dimension, rows) in [
        ("platform", &s.by_platform),
        ("source", &s.by_source),
        ("group", &s.by_group),
    ] {
        for (key, status, n) in rows {
            w.row([dimension, key, status, &n.to_string()])?;
        }
    }
    w.flush()?;
    Ok(())
}

/// `show --format json`: the row, the body (parsed), every attempt and requeue.
fn show_json(
    row: &ReviewRow,
    attempts: &[AttemptRow],
    requeues: &[RequeueRow],
    purged: Option<chrono::DateTime<chrono::Utc>>,
) -> serde_json::Value {
    let mut m = match row_json(row, false) {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    m.insert(
        "next_attempt_at".into(),
        opt_time(row.next_attempt_at).into(),
    );
    m.insert("text_purged_at".into(), opt_time(purged).into());
    m.insert("payload".into(), payload_value(&row.payload));
    m.insert(
        "payload_state".into(),
        body_label(row, attempts, purged).into(),
    );
    let attempts: Vec<serde_json::Value> = attempts.iter().map(attempt_json).collect();
    m.insert("attempts".into(), attempts.into());
    let requeues: Vec<serde_json::Value> = requeues
        .iter()
        .map(|q| {
            serde_json::json!({
                "requeued_at": format_time(q.requeued_at),
                "command": q.command,
                "from_status": q.from_status,
                "content_hash": q.content_hash,
                "group_id": q.group_id,
                "group_external_ref": q.group_external_ref,
            })
        })
        .collect();
    m.insert("requeues".into(), requeues.into());
    serde_json::Value::Object(m)
}
