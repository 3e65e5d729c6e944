//! Fault plans shared by every emulator: which requests to an endpoint fail,
//! and how.
//!
//! A plan has two parts per [`Endpoint`]: a FIFO queue of scripted faults
//! (consumed first, one per request) and probabilistic [`FaultRates`] drawn
//! from a seeded RNG, so a run with the same seed and the same request order
//! injects the same faults. Handlers call [`Faults::take`] once per request,
//! before doing anything with side effects, and turn the result into a
//! response with [`intercept`]; dropping the connection itself is the
//! server's job (see `server::ConnectionKill`).
//!
//! Besides the faults of a healthy platform on a bad day (error statuses,
//! throttling, drops, slowness), two faults are what a misrouted proxy or a
//! hijacked endpoint does: a redirect ([`Fault::Redirect`], any 3xx to
//! another origin such as [`crate::Elsewhere`], or to the sandbox itself)
//! and an answer that is not the API's own ([`Fault::Answer`]: an empty 200,
//! an HTML page, a 204...). Both work on every endpoint.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A route of an emulator that faults can be aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /travtus/oauth2/token`.
    TravtusToken,
    /// `POST /travtus/messages/`.
    TravtusMessages,
    /// `POST /google/token`.
    GoogleToken,
    /// `GET /google/v4/accounts/{a}/locations/{l}/reviews`.
    GoogleList,
    /// `POST /google/v4/accounts/{a}/locations:batchGetReviews` (its own
    /// plan: list faults never hit batch calls, nor batch faults lists).
    GoogleBatch,
    /// `GET /google-bi/v1/accounts/{a}/locations` (Business Information).
    GoogleBusinessInfo,
    /// `GET /places/v1/places/{place}`.
    PlacesDetails,
    /// `GET /yelp/v3/businesses/{id}/reviews`.
    YelpReviews,
    /// `GET /facebook/{version}/{page}/ratings`.
    FacebookRatings,
    /// `GET /trustpilot/v1/[private/]business-units/{id}/reviews`.
    TrustpilotReviews,
    /// `POST /trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken`.
    TrustpilotToken,
    /// `POST /pubsub/v1/projects/{p}/subscriptions/{s}:pull`.
    PubSubPull,
    /// `POST /pubsub/v1/projects/{p}/subscriptions/{s}:acknowledge` and `:modifyAckDeadline`.
    PubSubAck,
    /// The other Pub/Sub calls: get, create and delete subscriptions, topics, publish.
    PubSubAdmin,
    /// `POST /google-sa/token` (the service-account JWT bearer grant).
    ServiceAccountToken,
}

impl Endpoint {
    /// Every endpoint, in the order of their slots in a plan.
    pub const ALL: [Endpoint; 15] = [
        Endpoint::TravtusToken,
        Endpoint::TravtusMessages,
        Endpoint::GoogleToken,
        Endpoint::GoogleList,
        Endpoint::GoogleBusinessInfo,
        Endpoint::PlacesDetails,
        Endpoint::YelpReviews,
        Endpoint::FacebookRatings,
        Endpoint::TrustpilotReviews,
        Endpoint::TrustpilotToken,
        Endpoint::PubSubPull,
        Endpoint::PubSubAck,
        Endpoint::PubSubAdmin,
        Endpoint::ServiceAccountToken,
        Endpoint::GoogleBatch,
    ];

    /// The endpoints served by the Travtus emulator.
    pub const TRAVTUS: &'static [Endpoint] = &[Endpoint::TravtusToken, Endpoint::TravtusMessages];

