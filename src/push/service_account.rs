//! A Google service-account key (the JSON file the Cloud console
//! downloads) and the assertion of the JWT bearer grant (RFC 7523) that
//! trades it for an access token, as Google's "Using OAuth 2.0 for Server
//! to Server Applications" describes: an RS256-signed JWT with `iss` = the
//! account's `client_email`, `scope`, `aud` = the key's `token_uri`, `iat`
//! and `exp` (at most an hour later), POSTed as
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=...`.
//!
//! Token caching, refresh before expiry and single-flight fetching are
//! [`crate::oauth::TokenCache`]'s, through [`crate::oauth::Grant::JwtBearer`];
//! build it with [`ServiceAccountKey::token_cache`].
//!
//! Signing uses `jsonwebtoken` on aws-lc-rs, the crypto library rustls
//! already brings in for reqwest (ARCHITECTURE.md, dependencies).
//!
//! **Invariant:** the private key never leaves this type: `Debug` redacts
//! it, errors never quote it, and the only thing derived from it is a
//! signature.

use crate::oauth::{Grant, JwtAssertion, TokenCache};
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// The scope that lets the token pull and acknowledge.
pub const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";

/// How long an assertion is valid: Google's maximum.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// A parsed service-account key.
pub struct ServiceAccountKey {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: Url,
    key: EncodingKey,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri.as_str())
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// Why a key file cannot be used. No variant carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceAccountError {
    /// Not JSON.
    #[error("service-account key is not JSON (line {line}, column {column}): {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde_json says (never a quote of the input).
        message: String,
    },
    /// A required field is missing or not a string.
    #[error("service-account key has no `{0}` string")]
    Missing(&'static str),
    /// `type` names another kind of credential file.
    #[error(
        "credential file is of type `{0}`, not `service_account` (an OAuth client or user credential cannot sign the JWT bearer grant)"
    )]
    WrongType(String),
    /// `private_key` is not an RSA private key in PEM.
    #[error("service-account key's `private_key` is not an RSA private key in PEM: {0}")]
    BadPrivateKey(String),
    /// `token_uri` is not a URL we may send a credential to.
    #[error("service-account key's `token_uri` {uri:?} is unusable: {reason}")]
    BadTokenUri {
        /// The value.
        uri: String,
        /// Why.
        reason: String,
    },
    /// Signing failed (the build has no crypto provider, or the key was
    /// refused by it).
    #[error("cannot sign the JWT assertion: {0}")]
    Signing(String),
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl ServiceAccountKey {
    /// Reads a key file's text. Checks every field it uses, and that the
    /// key can sign, so a bad file is found when the config is loaded.
    pub fn from_json(text: &str) -> Result<ServiceAccountKey, ServiceAccountError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ServiceAccountError::Json {
                line: e.line(),
                column: e.column(),
                message: describe_json_error(&e),
            })?;
        let field = |name: &'static str| -> Result<&str, ServiceAccountError> {
            value
                .get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.trim().is_empty())
                .ok_or(ServiceAccountError::Missing(name))
        };
        if let Some(kind) = value.get("type").and_then(|v| v.as_str())
            && kind != "service_account"
        {
            return Err(ServiceAccountError::WrongType(kind.to_owned()));
        }
        let client_email = field("client_email")?.trim().to_owned();
        let pem = field("private_key")?;
        let token_uri = field("token_uri")?.trim();
        let token_uri = check_token_uri(token_uri)?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| ServiceAccountError::BadPrivateKey(e.to_string()))?;
        let private_key_id = value
            .get("private_key_id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let parsed = ServiceAccountKey {
            client_email,
            private_key_id,
            token_uri,
            key,
        };
        // A PEM that parses may still not be a usable RSA key.
        parsed.assertion_at(PUBSUB_SCOPE, SystemTime::now())?;
        Ok(parsed)
    }

    /// `client_email`.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// `token_uri`: where the assertion is sent (and its `aud`).
    pub fn token_uri(&self) -> &Url {
        &self.token_uri
    }

    /// The signed assertion for `scope`, issued at `now`.
    pub fn assertion_at(
        &self,
        scope: &str,
        now: SystemTime,
    ) -> Result<String, ServiceAccountError> {
        if CryptoProvider::try_get_default().is_none() {
            return Err(ServiceAccountError::Signing(
                "no jsonwebtoken crypto provider in this build".into(),
            ));
        }
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ServiceAccountError::Signing("the clock is before 1970".into()))?
            .as_secs();
        let claims = Claims {
            iss: &self.client_email,
            scope,
            aud: self.token_uri.as_str(),
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| ServiceAccountError::Signing(e.to_string()))
    }

    /// A token cache that fetches Pub/Sub tokens with this key from its
    /// `token_uri`, over `http`.
    pub fn token_cache(self, http: reqwest::Client) -> TokenCache {
        let token_uri = self.token_uri.clone();
        let signer = PubSubAssertion { key: self };
        TokenCache::new(Grant::JwtBearer(Arc::new(signer)), token_uri, http)
    }
}

/// The key, signing assertions for the Pub/Sub scope.
#[derive(Debug)]
struct PubSubAssertion {
    key: ServiceAccountKey,
}

impl JwtAssertion for PubSubAssertion {
    fn assertion(&self) -> Result<String, String> {
        self.key
            .assertion_at(PUBSUB_SCOPE, SystemTime::now())
            .map_err(|e| e.to_string())
    }
}

/// serde_json's message without the position (given apart) and without
/// any quoted input, which could be part of the key.
fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "unreadable".into(),
        Category::Syntax => "syntax error".into(),
        Category::Data => "unexpected value".into(),
        Category::Eof => "unexpected end of file".into(),
    }
}

/// The same rule as every configured URL: https, or http to a loopback
/// host (the sandbox); no credentials in it.
fn check_token_uri(raw: &str) -> Result<Url, ServiceAccountError> {
    let bad = |reason: &str| ServiceAccountError::BadTokenUri {
        uri: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it carries credentials"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(bad("plain http is only allowed to a loopback host")),
        _ => Err(bad("not an http(s) URL")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    fn key_json(token_uri: &str) -> String {
        sandbox::service_account_key_json(sandbox::SERVICE_ACCOUNT_PRIVATE_KEY_PEM, token_uri)
    }

    #[test]
    fn the_assertion_carries_the_claims_google_checks() {
        let key = ServiceAccountKey::from_json(&key_json("https://oauth2.googleapis.com/token"))
            .expect("key parses");
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwt = key.assertion_at(PUBSUB_SCOPE, now).expect("signs");
        let header = jsonwebtoken::decode_header(&jwt).expect("header");
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(sandbox::SERVICE_ACCOUNT_KEY_ID));
        // Verified with the public key derived from the test key pair.
        let public = include_str!("../../sandbox/testdata/service_account_public.pem");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.set_audience(&["https://oauth2.googleapis.com/token"]);
        validation.set_issuer(&[sandbox::SERVICE_ACCOUNT_EMAIL]);
        let data = decode::<serde_json::Value>(
            &jwt,
            &DecodingKey::from_rsa_pem(public.as_bytes()).expect("public key"),
            &validation,
        )
        .expect("signature and claims verify");
        let claims = data.claims;
        assert_eq!(claims["scope"], PUBSUB_SCOPE);
        assert_eq!(claims["iat"], 1_800_000_000u64);
        assert_eq!(claims["exp"], 1_800_003_600u64);
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = ServiceAccountKey::from_json(&key_json("https://oauth2.googleapis.com/token"))
            .expect("key parses");
        let shown = format!("{key:?}");
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains("PRIVATE KEY"));
        let pem_body = sandbox::SERVICE_ACCOUNT_PRIVATE_KEY_PEM
            .lines()
            .nth(1)
            .expect("pem line");
        assert!(!shown.contains(pem_body));
    }

    #[test]
    fn bad_files_say_which_field_is_wrong() {
        let good: serde_json::Value =
            serde_json::from_str(&key_json("https://oauth2.googleapis.com/token")).expect("json");
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[field] = value;
            ServiceAccountKey::from_json(&v.to_string()).expect_err("refused")
        };
        assert_eq!(
            with("client_email", serde_json::Value::Null),
            ServiceAccountError::Missing("client_email")
        );
        assert_eq!(
            with("token_uri", serde_json::json!(7)),
            ServiceAccountError::Missing("token_uri")
        );
        assert_eq!(
            with("type", serde_json::json!("authorized_user")),
            ServiceAccountError::WrongType("authorized_user".into())
        );
        assert!(matches!(
            with(
                "private_key",
                serde_json::json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            ),
            ServiceAccountError::BadPrivateKey(_)
        ));
        assert!(matches!(
            with(
                "token_uri",
                serde_json::json!("http://oauth2.example.com/token")
            ),
            ServiceAccountError::BadTokenUri { .. }
        ));
        assert!(matches!(
            with(
                "token_uri",
                serde_json::json!("https://u:p@oauth2.example.com/token")
            ),
            ServiceAccountError::BadTokenUri { .. }
        ));
        // Loopback http is the sandbox.
        assert!(ServiceAccountKey::from_json(&key_json("http://127.0.0.1:9/token")).is_ok());
    }

    #[test]
    fn a_json_error_never_quotes_the_file() {
        let text = r#"{"private_key": "-----BEGIN PRIVATE KEY-----\nSECRETSTUFF" oops}"#;
        let err = ServiceAccountKey::from_json(text).expect_err("not JSON");
        assert!(matches!(err, ServiceAccountError::Json { line: 1, .. }));
        assert!(!err.to_string().contains("SECRETSTUFF"));
    }
}
