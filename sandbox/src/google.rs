//! The Google emulator (served under `/google`): the OAuth refresh-token
//! grant and the Business Profile v4 `accounts.locations.reviews.list`
//! endpoint, over seeded accounts, locations and reviews that tests can
//! change while the sandbox runs. Each location also has a title and, for
//! most, a store code, which the Business Information emulator
//! (`business_info`, under `/google-bi`) serves from the same state.
//!
//! Responses follow proto3 JSON as Google renders it: fields with default
//! values are omitted, so a location without reviews answers `{}` (no
//! `reviews`, no `averageRating`, no `totalReviewCount`), a review without a
//! comment has no `comment`, and `isAnonymous` appears only when true.
//!
//! **Invariant:** each location's reviews are kept sorted by `updateTime`
//! descending (ties by `reviewId`), the default order of the real API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::GoogleSeed;
use crate::auth::{bearer_token, token_form};
use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::hostile::Hostile;
use crate::notifications::{NotificationHub, ReviewChange};
use crate::seed::{self, format_timestamp, star_rating_name, star_rating_value};
use crate::server::{ConnectionKill, drop_connection};

/// The OAuth client id the token endpoint accepts.
pub const GOOGLE_CLIENT_ID: &str = "sandbox-google-client";
/// The OAuth client secret the token endpoint accepts.
pub const GOOGLE_CLIENT_SECRET: &str = "sandbox-google-secret";
/// The refresh token the token endpoint accepts (unless revoked).
pub const GOOGLE_REFRESH_TOKEN: &str = "sandbox-refresh-token";

/// Scope reported on issued access tokens.
const SCOPE: &str = "https://www.googleapis.com/auth/business.manage";
/// The documented maximum (and the default) `pageSize` of reviews.list.
const MAX_PAGE_SIZE: usize = 50;
/// Display name Google shows for anonymous reviewers.
const ANONYMOUS_NAME: &str = "A Google User";

/// A review to add with [`GoogleEmulator::add_review`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewGoogleReview {
    /// 1..=5; `None` (or anything else) is served as `STAR_RATING_UNSPECIFIED`.
    pub star_rating: Option<u8>,
    /// `None` makes a rating-only review (no `comment` field).
    pub comment: Option<String>,
    /// Reviewer name; when anonymous and empty, "A Google User" is served.
    pub display_name: String,
    /// Served as `reviewer.isAnonymous: true` with no profile photo.
    pub is_anonymous: bool,
}

/// A review as stored: the JSON served, plus its sort keys.
struct StoredReview {
    id: String,
    value: Value,
    /// Parsed `updateTime`; the earliest instant when missing or malformed
    /// (raw reviews), so such reviews sort last.
    updated: DateTime<Utc>,
    /// 1..=5, or 0 when unspecified or malformed.
    rating: u8,
    /// `value` serialised, kept with it: list pages are written from these
    /// rather than cloning and serialising every review of every page (the
    /// pipeline bench lists 100,000 reviews in a few seconds).
    json: String,
}

impl StoredReview {
    fn new(value: Value, fallback_id: impl FnOnce() -> String) -> StoredReview {
        let id = value
            .get("reviewId")
            .and_then(Value::as_str)
            .map_or_else(fallback_id, str::to_owned);
        let mut review = StoredReview {
            id,
            value,
            updated: DateTime::<Utc>::MIN_UTC,
            rating: 0,
            json: String::new(),
        };
        review.refresh_keys();
        review
    }

    /// Recomputes what is derived from `value`; call it after every change.
    fn refresh_keys(&mut self) {
        self.json = self.value.to_string();
        self.updated = self
            .value
            .get("updateTime")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));
        self.rating = self
            .value
            .get("starRating")
            .and_then(Value::as_str)
            .map_or(0, star_rating_value);
    }
}

struct Location {
    name: String,
    /// Sorted by `updateTime` desc, then `reviewId` (see the module invariant).
    reviews: Vec<StoredReview>,
    /// The business name (Business Information `title`).
    title: String,
    /// Business Information `storeCode`; `None` is served as no field.
    store_code: Option<String>,
}

/// A location as the Business Information emulator serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BusinessLocation {
    /// `accounts/{a}/locations/{l}`.
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) store_code: Option<String>,
}

