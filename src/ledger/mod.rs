//! The SQLite ledger: the source of truth for every review received, every
//! delivery attempt, every quarantined record and every poll. Only this module
//! runs SQL. Everything here is synchronous; async code reaches it through
//! [`LedgerHandle`], which runs the work on a blocking thread.
//!
//! Timestamps are stored as ISO 8601 UTC text of fixed width
//! (`2026-11-24T22:45:52.123Z`), so text order is time order.

mod backup;
mod delivery;
mod handle;
mod identity;
mod listings;
mod migrations;
mod model;
mod polls;
mod queries;
mod retention;
mod reviews;
mod row;
mod time;

#[cfg(test)]
mod tests;

pub use backup::BackupReport;
pub use delivery::{Claim, CycleReport, ReleasedClaim};
pub use handle::LedgerHandle;
pub use listings::POLL_BATCH;
pub use model::*;
pub use queries::StatusCounts;
pub use retention::{PURGED_FIELDS, Purge, PurgeRow, PurgedBy};
pub use reviews::Sightings;

use std::path::{Path, PathBuf};

/// Errors from the ledger. Every one names the ledger file.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite refused an operation (disk full, read-only, locked, corrupt...).
    /// The message adds what SQLite's own words mean for an operator.
    #[error("ledger {path}: {source}{}", sqlite_hint(.source))]
    Sqlite {
        /// The ledger file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file could not be created or opened at the filesystem level.
    #[error("ledger {path}: {reason}")]
    Io {
        /// The ledger file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file's schema version is not one this build knows: written by a
    /// newer review-sync, or negative (edited by hand, or not a ledger).
    #[error(
        "ledger {path}: schema version {found} is not one this review-sync knows (0 to {supported}): {}",
        version_hint(*.found, *.supported)
    )]
    UnknownVersion {
        /// The ledger file.
        path: PathBuf,
        /// `PRAGMA user_version` in the file.
        found: i64,
        /// The highest version this build knows.
        supported: i64,
    },
    /// A stored value could not be read back (e.g. a bad timestamp edited by hand).
    #[error("ledger {path}: corrupt value in {table}.{column}: {value}")]
    Corrupt {
        /// The ledger file.
        path: PathBuf,
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// The offending value.
        value: String,
    },
    /// A row that cannot be read back: a value of the wrong type, text that
    /// is not UTF-8, a malformed timestamp (a hand edit, a failing disk).
    /// The commands that walk many rows report it and go on with the rest.
    #[error(
        "ledger {path}: corrupt row in table {table} ({row}): column {column} holds {value}, which cannot be read; repair the row with sqlite3 or restore a backup"
    )]
    CorruptRow {
        /// The ledger file.
        path: PathBuf,
        /// Table.
        table: &'static str,
        /// Which row: `platform review_id` for reviews and attempts, else its id.
        row: String,
        /// Column.
        column: &'static str,
        /// The offending value, quoted.
        value: String,
    },
    /// The blocking task running ledger work panicked or was cancelled.
    #[error("ledger task failed: {0}")]
    Task(String),
    /// A file of the ledger was deleted or replaced under the process: no
    /// more work is done on it (see `identity.rs`).
    #[error("ledger {path}: {reason}")]
    Moved {
        /// The ledger file.
        path: PathBuf,
        /// Which file, what happened, and where its contents can still be read.
        reason: String,
    },
}

/// Every value [`LedgerError::error_type`] returns, for metrics that must
/// exist from the first scrape.
pub const ERROR_TYPES: [&str; 7] = [
    "busy",
    "read_only",
    "disk_full",
    "io",
    "moved",
    "corrupt",
    "other",
];

impl LedgerError {
    /// The error's class, low-cardinality and the same whatever the engine
    /// (one of [`ERROR_TYPES`]): `busy` (a lock held too long), `read_only`
    /// (the storage refuses writes), `disk_full`, `io` (the storage failed
    /// a read or write, or cannot be opened), `moved` (the ledger's files
    /// were deleted or replaced), `corrupt` (a stored value or the file
    /// cannot be read back), `other`. Code outside the ledger decides on
    /// this, never on the engine's own error codes.
    pub fn error_type(&self) -> &'static str {
        use rusqlite::ErrorCode;
        match self {
            LedgerError::Sqlite {
                source: rusqlite::Error::SqliteFailure(f, _),
                ..
            } => match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => "busy",
                ErrorCode::ReadOnly | ErrorCode::PermissionDenied => "read_only",
                ErrorCode::DiskFull => "disk_full",
                ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => "io",
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => "corrupt",
                _ => "other",
            },
            LedgerError::Io { .. } => "io",
            LedgerError::Moved { .. } => "moved",
            LedgerError::Corrupt { .. } | LedgerError::CorruptRow { .. } => "corrupt",
            _ => "other",
        }
    }

    /// Whether this is the storage failing (full, read-only, I/O, files
    /// moved), which `/healthz` reports, rather than a busy lock (the health
    /// probe sees those by itself) or a bad value.
    pub fn is_storage_fault(&self) -> bool {
        matches!(
            self.error_type(),
            "read_only" | "disk_full" | "io" | "moved"
        )
    }
}

