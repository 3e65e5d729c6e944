//! Google's `ListReviewsResponse` and `Review` JSON, turned into domain
//! [`Review`]s (or [`Rejected`](crate::domain::Rejected) records) right here; nothing outside this
//! module sees Google's field names.
//!
//! The records are read field by field from the JSON object rather than
//! through a derived serde struct, so that a record with one bad field is
//! quarantined with a reason naming that field ("starRating: ...") while the
//! rest of the page goes on; a derived struct would fail the record with a
//! message that names no field.
//!
//! Where the reference says UNCONFIRMED, this module assumes:
//! - `comment` is missing on rating-only reviews (an empty one is treated the
//!   same), and may carry Google's translation markers, in either order:
//!   "(Translated by Google) <translation> (Original) <original>" or
//!   "<original> (Translated by Google) <translation>". We keep the original.
//! - `starRating` is the enum word; its proto3 number (0..5) is accepted too.
//! - `reviewer.isAnonymous` may be absent (then `false` when a reviewer object
//!   exists), and an anonymous reviewer's `displayName` is sent as Google
//!   gives it (reportedly "A Google User").
//! - `totalReviewCount` may come as a number or, proto3-style, a string.
//! - JSON `null` means absent for every field.
//!
//! Policy where no reference decides (the file source follows it too):
//! - a `createTime` or `updateTime` before 2000 or more than a day ahead is
//!   quarantined ([`timestamps::check_review_time`]), and never becomes the
//!   location's high-water mark;
//! - HTML in a comment is text and is delivered exactly as written: Travtus
//!   takes text, stripping tags would change the resident's words, and
//!   escaping is the renderer's job;
//! - control characters in text are delivered (the JSON body escapes them);
//!   in an id they are quarantined ([`check_review_id`](super::super::check_review_id)),
//!   as is an id over 1 kB.

use super::super::records::{
    MappedRecords, RecordReader, Refusal, checked_id, json_kind, map_records, opt_str,
    record_array,
};
use super::super::{BatchPage, BatchPart, FetchedPage, Next, PlatformError};
use crate::domain::{LocationId, Platform, Rating, Rejected, Review, ReviewId};
use crate::timestamps;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The `review.source` of every Google Business Profile review.
pub(super) const PLATFORM: &str = "google";

const TRANSLATED_MARKER: &str = "(Translated by Google)";
const ORIGINAL_MARKER: &str = "(Original)";

/// One list page, mapped.
#[derive(Debug)]
pub(super) struct MappedPage {
    /// Reviews and rejected records of the page, and `totalReviewCount`.
    pub page: FetchedPage,
    /// Records on the page, good and bad.
    pub records: usize,
    /// `nextPageToken`; `None` when absent or empty (the last page).
    pub next_page_token: Option<String>,
    /// The oldest change time (update, else create) of any record on the
    /// page whose time could be read, rejected records included.
    pub oldest: Option<DateTime<Utc>>,
    /// The newest such time.
    pub newest: Option<DateTime<Utc>>,
}

/// Maps one `ListReviewsResponse`. `page_number` (1-based) names records
/// without a readable id in rejections. Only a page whose shape is wrong is
/// an error; bad records become [`Rejected`](crate::domain::Rejected).
pub(super) fn map_page(json: &Value, page_number: u32) -> Result<MappedPage, PlatformError> {
    map_page_at(json, page_number, Utc::now())
}

/// [`map_page`] at a given `now`, which decides what "in the future" means
/// for review times (see [`timestamps::check_review_time`]).
pub(super) fn map_page_at(
    json: &Value,
    page_number: u32,
    now: DateTime<Utc>,
) -> Result<MappedPage, PlatformError> {
    // Google omits empty repeated fields: no `reviews` is an empty page.
    let (top, items) = record_array(json, "list page", "reviews")?;
    let next_page_token = next_page_token(top)?;
    let reported_total = match top.get("totalReviewCount") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let reader = Reviews {
        page_number,
        now,
        first_item: 0,
    };
    let mut mapped = map_records(items, &reader, now);
    mapped.page.reported_total = reported_total;
    Ok(MappedPage {
        page: mapped.page,
        records: mapped.records,
        next_page_token,
        oldest: mapped.oldest,
        newest: mapped.newest,
    })
}

