//! The Google Places API (New) emulator (served under `/places`): Place
//! Details (`GET /v1/places/{placeId}`) with its `reviews`, over seeded
//! places that tests can change while the sandbox runs.
//!
//! What it reproduces of the real API:
//! - the API key in `X-Goog-Api-Key` (missing: 403 `PERMISSION_DENIED`;
//!   wrong: 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`);
//! - the mandatory field mask (`X-Goog-FieldMask`, or `fields`/`$fields` in
//!   the query; missing: 400), and only the masked top-level fields served;
//! - at most [`MAX_REVIEWS`] reviews, chosen by relevance (each place holds
//!   more than that), no paging;
//! - fractional `rating`s, and `text` translated into the request's
//!   `languageCode` (default `en`) with the reviewer's words in
//!   `originalText`;
//! - Google's error JSON, and 404 for an unknown place;
//! - the key's per-minute quota, off unless a test sets one
//!   ([`PlacesEmulator::set_rate_limit`]): 429 `RESOURCE_EXHAUSTED`.
//!
//! **Invariant:** each place's reviews are kept in relevance order (most
//! relevant first); added reviews go to the top.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::PlacesSeed;
use crate::auth::header_string;
use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::limits::{Limiter, RateWindow};
use crate::seed::{format_timestamp, seed_base_time};
use crate::server::{ConnectionKill, drop_connection};

/// The API key the emulator accepts.
pub const PLACES_API_KEY: &str = "sandbox-places-api-key";

/// The most reviews Place Details returns.
pub const MAX_REVIEWS: usize = 5;

/// Salt of the Places seed stream.
const PLACES_SALT: u64 = 0x706c_6163_6573_0001;

/// A review to add with [`PlacesEmulator::add_review`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewPlacesReview {
    /// Stars, 1.0..=5.0 (fractions allowed, as Places serves them).
    pub rating: f64,
    /// The reviewer's own words.
    pub text: String,
    /// Their language (`en`, `de`, ...). When it differs from a request's
    /// `languageCode`, `text` is served as a translation.
    pub language: String,
    /// `authorAttribution.displayName`.
    pub author: String,
}

/// A review as stored.
#[derive(Clone, Debug)]
struct StoredReview {
    /// `places/{place}/reviews/{id}`.
    name: String,
    rating: f64,
    original: String,
    language: String,
    /// What `text` is served as for any other language (the sandbox's
    /// "translation").
    translation: String,
    author: String,
    published: DateTime<Utc>,
}

struct Place {
    id: String,
    display_name: String,
    /// In relevance order (see the module invariant).
    reviews: Vec<StoredReview>,
}

struct PlacesState {
    places: Vec<Place>,
    index: HashMap<String, usize>,
    requests: HashMap<String, u64>,
    requests_total: u64,
    next_review_number: u64,
    last_stamp: DateTime<Utc>,
    /// The key's per-minute quota, when a test sets one.
    rate_limit: Limiter,
}

impl PlacesState {
    fn place(&mut self, id: &str) -> Option<&mut Place> {
        let index = *self.index.get(id)?;
        self.places.get_mut(index)
    }

    fn stamp(&mut self) -> DateTime<Utc> {
        let next = Utc::now().max(self.last_stamp + TimeDelta::milliseconds(1));
        self.last_stamp = next;
        next
    }
}

/// Handle on the Places emulator (cheap to clone; clones share state).
#[derive(Clone)]
pub struct PlacesEmulator {
    inner: Arc<Mutex<PlacesState>>,
    faults: Faults,
}

/// Reviewer words in several languages, each with the sandbox's English
/// "translation" (the same text for English originals).
const TEXTS: &[(&str, &str, &str)] = &[
    (
        "en",
        "Friendly leasing team and a quiet courtyard.",
        "Friendly leasing team and a quiet courtyard.",
    ),
    (
        "de",
        "Sehr schöne Wohnung, der Hausmeister ist super.",
        "Very nice apartment, the caretaker is great.",
    ),
    (
        "fr",
        "Appartement lumineux, mais l'ascenseur est souvent en panne.",
        "Bright apartment, but the lift is often broken.",
    ),
    (
        "ja",
        "駅から近くてとても便利です。",
        "Very convenient, close to the station.",
    ),
    (
        "en",
        "Maintenance fixed the heating within a day 👍",
        "Maintenance fixed the heating within a day 👍",
    ),
    (
        "es",
        "Buena ubicación, el gimnasio está \"siempre\" lleno.",
        "Good location, the gym is \"always\" full.",
    ),
];

