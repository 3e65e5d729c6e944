//! Rows of a file source's input, read one at a time with their position:
//! JSONL lines, and CSV records (whose quoted fields may span lines). A row
//! longer than [`MAX_ROW_BYTES`] is skipped as it is read: only its first
//! bytes are kept (for the quarantine), so that one bad line of a gigabyte
//! neither takes the daemon's memory nor stops the rows around it.

use std::io::{self, BufRead};

/// The longest row (JSONL line or CSV record, terminator excluded) read
/// into memory. The longest review text a platform allows is a few thousand
/// characters (Google's limit is 4,096), so a row of a megabyte is not a
/// review; holding it, and storing it whole in the quarantine, would only
/// cost memory and ledger space.
pub const MAX_ROW_BYTES: usize = 1024 * 1024;

/// How much of an oversized row is kept, for the quarantine's `raw`.
const KEPT_OF_OVERSIZED: usize = 256;

/// One row as read from the file.
pub(super) struct RawRow {
    /// The 1-based line the row starts on.
    pub(super) line: u64,
    /// The byte offset of its first byte in the file.
    pub(super) offset: u64,
    /// What was read.
    pub(super) body: Body,
}

/// The content of a [`RawRow`].
pub(super) enum Body {
    /// A JSONL line, without its terminator.
    Line(Vec<u8>),
    /// A CSV record: its fields, and its text as written (for the quarantine).
    Record {
        /// The unquoted fields.
        fields: Vec<Vec<u8>>,
        /// The record as written, without its terminator.
        raw: Vec<u8>,
    },
    /// A row longer than [`MAX_ROW_BYTES`], skipped.
    Oversized {
        /// Its length in bytes, terminator excluded.
        len: u64,
        /// Its first bytes.
        start: Vec<u8>,
    },
}

/// Skips a UTF-8 byte-order mark at the start; returns the bytes skipped.
fn skip_bom(reader: &mut impl BufRead) -> io::Result<u64> {
    let bom = b"\xEF\xBB\xBF";
    if reader.fill_buf()?.starts_with(bom) {
        reader.consume(bom.len());
        return Ok(3);
    }
    Ok(0)
}

/// The non-blank lines of a JSONL file.
pub(super) struct Lines<R> {
    inner: R,
    /// The number of the next line.
    line: u64,
    /// The byte offset of the next line.
    offset: u64,
}

impl<R: BufRead> Lines<R> {
    /// Starts reading (after a byte-order mark, if any).
    pub(super) fn new(mut inner: R) -> io::Result<Lines<R>> {
        let offset = skip_bom(&mut inner)?;
        Ok(Lines {
            inner,
            line: 1,
            offset,
        })
    }

    /// The next line that is not blank, or `None` at the end.
    pub(super) fn next_row(&mut self) -> io::Result<Option<RawRow>> {
        loop {
            let (line, offset) = (self.line, self.offset);
            let mut kept: Vec<u8> = Vec::new();
            // Bytes of the line before its '\n', and the last of them.
            let mut len: u64 = 0;
            let mut last = None;
            let mut ended = false;
            let mut any = false;
            loop {
                let buf = self.inner.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                any = true;
                let (chunk, newline) = match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => (&buf[..i], true),
                    None => (buf, false),
                };
                // One byte beyond the cap: room for a '\r' before the '\n'.
                let room = (MAX_ROW_BYTES + 1).saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                len += chunk.len() as u64;
                if let Some(b) = chunk.last() {
                    last = Some(*b);
                }
                let used = chunk.len() + usize::from(newline);
                self.inner.consume(used);
                if newline {
                    ended = true;
                    break;
                }
            }
            if !any {
                return Ok(None);
            }
            self.line += 1;
            self.offset += len + u64::from(ended);
            if last == Some(b'\r') {
                len -= 1;
                kept.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            }
            if len > MAX_ROW_BYTES as u64 {
                kept.truncate(KEPT_OF_OVERSIZED);
                return Ok(Some(RawRow {
                    line,
                    offset,
                    body: Body::Oversized { len, start: kept },
                }));
            }
            if kept.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(RawRow {
                line,
                offset,
                body: Body::Line(kept),
            }));
        }
    }
}