/// `nextPageToken`; `None` when absent or empty (the last page).
fn next_page_token(top: &Map<String, Value>) -> Result<Option<String>, PlatformError> {
    match top.get("nextPageToken") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if t.is_empty() => Ok(None),
        Some(Value::String(t)) => Ok(Some(t.clone())),
        Some(other) => Err(PlatformError::InvalidResponse(format!(
            "nextPageToken is {}, not a string",
            json_kind(other)
        ))),
    }
}

/// One `BatchGetReviewsResponse` page, mapped and routed to the locations
/// the call named (`names`, in the call's order). See
/// [`map_batch_page_at`].
pub(super) fn map_batch_page(
    json: &Value,
    names: &[LocationId],
    page_number: u32,
) -> Result<BatchPage, PlatformError> {
    map_batch_page_at(json, names, page_number, Utc::now())
}

/// [`map_batch_page`] at a given `now`.
///
/// Each `locationReviews[]` item is `{name, review}`: `name` is the
/// location (the reference says so); an item whose `name` is missing or
/// names no location of the call is routed by its review's own `name`
/// (`accounts/{a}/locations/{l}/reviews/{r}`) when that names one, both
/// readings being tolerated. An item that can be routed nowhere (or has no
/// `review` object) is a rejected record, quarantined raw with the first
/// location of the call and the reason, rather than failing the page.
pub(super) fn map_batch_page_at(
    json: &Value,
    names: &[LocationId],
    page_number: u32,
    now: DateTime<Utc>,
) -> Result<BatchPage, PlatformError> {
    let (top, items) = record_array(json, "batch page", "locationReviews")?;
    let next = match next_page_token(top)? {
        Some(token) => Next::Token(token),
        None => Next::Last,
    };
    let mut parts: Vec<Option<MappedRecords>> = names.iter().map(|_| None).collect();
    let mut oldest: Option<DateTime<Utc>> = None;
    for (i, item) in items.iter().enumerate() {
        let reader = Reviews {
            page_number,
            now,
            first_item: i,
        };
        let (index, mapped) = match route(item, names) {
            Ok((index, review)) => (index, map_records(std::slice::from_ref(review), &reader, now)),
            Err(reason) => {
                let time = item
                    .get("review")
                    .and_then(|review| reader.refused_time(review));
                let reference = item
                    .get("review")
                    .and_then(Value::as_object)
                    .and_then(|review| review_id(review).ok())
                    .unwrap_or_else(|| reader.unnamed(0));
                let rejected = Rejected {
                    reference,
                    reason,
                    raw: item.to_string(),
                };
                let mapped = MappedRecords {
                    page: FetchedPage {
                        rejected: vec![rejected],
                        ..FetchedPage::default()
                    },
                    records: 1,
                    oldest: time,
                    newest: time,
                };
                (0, mapped)
            }
        };
        if let Some(t) = mapped.oldest {
            oldest = Some(oldest.map_or(t, |o| o.min(t)));
        }
        let Some(part) = parts.get_mut(index) else {
            continue;
        };
        match part {
            None => *part = Some(mapped),
            Some(part) => {
                part.page.reviews.extend(mapped.page.reviews);
                part.page.rejected.extend(mapped.page.rejected);
                part.records += mapped.records;
                // `None` sorts first: the newest of the two.
                part.newest = part.newest.max(mapped.newest);
            }
        }
    }
    Ok(BatchPage {
        parts: parts
            .into_iter()
            .enumerate()
            .filter_map(|(index, part)| {
                part.map(|p| {
                    (
                        index,
                        BatchPart {
                            fetched: p.page,
                            newest: p.newest,
                        },
                    )
                })
            })
            .collect(),
        records: items.len(),
        oldest,
        next,
    })
}

