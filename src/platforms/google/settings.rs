//! A `google_business_profile` source's keys, defaults and their checks;
//! the platform's registry entry; its sources in the sandbox's config.

use super::GoogleClient;
use crate::config::keys::{Key, SourceKeys};
use crate::config::{Secret, SourceConfig};
use crate::platforms::SourceClient;
use crate::platforms::registry::{Platform, SandboxGroups, Settings};
use crate::quota::plan::{PassCost, PassKind};
use crate::quota::{QuotaScope, Quotas, ScopeKey, Window};
use std::sync::Arc;
use url::Url;

/// The registry's entry.
pub(crate) static PLATFORM: Platform = Platform {
    kind: "google_business_profile",
    keys: &[
        Key::string("client_id"),
        Key::secret("client_secret"),
        Key::secret("refresh_token"),
        Key::string("api_base_url"),
        Key::string("token_url"),
        Key::list("discover_accounts"),
        Key::string("group_external_ref_from"),
        Key::string("business_information_base_url"),
        Key::integer("batch_size"),
        Key::string("push_subscription"),
        Key::string("pubsub_base_url"),
        Key::secret("push_credentials"),
        Key::string("notifications_base_url"),
    ],
    location_keys: &[],
    quota,
    observe: crate::quota::headers::on_429,
    reconciles: true,
    coverage_note: None,
    discovery_key: Some("discover_accounts"),
    location_id,
    settings,
    sandbox,
};

/// Google Business Profile's API host.
const DEFAULT_API_BASE_URL: &str = "https://mybusiness.googleapis.com";
/// Google's OAuth2 token endpoint.
const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's Business Information API host (location discovery).
const DEFAULT_BUSINESS_INFORMATION_BASE_URL: &str =
    "https://mybusinessbusinessinformation.googleapis.com";
/// Google Business Profile's published default quota: 300 requests per
/// minute per Cloud project (developers.google.com/my-business/content/limits),
/// that is per OAuth client; the v4 reviews methods and the Business
/// Information listing are assumed to share it.
const PER_MINUTE: u32 = 300;
/// `batch_size`: locations per `batchGetReviews` call, by default and at
/// most (the two caps the docs have given; see the client's notes).
const DEFAULT_BATCH_SIZE: u32 = 50;
const MAX_BATCH_SIZE: u32 = 200;
/// The values `group_external_ref_from` accepts.
const GROUP_FROM_VALUES: &str = "\"store_code\"";

/// Settings of a `google_business_profile` source.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// `client_id` of the OAuth client.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: Secret,
    /// `refresh_token` granted with `access_type=offline`.
    pub refresh_token: Secret,
    /// `api_base_url`, default `https://mybusiness.googleapis.com`.
    pub api_base_url: Url,
    /// `token_url`, default `https://oauth2.googleapis.com/token`.
    pub token_url: Url,
    /// `discover_accounts`: accounts (`accounts/{id}`) whose every location
    /// is listed on each pass. Empty when the source does not discover.
    pub discover_accounts: Vec<String>,
    /// `group_external_ref_from`: how a discovered location maps to a group.
    /// Always set when `discover_accounts` is not empty.
    pub group_external_ref_from: Option<GroupFrom>,
    /// `business_information_base_url`, default
    /// `https://mybusinessbusinessinformation.googleapis.com`.
    pub business_information_base_url: Url,
    /// `batch_size`: locations per batch read of an incremental pass
    /// (1..=200, default 50); 1 turns batch reads off.
    pub batch_size: u32,
    /// `push_subscription` (+ `pubsub_base_url`, `push_credentials`): its
    /// Business Profile notifications, when push is on.
    pub push: Option<crate::push::PubSubSettings>,
    /// `notifications_base_url`, default
    /// `https://mybusinessnotifications.googleapis.com`: where `check
    /// --online --set-notifications` sets the accounts' notification
    /// setting (only read with `push_subscription`).
    pub notifications_base_url: Url,
}

/// `group_external_ref_from`: what names a discovered location's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupFrom {
    /// `"store_code"`: the location's store code is the external reference
    /// of its Travtus group.
    StoreCode,
}

impl Settings for GoogleConfig {
    fn client(
        &self,
        source: &SourceConfig,
        http: reqwest::Client,
        quotas: &Arc<Quotas>,
    ) -> Box<dyn SourceClient> {
        Box::new(GoogleClient::new(source, self, http, quotas))
    }

    fn review_platform(&self) -> &str {
        super::wire::PLATFORM
    }

    fn discovers(&self) -> bool {
        !self.discover_accounts.is_empty()
    }

