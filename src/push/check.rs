//! What `check --online` says of a source's push channel: for Pub/Sub, that
//! the subscription exists, is a pull subscription, still has its topic, and
//! that the credentials may read it (a `GET` of the subscription, which
//! needs the same permission family as a pull); for webhooks, where they are
//! received (nothing to ask a platform).

use super::pubsub::PubSubClient;
use super::source::SourcePush;
use crate::config::{Config, SourceConfig};
use std::sync::Arc;
use std::time::Duration;

/// The line for `source`'s push channel: `None` when push is off for it;
/// `Err` when the channel would not work.
pub async fn check_online(
    config: &Config,
    source: &SourceConfig,
) -> Option<Result<String, String>> {
    Some(match source.kind.push()? {
        SourcePush::Webhook(_) => match &config.push {
            Some(push) => Ok(format!(
                "push: webhooks received at {}/webhooks/{} (behind your TLS proxy; the platform's subscription is set up on its side)",
                push.listen, source.name
            )),
            None => Err("push: webhook secrets without [push] listen".to_owned()),
        },
        SourcePush::PubSub(settings) => {
            let http = match super::run::http_client() {
                Ok(http) => http,
                Err(e) => return Some(Err(format!("push: no HTTP client: {e}"))),
            };
            let tokens = match settings.token_cache(http.clone()) {
                Ok(tokens) => Arc::new(tokens),
                Err(e) => return Some(Err(format!("push: push_credentials: {e}"))),
            };
            let client = PubSubClient::new(
                http,
                settings.base_url.clone(),
                tokens,
                settings.subscription.clone(),
                Duration::from_secs(30),
            );
            match client.get_subscription().await {
                Err(e) => Err(format!("push: {e}")),
                Ok(info) if info.push => Err(format!(
                    "push: {} is a push subscription; review-sync pulls: make it a pull subscription",
                    settings.subscription
                )),
                Ok(info) if info.topic == "_deleted-topic_" => Err(format!(
                    "push: the topic of {} was deleted: notifications no longer reach it",
                    settings.subscription
                )),
                Ok(info) => Ok(format!(
                    "push: Pub/Sub subscription {} ok (topic {}, ack deadline {}s)",
                    settings.subscription,
                    info.topic,
                    info.ack_deadline.as_secs()
                )),
            }
        }
    })
}
