//! Trustpilot Business Units API: a business unit's reviews, newest first,
//! paged by number and read incrementally.
//!
//! Public endpoint (API key in the `apikey` header):
//! `GET {api_base_url}/v1/business-units/{id}/reviews?perPage=100&orderBy=createdat.desc&page=N`.
//! With `api_secret` + `username` + `password`, the private endpoint
//! `GET {api_base_url}/v1/private/business-units/{id}/reviews?...` is read
//! instead, with a business-user bearer token: the OAuth password grant at
//! `token_url` (HTTP Basic `api_key:api_secret`), renewed with the refresh
//! token it returns (see `oauth::Grant::BasicPassword`).
//!
//! Paging follows the page's own `links[]`: the entry with `rel:
//! "next-page"` is the next request (its `href`, resolved against the page's
//! URL), and a page whose `links[]` has no such entry is the last, however
//! long it is. The `href` is followed only to the configured origin (scheme,
//! host and port of `api_base_url`, the rule of [`crate::redirect`]): the
//! `apikey` header or bearer token goes with every request, so a link to
//! another origin is never requested; the next page number on the
//! configured base is read instead (a proxy in front of Trustpilot keeps
//! working). An answer without `links` is paged by number: pages 1, 2, ...
//! until an empty page or one shorter than [`PER_PAGE`]. Either way at most
//! [`MAX_PAGES`], and a page that repeats the previous one, or a link back
//! to a page already read, ends the poll as a paging loop. Reviews are
//! ordered by creation, so an
//! incremental poll stops after the page on which a review created before
//! the high-water mark minus [`OVERLAP`] appears; the mark is the newest
//! `createdAt` seen. Edits (a newer `updatedAt`, or changed content, which
//! the ledger's content hash catches) of reviews on the pages read are sent
//! again; edits of older reviews are found by the full reconciliation pass,
//! which reads every page. Page numbers shift when reviews arrive during a
//! poll: the overlap and the ledger's dedup absorb that.
//!
//! Where the reference says UNCONFIRMED, this module assumes:
//! - the public endpoint takes the private one's `page`, `perPage` (max 100)
//!   and `orderBy` parameters;
//! - error bodies come in any of the shapes seen in the wild: Apigee's
//!   `{"fault":{"faultstring","detail":{"errorcode"}}}`, `{"message",
//!   "errorCode"}`, or OAuth's `{"error","error_description"}`; a 429 may
//!   carry `Retry-After`, which the shared backoff honours;
//! - refresh tokens are accepted at `token_url` (the reference allows it)
//!   and token errors use OAuth's `error` codes;
//! - `updatedAt` may be null or missing;
//! - a `next-page` `href` keeps the request's `orderBy` or leaves it out
//!   (Trustpilot's default is `createdat.desc`, the order asked for), and
//!   may change `perPage`: the stop rules do not depend on the page size
//!   when links are there.

mod wire;

#[cfg(test)]
mod tests;

use super::http::{ErrorAnswer, PlatformHttp};
use super::{FetchedPage, PlatformError};
use crate::config::{Secret, SourceConfig, TrustpilotConfig};
use crate::domain::LocationId;
use crate::ledger::PollState;
use crate::oauth::{Grant, TokenCache};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use std::collections::HashSet;
use url::Url;
use wire::NextLink;

/// How far behind the stored high-water mark a poll keeps reading, for
/// reviews Trustpilot publishes a while after their `createdAt` (held for
/// moderation). A day: a page or two the ledger drops as repeats.
pub const OVERLAP: TimeDelta = TimeDelta::days(1);

/// Reviews per page: the documented maximum.
pub const PER_PAGE: u32 = 100;

/// The most pages one poll reads: a million reviews, past any business
/// unit, so only a server that pages forever hits it.
pub const MAX_PAGES: u32 = 10_000;

/// The client of one `trustpilot` source.
pub struct TrustpilotClient {
    http: PlatformHttp,
    /// `api_base_url`; may carry a path prefix (the sandbox's `/trustpilot`).
    api_base_url: Url,
    /// Sent as `apikey` on the public endpoint.
    api_key: Secret,
    /// Whether the private endpoint (business-user token) is read.
    private: bool,
}

