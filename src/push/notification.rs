//! A Google Business Profile notification, as the data of a Pub/Sub
//! message, read into what the daemon needs: which location, maybe which
//! review, and whether it is about reviews at all.
//!
//! What Google documents (NotificationType in
//! developers.google.com/my-business/reference/rest/v4/Notifications and
//! .../notifications/rest/v1/NotificationSetting): for `NEW_REVIEW` and
//! `UPDATED_REVIEW` "the reviewName field on the notification will provide
//! the resource name of the review ..., and locationName will have the
//! location's resource name" (the v1 page spells them `review_name`,
//! `location_name`). No sample message is published, and public receivers
//! disagree on the keys: `notificationType` or `type`; `locationName`,
//! `location` or `location_name`, sometimes as `locations/{l}` with the
//! account apart (`account`); `reviewName`, `review` or `review_name`, the
//! review sometimes an object with a `name`. UNCONFIRMED, so this parser
//! takes every one of those readings, derives the location from the review
//! name when the location is missing, and keeps unknown types (they are
//! acknowledged without a read).
//!
//! **Invariant:** nothing of a notification but the location (and the
//! review name, for logs) is used: the review itself is read back from the
//! Business Profile API.

use crate::domain::LocationId;

/// The type of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// `NEW_REVIEW`.
    NewReview,
    /// `UPDATED_REVIEW`.
    UpdatedReview,
    /// Any other type (`GOOGLE_UPDATE`, `NEW_QUESTION`, ...): no read.
    Other(String),
}

impl NotificationKind {
    fn parse(name: &str) -> NotificationKind {
        match name {
            "NEW_REVIEW" => NotificationKind::NewReview,
            "UPDATED_REVIEW" => NotificationKind::UpdatedReview,
            other => NotificationKind::Other(other.to_owned()),
        }
    }
}

/// A location as a notification names it: `accounts/{a}/locations/{l}`,
/// or `locations/{l}` when the account is not given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifiedLocation {
    /// The account number, if named.
    pub account: Option<String>,
    /// The location number.
    pub location: String,
}

impl NotifiedLocation {
    /// Whether `configured` (`accounts/{a}/locations/{l}`) is this
    /// location. Without an account only the location number is compared:
    /// location numbers are unique across accounts.
    pub fn matches(&self, configured: &LocationId) -> bool {
        let parts: Vec<&str> = configured.as_str().split('/').collect();
        let ["accounts", account, "locations", location] = parts[..] else {
            return false;
        };
        location == self.location && self.account.as_deref().is_none_or(|a| a == account)
    }

    /// The configured location this notification is about, if any.
    pub fn resolve<'a>(
        &self,
        configured: impl IntoIterator<Item = &'a LocationId>,
    ) -> Option<&'a LocationId> {
        configured.into_iter().find(|id| self.matches(id))
    }

    fn parse(name: &str, account: Option<&str>) -> Option<NotifiedLocation> {
        let parts: Vec<&str> = name.trim_matches('/').split('/').collect();
        let (named_account, location) = match parts[..] {
            ["accounts", a, "locations", l, ..] => (Some(a), l),
            ["locations", l, ..] => (None, l),
            _ => return None,
        };
        let account = named_account.or_else(|| {
            account.and_then(|a| {
                let a = a.trim_matches('/');
                Some(a.strip_prefix("accounts/").unwrap_or(a)).filter(|a| !a.contains('/'))
            })
        });
        valid_segment(location).then(|| NotifiedLocation {
            account: account.filter(|a| valid_segment(a)).map(str::to_owned),
            location: location.to_owned(),
        })
    }
}

/// A resource-name segment: non-empty, no whitespace or control characters.
fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.chars().all(|c| c.is_ascii_graphic() && c != '/')
}

/// What a notification says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GbpNotification {
    /// Its type.
    pub kind: NotificationKind,
    /// The location, when the notification names one.
    pub location: Option<NotifiedLocation>,
    /// The review's resource name, when it names one.
    pub review: Option<String>,
}

impl GbpNotification {
    /// Whether the location should be read: a new or updated review of a
    /// named location.
    pub fn wants_read(&self) -> bool {
        matches!(
            self.kind,
            NotificationKind::NewReview | NotificationKind::UpdatedReview
        ) && self.location.is_some()
    }
}

/// Why a message's data is not a notification at all (it should still be
/// acknowledged: it will never parse better).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotificationError {
    /// Not JSON, or not a JSON object.
    #[error("notification data is not a JSON object: {0}")]
    NotJson(String),
    /// No type under any of the names in use.
    #[error("notification has no notificationType")]
    NoType,
    /// A review notification that names no usable location or review.
    #[error("{kind} notification names no location")]
    NoLocation {
        /// The type it had.
        kind: String,
    },
}

