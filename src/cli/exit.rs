//! Exit statuses: decided by the error's type, not by its text. The error
//! lines are escaped for the terminal: they quote config text, upstream
//! answers and arguments.

use review_sync::config::ConfigError;
use review_sync::escape::escape;
use std::process::ExitCode;

/// EX_CONFIG from sysexits.h: systemd's unit does not restart on it.
pub const EX_CONFIG: u8 = 78;

/// Prints `e` and returns its exit status: every problem of an invalid
/// config on its own line and 78; otherwise one line and 1.
pub fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(config) = e.downcast_ref::<ConfigError>() {
        for problem in &config.problems {
            eprintln!("{}", escape(&problem.to_string()));
        }
        eprintln!(
            "review-sync: invalid config ({} problem{})",
            config.problems.len(),
            if config.problems.len() == 1 { "" } else { "s" }
        );
        return ExitCode::from(EX_CONFIG);
    }
    eprintln!("review-sync: {}", escape(&one_line(e)));
    ExitCode::FAILURE
}

/// The context chain on one line, as `{:#}` prints it, but stopping before
/// SQLite's own error: a `LedgerError` already says it, and rusqlite's
/// source chain would repeat it twice more ("database is locked: database
/// is locked: Error code 5: database is locked").
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .take_while(|cause| {
            cause.downcast_ref::<rusqlite::Error>().is_none()
                && cause.downcast_ref::<rusqlite::ffi::Error>().is_none()
        })
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
