//! OAuth2 access tokens for every API we call (Travtus client_credentials,
//! Google refresh_token, static bearer tokens): cached, refreshed before they
//! expire, and fetched by one caller at a time while the others wait for its
//! result ("single flight"), because the token endpoints throttle and a burst
//! of workers with an expired token must cost one fetch, not one each.
//!
//! A small typed provider on our own reqwest client rather than the `oauth2`
//! crate: oauth2 5.0 pulls in a second reqwest major version, and the two
//! grants we need are one form POST each (see reference/tooling.md).
//!
//! A token request never follows a redirect (`crate::redirect`): its form
//! carries the client secret and the refresh token or password.

use crate::config::Secret;
use crate::redirect::RedirectRefused;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// The longest we refresh ahead of expiry. Shorter-lived tokens refresh a
/// quarter of their lifetime early instead, so a 1 s token is still used for
/// 750 ms rather than refetched on every call.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How a token is obtained.
#[derive(Debug, Clone)]
pub enum Grant {
    /// `grant_type=client_credentials` (Travtus).
    ClientCredentials {
        /// `client_id`.
        client_id: String,
        /// `client_secret`.
        client_secret: Secret,
    },
    /// `grant_type=refresh_token` (Google).
    RefreshToken {
        /// `client_id`.
        client_id: String,
        /// `client_secret`.
        client_secret: Secret,
        /// `refresh_token`.
        refresh_token: Secret,
    },
    /// A bearer token used as is and never refreshed.
    Static(Secret),
    /// `grant_type=password` with the client authenticated by HTTP Basic,
    /// then `grant_type=refresh_token` with the refresh token it returned,
    /// falling back to the password when that is refused (Trustpilot
    /// business users: access tokens last 100 h, refresh tokens 30 days).
    BasicPassword {
        /// The Basic auth user (Trustpilot's API key).
        client_id: Secret,
        /// The Basic auth password (Trustpilot's API secret).
        client_secret: Secret,
        /// `username`.
        username: Secret,
        /// `password`.
        password: Secret,
    },
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523)
    /// with a freshly signed `assertion` per fetch (Google service accounts,
    /// `push::service_account`).
    JwtBearer(Arc<dyn JwtAssertion>),
}

/// Signs the assertion of a [`Grant::JwtBearer`] fetch.
pub trait JwtAssertion: std::fmt::Debug + Send + Sync {
    /// A new signed JWT. The error is shown to operators: it must not
    /// carry key material.
    fn assertion(&self) -> Result<String, String>;
}

/// The `grant_type` of RFC 7523.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A bearer token handed to a caller. `generation` identifies which fetch it
/// came from, so a caller whose token was refused can ask for a newer one
/// without forcing a second fetch when another worker already got it.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<Secret>,
    expires_at: Option<Instant>,
    generation: u64,
}

impl AccessToken {
    /// The token, for the `Authorization` header only. Never log it.
    pub fn secret(&self) -> &str {
        self.value.expose()
    }
    /// `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.value.expose())
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant is refused (`invalid_grant`): the refresh token (or the
    /// password) is revoked or expired for good. Retrying will not help; a
    /// person must grant consent again.
    #[error("token endpoint refused the grant, which needs new consent ({error}){}", description_suffix(.description))]
    GrantRefused {
        /// The OAuth `error` code.
        error: String,
        /// `error_description`, if any.
        description: String,
    },
    /// The client is refused (`invalid_client`, `unauthorized_client`): the
    /// client id or secret is wrong, or the client may not use this grant.
    /// Retrying will not help; a person must fix the config. Not a matter
    /// of consent: new consent with the same client would be refused too.
    #[error("token endpoint refused the client id/secret ({error}){}", description_suffix(.description))]
    ClientRefused {
        /// The OAuth `error` code.
        error: String,
        /// `error_description`, if any.
        description: String,
    },
    /// The endpoint answered with another error status (429, 5xx...).
    #[error("token endpoint answered HTTP {status}")]
    Http {
        /// The status.
        status: u16,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// No answer (connection, timeout).
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    /// 2xx but not a token.
    #[error("token endpoint sent an invalid answer: {0}")]
    InvalidResponse(String),
    /// The endpoint answered with a redirect, which a token request never
    /// follows (`crate::redirect`). Retryable: the endpoint may stop
    /// redirecting, and nothing was sent anywhere else meanwhile.
    #[error("token endpoint answered with a redirect: {0}")]
    Redirect(RedirectRefused),
}

fn description_suffix(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

impl TokenError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            TokenError::GrantRefused { .. } | TokenError::ClientRefused { .. }
        )
    }
    /// The OAuth error code when the grant or the client was refused.
    pub fn refused_code(&self) -> Option<&str> {
        match self {
            TokenError::GrantRefused { error, .. } | TokenError::ClientRefused { error, .. } => {
                Some(error)
            }
            _ => None,
        }
    }
}

