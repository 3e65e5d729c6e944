//! `review-sync ledger ...`: what auditors and admins ask of the ledger.
//! Queries open it read-only (safe while the daemon runs); `retry` writes.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use review_sync::ledger::{AttemptRow, Ledger, PurgedBy, ReviewFilter, ReviewRow, Stats, Status};
use review_sync::locations::DiscoveredGroups;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

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
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
    },
    /// The whole ledger for audit, streamed (constant memory at any size).
    Export {
        /// Output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only this group (external ref or id).
        #[arg(long)]
        group: Option<String>,
        /// Only reviews first seen at or after this.
        #[arg(long)]
        since: Option<String>,
    },
    /// Remove review text and reviewer names (comment, title, display_name)
    /// of reviews delivered before DATE; ids, hashes and history stay.
    Purge {
        /// Cutoff: 2026-01-31 (midnight UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
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
                Ok(ExitCode::SUCCESS)
            }
            LedgerCommand::Purge { before } => {
                let cutoff = super::parse_since(&before)?;
                let now = chrono::Utc::now();
                if cutoff > now {
                    anyhow::bail!("--before {before}: the cutoff is in the future");
                }
                let mut ledger = Ledger::open(&path)?;
                let rows = ledger.purge_text(cutoff, now, PurgedBy::Cli)?;
                println!(
                    "review text purged from {rows} review(s) delivered before {}; recorded in the purges table",
                    review_sync::ledger::format_time(cutoff)
                );
                Ok(ExitCode::SUCCESS)
            }
            LedgerCommand::Backup { path: dest, force } => {
                let ledger = Ledger::open_readonly(&path)?;
                let report = ledger.backup_to(&dest, force)?;
                println!(
                    "ledger copied to {} ({} reviews, {} bytes)",
                    report.path.display(),
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
            "warning: {source} {account}: cannot list its locations ({error}); reviews held for want of a store code there stay held"
        );
    }
    Ok(discovered)
}

fn query(ledger: &Ledger, cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match cmd {
        LedgerCommand::Stats { format } => {
            let stats = ledger.stats()?;
            match format {
                ListFormat::Table => print_stats(&mut out, &stats)?,
                ListFormat::Json => writeln!(out, "{}", stats_json(&stats))?,
                ListFormat::Csv => stats_csv(&mut out, &stats)?,
            }
        }
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
            format,
        } => {
            let Some((row, attempts)) = ledger.show(&platform, &review_id)? else {
                anyhow::bail!("no review {platform} {review_id} in the ledger");
            };
            let purged = ledger.text_purged_at(&platform, &review_id)?;
            if format == ShowFormat::Json {
                writeln!(out, "{}", show_json(&row, &attempts, purged))?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            for (k, v) in row_fields(&row) {
                writeln!(out, "{k:<19} {}", v.unwrap_or_default())?;
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
                    review_sync::ledger::format_time(t),
                    review_sync::ledger::PURGED_FIELDS.join(", ")
                )?;
            }
            let pretty = serde_json::from_str::<serde_json::Value>(&row.payload)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(row.payload.clone());
            let label = match purged {
                None => "exact body sent",
                Some(_) => "body sent, its text since purged",
            };
            writeln!(out, "\npayload ({label}):\n{}\n{pretty}", row.payload)?;
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
        LedgerCommand::Export {
            format,
            status,
            source,
            group,
            since,
        } => {
            let filter = ReviewFilter {
                statuses: status.map(Status::from).into_iter().collect(),
                source,
                group,
                since: since.as_deref().map(super::parse_since).transpose()?,
                review: None,
            };
            export(ledger, &filter, format, &mut out)?;
        }
        LedgerCommand::Retry { .. }
        | LedgerCommand::Purge { .. }
        | LedgerCommand::Backup { .. } => {
            unreachable!("writes and backups are handled by the caller")
        }
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
        ("notes", r.notes.clone()),
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
        "notes",
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
        writeln!(out, "{:<32} {:<24} {note}", source.source, source.kind)?;
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
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["dimension", "key", "status", "count"])?;
    w.write_record(["total", "", "", &s.total.to_string()])?;
    for (status, n) in &s.by_status {
        w.write_record(["status", "", status, &n.to_string()])?;
    }
    for (dimension, rows) in [
        ("platform", &s.by_platform),
        ("source", &s.by_source),
        ("group", &s.by_group),
    ] {
        for (key, status, n) in rows {
            w.write_record([dimension, key, status, &n.to_string()])?;
        }
    }
    w.flush()?;
    Ok(())
}

/// `show --format json`: the row, the body (parsed), every attempt.
fn show_json(
    row: &ReviewRow,
    attempts: &[AttemptRow],
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
    m.insert(
        "payload".into(),
        serde_json::from_str(&row.payload).unwrap_or_else(|_| row.payload.clone().into()),
    );
    let attempts: Vec<serde_json::Value> = attempts
        .iter()
        .map(|a| {
            serde_json::json!({
                "attempted_at": review_sync::ledger::format_time(a.attempted_at),
                "content_hash": a.content_hash,
                "http_status": a.http_status,
                "outcome": a.outcome,
                "error_type": a.error_type,
                "error_message": a.error_message,
                "request_id": a.request_id,
                "duration_ms": a.duration_ms,
            })
        })
        .collect();
    m.insert("attempts".into(), attempts.into());
    serde_json::Value::Object(m)
}
