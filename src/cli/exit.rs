//! Exit statuses: decided by the error's type, not by its text. How the
//! reason is printed follows `--log-format`: plain lines, escaped for the
//! terminal (they quote config text, upstream answers and arguments), or
//! JSON lines of the same shape as the log's (config problems with `file`,
//! `line`, `column` and `message` fields), so that a log shipper reading
//! stderr never meets a line it cannot parse.

use super::LogFormatArg;
use review_sync::config::ConfigError;
use review_sync::escape::escape;
use review_sync::ledger::LedgerError;
use std::process::ExitCode;

/// EX_CONFIG from sysexits.h: systemd's unit does not restart on it.
pub const EX_CONFIG: u8 = 78;

/// Prints `e` and returns its exit status: every problem of an invalid
/// config on its own line and 78; otherwise one line and 1.
pub fn report(e: &anyhow::Error, format: LogFormatArg) -> ExitCode {
    let json = matches!(format, LogFormatArg::Json);
    if let Some(config) = e.downcast_ref::<ConfigError>() {
        let count = config.problems.len();
        let summary = format!(
            "invalid config ({count} problem{})",
            if count == 1 { "" } else { "s" }
        );
        for problem in &config.problems {
            if json {
                let mut fields = serde_json::json!({
                    "message": problem.message,
                    "file": problem.file.display().to_string(),
                });
                if let Some((line, column)) = problem.position {
                    fields["line"] = line.into();
                    fields["column"] = column.into();
                }
                eprintln!("{}", json_line(fields));
            } else {
                eprintln!("{}", escape(&problem.to_string()));
            }
        }
        if json {
            eprintln!(
                "{}",
                json_line(serde_json::json!({ "message": summary, "problems": count }))
            );
        } else {
            eprintln!("review-sync: {summary}");
        }
        return ExitCode::from(EX_CONFIG);
    }
    if json {
        eprintln!(
            "{}",
            json_line(serde_json::json!({ "message": one_line(e) }))
        );
    } else {
        eprintln!("review-sync: {}", escape(&one_line(e)));
    }
    ExitCode::FAILURE
}

/// An ERROR event as `--log-format json` writes events (`timestamp`,
/// `level`, `fields`, `target`).
fn json_line(fields: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "ERROR",
        "fields": fields,
        "target": "review_sync",
    })
}

/// The context chain on one line, as `{:#}` prints it, but stopping after
/// a `LedgerError`: it already says what the database engine said, and the
/// engine's own source chain would repeat it twice more ("database is
/// locked: database is locked: Error code 5: database is locked").
fn one_line(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.downcast_ref::<LedgerError>().is_some() {
            break;
        }
    }
    parts.join(": ")
}
