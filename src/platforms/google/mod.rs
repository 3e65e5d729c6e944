//! Google Business Profile v4: `accounts.locations.reviews.list`, read
//! newest-first and incrementally.
//!
//! `GET {api_base_url}/v4/accounts/{a}/locations/{l}/reviews?pageSize=50&orderBy=updateTime%20desc`
//! with a bearer token from the OAuth2 refresh-token grant, paged with
//! `nextPageToken`. The mapping of Google's JSON lives in `wire`.
//!
//! Where the reference says UNCONFIRMED, this module assumes:
//! - the page size cap is 50 (current docs) rather than 200 (old docs): 50
//!   works under both;
//! - the v4 reviews methods share the 300 requests/minute default quota: the
//!   budget is the source's `requests_per_minute`, so it is the operator's
//!   to change;
//! - no `Retry-After` is sent on 429: the shared backoff handles its absence;
//! - deleted reviews simply disappear from the list (no tombstones): the
//!   incremental read never sees deletions; reconciliation does;
//! - `updateTime desc` order is only roughly kept for reviews Google indexes
//!   late: hence [`OVERLAP`].

mod discovery;
mod wire;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use discovery::{DiscoveredLocation, Discovery};

use super::http::{ErrorAnswer, PlatformHttp};
use super::{FetchedPage, PlatformError};
use crate::config::{GoogleConfig, SourceConfig};
use crate::domain::LocationId;
use crate::ledger::PollState;
use crate::oauth::{Grant, TokenCache};
use crate::platforms::records::TokenPaging;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use url::Url;

/// How far behind the stored high-water mark a poll keeps reading. Google
/// sometimes lists a review minutes after its `updateTime`, so it sorts below
/// reviews we already read; an hour covers the delays seen in practice, and
/// re-reading it costs nothing but a page the ledger mostly drops as repeats.
pub const OVERLAP: TimeDelta = TimeDelta::hours(1);

/// Reviews per list request: the documented maximum (see the module notes).
pub const PAGE_SIZE: u32 = 50;

/// The most pages one poll of one location reads: 500,000 reviews, far past
/// any real property, so only a server that pages forever hits it.
pub const MAX_PAGES: u32 = 10_000;

/// The most records one poll may read past twice the location's reported
/// `totalReviewCount` before it is called a paging loop. A server that hands
/// out a fresh page token forever never repeats one; this catches it after a
/// few pages instead of [`MAX_PAGES`] (half an hour at the default rate
/// limit). Twice the total plus ten pages leaves room for a stale count and
/// reviews added while paging.
pub const PAGING_SLACK: u64 = 10 * PAGE_SIZE as u64;

/// The client of one `google_business_profile` source.
pub struct GoogleClient {
    http: PlatformHttp,
    /// `api_base_url`; may carry a path prefix (the sandbox's `/google`).
    api_base_url: Url,
    /// `business_information_base_url`, for discovery (see `discovery`).
    business_information_base_url: Url,
    /// `discover_accounts`; empty when the source does not discover.
    discover_accounts: Vec<String>,
}

impl GoogleClient {
    /// Builds the client: a token cache for the source's refresh token on the
    /// shared pool, and the source's rate limit and timeout.
    pub fn new(source: &SourceConfig, cfg: &GoogleConfig, http: reqwest::Client) -> GoogleClient {
        let tokens = TokenCache::new(
            Grant::RefreshToken {
                client_id: cfg.client_id.clone(),
                client_secret: cfg.client_secret.clone(),
                refresh_token: cfg.refresh_token.clone(),
            },
            cfg.token_url.clone(),
            http.clone(),
        );
        GoogleClient {
            http: PlatformHttp::for_source(source, http, Some(tokens)),
            api_base_url: cfg.api_base_url.clone(),
            business_information_base_url: cfg.business_information_base_url.clone(),
            discover_accounts: cfg.discover_accounts.clone(),
        }
    }

    /// Starts a poll of `location` (`accounts/{a}/locations/{l}`) from the
    /// high-water mark in `state`. Nothing is sent until the first page is asked for.
    pub fn start_poll(&self, location: &LocationId, state: PollState) -> GooglePoll<'_> {
        GooglePoll {
            client: self,
            location: location.clone(),
            stop_before: state.high_water.map(|hw| hw - OVERLAP),
            state,
            newest: None,
            paging: TokenPaging::new("page token", MAX_PAGES),
            records: 0,
        }
    }

    /// Every HTTP request this client made: list calls, retries and token calls.
    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// The last request sent or tried, without its query (`check --online`).
    pub fn last_request(&self) -> Option<String> {
        self.http.last_request()
    }

    /// `{api_base_url}/v4/{location}/reviews`, each location segment escaped
    /// and without double slashes whatever the base's trailing slash.
    fn reviews_url(&self, location: &LocationId) -> Result<Url, PlatformError> {
        let mut url = self.api_base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                PlatformError::InvalidResponse("api_base_url cannot take a path".into())
            })?;
            segments.pop_if_empty();
            segments.push("v4");
            segments.extend(location.as_str().split('/').filter(|s| !s.is_empty()));
            segments.push("reviews");
        }
        Ok(url)
    }

    async fn list_page(
        &self,
        location: &LocationId,
        page_token: Option<&str>,
    ) -> Result<Value, PlatformError> {
        let mut url = self.reviews_url(location)?;
        // Written by hand rather than with `query()`: that would encode the
        // space in `updateTime desc` as `+`, and the documented form is `%20`.
        let mut query = format!("pageSize={PAGE_SIZE}&orderBy=updateTime%20desc");
        if let Some(token) = page_token {
            query.push_str("&pageToken=");
            query.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
        }
        url.set_query(Some(&query));
        self.http
            .get_json(
                &url,
                |request| request,
                |answer| google_error(&answer, location).into(),
            )
            .await
    }
}

