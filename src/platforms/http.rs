//! What every platform client shares: the request budgets of its quota
//! scope (`crate::quota`), bearer tokens with refresh on 401, retries with
//! backoff on 429/5xx and transport errors, a size cap on bodies, redirects
//! (same origin only, for a GET: `crate::redirect`), and request counting.
//!
//! One [`PlatformHttp`] per source. Platform modules build the URL and any
//! extra headers or query, and map the platform's own error bodies through
//! the `on_error` closure; everything about *whether* and *when* to try again
//! lives here, so every platform behaves the same under throttling.
//!
//! Every request (each retry and redirect hop too) first takes a call from
//! the budget of its scope, shared by every source of the scope (its
//! OAuth client or API key; a Facebook source's Page, per location), and
//! from the source's own `requests_per_minute` when it set one. It waits as
//! long as the budget needs, but never past the time left to the location's
//! read (its pass bound, [`reading_until`]): a call that could not go in
//! time fails the location at once as `quota_exhausted`, naming the scope
//! and why. Every answer, success or error, goes through the platform's
//! observer (its registry entry's `observe`: usage headers, refusals, a
//! 429's `Retry-After`) to the budget, which slows down or stops the scope.
//!
//! **Invariant:** no token, API key or query string reaches an error message
//! or a log line from this module: errors carry statuses, OAuth error codes
//! and the platform's own error text; logs carry the URL path only.

use super::PlatformError;
use crate::config::SourceConfig;
use crate::oauth::{AccessToken, TokenCache, TokenError, describe_transport};
use crate::quota::headers::Answer;
use crate::quota::{Adjustment, Budget, OverBudget, QuotaScope, Quotas, SourceBudget, Window};
use crate::retry::{Backoff, retry_after_header};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// Retries after the first attempt for 429, 5xx, timeouts and connection
/// errors. With [`Backoff::PLATFORM`] the worst case is about 7.5 s of waiting
/// (more if the platform sends `Retry-After`): long enough to ride out a
/// blip, short enough that a poll holding the source's slot gives up and the
/// next cron tick tries again.
pub const MAX_RETRIES: u32 = 4;

/// The largest success body we read. A Google page of 50 reviews is well under
/// 1 MiB; anything near this is a misbehaving server, and reading it all would
/// let one endpoint exhaust the daemon's memory.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The most of an error body we read to find the platform's message: error
/// JSON is small, and we only want its code and message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

tokio::task_local! {
    /// When the location read in progress must end (its pass bound).
    static READ_UNTIL: Instant;
}

/// Runs `read` (the fetch of one page of a location) knowing that the read
/// must end by `until`: no request of it waits for a budget past then
/// (it fails as `quota_exhausted` at once instead). Requests outside a
/// location's read (discovery, `check --online`) may wait up to the
/// source's `max_pass_time`.
pub async fn reading_until<F: Future>(until: Instant, read: F) -> F::Output {
    READ_UNTIL.scope(until, read).await
}

/// A source's side of its request budgets: what its requests count against
/// and how the platform's answers are read.
struct SourceQuota {
    /// The process's budgets (one per scope, kept across reloads).
    quotas: Arc<Quotas>,
    /// The source's name, its own `requests_per_minute` cap and waits.
    own: SourceBudget,
    /// What its requests count against.
    scope: QuotaScope,
    /// The platform's published windows, for a scope's first budget.
    windows: Vec<Window>,
    /// The source's `requests_per_minute`, when set.
    requests_per_minute: Option<NonZeroU32>,
    /// The platform's reader of its answers.
    observe: fn(&Answer<'_>) -> Vec<Adjustment>,
    /// The budget of requests that count against no platform scope: the
    /// source's own cap only (a private scope with no window).
    unscoped: Arc<Budget>,
    /// How long a request outside a location's read may wait for its
    /// budget: the source's `max_pass_time`.
    longest_wait: Duration,
}

impl SourceQuota {
    /// The budget of a source's requests that count against no platform
    /// scope: a private one without windows, so only the source's own cap
    /// applies.
    fn unscoped(kind: &'static str, name: &str) -> Arc<Budget> {
        Quotas::new().budget(
            &crate::quota::ScopeKey::location(kind, "source", name),
            &[],
            None,
        )
    }

    /// The budget a request for `location` (or for none) counts against.
    fn budget(&self, location: Option<&str>) -> Arc<Budget> {
        match self.scope.key(location) {
            Some(key) => self
                .quotas
                .budget(&key, &self.windows, self.requests_per_minute),
            None => self.unscoped.clone(),
        }
    }

    /// Takes one call from `budget`, waiting at most the time left to the
    /// location's read.
    async fn take(&self, budget: &Budget) -> Result<(), OverBudget> {
        let longest = READ_UNTIL
            .try_with(|until| until.saturating_duration_since(Instant::now()))
            .unwrap_or(self.longest_wait);
        budget.take_within(&self.own, longest).await.map(|_| ())
    }

    /// Hands an answer to the platform's observer and its budget.
    fn observe(
        &self,
        budget: &Budget,
        status: StatusCode,
        headers: &HeaderMap,
        json: Option<&serde_json::Value>,
    ) {
        let adjustments = (self.observe)(&Answer {
            status,
            headers,
            json,
            scope: budget.key(),
        });
        if !adjustments.is_empty() {
            budget.follow(self.own.name(), &adjustments);
        }
    }
}

/// An error answer (after retries, if it was retryable), handed to the
/// platform's judge so it can read its own error shape.
#[derive(Debug)]
pub struct ErrorAnswer<'a> {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, when it was JSON (and not over the error-body cap).
    pub json: Option<&'a serde_json::Value>,
    /// The answer's headers (Yelp's `RateLimit-*`, say).
    pub headers: &'a HeaderMap,
    /// Whether the status was retried until [`MAX_RETRIES`] ran out.
    pub retries_exhausted: bool,
}