impl TrustpilotClient {
    /// Builds the client: with business-user credentials, a token cache for
    /// the password grant on the shared pool; the source's rate limit and
    /// timeout either way.
    pub fn new(
        source: &SourceConfig,
        cfg: &TrustpilotConfig,
        http: reqwest::Client,
    ) -> TrustpilotClient {
        let tokens = cfg.business_login.as_ref().map(|login| {
            TokenCache::new(
                Grant::BasicPassword {
                    client_id: cfg.api_key.clone(),
                    client_secret: login.api_secret.clone(),
                    username: login.username.clone(),
                    password: login.password.clone(),
                },
                login.token_url.clone(),
                http.clone(),
            )
        });
        TrustpilotClient {
            private: tokens.is_some(),
            http: PlatformHttp::for_source(source, http, tokens),
            api_base_url: cfg.api_base_url.clone(),
            api_key: cfg.api_key.clone(),
        }
    }

    /// Starts a poll of one business unit from the high-water mark in `state`.
    pub fn start_poll(&self, location: &LocationId, state: PollState) -> TrustpilotPoll<'_> {
        TrustpilotPoll {
            client: self,
            location: location.clone(),
            stop_before: state.high_water.map(|hw| hw - OVERLAP),
            state,
            newest: None,
            page: 0,
            previous_ids: Vec::new(),
            next_url: None,
            visited: HashSet::new(),
            held_back: None,
            done: false,
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

    /// The reviews URL of `unit`, page `page`.
    fn reviews_url(&self, unit: &LocationId, page: u32) -> Result<Url, PlatformError> {
        let mut url = self.api_base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                PlatformError::InvalidResponse("api_base_url cannot take a path".into())
            })?;
            segments.pop_if_empty();
            segments.push("v1");
            if self.private {
                segments.push("private");
            }
            segments.extend(["business-units", unit.as_str().trim(), "reviews"]);
        }
        url.query_pairs_mut()
            .append_pair("perPage", &PER_PAGE.to_string())
            .append_pair("orderBy", "createdat.desc")
            .append_pair("page", &page.to_string());
        Ok(url)
    }

    /// The reviews page at `url`: a numbered page of [`Self::reviews_url`],
    /// or a `next-page` link already checked to be on the configured origin.
    async fn reviews(&self, unit: &LocationId, url: &Url) -> Result<Value, PlatformError> {
        self.http
            .get_json(
                url,
                |request| {
                    if self.private {
                        // The bearer token is added by the shared machinery.
                        request
                    } else {
                        request.header("apikey", self.api_key.expose())
                    }
                },
                |answer| trustpilot_error(&answer, unit).into(),
            )
            .await
    }
}

/// A poll of one business unit in progress.
pub struct TrustpilotPoll<'a> {
    client: &'a TrustpilotClient,
    location: LocationId,
    /// The state the poll started from (its cursor is passed through).
    state: PollState,
    /// `high_water - OVERLAP`; `None` on a first poll: read every page.
    stop_before: Option<DateTime<Utc>>,
    /// The newest `createdAt` seen in this poll.
    newest: Option<DateTime<Utc>>,
    /// The last page number asked for (1-based).
    page: u32,
    /// The ids of the previous page, to catch a server that ignores `page`.
    previous_ids: Vec<String>,
    /// The next request when the last page linked to it (`next-page`, on
    /// the configured origin); `None`: the next page number.
    next_url: Option<Url>,
    /// Every URL requested in this poll, to catch links that go round.
    visited: HashSet<String>,
    /// The error that ends the poll once the page that revealed it (whose
    /// records are good) has been handed out.
    held_back: Option<PlatformError>,
    done: bool,
}