/// The location of the call a `locationReviews[]` item belongs to (its
/// index in `names`) and its review; `Err` is why it cannot be routed.
fn route<'v>(item: &'v Value, names: &[LocationId]) -> Result<(usize, &'v Value), String> {
    let Value::Object(obj) = item else {
        return Err(format!("locationReviews: {} is not an object", json_kind(item)));
    };
    let review = match obj.get("review") {
        Some(review @ Value::Object(_)) => review,
        None | Some(Value::Null) => return Err("review: missing".into()),
        Some(other) => return Err(format!("review: {} is not an object", json_kind(other))),
    };
    let index_of = |name: &str| {
        let location = location_of(name)?;
        names.iter().position(|n| n.as_str() == location)
    };
    let named = obj.get("name").and_then(Value::as_str);
    if let Some(index) = named.and_then(index_of) {
        return Ok((index, review));
    }
    if let Some(index) = review
        .get("name")
        .and_then(Value::as_str)
        .and_then(index_of)
    {
        return Ok((index, review));
    }
    Err(match named {
        Some(name) => {
            let shown: String = name.chars().take(120).collect();
            format!("name: {shown:?} is not a location this batch call named")
        }
        None => "name: missing, and the review's name names no location of the call".into(),
    })
}

/// `accounts/{a}/locations/{l}` of a location or review resource name.
fn location_of(name: &str) -> Option<&str> {
    let mut slashes = name.match_indices('/').map(|(at, _)| at);
    let end = slashes.nth(3).unwrap_or(name.len());
    let location = &name[..end];
    matches!(
        location.split('/').collect::<Vec<_>>().as_slice(),
        ["accounts", a, "locations", l] if !a.is_empty() && !l.is_empty()
    )
    .then_some(location)
}

/// How a review of one list page reads: Google orders by update time.
struct Reviews {
    page_number: u32,
    now: DateTime<Utc>,
    /// The index on its page of the first record mapped with this reader
    /// (a batch page maps its records one at a time).
    first_item: usize,
}

impl RecordReader for Reviews {
    fn map(&self, item: &Value) -> Result<Review, Refusal> {
        map_review(item, self.now)
    }
    fn unnamed(&self, index: usize) -> String {
        format!(
            "page {} item {}",
            self.page_number,
            self.first_item + index + 1
        )
    }
    /// A rejected record's update (else create) time, if readable.
    fn refused_time(&self, item: &Value) -> Option<DateTime<Utc>> {
        let read = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .and_then(|s| timestamps::parse_rfc3339(s).ok())
                .filter(|t| timestamps::check_review_time(*t, self.now).is_ok())
        };
        read("updateTime").or_else(|| read("createTime"))
    }
    fn order_time(&self, review: &Review) -> DateTime<Utc> {
        review.last_changed()
    }
}

fn map_review(item: &Value, now: DateTime<Utc>) -> Result<Review, Refusal> {
    let Value::Object(obj) = item else {
        return Err((
            None,
            format!("review: {} is not an object", json_kind(item)),
        ));
    };
    let id = review_id(obj).map_err(|reason| (None, reason))?;
    let refuse = |reason: String| (Some(id.clone()), reason);

    let rating = star_rating(obj.get("starRating")).map_err(&refuse)?;
    let comment = opt_str(obj, "comment")
        .map_err(&refuse)?
        .and_then(original_text);
    let (display_name, is_anonymous) = match obj.get("reviewer") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(reviewer)) => {
            let name = opt_str(reviewer, "displayName")
                .map_err(|e| refuse(format!("reviewer.{e}")))?
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let anonymous = match reviewer.get("isAnonymous") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(refuse(format!(
                        "reviewer.isAnonymous: {} is not a boolean",
                        json_kind(other)
                    )));
                }
            };
            (name, Some(anonymous))
        }
        Some(other) => {
            return Err(refuse(format!(
                "reviewer: {} is not an object",
                json_kind(other)
            )));
        }
    };
    let created_at = match opt_str(obj, "createTime").map_err(&refuse)? {
        None => return Err(refuse("createTime: missing".into())),
        Some(text) => {
            timestamps::parse_rfc3339(text).map_err(|e| refuse(format!("createTime: {e}")))?
        }
    };
    let updated_at = opt_str(obj, "updateTime")
        .map_err(&refuse)?
        .map(timestamps::parse_rfc3339)
        .transpose()
        .map_err(|e| refuse(format!("updateTime: {e}")))?;
    timestamps::check_review_time(created_at, now)
        .map_err(|e| refuse(format!("createTime: {e}")))?;
    if let Some(updated_at) = updated_at {
        timestamps::check_review_time(updated_at, now)
            .map_err(|e| refuse(format!("updateTime: {e}")))?;
    }

    Ok(Review {
        platform: Platform::new(PLATFORM),
        review_id: ReviewId::new(id),
        title: None,
        comment,
        rating,
        display_name,
        is_anonymous,
        created_at,
        updated_at,
        notes: Default::default(),
    })
}

