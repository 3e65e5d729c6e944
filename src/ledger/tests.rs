//! Tests of the ledger against real SQLite files in a temporary directory,
//! checked the way auditors see them: through a plain second connection.

use super::migrations::{self, MIGRATIONS};
use super::*;
use crate::domain::GroupRef;
use chrono::{DateTime, Duration, Utc};
use rusqlite::Connection;
use std::os::unix::fs::PermissionsExt;
use tempfile::TempDir;

// ---------------------------------------------------------------- helpers

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const T0: &str = "2026-11-24T10:00:00Z";

fn t0() -> DateTime<Utc> {
    at(T0)
}

fn fresh() -> (TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    (dir, ledger)
}

/// A second, plain connection: what `sqlite3` would see.
fn raw(ledger: &Ledger) -> Connection {
    Connection::open(ledger.path()).unwrap()
}

fn ext(g: &str) -> Option<GroupRef> {
    Some(GroupRef::ExternalRef(g.to_owned()))
}

fn review(id: &str, hash: &str) -> IncomingReview {
    IncomingReview {
        platform: "google".into(),
        review_id: id.into(),
        payload: format!(
            r#"{{"group_external_ref":"g1","channel":"review","review":{{"source":"google","review_id":"{id}","comment":"{hash}"}}}}"#
        ),
        content_hash: hash.into(),
        source_updated_at: Some(at("2026-11-01T08:00:00Z")),
        notes: None,
    }
}

fn page_at(location: &str, group: Option<GroupRef>, reviews: Vec<IncomingReview>) -> PageRecord {
    PageRecord {
        source_name: "acme-google".into(),
        location_id: location.into(),
        hold_reason: group
            .is_none()
            .then(|| format!("location {location} is not mapped to a group")),
        group,
        reviews,
        quarantined: vec![],
    }
}

fn page(reviews: Vec<IncomingReview>) -> PageRecord {
    page_at("loc-1", ext("g1"), reviews)
}

fn attempt(id: &str, hash: &str, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        platform: "google".into(),
        review_id: id.into(),
        content_hash: hash.into(),
        attempted_at: t0() + Duration::seconds(5),
        http_status: None,
        error_type: None,
        error_message: None,
        request_id: None,
        duration_ms: 42,
        outcome,
        sent: SentAs::default(),
    }
}

fn failed(id: &str, hash: &str, status: u16, kind: &str, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        http_status: Some(status),
        error_type: Some(kind.into()),
        error_message: Some("the API said no".into()),
        ..attempt(id, hash, outcome)
    }
}

fn row(ledger: &Ledger, id: &str) -> ReviewRow {
    ledger.show("google", id).unwrap().expect("row exists").0
}

fn list(ledger: &Ledger, filter: &ReviewFilter) -> Vec<String> {
    let mut ids = Vec::new();
    ledger
        .for_each_review(filter, &mut |r| {
            ids.push(r.review_id.clone());
            Ok(())
        })
        .unwrap();
    ids
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap();
    st.query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ------------------------------------------------------- opening, schema

#[test]
fn fresh_open_creates_the_spec_schema_in_wal_mode_with_a_private_file() {
    let (_dir, mut ledger) = fresh();
    assert_eq!(
        ledger.schema_version().unwrap(),
        super::migrations::latest_version()
    );
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();

    let conn = raw(&ledger);
    let expect: &[(&str, &[&str])] = &[
        (
            "reviews",
            &[
                "platform",
                "review_id",
                "source_name",
                "location_id",
                "group_id",
                "group_external_ref",
                "status",
                "payload",
                "content_hash",
                "first_seen_at",
                "source_updated_at",
                "delivered_at",
                "request_id",
                "attempts",
                "last_error",
                "removed_at",
                "last_seen_at",
                "next_attempt_at",
                "retry_count",
                "versions",
                "notes",
                "text_purged_at",
            ],
        ),
        (
            "attempts",
            &[
                "id",
                "platform",
                "review_id",
                "content_hash",
                "attempted_at",
                "http_status",
                "error_type",
                "error_message",
                "request_id",
                "duration_ms",
                "outcome",
                "group_id",
                "group_external_ref",
                "body_hash",
            ],
        ),
        (
            "quarantine",
            &[
                "id",
                "source_name",
                "location_id",
                "platform",
                "reference",
                "reason",
                "raw",
                "raw_hash",
                "first_seen_at",
                "last_seen_at",
                "seen_count",
            ],
        ),
        (
            "poll_state",
            &[
                "source_name",
                "location_id",
                "high_water",
                "cursor",
                "updated_at",
            ],
        ),
        (
            "polls",
            &[
                "id",
                "source_name",
                "location_id",
                "started_at",
                "ended_at",
                "pages",
                "requests",
                "fetched",
                "new",
                "edited",
                "unchanged",
                "quarantined",
                "reported_total",
                "gap",
                "error",
                "kind",
                "removed",
            ],
        ),
        (
            "purges",
            &["id", "purged_at", "cutoff", "rows_purged", "purged_by"],
        ),
        (
            "requeues",
            &[
                "id",
                "platform",
                "review_id",
                "requeued_at",
                "command",
                "from_status",
                "content_hash",
                "group_id",
                "group_external_ref",
            ],
        ),
    ];
    for (table, cols) in expect {
        assert_eq!(columns(&conn, table), *cols, "columns of {table}");
    }
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(mode(ledger.path()), 0o600);
    // SQLite gives the WAL the database file's mode: reviews stay private.
    let wal = ledger.path().with_extension("db-wal");
    assert_eq!(mode(&wal), 0o600);
}

#[test]
fn settings_are_applied_on_the_connection() {
    let (_dir, ledger) = fresh();
    let get = |p: &str| -> i64 {
        ledger
            .conn
            .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(get("synchronous"), 1, "NORMAL");
    assert_eq!(get("busy_timeout"), 5000);
    assert_eq!(get("foreign_keys"), 1);
}

/// Metrics and `/healthz` decide on the class, never on SQLite's codes.
#[test]
fn errors_have_an_engine_neutral_class() {
    let (_dir, mut ledger) = fresh();
    let holder = raw(&ledger);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let busy = ledger.probe_writable().unwrap_err();
    assert_eq!(busy.error_type(), "busy", "{busy}");
    assert!(!busy.is_storage_fault(), "a lock is not a storage fault");
    holder.execute_batch("ROLLBACK").unwrap();
    let moved = LedgerError::Moved {
        path: "x".into(),
        reason: "deleted".into(),
    };
    assert_eq!(moved.error_type(), "moved");
    assert!(moved.is_storage_fault());
    let corrupt = LedgerError::CorruptRow {
        path: "x".into(),
        table: "reviews",
        row: "google r1".into(),
        column: "first_seen_at",
        value: "\"yesterday\"".into(),
    };
    assert_eq!(corrupt.error_type(), "corrupt");
    for e in [&busy, &moved, &corrupt] {
        assert!(ERROR_TYPES.contains(&e.error_type()));
    }
}

#[test]
fn reopening_is_idempotent_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    {
        let mut ledger = Ledger::open(&path).unwrap();
        ledger
            .record_page(&page(vec![review("r1", "h1")]), t0())
            .unwrap();
    }
    for _ in 0..2 {
        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(
            ledger.schema_version().unwrap(),
            super::migrations::latest_version()
        );
        assert_eq!(row(&ledger, "r1").content_hash, "h1");
    }
}

#[test]
fn a_file_from_a_newer_review_sync_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    drop(Ledger::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    for result in [Ledger::open(&path), Ledger::open_readonly(&path)] {
        match result {
            Err(LedgerError::UnknownVersion {
                found: 99,
                supported,
                path: p,
            }) => {
                assert_eq!(p, path);
                assert_eq!(supported, migrations::latest_version());
            }
            other => panic!("expected UnknownVersion, got {:?}", other.err()),
        }
    }
}

#[test]
fn a_missing_directory_is_an_error_naming_the_path_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let path = missing.join("ledger.db");
    let Err(LedgerError::Io { path: p, reason }) = Ledger::open(&path) else {
        panic!("expected an Io error");
    };
    assert_eq!(p, path);
    assert!(reason.contains("does not exist"), "{reason}");
    assert!(reason.contains(&missing.display().to_string()), "{reason}");
    let shown = LedgerError::Io { path: p, reason }.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(!missing.exists());
}