/// The most of a platform's own error message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

impl ErrorAnswer<'_> {
    /// A mapping that knows no platform specifics: 401/403 → `Unauthorized`,
    /// 404 → `NotFound`, anything else → `Http` with the canonical reason.
    pub fn generic(&self, what: &str) -> PlatformError {
        let reason = self.status.canonical_reason().unwrap_or("error").to_owned();
        match self.status.as_u16() {
            401 | 403 => {
                PlatformError::Unauthorized(format!("HTTP {}: {reason}", self.status.as_u16()))
            }
            404 => PlatformError::NotFound(what.to_owned()),
            status => PlatformError::Http {
                status,
                detail: reason,
            },
        }
    }

    /// The detail of an error from the platform's own words: `code:
    /// message` (the message cut to 300 characters), either one alone when
    /// the other is blank, else the status's reason phrase.
    pub fn detail(&self, code: &str, message: &str) -> String {
        let (code, message) = (code.trim(), message.trim());
        let message = super::short_message(message, MAX_MESSAGE_CHARS);
        match (code.is_empty(), message.is_empty()) {
            (false, false) => format!("{code}: {message}"),
            (false, true) => code.to_owned(),
            (true, false) => message,
            (true, true) => self
                .status
                .canonical_reason()
                .unwrap_or("no error message")
                .to_owned(),
        }
    }

    /// A string at `pointer` in the JSON body; empty when absent.
    pub fn text(&self, pointer: &str) -> &str {
        self.json
            .and_then(|json| json.pointer(pointer))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    }
}

/// What a platform's judge makes of an error answer.
#[derive(Debug)]
pub enum ErrorVerdict {
    /// The shared policy: 408, 429 and 5xx are retried with backoff while
    /// retries last, then this error is returned; other statuses return it
    /// at once.
    Default(PlatformError),
    /// Return this error now, even for a retryable status (a daily quota,
    /// an endpoint the platform removed).
    Final(PlatformError),
    /// Retry with backoff even though the status is not one the shared
    /// policy retries (a platform that throttles with a 400), then return
    /// this error.
    Retry(PlatformError),
}

/// A mapped error under the shared retry policy.
impl From<PlatformError> for ErrorVerdict {
    fn from(error: PlatformError) -> ErrorVerdict {
        ErrorVerdict::Default(error)
    }
}

/// The request machinery of one source: shared connection pool, the source's
/// timeout and request budgets, optional bearer tokens, and a request counter.
pub struct PlatformHttp {
    client: reqwest::Client,
    /// Per request (connect to end of body), from the source config.
    timeout: Duration,
    /// The budgets of its scope(s) and its own cap; taken from before every
    /// request, retries and redirect hops included, because the platform
    /// counts those too.
    quota: SourceQuota,
    /// Present for OAuth platforms; API-key platforms add their key in `build`.
    tokens: Option<TokenCache>,
    /// API requests sent (every attempt).
    requests: AtomicU64,
    /// Token requests that failed. Successful ones are counted by the cache
    /// itself; together they give every token call without a second counter
    /// inside `oauth`.
    token_failures: AtomicU64,
    backoff: Backoff,
    max_retries: u32,
    body_cap: usize,
    /// The last request sent or tried (method, scheme, host and path: never
    /// the query, which may carry a token), so that `check --online` can
    /// name the URL that failed rather than only the location.
    last_request: std::sync::Mutex<Option<String>>,
}

/// `scheme://host[:port]/path` of `url`: no user, password, query or
/// fragment, which may carry credentials.
pub fn shown_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

impl PlatformHttp {
    /// The machinery for `source`, on the shared pool `client`, taking its
    /// requests from the budgets of its platform's scope in `quotas`.
    pub fn for_source(
        source: &SourceConfig,
        client: reqwest::Client,
        tokens: Option<TokenCache>,
        quotas: &Arc<Quotas>,
    ) -> PlatformHttp {
        let kind = source.kind.kind_name();
        let tokens = tokens.map(|t| t.labelled(kind, Some(source.name.as_str())));
        let quota = SourceQuota {
            quotas: quotas.clone(),
            own: SourceBudget::new(source.name.as_str(), source.requests_per_minute),
            scope: source.kind.quota_scope(),
            windows: source.kind.quota_windows(),
            requests_per_minute: source.requests_per_minute,
            observe: source.kind.observer(),
            unscoped: SourceQuota::unscoped(kind, source.name.as_str()),
            longest_wait: source.pass_bounds.incremental_time,
        };
        PlatformHttp::with_quota(client, source.timeout, tokens, quota)
    }

