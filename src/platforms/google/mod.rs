//! Google Business Profile v4: `accounts.locations.reviews.list`, read
//! newest-first and incrementally.
//!
//! `GET {api_base_url}/v4/accounts/{a}/locations/{l}/reviews?pageSize=50&orderBy=updateTime%20desc`
//! with a bearer token from the OAuth2 refresh-token grant, paged with
//! `nextPageToken`. The mapping of Google's JSON lives in `wire`.
//!
//! Batch reads (`BatchReads`, for the incremental passes' locations with a
//! high-water mark): `POST {api_base_url}/v4/accounts/{a}/locations:batchGetReviews`
//! with `{locationNames, pageSize: 50, pageToken, orderBy: "updateTime desc",
//! ignoreRatingOnlyReviews: false}`, at most `batch_size` (default 50)
//! locations of one account per call, answered with `locationReviews[]` of
//! `{name, review}` and `nextPageToken`, and no `totalReviewCount`.
//!
//! Where the reference says UNCONFIRMED, this module assumes:
//! - the page size cap is 50 (current docs) rather than 200 (old docs): 50
//!   works under both;
//! - the v4 reviews methods share the 300 requests/minute default quota of
//!   the OAuth client's project: every source with the `client_id` takes
//!   from one budget (`crate::quota`), which `requests_per_minute` raises
//!   for a project whose quota was raised;
//! - no `Retry-After` is sent on 429: the shared backoff handles its absence;
//! - deleted reviews simply disappear from the list (no tombstones): the
//!   incremental read never sees deletions; reconciliation does;
//! - `updateTime desc` order is only roughly kept for reviews Google indexes
//!   late: hence [`OVERLAP`], for batch reads as for the list;
//! - batchGetReviews takes at most 50 names per call (one SDK; an older
//!   reference says 200): 50 by default, `batch_size` up to 200;
//! - batchGetReviews refuses the whole call for one location it will not
//!   serve (unverified, unknown, malformed) and names it, in a
//!   `google.rpc.ResourceInfo` detail or in the message (both are read):
//!   that location is read through its own list, the rest by batch again.
//!   A refusal naming no location (400, 403, 404, 405, 501) reads every
//!   location of the call through its own list this pass.

mod discovery;
mod settings;
mod wire;

pub(crate) use settings::PLATFORM;
pub use settings::{GoogleConfig, GroupFrom};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use super::http::{ErrorAnswer, PlatformHttp};
use super::{
    BatchError, BatchPage, BatchReads, BatchRequest, Discovery, Next, Page, PageAt, PageRequest,
    Paging, PagingStyle, PlatformError, SourceClient,
};
use crate::config::SourceConfig;
use crate::domain::LocationId;
use crate::oauth::{Grant, TokenCache};
use chrono::TimeDelta;
use futures_util::future::BoxFuture;
use reqwest::Method;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The client of one `google_business_profile` source.
pub struct GoogleClient {
    http: PlatformHttp,
    /// `api_base_url`; may carry a path prefix (the sandbox's `/google`).
    api_base_url: Url,
    /// `business_information_base_url`, for discovery (see `discovery`).
    business_information_base_url: Url,
    /// `discover_accounts`; empty when the source does not discover.
    discover_accounts: Vec<String>,
    /// `batch_size`: locations per batchGetReviews call (1: no batch reads).
    batch_size: u32,
}

