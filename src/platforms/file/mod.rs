//! The `file` source: reviews from `.jsonl` and `.csv` files, for platforms
//! without an API we support (exports, scrapes, a partner's drop folder).
//!
//! A location `id` is a path or a glob (`/data/reviews/*.jsonl`), taken as
//! given (relative paths are relative to the daemon's working directory).
//! Matched files ending `.jsonl` or `.csv` are read in sorted order, one
//! [`FetchedPage`] per file. Each file is read once per content version: the
//! poll cursor maps each path to the SHA-256 of the content last read, so an
//! unchanged file costs a hash and no rows, and an edited file is read whole
//! again (the ledger drops the unchanged rows as repeats).
//!
//! Rows (a JSON object per line, or a CSV row under a header row naming the
//! columns): `review_id` and `created_datetime` required; `source`, `title`,
//! `comment`, `rating`, `display_name`, `is_anonymous`, `updated_datetime`
//! optional; other keys ignored. A row that cannot become a review is
//! rejected with `<path>:<line>` and the raw line; the rest of the file goes on.
//!
//! There is no external reference for these files; this module assumes:
//! - files are UTF-8 (a leading byte-order mark is skipped) and small enough
//!   to read whole;
//! - an empty CSV cell, a JSON `null` and an empty or blank string all mean
//!   "absent";
//! - a path without glob characters that does not exist is a quiet, empty
//!   poll (files come and go in drop folders), with a warning in the log.
//!
//! Times before 2000 or more than a day ahead are rejected
//! ([`timestamps::check_review_time`]); text (HTML, control characters) is
//! delivered as written, ids with control characters are rejected, as for
//! Google (see `google::wire`).

use super::{FetchedPage, PlatformError, check_review_id};
use crate::config::FileConfig;
use crate::domain::{LocationId, Platform, Rating, Rejected, Review, ReviewId};
use crate::ledger::PollState;
use crate::timestamps::{self, TimestampError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// The reader of one `file` source.
pub struct FileReader {
    /// `platform`: the `review.source` of rows without a `source`.
    platform: Option<String>,
}

impl FileReader {
    /// Builds the reader.
    pub fn new(cfg: &FileConfig) -> FileReader {
        FileReader {
            platform: cfg
                .platform
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        }
    }

    /// Starts a poll of one path or glob. Nothing is read until the first
    /// page is asked for.
    pub fn start_poll(&self, location: &LocationId, state: PollState) -> FilePoll {
        let previous = match state.cursor.as_deref() {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| {
                // A cursor we cannot read costs a full re-read, which the
                // ledger absorbs; refusing to poll would cost more.
                tracing::warn!(location = %location, "file poll cursor unreadable; reading every file again");
                BTreeMap::new()
            }),
        };
        FilePoll {
            pattern: location.as_str().to_owned(),
            platform: self.platform.clone(),
            previous,
            current: BTreeMap::new(),
            queue: None,
        }
    }
}

/// A poll of one location (path or glob).
pub struct FilePoll {
    pattern: String,
    platform: Option<String>,
    /// path → content hash as of the last complete poll.
    previous: BTreeMap<String, String>,
    /// path → content hash of every file matched so far in this poll; files
    /// that vanished are not in it, so they drop out of the cursor.
    current: BTreeMap<String, String>,
    /// Files still to read, expanded from the pattern on the first call.
    queue: Option<VecDeque<PathBuf>>,
}

