//! The `file` source: reviews from `.jsonl` and `.csv` files, for platforms
//! without an API we support (exports, scrapes, a partner's drop folder).
//!
//! A location `id` is a path or a glob (`/data/reviews/*.jsonl`); a relative
//! one starts at the config file's folder, like every relative path in the
//! config (the `id` as written stays the location's identity in the ledger).
//! Matched files ending `.jsonl` or `.csv` are read in sorted order, a page
//! of at most [`ROWS_PER_PAGE`] rows at a time. Each file is read once per
//! content version: the poll cursor maps each path to the SHA-256 of the
//! content last read, so an unchanged file costs a hash and no rows, and an
//! edited file is read whole again (the ledger drops the unchanged rows as
//! repeats).
//!
//! Rows (a JSON object per line, or a CSV row under a header row naming the
//! columns): `review_id` and `created_datetime` required; `source`, `title`,
//! `comment`, `rating`, `display_name`, `is_anonymous`, `updated_datetime`
//! optional; other keys ignored. A row that cannot become a review is
//! rejected with `<path>:<line>` and the raw line; the rest of the file goes on.
//!
//! Bounds (see `rows.rs`): a row (line or record) longer than
//! [`MAX_ROW_BYTES`] is quarantined with its line and byte offset, without
//! being read into memory, and the rows around it are read; a file larger
//! than [`MAX_FILE_BYTES`] is not read at all.
//!
//! **Invariant:** nothing a location matches is skipped in silence. A match
//! that cannot be read (not a regular file: a FIFO, a device, a directory;
//! another extension than `.jsonl`/`.csv`; a name that is not UTF-8; a file
//! the daemon may not open; one over the size cap) is named with its path
//! and reason, and fails the location's poll once every readable file has
//! been read, so the good files' reviews still go out and the failure shows
//! in the poll log, the metrics, `sync`'s exit status and `check --online`.
//!
//! There is no external reference for these files; this module assumes:
//! - files are UTF-8 (a leading byte-order mark is skipped);
//! - an empty CSV cell, a JSON `null` and an empty or blank string all mean
//!   "absent";
//! - a path without glob characters that does not exist, and a glob that
//!   matches nothing, are a quiet, empty poll (files come and go in drop
//!   folders), with a warning in the log for the path.
//!
//! Times before 2000 or more than a day ahead are rejected
//! ([`timestamps::check_review_time`]); text (HTML, control characters) is
//! delivered as written, ids with control characters are rejected, as for
//! Google (see `google::wire`).

mod rows;
mod settings;

pub use settings::FileConfig;
pub(crate) use settings::PLATFORM;

use super::records::{check_review_id, json_kind};
use super::{FetchedPage, PageStream, Paging, PagingStyle, PlatformError, SourceClient};
use crate::domain::{LocationId, Platform, Rating, Rejected, Review, ReviewId};
use crate::local_file::{self, LocalFileError};
use crate::timestamps::{self, TimestampError};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use rows::{Body, Lines, RawRow, Records};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read, Seek, Take};
use std::path::{Path, PathBuf};

pub use rows::MAX_ROW_BYTES;

/// The largest file read. Rows are read a page at a time, so memory does
/// not grow with a file; the cap bounds the time of a poll (every matched
/// file is hashed on every poll) and catches a wrong file a glob matched (a
/// log, a disk image). A bigger export is to be split.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;

/// Rows per page: each page is recorded in one ledger transaction, and a
/// page's reviews are what the poll holds in memory at once.
pub const ROWS_PER_PAGE: usize = 1000;

/// Problem files named in one poll error; the rest are counted.
const PROBLEMS_SHOWN: usize = 10;

