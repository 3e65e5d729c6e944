//! Opening the file and migrating its schema forward (append-only list of
//! migrations under `PRAGMA user_version`).

use super::{Ledger, LedgerError};
use std::path::Path;

pub(super) fn open(path: &Path) -> Result<Ledger, LedgerError> {
    let _ = path;
    todo!("ledger helper")
}

pub(super) fn open_readonly(path: &Path) -> Result<Ledger, LedgerError> {
    let _ = path;
    todo!("ledger helper")
}
