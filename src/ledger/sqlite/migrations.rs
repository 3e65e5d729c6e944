//! Opening the file and migrating its schema forward (append-only list of
//! migrations under `PRAGMA user_version`).
//!
//! **Invariant:** [`MIGRATIONS`] is append-only. Migration `i` (0-based) takes
//! a file from `user_version = i` to `i + 1`; a released entry is never edited,
//! because files in the field already ran it. Each one runs in its own
//! transaction together with the `user_version` bump, so a crash leaves the
//! file at a whole version.

use super::super::LedgerError;
use super::identity::FileIdentity;
use super::{Sqlite, sql_err};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for another connection's write lock (e.g. the
/// daemon and a `ledger retry` in another process) before failing with
/// SQLITE_BUSY. Our write transactions are short (one page, one batch), so 5 s
/// is only ever reached when something is stuck.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection (see [`configure`]).
const STATEMENT_CACHE: usize = 64;

/// The schema, one entry per version. Append only.
pub(in crate::ledger) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema (SPEC section 6). Columns up to `removed_at` are
    // the auditors' contract; the rest of `reviews` is the outbox's own state.
    r"
CREATE TABLE reviews (
    platform            TEXT NOT NULL,
    review_id           TEXT NOT NULL,
    source_name         TEXT NOT NULL,
    location_id         TEXT NOT NULL,
    group_id            TEXT,
    group_external_ref  TEXT,
    status              TEXT NOT NULL
                        CHECK (status IN ('pending','delivered','held','rejected')),
    payload             TEXT NOT NULL,
    content_hash        TEXT NOT NULL,
    first_seen_at       TEXT NOT NULL,
    source_updated_at   TEXT,
    delivered_at        TEXT,
    request_id          TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    removed_at          TEXT,
    last_seen_at        TEXT NOT NULL,
    next_attempt_at     TEXT,
    retry_count         INTEGER NOT NULL DEFAULT 0,
    versions            INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (platform, review_id),
    -- The API refuses a body with both keys; so does the ledger.
    CHECK (group_id IS NULL OR group_external_ref IS NULL)
);
-- The claim query and next_due_at: only pending rows are ever due.
CREATE INDEX reviews_due ON reviews (next_attempt_at) WHERE status = 'pending';
-- Per-location counts (gap reports, reconciliation).
CREATE INDEX reviews_location ON reviews (source_name, location_id);
-- `ledger list/export` stream in this order without sorting the whole table.
CREATE INDEX reviews_first_seen ON reviews (first_seen_at, platform, review_id);

CREATE TABLE attempts (
    id             INTEGER PRIMARY KEY,
    platform       TEXT NOT NULL,
    review_id      TEXT NOT NULL,
    content_hash   TEXT NOT NULL,
    attempted_at   TEXT NOT NULL,
    http_status    INTEGER,
    error_type     TEXT,
    error_message  TEXT,
    request_id     TEXT,
    duration_ms    INTEGER NOT NULL,
    outcome        TEXT NOT NULL
                   CHECK (outcome IN ('delivered','retry','held','rejected'))
);
CREATE INDEX attempts_review ON attempts (platform, review_id);

CREATE TABLE quarantine (
    id             INTEGER PRIMARY KEY,
    source_name    TEXT NOT NULL,
    location_id    TEXT NOT NULL,
    platform       TEXT NOT NULL,
    reference      TEXT NOT NULL,
    reason         TEXT NOT NULL,
    raw            TEXT NOT NULL,
    raw_hash       TEXT NOT NULL,
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    seen_count     INTEGER NOT NULL DEFAULT 1,
    UNIQUE (source_name, location_id, raw_hash)
);

CREATE TABLE poll_state (
    source_name  TEXT NOT NULL,
    location_id  TEXT NOT NULL,
    high_water   TEXT,
    cursor       TEXT,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (source_name, location_id)
);

CREATE TABLE polls (
    id              INTEGER PRIMARY KEY,
    source_name     TEXT NOT NULL,
    location_id     TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    ended_at        TEXT NOT NULL,
    pages           INTEGER NOT NULL,
    requests        INTEGER NOT NULL,
    fetched         INTEGER NOT NULL,
    new             INTEGER NOT NULL,
    edited          INTEGER NOT NULL,
    unchanged       INTEGER NOT NULL,
    quarantined     INTEGER NOT NULL,
    reported_total  INTEGER,
    gap             INTEGER,
    error           TEXT
);
CREATE INDEX polls_location ON polls (source_name, location_id, started_at);
",
    // 2: platform facts that are not sent but that auditors need, as a JSON
    // object (e.g. {"excerpt":"true"} for Yelp's truncated texts,
    // {"recommendation_type":"positive"} for Facebook). NULL when none.
    r"
