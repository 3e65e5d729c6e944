//! The Business Profile Notifications API client that `check --online
//! --set-notifications` uses: `GET` and `PATCH
//! {notifications_base_url}/v1/accounts/{a}/notificationSetting`
//! (developers.google.com/my-business/reference/notifications/rest/v1/accounts/getNotificationSetting
//! and .../updateNotificationSetting), so that an account's `NEW_REVIEW`
//! and `UPDATED_REVIEW` notifications go to the topic of the source's
//! subscription.
//!
//! An account has one setting: one topic for every type it lists. The
//! types it already has are kept (read first, then the union is written),
//! so an admin's other notifications are not dropped; they then go to this
//! topic too, where the daemon acknowledges them without a read.
//!
//! Authenticated with the source's Business Profile OAuth token; a 401
//! renews it once. No redirect is followed (a 3xx is an error naming only
//! the target's origin), and answers are capped at [`MAX_ANSWER_BYTES`].

use crate::oauth::{AccessToken, TokenCache, TokenError, describe_transport};
use crate::redirect::{RedirectRefused, refused};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// The Notifications API's host.
pub const DEFAULT_NOTIFICATIONS_BASE_URL: &str = "https://mybusinessnotifications.googleapis.com";

/// The types review-sync needs.
pub const REVIEW_TYPES: [&str; 2] = ["NEW_REVIEW", "UPDATED_REVIEW"];

/// The most of an answer we read (a setting is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Bounds each request, body included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a redirect of the Notifications API is not followed.
const WHY_NOTIFICATIONS: &str =
    "the Notifications API is never redirected (the token goes only to notifications_base_url)";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    /// A non-2xx answer (403 for an account the token may not manage).
    #[error("HTTP {status}: {message}")]
    Http {
        /// The status.
        status: u16,
        /// Google's message, or the status's reason.
        message: String,
    },
    /// A 3xx, not followed.
    #[error(transparent)]
    Redirected(#[from] RedirectRefused),
    /// No answer: connection, timeout, broken body.
    #[error("unreachable: {0}")]
    Transport(String),
    /// A 2xx that is not a setting, or too large.
    #[error("invalid answer: {0}")]
    InvalidResponse(String),
    /// No token could be had.
    #[error("no Business Profile access token: {0}")]
    Token(#[from] TokenError),
    /// The base URL cannot take a path.
    #[error("notifications_base_url cannot take a path")]
    BadBaseUrl,
}

/// An account's notification setting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSetting {
    /// `pubsubTopic` (`projects/{p}/topics/{t}`), when set.
    #[serde(default)]
    pub pubsub_topic: Option<String>,
    /// `notificationTypes`.
    #[serde(default)]
    pub notification_types: Vec<String>,
}

/// What [`NotificationsClient::ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// The setting already sent both review types to the topic.
    AlreadySet,
    /// It was written; the topic it named before, if another.
    Set {
        /// The topic replaced, when it was another one.
        replaced: Option<String>,
    },
}

/// The client, for one source's token.
pub struct NotificationsClient<'a> {
    http: reqwest::Client,
    base: Url,
    tokens: &'a TokenCache,
}

impl<'a> NotificationsClient<'a> {
    /// A client at `base` (`notifications_base_url`), authenticated by
    /// `tokens`, on `http` (built with redirects off).
    pub fn new(http: reqwest::Client, base: Url, tokens: &'a TokenCache) -> Self {
        NotificationsClient { http, base, tokens }
    }