/// The reader of one `file` source.
pub struct FileReader {
    /// `platform`: the `review.source` of rows without a `source`.
    platform: Option<String>,
    /// Where relative location ids start: the config file's folder.
    base_dir: PathBuf,
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
            base_dir: cfg.base_dir.clone(),
        }
    }

    /// Starts a poll of one path or glob from the content fingerprints of
    /// the last complete one (`position`). Nothing is read until the first
    /// page is asked for.
    fn start_poll(&self, location: &LocationId, position: Option<&str>) -> FilePoll {
        let previous = match position {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| {
                // A cursor we cannot read costs a full re-read, which the
                // ledger absorbs; refusing to poll would cost more.
                tracing::warn!(location = %location, "file poll cursor unreadable; reading every file again");
                BTreeMap::new()
            }),
        };
        FilePoll {
            pattern: self.resolve(location),
            literal: self.literal(location),
            platform: self.platform.clone(),
            previous,
            current: BTreeMap::new(),
            queue: None,
            reading: None,
            problems: Vec::new(),
        }
    }

    /// The path or glob a location names, from the config's folder when
    /// relative. The folder is escaped: its own `[` or `*` are not patterns.
    fn resolve(&self, location: &LocationId) -> String {
        let id = location.as_str();
        if Path::new(id).is_absolute() {
            return id.to_owned();
        }
        let base = glob::Pattern::escape(&self.base_dir.to_string_lossy());
        format!("{}/{id}", base.trim_end_matches('/'))
    }

    /// The path a location names when it is a plain path (no glob).
    fn literal(&self, location: &LocationId) -> Option<PathBuf> {
        is_literal(location.as_str()).then(|| self.base_dir.join(location.as_str()))
    }

    /// What a location matches now, without reading any file (`check`):
    /// the files a poll would read, and every match it could not.
    pub fn inspect(&self, location: &LocationId) -> Inspection {
        let pattern = self.resolve(location);
        let mut inspection = Inspection {
            files: Vec::new(),
            problems: Vec::new(),
            missing: None,
        };
        let literal = self.literal(location);
        let expansion = match expand(&pattern, literal.as_deref()) {
            Ok(expansion) => expansion,
            Err(e) => {
                inspection.problems.push(e.to_string());
                return inspection;
            }
        };
        inspection.problems = expansion.problems;
        for path in expansion.files {
            match local_file::open_regular(&path) {
                Ok((_, size)) if size > MAX_FILE_BYTES => {
                    inspection
                        .problems
                        .push(file_problem(&path, &too_large(size)));
                }
                Ok(_) => inspection.files.push(path),
                Err(e) => inspection.problems.push(file_problem(&path, &e)),
            }
        }
        if let Some(path) = literal
            && inspection.files.is_empty()
            && !path.exists()
        {
            inspection.missing = Some(path.display().to_string());
        }
        inspection
    }

    /// `check --online`: reads every file of a location as a first poll
    /// would, and says what it found, or names every match it could not read.
    pub fn check_location(&self, location: &LocationId) -> Result<String, Vec<String>> {
        let mut poll = self.start_poll(location, None);
        let (mut reviews, mut rejected) = (0, 0);
        loop {
            match poll.next_page() {
                Ok(Some(page)) => {
                    reviews += page.reviews.len();
                    rejected += page.rejected.len();
                }
                Ok(None) => break,
                Err(e) if poll.problems.is_empty() => return Err(vec![e.to_string()]),
                Err(_) => return Err(poll.problems),
            }
        }
        let mut line = format!("ok: {} file(s), {reviews} review(s)", poll.current.len());
        if rejected > 0 {
            line.push_str(&format!(", {rejected} row(s) that would be quarantined"));
        }
        Ok(line)
    }
}

impl SourceClient for FileReader {
    /// Files are read on by themselves: the position is the content
    /// fingerprint of every file read, so an unchanged file costs a hash.
    fn paging(&self) -> Paging {
        Paging {
            style: PagingStyle::Stream,
            overlap: None,
            max_pages: u32::MAX,
        }
    }

    fn stream<'a>(
        &'a self,
        location: &LocationId,
        position: Option<&str>,
    ) -> Box<dyn PageStream + 'a> {
        Box::new(self.start_poll(location, position))
    }

    fn check_whole(&self, location: &LocationId) -> Option<Result<String, Vec<String>>> {
        Some(self.check_location(location))
    }
}

/// What a location matches now ([`FileReader::inspect`]).
#[derive(Debug)]
pub struct Inspection {
    /// The files a poll would read, sorted.
    pub files: Vec<PathBuf>,
    /// Each match that cannot be read, as `path: reason`.
    pub problems: Vec<String>,
    /// The path, when the location is a path (no glob) that does not exist.
    pub missing: Option<String>,
}

