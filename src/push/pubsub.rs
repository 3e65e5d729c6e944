//! A Cloud Pub/Sub REST client for one pull subscription: `:pull` with
//! `maxMessages`, `:acknowledge`, `:modifyAckDeadline`, and `GET` of the
//! subscription (cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions).
//! Outbound only: no port to open, works behind NAT.
//!
//! Runs on the shared reqwest client, with a bearer token from a
//! [`TokenCache`] (a service account's JWT bearer grant, or the source's
//! own OAuth client when its refresh token carries the Pub/Sub scope); a
//! 401 renews the token once. It never follows a redirect: a 3xx answer is
//! [`PubSubError::Redirected`] (and a client built with redirects off, as
//! the daemon's is meant to be, never sends the token elsewhere). Answers
//! are read incrementally and refused past [`MAX_ANSWER_BYTES`].
//!
//! Errors say what the daemon must do: 403 and 404 mean the push channel
//! is broken until an operator acts (scheduled polls carry on); transport
//! errors, 429 and 5xx are worth another try later.

use crate::oauth::{AccessToken, TokenCache, TokenError, describe_transport};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The most of an answer we read. A pull of [`MAX_PULL_MESSAGES`] Business
/// Profile notifications (a few hundred bytes each) is far below this.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The most messages one pull asks for.
pub const MAX_PULL_MESSAGES: u32 = 1000;

/// Ack ids per `:acknowledge`/`:modifyAckDeadline` request (Pub/Sub caps a
/// request at 512 KB; ack ids are up to a few hundred bytes each).
const ACK_IDS_PER_REQUEST: usize = 500;

/// The longest ack deadline Pub/Sub accepts.
pub const MAX_ACK_DEADLINE: Duration = Duration::from_secs(600);

/// A subscription's resource name, `projects/{project}/subscriptions/{id}`,
/// checked so that it can only ever be one path under `/v1/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionName {
    project: String,
    id: String,
}

/// Why a subscription name is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a subscription name: expected projects/PROJECT/subscriptions/ID (letters, digits and - _ . ~ + %)"
)]
pub struct BadSubscriptionName(pub String);

impl SubscriptionName {
    /// Parses `projects/{project}/subscriptions/{id}`.
    pub fn parse(name: &str) -> Result<SubscriptionName, BadSubscriptionName> {
        let bad = || BadSubscriptionName(name.to_owned());
        let parts: Vec<&str> = name.split('/').collect();
        let ["projects", project, "subscriptions", id] = parts[..] else {
            return Err(bad());
        };
        // Project ids: a letter, then letters, digits, hyphens (and the
        // legacy `domain.com:` prefix). Subscription ids: 3..=255 of [A-Za-z0-9-_.~+%],
        // starting with a letter. Nothing that could change the path.
        let project_ok = project.starts_with(|c: char| c.is_ascii_alphabetic())
            && project.len() <= 100
            && project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
        let id_ok = (3..=255).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_alphabetic())
            && id.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '%')
            });
        if !(project_ok && id_ok) {
            return Err(bad());
        }
        Ok(SubscriptionName {
            project: project.to_owned(),
            id: id.to_owned(),
        })
    }
}

impl std::fmt::Display for SubscriptionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "projects/{}/subscriptions/{}", self.project, self.id)
    }
}

/// One pulled message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The id to acknowledge this delivery with.
    pub ack_id: String,
    /// `messageId`.
    pub message_id: String,
    /// The decoded `data`; `None` if it was not valid base64 (acknowledge
    /// such a message: it never gets better).
    pub data: Option<Vec<u8>>,
    /// `attributes`.
    pub attributes: BTreeMap<String, String>,
    /// `publishTime`, as sent.
    pub publish_time: Option<String>,
    /// `deliveryAttempt` (only set by Pub/Sub under a dead-letter policy).
    pub delivery_attempt: Option<u32>,
}

