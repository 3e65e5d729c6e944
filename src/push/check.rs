//! What `check --online` says of a source's push channel: for Pub/Sub, that
//! the subscription exists, is a pull subscription, still has its topic, and
//! that the credentials may read it (a `GET` of the subscription, which
//! needs the same permission family as a pull); for webhooks, where they are
//! received (nothing to ask a platform). With `--set-notifications`, a
//! Business Profile source's accounts (those of its locations and its
//! `discover_accounts`) are then pointed at the subscription's topic
//! (see [`super::notifications`]).

use super::notifications::{Ensured, NotificationsClient};
use super::pubsub::PubSubClient;
use super::source::NotificationSettings;
use super::source::SourcePush;
use crate::config::{Config, SourceConfig};
use crate::oauth::TokenCache;
use std::sync::Arc;
use std::time::Duration;

/// One line of the push check (the CLI puts the source's name first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushLine {
    /// Whether it is a success (a failure makes `check` exit non-zero).
    pub ok: bool,
    /// What it says, `push: ...` or `FAILED: push: ...`.
    pub text: String,
}

/// The lines of `source`'s push channel (none when push is off for it),
/// and with `set_notifications`, one per account whose notification
/// setting was set, already set, or failed.
pub async fn check_online(
    config: &Config,
    source: &SourceConfig,
    set_notifications: bool,
) -> Vec<PushLine> {
    let subscription = subscription_line(config, source).await;
    let Some((line, topic)) = subscription else {
        return Vec::new();
    };
    let mut lines = vec![match line {
        Ok(text) => PushLine { ok: true, text },
        Err(e) => PushLine {
            ok: false,
            text: format!("FAILED: {e}"),
        },
    }];
    if set_notifications && let Some(settings) = source.kind.push_notifications() {
        lines.extend(notification_lines(source, &settings, topic.as_deref()).await);
    }
    lines
}

/// The subscription's line, and its topic when it is usable.
async fn subscription_line(
    config: &Config,
    source: &SourceConfig,
) -> Option<(Result<String, String>, Option<String>)> {
    Some(match source.kind.push()? {
        SourcePush::Webhook(_) => match &config.push {
            Some(push) => (
                Ok(format!(
                    "push: webhooks received at {}/webhooks/{} (behind your TLS proxy; the platform's subscription is set up on its side)",
                    push.listen, source.name
                )),
                None,
            ),
            None => (
                Err("push: webhook secrets without [push] listen".to_owned()),
                None,
            ),
        },
        SourcePush::PubSub(settings) => {
            let http = match super::run::http_client() {
                Ok(http) => http,
                Err(e) => return Some((Err(format!("push: no HTTP client: {e}")), None)),
            };
            let tokens = match settings.token_cache(http.clone()) {
                Ok(tokens) => Arc::new(tokens),
                Err(e) => return Some((Err(format!("push: push_credentials: {e}")), None)),
            };
            let client = PubSubClient::new(
                http,
                settings.base_url.clone(),
                tokens,
                settings.subscription.clone(),
                Duration::from_secs(30),
            );
            match client.get_subscription().await {
                Err(e) => (Err(format!("push: {e}")), None),
                Ok(info) if info.push => (
                    Err(format!(
                        "push: {} is a push subscription; review-sync pulls: make it a pull subscription",
                        settings.subscription
                    )),
                    None,
                ),
                Ok(info) if info.topic == "_deleted-topic_" || info.topic.is_empty() => (
                    Err(format!(
                        "push: the topic of {} was deleted: notifications no longer reach it",
                        settings.subscription
                    )),
                    None,
                ),
                Ok(info) => (
                    Ok(format!(
                        "push: Pub/Sub subscription {} ok (topic {}, ack deadline {}s)",
                        settings.subscription,
                        info.topic,
                        info.ack_deadline.as_secs()
                    )),
                    Some(info.topic),
                ),
            }
        }
    })
}

/// Points each account `source` reads at `topic` (`None`: the subscription
/// check failed, so there is no topic to point at).
async fn notification_lines(
    source: &SourceConfig,
    settings: &NotificationSettings,
    topic: Option<&str>,
) -> Vec<PushLine> {
    let failed = |text: String| vec![PushLine { ok: false, text }];
    let Some(topic) = topic else {
        return failed(
            "push: notifications not set: the subscription's topic is unknown (see above)".into(),
        );
    };
    let http = match super::run::http_client() {
        Ok(http) => http,
        Err(e) => return failed(format!("push: notifications not set: no HTTP client: {e}")),
    };
    // The source's own token: the one that may manage its accounts (the
    // Pub/Sub credentials may be another identity's).
    let tokens = TokenCache::new(
        settings.grant.clone(),
        settings.token_url.clone(),
        http.clone(),
    );
    let client = NotificationsClient::new(http, settings.base_url.clone(), &tokens);
    let mut lines = Vec::new();
    for account in accounts(source, settings) {
        let what = format!("push: notifications of {account} \u{2192} {topic}");
        lines.push(match client.ensure(&account, topic).await {
            Ok(Ensured::AlreadySet) => PushLine {
                ok: true,
                text: format!("{what}: already set"),
            },
            Ok(Ensured::Set { replaced: None }) => PushLine {
                ok: true,
                text: format!("{what}: set"),
            },
            Ok(Ensured::Set {
                replaced: Some(old),
            }) => PushLine {
                ok: true,
                text: format!("{what}: set (it was {old})"),
            },
            Err(e) => PushLine {
                ok: false,
                text: format!("{what}: FAILED: {e}"),
            },
        });
    }
    lines
}

/// The accounts `source` reads: those of `settings` (`discover_accounts`),
/// then the `accounts/{a}` of each location, each once.
fn accounts(source: &SourceConfig, settings: &NotificationSettings) -> Vec<String> {
    let mut accounts: Vec<String> = settings.accounts.clone();
    for location in &source.locations {
        let parts: Vec<&str> = location.id.as_str().split('/').collect();
        if let ["accounts", account, "locations", _] = parts[..] {
            let name = format!("accounts/{account}");
            if !accounts.contains(&name) {
                accounts.push(name);
            }
        }
    }
    accounts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accounts_are_the_discovered_then_the_locations_each_once() {
        let text = r#"[travtus]
token = "t"
[[source]]
name = "g"
kind = "google_business_profile"
schedule = "0 */15 * * * *"
client_id = "gid"
client_secret = "gs"
refresh_token = "gr"
push_subscription = "projects/p/subscriptions/review-sync"
discover_accounts = ["accounts/9"]
group_external_ref_from = "store_code"
  [[source.location]]
  id = "accounts/1/locations/2"
  group_id = "grp"
  [[source.location]]
  id = "accounts/9/locations/3"
  group_id = "grp"
  [[source.location]]
  id = "accounts/1/locations/4"
  group_id = "grp"
"#;
        let config = crate::config::load_str_with_env(
            text,
            std::path::Path::new("/nonexistent/config.toml"),
            &|_| None,
        )
        .expect("valid config");
        let source = &config.sources[0];
        let settings = source.kind.push_notifications().expect("push is on");
        assert_eq!(
            settings.base_url.as_str(),
            "https://mybusinessnotifications.googleapis.com/"
        );
        assert_eq!(accounts(source, &settings), ["accounts/9", "accounts/1"]);
    }
}
