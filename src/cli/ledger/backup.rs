//! `review-sync ledger backup PATH`: a consistent copy of the ledger
//! (SQLite's online backup, safe while the daemon runs), mode 0600.

use review_sync::escape::Escaped;
use review_sync::ledger::Ledger;
use std::path::Path;
use std::process::ExitCode;

/// Copies the ledger at `path` to `dest` (replacing it only with `force`).
pub(super) fn backup(
    path: &review_sync::ledger::Target,
    dest: &Path,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::open_readonly(path)?;
    let report = ledger.backup_to(dest, force)?;
    println!(
        "ledger copied to {} ({} reviews, {} bytes)",
        Escaped(report.path.display()),
        report.reviews,
        report.bytes
    );
    Ok(ExitCode::SUCCESS)
}
