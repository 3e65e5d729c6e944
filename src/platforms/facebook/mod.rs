//! Facebook Graph API: a Page's ratings (Recommendations), read newest-first
//! and incrementally with Graph cursors.
//!
//! `GET {api_base_url}/{graph_version}/{page-id}/ratings?fields=..&limit=100[&after=..]&access_token=..`
//! with the Page access token of the location (its own, else the source's)
//! as a query parameter, as Graph's examples do. **Invariant:** the token is
//! added to the request only, never to a [`Url`] we keep, and the
//! `paging.next` URLs Graph sends back (which carry it) are never followed
//! or logged: only their `after` cursor is read.
//!
//! Graph errors (`{"error":{"message","type","code","error_subcode","fbtrace_id"}}`)
//! are judged by code: 12 means Meta no longer serves the ratings edge at
//! this version (pin `graph_version` below v22.0, while Meta still serves
//! one); 283 a token without `pages_read_user_content`; 190 an invalid or
//! expired token; 100/33 an unknown page. Neither is retried.
//!
//! Where the reference says UNCONFIRMED, this module assumes:
//! - ratings come newest first by `created_time`, so a poll stops after the
//!   page that reaches the stored high-water mark minus [`OVERLAP`] (the mark
//!   is the newest `created_time` seen: Graph has no update time). Edits of
//!   older recommendations are found by the full reconciliation pass, which
//!   reads every page;
//! - cursor paging is the generic Graph shape: a page without `paging.next`
//!   is the last;
//! - Graph throttles with codes 4, 17, 32, 613 and 80001, and codes 1 and 2
//!   are transient: those are retried with the shared backoff;
//! - `limit=100` is accepted (a smaller cap only means more pages).

pub mod quota;
mod settings;
mod webhook;
mod wire;

pub use webhook::FacebookWebhook;

pub use settings::FacebookConfig;
pub(crate) use settings::PLATFORM;

#[cfg(test)]
mod tests;

use super::http::{ErrorAnswer, ErrorVerdict, PlatformHttp};
use super::{
    Next, Page, PageAt, PageRequest, Paging, PagingStyle, PlatformError, SourceClient,
    short_message,
};
use crate::config::SourceConfig;
use crate::domain::LocationId;
use chrono::TimeDelta;
use futures_util::future::BoxFuture;
use serde_json::Value;
use url::Url;

/// How far behind the stored high-water mark a poll keeps reading: Graph may
/// list a recommendation a while after its `created_time`. An hour, as for
/// Google: re-reading it costs a page the ledger mostly drops as repeats.
pub const OVERLAP: TimeDelta = TimeDelta::hours(1);

/// Recommendations per request: Graph's usual maximum for an edge.
pub const PAGE_SIZE: u32 = 100;

/// The most pages one poll reads: a million ratings, far past any Page, so
/// only a server that pages forever hits it.
pub const MAX_PAGES: u32 = 10_000;

/// The fields asked for (Graph returns only what is named).
pub const FIELDS: &str = "created_time,has_rating,has_review,rating,recommendation_type,review_text,reviewer,open_graph_story";

/// The most of Graph's error message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// The client of one `facebook` source.
pub struct FacebookClient {
    http: PlatformHttp,
    /// `api_base_url`; may carry a path prefix (the sandbox's `/facebook`).
    api_base_url: Url,
    /// The source's tokens (per location, else the source's) and version.
    cfg: FacebookConfig,
}

impl FacebookClient {
    /// Builds the client on the shared pool with the source's rate limit and
    /// timeout. Page tokens are static: nothing to refresh.
    pub fn new(
        source: &SourceConfig,
        cfg: &FacebookConfig,
        http: reqwest::Client,
        quotas: &std::sync::Arc<crate::quota::Quotas>,
    ) -> FacebookClient {
        FacebookClient {
            http: PlatformHttp::for_source(source, http, None, quotas),
            api_base_url: cfg.api_base_url.clone(),
            cfg: cfg.clone(),
        }
    }

    /// `{api_base_url}/{graph_version}/{page}/ratings?fields=..&limit=..[&after=..]`:
    /// everything but the token.
    fn ratings_url(&self, page: &LocationId, after: Option<&str>) -> Result<Url, PlatformError> {
        let mut url = self.api_base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                PlatformError::InvalidResponse("api_base_url cannot take a path".into())
            })?;
            segments.pop_if_empty();
            segments.extend([
                self.cfg.graph_version.as_str(),
                page.as_str().trim(),
                "ratings",
            ]);
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("fields", FIELDS);
            query.append_pair("limit", &PAGE_SIZE.to_string());
            if let Some(after) = after {
                query.append_pair("after", after);
            }
        }
        Ok(url)
    }

    async fn ratings(
        &self,
        page: &LocationId,
        after: Option<&str>,
    ) -> Result<Value, PlatformError> {
        let Some(token) = self.cfg.token_for(page) else {
            return Err(PlatformError::Unauthorized(format!(
                "page {page} has no access_token (set one on the location or the source)"
            )));
        };
        let url = self.ratings_url(page, after)?;
        let version = self.cfg.graph_version.as_str();
        self.http
            .get_json_at(
                page,
                &url,
                |request| request.query(&[("access_token", token.expose())]),
                |answer| graph_verdict(&answer, page, version),
            )
            .await
    }
}

