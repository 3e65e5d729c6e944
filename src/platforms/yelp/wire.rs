//! Yelp's reviews JSON (`{"reviews":[...],"total","possible_languages"}`),
//! turned into domain [`Review`]s (or [`Rejected`](crate::domain::Rejected) records) right here.
//! Records are read field by field so that a bad field is named in the
//! rejection reason and the other reviews go on.
//!
//! The mapping:
//! - `id` is the review id;
//! - `text` is the comment. It is an excerpt, so `notes["excerpt"] = "true"`
//!   tells auditors why the text stops short;
//! - `rating` is a number of whole stars, 1..=5 (parsed as a number: one
//!   schema calls it a float; a fraction is rounded, anything outside 1..5
//!   refused);
//! - `time_created` (`YYYY-MM-DD HH:MM:SS`, Pacific wall-clock time) is the
//!   creation time, converted with America/Los_Angeles (see
//!   [`timestamps::local_to_utc`] for the DST gap and overlap);
//! - `user.name` (first name, last initial) is the display name.
//!
//! Yelp has no title, update time or anonymity flag: those stay absent.
//! JSON `null` means absent for every field (`user.image_url: null` is
//! common; the photo is not read anyway).
//!
//! A review without `id` (Yelp's answers of 2016 had none; `user.id` and
//! `profile_url` came in 2018) is quarantined, not given a derived id: every
//! answer since carries the id, and one made up from the text (an excerpt
//! Yelp may cut differently) or from the `hrid` in `url` (which differs from
//! `id` in Yelp's own documented example) would not match the id Yelp sends
//! for the same review, which would then reach Travtus twice. The record
//! stays in the ledger's quarantine with [`MISSING_ID`] as the reason.

use super::super::PlatformError;
use super::super::records::{
    MappedRecords, RecordReader, Refusal, id_field, json_kind, map_records, non_blank, opt_str,
    record_array,
};
use crate::domain::{Platform, Rating, Review, ReviewId};
use crate::timestamps;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use std::collections::BTreeMap;

/// The `review.source` of Yelp reviews.
pub(super) const PLATFORM: &str = "yelp";

/// Why a review without `id` is quarantined (see the module notes).
pub(super) const MISSING_ID: &str = "id: missing (as in Yelp's answers of 2016; no id is made up, as it would not match the one Yelp sends today)";

/// The time zone of `time_created`.
pub(super) const YELP_TIME_ZONE: Tz = chrono_tz::America::Los_Angeles;

/// Maps one answer. Only a body that is not an object, or whose `reviews`
/// is not an array, is an error; bad reviews become
/// [`Rejected`](crate::domain::Rejected). `newest` is the newest creation time.
pub(super) fn map_reviews(json: &Value) -> Result<MappedRecords, PlatformError> {
    let (_, items) = record_array(json, "reviews answer", "reviews")?;
    Ok(map_records(items, &Reviews, Utc::now()))
}

/// How a Yelp review reads.
struct Reviews;

impl RecordReader for Reviews {
    fn map(&self, item: &Value) -> Result<Review, Refusal> {
        map_review(item)
    }
    fn unnamed(&self, index: usize) -> String {
        format!("item {}", index + 1)
    }
}

/// One review, or why not (with its id when readable).
fn map_review(item: &Value) -> Result<Review, Refusal> {
    let Value::Object(obj) = item else {
        return Err((
            None,
            format!("review: {} is not an object", json_kind(item)),
        ));
    };
    let id = id_field(obj, "id", MISSING_ID).map_err(|reason| (None, reason))?;
    let refuse = |reason: String| (Some(id.clone()), reason);

    let comment = opt_str(obj, "text").map_err(&refuse)?.and_then(non_blank);
    let rating = match obj.get("rating") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            Rating::from_f64(n.as_f64().unwrap_or(f64::NAN))
                .ok_or_else(|| refuse(format!("rating: {n} is not within 1..5")))?,
        ),
        Some(other) => {
            return Err(refuse(format!(
                "rating: {} is not a number",
                json_kind(other)
            )));
        }
    };
    let created_at = match opt_str(obj, "time_created").map_err(&refuse)? {
        None => return Err(refuse("time_created: missing".into())),
        Some(text) => parse_time_created(text).map_err(|e| refuse(format!("time_created: {e}")))?,
    };
    let display_name = match obj.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::Object(user)) => opt_str(user, "name")
            .map_err(|e| refuse(format!("user.{e}")))?
            .and_then(non_blank),
        Some(other) => {
            return Err(refuse(format!(
                "user: {} is not an object",
                json_kind(other)
            )));
        }
    };
    let mut notes = BTreeMap::new();
    if comment.is_some() {
        notes.insert("excerpt".to_owned(), "true".to_owned());
    }
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

/// `time_created`: Pacific wall-clock time, or (should Yelp ever add one)
/// a time with an explicit offset.
pub(super) fn parse_time_created(text: &str) -> Result<DateTime<Utc>, timestamps::TimestampError> {
    timestamps::parse_local(text, YELP_TIME_ZONE)
        .or_else(|local_error| timestamps::parse_rfc3339(text).map_err(|_| local_error))
}
