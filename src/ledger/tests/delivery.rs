//! Claims, leases and the outcomes of attempts (`delivery.rs`).

use super::*;

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