/// A cached token source for one set of credentials.
pub struct TokenCache {
    grant: Grant,
    token_url: Url,
    http: reqwest::Client,
    // tokio's Mutex: it is held across the token request on purpose, so that
    // concurrent callers queue behind the one fetch instead of each fetching.
    current: tokio::sync::Mutex<Option<AccessToken>>,
    fetches: AtomicU64,
    // Who the tokens are for, in `review_sync_token_refreshes_total`
    // (platform, source); unlabelled caches (`check --online`) count nothing.
    metric: Option<(&'static str, Option<String>)>,
    // Per token request (connect to end of body). The shared pool has no
    // timeout of its own, so a cache whose caller does not bound the call
    // (the delivery worker) sets one here, or a hung token endpoint would
    // stall every delivery behind the lock on `current`.
    timeout: Option<Duration>,
    // The refresh token the last `BasicPassword` answer carried. Only read
    // and written by `fetch`, which runs with `current` locked, so a plain
    // mutex held for a clone is enough.
    refresh_token: std::sync::Mutex<Option<Secret>>,
}

impl TokenCache {
    /// A cache that fetches from `token_url` with `http` (which carries the timeout).
    pub fn new(grant: Grant, token_url: Url, http: reqwest::Client) -> TokenCache {
        TokenCache {
            grant,
            token_url,
            http,
            current: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
            metric: None,
            timeout: None,
            refresh_token: std::sync::Mutex::new(None),
        }
    }

    /// The token endpoint (for `check --online` messages: show it with
    /// [`crate::platforms::http::shown_url`], never with its query).
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// Counts the tokens fetched in the metrics as `platform` (`travtus`, or
    /// a source's kind) and, for a platform's credentials, `source`.
    pub fn labelled(mut self, platform: &'static str, source: Option<&str>) -> TokenCache {
        self.metric = Some((platform, source.map(str::to_owned)));
        self
    }

    /// Bounds each token request to `timeout`; past it the fetch fails as
    /// [`TokenError::Transport`] ("timed out"), which is retryable.
    pub fn with_timeout(mut self, timeout: Duration) -> TokenCache {
        self.timeout = Some(timeout);
        self
    }

    /// How many tokens were fetched from the endpoint so far (successfully).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A token that is not near expiry, fetching one if needed.
    pub async fn get(&self) -> Result<AccessToken, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && !near_expiry(token)
        {
            return Ok(token.clone());
        }
        let next_generation = current.as_ref().map_or(1, |t| t.generation + 1);
        let token = self.fetch(next_generation).await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// The API refused `rejected` (expired or invalid): returns a newer token,
    /// fetching one only if nobody else has since `rejected` was handed out.
    pub async fn renew(&self, rejected: &AccessToken) -> Result<AccessToken, TokenError> {
        if matches!(self.grant, Grant::Static(_)) {
            return Ok(rejected.clone());
        }
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && token.generation > rejected.generation
            && !near_expiry(token)
        {
            return Ok(token.clone());
        }
        let token = self.fetch(rejected.generation + 1).await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// Forgets the cached token (after a credential change).
    pub async fn clear(&self) {
        *self.current.lock().await = None;
    }

    async fn fetch(&self, generation: u64) -> Result<AccessToken, TokenError> {
        let form: Vec<(&str, &str)> = match &self.grant {
            Grant::BasicPassword {
                client_id,
                client_secret,
                username,
                password,
            } => {
                let basic = (client_id.expose(), client_secret.expose());
                let stored = self.stored_refresh_token();
                if let Some(refresh) = stored {
                    let form = [
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.expose()),
                    ];
                    match self.post_form(&form, Some(basic), generation).await {
                        Err(TokenError::GrantRefused { .. } | TokenError::ClientRefused { .. }) => {
                            // Expired (30 days) or revoked: log in again below.
                            tracing::debug!("refresh token refused; using the password grant");
                            self.store_refresh_token(None);
                        }
                        other => return other,
                    }
                }
                let form = [
                    ("grant_type", "password"),
                    ("username", username.expose()),
                    ("password", password.expose()),
                ];
                return self.post_form(&form, Some(basic), generation).await;
            }
            Grant::JwtBearer(signer) => {
                // A key that cannot sign will not sign on a retry either.
                let assertion =
                    signer
                        .assertion()
                        .map_err(|description| TokenError::ClientRefused {
                            error: "invalid_assertion".into(),
                            description,
                        })?;
                let form = [
                    ("grant_type", JWT_BEARER_GRANT),
                    ("assertion", assertion.as_str()),
                ];
                return self.post_form(&form, None, generation).await;
            }
            Grant::Static(secret) => {
                return Ok(AccessToken {
                    value: Arc::new(secret.clone()),
                    expires_at: None,
                    generation,
                });
            }
            Grant::ClientCredentials {
                client_id,
                client_secret,
            } => vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret.expose()),
            ],
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => vec![
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("client_secret", client_secret.expose()),
                ("refresh_token", refresh_token.expose()),
            ],
        };
        self.post_form(&form, None, generation).await
    }

    fn stored_refresh_token(&self) -> Option<Secret> {
        self.refresh_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn store_refresh_token(&self, token: Option<Secret>) {
        *self.refresh_token.lock().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// POSTs one token request (`basic`: HTTP Basic client credentials) and
    /// reads the token, keeping a `refresh_token` the answer carries.
    async fn post_form(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        generation: u64,
    ) -> Result<AccessToken, TokenError> {
        let started = Instant::now();
        let mut request = self.http.post(self.token_url.clone()).form(form);
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| TokenError::Transport(describe_transport(&e)))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(TokenError::Redirect(crate::redirect::refused(
                &self.token_url,
                status,
                response.headers(),
                crate::redirect::WHY_TOKEN,
            )));
        }
        let retry_after = crate::retry::retry_after_header(response.headers());
        let body = read_token_answer(&mut response).await?;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if !status.is_success() {
            let error = json.get("error").and_then(|v| v.as_str());
            let description = || {
                json.get("error_description")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            match error {
                Some(code @ "invalid_grant") => {
                    return Err(TokenError::GrantRefused {
                        error: code.to_owned(),
                        description: description(),
                    });
                }
                Some(code @ ("invalid_client" | "unauthorized_client")) => {
                    return Err(TokenError::ClientRefused {
                        error: code.to_owned(),
                        description: description(),
                    });
                }
                _ => {}
            }
            return Err(TokenError::Http {
                status: status.as_u16(),
                retry_after,
            });
        }
        let token = parse_token(&json, started, generation)?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        if let Some((platform, source)) = &self.metric {
            crate::metrics::token_fetched(platform, source.as_deref());
        }
        if matches!(self.grant, Grant::BasicPassword { .. })
            && let Some(refresh) = json
                .get("refresh_token")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        {
            self.store_refresh_token(Some(Secret::new(refresh)));
        }
        Ok(token)
    }
}

