//! Recording pages: new, edited, unchanged, held and quarantined records (`reviews.rs`).

use super::*;

both_engines! {
fn record_page_counts_new_unchanged_and_edited(ledger, db) {
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
    let versions = db.int("SELECT versions FROM reviews WHERE review_id = 'r2'", &[]);
    assert_eq!(versions, 2);
}

fn an_edit_of_a_delivered_review_is_queued_again_and_keeps_the_delivery(ledger, db) {
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

fn reviews_of_an_unmapped_location_are_held_with_the_reason(ledger, db) {
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

fn quarantine_stores_a_raw_record_once_and_counts_sightings(ledger, db) {
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

    let rows = db.rows(
        "SELECT raw, seen_count, first_seen_at, last_seen_at, raw_hash FROM quarantine ORDER BY id",
        &[],
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0].text().unwrap(), r#"{"starRating":7}"#);
    assert_eq!(rows[0][1].int(), 2);
    assert_eq!(rows[0][2].text().unwrap(), "2026-11-24T10:00:00.000Z");
    assert_eq!(rows[0][3].text().unwrap(), "2026-11-24T10:15:00.000Z");
    assert_eq!(rows[0][4].text().unwrap().len(), 64, "hex sha-256");
    assert_eq!(rows[1][1].int(), 1);
    assert_eq!(ledger.stats().unwrap().quarantined, 2);
}

fn a_page_is_one_transaction(ledger, db) {
    // Make the second insert fail (e.g. a full disk would) with a trigger.
    db.exec(db.dialect(
        "CREATE TRIGGER boom BEFORE INSERT ON reviews WHEN NEW.review_id = 'r2'
         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.review_id = 'r2' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER boom BEFORE INSERT ON reviews FOR EACH ROW EXECUTE FUNCTION boom();",
    ));
    let result = ledger.record_page(&page(vec![review("r1", "h1"), review("r2", "h2")]), t0());
    let e = result.expect_err("the page fails");
    assert!(e.to_string().contains("boom"), "{e}");
    assert_eq!(
        ledger.stats().unwrap().total,
        0,
        "r1 was rolled back with r2"
    );
}

fn a_review_seen_again_is_no_longer_removed(ledger, db) {
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
fn an_incremental_page_writes_nothing_for_unchanged_reviews(ledger, db) {
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
    let last_seen = |id: &str| -> String {
        db.text("SELECT last_seen_at FROM reviews WHERE review_id = ?1", &[id])
            .unwrap()
    };
    // Any write gives the row a new version: SQLite counts changed rows,
    // PostgreSQL gives the row a new xmin.
    let written = |ledger: &Ledger| -> String {
        match db.kind {
            Kind::Sqlite => ledger.sqlite().unwrap().conn().total_changes().to_string(),
            Kind::Postgres => db
                .text("SELECT xmin::text FROM reviews WHERE review_id = 'r1'", &[])
                .unwrap(),
        }
    };
    let (r1_before, written_before) = (last_seen("r1"), written(&ledger));

    let tick = reconcile + Duration::hours(1);
    let counts = ledger
        .record_page_as(&page(vec![review("r1", "h1")]), tick, Sightings::Skip)
        .unwrap();
    assert_eq!(counts.unchanged, 1);
    assert_eq!(last_seen("r1"), r1_before, "not stamped");
    assert_eq!(written(&ledger), written_before, "no row written");

    // A removed review listed again is un-marked even so (and stamped).
    ledger
        .record_page_as(&page(vec![review("r2", "h2")]), tick, Sightings::Skip)
        .unwrap();
    assert_eq!(row(&ledger, "r2").removed_at, None);
    assert_eq!(last_seen("r2"), time::to_text(tick));

    // A reconciliation stamps what it sees.
    let next = tick + Duration::days(1);
    ledger
        .record_page_as(&page(vec![review("r1", "h1")]), next, Sightings::Stamp)
        .unwrap();
    assert_eq!(last_seen("r1"), time::to_text(next));
}
}
