//! Another origin: a second listener (same IP, another port) that answers
//! every request with one configurable answer and records everything it
//! receives (method, path, query, headers, body), so that a test can point a
//! [`crate::Fault::Redirect`] at it and then prove that nothing (no
//! credential, no POST body, no request at all) reached it.
//!
//! Its default answer is a tempting one: a 200 JSON object holding a
//! `request_id`, an `access_token` and an empty `reviews` list, which a
//! client that followed the redirect would happily take for a delivery, a
//! token or an empty page.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What [`Elsewhere`] answers by default (see the module docs).
pub const ELSEWHERE_DEFAULT_BODY: &str = r#"{"request_id":"elsewhere-request-id","access_token":"elsewhere-access-token","token_type":"Bearer","expires_in":3600,"reviews":[],"data":[]}"#;

/// The most of a request body kept per request: enough to find any secret a
/// client sends; a hostile client cannot make the recorder hold more.
const MAX_RECORDED_BODY: usize = 1024 * 1024;

/// The most of a request body read at all.
const MAX_READ_BODY: usize = 64 * 1024 * 1024;

/// One request received by [`Elsewhere`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (`None` when there was none).
    pub query: Option<String>,
    /// Every header, names lowercase, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// The body (at most 1 MiB of it).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The request as one text (request line, headers, body), for a test
    /// that searches it for any secret.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} {}{}\n",
            self.method,
            self.path,
            self.query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\n"));
        }
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&self.body));
        out
    }
}

#[derive(Clone, Debug)]
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: String,
}

#[derive(Default)]
struct Recorded {
    requests: Vec<RecordedRequest>,
    answer: Option<Answer>,
}

/// The other origin (cheap to clone; clones share what was recorded).
#[derive(Clone)]
pub struct Elsewhere {
    addr: SocketAddr,
    inner: Arc<Mutex<Recorded>>,
}

impl Elsewhere {
    pub(crate) fn new(addr: SocketAddr) -> Elsewhere {
        Elsewhere {
            addr,
            inner: Arc::new(Mutex::new(Recorded::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.inner.lock().expect("elsewhere mutex poisoned")
    }

    /// `http://IP:PORT`: the origin to redirect clients to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Answers every request from now on with `status`, `content_type` (none
    /// when `None`) and `body`, instead of the default.
    pub fn set_answer(&self, status: u16, content_type: Option<&str>, body: &str) {
        self.lock().answer = Some(Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            content_type: content_type.map(str::to_owned),
            body: body.to_owned(),
        });
    }

    pub(crate) fn router(&self) -> Router {
        Router::new().fallback(record).with_state(self.clone())
    }
}

async fn record(State(elsewhere): State<Elsewhere>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // A body over the cap is cut, not refused: the test wants to see it.
    let body = match axum::body::to_bytes(body, MAX_READ_BODY).await {
        Ok(bytes) => bytes[..bytes.len().min(MAX_RECORDED_BODY)].to_vec(),
        Err(_) => b"<body unreadable or over 64 MiB>".to_vec(),
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    tracing::debug!(method = %recorded.method, path = %recorded.path, "elsewhere received a request");
    let answer = {
        let mut inner = elsewhere.lock();
        inner.requests.push(recorded);
        inner.answer.clone()
    };
    let answer = answer.unwrap_or_else(|| Answer {
        status: StatusCode::OK,
        content_type: Some("application/json".into()),
        body: ELSEWHERE_DEFAULT_BODY.into(),
    });
    let mut response = (answer.status, answer.body).into_response();
    response.headers_mut().remove(header::CONTENT_TYPE);
    if let Some(value) = answer
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
