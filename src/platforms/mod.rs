//! Review platforms: one folder per platform, each turning the platform's
//! wire format into domain [`Review`]s at the edge. Platform clients know
//! nothing of delivery or the ledger: a poll of one location is a cursor that
//! yields pages, and the caller (`poll`) records each page.

pub mod facebook;
pub mod file;
#[doc(hidden)]
pub mod fuzzing;
pub mod google;
pub mod http;
pub mod places;
mod records;
#[cfg(test)]
mod test_server;
pub mod trustpilot;
pub mod yelp;

use crate::config::{SourceConfig, SourceKind};
use crate::domain::{LocationId, Rejected, Review};
use crate::ledger::PollState;

/// One page of a location's reviews, already mapped.
#[derive(Debug, Default)]
pub struct FetchedPage {
    /// Records that became reviews.
    pub reviews: Vec<Review>,
    /// Records that could not (quarantined by the caller, the pass goes on).
    pub rejected: Vec<Rejected>,
    /// The platform's count of the location's reviews, when it reports one
    /// (Google's `totalReviewCount`).
    pub reported_total: Option<u64>,
}

/// Why a mapped review's times are implausible (before 2000, or more than a
/// day ahead: [`crate::timestamps::check_review_time`]), naming the field;
/// `None` when they are fine. Every platform applies it to every review, so
/// a clock-skewed or hostile record is quarantined instead of sent, and its
/// time never becomes a location's high-water mark.
pub(crate) fn review_time_problem(review: &Review) -> Option<String> {
    let now = chrono::Utc::now();
    if let Err(e) = crate::timestamps::check_review_time(review.created_at, now) {
        return Some(format!("created time: {e}"));
    }
    let updated = review.updated_at?;
    crate::timestamps::check_review_time(updated, now)
        .err()
        .map(|e| format!("updated time: {e}"))
}

/// A time read from a rejected record, kept for the incremental stop rule
/// only when it is plausible.
pub(crate) fn plausible_time(
    t: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    crate::timestamps::check_review_time(t, chrono::Utc::now())
        .is_ok()
        .then_some(t)
}

/// Why a poll of a location failed. Pages already yielded stay recorded.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The platform credential is revoked or expired for good (OAuth
    /// `invalid_grant`): only a human can fix it. The source stops until the
    /// config is reloaded; other sources go on.
    #[error("needs new consent: {0}")]
    NeedsConsent(String),
    /// The platform refused our credentials even after a token refresh (401/403).
    #[error("not authorized: {0}")]
    Unauthorized(String),
    /// The location does not exist on the platform (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// An error status that retries did not cure (429/5xx after the last
    /// retry, or another 4xx).
    #[error("HTTP {status}: {detail}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The platform's error message or code.
        detail: String,
    },
    /// No usable answer (connection refused or reset, timeout).
    #[error("{0}")]
    Transport(String),
    /// An answer that is not the documented shape (not JSON, a page that is
    /// not an object, a body over the size cap, a paging loop).
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// The platform's quota is used up until a known time (Yelp's daily
    /// limit): retrying before then only fails again, so nothing is retried.
    #[error("quota exhausted: {0}")]
    QuotaExhausted(String),
    /// The platform no longer serves what we read (Graph's ratings edge,
    /// error 12): only a config change (or a new integration) can help.
    #[error("no longer served: {0}")]
    Deprecated(String),
    /// The platform (or its token endpoint) answered with a redirect that is
    /// not followed: to another origin, one too many, or for a request that
    /// is never redirected (`crate::redirect`). Not retried within the
    /// pass: the next pass asks again.
    #[error(transparent)]
    Redirect(#[from] crate::redirect::RedirectRefused),
    /// A local file could not be read (file source).
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
}

impl PlatformError {
    /// Short, low-cardinality class for logs, metrics and the poll log.
    pub fn error_type(&self) -> &'static str {
        match self {
            PlatformError::NeedsConsent(_) => "needs_consent",
            PlatformError::Unauthorized(_) => "unauthorized",
            PlatformError::NotFound(_) => "not_found",
            PlatformError::Http { .. } => "http",
            PlatformError::Transport(_) => "transport",
            PlatformError::InvalidResponse(_) => "invalid_response",
            PlatformError::QuotaExhausted(_) => "quota_exhausted",
            PlatformError::Deprecated(_) => "deprecated",
            PlatformError::Redirect(_) => "redirect",
            PlatformError::Io { .. } => "io",
        }
    }
}

