//! The ledger: the source of truth for every review received, every
//! delivery attempt, every quarantined record and every poll. Only this module
//! runs SQL. [`Ledger`] is its one interface; behind it, an engine: a SQLite
//! file (`sqlite/`, the embedded default) or a PostgreSQL database
//! (`postgres/`, which several daemons can share), with the same tables,
//! columns, views and migrations. Everything here is synchronous; async code
//! reaches it through [`LedgerHandle`], which runs the work on a blocking
//! thread.
//!
//! Timestamps are stored as ISO 8601 UTC text of fixed width
//! (`2026-11-24T22:45:52.123Z`), so text order is time order (PostgreSQL's
//! text columns are declared `COLLATE "C"`, byte order, so it holds there
//! too), and an auditor's query reads the same in `sqlite3` and `psql`.

mod common;
mod contract;
mod engine;
mod handle;
mod model;
mod postgres;
mod sqlite;
mod target;
mod time;

#[cfg(test)]
mod tests;

pub use contract::Ledger;
pub use handle::LedgerHandle;
pub use model::*;
pub use target::{AsTarget, PostgresSettings, PostgresTarget, SettingError, SslMode, Target};

/// The keys of a body's `review` object that retention removes (see
/// `travtus::body::purge_text`).
pub use crate::travtus::body::PURGED_FIELDS;

use std::path::PathBuf;

/// Errors from the ledger. Every one names the ledger: its file, or its
/// database's URL (which never holds a password) in the `path` field.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite refused an operation (disk full, read-only, locked, corrupt...).
    /// The message adds what SQLite's own words mean for an operator.
    #[error("ledger {path}: {source}{}", sqlite::sqlite_hint(.source))]
    Sqlite {
        /// The ledger file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL refused an operation, or could not be reached. The message
    /// adds what the server's words mean for an operator.
    #[error("ledger {path}: {}{}", postgres::describe(.source), postgres::hint(.source))]
    Postgres {
        /// The database's URL (it never holds a password).
        path: PathBuf,
        /// The client's error.
        #[source]
        source: ::postgres::Error,
    },
    /// There is no ledger there yet: the file does not exist, or the
    /// database holds no ledger tables. A read-only command has nothing to
    /// read (a dry run reads as if the ledger were empty); the daemon, `sync`
    /// and the other read-write commands create it.
    #[error("ledger {path}: {reason}")]
    NotCreated {
        /// The ledger.
        path: PathBuf,
        /// What is missing, and what creates it.
        reason: String,
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
        "ledger {path}: corrupt row in table {table} ({row}): column {column} holds {value}, which cannot be read; repair the row (with sqlite3, or psql for a PostgreSQL ledger) or restore a backup"
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
    /// The ledger's storage takes no writes (a PostgreSQL standby, a
    /// read-only session), found by the health probe.
    #[error("ledger {path}: cannot be written: {reason}")]
    ReadOnly {
        /// The ledger.
        path: PathBuf,
        /// Why.
        reason: String,
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
pub const ERROR_TYPES: [&str; 8] = [
    "busy",
    "read_only",
    "disk_full",
    "io",
    "moved",
    "corrupt",
    "unreachable",
    "other",
];

impl LedgerError {
    /// The error's class, low-cardinality and the same whatever the engine
    /// (one of [`ERROR_TYPES`]): `busy` (a lock held too long), `read_only`
    /// (the storage refuses writes), `disk_full`, `io` (the storage failed
    /// a read or write, or cannot be opened), `moved` (the ledger's files
    /// were deleted or replaced), `corrupt` (a stored value or the file
    /// cannot be read back), `unreachable` (the database server cannot be
    /// reached, or dropped the connection), `other`. Code outside the
    /// ledger decides on this, never on the engine's own error codes.
    pub fn error_type(&self) -> &'static str {
        match self {
            LedgerError::Sqlite { source, .. } => sqlite::error_type(source),
            LedgerError::Postgres { source, .. } => postgres::error_type(source),
            LedgerError::Io { .. } => "io",
            LedgerError::Moved { .. } => "moved",
            LedgerError::ReadOnly { .. } => "read_only",
            LedgerError::Corrupt { .. } | LedgerError::CorruptRow { .. } => "corrupt",
            _ => "other",
        }
    }

    /// Whether this is the storage failing (full, read-only, I/O, files
    /// moved, database unreachable), which `/healthz` reports, rather than
    /// a busy lock (the health probe sees those by itself) or a bad value.
    pub fn is_storage_fault(&self) -> bool {
        matches!(
            self.error_type(),
            "read_only" | "disk_full" | "io" | "moved" | "unreachable"
        )
    }
}

/// What an unknown schema version means, for [`LedgerError::UnknownVersion`].
fn version_hint(found: i64, supported: i64) -> &'static str {
    if found > supported {
        "it was written by a newer review-sync; upgrade review-sync"
    } else {
        "review-sync never writes a negative version: the file was edited by hand or is not a \
         review-sync ledger; restore it from a backup (`review-sync ledger backup` makes one)"
    }
}

/// Formats an instant the way the ledger stores it (`2026-11-24T22:45:52.123Z`),
/// for commands that print ledger times.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    time::to_text(t)
}