const AUTHORS: &[&str] = &["Ada Lovelace", "Björn Ångström", "Chen Wei", "Dee O'Hara"];

/// Fractional ratings as Places serves them.
const RATINGS: &[f64] = &[5.0, 4.0, 4.6, 3.5, 2.0, 1.0, 4.4];

impl PlacesEmulator {
    /// A fresh emulator with places seeded from `seed` and `shape`.
    pub(crate) fn new(seed: u64, shape: &PlacesSeed, faults: &Faults) -> PlacesEmulator {
        let mut rng = StdRng::seed_from_u64(seed ^ PLACES_SALT);
        let base = seed_base_time();
        let mut places = Vec::new();
        let mut index = HashMap::new();
        for p in 0..shape.places {
            let id = format!("ChIJsandbox{p:02}{}", opaque(&mut rng, 12));
            let reviews = (0..shape.reviews_per_place)
                .map(|n| {
                    let (language, original, translation) = TEXTS[rng.random_range(0..TEXTS.len())];
                    StoredReview {
                        name: format!("places/{id}/reviews/{}", opaque(&mut rng, 20)),
                        rating: RATINGS[(n as usize + p as usize) % RATINGS.len()],
                        original: original.to_owned(),
                        language: language.to_owned(),
                        translation: translation.to_owned(),
                        author: AUTHORS[rng.random_range(0..AUTHORS.len())].to_owned(),
                        published: base
                            - TimeDelta::seconds(rng.random_range(3_600..2 * 365 * 86_400))
                            + TimeDelta::nanoseconds(rng.random_range(0..1_000_000_000)),
                    }
                })
                .collect();
            index.insert(id.clone(), places.len());
            places.push(Place {
                display_name: format!("Sandbox Apartments {}", p + 1),
                id,
                reviews,
            });
        }
        PlacesEmulator {
            inner: Arc::new(Mutex::new(PlacesState {
                places,
                index,
                requests: HashMap::new(),
                requests_total: 0,
                rate_limit: Limiter::default(),
                next_review_number: 1,
                last_stamp: base,
            })),
            faults: faults.scoped(Endpoint::PLACES),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PlacesState> {
        self.inner.lock().expect("places emulator mutex poisoned")
    }

    /// Place ids, in creation order.
    pub fn place_ids(&self) -> Vec<String> {
        self.lock().places.iter().map(|p| p.id.clone()).collect()
    }

    /// Every review of `place` as served in English (`languageCode=en`), in
    /// relevance order, including those beyond the five served.
    pub fn all_reviews(&self, place: &str) -> Vec<Value> {
        self.lock()
            .place(place)
            .map(|p| p.reviews.iter().map(|r| review_json(r, "en")).collect())
            .unwrap_or_default()
    }

    /// The reviews Place Details serves for `place` (in English).
    pub fn served_reviews(&self, place: &str) -> Vec<Value> {
        let mut all = self.all_reviews(place);
        all.truncate(MAX_REVIEWS);
        all
    }

    /// Adds a review published now as the most relevant (so it is served)
    /// and returns its `name`; `None` for an unknown place.
    pub fn add_review(&self, place: &str, review: NewPlacesReview) -> Option<String> {
        let mut state = self.lock();
        let number = state.next_review_number;
        let published = state.stamp();
        let place = state.place(place)?;
        let name = format!("places/{}/reviews/new-{number}", place.id);
        place.reviews.insert(
            0,
            StoredReview {
                name: name.clone(),
                rating: review.rating,
                translation: format!("(translated) {}", review.text),
                original: review.text,
                language: review.language,
                author: review.author,
                published,
            },
        );
        state.next_review_number += 1;
        Some(name)
    }

    /// Changes a review's text and/or rating (Places shows no edit time).
    /// False if there is no such review.
    pub fn edit_review(
        &self,
        place: &str,
        name: &str,
        text: Option<String>,
        rating: Option<f64>,
    ) -> bool {
        let mut state = self.lock();
        let Some(review) = state
            .place(place)
            .and_then(|p| p.reviews.iter_mut().find(|r| r.name == name))
        else {
            return false;
        };
        if let Some(text) = text {
            review.translation = format!("(translated) {text}");
            review.original = text;
        }
        if let Some(rating) = rating {
            review.rating = rating;
        }
        true
    }

    /// Removes a review; false if there is no such review.
    pub fn delete_review(&self, place: &str, name: &str) -> bool {
        let mut state = self.lock();
        let Some(place) = state.place(place) else {
            return false;
        };
        let before = place.reviews.len();
        place.reviews.retain(|r| r.name != name);
        place.reviews.len() != before
    }

    /// Details calls for `place` that reached the handler.
    pub fn requests(&self, place: &str) -> u64 {
        self.lock().requests.get(place).copied().unwrap_or(0)
    }

    /// All details calls that reached the handler, faulted and failed included.
    pub fn requests_total(&self) -> u64 {
        self.lock().requests_total
    }

    /// Enforces `windows` on Place Details (one API key) (none, the default: no limit): a call
    /// past any of them is answered 429 with Places's quota error.
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

    /// The fault plan, scoped to the Places endpoint.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

fn opaque(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// One review as served for a request in `language`.
fn review_json(review: &StoredReview, language: &str) -> Value {
    let text = if review.language == language {
        json!({"text": review.original, "languageCode": review.language})
    } else {
        json!({"text": review.translation, "languageCode": language})
    };
    json!({
        "name": review.name,
        "relativePublishTimeDescription": "a month ago",
        "rating": review.rating,
        "text": text,
        "originalText": {"text": review.original, "languageCode": review.language},
        "authorAttribution": {
            "displayName": review.author,
            "uri": "https://www.google.com/maps/contrib/sandbox",
            "photoUri": "https://lh3.googleusercontent.com/a-/sandbox"
        },
        "publishTime": format_timestamp(review.published, 9),
        "flagContentUri": "https://www.google.com/local/review/rap/report?sandbox",
        "googleMapsUri": "https://www.google.com/maps/reviews/sandbox"
    })
}

/// Routes of the emulator, relative to `/places`.
pub(crate) fn router(emulator: PlacesEmulator) -> Router {
    Router::new()
        .route("/v1/places/{place}", get(details))
        .with_state(emulator)
}

fn canonical_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

fn error_body(status: StatusCode, message: &str) -> Value {
    json!({"error": {"code": status.as_u16(), "message": message, "status": canonical_status(status)}})
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(error_body(status, message))).into_response()
}

fn fault_body(status: StatusCode) -> Value {
    let message = match status.as_u16() {
        429 => "Quota exceeded for quota metric 'Place Details requests'.",
        503 => "The service is currently unavailable.",
        _ => "Internal error encountered.",
    };
    error_body(status, message)
}

async fn details(
    State(emulator): State<PlacesEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path(place): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    {
        let mut state = emulator.lock();
        state.requests_total += 1;
        *state.requests.entry(place.clone()).or_default() += 1;
    }
    match intercept(emulator.faults.take(Endpoint::PlacesDetails), fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }

    match header_string(&headers, "x-goog-api-key") {
        None => {
            return error(
                StatusCode::FORBIDDEN,
                "The request is missing a valid API key.",
            );
        }
        Some(key) if key != PLACES_API_KEY => {
            let mut body = error_body(
                StatusCode::BAD_REQUEST,
                "API key not valid. Please pass a valid API key.",
            );
            body["error"]["details"] = json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com"
            }]);
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
        Some(_) => {}
    }
    if emulator
        .lock()
        .rate_limit
        .admit(std::time::Instant::now())
        .is_err()
    {
        let status = StatusCode::TOO_MANY_REQUESTS;
        return (status, Json(fault_body(status))).into_response();
    }
    let Some(mask) = header_string(&headers, "x-goog-fieldmask")
        .or_else(|| query.get("fields").cloned())
        .or_else(|| query.get("$fields").cloned())
        .filter(|m| !m.trim().is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "FieldMask is a required parameter. See https://cloud.google.com/apis/docs/system-parameters on how to provide it.",
        );
    };
    let fields: Vec<String> = mask
        .split(',')
        .map(|f| f.trim().split('.').next().unwrap_or_default().to_owned())
        .collect();
    let wants = |name: &str| fields.iter().any(|f| f == "*" || f == name);
    let language = query
        .get("languageCode")
        .map_or("en", String::as_str)
        .split(['-', '_'])
        .next()
        .unwrap_or("en")
        .to_owned();