    /// The Cloud project of the OAuth client: every source with this
    /// `client_id` (and its discovery) shares it.
    fn quota_scope(&self) -> QuotaScope {
        QuotaScope::Source(ScopeKey::credential(
            PLATFORM.kind,
            "OAuth client",
            &self.client_id,
        ))
    }

    /// An incremental pass reads the locations with a mark by
    /// `batchGetReviews`, `batch_size` at a time (a reconciliation lists
    /// each location).
    fn pass_cost(&self, kind: PassKind) -> PassCost {
        match kind {
            PassKind::Incremental if self.batch_size > 1 => PassCost::Batched {
                batch: self.batch_size,
            },
            _ => PassCost::PerLocation(1),
        }
    }
    fn urls(&self) -> Vec<&Url> {
        let mut urls = vec![
            &self.api_base_url,
            &self.token_url,
            &self.business_information_base_url,
            &self.notifications_base_url,
        ];
        if let Some(push) = &self.push {
            urls.extend(push.urls());
        }
        urls
    }

    fn push(&self) -> Option<crate::push::SourcePush> {
        self.push
            .clone()
            .map(|push| crate::push::SourcePush::PubSub(Box::new(push)))
    }

    /// The Business Profile Notifications API, with the source's own
    /// OAuth client (the Pub/Sub credentials may be another identity's).
    fn push_notifications(&self) -> Option<crate::push::NotificationSettings> {
        self.push.as_ref()?;
        Some(crate::push::NotificationSettings {
            base_url: self.notifications_base_url.clone(),
            grant: crate::oauth::Grant::RefreshToken {
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.clone(),
                refresh_token: self.refresh_token.clone(),
            },
            token_url: self.token_url.clone(),
            accounts: self.discover_accounts.clone(),
        })
    }
}

/// The published quota of an OAuth client's project.
fn quota() -> Vec<Window> {
    vec![Window::per_minute(PER_MINUTE)]
}

/// The keys of a `google_business_profile` source.
fn settings(keys: &mut SourceKeys<'_, '_>) -> Option<Arc<dyn Settings>> {
    let client_id = keys.required_string("client_id");
    let client_secret = keys.required_secret("client_secret");
    let refresh_token = keys.required_secret("refresh_token");
    let api_base_url = keys.url("api_base_url", DEFAULT_API_BASE_URL);
    let token_url = keys.url("token_url", DEFAULT_TOKEN_URL);
    let discovery = discovery(keys);
    let business_information_base_url = keys.url(
        "business_information_base_url",
        DEFAULT_BUSINESS_INFORMATION_BASE_URL,
    );
    let batch_size = batch_size(keys);
    let push = crate::push::source::pubsub_keys(keys, || {
        Some(crate::push::PubSubCredentials::SourceOAuth {
            token_url: token_url.clone()?,
            client_id: client_id.clone()?,
            client_secret: client_secret.clone()?,
            refresh_token: refresh_token.clone()?,
        })
    });
    let notifications_base_url = notifications_base_url(keys, push.as_ref());
    let (discover_accounts, group_external_ref_from) = discovery?;
    Some(Arc::new(GoogleConfig {
        client_id: client_id?,
        client_secret: client_secret?,
        refresh_token: refresh_token?,
        api_base_url: api_base_url?,
        token_url: token_url?,
        discover_accounts,
        group_external_ref_from,
        business_information_base_url: business_information_base_url?,
        batch_size: batch_size?,
        push: push?,
        notifications_base_url: notifications_base_url?,
    }))
}

/// `notifications_base_url`: refused without `push_subscription`, where it
/// would do nothing.
fn notifications_base_url(
    keys: &mut SourceKeys<'_, '_>,
    push: Option<&Option<crate::push::PubSubSettings>>,
) -> Option<Url> {
    if matches!(push, Some(None))
        && let Some(span) = keys.key_span("notifications_base_url")
    {
        return keys.problem(
            &span,
            "`notifications_base_url` is only used with `push_subscription` (by `check --online --set-notifications`)",
        );
    }
    keys.url(
        "notifications_base_url",
        crate::push::notifications::DEFAULT_NOTIFICATIONS_BASE_URL,
    )
}

/// `batch_size`, 1..=[`MAX_BATCH_SIZE`], default [`DEFAULT_BATCH_SIZE`].
fn batch_size(keys: &mut SourceKeys<'_, '_>) -> Option<u32> {
    let Some(field) = keys.integer("batch_size") else {
        return (!keys.written("batch_size")).then_some(DEFAULT_BATCH_SIZE);
    };
    match u32::try_from(field.value) {
        Ok(size) if (1..=MAX_BATCH_SIZE).contains(&size) => Some(size),
        _ => {
            let message = format!(
                "batch_size: must be between 1 and {MAX_BATCH_SIZE} (got {}); 1 reads every location on its own",
                field.value
            );
            keys.problem(&field.span, message)
        }
    }
}

