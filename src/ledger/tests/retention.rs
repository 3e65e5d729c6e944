//! Retention (`retention.rs` of each engine): the reviewer's text and name
//! removed from old deliveries, nothing else, and every purge recorded.

use super::*;

both_engines! {
fn purge_removes_text_and_names_of_old_deliveries_only(l, db) {
    seed(&mut l);
    let before = l.show("google", "old1").unwrap().unwrap().0;
    let now = at("2026-07-01T00:00:00Z");
    let n = l
        .purge_text(at("2026-03-01T00:00:00Z"), now, PurgedBy::Cli)
        .unwrap();
    assert_eq!(n, 2);
    let old = payload(&l, "old1");
    for f in PURGED_FIELDS {
        assert!(old["review"].get(f).is_none(), "{f} purged: {old}");
    }
    assert_eq!(old["review"]["rating"], 4);
    assert_eq!(old["review"]["review_id"], "old1");
    assert_eq!(old["group_external_ref"], "g1");
    assert_eq!(old["review"]["created_datetime"], "2026-01-01T00:00:00");
    let after = l.show("google", "old1").unwrap().unwrap().0;
    assert_eq!(after.content_hash, before.content_hash, "hash kept");
    assert_eq!(after.request_id, before.request_id);
    assert_eq!(after.delivered_at, before.delivered_at);
    assert_eq!(l.text_purged_at("google", "old1").unwrap(), Some(now));
    // Newer deliveries and undelivered rows keep their text.
    assert_eq!(payload(&l, "new1")["review"]["comment"], "fine");
    assert_eq!(payload(&l, "pend")["review"]["display_name"], "Ann pend");
    assert_eq!(l.text_purged_at("google", "new1").unwrap(), None);
    // Notes are not personal data and stay.
    let notes = db.text("SELECT notes FROM reviews WHERE review_id = 'old1'", &[]);
    assert_eq!(notes.as_deref(), Some(r#"{"excerpt":"true"}"#));
    assert_eq!(
        l.purges().unwrap(),
        vec![PurgeRow {
            purged_at: now,
            cutoff: at("2026-03-01T00:00:00Z"),
            rows_purged: 2,
            purged_by: PurgedBy::Cli,
        }]
    );
}

fn a_purged_review_seen_again_is_unchanged_and_an_edit_brings_text_back(l, db) {
    seed(&mut l);
    l.purge_text(
        at("2026-03-01T00:00:00Z"),
        at("2026-07-01T00:00:00Z"),
        PurgedBy::Daemon,
    )
    .unwrap();
    let now = at("2026-07-02T00:00:00Z");
    let counts = l
        .record_page(&acme(vec![texted("old1", "h1", "great flat")]), now)
        .unwrap();
    assert_eq!((counts.unchanged, counts.edited), (1, 0), "nothing to send");
    assert_eq!(l.claim_due(now, now, 10).unwrap().len(), 1, "only `pend`");

    let counts = l
        .record_page(&acme(vec![texted("old2", "h2b", "quieter now")]), now)
        .unwrap();
    assert_eq!(counts.edited, 1);
    assert_eq!(payload(&l, "old2")["review"]["comment"], "quieter now");
    assert_eq!(
        l.text_purged_at("google", "old2").unwrap(),
        None,
        "an edit holds text again"
    );
}

fn purging_again_finds_nothing_and_is_still_recorded(l, db) {
    seed(&mut l);
    let cutoff = at("2026-12-01T00:00:00Z");
    assert_eq!(l.purge_text(cutoff, cutoff, PurgedBy::Cli).unwrap(), 3);
    assert_eq!(l.purge_text(cutoff, cutoff, PurgedBy::Daemon).unwrap(), 0);
    let purges = l.purges().unwrap();
    assert_eq!(purges.len(), 2);
    assert_eq!(purges[1].rows_purged, 0);
    assert_eq!(purges[1].purged_by, PurgedBy::Daemon);
}

/// Text put back by hand into a purged row is purged again; a row
/// whose body is not JSON is left alone and not counted.
fn text_edited_back_into_a_purged_row_is_found_again(l, db) {
    seed(&mut l);
    let cutoff = at("2026-03-01T00:00:00Z");
    assert_eq!(l.purge_text(cutoff, cutoff, PurgedBy::Cli).unwrap(), 2);
    db.exec(
        r#"UPDATE reviews SET payload = '{"review":{"title":"back"}}' WHERE review_id = 'old1';
           UPDATE reviews SET payload = 'not json', text_purged_at = NULL WHERE review_id = 'old2';"#,
    );
    assert_eq!(l.purge_text(cutoff, cutoff, PurgedBy::Cli).unwrap(), 1);
    assert_eq!(payload(&l, "old1"), serde_json::json!({"review": {}}));
    let (row, _) = l.show("google", "old2").unwrap().unwrap();
    assert_eq!(row.payload, "not json");
}

fn a_purge_larger_than_a_batch_purges_every_row(l, db) {
    let t = at("2026-01-10T00:00:00Z");
    let n = 1234;
    let reviews: Vec<_> = (0..n)
        .map(|i| texted(&format!("r{i}"), &format!("h{i}"), "text"))
        .collect();
    l.record_page(&acme(reviews), t).unwrap();
    let attempts: Vec<_> = (0..n)
        .map(|i| delivered_at(&format!("r{i}"), &format!("h{i}"), t))
        .collect();
    l.record_attempts(&attempts).unwrap();
    let purged = l
        .purge_text(t + Duration::days(1), t + Duration::days(2), PurgedBy::Cli)
        .unwrap();
    assert_eq!(purged, n);
    let left = db.int(
        db.dialect(
            "SELECT COUNT(*) FROM reviews WHERE json_type(payload, '$.review.comment') IS NOT NULL",
            "SELECT COUNT(*) FROM reviews WHERE payload::jsonb #> '{review,comment}' IS NOT NULL",
        ),
        &[],
    );
    assert_eq!(left, 0);
    assert_eq!(l.purges().unwrap()[0].rows_purged, n);
}
}

fn texted(id: &str, hash: &str, comment: &str) -> IncomingReview {
    IncomingReview {
        platform: "google".into(),
        review_id: id.into(),
        payload: format!(
            r#"{{"group_external_ref":"g1","channel":"review","review":{{"source":"google","review_id":"{id}","title":"T {id}","comment":"{comment}","rating":4,"display_name":"Ann {id}","is_anonymous":false,"created_datetime":"2026-01-01T00:00:00"}}}}"#
        ),
        content_hash: hash.into(),
        source_updated_at: Some(at("2026-01-01T00:00:00Z")),
        notes: Some(r#"{"excerpt":"true"}"#.into()),
    }
}

fn acme(reviews: Vec<IncomingReview>) -> PageRecord {
    PageRecord {
        source_name: "acme".into(),
        location_id: "loc".into(),
        group: Some(crate::domain::GroupRef::ExternalRef("g1".into())),
        hold_reason: None,
        reviews,
        quarantined: vec![],
    }
}

fn delivered_at(id: &str, hash: &str, when: DateTime<Utc>) -> AttemptRecord {
    AttemptRecord {
        platform: "google".into(),
        review_id: id.into(),
        content_hash: hash.into(),
        attempted_at: when,
        http_status: Some(201),
        error_type: None,
        error_message: None,
        request_id: Some(format!("req-{id}")),
        duration_ms: 3,
        outcome: AttemptOutcome::Delivered {
            request_id: format!("req-{id}"),
        },
        sent: crate::ledger::SentAs::default(),
    }
}

fn payload(ledger: &Ledger, id: &str) -> serde_json::Value {
    let (row, _) = ledger.show("google", id).unwrap().unwrap();
    serde_json::from_str(&row.payload).unwrap()
}

/// old1/old2 delivered in January, new1 delivered in June, pend pending.
fn seed(l: &mut Ledger) {
    let t = at("2026-01-10T00:00:00Z");
    l.record_page(
        &acme(vec![
            texted("old1", "h1", "great flat"),
            texted("old2", "h2", "noisy"),
            texted("new1", "h3", "fine"),
            texted("pend", "h4", "waiting"),
        ]),
        t,
    )
    .unwrap();
    l.record_attempts(&[
        delivered_at("old1", "h1", t),
        delivered_at("old2", "h2", t),
        delivered_at("new1", "h3", at("2026-06-01T00:00:00Z")),
    ])
    .unwrap();
}