/// A configured source's platform client.
// One per source, built once per config: the size difference between
// variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum SourceClient {
    /// `google_business_profile`.
    Google(google::GoogleClient),
    /// `google_places`.
    Places(places::PlacesClient),
    /// `yelp`.
    Yelp(yelp::YelpClient),
    /// `facebook`.
    Facebook(facebook::FacebookClient),
    /// `trustpilot`.
    Trustpilot(trustpilot::TrustpilotClient),
    /// `file`.
    File(file::FileReader),
}

impl SourceClient {
    /// Builds the client of a source. `http` is the process's shared
    /// connection pool; the source's timeout and rate limit are its own.
    pub fn new(source: &SourceConfig, http: reqwest::Client) -> SourceClient {
        match &source.kind {
            SourceKind::GoogleBusinessProfile(cfg) => {
                SourceClient::Google(google::GoogleClient::new(source, cfg, http))
            }
            SourceKind::GooglePlaces(cfg) => {
                SourceClient::Places(places::PlacesClient::new(source, cfg, http))
            }
            SourceKind::Yelp(cfg) => SourceClient::Yelp(yelp::YelpClient::new(source, cfg, http)),
            SourceKind::Facebook(cfg) => {
                SourceClient::Facebook(facebook::FacebookClient::new(source, cfg, http))
            }
            SourceKind::Trustpilot(cfg) => {
                SourceClient::Trustpilot(trustpilot::TrustpilotClient::new(source, cfg, http))
            }
            SourceKind::File(cfg) => SourceClient::File(file::FileReader::new(cfg)),
        }
    }

    /// Starts reading one location from where `state` says it was left.
    pub fn start_poll(&self, location: &LocationId, state: PollState) -> LocationPoll<'_> {
        match self {
            SourceClient::Google(c) => LocationPoll::Google(c.start_poll(location, state)),
            SourceClient::Places(c) => LocationPoll::Places(c.start_poll(location, state)),
            SourceClient::Yelp(c) => LocationPoll::Yelp(c.start_poll(location, state)),
            SourceClient::Facebook(c) => LocationPoll::Facebook(c.start_poll(location, state)),
            SourceClient::Trustpilot(c) => LocationPoll::Trustpilot(c.start_poll(location, state)),
            SourceClient::File(c) => LocationPoll::File(c.start_poll(location, state)),
        }
    }

    /// Every location the platform lists for this source's discovery
    /// settings (`discover_accounts` of `google_business_profile`), or `None`
    /// when the source does not discover. See `crate::locations` for what
    /// becomes of them.
    pub async fn discover(&self) -> Option<google::Discovery> {
        match self {
            SourceClient::Google(c) if !c.discover_accounts().is_empty() => {
                Some(c.discover().await)
            }
            _ => None,
        }
    }

    /// `check --online`: fetches a token and lists each location once
    /// (one page), returning a line per location for the operator: what it
    /// found, or why it failed with the URL that failed (no query: it may
    /// carry a token). A file location is read whole, and each match that
    /// cannot be read is a line of its own.
    pub async fn check_online(
        &self,
        locations: &[LocationId],
    ) -> Vec<(LocationId, Result<String, String>)> {
        let mut out = Vec::with_capacity(locations.len());
        for location in locations {
            if let SourceClient::File(reader) = self {
                match reader.check_location(location) {
                    Ok(line) => out.push((location.clone(), Ok(line))),
                    Err(problems) => out.extend(
                        problems
                            .into_iter()
                            .map(|problem| (location.clone(), Err(problem))),
                    ),
                }
                continue;
            }
            let mut poll = self.start_poll(location, PollState::default());
            let result = poll.next_page().await.map(|page| match page {
                Some(p) => format!(
                    "ok: {} reviews on the first page{}",
                    p.reviews.len(),
                    p.reported_total
                        .map(|t| format!(", {t} in total"))
                        .unwrap_or_default()
                ),
                None => "ok: no reviews".to_owned(),
            });
            drop(poll);
            let result = result.map_err(|e| match self.last_request() {
                Some(request) => format!("{e} ({request})"),
                None => e.to_string(),
            });
            out.push((location.clone(), result));
        }
        out
    }

    /// The last platform request sent or tried, as `METHOD
    /// scheme://host/path` (never the query).
    pub fn last_request(&self) -> Option<String> {
        match self {
            SourceClient::Google(c) => c.last_request(),
            SourceClient::Places(c) => c.last_request(),
            SourceClient::Yelp(c) => c.last_request(),
            SourceClient::Facebook(c) => c.last_request(),
            SourceClient::Trustpilot(c) => c.last_request(),
            SourceClient::File(_) => None,
        }
    }

    /// Platform HTTP requests made so far by this client (for the poll log
    /// and tests).
    pub fn requests(&self) -> u64 {
        match self {
            SourceClient::Google(c) => c.requests(),
            SourceClient::Places(c) => c.requests(),
            SourceClient::Yelp(c) => c.requests(),
            SourceClient::Facebook(c) => c.requests(),
            SourceClient::Trustpilot(c) => c.requests(),
            SourceClient::File(_) => 0,
        }
    }
}

