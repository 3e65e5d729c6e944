//! The Travtus API emulator (served under `/travtus`): the client-credentials
//! token endpoint, `POST /messages/` with every documented error, the group
//! registry, and a record of everything received.
//!
//! Error bodies and texts are the documented ones (`{"error":{"type",
//! "message"}}`, see the "Create Review" page). Where the docs are silent
//! (malformed bodies, 429 bodies) the sandbox picks a shape and says so.
//!
//! **Invariant:** a request that gets a fault has no side effect: no token is
//! issued, no message is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::auth::{bearer_token, header_string, token_form};
use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::seed;
use crate::server::{ConnectionKill, drop_connection};

/// The client id the token endpoint accepts.
pub const TRAVTUS_CLIENT_ID: &str = "sandbox-client";
/// The client secret the token endpoint accepts.
pub const TRAVTUS_CLIENT_SECRET: &str = "sandbox-secret";
/// A bearer token that is always valid (never expires, is not affected by
/// `expire_all_tokens`/`revoke_all_tokens`) with access to every accessible group.
pub const TRAVTUS_STATIC_TOKEN: &str = "sandbox-static-token";

const MSG_MISSING_AUTHORIZATION: &str =
    "Your request does not include an 'Authorization' header with a bearer token for your account.";
const MSG_EXPIRED_TOKEN: &str = "The bearer token you have provided in the 'Authorization' header has expired. Please obtain a new one.";
const MSG_INVALID_AUTHORIZATION: &str =
    "The bearer token you have provided in the 'Authorization' header is invalid.";
const MSG_NO_GROUP: &str =
    "You must either provide a group id or group external reference in the request body.";
// The documented text really says "units": a copy-paste on Travtus's page.
const MSG_BOTH_GROUPS: &str = "You have provided both a group id and group external reference for the create/update units operation. Please only provide one of the two.";
const MSG_NO_ACCESS: &str = "You do not have access to the group you have provided.";
const MSG_GROUP_NOT_FOUND: &str = "We could not find a group with the ID you have provided.";

/// A Travtus group that messages can be posted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// UUID-shaped id, deterministic for a seed and creation order.
    pub id: String,
    /// The customer's own reference, e.g. `portfolio-1`.
    pub external_ref: String,
    /// Whether the sandbox's API client may post to it.
    pub accessible: bool,
}

/// A message accepted by `POST /messages/`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    /// The `request_id` returned to the client.
    pub request_id: String,
    /// Wall-clock time of acceptance.
    pub received_at: DateTime<Utc>,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<String>,
    /// The `Content-Type` header, if sent.
    pub content_type: Option<String>,
    /// The request body exactly as parsed (nulls and unknown fields kept).
    pub body: Value,
    /// Id of the group the message resolved to (from `group_id` or `group_external_ref`).
    pub group_id: String,
}

/// One request to any Travtus endpoint, whatever its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLogEntry {
    /// Wall-clock time the answer was decided.
    pub at: DateTime<Utc>,
    /// Request path, e.g. `/travtus/messages/`.
    pub path: String,
    /// HTTP status answered; 0 when the connection was dropped.
    pub status: u16,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<String>,
}

/// Handle on the Travtus emulator (cheap to clone; clones share state).
#[derive(Clone)]
pub struct TravtusEmulator {
    inner: Arc<Mutex<TravtusState>>,
    faults: Faults,
}

/// Everything the emulator remembers. One std mutex, held only for map
/// look-ups and pushes and never across an await, is fast enough for
/// thousands of requests per second and keeps the state consistent.
struct TravtusState {
    /// Lifetime given to tokens issued from now on.
    token_lifetime: Duration,
    /// Issued tokens and their expiry. Expired ones are kept so that using
    /// them answers `expired_token`, not `invalid_authorization`.
    tokens: HashMap<String, Instant>,
    groups: Vec<Group>,
    group_by_id: HashMap<String, usize>,
    group_by_ref: HashMap<String, usize>,
    /// Continues the seeded stream so groups added later get deterministic ids.
    group_rng: StdRng,
    messages: Vec<ReceivedMessage>,
    request_log: Vec<RequestLogEntry>,
    token_requests: u64,
    message_requests: u64,
}

impl TravtusState {
    fn add_group(&mut self, external_ref: &str, accessible: bool) -> Group {
        let group = Group {
            id: seed::uuid_like(&mut self.group_rng),
            external_ref: external_ref.to_owned(),
            accessible,
        };
        let index = self.groups.len();
        self.group_by_id.insert(group.id.clone(), index);
        self.group_by_ref.insert(group.external_ref.clone(), index);
        self.groups.push(group.clone());
        group
    }