ALTER TABLE reviews ADD COLUMN notes TEXT;
",
    // 3: reconciliation passes in the poll log: which kind of pass a row is,
    // and how many reviews it found vanished from the platform.
    r"
ALTER TABLE polls ADD COLUMN kind TEXT NOT NULL DEFAULT 'incremental'
    CHECK (kind IN ('incremental','reconcile'));
ALTER TABLE polls ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
",
    // 4: retention and audit. `purges` records every removal of review text
    // (`[ledger] retain_text_days` in the daemon, `ledger purge` by hand).
    // The views answer auditors' common questions; README "Auditing"
    // documents them, and a test runs the README's queries.
    r"
-- When retention removed the review's text (NULL: never, or edited since).
ALTER TABLE reviews ADD COLUMN text_purged_at TEXT;

CREATE TABLE purges (
    id           INTEGER PRIMARY KEY,
    purged_at    TEXT NOT NULL,
    cutoff       TEXT NOT NULL,
    rows_purged  INTEGER NOT NULL,
    purged_by    TEXT NOT NULL CHECK (purged_by IN ('daemon','cli'))
);

-- Reviews waiting for delivery, oldest first, with their age in seconds.
CREATE VIEW pending_by_age AS
SELECT platform, review_id, source_name, location_id, group_external_ref, group_id,
       first_seen_at,
       CAST((julianday('now') - julianday(first_seen_at)) * 86400 AS INTEGER) AS age_seconds,
       attempts, next_attempt_at, last_error
FROM reviews
WHERE status = 'pending'
ORDER BY first_seen_at;

-- Held reviews by reason (the error type before the first ':' of
-- last_error), source and group.
CREATE VIEW held_by_reason AS
SELECT CASE WHEN instr(last_error, ':') > 0
            THEN substr(last_error, 1, instr(last_error, ':') - 1)
            ELSE coalesce(last_error, '') END AS reason,
       source_name, group_external_ref, group_id,
       COUNT(*) AS reviews,
       MIN(first_seen_at) AS oldest_first_seen_at
FROM reviews
WHERE status = 'held'
GROUP BY 1, 2, 3, 4;

