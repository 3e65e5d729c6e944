//! What the platforms share in reading the records of an answer: finding
//! the array of records, mapping them one by one so that a bad one is
//! quarantined (raw, with the reason) while the rest of the page goes on,
//! the checks every record passes (its id, its times), and the small readers
//! of JSON fields that name the field in a refusal. A platform's `wire`
//! module only says how to map one record.

use super::{FetchedPage, PlatformError};
use crate::domain::{Rejected, Review};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Why a record could not become a review: its id when it had a readable
/// one, and "<field>: <what is wrong>".
pub(crate) type Refusal = (Option<String>, String);

/// The longest review id we accept, in bytes. Real ids are far shorter
/// (Google's encrypted ids run to ~100); a longer one is garbage, and it ends
/// up in the ledger's primary key and in every idempotency key.
pub const MAX_REVIEW_ID_BYTES: usize = 1024;

/// Checks a platform's review id before it becomes a [`crate::domain::ReviewId`]:
/// not empty, at most [`MAX_REVIEW_ID_BYTES`], no control characters (which
/// would corrupt logs, CSV exports and the `Idempotency-Key` header).
/// The error says what is wrong, for a quarantine reason.
pub fn check_review_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty".into());
    }
    if id.len() > MAX_REVIEW_ID_BYTES {
        return Err(format!(
            "{} bytes, more than {MAX_REVIEW_ID_BYTES}",
            id.len()
        ));
    }
    if id.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(())
}

/// `id`, read from `field`, checked ([`check_review_id`]): the refusal
/// names the field.
pub(crate) fn checked_id(field: &str, id: &str) -> Result<String, String> {
    check_review_id(id).map_err(|e| format!("{field}: {e}"))?;
    Ok(id.to_owned())
}

/// The review id in the string field `key` of a record, checked; `missing`
/// is the refusal when there is none.
pub(crate) fn id_field(
    obj: &Map<String, Value>,
    key: &str,
    missing: &str,
) -> Result<String, String> {
    let id = opt_str(obj, key)?.ok_or_else(|| missing.to_owned())?;
    checked_id(key, id)
}

/// Why a mapped review's times are implausible at `now` (before 2000, or
/// more than a day ahead: [`crate::timestamps::check_review_time`]), naming
/// the field; `None` when they are fine. Every platform's records pass it,
/// so a clock-skewed or hostile record is quarantined instead of sent, and
/// its time never becomes a location's high-water mark.
pub(crate) fn review_time_problem(review: &Review, now: DateTime<Utc>) -> Option<String> {
    if let Err(e) = crate::timestamps::check_review_time(review.created_at, now) {
        return Some(format!("created time: {e}"));
    }
    let updated = review.updated_at?;
    crate::timestamps::check_review_time(updated, now)
        .err()
        .map(|e| format!("updated time: {e}"))
}

/// A time read from a rejected record, kept for the incremental stop rule
/// only when it is plausible at `now`.
pub(crate) fn plausible_time(t: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    crate::timestamps::check_review_time(t, now)
        .is_ok()
        .then_some(t)
}

/// The object `json` (`what` names it in the error) and its `key` array of
/// records. Platforms omit empty arrays, so an absent or null `key` is no
/// records; anything else but an array is an error for the whole answer.
pub(crate) fn record_array<'a>(
    json: &'a Value,
    what: &str,
    key: &str,
) -> Result<(&'a Map<String, Value>, &'a [Value]), PlatformError> {
    let Value::Object(top) = json else {
        return Err(PlatformError::InvalidResponse(format!(
            "{what} is {}, not an object",
            json_kind(json)
        )));
    };
    match top.get(key) {
        None | Some(Value::Null) => Ok((top, &[])),
        Some(Value::Array(items)) => Ok((top, items)),
        Some(other) => Err(PlatformError::InvalidResponse(format!(
            "{key} is {}, not an array",
            json_kind(other)
        ))),
    }
}

/// The records of one answer, mapped.
#[derive(Debug, Default)]
pub(crate) struct MappedRecords {
    /// The reviews and the rejected records (no reported total).
    pub page: FetchedPage,
    /// Records in the answer, good and bad.
    pub records: usize,
    /// The oldest record time on the page ([`RecordReader::order_time`]),
    /// rejected records included when theirs is readable and plausible
    /// (the incremental stop compares it with the high-water mark).
    pub oldest: Option<DateTime<Utc>>,
    /// The newest one, likewise.
    pub newest: Option<DateTime<Utc>>,
}

