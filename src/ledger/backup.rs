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

use super::{Ledger, LedgerError, sql_err};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a backup step that found the source locked is tried again
/// before giving up (the source is only ever locked for a checkpoint or a
/// concurrent schema change, both short).
const LOCKED_RETRIES: u32 = 50;

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Rows in its `reviews` table.
    pub reviews: u64,
}

impl Ledger {
    /// Copies the ledger to `dest`. Refuses an existing `dest` unless
    /// `overwrite`, and refuses the ledger's own file. The copy has mode
    /// 0600, passes `PRAGMA quick_check`, and uses a rollback journal, so it
    /// is one self-contained file that `sqlite3 -readonly` opens anywhere.
    pub fn backup_to(&self, dest: &Path, overwrite: bool) -> Result<BackupReport, LedgerError> {
        let fail = |reason: String| LedgerError::Io {
            path: dest.to_path_buf(),
            reason,
        };
        if same_file(&self.path, dest) {
            return Err(fail("is the ledger itself; choose another path".into()));
        }
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
            copy_all(&self.conn, &mut copy).map_err(&err)?;
            // The copied header says WAL (the ledger's mode); a backup is
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

impl Ledger {
    /// After the ledger's files were deleted or replaced under the daemon:
    /// a copy of the ledger as this connection still sees it, next to the
    /// path (`ledger.db.rescued-20261124T224552Z`), so that an operator can
    /// stop the daemon, move it into place and start again without sending
    /// anything twice. The path of the copy, or why there is none.
    pub(super) fn rescue_copy(&self) -> Result<PathBuf, LedgerError> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(
            ".rescued-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        let dest = PathBuf::from(name);
        self.backup_to(&dest, false).map(|r| r.path)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ledger_with_rows(dir: &Path, n: usize) -> Ledger {
        let mut l = Ledger::open(&dir.join("ledger.db")).unwrap();
        let reviews = (0..n)
            .map(|i| crate::ledger::IncomingReview {
                platform: "google".into(),
                review_id: format!("r{i}"),
                payload: format!(r#"{{"review":{{"review_id":"r{i}","comment":"c"}}}}"#),
                content_hash: format!("h{i}"),
                source_updated_at: None,
                notes: None,
            })
            .collect();
        l.record_page(
            &crate::ledger::PageRecord {
                source_name: "s".into(),
                location_id: "l".into(),
                group: Some(crate::domain::GroupRef::Id("g".into())),
                hold_reason: None,
                reviews,
                quarantined: vec![],
            },
            chrono::Utc::now(),
        )
        .unwrap();
        l
    }

    #[test]
    fn a_backup_is_a_private_checked_single_file_copy() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger_with_rows(dir.path(), 25);
        let dest = dir.path().join("copy.db");
        let report = l.backup_to(&dest, false).unwrap();
        assert_eq!(report.reviews, 25);
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let copy = Ledger::open_readonly(&dest).unwrap();
        assert_eq!(copy.stats().unwrap().total, 25);
        let mode: String = copy
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced_and_the_ledger_itself_never() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger_with_rows(dir.path(), 3);
        let dest = dir.path().join("copy.db");
        std::fs::write(&dest, "precious").unwrap();
        let e = l.backup_to(&dest, false).unwrap_err().to_string();
        assert!(e.contains("already exists") && e.contains("--force"), "{e}");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious");
        assert_eq!(l.backup_to(&dest, true).unwrap().reviews, 3);
        let e = l
            .backup_to(&dir.path().join("ledger.db"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is the ledger itself"), "{e}");
    }
}
