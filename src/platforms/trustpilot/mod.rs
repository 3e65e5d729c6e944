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

mod settings;
mod webhook;
mod wire;

pub use webhook::TrustpilotWebhook;

pub(crate) use settings::PLATFORM;
pub use settings::{TrustpilotConfig, TrustpilotLogin};

#[cfg(test)]
mod tests;

use super::http::{ErrorAnswer, PlatformHttp};
use super::{Next, Page, PageAt, PageRequest, Paging, PagingStyle, PlatformError, SourceClient};
use crate::config::{Secret, SourceConfig};
use crate::domain::LocationId;
use crate::oauth::{Grant, TokenCache};
use chrono::TimeDelta;
use futures_util::future::BoxFuture;
use serde_json::Value;
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
        quotas: &std::sync::Arc<crate::quota::Quotas>,
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
            http: PlatformHttp::for_source(source, http, tokens, quotas),
            api_base_url: cfg.api_base_url.clone(),
            api_key: cfg.api_key.clone(),
        }
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

impl TrustpilotClient {
    /// Where the page after the one read from `url` is, by what its
    /// `links[]` said: a `next-page` link is followed only to the configured
    /// origin; one elsewhere (or no URL at all) still says more pages
    /// follow, so the next page number is read instead.
    fn next_after(&self, url: &Url, link: NextLink, unit: &LocationId, page: u32) -> Next {
        match link {
            NextLink::Last => Next::Last,
            NextLink::Unknown => Next::Unknown,
            NextLink::Href(href) => match url.join(&href) {
                Ok(target) if target.origin() == self.api_base_url.origin() => Next::Link(target),
                Ok(target) => {
                    tracing::debug!(
                        location = %unit,
                        page,
                        origin = %crate::redirect::origin_text(&target),
                        "trustpilot next-page link to another origin not followed; reading the next page number"
                    );
                    Next::More
                }
                Err(_) => {
                    tracing::debug!(
                        location = %unit,
                        page,
                        "trustpilot next-page link is not a URL; reading the next page number"
                    );
                    Next::More
                }
            },
        }
    }
}

impl SourceClient for TrustpilotClient {
    /// Pages newest-first by `next-page` link, else by number, stopping
    /// [`OVERLAP`] behind the mark (the newest `createdAt`).
    fn paging(&self) -> Paging {
        Paging {
            style: PagingStyle::Numbered { per_page: PER_PAGE },
            overlap: Some(OVERLAP),
            max_pages: MAX_PAGES,
        }
    }

    fn fetch<'a>(&'a self, request: PageRequest<'a>) -> BoxFuture<'a, Result<Page, PlatformError>> {
        Box::pin(async move {
            let unit = request.location;
            let url = match request.at {
                PageAt::Link(url) => url.clone(),
                _ => self.reviews_url(unit, request.number)?,
            };
            let json = self.reviews(unit, &url).await?;
            let mapped = wire::map_page(&json, request.number)?;
            let next = self.next_after(&url, mapped.next, unit, request.number);
            Ok(Page {
                fetched: mapped.page,
                records: mapped.records,
                oldest: mapped.oldest,
                newest: mapped.newest,
                next,
                ids: mapped.ids,
                url: Some(url),
            })
        })
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn last_request(&self) -> Option<String> {
        self.http.last_request()
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
