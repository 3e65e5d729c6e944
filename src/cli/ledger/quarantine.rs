//! `review-sync ledger quarantine`: the platform records that could not
//! become reviews, with the reason and (in JSON and CSV) the raw record.

use super::ListFormat;
use super::output::{CorruptRows, CsvOut, io_to_ledger, json_line};
use review_sync::escape::escape;
use review_sync::ledger::{Ledger, LogFilter, QuarantineRow, format_time};
use std::io::Write;
use std::process::ExitCode;

const HEADER: [&str; 9] = [
    "source_name",
    "location_id",
    "platform",
    "reference",
    "reason",
    "first_seen_at",
    "last_seen_at",
    "seen_count",
    "raw",
];

/// Writes the quarantined records matching `filter`, oldest first.
pub(crate) fn quarantine(
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
                "{:<24} {:<18} {:<28} {:<10} {:<24} {:>5} reason",
                "first_seen_at", "source", "location", "platform", "reference", "seen"
            )?;
            ledger.for_each_quarantined(
                filter,
                &mut |q| {
                    writeln!(
                        out,
                        "{:<24} {:<18} {:<28} {:<10} {:<24} {:>5} {}",
                        format_time(q.first_seen_at),
                        escape(&q.source_name),
                        escape(&q.location_id),
                        escape(&q.platform),
                        escape(&q.reference),
                        q.seen_count,
                        escape(&q.reason)
                    )
                    .map_err(io_to_ledger)
                },
                &mut |e| corrupt.report(e),
            )?;
        }
        ListFormat::Json => {
            write!(out, "[")?;
            let mut first = true;
            ledger.for_each_quarantined(
                filter,
                &mut |q| {
                    let sep = if std::mem::take(&mut first) { "" } else { "," };
                    write!(out, "{sep}\n{}", json_line(&to_json(q))).map_err(io_to_ledger)
                },
                &mut |e| corrupt.report(e),
            )?;
            writeln!(out, "\n]")?;
        }
        ListFormat::Csv => {
            let mut csv = CsvOut::new(out, bom)?;
            csv.row(HEADER)?;
            ledger.for_each_quarantined(
                filter,
                &mut |q| csv.row(cells(q)).map_err(io_to_ledger),
                &mut |e| corrupt.report(e),
            )?;
            csv.flush()?;
        }
    }
    Ok(corrupt.finish())
}

fn cells(q: &QuarantineRow) -> [String; 9] {
    [
        q.source_name.clone(),
        q.location_id.clone(),
        q.platform.clone(),
        q.reference.clone(),
        q.reason.clone(),
        format_time(q.first_seen_at),
        format_time(q.last_seen_at),
        q.seen_count.to_string(),
        q.raw.clone(),
    ]
}

fn to_json(q: &QuarantineRow) -> serde_json::Value {
    serde_json::json!({
        "source_name": q.source_name,
        "location_id": q.location_id,
        "platform": q.platform,
        "reference": q.reference,
        "reason": q.reason,
        "first_seen_at": format_time(q.first_seen_at),
        "last_seen_at": format_time(q.last_seen_at),
        "seen_count": q.seen_count,
        "raw": q.raw,
    })
}
