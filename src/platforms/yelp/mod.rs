//! Yelp Fusion (now "Yelp Places API"): a business's reviews, one request per
//! poll.
//!
//! `GET {api_base_url}/v3/businesses/{id_or_alias}/reviews?sort_by=newest[&locale=..]`
//! with the API key as a bearer token. Yelp answers with at most three
//! review *excerpts* (about 160 characters, cut with "..."), so this source
//! can never be complete, and Travtus receives partial texts: each review is
//! flagged `excerpt` in the ledger's notes. The mapping lives in `wire`.
//!
//! Errors (`{"error":{"code","description"}}`) are judged here rather than by
//! status alone: `ACCESS_LIMIT_REACHED` is a 429 that only Yelp's daily reset
//! cures, so it is not retried and the error says when the limit resets
//! (from `RateLimit-ResetTime`, when sent); `TOO_MANY_REQUESTS_PER_SECOND` is
//! retried with the shared backoff; `BUSINESS_NOT_FOUND` is the location's
//! own problem whatever its status.
//!
//! Where the reference says UNCONFIRMED, this module assumes:
//! - `time_created` is wall-clock time in America/Los_Angeles, daylight
//!   saving included (the docs say "PST"); a time with an explicit offset is
//!   read as RFC 3339 instead;
//! - `sort_by=newest` is accepted (the other value is Yelp's default
//!   `yelp_sort`): the newest three are the ones most likely to be new to us;
//! - `BUSINESS_NOT_FOUND` may come with 400 or 404; an invalid key is
//!   `TOKEN_INVALID` (or any 401/403);
//! - `total` counts reviews we can never read, so it is not reported as a
//!   total (the gap would never close);
//! - more than three reviews in an answer (a premium plan) are all taken.

pub mod quota;
mod settings;
mod wire;

pub(crate) use settings::PLATFORM;
pub use settings::YelpConfig;

#[cfg(test)]
mod tests;

use super::http::{ErrorAnswer, ErrorVerdict, PlatformHttp};
use super::{
    Next, Page, PageRequest, Paging, PagingStyle, PlatformError, SourceClient, short_message,
};
use crate::config::{Secret, SourceConfig};
use crate::domain::LocationId;
use futures_util::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

/// The client of one `yelp` source.
pub struct YelpClient {
    http: PlatformHttp,
    /// `api_base_url`; may carry a path prefix (the sandbox's `/yelp`).
    api_base_url: Url,
    api_key: Secret,
    locale: Option<String>,
}

impl YelpClient {
    /// Builds the client on the shared pool with the source's rate limit
    /// and timeout. The key is a static bearer token: nothing to refresh.
    pub fn new(
        source: &SourceConfig,
        cfg: &YelpConfig,
        http: reqwest::Client,
        quotas: &std::sync::Arc<crate::quota::Quotas>,
    ) -> YelpClient {
        YelpClient {
            http: PlatformHttp::for_source(source, http, None, quotas),
            api_base_url: cfg.api_base_url.clone(),
            api_key: cfg.api_key.clone(),
            locale: cfg.locale.clone(),
        }
    }

    /// `{api_base_url}/v3/businesses/{id}/reviews?sort_by=newest`, the id
    /// escaped as one segment.
    fn reviews_url(&self, business: &LocationId) -> Result<Url, PlatformError> {
        let mut url = self.api_base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                PlatformError::InvalidResponse("api_base_url cannot take a path".into())
            })?;
            segments.pop_if_empty();
            segments.extend(["v3", "businesses", business.as_str().trim(), "reviews"]);
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("sort_by", "newest");
            if let Some(locale) = &self.locale {
                query.append_pair("locale", locale);
            }
        }
        Ok(url)
    }

    async fn reviews(&self, business: &LocationId) -> Result<Value, PlatformError> {
        let url = self.reviews_url(business)?;
        self.http
            .get_json(
                &url,
                |request| request.bearer_auth(self.api_key.expose()),
                |answer| yelp_verdict(&answer, business),
            )
            .await
    }
}

impl SourceClient for YelpClient {
    /// One request answers all Yelp gives (at most three excerpts; the
    /// newest, but too few to stop on).
    fn paging(&self) -> Paging {
        Paging {
            style: PagingStyle::Single,
            overlap: None,
            max_pages: 1,
        }
    }

    fn fetch<'a>(&'a self, request: PageRequest<'a>) -> BoxFuture<'a, Result<Page, PlatformError>> {
        Box::pin(async move {
            let json = self.reviews(request.location).await?;
            Ok(Page::new(wire::map_reviews(&json)?, Next::Last))
        })
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn last_request(&self) -> Option<String> {
        self.http.last_request()
    }
}

/// Judges Yelp's `{"error":{"code","description"}}` answers.
fn yelp_verdict(answer: &ErrorAnswer<'_>, business: &LocationId) -> ErrorVerdict {
    let headers = answer.headers;
    let code = answer.text("/error/code");
    let detail = answer.detail(code, answer.text("/error/description"));
    let status = answer.status.as_u16();
    match code {
        "ACCESS_LIMIT_REACHED" => {
            let limit = header(headers, "ratelimit-dailylimit")
                .map(|l| format!(" of {l} calls"))
                .unwrap_or_default();
            let reset = match header(headers, "ratelimit-resettime") {
                Some(at) => format!("it resets at {at}"),
                None => "Yelp resets daily limits at midnight UTC".to_owned(),
            };
            ErrorVerdict::Final(PlatformError::QuotaExhausted(format!(
                "Yelp's daily limit{limit} for this API key is used up (ACCESS_LIMIT_REACHED); {reset}. \
                 Each business costs one call per poll: poll less often or use a plan with a higher limit"
            )))
        }
        "TOO_MANY_REQUESTS_PER_SECOND" => ErrorVerdict::Retry(PlatformError::Http {
            status,
            detail: format!("{detail} (lower requests_per_minute)"),
        }),
        "BUSINESS_NOT_FOUND" | "BUSINESS_UNAVAILABLE" => ErrorVerdict::Final(
            PlatformError::NotFound(format!("Yelp business {business} ({code})")),
        ),
        "TOKEN_INVALID" | "TOKEN_MISSING" | "UNAUTHORIZED_ACCESS_TOKEN" => ErrorVerdict::Final(
            PlatformError::Unauthorized(format!("Yelp refused the API key ({detail})")),
        ),
        _ => ErrorVerdict::Default(match status {
            401 | 403 => {
                PlatformError::Unauthorized(format!("Yelp refused the API key ({detail})"))
            }
            404 => PlatformError::NotFound(format!("Yelp business {business}")),
            _ => PlatformError::Http { status, detail },
        }),
    }
}

/// A response header as text (cut short: it ends up in an error message).
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| short_message(v.trim(), 64))
        .filter(|v| !v.is_empty())
}

/// Fuzzing entry point (`fuzz/`, and the kept inputs in
/// `tests/it/regressions/`): reads `bytes` as one answer of the business reviews endpoint, as a poll does, and
/// checks the mapping's promises ([`super::fuzzing::check_page`]; review
/// times are not judged, as this platform's mapper does not). Only a broken
/// promise panics.
#[doc(hidden)]
pub fn fuzz_parse_page(bytes: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    if let Ok(mapped) = wire::map_reviews(&json) {
        super::fuzzing::check_page(&mapped.page, None);
    }
}