    let mut state = emulator.lock();
    let Some(place) = state.place(&place) else {
        drop(state);
        return error(StatusCode::NOT_FOUND, "Requested entity was not found.");
    };
    let mut body = Map::new();
    if wants("name") {
        body.insert("name".into(), json!(format!("places/{}", place.id)));
    }
    if wants("id") {
        body.insert("id".into(), json!(place.id));
    }
    if wants("displayName") {
        body.insert(
            "displayName".into(),
            json!({"text": place.display_name, "languageCode": "en"}),
        );
    }
    if wants("rating") && !place.reviews.is_empty() {
        let average =
            place.reviews.iter().map(|r| r.rating).sum::<f64>() / place.reviews.len() as f64;
        body.insert("rating".into(), json!((average * 10.0).round() / 10.0));
    }
    if wants("userRatingCount") && !place.reviews.is_empty() {
        body.insert("userRatingCount".into(), json!(place.reviews.len()));
    }
    if wants("reviews") && !place.reviews.is_empty() {
        let reviews: Vec<Value> = place
            .reviews
            .iter()
            .take(MAX_REVIEWS)
            .map(|r| review_json(r, &language))
            .collect();
        body.insert("reviews".into(), Value::Array(reviews));
    }
    Json(Value::Object(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emulator() -> PlacesEmulator {
        PlacesEmulator::new(
            42,
            &PlacesSeed {
                places: 3,
                reviews_per_place: 8,
            },
            &Faults::new(42),
        )
    }

    #[test]
    fn seeded_places_have_more_reviews_than_are_served_and_every_quirk() {
        let e = emulator();
        let ids = e.place_ids();
        assert_eq!(ids.len(), 3);
        let all: Vec<Value> = ids.iter().flat_map(|p| e.all_reviews(p)).collect();
        assert_eq!(all.len(), 24);
        assert_eq!(e.served_reviews(&ids[0]).len(), MAX_REVIEWS);
        assert!(
            all.iter()
                .any(|r| r["rating"].as_f64().is_some_and(|x| x.fract() != 0.0))
        );
        assert!(
            all.iter()
                .any(|r| r["text"]["text"] != r["originalText"]["text"])
        );
        assert!(
            all.iter()
                .all(|r| r["publishTime"].as_str().is_some_and(|t| t.ends_with('Z')))
        );
        // Deterministic.
        assert_eq!(emulator().all_reviews(&ids[1]), e.all_reviews(&ids[1]));
    }

    #[test]
    fn added_reviews_are_served_first_and_edits_and_deletes_apply() {
        let e = emulator();
        let place = e.place_ids()[0].clone();
        let name = e
            .add_review(
                &place,
                NewPlacesReview {
                    rating: 4.6,
                    text: "Neu hier".into(),
                    language: "de".into(),
                    author: "Nina".into(),
                },
            )
            .expect("known place");
        assert_eq!(e.served_reviews(&place)[0]["name"], name.as_str());
        assert!(e.edit_review(&place, &name, Some("Doch gut".into()), Some(2.0)));
        assert_eq!(
            e.served_reviews(&place)[0]["originalText"]["text"],
            "Doch gut"
        );
        assert!(e.delete_review(&place, &name));
        assert!(!e.delete_review(&place, &name));
        assert!(
            e.add_review(
                "nope",
                NewPlacesReview {
                    rating: 1.0,
                    text: String::new(),
                    language: "en".into(),
                    author: String::new()
                }
            )
            .is_none()
        );
    }
}
