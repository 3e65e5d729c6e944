//! The Cloud Pub/Sub emulator (served under `/pubsub`): topics, pull
//! subscriptions, and the REST calls a subscriber makes, in the shapes of
//! the v1 REST reference (cloud.google.com/pubsub/docs/reference/rest/v1):
//!
//! - `POST /v1/{subscription}:pull` `{"maxMessages":N,"returnImmediately":b}` →
//!   `{"receivedMessages":[{"ackId","message":{"data","attributes","messageId","publishTime"},"deliveryAttempt"}]}`,
//!   or `{}` when there is nothing (proto3 JSON omits an empty list). Without
//!   `returnImmediately` an empty pull waits up to [`PubSubEmulator::set_pull_wait`]
//!   for a message, as the real service may ("wait for a bounded amount of time").
//! - `POST /v1/{subscription}:acknowledge` `{"ackIds":[...]}` → `{}`.
//! - `POST /v1/{subscription}:modifyAckDeadline` `{"ackIds":[...],"ackDeadlineSeconds":0..=600}`
//!   → `{}`; 0 makes the message available again at once (a "nack").
//! - `GET /v1/{subscription}` → the `Subscription` resource (`ackDeadlineSeconds`
//!   default 10); `PUT` creates one (`{"topic","ackDeadlineSeconds"}`, 10..=600),
//!   `DELETE` deletes it.
//! - `PUT /v1/{topic}` creates a topic; `POST /v1/{topic}:publish`
//!   `{"messages":[{"data","attributes"}]}` → `{"messageIds":[...]}`.
//!
//! Delivery semantics reproduced: a pulled message is leased for the
//! subscription's ack deadline under a fresh `ackId`; unacknowledged, it is
//! delivered again after the deadline with `deliveryAttempt` one higher (the
//! real service fills `deliveryAttempt` only under a dead-letter policy:
//! clients must treat it as optional); an ack with the id of a lease that
//! has since been redelivered does nothing; acknowledging twice is no error.
//! Messages published before a subscription exists never reach it.
//!
//! Faults: the shared plan ([`Endpoint::PubSubPull`], [`Endpoint::PubSubAck`],
//! [`Endpoint::PubSubAdmin`]) for 5xx/429/drops/slowness, a 403
//! `PERMISSION_DENIED` per subscription ([`PubSubEmulator::deny`]), a 404
//! `NOT_FOUND` after [`PubSubEmulator::delete_subscription`]. Every call
//! needs a bearer token from the service-account token endpoint or the
//! Google OAuth emulator (401 `UNAUTHENTICATED` otherwise).
//!
//! Time: ack deadlines run on the emulator's clock, which tests move forward
//! with [`PubSubEmulator::advance_clock`] instead of sleeping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::auth::bearer_token;
use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::google::{GoogleEmulator, google_error, list_fault_body};
use crate::server::{ConnectionKill, drop_connection};
use crate::service_account::ServiceAccountEmulator;

/// The topic the sandbox creates at start, for the Business Profile
/// notification setting to name.
pub const SANDBOX_PUBSUB_TOPIC: &str = "projects/sandbox-project/topics/gbp-reviews";
/// The pull subscription on [`SANDBOX_PUBSUB_TOPIC`] the sandbox creates at start.
pub const SANDBOX_PUBSUB_SUBSCRIPTION: &str = "projects/sandbox-project/subscriptions/review-sync";

/// The ack deadline of a subscription created without one (the real default).
pub const DEFAULT_ACK_DEADLINE: Duration = Duration::from_secs(10);
/// The largest ack deadline, and the largest `:modifyAckDeadline` value.
const MAX_ACK_DEADLINE_S: u64 = 600;
/// The smallest ack deadline a subscription can be created with over REST.
const MIN_ACK_DEADLINE_S: u64 = 10;
/// The most messages one pull returns, whatever `maxMessages` asks.
const MAX_PULL: usize = 1000;

/// A message as a subscriber or a test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubSubMessage {
    /// `messageId`.
    pub message_id: String,
    /// The decoded `data`.
    pub data: Vec<u8>,
    /// `attributes`.
    pub attributes: BTreeMap<String, String>,
    /// `publishTime` (RFC 3339, UTC).
    pub publish_time: String,
}

struct Lease {
    ack_id: String,
    /// On the emulator's clock.
    expires: Instant,
}

