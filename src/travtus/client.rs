//! The HTTP client of `POST {base_url}/messages/`: sends one body with its
//! bearer token and idempotency key and reads what came back. It does not
//! decide what to do about the answer (`classify`) nor touch the ledger.
//!
//! It names what an answer lacks: a 2xx without a non-empty string
//! `request_id` in a JSON body comes back with `error_type`
//! `no_request_id` and a description of the body (size, media type, shape,
//! never its bytes), a 3xx with `redirect` (never followed: the shared pool
//! follows nothing, see `crate::redirect`).

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
        /// `request_id` from a 2xx body: a non-empty JSON string, else `None`.
        request_id: Option<String>,
        /// `error.type` from an error body; `no_request_id` for a 2xx
        /// without a `request_id`, `redirect` for a 3xx.
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

    /// The bound on one POST, answer included (`[travtus] timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
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
        let status = response.status();
        let retry_after = crate::retry::retry_after_header(response.headers());
        if status.is_redirection() {
            // Never followed (`crate::redirect`): the body goes only to the
            // configured URL, and no answer from elsewhere can pass for a
            // delivery.
            let refused = crate::redirect::refused(
                &self.messages_url,
                status,
                response.headers(),
                crate::redirect::WHY_POST,
            );
            return PostResult::Answer {
                status: status.as_u16(),
                request_id: None,
                error_type: Some(ERROR_REDIRECT.to_owned()),
                message: Some(refused.to_string()),
                retry_after,
            };
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(media_type);
        let status = status.as_u16();
        let (bytes, complete) = match read_capped(response).await {
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
            match field(&["request_id"]).filter(|id| !id.is_empty()) {
                Some(id) => (Some(id), None, None),
                None => (
                    None,
                    Some(ERROR_NO_REQUEST_ID.to_owned()),
                    Some(no_request_id(
                        status,
                        &bytes,
                        complete,
                        content_type.as_deref(),
                        json.as_ref(),
                    )),
                ),
            }
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

/// `error_type` of a 2xx answer without a string `request_id`.
pub const ERROR_NO_REQUEST_ID: &str = "no_request_id";
/// `error_type` of a 3xx answer (never followed).
pub const ERROR_REDIRECT: &str = "redirect";

/// What a 2xx without a usable `request_id` held, in words, without a byte
/// of the body itself (it could be anything: a portal's page, a reflected
/// secret): e.g. `HTTP 200 without a request_id (body: 14 bytes of
/// text/html, not JSON)`.
fn no_request_id(
    status: u16,
    bytes: &[u8],
    complete: bool,
    content_type: Option<&str>,
    json: Option<&serde_json::Value>,
) -> String {
    if bytes.is_empty() {
        return format!("HTTP {status} without a request_id (empty body)");
    }
    let size = if complete {
        format!("{} bytes", bytes.len())
    } else {
        format!("more than {MAX_ANSWER_BYTES} bytes")
    };
    let what = content_type.unwrap_or("no content type");
    let shape = match json.map(|j| j.get("request_id")) {
        None => "not JSON",
        Some(None) => "no request_id in it",
        Some(Some(serde_json::Value::String(_))) => "an empty request_id",
        Some(Some(serde_json::Value::Null)) => "a null request_id",
        Some(Some(serde_json::Value::Number(_))) => "a request_id that is a number",
        Some(Some(_)) => "a request_id that is not a string",
    };
    format!("HTTP {status} without a request_id (body: {size} of {what}, {shape})")
}

/// The media type of a `Content-Type` value (`text/html` of
/// `text/html; charset=utf-8`), cut short and limited to the characters a
/// media type has, so a hostile header cannot put anything else in a log.
fn media_type(value: &str) -> String {
    let media: String = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/+-.".contains(*c))
        .take(60)
        .collect();
    if media.is_empty() {
        "an unnamed content type".to_owned()
    } else {
        media
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

/// The answer's body up to [`MAX_ANSWER_BYTES`], and whether that was all of it.
async fn read_capped(mut response: reqwest::Response) -> Result<(Vec<u8>, bool), PostResult> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > MAX_ANSWER_BYTES {
                    // Enough to classify by status; the rest is noise.
                    return Ok((out, false));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok((out, true)),
            Err(e) => return Err(transport(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The anomaly is named by size, media type and shape, never by a
    /// byte of the body.
    #[test]
    fn an_answer_without_a_request_id_is_described_not_echoed() {
        let describe = |body: &str, content_type: Option<&str>| {
            let json = serde_json::from_str::<serde_json::Value>(body).ok();
            no_request_id(200, body.as_bytes(), true, content_type, json.as_ref())
        };
        assert_eq!(
            describe("<html>s3cret</html>", Some("text/html")),
            "HTTP 200 without a request_id (body: 19 bytes of text/html, not JSON)"
        );
        assert_eq!(
            describe(r#"{"request_id":[1]}"#, None),
            "HTTP 200 without a request_id (body: 18 bytes of no content type, a request_id that is not a string)"
        );
        assert_eq!(
            no_request_id(200, b"x", false, Some("text/plain"), None),
            format!(
                "HTTP 200 without a request_id (body: more than {MAX_ANSWER_BYTES} bytes of text/plain, not JSON)"
            )
        );
        assert_eq!(media_type("Text/HTML; charset=utf-8"), "Text/HTML");
        assert_eq!(media_type("a\x1b[31mb\r\nc"), "a31mbc");
        assert_eq!(media_type(";"), "an unnamed content type");
        assert_eq!(media_type(&"x".repeat(500)).len(), 60);
    }

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
