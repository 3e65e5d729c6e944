//! Review platforms: one folder per platform, each turning the platform's
//! wire format into domain [`Review`]s at the edge. Platform clients know
//! nothing of delivery or the ledger: a poll of one location is a cursor that
//! yields pages, and the caller (`poll`) records each page.

pub mod file;
pub mod google;
pub mod http;

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
            SourceKind::File(cfg) => SourceClient::File(file::FileReader::new(cfg)),
        }
    }

    /// Starts reading one location from where `state` says it was left.
    pub fn start_poll(&self, location: &LocationId, state: PollState) -> LocationPoll<'_> {
        match self {
            SourceClient::Google(c) => LocationPoll::Google(c.start_poll(location, state)),
            SourceClient::File(c) => LocationPoll::File(c.start_poll(location, state)),
        }
    }

    /// `check --online`: fetches a token and lists each location once
    /// (one page), returning a line per location for the operator.
    pub async fn check_online(
        &self,
        locations: &[LocationId],
    ) -> Vec<(LocationId, Result<String, PlatformError>)> {
        let mut out = Vec::with_capacity(locations.len());
        for location in locations {
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
            out.push((location.clone(), result));
        }
        out
    }

    /// Platform HTTP requests made so far by this client (for the poll log
    /// and tests).
    pub fn requests(&self) -> u64 {
        match self {
            SourceClient::Google(c) => c.requests(),
            SourceClient::File(_) => 0,
        }
    }
}

/// A poll of one location in progress.
pub enum LocationPoll<'a> {
    /// Google Business Profile.
    Google(google::GooglePoll<'a>),
    /// Files.
    File(file::FilePoll),
}

impl LocationPoll<'_> {
    /// The next page, or `None` when the location is read up to date.
    pub async fn next_page(&mut self) -> Result<Option<FetchedPage>, PlatformError> {
        match self {
            LocationPoll::Google(p) => p.next_page().await,
            LocationPoll::File(p) => p.next_page(),
        }
    }

    /// The polling state to store once every page has been read (never
    /// called after an error, so a failed poll re-reads from the old mark).
    pub fn finish(self) -> PollState {
        match self {
            LocationPoll::Google(p) => p.finish(),
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