    /// The machinery with no platform scope: only `requests_per_minute`
    /// (when given) paces it, and it waits at most 5 minutes outside a
    /// location's read (tests, and clients built by hand).
    pub fn new(
        client: reqwest::Client,
        requests_per_minute: Option<NonZeroU32>,
        timeout: Duration,
        tokens: Option<TokenCache>,
    ) -> PlatformHttp {
        let quota = SourceQuota {
            quotas: Arc::new(Quotas::new()),
            own: SourceBudget::new("unnamed", requests_per_minute),
            scope: QuotaScope::None,
            windows: Vec::new(),
            requests_per_minute,
            observe: |_| Vec::new(),
            unscoped: SourceQuota::unscoped("unnamed", "unnamed"),
            longest_wait: crate::config::PassBounds::default().incremental_time,
        };
        PlatformHttp::with_quota(client, timeout, tokens, quota)
    }

    fn with_quota(
        client: reqwest::Client,
        timeout: Duration,
        tokens: Option<TokenCache>,
        quota: SourceQuota,
    ) -> PlatformHttp {
        PlatformHttp {
            client,
            timeout,
            quota,
            tokens,
            requests: AtomicU64::new(0),
            token_failures: AtomicU64::new(0),
            backoff: Backoff::PLATFORM,
            max_retries: MAX_RETRIES,
            body_cap: MAX_BODY_BYTES,
            last_request: std::sync::Mutex::new(None),
        }
    }

    /// The last request sent or tried, as `METHOD scheme://host/path`.
    pub fn last_request(&self) -> Option<String> {
        self.last_request
            .lock()
            .map(|last| last.clone())
            .unwrap_or_default()
    }

    fn note_request(&self, method: &Method, url: &Url) {
        if let Ok(mut last) = self.last_request.lock() {
            *last = Some(format!("{method} {}", shown_url(url)));
        }
    }

    /// Replaces the retry policy (tests use millisecond delays).
    pub fn with_retries(mut self, backoff: Backoff, max_retries: u32) -> PlatformHttp {
        self.backoff = backoff;
        self.max_retries = max_retries;
        self
    }

    /// Replaces the success-body cap (tests).
    pub fn with_body_cap(mut self, bytes: usize) -> PlatformHttp {
        self.body_cap = bytes;
        self
    }

    /// Every HTTP request made so far: API attempts including retries, and
    /// token calls (successful or not).
    pub fn requests(&self) -> u64 {
        let token_calls = self.tokens.as_ref().map_or(0, TokenCache::fetch_count)
            + self.token_failures.load(Ordering::Relaxed);
        self.requests.load(Ordering::Relaxed) + token_calls
    }

