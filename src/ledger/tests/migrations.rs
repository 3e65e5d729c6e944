//! Opening a ledger and migrating its schema forward (`migrations.rs` of
//! each engine): the same tables, columns, views and versions on both.

use super::*;

both_engines! {
fn a_fresh_ledger_has_the_spec_schema(ledger, db) {
    assert_eq!(ledger.schema_version().unwrap(), latest());
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
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
                "claimed_by",
                "first_seen_via",
                "push_hint_at",
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
        (
            "leases",
            &["name", "holder", "acquired_at", "expires_at"],
        ),
    ];
    for (table, cols) in expect {
        assert_eq!(db.columns(table), *cols, "columns of {table}");
    }
    for view in [
        "pending_by_age",
        "held_by_reason",
        "deliveries_per_day_group",
        "first_seen_latency",
    ] {
        let n = db.int(&format!("SELECT COUNT(*) FROM {view}"), &[]);
        assert_eq!(n, i64::from(matches!(view, "pending_by_age" | "first_seen_latency")), "{view}");
    }
    // Whole seconds, as in SQLite.
    assert!(matches!(
        db.one("SELECT age_seconds FROM pending_by_age", &[]),
        Val::Int(_)
    ));
}

fn reopening_is_idempotent_and_keeps_the_data(ledger, db) {
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    drop(ledger);
    for _ in 0..2 {
        let ledger = db.reopen();
        assert_eq!(ledger.schema_version().unwrap(), latest());
        assert_eq!(row(&ledger, "r1").content_hash, "h1");
    }
}

fn a_ledger_from_a_newer_review_sync_is_refused(ledger, db) {
    drop(ledger);
    db.exec(db.dialect(
        "PRAGMA user_version = 99",
        "UPDATE ledger_schema SET version = 99",
    ));
    for result in [Ledger::open(&db.target), db.readonly()] {
        match result {
            Err(LedgerError::UnknownVersion {
                found: 99,
                supported,
                path,
            }) => {
                assert_eq!(path.display().to_string(), db.target.display());
                assert_eq!(supported, latest());
            }
            other => panic!("expected UnknownVersion, got {:?}", other.err()),
        }
    }
}

fn read_only_open_works_while_the_daemon_writes(ledger, db) {
    let mut daemon = ledger;
    daemon
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();

    let mut auditor = db.readonly().unwrap();
    assert_eq!(auditor.stats().unwrap().total, 1);

    // The daemon goes on writing while the auditor reads.
    daemon
        .record_page(&page(vec![review("r2", "h2")]), t0())
        .unwrap();
    assert_eq!(auditor.stats().unwrap().total, 2);
    assert_eq!(list(&auditor, &ReviewFilter::default()), ["r1", "r2"]);

    // And the auditor cannot write.
    let refused = auditor
        .record_page(&page(vec![review("r3", "h3")]), t0())
        .unwrap_err();
    assert_eq!(refused.error_type(), "read_only", "{refused}");
}

fn migrating_a_current_ledger_again_keeps_every_row(ledger, db) {
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
    drop(ledger);
    db.migrate_to(latest_index());
    let ledger = db.reopen();
    assert_eq!(ledger.schema_version().unwrap(), latest());
    assert_eq!(ledger.stats().unwrap().total, 2);
    assert_eq!(ledger.attempt_count().unwrap(), 1);
}
}

/// Ledgers left at an older schema version, with rows.
mod from_older_versions {
    use super::*;