impl Inspection {
    /// `2 file(s): a, b` (at most three named), for `check`.
    pub fn summary(&self) -> String {
        if let Some(path) = &self.missing {
            return format!("0 file(s): {path} does not exist");
        }
        let mut names: Vec<String> = self
            .files
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect();
        if self.files.len() > 3 {
            names.push(format!("and {} more", self.files.len() - 3));
        }
        match names.is_empty() {
            true => "0 file(s)".to_owned(),
            false => format!("{} file(s): {}", self.files.len(), names.join(", ")),
        }
    }
}

/// A poll of one location (path or glob).
struct FilePoll {
    /// The path or glob, resolved against the config's folder.
    pattern: String,
    /// The path, when the location is not a glob.
    literal: Option<PathBuf>,
    platform: Option<String>,
    /// path → content hash as of the last complete poll.
    previous: BTreeMap<String, String>,
    /// path → content hash of every file matched so far in this poll; files
    /// that vanished are not in it, so they drop out of the cursor.
    current: BTreeMap<String, String>,
    /// Files still to read, expanded from the pattern on the first call.
    queue: Option<VecDeque<PathBuf>>,
    /// The file being read, a page at a time.
    reading: Option<OpenFile>,
    /// Matches that could not be read, as `path: reason`: the poll fails
    /// with them once every other file has been read.
    problems: Vec<String>,
}

impl FilePoll {
    /// The next page of rows of a changed file, or `None` when every matched
    /// file is read up to date. Matches that cannot be read are an error
    /// after the last page.
    fn next_page(&mut self) -> Result<Option<FetchedPage>, PlatformError> {
        if self.queue.is_none() {
            let expansion = expand(&self.pattern, self.literal.as_deref())?;
            self.problems.extend(expansion.problems);
            self.queue = Some(expansion.files.into());
        }
        loop {
            if let Some(open) = &mut self.reading {
                match open.page(self.platform.as_deref()) {
                    Ok(Some(page)) => return Ok(Some(page)),
                    Ok(None) => self.reading = None,
                    Err(problem) => {
                        // Not read to the end: not up to date in the cursor.
                        self.current.remove(&open.key);
                        self.problems.push(problem);
                        self.reading = None;
                    }
                }
                continue;
            }
            let Some(path) = self.queue.as_mut().and_then(VecDeque::pop_front) else {
                break;
            };
            match self.open(&path) {
                Ok(open) => self.reading = open,
                Err(problem) => self.problems.push(problem),
            }
        }
        if self.problems.is_empty() {
            return Ok(None);
        }
        let count = self.problems.len();
        let mut shown: Vec<&str> = self
            .problems
            .iter()
            .take(PROBLEMS_SHOWN)
            .map(String::as_str)
            .collect();
        let more = (count > PROBLEMS_SHOWN).then(|| format!("and {} more", count - PROBLEMS_SHOWN));
        shown.extend(more.as_deref());
        Err(PlatformError::Io {
            path: self.pattern.clone(),
            reason: format!(
                "{count} matched file(s) cannot be read: {}",
                shown.join("; ")
            ),
        })
    }