impl FilePoll {
    /// The next changed file's rows, or `None` when every matched file is
    /// read up to date.
    pub fn next_page(&mut self) -> Result<Option<FetchedPage>, PlatformError> {
        if self.queue.is_none() {
            self.queue = Some(expand(&self.pattern)?.into());
        }
        while let Some(path) = self.queue.as_mut().and_then(VecDeque::pop_front) {
            let key = path.to_string_lossy().into_owned();
            let content = std::fs::read(&path).map_err(|e| PlatformError::Io {
                path: key.clone(),
                reason: e.to_string(),
            })?;
            let hash = hex::encode(Sha256::digest(&content));
            let unchanged = self.previous.get(&key) == Some(&hash);
            self.current.insert(key.clone(), hash);
            if unchanged {
                continue;
            }
            let now = Utc::now();
            let rows = if is_csv(&path) {
                read_csv(&key, &content, self.platform.as_deref(), now)
            } else {
                read_jsonl(&key, &content, self.platform.as_deref(), now)
            }?;
            tracing::debug!(
                file = %key,
                reviews = rows.reviews.len(),
                rejected = rows.rejected.len(),
                "file read"
            );
            return Ok(Some(rows));
        }
        Ok(None)
    }

    /// Whether the poll is over: the next [`Self::next_page`] would
    /// answer `None` without a request (a pass bound is only hit when more
    /// pages remain).
    pub fn is_done(&self) -> bool {
        self.queue.as_ref().is_some_and(VecDeque::is_empty)
    }

    /// The cursor after a complete poll: the hash of every file matched now.
    pub fn finish(self) -> PollState {
        let cursor = (!self.current.is_empty())
            .then(|| serde_json::to_string(&self.current).ok())
            .flatten();
        PollState {
            high_water: None,
            cursor,
        }
    }
}

/// The files a location names, sorted.
fn expand(pattern: &str) -> Result<Vec<PathBuf>, PlatformError> {
    let matches = glob::glob(pattern).map_err(|e| PlatformError::Io {
        path: pattern.to_owned(),
        reason: format!("invalid glob pattern: {e}"),
    })?;
    let mut files = Vec::new();
    for entry in matches {
        let path = entry.map_err(|e| PlatformError::Io {
            path: e.path().to_string_lossy().into_owned(),
            reason: e.error().to_string(),
        })?;
        if path.is_file() && (is_csv(&path) || has_extension(&path, "jsonl")) {
            files.push(path);
        }
    }
    if files.is_empty() && !pattern.contains(['*', '?', '[']) && !Path::new(pattern).exists() {
        tracing::warn!(path = pattern, "file source path does not exist");
    }
    files.sort();
    Ok(files)
}

fn is_csv(path: &Path) -> bool {
    has_extension(path, "csv")
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn strip_bom(content: &[u8]) -> &[u8] {
    content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content)
}

/// One JSON object per line; blank lines skipped.
fn read_jsonl(
    path: &str,
    content: &[u8],
    platform: Option<&str>,
    now: DateTime<Utc>,
) -> Result<FetchedPage, PlatformError> {
    let mut page = FetchedPage::default();
    for (index, line) in strip_bom(content).split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reference = format!("{path}:{}", index + 1);
        let parsed = std::str::from_utf8(line)
            .map_err(|_| "row: not UTF-8".to_owned())
            .and_then(|text| {
                // serde_json's syntax errors name a column, never the content.
                serde_json::from_str::<Value>(text).map_err(|e| format!("row: not JSON ({e})"))
            })
            .and_then(|value| match value {
                Value::Object(map) => Ok(map),
                other => Err(format!("row: {} is not an object", kind(&other))),
            })
            .and_then(|row| map_row(&row, platform, now));
        match parsed {
            Ok(review) => page.reviews.push(review),
            Err(reason) => page.rejected.push(Rejected {
                reference,
                reason,
                raw: String::from_utf8_lossy(line).into_owned(),
            }),
        }
    }
    Ok(page)
}

