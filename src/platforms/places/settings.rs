//! A `google_places` source's keys, defaults and their checks; the
//! platform's registry entry; its sources in the sandbox's config.

use super::PlacesClient;
use crate::config::keys::{Key, SourceKeys};
use crate::config::{Secret, SourceConfig};
use crate::platforms::registry::{Platform, SandboxGroups, Settings};
use crate::platforms::{SourceClient, path_segment_id};
use crate::quota::{QuotaScope, Quotas, ScopeKey, Window};
use std::sync::Arc;
use url::Url;

/// The registry's entry.
pub(crate) static PLATFORM: Platform = Platform {
    kind: "google_places",
    keys: &[
        Key::secret("api_key"),
        Key::string("api_base_url"),
        Key::string("language_code"),
    ],
    location_keys: &[],
    quota,
    observe: crate::quota::headers::on_429,
    reconciles: false,
    coverage_note: Some(
        "Google Places returns at most 5 reviews per place, chosen by relevance: this source cannot be complete",
    ),
    discovery_key: None,
    location_id,
    settings,
    sandbox,
};

/// The Places API (New) host.
const DEFAULT_API_BASE_URL: &str = "https://places.googleapis.com";
/// Places API (New): quotas are per minute, per method, per project
/// (developers.google.com/maps/documentation/places/web-service/usage-and-billing);
/// the Cloud Console shows 600 per minute for Place Details (New) by default.
const PER_MINUTE: u32 = 600;

/// Settings of a `google_places` source (Places API (New), Place Details).
#[derive(Debug, Clone)]
pub struct PlacesConfig {
    /// `api_key`, sent as `X-Goog-Api-Key`.
    pub api_key: Secret,
    /// `api_base_url`, default `https://places.googleapis.com`.
    pub api_base_url: Url,
    /// `language_code`: the `languageCode` asked for (translations come in
    /// this language; the original text is sent whatever it is).
    pub language_code: Option<String>,
}

impl Settings for PlacesConfig {
    fn client(
        &self,
        source: &SourceConfig,
        http: reqwest::Client,
        quotas: &Arc<Quotas>,
    ) -> Box<dyn SourceClient> {
        Box::new(PlacesClient::new(source, self, http, quotas))
    }

    fn review_platform(&self) -> &str {
        super::wire::PLATFORM
    }

    fn urls(&self) -> Vec<&Url> {
        vec![&self.api_base_url]
    }

    /// The API key (its project).
    fn quota_scope(&self) -> QuotaScope {
        QuotaScope::Source(ScopeKey::credential(
            PLATFORM.kind,
            "API key",
            self.api_key.expose(),
        ))
    }
}

/// The published quota of an API key's project.
fn quota() -> Vec<Window> {
    vec![Window::per_minute(PER_MINUTE)]
}

/// The keys of a `google_places` source.
fn settings(keys: &mut SourceKeys<'_, '_>) -> Option<Arc<dyn Settings>> {
    let api_key = keys.required_secret("api_key");
    let api_base_url = keys.url("api_base_url", DEFAULT_API_BASE_URL);
    let language_code = keys.language_tag("language_code", '-');
    Some(Arc::new(PlacesConfig {
        api_key: api_key?,
        api_base_url: api_base_url?,
        language_code: language_code?,
    }))
}

/// A place id, or its resource name `places/{id}`.
fn location_id(id: &str) -> Result<(), String> {
    let bare = id.strip_prefix("places/").unwrap_or(id);
    path_segment_id(
        bare,
        id,
        "a Google place id such as \"ChIJN1t_tDeuEmsRUsoyG83frY4\"",
    )
}

/// The sandbox's Places source, on the default budget (its key's).
fn sandbox(sb: &sandbox::Sandbox, groups: &mut SandboxGroups) -> String {
    let base = sb.base_url();
    let mut toml = format!(
        r#"
[[source]]
name = "sandbox-places"
kind = "google_places"
schedule = "0 0 * * * *"
api_key = "{places_key}"
api_base_url = "{base}/places"
"#,
        places_key = sandbox::PLACES_API_KEY,
    );
    toml.push_str(&groups.locations(sb.places().place_ids()));
    toml
}
