//! A `facebook` source's keys (and its locations' `access_token`),
//! defaults and their checks; the platform's registry entry; its sources in
//! the sandbox's config.

use super::FacebookClient;
use crate::config::keys::{Field, Key, SourceKeys};
use crate::config::{Secret, SourceConfig};
use crate::domain::LocationId;
use crate::platforms::registry::{Platform, SandboxGroups, Settings};
use crate::platforms::{SourceClient, path_segment_id};
use crate::quota::{QuotaScope, Quotas, ScopeKey};
use std::collections::BTreeMap;
use std::sync::Arc;
use url::Url;

/// The registry's entry.
pub(crate) static PLATFORM: Platform = Platform {
    kind: "facebook",
    keys: &[
        Key::secret("access_token"),
        Key::string("graph_version"),
        Key::string("api_base_url"),
        Key::secret("webhook_app_secret"),
        Key::secret("webhook_verify_token"),
    ],
    location_keys: &[Key::secret("access_token")],
    quota: super::quota::windows,
    observe: super::quota::observe,
    reconciles: true,
    coverage_note: Some(
        "at risk: Graph v22.0+ removed the ratings edge; this source works only while Meta serves the pinned graph_version",
    ),
    discovery_key: None,
    location_id,
    settings,
    sandbox,
};

/// The Graph API host.
const DEFAULT_API_BASE_URL: &str = "https://graph.facebook.com";
/// The newest Graph version that still serves the Page ratings edge: from
/// v22.0 on, Graph answers it with error 12 (Recommendation reference).
const DEFAULT_GRAPH_VERSION: &str = "v21.0";
/// The first Graph major version without the ratings edge.
const FIRST_GRAPH_VERSION_WITHOUT_RATINGS: u32 = 22;

/// Settings of a `facebook` source (Graph API Page ratings).
#[derive(Debug, Clone)]
pub struct FacebookConfig {
    /// `access_token` of the source: the Page access token of every location
    /// that has none of its own.
    pub access_token: Option<Secret>,
    /// `[[source.location]] access_token`, by location id: wins over the
    /// source's. Validation guarantees every location has one or the other.
    pub location_tokens: BTreeMap<LocationId, Secret>,
    /// `graph_version`, e.g. `v21.0` (default); always below `v22.0`.
    pub graph_version: String,
    /// `api_base_url`, default `https://graph.facebook.com`.
    pub api_base_url: Url,
    /// `webhook_app_secret` and `webhook_verify_token`: its Page webhooks,
    /// when push is on.
    pub webhook: Option<super::FacebookWebhook>,
}

impl FacebookConfig {
    /// The Page access token for `location`: its own, else the source's.
    pub fn token_for(&self, location: &LocationId) -> Option<&Secret> {
        self.location_tokens
            .get(location)
            .or(self.access_token.as_ref())
    }
}

impl Settings for FacebookConfig {
    fn client(
        &self,
        source: &SourceConfig,
        http: reqwest::Client,
        quotas: &Arc<Quotas>,
    ) -> Box<dyn SourceClient> {
        Box::new(FacebookClient::new(source, self, http, quotas))
    }

    fn review_platform(&self) -> &str {
        super::wire::PLATFORM
    }

    fn urls(&self) -> Vec<&Url> {
        vec![&self.api_base_url]
    }

    fn push(&self) -> Option<crate::push::SourcePush> {
        let hook: Arc<dyn crate::push::webhook::WebhookKind> = Arc::new(self.webhook.clone()?);
        Some(crate::push::SourcePush::Webhook(hook))
    }
    /// Each Page: Business Use Case limits of Page tokens count per Page,
    /// whoever's token reads it.
    fn quota_scope(&self) -> QuotaScope {
        QuotaScope::PerLocation(page_scope)
    }
}

/// The scope of Page `id`.
fn page_scope(id: &str) -> ScopeKey {
    ScopeKey::location(PLATFORM.kind, "Page", id)
}