#[test]
fn an_existing_file_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    drop(Ledger::open(&path).unwrap());
    assert_eq!(mode(&path), 0o640);
}

#[test]
fn a_file_that_is_not_sqlite_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    assert!(matches!(
        Ledger::open(&path),
        Err(LedgerError::Sqlite { .. })
    ));
}

#[test]
fn read_only_open_works_while_the_daemon_holds_the_file() {
    let (_dir, mut daemon) = fresh();
    daemon
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();

    let mut auditor = Ledger::open_readonly(daemon.path()).unwrap();
    assert_eq!(auditor.stats().unwrap().total, 1);

    // The daemon goes on writing while the auditor reads.
    daemon
        .record_page(&page(vec![review("r2", "h2")]), t0())
        .unwrap();
    assert_eq!(auditor.stats().unwrap().total, 2);
    assert_eq!(list(&auditor, &ReviewFilter::default()), ["r1", "r2"]);

    // And the auditor cannot write.
    let refused = auditor.record_page(&page(vec![review("r3", "h3")]), t0());
    assert!(matches!(refused, Err(LedgerError::Sqlite { .. })));
}

#[test]
fn read_only_open_works_after_the_daemon_stopped() {
    let (_dir, mut daemon) = fresh();
    daemon
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    let path = daemon.path().to_path_buf();
    drop(daemon);
    // The last connection to close checkpoints and removes the -wal file.
    assert!(!path.with_extension("db-wal").exists());
    let auditor = Ledger::open_readonly(&path).unwrap();
    assert_eq!(list(&auditor, &ReviewFilter::default()), ["r1"]);
}

#[test]
fn read_only_open_refuses_a_missing_or_unmigrated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    assert!(matches!(
        Ledger::open_readonly(&path),
        Err(LedgerError::Io { .. })
    ));
    assert!(!path.exists(), "read-only open must not create the file");

    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let Err(LedgerError::Io { reason, .. }) = Ledger::open_readonly(&path) else {
        panic!("expected an Io error");
    };
    assert!(reason.contains("read-write"), "{reason}");
}

// ------------------------------------------------------------ migrations

const TEST_V1: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);";
const TEST_V2: &str = "ALTER TABLE notes ADD COLUMN length INTEGER;
                       UPDATE notes SET length = length(body);";

#[test]
fn the_runner_migrates_a_database_with_data_forward_one_version_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    {
        let ledger = migrations::open_with(&path, &[TEST_V1]).unwrap();
        assert_eq!(ledger.schema_version().unwrap(), 1);
        ledger
            .conn
            .execute("INSERT INTO notes (body) VALUES ('hello'), ('hi')", [])
            .unwrap();
    }
    let ledger = migrations::open_with(&path, &[TEST_V1, TEST_V2]).unwrap();
    assert_eq!(ledger.schema_version().unwrap(), 2);
    let rows: Vec<(String, i64)> = ledger
        .conn
        .prepare("SELECT body, length FROM notes ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [("hello".to_owned(), 5), ("hi".to_owned(), 2)]);
}

#[test]
fn a_failing_migration_leaves_the_file_at_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    drop(migrations::open_with(&path, &[TEST_V1]).unwrap());
    let broken = "CREATE TABLE half (x); THIS IS NOT SQL;";
    assert!(matches!(
        migrations::open_with(&path, &[TEST_V1, broken]),
        Err(LedgerError::Sqlite { .. })
    ));
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
    let half: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'half'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        half, 0,
        "the failed migration's first statement was rolled back"
    );
}

