//! A `yelp` source's keys, defaults and their checks; the platform's
//! registry entry; its sources in the sandbox's config.

use super::YelpClient;
use crate::config::keys::{Key, SourceKeys};
use crate::config::{Secret, SourceConfig};
use crate::platforms::registry::{Platform, SandboxGroups, Settings};
use crate::platforms::{SourceClient, path_segment_id};
use crate::quota::{QuotaScope, Quotas, ScopeKey};
use std::sync::Arc;
use url::Url;

/// The registry's entry.
pub(crate) static PLATFORM: Platform = Platform {
    kind: "yelp",
    keys: &[
        Key::secret("api_key"),
        Key::string("api_base_url"),
        Key::string("locale"),
    ],
    location_keys: &[],
    quota: super::quota::windows,
    observe: super::quota::observe,
    reconciles: false,
    coverage_note: Some(
        "Yelp returns at most 3 review excerpts per business (text cut at about 160 characters): this source cannot be complete",
    ),
    discovery_key: None,
    location_id,
    settings,
    sandbox,
};

/// The Yelp Fusion (Places API) host.
const DEFAULT_API_BASE_URL: &str = "https://api.yelp.com";

/// Settings of a `yelp` source (Yelp Fusion / Places API, business reviews).
#[derive(Debug, Clone)]
pub struct YelpConfig {
    /// `api_key`, sent as a bearer token.
    pub api_key: Secret,
    /// `api_base_url`, default `https://api.yelp.com`.
    pub api_base_url: Url,
    /// `locale`, e.g. `en_US`: Yelp then returns reviews in that language only.
    pub locale: Option<String>,
}

impl Settings for YelpConfig {
    fn client(
        &self,
        source: &SourceConfig,
        http: reqwest::Client,
        quotas: &Arc<Quotas>,
    ) -> Box<dyn SourceClient> {
        Box::new(YelpClient::new(source, self, http, quotas))
    }

    fn review_platform(&self) -> &str {
        super::wire::PLATFORM
    }

    fn urls(&self) -> Vec<&Url> {
        vec![&self.api_base_url]
    }

    /// The API key: its daily cap and per-second limit.
    fn quota_scope(&self) -> QuotaScope {
        QuotaScope::Source(ScopeKey::credential(
            PLATFORM.kind,
            "API key",
            self.api_key.expose(),
        ))
    }
}

/// The keys of a `yelp` source.
fn settings(keys: &mut SourceKeys<'_, '_>) -> Option<Arc<dyn Settings>> {
    let api_key = keys.required_secret("api_key");
    let api_base_url = keys.url("api_base_url", DEFAULT_API_BASE_URL);
    let locale = keys.language_tag("locale", '_');
    Some(Arc::new(YelpConfig {
        api_key: api_key?,
        api_base_url: api_base_url?,
        locale: locale?,
    }))
}

/// A business id or alias: one URL path segment.
fn location_id(id: &str) -> Result<(), String> {
    path_segment_id(id, id, "a Yelp business id or alias")
}

/// The sandbox's Yelp source, on the default budget (its key's).
fn sandbox(sb: &sandbox::Sandbox, groups: &mut SandboxGroups) -> String {
    let base = sb.base_url();
    let mut toml = format!(
        r#"
[[source]]
name = "sandbox-yelp"
kind = "yelp"
schedule = "0 0 * * * *"
api_key = "{yelp_key}"
api_base_url = "{base}/yelp"
"#,
        yelp_key = sandbox::YELP_API_KEY,
    );
    toml.push_str(&groups.locations(sb.yelp().business_ids()));
    toml
}