/// The first string among `keys` in `object`.
fn first_str<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| object.get(*k).and_then(|v| v.as_str()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Reads a notification from a Pub/Sub message's (decoded) data.
pub fn parse(data: &[u8]) -> Result<GbpNotification, NotificationError> {
    let value: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| NotificationError::NotJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| NotificationError::NotJson("not an object".into()))?;
    let kind = first_str(object, &["notificationType", "type", "notification_type"])
        .map(NotificationKind::parse)
        .ok_or(NotificationError::NoType)?;
    let review = first_str(object, &["reviewName", "review", "review_name"])
        .map(str::to_owned)
        .or_else(|| {
            // Some receivers see the review as an object.
            object
                .get("review")
                .and_then(|r| r.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        })
        .filter(|r| r.contains("/reviews/"));
    let account = first_str(object, &["account", "accountName", "account_name"]);
    let location = first_str(object, &["locationName", "location", "location_name"])
        .and_then(|l| NotifiedLocation::parse(l, account))
        .or_else(|| {
            review
                .as_deref()
                .and_then(|r| NotifiedLocation::parse(r, account))
        });
    if location.is_none()
        && matches!(
            kind,
            NotificationKind::NewReview | NotificationKind::UpdatedReview
        )
    {
        return Err(NotificationError::NoLocation {
            kind: match kind {
                NotificationKind::NewReview => "NEW_REVIEW".into(),
                _ => "UPDATED_REVIEW".into(),
            },
        });
    }
    Ok(GbpNotification {
        kind,
        location,
        review,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(account: Option<&str>, location: &str) -> Option<NotifiedLocation> {
        Some(NotifiedLocation {
            account: account.map(str::to_owned),
            location: location.to_owned(),
        })
    }

    // The shapes below are the readings found in Google's reference (field
    // names `reviewName`/`locationName`, v4 NotificationType; `review_name`/
    // `location_name`, v1 NotificationSetting) and in public receivers of
    // these notifications (`type`/`location`/`review`; `locationName` as
    // `locations/{l}`; `review` as an object). See the module doc.
    #[test]
    fn every_reading_of_a_review_notification_names_the_location() {
        let cases: &[(&str, Option<NotifiedLocation>)] = &[
            (
                r#"{"notificationType":"NEW_REVIEW","locationName":"accounts/1/locations/2","reviewName":"accounts/1/locations/2/reviews/r"}"#,
                loc(Some("1"), "2"),
            ),
            (
                r#"{"type":"NEW_REVIEW","location":"accounts/1/locations/2","review":"accounts/1/locations/2/reviews/r"}"#,
                loc(Some("1"), "2"),
            ),
            (
                r#"{"notification_type":"UPDATED_REVIEW","location_name":"accounts/1/locations/2","review_name":"accounts/1/locations/2/reviews/r"}"#,
                loc(Some("1"), "2"),
            ),
            (
                r#"{"notificationType":"NEW_REVIEW","locationName":"locations/2"}"#,
                loc(None, "2"),
            ),
            (
                r#"{"notificationType":"NEW_REVIEW","account":"accounts/1","location":"locations/2"}"#,
                loc(Some("1"), "2"),
            ),
            (
                r#"{"notificationType":"NEW_REVIEW","reviewName":"accounts/1/locations/2/reviews/r"}"#,
                loc(Some("1"), "2"),
            ),
            (
                r#"{"notificationType":"NEW_REVIEW","review":{"name":"accounts/1/locations/2/reviews/r","starRating":"FIVE"}}"#,
                loc(Some("1"), "2"),
            ),
        ];
        for (data, location) in cases {
            let n = parse(data.as_bytes()).unwrap_or_else(|e| panic!("{data}: {e}"));
            assert_eq!(&n.location, location, "{data}");
            assert!(n.wants_read(), "{data}");
        }
    }

    #[test]
    fn the_review_name_is_kept_when_given() {
        let n =
            parse(br#"{"type":"UPDATED_REVIEW","review":"accounts/1/locations/2/reviews/abc"}"#)
                .expect("parses");
        assert_eq!(n.kind, NotificationKind::UpdatedReview);
        assert_eq!(
            n.review.as_deref(),
            Some("accounts/1/locations/2/reviews/abc")
        );
    }

    #[test]
    fn other_types_are_kept_and_want_no_read() {
        let n = parse(
            br#"{"notificationType":"GOOGLE_UPDATE","locationName":"accounts/1/locations/2"}"#,
        )
        .expect("parses");
        assert_eq!(n.kind, NotificationKind::Other("GOOGLE_UPDATE".into()));
        assert!(!n.wants_read());
        let n = parse(br#"{"notificationType":"SOMETHING_NEW_IN_2027"}"#).expect("parses");
        assert!(!n.wants_read());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            parse(b"not json"),
            Err(NotificationError::NotJson(_))
        ));
        assert!(matches!(
            parse(b"[1,2]"),
            Err(NotificationError::NotJson(_))
        ));
        assert_eq!(parse(b"{}"), Err(NotificationError::NoType));
        assert_eq!(
            parse(br#"{"type":"NEW_REVIEW","location":"places/xyz"}"#),
            Err(NotificationError::NoLocation {
                kind: "NEW_REVIEW".into()
            })
        );
        assert_eq!(
            parse(br#"{"type":"NEW_REVIEW","location":"accounts/1/locations/has space"}"#),
            Err(NotificationError::NoLocation {
                kind: "NEW_REVIEW".into()
            })
        );
    }

    #[test]
    fn matching_against_configured_locations() {
        let configured = [
            LocationId::new("accounts/1/locations/2"),
            LocationId::new("accounts/1/locations/3"),
        ];
        let full = NotifiedLocation {
            account: Some("1".into()),
            location: "3".into(),
        };
        assert_eq!(full.resolve(&configured), Some(&configured[1]));
        let other_account = NotifiedLocation {
            account: Some("9".into()),
            location: "3".into(),
        };
        assert_eq!(other_account.resolve(&configured), None);
        let bare = NotifiedLocation {
            account: None,
            location: "2".into(),
        };
        assert_eq!(bare.resolve(&configured), Some(&configured[0]));
        assert!(!bare.matches(&LocationId::new("2")));
    }
}