#[test]
fn the_real_list_applies_to_a_v1_file_with_rows_and_keeps_them() {
    // With one migration, "N-1 with data" is a v1 file written by this build:
    // re-running the real runner on it must be a no-op that keeps every row.
    let (dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1"), review("r2", "h2")]), t0())
        .unwrap();
    ledger
        .record_attempts(&[attempt(
            "r1",
            "h1",
            AttemptOutcome::Delivered {
                request_id: "q1".into(),
            },
        )])
        .unwrap();
    let path = ledger.path().to_path_buf();
    drop(ledger);
    let ledger = migrations::open_with(&path, MIGRATIONS).unwrap();
    assert_eq!(
        ledger.schema_version().unwrap(),
        migrations::latest_version()
    );
    assert_eq!(ledger.stats().unwrap().total, 2);
    assert_eq!(ledger.attempt_count().unwrap(), 1);
    drop(dir);
}

// ---------------------------------------------------------- record_page

#[test]
fn record_page_counts_new_unchanged_and_edited() {
    let (_dir, mut ledger) = fresh();
    let first = ledger
        .record_page(&page(vec![review("r1", "h1"), review("r2", "h2")]), t0())
        .unwrap();
    assert_eq!(
        first,
        PageCounts {
            new: 2,
            ..PageCounts::default()
        }
    );
    let r1 = row(&ledger, "r1");
    assert_eq!(r1.status, Status::Pending);
    assert_eq!(r1.first_seen_at, t0());
    assert_eq!(r1.next_attempt_at, Some(t0()));
    assert_eq!(r1.group_external_ref.as_deref(), Some("g1"));
    assert_eq!(r1.group_id, None);
    assert_eq!(r1.source_updated_at, Some(at("2026-11-01T08:00:00Z")));

    let later = t0() + Duration::minutes(15);
    let again = ledger
        .record_page(&page(vec![review("r1", "h1"), review("r2", "h2b")]), later)
        .unwrap();
    assert_eq!(
        again,
        PageCounts {
            edited: 1,
            unchanged: 1,
            ..PageCounts::default()
        }
    );
    let r2 = row(&ledger, "r2");
    assert_eq!(r2.content_hash, "h2b");
    assert!(r2.payload.contains("h2b"));
    assert_eq!(r2.first_seen_at, t0(), "an edit keeps first_seen_at");
    assert_eq!(r2.next_attempt_at, Some(later));
    let versions: i64 = raw(&ledger)
        .query_row(
            "SELECT versions FROM reviews WHERE review_id = 'r2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(versions, 2);
}

#[test]
fn an_edit_of_a_delivered_review_is_queued_again_and_keeps_the_delivery() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    ledger
        .record_attempts(&[attempt(
            "r1",
            "h1",
            AttemptOutcome::Delivered {
                request_id: "q1".into(),
            },
        )])
        .unwrap();
    let later = t0() + Duration::hours(1);
    ledger
        .record_page(&page(vec![review("r1", "h2")]), later)
        .unwrap();
    let r = row(&ledger, "r1");
    assert_eq!(r.status, Status::Pending);
    assert_eq!(r.request_id.as_deref(), Some("q1"));
    assert_eq!(r.delivered_at, Some(t0() + Duration::seconds(5)));
    assert_eq!(r.next_attempt_at, Some(later));
    assert_eq!(r.last_error, None);
}

#[test]
fn reviews_of_an_unmapped_location_are_held_with_the_reason() {
    let (_dir, mut ledger) = fresh();
    let mut unmapped = page_at("loc-x", None, vec![review("r1", "h1")]);
    unmapped.reviews[0].payload = r#"{"channel":"review","review":{"review_id":"r1"}}"#.into();
    let counts = ledger.record_page(&unmapped, t0()).unwrap();
    assert_eq!(counts.new, 1);
    let r = row(&ledger, "r1");
    assert_eq!(r.status, Status::Held);
    assert_eq!(
        r.last_error.as_deref(),
        Some("location loc-x is not mapped to a group")
    );
    assert_eq!((r.group_id, r.group_external_ref), (None, None));
    assert_eq!(r.next_attempt_at, None, "held rows are never due");
    assert!(
        ledger
            .claim_due(t0(), t0() + Duration::minutes(1), 10)
            .unwrap()
            .is_empty()
    );

    // An edit while still unmapped stays held.
    unmapped.reviews[0].content_hash = "h2".into();
    assert_eq!(ledger.record_page(&unmapped, t0()).unwrap().edited, 1);
    assert_eq!(row(&ledger, "r1").status, Status::Held);
}

#[test]
fn quarantine_stores_a_raw_record_once_and_counts_sightings() {
    let (_dir, mut ledger) = fresh();
    let bad = |raw: &str| QuarantineRecord {
        platform: "google".into(),
        reference: "r-bad".into(),
        reason: "starRating: 7 is not within 1..5".into(),
        raw: raw.into(),
    };
    let mut p = page(vec![]);
    p.quarantined = vec![bad(r#"{"starRating":7}"#)];
    assert_eq!(ledger.record_page(&p, t0()).unwrap().quarantined, 1);
    let later = t0() + Duration::minutes(15);
    assert_eq!(ledger.record_page(&p, later).unwrap().quarantined, 1);
    p.quarantined = vec![bad(r#"{"starRating":8}"#)];
    ledger.record_page(&p, later).unwrap();

    let conn = raw(&ledger);
    let rows: Vec<(String, i64, String, String, String)> = conn
        .prepare("SELECT raw, seen_count, first_seen_at, last_seen_at, raw_hash FROM quarantine ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, r#"{"starRating":7}"#);
    assert_eq!(rows[0].1, 2);
    assert_eq!(rows[0].2, "2026-11-24T10:00:00.000Z");
    assert_eq!(rows[0].3, "2026-11-24T10:15:00.000Z");
    assert_eq!(rows[0].4.len(), 64, "hex sha-256");
    assert_eq!(rows[1].1, 1);
    assert_eq!(ledger.stats().unwrap().quarantined, 2);
}

#[test]
fn a_page_is_one_transaction() {
    let (_dir, mut ledger) = fresh();
    // Make the second insert fail (e.g. a full disk would) with a trigger.
    raw(&ledger)
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON reviews WHEN NEW.review_id = 'r2'
             BEGIN SELECT RAISE(ABORT, 'boom'); END;",
        )
        .unwrap();
    let result = ledger.record_page(&page(vec![review("r1", "h1"), review("r2", "h2")]), t0());
    assert!(matches!(result, Err(LedgerError::Sqlite { .. })));
    assert_eq!(
        ledger.stats().unwrap().total,
        0,
        "r1 was rolled back with r2"
    );
}

#[test]
fn a_review_seen_again_is_no_longer_removed() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1"), review("r2", "h2")]), t0())
        .unwrap();
    let pass = t0() + Duration::days(1);
    ledger
        .record_page(&page(vec![review("r1", "h1")]), pass)
        .unwrap();
    assert_eq!(
        ledger
            .mark_removed("acme-google", "loc-1", pass, pass)
            .unwrap(),
        1
    );
    assert_eq!(row(&ledger, "r2").removed_at, Some(pass));
    assert_eq!(row(&ledger, "r1").removed_at, None);
    assert_eq!(
        ledger
            .location_review_count("acme-google", "loc-1")
            .unwrap(),
        1
    );
    assert_eq!(ledger.stats().unwrap().removed, 1);

    let back = ledger
        .record_page(&page(vec![review("r2", "h2")]), pass + Duration::hours(1))
        .unwrap();
    assert_eq!(back.unchanged, 1);
    assert_eq!(row(&ledger, "r2").removed_at, None);
    assert_eq!(
        ledger
            .location_review_count("acme-google", "loc-1")
            .unwrap(),
        2
    );
    assert_eq!(
        ledger
            .location_review_count("acme-google", "other")
            .unwrap(),
        0
    );
}

/// An incremental pass sees its overlap page on every tick: it writes
/// nothing for reviews it saw unchanged, but still brings back a removed one.
#[test]
fn an_incremental_page_writes_nothing_for_unchanged_reviews() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1"), review("r2", "h2")]), t0())
        .unwrap();
    let reconcile = t0() + Duration::days(1);
    ledger
        .record_page(&page(vec![review("r1", "h1")]), reconcile)
        .unwrap();
    ledger
        .mark_removed("acme-google", "loc-1", reconcile, reconcile)
        .unwrap();
    let last_seen = |ledger: &Ledger, id: &str| -> String {
        raw(ledger)
            .query_row(
                "SELECT last_seen_at FROM reviews WHERE review_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    let (r1_before, changes_before) = (last_seen(&ledger, "r1"), ledger.conn.total_changes());

    let tick = reconcile + Duration::hours(1);
    let counts = ledger
        .record_page_as(&page(vec![review("r1", "h1")]), tick, Sightings::Skip)
        .unwrap();
    assert_eq!(counts.unchanged, 1);
    assert_eq!(last_seen(&ledger, "r1"), r1_before, "not stamped");
    assert_eq!(
        ledger.conn.total_changes(),
        changes_before,
        "no row written"
    );

    // A removed review listed again is un-marked even so (and stamped).
    ledger
        .record_page_as(&page(vec![review("r2", "h2")]), tick, Sightings::Skip)
        .unwrap();
    assert_eq!(row(&ledger, "r2").removed_at, None);
    assert_eq!(last_seen(&ledger, "r2"), time::to_text(tick));

    // A reconciliation stamps what it sees.
    let next = tick + Duration::days(1);
    ledger
        .record_page_as(&page(vec![review("r1", "h1")]), next, Sightings::Stamp)
        .unwrap();
    assert_eq!(last_seen(&ledger, "r1"), time::to_text(next));
}

// ------------------------------------------------------------- delivery

#[test]
fn claim_due_leases_rows_until_the_lease_ends() {
    let (_dir, mut ledger) = fresh();
    for (i, id) in ["r1", "r2", "r3"].iter().enumerate() {
        let seen = t0() + Duration::seconds(i as i64);
        ledger
            .record_page(&page(vec![review(id, "h")]), seen)
            .unwrap();
    }
    let now = t0() + Duration::seconds(10);
    let lease = now + Duration::seconds(60);
    let ids = |due: Vec<DueReview>| due.into_iter().map(|d| d.review_id).collect::<Vec<_>>();

    assert_eq!(
        ids(ledger.claim_due(now, lease, 2).unwrap()),
        ["r1", "r2"],
        "oldest due first"
    );
    assert_eq!(ids(ledger.claim_due(now, lease, 2).unwrap()), ["r3"]);
    assert!(
        ledger.claim_due(now, lease, 2).unwrap().is_empty(),
        "all leased"
    );
    assert_eq!(ledger.next_due_at().unwrap(), Some(lease));
    assert_eq!(
        ledger.pending_count().unwrap(),
        3,
        "leased rows are still pending"
    );

    let after = lease + Duration::seconds(1);
    let again = ledger
        .claim_due(after, after + Duration::seconds(60), 10)
        .unwrap();
    assert_eq!(
        again.len(),
        3,
        "a crashed worker's rows come back after the lease"
    );
    assert_eq!(again[0].payload, review("r1", "h").payload);
    assert_eq!(again[0].retry_count, 0);
}

#[test]
fn nothing_is_due_before_its_time() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    let before = t0() - Duration::milliseconds(1);
    assert!(ledger.claim_due(before, t0(), 10).unwrap().is_empty());
    assert_eq!(
        ledger
            .claim_due(t0(), t0() + Duration::seconds(30), 10)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn the_claim_query_uses_the_partial_index() {
    let (_dir, ledger) = fresh();
    let plan: Vec<String> = ledger
        .conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT platform, review_id, payload, content_hash, retry_count
             FROM reviews WHERE status = 'pending' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT ?2",
        )
        .unwrap()
        .query_map(["x", "1"], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(plan.iter().any(|p| p.contains("reviews_due")), "{plan:?}");
    assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
}

#[test]
fn a_delivery_sets_the_documented_columns() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    let ok = AttemptRecord {
        http_status: Some(201),
        request_id: Some("q-1".into()),
        ..attempt(
            "r1",
            "h1",
            AttemptOutcome::Delivered {
                request_id: "q-1".into(),
            },
        )
    };
    ledger.record_attempts(&[ok]).unwrap();
    let r = row(&ledger, "r1");
    assert_eq!(r.status, Status::Delivered);
    assert_eq!(r.delivered_at, Some(t0() + Duration::seconds(5)));
    assert_eq!(r.request_id.as_deref(), Some("q-1"));
    assert_eq!(
        (r.attempts, r.last_error, r.next_attempt_at),
        (1, None, None)
    );
    assert_eq!(ledger.pending_count().unwrap(), 0);
    assert_eq!(ledger.next_due_at().unwrap(), None);
}

#[test]
fn a_retry_keeps_the_row_pending_and_counts_the_failure() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    let next = t0() + Duration::seconds(30);
    ledger
        .record_attempts(&[failed(
            "r1",
            "h1",
            503,
            "http_503",
            AttemptOutcome::Retry {
                next_attempt_at: next,
            },
        )])
        .unwrap();
    let r = row(&ledger, "r1");
    assert_eq!(r.status, Status::Pending);
    assert_eq!(r.next_attempt_at, Some(next));
    assert_eq!(r.last_error.as_deref(), Some("http_503: the API said no"));
    assert_eq!(r.attempts, 1);
    let due = ledger
        .claim_due(next, next + Duration::seconds(30), 1)
        .unwrap();
    assert_eq!(due[0].retry_count, 1, "drives the backoff");

    // Success after retries resets the count.
    ledger
        .record_attempts(&[attempt(
            "r1",
            "h1",
            AttemptOutcome::Delivered {
                request_id: "q".into(),
            },
        )])
        .unwrap();
    let retry_count: i64 = raw(&ledger)
        .query_row("SELECT retry_count FROM reviews", [], |r| r.get(0))
        .unwrap();
    assert_eq!(retry_count, 0);
    assert_eq!(row(&ledger, "r1").attempts, 2);
}

#[test]
fn held_and_rejected_attempts_set_status_and_reason() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1"), review("r2", "h2")]), t0())
        .unwrap();
    ledger
        .record_attempts(&[
            failed("r1", "h1", 404, "group_not_found", AttemptOutcome::Held),
            failed("r2", "h2", 400, "no_group", AttemptOutcome::Rejected),
        ])
        .unwrap();
    let r1 = row(&ledger, "r1");
    assert_eq!(r1.status, Status::Held);
    assert_eq!(
        r1.last_error.as_deref(),
        Some("group_not_found: the API said no")
    );
    assert_eq!(r1.next_attempt_at, None);
    let r2 = row(&ledger, "r2");
    assert_eq!(r2.status, Status::Rejected);
    assert_eq!(r2.last_error.as_deref(), Some("no_group: the API said no"));

    let (_, attempts) = ledger.show("google", "r2").unwrap().unwrap();
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!((a.http_status, a.outcome.as_str()), (Some(400), "rejected"));
    assert_eq!(a.error_type.as_deref(), Some("no_group"));
    assert_eq!((a.duration_ms, a.content_hash.as_str()), (42, "h2"));
}

#[test]
fn an_edit_during_an_attempt_stays_pending_with_the_new_version() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    let due = ledger
        .claim_due(t0(), t0() + Duration::seconds(60), 10)
        .unwrap();
    assert_eq!(due[0].content_hash, "h1");

    // The platform edits the review while h1 is being POSTed.
    let edit_at = t0() + Duration::seconds(1);
    ledger
        .record_page(&page(vec![review("r1", "h2")]), edit_at)
        .unwrap();
    ledger
        .record_attempts(&[attempt(
            "r1",
            "h1",
            AttemptOutcome::Delivered {
                request_id: "q1".into(),
            },
        )])
        .unwrap();

    assert_eq!(
        ledger.attempt_count().unwrap(),
        1,
        "the attempt is in the audit trail"
    );
    let r = row(&ledger, "r1");
    assert_eq!(r.status, Status::Pending);
    assert_eq!(r.content_hash, "h2");
    assert_eq!(r.attempts, 1);
    assert_eq!((r.delivered_at, r.request_id), (None, None));
    let due = ledger
        .claim_due(edit_at, edit_at + Duration::seconds(60), 10)
        .unwrap();
    assert_eq!(due[0].content_hash, "h2", "the new version is due at once");
}

#[test]
fn a_late_failure_does_not_undo_a_delivery() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    ledger
        .record_attempts(&[
            attempt(
                "r1",
                "h1",
                AttemptOutcome::Delivered {
                    request_id: "q1".into(),
                },
            ),
            failed(
                "r1",
                "h1",
                0,
                "timeout",
                AttemptOutcome::Retry {
                    next_attempt_at: t0(),
                },
            ),
            failed("r1", "h1", 404, "group_not_found", AttemptOutcome::Held),
        ])
        .unwrap();
    let r = row(&ledger, "r1");
    assert_eq!(
        (r.status, r.last_error, r.next_attempt_at),
        (Status::Delivered, None, None)
    );
    assert_eq!(r.attempts, 3);
}

#[test]
fn a_batch_of_attempts_is_one_transaction_and_fast() {
    let (_dir, mut ledger) = fresh();
    let reviews: Vec<_> = (0..100).map(|i| review(&format!("r{i}"), "h")).collect();
    for chunk in reviews.chunks(50) {
        ledger.record_page(&page(chunk.to_vec()), t0()).unwrap();
    }
    let batch: Vec<_> = (0..100)
        .map(|i| {
            attempt(
                &format!("r{i}"),
                "h",
                AttemptOutcome::Delivered {
                    request_id: format!("q{i}"),
                },
            )
        })
        .collect();
    let started = std::time::Instant::now();
    ledger.record_attempts(&batch).unwrap();
    // Generous bound: one commit for 100 attempts is a few ms; one commit per
    // attempt with fsyncs would not be.
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(ledger.attempt_count().unwrap(), 100);
    assert_eq!(
        ledger.stats().unwrap().by_status[1],
        ("delivered".to_owned(), 100)
    );
}

#[test]
fn make_pending_due_brings_every_pending_row_forward() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1"), review("r2", "h2")]), t0())
        .unwrap();
    let far = t0() + Duration::hours(6);
    ledger
        .record_attempts(&[failed(
            "r1",
            "h1",
            429,
            "http_429",
            AttemptOutcome::Retry {
                next_attempt_at: far,
            },
        )])
        .unwrap();
    let now = t0() + Duration::minutes(1);
    assert_eq!(
        ledger.make_pending_due(now).unwrap(),
        1,
        "r2 was already due"
    );
    assert_eq!(ledger.next_due_at().unwrap(), Some(t0()));
    assert_eq!(
        ledger
            .claim_due(now, now + Duration::seconds(30), 10)
            .unwrap()
            .len(),
        2
    );
}