    /// The endpoints served by the Google emulators (Business Profile and
    /// Business Information share one account, token and plan).
    pub const GOOGLE: &'static [Endpoint] = &[
        Endpoint::GoogleToken,
        Endpoint::GoogleList,
        Endpoint::GoogleBatch,
        Endpoint::GoogleBusinessInfo,
    ];

    /// The endpoints served by the Google Places emulator.
    pub const PLACES: &'static [Endpoint] = &[Endpoint::PlacesDetails];

    /// The endpoints served by the Yelp emulator.
    pub const YELP: &'static [Endpoint] = &[Endpoint::YelpReviews];

    /// The endpoints served by the Facebook emulator.
    pub const FACEBOOK: &'static [Endpoint] = &[Endpoint::FacebookRatings];

    /// The endpoints served by the Trustpilot emulator.
    pub const TRUSTPILOT: &'static [Endpoint] =
        &[Endpoint::TrustpilotReviews, Endpoint::TrustpilotToken];

    /// The endpoints served by the Pub/Sub emulator.
    pub const PUBSUB: &'static [Endpoint] = &[
        Endpoint::PubSubPull,
        Endpoint::PubSubAck,
        Endpoint::PubSubAdmin,
    ];

    /// The service-account token endpoint.
    pub const SERVICE_ACCOUNT: &'static [Endpoint] = &[Endpoint::ServiceAccountToken];

    /// The snake_case name used by the HTTP control API (`travtus_messages`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::TravtusToken => "travtus_token",
            Endpoint::TravtusMessages => "travtus_messages",
            Endpoint::GoogleToken => "google_token",
            Endpoint::GoogleList => "google_list",
            Endpoint::GoogleBatch => "google_batch",
            Endpoint::GoogleBusinessInfo => "google_business_info",
            Endpoint::PlacesDetails => "places_details",
            Endpoint::YelpReviews => "yelp_reviews",
            Endpoint::FacebookRatings => "facebook_ratings",
            Endpoint::TrustpilotReviews => "trustpilot_reviews",
            Endpoint::TrustpilotToken => "trustpilot_token",
            Endpoint::PubSubPull => "pubsub_pull",
            Endpoint::PubSubAck => "pubsub_ack",
            Endpoint::PubSubAdmin => "pubsub_admin",
            Endpoint::ServiceAccountToken => "service_account_token",
        }
    }

    /// Parses a name produced by [`Endpoint::name`].
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }

    fn slot(self) -> usize {
        match self {
            Endpoint::TravtusToken => 0,
            Endpoint::TravtusMessages => 1,
            Endpoint::GoogleToken => 2,
            Endpoint::GoogleList => 3,
            Endpoint::GoogleBusinessInfo => 4,
            Endpoint::PlacesDetails => 5,
            Endpoint::YelpReviews => 6,
            Endpoint::FacebookRatings => 7,
            Endpoint::TrustpilotReviews => 8,
            Endpoint::TrustpilotToken => 9,
            Endpoint::PubSubPull => 10,
            Endpoint::PubSubAck => 11,
            Endpoint::PubSubAdmin => 12,
            Endpoint::ServiceAccountToken => 13,
            Endpoint::GoogleBatch => 14,
        }
    }
}

/// One way a request can go wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A plain error with this status and a body in the API's own error shape
    /// (500, 503, ...). Codes outside 100..=999 are answered as 500.
    Status(u16),
    /// HTTP 429, with `Retry-After` (whole seconds, rounded up) when given.
    TooManyRequests {
        /// Sent as the `Retry-After` header in integer seconds.
        retry_after: Option<Duration>,
    },
    /// The connection is closed without writing any HTTP response bytes.
    Drop,
    /// The request is answered normally, but only after this delay.
    Slow(Duration),
    /// A redirect: `status` (301, 302, 303, 307, 308, or any other) with a
    /// `Location` that keeps the request's own path and query, on the origin
    /// `to` (`http://127.0.0.1:PORT`, e.g. [`crate::Elsewhere::base_url`])
    /// or, when `to` is `None`, on the sandbox itself (a relative
    /// `Location`: following it reaches the same endpoint again).
    Redirect {
        /// The redirect status.
        status: u16,
        /// The origin to send the client to; `None`: the same one.
        to: Option<String>,
    },
    /// This answer instead of the endpoint's own: any status, content type
    /// and body (an empty 200, `<html>OK</html>`, `{"ok":true}`, a 204...).
    Answer {
        /// The status (outside 100..=999 answered as 500).
        status: u16,
        /// The `Content-Type` header; `None`: none sent.
        content_type: Option<String>,
        /// The body, sent as is.
        body: String,
    },
}

/// Probabilities (0.0..=1.0 each) of a fault on every request to an endpoint
/// whose scripted queue is empty. Their sum should not exceed 1.0; one draw
/// per request picks at most one fault.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct FaultRates {
    /// Chance of a 500 in the API's error shape.
    pub status_500: f64,
    /// Chance of a 429.
    pub too_many: f64,
    /// `Retry-After` sent with the probabilistic 429s.
    pub retry_after: Option<Duration>,
    /// Chance of a dropped connection.
    pub drop: f64,
    /// Chance of a slow answer.
    pub slow: f64,
    /// How slow a slow answer is.
    pub slow_by: Duration,
}

impl FaultRates {
    fn is_zero(&self) -> bool {
        self.status_500 <= 0.0 && self.too_many <= 0.0 && self.drop <= 0.0 && self.slow <= 0.0
    }