/// Every how-many-th location (by number, from the first) is seeded without
/// a store code, so discovery always meets some unmapped locations.
const NO_STORE_CODE_EVERY: u64 = 8;

/// The title and store code a location gets when none is given: the store
/// code is `portfolio-{1..10}`, the external reference of a seeded Travtus
/// group (location `i` of the seed gets `portfolio-{i % 10 + 1}`, the group
/// the tests' explicit mappings use too), except every
/// [`NO_STORE_CODE_EVERY`]th location, which has none.
fn default_profile(name: &str) -> (String, Option<String>) {
    let number = name
        .rsplit('/')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(seed::FIRST_LOCATION_ID);
    let index = number.saturating_sub(seed::FIRST_LOCATION_ID);
    let title = format!("Sandbox Residences {number}");
    let store_code = (index % NO_STORE_CODE_EVERY != NO_STORE_CODE_EVERY - 1)
        .then(|| format!("portfolio-{}", index % 10 + 1));
    (title, store_code)
}

impl Location {
    fn sort(&mut self) {
        self.reviews
            .sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.id.cmp(&b.id)));
    }

    fn find(&mut self, review_id: &str) -> Option<&mut StoredReview> {
        self.reviews.iter_mut().find(|r| r.id == review_id)
    }
}

/// Handle on the Google emulator (cheap to clone; clones share state).
#[derive(Clone)]
pub struct GoogleEmulator {
    inner: Arc<Mutex<GoogleState>>,
    faults: Faults,
    /// Misbehaving locations (`hostile`): kept apart from `inner` so the
    /// streamed bodies never hold the state lock.
    pub(crate) hostile: Hostile,
    /// Publishes `NEW_REVIEW`/`UPDATED_REVIEW` to Pub/Sub for accounts whose
    /// notification setting asks for them (`notifications`).
    pub(crate) notifications: NotificationHub,
}

/// Everything the emulator remembers, behind one briefly-held std mutex.
struct GoogleState {
    /// Lifetime given to access tokens issued from now on.
    token_lifetime: Duration,
    /// Issued access tokens and their expiry (kept after expiry; Google
    /// answers the same 401 either way).
    tokens: HashMap<String, Instant>,
    /// Set by `revoke_refresh_token`: the refresh grant answers `invalid_grant`.
    refresh_revoked: bool,
    accounts: Vec<String>,
    locations: Vec<Location>,
    location_index: HashMap<String, usize>,
    next_location_id: u64,
    /// Counter for ids of added reviews, so they are unique and predictable.
    next_review_number: u64,
    list_requests: HashMap<String, u64>,
    list_requests_total: u64,
    token_requests: u64,
    /// Last timestamp handed to an added or edited review. New stamps are
    /// the wall clock but strictly after this (and after the seed base), so
    /// a change always moves a review to the top, even within one
    /// millisecond or on a machine whose clock is behind the seed data.
    last_stamp: DateTime<Utc>,
}

impl GoogleState {
    fn location(&mut self, name: &str) -> Option<&mut Location> {
        let index = *self.location_index.get(name)?;
        self.locations.get_mut(index)
    }

    fn stamp(&mut self) -> String {
        let wall = Utc::now();
        let next = wall.max(self.last_stamp + TimeDelta::milliseconds(1));
        self.last_stamp = next;
        format_timestamp(next, 3)
    }

    fn push_location(&mut self, account: String, name: String, reviews: Vec<StoredReview>) {
        if !self.accounts.contains(&account) {
            self.accounts.push(account);
        }
        let (title, store_code) = default_profile(&name);
        let mut location = Location {
            name: name.clone(),
            reviews,
            title,
            store_code,
        };
        location.sort();
        self.location_index.insert(name, self.locations.len());
        self.locations.push(location);
    }
}