-- Successful deliveries per UTC day and group (every delivered version
-- counts; the group is the review's current one).
CREATE VIEW deliveries_by_day_and_group AS
SELECT substr(a.attempted_at, 1, 10) AS day,
       r.group_external_ref, r.group_id,
       COUNT(*) AS deliveries,
       COUNT(DISTINCT a.platform || ':' || a.review_id) AS reviews
FROM attempts a
JOIN reviews r ON r.platform = a.platform AND r.review_id = a.review_id
WHERE a.outcome = 'delivered'
GROUP BY 1, 2, 3;
",
    // 5: the audit trail says where each attempt went and exactly what it
    // carried, so fixing a mapping cannot rewrite history: the group the
    // body named and the SHA-256 of the body's bytes (`content_hash` already
    // names the review's version). Attempts recorded before this version
    // keep NULL there: unknown, never guessed from the review's current
    // group. The deliveries view (SPEC's name) now counts each delivery
    // under the group it was sent to. `requeues` records every review put
    // back to pending by hand (`ledger retry`, `ledger resend`). The poll
    // log's retention deletes by `started_at`.
    r"
ALTER TABLE attempts ADD COLUMN group_id TEXT;
ALTER TABLE attempts ADD COLUMN group_external_ref TEXT;
ALTER TABLE attempts ADD COLUMN body_hash TEXT;

DROP VIEW deliveries_by_day_and_group;
-- Successful deliveries per UTC day and the group each was sent to (every
-- delivered version counts). Attempts recorded before schema version 5 have
-- no recorded group: they are counted under NULL, NULL.
CREATE VIEW deliveries_per_day_group AS
SELECT substr(attempted_at, 1, 10) AS day,
       group_external_ref, group_id,
       COUNT(*) AS deliveries,
       COUNT(DISTINCT platform || ':' || review_id) AS reviews
FROM attempts
WHERE outcome = 'delivered'
GROUP BY 1, 2, 3;

CREATE TABLE requeues (
    id                  INTEGER PRIMARY KEY,
    platform            TEXT NOT NULL,
    review_id           TEXT NOT NULL,
    requeued_at         TEXT NOT NULL,
    command             TEXT NOT NULL CHECK (command IN ('retry','resend')),
    from_status         TEXT NOT NULL,
    content_hash        TEXT NOT NULL,
    group_id            TEXT,
    group_external_ref  TEXT
);
CREATE INDEX requeues_review ON requeues (platform, review_id);

CREATE INDEX polls_started ON polls (started_at);
",
    // 6: the metrics read the reviews that need a person (held, rejected) at
    // every scrape; this small partial index makes that a count of a few
    // index entries instead of a scan of every review (pending ones have
    // `reviews_due`).
    r"
CREATE INDEX reviews_attention ON reviews (status) WHERE status IN ('held','rejected');
",
    // 7: several daemons on one (PostgreSQL) ledger. `leases`: which daemon
    // runs a source's pass or a cluster-wide job (retention) until when, in
    // the server's time; `reviews.claimed_by`: the daemon whose claim set a
    // row's `next_attempt_at` (its lease), so a daemon's clock step
    // re-anchors only its own claims. Both exist on SQLite for the same
    // schema; a SQLite ledger has one daemon and leaves them empty.
    r"
CREATE TABLE leases (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
ALTER TABLE reviews ADD COLUMN claimed_by TEXT;
",
    // 8: how each review was first seen (issue 14): `first_seen_via` is
    // `push` when the read that first recorded it was started by a push
    // notification (a Pub/Sub message or a verified webhook), else `poll`
    // (every row before this version too); `push_hint_at` is when that
    // notification arrived. The view puts the latencies side by side for
    // auditors: platform time -> first seen, first seen -> delivered.
    r"
ALTER TABLE reviews ADD COLUMN first_seen_via TEXT NOT NULL DEFAULT 'poll'
    CHECK (first_seen_via IN ('push','poll'));
ALTER TABLE reviews ADD COLUMN push_hint_at TEXT;

CREATE VIEW first_seen_latency AS
SELECT platform, review_id, source_name, location_id, first_seen_via, push_hint_at,
       source_updated_at, first_seen_at, delivered_at,
       round((julianday(first_seen_at) - julianday(source_updated_at)) * 86400.0, 3)
           AS seen_after_seconds,
       round((julianday(delivered_at) - julianday(first_seen_at)) * 86400.0, 3)
           AS delivered_after_seconds
FROM reviews;
",
];

/// The schema version this build writes.
pub(in crate::ledger) fn latest_version() -> i64 {
    version_of(MIGRATIONS)
}

fn version_of(migrations: &[&str]) -> i64 {
    // A list of more than i64::MAX migrations cannot exist.
    i64::try_from(migrations.len()).unwrap_or(i64::MAX)
}

pub(super) fn open(path: &Path) -> Result<Sqlite, LedgerError> {
    open_with(path, MIGRATIONS)
}

/// [`open`] with a given migration list (tests run the runner on their own).
pub(in crate::ledger) fn open_with(
    path: &Path,
    migrations: &[&str],
) -> Result<Sqlite, LedgerError> {
    open_read_write(path, migrations).map_err(|e| on_read_only_mount(path, e, false))
}

fn open_read_write(path: &Path, migrations: &[&str]) -> Result<Sqlite, LedgerError> {
    require_directory(path)?;
    create_private_file(path)?;
    require_regular(path)?;
    // No SQLITE_OPEN_CREATE: the file exists now with our mode, and a
    // vanished file should be an error, not a fresh world-readable one.
    // No SQLITE_OPEN_URI: a path is a path, even one starting with `file:`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(sql_err(path))?;
    // SQLite silently opens a file it cannot write read-only (an immutable
    // file, a read-only mount, a mode that stops a non-root user). Every
    // write would then fail later with a vaguer error, after the platforms
    // were already asked for reviews: refuse to start instead, saying why.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(sql_err(path))? {
        return Err(io_err(
            path,
            "the file is read-only for this process (file mode, immutable \
             attribute or read-only mount); review-sync must be able to write it",
        ));
    }
    configure(&conn, path)?;
    migrate(&mut conn, path, migrations)?;
    let identity = file_identity(path)?;
    Ok(Sqlite {
        conn,
        path: path.to_path_buf(),
        identity,
    })
}

pub(super) fn open_readonly(path: &Path) -> Result<Sqlite, LedgerError> {
    read_only(path).map_err(|e| on_read_only_mount(path, e, true))
}

