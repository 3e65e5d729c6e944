//! A source's push settings, as its platform's validation reads them from
//! `[[source]]` (SPEC §3 "Push"): a Pub/Sub pull subscription
//! (`push_subscription`, `pubsub_base_url`, `push_credentials`) or a webhook
//! (`webhook_app_secret`, `webhook_verify_token`). The keys are declared by
//! the platforms that push (in their `settings.rs`); the checks shared by
//! them live here, so every platform words its problems the same way.

use super::pubsub::SubscriptionName;
use super::service_account::ServiceAccountKey;
use super::webhook::WebhookKind;
use crate::config::Secret;
use crate::config::keys::SourceKeys;
use crate::oauth::{Grant, TokenCache};
use std::sync::Arc;
use url::Url;

/// Cloud Pub/Sub's REST host.
pub const DEFAULT_PUBSUB_BASE_URL: &str = "https://pubsub.googleapis.com";

/// How a source is told about new reviews.
#[derive(Debug, Clone)]
pub enum SourcePush {
    /// A Cloud Pub/Sub pull subscription the daemon reads.
    PubSub(Box<PubSubSettings>),
    /// Webhooks on `[push] listen`, `/webhooks/{source}`.
    Webhook(Arc<dyn WebhookKind>),
}

/// Where `check --online --set-notifications` points a Pub/Sub source's
/// accounts at the subscription's topic (see [`super::notifications`]).
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// `notifications_base_url`.
    pub base_url: Url,
    /// The source's own OAuth grant: the identity that manages its accounts.
    pub grant: Grant,
    /// Where that grant is sent.
    pub token_url: Url,
    /// Accounts (`accounts/{a}`) the source reads besides those its
    /// locations name (`discover_accounts`).
    pub accounts: Vec<String>,
}

/// `push_subscription` and what reads it.
#[derive(Debug, Clone)]
pub struct PubSubSettings {
    /// `push_subscription`.
    pub subscription: SubscriptionName,
    /// `pubsub_base_url`, default [`DEFAULT_PUBSUB_BASE_URL`].
    pub base_url: Url,
    /// How the Pub/Sub token is obtained.
    pub credentials: PubSubCredentials,
}

/// The credentials of the Pub/Sub client.
#[derive(Debug, Clone)]
pub enum PubSubCredentials {
    /// `push_credentials`: a service-account key (checked when the config
    /// was loaded), and the `token_uri` it names.
    ServiceAccount {
        /// The key file's text.
        key: Secret,
        /// Its `token_uri`: where the signed assertion goes.
        token_uri: Url,
    },
    /// No `push_credentials`: the source's own OAuth client, whose refresh
    /// token must carry the Pub/Sub scope.
    SourceOAuth {
        /// The token endpoint.
        token_url: Url,
        /// `client_id`.
        client_id: String,
        /// `client_secret`.
        client_secret: Secret,
        /// `refresh_token`.
        refresh_token: Secret,
    },
}

impl PubSubSettings {
    /// The token cache of the Pub/Sub client, on `http`.
    pub fn token_cache(&self, http: reqwest::Client) -> Result<TokenCache, String> {
        match &self.credentials {
            PubSubCredentials::ServiceAccount { key, .. } => {
                ServiceAccountKey::from_json(key.expose())
                    .map(|key| key.token_cache(http))
                    .map_err(|e| e.to_string())
            }
            PubSubCredentials::SourceOAuth {
                token_url,
                client_id,
                client_secret,
                refresh_token,
            } => Ok(TokenCache::new(
                Grant::RefreshToken {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    refresh_token: refresh_token.clone(),
                },
                token_url.clone(),
                http,
            )),
        }
    }

    /// Every URL a credential of the Pub/Sub client goes to.
    pub fn urls(&self) -> Vec<&Url> {
        let mut urls = vec![&self.base_url];
        if let PubSubCredentials::ServiceAccount { token_uri, .. } = &self.credentials {
            urls.push(token_uri);
        }
        urls
    }
}

/// `push_subscription` (+ `pubsub_base_url`, `push_credentials`) of a
/// source: `Some(None)` when it has none (and neither of the others, which
/// would do nothing), `None` after a problem. `oauth` is the source's own
/// client, used without `push_credentials`.
pub(crate) fn pubsub_keys(
    keys: &mut SourceKeys<'_, '_>,
    oauth: impl FnOnce() -> Option<PubSubCredentials>,
) -> Option<Option<PubSubSettings>> {
    let Some(field) = keys.string("push_subscription") else {
        for key in ["pubsub_base_url", "push_credentials"] {
            if let Some(span) = keys.key_span(key) {
                return keys.problem(
                    &span,
                    format!("`{key}` is only used with `push_subscription` (Pub/Sub push is off without it)"),
                );
            }
        }
        return Some(None);
    };
    let subscription = match SubscriptionName::parse(field.value.trim()) {
        Ok(name) => Some(name),
        Err(e) => keys.problem(&field.span, format!("push_subscription: {e}")),
    };
    let base_url = keys.url("pubsub_base_url", DEFAULT_PUBSUB_BASE_URL);
    let credentials = match keys.optional_secret("push_credentials") {
        None => None,
        Some(Some(key)) => match ServiceAccountKey::from_json(key.expose()) {
            Ok(parsed) => Some(PubSubCredentials::ServiceAccount {
                token_uri: parsed.token_uri().clone(),
                key,
            }),
            Err(e) => {
                let span = keys
                    .key_span("push_credentials")
                    .unwrap_or_else(|| keys.source_span());
                keys.problem(&span, format!("push_credentials: {e}"))
            }
        },
        Some(None) => oauth(),
    };
    Some(Some(PubSubSettings {
        subscription: subscription?,
        base_url: base_url?,
        credentials: credentials?,
    }))
}

/// `webhook_app_secret` and `webhook_verify_token`, both or neither (the
/// app secret verifies deliveries, the token answers the handshake):
/// `Some(None)` when neither is written.
pub(crate) fn signed_webhook_keys(
    keys: &mut SourceKeys<'_, '_>,
) -> Option<Option<(Secret, Secret)>> {
    let written = ["webhook_app_secret", "webhook_verify_token"].map(|k| keys.written(k));
    match written {
        [false, false] => Some(None),
        [true, true] => {
            let secret = keys.optional_secret("webhook_app_secret");
            let token = keys.optional_secret("webhook_verify_token");
            Some(Some((secret??, token??)))
        }
        [has_secret, _] => {
            let (present, missing) = if has_secret {
                ("webhook_app_secret", "webhook_verify_token")
            } else {
                ("webhook_verify_token", "webhook_app_secret")
            };
            let span = keys.key_span(present).unwrap_or_else(|| keys.source_span());
            keys.problem(
                &span,
                format!(
                    "`webhook_app_secret` and `webhook_verify_token` go together (the app secret verifies X-Hub-Signature-256, the token answers the subscription handshake); missing `{missing}`"
                ),
            )
        }
    }
}