/// A poll of one location in progress.
pub enum LocationPoll<'a> {
    /// Google Business Profile.
    Google(google::GooglePoll<'a>),
    /// Google Places.
    Places(places::PlacesPoll<'a>),
    /// Yelp.
    Yelp(yelp::YelpPoll<'a>),
    /// Facebook.
    Facebook(facebook::FacebookPoll<'a>),
    /// Trustpilot.
    Trustpilot(trustpilot::TrustpilotPoll<'a>),
    /// Files.
    File(file::FilePoll),
}

impl LocationPoll<'_> {
    /// The next page, or `None` when the location is read up to date.
    pub async fn next_page(&mut self) -> Result<Option<FetchedPage>, PlatformError> {
        match self {
            LocationPoll::Google(p) => p.next_page().await,
            LocationPoll::Places(p) => p.next_page().await,
            LocationPoll::Yelp(p) => p.next_page().await,
            LocationPoll::Facebook(p) => p.next_page().await,
            LocationPoll::Trustpilot(p) => p.next_page().await,
            LocationPoll::File(p) => p.next_page(),
        }
    }

    /// Whether the poll is over: no page remains to be asked for.
    pub fn is_done(&self) -> bool {
        match self {
            LocationPoll::Google(p) => p.is_done(),
            LocationPoll::Places(p) => p.is_done(),
            LocationPoll::Yelp(p) => p.is_done(),
            LocationPoll::Facebook(p) => p.is_done(),
            LocationPoll::Trustpilot(p) => p.is_done(),
            LocationPoll::File(p) => p.is_done(),
        }
    }

    /// The polling state to store once every page has been read (never
    /// called after an error, so a failed poll re-reads from the old mark).
    pub fn finish(self) -> PollState {
        match self {
            LocationPoll::Google(p) => p.finish(),
            LocationPoll::Places(p) => p.finish(),
            LocationPoll::Yelp(p) => p.finish(),
            LocationPoll::Facebook(p) => p.finish(),
            LocationPoll::Trustpilot(p) => p.finish(),
            LocationPoll::File(p) => p.finish(),
        }
    }
}

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

/// A JSON value's type in words, for rejection reasons ("a number is not a
/// string"). Never the value itself: it may be long or personal.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
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
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
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

/// What the platform tests share: a source config read from TOML, as an
/// admin would write it, so tests build clients exactly as `App` does.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::config::SourceConfig;

    /// The one `[[source]]` in `source_toml` (a `[travtus]` is added).
    /// Panics with the config problems if it is refused.
    pub(crate) fn source_from_toml(source_toml: &str) -> SourceConfig {
        let text = format!("[travtus]\ntoken = \"t\"\n\n{source_toml}");
        let path = std::path::Path::new("/nonexistent/review-sync/config.toml");
        match crate::config::load_str_with_env(&text, path, &|_| None) {
            Ok(mut config) => config.sources.remove(0),
            Err(e) => panic!("test config refused:\n{e}"),
        }
    }
}

#[cfg(test)]
mod time_rule_tests {
    use super::*;
    use crate::domain::{Platform, ReviewId};
    use chrono::{TimeZone, Utc};

    fn review(created: chrono::DateTime<Utc>, updated: Option<chrono::DateTime<Utc>>) -> Review {
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
        let ok = Utc
            .with_ymd_and_hms(2024, 5, 1, 0, 0, 0)
            .single()
            .expect("date");
        let old = Utc
            .with_ymd_and_hms(1999, 5, 1, 0, 0, 0)
            .single()
            .expect("date");
        let future = Utc::now() + chrono::Duration::days(30);
        assert_eq!(review_time_problem(&review(ok, Some(ok))), None);
        assert!(
            review_time_problem(&review(old, None)).is_some_and(|r| r.starts_with("created time:"))
        );
        assert!(
            review_time_problem(&review(ok, Some(future)))
                .is_some_and(|r| r.starts_with("updated time:"))
        );
        assert_eq!(plausible_time(ok), Some(ok));
        assert_eq!(plausible_time(future), None);
    }
}