struct Held {
    message: Arc<PubSubMessage>,
    delivery_attempt: u32,
    lease: Option<Lease>,
}

struct Subscription {
    topic: String,
    ack_deadline: Duration,
    /// In publish order, keyed by a per-subscription sequence number.
    messages: BTreeMap<u64, Held>,
    /// The current lease's ack id → the message's sequence number.
    leases: HashMap<String, u64>,
    next_seq: u64,
}

struct PubSubState {
    /// Topic name → its subscriptions' names.
    topics: BTreeMap<String, Vec<String>>,
    subscriptions: BTreeMap<String, Subscription>,
    /// Subscriptions answering 403 `PERMISSION_DENIED`.
    denied: HashSet<String>,
    next_message_id: u64,
    next_ack: u64,
    /// Added to the wall clock: how far tests moved the emulator's time.
    clock_offset: Duration,
    /// How long an empty pull without `returnImmediately` waits.
    pull_wait: Duration,
    pulls: u64,
    acks: u64,
    modacks: u64,
    published: u64,
    /// Pulls waiting for a message right now.
    waiting: usize,
}

impl PubSubState {
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }
}

/// Handle on the Pub/Sub emulator (cheap to clone; clones share state).
#[derive(Clone)]
pub struct PubSubEmulator {
    inner: Arc<Mutex<PubSubState>>,
    /// Woken on every publish, nack, deadline change and clock move, so a
    /// waiting pull looks again.
    changed: Arc<Notify>,
    faults: Faults,
    service_account: ServiceAccountEmulator,
    google: GoogleEmulator,
}

/// Why a subscription call failed: an HTTP status and Google's message.
type CallError = (StatusCode, String);

fn not_found(name: &str) -> CallError {
    (
        StatusCode::NOT_FOUND,
        format!("Resource not found (resource={}).", short_name(name)),
    )
}

fn short_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

impl PubSubEmulator {
    pub(crate) fn new(
        faults: &Faults,
        service_account: ServiceAccountEmulator,
        google: GoogleEmulator,
    ) -> PubSubEmulator {
        let emulator = PubSubEmulator {
            inner: Arc::new(Mutex::new(PubSubState {
                topics: BTreeMap::new(),
                subscriptions: BTreeMap::new(),
                denied: HashSet::new(),
                // Real message ids are long decimal strings.
                next_message_id: 10_000_000_000_000_001,
                next_ack: 1,
                clock_offset: Duration::ZERO,
                pull_wait: Duration::from_secs(2),
                pulls: 0,
                acks: 0,
                modacks: 0,
                published: 0,
                waiting: 0,
            })),
            changed: Arc::new(Notify::new()),
            faults: faults.scoped(Endpoint::PUBSUB),
            service_account,
            google,
        };
        emulator.create_topic(SANDBOX_PUBSUB_TOPIC);
        emulator.create_subscription(
            SANDBOX_PUBSUB_SUBSCRIPTION,
            SANDBOX_PUBSUB_TOPIC,
            DEFAULT_ACK_DEADLINE,
        );
        emulator
    }

