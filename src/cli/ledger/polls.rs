//! `review-sync ledger polls`: the poll log, one row per location poll
//! (kept `[ledger] retain_polls_days` days).

use super::ListFormat;
use super::output::{CorruptRows, CsvOut, io_to_ledger, json_line};
use review_sync::escape::escape;
use review_sync::ledger::{Ledger, LogFilter, PollRow, format_time};
use std::io::Write;
use std::process::ExitCode;

const HEADER: [&str; 16] = [
    "source_name",
    "location_id",
    "kind",
    "started_at",
    "ended_at",
    "pages",
    "requests",
    "fetched",
    "new",
    "edited",
    "unchanged",
    "quarantined",
    "removed",
    "reported_total",
    "gap",
    "error",
];

/// Writes the polls matching `filter`, in the order they were recorded.
pub(crate) fn polls(
    ledger: &Ledger,
    filter: &LogFilter,
    format: ListFormat,
    bom: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let mut corrupt = CorruptRows::default();
    match format {
        ListFormat::Table => {
            writeln!(
                out,
                "{:<24} {:<18} {:<28} {:<11} {:>5} {:>5} {:>6} {:>9} {:>11} {:>7} {:>5} error",
                "started_at",
                "source",
                "location",
                "kind",
                "pages",
                "new",
                "edited",
                "unchanged",
                "quarantined",
                "removed",
                "gap"
            )?;
            ledger.for_each_poll(
                filter,
                &mut |p| {
                    writeln!(
                        out,
                        "{:<24} {:<18} {:<28} {:<11} {:>5} {:>5} {:>6} {:>9} {:>11} {:>7} {:>5} {}",
                        format_time(p.started_at),
                        escape(&p.source_name),
                        escape(&p.location_id),
                        escape(&p.kind),
                        p.pages,
                        p.new,
                        p.edited,
                        p.unchanged,
                        p.quarantined,
                        p.removed,
                        p.gap.map(|g| g.to_string()).unwrap_or_else(|| "-".into()),
                        escape(p.error.as_deref().unwrap_or_default())
                    )
                    .map_err(io_to_ledger)
                },
                &mut |e| corrupt.report(e),
            )?;
        }
        ListFormat::Json => {
            write!(out, "[")?;
            let mut first = true;
            ledger.for_each_poll(
                filter,
                &mut |p| {
                    let sep = if std::mem::take(&mut first) { "" } else { "," };
                    write!(out, "{sep}\n{}", json_line(&to_json(p))).map_err(io_to_ledger)
                },
                &mut |e| corrupt.report(e),
            )?;
            writeln!(out, "\n]")?;
        }
        ListFormat::Csv => {
            let mut csv = CsvOut::new(out, bom)?;
            csv.row(HEADER)?;
            ledger.for_each_poll(
                filter,
                &mut |p| csv.row(cells(p)).map_err(io_to_ledger),
                &mut |e| corrupt.report(e),
            )?;
            csv.flush()?;
        }
    }
    Ok(corrupt.finish())
}

fn cells(p: &PollRow) -> [String; 16] {
    [
        p.source_name.clone(),
        p.location_id.clone(),
        p.kind.clone(),
        format_time(p.started_at),
        format_time(p.ended_at),
        p.pages.to_string(),
        p.requests.to_string(),
        p.fetched.to_string(),
        p.new.to_string(),
        p.edited.to_string(),
        p.unchanged.to_string(),
        p.quarantined.to_string(),
        p.removed.to_string(),
        p.reported_total.map(|t| t.to_string()).unwrap_or_default(),
        p.gap.map(|g| g.to_string()).unwrap_or_default(),
        p.error.clone().unwrap_or_default(),
    ]
}

fn to_json(p: &PollRow) -> serde_json::Value {
    serde_json::json!({
        "source_name": p.source_name,
        "location_id": p.location_id,
        "kind": p.kind,
        "started_at": format_time(p.started_at),
        "ended_at": format_time(p.ended_at),
        "pages": p.pages,
        "requests": p.requests,
        "fetched": p.fetched,
        "new": p.new,
        "edited": p.edited,
        "unchanged": p.unchanged,
        "quarantined": p.quarantined,
        "removed": p.removed,
        "reported_total": p.reported_total,
        "gap": p.gap,
        "error": p.error,
    })
}
