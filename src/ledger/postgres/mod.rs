//! The PostgreSQL engine: the same tables, columns, statuses, views and
//! append-only migrations as the SQLite engine, in a database several
//! daemons can share. Each file here implements the part of the ledger
//! contract (`engine.rs`) of the same name.
//!
//! Client: the synchronous `postgres` crate (tokio-postgres driving its own
//! small current-thread runtime), because the ledger is synchronous code
//! that runs on tokio's blocking pool (`LedgerHandle::run`), one caller at
//! a time, like the SQLite engine. TLS: rustls through
//! `tokio-postgres-rustls` (`connect.rs`).
//!
//! Timestamps are the same fixed-width ISO 8601 UTC text as in SQLite, in
//! `TEXT COLLATE "C"` columns: byte order is time order, and an auditor's
//! query (`WHERE first_seen_at >= '2026-01-01'`, `substr(attempted_at, 1,
//! 10)`) reads the same in `psql` as in `sqlite3`; `first_seen_at::timestamptz`
//! converts one where a time is wanted.

mod backup;
mod connect;
mod delivery;
mod leases;
mod listings;
pub(super) mod migrations;
mod polls;
mod queries;
mod retention;
mod reviews;
mod row;

use super::common::Param;
use super::engine::Storage;
use super::{LedgerError, PostgresTarget};
use ::postgres::types::ToSql;
use ::postgres::{Client, GenericClient, Statement};
use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An open PostgreSQL ledger: one connection, made again when the server
/// dropped it.
pub(super) struct Postgres {
    // `None` only while it is being dropped (see `Drop`).
    client: RefCell<Option<Client>>,
    statements: RefCell<HashMap<String, Statement>>,
    target: PostgresTarget,
    /// The URL (it holds no password), as errors name the ledger.
    path: PathBuf,
    read_only: bool,
    /// Committed write transactions of this process (see `Storage::writes`).
    writes: Cell<u64>,
    /// This process in `leases.holder` and `reviews.claimed_by`.
    holder: String,
}

/// Opens the ledger in the database `target` names: read-write (creating
/// and migrating its tables under an advisory lock), or read-only (the
/// session refuses writes; the schema must be this build's).
pub(super) fn open(target: &PostgresTarget, write: bool) -> Result<Postgres, LedgerError> {
    let path = PathBuf::from(target.url());
    let mut client = connect::session(target, &path, !write)?;
    if write {
        migrations::migrate(&mut client, &path, migrations::MIGRATIONS)?;
    } else {
        migrations::require_latest(&mut client, &path)?;
    }
    Ok(Postgres {
        client: RefCell::new(Some(client)),
        statements: RefCell::default(),
        target: target.clone(),
        path,
        read_only: !write,
        writes: Cell::new(0),
        holder: format!("pid {}", std::process::id()),
    })
}

/// Prepared statements of one connection, by SQL text: each statement is
/// parsed and planned by the server once per connection, not on every call
/// (two round trips become one).
pub(super) struct Statements<'a> {
    cache: RefMut<'a, HashMap<String, Statement>>,
    path: &'a Path,
}