/// `discover_accounts` (each `accounts/{id}`, at least one, no repeats)
/// with the `group_external_ref_from` it needs; the discovery keys are
/// refused without `discover_accounts`, where they would do nothing.
/// `None` when a problem was reported; every key is checked first.
fn discovery(keys: &mut SourceKeys<'_, '_>) -> Option<(Vec<String>, Option<GroupFrom>)> {
    let group_from = keys.string("group_external_ref_from").map(|field| {
        if field.value == "store_code" {
            Some(GroupFrom::StoreCode)
        } else {
            let message = format!(
                "group_external_ref_from: {:?} is not supported (expected {GROUP_FROM_VALUES}: a discovered location maps to the group whose external reference is its store code)",
                field.value
            );
            keys.problem(&field.span, message)
        }
    });
    let Some(accounts) = keys.list("discover_accounts") else {
        if keys.written("discover_accounts") {
            return None;
        }
        let mut ok = true;
        for key in ["group_external_ref_from", "business_information_base_url"] {
            if let Some(span) = keys.key_span(key) {
                let message = format!("`{key}` is only used with `discover_accounts`");
                keys.problem::<()>(&span, message);
                ok = false;
            }
        }
        return ok.then(|| (Vec::new(), None));
    };
    let mut ok = true;
    if accounts.value.is_empty() {
        keys.problem::<()>(
            &accounts.span,
            "discover_accounts: list at least one account, e.g. [\"accounts/123\"] (or remove the key)",
        );
        ok = false;
    }
    let mut seen: Vec<&str> = Vec::new();
    for account in &accounts.value {
        if !is_account_name(account) {
            let message = format!(
                "discover_accounts: {account:?} is not a Google Business Profile account (expected accounts/{{account}})"
            );
            keys.problem::<()>(&accounts.span, message);
            ok = false;
        } else if seen.contains(&account.as_str()) {
            let message = format!("discover_accounts: {account:?} is listed twice");
            keys.problem::<()>(&accounts.span, message);
            ok = false;
        }
        seen.push(account);
    }
    let group_from = match group_from {
        Some(group_from) => group_from,
        None if keys.written("group_external_ref_from") => None,
        None => keys.problem(
            &accounts.key,
            format!(
                "`discover_accounts` needs `group_external_ref_from = {GROUP_FROM_VALUES}`: it says which group a discovered location's reviews go to"
            ),
        ),
    };
    let group_from = group_from?;
    ok.then(|| (accounts.value.clone(), Some(group_from)))
}

/// A location id is a location resource name, since that is what the
/// reviews API is called with: `accounts/{a}/locations/{l}`.
fn location_id(id: &str) -> Result<(), String> {
    let parts: Vec<&str> = id.split('/').collect();
    match parts.as_slice() {
        ["accounts", account, "locations", location]
            if !account.is_empty() && !location.is_empty() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "id: {id:?} is not a Google Business Profile location (expected accounts/{{account}}/locations/{{location}})"
        )),
    }
}

/// `accounts/{a}`.
fn is_account_name(name: &str) -> bool {
    matches!(name.split('/').collect::<Vec<_>>().as_slice(), ["accounts", account]
        if !account.is_empty())
}

/// The sandbox's Google source: its emulator's OAuth client, every seeded
/// location mapped by its index, and discovery shown as the alternative.
fn sandbox(sb: &sandbox::Sandbox, _groups: &mut SandboxGroups) -> String {
    let base = sb.base_url();
    let mut toml = format!(
        r#"
[[source]]
name = "sandbox-google"
kind = "google_business_profile"
schedule = "0 */5 * * * *"
client_id = "{g_id}"
client_secret = "{g_secret}"
refresh_token = "{g_refresh}"
api_base_url = "{base}/google"
token_url = "{base}/google/token"
# Or let discovery find every location (drop the [[source.location]]s below):
# discover_accounts = [{accounts}]
# group_external_ref_from = "store_code"
# business_information_base_url = "{base}/google-bi"
"#,
        g_id = sandbox::GOOGLE_CLIENT_ID,
        g_secret = sandbox::GOOGLE_CLIENT_SECRET,
        g_refresh = sandbox::GOOGLE_REFRESH_TOKEN,
        accounts = sb
            .google()
            .accounts()
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (i, location) in sb.google().locations().iter().enumerate() {
        toml.push_str(&format!(
            "\n  [[source.location]]\n  id = \"{location}\"\n  group_external_ref = \"portfolio-{}\"\n",
            i % 10 + 1
        ));
    }
    toml
}