// --------------------------------------------------------------- retry

#[test]
fn retry_regroups_the_payload_and_skips_unmapped_locations() {
    let (_dir, mut ledger) = fresh();
    let mut a = page_at("loc-a", None, vec![review("ra", "h")]);
    a.reviews[0].payload = r#"{"channel":"review","review":{"review_id":"ra"}}"#.into();
    ledger.record_page(&a, t0()).unwrap();
    ledger
        .record_page(&page_at("loc-b", None, vec![review("rb", "h")]), t0())
        .unwrap();
    ledger
        .record_page(
            &page_at("loc-c", ext("wrong"), vec![review("rc", "h")]),
            t0(),
        )
        .unwrap();
    ledger
        .record_attempts(&[failed(
            "rc",
            "h",
            401,
            "no_access_to_group",
            AttemptOutcome::Held,
        )])
        .unwrap();

    let now = t0() + Duration::hours(1);
    let regroup = |source: &str, location: &str| -> Option<GroupRef> {
        assert_eq!(source, "acme-google");
        match location {
            "loc-a" => Some(GroupRef::Id("8f14e45f".into())),
            "loc-c" => Some(GroupRef::Id("right".into())),
            _ => None,
        }
    };
    let (requeued, skipped) = ledger
        .retry(&ReviewFilter::default(), now, &regroup)
        .unwrap();
    assert_eq!((requeued, skipped), (2, 1));

    let ra = row(&ledger, "ra");
    assert_eq!(ra.status, Status::Pending);
    assert_eq!(
        ra.payload,
        r#"{"group_id":"8f14e45f","channel":"review","review":{"review_id":"ra"}}"#
    );
    assert_eq!(
        (ra.group_id.as_deref(), ra.group_external_ref),
        (Some("8f14e45f"), None)
    );
    assert_eq!((ra.next_attempt_at, ra.last_error), (Some(now), None));

    let rc = row(&ledger, "rc");
    assert!(
        rc.payload
            .starts_with(r#"{"group_id":"right","channel":"review","#),
        "{}",
        rc.payload
    );
    assert!(!rc.payload.contains("group_external_ref"));
    assert_eq!(
        (rc.group_id.as_deref(), rc.group_external_ref),
        (Some("right"), None)
    );
    assert_eq!(rc.content_hash, "h", "the review content did not change");

    let rb = row(&ledger, "rb");
    assert_eq!(rb.status, Status::Held, "its location is still unmapped");
    assert!(rb.last_error.is_some());

    let due = ledger
        .claim_due(now, now + Duration::seconds(30), 10)
        .unwrap();
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|d| d.retry_count == 0));
}