/// How a platform reads one record of its answers.
pub(crate) trait RecordReader {
    /// The record as a review, or why not.
    fn map(&self, item: &Value) -> Result<Review, Refusal>;
    /// The reference of a refused record without a readable id, by its
    /// 0-based index on the page ("item 3", "page 2 item 3").
    fn unnamed(&self, index: usize) -> String;
    /// The time a refused record would sort by, when one can be read.
    fn refused_time(&self, item: &Value) -> Option<DateTime<Utc>> {
        let _ = item;
        None
    }
    /// The time a review sorts by on the platform's pages (creation, unless
    /// the platform orders by update).
    fn order_time(&self, review: &Review) -> DateTime<Utc> {
        review.created_at
    }
}

/// Maps `items` with `reader` at `now`. A review whose times are implausible
/// at `now` is refused too ([`review_time_problem`]). A refused record is
/// kept raw, named by its id, or by [`RecordReader::unnamed`] when it has
/// none, and counts for `oldest`/`newest` with the time
/// [`RecordReader::refused_time`] reads from it, when plausible.
pub(crate) fn map_records(
    items: &[Value],
    reader: &impl RecordReader,
    now: DateTime<Utc>,
) -> MappedRecords {
    let mut out = MappedRecords {
        records: items.len(),
        ..MappedRecords::default()
    };
    for (index, item) in items.iter().enumerate() {
        let checked = reader
            .map(item)
            .and_then(|r| match review_time_problem(&r, now) {
                None => Ok(r),
                Some(reason) => Err((Some(r.review_id.to_string()), reason)),
            });
        let time = match checked {
            Ok(review) => {
                let time = reader.order_time(&review);
                out.page.reviews.push(review);
                Some(time)
            }
            Err((id, reason)) => {
                out.page.rejected.push(Rejected {
                    reference: id.unwrap_or_else(|| reader.unnamed(index)),
                    reason,
                    raw: item.to_string(),
                });
                reader
                    .refused_time(item)
                    .and_then(|t| plausible_time(t, now))
            }
        };
        if let Some(t) = time {
            out.oldest = Some(out.oldest.map_or(t, |o| o.min(t)));
            out.newest = Some(out.newest.map_or(t, |n| n.max(t)));
        }
    }
    out
}

/// A JSON value's type in words, for rejection reasons ("a number is not a
/// string"). Never the value itself: it may be long or personal.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field of a platform record; `Err("<key>: ...")` when present
/// with another type. JSON `null` is absent.
pub(crate) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key}: {} is not a string", json_kind(other))),
    }
}

/// Trimmed text, `None` when nothing is left.
pub(crate) fn non_blank(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// At most `max` characters of a platform's error message, for an error.
pub(crate) fn short_message(message: &str, max: usize) -> String {
    let mut out: String = message.chars().take(max).collect();
    if message.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Platform, ReviewId};
    use chrono::TimeZone;

    fn review(created: DateTime<Utc>, updated: Option<DateTime<Utc>>) -> Review {
        Review {
            platform: Platform::new("yelp"),
            review_id: ReviewId::new("r"),
            title: None,
            comment: None,
            rating: None,
            display_name: None,
            is_anonymous: None,
            created_at: created,
            updated_at: updated,
            notes: Default::default(),
        }
    }

    #[test]
    fn plausible_times_pass_and_implausible_ones_name_their_field() {
        let now = Utc::now();
        let ok = Utc
            .with_ymd_and_hms(2024, 5, 1, 0, 0, 0)
            .single()
            .expect("date");
        let old = Utc
            .with_ymd_and_hms(1999, 5, 1, 0, 0, 0)
            .single()
            .expect("date");
        let future = now + chrono::Duration::days(30);
        assert_eq!(review_time_problem(&review(ok, Some(ok)), now), None);
        assert!(
            review_time_problem(&review(old, None), now)
                .is_some_and(|r| r.starts_with("created time:"))
        );
        assert!(
            review_time_problem(&review(ok, Some(future)), now)
                .is_some_and(|r| r.starts_with("updated time:"))
        );
        assert_eq!(plausible_time(ok, now), Some(ok));
        assert_eq!(plausible_time(future, now), None);
    }

    #[test]
    fn ids_are_read_from_their_field_and_checked() {
        let obj = |v: Value| v.as_object().cloned().expect("object");
        let record = obj(serde_json::json!({"id": "r1", "bad": "a\u{0}b", "n": 3}));
        assert_eq!(id_field(&record, "id", "id: missing"), Ok("r1".into()));
        assert_eq!(
            id_field(&record, "name", "name: missing"),
            Err("name: missing".into())
        );
        assert_eq!(
            id_field(&record, "bad", "-"),
            Err("bad: contains control characters".into())
        );
        assert_eq!(
            id_field(&record, "n", "-"),
            Err("n: a number is not a string".into())
        );
    }
}
