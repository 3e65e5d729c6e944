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
//! `accounts.locations.batchGetReviews` (`POST
//! /v4/accounts/{a}/locations:batchGetReviews`) serves the same reviews for
//! many locations at once: see [`batch_get_reviews`] for what it reproduces.
//!
//! The project's quota on both reviews methods is off unless a test sets one
//! ([`GoogleEmulator::set_rate_limit`], e.g. 300 a minute): past it, 429
//! `RESOURCE_EXHAUSTED`, as Google answers an exhausted quota.
//!
//! **Invariant:** each location's reviews are kept sorted by `updateTime`
//! descending (ties by `reviewId`), the default order of the real API.

use std::collections::{HashMap, HashSet};
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
use crate::hostile::{Hostile, Misbehaviour};
use crate::limits::{Limiter, RateWindow};
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
    /// List calls in progress per location, and those that began while
    /// another for the same location was in progress (two readers of one
    /// location at once: what several daemons on one ledger must never do).
    lists_in_flight: HashMap<String, u32>,
    overlapping_lists: HashMap<String, u64>,
    token_requests: u64,
    /// batchGetReviews: its settings, counters and unverified locations.
    batch: BatchState,
    /// The project's quota on the reviews methods (list and batch
    /// together), when a test sets one.
    rate_limit: Limiter,
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
    /// A 429 `RESOURCE_EXHAUSTED` when a call now would exceed the quota
    /// set with [`GoogleEmulator::set_rate_limit`]; the call is counted
    /// otherwise.
    fn over_rate_limit(&self) -> Option<Response> {
        let refused = self
            .lock()
            .rate_limit
            .admit(std::time::Instant::now())
            .is_err();
        refused.then(|| {
            let status = StatusCode::TOO_MANY_REQUESTS;
            (status, Json(list_fault_body(status))).into_response()
        })
    }

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
            lists_in_flight: HashMap::new(),
            overlapping_lists: HashMap::new(),
            token_requests: 0,
            batch: BatchState::default(),
            rate_limit: Limiter::default(),
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

    /// List calls that began while another list call for the same location
    /// was still being answered, per location (full name; only locations
    /// with at least one).
    pub fn overlapping_list_requests(&self) -> HashMap<String, u64> {
        self.lock().overlapping_lists.clone()
    }

    /// Enforces `windows` on the reviews methods (list and
    /// `batchGetReviews` together: one Cloud project) (none, the default: no limit): a call
    /// past any of them is answered 429 with Google's quota error.
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
        .route(
            "/v4/accounts/{account}/locations:batchGetReviews",
            post(batch_get_reviews),
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

/// One list call in progress, counted in `lists_in_flight` until dropped.
struct ListInFlight {
    emulator: GoogleEmulator,
    name: String,
}

impl Drop for ListInFlight {
    fn drop(&mut self) {
        let mut state = self.emulator.lock();
        if let Some(n) = state.lists_in_flight.get_mut(&self.name) {
            *n = n.saturating_sub(1);
        }
    }
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
        let in_flight = state.lists_in_flight.entry(name.clone()).or_default();
        *in_flight += 1;
        if *in_flight > 1 {
            *state.overlapping_lists.entry(name.clone()).or_default() += 1;
        }
    }
    // Until the answer is built, or the client goes away mid-answer.
    let _in_flight = ListInFlight {
        emulator: emulator.clone(),
        name: name.clone(),
    };

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
    if let Some(refused) = emulator.over_rate_limit() {
        return refused;
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
    if state.batch.unverified.contains(&name) {
        drop(state);
        return unverified_error(&name);
    }
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

// ------------------------------------------------------- batchGetReviews

/// The cap on `locationNames` per batchGetReviews call the emulator starts
/// with: 50, as one SDK documents (an older generated reference says 200;
/// [`GoogleEmulator::set_batch_location_cap`] sets it).
pub(crate) const DEFAULT_BATCH_LOCATION_CAP: usize = 50;

/// What batchGetReviews keeps: its cap, its counters, and the locations
/// made unverified.
struct BatchState {
    /// Most `locationNames` per call.
    location_cap: usize,
    /// Calls that reached the handler, faulted and refused included.
    requests_total: u64,
    /// Calls whose (readable) body named each location.
    requests_naming: HashMap<String, u64>,
    /// Locations both review reads refuse, as Google does an unverified one.
    unverified: HashSet<String>,
}

impl Default for BatchState {
    fn default() -> BatchState {
        BatchState {
            location_cap: DEFAULT_BATCH_LOCATION_CAP,
            requests_total: 0,
            requests_naming: HashMap::new(),
            unverified: HashSet::new(),
        }
    }
}

impl GoogleEmulator {
    /// Sets the most `locationNames` one batchGetReviews call may carry
    /// (50 by default; 200 is the other value the docs have given). At
    /// least 1.
    pub fn set_batch_location_cap(&self, cap: usize) {
        self.lock().batch.location_cap = cap.max(1);
    }

    /// Makes `location` unverified (or verified again): reviews.list and
    /// batchGetReviews then answer 404 for it. False if no such location.
    pub fn set_verified(&self, location: &str, verified: bool) -> bool {
        let mut state = self.lock();
        if state.location(location).is_none() {
            return false;
        }
        if verified {
            state.batch.unverified.remove(location);
        } else {
            state.batch.unverified.insert(location.to_owned());
        }
        true
    }

    /// batchGetReviews calls that reached the handler (each counts once,
    /// however many locations it names), faulted and refused ones included.
    pub fn batch_requests(&self) -> u64 {
        self.lock().batch.requests_total
    }

    /// batchGetReviews calls whose body named `location`.
    pub fn batch_requests_naming(&self, location: &str) -> u64 {
        self.lock()
            .batch
            .requests_naming
            .get(location)
            .copied()
            .unwrap_or(0)
    }
}

/// Google's answer for a location it will not serve reviews of (unverified):
/// `NOT_FOUND`, as `reviews.get` documents for such a location, naming it in
/// the message and in a `google.rpc.ResourceInfo` detail.
fn unverified_error(name: &str) -> Response {
    location_error(
        StatusCode::NOT_FOUND,
        &format!("Location {name} is not verified."),
        name,
        "The location is not verified.",
    )
}

/// A standard error body naming one location: the message, and a
/// `google.rpc.ResourceInfo` detail (Google's way of naming a resource).
fn location_error(status: StatusCode, message: &str, name: &str, description: &str) -> Response {
    let mut body = google_error_body(status, message);
    body["error"]["details"] = json!([{
        "@type": "type.googleapis.com/google.rpc.ResourceInfo",
        "resourceType": "mybusiness.googleapis.com/Location",
        "resourceName": name,
        "description": description,
    }]);
    (status, Json(body)).into_response()
}

/// A parsed `BatchGetReviewsRequest`.
struct BatchRequest {
    /// `locationNames`, first occurrence of each kept, in request order.
    names: Vec<String>,
    page_size: usize,
    /// Offset of the page asked for (0 without a token).
    offset: usize,
    order: Order,
    /// The order as given (normalised), for the page token's fingerprint.
    order_text: String,
    ignore_rating_only: bool,
}

/// Reads the request body: `locationNames[]` (required), `pageSize` (number
/// or, proto3-style, a string; absent or 0: 50; clamped to 50), `pageToken`,
/// `orderBy` (as reviews.list), `ignoreRatingOnlyReviews`. Unknown fields
/// are ignored, as proto3 JSON parsers do. `Err` is the 400 message.
fn parse_batch_request(body: &Value) -> Result<BatchRequest, String> {
    let Value::Object(body) = body else {
        return Err("Invalid JSON payload received. Expected an object.".into());
    };
    let names = match body.get("locationNames") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for item in items {
                let Some(name) = item.as_str() else {
                    return Err("Invalid value at 'location_names': not a string.".into());
                };
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
            names
        }
        Some(_) => return Err("Invalid value at 'location_names': not a list.".into()),
    };
    let page_size = match body.get("pageSize") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("Invalid value at 'page_size'.".into()),
    };
    let page_size =
        parse_page_size(page_size.as_ref()).ok_or("Invalid value at 'page_size'.".to_owned())?;
    let order_raw = match body.get("orderBy") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("Invalid value for orderBy.".into()),
    };
    let order = parse_order(order_raw.as_ref()).ok_or("Invalid value for orderBy.".to_owned())?;
    let order_text = order_raw
        .map(|o| o.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let ignore_rating_only = match body.get("ignoreRatingOnlyReviews") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("Invalid value at 'ignore_rating_only_reviews'.".into()),
    };
    let mut request = BatchRequest {
        names,
        page_size,
        offset: 0,
        order,
        order_text,
        ignore_rating_only,
    };
    match body.get("pageToken") {
        None | Some(Value::Null) => {}
        Some(Value::String(token)) if token.is_empty() => {}
        Some(Value::String(token)) => {
            request.offset = decode_batch_token(token, batch_fingerprint(&request))
                .ok_or("Invalid page token.".to_owned())?;
        }
        Some(_) => return Err("Invalid page token.".into()),
    }
    Ok(request)
}