/// The keys of a `facebook` source: a Page access token for every location
/// (its own, else the source's) and a Graph version that still serves
/// ratings.
fn settings(keys: &mut SourceKeys<'_, '_>) -> Option<Arc<dyn Settings>> {
    let access_token = keys.optional_secret("access_token");
    let graph_version = match keys.string("graph_version") {
        Some(field) => graph_version(keys, field),
        None => Some(DEFAULT_GRAPH_VERSION.to_owned()),
    };
    let api_base_url = keys.url("api_base_url", DEFAULT_API_BASE_URL);
    let source_has_token = keys.written("access_token");
    let mut location_tokens = BTreeMap::new();
    let mut tokens_ok = true;
    for (index, location) in keys.locations().into_iter().enumerate() {
        match keys.location_secret(&location, "access_token") {
            Some(Some(token)) => {
                if let Some(id) = location.id() {
                    location_tokens.insert(LocationId::new(id), token);
                }
            }
            None => tokens_ok = false,
            Some(None) if source_has_token || location.written("access_token") => {}
            Some(None) => {
                let label = match location.id() {
                    Some(id) => format!("{id:?}"),
                    None => format!("#{}", index + 1),
                };
                let message = format!(
                    "location {label} has no access_token: set a Page access token on the location, or `access_token` on the source"
                );
                keys.problem::<()>(&location.span(), message);
                tokens_ok = false;
            }
        }
    }
    let webhook = crate::push::source::signed_webhook_keys(keys);
    let access_token = access_token?;
    tokens_ok.then_some(())?;
    Some(Arc::new(FacebookConfig {
        access_token,
        location_tokens,
        graph_version: graph_version?,
        api_base_url: api_base_url?,
        webhook: webhook?.map(|(app_secret, verify_token)| super::FacebookWebhook {
            app_secret,
            verify_token,
        }),
    }))
}

/// `graph_version`: `vMAJOR.MINOR`, below v22.0.
fn graph_version(keys: &mut SourceKeys<'_, '_>, field: &Field<String>) -> Option<String> {
    let value = field.value.as_str();
    let parsed = value.strip_prefix('v').and_then(|rest| {
        let (major, minor) = rest.split_once('.')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 3 && s.chars().all(|c| c.is_ascii_digit());
        (digits(major) && digits(minor)).then(|| major.parse::<u32>().ok())?
    });
    match parsed {
        None => keys.problem(
            &field.span,
            format!(
                "graph_version: {value:?} is not a Graph API version such as \"{DEFAULT_GRAPH_VERSION}\""
            ),
        ),
        Some(major) if major >= FIRST_GRAPH_VERSION_WITHOUT_RATINGS => keys.problem(
            &field.span,
            format!(
                "graph_version: {value} cannot read Page ratings: from v{FIRST_GRAPH_VERSION_WITHOUT_RATINGS}.0 on, Graph answers the ratings edge with error 12 (deprecated); pin a version below v{FIRST_GRAPH_VERSION_WITHOUT_RATINGS}.0, e.g. \"{DEFAULT_GRAPH_VERSION}\""
            ),
        ),
        Some(_) => Some(value.to_owned()),
    }
}

/// A Page id: one URL path segment.
fn location_id(id: &str) -> Result<(), String> {
    path_segment_id(id, id, "a Facebook Page id")
}

/// The sandbox's Facebook source, on the default budgets (each Page's).
fn sandbox(sb: &sandbox::Sandbox, groups: &mut SandboxGroups) -> String {
    let base = sb.base_url();
    let mut toml = format!(
        r#"
[[source]]
name = "sandbox-facebook"
kind = "facebook"
schedule = "0 0 * * * *"
access_token = "{fb_token}"
graph_version = "v21.0"
api_base_url = "{base}/facebook"
"#,
        fb_token = sandbox::FACEBOOK_ACCESS_TOKEN,
    );
    toml.push_str(&groups.locations(sb.facebook().page_ids()));
    toml
}
