//! `review-sync ledger stats`: counts by status, platform, source and
//! group, the oldest pending review, and (in the table) what each
//! configured source can see of its platform. `demo` prints the same table.

use super::ListFormat;
use super::output::{CsvOut, json_line};
use super::rows::opt_time;
use review_sync::config::SourceMap;
use review_sync::escape::escape;
use review_sync::ledger::Stats;
use std::io::Write;
use std::process::ExitCode;

/// Writes the counts of the ledger at `path` in `format`; the table ends
/// with the coverage of `mapping`'s sources, or says why it cannot.
pub(super) fn stats(
    path: &review_sync::ledger::Target,
    format: ListFormat,
    mapping: Option<&SourceMap>,
) -> anyhow::Result<ExitCode> {
    let code = super::query(path, |ledger, out| {
        let stats = ledger.stats()?;
        match format {
            ListFormat::Table => print_stats(out, &stats)?,
            ListFormat::Json => writeln!(out, "{}", json_line(&stats_json(&stats)))?,
            ListFormat::Csv => stats_csv(out, &stats)?,
        }
        Ok(ExitCode::SUCCESS)
    })?;
    if format == ListFormat::Table {
        let mut out = std::io::stdout().lock();
        match mapping {
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

/// The counts as a table (`stats`, and `demo` at its end).
pub(crate) fn print_stats(out: &mut dyn Write, s: &Stats) -> anyhow::Result<()> {
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
pub(crate) fn print_coverage<'a>(
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
pub(crate) struct Coverage<'a> {
    /// The source's name.
    pub(crate) source: &'a str,
    /// Its kind.
    pub(crate) kind: &'a str,
    /// What it cannot see, if anything.
    pub(crate) note: Option<&'a str>,
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