#[test]
fn retry_honours_its_filter_and_never_touches_delivered_rows() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(
            &page(vec![
                review("r1", "h"),
                review("r2", "h"),
                review("r3", "h"),
            ]),
            t0(),
        )
        .unwrap();
    ledger
        .record_attempts(&[
            failed("r1", "h", 400, "bad", AttemptOutcome::Rejected),
            failed("r2", "h", 404, "group_not_found", AttemptOutcome::Held),
            attempt(
                "r3",
                "h",
                AttemptOutcome::Delivered {
                    request_id: "q".into(),
                },
            ),
        ])
        .unwrap();
    let regroup = |_: &str, _: &str| ext("g2");
    let only_held = ReviewFilter {
        statuses: vec![Status::Held],
        ..ReviewFilter::default()
    };
    assert_eq!(ledger.retry(&only_held, t0(), &regroup).unwrap(), (1, 0));
    assert_eq!(row(&ledger, "r1").status, Status::Rejected);

    let delivered = ReviewFilter {
        statuses: vec![Status::Delivered],
        ..ReviewFilter::default()
    };
    assert_eq!(ledger.retry(&delivered, t0(), &regroup).unwrap(), (0, 0));
    let one = ReviewFilter {
        review: Some(("google".into(), "r3".into())),
        ..ReviewFilter::default()
    };
    assert_eq!(ledger.retry(&one, t0(), &regroup).unwrap(), (0, 0));
    assert_eq!(row(&ledger, "r3").status, Status::Delivered);
}

// --------------------------------------------------------------- queries