    fn issue_token(&mut self) -> (String, Duration) {
        let token = format!("tt_{}", uuid::Uuid::new_v4().simple());
        let lifetime = self.token_lifetime;
        self.tokens.insert(token.clone(), Instant::now() + lifetime);
        (token, lifetime)
    }
}

/// Outcome of checking a bearer token.
enum TokenCheck {
    Valid,
    Unknown,
    Expired,
}

impl TravtusEmulator {
    /// A fresh emulator with the seeded groups.
    pub(crate) fn new(seed: u64, token_lifetime: Duration, faults: &Faults) -> TravtusEmulator {
        let mut state = TravtusState {
            token_lifetime,
            tokens: HashMap::new(),
            groups: Vec::new(),
            group_by_id: HashMap::new(),
            group_by_ref: HashMap::new(),
            group_rng: seed::group_rng(seed),
            messages: Vec::new(),
            request_log: Vec::new(),
            token_requests: 0,
            message_requests: 0,
        };
        for (external_ref, accessible) in seed::travtus_group_refs() {
            state.add_group(&external_ref, accessible);
        }
        TravtusEmulator {
            inner: Arc::new(Mutex::new(state)),
            faults: faults.scoped(Endpoint::TRAVTUS),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TravtusState> {
        self.inner.lock().expect("travtus emulator mutex poisoned")
    }

    /// All groups, in creation order.
    pub fn groups(&self) -> Vec<Group> {
        self.lock().groups.clone()
    }

    /// Registers a group (deterministic id) and returns it. A group with the
    /// same external ref is shadowed for look-ups by ref.
    pub fn add_group(&self, external_ref: &str, accessible: bool) -> Group {
        self.lock().add_group(external_ref, accessible)
    }

    /// The group with this external ref.
    pub fn group_by_ref(&self, external_ref: &str) -> Option<Group> {
        let state = self.lock();
        state
            .group_by_ref
            .get(external_ref)
            .map(|&i| state.groups[i].clone())
    }

    /// Accepted messages, in order of acceptance.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.lock().messages.clone()
    }

    /// The most recently accepted message.
    pub fn last_message(&self) -> Option<ReceivedMessage> {
        self.lock().messages.last().cloned()
    }

    /// How many messages were accepted.
    pub fn message_count(&self) -> usize {
        self.lock().messages.len()
    }

    /// How many tokens the token endpoint issued.
    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
    }

    /// How many `POST /messages/` reached the handler (accepted, rejected or faulted).
    pub fn message_requests(&self) -> u64 {
        self.lock().message_requests
    }

    /// Every request to a Travtus endpoint, in order.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.lock().request_log.clone()
    }

    /// Lifetime of tokens issued from now on (already issued ones keep theirs).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Makes every issued token expired (`expired_token`), except the static one.
    pub fn expire_all_tokens(&self) {
        let now = Instant::now();
        for expiry in self.lock().tokens.values_mut() {
            *expiry = now;
        }
    }

    /// Forgets every issued token (`invalid_authorization`), except the static one.
    pub fn revoke_all_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Issues a token directly, as a successful grant would (not counted as a request).
    pub fn issue_token(&self) -> String {
        self.lock().issue_token().0
    }

    /// The fault plan, scoped to the Travtus endpoints.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    fn check_token(&self, token: &str) -> TokenCheck {
        if token == TRAVTUS_STATIC_TOKEN {
            return TokenCheck::Valid;
        }
        match self.lock().tokens.get(token) {
            None => TokenCheck::Unknown,
            Some(expiry) if Instant::now() >= *expiry => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
        }
    }

    /// Records the outcome of a request and passes its response through.
    fn logged(&self, path: &str, idempotency_key: Option<String>, response: Response) -> Response {
        self.log(path, response.status().as_u16(), idempotency_key);
        response
    }

    fn log(&self, path: &str, status: u16, idempotency_key: Option<String>) {
        self.lock().request_log.push(RequestLogEntry {
            at: Utc::now(),
            path: path.to_owned(),
            status,
            idempotency_key,
        });
    }
}

/// Routes of the emulator, relative to `/travtus`.
pub(crate) fn router(emulator: TravtusEmulator) -> Router {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/messages/", post(messages))
        .route("/messages", post(messages))
        .with_state(emulator)
}

