//! The SQLite engine's own behaviour: its file (created private, in WAL
//! mode, never in a directory that does not exist), its pragmas, its
//! migration runner under `PRAGMA user_version`, its indexes' use, and the
//! non-UTF-8 text a hand edit can leave in a file.

use super::*;
use crate::ledger::common::ATTENTION_COUNTS;
use crate::ledger::engine::Storage as _;
use crate::ledger::sqlite::migrations;
use rusqlite::Connection;
use std::os::unix::fs::PermissionsExt;

fn fresh() -> (Ledger, Probe) {
    Probe::fresh(Kind::Sqlite).expect("a SQLite ledger")
}

/// The engine's own connection.
fn conn(ledger: &Ledger) -> &Connection {
    ledger.sqlite().expect("a SQLite ledger").conn()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_fresh_file_is_private_and_in_wal_mode() {
    let (mut ledger, _db) = fresh();
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    let journal: String = conn(&ledger)
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
    let (ledger, _db) = fresh();
    let get = |p: &str| -> i64 {
        conn(&ledger)
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
    let (mut ledger, db) = fresh();
    let holder = Connection::open(db.target.file().unwrap()).unwrap();
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
fn read_only_open_works_after_the_daemon_stopped() {
    let (mut daemon, _db) = fresh();
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
        Err(LedgerError::NotCreated { .. })
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
            .conn()
            .execute("INSERT INTO notes (body) VALUES ('hello'), ('hi')", [])
            .unwrap();
    }
    let ledger = migrations::open_with(&path, &[TEST_V1, TEST_V2]).unwrap();
    assert_eq!(ledger.schema_version().unwrap(), 2);
    let rows: Vec<(String, i64)> = ledger
        .conn()
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
fn the_claim_query_uses_the_partial_index() {
    let (ledger, _db) = fresh();
    let plan: Vec<String> = conn(&ledger)
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

/// The scrape's counts must not scan the reviews table: on a ledger of
/// a million delivered reviews that is a second per scrape.
#[test]
fn held_and_rejected_are_counted_from_their_partial_index() {
    let (ledger, _db) = fresh();
    let plan: Vec<String> = conn(&ledger)
        .prepare(&format!("EXPLAIN QUERY PLAN {ATTENTION_COUNTS}"))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|l| l.contains("reviews_attention")),
        "{plan:?}"
    );
    assert!(
        !plan
            .iter()
            .any(|l| l.starts_with("SCAN reviews") && !l.contains("INDEX")),
        "{plan:?}"
    );
    assert_eq!(ledger.status_counts().unwrap(), Default::default());
}

#[test]
fn a_backup_never_overwrites_the_ledger_itself() {
    let (ledger, _db) = fresh();
    let e = ledger
        .backup_to(ledger.path(), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is the ledger itself"), "{e}");
}

#[test]
fn a_lenient_walk_names_a_row_that_is_not_utf8_and_goes_on() {
    let (mut ledger, db) = fresh();
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
    Connection::open(db.target.file().unwrap())
        .unwrap()
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
