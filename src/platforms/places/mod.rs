//! Google Places API (New): Place Details with `reviews`, one request per
//! poll.
//!
//! `GET {api_base_url}/v1/places/{placeId}[?languageCode=..]` with the API key
//! in `X-Goog-Api-Key` and the mandatory field mask in `X-Goog-FieldMask`
//! ([`FIELD_MASK`]). Google answers with at most five reviews chosen by
//! relevance and no paging, so a poll is exactly one request and this source
//! can never be complete: new reviews may never make the top five, and old
//! ones cannot be backfilled (`ledger stats` says so). The mapping of the
//! JSON lives in `wire`.
//!
//! Where the reference says UNCONFIRMED, this module assumes:
//! - `publishTime` is an RFC 3339 timestamp like every Google `Timestamp`;
//! - errors use Google's standard error JSON; a bad key is a 400
//!   `INVALID_ARGUMENT` whose `details` carry reason `API_KEY_INVALID` (or a
//!   403 `PERMISSION_DENIED`), and quota exhaustion a 429 `RESOURCE_EXHAUSTED`
//!   that the shared backoff retries;
//! - no "newest first" order exists: relevance it is. The high-water mark is
//!   kept (the newest `publishTime` seen) for the poll log, never to skip;
//! - `userRatingCount` counts ratings, not readable reviews: it is not
//!   reported as a total, since the gap would never close.
//!
//! A location id is a place id; `places/{id}` (the resource name) is
//! accepted too.

mod settings;
mod wire;

pub(crate) use settings::PLATFORM;
pub use settings::PlacesConfig;

#[cfg(test)]
mod tests;

use super::http::{ErrorAnswer, PlatformHttp};
use super::{Next, Page, PageRequest, Paging, PagingStyle, PlatformError, SourceClient};
use crate::config::{Secret, SourceConfig};
use crate::domain::LocationId;
use futures_util::future::BoxFuture;
use serde_json::Value;
use url::Url;

/// The fields asked for. Billing follows the most expensive field, and
/// `reviews` is in the top tier anyway; `id` and `displayName` cost nothing
/// more and make a wrong place id visible in the logs.
pub const FIELD_MASK: &str = "id,displayName,reviews";

/// The client of one `google_places` source.
pub struct PlacesClient {
    http: PlatformHttp,
    /// `api_base_url`; may carry a path prefix (the sandbox's `/places`).
    api_base_url: Url,
    api_key: Secret,
    language_code: Option<String>,
}

impl PlacesClient {
    /// Builds the client on the shared pool, with the source's rate limit
    /// and timeout. The API key is sent as a header; there is no token.
    pub fn new(
        source: &SourceConfig,
        cfg: &PlacesConfig,
        http: reqwest::Client,
        quotas: &std::sync::Arc<crate::quota::Quotas>,
    ) -> PlacesClient {
        PlacesClient {
            http: PlatformHttp::for_source(source, http, None, quotas),
            api_base_url: cfg.api_base_url.clone(),
            api_key: cfg.api_key.clone(),
            language_code: cfg.language_code.clone(),
        }
    }

    /// `{api_base_url}/v1/places/{placeId}`, the id escaped as one segment.
    fn details_url(&self, place: &LocationId) -> Result<Url, PlatformError> {
        let id = place.as_str().trim();
        let id = id.strip_prefix("places/").unwrap_or(id);
        let mut url = self.api_base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                PlatformError::InvalidResponse("api_base_url cannot take a path".into())
            })?;
            segments.pop_if_empty();
            segments.extend(["v1", "places", id]);
        }
        if let Some(language) = &self.language_code {
            url.query_pairs_mut().append_pair("languageCode", language);
        }
        Ok(url)
    }

    async fn details(&self, place: &LocationId) -> Result<Value, PlatformError> {
        let url = self.details_url(place)?;
        self.http
            .get_json(
                &url,
                |request| {
                    request
                        .header("X-Goog-Api-Key", self.api_key.expose())
                        .header("X-Goog-FieldMask", FIELD_MASK)
                },
                |answer| places_error(&answer, place).into(),
            )
            .await
    }
}

impl SourceClient for PlacesClient {
    /// One request answers all Google gives (at most five reviews, by
    /// relevance: no order to stop on).
    fn paging(&self) -> Paging {
        Paging {
            style: PagingStyle::Single,
            overlap: None,
            max_pages: 1,
        }
    }

    fn fetch<'a>(&'a self, request: PageRequest<'a>) -> BoxFuture<'a, Result<Page, PlatformError>> {
        Box::pin(async move {
            let json = self.details(request.location).await?;
            Ok(Page::new(wire::map_place(&json)?, Next::Last))
        })
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn last_request(&self) -> Option<String> {
        self.http.last_request()
    }
}

/// Maps Google's error JSON (`{"error":{"code","message","status","details"}}`)
/// to a [`PlatformError`], naming a refused key as such.
fn places_error(answer: &ErrorAnswer<'_>, place: &LocationId) -> PlatformError {
    let message = answer.text("/error/message");
    let reasons: Vec<&str> = answer
        .json
        .and_then(|j| j.pointer("/error/details"))
        .and_then(Value::as_array)
        .map(|details| {
            details
                .iter()
                .filter_map(|d| d.get("reason").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let detail = answer.detail(answer.text("/error/status"), message);
    let key_refused = reasons
        .iter()
        .any(|r| matches!(*r, "API_KEY_INVALID" | "API_KEY_EXPIRED"))
        || message.contains("API key not valid");
    match answer.status.as_u16() {
        _ if key_refused => {
            PlatformError::Unauthorized(format!("Google Places refused the API key ({detail})"))
        }
        401 | 403 => PlatformError::Unauthorized(format!(
            "{place}: {detail} (is the Places API (New) enabled for the key's project?)"
        )),
        404 => PlatformError::NotFound(format!("place {place}")),
        status => PlatformError::Http { status, detail },
    }
}

/// Fuzzing entry point (`fuzz/`, and the kept inputs in
/// `tests/it/regressions/`): reads `bytes` as one Place Details answer, as a poll does, and
/// checks the mapping's promises ([`super::fuzzing::check_page`]; review
/// times are not judged, as this platform's mapper does not). Only a broken
/// promise panics.
#[doc(hidden)]
pub fn fuzz_parse_page(bytes: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    if let Ok(mapped) = wire::map_place(&json) {
        super::fuzzing::check_page(&mapped.page, None);
    }
}
