//! `ledger backup` (`backup.rs` of each engine): a private, checked,
//! single-file SQLite copy, from either engine.

use super::*;
use std::os::unix::fs::PermissionsExt;

both_engines! {
fn a_backup_is_a_private_checked_single_file_copy(ledger, db) {
    fill(&mut ledger, 25);
    ledger
        .record_attempts(&[attempt(
            "r3",
            "h3",
            AttemptOutcome::Delivered {
                request_id: "q3".into(),
            },
        )])
        .unwrap();
    let dest = db.dir.path().join("copy.db");
    let report = ledger.backup_to(&dest, false).unwrap();
    assert_eq!(report.reviews, 25);
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let copy = Ledger::open_readonly(&dest).unwrap();
    assert_eq!(copy.stats().unwrap().total, 25);
    assert_eq!(copy.schema_version().unwrap(), ledger.schema_version().unwrap());
    // Every column came across, the audit trail with it.
    let (original, attempts) = ledger.show("google", "r3").unwrap().unwrap();
    let (copied, copied_attempts) = copy.show("google", "r3").unwrap().unwrap();
    assert_eq!(format!("{copied:?}"), format!("{original:?}"));
    assert_eq!(format!("{copied_attempts:?}"), format!("{attempts:?}"));
    let mode: String = rusqlite::Connection::open(&dest)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let leftovers: Vec<_> = std::fs::read_dir(db.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn an_existing_file_is_kept_unless_forced(ledger, db) {
    fill(&mut ledger, 3);
    let dest = db.dir.path().join("copy.db");
    std::fs::write(&dest, "precious").unwrap();
    let e = ledger.backup_to(&dest, false).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "precious");
    assert_eq!(ledger.backup_to(&dest, true).unwrap().reviews, 3);
}
}

fn fill(ledger: &mut Ledger, n: usize) {
    let reviews = (0..n)
        .map(|i| review(&format!("r{i}"), &format!("h{i}")))
        .collect();
    ledger.record_page(&page(reviews), t0()).unwrap();
}
