//! The Yelp Fusion emulator (served under `/yelp`): a business's reviews
//! (`GET /v3/businesses/{id_or_alias}/reviews`), over seeded businesses that
//! tests can change while the sandbox runs.
//!
//! What it reproduces of the real API:
//! - the API key as a bearer token (missing or wrong: 401 `TOKEN_INVALID`);
//! - businesses addressed by their 22-character id or their alias; an
//!   unknown one is 404 `BUSINESS_NOT_FOUND`;
//! - at most [`MAX_REVIEWS`] reviews, Yelp's order by default or the newest
//!   with `sort_by=newest`, each `text` an excerpt cut with "..." when the
//!   review is longer than [`EXCERPT_CHARS`];
//! - `time_created` as `YYYY-MM-DD HH:MM:SS` in Pacific wall-clock time,
//!   daylight saving included (seeded times fall in both PST and PDT, never
//!   in the ambiguous hour of the autumn change);
//! - the daily limit per API key: `RateLimit-DailyLimit`,
//!   `RateLimit-Remaining` and `RateLimit-ResetTime` (the next midnight UTC,
//!   written `2024-03-28T00:00:00+00:00` as in Yelp's own example) on every
//!   answer, 429 `ACCESS_LIMIT_REACHED` once it is used up, and a new day's
//!   count at midnight UTC ([`YelpEmulator::set_daily_limit`]);
//! - the per-second limit, off unless set
//!   ([`YelpEmulator::set_per_second_limit`]): 429
//!   `TOO_MANY_REQUESTS_PER_SECOND`, as a 429 fault also answers;
//! - `locale` and `sort_by` validation (400 `VALIDATION_ERROR`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{
    DateTime, Datelike, Days, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc, Weekday,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::YelpSeed;
use crate::auth::bearer_token;
use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::limits::{Limiter, RateWindow};
use crate::seed::seed_base_time;
use crate::server::{ConnectionKill, drop_connection};

/// The API key the emulator accepts.
pub const YELP_API_KEY: &str = "sandbox-yelp-api-key";

/// The most reviews one call returns.
pub const MAX_REVIEWS: usize = 3;

/// Characters of a review's text served before the "..." of an excerpt.
pub const EXCERPT_CHARS: usize = 150;

/// The daily limit when none is set (Yelp's older free plan).
const DEFAULT_DAILY_LIMIT: u64 = 5000;

/// Salt of the Yelp seed stream.
const YELP_SALT: u64 = 0x7965_6c70_0000_0001;

/// A review to add with [`YelpEmulator::add_review`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewYelpReview {
    /// Stars, 1..=5.
    pub rating: u8,
    /// The whole text (served as an excerpt when long).
    pub text: String,
    /// `user.name`.
    pub user: String,
}

#[derive(Clone, Debug)]
struct StoredReview {
    id: String,
    rating: u8,
    text: String,
    user_id: String,
    user: String,
    created: DateTime<Utc>,
}

struct Business {
    id: String,
    alias: String,
    /// In Yelp's own (relevance) order.
    reviews: Vec<StoredReview>,
}

struct YelpState {
    businesses: Vec<Business>,
    requests: HashMap<String, u64>,
    requests_total: u64,
    daily_limit: u64,
    remaining: u64,
    /// When `remaining` is next set back to `daily_limit`: midnight UTC.
    resets_at: DateTime<Utc>,
    /// The per-second limit (no window: off).
    per_second: Limiter,
    /// Calls refused with `ACCESS_LIMIT_REACHED`.
    refused_daily: u64,
    next_review_number: u64,
    last_stamp: DateTime<Utc>,
}

impl YelpState {
    /// The business with this id or alias.
    fn business(&mut self, id_or_alias: &str) -> Option<&mut Business> {
        self.businesses
            .iter_mut()
            .find(|b| b.id == id_or_alias || b.alias == id_or_alias)
    }

    /// A new day's count once midnight UTC has passed.
    fn roll_day(&mut self, now: DateTime<Utc>) {
        if now >= self.resets_at {
            self.remaining = self.daily_limit;
            self.resets_at = next_midnight_utc(now);
        }
    }

    fn stamp(&mut self) -> DateTime<Utc> {
        // Whole seconds: `time_created` has no fraction.
        let now = Utc::now();
        let now = now - TimeDelta::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
        let next = now.max(self.last_stamp + TimeDelta::seconds(1));
        self.last_stamp = next;
        next
    }
}

