//! Review platforms: one folder per platform, each turning the platform's
//! wire format into domain [`Review`]s at the edge. Platform clients know
//! nothing of delivery or the ledger: a client fetches one page of a
//! location where the generic location poll (`crate::poll::location`) asks,
//! maps its records, and says what the page tells about the next one; the
//! poll pages, stops and keeps the cursor, and the pass records each page.

#[doc(hidden)]
pub mod fuzzing;
pub mod http;
mod records;
#[macro_use]
pub(crate) mod registry;
pub use registry::sandbox_sources;
#[cfg(test)]
mod test_server;

// The registry: every platform, each a folder `src/platforms/<name>/` whose
// `PLATFORM` is its entry, in the order `check`, the sandbox's config and
// "unknown kind" messages list them. The only place that lists platforms.
platforms!(google, places, yelp, facebook, trustpilot, file);

use crate::config::SourceConfig;
use crate::domain::{LocationId, Rejected, Review};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
pub(crate) use records::short_message;
pub use records::{MAX_REVIEW_ID_BYTES, check_review_id};
use url::Url;

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

/// How a platform's pages follow each other, and how far back an
/// incremental read of it goes: what the generic location poll
/// (`crate::poll::location`) needs to know to read any location of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// The paging style.
    pub style: PagingStyle,
    /// How far behind the stored high-water mark an incremental read keeps
    /// reading, for reviews the platform lists a while after their time;
    /// `None` when its answers have no order to stop on (every read reads
    /// all it is given).
    pub overlap: Option<TimeDelta>,
    /// The most pages one read may take: the platform's own last resort
    /// against a server that pages forever (the pass bounds come first).
    pub max_pages: u32,
}

/// How a platform's pages follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingStyle {
    /// One request answers everything there is (Places, Yelp).
    Single,
    /// Each page gives a token for the next (Google's `nextPageToken`,
    /// Graph's `after` cursor); `what` names it in errors. A platform that
    /// reports a total is also held to it: more than twice the total plus
    /// ten pages of `page_size` records is a paging loop.
    Tokens {
        /// "page token", "cursor".
        what: &'static str,
        /// Records per full page.
        page_size: u32,
    },
    /// Pages by number, or by the link a page gives to the next
    /// (Trustpilot); a page with no records is past the end, and one that
    /// says nothing about a next page is the last when shorter than
    /// `per_page`.
    Numbered {
        /// Records per full page.
        per_page: u32,
    },
    /// The platform reads on by itself from an opaque position that the
    /// poll stores between reads ([`SourceClient::stream`]: files, whose
    /// position is the content fingerprint of every file read).
    Stream,
}

/// Where one page request goes.
#[derive(Debug, Clone, Copy)]
pub enum PageAt<'a> {
    /// The first page (or the one request, for [`PagingStyle::Single`]).
    First,
    /// The page a token names.
    Token(&'a str),
    /// The page of the request's number ([`PagingStyle::Numbered`]).
    Number,
    /// The page a link of the previous page names, already checked to be on
    /// the configured origin.
    Link(&'a Url),
}

/// One page request of a location's read.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    /// The location.
    pub location: &'a LocationId,
    /// The page's number in this read, 1-based: it names records without a
    /// readable id ("page 2 item 7").
    pub number: u32,
    /// Where it is.
    pub at: PageAt<'a>,
}

/// What a page says about the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// This is the last page.
    Last,
    /// The token of the next page.
    Token(String),
    /// A link to the next page, on the configured origin.
    Link(Url),
    /// More pages follow, to be read by number (a link the poll may not
    /// follow, to another origin).
    More,
    /// Nothing said: the next number, unless this page was short.
    Unknown,
}

/// One page of a location, read and mapped by its platform: what the generic
/// poll hands on, and what it needs to page on and to stop.
#[derive(Debug)]
pub struct Page {
    /// The reviews, the rejected records and the reported total.
    pub fetched: FetchedPage,
    /// Records on the page, good and bad.
    pub records: usize,
    /// The oldest record time on the page (the platform's order: update or
    /// creation), rejected records included when theirs is readable and
    /// plausible: the incremental stop compares it with the mark.
    pub oldest: Option<DateTime<Utc>>,
    /// The newest one: what the high-water mark moves to.
    pub newest: Option<DateTime<Utc>>,
    /// What the page says about the next one.
    pub next: Next,
    /// The ids of the page's records, in order, for a numbered paging's
    /// check that a server does not serve the same page again.
    pub ids: Vec<String>,
    /// Where the page was read from, for a paging that follows links (a
    /// link back to a page already read is a loop).
    pub url: Option<Url>,
}