    /// Turns one uniform draw in [0, 1) into at most one fault.
    fn pick(&self, draw: f64) -> Option<Fault> {
        let mut bound = self.drop.max(0.0);
        if draw < bound {
            return Some(Fault::Drop);
        }
        bound += self.status_500.max(0.0);
        if draw < bound {
            return Some(Fault::Status(500));
        }
        bound += self.too_many.max(0.0);
        if draw < bound {
            return Some(Fault::TooManyRequests {
                retry_after: self.retry_after,
            });
        }
        bound += self.slow.max(0.0);
        if draw < bound {
            return Some(Fault::Slow(self.slow_by));
        }
        None
    }
}

/// The plan of one endpoint.
struct Slot {
    /// Scripted faults with how many more requests each still applies to.
    queue: VecDeque<(Fault, u32)>,
    rates: FaultRates,
    /// One RNG per endpoint, so the faults one endpoint draws do not depend
    /// on how its requests interleave with another endpoint's.
    rng: StdRng,
    injected: u64,
}

/// The plans of all endpoints of one sandbox.
struct Plan {
    slots: [Slot; Endpoint::ALL.len()],
}

/// A handle on the sandbox's fault plans (cheap to clone).
///
/// All emulators of one sandbox share one plan, so a fault pushed through
/// any handle reaches the endpoint it names. A handle obtained from an
/// emulator is *scoped* to that emulator's endpoints for [`Faults::clear`]
/// and [`Faults::injected`]; the handle from `Sandbox::faults` covers all.
#[derive(Clone)]
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
    scope: &'static [Endpoint],
}

impl Faults {
    /// A fresh, empty plan covering every endpoint, its RNGs seeded from `seed`.
    pub(crate) fn new(seed: u64) -> Faults {
        let slot = |e: Endpoint| Slot {
            queue: VecDeque::new(),
            rates: FaultRates::default(),
            // Distinct, fixed salts keep each endpoint's stream independent.
            rng: StdRng::seed_from_u64(
                seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(e.slot() as u64 + 1)),
            ),
            injected: 0,
        };
        Faults {
            plan: Arc::new(Mutex::new(Plan {
                slots: Endpoint::ALL.map(slot),
            })),
            scope: &Endpoint::ALL,
        }
    }

    /// The same plan, with `clear`/`injected` limited to `scope`.
    pub(crate) fn scoped(&self, scope: &'static [Endpoint]) -> Faults {
        Faults {
            plan: Arc::clone(&self.plan),
            scope,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().expect("fault plan mutex poisoned")
    }

    /// The next `times` requests to `endpoint` get `fault`, after any faults
    /// already queued for it.
    pub fn push(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        self.lock().slots[endpoint.slot()]
            .queue
            .push_back((fault, times));
    }

    /// Sets the probabilistic faults of `endpoint` (applied when its queue is empty).
    pub fn set_rates(&self, endpoint: Endpoint, rates: FaultRates) {
        self.lock().slots[endpoint.slot()].rates = rates;
    }

    /// Removes queued faults and rates of this handle's endpoints. The count
    /// of injected faults and the RNG state are kept.
    pub fn clear(&self) {
        let mut plan = self.lock();
        for endpoint in self.scope {
            let slot = &mut plan.slots[endpoint.slot()];
            slot.queue.clear();
            slot.rates = FaultRates::default();
        }
    }

    /// How many faults were actually applied to this handle's endpoints.
    pub fn injected(&self) -> u64 {
        let plan = self.lock();
        self.scope
            .iter()
            .map(|e| plan.slots[e.slot()].injected)
            .sum()
    }

    /// How many faults were actually applied to `endpoint`.
    pub fn injected_for(&self, endpoint: Endpoint) -> u64 {
        self.lock().slots[endpoint.slot()].injected
    }

    /// How many scripted faults are still queued for `endpoint`.
    pub fn pending(&self, endpoint: Endpoint) -> u64 {
        self.lock().slots[endpoint.slot()]
            .queue
            .iter()
            .map(|(_, n)| u64::from(*n))
            .sum()
    }

    /// Decides the fault (if any) for one request to `endpoint` and counts it.
    pub(crate) fn take(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut plan = self.lock();
        let slot = &mut plan.slots[endpoint.slot()];
        let fault = if let Some((fault, left)) = slot.queue.front_mut() {
            let fault = fault.clone();
            *left -= 1;
            if *left == 0 {
                slot.queue.pop_front();
            }
            Some(fault)
        } else if slot.rates.is_zero() {
            None
        } else {
            let draw: f64 = slot.rng.random();
            slot.rates.pick(draw)
        };
        if fault.is_some() {
            slot.injected += 1;
        }
        fault
    }
}