#[test]
fn stats_count_by_status_platform_source_and_group() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h"), review("r2", "h")]), t0())
        .unwrap();
    let mut yelp = page_at(
        "biz-1",
        Some(GroupRef::Id("gid".into())),
        vec![review("y1", "h")],
    );
    yelp.source_name = "acme-yelp".into();
    yelp.reviews[0].platform = "yelp".into();
    ledger
        .record_page(&yelp, t0() + Duration::minutes(1))
        .unwrap();
    ledger
        .record_page(&page_at("loc-x", None, vec![review("r3", "h")]), t0())
        .unwrap();
    ledger
        .record_attempts(&[attempt(
            "r1",
            "h",
            AttemptOutcome::Delivered {
                request_id: "q".into(),
            },
        )])
        .unwrap();

    let s = ledger.stats().unwrap();
    assert_eq!(s.total, 4);
    let by_status: Vec<(&str, u64)> = s.by_status.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        by_status,
        [
            ("pending", 2),
            ("delivered", 1),
            ("held", 1),
            ("rejected", 0)
        ]
    );
    let triples = |v: &[(String, String, u64)]| {
        v.iter()
            .map(|(a, b, n)| format!("{a}/{b}/{n}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        triples(&s.by_platform),
        [
            "google/pending/1",
            "google/delivered/1",
            "google/held/1",
            "yelp/pending/1"
        ]
    );
    assert_eq!(
        triples(&s.by_source),
        [
            "acme-google/pending/1",
            "acme-google/delivered/1",
            "acme-google/held/1",
            "acme-yelp/pending/1"
        ]
    );
    assert_eq!(
        triples(&s.by_group),
        [
            "(unmapped)/held/1",
            "group_external_ref=g1/pending/1",
            "group_external_ref=g1/delivered/1",
            "group_id=gid/pending/1"
        ]
    );
    assert_eq!(s.oldest_pending, Some(t0()));
    assert_eq!((s.removed, s.quarantined, s.attempts), (0, 0, 1));
}

#[test]
fn stats_of_an_empty_ledger_list_every_status() {
    let (_dir, ledger) = fresh();
    let s = ledger.stats().unwrap();
    assert_eq!(s.total, 0);
    assert_eq!(s.by_status.len(), 4);
    assert!(s.by_status.iter().all(|(_, n)| *n == 0));
    assert_eq!(s.oldest_pending, None);
}

#[test]
fn for_each_review_filters_and_orders() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("b", "h"), review("a", "h")]), t0())
        .unwrap();
    let later = t0() + Duration::hours(1);
    let mut other = page_at(
        "loc-2",
        Some(GroupRef::Id("g2".into())),
        vec![review("c", "h")],
    );
    other.source_name = "acme-other".into();
    ledger.record_page(&other, later).unwrap();
    ledger
        .record_attempts(&[failed("a", "h", 400, "bad", AttemptOutcome::Rejected)])
        .unwrap();

    let all = ReviewFilter::default();
    assert_eq!(
        list(&ledger, &all),
        ["a", "b", "c"],
        "first_seen_at, then platform and id"
    );
    let f = |g: fn(&mut ReviewFilter)| {
        let mut filter = ReviewFilter::default();
        g(&mut filter);
        list(&ledger, &filter)
    };
    assert_eq!(f(|x| x.statuses = vec![Status::Rejected]), ["a"]);
    assert_eq!(
        f(|x| x.statuses = vec![Status::Pending, Status::Rejected]),
        ["a", "b", "c"]
    );
    assert_eq!(f(|x| x.source = Some("acme-other".into())), ["c"]);
    assert_eq!(f(|x| x.group = Some("g1".into())), ["a", "b"]);
    assert_eq!(f(|x| x.group = Some("g2".into())), ["c"]);
    assert_eq!(f(|x| x.since = Some(at("2026-11-24T10:30:00Z"))), ["c"]);
    assert_eq!(f(|x| x.review = Some(("google".into(), "b".into()))), ["b"]);
    assert_eq!(
        f(|x| {
            x.source = Some("acme-google".into());
            x.statuses = vec![Status::Pending];
        }),
        ["b"]
    );
}

#[test]
fn for_each_review_stops_at_the_callers_error() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("a", "h"), review("b", "h")]), t0())
        .unwrap();
    let mut seen = 0;
    let result = ledger.for_each_review(&ReviewFilter::default(), &mut |_| {
        seen += 1;
        Err(LedgerError::Task("stop".into()))
    });
    assert!(matches!(result, Err(LedgerError::Task(_))));
    assert_eq!(seen, 1);
}

#[test]
fn show_returns_the_row_and_its_attempts_oldest_first() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    let mut first = failed(
        "r1",
        "h1",
        503,
        "http_503",
        AttemptOutcome::Retry {
            next_attempt_at: t0(),
        },
    );
    first.attempted_at = t0() + Duration::seconds(1);
    let mut second = attempt(
        "r1",
        "h1",
        AttemptOutcome::Delivered {
            request_id: "q".into(),
        },
    );
    second.attempted_at = t0() + Duration::seconds(9);
    // Recorded out of order (two workers' batches): shown by time.
    ledger.record_attempts(&[second]).unwrap();
    ledger.record_attempts(&[first]).unwrap();
    let (r, attempts) = ledger.show("google", "r1").unwrap().unwrap();
    assert_eq!(r.attempts, 2);
    let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "delivered"]);
    assert!(ledger.show("google", "nope").unwrap().is_none());
}

#[test]
fn a_hand_edited_timestamp_is_reported_as_corrupt() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    raw(&ledger)
        .execute("UPDATE reviews SET first_seen_at = 'yesterday'", [])
        .unwrap();
    match ledger.show("google", "r1") {
        Err(LedgerError::CorruptRow {
            table: "reviews",
            column: "first_seen_at",
            row,
            value,
            ..
        }) => {
            assert!(value.contains("yesterday"), "{value}");
            assert_eq!(row, "google r1");
        }
        other => panic!("expected CorruptRow, got {other:?}"),
    }
    raw(&ledger)
        .execute(
            "UPDATE reviews SET first_seen_at = ?1, attempts = -1",
            [T0.replace('Z', ".000Z")],
        )
        .unwrap();
    assert!(matches!(
        ledger.show("google", "r1"),
        Err(LedgerError::CorruptRow {
            column: "attempts",
            ..
        })
    ));
}