/// The records of a CSV file, parsed by `csv-core` with the `csv` crate's
/// defaults (comma, double quotes, `""` inside quotes, any of `\r`, `\n`,
/// `\r\n` ending a record, blank lines skipped), fed by hand so that an
/// oversized record is never held.
pub(super) struct Records<R> {
    inner: R,
    core: csv_core::Reader,
    /// The line at the reading position.
    line: u64,
    /// The byte offset of the reading position.
    offset: u64,
    /// Whether the parser said the input ended.
    done: bool,
}

impl<R: BufRead> Records<R> {
    /// Starts reading (after a byte-order mark, if any).
    pub(super) fn new(mut inner: R) -> io::Result<Records<R>> {
        let offset = skip_bom(&mut inner)?;
        Ok(Records {
            inner,
            core: csv_core::Reader::new(),
            line: 1,
            offset,
            done: false,
        })
    }

    /// The next record, or `None` at the end.
    pub(super) fn next_row(&mut self) -> io::Result<Option<RawRow>> {
        if self.done {
            return Ok(None);
        }
        // Where the record starts: the reading position, moved past what
        // comes first (the '\n' of a previous "\r\n", blank lines).
        let (mut line, mut offset) = (self.line, self.offset);
        let mut leading = true;
        // The record as written, up to the cap, and its length.
        let mut raw: Vec<u8> = Vec::new();
        let mut raw_len: u64 = 0;
        let mut tail = [0u8; 2];
        let mut output = vec![0u8; 1024];
        let mut out_len = 0;
        let mut ends = vec![0usize; 32];
        let mut ends_len = 0;
        loop {
            let input = self.inner.fill_buf()?;
            let (result, read, written, ended) =
                self.core
                    .read_record(input, &mut output[out_len..], &mut ends[ends_len..]);
            let consumed = &input[..read];
            self.line += newlines(consumed);
            self.offset += read as u64;
            let mut content = consumed;
            if leading {
                let lead = content
                    .iter()
                    .take_while(|b| **b == b'\n' || **b == b'\r')
                    .count();
                line += newlines(&content[..lead]);
                offset += lead as u64;
                content = &content[lead..];
                leading = content.is_empty();
            }
            let room = (MAX_ROW_BYTES + 2).saturating_sub(raw.len());
            raw.extend_from_slice(&content[..content.len().min(room)]);
            raw_len += content.len() as u64;
            for b in content.iter().rev().take(2).rev() {
                tail = [tail[1], *b];
            }
            self.inner.consume(read);
            out_len += written;
            ends_len += ended;
            // Beyond the cap even with a "\r\n" terminator counted in.
            let oversized = raw_len > (MAX_ROW_BYTES + 2) as u64;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull if oversized => out_len = 0,
                csv_core::ReadRecordResult::OutputFull => output.resize(output.len() * 2, 0),
                csv_core::ReadRecordResult::OutputEndsFull if oversized => ends_len = 0,
                csv_core::ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
                csv_core::ReadRecordResult::Record => {
                    let mut len = raw_len;
                    for terminator in [b'\n', b'\r'] {
                        if len > 0 && tail[1] == terminator {
                            len -= 1;
                            tail = [0, tail[0]];
                        }
                    }
                    raw.truncate(usize::try_from(len).unwrap_or(usize::MAX));
                    if len > MAX_ROW_BYTES as u64 {
                        raw.truncate(KEPT_OF_OVERSIZED);
                        return Ok(Some(RawRow {
                            line,
                            offset,
                            body: Body::Oversized { len, start: raw },
                        }));
                    }
                    let mut fields = Vec::with_capacity(ends_len);
                    let mut start = 0;
                    for end in &ends[..ends_len] {
                        fields.push(output.get(start..*end).unwrap_or_default().to_vec());
                        start = *end;
                    }
                    return Ok(Some(RawRow {
                        line,
                        offset,
                        body: Body::Record { fields, raw },
                    }));
                }
                csv_core::ReadRecordResult::End => {
                    self.done = true;
                    return Ok(None);
                }
            }
        }
    }
}

