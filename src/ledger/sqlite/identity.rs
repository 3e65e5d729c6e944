//! Whether the files the ledger has open are still the ones at their paths.
//!
//! SQLite keeps writing through its open descriptors when the ledger (or
//! its `-wal`/`-shm`) is unlinked or replaced under the process: in WAL mode
//! it does not notice at all. Everything written after that is lost at the
//! next start, which then opens (or creates) whatever is at the path and
//! sends every review again. So the ledger records the (device, inode) of
//! each file right after SQLite opened it, and compares the path's with it
//! before every piece of work (`LedgerHandle::run`).
//!
//! It keeps no descriptor of its own: closing any descriptor of a file
//! drops every POSIX lock the process holds on it, SQLite's included (its
//! VFS works around that for its own descriptors only). A second ledger
//! opened and dropped in the same process would then let another process
//! checkpoint and delete the WAL under the first.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The ledger's files as they were when it was opened.
#[derive(Debug)]
pub(super) struct FileIdentity {
    // The database, then its -wal and -shm where they existed at open (a
    // read-only ledger of a cleanly closed file has none), with their
    // (device, inode).
    files: Vec<(PathBuf, (u64, u64))>,
}

impl FileIdentity {
    /// Records the database at `path` and its `-wal` and `-shm` files when
    /// they exist. Called right after SQLite opened them.
    pub(super) fn open(path: &Path) -> std::io::Result<FileIdentity> {
        let id = |m: std::fs::Metadata| (m.dev(), m.ino());
        let mut files = vec![(path.to_path_buf(), id(std::fs::metadata(path)?))];
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            // Best effort: a companion that cannot be read is only not watched.
            if let Ok(m) = std::fs::metadata(&side) {
                files.push((side, id(m)));
            }
        }
        Ok(FileIdentity { files })
    }

    /// `Err(reason)` when a file was deleted, or replaced by another one, since
    /// it was opened. The reason names the file and where its contents can
    /// still be read.
    pub(super) fn check(&self) -> Result<(), String> {
        for (i, (path, open)) in self.files.iter().enumerate() {
            // The error names the ledger; say which of its files this is.
            let which = if i == 0 {
                "the file".to_owned()
            } else {
                format!("its companion {}", path.display())
            };
            let recover = match open_descriptor(*open) {
                Some(fd) => format!(
                    "; its contents are still readable at {} until review-sync stops",
                    fd.display()
                ),
                None => String::new(),
            };
            match std::fs::metadata(path) {
                Ok(m) if (m.dev(), m.ino()) == *open => {}
                Ok(m) => {
                    return Err(format!(
                        "{which} was replaced by another file while review-sync had it open \
                         (device:inode {}:{} at the path, {}:{} open){recover}",
                        m.dev(),
                        m.ino(),
                        open.0,
                        open.1
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(format!(
                        "{which} was deleted while review-sync had it open{recover}"
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

/// `/proc/PID/fd/N` of a descriptor this process has open on the file
/// `(device, inode)` (SQLite's), found by `stat`, which opens nothing.
fn open_descriptor(id: (u64, u64)) -> Option<PathBuf> {
    let fds = std::fs::read_dir("/proc/self/fd").ok()?;
    fds.filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == id))
        .and_then(|p| {
            let n = p.file_name()?.to_owned();
            Some(
                Path::new("/proc")
                    .join(std::process::id().to_string())
                    .join("fd")
                    .join(n),
            )
        })
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

        std::fs::write(&db, b"another").unwrap();
        let e = id.check().unwrap_err();
        assert!(
            e.starts_with("the file was replaced by another file"),
            "{e}"
        );

        std::fs::rename(&aside, &db).unwrap();
        assert_eq!(id.check(), Ok(()), "the same file moved back");

        // Held open (as SQLite holds it) and deleted: where to read it.
        let held = std::fs::File::open(dir.path().join("ledger.db-wal")).unwrap();
        std::fs::remove_file(dir.path().join("ledger.db-wal")).unwrap();
        let e = id.check().unwrap_err();
        assert!(
            e.contains("companion") && e.contains("ledger.db-wal was deleted"),
            "{e}"
        );
        assert!(e.contains("still readable at /proc/"), "{e}");
        drop(held);
    }
}