/// Parameters of one statement.
pub(super) type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Statements<'_> {
    fn prepared(
        &mut self,
        c: &mut impl GenericClient,
        sql: &str,
    ) -> Result<Statement, LedgerError> {
        if let Some(statement) = self.cache.get(sql) {
            return Ok(statement.clone());
        }
        let statement = c.prepare(sql).map_err(self.err())?;
        self.cache.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs `sql` and returns the rows.
    pub(super) fn query(
        &mut self,
        c: &mut impl GenericClient,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<::postgres::Row>, LedgerError> {
        let statement = self.prepared(c, sql)?;
        c.query(&statement, params).map_err(self.err())
    }

    /// Runs `sql` and returns its one row, or none.
    pub(super) fn query_opt(
        &mut self,
        c: &mut impl GenericClient,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<::postgres::Row>, LedgerError> {
        let statement = self.prepared(c, sql)?;
        c.query_opt(&statement, params).map_err(self.err())
    }

    /// Runs `sql` and returns its one row.
    pub(super) fn query_one(
        &mut self,
        c: &mut impl GenericClient,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<::postgres::Row, LedgerError> {
        let statement = self.prepared(c, sql)?;
        c.query_one(&statement, params).map_err(self.err())
    }

    /// Runs `sql` and returns the rows it changed.
    pub(super) fn execute(
        &mut self,
        c: &mut impl GenericClient,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<u64, LedgerError> {
        let statement = self.prepared(c, sql)?;
        c.execute(&statement, params).map_err(self.err())
    }

    /// A `SELECT COUNT(*) ...`.
    pub(super) fn count(
        &mut self,
        c: &mut impl GenericClient,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<u64, LedgerError> {
        let n: i64 = self
            .query_one(c, sql, params)?
            .try_get(0)
            .map_err(self.err())?;
        // COUNT(*) is never negative.
        Ok(n.unsigned_abs())
    }

    /// Runs `sql` and hands its rows to `each` a batch at a time, so a
    /// walk over millions of rows holds one batch in memory. Inside `tx`,
    /// whose snapshot the walk reads.
    pub(super) fn stream(
        &mut self,
        tx: &mut ::postgres::Transaction<'_>,
        sql: &str,
        params: &Params<'_>,
        each: &mut dyn FnMut(&::postgres::Row) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        const BATCH: i32 = 500;
        let statement = self.prepared(tx, sql)?;
        let portal = tx.bind(&statement, params).map_err(self.err())?;
        loop {
            let rows = tx.query_portal(&portal, BATCH).map_err(self.err())?;
            for row in &rows {
                each(row)?;
            }
            if rows.len() < BATCH as usize {
                return Ok(());
            }
        }
    }

    pub(super) fn err(&self) -> impl Fn(::postgres::Error) -> LedgerError + '_ {
        pg_err(self.path)
    }
}

impl Postgres {
    /// The connection and its statements, connecting again first when the
    /// server dropped the connection (a restart, a failover).
    fn session(&self) -> Result<(RefMut<'_, Client>, Statements<'_>), LedgerError> {
        let reentered =
            |_| LedgerError::Task("a ledger call was made from inside another one".to_owned());
        let mut slot = self.client.try_borrow_mut().map_err(reentered)?;
        let mut cache = self.statements.try_borrow_mut().map_err(reentered)?;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(connect::session(&self.target, &self.path, self.read_only)?);
            cache.clear();
            tracing::info!(ledger = %self.path.display(), "reconnected to the ledger's database");
        }
        let client = RefMut::filter_map(slot, Option::as_mut)
            .map_err(|_| LedgerError::Task("the ledger's connection is gone".to_owned()))?;
        Ok((
            client,
            Statements {
                cache,
                path: &self.path,
            },
        ))
    }

    /// Counts a committed write (see `Storage::writes`).
    fn wrote(&self) {
        self.writes.set(self.writes.get() + 1);
    }

    fn err(&self) -> impl Fn(::postgres::Error) -> LedgerError + '_ {
        pg_err(&self.path)
    }
}

impl Drop for Postgres {
    /// Closing the client stops the small runtime it runs on, which tokio
    /// refuses on an async thread (where the last handle to the ledger may
    /// be dropped): there, it is closed on a thread of its own.
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            let closing = std::thread::Builder::new()
                .name("ledger-close".into())
                .spawn(move || drop(client));
            if let Err(e) = closing {
                tracing::warn!(error = %e, "cannot close the ledger's connection cleanly");
            }
        }
    }
}

impl Storage for Postgres {
    fn path(&self) -> &Path {
        &self.path
    }

    fn check_identity(&self) -> Result<(), LedgerError> {
        // The server owns the files; there is nothing of ours to watch.
        Ok(())
    }

    fn writes(&self) -> u64 {
        self.writes.get()
    }

