//! Exit statuses: decided by the error's type, not by its text.

use review_sync::config::ConfigError;
use std::process::ExitCode;

/// EX_CONFIG from sysexits.h: systemd's unit does not restart on it.
pub const EX_CONFIG: u8 = 78;

/// Prints `e` and returns its exit status: every problem of an invalid
/// config on its own line and 78; otherwise one line and 1.
pub fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(config) = e.downcast_ref::<ConfigError>() {
        for problem in &config.problems {
            eprintln!("{problem}");
        }
        eprintln!(
            "review-sync: invalid config ({} problem{})",
            config.problems.len(),
            if config.problems.len() == 1 { "" } else { "s" }
        );
        return ExitCode::from(EX_CONFIG);
    }
    // `{:#}` joins the context chain on one line.
    eprintln!("review-sync: {e:#}");
    ExitCode::FAILURE
}