impl GoogleEmulator {
    /// A fresh emulator with data seeded from `seed` and `shape`.
    pub(crate) fn new(
        seed: u64,
        shape: &GoogleSeed,
        token_lifetime: Duration,
        faults: &Faults,
    ) -> GoogleEmulator {
        let seeded = seed::google(seed, shape);
        let mut state = GoogleState {
            token_lifetime,
            tokens: HashMap::new(),
            refresh_revoked: false,
            accounts: Vec::new(),
            locations: Vec::new(),
            location_index: HashMap::new(),
            next_location_id: seeded.next_location_id,
            next_review_number: 1,
            list_requests: HashMap::new(),
            list_requests_total: 0,
            token_requests: 0,
            last_stamp: seed::seed_base_time(),
        };
        // Accounts without locations (locations_per_account = 0) still exist.
        state.accounts = seeded.accounts;
        for location in seeded.locations {
            let reviews = location
                .reviews
                .into_iter()
                .map(|v| StoredReview::new(v, String::new))
                .collect();
            state.push_location(location.account, location.name, reviews);
        }
        GoogleEmulator {
            inner: Arc::new(Mutex::new(state)),
            faults: faults.scoped(Endpoint::GOOGLE),
            hostile: Hostile::default(),
            notifications: NotificationHub::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GoogleState> {
        self.inner.lock().expect("google emulator mutex poisoned")
    }

    /// Account names (`accounts/1000`, ...), in creation order.
    pub fn accounts(&self) -> Vec<String> {
        self.lock().accounts.clone()
    }

    /// Full location names (`accounts/1000/locations/2000`, ...), in creation order.
    pub fn locations(&self) -> Vec<String> {
        self.lock()
            .locations
            .iter()
            .map(|l| l.name.clone())
            .collect()
    }

    /// The reviews of `location` as served, in the default order
    /// (`updateTime desc`); empty for an unknown location.
    pub fn reviews(&self, location: &str) -> Vec<Value> {
        self.lock()
            .location(location)
            .map(|l| l.reviews.iter().map(|r| r.value.clone()).collect())
            .unwrap_or_default()
    }

    /// Adds a review created now and returns its `reviewId`.
    ///
    /// # Panics
    /// If `location` does not exist (a test bug; see [`Self::try_add_review`]).
    pub fn add_review(&self, location: &str, review: NewGoogleReview) -> String {
        self.try_add_review(location, review)
            .unwrap_or_else(|| panic!("sandbox: unknown Google location {location:?}"))
    }

    /// Adds a review created now; `None` if `location` does not exist.
    pub fn try_add_review(&self, location: &str, review: NewGoogleReview) -> Option<String> {
        let mut state = self.lock();
        let number = state.next_review_number;
        let stamp = state.stamp();
        let location = state.location(location)?;
        let location_number = location
            .name
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let review_id = format!("new_{location_number}-{number}");

        let mut reviewer = Map::new();
        if review.is_anonymous {
            let name = if review.display_name.is_empty() {
                ANONYMOUS_NAME.to_owned()
            } else {
                review.display_name
            };
            reviewer.insert("displayName".into(), json!(name));
            reviewer.insert("isAnonymous".into(), json!(true));
        } else {
            reviewer.insert(
                "profilePhotoUrl".into(),
                json!(format!(
                    "https://lh3.googleusercontent.com/a-/sandbox-new-{number}"
                )),
            );
            reviewer.insert("displayName".into(), json!(review.display_name));
        }
        let review_name = format!("{}/reviews/{review_id}", location.name);
        let mut value = Map::new();
        value.insert("name".into(), json!(review_name));
        value.insert("reviewId".into(), json!(review_id));
        value.insert("reviewer".into(), Value::Object(reviewer));
        value.insert(
            "starRating".into(),
            json!(star_rating_name(review.star_rating)),
        );
        if let Some(comment) = review.comment {
            value.insert("comment".into(), json!(comment));
        }
        value.insert("createTime".into(), json!(stamp));
        value.insert("updateTime".into(), json!(stamp));

        location
            .reviews
            .push(StoredReview::new(Value::Object(value), String::new));
        location.sort();
        state.next_review_number += 1;
        // Published once the review is listed, and without the lock.
        drop(state);
        self.notifications
            .review_changed(ReviewChange::New, &review_name);
        Some(review_id)
    }

    /// Edits a review and sets its `updateTime` to now. `None` leaves a
    /// field unchanged; `Some(0)` (or > 5) makes the rating unspecified.
    /// Returns false if the location or review does not exist.
    pub fn edit_review(
        &self,
        location: &str,
        review_id: &str,
        comment: Option<String>,
        star_rating: Option<u8>,
    ) -> bool {
        let mut state = self.lock();
        let exists = state
            .location(location)
            .is_some_and(|l| l.find(review_id).is_some());
        if !exists {
            return false;
        }
        let stamp = state.stamp();
        let Some(location) = state.location(location) else {
            return false;
        };
        if let Some(review) = location.find(review_id)
            && let Some(object) = review.value.as_object_mut()
        {
            if let Some(comment) = comment {
                object.insert("comment".into(), json!(comment));
            }
            if star_rating.is_some() {
                object.insert("starRating".into(), json!(star_rating_name(star_rating)));
            }
            object.insert("updateTime".into(), json!(stamp));
            review.refresh_keys();
        }
        location.sort();
        let review_name = format!("{}/reviews/{review_id}", location.name);
        drop(state);
        self.notifications
            .review_changed(ReviewChange::Updated, &review_name);
        true
    }

    /// Removes a review (the list simply stops returning it, as on Google).
    pub fn delete_review(&self, location: &str, review_id: &str) -> bool {
        let mut state = self.lock();
        let Some(location) = state.location(location) else {
            return false;
        };
        let before = location.reviews.len();
        location.reviews.retain(|r| r.id != review_id);
        location.reviews.len() != before
    }

    /// Adds an empty location to `account` (`accounts/1000` or `1000`; an
    /// unknown account is created) and returns the location's full name.
    /// Its store code follows the seed's rule (see
    /// [`GoogleEmulator::store_code`]); [`GoogleEmulator::add_location_with_store_code`]
    /// chooses it.
    pub fn add_location(&self, account: &str) -> String {
        let account = if account.starts_with("accounts/") {
            account.to_owned()
        } else {
            format!("accounts/{account}")
        };
        let mut state = self.lock();
        let name = format!("{account}/locations/{}", state.next_location_id);
        state.next_location_id += 1;
        state.push_location(account, name.clone(), Vec::new());
        name
    }

    /// [`GoogleEmulator::add_location`] with this store code (`None`: none).
    pub fn add_location_with_store_code(&self, account: &str, store_code: Option<&str>) -> String {
        let name = self.add_location(account);
        self.set_store_code(&name, store_code);
        name
    }

    /// The store code of `location` as Business Information serves it. A
    /// location gets `portfolio-{i % 10 + 1}` (a seeded Travtus group) where
    /// `i` is its number minus the first location's, except every eighth
    /// (`i % 8 == 7`), which has none; tests change it with
    /// [`GoogleEmulator::set_store_code`].
    pub fn store_code(&self, location: &str) -> Option<String> {
        self.lock()
            .location(location)
            .and_then(|l| l.store_code.clone())
    }

    /// The title (business name) of `location`.
    pub fn title(&self, location: &str) -> Option<String> {
        self.lock().location(location).map(|l| l.title.clone())
    }

    /// Sets (or, with `None`, removes) the store code of `location`. False
    /// if no such location.
    pub fn set_store_code(&self, location: &str, store_code: Option<&str>) -> bool {
        let mut state = self.lock();
        let Some(location) = state.location(location) else {
            return false;
        };
        location.store_code = store_code.map(str::to_owned);
        true
    }

    /// Whether `account` exists (Business Information answers 403 otherwise).
    pub fn has_account(&self, account: &str) -> bool {
        self.lock().accounts.iter().any(|a| a == account)
    }

    /// The locations of `account` in creation order, as Business
    /// Information serves them; `None` for an unknown account.
    pub(crate) fn business_locations(&self, account: &str) -> Option<Vec<BusinessLocation>> {
        let state = self.lock();
        if !state.accounts.iter().any(|a| a == account) {
            return None;
        }
        let prefix = format!("{account}/locations/");
        Some(
            state
                .locations
                .iter()
                .filter(|l| l.name.starts_with(&prefix))
                .map(|l| BusinessLocation {
                    name: l.name.clone(),
                    title: l.title.clone(),
                    store_code: l.store_code.clone(),
                })
                .collect(),
        )
    }

    /// Serves `review` as-is (possibly malformed) in `location`; it sorts by
    /// its `updateTime` if that parses, else last. False if no such location.
    pub fn insert_raw_review(&self, location: &str, review: Value) -> bool {
        let mut state = self.lock();
        let number = state.next_review_number;
        let Some(location) = state.location(location) else {
            return false;
        };
        location
            .reviews
            .push(StoredReview::new(review, || format!("raw-{number}")));
        location.sort();
        state.next_review_number += 1;
        true
    }

    /// List calls for `location` (full name) that reached the handler.
    pub fn list_requests(&self, location: &str) -> u64 {
        self.lock()
            .list_requests
            .get(location)
            .copied()
            .unwrap_or(0)
    }

    /// All list calls that reached the handler, faulted and failed included.
    pub fn list_requests_total(&self) -> u64 {
        self.lock().list_requests_total
    }

    /// Access tokens issued by the token endpoint.
    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
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

    /// Makes [`GOOGLE_REFRESH_TOKEN`] invalid (`invalid_grant`).
    pub fn revoke_refresh_token(&self) {
        self.lock().refresh_revoked = true;
    }

    /// Makes [`GOOGLE_REFRESH_TOKEN`] valid again.
    pub fn restore_refresh_token(&self) {
        self.lock().refresh_revoked = false;
    }

    /// Issues an access token directly (not counted as a request).
    pub fn issue_token(&self) -> String {
        issue_token(&mut self.lock()).0
    }

    /// The fault plan, scoped to the Google endpoints.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub(crate) fn token_valid(&self, token: &str) -> bool {
        self.lock()
            .tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }
}

fn issue_token(state: &mut GoogleState) -> (String, Duration) {
    let token = format!("ya29.sandbox-{}", uuid::Uuid::new_v4().simple());
    let lifetime = state.token_lifetime;
    state
        .tokens
        .insert(token.clone(), Instant::now() + lifetime);
    (token, lifetime)
}

/// Routes of the emulator, relative to `/google`.
pub(crate) fn router(emulator: GoogleEmulator) -> Router {
    Router::new()
        .route("/token", post(token))
        .route(
            "/v4/accounts/{account}/locations/{location}/reviews",
            get(list),
        )
        .with_state(emulator)
}

/// The canonical status name Google pairs with an HTTP code.
fn canonical_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// Google's standard error body.
pub(crate) fn google_error_body(status: StatusCode, message: &str) -> Value {
    json!({"error": {"code": status.as_u16(), "message": message, "status": canonical_status(status)}})
}

pub(crate) fn google_error(status: StatusCode, message: &str) -> Response {
    (status, Json(google_error_body(status, message))).into_response()
}

pub(crate) fn list_fault_body(status: StatusCode) -> Value {
    let message = match status.as_u16() {
        429 => "Resource has been exhausted (e.g. check quota).",
        500 => "Internal error encountered.",
        503 => "The service is currently unavailable.",
        _ => "Sandbox fault.",
    };
    google_error_body(status, message)
}

fn token_fault_body(status: StatusCode) -> Value {
    match status.as_u16() {
        429 => json!({"error": "rate_limit_exceeded", "error_description": "Rate limit exceeded."}),
        503 => json!({"error": "temporarily_unavailable", "error_description": "Backend Error"}),
        _ => json!({"error": "internal_failure", "error_description": "Backend Error"}),
    }
}

async fn token(
    State(emulator): State<GoogleEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fault = emulator.faults.take(Endpoint::GoogleToken);
    match intercept(fault, token_fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }

    let form = token_form(&headers, &body);
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("client_id") != Some(GOOGLE_CLIENT_ID)
        || field("client_secret") != Some(GOOGLE_CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "The OAuth client was not found."})),
        )
            .into_response();
    }
    if field("grant_type") != Some("refresh_token") {
        let grant = field("grant_type").unwrap_or_default();
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": format!("Invalid grant_type: {grant}")})),
        )
            .into_response();
    }
    let mut state = emulator.lock();
    if field("refresh_token") != Some(GOOGLE_REFRESH_TOKEN) || state.refresh_revoked {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})),
        )
            .into_response();
    }
    state.token_requests += 1;
    let (token, lifetime) = issue_token(&mut state);
    drop(state);
    Json(json!({
        "access_token": token,
        "expires_in": lifetime.as_secs().max(1),
        "scope": SCOPE,
        "token_type": "Bearer",
    }))
    .into_response()
}