fn read_only(path: &Path) -> Result<Sqlite, LedgerError> {
    if !path.exists() {
        return Err(LedgerError::NotCreated {
            path: path.to_path_buf(),
            reason: "the ledger file does not exist".into(),
        });
    }
    require_regular(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_err(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err(path))?;
    let found = user_version(&conn, path)?;
    let latest = latest_version();
    known_version(path, found, latest)?;
    if found < latest {
        return Err(io_err(
            path,
            &format!(
                "schema version {found} is older than this review-sync's ({latest}); \
                 run a read-write command once (`review-sync run`, `sync` or `ledger retry`) \
                 to migrate it, then try again"
            ),
        ));
    }
    let identity = file_identity(path)?;
    Ok(Sqlite {
        conn,
        path: path.to_path_buf(),
        identity,
    })
}

/// Refuses a schema version this build cannot work with: newer than its
/// migrations, or negative (only a hand edit writes one; re-creating the
/// tables over it would be worse). Read-only and read-write opens share it,
/// so every command says the same.
fn known_version(path: &Path, found: i64, latest: i64) -> Result<(), LedgerError> {
    if (0..=latest).contains(&found) {
        return Ok(());
    }
    Err(LedgerError::UnknownVersion {
        path: path.to_path_buf(),
        found,
        supported: latest,
    })
}

/// `error` explained, when the ledger's filesystem is mounted read-only:
/// SQLite only says "unable to open database file" or "attempt to write a
/// readonly database". A WAL-mode ledger cannot even be read there unless
/// its `-shm` file already exists (SQLite must create it).
fn on_read_only_mount(path: &Path, error: LedgerError, reading: bool) -> LedgerError {
    let Some(mount) = crate::local_file::read_only_mount(path) else {
        return error;
    };
    let what = if reading {
        "SQLite cannot create the -shm file a WAL-mode ledger needs beside it, even to read it; \
         remount it read-write, or copy the ledger (and its -wal file) elsewhere and read the copy"
    } else {
        "review-sync must write the ledger and its -wal and -shm files; remount it read-write \
         or point [ledger] path at a writable directory"
    };
    io_err(
        path,
        &format!("{} is on a read-only filesystem: {what}", mount.display()),
    )
}

/// Refuses a ledger path that is not a regular file (a FIFO would block
/// SQLite's first read forever; a directory or a device is a wrong path).
fn require_regular(path: &Path) -> Result<(), LedgerError> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(io_err(
            path,
            &format!(
                "{}, not a ledger file",
                crate::local_file::kind_of(&m.file_type())
            ),
        )),
        _ => Ok(()),
    }
}

/// The identity of the files SQLite has open (after the first
/// transaction, so the `-wal` and `-shm` exist).
fn file_identity(path: &Path) -> Result<FileIdentity, LedgerError> {
    FileIdentity::open(path).map_err(|e| io_err(path, &format!("cannot stat the file: {e}")))
}

fn io_err(path: &Path, reason: &str) -> LedgerError {
    LedgerError::Io {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

/// Refuses a path whose directory does not exist (see [`Ledger::open`]).
fn require_directory(path: &Path) -> Result<(), LedgerError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        // A bare file name lives in the current directory, which exists.
        _ => return Ok(()),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io_err(
            path,
            &format!("{} is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(io_err(
            path,
            &format!(
                "directory {} does not exist (review-sync does not create it; \
                 systemd's StateDirectory= does, or create it by hand)",
                dir.display()
            ),
        )),
        Err(e) => Err(io_err(
            path,
            &format!("cannot access {}: {e}", dir.display()),
        )),
    }
}

/// Creates the file with mode 0600 if it is missing: reviews are personal
/// data, and SQLite would otherwise create it 0644 (minus umask). SQLite gives
/// the `-wal` and `-shm` files the database file's mode.
fn create_private_file(path: &Path) -> Result<(), LedgerError> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        // Existing ledger (or another process just created it): keep it as is.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(path, &format!("cannot create the ledger file: {e}"))),
    }
}

fn configure(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let err = sql_err(path);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    // journal_mode answers with the mode in effect; it can silently stay
    // `delete` (e.g. on a filesystem without shared memory), and then
    // auditors' readers would block the daemon, so check it.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(io_err(
            path,
            &format!("cannot switch to WAL mode (SQLite kept journal_mode={mode})"),
        ));
    }
    // NORMAL in WAL mode: a commit survives a process crash; only an OS crash
    // may lose the last commits, and the file stays consistent either way.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(&err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(&err)?;
    // This module prepares more distinct statements than rusqlite's default
    // cache of 16 holds; a stats call must not evict the hot page, claim and
    // attempt statements the daemon runs every few seconds.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64, LedgerError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err(path))
}

/// Applies `migrations[user_version..]` in order, one transaction each.
pub(in crate::ledger) fn migrate(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<(), LedgerError> {
    let err = sql_err(path);
    let latest = version_of(migrations);
    loop {
        // IMMEDIATE takes the write lock before reading the version, so two
        // processes starting together cannot both apply the same migration.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let found = user_version(&tx, path)?;
        known_version(path, found, latest)?;
        let Some(sql) = usize::try_from(found).ok().and_then(|i| migrations.get(i)) else {
            // Up to date; dropping `tx` ends the empty transaction.
            return Ok(());
        };
        tx.execute_batch(sql).map_err(&err)?;
        tx.pragma_update(None, "user_version", found + 1)
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        tracing::info!(ledger = %path.display(), version = found + 1, "ledger schema migrated");
    }
}