impl TrustpilotPoll<'_> {
    /// The next page, or `None` when the business unit is read up to date.
    pub async fn next_page(&mut self) -> Result<Option<FetchedPage>, PlatformError> {
        if let Some(error) = self.held_back.take() {
            self.done = true;
            return Err(error);
        }
        if self.done {
            return Ok(None);
        }
        if self.page >= MAX_PAGES {
            self.done = true;
            return Err(PlatformError::InvalidResponse(format!(
                "more than {MAX_PAGES} pages in one poll"
            )));
        }
        self.page += 1;
        let url = match self.next_url.take() {
            Some(url) => url,
            None => self.client.reviews_url(&self.location, self.page)?,
        };
        self.visited.insert(url.as_str().to_owned());
        let json = self.client.reviews(&self.location, &url).await?;
        let mapped = wire::map_page(&json, self.page)?;
        if mapped.records == 0 {
            self.done = true;
            return Ok(None);
        }
        if mapped.ids == self.previous_ids {
            self.done = true;
            return Err(PlatformError::InvalidResponse(format!(
                "paging loop: page {} repeats page {}",
                self.page,
                self.page - 1
            )));
        }
        if let Some(newest) = mapped.newest {
            self.newest = Some(self.newest.map_or(newest, |n| n.max(newest)));
        }
        let reached_old = match (self.stop_before, mapped.oldest) {
            (Some(stop), Some(oldest)) => oldest < stop,
            _ => false,
        };
        if reached_old {
            self.done = true;
        } else {
            self.plan_next(&url, &mapped.next, mapped.records);
        }
        self.previous_ids = mapped.ids;
        tracing::debug!(
            location = %self.location,
            page = self.page,
            reviews = mapped.page.reviews.len(),
            rejected = mapped.page.rejected.len(),
            done = self.done,
            "trustpilot reviews page"
        );
        Ok(Some(mapped.page))
    }

    /// Whether the poll is over: the next [`Self::next_page`] would
    /// answer `None` without a request (a pass bound is only hit when more
    /// pages remain).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// After a page (read from `url`, with `records` records) that did not
    /// reach the old reviews: where the next request goes, or that there is
    /// none.
    fn plan_next(&mut self, url: &Url, next: &NextLink, records: usize) {
        match next {
            NextLink::Last => self.done = true,
            NextLink::Unknown => {
                if records < PER_PAGE as usize {
                    self.done = true;
                }
            }
            NextLink::Href(href) => match url.join(href) {
                Ok(target) if target.origin() == self.client.api_base_url.origin() => {
                    if self.visited.contains(target.as_str()) {
                        self.held_back = Some(PlatformError::InvalidResponse(format!(
                            "paging loop: the next-page link of page {} leads to a page already read",
                            self.page
                        )));
                    } else {
                        self.next_url = Some(target);
                    }
                }
                // Another origin (or no URL at all): its credentials would
                // go along, so it is never requested. The link still says
                // more pages follow: the next page number is read instead.
                Ok(target) => tracing::debug!(
                    location = %self.location,
                    page = self.page,
                    origin = %crate::redirect::origin_text(&target),
                    "trustpilot next-page link to another origin not followed; reading the next page number"
                ),
                Err(_) => tracing::debug!(
                    location = %self.location,
                    page = self.page,
                    "trustpilot next-page link is not a URL; reading the next page number"
                ),
            },
        }
    }

    /// The state to store after a complete poll: the newest `createdAt`
    /// seen (never backwards).
    pub fn finish(self) -> PollState {
        self.state.advanced_to(self.newest)
    }
}

/// Maps Trustpilot's error bodies (several shapes, see the module notes).
fn trustpilot_error(answer: &ErrorAnswer<'_>, unit: &LocationId) -> PlatformError {
    let message = [
        "/fault/faultstring",
        "/message",
        "/error_description",
        "/error",
        "/details",
    ]
    .into_iter()
    .map(|pointer| answer.text(pointer))
    .find(|text| !text.trim().is_empty())
    .unwrap_or_default();
    let detail = answer.detail(answer.text("/fault/detail/errorcode"), message);
    match answer.status.as_u16() {
        401 | 403 => PlatformError::Unauthorized(format!(
            "Trustpilot refused the credentials for business unit {unit} ({detail})"
        )),
        404 => PlatformError::NotFound(format!("business unit {unit}")),
        status => PlatformError::Http { status, detail },
    }
}

/// Fuzzing entry point (`fuzz/`, and the kept inputs in
/// `tests/it/regressions/`): reads `bytes` as one page of business unit reviews, as a poll does, and
/// checks the mapping's promises ([`super::fuzzing::check_page`]; review
/// times are not judged, as this platform's mapper does not). Only a broken
/// promise panics.
#[doc(hidden)]
pub fn fuzz_parse_page(bytes: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    if let Ok(mapped) = wire::map_page(&json, 1) {
        super::fuzzing::check_page(&mapped.page, None);
    }
}
