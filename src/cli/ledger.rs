//! `review-sync ledger ...`: what auditors and admins ask of the ledger.
//! Queries open it read-only (safe while the daemon runs); `retry` writes.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use review_sync::ledger::{Ledger, ReviewFilter, ReviewRow, Stats, Status};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// `ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Counts by status, platform, source and group; oldest pending.
    Stats,
    /// One row per review.
    List {
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only this group (external ref or id).
        #[arg(long)]
        group: Option<String>,
        /// Only reviews first seen at or after this (2026-01-31 or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// One review: its row, the exact body sent, and every delivery attempt.
    Show {
        /// Platform (`google`, ...).
        platform: String,
        /// The platform's review id.
        review_id: String,
    },
    /// The whole ledger for audit, streamed.
    Export {
        /// Output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only reviews first seen at or after this.
        #[arg(long)]
        since: Option<String>,
    },
    /// Put held/rejected reviews back to pending (after fixing a mapping or credential).
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

/// `--status` of `list`.
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
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Status {
        match s {
            StatusArg::Pending => Status::Pending,
            StatusArg::Delivered => Status::Delivered,
            StatusArg::Held => Status::Held,
            StatusArg::Rejected => Status::Rejected,
        }
    }
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

/// `export --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// Runs a `ledger` subcommand.
pub async fn ledger(config_path: &Path, cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    let path = config.ledger.path.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        match cmd {
            LedgerCommand::Retry {
                status,
                source,
                group,
                review,
            } => {
                let mut ledger = Ledger::open(&path)?;
                let filter = ReviewFilter {
                    statuses: match status {
                        Some(RetryStatus::Held) => vec![Status::Held],
                        Some(RetryStatus::Rejected) => vec![Status::Rejected],
                        None => vec![Status::Held, Status::Rejected],
                    },
                    source,
                    group,
                    since: None,
                    review: match review.as_slice() {
                        [p, id] => Some((p.clone(), id.clone())),
                        _ => None,
                    },
                };
                let regroup = |s: &str, l: &str| config.group_of(s, l).cloned();
                let (requeued, skipped) = ledger.retry(&filter, chrono::Utc::now(), &regroup)?;
                println!("{requeued} review(s) put back to pending");
                if skipped > 0 {
                    println!("{skipped} review(s) left as they are: their location has no mapping in the config");
                }
                Ok(ExitCode::SUCCESS)
            }
            other => {
                let ledger = Ledger::open_readonly(&path)?;
                query(&ledger, other)
            }
        }
    })
    .await
    .context("ledger task")?
}

fn query(ledger: &Ledger, cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match cmd {
        LedgerCommand::Stats => print_stats(&mut out, &ledger.stats()?)?,
        LedgerCommand::List {
            status,
            source,
            group,
            since,
            format,
        } => {
            let filter = ReviewFilter {
                statuses: status.map(Status::from).into_iter().collect(),
                source,
                group,
                since: since.as_deref().map(super::parse_since).transpose()?,
                review: None,
            };
            list(ledger, &filter, format, &mut out)?;
        }
        LedgerCommand::Show {
            platform,
            review_id,
        } => {
            let Some((row, attempts)) = ledger.show(&platform, &review_id)? else {
                anyhow::bail!("no review {platform} {review_id} in the ledger");
            };
            for (k, v) in row_fields(&row) {
                writeln!(out, "{k:<19} {}", v.unwrap_or_default())?;
            }
            writeln!(
                out,
                "next_attempt_at     {}",
                opt_time(row.next_attempt_at).unwrap_or_default()
            )?;
            let pretty = serde_json::from_str::<serde_json::Value>(&row.payload)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(row.payload.clone());
            writeln!(
                out,
                "\npayload (exact body sent):\n{}\n{pretty}",
                row.payload
            )?;
            writeln!(out, "\nattempts ({}):", attempts.len())?;
            writeln!(
                out,
                "{:<24} {:>6} {:<10} {:<28} {:<38} {:>7} message",
                "attempted_at", "status", "outcome", "error_type", "request_id", "ms"
            )?;
            for a in attempts {
                writeln!(
                    out,
                    "{:<24} {:>6} {:<10} {:<28} {:<38} {:>7} {}",
                    review_sync::ledger::format_time(a.attempted_at),
                    a.http_status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    a.outcome,
                    a.error_type.unwrap_or_default(),
                    a.request_id.unwrap_or_default(),
                    a.duration_ms,
                    a.error_message.unwrap_or_default()
                )?;
            }
        }
        LedgerCommand::Export { format, since } => {
            let filter = ReviewFilter {
                since: since.as_deref().map(super::parse_since).transpose()?,
                ..ReviewFilter::default()
            };
            export(ledger, &filter, format, &mut out)?;
        }
        LedgerCommand::Retry { .. } => unreachable!("retry is handled by the caller"),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    t.map(review_sync::ledger::format_time)
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
        (
            "first_seen_at",
            Some(review_sync::ledger::format_time(r.first_seen_at)),
        ),
        ("source_updated_at", opt_time(r.source_updated_at)),
        ("delivered_at", opt_time(r.delivered_at)),
        ("request_id", r.request_id.clone()),
        ("attempts", Some(r.attempts.to_string())),
        ("last_error", r.last_error.clone()),
        ("removed_at", opt_time(r.removed_at)),
    ]
}

