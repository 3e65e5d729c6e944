//! Graph's ratings page (`{"data":[Recommendation...],"paging":{...}}`),
//! turned into domain [`Review`]s (or [`Rejected`](crate::domain::Rejected) records) right here.
//! Records are read field by field so that a bad field is named in the
//! rejection reason and the rest of the page goes on.
//!
//! The mapping:
//! - the review id is `open_graph_story.id` (what the ratings webhook calls
//!   `open_graph_story_id`). Ratings from before December 2018 have no
//!   story even when it is asked for, and Graph's default fields never
//!   include one; their id is derived (`notes["derived_id"]` says from
//!   what), stable across polls:
//!   - with a `reviewer.id`: `fb-` + the first 32 hex digits of SHA-256 over
//!     the reviewer id and the UTC `created_time` ([`derived_id`]);
//!   - without one either (Graph often withholds the reviewer): `fbp-` + the
//!     first 32 hex digits of SHA-256 over the Page id, the UTC
//!     `created_time` to the second and the text as sent (trimmed; empty
//!     when none) ([`page_derived_id`]). Its limits: two ratings of one Page
//!     with the same text in the same second get one id (the second is
//!     taken for a repeat of the first), and a rating whose text is edited
//!     gets a new id (it is delivered again, as a new review; the old one
//!     stays delivered). The same rating read through another Page id (a
//!     Page that moved) is another review;
//! - `created_time` (`2016-03-11T23:14:30+0000`, any `+HHMM`/`+HH:MM`
//!   offset) is the creation time. Graph has no update time;
//! - the rating is the legacy 1..5 `rating` field, else the story's
//!   `data.rating` (`{value, scale}`, scaled to five stars): a field-filtered
//!   rating can carry its stars only there. A positive/negative
//!   recommendation has neither, and no star rating is invented;
//!   `recommendation_type` is kept in `notes`;
//! - `review_text` (else the story's `data.review_text`) is the comment;
//! - `reviewer.name` is the display name, when Graph shows it.
//!
//! No title, no anonymity flag. JSON `null` means absent for every field.

use super::super::records::{
    RecordReader, Refusal, check_review_id, json_kind, map_records, non_blank, opt_str,
    record_array,
};
use super::super::{FetchedPage, PlatformError};
use crate::domain::{Platform, Rating, Review, ReviewId};
use crate::timestamps::{self, TimestampError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The `review.source` of Facebook reviews.
pub(super) const PLATFORM: &str = "facebook";

/// Hex digits of the derived id's hash: 128 bits, no collisions in practice.
const DERIVED_ID_HEX: usize = 32;

/// One ratings page, mapped.
#[derive(Debug)]
pub(super) struct MappedPage {
    /// The reviews and rejected records.
    pub page: FetchedPage,
    /// Records on the page, good and bad.
    pub records: usize,
    /// The `after` cursor of the next page; `None` on the last page (no
    /// `paging.next`).
    pub next_cursor: Option<String>,
    /// The oldest `created_time` on the page (rejected records included,
    /// when readable).
    pub oldest: Option<DateTime<Utc>>,
    /// The newest one.
    pub newest: Option<DateTime<Utc>>,
}

/// Maps one page of the Page `page_id` (ratings without a story or a
/// reviewer get ids derived from it). `page_number` (1-based) names records
/// without a readable id in rejections. Only a page whose shape is wrong is
/// an error.
pub(super) fn map_page(
    json: &Value,
    page_number: u32,
    page_id: &str,
) -> Result<MappedPage, PlatformError> {
    let (top, items) = record_array(json, "ratings page", "data")?;
    let next_cursor = next_cursor(top.get("paging"))?;
    let mapped = map_records(
        items,
        &Recommendations {
            page_id,
            page_number,
        },
        Utc::now(),
    );
    Ok(MappedPage {
        page: mapped.page,
        records: mapped.records,
        next_cursor,
        oldest: mapped.oldest,
        newest: mapped.newest,
    })
}

/// How a recommendation of one ratings page of a Page reads.
struct Recommendations<'a> {
    page_id: &'a str,
    page_number: u32,
}

impl RecordReader for Recommendations<'_> {
    fn map(&self, item: &Value) -> Result<Review, Refusal> {
        map_recommendation(item, self.page_id)
    }
    fn unnamed(&self, index: usize) -> String {
        format!("page {} item {}", self.page_number, index + 1)
    }
    fn refused_time(&self, item: &Value) -> Option<DateTime<Utc>> {
        item.get("created_time")
            .and_then(Value::as_str)
            .and_then(|t| parse_graph_time(t).ok())
    }
}

