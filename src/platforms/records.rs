//! What every platform's wire mapping shares: finding the array of records
//! in an answer, and mapping the records one by one so that a bad one is
//! quarantined (raw, with the reason) while the rest of the page goes on.

use super::{FetchedPage, PlatformError, json_kind, plausible_time, review_time_problem};
use crate::domain::{Rejected, Review};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Why a record could not become a review: its id when it had a readable
/// one, and "<field>: <what is wrong>".
pub(crate) type Refusal = (Option<String>, String);

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
    /// The oldest creation time on the page, rejected records included when
    /// theirs is readable and plausible (the incremental stop compares it
    /// with the high-water mark).
    pub oldest: Option<DateTime<Utc>>,
    /// The newest one, likewise.
    pub newest: Option<DateTime<Utc>>,
}

/// Maps `items` with `map`. A review whose times are implausible is refused
/// too ([`review_time_problem`]). A refused record is kept raw, named by its
/// id, or by `unnamed(index)` (0-based) when it has none, and counts for
/// `oldest`/`newest` with the time `refused_time` reads from it, when
/// plausible.
pub(crate) fn map_records(
    items: &[Value],
    map: impl Fn(&Value) -> Result<Review, Refusal>,
    unnamed: impl Fn(usize) -> String,
    refused_time: impl Fn(&Value) -> Option<DateTime<Utc>>,
) -> MappedRecords {
    let mut out = MappedRecords::default();
    for (index, item) in items.iter().enumerate() {
        let checked = map(item).and_then(|r| match review_time_problem(&r) {
            None => Ok(r),
            Some(reason) => Err((Some(r.review_id.to_string()), reason)),
        });
        let created = match checked {
            Ok(review) => {
                let created = review.created_at;
                out.page.reviews.push(review);
                Some(created)
            }
            Err((id, reason)) => {
                out.page.rejected.push(Rejected {
                    reference: id.unwrap_or_else(|| unnamed(index)),
                    reason,
                    raw: item.to_string(),
                });
                refused_time(item).and_then(plausible_time)
            }
        };
        if let Some(t) = created {
            out.oldest = Some(out.oldest.map_or(t, |o| o.min(t)));
            out.newest = Some(out.newest.map_or(t, |n| n.max(t)));
        }
    }
    out
}
