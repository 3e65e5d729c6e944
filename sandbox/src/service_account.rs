//! Google's OAuth token endpoint for service accounts (served under
//! `/google-sa`): the JWT bearer grant of RFC 7523 as Google documents it
//! for server-to-server applications ("Using OAuth 2.0 for Server to Server
//! Applications", developers.google.com/identity/protocols/oauth2/service-account):
//! `POST /google-sa/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//! and `assertion=<JWT>`.
//!
//! The assertion is really verified: its RS256 signature against the public
//! key of the sandbox's test service account (a fixed key pair committed in
//! `sandbox/testdata/`, test data only), `iss` (the account's email), `aud`
//! (this token URL), `scope` (must grant Pub/Sub), and `iat`/`exp` (a token
//! of at most one hour, in a reasonable timeframe, 60 s of clock skew
//! allowed). Refusals use Google's OAuth error bodies (`invalid_grant` with
//! Google's descriptions, `invalid_scope`, `unsupported_grant_type`).
//!
//! Access tokens it issues are accepted by the Pub/Sub emulator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, errors::ErrorKind};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::server::{ConnectionKill, drop_connection};

/// The test service account's email (`client_email`, the JWT's `iss`).
pub const SERVICE_ACCOUNT_EMAIL: &str = "review-sync@sandbox-project.iam.gserviceaccount.com";

/// The test service account's key id (`private_key_id`, the JWT's `kid`).
pub const SERVICE_ACCOUNT_KEY_ID: &str = "5a4db1e5a1d0c0ffee5a4db1e5a1d0c0ffee0001";

/// The test service account's private key (PKCS#8 PEM). Test data: it
/// protects nothing but the sandbox.
pub const SERVICE_ACCOUNT_PRIVATE_KEY_PEM: &str =
    include_str!("../testdata/service_account_key.pem");

/// Another RSA key: an assertion signed with it must be refused.
pub const FORGED_PRIVATE_KEY_PEM: &str = include_str!("../testdata/forged_key.pem");

/// The public half of [`SERVICE_ACCOUNT_PRIVATE_KEY_PEM`].
const SERVICE_ACCOUNT_PUBLIC_KEY_PEM: &str = include_str!("../testdata/service_account_public.pem");

/// The Pub/Sub scope (or [`CLOUD_PLATFORM_SCOPE`]) an assertion must ask for.
pub const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";
/// The broad Cloud scope, which covers Pub/Sub too.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The grant type of RFC 7523.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Google refuses assertions that live longer than an hour.
const MAX_ASSERTION_LIFETIME_S: i64 = 3600;
/// Clock skew tolerated on `iat` and `exp`.
const LEEWAY_S: i64 = 60;

/// Path of the token endpoint under the sandbox's base URL.
pub(crate) const TOKEN_PATH: &str = "/google-sa/token";

/// Handle on the service-account token endpoint (cheap to clone).
#[derive(Clone)]
pub struct ServiceAccountEmulator {
    inner: Arc<Mutex<SaState>>,
    key: Arc<DecodingKey>,
    /// `http://IP:PORT/google-sa/token`: the `aud` assertions must carry.
    token_url: String,
    faults: Faults,
}

struct SaState {
    /// Issued access tokens and their expiry.
    tokens: HashMap<String, Instant>,
    lifetime: Duration,
    grants: u64,
    refusals: u64,
    /// Set by [`ServiceAccountEmulator::disable_account`]: every grant is refused.
    disabled: bool,
    /// The description of the last refusal, for tests that check why.
    last_refusal: Option<String>,
}

impl ServiceAccountEmulator {
    pub(crate) fn new(token_url: String, faults: &Faults) -> ServiceAccountEmulator {
        // The key is committed test data: failing to parse it is a sandbox bug.
        let key = DecodingKey::from_rsa_pem(SERVICE_ACCOUNT_PUBLIC_KEY_PEM.as_bytes())
            .expect("sandbox test public key parses");
        ServiceAccountEmulator {
            inner: Arc::new(Mutex::new(SaState {
                tokens: HashMap::new(),
                // Google's access tokens last an hour (`expires_in` 3599).
                lifetime: Duration::from_secs(3599),
                grants: 0,
                refusals: 0,
                disabled: false,
                last_refusal: None,
            })),
            key: Arc::new(key),
            token_url,
            faults: faults.scoped(Endpoint::SERVICE_ACCOUNT),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SaState> {
        self.inner
            .lock()
            .expect("service account emulator mutex poisoned")
    }

    /// The token URL (`token_uri` of the key file, `aud` of assertions).
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The test service account's key file, as the Cloud console downloads
    /// it, with `token_uri` pointing at this emulator.
    pub fn key_json(&self) -> String {
        key_json_with(SERVICE_ACCOUNT_PRIVATE_KEY_PEM, &self.token_url)
    }

    /// Access tokens issued so far.
    pub fn grants(&self) -> u64 {
        self.lock().grants
    }

    /// Grants refused so far (bad signature, claims, scope...).
    pub fn refusals(&self) -> u64 {
        self.lock().refusals
    }

    /// Why the last grant was refused (Google's `error_description`).
    pub fn last_refusal(&self) -> Option<String> {
        self.lock().last_refusal.clone()
    }

    /// The account was deleted or disabled: grants answer `invalid_grant`.
    pub fn disable_account(&self, disabled: bool) {
        self.lock().disabled = disabled;
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime;
    }

    /// Makes every issued access token expired.
    pub fn expire_all_tokens(&self) {
        let now = Instant::now();
        for expiry in self.lock().tokens.values_mut() {
            *expiry = now;
        }
    }

    /// The fault plan, scoped to the token endpoint.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub(crate) fn token_valid(&self, token: &str) -> bool {
        self.lock()
            .tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }
}

/// A service-account key file with this private key and token URI (the
/// fields the Cloud console writes; review-sync reads `client_email`,
/// `private_key`, `private_key_id` and `token_uri`).
pub fn key_json_with(private_key_pem: &str, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "sandbox-project",
        "private_key_id": SERVICE_ACCOUNT_KEY_ID,
        "private_key": private_key_pem,
        "client_email": SERVICE_ACCOUNT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/review-sync%40sandbox-project.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    })
    .to_string()
}