/// Body of a fault on `/messages/`: the documented error shape, except 429,
/// whose real body is undocumented and most likely the API Gateway default.
fn messages_fault_body(status: StatusCode) -> Value {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return json!({"message": "Too Many Requests"});
    }
    let kind = match status.as_u16() {
        500 => "internal_server_error",
        502 => "bad_gateway",
        503 => "service_unavailable",
        504 => "gateway_timeout",
        _ => "sandbox_fault",
    };
    json!({"error": {"type": kind, "message": format!("Sandbox fault: HTTP {status}.")}})
}

/// Body of a fault on the token endpoint, in the OAuth 2.0 error shape.
fn token_fault_body(status: StatusCode) -> Value {
    match status.as_u16() {
        429 => json!({"message": "Too Many Requests"}),
        503 => json!({"error": "temporarily_unavailable"}),
        _ => json!({"error": "server_error"}),
    }
}

async fn token(
    State(emulator): State<TravtusEmulator>,
    OriginalUri(uri): OriginalUri,
    kill: Option<Extension<ConnectionKill>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path();
    let fault = emulator.faults.take(Endpoint::TravtusToken);
    match intercept(fault, token_fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return emulator.logged(path, None, response),
        Intercept::Drop => {
            emulator.log(path, 0, None);
            return drop_connection(kill.as_deref()).await;
        }
    }

    let form = token_form(&headers, &body);
    let field = |name: &str| form.get(name).map(String::as_str);
    let response = if field("client_id") != Some(TRAVTUS_CLIENT_ID)
        || field("client_secret") != Some(TRAVTUS_CLIENT_SECRET)
    {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response()
    } else if field("grant_type") != Some("client_credentials") {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response()
    } else {
        let (token, lifetime) = {
            let mut state = emulator.lock();
            state.token_requests += 1;
            state.issue_token()
        };
        // Whole seconds left, never 0: a client must not see an
        // already-useless token even when a test sets a tiny lifetime.
        let expires_in = lifetime.as_secs().max(1);
        Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}))
            .into_response()
    };
    emulator.logged(path, None, response)
}

/// A documented (or sandbox-chosen) Travtus error, rendered as
/// `{"error":{"type","message"}}`.
struct TravtusError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl IntoResponse for TravtusError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"type": self.kind, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

fn travtus_error(status: StatusCode, kind: &'static str, message: &str) -> TravtusError {
    TravtusError {
        status,
        kind,
        message: message.to_owned(),
    }
}

/// The message's group identifiers after treating JSON null as absent.
struct GroupField {
    value: Option<String>,
    was_null: bool,
}

/// Reads `group_id`/`group_external_ref`: absent and null mean "not given",
/// a non-string is a malformed request.
fn group_field(
    body: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<GroupField, TravtusError> {
    match body.get(name) {
        None => Ok(GroupField {
            value: None,
            was_null: false,
        }),
        Some(Value::Null) => Ok(GroupField {
            value: None,
            was_null: true,
        }),
        Some(Value::String(s)) => Ok(GroupField {
            value: Some(s.clone()),
            was_null: false,
        }),
        Some(_) => Err(travtus_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("'{name}' must be a string."),
        )),
    }
}

/// How a message names its group.
enum GroupSelector {
    Id(String),
    ExternalRef(String),
}

