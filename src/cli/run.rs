//! `review-sync run`: the daemon under systemd.

use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

/// Runs until SIGTERM/SIGINT; SIGHUP reloads.
pub(super) async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    let control = review_sync::daemon::signal_control()?;
    review_sync::daemon::run(config_path.to_owned(), config, control)
        .await
        .context("daemon")?;
    Ok(ExitCode::SUCCESS)
}
