//! `ledger backup` of a PostgreSQL ledger: every table read in one
//! repeatable-read snapshot and written into a new SQLite ledger file at the
//! same schema version, so that the copy is the same self-contained,
//! checked, private file a SQLite ledger's backup is (`sqlite3 -readonly`
//! opens it anywhere). The database's own backups (base backups, `pg_dump`)
//! stay the operator's tools for the database itself.

use super::super::sqlite::backup::write_copy;
use super::super::sqlite::migrations::{MIGRATIONS as SQLITE_MIGRATIONS, migrate};
use super::super::{BackupReport, LedgerError};
use super::Postgres;
use super::queries::snapshot;
use ::postgres::types::Type;
use rusqlite::types::Value;
use std::path::Path;

/// The tables of a ledger, each with the order its rows are copied in.
/// Both engines list each table's columns in the same order.
const TABLES: &[(&str, &str)] = &[
    ("reviews", "platform, review_id"),
    ("attempts", "id"),
    ("quarantine", "id"),
    ("poll_state", "source_name, location_id"),
    ("polls", "id"),
    ("purges", "id"),
    ("requeues", "id"),
];

/// Copies the ledger into a new SQLite file at `dest`.
pub(super) fn backup_to(
    ledger: &Postgres,
    dest: &Path,
    overwrite: bool,
) -> Result<BackupReport, LedgerError> {
    let (mut client, mut st) = ledger.session()?;
    let mut tx = snapshot(&mut client, &st)?;
    let to_sqlite = crate::ledger::sqlite::sql_err(dest);
    let report = write_copy(dest, overwrite, &mut |copy| {
        migrate(copy, dest, SQLITE_MIGRATIONS)?;
        let sqlite_tx = copy.transaction().map_err(&to_sqlite)?;
        for (table, order) in TABLES {
            let mut insert: Option<rusqlite::CachedStatement<'_>> = None;
            st.stream(
                &mut tx,
                &format!("SELECT * FROM {table} ORDER BY {order}"),
                &[],
                &mut |row| {
                    if insert.is_none() {
                        let marks = vec!["?"; row.len()].join(", ");
                        insert = Some(
                            sqlite_tx
                                .prepare_cached(&format!("INSERT INTO {table} VALUES ({marks})"))
                                .map_err(&to_sqlite)?,
                        );
                    }
                    let values = (0..row.len())
                        .map(|i| value(row, i))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(super::pg_err(&ledger.path))?;
                    if let Some(statement) = insert.as_mut() {
                        statement
                            .execute(rusqlite::params_from_iter(values))
                            .map_err(&to_sqlite)?;
                    }
                    Ok(())
                },
            )?;
        }
        sqlite_tx.commit().map_err(&to_sqlite)
    });
    tx.commit().map_err(st.err())?;
    report
}

/// Column `i` of a row as the SQLite value it becomes: the ledger's
/// columns are text, bigint, or (computed) boolean.
fn value(row: &::postgres::Row, i: usize) -> Result<Value, ::postgres::Error> {
    Ok(match *row.columns()[i].type_() {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Integer),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(Value::Null, |n| Value::Integer(n.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Value::Null, |b| Value::Integer(b.into())),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
    })
}