impl Page {
    /// A page of `mapped` records followed by `next`.
    pub(crate) fn new(mapped: records::MappedRecords, next: Next) -> Page {
        Page {
            fetched: mapped.page,
            records: mapped.records,
            oldest: mapped.oldest,
            newest: mapped.newest,
            next,
            ids: Vec::new(),
            url: None,
        }
    }
}

/// One call of a batch read: several locations of one batch group (Google:
/// one account) read together, newest first across them all.
#[derive(Debug, Clone, Copy)]
pub struct BatchRequest<'a> {
    /// The locations the call names, in the order the parts refer to.
    pub locations: &'a [LocationId],
    /// The page's number in this read, 1-based (names records without a
    /// readable id).
    pub number: u32,
    /// The previous page's next-page token; `None` for the first page.
    pub token: Option<&'a str>,
}

/// One location's records on a page of a batch read.
#[derive(Debug, Default)]
pub struct BatchPart {
    /// Its reviews and rejected records (never a reported total: batch
    /// answers carry none).
    pub fetched: FetchedPage,
    /// The newest record time of the location on this page: what its
    /// high-water mark moves to.
    pub newest: Option<DateTime<Utc>>,
}

/// One page of a batch read, mapped and routed to its locations.
#[derive(Debug)]
pub struct BatchPage {
    /// Each location's part, by the location's index in the request; a
    /// location without a record on the page has none.
    pub parts: Vec<(usize, BatchPart)>,
    /// Records on the page, good and bad, every location together.
    pub records: usize,
    /// The oldest record time on the page, every location together (the
    /// incremental stop compares it with each location's mark).
    pub oldest: Option<DateTime<Utc>>,
    /// Whether another page follows (a token), or this is the last.
    pub next: Next,
}

/// Why a batch call gave no page.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The call was refused because of one location it named (Google: an
    /// unverified or unknown location, named in the error): that location
    /// is read on its own, the others by batch again.
    #[error("{error}")]
    Refused {
        /// The location's index in the request.
        index: usize,
        /// The platform's refusal.
        error: PlatformError,
    },
    /// The call as a whole was refused for what it asked (a client error
    /// naming no location: a cap on names lower than configured, a method
    /// the account cannot use): the locations are read one by one instead.
    #[error("{0}")]
    Unserved(PlatformError),
    /// The call failed (server errors after the retries, transport, a
    /// refused credential, an answer of the wrong shape): the read fails.
    #[error(transparent)]
    Failed(#[from] PlatformError),
}

/// A platform that can read many locations in one call (Google's
/// `locations:batchGetReviews`): what an incremental pass uses for the
/// locations that have a high-water mark.
pub trait BatchReads: Send + Sync {
    /// The most locations one call names (at least 2).
    fn max_locations(&self) -> usize;

    /// Which calls `location` can share (Google: its account, which the
    /// call's path names); `None` when it cannot be read by batch.
    fn batch_group(&self, location: &LocationId) -> Option<String>;

    /// Reads one page of the reviews of `request.locations` together. Each
    /// call is one request (and its retries).
    fn fetch_batch<'a>(
        &'a self,
        request: BatchRequest<'a>,
    ) -> BoxFuture<'a, Result<BatchPage, BatchError>>;
}

/// A platform that reads on by itself ([`PagingStyle::Stream`]).
pub trait PageStream: Send {
    /// The next page, or `None` when the location is read up to date.
    fn next_page(&mut self) -> BoxFuture<'_, Result<Option<FetchedPage>, PlatformError>>;
    /// Whether the next [`PageStream::next_page`] would answer `None`
    /// without reading anything.
    fn is_done(&self) -> bool;
    /// The position to store after a complete read.
    fn position(self: Box<Self>) -> Option<String>;
}