    fn lock(&self) -> MutexGuard<'_, PubSubState> {
        self.inner.lock().expect("pubsub emulator mutex poisoned")
    }

    /// Creates a topic (`projects/{p}/topics/{t}`); false if it exists.
    pub fn create_topic(&self, topic: &str) -> bool {
        let mut state = self.lock();
        if state.topics.contains_key(topic) {
            return false;
        }
        state.topics.insert(topic.to_owned(), Vec::new());
        true
    }

    /// Whether `topic` exists.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.lock().topics.contains_key(topic)
    }

    /// Creates a pull subscription on `topic` with this ack deadline (any
    /// length here, unlike REST's 10..=600 s); false if the topic does not
    /// exist or the subscription does. An existing subscription of that
    /// name that was deleted can be created again, empty.
    pub fn create_subscription(&self, name: &str, topic: &str, ack_deadline: Duration) -> bool {
        let mut state = self.lock();
        if state.subscriptions.contains_key(name) {
            return false;
        }
        let Some(subscribers) = state.topics.get_mut(topic) else {
            return false;
        };
        subscribers.push(name.to_owned());
        state.subscriptions.insert(
            name.to_owned(),
            Subscription {
                topic: topic.to_owned(),
                ack_deadline,
                messages: BTreeMap::new(),
                leases: HashMap::new(),
                next_seq: 1,
            },
        );
        true
    }

    /// Deletes a subscription and its messages: later calls answer 404
    /// `NOT_FOUND`. False if there was none.
    pub fn delete_subscription(&self, name: &str) -> bool {
        let mut state = self.lock();
        let Some(subscription) = state.subscriptions.remove(name) else {
            return false;
        };
        if let Some(subscribers) = state.topics.get_mut(&subscription.topic) {
            subscribers.retain(|s| s != name);
        }
        drop(state);
        self.changed.notify_waiters();
        true
    }

    /// The caller loses (or regains) permission on `subscription`: its
    /// calls answer 403 `PERMISSION_DENIED`.
    pub fn deny(&self, subscription: &str, denied: bool) {
        let mut state = self.lock();
        if denied {
            state.denied.insert(subscription.to_owned());
        } else {
            state.denied.remove(subscription);
        }
    }

    /// How long an empty pull without `returnImmediately` waits for a message.
    pub fn set_pull_wait(&self, wait: Duration) {
        self.lock().pull_wait = wait;
    }

    /// Moves the emulator's clock forward: leases whose ack deadline it
    /// passes become deliverable again.
    pub fn advance_clock(&self, by: Duration) {
        self.lock().clock_offset += by;
        self.changed.notify_waiters();
    }

    /// Publishes a message to `topic` (to every subscription it has now)
    /// and returns its id; `None` if the topic does not exist.
    pub fn publish(
        &self,
        topic: &str,
        data: &[u8],
        attributes: BTreeMap<String, String>,
    ) -> Option<String> {
        let mut state = self.lock();
        let subscribers = state.topics.get(topic)?.clone();
        let id = state.next_message_id.to_string();
        state.next_message_id += 1;
        state.published += 1;
        let message = Arc::new(PubSubMessage {
            message_id: id.clone(),
            data: data.to_vec(),
            attributes,
            publish_time: chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
        });
        for name in subscribers {
            if let Some(subscription) = state.subscriptions.get_mut(&name) {
                let seq = subscription.next_seq;
                subscription.next_seq += 1;
                subscription.messages.insert(
                    seq,
                    Held {
                        message: Arc::clone(&message),
                        delivery_attempt: 0,
                        lease: None,
                    },
                );
            }
        }
        drop(state);
        self.changed.notify_waiters();
        Some(id)
    }

    /// The messages `subscription` still holds (unacknowledged, leased or
    /// not), in publish order; empty for an unknown subscription.
    pub fn backlog(&self, subscription: &str) -> Vec<PubSubMessage> {
        self.lock()
            .subscriptions
            .get(subscription)
            .map(|s| s.messages.values().map(|h| (*h.message).clone()).collect())
            .unwrap_or_default()
    }

    /// Messages published (to any topic) so far.
    pub fn published(&self) -> u64 {
        self.lock().published
    }

    /// `:pull` calls that reached the handler.
    pub fn pulls(&self) -> u64 {
        self.lock().pulls
    }

    /// Pulls waiting for a message right now (they found none and the
    /// request did not ask to return immediately).
    pub fn waiting_pulls(&self) -> usize {
        self.lock().waiting
    }

    /// Ack ids acknowledged (each one counted, known or not).
    pub fn acks(&self) -> u64 {
        self.lock().acks
    }

    /// `:modifyAckDeadline` calls that reached the handler.
    pub fn modify_ack_deadline_calls(&self) -> u64 {
        self.lock().modacks
    }

    /// The fault plan, scoped to the Pub/Sub endpoints.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        bearer_token(headers)
            .is_some_and(|t| self.service_account.token_valid(t) || self.google.token_valid(t))
    }

    /// Leases up to `max` deliverable messages.
    fn try_pull(&self, name: &str, max: usize) -> Result<Vec<Value>, CallError> {
        let mut state = self.lock();
        if state.denied.contains(name) {
            return Err(permission_denied());
        }
        let now = state.now();
        let mut ack_number = state.next_ack;
        let Some(subscription) = state.subscriptions.get_mut(name) else {
            return Err(not_found(name));
        };
        let deadline = subscription.ack_deadline;
        let mut out = Vec::new();
        let mut new_leases = Vec::new();
        for (seq, held) in subscription.messages.iter_mut() {
            if out.len() >= max {
                break;
            }
            if held.lease.as_ref().is_some_and(|l| l.expires > now) {
                continue;
            }
            let ack_id = format!("sandbox-ack-{ack_number:012}-{}", held.message.message_id);
            ack_number += 1;
            if let Some(old) = held.lease.take() {
                new_leases.push((old.ack_id, None));
            }
            held.delivery_attempt += 1;
            held.lease = Some(Lease {
                ack_id: ack_id.clone(),
                expires: now + deadline,
            });
            new_leases.push((ack_id.clone(), Some(*seq)));
            out.push(received_message_json(&ack_id, held));
        }
        for (ack_id, seq) in new_leases {
            match seq {
                Some(seq) => subscription.leases.insert(ack_id, seq),
                None => subscription.leases.remove(&ack_id),
            };
        }
        state.next_ack = ack_number;
        Ok(out)
    }

    /// When the next lease of `name` runs out, in real (tokio) time.
    fn next_expiry(&self, name: &str) -> Option<Instant> {
        let state = self.lock();
        let offset = state.clock_offset;
        state
            .subscriptions
            .get(name)?
            .messages
            .values()
            .filter_map(|h| h.lease.as_ref().map(|l| l.expires))
            .min()
            .map(|at| at.checked_sub(offset).unwrap_or_else(Instant::now))
    }

    fn acknowledge(&self, name: &str, ack_ids: &[String]) -> Result<(), CallError> {
        let mut state = self.lock();
        if state.denied.contains(name) {
            return Err(permission_denied());
        }
        state.acks += ack_ids.len() as u64;
        let Some(subscription) = state.subscriptions.get_mut(name) else {
            return Err(not_found(name));
        };
        for ack_id in ack_ids {
            // An ack id whose lease was replaced by a redelivery is no
            // longer in `leases`: acking it does nothing, as on Pub/Sub.
            if let Some(seq) = subscription.leases.remove(ack_id) {
                subscription.messages.remove(&seq);
            }
        }
        Ok(())
    }

    fn modify_ack_deadline(
        &self,
        name: &str,
        ack_ids: &[String],
        seconds: u64,
    ) -> Result<(), CallError> {
        let mut state = self.lock();
        if state.denied.contains(name) {
            return Err(permission_denied());
        }
        state.modacks += 1;
        let now = state.now();
        let Some(subscription) = state.subscriptions.get_mut(name) else {
            return Err(not_found(name));
        };
        for ack_id in ack_ids {
            let Some(seq) = subscription.leases.get(ack_id) else {
                continue;
            };
            if let Some(lease) = subscription
                .messages
                .get_mut(seq)
                .and_then(|h| h.lease.as_mut())
            {
                lease.expires = now + Duration::from_secs(seconds);
            }
        }
        drop(state);
        self.changed.notify_waiters();
        Ok(())
    }

    fn subscription_json(&self, name: &str) -> Result<Value, CallError> {
        let state = self.lock();
        if state.denied.contains(name) {
            return Err(permission_denied());
        }
        let subscription = state
            .subscriptions
            .get(name)
            .ok_or_else(|| not_found(name))?;
        let topic = if state.topics.contains_key(&subscription.topic) {
            subscription.topic.clone()
        } else {
            "_deleted-topic_".to_owned()
        };
        Ok(json!({
            "name": name,
            "topic": topic,
            "pushConfig": {},
            "ackDeadlineSeconds": subscription.ack_deadline.as_secs().max(1),
            "messageRetentionDuration": "604800s",
            "expirationPolicy": {"ttl": "2678400s"},
            "state": "ACTIVE",
        }))
    }
}