/// The `after` cursor when there is a next page: `paging.cursors.after`, or
/// the `after` parameter of `paging.next` (read, never followed: it carries
/// the access token).
fn next_cursor(paging: Option<&Value>) -> Result<Option<String>, PlatformError> {
    let paging = match paging {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(paging)) => paging,
        Some(other) => {
            return Err(PlatformError::InvalidResponse(format!(
                "paging is {}, not an object",
                json_kind(other)
            )));
        }
    };
    let next = match paging.get("next") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(next)) if next.is_empty() => return Ok(None),
        Some(Value::String(next)) => next,
        Some(other) => {
            return Err(PlatformError::InvalidResponse(format!(
                "paging.next is {}, not a string",
                json_kind(other)
            )));
        }
    };
    let from_cursors = paging
        .get("cursors")
        .and_then(|c| c.get("after"))
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty());
    if let Some(after) = from_cursors {
        return Ok(Some(after.to_owned()));
    }
    let from_next = url::Url::parse(next).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "after")
            .map(|(_, v)| v.into_owned())
            .filter(|a| !a.is_empty())
    });
    from_next
        .map(Some)
        .ok_or_else(|| PlatformError::InvalidResponse("paging.next without an after cursor".into()))
}

/// One recommendation of the Page `page_id`, or why not (with its id when
/// readable).
fn map_recommendation(item: &Value, page_id: &str) -> Result<Review, Refusal> {
    let Value::Object(obj) = item else {
        return Err((
            None,
            format!("recommendation: {} is not an object", json_kind(item)),
        ));
    };
    let story = match obj.get("open_graph_story") {
        None | Some(Value::Null) => None,
        Some(Value::Object(story)) => Some(story),
        Some(other) => {
            return Err((
                None,
                format!("open_graph_story: {} is not an object", json_kind(other)),
            ));
        }
    };
    let story_id = match story {
        Some(story) => {
            graph_id(story, "id").map_err(|e| (None, format!("open_graph_story.{e}")))?
        }
        None => None,
    };
    let reviewer = match obj.get("reviewer") {
        None | Some(Value::Null) => None,
        Some(Value::Object(reviewer)) => Some(reviewer),
        Some(other) => {
            return Err((
                story_id.clone(),
                format!("reviewer: {} is not an object", json_kind(other)),
            ));
        }
    };
    let created_at = match opt_str(obj, "created_time").map_err(|e| (story_id.clone(), e))? {
        None => return Err((story_id, "created_time: missing".into())),
        Some(text) => {
            parse_graph_time(text).map_err(|e| (story_id.clone(), format!("created_time: {e}")))?
        }
    };
    let story_text = match story.and_then(|s| s.get("data")) {
        Some(Value::Object(data)) => opt_str(data, "review_text")
            .map_err(|e| (story_id.clone(), format!("open_graph_story.data.{e}")))?,
        _ => None,
    };
    let comment = opt_str(obj, "review_text")
        .map_err(|e| (story_id.clone(), e))?
        .or(story_text)
        .and_then(non_blank);
    let mut notes = BTreeMap::new();
    let id = match story_id {
        Some(id) => id,
        None => {
            let reviewer_id = match reviewer {
                Some(reviewer) => {
                    graph_id(reviewer, "id").map_err(|e| (None, format!("reviewer.{e}")))?
                }
                None => None,
            };
            match reviewer_id {
                Some(reviewer_id) => {
                    notes.insert("derived_id".to_owned(), "reviewer+created_time".to_owned());
                    derived_id(&reviewer_id, created_at)
                }
                None => {
                    notes.insert("derived_id".to_owned(), "page+created_time+text".to_owned());
                    page_derived_id(page_id, created_at, comment.as_deref())
                }
            }
        }
    };
    check_review_id(&id).map_err(|e| (None, format!("open_graph_story.id: {e}")))?;
    let refuse = |reason: String| (Some(id.clone()), reason);

    let rating = match obj.get("rating") {
        None | Some(Value::Null) => story_rating(story).map_err(&refuse)?,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|s| u8::try_from(s).ok())
                .and_then(Rating::new)
                .ok_or_else(|| refuse(format!("rating: {n} is not within 1..5")))?,
        ),
        Some(other) => {
            return Err(refuse(format!(
                "rating: {} is not a number",
                json_kind(other)
            )));
        }
    };
    if let Some(kind) = opt_str(obj, "recommendation_type")
        .map_err(&refuse)?
        .and_then(non_blank)
    {
        notes.insert("recommendation_type".to_owned(), kind);
    }
    let display_name = match reviewer {
        Some(reviewer) => opt_str(reviewer, "name")
            .map_err(|e| refuse(format!("reviewer.{e}")))?
            .and_then(non_blank),
        None => None,
    };
    Ok(Review {
        platform: Platform::new(PLATFORM),
        review_id: ReviewId::new(id),
        title: None,
        comment,
        rating,
        display_name,
        is_anonymous: None,
        created_at,
        updated_at: None,
        notes,
    })
}