impl SourceClient for FacebookClient {
    /// Pages newest-first by `after` cursor, stopping [`OVERLAP`] behind the
    /// mark (the newest `created_time`: Graph has no update time).
    fn paging(&self) -> Paging {
        Paging {
            style: PagingStyle::Tokens {
                what: "cursor",
                page_size: PAGE_SIZE,
            },
            overlap: Some(OVERLAP),
            max_pages: MAX_PAGES,
        }
    }

    fn fetch<'a>(&'a self, request: PageRequest<'a>) -> BoxFuture<'a, Result<Page, PlatformError>> {
        Box::pin(async move {
            let after = match request.at {
                PageAt::Token(after) => Some(after),
                _ => None,
            };
            let page = request.location;
            let json = self.ratings(page, after).await?;
            let mapped = wire::map_page(&json, request.number, page.as_str().trim())?;
            Ok(Page {
                fetched: mapped.page,
                records: mapped.records,
                oldest: mapped.oldest,
                newest: mapped.newest,
                next: mapped.next_cursor.map_or(Next::Last, Next::Token),
                ids: Vec::new(),
                url: None,
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

/// Judges Graph's error JSON by its `code`.
fn graph_verdict(answer: &ErrorAnswer<'_>, page: &LocationId, version: &str) -> ErrorVerdict {
    let error = answer.json.and_then(|j| j.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let subcode = error
        .and_then(|e| e.get("error_subcode"))
        .and_then(Value::as_i64);
    let message = short_message(
        error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or(""),
        MAX_MESSAGE_CHARS,
    );
    // Meta support asks for the trace id; it identifies nothing secret.
    let trace = error
        .and_then(|e| e.get("fbtrace_id"))
        .and_then(Value::as_str)
        .map(|t| format!(", fbtrace_id {}", short_message(t, 64)))
        .unwrap_or_default();
    let status = answer.status.as_u16();
    let Some(code) = code else {
        return ErrorVerdict::Default(match status {
            401 | 403 => PlatformError::Unauthorized(format!(
                "page {page}: HTTP {status}{}",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            )),
            404 => PlatformError::NotFound(format!("page {page}")),
            _ => PlatformError::Http {
                status,
                detail: if message.is_empty() {
                    answer
                        .status
                        .canonical_reason()
                        .unwrap_or("error")
                        .to_owned()
                } else {
                    message
                },
            },
        });
    };
    let detail = format!(
        "Graph error {code}{}: {message}{trace}",
        subcode.map(|s| format!("/{s}")).unwrap_or_default()
    );
    match code {
        12 => {
            let advice = match graph_major(version) {
                Some(major) if major < 22 => format!(
                    "Meta retired it at {version} too: pin graph_version below v22.0 to a version Meta still serves, or remove this source"
                ),
                _ => "pin graph_version below v22.0, e.g. \"v21.0\"".to_owned(),
            };
            ErrorVerdict::Final(PlatformError::Deprecated(format!(
                "page {page}: Graph {version} answers the ratings edge with error 12 (deprecated from v22.0 on); {advice} ({detail})"
            )))
        }
        283 => ErrorVerdict::Final(PlatformError::Unauthorized(format!(
            "page {page}: the access token lacks the pages_read_user_content permission (error 283); \
             grant it to the app (App Review) and use a Page access token ({detail})"
        ))),
        190 => ErrorVerdict::Final(PlatformError::Unauthorized(format!(
            "page {page}: the Page access token is invalid or expired (error 190): get a new one ({detail})"
        ))),
        10 | 200..=299 => ErrorVerdict::Final(PlatformError::Unauthorized(format!(
            "page {page}: permission denied; the token must be a Page access token of a user who can moderate the Page ({detail})"
        ))),
        100 if subcode == Some(33) => {
            ErrorVerdict::Final(PlatformError::NotFound(format!("page {page} ({detail})")))
        }
        1 | 2 | 4 | 17 | 32 | 613 | 80001 => {
            ErrorVerdict::Retry(PlatformError::Http { status, detail })
        }
        _ => ErrorVerdict::Default(PlatformError::Http { status, detail }),
    }
}

/// The major number of a Graph version (`v21.0` → 21).
fn graph_major(version: &str) -> Option<u32> {
    version.strip_prefix('v')?.split('.').next()?.parse().ok()
}

/// Fuzzing entry point (`fuzz/`, and the kept inputs in
/// `tests/it/regressions/`): reads `bytes` as one page of the ratings edge, as a poll does, and
/// checks the mapping's promises ([`super::fuzzing::check_page`]; review
/// times are not judged, as this platform's mapper does not). Only a broken
/// promise panics.
#[doc(hidden)]
pub fn fuzz_parse_page(bytes: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    if let Ok(mapped) = wire::map_page(&json, 1, "1234567890") {
        super::fuzzing::check_page(&mapped.page, None);
    }
}
