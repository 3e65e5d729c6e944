//! Trustpilot's reviews page (`{"reviews":[...],"links":[...]}`), turned
//! into domain [`Review`]s (or [`Rejected`](crate::domain::Rejected) records) right here. Records are
//! read field by field so that a bad field is named in the rejection reason
//! and the rest of the page goes on.
//!
//! The mapping:
//! - `id` is the review id;
//! - `title` is the title (Trustpilot is the one platform with titles);
//! - `text` is the comment;
//! - `stars` is the rating, whole stars 1..=5;
//! - `consumer.displayName` is the display name;
//! - `createdAt` / `updatedAt` (ISO 8601, `updatedAt` null until an edit)
//!   are the creation and update times. Live answers end in `Z`; the
//!   vendor's own documented examples carry no zone at all
//!   (`"2013-09-07T13:37:00"`), which is read as UTC;
//! - `language` is kept in `notes["language"]`.
//!
//! No anonymity flag. JSON `null` means absent for every field (Trustpilot
//! sends explicit `null` for `updatedAt`, `companyReply` and
//! `consumer.displayLocation`).
//!
//! The page's own `links[]` say whether another page follows: the entry
//! with `rel: "next-page"` (see [`NextLink`]).

use super::super::records::{
    RecordReader, Refusal, id_field, json_kind, map_records, non_blank, opt_str, record_array,
};
use super::super::{FetchedPage, PlatformError};
use crate::domain::{Platform, Rating, Review, ReviewId};
use crate::timestamps;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// The `review.source` of Trustpilot reviews.
pub(super) const PLATFORM: &str = "trustpilot";

/// One page, mapped.
#[derive(Debug)]
pub(super) struct MappedPage {
    /// The reviews and rejected records.
    pub page: FetchedPage,
    /// Records on the page, good and bad (a page shorter than asked for is
    /// the last).
    pub records: usize,
    /// The ids of the page's records that had one, in order (to notice a
    /// server that serves the same page again).
    pub ids: Vec<String>,
    /// The oldest `createdAt` on the page (rejected records included, when
    /// readable): the paging stop compares it with the mark.
    pub oldest: Option<DateTime<Utc>>,
    /// The newest `createdAt` on the page.
    pub newest: Option<DateTime<Utc>>,
    /// What the page's `links[]` say about the next page.
    pub next: NextLink,
}

/// What a page's `links[]` say about the page after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NextLink {
    /// No `links` array, or a `next-page` entry without a usable `href`:
    /// the page says nothing, and page numbers are all there is to go on.
    Unknown,
    /// `links[]` without a `next-page` entry: this is the last page.
    Last,
    /// The `href` of the `next-page` entry (not yet resolved or checked).
    Href(String),
}

/// Maps one page. `page_number` (1-based) names records without a readable
/// id in rejections. Only a page whose shape is wrong is an error.
pub(super) fn map_page(json: &Value, page_number: u32) -> Result<MappedPage, PlatformError> {
    let (_, items) = record_array(json, "reviews page", "reviews")?;
    let ids = items
        .iter()
        .filter_map(|item| item.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let mapped = map_records(items, &Reviews { page_number }, Utc::now());
    Ok(MappedPage {
        page: mapped.page,
        records: mapped.records,
        ids,
        oldest: mapped.oldest,
        newest: mapped.newest,
        next: next_link(json.get("links")),
    })
}

/// How a review of one page reads.
struct Reviews {
    page_number: u32,
}

impl RecordReader for Reviews {
    fn map(&self, item: &Value) -> Result<Review, Refusal> {
        map_review(item)
    }
    fn unnamed(&self, index: usize) -> String {
        format!("page {} item {}", self.page_number, index + 1)
    }
    fn refused_time(&self, item: &Value) -> Option<DateTime<Utc>> {
        item.get("createdAt")
            .and_then(Value::as_str)
            .and_then(|t| timestamps::parse_rfc3339_or_naive_utc(t).ok())
    }
}

/// The `next-page` entry of a page's `links[]`. Anything unexpected in
/// `links` is read as saying nothing ([`NextLink::Unknown`]): the paging
/// then falls back to page numbers rather than stopping early.
fn next_link(links: Option<&Value>) -> NextLink {
    let Some(Value::Array(links)) = links else {
        return NextLink::Unknown;
    };
    let next = links.iter().filter_map(Value::as_object).find(|link| {
        link.get("rel")
            .and_then(Value::as_str)
            .is_some_and(|rel| rel.trim().eq_ignore_ascii_case("next-page"))
    });
    match next {
        None => NextLink::Last,
        Some(link) => match link.get("href").and_then(Value::as_str).map(str::trim) {
            Some(href) if !href.is_empty() => NextLink::Href(href.to_owned()),
            _ => NextLink::Unknown,
        },
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
    let id = id_field(obj, "id", "id: missing").map_err(|reason| (None, reason))?;
    let refuse = |reason: String| (Some(id.clone()), reason);

    let title = opt_str(obj, "title").map_err(&refuse)?.and_then(non_blank);
    let comment = opt_str(obj, "text").map_err(&refuse)?.and_then(non_blank);
    let rating = match obj.get("stars") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|s| u8::try_from(s).ok())
                .and_then(Rating::new)
                .ok_or_else(|| refuse(format!("stars: {n} is not within 1..5")))?,
        ),
        Some(other) => {
            return Err(refuse(format!(
                "stars: {} is not a number",
                json_kind(other)
            )));
        }
    };
    let display_name = match obj.get("consumer") {
        None | Some(Value::Null) => None,
        Some(Value::Object(consumer)) => opt_str(consumer, "displayName")
            .map_err(|e| refuse(format!("consumer.{e}")))?
            .and_then(non_blank),
        Some(other) => {
            return Err(refuse(format!(
                "consumer: {} is not an object",
                json_kind(other)
            )));
        }
    };
    let created_at = match opt_str(obj, "createdAt").map_err(&refuse)? {
        None => return Err(refuse("createdAt: missing".into())),
        Some(text) => timestamps::parse_rfc3339_or_naive_utc(text)
            .map_err(|e| refuse(format!("createdAt: {e}")))?,
    };
    let updated_at = opt_str(obj, "updatedAt")
        .map_err(&refuse)?
        .map(timestamps::parse_rfc3339_or_naive_utc)
        .transpose()
        .map_err(|e| refuse(format!("updatedAt: {e}")))?;
    let mut notes = BTreeMap::new();
    if let Some(language) = opt_str(obj, "language").ok().flatten().and_then(non_blank) {
        notes.insert("language".to_owned(), language);
    }
    Ok(Review {
        platform: Platform::new(PLATFORM),
        review_id: ReviewId::new(id),
        title,
        comment,
        rating,
        display_name,
        is_anonymous: None,
        created_at,
        updated_at,
        notes,
    })
}
