//! Tests of the ledger against real SQLite files in a temporary directory,
//! checked the way auditors see them: through a plain second connection.
//! One file per file of the ledger; the helpers shared by all are here.

use super::*;
use crate::domain::GroupRef;
use chrono::{DateTime, Duration, Utc};
use rusqlite::Connection;
use std::os::unix::fs::PermissionsExt;
use tempfile::TempDir;

mod delivery;
mod handle;
mod listings;
mod migrations;
mod polls;
mod queries;
mod reviews;

// ---------------------------------------------------------------- helpers

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const T0: &str = "2026-11-24T10:00:00Z";

fn t0() -> DateTime<Utc> {
    at(T0)
}

fn fresh() -> (TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    (dir, ledger)
}

/// A second, plain connection: what `sqlite3` would see.
fn raw(ledger: &Ledger) -> Connection {
    Connection::open(ledger.path()).unwrap()
}

fn ext(g: &str) -> Option<GroupRef> {
    Some(GroupRef::ExternalRef(g.to_owned()))
}

fn review(id: &str, hash: &str) -> IncomingReview {
    IncomingReview {
        platform: "google".into(),
        review_id: id.into(),
        payload: format!(
            r#"{{"group_external_ref":"g1","channel":"review","review":{{"source":"google","review_id":"{id}","comment":"{hash}"}}}}"#
        ),
        content_hash: hash.into(),
        source_updated_at: Some(at("2026-11-01T08:00:00Z")),
        notes: None,
    }
}

fn page_at(location: &str, group: Option<GroupRef>, reviews: Vec<IncomingReview>) -> PageRecord {
    PageRecord {
        source_name: "acme-google".into(),
        location_id: location.into(),
        hold_reason: group
            .is_none()
            .then(|| format!("location {location} is not mapped to a group")),
        group,
        reviews,
        quarantined: vec![],
    }
}

fn page(reviews: Vec<IncomingReview>) -> PageRecord {
    page_at("loc-1", ext("g1"), reviews)
}

fn attempt(id: &str, hash: &str, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        platform: "google".into(),
        review_id: id.into(),
        content_hash: hash.into(),
        attempted_at: t0() + Duration::seconds(5),
        http_status: None,
        error_type: None,
        error_message: None,
        request_id: None,
        duration_ms: 42,
        outcome,
        sent: SentAs::default(),
    }
}

fn failed(id: &str, hash: &str, status: u16, kind: &str, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        http_status: Some(status),
        error_type: Some(kind.into()),
        error_message: Some("the API said no".into()),
        ..attempt(id, hash, outcome)
    }
}

fn row(ledger: &Ledger, id: &str) -> ReviewRow {
    ledger.show("google", id).unwrap().expect("row exists").0
}

fn list(ledger: &Ledger, filter: &ReviewFilter) -> Vec<String> {
    let mut ids = Vec::new();
    ledger
        .for_each_review(filter, &mut |r| {
            ids.push(r.review_id.clone());
            Ok(())
        })
        .unwrap();
    ids
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap();
    st.query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