    /// `GET url` expecting a JSON body. See [`PlatformHttp::request_json`].
    pub async fn get_json(
        &self,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        judge: impl Fn(ErrorAnswer<'_>) -> ErrorVerdict,
    ) -> Result<serde_json::Value, PlatformError> {
        self.send_json(None, Method::GET, url, build, judge).await
    }

    /// [`PlatformHttp::get_json`] for one location of a platform whose
    /// scope is per location (a Facebook Page): the request counts against
    /// that location's budget.
    pub async fn get_json_at(
        &self,
        location: &crate::domain::LocationId,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        judge: impl Fn(ErrorAnswer<'_>) -> ErrorVerdict,
    ) -> Result<serde_json::Value, PlatformError> {
        self.send_json(Some(location.as_str()), Method::GET, url, build, judge)
            .await
    }

    /// Sends a request and returns its JSON body.
    ///
    /// `build` adds the caller's query, headers or body; it is called again
    /// for every attempt. The bearer token (when this source has a token
    /// cache) is added after it. A 401 renews the token once and tries again
    /// at once; 408, 429, 5xx, timeouts and connection errors are retried up
    /// to `MAX_RETRIES` times with backoff (`Retry-After` wins). Every error
    /// answer (its body read up to a small cap) goes through the platform's
    /// `judge`, which maps it and says whether the shared retry policy
    /// applies ([`ErrorVerdict`]: Yelp's daily limit is a 429 that only
    /// midnight cures; Graph throttles with a 400). Only a GET follows a
    /// redirect (`crate::redirect`). Each attempt takes a call from the
    /// source's budget first, and every answer is observed by it (see the
    /// module doc); a budget that cannot let a call go in time is
    /// [`PlatformError::QuotaExhausted`], not retried.
    pub async fn request_json(
        &self,
        method: Method,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        judge: impl Fn(ErrorAnswer<'_>) -> ErrorVerdict,
    ) -> Result<serde_json::Value, PlatformError> {
        self.send_json(None, method, url, build, judge).await
    }

    async fn send_json(
        &self,
        location: Option<&str>,
        method: Method,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        judge: impl Fn(ErrorAnswer<'_>) -> ErrorVerdict,
    ) -> Result<serde_json::Value, PlatformError> {
        let budget = self.quota.budget(location);
        let path = url.path();
        let mut retries = 0u32;
        // Set after a 401: the token to renew (once per call).
        let mut renew_from: Option<AccessToken> = None;
        let mut renewed = false;
        loop {
            let token = match self.token(renew_from.as_ref()).await {
                Ok(token) => {
                    renew_from = None;
                    token
                }
                Err(TokenFailure::Final(e)) => return Err(e),
                Err(TokenFailure::Retry { error, retry_after }) => {
                    self.pause_or_give_up(&mut retries, retry_after, path, error)
                        .await?;
                    continue;
                }
            };

            self.note_request(&method, url);
            let mut request = build(self.client.request(method.clone(), url.clone()));
            if let Some(token) = &token {
                request = request.bearer_auth(token.secret());
            }
            tracing::debug!(%method, path, attempt = retries + 1, "platform request");
            let mut response = match self.send_following(request, &budget).await {
                Ok(response) => response,
                Err(SendError::OverBudget(over)) => {
                    return Err(PlatformError::QuotaExhausted(over.to_string()));
                }
                Err(SendError::Redirect(refused)) => {
                    tracing::warn!(path, error = %refused, "platform redirect refused");
                    return Err(PlatformError::Redirect(refused));
                }
                Err(SendError::Transport(reason)) => {
                    let error = PlatformError::Transport(reason);
                    self.pause_or_give_up(&mut retries, None, path, error)
                        .await?;
                    continue;
                }
            };
            let status = response.status();

            if status.is_success() {
                self.quota
                    .observe(&budget, status, response.headers(), None);
                let body = match read_capped(&mut response, self.body_cap).await {
                    Ok(body) => body,
                    Err(BodyError::TooLarge) => {
                        return Err(PlatformError::InvalidResponse(format!(
                            "body larger than the {} byte cap",
                            self.body_cap
                        )));
                    }
                    Err(BodyError::Transport(e)) => {
                        let error = PlatformError::Transport(describe_transport(&e));
                        self.pause_or_give_up(&mut retries, None, path, error)
                            .await?;
                        continue;
                    }
                };
                return serde_json::from_slice(&body).map_err(|e| {
                    // serde_json's syntax errors name a position, never the content.
                    PlatformError::InvalidResponse(format!(
                        "HTTP {} body is not JSON: {e}",
                        status.as_u16()
                    ))
                });
            }

            if status == StatusCode::UNAUTHORIZED
                && !renewed
                && let Some(rejected) = token
            {
                tracing::debug!(path, "platform refused the access token; renewing it");
                renewed = true;
                renew_from = Some(rejected);
                continue;
            }

            let retryable = is_retryable_status(status);
            let headers = response.headers().clone();
            let json = match read_capped(&mut response, MAX_ERROR_BODY_BYTES).await {
                Ok(body) => serde_json::from_slice::<serde_json::Value>(&body).ok(),
                Err(_) => None,
            };
            self.quota.observe(&budget, status, &headers, json.as_ref());
            let verdict = judge(ErrorAnswer {
                status,
                json: json.as_ref(),
                headers: &headers,
                retries_exhausted: retryable && retries >= self.max_retries,
            });
            let error = match verdict {
                ErrorVerdict::Final(error) => return Err(error),
                ErrorVerdict::Default(error) if !retryable => return Err(error),
                ErrorVerdict::Default(error) | ErrorVerdict::Retry(error) => error,
            };
            // Gives up with the mapped error once retries ran out.
            let retry_after = retry_after_header(&headers);
            self.pause_or_give_up(&mut retries, retry_after, path, error)
                .await?;
        }
    }

    /// Sends one request and follows its redirects by `crate::redirect`'s
    /// rules: a GET to its own origin, at most `MAX_REDIRECTS` times, with
    /// the same headers (its credentials stay with their origin); anything
    /// else is refused. Every hop takes a call from `budget`, counts as a
    /// request and has the source's timeout.
    async fn send_following(
        &self,
        request: RequestBuilder,
        budget: &Budget,
    ) -> Result<Response, SendError> {
        let mut request = request
            .build()
            .map_err(|e| SendError::Transport(describe_transport(&e)))?;
        let mut hops = 0;
        loop {
            *request.timeout_mut() = Some(self.timeout);
            let (method, url, headers) = (
                request.method().clone(),
                request.url().clone(),
                request.headers().clone(),
            );
            self.quota
                .take(budget)
                .await
                .map_err(SendError::OverBudget)?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = self
                .client
                .execute(request)
                .await
                .map_err(|e| SendError::Transport(describe_transport(&e)))?;
            let status = response.status();
            if !status.is_redirection() {
                return Ok(response);
            }
            let target = crate::redirect::follow(&method, &url, status, response.headers(), hops)
                .map_err(SendError::Redirect)?;
            tracing::debug!(
                from = url.path(),
                to = target.path(),
                status = status.as_u16(),
                "following a redirect within the same origin"
            );
            hops += 1;
            request = reqwest::Request::new(Method::GET, target);
            *request.headers_mut() = headers;
        }
    }

    /// The token for the next attempt: a renewal of `renew_from` after a 401,
    /// else the cached one. `None` when this source has no token cache.
    async fn token(
        &self,
        renew_from: Option<&AccessToken>,
    ) -> Result<Option<AccessToken>, TokenFailure> {
        let Some(cache) = &self.tokens else {
            return Ok(None);
        };
        self.note_request(&Method::POST, cache.token_url());
        let fetch = async {
            match renew_from {
                Some(rejected) => cache.renew(rejected).await,
                None => cache.get().await,
            }
        };
        // The token endpoint shares the pool, which has no timeout of its own:
        // bound the call here so a hung endpoint cannot stall the source.
        let result = match tokio::time::timeout(self.timeout, fetch).await {
            Ok(result) => result,
            Err(_) => Err(TokenError::Transport("timed out".into())),
        };
        match result {
            Ok(token) => Ok(Some(token)),
            Err(error) => {
                self.token_failures.fetch_add(1, Ordering::Relaxed);
                Err(classify_token_error(error))
            }
        }
    }

    /// Sleeps before the next retry, or returns `error` when retries ran out.
    async fn pause_or_give_up(
        &self,
        retries: &mut u32,
        retry_after: Option<Duration>,
        path: &str,
        error: PlatformError,
    ) -> Result<(), PlatformError> {
        if *retries >= self.max_retries {
            return Err(error);
        }
        // The thread-local rng is not Send: draw the delay before awaiting.
        let delay = self.backoff.delay(*retries, retry_after, &mut rand::rng());
        *retries += 1;
        tracing::warn!(
            path,
            retry = *retries,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error_type = error.error_type(),
            "platform request failed; retrying"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// 408, 429 and 5xx may succeed later; other statuses will not.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Why [`PlatformHttp::send_following`] got no answer to read.
enum SendError {
    /// The budget could not let the request go in time.
    OverBudget(OverBudget),
    /// No HTTP answer (described without the URL).
    Transport(String),
    /// A redirect that is not followed.
    Redirect(crate::redirect::RedirectRefused),
}

enum TokenFailure {
    /// Trying again later may help.
    Retry {
        error: PlatformError,
        retry_after: Option<Duration>,
    },
    /// It will not.
    Final(PlatformError),
}

fn classify_token_error(error: TokenError) -> TokenFailure {
    match error {
        // Revoked or expired for good: a human must grant consent again.
        TokenError::GrantRefused { error, description } => TokenFailure::Final(
            PlatformError::NeedsConsent(with_description(error, description)),
        ),
        // The client id/secret is wrong: new consent would not help, a
        // config change will.
        TokenError::ClientRefused { error, description } => {
            TokenFailure::Final(PlatformError::Unauthorized(format!(
                "the token endpoint refused the client id/secret ({})",
                with_description(error, description)
            )))
        }
        // The same answer is likely on the next try: the location fails
        // now, the next pass asks again.
        TokenError::Redirect(refused) => TokenFailure::Final(PlatformError::Redirect(refused)),
        TokenError::Http {
            status,
            retry_after,
        } => {
            let error = PlatformError::Http {
                status,
                detail: "token endpoint".into(),
            };
            match StatusCode::from_u16(status) {
                Ok(code) if !is_retryable_status(code) && code.is_client_error() => {
                    // A 4xx without a recognised OAuth code: the credentials
                    // or the token URL are wrong; retrying will not fix them.
                    TokenFailure::Final(PlatformError::Unauthorized(format!(
                        "token endpoint answered HTTP {status}"
                    )))
                }
                _ => TokenFailure::Retry { error, retry_after },
            }
        }
        TokenError::Transport(reason) => TokenFailure::Retry {
            error: PlatformError::Transport(format!("token endpoint: {reason}")),
            retry_after: None,
        },
        TokenError::InvalidResponse(reason) => TokenFailure::Retry {
            error: PlatformError::InvalidResponse(format!("token endpoint: {reason}")),
            retry_after: None,
        },
    }
}

fn with_description(error: String, description: String) -> String {
    if description.is_empty() {
        error
    } else {
        format!("{error}: {description}")
    }
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the body, refusing to hold more than `cap` bytes.
async fn read_capped(response: &mut Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| usize::try_from(len).map_or(true, |len| len > cap))
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::oauth::Grant;
    use crate::platforms::test_server::{Answer, Server};
    use crate::quota::Quotas;

    const FAST: Backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
    };

    fn rpm(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    fn url(server: &Server, path: &str) -> Url {
        Url::parse(&format!("{}{path}", server.base)).expect("test url")
    }

    fn machinery(server: &Server, with_tokens: bool) -> PlatformHttp {
        let client = crate::app::http_client().expect("http client");
        let tokens = with_tokens.then(|| {
            TokenCache::new(
                Grant::RefreshToken {
                    client_id: "id".into(),
                    client_secret: Secret::new("client-s3cret"),
                    refresh_token: Secret::new("refresh-s3cret"),
                },
                url(server, "/token"),
                client.clone(),
            )
        });
        PlatformHttp::new(client, Some(rpm(6000)), Duration::from_secs(5), tokens)
            .with_retries(FAST, MAX_RETRIES)
    }

    fn token_ok(server: &Server) {
        server.script(
            "/token",
            vec![Answer::json(
                200,
                r#"{"access_token":"acc3ss","expires_in":3600,"token_type":"Bearer"}"#,
            )],
        );
    }

    async fn get(http: &PlatformHttp, u: &Url) -> Result<serde_json::Value, PlatformError> {
        http.get_json(u, |r| r, |answer| answer.generic("thing").into())
            .await
    }

    fn assert_no_secrets(text: &str) {
        for secret in ["acc3ss", "client-s3cret", "refresh-s3cret"] {
            assert!(!text.contains(secret), "{text} leaks {secret}");
        }
    }

    /// The client of a source of `kind` (TOML keys `keys`) at `server`,
    /// on `quotas`, without retries.
    fn source_http(
        server: &Server,
        kind: &str,
        name: &str,
        keys: &str,
        quotas: &Arc<Quotas>,
    ) -> PlatformHttp {
        let source = crate::platforms::test_support::source_from_toml(&format!(
            "[[source]]\nname = \"{name}\"\nkind = \"{kind}\"\nschedule = \"0 * * * * *\"\ntimeout = \"5s\"\napi_base_url = \"{}\"\n{keys}\n  [[source.location]]\n  id = \"x\"\n  group_id = \"g\"\n",
            server.base
        ));
        PlatformHttp::for_source(
            &source,
            crate::app::http_client().expect("client"),
            None,
            quotas,
        )
        .with_retries(FAST, 0)
    }

    #[tokio::test]
    async fn a_request_its_budget_cannot_let_go_in_time_fails_as_quota_exhausted() {
        let server = Server::start().await;
        server.script("/api", vec![Answer::json(200, "{}")]);
        // One a minute: the second request would wait a minute.
        let http = PlatformHttp::new(
            crate::app::http_client().expect("http client"),
            Some(rpm(1)),
            Duration::from_secs(2),
            None,
        );
        get(&http, &url(&server, "/api")).await.expect("first");
        let (before, _) = crate::quota::waits::totals();
        let read_ends = Instant::now() + Duration::from_secs(5);
        let err = tokio::time::timeout(
            Duration::from_secs(30),
            reading_until(read_ends, get(&http, &url(&server, "/api"))),
        )
        .await
        .expect("refused at once, not after the minute")
        .expect_err("no call within the read's time");
        assert_eq!(err.error_type(), "quota_exhausted");
        assert!(
            err.to_string()
                .ends_with("the source's requests_per_minute (1)"),
            "{err}"
        );
        assert_eq!(server.count("/api"), 1, "the second was never sent");
        assert_eq!(
            crate::quota::waits::totals().0,
            before,
            "a refusal is not a wait"
        );
    }

    /// Every answer, a success too, goes through the platform's observer
    /// to its scope's budget, which every source of the scope shares: a
    /// Yelp answer saying no call is left today stops both sources of the
    /// key, without a request.
    #[tokio::test]
    async fn what_an_answer_says_of_the_quota_stops_every_source_of_the_scope() {
        let server = Server::start().await;
        server.script(
            "/v3/businesses/x/reviews",
            vec![
                Answer::json(200, r#"{"reviews":[]}"#)
                    .header("ratelimit-dailylimit", "300")
                    .header("ratelimit-remaining", "0"),
            ],
        );
        let quotas = Arc::new(Quotas::new());
        let key = "api_key = \"shared-k3y\"";
        let east = source_http(&server, "yelp", "yelp-east", key, &quotas);
        let west = source_http(&server, "yelp", "yelp-west", key, &quotas);
        let other = source_http(
            &server,
            "yelp",
            "yelp-other",
            "api_key = \"other-k3y\"",
            &quotas,
        );
        let reviews = url(&server, "/v3/businesses/x/reviews");
        get(&east, &reviews)
            .await
            .expect("the last call of the day");
        for http in [&east, &west] {
            let err = get(http, &reviews).await.expect_err("nothing left today");
            assert_eq!(err.error_type(), "quota_exhausted", "{err}");
            let text = err.to_string();
            assert!(text.contains("yelp API key #"), "{text}");
            assert!(
                text.ends_with("the daily cap (300 per day (resets 00:00 UTC)) is used up"),
                "{text}"
            );
            assert!(!text.contains("k3y"), "{text}");
        }
        assert_eq!(server.count("/v3/businesses/x/reviews"), 1);
        // Another key is another scope.
        get(&other, &reviews).await.expect("another key's budget");
    }

    /// A 429's `Retry-After` pauses the whole scope: another source of the
    /// same key does not send into it.
    #[tokio::test]
    async fn a_429_pauses_every_source_of_the_scope() {
        let server = Server::start().await;
        server.script(
            "/v1/places/x",
            vec![Answer::json(429, "{}").header("retry-after", "120")],
        );
        let quotas = Arc::new(Quotas::new());
        let key = "api_key = \"places-k3y\"";
        let first = source_http(&server, "google_places", "places-a", key, &quotas);
        let second = source_http(&server, "google_places", "places-b", key, &quotas);
        let place = url(&server, "/v1/places/x");
        let err = get(&first, &place).await.expect_err("429");
        assert!(
            matches!(err, PlatformError::Http { status: 429, .. }),
            "{err:?}"
        );
        let err = reading_until(
            Instant::now() + Duration::from_secs(60),
            get(&second, &place),
        )
        .await
        .expect_err("paused for two minutes");
        assert_eq!(err.error_type(), "quota_exhausted");
        assert!(
            err.to_string()
                .ends_with("the platform answered 429 with Retry-After 2m"),
            "{err}"
        );
        assert_eq!(server.count("/v1/places/x"), 1);
    }

    #[tokio::test]
    async fn sends_the_bearer_token_and_returns_json() {
        let server = Server::start().await;
        token_ok(&server);
        server.script("/api", vec![Answer::json(200, r#"{"ok":true}"#)]);
        let http = machinery(&server, true);
        let json = get(&http, &url(&server, "/api")).await.expect("ok");
        assert_eq!(json, serde_json::json!({"ok": true}));
        let seen = server.seen();
        assert!(seen.iter().any(|h| {
            h.to_ascii_lowercase()
                .contains("authorization: bearer acc3ss")
        }));
        assert_eq!(http.requests(), 2, "one token call, one API call");
    }

    #[tokio::test]
    async fn server_errors_and_throttling_are_retried() {
        let server = Server::start().await;
        token_ok(&server);
        server.script(
            "/api",
            vec![
                Answer::json(500, "{}"),
                Answer::json(429, "{}").header("retry-after", "0"),
                Answer::json(503, "oops"),
                Answer::json(200, "[1]"),
            ],
        );
        let http = machinery(&server, true);
        let json = get(&http, &url(&server, "/api"))
            .await
            .expect("ok after retries");
        assert_eq!(json, serde_json::json!([1]));
        assert_eq!(server.count("/api"), 4);
        assert_eq!(http.requests(), 5);
    }

    #[tokio::test]
    async fn retries_are_bounded_and_the_last_status_is_mapped() {
        let server = Server::start().await;
        server.script(
            "/api",
            vec![Answer::json(502, r#"{"error":"bad gateway"}"#)],
        );
        let http = machinery(&server, false);
        let err = get(&http, &url(&server, "/api"))
            .await
            .expect_err("gives up");
        assert!(
            matches!(err, PlatformError::Http { status: 502, .. }),
            "{err:?}"
        );
        assert_eq!(server.count("/api"), 1 + MAX_RETRIES as usize);
        assert_eq!(http.requests(), 1 + u64::from(MAX_RETRIES));
    }

    #[tokio::test]
    async fn a_401_renews_the_token_once() {
        let server = Server::start().await;
        token_ok(&server);
        server.script(
            "/api",
            vec![Answer::json(401, "{}"), Answer::json(200, "{}")],
        );
        let http = machinery(&server, true);
        get(&http, &url(&server, "/api"))
            .await
            .expect("ok after renew");
        assert_eq!(server.count("/token"), 2);
        assert_eq!(server.count("/api"), 2);
        assert_eq!(http.requests(), 4);

        // Refused again after the renewal: mapped, not retried further.
        let server = Server::start().await;
        token_ok(&server);
        server.script("/api", vec![Answer::json(401, "{}")]);
        let http = machinery(&server, true);
        let err = get(&http, &url(&server, "/api"))
            .await
            .expect_err("refused");
        assert!(matches!(err, PlatformError::Unauthorized(_)), "{err:?}");
        assert_eq!(server.count("/api"), 2);
        assert_no_secrets(&err.to_string());
    }

    #[tokio::test]
    async fn invalid_grant_needs_consent() {
        let server = Server::start().await;
        server.script(
            "/token",
            vec![Answer::json(
                400,
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            )],
        );
        let http = machinery(&server, true);
        let err = get(&http, &url(&server, "/api"))
            .await
            .expect_err("refused");
        match &err {
            PlatformError::NeedsConsent(text) => {
                assert_eq!(text, "invalid_grant: Token has been expired or revoked.")
            }
            other => panic!("expected NeedsConsent, got {other:?}"),
        }
        assert_eq!(server.count("/token"), 1, "a refusal is not retried");
        assert_eq!(server.count("/api"), 0);
        assert_eq!(http.requests(), 1);
        assert_no_secrets(&format!("{err} {err:?}"));
    }

    /// Item 11 of issue 10: a refused client was reported as "needs new
    /// consent", which stops the source and sends the operator to the
    /// wrong fix.
    #[tokio::test]
    async fn a_refused_client_is_a_credential_error_not_a_consent_one() {
        for code in ["invalid_client", "unauthorized_client"] {
            let server = Server::start().await;
            server.script(
                "/token",
                vec![Answer::json(
                    401,
                    &format!(r#"{{"error":"{code}","error_description":"The OAuth client was not found."}}"#),
                )],
            );
            let http = machinery(&server, true);
            let err = get(&http, &url(&server, "/api"))
                .await
                .expect_err("refused");
            match &err {
                PlatformError::Unauthorized(text) => assert_eq!(
                    text,
                    &format!(
                        "the token endpoint refused the client id/secret ({code}: The OAuth client was not found.)"
                    )
                ),
                other => panic!("expected Unauthorized, got {other:?}"),
            }
            assert!(!err.to_string().contains("consent"), "{err}");
            assert_eq!(server.count("/token"), 1, "a refusal is not retried");
            assert_no_secrets(&format!("{err} {err:?}"));
        }
    }

    /// A GET redirected within its origin is followed with its headers; one
    /// to another origin, or a fourth one in a row, is refused and not
    /// retried; a redirected token request is refused too.
    #[tokio::test]
    async fn redirects_are_followed_within_the_origin_only() {
        let server = Server::start().await;
        token_ok(&server);
        server.script(
            "/old",
            vec![Answer::json(301, "{}").header("location", "/new?page=2")],
        );
        server.script("/new", vec![Answer::json(200, r#"{"ok":true}"#)]);
        let http = machinery(&server, true);
        let json = http
            .get_json(
                &url(&server, "/old"),
                |r| r.header("x-api-key", "k3y"),
                |answer| answer.generic("thing").into(),
            )
            .await
            .expect("followed");
        assert_eq!(json, serde_json::json!({"ok": true}));
        let followed = server
            .seen()
            .into_iter()
            .find(|h| h.starts_with("GET /new?page=2 "))
            .expect("the Location was requested");
        let lower = followed.to_ascii_lowercase();
        assert!(lower.contains("x-api-key: k3y"), "{followed}");
        assert!(lower.contains("authorization: bearer acc3ss"), "{followed}");
        assert_eq!(http.requests(), 3, "token, /old, /new");

        let other = Server::start().await;
        server.script(
            "/away",
            vec![Answer::json(307, "{}").header("location", &format!("{}/x?k=1", other.base))],
        );
        let err = get(&http, &url(&server, "/away"))
            .await
            .expect_err("another origin");
        assert_eq!(err.error_type(), "redirect");
        assert_eq!(
            err.to_string(),
            format!(
                "HTTP 307 redirect to {} refused: another origin (credentials never leave for another scheme, host or port)",
                other.base
            )
        );
        assert!(other.seen().is_empty());
        assert_eq!(server.count("/away"), 1, "not retried");

        server.script(
            "/loop",
            vec![Answer::json(302, "{}").header("location", "/loop")],
        );
        let err = get(&http, &url(&server, "/loop")).await.expect_err("loop");
        assert!(err.to_string().contains("more than 3 redirects"), "{err}");
        assert_eq!(server.count("/loop"), 4);

        let server = Server::start().await;
        server.script(
            "/token",
            vec![Answer::json(308, "{}").header("location", &format!("{}/token", other.base))],
        );
        let http = machinery(&server, true);
        let err = get(&http, &url(&server, "/api"))
            .await
            .expect_err("token redirect");
        assert_eq!(err.error_type(), "redirect");
        assert!(
            err.to_string()
                .contains("a token request is never redirected"),
            "{err}"
        );
        assert!(other.seen().is_empty());
        assert_eq!(server.count("/api"), 0);
        assert_no_secrets(&format!("{err} {err:?}"));
    }

    #[tokio::test]
    async fn token_endpoint_outages_are_retried() {
        let server = Server::start().await;
        server.script(
            "/token",
            vec![
                Answer::json(503, "{}"),
                Answer::json(200, r#"{"access_token":"acc3ss","expires_in":3600}"#),
            ],
        );
        server.script("/api", vec![Answer::json(200, "{}")]);
        let http = machinery(&server, true);
        get(&http, &url(&server, "/api")).await.expect("ok");
        assert_eq!(server.count("/token"), 2);
        assert_eq!(http.requests(), 3);
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused() {
        let server = Server::start().await;
        let big = format!("[{}]", vec!["1"; 100].join(","));
        server.script("/api", vec![Answer::json(200, &big)]);
        let http = machinery(&server, false).with_body_cap(64);
        let err = get(&http, &url(&server, "/api"))
            .await
            .expect_err("too big");
        assert!(
            matches!(&err, PlatformError::InvalidResponse(m) if m.contains("64 byte cap")),
            "{err:?}"
        );
        assert_eq!(server.count("/api"), 1, "not retried");
    }

    #[tokio::test]
    async fn invalid_json_is_reported_without_the_body() {
        let server = Server::start().await;
        server.script("/api", vec![Answer::json(200, "<html>secret page</html>")]);
        let http = machinery(&server, false);
        let err = get(&http, &url(&server, "/api"))
            .await
            .expect_err("not json");
        let text = err.to_string();
        assert!(matches!(err, PlatformError::InvalidResponse(_)), "{err:?}");
        assert!(!text.contains("secret page"), "{text}");
    }

    #[tokio::test]
    async fn error_bodies_reach_the_mapper() {
        let server = Server::start().await;
        server.script(
            "/api",
            vec![Answer::json(
                400,
                r#"{"error":{"message":"bad page size"}}"#,
            )],
        );
        let http = machinery(&server, false);
        let err = http
            .get_json(
                &url(&server, "/api"),
                |r| r.query(&[("pageSize", "999")]),
                |answer| {
                    PlatformError::Http {
                        status: answer.status.as_u16(),
                        detail: answer.text("/error/message").to_owned(),
                    }
                    .into()
                },
            )
            .await
            .expect_err("400");
        assert_eq!(err.to_string(), "HTTP 400: bad page size");
        assert_eq!(server.count("/api"), 1, "other 4xx are not retried");
        assert!(server.seen()[0].contains("pageSize=999"));
    }

    #[tokio::test]
    async fn connection_errors_and_timeouts_give_up_as_transport() {
        // A port nobody listens on: bind, note the address, close.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let http = PlatformHttp::new(
            crate::app::http_client().expect("http client"),
            Some(rpm(6000)),
            Duration::from_secs(2),
            None,
        )
        .with_retries(FAST, 1);
        let u = Url::parse(&format!("http://{addr}/api?key=k3y")).expect("url");
        let err = get(&http, &u).await.expect_err("refused");
        assert!(matches!(err, PlatformError::Transport(_)), "{err:?}");
        assert!(!err.to_string().contains("k3y"), "{err}");
        assert_eq!(http.requests(), 2);

        let server = Server::start().await;
        server.script("/slow", vec![Answer::hang()]);
        let http = PlatformHttp::new(
            crate::app::http_client().expect("http client"),
            Some(rpm(6000)),
            Duration::from_millis(200),
            None,
        )
        .with_retries(FAST, 1);
        let err = get(&http, &url(&server, "/slow"))
            .await
            .expect_err("timeout");
        assert!(
            matches!(&err, PlatformError::Transport(m) if m.contains("timed out")),
            "{err:?}"
        );
        assert_eq!(server.count("/slow"), 2);
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_requests() {
        let server = Server::start().await;
        server.script("/api", vec![Answer::json(200, "{}")]);
        // A budget of 1 per minute (burst 1): the second request must wait.
        let http = PlatformHttp::new(
            crate::app::http_client().expect("http client"),
            Some(rpm(1)),
            Duration::from_secs(2),
            None,
        );
        get(&http, &url(&server, "/api")).await.expect("first");
        let second = tokio::time::timeout(
            Duration::from_millis(300),
            get(&http, &url(&server, "/api")),
        )
        .await;
        assert!(
            second.is_err(),
            "the second request must wait for the budget"
        );
        assert_eq!(server.count("/api"), 1);
    }
}
