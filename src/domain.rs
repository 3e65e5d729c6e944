//! The review as the rest of the program sees it, and the small newtypes that
//! name things. No serde, no I/O: platform wire formats become these types at
//! the edge (`platforms::*`), and the Travtus body is built from them in one
//! place (`travtus::body`).

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string without checking it (callers validate at the edge).
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            /// The inner string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// The platform a review comes from, as sent in `review.source`
    /// (`google`, `yelp`, `facebook`, `trustpilot`, or a file row's own value).
    Platform
);
string_newtype!(
    /// The platform's identifier of a review; unique within a platform.
    ReviewId
);
string_newtype!(
    /// A configured source's unique name (`[[source]] name`).
    SourceName
);
string_newtype!(
    /// A platform location as written in the config (`[[source.location]] id`).
    LocationId
);

/// Which Travtus group a location's reviews go to: exactly one of the two keys
/// the API accepts, so "both" and "neither" cannot be represented.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupRef {
    /// Sent as `group_external_ref`.
    ExternalRef(String),
    /// Sent as `group_id`.
    Id(String),
}

impl GroupRef {
    /// The JSON key this group is sent under.
    pub fn key(&self) -> &'static str {
        match self {
            GroupRef::ExternalRef(_) => "group_external_ref",
            GroupRef::Id(_) => "group_id",
        }
    }
    /// The value sent under [`GroupRef::key`].
    pub fn value(&self) -> &str {
        match self {
            GroupRef::ExternalRef(v) | GroupRef::Id(v) => v,
        }
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), self.value())
    }
}

/// A star rating, always within 1..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rating(u8);

impl Rating {
    /// Accepts 1..=5 only.
    pub fn new(stars: u8) -> Option<Rating> {
        (1..=5).contains(&stars).then_some(Rating(stars))
    }
    /// Rounds a fractional platform rating (e.g. Places' 4.6) to whole stars;
    /// `None` when the result is outside 1..=5 or not finite.
    pub fn from_f64(stars: f64) -> Option<Rating> {
        if !stars.is_finite() {
            return None;
        }
        let rounded = stars.round();
        if !(1.0..=5.0).contains(&rounded) {
            return None;
        }
        Rating::new(rounded as u8)
    }
    /// The number of stars.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// One version of a review as read from a platform. Fields a platform does
/// not have are `None`, and are then absent from the body sent to Travtus.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// Sent as `review.source`.
    pub platform: Platform,
    /// Sent as `review.review_id`.
    pub review_id: ReviewId,
    /// Only Trustpilot (and file rows) have titles.
    pub title: Option<String>,
    /// Absent for rating-only reviews.
    pub comment: Option<String>,
    /// Absent when the platform has no star rating for it.
    pub rating: Option<Rating>,
    /// The reviewer's name as the platform shows it.
    pub display_name: Option<String>,
    /// Only platforms that say so (Google Business Profile).
    pub is_anonymous: Option<bool>,
    /// When the review was written.
    pub created_at: DateTime<Utc>,
    /// When it was last modified, where the platform says.
    pub updated_at: Option<DateTime<Utc>>,
    /// Facts about the record that are not sent but that auditors need
    /// (e.g. `excerpt` = `true` for Yelp's truncated texts,
    /// `recommendation_type` for Facebook). Kept in the ledger's `notes`.
    pub notes: BTreeMap<String, String>,
}

impl Review {
    /// The instant that orders versions of this review: its update time, else
    /// its creation time.
    pub fn last_changed(&self) -> DateTime<Utc> {
        self.updated_at.unwrap_or(self.created_at)
    }
}

/// A platform record that could not become a [`Review`]: kept in the ledger's
/// quarantine with the reason and the raw record, never dropped silently.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Where the record came from, for a human: a review id when one was
    /// readable, or `file.jsonl:12`.
    pub reference: String,
    /// Why it was refused, e.g. "starRating: 7 is not within 1..5".
    pub reason: String,
    /// The record exactly as received (JSON text, or the raw CSV/JSONL line).
    pub raw: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_accepts_only_one_to_five() {
        assert_eq!(Rating::new(0), None);
        assert_eq!(Rating::new(1).map(Rating::get), Some(1));
        assert_eq!(Rating::new(5).map(Rating::get), Some(5));
        assert_eq!(Rating::new(6), None);
    }

    #[test]
    fn fractional_ratings_round_to_whole_stars() {
        assert_eq!(Rating::from_f64(4.6).map(Rating::get), Some(5));
        assert_eq!(Rating::from_f64(4.4).map(Rating::get), Some(4));
        assert_eq!(Rating::from_f64(0.4), None);
        assert_eq!(Rating::from_f64(f64::NAN), None);
        assert_eq!(Rating::from_f64(7.0), None);
    }
}
