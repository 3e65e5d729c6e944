//! A Places `Place` JSON and its `reviews[]`, turned into domain
//! [`Review`]s (or [`Rejected`](crate::domain::Rejected) records) right here; nothing outside this
//! module sees Google's field names. Records are read field by field so that
//! a bad field is named in the rejection reason and the rest goes on.
//!
//! The mapping:
//! - `name` (`places/{place}/reviews/{review}`) is the review id: the one
//!   stable reference Places gives;
//! - `originalText.text` is the comment, else `text.text` (which may be a
//!   translation into the request's `languageCode`); the original language
//!   is kept in `notes["language"]`;
//! - `rating` is a number of stars (1.0..=5.0), rounded to whole stars;
//! - `authorAttribution.displayName` is the display name;
//! - `publishTime` is the creation time. Places has no update time, title or
//!   anonymity flag, so those stay absent.
//!
//! Where the reference says UNCONFIRMED: `rating` may come as an integer or a
//! fraction (both accepted); `publishTime` is RFC 3339; JSON `null` means
//! absent for every field.

use super::super::PlatformError;
use super::super::records::{
    MappedRecords, RecordReader, Refusal, id_field, json_kind, map_records, non_blank, opt_str,
    record_array,
};
use crate::domain::{Platform, Rating, Review, ReviewId};
use crate::timestamps;
use chrono::Utc;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The `review.source` of Places reviews: they are Google reviews.
pub(super) const PLATFORM: &str = "google";

/// Maps a `Place`. Only a body that is not an object, or whose `reviews` is
/// not an array, is an error; bad reviews become [`Rejected`](crate::domain::Rejected).
/// `newest` is the newest `publishTime`.
pub(super) fn map_place(json: &Value) -> Result<MappedRecords, PlatformError> {
    let (_, items) = record_array(json, "place", "reviews")?;
    Ok(map_records(items, &Reviews, Utc::now()))
}

/// How a Places review reads.
struct Reviews;

impl RecordReader for Reviews {
    fn map(&self, item: &Value) -> Result<Review, Refusal> {
        map_review(item)
    }
    fn unnamed(&self, index: usize) -> String {
        format!("item {}", index + 1)
    }
}

fn map_review(item: &Value) -> Result<Review, Refusal> {
    let Value::Object(obj) = item else {
        return Err((
            None,
            format!("review: {} is not an object", json_kind(item)),
        ));
    };
    let id = id_field(obj, "name", "name: missing").map_err(|reason| (None, reason))?;
    let refuse = |reason: String| (Some(id.clone()), reason);

    let original = localized_text(obj, "originalText").map_err(&refuse)?;
    let shown = localized_text(obj, "text").map_err(&refuse)?;
    let (comment, language) = match (original, shown) {
        (Some((text, language)), _) => (non_blank(text), language),
        (None, Some((text, language))) => (non_blank(text), language),
        (None, None) => (None, None),
    };
    let rating = rating(obj.get("rating")).map_err(&refuse)?;
    let display_name = match obj.get("authorAttribution") {
        None | Some(Value::Null) => None,
        Some(Value::Object(author)) => opt_str(author, "displayName")
            .map_err(|e| refuse(format!("authorAttribution.{e}")))?
            .and_then(non_blank),
        Some(other) => {
            return Err(refuse(format!(
                "authorAttribution: {} is not an object",
                json_kind(other)
            )));
        }
    };
    let created_at = match opt_str(obj, "publishTime").map_err(&refuse)? {
        None => return Err(refuse("publishTime: missing".into())),
        Some(text) => {
            timestamps::parse_rfc3339(text).map_err(|e| refuse(format!("publishTime: {e}")))?
        }
    };
    let mut notes = BTreeMap::new();
    if let Some(language) = language {
        notes.insert("language".to_owned(), language.to_owned());
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

/// A `LocalizedText` (`{text, languageCode}`): its text and language, or
/// `None` when absent or without text.
fn localized_text<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<(&'a str, Option<&'a str>)>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(localized)) => {
            let text = opt_str(localized, "text").map_err(|e| format!("{key}.{e}"))?;
            let language = opt_str(localized, "languageCode")
                .map_err(|e| format!("{key}.{e}"))?
                .filter(|l| !l.trim().is_empty());
            Ok(text.map(|t| (t, language)))
        }
        Some(other) => Err(format!("{key}: {} is not an object", json_kind(other))),
    }
}

/// `rating`: stars from 1.0 to 5.0, rounded to whole stars.
fn rating(value: Option<&Value>) -> Result<Option<Rating>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let stars = n.as_f64().unwrap_or(f64::NAN);
            Rating::from_f64(stars)
                .map(Some)
                .ok_or_else(|| format!("rating: {n} is not within 1..5"))
        }
        Some(other) => Err(format!("rating: {} is not a number", json_kind(other))),
    }
}
