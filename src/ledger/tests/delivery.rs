//! Claims, leases and the outcomes of attempts (`delivery.rs`).

use super::*;

both_engines! {
fn claim_due_leases_rows_until_the_lease_ends(ledger, db) {
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

fn nothing_is_due_before_its_time(ledger, db) {
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

fn a_delivery_sets_the_documented_columns(ledger, db) {
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

fn a_retry_keeps_the_row_pending_and_counts_the_failure(ledger, db) {
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
    let retry_count = db.int("SELECT retry_count FROM reviews", &[]);
    assert_eq!(retry_count, 0);
    assert_eq!(row(&ledger, "r1").attempts, 2);
}

fn held_and_rejected_attempts_set_status_and_reason(ledger, db) {
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

fn an_edit_during_an_attempt_stays_pending_with_the_new_version(ledger, db) {
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

fn a_late_failure_does_not_undo_a_delivery(ledger, db) {
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

fn a_batch_of_attempts_is_one_transaction_and_fast(ledger, db) {
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

fn make_pending_due_brings_every_pending_row_forward(ledger, db) {
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
fn a_cycle_records_outcomes_then_claims_and_says_when_more_is_due(ledger, db) {
    ledger
        .record_page(&hashed(&[("r1", "h1"), ("r2", "h2"), ("r3", "h3")]), t0())
        .unwrap();
    let lease = t0() + Duration::seconds(40);
    let first = ledger.claim_due(t0(), lease, 2).unwrap();
    assert_eq!(first.len(), 2);

    let now = t0() + Duration::seconds(1);
    let attempts: Vec<_> = first.iter().map(|d| delivered(d, now)).collect();
    let later_lease = now + Duration::seconds(40);
    let report = ledger
        .delivery_cycle(&attempts, &[], Some(Claim::new(now, later_lease, 10)))
        .unwrap();
    let ids: Vec<_> = report
        .claimed
        .iter()
        .map(|d| d.review_id.as_str())
        .collect();
    assert_eq!(ids, ["r3"], "the delivered rows are no longer due");
    // Fewer than asked: the earliest pending time is r3's new lease.
    assert_eq!(report.next_due, Some(later_lease));
    let stats = db.rows(
        "SELECT (SELECT COUNT(*) FROM reviews WHERE status = 'delivered' AND attempts = 1),
                (SELECT COUNT(*) FROM attempts WHERE outcome = 'delivered')",
        &[],
    );
    assert_eq!(stats, [[Val::Int(2), Val::Int(2)]]);
}

fn a_released_claim_is_due_at_once_unless_the_row_changed_since(ledger, db) {
    ledger
        .record_page(&hashed(&[("r1", "h1"), ("r2", "h2"), ("r3", "h3")]), t0())
        .unwrap();
    let lease = t0() + Duration::seconds(40);
    let claimed = ledger.claim_due(t0(), lease, 3).unwrap();
    assert_eq!(claimed.len(), 3);
    // r2 is edited while claimed: the edit is due now with its new hash.
    let edit_at = t0() + Duration::seconds(2);
    ledger
        .record_page(&hashed(&[("r2", "h2-edited")]), edit_at)
        .unwrap();

    let back = t0() + Duration::seconds(3);
    let wrong_lease = lease + Duration::seconds(1);
    let released = [
        handed_back(&claimed[0], lease, back),
        handed_back(&claimed[1], lease, back),
        // A claim whose lease is not the row's (claimed again since).
        handed_back(&claimed[2], wrong_lease, back),
    ];
    ledger.delivery_cycle(&[], &released, None).unwrap();
    assert_eq!(next_attempt(&db, "r1"), Some(time::to_text(back)));
    assert_eq!(
        next_attempt(&db, "r2"),
        Some(time::to_text(edit_at)),
        "the edit keeps its own schedule"
    );
    assert_eq!(next_attempt(&db, "r3"), Some(time::to_text(lease)));
    let due: Vec<_> = ledger
        .claim_due(back, back + Duration::seconds(40), 10)
        .unwrap()
        .into_iter()
        .map(|d| (d.review_id, d.content_hash))
        .collect();
    assert_eq!(
        due,
        [
            ("r2".to_owned(), "h2-edited".to_owned()),
            ("r1".to_owned(), "h1".to_owned())
        ]
    );
    let status = db.text("SELECT status FROM reviews WHERE review_id = 'r1'", &[]);
    assert_eq!(status.as_deref(), Some(Status::Pending.as_str()));
}

/// The clock went back a day after r1 was leased and r2 scheduled for a
/// retry in 5 minutes: both now lie a day ahead, further than any delay
/// review-sync sets, and the next claim makes them due. Fresh leases are
/// left alone; after a detected step, they are due too.
fn rows_due_further_ahead_than_any_delay_are_made_due_by_the_next_claim(ledger, db) {
    ledger
        .record_page(&hashed(&[("r1", "h1"), ("r2", "h2")]), t0())
        .unwrap();
    let claimed = ledger
        .claim_due(t0(), t0() + Duration::seconds(40), 2)
        .unwrap();
    let mut retry = delivered(&claimed[1], t0());
    retry.outcome = AttemptOutcome::Retry {
        next_attempt_at: t0() + Duration::minutes(5),
    };
    ledger.record_attempts(&[retry]).unwrap();

    let back = t0() - Duration::days(1);
    ledger.record_page(&hashed(&[("r3", "h3")]), back).unwrap();
    let lease = back + Duration::seconds(40);
    let report = ledger
        .delivery_cycle(&[], &[], Some(Claim::new(back, lease, 10)))
        .unwrap();
    assert_eq!(report.reanchored, 2);
    let mut ids: Vec<_> = report
        .claimed
        .iter()
        .map(|d| d.review_id.as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["r1", "r2", "r3"]);

    // Leases of the current clock are kept by an ordinary claim...
    let later = back + Duration::seconds(1);
    let report = ledger
        .delivery_cycle(
            &[],
            &[],
            Some(Claim::new(later, later + Duration::seconds(40), 10)),
        )
        .unwrap();
    assert_eq!((report.reanchored, report.claimed.len()), (0, 0));
    assert_eq!(next_attempt(&db, "r3"), Some(time::to_text(lease)));
    // ...and made due by one after a detected step.
    let report = ledger
        .delivery_cycle(
            &[],
            &[],
            Some(Claim::new(later, later + Duration::seconds(40), 10).after_step()),
        )
        .unwrap();
    assert_eq!(
        report.reanchored, 3,
        "after a step every pending row is due"
    );
    assert_eq!(report.claimed.len(), 3);
}
}

fn hashed(ids: &[(&str, &str)]) -> PageRecord {
    PageRecord {
        source_name: "acme-google".into(),
        location_id: "loc-1".into(),
        group: Some(GroupRef::ExternalRef("g1".into())),
        hold_reason: None,
        reviews: ids
            .iter()
            .map(|(id, hash)| IncomingReview {
                platform: "google".into(),
                review_id: (*id).into(),
                payload: format!(r#"{{"review":{{"review_id":"{id}","comment":"{hash}"}}}}"#),
                content_hash: (*hash).into(),
                source_updated_at: None,
                notes: None,
            })
            .collect(),
        quarantined: vec![],
    }
}

fn delivered(d: &DueReview, at: DateTime<Utc>) -> AttemptRecord {
    AttemptRecord {
        platform: d.platform.clone(),
        review_id: d.review_id.clone(),
        content_hash: d.content_hash.clone(),
        attempted_at: at,
        http_status: Some(200),
        error_type: None,
        error_message: None,
        request_id: Some(format!("req-{}", d.review_id)),
        duration_ms: 3,
        outcome: AttemptOutcome::Delivered {
            request_id: format!("req-{}", d.review_id),
        },
        sent: d.sent.clone(),
    }
}

fn handed_back(d: &DueReview, lease_until: DateTime<Utc>, due_at: DateTime<Utc>) -> ReleasedClaim {
    ReleasedClaim {
        platform: d.platform.clone(),
        review_id: d.review_id.clone(),
        content_hash: d.content_hash.clone(),
        lease_until,
        due_at,
    }
}

fn next_attempt(db: &Probe, id: &str) -> Option<String> {
    db.text(
        "SELECT next_attempt_at FROM reviews WHERE review_id = ?1",
        &[id],
    )
}