/// Marks a [`Fault::Redirect`] response whose `Location` still lacks the
/// request's path and query: [`redirect_location`] (a layer over the whole
/// router, which sees the request) completes it, so handlers need not pass
/// their URI to [`intercept`].
#[derive(Clone, Debug)]
pub(crate) struct RedirectTo(Option<String>);

/// Completes the `Location` of a [`Fault::Redirect`] answer with the
/// request's own path and query (see [`RedirectTo`]).
pub(crate) async fn redirect_location(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(RedirectTo(to)) = response.extensions_mut().remove::<RedirectTo>() {
        let location = format!("{}{target}", to.unwrap_or_default());
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
    }
    response
}

/// Builds an API's error body for a fault status (500, 503, 429, ...).
pub(crate) type ErrorBody = fn(StatusCode) -> serde_json::Value;

/// What a handler does after consulting the plan.
pub(crate) enum Intercept {
    /// No fault, or a `Slow` one that has already waited: handle normally.
    Proceed,
    /// Answer with this error and skip every side effect.
    Respond(Response),
    /// Close the connection without answering and skip every side effect.
    Drop,
}

/// Turns the fault chosen for a request into what the handler must do,
/// waiting out a `Slow` fault here (the wait is dropped with the request if
/// the client hangs up or the sandbox shuts down).
pub(crate) async fn intercept(fault: Option<Fault>, body: ErrorBody) -> Intercept {
    match fault {
        None => Intercept::Proceed,
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            Intercept::Proceed
        }
        Some(Fault::Drop) => Intercept::Drop,
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Intercept::Respond((status, axum::Json(body(status))).into_response())
        }
        Some(Fault::TooManyRequests { retry_after }) => {
            let status = StatusCode::TOO_MANY_REQUESTS;
            let mut response = (status, axum::Json(body(status))).into_response();
            if let Some(after) = retry_after {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(whole_seconds_up(after)),
                );
            }
            Intercept::Respond(response)
        }
        Some(Fault::Redirect { status, to }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
            let mut response =
                (status, axum::Json(serde_json::json!({"moved": true}))).into_response();
            response.extensions_mut().insert(RedirectTo(to));
            Intercept::Respond(response)
        }
        Some(Fault::Answer {
            status,
            content_type,
            body,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, body).into_response();
            response.headers_mut().remove(header::CONTENT_TYPE);
            if let Some(value) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            Intercept::Respond(response)
        }
    }
}

/// `Retry-After` carries integer seconds; round up so a client never retries early.
fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_are_consumed_in_order_then_nothing() {
        let faults = Faults::new(1);
        faults.push(Endpoint::TravtusMessages, Fault::Status(503), 2);
        faults.push(Endpoint::TravtusMessages, Fault::Drop, 1);
        assert_eq!(faults.pending(Endpoint::TravtusMessages), 3);
        assert_eq!(faults.take(Endpoint::TravtusToken), None);
        assert_eq!(
            faults.take(Endpoint::TravtusMessages),
            Some(Fault::Status(503))
        );
        assert_eq!(
            faults.take(Endpoint::TravtusMessages),
            Some(Fault::Status(503))
        );
        assert_eq!(faults.take(Endpoint::TravtusMessages), Some(Fault::Drop));
        assert_eq!(faults.take(Endpoint::TravtusMessages), None);
        assert_eq!(faults.injected(), 3);
    }

    #[test]
    fn scoped_handles_share_the_plan_but_count_their_own() {
        let all = Faults::new(1);
        let travtus = all.scoped(Endpoint::TRAVTUS);
        let google = all.scoped(Endpoint::GOOGLE);
        travtus.push(Endpoint::GoogleList, Fault::Status(500), 1);
        assert_eq!(all.take(Endpoint::GoogleList), Some(Fault::Status(500)));
        assert_eq!(travtus.injected(), 0);
        assert_eq!(google.injected(), 1);
        google.push(Endpoint::TravtusToken, Fault::Drop, 1);
        google.clear();
        assert_eq!(all.pending(Endpoint::TravtusToken), 1);
    }

    #[test]
    fn rates_are_deterministic_per_seed() {
        let draw = |seed| {
            let faults = Faults::new(seed);
            faults.set_rates(
                Endpoint::GoogleList,
                FaultRates {
                    status_500: 0.3,
                    drop: 0.2,
                    ..FaultRates::default()
                },
            );
            (0..50)
                .map(|_| faults.take(Endpoint::GoogleList))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert!(a.contains(&Some(Fault::Drop)));
        assert!(a.contains(&Some(Fault::Status(500))));
        assert!(a.contains(&None));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds_up(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
    }
}