    both_engines_empty! {
    fn a_version_1_ledger_with_data_migrates_to_notes_keeping_every_row(db) {
        db.migrate_to(1);
        assert_eq!(db.version(), 1);
        // Rows as the version-1 code wrote them.
        for (id, hash) in [("r1", "h1"), ("r2", "h2")] {
            db.exec(&format!(
                "INSERT INTO reviews (platform, review_id, source_name, location_id, status,
                 payload, content_hash, first_seen_at, last_seen_at)
             VALUES ('google', '{id}', 's1', 'loc-1', 'delivered', '{{}}', '{hash}',
                 '2026-11-01T08:00:00.000Z', '2026-11-01T08:00:00.000Z')"
            ));
        }
        let mut ledger = Ledger::open(&db.target).unwrap();
        assert_eq!(ledger.schema_version().unwrap(), latest());
        assert_eq!(row(&ledger, "r1").content_hash, "h1");
        assert_eq!(row(&ledger, "r2").content_hash, "h2");
        let mut noted = review("r3", "h3");
        noted.notes = Some(r#"{"excerpt":"true"}"#.into());
        ledger.record_page(&page(vec![noted]), t0()).unwrap();
        let notes = db.rows("SELECT notes FROM reviews ORDER BY review_id", &[]);
        assert_eq!(
            notes,
            [
                [Val::Null],
                [Val::Null],
                [Val::Text(r#"{"excerpt":"true"}"#.into())]
            ]
        );
    }

    fn a_version_3_ledger_with_rows_gets_retention_and_the_views(db) {
        db.migrate_to(3);
        {
            let mut l = Ledger::open(&db.target).unwrap();
            l.record_page(&page(vec![review("a", "h")]), t0()).unwrap();
        }
        let l = Ledger::open(&db.target).unwrap();
        assert_eq!(l.schema_version().unwrap(), latest());
        assert_eq!(l.stats().unwrap().total, 1);
        assert_eq!(l.text_purged_at("google", "a").unwrap(), None);
        // Migration 4's deliveries view is rebuilt by migration 5 under SPEC's name.
        for view in [
            "pending_by_age",
            "held_by_reason",
            "deliveries_per_day_group",
        ] {
            let n = db.int(&format!("SELECT COUNT(*) FROM {view}"), &[]);
            assert_eq!(n, i64::from(view == "pending_by_age"), "{view}");
        }
    }

    fn a_version_4_ledger_with_attempts_migrates_keeping_them_as_unknown_group(db) {
        db.migrate_to(4);
        assert_eq!(db.version(), 4);
        // Rows as the version-4 code wrote them: a review delivered after a
        // held attempt, and a poll.
        db.exec(
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
        );
        let mut ledger = Ledger::open(&db.target).unwrap();
        assert_eq!(ledger.schema_version().unwrap(), latest());
        let (_, attempts) = ledger.show("google", "r1").unwrap().unwrap();
        assert_eq!(attempts.len(), 2, "every attempt kept");
        for a in &attempts {
            // Never guessed from the review's current group.
            assert_eq!((&a.group_id, &a.group_external_ref), (&None, &None));
            assert_eq!(a.body_hash, None);
            assert_eq!(a.content_hash, "h1");
        }
        let per_group = db.rows(
            "SELECT group_external_ref, deliveries FROM deliveries_per_day_group ORDER BY day",
            &[],
        );
        assert_eq!(
            per_group,
            [[Val::Null, Val::Int(1)]],
            "an old delivery: group unknown"
        );
        assert_eq!(db.int("SELECT COUNT(*) FROM polls", &[]), 1);

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
        let g1 = db.int(
            "SELECT deliveries FROM deliveries_per_day_group WHERE group_external_ref = 'g1'",
            &[],
        );
        assert_eq!(g1, 1);
    }

    fn migration_6_indexes_a_v5_ledger_with_rows(db) {
        db.migrate_to(5);
        db.exec(
            "INSERT INTO reviews (platform, review_id, source_name, location_id, status,
           payload, content_hash, first_seen_at, last_seen_at)
         VALUES ('google', 'a', 's', 'l', 'held', '{}', 'h',
           '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'),
                ('google', 'b', 's', 'l', 'rejected', '{}', 'h',
           '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'),
                ('google', 'c', 's', 'l', 'delivered', '{}', 'h',
           '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        );
        let l = Ledger::open(&db.target).unwrap();
        assert!(l.schema_version().unwrap() >= 6);
        let counts = l.status_counts().unwrap();
        assert_eq!((counts.held, counts.rejected, counts.pending), (1, 1, 0));
    }

    fn migration_7_says_every_older_review_was_first_seen_by_poll(db) {
        db.migrate_to(6);
        db.exec(
            "INSERT INTO reviews (platform, review_id, source_name, location_id, status,
           payload, content_hash, first_seen_at, last_seen_at, source_updated_at, delivered_at)
         VALUES ('google', 'a', 's', 'l', 'delivered', '{}', 'h',
           '2026-01-01T00:00:10.000Z', '2026-01-01T00:00:10.000Z',
           '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:12.500Z')",
        );
        let mut l = Ledger::open(&db.target).unwrap();
        assert_eq!(l.schema_version().unwrap(), 8);
        let millis = db.dialect(
            "SELECT first_seen_via, push_hint_at, CAST(seen_after_seconds * 1000 AS INTEGER),
                    CAST(delivered_after_seconds * 1000 AS INTEGER) FROM first_seen_latency",
            "SELECT first_seen_via, push_hint_at, (seen_after_seconds * 1000)::bigint,
                    (delivered_after_seconds * 1000)::bigint FROM first_seen_latency",
        );
        assert_eq!(
            db.rows(millis, &[]),
            vec![vec![Val::Text("poll".into()), Val::Null, Val::Int(10_000), Val::Int(2_500)]]
        );
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        // Rows first seen before the read started are not the push's.
        assert!(
            l.mark_first_seen_by_push("s", "l", at("2026-01-01T00:00:11Z"), at("2026-01-01T00:00:11Z"))
                .unwrap()
                .is_empty()
        );
        let marked = l
            .mark_first_seen_by_push("s", "l", at("2026-01-01T00:00:05Z"), at("2026-01-01T00:00:04Z"))
            .unwrap();
        assert_eq!(marked, vec![("google".to_owned(), "a".to_owned())]);
        assert_eq!(
            db.rows("SELECT first_seen_via, push_hint_at FROM reviews", &[]),
            vec![vec![Val::Text("push".into()), Val::Text("2026-01-01T00:00:04.000Z".into())]]
        );
        assert!(
            l.mark_first_seen_by_push("s", "l", at("2026-01-01T00:00:05Z"), at("2026-01-01T00:00:05Z"))
                .unwrap()
                .is_empty(),
            "a review is first seen once"
        );
    }
    }
}

/// Both engines have one migration per schema version, in step.
#[test]
fn both_engines_list_the_same_schema_versions() {
    assert_eq!(
        crate::ledger::sqlite::migrations::MIGRATIONS.len(),
        crate::ledger::postgres::migrations::MIGRATIONS.len()
    );
    assert_eq!(
        crate::ledger::sqlite::migrations::latest_version(),
        crate::ledger::postgres::migrations::latest_version()
    );
}

fn latest() -> i64 {
    crate::ledger::sqlite::migrations::latest_version()
}

fn latest_index() -> usize {
    crate::ledger::sqlite::migrations::MIGRATIONS.len()
}