/// A poll of one location in progress: pages newest-first until it reaches
/// reviews older than the old high-water mark minus [`OVERLAP`], or the end.
pub struct GooglePoll<'a> {
    client: &'a GoogleClient,
    location: LocationId,
    /// The state the poll started from (its cursor is passed through).
    state: PollState,
    /// `high_water - OVERLAP`: the page on which an older record appears is
    /// the last one read. `None` on a first poll: read everything.
    stop_before: Option<DateTime<Utc>>,
    /// The newest update (else create) time seen in this poll.
    newest: Option<DateTime<Utc>>,
    /// Page tokens followed, the page bound, a loop held back as an error.
    paging: TokenPaging,
    /// Records (reviews and rejected) read in this poll, for the paging
    /// bound ([`PAGING_SLACK`]).
    records: u64,
}

impl GooglePoll<'_> {
    /// The next page, or `None` when the location is read up to date.
    pub async fn next_page(&mut self) -> Result<Option<FetchedPage>, PlatformError> {
        let Some(token) = self.paging.next_request()? else {
            return Ok(None);
        };
        let json = self.client.list_page(&self.location, token).await?;
        let page_number = self.paging.page_read();
        let mapped = wire::map_page(&json, page_number)?;
        self.records += (mapped.page.reviews.len() + mapped.page.rejected.len()) as u64;
        let endless = mapped
            .page
            .reported_total
            .filter(|total| self.records > total.saturating_mul(2).saturating_add(PAGING_SLACK));

        if let Some(newest) = mapped.newest {
            self.newest = Some(self.newest.map_or(newest, |n| n.max(newest)));
        }
        let reached_old_reviews = match (self.stop_before, mapped.oldest) {
            (Some(stop), Some(oldest)) => oldest < stop,
            _ => false,
        };
        match (mapped.next_page_token, endless) {
            _ if reached_old_reviews => self.paging.stop(),
            (None, _) => self.paging.stop(),
            (Some(_), Some(total)) => {
                self.paging
                    .fail_after_this_page(PlatformError::InvalidResponse(format!(
                        "paging loop: {} records in {page_number} pages, but the location reports {total} reviews",
                        self.records,
                    )));
            }
            (token, None) => self.paging.follow(token),
        }
        tracing::debug!(
            location = %self.location,
            page = page_number,
            reviews = mapped.page.reviews.len(),
            rejected = mapped.page.rejected.len(),
            done = self.paging.is_done(),
            "google list page"
        );
        Ok(Some(mapped.page))
    }

    /// Whether the poll is over: the next [`Self::next_page`] would
    /// answer `None` without a request (a pass bound is only hit when more
    /// pages remain).
    pub fn is_done(&self) -> bool {
        self.paging.is_done()
    }

    /// The state to store after a complete poll: the high-water mark moved to
    /// the newest update or create time seen (never backwards).
    pub fn finish(self) -> PollState {
        self.state.advanced_to(self.newest)
    }
}

/// Fuzzing entry point (`fuzz/`, and the kept inputs in
/// `tests/it/regressions/`): reads `bytes` as one reviews list page, as a
/// poll does, maps it at [`super::fuzzing::fuzz_now`], and checks every
/// promise of the mapping ([`super::fuzzing::check_page`]). Bytes that are
/// not JSON, or a page of the wrong shape, are an error for the poll and
/// fine here; only a broken promise panics.
#[doc(hidden)]
pub fn fuzz_parse_page(bytes: &[u8]) {
    let Ok(json) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let now = super::fuzzing::fuzz_now();
    let Ok(mapped) = wire::map_page_at(&json, 1, now) else {
        return;
    };
    super::fuzzing::check_page(&mapped.page, Some(now));
    assert!(
        mapped.oldest <= mapped.newest,
        "oldest {:?} after newest {:?}",
        mapped.oldest,
        mapped.newest
    );
    for time in [mapped.oldest, mapped.newest].into_iter().flatten() {
        assert!(
            crate::timestamps::check_review_time(time, now).is_ok(),
            "an implausible time {time} would move the high-water mark"
        );
    }
    assert!(
        mapped.next_page_token.as_deref() != Some(""),
        "an empty page token is the last page"
    );
}

/// Maps Google's error JSON (`{"error":{"code","message","status"}}`, with
/// an optional legacy `errors[]`) to a [`PlatformError`].
fn google_error(answer: &ErrorAnswer<'_>, location: &LocationId) -> PlatformError {
    let status_word = answer.text("/error/status");
    let message = match answer.text("/error/message") {
        "" => answer.text("/error/errors/0/message"),
        message => message,
    };
    let detail = answer.detail(status_word, message);
    match answer.status.as_u16() {
        401 => PlatformError::Unauthorized(format!(
            "Google refused a freshly renewed access token ({detail})"
        )),
        403 => {
            let detail = if status_word.is_empty() {
                format!("PERMISSION_DENIED: {detail}")
            } else {
                detail
            };
            PlatformError::Unauthorized(format!("{location}: {detail}"))
        }
        404 => PlatformError::NotFound(location.to_string()),
        status => PlatformError::Http { status, detail },
    }
}