/// What a batch page token is bound to: the locations, the order and the
/// rating-only flag (a token used with another request is refused, as a
/// stale token would be).
fn batch_fingerprint(request: &BatchRequest) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same in every run of the emulator.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    request.names.hash(&mut hasher);
    request.order_text.hash(&mut hasher);
    request.ignore_rating_only.hash(&mut hasher);
    hasher.finish()
}

/// Batch page tokens are the hex of `b:<offset>:<fingerprint>`.
fn encode_batch_token(offset: usize, fingerprint: u64) -> String {
    format!("b:{offset}:{fingerprint:x}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_batch_token(token: &str, fingerprint: u64) -> Option<usize> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let (offset, print) = text.strip_prefix("b:")?.split_once(':')?;
    (u64::from_str_radix(print, 16).ok()? == fingerprint).then_some(())?;
    offset.parse().ok()
}

/// `POST /v4/accounts/{account}/locations:batchGetReviews`.
///
/// What it reproduces of the real method (request and answer shapes from
/// the v4 reference, developers.google.com/my-business/reference/rest/v4/accounts.locations/batchGetReviews):
/// - the body `{locationNames[], pageSize, pageToken, orderBy,
///   ignoreRatingOnlyReviews}`; `pageSize` 50 by default and at most 50;
///   `orderBy` `updateTime desc` by default, or `rating` / `rating desc`
///   (ties in update order), across all the named locations at once;
///   `ignoreRatingOnlyReviews` leaves out reviews without a comment;
/// - the answer `{locationReviews[] of {name, review}, nextPageToken}`,
///   `{}` when there is nothing (proto3 leaves empty fields out);
/// - the same bearer token as reviews.list; faults are aimed at
///   `Endpoint::GoogleBatch`, apart from the list's, so that a test can
///   fail one kind of call and not the other;
/// - at most [`DEFAULT_BATCH_LOCATION_CAP`] names per call (settable).
///
/// Per-location errors fail the whole call, naming the location (message
/// and a `google.rpc.ResourceInfo` detail); none is silently left out. The
/// reference documents no per-location error field in the answer and says
/// the method "is only valid if the specified locations are verified";
/// Google's own summary of `reviews.get` says an unverified location gets a
/// not-found answer; a malformed location name fails the whole call with
/// `INVALID_ARGUMENT` (PipedreamHQ/pipedream pull request #21610, a batch
/// call failing for one badly formed name). So: a name that is not a
/// location of the path's account is 400 `INVALID_ARGUMENT`; an unknown or
/// unverified location is 404 `NOT_FOUND`; more names than the cap, or none,
/// is 400.
///
/// A call naming a location made to misbehave (`hostile`) misbehaves as its
/// list does, for the whole call: endless or looping paging, an endless,
/// huge or cut-off body, `locationReviews` of the wrong shape. The modes
/// about one review's bytes or page overlaps (`InvalidUtf8`,
/// `DuplicateAcrossPages`) are the list's only.
async fn batch_get_reviews(
    State(emulator): State<GoogleEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    emulator.lock().batch.requests_total += 1;
    let fault = emulator.faults.take(Endpoint::GoogleBatch);
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
    if let Some(refused) = emulator.over_rate_limit() {
        return refused;
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return google_error(StatusCode::BAD_REQUEST, "Invalid JSON payload received.");
    };
    let request = match parse_batch_request(&json) {
        Ok(request) => request,
        Err(message) => return google_error(StatusCode::BAD_REQUEST, &message),
    };

    let mut state = emulator.lock();
    for name in &request.names {
        *state.batch.requests_naming.entry(name.clone()).or_default() += 1;
    }
    let cap = state.batch.location_cap;
    if request.names.is_empty() {
        return google_error(StatusCode::BAD_REQUEST, "locationNames is required.");
    }
    if request.names.len() > cap {
        return google_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Too many location names: {} given, at most {cap} per call.",
                request.names.len()
            ),
        );
    }
    let prefix = format!("accounts/{account}/locations/");
    for name in &request.names {
        let id = name.strip_prefix(&prefix).unwrap_or_default();
        if id.is_empty() || id.contains('/') {
            return location_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid location name {name:?}: not a location of accounts/{account}."),
                name,
                "Not a location name of the account in the request path.",
            );
        }
        if state.location(name).is_none() {
            return location_error(
                StatusCode::NOT_FOUND,
                &format!("Requested entity was not found: {name}."),
                name,
                "No such location.",
            );
        }
        if state.batch.unverified.contains(name) {
            drop(state);
            return unverified_error(name);
        }
    }

    // Every review of the named locations, in the order asked for.
    let mut all: Vec<(usize, &str, &StoredReview)> = Vec::new();
    for (index, name) in request.names.iter().enumerate() {
        let Some(&at) = state.location_index.get(name) else {
            continue;
        };
        let location = &state.locations[at];
        for review in &location.reviews {
            let has_comment = review
                .value
                .get("comment")
                .and_then(Value::as_str)
                .is_some_and(|c| !c.trim().is_empty());
            if request.ignore_rating_only && !has_comment {
                continue;
            }
            all.push((index, location.name.as_str(), review));
        }
    }
    all.sort_by(|a, b| {
        b.2.updated
            .cmp(&a.2.updated)
            .then_with(|| a.0.cmp(&b.0))
            .then_with(|| a.2.id.cmp(&b.2.id))
    });
    match request.order {
        Order::UpdateTimeDesc => {}
        Order::Rating => all.sort_by_key(|r| r.2.rating),
        Order::RatingDesc => all.sort_by_key(|r| std::cmp::Reverse(r.2.rating)),
    }
    // A call naming a misbehaving location misbehaves as its list does.
    let misbehaviour = request.names.iter().find_map(|n| emulator.hostile.get(n));
    let endless = matches!(
        misbehaviour,
        Some(Misbehaviour::EndlessPaging | Misbehaviour::EndlessPagingWithoutTotal)
    );
    let from = if endless { 0 } else { request.offset };
    let page: Vec<Value> = all
        .iter()
        .skip(from)
        .take(request.page_size)
        .map(|(_, name, review)| json!({"name": name, "review": review.value}))
        .collect();
    let end = request.offset.saturating_add(request.page_size);
    let more = end < all.len();
    drop(state);
    let fingerprint = batch_fingerprint(&request);
    let mut answer = Map::new();
    if !page.is_empty() {
        answer.insert("locationReviews".into(), Value::Array(page));
    }
    let next = match misbehaviour {
        _ if endless => Some(end),
        Some(Misbehaviour::LoopingPageToken) if !more => Some(0),
        _ => more.then_some(end),
    };
    if let Some(next) = next {
        answer.insert(
            "nextPageToken".into(),
            json!(encode_batch_token(next, fingerprint)),
        );
    }
    match misbehaviour {
        Some(
            m @ (Misbehaviour::EndlessBody
            | Misbehaviour::HugeBody { .. }
            | Misbehaviour::InvalidJson),
        ) => emulator
            .hostile
            .respond(&m, Value::Object(answer), request.offset, request.page_size),
        Some(Misbehaviour::WrongShape) => {
            if let Some(Value::Array(items)) = answer.remove("locationReviews") {
                let keyed: Map<String, Value> = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (i.to_string(), item))
                    .collect();
                answer.insert("locationReviews".into(), Value::Object(keyed));
            }
            Json(Value::Object(answer)).into_response()
        }
        _ => Json(Value::Object(answer)).into_response(),
    }
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

    #[test]
    fn batch_requests_parse_with_the_documented_defaults() {
        let req = parse_batch_request(&json!({"locationNames": ["a", "b", "a"]})).expect("ok");
        assert_eq!(req.names, ["a", "b"], "duplicates count once");
        assert_eq!((req.page_size, req.offset), (50, 0));
        assert!(req.order == Order::UpdateTimeDesc && !req.ignore_rating_only);
        let req = parse_batch_request(&json!({
            "locationNames": ["a"], "pageSize": "7", "orderBy": "rating  desc",
            "ignoreRatingOnlyReviews": true, "unknownField": 1
        }))
        .expect("ok");
        assert!(req.page_size == 7 && req.order == Order::RatingDesc && req.ignore_rating_only);
        assert_eq!(
            parse_batch_request(&json!({"locationNames": ["a"], "pageSize": 500}))
                .map(|r| r.page_size),
            Ok(50)
        );
        for bad in [
            json!([]),
            json!({"locationNames": "a"}),
            json!({"locationNames": [1]}),
            json!({"locationNames": ["a"], "pageSize": -1}),
            json!({"locationNames": ["a"], "orderBy": "updateTime"}),
            json!({"locationNames": ["a"], "ignoreRatingOnlyReviews": "yes"}),
            json!({"locationNames": ["a"], "pageToken": "zz"}),
        ] {
            assert!(parse_batch_request(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn batch_tokens_are_bound_to_their_request() {
        let req = parse_batch_request(&json!({"locationNames": ["a", "b"]})).expect("ok");
        let token = encode_batch_token(50, batch_fingerprint(&req));
        assert_eq!(
            decode_batch_token(&token, batch_fingerprint(&req)),
            Some(50)
        );
        let other = parse_batch_request(&json!({"locationNames": ["a"]})).expect("ok");
        assert_eq!(decode_batch_token(&token, batch_fingerprint(&other)), None);
        assert_eq!(
            decode_batch_token(&encode_page_token(50), batch_fingerprint(&req)),
            None
        );
        let same = json!({"locationNames": ["a", "b"], "pageToken": token});
        assert_eq!(parse_batch_request(&same).map(|r| r.offset), Ok(50));
    }
}