/// A header row naming the columns, then one row per review. Quoted fields
/// may hold commas and newlines; a row's reference is the line it starts on.
fn read_csv(
    path: &str,
    content: &[u8],
    platform: Option<&str>,
    now: DateTime<Utc>,
) -> Result<FetchedPage, PlatformError> {
    let content = strip_bom(content);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        // Rows with a wrong field count are rejected one by one below rather
        // than failing the reader.
        .flexible(true)
        .from_reader(content);
    let unreadable = |e: csv::Error| PlatformError::Io {
        path: path.to_owned(),
        reason: format!("CSV: {e}"),
    };
    let mut page = FetchedPage::default();
    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(unreadable)? {
        return Ok(page);
    }
    let header: Vec<String> = record
        .iter()
        .map(|name| String::from_utf8_lossy(name).trim().to_owned())
        .collect();
    loop {
        let start = reader.position().clone();
        if !reader.read_byte_record(&mut record).map_err(unreadable)? {
            break;
        }
        let begin = record.position().unwrap_or(&start);
        let mut line = begin.line();
        let mut raw = slice(content, begin.byte(), reader.position().byte());
        // The reader's position can sit before the terminator (or blank
        // lines) ending the previous row: step over them, counting lines.
        while let Some((first, rest)) = raw.split_first()
            && (*first == b'\n' || *first == b'\r')
        {
            line += u64::from(*first == b'\n');
            raw = rest;
        }
        let raw = String::from_utf8_lossy(raw.strip_suffix(b"\n").unwrap_or(raw));
        let raw = raw.strip_suffix('\r').unwrap_or(&raw).to_owned();
        let parsed = csv_row(&header, &record).and_then(|row| map_row(&row, platform, now));
        match parsed {
            Ok(review) => page.reviews.push(review),
            Err(reason) => page.rejected.push(Rejected {
                reference: format!("{path}:{line}"),
                reason,
                raw,
            }),
        }
    }
    Ok(page)
}

fn slice(content: &[u8], begin: u64, end: u64) -> &[u8] {
    let begin = usize::try_from(begin)
        .unwrap_or(usize::MAX)
        .min(content.len());
    let end = usize::try_from(end)
        .unwrap_or(usize::MAX)
        .clamp(begin, content.len());
    &content[begin..end]
}

/// A CSV row as the same map a JSONL row gives: empty cells left out.
fn csv_row(header: &[String], record: &csv::ByteRecord) -> Result<Map<String, Value>, String> {
    if record.len() != header.len() {
        return Err(format!(
            "row: {} fields, the header has {}",
            record.len(),
            header.len()
        ));
    }
    let mut row = Map::new();
    for (name, cell) in header.iter().zip(record.iter()) {
        // The column's name is the file's, of any length: cut it, as the
        // whole row is stored beside the reason anyway.
        let cell = std::str::from_utf8(cell)
            .map_err(|_| format!("{}: not UTF-8", super::short_message(name, 64)))?;
        if !cell.trim().is_empty() {
            row.insert(name.clone(), Value::String(cell.to_owned()));
        }
    }
    Ok(row)
}

/// One row (from either format) to a review, or "<field>: <what is wrong>".
fn map_row(
    row: &Map<String, Value>,
    platform: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Review, String> {
    let review_id = match row.get("review_id") {
        None | Some(Value::Null) => return Err("review_id: missing".into()),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(other) => return Err(format!("review_id: {} is not a string", kind(other))),
    };
    check_review_id(&review_id).map_err(|e| format!("review_id: {e}"))?;
    let source = match text(row, "source")? {
        Some(source) => source,
        None => platform
            .map(str::to_owned)
            .ok_or("source: no source in the row and no `platform` in the source config")?,
    };
    if source.chars().any(char::is_control) {
        return Err("source: contains control characters".into());
    }
    let rating = match row.get("rating") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| u8::try_from(n).ok()) {
            Some(stars) => {
                Some(Rating::new(stars).ok_or_else(|| format!("rating: {n} is not within 1..5"))?)
            }
            None => return Err(format!("rating: {n} is not a whole number within 1..5")),
        },
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            let shown: String = s.trim().chars().take(20).collect();
            let stars = shown
                .parse::<u8>()
                .ok()
                .and_then(Rating::new)
                .ok_or_else(|| format!("rating: {shown:?} is not a whole number within 1..5"))?;
            Some(stars)
        }
        Some(other) => return Err(format!("rating: {} is not a number", kind(other))),
    };
    let is_anonymous = match row.get("is_anonymous") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        Some(other) => {
            let shown: String = other.to_string().chars().take(20).collect();
            return Err(format!("is_anonymous: {shown} is not true or false"));
        }
    };
    let created_at = datetime(row, "created_datetime", now)?.ok_or("created_datetime: missing")?;
    let updated_at = datetime(row, "updated_datetime", now)?;
    Ok(Review {
        platform: Platform::new(source),
        review_id: ReviewId::new(review_id),
        title: text(row, "title")?,
        comment: text(row, "comment")?,
        rating,
        display_name: text(row, "display_name")?,
        is_anonymous,
        created_at,
        updated_at,
        notes: Default::default(),
    })
}

