//! The HTTP client of `POST {base_url}/messages/`: sends one body with its
//! bearer token and idempotency key and reads what came back. It does not
//! decide what to do about the answer (`classify`) nor touch the ledger.

use crate::oauth::{AccessToken, describe_transport};
use std::time::Duration;
use url::Url;

/// The most of an answer body we read: a real answer is a few hundred bytes;
/// a misbehaving proxy must not make us buffer megabytes per worker.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What one POST came back with.
#[derive(Debug, Clone, PartialEq)]
pub enum PostResult {
    /// An HTTP answer.
    Answer {
        /// HTTP status.
        status: u16,
        /// `request_id` from a 2xx body.
        request_id: Option<String>,
        /// `error.type` from an error body.
        error_type: Option<String>,
        /// `error.message`, or a short description of an unexpected body.
        message: Option<String>,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// No HTTP answer: connection refused or reset, timeout, broken body.
    Transport {
        /// `timeout` or `connection`.
        error_type: &'static str,
        /// What happened.
        message: String,
    },
}

/// The `/messages/` client.
#[derive(Clone)]
pub struct TravtusClient {
    http: reqwest::Client,
    messages_url: Url,
    timeout: Duration,
}

impl TravtusClient {
    /// A client for `base_url` (with or without a trailing slash or a path prefix).
    pub fn new(http: reqwest::Client, base_url: &Url, timeout: Duration) -> TravtusClient {
        TravtusClient {
            http,
            messages_url: messages_url(base_url),
            timeout,
        }
    }

    /// The URL bodies are POSTed to.
    pub fn messages_url(&self) -> &Url {
        &self.messages_url
    }

    /// POSTs one body.
    pub async fn post(&self, body: &str, idempotency_key: &str, token: &AccessToken) -> PostResult {
        let sent = self
            .http
            .post(self.messages_url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::AUTHORIZATION, token.bearer())
            .header("Idempotency-Key", idempotency_key)
            .body(body.to_owned())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return transport(&e),
        };
        let status = response.status().as_u16();
        let retry_after = crate::retry::retry_after_header(response.headers());
        let bytes = match read_capped(response).await {
            Ok(b) => b,
            Err(e) => return e,
        };
        let json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let field = |path: &[&str]| -> Option<String> {
            let mut v = json.as_ref()?;
            for key in path {
                v = v.get(key)?;
            }
            v.as_str().map(str::to_owned)
        };
        let (request_id, error_type, message) = if (200..300).contains(&status) {
            (field(&["request_id"]), None, None)
        } else {
            let message = field(&["error", "message"]).or_else(|| {
                (!bytes.is_empty()).then(|| format!("unexpected body of {} bytes", bytes.len()))
            });
            (None, field(&["error", "type"]), message)
        };
        PostResult::Answer {
            status,
            request_id,
            error_type,
            message,
            retry_after,
        }
    }
}

fn messages_url(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!("{}/messages/", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

fn transport(e: &reqwest::Error) -> PostResult {
    PostResult::Transport {
        error_type: if e.is_timeout() {
            "timeout"
        } else {
            "connection"
        },
        message: describe_transport(e),
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, PostResult> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > MAX_ANSWER_BYTES {
                    // Enough to classify by status; the rest is noise.
                    break;
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(transport(&e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_url_keeps_prefixes_and_has_one_trailing_slash() {
        let cases = [
            (
                "https://api.travtus.com",
                "https://api.travtus.com/messages/",
            ),
            (
                "https://api.travtus.com/",
                "https://api.travtus.com/messages/",
            ),
            (
                "http://127.0.0.1:9/travtus",
                "http://127.0.0.1:9/travtus/messages/",
            ),
            (
                "http://127.0.0.1:9/travtus/",
                "http://127.0.0.1:9/travtus/messages/",
            ),
        ];
        for (base, expected) in cases {
            let base = Url::parse(base).expect("url");
            assert_eq!(messages_url(&base).as_str(), expected);
        }
    }
}