/// What `GET` of the subscription says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// `topic` (`_deleted-topic_` once its topic is gone).
    pub topic: String,
    /// `ackDeadlineSeconds`.
    pub ack_deadline: Duration,
    /// Whether it is a push subscription (a pull client gets nothing from it).
    pub push: bool,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// 403 `PERMISSION_DENIED`: the credentials may not use the subscription.
    #[error("Pub/Sub refused access to {subscription} (403): {message}")]
    PermissionDenied {
        /// The subscription.
        subscription: String,
        /// Google's message.
        message: String,
    },
    /// 404 `NOT_FOUND`: the subscription (or project) does not exist.
    #[error("Pub/Sub subscription {subscription} not found (404): {message}")]
    NotFound {
        /// The subscription.
        subscription: String,
        /// Google's message.
        message: String,
    },
    /// 401 even with a fresh token.
    #[error("Pub/Sub refused the access token (401): {0}")]
    Unauthenticated(String),
    /// Another error status (400, 429, 5xx...).
    #[error("Pub/Sub answered HTTP {status}: {message}")]
    Http {
        /// The status.
        status: u16,
        /// Google's message, or the status's reason.
        message: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// A 3xx: not followed, since it would carry the token elsewhere.
    #[error(
        "Pub/Sub answered a redirect (HTTP {status}) to {location:?}; redirects are not followed"
    )]
    Redirected {
        /// The status.
        status: u16,
        /// The `Location` header's host, if any (never its query).
        location: Option<String>,
    },
    /// No answer: connection, timeout, broken body.
    #[error("Pub/Sub unreachable: {0}")]
    Transport(String),
    /// A 2xx that is not the expected JSON, or too large.
    #[error("Pub/Sub sent an invalid answer: {0}")]
    InvalidResponse(String),
    /// No token could be had.
    #[error("no Pub/Sub access token: {0}")]
    Token(#[from] TokenError),
}

impl PubSubError {
    /// Whether the push channel is broken until someone acts (a missing
    /// subscription, a permission, refused credentials, a redirect), as
    /// opposed to a passing failure worth retrying.
    pub fn channel_broken(&self) -> bool {
        match self {
            PubSubError::PermissionDenied { .. }
            | PubSubError::NotFound { .. }
            | PubSubError::Unauthenticated(_)
            | PubSubError::Redirected { .. } => true,
            PubSubError::Token(e) => !e.is_retryable(),
            PubSubError::Http { status, .. } => *status == 400,
            PubSubError::Transport(_) | PubSubError::InvalidResponse(_) => false,
        }
    }

    /// A short label for metrics (`error_type`).
    pub fn kind(&self) -> &'static str {
        match self {
            PubSubError::PermissionDenied { .. } => "permission_denied",
            PubSubError::NotFound { .. } => "not_found",
            PubSubError::Unauthenticated(_) => "unauthenticated",
            PubSubError::Http { .. } => "http",
            PubSubError::Redirected { .. } => "redirected",
            PubSubError::Transport(_) => "transport",
            PubSubError::InvalidResponse(_) => "invalid_response",
            PubSubError::Token(_) => "token",
        }
    }
}

/// The client for one subscription.
pub struct PubSubClient {
    http: reqwest::Client,
    base: Url,
    tokens: Arc<TokenCache>,
    subscription: SubscriptionName,
    /// Bounds each request, body included. A pull may be held open by
    /// Pub/Sub while it waits for messages, so this must be longer than
    /// that wait.
    timeout: Duration,
}

