//! Reading typed values out of result rows. The file's content reaches this
//! code (auditors can edit it with `sqlite3`, disks fail), so a value of the
//! wrong type or shape, or text that is not UTF-8, becomes
//! [`LedgerError::CorruptRow`] naming the table, the row and the column,
//! never a panic.

use super::super::{LedgerError, Status, time};
use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::{FromSql, ValueRef};
use std::path::Path;

/// One result row of one table, read by column name.
pub(super) struct RowReader<'a, 's> {
    row: &'a Row<'s>,
    path: &'a Path,
    table: &'static str,
}

impl<'a, 's> RowReader<'a, 's> {
    /// Reads `row`, a row of `table` in the ledger at `path`.
    pub(super) fn new(row: &'a Row<'s>, path: &'a Path, table: &'static str) -> Self {
        RowReader { row, path, table }
    }

    /// The column as `T`; a value SQLite holds with another type is corrupt.
    pub(super) fn get<T: FromSql>(&self, column: &'static str) -> Result<T, LedgerError> {
        self.row.get(column).map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => self.corrupt(column),
            other => LedgerError::Sqlite {
                path: self.path.to_path_buf(),
                source: other,
            },
        })
    }

    /// A NOT NULL timestamp column.
    pub(super) fn time(&self, column: &'static str) -> Result<DateTime<Utc>, LedgerError> {
        let text: String = self.get(column)?;
        time::from_text(&text).ok_or_else(|| self.corrupt(column))
    }

    /// A nullable timestamp column.
    pub(super) fn opt_time(
        &self,
        column: &'static str,
    ) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let text: Option<String> = self.get(column)?;
        match text {
            None => Ok(None),
            Some(t) => time::from_text(&t)
                .map(Some)
                .ok_or_else(|| self.corrupt(column)),
        }
    }

    /// A count column (never negative).
    pub(super) fn count(&self, column: &'static str) -> Result<u64, LedgerError> {
        // Read as i64 then convert: a negative count is corrupt, not a
        // conversion error from deep inside rusqlite.
        let n: i64 = self.get(column)?;
        u64::try_from(n).map_err(|_| self.corrupt(column))
    }

    /// The `status` column.
    pub(super) fn status(&self, column: &'static str) -> Result<Status, LedgerError> {
        let text: String = self.get(column)?;
        Status::parse(&text).ok_or_else(|| self.corrupt(column))
    }

    fn corrupt(&self, column: &'static str) -> LedgerError {
        LedgerError::CorruptRow {
            path: self.path.to_path_buf(),
            table: self.table,
            row: self.row_key(),
            column,
            value: self.describe(column),
        }
    }

    /// Which row this is, from the columns the query selected:
    /// `platform review_id` (reviews, attempts), else `id N` with its source
    /// and location (quarantine, polls), else `rowid N`.
    fn row_key(&self) -> String {
        let text = |column: &str| match self.row.get_ref(column) {
            Ok(ValueRef::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
            Ok(ValueRef::Integer(i)) => Some(i.to_string()),
            _ => None,
        };
        if let (Some(platform), Some(review_id)) = (text("platform"), text("review_id")) {
            return format!("{platform} {review_id}");
        }
        let place = match (text("source_name"), text("location_id")) {
            (Some(s), Some(l)) => format!(", {s} {l}"),
            _ => String::new(),
        };
        match (text("id"), text("rowid")) {
            (Some(id), _) => format!("id {id}{place}"),
            (None, Some(rowid)) => format!("rowid {rowid}{place}"),
            (None, None) if !place.is_empty() => place[2..].to_owned(),
            (None, None) => "row not identified".to_owned(),
        }
    }

    /// The raw stored value, for the error message.
    fn describe(&self, column: &'static str) -> String {
        match self.row.get_ref(column) {
            Ok(ValueRef::Null) => "NULL".to_owned(),
            Ok(ValueRef::Integer(i)) => i.to_string(),
            Ok(ValueRef::Real(f)) => f.to_string(),
            Ok(ValueRef::Text(t)) => format!("{:?}", String::from_utf8_lossy(t)),
            Ok(ValueRef::Blob(b)) => format!("<blob of {} bytes>", b.len()),
            Err(e) => format!("<unreadable: {e}>"),
        }
    }
}