/// The orders reviews.list supports.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    UpdateTimeDesc,
    Rating,
    RatingDesc,
}

fn parse_order(raw: Option<&String>) -> Option<Order> {
    let Some(raw) = raw else {
        return Some(Order::UpdateTimeDesc);
    };
    let normalized = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    match normalized.as_str() {
        "" | "updateTime desc" => Some(Order::UpdateTimeDesc),
        "rating" => Some(Order::Rating),
        "rating desc" => Some(Order::RatingDesc),
        _ => None,
    }
}

/// `pageSize`: absent or 0 means the maximum, larger values are clamped.
fn parse_page_size(raw: Option<&String>) -> Option<usize> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Some(MAX_PAGE_SIZE);
    };
    let size: i64 = raw.parse().ok()?;
    match size {
        ..0 => None,
        0 => Some(MAX_PAGE_SIZE),
        n => Some(usize::try_from(n).map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE))),
    }
}

/// Page tokens are the hex of `p:<offset>`: opaque to clients, checkable here.
pub(crate) fn encode_page_token(offset: usize) -> String {
    format!("p:{offset}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn decode_page_token(token: &str) -> Option<usize> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("p:")?
        .parse()
        .ok()
}

async fn list(
    State(emulator): State<GoogleEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path((account, location)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let name = format!("accounts/{account}/locations/{location}");
    {
        let mut state = emulator.lock();
        state.list_requests_total += 1;
        *state.list_requests.entry(name.clone()).or_default() += 1;
    }

    let fault = emulator.faults.take(Endpoint::GoogleList);
    match intercept(fault, list_fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }

    if !bearer_token(&headers).is_some_and(|t| emulator.token_valid(t)) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
        );
    }
    let Some(order) = parse_order(query.get("orderBy")) else {
        return google_error(StatusCode::BAD_REQUEST, "Invalid value for orderBy.");
    };
    let Some(page_size) = parse_page_size(query.get("pageSize")) else {
        return google_error(StatusCode::BAD_REQUEST, "Invalid value for pageSize.");
    };
    let offset = match query.get("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match decode_page_token(token) {
            Some(offset) => offset,
            None => return google_error(StatusCode::BAD_REQUEST, "Invalid page token."),
        },
    };

    let mut state = emulator.lock();
    let Some(location) = state.location(&name) else {
        drop(state);
        return google_error(StatusCode::NOT_FOUND, "Requested entity was not found.");
    };
    let Some(misbehaviour) = emulator.hostile.get(&name) else {
        let text = list_page_text(&location.reviews, order, offset, page_size);
        drop(state);
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response();
    };
    let (from, size) = Hostile::window(&misbehaviour, offset, page_size);
    let page = list_page(&location.reviews, order, from, size);
    drop(state);
    emulator
        .hostile
        .respond(&misbehaviour, page, offset, page_size)
}

