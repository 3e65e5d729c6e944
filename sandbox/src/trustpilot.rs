//! The Trustpilot emulator (served under `/trustpilot`): business unit
//! reviews, public (`GET /v1/business-units/{id}/reviews`, `apikey` header)
//! and private (`GET /v1/private/business-units/{id}/reviews`, business-user
//! bearer token), and the business-user token endpoint
//! (`POST /v1/oauth/oauth-business-users-for-applications/accesstoken`).
//!
//! What it reproduces of the real API:
//! - `apikey` as a header (or query parameter); missing or wrong: 401 in
//!   Apigee's `{"fault":{"faultstring","detail":{"errorcode"}}}` shape, as is
//!   an unknown or expired bearer token;
//! - the token endpoint: HTTP Basic `api_key:api_secret`, `grant_type`
//!   `password` (returns a refresh token), `refresh_token` and
//!   `client_credentials`; `expires_in` as a *string*; OAuth error codes
//!   (`invalid_client`, `invalid_grant`) on refusals;
//! - `page` (from 1; past the end: an empty list), `perPage` (1..=100,
//!   default 20) and `orderBy` (`createdat.desc` default, `createdat.asc`,
//!   `stars.desc`, `stars.asc`), with a `next-page` link while more remain
//!   (and a `prev-page` one after the first page), pointing at the host the
//!   request came to and keeping `perPage` and `orderBy`;
//! - reviews with titles, texts, stars, `createdAt` (with and without
//!   milliseconds), `updatedAt` null until an edit, consumers, replies;
//! - the key's quota (Trustpilot asks for at most 833 calls per 5 minutes
//!   and 10,000 per hour), off unless a test sets it
//!   ([`TrustpilotEmulator::set_rate_limit`]): 429 in Apigee's
//!   `policies.ratelimit.QuotaViolation` shape.
//!
//! **Invariant:** each unit's reviews are kept newest `createdAt` first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::TrustpilotSeed;
use crate::auth::{bearer_token, header_string, token_form};
use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::limits::{Limiter, RateWindow};
use crate::seed::{format_timestamp, seed_base_time};
use crate::server::{ConnectionKill, drop_connection};
use crate::webhooks::{WebhookDelivery, WebhookSender};

/// The API key the emulator accepts (public endpoint, and Basic user of
/// the token endpoint).
pub const TRUSTPILOT_API_KEY: &str = "sandbox-trustpilot-api-key";
/// The API secret (Basic password of the token endpoint).
pub const TRUSTPILOT_API_SECRET: &str = "sandbox-trustpilot-api-secret";
/// The business user's name.
pub const TRUSTPILOT_USERNAME: &str = "owner@sandbox-apartments.example";
/// The business user's password.
pub const TRUSTPILOT_PASSWORD: &str = "sandbox-trustpilot-password";

/// The largest `perPage`.
pub const MAX_PER_PAGE: usize = 100;
/// `perPage` when none is given.
const DEFAULT_PER_PAGE: usize = 20;

/// Salt of the Trustpilot seed stream.
const TRUSTPILOT_SALT: u64 = 0x7472_7573_7470_0001;

/// A review to add with [`TrustpilotEmulator::add_review`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTrustpilotReview {
    /// Stars, 1..=5.
    pub stars: u8,
    /// `title`.
    pub title: String,
    /// `text`.
    pub text: String,
    /// `consumer.displayName`.
    pub consumer: String,
}

#[derive(Clone, Debug)]
struct StoredReview {
    id: String,
    stars: u8,
    title: String,
    text: String,
    language: String,
    consumer_id: String,
    consumer: String,
    created: DateTime<Utc>,
    /// Milliseconds in `createdAt` (Trustpilot writes both forms).
    millis: bool,
    updated: Option<DateTime<Utc>>,
    reply: Option<String>,
}

struct Unit {
    id: String,
    name: String,
    /// Newest `createdAt` first (see the module invariant).
    reviews: Vec<StoredReview>,
}

impl Unit {
    fn sort(&mut self) {
        self.reviews
            .sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    }
}