impl GoogleClient {
    /// Builds the client: a token cache for the source's refresh token on the
    /// shared pool, and the source's rate limit and timeout.
    pub fn new(
        source: &SourceConfig,
        cfg: &GoogleConfig,
        http: reqwest::Client,
        quotas: &std::sync::Arc<crate::quota::Quotas>,
    ) -> GoogleClient {
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
            http: PlatformHttp::for_source(source, http, Some(tokens), quotas),
            api_base_url: cfg.api_base_url.clone(),
            business_information_base_url: cfg.business_information_base_url.clone(),
            discover_accounts: cfg.discover_accounts.clone(),
            batch_size: cfg.batch_size,
        }
    }

    /// `{api_base_url}/v4/{account}/locations:batchGetReviews`.
    fn batch_url(&self, account: &str) -> Result<Url, PlatformError> {
        let mut url = self.api_base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                PlatformError::InvalidResponse("api_base_url cannot take a path".into())
            })?;
            segments.pop_if_empty();
            segments.push("v4");
            segments.extend(account.split('/').filter(|s| !s.is_empty()));
            segments.push("locations:batchGetReviews");
        }
        Ok(url)
    }

    /// One page of batchGetReviews for `request`'s locations (all of one
    /// account).
    async fn batch_page(&self, request: BatchRequest<'_>) -> Result<BatchPage, BatchError> {
        let names = request.locations;
        let account = names
            .first()
            .and_then(account_of)
            .filter(|account| names.iter().all(|n| account_of(n) == Some(*account)))
            .ok_or_else(|| {
                PlatformError::InvalidResponse(
                    "a batch read names no location, or locations of several accounts".into(),
                )
            })?;
        let url = self.batch_url(account)?;
        let mut body = serde_json::json!({
            "locationNames": names.iter().map(LocationId::as_str).collect::<Vec<_>>(),
            "pageSize": PAGE_SIZE,
            "orderBy": "updateTime desc",
            "ignoreRatingOnlyReviews": false,
        });
        if let Some(token) = request.token {
            body["pageToken"] = Value::from(token);
        }
        // The judge runs inside the request; what it found out about the
        // refusal is read back here.
        let refused = AtomicUsize::new(usize::MAX);
        let unserved = std::sync::atomic::AtomicBool::new(false);
        let answer = self
            .http
            .request_json(
                Method::POST,
                &url,
                |r| r.json(&body),
                |answer| {
                    let (error, judged) = google_batch_error(&answer, names, account);
                    match judged {
                        BatchJudged::Refused(index) => refused.store(index, Ordering::Relaxed),
                        BatchJudged::Unserved => unserved.store(true, Ordering::Relaxed),
                        BatchJudged::Failed => {}
                    }
                    error.into()
                },
            )
            .await;
        match answer {
            Ok(json) => Ok(wire::map_batch_page(&json, names, request.number)?),
            Err(error) => Err(match refused.load(Ordering::Relaxed) {
                usize::MAX if unserved.load(Ordering::Relaxed) => BatchError::Unserved(error),
                usize::MAX => BatchError::Failed(error),
                index => BatchError::Refused { index, error },
            }),
        }
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

impl SourceClient for GoogleClient {
    /// Pages newest-first by `nextPageToken`, stopping [`OVERLAP`] behind
    /// the mark. A server that hands out a fresh token forever never
    /// repeats one: the reported `totalReviewCount` catches it after a few
    /// pages instead of [`MAX_PAGES`] (half an hour at the default rate).
    fn paging(&self) -> Paging {
        Paging {
            style: PagingStyle::Tokens {
                what: "page token",
                page_size: PAGE_SIZE,
            },
            overlap: Some(OVERLAP),
            max_pages: MAX_PAGES,
        }
    }

    fn fetch<'a>(&'a self, request: PageRequest<'a>) -> BoxFuture<'a, Result<Page, PlatformError>> {
        Box::pin(async move {
            let token = match request.at {
                PageAt::Token(token) => Some(token),
                _ => None,
            };
            let json = self.list_page(request.location, token).await?;
            let mapped = wire::map_page(&json, request.number)?;
            let next = match mapped.next_page_token {
                Some(token) => Next::Token(token),
                None => Next::Last,
            };
            Ok(Page {
                fetched: mapped.page,
                records: mapped.records,
                oldest: mapped.oldest,
                newest: mapped.newest,
                next,
                ids: Vec::new(),
                url: None,
            })
        })
    }

    fn batch(&self) -> Option<&dyn BatchReads> {
        (self.batch_size > 1).then_some(self as &dyn BatchReads)
    }

    fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn last_request(&self) -> Option<String> {
        self.http.last_request()
    }

    fn discover(&self) -> Option<BoxFuture<'_, Discovery>> {
        if self.discover_accounts.is_empty() {
            return None;
        }
        Some(Box::pin(self.discover_all()))
    }
}