/// Handle on the Yelp emulator (cheap to clone; clones share state).
#[derive(Clone)]
pub struct YelpEmulator {
    inner: Arc<Mutex<YelpState>>,
    faults: Faults,
}

const NAMES: &[&str] = &[
    "James L.",
    "Maria G.",
    "Søren K.",
    "Aoife N.",
    "Tom B.",
    "Priya N.",
];

const TEXTS: &[&str] = &[
    "We have lived here for two years now and honestly it keeps getting better. The management office answers emails the same day, the gym was renovated last spring, and the rooftop is lovely at sunset.",
    "Noisy at night.",
    "The apartment itself is great: big windows, modern kitchen, quiet neighbours. Parking, however, is a nightmare and the garage gate has been broken for weeks — nobody seems to care about it.",
    "Très bien situé, personnel accueillant, mais l'ascenseur tombe souvent en panne et les réparations prennent une éternité. Dommage, parce que le reste est vraiment parfait pour nous.",
    "Great place 🏡 love the concierge (Ana) and the \"community nights\".",
    "Moved in last month. Move-in was smooth, the unit was spotless, and the leasing agent walked us through everything twice. The only downside so far is the laundry room, which is always busy.",
];

impl YelpEmulator {
    /// A fresh emulator with businesses seeded from `seed` and `shape`.
    pub(crate) fn new(seed: u64, shape: &YelpSeed, faults: &Faults) -> YelpEmulator {
        let mut rng = StdRng::seed_from_u64(seed ^ YELP_SALT);
        let base = seed_base_time();
        let businesses = (0..shape.businesses)
            .map(|b| {
                let id = opaque(&mut rng, 22);
                let reviews = (0..shape.reviews_per_business)
                    .map(|n| {
                        // 25 days apart going back from 2025-12-20, so the
                        // newest three fall in both PST and PDT; UTC
                        // 17:00-23:59 is 09:00-16:59 Pacific, never the
                        // repeated hour of the autumn change.
                        let latest = Utc
                            .with_ymd_and_hms(2025, 12, 20, 17, 0, 0)
                            .single()
                            .unwrap_or(base);
                        let created = latest - TimeDelta::days(25 * i64::from(n))
                            + TimeDelta::seconds(rng.random_range(0..7 * 3600));
                        StoredReview {
                            id: opaque(&mut rng, 22),
                            rating: rng.random_range(1..=5),
                            text: TEXTS[rng.random_range(0..TEXTS.len())].to_owned(),
                            user_id: opaque(&mut rng, 22),
                            user: NAMES[rng.random_range(0..NAMES.len())].to_owned(),
                            created,
                        }
                    })
                    .collect();
                Business {
                    id,
                    alias: format!("sandbox-apartments-san-francisco-{}", b + 1),
                    reviews,
                }
            })
            .collect();
        YelpEmulator {
            inner: Arc::new(Mutex::new(YelpState {
                businesses,
                requests: HashMap::new(),
                requests_total: 0,
                daily_limit: DEFAULT_DAILY_LIMIT,
                remaining: DEFAULT_DAILY_LIMIT,
                resets_at: next_midnight_utc(Utc::now()),
                per_second: Limiter::default(),
                refused_daily: 0,
                next_review_number: 1,
                last_stamp: base,
            })),
            faults: faults.scoped(Endpoint::YELP),
        }
    }