struct TrustpilotState {
    units: Vec<Unit>,
    requests: HashMap<String, u64>,
    requests_total: u64,
    token_lifetime: Duration,
    /// Issued access tokens and their expiry.
    tokens: HashMap<String, Instant>,
    /// Refresh tokens that are still good.
    refresh_tokens: HashSet<String>,
    password_grants: u64,
    refresh_grants: u64,
    /// The key's quota (833 per 5 minutes and 10,000 per hour, as
    /// Trustpilot asks), when a test sets one.
    rate_limit: Limiter,
    rng: StdRng,
    next_review_number: u64,
    last_stamp: DateTime<Utc>,
}

impl TrustpilotState {
    fn unit(&mut self, id: &str) -> Option<&mut Unit> {
        self.units.iter_mut().find(|u| u.id == id)
    }

    fn stamp(&mut self) -> DateTime<Utc> {
        let next = Utc::now().max(self.last_stamp + TimeDelta::milliseconds(1));
        self.last_stamp = next;
        next
    }

    fn hex24(&mut self) -> String {
        let bytes: [u8; 12] = self.rng.random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Handle on the Trustpilot emulator (cheap to clone; clones share state).
#[derive(Clone)]
pub struct TrustpilotEmulator {
    inner: Arc<Mutex<TrustpilotState>>,
    faults: Faults,
    /// Service review webhooks to a subscription URL.
    webhooks: WebhookSender,
}

const TITLES: &[&str] = &[
    "Great place to live",
    "Slow maintenance",
    "Fantastisk lejlighed",
    "Friendly staff, noisy street",
    "Not worth the rent",
    "Tolle Lage 🌳",
];

const TEXTS: &[(&str, &str)] = &[
    (
        "en",
        "The leasing office was helpful from day one and the flat was spotless.",
    ),
    (
        "en",
        "It took three weeks and four calls to get the boiler fixed.",
    ),
    (
        "da",
        "Dejlig lejlighed med god udsigt. Personalet er meget venligt.",
    ),
    (
        "en",
        "Staff are lovely but the traffic noise at night is \"something else\".",
    ),
    (
        "en",
        "Rent went up 12% with no improvements.\nDisappointed.",
    ),
    (
        "de",
        "Sehr ruhige Lage, schöner Innenhof, schnelle Reparaturen.",
    ),
];

const CONSUMERS: &[&str] = &[
    "Karen J.",
    "Mads Nielsen",
    "Ola Nordmann",
    "Chloé D.",
    "Sam",
];

impl TrustpilotEmulator {
    /// A fresh emulator with business units seeded from `seed` and `shape`.
    pub(crate) fn new(
        seed: u64,
        shape: &TrustpilotSeed,
        token_lifetime: Duration,
        faults: &Faults,
    ) -> TrustpilotEmulator {
        let base = seed_base_time();
        let mut state = TrustpilotState {
            units: Vec::new(),
            requests: HashMap::new(),
            requests_total: 0,
            rate_limit: Limiter::default(),
            token_lifetime,
            tokens: HashMap::new(),
            refresh_tokens: HashSet::new(),
            password_grants: 0,
            refresh_grants: 0,
            rng: StdRng::seed_from_u64(seed ^ TRUSTPILOT_SALT),
            next_review_number: 1,
            last_stamp: base,
        };
        for u in 0..shape.business_units {
            let id = state.hex24();
            let mut reviews = Vec::new();
            for n in 0..shape.reviews_per_unit {
                let review_id = state.hex24();
                let rng = &mut state.rng;
                let created = base - TimeDelta::seconds(rng.random_range(3_600..3 * 365 * 86_400))
                    + TimeDelta::milliseconds(rng.random_range(0..1000));
                let (language, text) = TEXTS[rng.random_range(0..TEXTS.len())];
                let updated = (n % 5 == 1).then(|| {
                    let room = (base - created).num_seconds().max(61);
                    (created + TimeDelta::seconds(rng.random_range(60..room))).min(base)
                });
                reviews.push(StoredReview {
                    id: review_id,
                    stars: rng.random_range(1..=5),
                    title: TITLES[rng.random_range(0..TITLES.len())].to_owned(),
                    text: text.to_owned(),
                    language: language.to_owned(),
                    consumer_id: format!("{:024x}", rng.random::<u64>()),
                    consumer: CONSUMERS[rng.random_range(0..CONSUMERS.len())].to_owned(),
                    created,
                    millis: n.is_multiple_of(2),
                    updated,
                    reply: n
                        .is_multiple_of(3)
                        .then(|| "Thank you for your review!".to_owned()),
                });
            }
            let mut unit = Unit {
                id,
                name: format!("Sandbox Apartments {}", u + 1),
                reviews,
            };
            unit.sort();
            state.units.push(unit);
        }
        TrustpilotEmulator {
            inner: Arc::new(Mutex::new(state)),
            faults: faults.scoped(Endpoint::TRUSTPILOT),
            webhooks: WebhookSender::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TrustpilotState> {
        self.inner
            .lock()
            .expect("trustpilot emulator mutex poisoned")
    }

    /// Business unit ids, in creation order.
    pub fn business_unit_ids(&self) -> Vec<String> {
        self.lock().units.iter().map(|u| u.id.clone()).collect()
    }

    /// Every review of `unit` as served, newest first.
    pub fn reviews(&self, unit: &str) -> Vec<Value> {
        let mut state = self.lock();
        let Some(found) = state.unit(unit) else {
            return Vec::new();
        };
        let (id, name) = (found.id.clone(), found.name.clone());
        found
            .reviews
            .iter()
            .map(|r| review_json(r, &id, &name))
            .collect()
    }

    /// Adds a review created now and returns its id; `None` for an unknown unit.
    pub fn add_review(&self, unit: &str, review: NewTrustpilotReview) -> Option<String> {
        let mut state = self.lock();
        let created = state.stamp();
        let id = state.hex24();
        let number = state.next_review_number;
        let found = state.unit(unit)?;
        let review = StoredReview {
            id: id.clone(),
            stars: review.stars,
            title: review.title,
            text: review.text,
            language: "en".into(),
            consumer_id: format!("{number:024x}"),
            consumer: review.consumer,
            created,
            millis: true,
            updated: None,
            reply: None,
        };
        let event = review_event("service-review-created", &review);
        found.reviews.push(review);
        found.sort();
        state.next_review_number += 1;
        drop(state);
        self.webhooks.fire(event);
        Some(id)
    }

    /// Edits a review (`None` leaves a field) and sets `updatedAt` to now.
    /// False if there is no such review.
    pub fn edit_review(
        &self,
        review_id: &str,
        title: Option<String>,
        text: Option<String>,
        stars: Option<u8>,
    ) -> bool {
        let mut state = self.lock();
        let stamp = state.stamp();
        let Some(review) = state
            .units
            .iter_mut()
            .flat_map(|u| u.reviews.iter_mut())
            .find(|r| r.id == review_id)
        else {
            return false;
        };
        if let Some(title) = title {
            review.title = title;
        }
        if let Some(text) = text {
            review.text = text;
        }
        if let Some(stars) = stars {
            review.stars = stars;
        }
        review.updated = Some(stamp);
        let event = review_event("service-review-updated", review);
        drop(state);
        self.webhooks.fire(event);
        true
    }

    /// Removes a review; false if there is no such review.
    pub fn delete_review(&self, review_id: &str) -> bool {
        let mut state = self.lock();
        let mut events = Vec::new();
        for unit in &mut state.units {
            if let Some(review) = unit.reviews.iter().find(|r| r.id == review_id) {
                events.push(review_event("service-review-deleted", review));
            }
            unit.reviews.retain(|r| r.id != review_id);
        }
        drop(state);
        let found = !events.is_empty();
        for event in events {
            self.webhooks.fire(event);
        }
        found
    }

    /// Reviews calls for `unit` that reached the handler (public and private).
    pub fn requests(&self, unit: &str) -> u64 {
        self.lock().requests.get(unit).copied().unwrap_or(0)
    }

    /// All reviews calls that reached the handler.
    pub fn requests_total(&self) -> u64 {
        self.lock().requests_total
    }

    /// Password grants that issued a token.
    pub fn password_grants(&self) -> u64 {
        self.lock().password_grants
    }

    /// Refresh grants that issued a token.
    pub fn refresh_grants(&self) -> u64 {
        self.lock().refresh_grants
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Makes every issued access token expired.
    pub fn expire_all_tokens(&self) {
        let now = Instant::now();
        for expiry in self.lock().tokens.values_mut() {
            *expiry = now;
        }
    }

    /// Forgets every refresh token (their 30 days ran out).
    pub fn revoke_refresh_tokens(&self) {
        self.lock().refresh_tokens.clear();
    }

    /// Enforces `windows` on the reviews endpoints (one API key) (none, the default: no limit): a call
    /// past any of them is answered 429 with Trustpilot's quota error.
    pub fn set_rate_limit(&self, windows: &[RateWindow]) {
        self.lock().rate_limit.set(windows);
    }

    /// The windows enforced.
    pub fn rate_limit(&self) -> Vec<RateWindow> {
        self.lock().rate_limit.windows()
    }

    /// Calls refused because a window was full, since start (not injected
    /// faults).
    pub fn refused_for_rate(&self) -> u64 {
        self.lock().rate_limit.refused()
    }

    /// The fault plan, scoped to the Trustpilot endpoints.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Service review webhooks (created, updated, deleted) go to this
    /// subscription URL from now on; `None` stops them. Credentials in the
    /// URL (`http://user:secret@host/...`) are sent as HTTP Basic auth and a
    /// query string is kept, as any HTTP client does: Trustpilot documents
    /// no signature (see `webhooks`).
    pub fn set_webhook_url(&self, url: Option<&str>) {
        self.webhooks.set_url_target(url);
    }

    /// Every webhook delivery answered (or failed) so far, oldest first.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.webhooks.deliveries()
    }

    /// Webhook deliveries sent and not yet answered.
    pub fn webhooks_in_flight(&self) -> usize {
        self.webhooks.in_flight()
    }

    fn token_valid(&self, token: &str) -> bool {
        self.lock()
            .tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }
}

/// A webhook body with one event about `review`, in the shape of
/// Trustpilot's published example (see `webhooks`): no business unit id.
fn review_event(event_name: &str, review: &StoredReview) -> String {
    json!({
        "events": [{
            "eventName": event_name,
            "version": "1",
            "eventData": {
                "id": review.id,
                "language": review.language,
                "title": review.title,
                "text": review.text,
                "referenceId": null,
                "stars": review.stars,
                "createdAt": time(review.created, true),
                "isVerified": review.stars % 2 == 1,
                "locationId": null,
                "link": format!("https://api.trustpilot.com/v1/reviews/{}", review.id),
                "consumer": {
                    "id": review.consumer_id,
                    "name": review.consumer,
                    "link": format!("https://api.trustpilot.com/v1/consumers/{}", review.consumer_id),
                },
                "tags": [],
            },
        }],
    })
    .to_string()
}

fn time(t: DateTime<Utc>, millis: bool) -> String {
    format_timestamp(t, if millis { 3 } else { 0 })
}

fn review_json(review: &StoredReview, unit_id: &str, unit_name: &str) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(review.id));
    m.insert(
        "consumer".into(),
        json!({
            "id": review.consumer_id,
            "displayName": review.consumer,
            "displayLocation": null,
            "numberOfReviews": 1
        }),
    );
    m.insert(
        "businessUnit".into(),
        json!({"id": unit_id, "identifyingName": unit_name}),
    );
    m.insert("stars".into(), json!(review.stars));
    m.insert("title".into(), json!(review.title));
    m.insert("text".into(), json!(review.text));
    m.insert("language".into(), json!(review.language));
    m.insert(
        "createdAt".into(),
        json!(time(review.created, review.millis)),
    );
    m.insert(
        "updatedAt".into(),
        review.updated.map_or(Value::Null, |u| json!(time(u, true))),
    );
    m.insert("experiencedAt".into(), json!(time(review.created, false)));
    m.insert("isVerified".into(), json!(review.stars % 2 == 1));
    m.insert("status".into(), json!("active"));
    m.insert(
        "companyReply".into(),
        review.reply.as_ref().map_or(Value::Null, |text| {
            json!({"text": text, "createdAt": time(review.created + TimeDelta::days(1), true)})
        }),
    );
    m.insert(
        "links".into(),
        json!([{
            "href": format!("https://api.trustpilot.com/v1/reviews/{}", review.id),
            "method": "GET",
            "rel": "reviews"
        }]),
    );
    Value::Object(m)
}

/// Routes of the emulator, relative to `/trustpilot`.
pub(crate) fn router(emulator: TrustpilotEmulator) -> Router {
    Router::new()
        .route("/v1/business-units/{unit}/reviews", get(public_reviews))
        .route(
            "/v1/private/business-units/{unit}/reviews",
            get(private_reviews),
        )
        .route(
            "/v1/oauth/oauth-business-users-for-applications/accesstoken",
            post(token),
        )
        .with_state(emulator)
}

fn fault(status: StatusCode, faultstring: &str, errorcode: &str) -> Response {
    (
        status,
        Json(json!({"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}})),
    )
        .into_response()
}

fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        Json(json!({"message": text, "errorCode": status.as_u16(), "details": null})),
    )
        .into_response()
}

fn reviews_fault_body(status: StatusCode) -> Value {
    match status.as_u16() {
        429 => {
            json!({"fault": {"faultstring": "Rate limit quota violation. Quota limit exceeded.", "detail": {"errorcode": "policies.ratelimit.QuotaViolation"}}})
        }
        _ => {
            json!({"message": "Internal server error", "errorCode": status.as_u16(), "details": null})
        }
    }
}

fn token_fault_body(status: StatusCode) -> Value {
    json!({"error": "server_error", "error_description": format!("HTTP {}", status.as_u16())})
}

async fn public_reviews(
    State(emulator): State<TrustpilotEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path(unit): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    reviews(emulator, kill, unit, query, headers, false).await
}

async fn private_reviews(
    State(emulator): State<TrustpilotEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path(unit): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    reviews(emulator, kill, unit, query, headers, true).await
}

async fn reviews(
    emulator: TrustpilotEmulator,
    kill: Option<Extension<ConnectionKill>>,
    unit: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    private: bool,
) -> Response {
    {
        let mut state = emulator.lock();
        state.requests_total += 1;
        *state.requests.entry(unit.clone()).or_default() += 1;
    }
    match intercept(
        emulator.faults.take(Endpoint::TrustpilotReviews),
        reviews_fault_body,
    )
    .await
    {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }
    if private {
        if !bearer_token(&headers).is_some_and(|t| emulator.token_valid(t)) {
            return fault(
                StatusCode::UNAUTHORIZED,
                "Invalid access token",
                "oauth.v2.InvalidAccessToken",
            );
        }
    } else {
        let key = header_string(&headers, "apikey").or_else(|| query.get("apikey").cloned());
        if key.as_deref() != Some(TRUSTPILOT_API_KEY) {
            return fault(
                StatusCode::UNAUTHORIZED,
                "Invalid ApiKey",
                "oauth.v2.InvalidApiKey",
            );
        }
    }
    if emulator
        .lock()
        .rate_limit
        .admit(std::time::Instant::now())
        .is_err()
    {
        let status = StatusCode::TOO_MANY_REQUESTS;
        return (status, Json(reviews_fault_body(status))).into_response();
    }
    let page = match query.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return message(StatusCode::BAD_REQUEST, "page must be a positive integer"),
    };
    let per_page = match query.get("perPage").map(|p| p.parse::<usize>()) {
        None => DEFAULT_PER_PAGE,
        Some(Ok(p)) if (1..=MAX_PER_PAGE).contains(&p) => p,
        Some(_) => return message(StatusCode::BAD_REQUEST, "perPage must be between 1 and 100"),
    };
    let query_order = query.get("orderBy").cloned();
    let order = query_order.as_deref().unwrap_or("createdat.desc");
    if !matches!(
        order,
        "createdat.desc" | "createdat.asc" | "stars.desc" | "stars.asc"
    ) {
        return message(
            StatusCode::BAD_REQUEST,
            &format!("orderBy '{order}' is not supported"),
        );
    }

    let mut state = emulator.lock();
    let Some(found) = state.unit(&unit) else {
        drop(state);
        return message(StatusCode::NOT_FOUND, "Business unit not found");
    };
    let mut ordered: Vec<&StoredReview> = found.reviews.iter().collect();
    match order {
        "createdat.asc" => ordered.reverse(),
        "stars.desc" => ordered.sort_by_key(|r| std::cmp::Reverse(r.stars)),
        "stars.asc" => ordered.sort_by_key(|r| r.stars),
        _ => {}
    }
    let start = (page - 1).saturating_mul(per_page);
    let served: Vec<Value> = ordered
        .iter()
        .skip(start)
        .take(per_page)
        .map(|r| review_json(r, &found.id, &found.name))
        .collect();
    let more = start.saturating_add(per_page) < ordered.len();
    // The links point back at this server (the Host the request came to),
    // as Trustpilot's point at api.trustpilot.com: a client that follows
    // them stays on the origin it was configured with.
    let host = header_string(&headers, "host").unwrap_or_else(|| "api.trustpilot.com".into());
    let prefix = if private { "/v1/private" } else { "/v1" };
    let link = |to: usize, rel: &str| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("page", &to.to_string());
        query.append_pair("perPage", &per_page.to_string());
        if let Some(order) = query_order.as_deref() {
            query.append_pair("orderBy", order);
        }
        json!({
            "href": format!("http://{host}/trustpilot{prefix}/business-units/{unit}/reviews?{}", query.finish()),
            "method": "GET",
            "rel": rel
        })
    };
    let mut links = Vec::new();
    if more {
        links.push(link(page + 1, "next-page"));
    }
    if page > 1 {
        links.push(link(page - 1, "prev-page"));
    }
    drop(state);
    Json(json!({"reviews": served, "links": links})).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// Issues an access token (and, for grants that have one, a refresh token).
fn issue(state: &mut TrustpilotState, with_refresh: bool) -> Value {
    let access = format!("tp_sandbox_{}", uuid::Uuid::new_v4().simple());
    state
        .tokens
        .insert(access.clone(), Instant::now() + state.token_lifetime);
    let mut body = json!({
        "access_token": access,
        // A string, as Trustpilot sends it.
        "expires_in": state.token_lifetime.as_secs().max(1).to_string(),
        "issued_at": Utc::now().timestamp_millis().to_string(),
        "token_type": "BearerToken",
    });
    if with_refresh {
        let refresh = format!("tpr_sandbox_{}", uuid::Uuid::new_v4().simple());
        state.refresh_tokens.insert(refresh.clone());
        body["refresh_token"] = json!(refresh);
        body["refresh_token_expires_in"] = json!("2591999");
    }
    body
}

async fn token(
    State(emulator): State<TrustpilotEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match intercept(
        emulator.faults.take(Endpoint::TrustpilotToken),
        token_fault_body,
    )
    .await
    {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }
    let form = token_form(&headers, &body);
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("client_id") != Some(TRUSTPILOT_API_KEY)
        || field("client_secret") != Some(TRUSTPILOT_API_SECRET)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    let mut state = emulator.lock();
    let body = match field("grant_type") {
        Some("password") => {
            if field("username") != Some(TRUSTPILOT_USERNAME)
                || field("password") != Some(TRUSTPILOT_PASSWORD)
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid username or password",
                );
            }
            state.password_grants += 1;
            issue(&mut state, true)
        }
        Some("refresh_token") => {
            let known = field("refresh_token").is_some_and(|t| state.refresh_tokens.remove(t));
            if !known {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid or expired refresh token",
                );
            }
            state.refresh_grants += 1;
            issue(&mut state, true)
        }
        Some("client_credentials") => issue(&mut state, false),
        other => {
            let grant = other.unwrap_or_default().to_owned();
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {grant}"),
            );
        }
    };
    drop(state);
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_units_have_titles_updates_and_both_time_forms() {
        let e = TrustpilotEmulator::new(
            42,
            &TrustpilotSeed {
                business_units: 2,
                reviews_per_unit: 30,
            },
            Duration::from_secs(3600),
            &Faults::new(42),
        );
        let units = e.business_unit_ids();
        assert_eq!(units.len(), 2);
        assert!(units.iter().all(|u| u.len() == 24));
        let reviews = e.reviews(&units[0]);
        assert_eq!(reviews.len(), 30);
        assert!(reviews.iter().all(|r| r["title"].is_string()));
        assert!(reviews.iter().any(|r| r["updatedAt"].is_null()));
        assert!(reviews.iter().any(|r| r["updatedAt"].is_string()));
        assert!(
            reviews
                .iter()
                .any(|r| r["createdAt"].as_str().is_some_and(|t| t.len() == 20))
        );
        assert!(
            reviews
                .iter()
                .any(|r| r["createdAt"].as_str().is_some_and(|t| t.len() == 24))
        );
        let created: Vec<&str> = reviews
            .iter()
            .filter_map(|r| r["createdAt"].as_str())
            .collect();
        let parsed: Vec<DateTime<Utc>> = created
            .iter()
            .filter_map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .ok()
                    .map(|d| d.with_timezone(&Utc))
            })
            .collect();
        assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "newest first");
    }
}
