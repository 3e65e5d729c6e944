//! `review-sync ledger purge --before DATE`: removes review text and
//! reviewer names (comment, title, display_name) of reviews delivered
//! before DATE; ids, hashes and history stay, and the purge is a row of the
//! `purges` table.

use anyhow::Context;
use review_sync::ledger::{Ledger, PurgedBy, format_time};
use std::process::ExitCode;

/// Purges the text of reviews delivered before `before` (checked by clap
/// already) in the ledger at `path`. A cutoff in the future is refused.
pub(super) fn purge(path: &review_sync::ledger::Target, before: &str) -> anyhow::Result<ExitCode> {
    let cutoff = super::super::parse_time(before).context("--before")?;
    let now = chrono::Utc::now();
    if cutoff > now {
        anyhow::bail!("--before {before}: the cutoff is in the future");
    }
    let mut ledger = Ledger::open(path)?;
    let rows = ledger.purge_text(cutoff, now, PurgedBy::Cli)?;
    println!(
        "review text purged from {rows} review(s) delivered before {}; recorded in the purges table",
        format_time(cutoff)
    );
    Ok(ExitCode::SUCCESS)
}