/// A Graph id: a string of digits usually, a number sometimes.
fn graph_id(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("{key}: {} is not a string", json_kind(other))),
    }
}

/// The id of a rating without a story: `fb-` + hex SHA-256 of the reviewer
/// id and the UTC creation second, cut to [`DERIVED_ID_HEX`] digits.
pub(super) fn derived_id(reviewer_id: &str, created_at: DateTime<Utc>) -> String {
    let input = format!("{reviewer_id}\n{}", created_at.format("%Y-%m-%dT%H:%M:%SZ"));
    let digest = hex::encode(Sha256::digest(input.as_bytes()));
    format!("fb-{}", &digest[..DERIVED_ID_HEX])
}

/// The id of a rating with neither a story nor a reviewer id: `fbp-` + hex
/// SHA-256 of the Page id, the UTC creation second and the text as sent
/// (empty when none), cut to [`DERIVED_ID_HEX`] digits. See the module notes
/// for what it cannot tell apart.
pub(super) fn page_derived_id(
    page_id: &str,
    created_at: DateTime<Utc>,
    text: Option<&str>,
) -> String {
    let input = format!(
        "{}\n{}\n{}",
        page_id.trim(),
        created_at.format("%Y-%m-%dT%H:%M:%SZ"),
        text.unwrap_or_default()
    );
    let digest = hex::encode(Sha256::digest(input.as_bytes()));
    format!("fbp-{}", &digest[..DERIVED_ID_HEX])
}

/// The stars of a story's `data.rating` (`{"value": 4, "scale": 5}`), on
/// five stars; `None` when there is none.
fn story_rating(story: Option<&Map<String, Value>>) -> Result<Option<Rating>, String> {
    let Some(Value::Object(data)) = story.and_then(|s| s.get("data")) else {
        return Ok(None);
    };
    let number = |value: Option<&Value>, what: &str| match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(format!(
            "open_graph_story.data.rating{what}: {} is not a number",
            json_kind(other)
        )),
    };
    let (value, scale) = match data.get("rating") {
        None | Some(Value::Null) => return Ok(None),
        // Tolerated: the stars written without their scale.
        Some(bare @ Value::Number(_)) => (number(Some(bare), "")?, None),
        Some(Value::Object(rating)) => (
            number(rating.get("value"), ".value")?,
            number(rating.get("scale"), ".scale")?,
        ),
        Some(other) => {
            return Err(format!(
                "open_graph_story.data.rating: {} is not an object",
                json_kind(other)
            ));
        }
    };
    let Some(value) = value else {
        return Ok(None);
    };
    let scale = scale.unwrap_or(5.0);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!(
            "open_graph_story.data.rating.scale: {scale} is not a positive number"
        ));
    }
    Rating::from_f64(value / scale * 5.0)
        .map(Some)
        .ok_or_else(|| {
            format!("open_graph_story.data.rating: {value} of {scale} is not within 1..5 stars")
        })
}

/// Graph's `created_time`: ISO 8601 with an offset written `+0000` (or, to
/// be tolerant, RFC 3339's `+00:00` or `Z`).
pub(super) fn parse_graph_time(text: &str) -> Result<DateTime<Utc>, TimestampError> {
    let trimmed = text.trim();
    let bytes = trimmed.as_bytes();
    // `...+HHMM` → `...+HH:MM`, so that the RFC 3339 parser (and its range
    // check) does the rest.
    let with_colon = match bytes.len().checked_sub(5) {
        Some(at)
            if matches!(bytes[at], b'+' | b'-')
                && bytes[at + 1..].iter().all(u8::is_ascii_digit)
                && bytes[..at].contains(&b'T') =>
        {
            format!("{}:{}", &trimmed[..at + 3], &trimmed[at + 3..])
        }
        _ => trimmed.to_owned(),
    };
    timestamps::parse_rfc3339(&with_colon).map_err(|e| match e {
        TimestampError::Format { .. } => TimestampError::Format {
            value: trimmed.chars().take(64).collect(),
            expected: "a Graph time such as 2016-03-11T23:14:30+0000",
        },
        other => other,
    })
}