/// A trimmed text field; blank is absent.
fn text(row: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| s.to_owned()))
        }
        Some(other) => Err(format!("{key}: {} is not a string", kind(other))),
    }
}

/// RFC 3339 (any offset), a naive date-time taken as UTC, or Unix seconds
/// (a JSON number or a string of digits); all to UTC, and believable at
/// `now` ([`timestamps::check_review_time`]).
fn datetime(
    row: &Map<String, Value>,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, String> {
    let parsed = match row.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => text_time(s.trim()),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(secs) => timestamps::from_unix_seconds(secs),
            None => timestamps::from_unix_seconds_f64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Some(other) => return Err(format!("{key}: {} is not a time", kind(other))),
    };
    let time = parsed.map_err(|e| format!("{key}: {e}"))?;
    timestamps::check_review_time(time, now).map_err(|e| format!("{key}: {e}"))?;
    Ok(Some(time))
}

fn text_time(s: &str) -> Result<DateTime<Utc>, TimestampError> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return timestamps::parse_unix_seconds(s);
    }
    match timestamps::parse_rfc3339(s) {
        Ok(t) => return Ok(t),
        // Well-formed but out of range: that is the reason to give.
        Err(e @ TimestampError::OutOfRange(_)) => return Err(e),
        Err(TimestampError::Format { .. }) => {}
    }
    timestamps::parse_naive_utc(s).map_err(|e| match e {
        TimestampError::Format { value, .. } => TimestampError::Format {
            value,
            expected: "an RFC 3339, naive UTC or Unix-seconds time",
        },
        range => range,
    })
}

/// Fuzzing entry point (`fuzz/`, and the kept inputs in
/// `tests/it/regressions/`): reads `bytes` as a `.jsonl` file, as a poll
/// does, at [`super::fuzzing::fuzz_now`], and checks every promise of the
/// mapping ([`super::fuzzing::check_page`]), including that every line
/// becomes a review or a rejection. Only a broken promise panics.
#[doc(hidden)]
pub fn fuzz_parse_jsonl(bytes: &[u8]) {
    let now = super::fuzzing::fuzz_now();
    let Ok(page) = read_jsonl("fuzz.jsonl", bytes, Some("fuzz"), now) else {
        panic!("a JSONL file is read row by row and never refused whole");
    };
    super::fuzzing::check_page(&page, Some(now));
    let rows = strip_bom(bytes)
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(
        page.reviews.len() + page.rejected.len(),
        rows,
        "every non-blank line is a review or a rejection"
    );
}

/// Fuzzing entry point for `.csv` files: as [`fuzz_parse_jsonl`]. A file
/// the CSV reader cannot read at all is an error for the poll, and fine here.
#[doc(hidden)]
pub fn fuzz_parse_csv(bytes: &[u8]) {
    let now = super::fuzzing::fuzz_now();
    if let Ok(page) = read_csv("fuzz.csv", bytes, Some("fuzz"), now) {
        super::fuzzing::check_page(&page, Some(now));
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