/// The most of a token endpoint's answer we read: a real one is a few
/// hundred bytes (a JWT at most a few kB); a broken or hostile endpoint must
/// not make us buffer without bound.
const MAX_TOKEN_ANSWER_BYTES: usize = 64 * 1024;

/// Reads the answer incrementally, refusing it past [`MAX_TOKEN_ANSWER_BYTES`].
async fn read_token_answer(response: &mut reqwest::Response) -> Result<Vec<u8>, TokenError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| TokenError::Transport(describe_transport(&e)))?
    {
        if body.len() + chunk.len() > MAX_TOKEN_ANSWER_BYTES {
            return Err(TokenError::InvalidResponse(format!(
                "answer larger than {MAX_TOKEN_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn near_expiry(token: &AccessToken) -> bool {
    token.expires_at.is_some_and(|at| Instant::now() >= at)
}

/// Reads `access_token` and `expires_in` (a number, or a string as
/// Trustpilot sends it). The stored expiry is already moved earlier by the
/// refresh margin, so `near_expiry` is a plain comparison.
fn parse_token(
    json: &serde_json::Value,
    requested_at: Instant,
    generation: u64,
) -> Result<AccessToken, TokenError> {
    let value = json
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| TokenError::InvalidResponse("no access_token".into()))?;
    let expires_in = match json.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let expires_at = expires_in
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .map(|secs| {
            let lifetime = Duration::from_secs_f64(secs.min(1e9));
            let margin = (lifetime / 4).min(MAX_REFRESH_MARGIN);
            // Count from when we asked, not when the answer came: the server's
            // clock started before the response reached us.
            requested_at + (lifetime - margin)
        });
    Ok(AccessToken {
        value: Arc::new(Secret::new(value)),
        expires_at,
        generation,
    })
}

/// A transport error in words, without the URL's query (which could carry a
/// key for some platforms).
pub fn describe_transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body broken"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_moved_earlier_by_a_quarter_or_a_minute() {
        let now = Instant::now();
        let short = parse_token(
            &serde_json::json!({"access_token": "a", "expires_in": 1}),
            now,
            1,
        )
        .expect("token");
        assert_eq!(short.expires_at, Some(now + Duration::from_millis(750)));
        let long = parse_token(
            &serde_json::json!({"access_token": "a", "expires_in": "3600"}),
            now,
            1,
        )
        .expect("token");
        assert_eq!(long.expires_at, Some(now + Duration::from_secs(3540)));
    }

    #[test]
    fn a_token_without_access_token_is_invalid() {
        let err = parse_token(&serde_json::json!({"expires_in": 5}), Instant::now(), 1);
        assert!(matches!(err, Err(TokenError::InvalidResponse(_))));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = parse_token(
            &serde_json::json!({"access_token": "s3cr3t"}),
            Instant::now(),
            1,
        )
        .expect("token");
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }
}
