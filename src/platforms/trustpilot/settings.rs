//! A `trustpilot` source's keys, defaults and their checks (the public
//! endpoint's API key, or the private one's business-user login); the
//! platform's registry entry; its sources in the sandbox's config.

use super::TrustpilotClient;
use crate::config::keys::{Key, SourceKeys};
use crate::config::{Secret, SourceConfig};
use crate::platforms::registry::{Platform, SandboxGroups, Settings};
use crate::platforms::{SourceClient, path_segment_id};
use crate::quota::{QuotaScope, Quotas, ScopeKey, Window};
use std::sync::Arc;
use url::Url;

/// The registry's entry.
pub(crate) static PLATFORM: Platform = Platform {
    kind: "trustpilot",
    keys: &[
        Key::secret("api_key"),
        Key::secret("api_secret"),
        Key::secret("username"),
        Key::secret("password"),
        Key::string("api_base_url"),
        Key::string("token_url"),
        Key::secret("webhook_verify_token"),
    ],
    location_keys: &[],
    quota,
    observe: crate::quota::headers::on_429,
    reconciles: true,
    coverage_note: None,
    discovery_key: None,
    location_id,
    settings,
    sandbox,
};

/// The Trustpilot API host.
const DEFAULT_API_BASE_URL: &str = "https://api.trustpilot.com";
/// Trustpilot's business-user token endpoint.
const DEFAULT_TOKEN_URL: &str =
    "https://api.trustpilot.com/v1/oauth/oauth-business-users-for-applications/accesstoken";
/// The keys that choose Trustpilot's private endpoint; all or none.
const LOGIN_KEYS: [&str; 3] = ["api_secret", "username", "password"];
/// Trustpilot asks for at most 833 calls per 5 minutes and 10,000 per hour
/// per API key
/// (documentation-apidocumentation.trustpilot.com/get-started/rate-limiting).
const PER_5_MINUTES: u32 = 833;
/// See [`PER_5_MINUTES`].
const PER_HOUR: u32 = 10_000;

/// Settings of a `trustpilot` source (Business Units reviews).
#[derive(Debug, Clone)]
pub struct TrustpilotConfig {
    /// `api_key`: the `apikey` header of the public endpoint, and the Basic
    /// auth user of the token endpoint.
    pub api_key: Secret,
    /// `api_base_url`, default `https://api.trustpilot.com`.
    pub api_base_url: Url,
    /// `api_secret` + `username` + `password`: read the private endpoint
    /// with a business-user token instead of the public one.
    pub business_login: Option<TrustpilotLogin>,
    /// `webhook_verify_token`: the secret its webhook subscription URL
    /// carries, when push is on.
    pub webhook: Option<super::TrustpilotWebhook>,
}

/// Trustpilot business-user credentials (OAuth password grant).
#[derive(Debug, Clone)]
pub struct TrustpilotLogin {
    /// `api_secret`, the Basic auth password of the token endpoint.
    pub api_secret: Secret,
    /// `username` of the business user.
    pub username: Secret,
    /// `password` of the business user.
    pub password: Secret,
    /// `token_url`, default
    /// `https://api.trustpilot.com/v1/oauth/oauth-business-users-for-applications/accesstoken`.
    pub token_url: Url,
}

impl Settings for TrustpilotConfig {
    fn client(
        &self,
        source: &SourceConfig,
        http: reqwest::Client,
        quotas: &Arc<Quotas>,
    ) -> Box<dyn SourceClient> {
        Box::new(TrustpilotClient::new(source, self, http, quotas))
    }

    fn review_platform(&self) -> &str {
        super::wire::PLATFORM
    }

    fn urls(&self) -> Vec<&Url> {
        let mut urls = vec![&self.api_base_url];
        if let Some(login) = &self.business_login {
            urls.push(&login.token_url);
        }
        urls
    }

    fn push(&self) -> Option<crate::push::SourcePush> {
        let hook: Arc<dyn crate::push::webhook::WebhookKind> = Arc::new(self.webhook.clone()?);
        Some(crate::push::SourcePush::Webhook(hook))
    }
    /// The API key (both endpoints count against it).
    fn quota_scope(&self) -> QuotaScope {
        QuotaScope::Source(ScopeKey::credential(
            PLATFORM.kind,
            "API key",
            self.api_key.expose(),
        ))
    }
}

