//! Whether the files the ledger has open are still the ones at their paths.
//!
//! SQLite keeps writing through its open descriptors when the ledger (or
//! its `-wal`/`-shm`) is unlinked or replaced under the process: in WAL mode
//! it does not notice at all. Everything written after that is lost at the
//! next start, which then opens (or creates) whatever is at the path and
//! sends every review again. So the ledger keeps a descriptor of its own on
//! each file and compares the (device, inode) of the path with the open
//! file's before every piece of work ([`super::LedgerHandle::run`]).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The ledger's files as they were when it was opened.
#[derive(Debug)]
pub(super) struct FileIdentity {
    // The database, then its -wal and -shm where they existed at open (a
    // read-only ledger of a cleanly closed file has none). Each descriptor
    // is only ever fstat'ed; keeping it open also keeps a deleted file's
    // contents reachable through /proc/PID/fd for recovery.
    files: Vec<(PathBuf, File)>,
}

impl FileIdentity {
    /// Opens a descriptor on the database at `path` and on its `-wal` and
    /// `-shm` files when they exist. Called right after SQLite opened them.
    pub(super) fn open(path: &Path) -> std::io::Result<FileIdentity> {
        let mut files = vec![(path.to_path_buf(), File::open(path)?)];
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            // Best effort: SQLite opened them, so they are readable in
            // practice; a companion we cannot open is only not watched.
            if let Ok(f) = File::open(&side) {
                files.push((side, f));
            }
        }
        Ok(FileIdentity { files })
    }

    /// `Err(reason)` when a file was deleted, or replaced by another one, since
    /// it was opened. The reason names the file and where its contents can
    /// still be read.
    pub(super) fn check(&self) -> Result<(), String> {
        for (i, (path, file)) in self.files.iter().enumerate() {
            // The error names the ledger; say which of its files this is.
            let which = if i == 0 {
                "the file".to_owned()
            } else {
                format!("its companion {}", path.display())
            };
            let open = match file.metadata() {
                Ok(m) => (m.dev(), m.ino()),
                // fstat of a descriptor we hold does not fail in practice;
                // if it does, the check cannot say anything.
                Err(_) => continue,
            };
            let recover = format!(
                "its contents are still readable at /proc/{}/fd/{} until review-sync stops",
                std::process::id(),
                file.as_raw_fd()
            );
            match std::fs::metadata(path) {
                Ok(m) if (m.dev(), m.ino()) == open => {}
                Ok(m) => {
                    return Err(format!(
                        "{which} was replaced by another file while review-sync had it open \
                         (device:inode {}:{} at the path, {}:{} open); {recover}",
                        m.dev(),
                        m.ino(),
                        open.0,
                        open.1
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(format!(
                        "{which} was deleted while review-sync had it open; {recover}"
                    ));
                }
                Err(e) => {
                    return Err(format!("{which} cannot be checked: {e}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_replaced_file_is_named_and_a_restored_one_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        std::fs::write(&db, b"one").unwrap();
        std::fs::write(dir.path().join("ledger.db-wal"), b"wal").unwrap();
        let id = FileIdentity::open(&db).unwrap();
        assert_eq!(id.files.len(), 2, "the -shm did not exist");
        assert_eq!(id.check(), Ok(()));

        let aside = dir.path().join("aside");
        std::fs::rename(&db, &aside).unwrap();
        let e = id.check().unwrap_err();
        assert!(e.starts_with("the file was deleted"), "{e}");
        assert!(e.contains("/proc/"), "{e}");

        std::fs::write(&db, b"another").unwrap();
        let e = id.check().unwrap_err();
        assert!(
            e.starts_with("the file was replaced by another file"),
            "{e}"
        );

        std::fs::rename(&aside, &db).unwrap();
        assert_eq!(id.check(), Ok(()), "the same file moved back");

        std::fs::remove_file(dir.path().join("ledger.db-wal")).unwrap();
        let e = id.check().unwrap_err();
        assert!(
            e.contains("companion") && e.contains("ledger.db-wal was deleted"),
            "{e}"
        );
    }
}