fn list(
    ledger: &Ledger,
    filter: &ReviewFilter,
    format: ListFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        ListFormat::Table => {
            writeln!(
                out,
                "{:<10} {:<28} {:<18} {:<10} {:<24} {:>8} {:<24} last_error",
                "platform", "review_id", "source", "status", "group", "attempts", "delivered_at"
            )?;
            ledger.for_each_review(filter, &mut |r| {
                let group = r
                    .group_external_ref
                    .clone()
                    .or_else(|| r.group_id.clone())
                    .unwrap_or_else(|| "(unmapped)".into());
                writeln!(
                    out,
                    "{:<10} {:<28} {:<18} {:<10} {:<24} {:>8} {:<24} {}",
                    r.platform,
                    r.review_id,
                    r.source_name,
                    r.status.as_str(),
                    group,
                    r.attempts,
                    opt_time(r.delivered_at).unwrap_or_default(),
                    r.last_error.clone().unwrap_or_default()
                )
                .map_err(io_to_ledger)
            })?;
        }
        ListFormat::Json => {
            write!(out, "[")?;
            let mut first = true;
            ledger.for_each_review(filter, &mut |r| {
                let sep = if first { "" } else { "," };
                first = false;
                write!(out, "{sep}\n{}", row_json(r, false)).map_err(io_to_ledger)
            })?;
            writeln!(out, "\n]")?;
        }
        ListFormat::Csv => write_csv(ledger, filter, false, out)?,
    }
    Ok(())
}

fn export(
    ledger: &Ledger,
    filter: &ReviewFilter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        ExportFormat::Jsonl => ledger.for_each_review(filter, &mut |r| {
            writeln!(out, "{}", row_json(r, true)).map_err(io_to_ledger)
        })?,
        ExportFormat::Csv => write_csv(ledger, filter, true, out)?,
    }
    Ok(())
}

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
        m.insert("payload".into(), serde_json::Value::from(r.payload.clone()));
    }
    serde_json::Value::Object(m)
}

fn write_csv(
    ledger: &Ledger,
    filter: &ReviewFilter,
    with_payload: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<&str> = row_fields_header();
    if with_payload {
        header.push("payload");
    }
    w.write_record(&header)?;
    ledger.for_each_review(filter, &mut |r| {
        let mut fields: Vec<String> = row_fields(r)
            .into_iter()
            .map(|(_, v)| v.unwrap_or_default())
            .collect();
        if with_payload {
            fields.push(r.payload.clone());
        }
        w.write_record(&fields)
            .map_err(|e| io_to_ledger(std::io::Error::other(e)))
    })?;
    w.flush()?;
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
    ]
}

fn io_to_ledger(e: std::io::Error) -> review_sync::ledger::LedgerError {
    review_sync::ledger::LedgerError::Io {
        path: "<stdout>".into(),
        reason: e.to_string(),
    }
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
        writeln!(out, "{status:<12} {n:>8}")?;
    }
    for (title, rows) in [
        ("platform", &s.by_platform),
        ("source", &s.by_source),
        ("group", &s.by_group),
    ] {
        writeln!(out, "\n{:<32} {:<12} {:>8}", title, "status", "count")?;
        for (key, status, n) in rows {
            writeln!(out, "{key:<32} {status:<12} {n:>8}")?;
        }
    }
    Ok(())
}