/// [`list_page`] as JSON text (the same JSON value; the keys in
/// serde_json's default sorted order), written from the reviews' stored
/// serialisations.
fn list_page_text(
    reviews: &[StoredReview],
    order: Order,
    offset: usize,
    page_size: usize,
) -> String {
    let mut ordered: Vec<&StoredReview> = reviews.iter().collect();
    match order {
        Order::UpdateTimeDesc => {}
        Order::Rating => ordered.sort_by_key(|r| r.rating),
        Order::RatingDesc => ordered.sort_by_key(|r| std::cmp::Reverse(r.rating)),
    }
    let page: Vec<&str> = ordered
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|r| r.json.as_str())
        .collect();
    // Keys in sorted order, as `list_page` comes out without serde_json's
    // `preserve_order` (review-sync turns it on in a workspace build).
    let mut fields: Vec<(&str, String)> = Vec::with_capacity(4);
    let (rated, sum) = reviews
        .iter()
        .filter(|r| r.rating > 0)
        .fold((0usize, 0.0), |(n, sum), r| {
            (n + 1, sum + f64::from(r.rating))
        });
    if rated > 0 {
        let average = sum / rated as f64;
        fields.push((
            "averageRating",
            json!((average * 10.0).round() / 10.0).to_string(),
        ));
    }
    let end = offset.saturating_add(page_size);
    if end < ordered.len() {
        fields.push(("nextPageToken", json!(encode_page_token(end)).to_string()));
    }
    if !page.is_empty() {
        let len = page.iter().map(|r| r.len() + 1).sum::<usize>() + 2;
        let mut array = String::with_capacity(len);
        array.push('[');
        array.push_str(&page.join(","));
        array.push(']');
        fields.push(("reviews", array));
    }
    if !reviews.is_empty() {
        fields.push(("totalReviewCount", reviews.len().to_string()));
    }
    let mut out = String::with_capacity(fields.iter().map(|(_, v)| v.len() + 24).sum());
    out.push('{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push('}');
    out
}