impl BatchReads for GoogleClient {
    fn max_locations(&self) -> usize {
        self.batch_size as usize
    }

    /// The account: batchGetReviews's path names one.
    fn batch_group(&self, location: &LocationId) -> Option<String> {
        account_of(location).map(str::to_owned)
    }

    fn fetch_batch<'a>(
        &'a self,
        request: BatchRequest<'a>,
    ) -> BoxFuture<'a, Result<BatchPage, BatchError>> {
        Box::pin(self.batch_page(request))
    }
}

/// `accounts/{a}` of a location `accounts/{a}/locations/{l}`.
fn account_of(location: &LocationId) -> Option<&str> {
    let name = location.as_str();
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["accounts", account, "locations", id] if !account.is_empty() && !id.is_empty() => {
            name.find("/locations/").map(|at| &name[..at])
        }
        _ => None,
    }
}

/// What an error answer to batchGetReviews means for the batch.
enum BatchJudged {
    /// The call was refused for the location at this index of the call.
    Refused(usize),
    /// The call as a whole was refused, naming no location.
    Unserved,
    /// The call failed.
    Failed,
}

/// Maps an error answer to batchGetReviews: a client error that names one
/// of the call's locations (a `google.rpc.ResourceInfo` detail's
/// `resourceName`, else the one location the message names) is that
/// location's refusal, mapped as its own list's error would be; one naming
/// none is the call's; anything else (401, 429 and 5xx after the retries)
/// fails the batch.
fn google_batch_error(
    answer: &ErrorAnswer<'_>,
    names: &[LocationId],
    account: &str,
) -> (PlatformError, BatchJudged) {
    let status = answer.status.as_u16();
    if !matches!(status, 400 | 403 | 404 | 405 | 501) {
        let call = LocationId::new(format!("{account} (batchGetReviews)"));
        return (google_error(answer, &call), BatchJudged::Failed);
    }
    match named_location(answer, names) {
        Some(index) => (
            google_error(answer, &names[index]),
            BatchJudged::Refused(index),
        ),
        None => {
            let call = LocationId::new(format!("{account} (batchGetReviews)"));
            (google_error(answer, &call), BatchJudged::Unserved)
        }
    }
}

/// The index of the call's location an error answer names.
fn named_location(answer: &ErrorAnswer<'_>, names: &[LocationId]) -> Option<usize> {
    let details = answer
        .json
        .and_then(|json| json.pointer("/error/details"))
        .and_then(Value::as_array);
    for detail in details.into_iter().flatten() {
        let is_resource_info = detail
            .get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with("google.rpc.ResourceInfo"));
        let resource = detail.get("resourceName").and_then(Value::as_str);
        if let (true, Some(resource)) = (is_resource_info, resource)
            && let Some(index) = names.iter().position(|n| n.as_str() == resource)
        {
            return Some(index);
        }
    }
    // The message, when it names exactly one of the call's locations (as a
    // whole name: `locations/1` is not named by `locations/12`).
    let message = answer.text("/error/message");
    let mut named = names
        .iter()
        .enumerate()
        .filter(|(_, n)| mentions(message, n.as_str()))
        .map(|(index, _)| index);
    match (named.next(), named.next()) {
        (Some(index), None) => Some(index),
        _ => None,
    }
}

/// Whether `text` holds `name` not followed by more of an id.
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        text[at + name.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'))
    })
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