/// The published quota of an API key.
fn quota() -> Vec<Window> {
    vec![
        Window::per_minutes(PER_5_MINUTES, 5),
        Window::per_hour(PER_HOUR),
    ]
}

/// The keys of a `trustpilot` source: the public endpoint with `api_key`,
/// or the private one when `api_secret`, `username` and `password` are all
/// given.
fn settings(keys: &mut SourceKeys<'_, '_>) -> Option<Arc<dyn Settings>> {
    let api_key = keys.required_secret("api_key");
    let api_base_url = keys.url("api_base_url", DEFAULT_API_BASE_URL);
    let login = login(keys);
    // Trustpilot signs nothing: the secret rides in the subscription URL
    // (`webhook.rs`), so a `webhook_app_secret` would check nothing.
    let webhook = keys.optional_secret("webhook_verify_token");
    Some(Arc::new(TrustpilotConfig {
        api_key: api_key?,
        api_base_url: api_base_url?,
        business_login: login?,
        webhook: webhook?.map(|secret| super::TrustpilotWebhook { secret }),
    }))
}

/// `api_secret` + `username` + `password` (+ `token_url`): all three or
/// none; `token_url` only with them. `Some(None)`: the public endpoint.
fn login(keys: &mut SourceKeys<'_, '_>) -> Option<Option<TrustpilotLogin>> {
    let written = LOGIN_KEYS.iter().filter(|key| keys.written(key)).count();
    if written == 0 {
        if let Some(span) = keys.key_span("token_url") {
            return keys.problem(
                &span,
                "`token_url` is only used with `api_secret`, `username` and `password` (the private reviews endpoint)",
            );
        }
        return Some(None);
    }
    if written < LOGIN_KEYS.len() {
        let missing: Vec<String> = LOGIN_KEYS
            .iter()
            .filter(|key| !keys.written(key))
            .map(|key| format!("`{key}`"))
            .collect();
        let span = LOGIN_KEYS
            .iter()
            .find_map(|key| keys.key_span(key))
            .unwrap_or_else(|| keys.source_span());
        return keys.problem(
            &span,
            format!(
                "`api_secret`, `username` and `password` go together (they log in to the private reviews endpoint); missing {}",
                missing.join(" and ")
            ),
        );
    }
    let api_secret = keys.optional_secret("api_secret");
    let username = keys.optional_secret("username");
    let password = keys.optional_secret("password");
    let token_url = keys.url("token_url", DEFAULT_TOKEN_URL);
    Some(Some(TrustpilotLogin {
        api_secret: api_secret??,
        username: username??,
        password: password??,
        token_url: token_url?,
    }))
}

/// A business unit id: one URL path segment.
fn location_id(id: &str) -> Result<(), String> {
    path_segment_id(id, id, "a Trustpilot business unit id")
}

/// The sandbox's Trustpilot source, on the private endpoint and the
/// default budget (its key's).
fn sandbox(sb: &sandbox::Sandbox, groups: &mut SandboxGroups) -> String {
    let base = sb.base_url();
    let mut toml = format!(
        r#"
[[source]]
name = "sandbox-trustpilot"
kind = "trustpilot"
schedule = "0 */30 * * * *"
api_key = "{tp_key}"
api_base_url = "{base}/trustpilot"
# The private endpoint, with a business-user token (drop these four lines
# for the public one):
api_secret = "{tp_secret}"
username = "{tp_user}"
password = "{tp_password}"
token_url = "{tp_token_url}"
"#,
        tp_key = sandbox::TRUSTPILOT_API_KEY,
        tp_secret = sandbox::TRUSTPILOT_API_SECRET,
        tp_user = sandbox::TRUSTPILOT_USERNAME,
        tp_password = sandbox::TRUSTPILOT_PASSWORD,
        tp_token_url = sb.trustpilot_token_url(),
    );
    toml.push_str(&groups.locations(sb.trustpilot().business_unit_ids()));
    toml
}