fn permission_denied() -> CallError {
    (
        StatusCode::FORBIDDEN,
        "User not authorized to perform this action.".to_owned(),
    )
}

fn received_message_json(ack_id: &str, held: &Held) -> Value {
    let message = &held.message;
    let mut m = Map::new();
    // proto3 JSON: `data` and `attributes` are left out when empty.
    if !message.data.is_empty() {
        m.insert("data".into(), json!(BASE64.encode(&message.data)));
    }
    if !message.attributes.is_empty() {
        m.insert("attributes".into(), json!(message.attributes));
    }
    m.insert("messageId".into(), json!(message.message_id));
    m.insert("publishTime".into(), json!(message.publish_time));
    json!({
        "ackId": ack_id,
        "message": Value::Object(m),
        "deliveryAttempt": held.delivery_attempt,
    })
}

/// Routes relative to `/pubsub`.
pub(crate) fn router(emulator: PubSubEmulator) -> Router {
    Router::new()
        .route(
            "/v1/projects/{project}/subscriptions/{subscription}",
            post(subscription_call)
                .get(get_subscription)
                .put(put_subscription)
                .delete(delete_subscription),
        )
        .route(
            "/v1/projects/{project}/topics/{topic}",
            post(topic_call).put(put_topic),
        )
        .with_state(emulator)
}