    fn lock(&self) -> MutexGuard<'_, YelpState> {
        self.inner.lock().expect("yelp emulator mutex poisoned")
    }

    /// Business ids, in creation order.
    pub fn business_ids(&self) -> Vec<String> {
        self.lock()
            .businesses
            .iter()
            .map(|b| b.id.clone())
            .collect()
    }

    /// Business aliases, in creation order.
    pub fn business_aliases(&self) -> Vec<String> {
        self.lock()
            .businesses
            .iter()
            .map(|b| b.alias.clone())
            .collect()
    }

    /// The reviews served with `sort_by=newest` for the business with this
    /// id or alias (at most three, excerpts).
    pub fn served_reviews(&self, id_or_alias: &str) -> Vec<Value> {
        self.lock()
            .business(id_or_alias)
            .map(|b| newest(&b.reviews).iter().map(|r| review_json(r)).collect())
            .unwrap_or_default()
    }

    /// The UTC instant of a review's `time_created`, for tests to check the
    /// conversion against.
    pub fn created_at(&self, review_id: &str) -> Option<DateTime<Utc>> {
        self.lock()
            .businesses
            .iter()
            .flat_map(|b| &b.reviews)
            .find(|r| r.id == review_id)
            .map(|r| r.created)
    }

    /// The whole text of a review (what the excerpt is cut from).
    pub fn full_text(&self, review_id: &str) -> Option<String> {
        self.lock()
            .businesses
            .iter()
            .flat_map(|b| &b.reviews)
            .find(|r| r.id == review_id)
            .map(|r| r.text.clone())
    }

    /// Adds a review created now and returns its id; `None` for an unknown
    /// business.
    pub fn add_review(&self, id_or_alias: &str, review: NewYelpReview) -> Option<String> {
        let mut state = self.lock();
        let number = state.next_review_number;
        let created = state.stamp();
        let business = state.business(id_or_alias)?;
        let id = format!("new-yelp-review-{number:06}");
        business.reviews.push(StoredReview {
            id: id.clone(),
            rating: review.rating,
            text: review.text,
            user_id: format!("new-user-{number}"),
            user: review.user,
            created,
        });
        state.next_review_number += 1;
        Some(id)
    }

    /// Changes a review's text and/or rating. False if there is no such review.
    pub fn edit_review(&self, review_id: &str, text: Option<String>, rating: Option<u8>) -> bool {
        let mut state = self.lock();
        let Some(review) = state
            .businesses
            .iter_mut()
            .flat_map(|b| b.reviews.iter_mut())
            .find(|r| r.id == review_id)
        else {
            return false;
        };
        if let Some(text) = text {
            review.text = text;
        }
        if let Some(rating) = rating {
            review.rating = rating;
        }
        true
    }

    /// Removes a review; false if there is no such review.
    pub fn delete_review(&self, review_id: &str) -> bool {
        let mut state = self.lock();
        let mut found = false;
        for business in &mut state.businesses {
            let before = business.reviews.len();
            business.reviews.retain(|r| r.id != review_id);
            found |= business.reviews.len() != before;
        }
        found
    }

    /// Sets the daily limit and how many calls of it are left today (the
    /// count starts again at the next midnight UTC).
    pub fn set_daily_limit(&self, limit: u64, remaining: u64) {
        let mut state = self.lock();
        state.roll_day(Utc::now());
        state.daily_limit = limit;
        state.remaining = remaining.min(limit);
    }

    /// The daily limit and the calls left of it today.
    pub fn daily_limit(&self) -> (u64, u64) {
        let mut state = self.lock();
        state.roll_day(Utc::now());
        (state.daily_limit, state.remaining)
    }

    /// Refuses calls beyond `limit` in any second with 429
    /// `TOO_MANY_REQUESTS_PER_SECOND` (`None`, the default: no limit).
    pub fn set_per_second_limit(&self, limit: Option<u32>) {
        let windows: Vec<RateWindow> = limit
            .map(|n| RateWindow::new(n, std::time::Duration::from_secs(1)))
            .into_iter()
            .collect();
        self.lock().per_second.set(&windows);
    }

    /// The per-second limit, if one is set.
    pub fn per_second_limit(&self) -> Option<u32> {
        self.lock().per_second.windows().first().map(|w| w.limit)
    }

    /// Calls refused for rate since start: `ACCESS_LIMIT_REACHED` and
    /// `TOO_MANY_REQUESTS_PER_SECOND` (not injected faults).
    pub fn refused_for_rate(&self) -> u64 {
        let state = self.lock();
        state.refused_daily + state.per_second.refused()
    }

    /// Reviews calls for the business `id_or_alias` (as requested) that
    /// reached the handler.
    pub fn requests(&self, id_or_alias: &str) -> u64 {
        self.lock().requests.get(id_or_alias).copied().unwrap_or(0)
    }

    /// All reviews calls that reached the handler.
    pub fn requests_total(&self) -> u64 {
        self.lock().requests_total
    }

    /// The fault plan, scoped to the Yelp endpoint.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

/// The newest [`MAX_REVIEWS`] reviews.
fn newest(reviews: &[StoredReview]) -> Vec<&StoredReview> {
    let mut sorted: Vec<&StoredReview> = reviews.iter().collect();
    sorted.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    sorted.truncate(MAX_REVIEWS);
    sorted
}