#[test]
fn timestamps_are_stored_as_fixed_width_utc_text() {
    let (_dir, mut ledger) = fresh();
    let now = t0() + Duration::microseconds(123_456);
    ledger
        .record_page(&page(vec![review("r1", "h1")]), now)
        .unwrap();
    let (first, updated): (String, String) = raw(&ledger)
        .query_row(
            "SELECT first_seen_at, source_updated_at FROM reviews",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(first, "2026-11-24T10:00:00.123Z");
    assert_eq!(updated, "2026-11-01T08:00:00.000Z");
}

// ----------------------------------------------------------------- polls

#[test]
fn poll_state_round_trips_and_the_log_is_readable_by_auditors() {
    let (_dir, mut ledger) = fresh();
    assert_eq!(
        ledger.poll_state("acme-google", "loc-1").unwrap(),
        PollState::default()
    );

    let log = PollLog {
        source_name: "acme-google".into(),
        location_id: "loc-1".into(),
        started_at: t0(),
        ended_at: t0() + Duration::seconds(3),
        pages: 2,
        requests: 3,
        fetched: 60,
        counts: PageCounts {
            new: 5,
            edited: 1,
            unchanged: 54,
            quarantined: 0,
        },
        reported_total: Some(61),
        gap: Some(1),
        error: None,
        reconcile: true,
        removed: 2,
    };
    let state = PollState {
        high_water: Some(at("2026-11-24T09:59:00Z")),
        cursor: Some("abc".into()),
    };
    ledger.finish_poll(&log, Some(&state)).unwrap();
    assert_eq!(ledger.poll_state("acme-google", "loc-1").unwrap(), state);

    // A failed poll is logged but keeps the previous state.
    let failed = PollLog {
        error: Some("HTTP 503".into()),
        reported_total: None,
        gap: None,
        ..log
    };
    ledger.finish_poll(&failed, None).unwrap();
    assert_eq!(ledger.poll_state("acme-google", "loc-1").unwrap(), state);

    let conn = raw(&ledger);
    let kinds: Vec<(String, i64)> = conn
        .prepare("SELECT kind, removed FROM polls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kinds, [("reconcile".into(), 2), ("reconcile".into(), 2)]);
    let rows: Vec<(i64, i64, Option<i64>, Option<String>)> = conn
        .prepare("SELECT new, edited, gap, error FROM polls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [(5, 1, Some(1), None), (5, 1, None, Some("HTTP 503".into()))]
    );
    let updated: String = conn
        .query_row("SELECT updated_at FROM poll_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(updated, "2026-11-24T10:00:03.000Z");
}

// ---------------------------------------------------------------- handle

#[tokio::test]
async fn the_handle_runs_ledger_work_off_the_async_threads() {
    let (_dir, ledger) = fresh();
    let handle = LedgerHandle::new(ledger);
    let counts = handle
        .run(|l| l.record_page(&page(vec![review("r1", "h1")]), t0()))
        .await
        .unwrap();
    assert_eq!(counts.new, 1);
    assert_eq!(handle.run(|l| l.pending_count()).await.unwrap(), 1);
}

#[test]
fn a_version_1_ledger_with_data_migrates_to_notes_keeping_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    {
        let v1 = super::migrations::open_with(&path, &super::migrations::MIGRATIONS[..1]).unwrap();
        assert_eq!(v1.schema_version().unwrap(), 1);
        drop(v1);
        // Rows as the version-1 code wrote them.
        let conn = Connection::open(&path).unwrap();
        for (id, hash) in [("r1", "h1"), ("r2", "h2")] {
            conn.execute(
                "INSERT INTO reviews (platform, review_id, source_name, location_id, status,
                     payload, content_hash, first_seen_at, last_seen_at)
                 VALUES ('google', ?1, 's1', 'loc-1', 'delivered', '{}', ?2,
                     '2026-11-01T08:00:00.000Z', '2026-11-01T08:00:00.000Z')",
                (id, hash),
            )
            .unwrap();
        }
    }
    let mut ledger = Ledger::open(&path).unwrap();
    assert_eq!(
        ledger.schema_version().unwrap(),
        super::migrations::latest_version()
    );
    assert_eq!(row(&ledger, "r1").content_hash, "h1");
    assert_eq!(row(&ledger, "r2").content_hash, "h2");
    let mut noted = review("r3", "h3");
    noted.notes = Some(r#"{"excerpt":"true"}"#.into());
    ledger.record_page(&page(vec![noted]), t0()).unwrap();
    let conn = Connection::open(&path).unwrap();
    let notes: Vec<Option<String>> = conn
        .prepare("SELECT notes FROM reviews ORDER BY review_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        notes,
        vec![None, None, Some(r#"{"excerpt":"true"}"#.into())]
    );
}

// ------------------------------------------ the audit trail (schema v5)

#[test]
fn a_version_4_ledger_with_attempts_migrates_keeping_them_as_unknown_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    {
        let v4 = migrations::open_with(&path, &MIGRATIONS[..4]).unwrap();
        assert_eq!(v4.schema_version().unwrap(), 4);
        drop(v4);
        // Rows as the version-4 code wrote them: a review delivered after a
        // held attempt, and a poll.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO reviews (platform, review_id, source_name, location_id,
                 group_external_ref, status, payload, content_hash, first_seen_at, last_seen_at,
                 delivered_at, request_id, attempts)
             VALUES ('google', 'r1', 's1', 'loc-1', 'fixed', 'delivered', '{}', 'h1',
                 '2026-11-01T08:00:00.000Z', '2026-11-01T08:00:00.000Z',
                 '2026-11-02T08:00:00.000Z', 'q1', 2);
             INSERT INTO attempts (platform, review_id, content_hash, attempted_at, http_status,
                 error_type, duration_ms, outcome)
             VALUES ('google', 'r1', 'h1', '2026-11-01T09:00:00.000Z', 404, 'group_not_found',
                 5, 'held'),
                    ('google', 'r1', 'h1', '2026-11-02T08:00:00.000Z', 201, NULL, 5,
                 'delivered');
             INSERT INTO polls (source_name, location_id, started_at, ended_at, pages, requests,
                 fetched, new, edited, unchanged, quarantined)
             VALUES ('s1', 'loc-1', '2026-11-01T08:00:00.000Z', '2026-11-01T08:00:01.000Z',
                 1, 1, 1, 1, 0, 0, 0);",
        )
        .unwrap();
    }
    let mut ledger = Ledger::open(&path).unwrap();
    assert_eq!(
        ledger.schema_version().unwrap(),
        migrations::latest_version()
    );
    let (_, attempts) = ledger.show("google", "r1").unwrap().unwrap();
    assert_eq!(attempts.len(), 2, "every attempt kept");
    for a in &attempts {
        // Never guessed from the review's current group.
        assert_eq!((&a.group_id, &a.group_external_ref), (&None, &None));
        assert_eq!(a.body_hash, None);
        assert_eq!(a.content_hash, "h1");
    }
    let conn = raw(&ledger);
    let per_group: Vec<(Option<String>, i64)> = conn
        .prepare("SELECT group_external_ref, deliveries FROM deliveries_per_day_group ORDER BY day")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(per_group, vec![(None, 1)], "an old delivery: group unknown");
    let polls: i64 = conn
        .query_row("SELECT COUNT(*) FROM polls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(polls, 1);

    // New attempts record where they went.
    ledger
        .record_page(&page(vec![review("r2", "h2")]), t0())
        .unwrap();
    let due = ledger
        .claim_due(t0(), t0() + Duration::seconds(30), 10)
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].sent.group, ext("g1"));
    assert_eq!(
        due[0].sent.body_hash.as_deref(),
        Some(body_hash(&due[0].payload).as_str())
    );
    let sent = AttemptRecord {
        sent: due[0].sent.clone(),
        ..attempt(
            "r2",
            "h2",
            AttemptOutcome::Delivered {
                request_id: "q2".into(),
            },
        )
    };
    ledger.record_attempts(&[sent]).unwrap();
    let (_, attempts) = ledger.show("google", "r2").unwrap().unwrap();
    assert_eq!(attempts[0].group_external_ref.as_deref(), Some("g1"));
    assert_eq!(attempts[0].body_hash, due[0].sent.body_hash);
    let g1: i64 = conn
        .query_row(
            "SELECT deliveries FROM deliveries_per_day_group WHERE group_external_ref = 'g1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(g1, 1);
}

#[test]
fn resend_puts_a_delivered_review_back_records_it_and_refuses_the_rest() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(
            &page(vec![
                review("r1", "h1"),
                review("r2", "h2"),
                review("r3", "h3"),
            ]),
            t0(),
        )
        .unwrap();
    let ok = |id: &str, hash: &str| {
        attempt(
            id,
            hash,
            AttemptOutcome::Delivered {
                request_id: format!("q-{id}"),
            },
        )
    };
    ledger
        .record_attempts(&[ok("r1", "h1"), ok("r3", "h3")])
        .unwrap();
    let same = |_: &str, _: &str| None;
    let now = t0() + Duration::minutes(1);
    assert_eq!(
        ledger.resend("google", "nope", now, &same).unwrap(),
        ResendOutcome::NotFound
    );
    assert_eq!(
        ledger.resend("google", "r2", now, &same).unwrap(),
        ResendOutcome::NotDelivered(Status::Pending)
    );
    // No mapping now: the group it went to.
    assert_eq!(
        ledger.resend("google", "r1", now, &same).unwrap(),
        ResendOutcome::Requeued(GroupRef::ExternalRef("g1".into()))
    );
    let r1 = row(&ledger, "r1");
    assert_eq!(r1.status, Status::Pending);
    assert_eq!(r1.next_attempt_at, Some(now));
    assert_eq!(
        r1.request_id.as_deref(),
        Some("q-r1"),
        "the last delivery kept"
    );
    let requeues = ledger.requeues_of("google", "r1").unwrap();
    assert_eq!(requeues.len(), 1);
    assert_eq!(
        (
            requeues[0].command.as_str(),
            requeues[0].from_status.as_str()
        ),
        ("resend", "delivered")
    );
    // A mapping fixed since: the new group, in the body too.
    let moved = |_: &str, _: &str| ext("g9");
    assert_eq!(
        ledger.resend("google", "r3", now, &moved).unwrap(),
        ResendOutcome::Requeued(GroupRef::ExternalRef("g9".into()))
    );
    let r3 = row(&ledger, "r3");
    assert!(
        r3.payload.starts_with(r#"{"group_external_ref":"g9""#),
        "{}",
        r3.payload
    );
    // Purged text is never resent.
    ledger.record_attempts(&[ok("r3", "h3")]).unwrap();
    ledger
        .purge_text(
            now + Duration::days(1),
            now + Duration::days(1),
            PurgedBy::Cli,
        )
        .unwrap();
    assert!(matches!(
        ledger.resend("google", "r3", now, &same).unwrap(),
        ResendOutcome::TextPurged(_)
    ));
}

#[test]
fn retry_records_each_review_it_puts_back() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    ledger
        .record_attempts(&[failed(
            "r1",
            "h1",
            404,
            "group_not_found",
            AttemptOutcome::Held,
        )])
        .unwrap();
    let regroup = |_: &str, _: &str| ext("g2");
    assert_eq!(
        ledger
            .retry(&ReviewFilter::default(), t0(), &regroup)
            .unwrap(),
        (1, 0)
    );
    let requeues = ledger.requeues_of("google", "r1").unwrap();
    assert_eq!(requeues.len(), 1);
    assert_eq!(requeues[0].command, "retry");
    assert_eq!(requeues[0].from_status, "held");
    assert_eq!(requeues[0].group_external_ref.as_deref(), Some("g2"));
    assert_eq!(
        ledger.review_status("google", "r1").unwrap(),
        Some(Status::Pending)
    );
    assert_eq!(ledger.review_status("google", "zz").unwrap(), None);
}

