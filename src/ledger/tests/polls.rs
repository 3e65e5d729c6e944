//! Poll state and the poll log (`polls.rs`).

use super::*;

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
