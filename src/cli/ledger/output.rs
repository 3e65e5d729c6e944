//! What every `ledger` command writes with: CSV whose cells a spreadsheet
//! cannot run as formulas, JSON that is exact and safe on a terminal, and
//! the report of rows too corrupt to read.
//!
//! CSV keeps every value exact (CR, LF and tab inside a quoted cell, control
//! characters as stored) except for OWASP's rule against formula injection
//! ([`neutralise`]): it is data for spreadsheets and scripts, not a terminal
//! view (use the table format, or `less`, to read it on a terminal). JSON
//! and JSONL are escaped with [`review_sync::escape`], whose escapes are
//! JSON's own, so they decode to exactly the stored values.

use review_sync::escape::escape;
use review_sync::ledger::LedgerError;
use std::borrow::Cow;
use std::io::Write;
use std::process::ExitCode;

/// EX_DATAERR from sysexits.h: a listing or export skipped rows it could
/// not read (each named on stderr); everything else was written.
pub(crate) const EX_DATAERR: u8 = 65;

/// The UTF-8 byte-order mark `--bom` writes first, so that spreadsheets
/// that guess the encoding read the file as UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `cell`, made safe for a spreadsheet by OWASP's rule against CSV formula
/// injection: a cell that starts with `=`, `+`, `-`, `@`, tab or carriage
/// return gets a leading `'`, which spreadsheets show as text and do not
/// evaluate. A plain number (`-3`, `4.5`: a gap, a rating) is left as it is,
/// since it cannot be a formula.
pub(crate) fn neutralise(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if !risky || is_plain_number(cell) {
        return Cow::Borrowed(cell);
    }
    Cow::Owned(format!("'{cell}"))
}

/// `-12`, `+3`, `4.5`: an optional sign, digits, an optional fraction.
fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix(['-', '+']).unwrap_or(cell);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// A CSV writer that applies [`neutralise`] to every cell.
pub(crate) struct CsvOut<'a> {
    w: csv::Writer<&'a mut dyn Write>,
}

impl<'a> CsvOut<'a> {
    /// Starts a CSV output, with a byte-order mark first when `bom`.
    pub(crate) fn new(out: &'a mut dyn Write, bom: bool) -> std::io::Result<CsvOut<'a>> {
        if bom {
            out.write_all(BOM)?;
        }
        Ok(CsvOut {
            w: csv::Writer::from_writer(out),
        })
    }

    /// Writes one row.
    pub(crate) fn row<I, S>(&mut self, cells: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.w.write_record(
            cells
                .into_iter()
                .map(|c| neutralise(c.as_ref()).into_owned()),
        )
    }

    /// Flushes what is buffered.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// A JSON value as one line of text, escaped for a terminal (still exact JSON).
pub(crate) fn json_line(value: &serde_json::Value) -> String {
    escape(&value.to_string()).into_owned()
}

/// Counts the rows a listing could not read, naming each on stderr.
#[derive(Default)]
pub(crate) struct CorruptRows {
    count: u64,
}

impl CorruptRows {
    /// Reports one unreadable row on stderr and counts it.
    pub(crate) fn report(&mut self, e: LedgerError) {
        self.count += 1;
        eprintln!("review-sync: skipped: {}", escape(&e.to_string()));
    }

    /// The exit status once the listing is written: success, or
    /// [`EX_DATAERR`] with the count when rows were skipped.
    pub(crate) fn finish(self) -> ExitCode {
        if self.count == 0 {
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "review-sync: {} corrupt row(s) skipped (named above); every other row was written",
            self.count
        );
        ExitCode::from(EX_DATAERR)
    }
}

/// I/O errors of the output, as the ledger walk's error type.
pub(crate) fn io_to_ledger(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Io {
        path: "<stdout>".into(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owasp_formula_triggers_get_a_leading_apostrophe() {
        for (cell, safe) in [
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(1,1)", "'@SUM(1,1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-", "'-"),
            ("=", "'="),
        ] {
            assert_eq!(neutralise(cell), safe, "{cell:?}");
        }
    }

    #[test]
    fn other_cells_and_plain_numbers_are_unchanged() {
        for cell in [
            "",
            "abc",
            "a=b",
            " =1",
            "'=1",
            "12",
            "-3",
            "+4",
            "4.5",
            "-0.25",
            "2026-01-01",
        ] {
            assert!(
                matches!(neutralise(cell), Cow::Borrowed(c) if c == cell),
                "{cell:?}"
            );
        }
        for cell in ["-1e5", "-.5", "-5.", "+", "-1-1", "--1"] {
            assert!(neutralise(cell).starts_with('\''), "{cell:?}");
        }
    }

    #[test]
    fn csv_rows_are_neutralised_quoted_and_exact_otherwise() {
        let mut buf = Vec::new();
        {
            let mut csv = CsvOut::new(&mut buf, true).unwrap();
            csv.row(["id", "text"]).unwrap();
            csv.row(["=1+1", "line one\r\nline \u{1b}two, \"quoted\""])
                .unwrap();
            csv.flush().unwrap();
        }
        assert!(buf.starts_with(BOM));
        let mut reader = csv::Reader::from_reader(&buf[BOM.len()..]);
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "'=1+1");
        assert_eq!(&row[1], "line one\r\nline \u{1b}two, \"quoted\"");
    }

    #[test]
    fn json_lines_are_exact_and_terminal_safe() {
        let v = serde_json::json!({"id": "a\u{202e}b", "e": "\u{1b}[2J\u{9b}"});
        let line = json_line(&v);
        assert!(
            !line.chars().any(review_sync::escape::needs_escape),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), v);
    }
}