    fn schema_version(&self) -> Result<i64, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let row = st.query_one(&mut *client, "SELECT version FROM ledger_schema", &[])?;
        row.try_get(0).map_err(self.err())
    }

    fn probe_writable(&mut self) -> Result<(), LedgerError> {
        let (mut client, _) = self.session()?;
        let mut tx = client.transaction().map_err(self.err())?;
        // A health check answers quickly or says why not.
        tx.batch_execute("SET LOCAL statement_timeout = '1s'")
            .map_err(self.err())?;
        let row = tx
            .query_one(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
                &[],
            )
            .map_err(self.err())?;
        let standby: bool = row.try_get(0).map_err(self.err())?;
        let read_only: String = row.try_get(1).map_err(self.err())?;
        tx.rollback().map_err(self.err())?;
        let reason = if standby {
            "the server is a standby (in recovery): it takes no writes; point [ledger] url at the \
             primary"
        } else if read_only == "on" {
            "the session is read-only (default_transaction_read_only is on for this role or \
             database)"
        } else {
            return Ok(());
        };
        Err(LedgerError::ReadOnly {
            path: self.path.clone(),
            reason: reason.to_owned(),
        })
    }

    fn backup_to(&self, dest: &Path, overwrite: bool) -> Result<super::BackupReport, LedgerError> {
        backup::backup_to(self, dest, overwrite)
    }

    fn rescue_copy(&self) -> Result<PathBuf, LedgerError> {
        Err(LedgerError::Io {
            path: self.path.clone(),
            reason: "a PostgreSQL ledger's files are the server's; there is nothing to rescue"
                .to_owned(),
        })
    }
}

/// The error mapper of a ledger at `path`.
fn pg_err(path: &Path) -> impl Fn(::postgres::Error) -> LedgerError + '_ {
    move |source| LedgerError::Postgres {
        path: path.to_path_buf(),
        source,
    }
}

/// `sql` with its `?` placeholders numbered `$1`, `$2`... (the filters of
/// `common::Where` are written once, with `?`).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`Param`]s as statement parameters.
fn bind(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(t) => t as &(dyn ToSql + Sync),
        })
        .collect()
}

/// The server's words, with its detail and hint, or the client's error and
/// its causes (connection refused, certificate not trusted...).
pub(super) fn describe(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!(" (hint: {hint})"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// What an operator should know beyond the server's message ("" when the
/// message says it).
pub(super) fn hint(e: &::postgres::Error) -> &'static str {
    if describe(e).contains("TLS handshake") {
        return " (the server's certificate was not accepted: give its CA as [ledger] \
                sslrootcert, or check that the host in [ledger] url is a name the certificate \
                holds)";
    }
    match error_type(e) {
        "unreachable" => {
            " (the database cannot be reached, or refused this user: check [ledger] url, \
             password and that the server runs)"
        }
        "busy" => " (another session holds a lock on these rows longer than the lock timeout, 5 s)",
        "read_only" => " (the server or the role takes no writes here)",
        "disk_full" => " (the server's disk is full)",
        _ => "",
    }
}

/// The class of a PostgreSQL error (see [`LedgerError::error_type`]), from
/// its SQLSTATE, or from the client's error when there is none.
pub(super) fn error_type(e: &::postgres::Error) -> &'static str {
    let Some(state) = e.code() else {
        // No SQLSTATE: the client failed to talk to the server at all.
        let text = e.to_string();
        let transport = [
            "connection closed",
            "error connecting to server",
            "error communicating with the server",
            "timeout waiting for server",
            "error performing TLS handshake",
            "authentication error",
        ];
        return if e.is_closed() || transport.contains(&text.as_str()) {
            "unreachable"
        } else {
            "other"
        };
    };
    let code = state.code();
    // object_not_in_prerequisite_state at connection time: the database
    // takes no connections (`ALLOW_CONNECTIONS false`, being dropped).
    if code == "55000"
        && e.as_db_error()
            .is_some_and(|db| db.message().contains("accepting connections"))
    {
        return "unreachable";
    }
    match code {
        // lock_not_available, serialization_failure, deadlock_detected, query_canceled
        "55P03" | "40001" | "40P01" | "57014" => "busy",
        // read_only_sql_transaction, insufficient_privilege
        "25006" | "42501" => "read_only",
        "53100" => "disk_full",
        // too_many_connections, admin/crash shutdown, cannot_connect_now,
        // invalid_catalog_name (no such database)
        "53300" | "57P01" | "57P02" | "57P03" | "3D000" => "unreachable",
        "XX001" | "XX002" => "corrupt",
        // connection_exception, invalid_authorization_specification
        _ if code.starts_with("08") || code.starts_with("28") => "unreachable",
        // system_error (io_error...)
        _ if code.starts_with("58") => "io",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            super::numbered("a = ? AND (b = ? OR c = ?)"),
            "a = $1 AND (b = $2 OR c = $3)"
        );
    }
}