/// `reviewId`, else the last segment of `name`
/// (`accounts/{a}/locations/{l}/reviews/{reviewId}`), checked.
fn review_id(obj: &Map<String, Value>) -> Result<String, String> {
    match opt_str(obj, "reviewId")? {
        Some(id) => checked_id("reviewId", id),
        None => match opt_str(obj, "name")? {
            Some(name) => checked_id("name", name.rsplit('/').next().unwrap_or(name)),
            None => Err("reviewId: missing (and no name)".into()),
        },
    }
}

fn star_rating(value: Option<&Value>) -> Result<Option<Rating>, String> {
    let stars = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(word)) => match word.as_str() {
            "STAR_RATING_UNSPECIFIED" => return Ok(None),
            "ONE" => 1,
            "TWO" => 2,
            "THREE" => 3,
            "FOUR" => 4,
            "FIVE" => 5,
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(format!("starRating: {shown:?} is not one of ONE..FIVE"));
            }
        },
        // proto3 JSON parsers accept an enum's number; tolerate it.
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => return Ok(None),
            Some(s @ 1..=5) => s as u8,
            _ => return Err(format!("starRating: {n} is not within 1..5")),
        },
        Some(other) => {
            return Err(format!(
                "starRating: {} is not a star word",
                json_kind(other)
            ));
        }
    };
    Ok(Rating::new(stars))
}