fn opaque(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Pacific wall-clock time of an instant, by the US rules in force since
/// 2007: PDT (UTC-7) from the second Sunday of March, 02:00 PST, to the
/// first Sunday of November, 02:00 PDT; PST (UTC-8) otherwise.
pub fn pacific_wall_clock(t: DateTime<Utc>) -> NaiveDateTime {
    let year = t.year();
    let sunday = |month: u32, n: u8| {
        NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n).unwrap_or(NaiveDate::MIN)
    };
    // 02:00 PST is 10:00 UTC; 02:00 PDT is 09:00 UTC.
    let dst_start = sunday(3, 2).and_hms_opt(10, 0, 0).map(|n| n.and_utc());
    let dst_end = sunday(11, 1).and_hms_opt(9, 0, 0).map(|n| n.and_utc());
    let daylight = matches!((dst_start, dst_end), (Some(s), Some(e)) if t >= s && t < e);
    let offset = if daylight { -7 } else { -8 };
    (t + TimeDelta::hours(offset)).naive_utc()
}

/// The next midnight UTC, when Yelp resets daily limits.
fn next_midnight_utc(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(now, |n| n.and_utc())
}

/// The served text: an excerpt cut at a word boundary with "...".
fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(EXCERPT_CHARS).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > EXCERPT_CHARS / 2 => &cut[..space],
        _ => &cut,
    };
    format!("{}...", cut.trim_end())
}

fn review_json(review: &StoredReview) -> Value {
    json!({
        "id": review.id,
        "url": format!("https://www.yelp.com/biz/sandbox?hrid={}", review.id),
        "text": excerpt(&review.text),
        "rating": review.rating,
        "time_created": pacific_wall_clock(review.created).format("%Y-%m-%d %H:%M:%S").to_string(),
        "user": {
            "id": review.user_id,
            "profile_url": format!("https://www.yelp.com/user_details?userid={}", review.user_id),
            "image_url": if review.rating.is_multiple_of(2) { Value::Null } else { json!("https://s3-media0.fl.yelpcdn.com/photo/sandbox.jpg") },
            "name": review.user,
        }
    })
}

/// Routes of the emulator, relative to `/yelp`.
pub(crate) fn router(emulator: YelpEmulator) -> Router {
    Router::new()
        .route("/v3/businesses/{business}/reviews", get(reviews))
        .with_state(emulator)
}

fn error_body(code: &str, description: &str) -> Value {
    json!({"error": {"code": code, "description": description}})
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (status, Json(error_body(code, description))).into_response()
}

fn fault_body(status: StatusCode) -> Value {
    match status.as_u16() {
        429 => error_body(
            "TOO_MANY_REQUESTS_PER_SECOND",
            "You have exceeded the queries-per-second limit for this endpoint. Try reducing the rate at which you make queries.",
        ),
        503 => error_body(
            "SERVICE_UNAVAILABLE",
            "The service is temporarily unavailable.",
        ),
        _ => error_body(
            "INTERNAL_ERROR",
            "Something went wrong internally, please try again later.",
        ),
    }
}

fn with_limit_headers(
    mut response: Response,
    limit: u64,
    remaining: u64,
    resets_at: DateTime<Utc>,
) -> Response {
    let headers = response.headers_mut();
    headers.insert("ratelimit-dailylimit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    let reset = resets_at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    if let Ok(value) = HeaderValue::from_str(&reset) {
        headers.insert("ratelimit-resettime", value);
    }
    response
}

fn valid_locale(locale: &str) -> bool {
    matches!(locale.split_once('_'), Some((l, c))
        if l.len() == 2 && l.chars().all(|x| x.is_ascii_lowercase())
            && c.len() == 2 && c.chars().all(|x| x.is_ascii_uppercase()))
}

