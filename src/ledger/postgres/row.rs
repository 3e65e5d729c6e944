//! Reading typed values out of PostgreSQL result rows. Column types are
//! enforced by the server, but a timestamp is text an operator can edit in
//! `psql`, so a value that cannot be read becomes
//! [`LedgerError::CorruptRow`] naming the table, the row and the column,
//! never a panic.

use super::super::{LedgerError, Status, time};
use ::postgres::Row;
use ::postgres::types::FromSql;
use chrono::{DateTime, Utc};
use std::path::Path;

/// One result row of one table, read by column name.
pub(super) struct RowReader<'a> {
    row: &'a Row,
    path: &'a Path,
    table: &'static str,
}

impl<'a> RowReader<'a> {
    /// Reads `row`, a row of `table` in the ledger at `path`.
    pub(super) fn new(row: &'a Row, path: &'a Path, table: &'static str) -> Self {
        RowReader { row, path, table }
    }

    /// The column as `T`.
    pub(super) fn get<T: for<'r> FromSql<'r>>(
        &self,
        column: &'static str,
    ) -> Result<T, LedgerError> {
        self.row.try_get(column).map_err(|_| self.corrupt(column))
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
        let n: i64 = self.get(column)?;
        u64::try_from(n).map_err(|_| self.corrupt(column))
    }

    /// A nullable integer column that must fit `T`.
    pub(super) fn opt_int<T: TryFrom<i64>>(
        &self,
        column: &'static str,
    ) -> Result<Option<T>, LedgerError> {
        let n: Option<i64> = self.get(column)?;
        n.map(|n| T::try_from(n).map_err(|_| self.corrupt(column)))
            .transpose()
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

    /// Which row this is: `platform review_id`, else `id N` with its source
    /// and location.
    fn row_key(&self) -> String {
        let text = |column: &str| -> Option<String> {
            if let Ok(Some(t)) = self.row.try_get::<_, Option<String>>(column) {
                return Some(t);
            }
            self.row
                .try_get::<_, Option<i64>>(column)
                .ok()
                .flatten()
                .map(|i| i.to_string())
        };
        if let (Some(platform), Some(review_id)) = (text("platform"), text("review_id")) {
            return format!("{platform} {review_id}");
        }
        let place = match (text("source_name"), text("location_id")) {
            (Some(s), Some(l)) => format!(", {s} {l}"),
            _ => String::new(),
        };
        match text("id") {
            Some(id) => format!("id {id}{place}"),
            None if !place.is_empty() => place[2..].to_owned(),
            None => "row not identified".to_owned(),
        }
    }

    /// The stored value, for the error message.
    fn describe(&self, column: &'static str) -> String {
        if let Ok(v) = self.row.try_get::<_, Option<String>>(column) {
            return v.map_or_else(|| "NULL".to_owned(), |t| format!("{t:?}"));
        }
        if let Ok(v) = self.row.try_get::<_, Option<i64>>(column) {
            return v.map_or_else(|| "NULL".to_owned(), |i| i.to_string());
        }
        "<a value of another type>".to_owned()
    }
}
