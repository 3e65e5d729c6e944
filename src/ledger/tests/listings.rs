//! The poll log's retention (`listings.rs`).

use super::*;

both_engines! {
fn poll_log_rows_older_than_the_cutoff_are_deleted_in_batches(ledger, db) {
    let old = POLL_BATCH + 3;
    for i in 0..old {
        let log = PollLog {
            source_name: "s".into(),
            location_id: format!("old-{i}"),
            started_at: t0() - Duration::days(100),
            ended_at: t0() - Duration::days(100),
            ..PollLog::default()
        };
        ledger.finish_poll(&log, None).unwrap();
    }
    let recent = PollLog {
        source_name: "s".into(),
        location_id: "recent".into(),
        started_at: t0(),
        ended_at: t0(),
        ..PollLog::default()
    };
    ledger.finish_poll(&recent, None).unwrap();
    let cutoff = t0() - Duration::days(90);
    assert_eq!(ledger.delete_polls_step(cutoff).unwrap(), POLL_BATCH);
    assert_eq!(ledger.delete_polls_step(cutoff).unwrap(), 3);
    assert_eq!(ledger.delete_polls_step(cutoff).unwrap(), 0);
    let mut left = Vec::new();
    ledger
        .for_each_poll(
            &LogFilter::default(),
            &mut |p| {
                left.push(p.location_id.clone());
                Ok(())
            },
            &mut |e| panic!("{e}"),
        )
        .unwrap();
    assert_eq!(left, ["recent"]);
}
}