fn error(call: CallError) -> Response {
    google_error(call.0, &call.1)
}

/// Runs the fault plan and the bearer check shared by every call.
async fn gate(
    emulator: &PubSubEmulator,
    endpoint: Endpoint,
    kill: Option<&ConnectionKill>,
    headers: &HeaderMap,
) -> Option<Response> {
    match intercept(emulator.faults.take(endpoint), list_fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return Some(response),
        Intercept::Drop => return Some(drop_connection(kill).await),
    }
    if !emulator.authorized(headers) {
        return Some(google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ));
    }
    None
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullRequest {
    max_messages: Option<Value>,
    #[serde(default)]
    return_immediately: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AckRequest {
    #[serde(default)]
    ack_ids: Vec<String>,
    ack_deadline_seconds: Option<Value>,
}

/// `maxMessages` as the API takes it: a positive integer, as a JSON number
/// or (int32 in proto3 JSON) a string.
fn positive_int(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

async fn subscription_call(
    State(emulator): State<PubSubEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path((project, subscription)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some((id, verb)) = subscription.split_once(':') else {
        return google_error(StatusCode::NOT_FOUND, "Method not found.");
    };
    let name = format!("projects/{project}/subscriptions/{id}");
    match verb {
        "pull" => pull(&emulator, kill.as_deref(), &name, &headers, &body).await,
        "acknowledge" | "modifyAckDeadline" => {
            if let Some(response) =
                gate(&emulator, Endpoint::PubSubAck, kill.as_deref(), &headers).await
            {
                return response;
            }
            let request: AckRequest = match serde_json::from_slice(&body) {
                Ok(request) => request,
                Err(e) => {
                    return google_error(
                        StatusCode::BAD_REQUEST,
                        &format!("Invalid JSON payload received. {e}"),
                    );
                }
            };
            if request.ack_ids.is_empty() {
                return google_error(StatusCode::BAD_REQUEST, "No ack ids specified.");
            }
            if request
                .ack_ids
                .iter()
                .any(|a| !a.starts_with("sandbox-ack-"))
            {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "Some acknowledgement ids in the request were invalid. This could be because the acknowledgement ids have expired or the acknowledgement ids were malformed.",
                );
            }
            let result = if verb == "acknowledge" {
                emulator.acknowledge(&name, &request.ack_ids)
            } else {
                match positive_int(request.ack_deadline_seconds.as_ref()) {
                    Some(seconds) if seconds <= MAX_ACK_DEADLINE_S => {
                        emulator.modify_ack_deadline(&name, &request.ack_ids, seconds)
                    }
                    _ => Err((
                        StatusCode::BAD_REQUEST,
                        "Invalid ack deadline given; it must be between 0 and 600 seconds."
                            .to_owned(),
                    )),
                }
            };
            match result {
                Ok(()) => Json(json!({})).into_response(),
                Err(e) => error(e),
            }
        }
        _ => google_error(StatusCode::NOT_FOUND, "Method not found."),
    }
}

async fn pull(
    emulator: &PubSubEmulator,
    kill: Option<&ConnectionKill>,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    emulator.lock().pulls += 1;
    if let Some(response) = gate(emulator, Endpoint::PubSubPull, kill, headers).await {
        return response;
    }
    let request: PullRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid JSON payload received. {e}"),
            );
        }
    };
    let Some(max) = positive_int(request.max_messages.as_ref()).filter(|n| *n > 0) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "maxMessages must be a positive integer.",
        );
    };
    let max = usize::try_from(max).map_or(MAX_PULL, |m| m.min(MAX_PULL));
    let give_up = Instant::now() + emulator.lock().pull_wait;
    loop {
        // Registered before looking, so a publish between the look and the
        // wait still wakes this pull.
        let changed = emulator.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match emulator.try_pull(name, max) {
            Err(e) => return error(e),
            Ok(messages) if !messages.is_empty() => {
                return Json(json!({"receivedMessages": messages})).into_response();
            }
            Ok(_) => {}
        }
        if request.return_immediately || Instant::now() >= give_up {
            return Json(json!({})).into_response();
        }
        let wake = emulator
            .next_expiry(name)
            .map_or(give_up, |at| at.min(give_up));
        let _waiting = Waiting::new(emulator);
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Counts a pull as waiting for as long as it lives (also when the client
/// hangs up and the handler is dropped mid-wait).
struct Waiting<'a>(&'a PubSubEmulator);

impl<'a> Waiting<'a> {
    fn new(emulator: &'a PubSubEmulator) -> Waiting<'a> {
        emulator.lock().waiting += 1;
        Waiting(emulator)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

async fn get_subscription(
    State(emulator): State<PubSubEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path((project, subscription)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = gate(&emulator, Endpoint::PubSubAdmin, kill.as_deref(), &headers).await
    {
        return response;
    }
    let name = format!("projects/{project}/subscriptions/{subscription}");
    match emulator.subscription_json(&name) {
        Ok(value) => Json(value).into_response(),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSubscription {
    topic: String,
    ack_deadline_seconds: Option<Value>,
}

async fn put_subscription(
    State(emulator): State<PubSubEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path((project, subscription)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = gate(&emulator, Endpoint::PubSubAdmin, kill.as_deref(), &headers).await
    {
        return response;
    }
    let name = format!("projects/{project}/subscriptions/{subscription}");
    let request: NewSubscription = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid JSON payload received. {e}"),
            );
        }
    };
    let deadline = match request.ack_deadline_seconds.as_ref() {
        None => DEFAULT_ACK_DEADLINE,
        Some(value) => match positive_int(Some(value)) {
            Some(0) => DEFAULT_ACK_DEADLINE,
            Some(s) if (MIN_ACK_DEADLINE_S..=MAX_ACK_DEADLINE_S).contains(&s) => {
                Duration::from_secs(s)
            }
            _ => {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "The value for ack_deadline_seconds is invalid; it must be between 10 and 600.",
                );
            }
        },
    };
    if !emulator.has_topic(&request.topic) {
        return google_error(
            StatusCode::NOT_FOUND,
            &format!(
                "Resource not found (resource={}).",
                short_name(&request.topic)
            ),
        );
    }
    if !emulator.create_subscription(&name, &request.topic, deadline) {
        return google_error(
            StatusCode::CONFLICT,
            "Resource already exists in the project (resource=subscription).",
        );
    }
    match emulator.subscription_json(&name) {
        Ok(value) => Json(value).into_response(),
        Err(e) => error(e),
    }
}

async fn delete_subscription(
    State(emulator): State<PubSubEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path((project, subscription)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = gate(&emulator, Endpoint::PubSubAdmin, kill.as_deref(), &headers).await
    {
        return response;
    }
    let name = format!("projects/{project}/subscriptions/{subscription}");
    if emulator.delete_subscription(&name) {
        Json(json!({})).into_response()
    } else {
        error(not_found(&name))
    }
}

async fn put_topic(
    State(emulator): State<PubSubEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path((project, topic)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = gate(&emulator, Endpoint::PubSubAdmin, kill.as_deref(), &headers).await
    {
        return response;
    }
    let name = format!("projects/{project}/topics/{topic}");
    if emulator.create_topic(&name) {
        Json(json!({"name": name})).into_response()
    } else {
        google_error(
            StatusCode::CONFLICT,
            "Resource already exists in the project (resource=topic).",
        )
    }
}

#[derive(Deserialize)]
struct PublishRequest {
    #[serde(default)]
    messages: Vec<PublishedMessage>,
}

#[derive(Deserialize)]
struct PublishedMessage {
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

async fn topic_call(
    State(emulator): State<PubSubEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path((project, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some((id, "publish")) = topic.split_once(':') else {
        return google_error(StatusCode::NOT_FOUND, "Method not found.");
    };
    if let Some(response) = gate(&emulator, Endpoint::PubSubAdmin, kill.as_deref(), &headers).await
    {
        return response;
    }
    let name = format!("projects/{project}/topics/{id}");
    let request: PublishRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid JSON payload received. {e}"),
            );
        }
    };
    if request.messages.is_empty() {
        return google_error(StatusCode::BAD_REQUEST, "The request contains no messages.");
    }
    let mut decoded = Vec::with_capacity(request.messages.len());
    for message in request.messages {
        let Ok(data) = BASE64.decode(message.data.as_bytes()) else {
            return google_error(
                StatusCode::BAD_REQUEST,
                "Invalid value at 'messages[0].data' (TYPE_BYTES), Base64 decoding failed.",
            );
        };
        if data.is_empty() && message.attributes.is_empty() {
            return google_error(
                StatusCode::BAD_REQUEST,
                "Some messages are empty: a message needs data or attributes.",
            );
        }
        decoded.push((data, message.attributes));
    }
    let mut ids = Vec::with_capacity(decoded.len());
    for (data, attributes) in decoded {
        match emulator.publish(&name, &data, attributes) {
            Some(id) => ids.push(id),
            None => return error(not_found(&name)),
        }
    }
    Json(json!({"messageIds": ids})).into_response()
}

/// Control routes relative to `/_sandbox/pubsub`, for `review-sync
/// sandbox` users and child-process benchmarks: state, subscriptions,
/// 403/404 faults and the clock.
pub(crate) fn control_router(emulator: PubSubEmulator) -> Router {
    Router::new()
        .route("/state", get(control_state))
        .route("/subscriptions", post(control_create_subscription))
        .route("/deny", post(control_deny))
        .route("/delete", post(control_delete))
        .route("/advance_clock", post(control_advance_clock))
        .with_state(emulator)
}

async fn control_state(State(emulator): State<PubSubEmulator>) -> Json<Value> {
    let state = emulator.lock();
    let subscriptions: Map<String, Value> = state
        .subscriptions
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                json!({
                    "topic": s.topic,
                    "ack_deadline_seconds": s.ack_deadline.as_secs_f64(),
                    "backlog": s.messages.len(),
                    "denied": state.denied.contains(name),
                }),
            )
        })
        .collect();
    Json(json!({
        "topics": state.topics.keys().collect::<Vec<_>>(),
        "subscriptions": subscriptions,
        "published": state.published,
        "pulls": state.pulls,
        "acks": state.acks,
    }))
}

#[derive(Deserialize)]
struct ControlSubscription {
    name: String,
    topic: String,
    #[serde(default)]
    ack_deadline_seconds: Option<f64>,
}

async fn control_create_subscription(
    State(emulator): State<PubSubEmulator>,
    Json(body): Json<ControlSubscription>,
) -> Response {
    let deadline = body
        .ack_deadline_seconds
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= MAX_ACK_DEADLINE_S as f64)
        .map_or(DEFAULT_ACK_DEADLINE, Duration::from_secs_f64);
    emulator.create_topic(&body.topic);
    if emulator.create_subscription(&body.name, &body.topic, deadline) {
        Json(json!({"created": true})).into_response()
    } else {
        (
            StatusCode::CONFLICT,
            Json(json!({"error": "subscription exists"})),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct ControlDeny {
    subscription: String,
    #[serde(default = "yes")]
    denied: bool,
}

fn yes() -> bool {
    true
}

async fn control_deny(
    State(emulator): State<PubSubEmulator>,
    Json(body): Json<ControlDeny>,
) -> Json<Value> {
    emulator.deny(&body.subscription, body.denied);
    Json(json!({"denied": body.denied}))
}

#[derive(Deserialize)]
struct ControlDelete {
    subscription: String,
}

async fn control_delete(
    State(emulator): State<PubSubEmulator>,
    Json(body): Json<ControlDelete>,
) -> Json<Value> {
    Json(json!({"deleted": emulator.delete_subscription(&body.subscription)}))
}

#[derive(Deserialize)]
struct ControlClock {
    seconds: f64,
}

async fn control_advance_clock(
    State(emulator): State<PubSubEmulator>,
    Json(body): Json<ControlClock>,
) -> Response {
    if !(body.seconds.is_finite() && body.seconds >= 0.0 && body.seconds < 1e9) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "seconds must be a non-negative number"})),
        )
            .into_response();
    }
    emulator.advance_clock(Duration::from_secs_f64(body.seconds));
    Json(json!({"advanced_seconds": body.seconds})).into_response()
}