/// Validates the body up to (not including) the group look-up and returns
/// it parsed, with how it names its group.
fn validate_body(body: &axum::body::Bytes) -> Result<(Value, GroupSelector), TravtusError> {
    let invalid =
        |message: &str| travtus_error(StatusCode::BAD_REQUEST, "invalid_request", message);
    let parsed: Value =
        serde_json::from_slice(body).map_err(|_| invalid("The request body is not valid JSON."))?;
    let object = parsed
        .as_object()
        .ok_or_else(|| invalid("The request body must be a JSON object."))?;

    if object.get("channel").and_then(Value::as_str) != Some("review") {
        return Err(travtus_error(
            StatusCode::BAD_REQUEST,
            "invalid_channel",
            "The channel of the message must be 'review'.",
        ));
    }
    let review_error =
        |message: &str| travtus_error(StatusCode::BAD_REQUEST, "invalid_review", message);
    let review = object
        .get("review")
        .and_then(Value::as_object)
        .ok_or_else(|| review_error("'review' must be an object."))?;
    for required in ["review_id", "source"] {
        if !review.get(required).is_some_and(Value::is_string) {
            return Err(review_error(&format!(
                "'review.{required}' must be a string."
            )));
        }
    }

    let id = group_field(object, "group_id")?;
    let external = group_field(object, "group_external_ref")?;
    // The documented texts, plus a note when a null was sent, so tests of
    // the client catch it serialising `None` as null.
    let nulls: Vec<&str> = [
        ("group_id", id.was_null),
        ("group_external_ref", external.was_null),
    ]
    .into_iter()
    .filter_map(|(name, null)| null.then_some(name))
    .collect();
    let with_nulls = |message: &str| {
        if nulls.is_empty() {
            message.to_owned()
        } else {
            format!("{message} (null given for: {})", nulls.join(", "))
        }
    };
    let selector = match (id.value, external.value) {
        (None, None) => {
            return Err(travtus_error(
                StatusCode::BAD_REQUEST,
                "no_group",
                &with_nulls(MSG_NO_GROUP),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(travtus_error(
                StatusCode::BAD_REQUEST,
                "both_group_identifiers_provided",
                MSG_BOTH_GROUPS,
            ));
        }
        (Some(id), None) => GroupSelector::Id(id),
        (None, Some(external_ref)) => GroupSelector::ExternalRef(external_ref),
    };
    Ok((parsed, selector))
}

async fn messages(
    State(emulator): State<TravtusEmulator>,
    OriginalUri(uri): OriginalUri,
    kill: Option<Extension<ConnectionKill>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path();
    let idempotency_key = header_string(&headers, "idempotency-key");
    emulator.lock().message_requests += 1;

    let fault = emulator.faults.take(Endpoint::TravtusMessages);
    match intercept(fault, messages_fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return emulator.logged(path, idempotency_key, response),
        Intercept::Drop => {
            emulator.log(path, 0, idempotency_key);
            return drop_connection(kill.as_deref()).await;
        }
    }

    let response = match accept_message(&emulator, &headers, &body, idempotency_key.clone()) {
        Ok(request_id) => Json(json!({"request_id": request_id})).into_response(),
        Err(error) => error.into_response(),
    };
    emulator.logged(path, idempotency_key, response)
}

/// Runs the documented checks in order and records the message; returns
/// the new `request_id` or the error response.
fn accept_message(
    emulator: &TravtusEmulator,
    headers: &HeaderMap,
    body: &axum::body::Bytes,
    idempotency_key: Option<String>,
) -> Result<String, TravtusError> {
    let token = bearer_token(headers).ok_or_else(|| {
        travtus_error(
            StatusCode::BAD_REQUEST,
            "missing_authorization",
            MSG_MISSING_AUTHORIZATION,
        )
    })?;
    match emulator.check_token(token) {
        TokenCheck::Valid => {}
        TokenCheck::Unknown => {
            return Err(travtus_error(
                StatusCode::UNAUTHORIZED,
                "invalid_authorization",
                MSG_INVALID_AUTHORIZATION,
            ));
        }
        TokenCheck::Expired => {
            return Err(travtus_error(
                StatusCode::UNAUTHORIZED,
                "expired_token",
                MSG_EXPIRED_TOKEN,
            ));
        }
    }

    let (parsed, selector) = validate_body(body)?;

    let mut state = emulator.lock();
    let index = match &selector {
        GroupSelector::Id(id) => state.group_by_id.get(id),
        GroupSelector::ExternalRef(external_ref) => state.group_by_ref.get(external_ref),
    };
    let group = index.map(|&i| &state.groups[i]).ok_or_else(|| {
        travtus_error(
            StatusCode::NOT_FOUND,
            "group_not_found",
            MSG_GROUP_NOT_FOUND,
        )
    })?;
    if !group.accessible {
        return Err(travtus_error(
            StatusCode::UNAUTHORIZED,
            "no_access_to_group",
            MSG_NO_ACCESS,
        ));
    }
    let group_id = group.id.clone();
    let request_id = uuid::Uuid::new_v4().to_string();
    state.messages.push(ReceivedMessage {
        request_id: request_id.clone(),
        received_at: Utc::now(),
        idempotency_key,
        content_type: header_string(headers, "content-type"),
        body: parsed,
        group_id,
    });
    Ok(request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_groups_are_deterministic() {
        let faults = Faults::new(1);
        let a = TravtusEmulator::new(5, Duration::from_secs(1), &faults);
        let b = TravtusEmulator::new(5, Duration::from_secs(1), &faults);
        let c = TravtusEmulator::new(6, Duration::from_secs(1), &faults);
        assert_eq!(a.groups(), b.groups());
        assert_ne!(a.groups(), c.groups());
        assert_eq!(a.add_group("x", true), b.add_group("x", true));
        let groups = a.groups();
        assert_eq!(groups.len(), 12);
        assert_eq!(groups[0].external_ref, "portfolio-1");
        assert_eq!(
            a.group_by_ref("restricted-1").map(|g| g.accessible),
            Some(false)
        );
        assert!(uuid::Uuid::parse_str(&groups[0].id).is_ok());
    }
}
