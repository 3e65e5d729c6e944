//! The SQLite engine: one file in WAL mode, readable by auditors while the
//! daemon runs (`sqlite3 -readonly`). Each file here implements the part of
//! the ledger contract (`engine.rs`) of the same name.

pub(super) mod backup;
mod delivery;
mod identity;
mod leases;
mod listings;
pub(super) mod migrations;
mod polls;
mod queries;
mod retention;
mod reviews;
mod row;

use super::LedgerError;
use super::engine::Storage;
use std::path::{Path, PathBuf};

/// An open SQLite ledger: one connection.
pub(super) struct Sqlite {
    pub(super) conn: rusqlite::Connection,
    path: PathBuf,
    // The (device, inode) of the files SQLite opened, to see them deleted
    // or replaced under us.
    identity: identity::FileIdentity,
}

/// Opens (creating and migrating) the ledger file at `path`.
pub(super) fn open(path: &Path) -> Result<Sqlite, LedgerError> {
    migrations::open(path)
}

/// Opens an existing, migrated ledger file read-only.
pub(super) fn open_readonly(path: &Path) -> Result<Sqlite, LedgerError> {
    migrations::open_readonly(path)
}

impl Sqlite {
    /// The connection, for tests of SQLite's own behaviour.
    #[cfg(test)]
    pub(super) fn conn(&self) -> &rusqlite::Connection {
        &self.conn
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

impl Storage for Sqlite {
    fn path(&self) -> &Path {
        &self.path
    }

    fn check_identity(&self) -> Result<(), LedgerError> {
        self.identity.check().map_err(|reason| LedgerError::Moved {
            path: self.path.clone(),
            reason,
        })
    }

    fn writes(&self) -> u64 {
        self.conn.total_changes()
    }

    fn schema_version(&self) -> Result<i64, LedgerError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn probe_writable(&mut self) -> Result<(), LedgerError> {
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

    fn backup_to(&self, dest: &Path, overwrite: bool) -> Result<super::BackupReport, LedgerError> {
        backup::backup_to(self, dest, overwrite)
    }

    fn rescue_copy(&self) -> Result<PathBuf, LedgerError> {
        backup::rescue_copy(self)
    }

    #[cfg(test)]
    fn as_sqlite(&self) -> Option<&Sqlite> {
        Some(self)
    }
}

/// What an operator should know beyond SQLite's terse message, for the
/// storage faults a daemon meets in the field ("" for the others).
pub(super) fn sqlite_hint(e: &rusqlite::Error) -> &'static str {
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

/// The class of a SQLite error (see [`LedgerError::error_type`]).
pub(super) fn error_type(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode;
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return "other";
    };
    match f.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => "busy",
        ErrorCode::ReadOnly | ErrorCode::PermissionDenied => "read_only",
        ErrorCode::DiskFull => "disk_full",
        ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => "io",
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => "corrupt",
        _ => "other",
    }
}

/// A count as SQLite stores it. rusqlite binds only signed integers (without
/// its `fallible_uint` feature); no count reaches `i64::MAX`, so saturating is
/// exact in practice and never fails a write.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The error mapper for code that holds `&mut self.conn` (a transaction) and
/// so cannot call [`Sqlite::err`], which borrows the whole ledger.
pub(super) fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// [`super::common::Param`]s as SQLite values.
fn values(params: Vec<super::common::Param>) -> Vec<rusqlite::types::Value> {
    params
        .into_iter()
        .map(|p| match p {
            super::common::Param::Text(t) => rusqlite::types::Value::Text(t),
        })
        .collect()
}