    /// Opens a matched file when its content changed since the last poll:
    /// `None` when it is unchanged or vanished since the glob listed it.
    fn open(&mut self, path: &Path) -> Result<Option<OpenFile>, String> {
        let key = path.to_string_lossy().into_owned();
        let (mut file, size) = match local_file::open_regular(path) {
            Ok(opened) => opened,
            // Gone between the listing and now: drop folders change.
            Err(LocalFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(file_problem(path, &e)),
        };
        if size > MAX_FILE_BYTES {
            return Err(file_problem(path, &too_large(size)));
        }
        let hash = hash_file(&mut file).map_err(|e| file_problem(path, &e))?;
        let unchanged = self.previous.get(&key) == Some(&hash);
        self.current.insert(key.clone(), hash);
        if unchanged {
            return Ok(None);
        }
        file.rewind()
            .map_err(|e| file_problem(path, &LocalFileError::Io(e)))?;
        let reader = BufReader::with_capacity(64 * 1024, file.take(MAX_FILE_BYTES));
        let cannot = |e| format!("{}: cannot read: {e}", key);
        let rows = if is_csv(path) {
            let mut records = Records::new(reader).map_err(cannot)?;
            let header = match records.next_row().map_err(cannot)? {
                None => Vec::new(),
                Some(RawRow {
                    body: Body::Record { fields, .. },
                    ..
                }) => fields
                    .iter()
                    .map(|name| String::from_utf8_lossy(name).trim().to_owned())
                    .collect(),
                Some(RawRow { line, .. }) => {
                    return Err(format!(
                        "{key}: the header row (line {line}) is longer than the {MAX_ROW_BYTES}-byte cap of one row"
                    ));
                }
            };
            RowReader::Csv {
                records: Box::new(records),
                header,
            }
        } else {
            RowReader::Jsonl(Lines::new(reader).map_err(cannot)?)
        };
        Ok(Some(OpenFile {
            key,
            rows,
            pages: 0,
        }))
    }
}

impl PageStream for FilePoll {
    fn next_page(&mut self) -> BoxFuture<'_, Result<Option<FetchedPage>, PlatformError>> {
        Box::pin(std::future::ready(FilePoll::next_page(self)))
    }

    /// Whether the poll is over: the next page would be `None` without
    /// reading (a pass bound is only hit when more pages remain).
    fn is_done(&self) -> bool {
        self.queue.as_ref().is_some_and(VecDeque::is_empty)
    }

    /// The position after a complete poll: the hash of every file matched now.
    fn position(self: Box<Self>) -> Option<String> {
        (!self.current.is_empty())
            .then(|| serde_json::to_string(&self.current).ok())
            .flatten()
    }
}

/// What reads a file's rows.
enum RowReader {
    Jsonl(Lines<BufReader<Take<File>>>),
    Csv {
        /// Boxed: the parser's state tables are half a kilobyte.
        records: Box<Records<BufReader<Take<File>>>>,
        /// The column names.
        header: Vec<String>,
    },
}

/// A changed file being read.
struct OpenFile {
    /// Its path, as the cursor and references write it.
    key: String,
    rows: RowReader,
    /// Pages given so far: a changed file gives at least one, even empty.
    pages: u32,
}