    /// Makes `account`'s (`accounts/{a}`) review notifications go to
    /// `topic`, keeping the types it already has.
    pub async fn ensure(&self, account: &str, topic: &str) -> Result<Ensured, NotificationsError> {
        let current = self.get(account).await?;
        let mut types = current.notification_types.clone();
        for wanted in REVIEW_TYPES {
            if !types.iter().any(|t| t == wanted) {
                types.push(wanted.to_owned());
            }
        }
        let same_topic = current.pubsub_topic.as_deref() == Some(topic);
        if same_topic && types.len() == current.notification_types.len() {
            return Ok(Ensured::AlreadySet);
        }
        let body = serde_json::json!({
            "name": format!("{account}/notificationSetting"),
            "pubsubTopic": topic,
            "notificationTypes": types,
        });
        let written: NotificationSetting = self
            .call(
                Method::PATCH,
                account,
                Some("pubsubTopic,notificationTypes"),
                Some(&body),
            )
            .await?;
        // A 2xx that did not take the setting is no success.
        if written.pubsub_topic.as_deref() != Some(topic)
            || !REVIEW_TYPES
                .iter()
                .all(|t| written.notification_types.iter().any(|w| w == t))
        {
            return Err(NotificationsError::InvalidResponse(
                "the answer to the update does not show the topic and both review types".into(),
            ));
        }
        Ok(Ensured::Set {
            replaced: current.pubsub_topic.filter(|t| !t.is_empty() && t != topic),
        })
    }

    /// `GET` of `account`'s setting.
    pub async fn get(&self, account: &str) -> Result<NotificationSetting, NotificationsError> {
        self.call(Method::GET, account, None, None).await
    }

    fn url(&self, account: &str, mask: Option<&str>) -> Result<Url, NotificationsError> {
        let mut url = self.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| NotificationsError::BadBaseUrl)?;
            segments.pop_if_empty();
            segments.push("v1");
            // `accounts/{a}`: each part its own segment, so an odd id can
            // never change the path.
            for part in account.split('/') {
                segments.push(part);
            }
            segments.push("notificationSetting");
        }
        if let Some(mask) = mask {
            url.query_pairs_mut().append_pair("updateMask", mask);
        }
        Ok(url)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        account: &str,
        mask: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<T, NotificationsError> {
        let url = self.url(account, mask)?;
        let mut token = self.tokens.get().await?;
        let mut renewed = false;
        loop {
            let (status, headers, answer) = self.send(&method, &url, &token, body).await?;
            if status.is_success() {
                let answer = if answer.iter().all(u8::is_ascii_whitespace) {
                    b"{}".to_vec()
                } else {
                    answer
                };
                return serde_json::from_slice(&answer)
                    .map_err(|e| NotificationsError::InvalidResponse(e.to_string()));
            }
            if status.is_redirection() {
                return Err(refused(&url, status, &headers, WHY_NOTIFICATIONS).into());
            }
            if status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                token = self.tokens.renew(&token).await?;
                continue;
            }
            return Err(NotificationsError::Http {
                status: status.as_u16(),
                message: error_message(status, &answer),
            });
        }
    }

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        token: &AccessToken,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), NotificationsError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.secret())
            .timeout(TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| NotificationsError::Transport(describe_transport(&e));
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(NotificationsError::InvalidResponse(format!(
                    "answer larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            answer.extend_from_slice(&chunk);
        }
        Ok((status, headers, answer))
    }
}

/// Google's `error.message` (control characters dropped, 300 at most), or
/// the status's reason.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(|m| m.chars().filter(|c| !c.is_control()).take(300).collect())
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_segments() {
        let tokens = TokenCache::new(
            crate::oauth::Grant::Static(crate::config::Secret::new("t")),
            Url::parse("http://127.0.0.1:1/token").expect("url"),
            reqwest::Client::new(),
        );
        let client = NotificationsClient::new(
            reqwest::Client::new(),
            Url::parse("http://127.0.0.1:9/n/").expect("url"),
            &tokens,
        );
        assert_eq!(
            client
                .url("accounts/1000", Some("pubsubTopic,notificationTypes"))
                .expect("url")
                .as_str(),
            "http://127.0.0.1:9/n/v1/accounts/1000/notificationSetting?updateMask=pubsubTopic%2CnotificationTypes"
        );
        assert_eq!(
            client.url("accounts/a?b#c", None).expect("url").as_str(),
            "http://127.0.0.1:9/n/v1/accounts/a%3Fb%23c/notificationSetting"
        );
    }
}
