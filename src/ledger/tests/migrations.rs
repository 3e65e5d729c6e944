//! Opening a ledger file, its settings, and migrating its schema forward (`migrations.rs`).

use super::*;
use crate::ledger::migrations::{self, MIGRATIONS};

// ------------------------------------------------------- opening, schema

#[test]
fn fresh_open_creates_the_spec_schema_in_wal_mode_with_a_private_file() {
    let (_dir, mut ledger) = fresh();
    assert_eq!(
        ledger.schema_version().unwrap(),
        migrations::latest_version()
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
            migrations::latest_version()
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

#[test]
fn a_version_1_ledger_with_data_migrates_to_notes_keeping_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    {
        let v1 = migrations::open_with(&path, &migrations::MIGRATIONS[..1]).unwrap();
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
        migrations::latest_version()
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
