//! `ledger backup`: a consistent copy of the ledger, taken online (while the
//! daemon writes) with SQLite's backup API.
//!
//! The whole database is copied in one backup step, inside one read
//! transaction of the source: in WAL mode that is a snapshot of the last
//! commit, and the daemon's writers are never blocked. (Copying in several
//! steps would restart whenever another connection writes between steps,
//! and a busy daemon could starve it.) The copy is written to a private
//! temporary file (mode 0600: reviews are personal data) next to the
//! destination, checked, switched to a self-contained rollback journal, and
//! only then renamed into place, so a failed or interrupted backup never
//! leaves a half-written file under the destination's name.

use super::super::{BackupReport, LedgerError};
use super::{Sqlite, sql_err};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a backup step that found the source locked is tried again
/// before giving up (the source is only ever locked for a checkpoint or a
/// concurrent schema change, both short).
const LOCKED_RETRIES: u32 = 50;

/// Copies the ledger to `dest` with the backup API (see the module notes);
/// refuses the ledger's own file.
pub(super) fn backup_to(
    ledger: &Sqlite,
    dest: &Path,
    overwrite: bool,
) -> Result<BackupReport, LedgerError> {
    if same_file(&ledger.path, dest) {
        return Err(LedgerError::Io {
            path: dest.to_path_buf(),
            reason: "is the ledger itself; choose another path".into(),
        });
    }
    write_copy(dest, overwrite, &mut |copy| {
        copy_all(&ledger.conn, copy).map_err(sql_err(dest))
    })
}

/// Writes a SQLite file at `dest` that `fill` fills through a connection
/// to a fresh private temporary file next to it; then switches it to a
/// rollback journal, checks it, and renames it into place. Refuses an
/// existing `dest` unless `overwrite`. The copy has mode 0600, passes
/// `PRAGMA quick_check`, and is one self-contained file that `sqlite3
/// -readonly` opens anywhere. Also what a PostgreSQL ledger's backup writes.
pub(in crate::ledger) fn write_copy(
    dest: &Path,
    overwrite: bool,
    fill: &mut dyn FnMut(&mut Connection) -> Result<(), LedgerError>,
) -> Result<BackupReport, LedgerError> {
    {
        let fail = |reason: String| LedgerError::Io {
            path: dest.to_path_buf(),
            reason,
        };
        if !overwrite && dest.exists() {
            return Err(fail(
                "already exists; choose a new path or pass --force to replace it".into(),
            ));
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // tempfile creates the file with mode 0600 and removes it on drop
        // (any error below) unless it is persisted.
        let temp = tempfile::Builder::new()
            .prefix(".review-sync-backup-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| fail(format!("cannot create a file in {}: {e}", dir.display())))?;
        let err = sql_err(dest);
        {
            let mut copy = Connection::open_with_flags(
                temp.path(),
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(&err)?;
            fill(&mut copy)?;
            // A copied header says WAL (the ledger's mode); a backup is
            // better as one file with no -wal/-shm companions.
            copy.pragma_update(None, "journal_mode", "DELETE")
                .map_err(&err)?;
            let check: String = copy
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(&err)?;
            if check != "ok" {
                return Err(fail(format!("the copy failed its check: {check}")));
            }
            copy.close().map_err(|(_, e)| err(e))?;
        }
        temp.as_file()
            .sync_all()
            .map_err(|e| fail(format!("cannot flush the copy: {e}")))?;
        let persisted = if overwrite {
            temp.persist(dest).map_err(|e| e.error)
        } else {
            // Fails if the path appeared meanwhile: never replaces a file
            // without --force, even in a race.
            temp.persist_noclobber(dest).map_err(|e| e.error)
        };
        persisted.map_err(|e| fail(format!("cannot move the copy into place: {e}")))?;
        let bytes = std::fs::metadata(dest)
            .map(|m| m.len())
            .map_err(|e| fail(e.to_string()))?;
        let reviews = Connection::open_with_flags(dest, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM reviews", [], |r| r.get::<_, i64>(0)))
            .map_err(&err)?;
        Ok(BackupReport {
            path: dest.to_path_buf(),
            bytes,
            reviews: reviews.unsigned_abs(),
        })
    }
}

/// A copy of the ledger next to its path, named by the time
/// (`ledger.db.rescued-20261124T224552Z`), after its files were deleted or
/// replaced under the daemon.
pub(super) fn rescue_copy(ledger: &Sqlite) -> Result<PathBuf, LedgerError> {
    let mut name = ledger.path.as_os_str().to_owned();
    name.push(format!(
        ".rescued-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    let dest = PathBuf::from(name);
    backup_to(ledger, &dest, false).map(|r| r.path)
}

/// Copies every page of `src` into `dst` in one step (see the module notes).
fn copy_all(src: &Connection, dst: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(src, dst)?;
    let mut locked = 0;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if locked < LOCKED_RETRIES => {
                locked += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("the ledger stayed locked; try again".into()),
                ));
            }
        }
    }
}

/// Whether two paths name the same file (by device and inode when both exist).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