/// How many '\n' are in `bytes`.
fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<(u64, u64, String)> {
        let mut reader = Lines::new(text).expect("reader");
        let mut out = Vec::new();
        while let Some(row) = reader.next_row().expect("row") {
            let shown = match row.body {
                Body::Line(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Body::Oversized { len, start } => format!("{len} bytes from {}", start.len()),
                Body::Record { .. } => unreachable!("a JSONL reader"),
            };
            out.push((row.line, row.offset, shown));
        }
        out
    }

    fn records(text: &[u8]) -> Vec<(u64, u64, String, usize)> {
        let mut reader = Records::new(text).expect("reader");
        let mut out = Vec::new();
        while let Some(row) = reader.next_row().expect("row") {
            let shown = match row.body {
                Body::Record { fields, raw } => {
                    (String::from_utf8_lossy(&raw).into_owned(), fields.len())
                }
                Body::Oversized { len, start } => (format!("{len} bytes from {}", start.len()), 0),
                Body::Line(_) => unreachable!("a CSV reader"),
            };
            out.push((row.line, row.offset, shown.0, shown.1));
        }
        out
    }

    #[test]
    fn lines_have_their_number_and_offset_and_blank_ones_are_skipped() {
        let text = b"\xEF\xBB\xBFa\r\n\n  \nbb\ncc";
        assert_eq!(
            lines(text),
            [
                (1, 3, "a".to_owned()),
                (4, 10, "bb".to_owned()),
                (5, 13, "cc".to_owned())
            ]
        );
    }

    #[test]
    fn an_oversized_line_keeps_only_its_start_and_the_next_line_is_read() {
        let mut text = b"x\n".to_vec();
        text.extend(std::iter::repeat_n(b'y', MAX_ROW_BYTES + 1));
        text.extend_from_slice(b"\r\nz\n");
        let got = lines(&text);
        assert_eq!(
            got,
            [
                (1, 0, "x".to_owned()),
                (
                    2,
                    2,
                    format!("{} bytes from {KEPT_OF_OVERSIZED}", MAX_ROW_BYTES + 1)
                ),
                (3, MAX_ROW_BYTES as u64 + 5, "z".to_owned()),
            ]
        );
        // Exactly at the cap (with "\r\n") is still a row.
        let mut text = vec![b'w'; MAX_ROW_BYTES];
        text.extend_from_slice(b"\r\n");
        assert!(matches!(lines(&text)[0].2.as_str(), s if s.len() == MAX_ROW_BYTES));
    }

    #[test]
    fn records_span_lines_inside_quotes_and_know_where_they_start() {
        let text = b"id,text\r\na,\"one\ntwo\"\r\n\r\nb,\"say \"\"hi\"\"\"\nc,d";
        assert_eq!(
            records(text),
            [
                (1, 0, "id,text".to_owned(), 2),
                (2, 9, "a,\"one\ntwo\"".to_owned(), 2),
                (5, 24, "b,\"say \"\"hi\"\"\"".to_owned(), 2),
                (6, 39, "c,d".to_owned(), 2),
            ]
        );
    }

    #[test]
    fn an_oversized_record_is_skipped_and_the_next_one_is_read() {
        let mut text = b"h1,h2\n".to_vec();
        text.extend_from_slice(b"big,\"");
        text.extend(std::iter::repeat_n(b'y', MAX_ROW_BYTES));
        text.extend_from_slice(b"\"\nok,1\n");
        let got = records(&text);
        assert_eq!(
            got.len(),
            3,
            "{:?}",
            got.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>()
        );
        assert_eq!((got[1].0, got[1].1), (2, 6));
        assert_eq!(
            got[1].2,
            format!("{} bytes from {KEPT_OF_OVERSIZED}", MAX_ROW_BYTES + 6)
        );
        assert_eq!(got[2].2, "ok,1");
        assert_eq!(got[2].0, 3);
    }
}