/// A configured source's platform client: everything the poll, `check` and
/// discovery ask of a platform. One per source, built from its settings.
pub trait SourceClient: Send + Sync {
    /// How its pages follow each other.
    fn paging(&self) -> Paging;

    /// Reads one page. Nothing is cached: each call is one request (and its
    /// retries).
    fn fetch<'a>(&'a self, request: PageRequest<'a>) -> BoxFuture<'a, Result<Page, PlatformError>> {
        let _ = request;
        Box::pin(std::future::ready(Err(PlatformError::InvalidResponse(
            "this platform does not read pages by request".into(),
        ))))
    }

    /// Starts reading `location` on from `position`
    /// ([`PagingStyle::Stream`] only).
    fn stream<'a>(
        &'a self,
        location: &LocationId,
        position: Option<&str>,
    ) -> Box<dyn PageStream + 'a> {
        let _ = (location, position);
        Box::new(NoStream)
    }

    /// Batch reads of many locations at once, when the platform has them
    /// and the source's settings leave them on; `None`: every location is
    /// read on its own.
    fn batch(&self) -> Option<&dyn BatchReads> {
        None
    }

    /// Platform HTTP requests made so far (for the poll log and tests).
    fn requests(&self) -> u64 {
        0
    }

    /// The last platform request sent or tried, as `METHOD
    /// scheme://host/path` (never the query): `check --online` names it.
    fn last_request(&self) -> Option<String> {
        None
    }

    /// Every location the platform lists for this source's discovery
    /// settings, or `None` when the source does not discover. See
    /// `crate::locations` for what becomes of them.
    fn discover(&self) -> Option<BoxFuture<'_, Discovery>> {
        None
    }

    /// `check --online` for a platform whose first page says too little (a
    /// file source reads every file): a line, or every problem found.
    /// `None`: the first page is read, as for any platform.
    fn check_whole(&self, location: &LocationId) -> Option<Result<String, Vec<String>>> {
        let _ = location;
        None
    }
}

/// The stream of a platform that has none.
struct NoStream;

impl PageStream for NoStream {
    fn next_page(&mut self) -> BoxFuture<'_, Result<Option<FetchedPage>, PlatformError>> {
        Box::pin(std::future::ready(Err(PlatformError::InvalidResponse(
            "this platform does not read by stream".into(),
        ))))
    }
    fn is_done(&self) -> bool {
        false
    }
    fn position(self: Box<Self>) -> Option<String> {
        None
    }
}

/// A location found on the platform by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredLocation {
    /// The id the platform's reviews API takes.
    pub id: LocationId,
    /// Its name on the platform, when it gives one.
    pub title: Option<String>,
    /// Its store code, trimmed; `None` when absent or blank.
    pub store_code: Option<String>,
}

/// What one discovery found over every configured account.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Accounts (or whatever the platform groups locations by) listed.
    pub accounts: usize,
    /// Every location listed, in the platform's order, account after account.
    pub locations: Vec<DiscoveredLocation>,
    /// Accounts that could not be listed (completely), with why. Locations
    /// read from an account before its failure are still in `locations`.
    pub failures: Vec<(String, PlatformError)>,
}

/// The client of a configured source, built by its platform, taking its
/// requests from the process's budgets `quotas`.
pub fn client(
    source: &SourceConfig,
    http: reqwest::Client,
    quotas: &std::sync::Arc<crate::quota::Quotas>,
) -> Box<dyn SourceClient> {
    source.kind.client(source, http, quotas)
}

/// Checks a location id that goes into a URL path as one segment (`bare`,
/// the id as written being `id`); the problem names it as `what`.
pub(crate) fn path_segment_id(bare: &str, id: &str, what: &str) -> Result<(), String> {
    let one_segment = !bare.is_empty()
        && !bare.chars().any(|c| {
            matches!(c, '/' | '?' | '#' | '%' | '\\') || c.is_whitespace() || c.is_control()
        });
    if one_segment {
        Ok(())
    } else {
        Err(format!(
            "id: {id:?} is not {what} (one URL path segment: no '/', '?', '#', '%' or spaces)"
        ))
    }
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
