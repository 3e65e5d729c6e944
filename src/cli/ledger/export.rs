//! `review-sync ledger export`: the whole ledger for audit, streamed
//! (constant memory at any size): reviews (`--table reviews`, with their
//! words flat for spreadsheets and the exact body) or delivery attempts
//! (`--table attempts`), as JSON lines or CSV.

use super::ExportFormat;
use super::output::{CorruptRows, CsvOut, io_to_ledger, json_line};
use super::rows::{attempt_json, row_fields, row_fields_header, row_json};
use review_sync::ledger::{AttemptFilter, Ledger, ReviewFilter};
use std::io::Write;
use std::process::ExitCode;

/// `export --table reviews`.
pub(super) fn reviews(
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

/// The reviews matching `filter` as CSV (`list`), with the flat words and
/// the body (`export`).
pub(super) fn write_csv(
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

/// `export --table attempts`.
pub(super) fn attempts(
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
