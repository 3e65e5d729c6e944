//! A review's and an attempt's fields as `list`, `show` and `export`
//! print them: the columns in SPEC order, and their JSON objects.

use review_sync::ledger::{AttemptRow, ReviewRow, format_time};

pub(super) fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    t.map(format_time)
}

/// The columns shown by `list`, `show` and exports, in SPEC order.
pub(super) fn row_fields(r: &ReviewRow) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("platform", Some(r.platform.clone())),
        ("review_id", Some(r.review_id.clone())),
        ("source_name", Some(r.source_name.clone())),
        ("location_id", Some(r.location_id.clone())),
        ("group_id", r.group_id.clone()),
        ("group_external_ref", r.group_external_ref.clone()),
        ("status", Some(r.status.as_str().to_owned())),
        ("content_hash", Some(r.content_hash.clone())),
        ("first_seen_at", Some(format_time(r.first_seen_at))),
        ("source_updated_at", opt_time(r.source_updated_at)),
        ("delivered_at", opt_time(r.delivered_at)),
        ("request_id", r.request_id.clone()),
        ("attempts", Some(r.attempts.to_string())),
        ("last_error", r.last_error.clone()),
        ("removed_at", opt_time(r.removed_at)),
        ("notes", r.notes.clone()),
    ]
}

pub(super) fn row_fields_header() -> Vec<&'static str> {
    vec![
        "platform",
        "review_id",
        "source_name",
        "location_id",
        "group_id",
        "group_external_ref",
        "status",
        "content_hash",
        "first_seen_at",
        "source_updated_at",
        "delivered_at",
        "request_id",
        "attempts",
        "last_error",
        "removed_at",
        "notes",
    ]
}

/// A review's JSON object; with the payload, it is the parsed body (an
/// object), or the stored text when that is not JSON.
pub(super) fn row_json(r: &ReviewRow, with_payload: bool) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in row_fields(r) {
        let value = match (k, v) {
            ("attempts", _) => serde_json::Value::from(r.attempts),
            (_, Some(v)) => serde_json::Value::from(v),
            (_, None) => serde_json::Value::Null,
        };
        m.insert(k.to_owned(), value);
    }
    if with_payload {
        m.insert("payload".into(), payload_value(&r.payload));
    }
    serde_json::Value::Object(m)
}

pub(super) fn payload_value(payload: &str) -> serde_json::Value {
    serde_json::from_str(payload).unwrap_or_else(|_| payload.into())
}

pub(super) fn attempt_json(a: &AttemptRow) -> serde_json::Value {
    serde_json::json!({
        "platform": a.platform,
        "review_id": a.review_id,
        "attempted_at": format_time(a.attempted_at),
        "content_hash": a.content_hash,
        "group_id": a.group_id,
        "group_external_ref": a.group_external_ref,
        "body_hash": a.body_hash,
        "http_status": a.http_status,
        "outcome": a.outcome,
        "error_type": a.error_type,
        "error_message": a.error_message,
        "request_id": a.request_id,
        "duration_ms": a.duration_ms,
        "id": a.id,
    })
}
