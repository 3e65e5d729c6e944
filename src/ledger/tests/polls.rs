//! Poll state and the poll log (`polls.rs`).

use super::*;

both_engines! {
fn poll_state_round_trips_and_the_log_is_readable_by_auditors(ledger, db) {
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

    let kinds = db.rows("SELECT kind, removed FROM polls ORDER BY id", &[]);
    let reconcile = vec![Val::Text("reconcile".into()), Val::Int(2)];
    assert_eq!(kinds, [reconcile.clone(), reconcile]);
    let rows = db.rows("SELECT new, edited, gap, error FROM polls ORDER BY id", &[]);
    assert_eq!(
        rows,
        [
            [Val::Int(5), Val::Int(1), Val::Int(1), Val::Null],
            [Val::Int(5), Val::Int(1), Val::Null, Val::Text("HTTP 503".into())]
        ]
    );
    let updated = db.text("SELECT updated_at FROM poll_state", &[]);
    assert_eq!(updated.as_deref(), Some("2026-11-24T10:00:03.000Z"));
}
}
