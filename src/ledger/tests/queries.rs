//! Stats, lists, `show`, and putting reviews back to pending with `retry` and `resend` (`queries.rs`).

use super::*;

// --------------------------------------------------------------- retry

both_engines! {
fn retry_regroups_the_payload_and_skips_unmapped_locations(ledger, db) {
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

fn retry_honours_its_filter_and_never_touches_delivered_rows(ledger, db) {
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

fn stats_count_by_status_platform_source_and_group(ledger, db) {
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

fn stats_of_an_empty_ledger_list_every_status(ledger, db) {
    let s = ledger.stats().unwrap();
    assert_eq!(s.total, 0);
    assert_eq!(s.by_status.len(), 4);
    assert!(s.by_status.iter().all(|(_, n)| *n == 0));
    assert_eq!(s.oldest_pending, None);
}

fn for_each_review_filters_and_orders(ledger, db) {
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

fn for_each_review_stops_at_the_callers_error(ledger, db) {
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

fn show_returns_the_row_and_its_attempts_oldest_first(ledger, db) {
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

fn a_hand_edited_timestamp_is_reported_as_corrupt(ledger, db) {
    ledger
        .record_page(&page(vec![review("r1", "h1")]), t0())
        .unwrap();
    db.exec("UPDATE reviews SET first_seen_at = 'yesterday'");
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
    db.exec("UPDATE reviews SET first_seen_at = '2026-11-24T10:00:00.000Z', attempts = -1");
    assert!(matches!(
        ledger.show("google", "r1"),
        Err(LedgerError::CorruptRow {
            column: "attempts",
            ..
        })
    ));
}

fn timestamps_are_stored_as_fixed_width_utc_text(ledger, db) {
    let now = t0() + Duration::microseconds(123_456);
    ledger
        .record_page(&page(vec![review("r1", "h1")]), now)
        .unwrap();
    let stored = db.rows("SELECT first_seen_at, source_updated_at FROM reviews", &[]);
    assert_eq!(
        stored,
        [[
            Val::Text("2026-11-24T10:00:00.123Z".into()),
            Val::Text("2026-11-01T08:00:00.000Z".into())
        ]]
    );
}

fn resend_puts_a_delivered_review_back_records_it_and_refuses_the_rest(ledger, db) {
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

fn retry_records_each_review_it_puts_back(ledger, db) {
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

fn filters_on_first_sight_and_delivery_time_and_several_statuses(ledger, db) {
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

fn a_review_id_is_found_on_every_platform_that_has_it(ledger, db) {
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

/// A row that cannot be read (here a hand-edited delivery time) is named
/// and skipped by a lenient walk, and stops a strict one.
fn a_lenient_walk_names_a_corrupt_row_and_goes_on(ledger, db) {
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
    db.exec("UPDATE reviews SET delivered_at = 'last week' WHERE review_id = 'r2'");
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
                column: "delivered_at",
                value,
                ..
            },
        ] => {
            assert_eq!(row, "google r2");
            assert!(value.contains("last week"), "{value}");
        }
        other => panic!("expected one CorruptRow, got {other:?}"),
    }
    assert!(matches!(
        ledger.for_each_review(&ReviewFilter::default(), &mut |_| Ok(())),
        Err(LedgerError::CorruptRow {
            column: "delivered_at",
            ..
        })
    ));
}

/// Lists come in the same order on both engines: text compares by bytes
/// (PostgreSQL's columns are `COLLATE "C"`, whatever the database's
/// collation; the test server's databases sort "a" before "B").
fn rows_are_listed_in_byte_order_of_their_ids(ledger, db) {
    let ids = ["a-1", "B-2", "_c", "Z", "b"];
    ledger
        .record_page(
            &page(ids.iter().map(|id| review(id, "h")).collect()),
            t0(),
        )
        .unwrap();
    let listed = list(&ledger, &ReviewFilter::default());
    let mut bytes = ids.map(str::to_owned).to_vec();
    bytes.sort();
    assert_eq!(listed, bytes);
    let min = db.text("SELECT MIN(review_id) FROM reviews", &[]);
    assert_eq!(min.as_deref(), Some("B-2"));
}
}