/// Builds one `ListReviewsResponse`, omitting default-valued fields.
fn list_page(reviews: &[StoredReview], order: Order, offset: usize, page_size: usize) -> Value {
    let mut ordered: Vec<&StoredReview> = reviews.iter().collect();
    // Stable sorts keep the default order (updateTime desc) among equal ratings.
    match order {
        Order::UpdateTimeDesc => {}
        Order::Rating => ordered.sort_by_key(|r| r.rating),
        Order::RatingDesc => ordered.sort_by_key(|r| std::cmp::Reverse(r.rating)),
    }
    let mut response = Map::new();
    let page: Vec<Value> = ordered
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|r| r.value.clone())
        .collect();
    if !page.is_empty() {
        response.insert("reviews".into(), Value::Array(page));
    }
    let rated: Vec<f64> = reviews
        .iter()
        .filter(|r| r.rating > 0)
        .map(|r| f64::from(r.rating))
        .collect();
    if !rated.is_empty() {
        let average = rated.iter().sum::<f64>() / rated.len() as f64;
        response.insert(
            "averageRating".into(),
            json!((average * 10.0).round() / 10.0),
        );
    }
    if !reviews.is_empty() {
        response.insert("totalReviewCount".into(), json!(reviews.len()));
    }
    let end = offset.saturating_add(page_size);
    if end < ordered.len() {
        response.insert("nextPageToken".into(), json!(encode_page_token(end)));
    }
    Value::Object(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_the_serialised_page() {
        let shape = GoogleSeed {
            accounts: 1,
            locations_per_account: 2,
            reviews_per_location: 120,
        };
        let google = GoogleEmulator::new(3, &shape, Duration::from_secs(60), &Faults::new(3));
        let name = google.locations()[0].clone();
        google.insert_raw_review(&name, json!({"reviewId": "raw-x", "comment": "é \"q\"\n"}));
        let mut state = google.lock();
        state.push_location(
            "accounts/9".into(),
            "accounts/9/locations/9".into(),
            Vec::new(),
        );
        for location in &state.locations {
            for order in [Order::UpdateTimeDesc, Order::Rating, Order::RatingDesc] {
                for (offset, size) in [(0, 50), (50, 50), (100, 50), (0, 7), (500, 50)] {
                    let text = list_page_text(&location.reviews, order, offset, size);
                    assert_eq!(
                        serde_json::from_str::<Value>(&text).expect("JSON"),
                        list_page(&location.reviews, order, offset, size),
                        "{} at {offset}+{size}",
                        location.name
                    );
                }
            }
        }
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        for offset in [0, 50, 12_345] {
            assert_eq!(decode_page_token(&encode_page_token(offset)), Some(offset));
        }
        for garbage in ["", "zz", "abc", "7031", "p:1", "é1", "703a2d31"] {
            assert_eq!(decode_page_token(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        let p = |s: &str| parse_page_size(Some(&s.to_owned()));
        assert_eq!(parse_page_size(None), Some(50));
        assert_eq!(p("0"), Some(50));
        assert_eq!(p("7"), Some(7));
        assert_eq!(p("51"), Some(50));
        assert_eq!(p("99999999999"), Some(50));
        assert_eq!(p("-1"), None);
        assert_eq!(p("ten"), None);
    }

    #[test]
    fn order_by_accepts_the_documented_values_only() {
        let o = |s: &str| parse_order(Some(&s.to_owned()));
        assert!(parse_order(None) == Some(Order::UpdateTimeDesc));
        assert!(o("updateTime  desc") == Some(Order::UpdateTimeDesc));
        assert!(o("rating") == Some(Order::Rating));
        assert!(o("rating desc") == Some(Order::RatingDesc));
        assert!(o("updateTime").is_none());
        assert!(o("createTime desc").is_none());
    }
}