#[test]
fn filters_on_first_sight_and_delivery_time_and_several_statuses() {
    let (_dir, mut ledger) = fresh();
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        ledger
            .record_page(
                &page(vec![review(id, "h")]),
                t0() + Duration::hours(i as i64),
            )
            .unwrap();
    }
    let mut delivered = attempt(
        "a",
        "h",
        AttemptOutcome::Delivered {
            request_id: "q".into(),
        },
    );
    delivered.attempted_at = t0() + Duration::hours(5);
    ledger.record_attempts(&[delivered]).unwrap();
    ledger
        .record_attempts(&[failed(
            "b",
            "h",
            404,
            "group_not_found",
            AttemptOutcome::Held,
        )])
        .unwrap();
    let ids = |f: ReviewFilter| list(&ledger, &f);
    assert_eq!(
        ids(ReviewFilter {
            until: Some(t0() + Duration::hours(1)),
            ..ReviewFilter::default()
        }),
        ["a"]
    );
    assert_eq!(
        ids(ReviewFilter {
            since: Some(t0() + Duration::hours(1)),
            until: Some(t0() + Duration::hours(3)),
            ..ReviewFilter::default()
        }),
        ["b", "c"]
    );
    assert_eq!(
        ids(ReviewFilter {
            delivered_since: Some(t0() + Duration::hours(5)),
            ..ReviewFilter::default()
        }),
        ["a"]
    );
    assert!(
        ids(ReviewFilter {
            delivered_until: Some(t0() + Duration::hours(5)),
            ..ReviewFilter::default()
        })
        .is_empty()
    );
    assert_eq!(
        ids(ReviewFilter {
            statuses: vec![Status::Held, Status::Pending],
            ..ReviewFilter::default()
        }),
        ["b", "c"]
    );
}

#[test]
fn a_review_id_is_found_on_every_platform_that_has_it() {
    let (_dir, mut ledger) = fresh();
    let mut yelp = review("shared", "h");
    yelp.platform = "yelp".into();
    ledger
        .record_page(
            &page(vec![review("shared", "h"), review("only", "h"), yelp]),
            t0(),
        )
        .unwrap();
    assert_eq!(ledger.platforms_of("shared").unwrap(), ["google", "yelp"]);
    assert_eq!(ledger.platforms_of("only").unwrap(), ["google"]);
    assert!(ledger.platforms_of("none").unwrap().is_empty());
}

#[test]
fn a_lenient_walk_names_a_row_that_is_not_utf8_and_goes_on() {
    let (_dir, mut ledger) = fresh();
    ledger
        .record_page(
            &page(vec![
                review("r1", "h"),
                review("r2", "h"),
                review("r3", "h"),
            ]),
            t0(),
        )
        .unwrap();
    raw(&ledger)
        .execute(
            "UPDATE reviews SET last_error = CAST(X'6F6BFF' AS TEXT) WHERE review_id = 'r2'",
            [],
        )
        .unwrap();
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    ledger
        .for_each_review_lenient(
            &ReviewFilter::default(),
            &mut |r| {
                seen.push(r.review_id.clone());
                Ok(())
            },
            &mut |e| bad.push(e),
        )
        .unwrap();
    assert_eq!(seen, ["r1", "r3"]);
    match bad.as_slice() {
        [
            LedgerError::CorruptRow {
                table: "reviews",
                row,
                column: "last_error",
                ..
            },
        ] => assert_eq!(row, "google r2"),
        other => panic!("expected one CorruptRow, got {other:?}"),
    }
    let message = bad[0].to_string();
    assert!(
        message.contains("corrupt row in table reviews (google r2)"),
        "{message}"
    );
    // The strict walk stops there, naming it the same way.
    assert!(matches!(
        ledger.for_each_review(&ReviewFilter::default(), &mut |_| Ok(())),
        Err(LedgerError::CorruptRow {
            column: "last_error",
            ..
        })
    ));
}

#[test]
fn poll_log_rows_older_than_the_cutoff_are_deleted_in_batches() {
    let (_dir, mut ledger) = fresh();
    let old = POLL_BATCH + 3;
    for i in 0..old {
        let log = PollLog {
            source_name: "s".into(),
            location_id: format!("old-{i}"),
            started_at: t0() - Duration::days(100),
            ended_at: t0() - Duration::days(100),
            ..PollLog::default()
        };
        ledger.finish_poll(&log, None).unwrap();
    }
    let recent = PollLog {
        source_name: "s".into(),
        location_id: "recent".into(),
        started_at: t0(),
        ended_at: t0(),
        ..PollLog::default()
    };
    ledger.finish_poll(&recent, None).unwrap();
    let cutoff = t0() - Duration::days(90);
    assert_eq!(ledger.delete_polls_step(cutoff).unwrap(), POLL_BATCH);
    assert_eq!(ledger.delete_polls_step(cutoff).unwrap(), 3);
    assert_eq!(ledger.delete_polls_step(cutoff).unwrap(), 0);
    let mut left = Vec::new();
    ledger
        .for_each_poll(
            &LogFilter::default(),
            &mut |p| {
                left.push(p.location_id.clone());
                Ok(())
            },
            &mut |e| panic!("{e}"),
        )
        .unwrap();
    assert_eq!(left, ["recent"]);
}
