//! `review-sync ledger list`: one row per review, as a table, JSON or CSV.

use super::ListFormat;
use super::export::write_csv;
use super::output::{CorruptRows, io_to_ledger, json_line};
use super::rows::{opt_time, row_json};
use review_sync::escape::escape;
use review_sync::ledger::{Ledger, ReviewFilter};
use std::io::Write;
use std::process::ExitCode;

/// Writes the reviews matching `filter`.
pub(super) fn list(
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