/// The reviewer's own text from a comment that may carry Google's translation
/// markers; `None` when nothing is left.
fn original_text(comment: &str) -> Option<String> {
    let text = match comment.find(TRANSLATED_MARKER) {
        None => comment,
        Some(at) => {
            if let Some(original) = comment.rfind(ORIGINAL_MARKER).filter(|o| *o > at) {
                // "(Translated by Google) ... (Original) ..."
                &comment[original + ORIGINAL_MARKER.len()..]
            } else if !comment[..at].trim().is_empty() {
                // "<original> (Translated by Google) <translation>"
                &comment[..at]
            } else {
                // Only a translation: it is all the text there is.
                &comment[at + TRANSLATED_MARKER.len()..]
            }
        }
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rejected;
    use crate::timestamps::travtus_format;
    use serde_json::json;

    fn full() -> Value {
        json!({
            "name": "accounts/1/locations/2/reviews/r1",
            "reviewId": "r1",
            "reviewer": {"displayName": "Ada L.", "profilePhotoUrl": "https://x/y.png", "isAnonymous": false},
            "starRating": "FOUR",
            "comment": "  Lovely staff.  ",
            "createTime": "2024-05-01T10:00:00Z",
            "updateTime": "2024-05-02T11:30:00.123Z",
            "reviewReply": {"comment": "Thanks!", "updateTime": "2024-05-03T00:00:00Z"}
        })
    }

    fn with(changes: Value) -> Value {
        let mut v = full();
        if let (Value::Object(base), Value::Object(changes)) = (&mut v, changes) {
            for (k, val) in changes {
                if val == json!("__remove__") {
                    base.remove(&k);
                } else {
                    base.insert(k, val);
                }
            }
        }
        v
    }

    fn one(item: Value) -> Result<Review, Rejected> {
        let page = map_page(&json!({"reviews": [item]}), 1).expect("page shape");
        match (
            page.page.reviews.into_iter().next(),
            page.page.rejected.into_iter().next(),
        ) {
            (Some(r), None) => Ok(r),
            (None, Some(j)) => Err(j),
            other => panic!("expected one record, got {other:?}"),
        }
    }

    #[test]
    fn a_full_review_maps_every_field() {
        let r = one(full()).expect("review");
        assert_eq!(r.platform.as_str(), "google");
        assert_eq!(r.review_id.as_str(), "r1");
        assert_eq!(r.title, None);
        assert_eq!(r.comment.as_deref(), Some("Lovely staff."));
        assert_eq!(r.rating.map(Rating::get), Some(4));
        assert_eq!(r.display_name.as_deref(), Some("Ada L."));
        assert_eq!(r.is_anonymous, Some(false));
        assert_eq!(travtus_format(r.created_at), "2024-05-01T10:00:00");
        assert_eq!(
            r.updated_at.map(travtus_format).as_deref(),
            Some("2024-05-02T11:30:00")
        );
    }

    #[test]
    fn star_words_map_to_ratings() {
        let cases = [
            (json!("ONE"), Some(1)),
            (json!("TWO"), Some(2)),
            (json!("THREE"), Some(3)),
            (json!("FOUR"), Some(4)),
            (json!("FIVE"), Some(5)),
            (json!("STAR_RATING_UNSPECIFIED"), None),
            (json!("__remove__"), None),
            (Value::Null, None),
            (json!(5), Some(5)),
            (json!(0), None),
        ];
        for (word, want) in cases {
            let r = one(with(json!({ "starRating": word.clone() })))
                .unwrap_or_else(|e| panic!("{word}: {e:?}"));
            assert_eq!(r.rating.map(Rating::get), want, "{word}");
        }
    }

    #[test]
    fn optional_fields_and_anonymous_reviewers() {
        // Rating only: no comment at all.
        let r = one(with(json!({"comment": "__remove__"}))).expect("rating-only");
        assert_eq!(r.comment, None);
        assert_eq!(r.rating.map(Rating::get), Some(4));
        let r = one(with(json!({"comment": "   "}))).expect("blank comment");
        assert_eq!(r.comment, None);

        let r = one(with(
            json!({"reviewer": {"displayName": "A Google User", "isAnonymous": true}}),
        ))
        .expect("anonymous");
        assert_eq!(r.is_anonymous, Some(true));
        assert_eq!(r.display_name.as_deref(), Some("A Google User"));

        let r = one(with(json!({"reviewer": {"displayName": "Bo"}}))).expect("no isAnonymous");
        assert_eq!(r.is_anonymous, Some(false));

        let r = one(with(
            json!({"reviewer": "__remove__", "updateTime": "__remove__"}),
        ))
        .expect("no reviewer");
        assert_eq!((r.is_anonymous, r.display_name.as_deref()), (None, None));
        assert_eq!(r.updated_at, None);
        assert_eq!(r.last_changed(), r.created_at);

        // No reviewId: the last segment of name.
        let r = one(with(json!({"reviewId": "__remove__"}))).expect("id from name");
        assert_eq!(r.review_id.as_str(), "r1");
    }

    #[test]
    fn translated_comments_keep_the_original() {
        let cases = [
            (
                "(Translated by Google) Very nice flat\n\n(Original)\nSehr schöne Wohnung",
                Some("Sehr schöne Wohnung"),
            ),
            (
                "Sehr schöne Wohnung\n\n(Translated by Google)\nVery nice flat",
                Some("Sehr schöne Wohnung"),
            ),
            (
                "(Translated by Google) Only the translation",
                Some("Only the translation"),
            ),
            (
                "Plain text mentioning (Original) packaging",
                Some("Plain text mentioning (Original) packaging"),
            ),
            ("", None),
        ];
        for (input, want) in cases {
            let r = one(with(json!({ "comment": input }))).expect("review");
            assert_eq!(r.comment.as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn times_of_any_precision_and_offset_become_utc() {
        let cases = [
            ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00"),
            ("2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00"),
            ("2024-05-01T10:00:00.123456Z", "2024-05-01T10:00:00"),
            ("2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00"),
            ("2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00"),
            ("2024-05-01T01:00:00.5+02:00", "2024-04-30T23:00:00"),
        ];
        for (input, want) in cases {
            let r = one(with(json!({ "createTime": input, "updateTime": input }))).expect("review");
            assert_eq!(travtus_format(r.created_at), want, "{input}");
            assert_eq!(
                r.updated_at.map(travtus_format).as_deref(),
                Some(want),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_records_are_rejected_with_reason_and_raw() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                with(json!({"reviewId": "__remove__", "name": "__remove__"})),
                "page 1 item 1",
                "reviewId: missing (and no name)",
            ),
            (
                with(json!({"reviewId": ""})),
                "page 1 item 1",
                "reviewId: empty",
            ),
            (
                with(json!({"reviewId": "a\u{0}b"})),
                "page 1 item 1",
                "reviewId: contains control characters",
            ),
            (
                with(json!({"reviewId": "x".repeat(1025)})),
                "page 1 item 1",
                "reviewId: 1025 bytes, more than 1024",
            ),
            (
                with(json!({"reviewId": 17})),
                "page 1 item 1",
                "reviewId: a number is not a string",
            ),
            (
                with(json!({"createTime": "__remove__"})),
                "r1",
                "createTime: missing",
            ),
            (
                with(json!({"createTime": "yesterday"})),
                "r1",
                "createTime: \"yesterday\" is not an RFC 3339 timestamp",
            ),
            (
                with(json!({"createTime": "1969-07-20T20:17:00Z"})),
                "r1",
                "createTime: year 1969 is outside 1970..=9999",
            ),
            (
                with(json!({"updateTime": "2024-05-01"})),
                "r1",
                "updateTime: \"2024-05-01\" is not an RFC 3339 timestamp",
            ),
            (
                with(json!({"createTime": "1999-12-31T23:59:59Z"})),
                "r1",
                "createTime: 1999-12-31T23:59:59 is before 2000: no review platform is that old",
            ),
            (
                with(json!({"updateTime": "9999-01-01T00:00:00Z"})),
                "r1",
                "updateTime: 9999-01-01T00:00:00 is more than a day in the future",
            ),
            (
                with(json!({"starRating": "SIX"})),
                "r1",
                "starRating: \"SIX\" is not one of ONE..FIVE",
            ),
            (
                with(json!({"starRating": 7})),
                "r1",
                "starRating: 7 is not within 1..5",
            ),
            (
                with(json!({"comment": ["a"]})),
                "r1",
                "comment: an array is not a string",
            ),
            (
                with(json!({"reviewer": 3})),
                "r1",
                "reviewer: a number is not an object",
            ),
            (
                with(json!({"reviewer": {"isAnonymous": "yes"}})),
                "r1",
                "reviewer.isAnonymous: a string is not a boolean",
            ),
            (
                json!("just a string"),
                "page 1 item 1",
                "review: a string is not an object",
            ),
        ];
        for (item, reference, reason) in cases {
            let raw = item.to_string();
            let rejected = one(item).expect_err(reason);
            assert_eq!(rejected.reference, reference, "{reason}");
            assert_eq!(rejected.reason, reason);
            assert_eq!(rejected.raw, raw);
        }
    }

    #[test]
    fn one_bad_record_does_not_stop_the_page() {
        let page = json!({
            "reviews": [full(), with(json!({"starRating": "ZERO", "reviewId": "bad"})), with(json!({"reviewId": "r3", "updateTime": "2020-01-01T00:00:00Z"}))],
            "totalReviewCount": 3,
            "averageRating": 4.2,
            "nextPageToken": "tok"
        });
        let mapped = map_page(&page, 2).expect("page");
        assert_eq!(mapped.page.reviews.len(), 2);
        assert_eq!(mapped.page.rejected.len(), 1);
        assert_eq!(mapped.page.rejected[0].reference, "bad");
        assert_eq!(mapped.page.reported_total, Some(3));
        assert_eq!(mapped.next_page_token.as_deref(), Some("tok"));
        assert_eq!(
            mapped.oldest.map(travtus_format).as_deref(),
            Some("2020-01-01T00:00:00")
        );
        assert_eq!(
            mapped.newest.map(travtus_format).as_deref(),
            Some("2024-05-02T11:30:00")
        );
    }

    #[test]
    fn a_future_record_is_rejected_and_does_not_move_the_newest_time() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("now");
        let page = json!({"reviews": [
            with(json!({"reviewId": "soon", "updateTime": "2026-11-25T11:00:00Z"})),
            with(json!({"reviewId": "later", "updateTime": "2027-01-01T00:00:00Z"})),
            with(json!({"reviewId": "y2k", "createTime": "1999-01-01T00:00:00Z", "updateTime": "1999-01-02T00:00:00Z"})),
        ]});
        let mapped = map_page_at(&page, 1, now).expect("page");
        // Within a day of skew: accepted.
        assert_eq!(mapped.page.reviews.len(), 1);
        assert_eq!(mapped.page.reviews[0].review_id.as_str(), "soon");
        let reasons: Vec<&str> = mapped
            .page
            .rejected
            .iter()
            .map(|r| r.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "updateTime: 2027-01-01T00:00:00 is more than a day in the future",
                "createTime: 1999-01-01T00:00:00 is before 2000: no review platform is that old",
            ]
        );
        assert_eq!(
            mapped.newest.map(travtus_format).as_deref(),
            Some("2026-11-25T11:00:00"),
            "the rejected future time is not the high-water mark"
        );
        assert_eq!(
            mapped.oldest.map(travtus_format).as_deref(),
            Some("2024-05-01T10:00:00"),
            "the future record's plausible createTime still counts for the paging stop"
        );
    }

    #[test]
    fn page_shapes() {
        let empty = map_page(&json!({"totalReviewCount": "0", "nextPageToken": ""}), 1)
            .expect("empty page");
        assert!(empty.page.reviews.is_empty() && empty.page.rejected.is_empty());
        assert_eq!(empty.page.reported_total, Some(0));
        assert_eq!(empty.next_page_token, None);
        assert_eq!((empty.oldest, empty.newest), (None, None));

        for bad in [
            json!([]),
            json!("x"),
            json!({"reviews": {}}),
            json!({"nextPageToken": 5}),
        ] {
            assert!(
                matches!(map_page(&bad, 1), Err(PlatformError::InvalidResponse(_))),
                "{bad}"
            );
        }
    }

    fn names(ids: &[&str]) -> Vec<LocationId> {
        ids.iter().map(|id| LocationId::new(*id)).collect()
    }

    fn review(location: &str, id: &str, update: &str) -> Value {
        with(json!({
            "name": format!("{location}/reviews/{id}"),
            "reviewId": id,
            "updateTime": update,
        }))
    }

    #[test]
    fn a_batch_page_is_routed_by_location_name_and_else_by_the_review_name() {
        let (a, b) = ("accounts/1/locations/2", "accounts/1/locations/3");
        let page = json!({
            "locationReviews": [
                {"name": a, "review": review(a, "ra", "2024-05-04T00:00:00Z")},
                // No location name: the review's own name says where it goes.
                {"review": review(b, "rb", "2024-05-03T00:00:00Z")},
                // A location name the call did not ask for, and a review of
                // none either: quarantined, not dropped, not misrouted.
                {"name": "accounts/1/locations/9", "review": review("accounts/1/locations/9", "rx", "2024-05-02T00:00:00Z")},
                {"name": b, "review": review(b, "rb2", "2024-05-01T00:00:00Z")},
            ],
            "nextPageToken": "t2",
        });
        let mapped = map_batch_page(&page, &names(&[a, b]), 1).expect("page");
        assert_eq!(mapped.records, 4);
        assert!(matches!(&mapped.next, Next::Token(t) if t == "t2"));
        assert_eq!(
            mapped.oldest.map(travtus_format).as_deref(),
            Some("2024-05-01T00:00:00")
        );
        let part = |i: usize| {
            &mapped
                .parts
                .iter()
                .find(|(index, _)| *index == i)
                .expect("part")
                .1
        };
        let ids = |i: usize| -> Vec<&str> {
            part(i)
                .fetched
                .reviews
                .iter()
                .map(|r| r.review_id.as_str())
                .collect()
        };
        assert_eq!(ids(0), ["ra"]);
        assert_eq!(ids(1), ["rb", "rb2"]);
        assert_eq!(
            part(1).newest.map(travtus_format).as_deref(),
            Some("2024-05-03T00:00:00")
        );
        let rejected = &part(0).fetched.rejected;
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(
            rejected[0].reason.contains("is not a location this batch call named"),
            "{}",
            rejected[0].reason
        );
    }

    #[test]
    fn an_empty_batch_answer_is_the_last_page_and_a_wrong_shape_is_an_error() {
        let mapped = map_batch_page(&json!({}), &names(&["accounts/1/locations/2"]), 1)
            .expect("empty page");
        assert!(mapped.parts.is_empty() && matches!(mapped.next, Next::Last));
        let wrong = map_batch_page(
            &json!({"locationReviews": {"0": {}}}),
            &names(&["accounts/1/locations/2"]),
            1,
        );
        assert!(matches!(wrong, Err(PlatformError::InvalidResponse(_))));
    }
}