/// An open ledger: one read-write connection.
pub struct Ledger {
    conn: rusqlite::Connection,
    path: PathBuf,
    // The (device, inode) of the files SQLite opened, to see them deleted
    // or replaced under us.
    identity: identity::FileIdentity,
}

impl Ledger {
    /// Opens (creating the file if needed, mode 0600) the ledger at `path`,
    /// sets WAL, `synchronous=NORMAL`, a busy timeout of 5 s and foreign
    /// keys, and applies pending migrations in one transaction each.
    ///
    /// The parent directory must already exist: it is never created here
    /// (systemd's `StateDirectory=` creates the real one, and silently
    /// creating directories elsewhere would hide a typo in the config). A
    /// missing directory, a read-only file or a schema newer than this build
    /// is an error naming the file, never a panic.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        migrations::open(path)
    }

    /// Opens an existing ledger read-only (for `ledger` commands and
    /// auditors' tools while the daemon runs). Fails if the file is missing
    /// or its schema is older than this build (run the daemon, or any
    /// read-write command, once to migrate).
    pub fn open_readonly(path: &Path) -> Result<Ledger, LedgerError> {
        migrations::open_readonly(path)
    }

    /// The file this ledger lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Err(LedgerError::Moved)` when the ledger file, or its `-wal` or
    /// `-shm`, was deleted or replaced since it was opened: writing on would
    /// write into a file nobody will read again.
    pub fn check_identity(&self) -> Result<(), LedgerError> {
        self.identity.check().map_err(|reason| LedgerError::Moved {
            path: self.path.clone(),
            reason,
        })
    }

    /// Rows changed by this connection since it was opened (a committed
    /// write moves it; for [`LedgerHandle`]'s record of write failures).
    fn total_changes(&self) -> u64 {
        self.conn.total_changes()
    }

    /// The schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, LedgerError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Whether this connection can write: takes SQLite's write lock
    /// (`BEGIN IMMEDIATE`) and releases it at once, writing nothing. Fails
    /// when another process holds the lock for more than a second (e.g. an
    /// open write transaction in a `sqlite3` session), and when SQLite finds
    /// the file or its directory unwritable, for `/healthz`.
    pub fn probe_writable(&mut self) -> Result<(), LedgerError> {
        // Shorter than the usual busy timeout: a health check should answer
        // quickly, and a lock held this long already delays every writer.
        self.conn
            .busy_timeout(std::time::Duration::from_secs(1))
            .map_err(|e| self.err(e))?;
        let probe = self.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
        let restore = self.conn.busy_timeout(migrations::BUSY_TIMEOUT);
        probe.map_err(|e| self.err(e))?;
        restore.map_err(|e| self.err(e))
    }

    /// Runs a `SELECT COUNT(*) ...` and returns the count.
    fn count<P: rusqlite::Params>(&self, sql: &str, params: P) -> Result<u64, LedgerError> {
        let n: i64 = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut st| st.query_row(params, |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        // COUNT(*) is never negative.
        Ok(n.unsigned_abs())
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        sql_err(&self.path)(source)
    }
}

/// What an operator should know beyond SQLite's terse message, for the
/// storage faults a daemon meets in the field ("" for the others).
/// What an unknown schema version means, for [`LedgerError::UnknownVersion`].
fn version_hint(found: i64, supported: i64) -> &'static str {
    if found > supported {
        "it was written by a newer review-sync; upgrade review-sync"
    } else {
        "review-sync never writes a negative version: the file was edited by hand or is not a \
         review-sync ledger; restore it from a backup (`review-sync ledger backup` makes one)"
    }
}

fn sqlite_hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode;
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return "";
    };
    match f.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
            " (another connection holds its write lock, e.g. an open transaction in \
             `sqlite3`, for longer than the busy timeout)"
        }
        ErrorCode::DiskFull => " (no space left on the filesystem that holds it)",
        ErrorCode::ReadOnly => {
            " (the file, its -wal/-shm files or its directory cannot be written)"
        }
        ErrorCode::SystemIoFailure => {
            " (the operating system refused a read or write: a read-only or immutable \
             file, a read-only mount, or a failing disk)"
        }
        _ => "",
    }
}

/// A count as SQLite stores it. rusqlite binds only signed integers (without
/// its `fallible_uint` feature); no count reaches `i64::MAX`, so saturating is
/// exact in practice and never fails a write.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The error mapper for code that holds `&mut self.conn` (a transaction) and
/// so cannot call [`Ledger::err`], which borrows the whole ledger.
fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Formats an instant the way the ledger stores it (`2026-11-24T22:45:52.123Z`),
/// for commands that print ledger times.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    time::to_text(t)
}