async fn reviews(
    State(emulator): State<YelpEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path(business): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    {
        let mut state = emulator.lock();
        state.requests_total += 1;
        *state.requests.entry(business.clone()).or_default() += 1;
    }
    match intercept(emulator.faults.take(Endpoint::YelpReviews), fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }
    if bearer_token(&headers) != Some(YELP_API_KEY) {
        return error(
            StatusCode::UNAUTHORIZED,
            "TOKEN_INVALID",
            "Invalid access token or authorization header.",
        );
    }
    let (limit, remaining, resets_at) = {
        let mut state = emulator.lock();
        state.roll_day(Utc::now());
        let (limit, resets_at) = (state.daily_limit, state.resets_at);
        if state.remaining == 0 {
            state.refused_daily += 1;
            drop(state);
            let response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "ACCESS_LIMIT_REACHED",
                "You've reached the access limit for this client. See instructions for requesting a higher access limit at https://docs.developer.yelp.com/docs/fusion-rate-limiting",
            );
            return with_limit_headers(response, limit, 0, resets_at);
        }
        if state.per_second.admit(std::time::Instant::now()).is_err() {
            let remaining = state.remaining;
            drop(state);
            let response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(fault_body(StatusCode::TOO_MANY_REQUESTS)),
            )
                .into_response();
            return with_limit_headers(response, limit, remaining, resets_at);
        }
        state.remaining -= 1;
        (limit, state.remaining, resets_at)
    };
    if let Some(locale) = query.get("locale")
        && !valid_locale(locale)
    {
        let response = error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("'{locale}' does not match '^[a-z]{{2,3}}_[A-Z]{{2}}$'"),
        );
        return with_limit_headers(response, limit, remaining, resets_at);
    }
    let newest_first = match query.get("sort_by").map(String::as_str) {
        None | Some("yelp_sort") => false,
        Some("newest") => true,
        Some(other) => {
            let response = error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("'{other}' is not one of ['yelp_sort', 'newest']"),
            );
            return with_limit_headers(response, limit, remaining, resets_at);
        }
    };
    let mut state = emulator.lock();
    let Some(found) = state.business(&business) else {
        drop(state);
        let response = error(
            StatusCode::NOT_FOUND,
            "BUSINESS_NOT_FOUND",
            "The requested business could not be found.",
        );
        return with_limit_headers(response, limit, remaining, resets_at);
    };
    let served: Vec<Value> = if newest_first {
        newest(&found.reviews)
            .into_iter()
            .map(review_json)
            .collect()
    } else {
        found
            .reviews
            .iter()
            .take(MAX_REVIEWS)
            .map(review_json)
            .collect()
    };
    let body = json!({
        "reviews": served,
        "total": found.reviews.len(),
        "possible_languages": ["en", "fr"],
    });
    drop(state);
    with_limit_headers(Json(body).into_response(), limit, remaining, resets_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn pacific_time_follows_us_daylight_saving() {
        let cases = [
            ("2025-01-15T20:00:00Z", "2025-01-15 12:00:00"),
            ("2025-03-09T09:59:59Z", "2025-03-09 01:59:59"),
            ("2025-03-09T10:00:00Z", "2025-03-09 03:00:00"),
            ("2025-07-04T19:00:00Z", "2025-07-04 12:00:00"),
            ("2025-11-02T08:59:59Z", "2025-11-02 01:59:59"),
            ("2025-11-02T09:00:00Z", "2025-11-02 01:00:00"),
            ("2024-03-10T10:00:00Z", "2024-03-10 03:00:00"),
        ];
        for (instant, wall) in cases {
            assert_eq!(
                pacific_wall_clock(utc(instant))
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
                wall,
                "{instant}"
            );
        }
    }

    #[test]
    fn excerpts_are_cut_with_an_ellipsis() {
        assert_eq!(excerpt("Short."), "Short.");
        let long = TEXTS[0];
        let cut = excerpt(long);
        assert!(
            cut.ends_with("...") && cut.chars().count() <= EXCERPT_CHARS + 3,
            "{cut}"
        );
        assert!(long.starts_with(cut.trim_end_matches("...")));
    }

    #[test]
    fn seeded_reviews_cover_both_offsets_and_excerpts() {
        let e = YelpEmulator::new(
            42,
            &YelpSeed {
                businesses: 2,
                reviews_per_business: 6,
            },
            &Faults::new(42),
        );
        let ids = e.business_ids();
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().all(|id| id.len() == 22));
        let served: Vec<Value> = ids.iter().flat_map(|b| e.served_reviews(b)).collect();
        assert_eq!(served.len(), 6, "three per business");
        let all_created: Vec<DateTime<Utc>> = e
            .lock()
            .businesses
            .iter()
            .flat_map(|b| b.reviews.iter().map(|r| r.created))
            .collect();
        let offsets: std::collections::HashSet<i64> = all_created
            .iter()
            .map(|t| (pacific_wall_clock(*t) - t.naive_utc()).num_hours())
            .collect();
        assert_eq!(offsets, [-8, -7].into_iter().collect());
        assert!(
            served
                .iter()
                .any(|r| r["text"].as_str().is_some_and(|t| t.ends_with("...")))
        );
        assert_eq!(
            e.served_reviews(&e.business_aliases()[0]),
            e.served_reviews(&ids[0])
        );
    }
}