impl OpenFile {
    /// Up to [`ROWS_PER_PAGE`] rows as reviews and rejections; `None` when
    /// the file is read to its end. `Err` names the file when it cannot be
    /// read any further.
    fn page(&mut self, platform: Option<&str>) -> Result<Option<FetchedPage>, String> {
        let now = Utc::now();
        let mut page = FetchedPage::default();
        let mut rows = 0;
        while rows < ROWS_PER_PAGE {
            let row = match &mut self.rows {
                RowReader::Jsonl(lines) => lines.next_row(),
                RowReader::Csv { records, .. } => records.next_row(),
            }
            .map_err(|e| format!("{}: cannot read: {e}", self.key))?;
            let Some(row) = row else { break };
            rows += 1;
            let header = match &self.rows {
                RowReader::Csv { header, .. } => Some(header.as_slice()),
                RowReader::Jsonl(_) => None,
            };
            match map_raw(&self.key, header, row, platform, now) {
                Ok(review) => page.reviews.push(review),
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        if rows == 0 && self.pages > 0 {
            return Ok(None);
        }
        self.pages += 1;
        tracing::debug!(
            file = %self.key,
            reviews = page.reviews.len(),
            rejected = page.rejected.len(),
            "file page read"
        );
        Ok(Some(page))
    }
}

/// A row of either format to a review, or its rejection with
/// `path:line` and the raw row.
fn map_raw(
    path: &str,
    header: Option<&[String]>,
    row: RawRow,
    platform: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Review, Rejected> {
    let reference = format!("{path}:{}", row.line);
    let (parsed, raw) = match row.body {
        Body::Line(line) => (jsonl_row(&line, platform, now), line),
        Body::Record { fields, raw } => {
            let header = header.unwrap_or_default();
            let parsed = csv_row(header, &fields).and_then(|row| map_row(&row, platform, now));
            (parsed, raw)
        }
        Body::Oversized { len, start } => {
            let reason = format!(
                "row: {len} bytes, over the {MAX_ROW_BYTES}-byte cap of one row (line {} at byte offset {}): quarantined without being read",
                row.line, row.offset
            );
            let unread = len.saturating_sub(start.len() as u64);
            let raw = format!(
                "{}... [{unread} more bytes not read]",
                String::from_utf8_lossy(&start)
            );
            return Err(Rejected {
                reference,
                reason,
                raw,
            });
        }
    };
    parsed.map_err(|reason| Rejected {
        reference,
        reason,
        raw: String::from_utf8_lossy(&raw).into_owned(),
    })
}

/// One JSONL line to a review, or why not.
fn jsonl_row(line: &[u8], platform: Option<&str>, now: DateTime<Utc>) -> Result<Review, String> {
    std::str::from_utf8(line)
        .map_err(|_| "row: not UTF-8".to_owned())
        .and_then(|text| {
            // serde_json's syntax errors name a column, never the content.
            serde_json::from_str::<Value>(text).map_err(|e| format!("row: not JSON ({e})"))
        })
        .and_then(|value| match value {
            Value::Object(map) => Ok(map),
            other => Err(format!("row: {} is not an object", json_kind(&other))),
        })
        .and_then(|row| map_row(&row, platform, now))
}

/// The SHA-256 of a file's content, read to at most [`MAX_FILE_BYTES`].
fn hash_file(file: &mut File) -> Result<String, LocalFileError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_FILE_BYTES {
            return Err(too_large(total));
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn too_large(size: u64) -> LocalFileError {
    LocalFileError::TooLarge {
        size,
        max: MAX_FILE_BYTES,
        what: " of one file",
    }
}

/// `path: reason` for a match that cannot be read.
fn file_problem(path: &Path, error: &LocalFileError) -> String {
    match error {
        LocalFileError::Io(e) => format!("{}: cannot open: {e}", shown(path)),
        other => format!("{}: {other}", shown(path)),
    }
}

/// A path for a message: as text, or with its non-UTF-8 bytes escaped.
fn shown(path: &Path) -> String {
    match path.to_str() {
        Some(text) => text.to_owned(),
        None => {
            let debug = format!("{:?}", path.as_os_str());
            debug.trim_matches('"').to_owned()
        }
    }
}

/// What a pattern matches: the files to read, and the matches that cannot be.
struct Expansion {
    files: Vec<PathBuf>,
    problems: Vec<String>,
}

/// The matches of a location's path or glob: regular `.jsonl`/`.csv` files
/// to read, sorted, and a problem for every other match. `literal` is the
/// path when the location is not a glob.
fn expand(pattern: &str, literal: Option<&Path>) -> Result<Expansion, PlatformError> {
    let matches = glob::glob(pattern).map_err(|e| PlatformError::Io {
        path: pattern.to_owned(),
        reason: format!("invalid glob pattern: {e}"),
    })?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for entry in matches {
        let path = match entry {
            Ok(path) => path,
            // A folder on the way that cannot be listed.
            Err(e) => {
                problems.push(format!("{}: cannot list: {}", shown(e.path()), e.error()));
                continue;
            }
        };
        let metadata = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::fs::symlink_metadata(&path).is_ok() {
                    problems.push(format!("{}: a symbolic link to nothing", shown(&path)));
                }
                // Else gone since the listing.
                continue;
            }
            Err(e) => {
                problems.push(format!("{}: cannot open: {e}", shown(&path)));
                continue;
            }
        };
        if !metadata.is_file() {
            let kind = local_file::kind_of(&metadata.file_type());
            problems.push(format!("{}: {kind}, not a regular file", shown(&path)));
        } else if !(is_csv(&path) || has_extension(&path, "jsonl")) {
            problems.push(format!(
                "{}: not a .jsonl or .csv file (narrow the glob to the files to read)",
                shown(&path)
            ));
        } else {
            files.push(path);
        }
    }
    for path in non_utf8_matches(pattern) {
        problems.push(format!(
            "{}: the file name is not valid UTF-8: rename it",
            shown(&path)
        ));
    }
    if let Some(path) = literal
        && files.is_empty()
        && problems.is_empty()
        && !path.exists()
    {
        tracing::warn!(path = %path.display(), "file source path does not exist");
    }
    files.sort();
    Ok(Expansion { files, problems })
}

/// Whether a pattern is a plain path (no glob characters).
fn is_literal(pattern: &str) -> bool {
    !pattern.contains(['*', '?', '['])
}

/// Files the glob would match but for a name that is not UTF-8: the glob
/// crate skips such names without a word. Only the last component is
/// checked (the folders above it are what the glob lists).
fn non_utf8_matches(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
    else {
        return Vec::new();
    };
    let Ok(name) = glob::Pattern::new(name) else {
        return Vec::new();
    };
    let parent = match parent.to_str() {
        Some("") => ".",
        Some(parent) => parent,
        None => return Vec::new(),
    };
    let folders: Vec<PathBuf> = if is_literal(parent) {
        vec![PathBuf::from(parent)]
    } else {
        glob::glob(parent)
            .map(|paths| {
                paths
                    .filter_map(Result::ok)
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found = Vec::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let file_name = entry.file_name();
            if file_name.to_str().is_none() && name.matches(&file_name.to_string_lossy()) {
                found.push(folder.join(file_name));
            }
        }
    }
    found.sort();
    found
}

fn is_csv(path: &Path) -> bool {
    has_extension(path, "csv")
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Every row of a whole JSONL text (tests and fuzzing; polls read pages).
fn read_jsonl(
    path: &str,
    content: &[u8],
    platform: Option<&str>,
    now: DateTime<Utc>,
) -> FetchedPage {
    let mut lines = match Lines::new(content) {
        Ok(lines) => lines,
        Err(_) => return FetchedPage::default(),
    };
    let mut page = FetchedPage::default();
    while let Ok(Some(row)) = lines.next_row() {
        match map_raw(path, None, row, platform, now) {
            Ok(review) => page.reviews.push(review),
            Err(rejected) => page.rejected.push(rejected),
        }
    }
    page
}

/// Every row of a whole CSV text, under its header row (tests and fuzzing).
fn read_csv(path: &str, content: &[u8], platform: Option<&str>, now: DateTime<Utc>) -> FetchedPage {
    let mut page = FetchedPage::default();
    let Ok(mut records) = Records::new(content) else {
        return page;
    };
    let header: Vec<String> = match records.next_row() {
        Ok(Some(RawRow {
            body: Body::Record { fields, .. },
            ..
        })) => fields
            .iter()
            .map(|name| String::from_utf8_lossy(name).trim().to_owned())
            .collect(),
        _ => return page,
    };
    while let Ok(Some(row)) = records.next_row() {
        match map_raw(path, Some(&header), row, platform, now) {
            Ok(review) => page.reviews.push(review),
            Err(rejected) => page.rejected.push(rejected),
        }
    }
    page
}

/// A CSV row as the same map a JSONL row gives: empty cells left out.
fn csv_row(header: &[String], fields: &[Vec<u8>]) -> Result<Map<String, Value>, String> {
    if fields.len() != header.len() {
        return Err(format!(
            "row: {} fields, the header has {}",
            fields.len(),
            header.len()
        ));
    }
    let mut row = Map::new();
    for (name, cell) in header.iter().zip(fields) {
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
        Some(other) => return Err(format!("review_id: {} is not a string", json_kind(other))),
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
        Some(other) => return Err(format!("rating: {} is not a number", json_kind(other))),
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
        Some(other) => Err(format!("{key}: {} is not a string", json_kind(other))),
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
        Some(other) => return Err(format!("{key}: {} is not a time", json_kind(other))),
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
    let page = read_jsonl("fuzz.jsonl", bytes, Some("fuzz"), now);
    super::fuzzing::check_page(&page, Some(now));
    let content = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let rows = content
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(
        page.reviews.len() + page.rejected.len(),
        rows,
        "every non-blank line is a review or a rejection"
    );
}

/// Fuzzing entry point for `.csv` files: as [`fuzz_parse_jsonl`].
#[doc(hidden)]
pub fn fuzz_parse_csv(bytes: &[u8]) {
    let now = super::fuzzing::fuzz_now();
    let page = read_csv("fuzz.csv", bytes, Some("fuzz"), now);
    super::fuzzing::check_page(&page, Some(now));
}

#[cfg(test)]
mod tests;