impl std::fmt::Debug for PubSubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubClient")
            .field("base", &self.base.as_str())
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullAnswer {
    #[serde(default)]
    received_messages: Vec<WireReceived>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireReceived {
    ack_id: String,
    #[serde(default)]
    message: WireMessage,
    delivery_attempt: Option<u32>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    message_id: String,
    publish_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSubscription {
    #[serde(default)]
    topic: String,
    ack_deadline_seconds: Option<u64>,
    push_config: Option<serde_json::Value>,
}

impl PubSubClient {
    /// A client for `subscription` at `base` (`https://pubsub.googleapis.com`,
    /// or the sandbox's), authenticated by `tokens`.
    pub fn new(
        http: reqwest::Client,
        base: Url,
        tokens: Arc<TokenCache>,
        subscription: SubscriptionName,
        timeout: Duration,
    ) -> PubSubClient {
        PubSubClient {
            http,
            base,
            tokens,
            subscription,
            timeout,
        }
    }

    /// The subscription this client reads.
    pub fn subscription(&self) -> &SubscriptionName {
        &self.subscription
    }

    /// `POST /v1/{subscription}:pull` for at most `max_messages` (1..=1000).
    /// May wait (server side) for a message to arrive; an empty result is
    /// not an error.
    pub async fn pull(&self, max_messages: u32) -> Result<Vec<ReceivedMessage>, PubSubError> {
        let body = serde_json::json!({"maxMessages": max_messages.clamp(1, MAX_PULL_MESSAGES)});
        let answer = self
            .call(reqwest::Method::POST, ":pull", Some(body))
            .await?;
        let answer: PullAnswer = parse_answer(&answer)?;
        answer
            .received_messages
            .into_iter()
            .map(|m| {
                if m.ack_id.is_empty() {
                    return Err(PubSubError::InvalidResponse(
                        "a message without ackId".into(),
                    ));
                }
                let data = BASE64.decode(m.message.data.as_bytes()).ok();
                Ok(ReceivedMessage {
                    ack_id: m.ack_id,
                    message_id: m.message.message_id,
                    data,
                    attributes: m.message.attributes,
                    publish_time: m.message.publish_time,
                    delivery_attempt: m.delivery_attempt,
                })
            })
            .collect()
    }

    /// `POST /v1/{subscription}:acknowledge`: these messages are done.
    /// Acknowledging an id twice, or one whose deadline passed, is no error.
    pub async fn acknowledge(&self, ack_ids: &[String]) -> Result<(), PubSubError> {
        for chunk in ack_ids.chunks(ACK_IDS_PER_REQUEST) {
            let body = serde_json::json!({"ackIds": chunk});
            self.call(reqwest::Method::POST, ":acknowledge", Some(body))
                .await?;
        }
        Ok(())
    }

    /// `POST /v1/{subscription}:modifyAckDeadline`: these messages are due
    /// again `deadline` from now (capped at 600 s); zero makes them
    /// available at once.
    pub async fn modify_ack_deadline(
        &self,
        ack_ids: &[String],
        deadline: Duration,
    ) -> Result<(), PubSubError> {
        let seconds = deadline.min(MAX_ACK_DEADLINE).as_secs();
        for chunk in ack_ids.chunks(ACK_IDS_PER_REQUEST) {
            let body = serde_json::json!({"ackIds": chunk, "ackDeadlineSeconds": seconds});
            self.call(reqwest::Method::POST, ":modifyAckDeadline", Some(body))
                .await?;
        }
        Ok(())
    }

    /// `GET /v1/{subscription}`: whether it exists and what it is.
    pub async fn get_subscription(&self) -> Result<SubscriptionInfo, PubSubError> {
        let answer = self.call(reqwest::Method::GET, "", None).await?;
        let wire: WireSubscription = parse_answer(&answer)?;
        let push = wire
            .push_config
            .as_ref()
            .and_then(|c| c.get("pushEndpoint"))
            .and_then(|e| e.as_str())
            .is_some_and(|e| !e.is_empty());
        Ok(SubscriptionInfo {
            topic: wire.topic,
            ack_deadline: Duration::from_secs(wire.ack_deadline_seconds.unwrap_or(10)),
            push,
        })
    }

    fn url(&self, verb: &str) -> Result<Url, PubSubError> {
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                PubSubError::Transport("the Pub/Sub base URL cannot have a path".into())
            })?;
            segments.pop_if_empty();
            segments.extend([
                "v1",
                "projects",
                self.subscription.project.as_str(),
                "subscriptions",
            ]);
            segments.push(&format!("{}{verb}", self.subscription.id));
        }
        Ok(url)
    }

    /// One call, with one token renewal on 401. Returns the 2xx body.
    async fn call(
        &self,
        method: reqwest::Method,
        verb: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>, PubSubError> {
        let url = self.url(verb)?;
        let mut token = self.tokens.get().await?;
        let mut renewed = false;
        loop {
            let (status, headers, answer) = self.send(&method, &url, &token, body.as_ref()).await?;
            if status.is_success() {
                return Ok(answer);
            }
            if status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                token = self.tokens.renew(&token).await?;
                continue;
            }
            return Err(self.error(status, &headers, &answer));
        }
    }

    async fn send(
        &self,
        method: &reqwest::Method,
        url: &Url,
        token: &AccessToken,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), PubSubError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.secret())
            .timeout(self.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| PubSubError::Transport(describe_transport(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut answer = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| PubSubError::Transport(describe_transport(&e)))?
        {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(PubSubError::InvalidResponse(format!(
                    "answer larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            answer.extend_from_slice(&chunk);
        }
        Ok((status, headers, answer))
    }

    fn error(
        &self,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> PubSubError {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(|m| m.as_str())
                    .map(|m| {
                        m.chars()
                            .filter(|c| !c.is_control())
                            .take(300)
                            .collect::<String>()
                    })
            })
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        let subscription = self.subscription.to_string();
        match status.as_u16() {
            300..=399 => PubSubError::Redirected {
                status: status.as_u16(),
                location: headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| Url::parse(l).ok())
                    .and_then(|u| u.host_str().map(str::to_owned)),
            },
            401 => PubSubError::Unauthenticated(message),
            403 => PubSubError::PermissionDenied {
                subscription,
                message,
            },
            404 => PubSubError::NotFound {
                subscription,
                message,
            },
            code => PubSubError::Http {
                status: code,
                message,
                retry_after: crate::retry::retry_after_header(headers),
            },
        }
    }
}

fn parse_answer<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, PubSubError> {
    // proto3 JSON may send an empty body's `{}` for "nothing".
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| PubSubError::InvalidResponse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_names_are_checked() {
        let name = SubscriptionName::parse("projects/my-project/subscriptions/review-sync")
            .expect("valid");
        assert_eq!(
            name.to_string(),
            "projects/my-project/subscriptions/review-sync"
        );
        for bad in [
            "",
            "review-sync",
            "projects/p/topics/t",
            "projects/p/subscriptions/ab",
            "projects/p/subscriptions/9starts-with-digit",
            "projects/p/subscriptions/has/slash",
            "projects/p/subscriptions/has space",
            "projects/p/subscriptions/..%2f..",
            "projects/../subscriptions/review-sync",
            "projects/p/subscriptions/x:pull",
        ] {
            // `..%2f..` starts with a dot, not a letter.
            assert!(SubscriptionName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_built_from_segments() {
        let cache = Arc::new(TokenCache::new(
            crate::oauth::Grant::Static(crate::config::Secret::new("t")),
            Url::parse("http://127.0.0.1:1/token").expect("url"),
            reqwest::Client::new(),
        ));
        let client = PubSubClient::new(
            reqwest::Client::new(),
            Url::parse("http://127.0.0.1:9/pubsub").expect("url"),
            cache,
            SubscriptionName::parse("projects/p/subscriptions/sub").expect("name"),
            Duration::from_secs(5),
        );
        assert_eq!(
            client.url(":pull").expect("url").as_str(),
            "http://127.0.0.1:9/pubsub/v1/projects/p/subscriptions/sub:pull"
        );
        assert_eq!(
            client.url("").expect("url").as_str(),
            "http://127.0.0.1:9/pubsub/v1/projects/p/subscriptions/sub"
        );
    }

    #[test]
    fn which_errors_break_the_channel() {
        let http = |status| PubSubError::Http {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert!(
            PubSubError::NotFound {
                subscription: "s".into(),
                message: "m".into()
            }
            .channel_broken()
        );
        assert!(
            PubSubError::PermissionDenied {
                subscription: "s".into(),
                message: "m".into()
            }
            .channel_broken()
        );
        assert!(!http(503).channel_broken());
        assert!(!http(429).channel_broken());
        assert!(!PubSubError::Transport("x".into()).channel_broken());
    }
}