/// Routes relative to `/google-sa`.
pub(crate) fn router(emulator: ServiceAccountEmulator) -> Router {
    Router::new()
        .route("/token", post(token))
        .with_state(emulator)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn fault_body(status: StatusCode) -> Value {
    match status.as_u16() {
        429 => json!({"error": "rate_limit_exceeded", "error_description": "Rate limit exceeded."}),
        _ => json!({"error": "internal_failure", "error_description": "Backend Error"}),
    }
}

/// Why an assertion is refused: `(error, error_description)` as Google
/// words them.
type Refusal = (&'static str, String);

const TIMEFRAME: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";

async fn token(
    State(emulator): State<ServiceAccountEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fault = emulator.faults.take(Endpoint::ServiceAccountToken);
    match intercept(fault, fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != JWT_BEARER {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant}"),
        );
    }
    let Some(assertion) = form.get("assertion").filter(|a| !a.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    match emulator.check(assertion, host) {
        Ok(()) => {
            let mut state = emulator.lock();
            if state.disabled {
                state.refusals += 1;
                state.last_refusal = Some("Invalid grant: account not found".into());
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid grant: account not found",
                );
            }
            state.grants += 1;
            let token = format!("ya29.c.sandbox-sa-{}", uuid::Uuid::new_v4().simple());
            let lifetime = state.lifetime;
            state
                .tokens
                .insert(token.clone(), Instant::now() + lifetime);
            drop(state);
            Json(json!({
                "access_token": token,
                "expires_in": lifetime.as_secs().max(1),
                "token_type": "Bearer",
            }))
            .into_response()
        }
        Err((error, description)) => {
            {
                let mut state = emulator.lock();
                state.refusals += 1;
                state.last_refusal = Some(description.clone());
            }
            oauth_error(StatusCode::BAD_REQUEST, error, &description)
        }
    }
}

impl ServiceAccountEmulator {
    /// Verifies an assertion: signature, `iss`, `aud`, `iat`/`exp`, `scope`.
    fn check(&self, assertion: &str, host: &str) -> Result<(), Refusal> {
        let mut validation = Validation::new(Algorithm::RS256);
        // The URL the client was told (`token_uri`), or the same path on the
        // host it actually called (a sandbox served as `localhost:PORT`).
        let by_host = format!("http://{host}{TOKEN_PATH}");
        validation.set_audience(&[self.token_url.as_str(), by_host.as_str()]);
        validation.set_issuer(&[SERVICE_ACCOUNT_EMAIL]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        validation.leeway = LEEWAY_S as u64;
        let data = decode::<Value>(assertion, &self.key, &validation).map_err(|e| {
            let description = match e.kind() {
                ErrorKind::InvalidSignature => "Invalid JWT Signature.".to_owned(),
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => TIMEFRAME.to_owned(),
                ErrorKind::InvalidAudience => format!(
                    "Invalid JWT: Failed audience check. The right audience is {}",
                    self.token_url
                ),
                ErrorKind::InvalidIssuer => "Invalid grant: account not found".to_owned(),
                ErrorKind::InvalidAlgorithm => {
                    "Invalid JWT: the signing algorithm must be RS256.".to_owned()
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("Invalid JWT: missing claim {claim}.")
                }
                _ => format!("Invalid JWT: {e}"),
            };
            ("invalid_grant", description)
        })?;
        let claims = data.claims;
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        let (Some(iat), Some(exp)) = (number("iat"), number("exp")) else {
            return Err(("invalid_grant", TIMEFRAME.to_owned()));
        };
        let now = chrono::Utc::now().timestamp();
        if iat > now + LEEWAY_S || exp <= iat || exp - iat > MAX_ASSERTION_LIFETIME_S {
            return Err(("invalid_grant", TIMEFRAME.to_owned()));
        }
        let scopes = claims.get("scope").and_then(Value::as_str).unwrap_or("");
        if !scopes
            .split_whitespace()
            .any(|s| s == PUBSUB_SCOPE || s == CLOUD_PLATFORM_SCOPE)
        {
            return Err((
                "invalid_scope",
                "Invalid OAuth scope or ID token audience provided.".to_owned(),
            ));
        }
        Ok(())
    }
}
