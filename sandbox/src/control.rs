//! The HTTP control API under `/_sandbox`: lets users of
//! `review-sync sandbox` and child-process benchmarks see counts and
//! received messages, add or edit Google reviews, and script faults,
//! without linking the library. Its wire types live here only.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::{Endpoint, Fault, FaultRates, Faults};
use crate::google::{GoogleEmulator, NewGoogleReview};
use crate::travtus::TravtusEmulator;

/// What the control handlers act on.
#[derive(Clone)]
pub(crate) struct Control {
    pub(crate) travtus: TravtusEmulator,
    pub(crate) google: GoogleEmulator,
    pub(crate) places: crate::places::PlacesEmulator,
    pub(crate) yelp: crate::yelp::YelpEmulator,
    pub(crate) facebook: crate::facebook::FacebookEmulator,
    pub(crate) trustpilot: crate::trustpilot::TrustpilotEmulator,
    pub(crate) elsewhere: crate::elsewhere::Elsewhere,
    /// Unscoped: faults for any endpoint, counts over all.
    pub(crate) faults: Faults,
}

/// Routes of the control API, relative to `/_sandbox`.
pub(crate) fn router(control: Control) -> Router {
    Router::new()
        .route("/state", get(state))
        .route("/platforms/locations", get(platform_locations))
        .route("/travtus/messages", get(travtus_messages))
        .route("/travtus/groups", get(travtus_groups))
        .route("/travtus/token_lifetime", post(travtus_token_lifetime))
        .route("/google/locations", get(google_locations))
        .route("/google/reviews", post(google_add_review))
        .route("/google/edit", post(google_edit_review))
        .route("/google/token_lifetime", post(google_token_lifetime))
        .route("/yelp/limits", post(yelp_limits))
        .route("/facebook/usage", post(facebook_usage))
        .route("/rate_limits", post(rate_limits))
        .route("/faults", post(push_fault))
        .route("/faults/rates", post(set_rates))
        .route("/faults/clear", post(clear_faults))
        .route("/elsewhere", get(elsewhere))
        .with_state(control)
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

fn not_found(message: String) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": message}))).into_response()
}

async fn state(State(c): State<Control>) -> Json<Value> {
    Json(json!({
        "travtus_messages_accepted": c.travtus.message_count(),
        "travtus_message_requests": c.travtus.message_requests(),
        "travtus_token_requests": c.travtus.token_requests(),
        "google_list_requests_total": c.google.list_requests_total(),
        "google_batch_requests_total": c.google.batch_requests(),
        "google_token_requests": c.google.token_requests(),
        "places_requests_total": c.places.requests_total(),
        "yelp_requests_total": c.yelp.requests_total(),
        "facebook_requests_total": c.facebook.requests_total(),
        "trustpilot_requests_total": c.trustpilot.requests_total(),
        "trustpilot_password_grants": c.trustpilot.password_grants(),
        "trustpilot_refresh_grants": c.trustpilot.refresh_grants(),
        "google_refused_for_rate": c.google.refused_for_rate(),
        "places_refused_for_rate": c.places.refused_for_rate(),
        "yelp_refused_for_rate": c.yelp.refused_for_rate(),
        "facebook_refused_for_rate": c.facebook.refused_for_rate(),
        "trustpilot_refused_for_rate": c.trustpilot.refused_for_rate(),
        "faults_injected": c.faults.injected(),
    }))
}

/// The location ids of the other platforms' emulators, for writing a config
/// by hand: place ids, Yelp business ids, Facebook Page ids and Trustpilot
/// business unit ids.
async fn platform_locations(State(c): State<Control>) -> Json<Value> {
    Json(json!({
        "google_places": c.places.place_ids(),
        "yelp": c.yelp.business_ids(),
        "facebook": c.facebook.page_ids(),
        "trustpilot": c.trustpilot.business_unit_ids(),
    }))
}

async fn travtus_messages(State(c): State<Control>) -> Json<Value> {
    let messages = c
        .travtus
        .messages()
        .into_iter()
        .map(|m| {
            json!({
                "request_id": m.request_id,
                "received_at": m.received_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                "idempotency_key": m.idempotency_key,
                "content_type": m.content_type,
                "group_id": m.group_id,
                "body": m.body,
            })
        })
        .collect();
    Json(Value::Array(messages))
}

async fn travtus_groups(State(c): State<Control>) -> Json<Value> {
    let groups = c
        .travtus
        .groups()
        .into_iter()
        .map(|g| json!({"id": g.id, "external_ref": g.external_ref, "accessible": g.accessible}))
        .collect();
    Json(Value::Array(groups))
}

#[derive(Deserialize)]
struct Lifetime {
    seconds: u64,
}

async fn travtus_token_lifetime(
    State(c): State<Control>,
    Json(body): Json<Lifetime>,
) -> Json<Value> {
    c.travtus
        .set_token_lifetime(Duration::from_secs(body.seconds));
    Json(json!({"seconds": body.seconds}))
}

async fn google_token_lifetime(
    State(c): State<Control>,
    Json(body): Json<Lifetime>,
) -> Json<Value> {
    c.google
        .set_token_lifetime(Duration::from_secs(body.seconds));
    Json(json!({"seconds": body.seconds}))
}

async fn google_locations(State(c): State<Control>) -> Json<Value> {
    Json(json!(c.google.locations()))
}

#[derive(Deserialize)]
struct AddReview {
    location: String,
    star_rating: Option<u8>,
    comment: Option<String>,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    is_anonymous: bool,
}

async fn google_add_review(State(c): State<Control>, Json(body): Json<AddReview>) -> Response {
    let review = NewGoogleReview {
        star_rating: body.star_rating,
        comment: body.comment,
        display_name: body.display_name,
        is_anonymous: body.is_anonymous,
    };
    match c.google.try_add_review(&body.location, review) {
        Some(review_id) => Json(json!({"review_id": review_id})).into_response(),
        None => not_found(format!("unknown location {:?}", body.location)),
    }
}

#[derive(Deserialize)]
struct EditReview {
    location: String,
    review_id: String,
    comment: Option<String>,
    star_rating: Option<u8>,
}

async fn google_edit_review(State(c): State<Control>, Json(body): Json<EditReview>) -> Response {
    if c.google.edit_review(
        &body.location,
        &body.review_id,
        body.comment,
        body.star_rating,
    ) {
        Json(json!({"edited": true})).into_response()
    } else {
        not_found(format!(
            "no review {:?} in {:?}",
            body.review_id, body.location
        ))
    }
}

#[derive(Deserialize)]
struct YelpLimits {
    daily_limit: Option<u64>,
    remaining: Option<u64>,
    /// 0 turns the per-second limit off.
    per_second: Option<u32>,
}

/// The Yelp key's daily cap, calls left today, and per-second limit.
async fn yelp_limits(State(c): State<Control>, Json(body): Json<YelpLimits>) -> Json<Value> {
    if body.daily_limit.is_some() || body.remaining.is_some() {
        // A new limit alone starts a fresh day's count.
        let limit = body.daily_limit.unwrap_or(c.yelp.daily_limit().0);
        c.yelp
            .set_daily_limit(limit, body.remaining.unwrap_or(limit));
    }
    if let Some(n) = body.per_second {
        c.yelp.set_per_second_limit((n > 0).then_some(n));
    }
    let (limit, remaining) = c.yelp.daily_limit();
    Json(json!({
        "daily_limit": limit,
        "remaining": remaining,
        "per_second": c.yelp.per_second_limit(),
    }))
}

#[derive(Deserialize)]
struct UsageSpec {
    #[serde(default)]
    call_count: u32,
    #[serde(default)]
    total_cputime: u32,
    #[serde(default)]
    total_time: u32,
    #[serde(default)]
    estimated_time_to_regain_access: u32,
}

#[derive(Deserialize)]
struct FacebookUsage {
    page: Option<String>,
    /// Absent or null: usage counted from calls again.
    usage: Option<UsageSpec>,
    calls_per_day: Option<u32>,
    throttle_code: Option<u32>,
}

/// The Business Use Case usage a Page (or every Page) reports.
async fn facebook_usage(State(c): State<Control>, Json(body): Json<FacebookUsage>) -> Response {
    if let Some(page) = &body.page
        && !c.facebook.page_ids().contains(page)
    {
        return not_found(format!("unknown Page {page:?}"));
    }
    let usage = body.usage.map(|u| crate::facebook::PageUsage {
        call_count: u.call_count,
        total_cputime: u.total_cputime,
        total_time: u.total_time,
        estimated_time_to_regain_access: u.estimated_time_to_regain_access,
    });
    c.facebook.set_usage(body.page.as_deref(), usage);
    if let Some(calls) = body.calls_per_day {
        c.facebook.set_calls_per_day(calls);
    }
    if let Some(code) = body.throttle_code {
        c.facebook.set_throttle_code(code);
    }
    let pages: serde_json::Map<String, Value> = c
        .facebook
        .page_ids()
        .into_iter()
        .map(|id| {
            let u = c.facebook.usage(&id);
            let value = json!({
                "call_count": u.call_count,
                "total_cputime": u.total_cputime,
                "total_time": u.total_time,
                "estimated_time_to_regain_access": u.estimated_time_to_regain_access,
            });
            (id, value)
        })
        .collect();
    Json(json!({ "pages": pages })).into_response()
}

#[derive(Deserialize)]
struct WindowSpec {
    limit: u32,
    per_s: u64,
}

#[derive(Deserialize)]
struct RateLimits {
    platform: String,
    #[serde(default)]
    windows: Vec<WindowSpec>,
}

/// The quota windows Google (both reviews methods), Places or Trustpilot
/// enforce; no windows: none.
async fn rate_limits(State(c): State<Control>, Json(body): Json<RateLimits>) -> Response {
    if body.windows.iter().any(|w| w.limit == 0 || w.per_s == 0) {
        return bad_request("every window needs a limit and per_s above 0".into());
    }
    let windows: Vec<crate::limits::RateWindow> = body
        .windows
        .iter()
        .map(|w| crate::limits::RateWindow::new(w.limit, Duration::from_secs(w.per_s)))
        .collect();
    match body.platform.as_str() {
        "google" => c.google.set_rate_limit(&windows),
        "places" => c.places.set_rate_limit(&windows),
        "trustpilot" => c.trustpilot.set_rate_limit(&windows),
        other => {
            return bad_request(format!(
                "unknown platform {other:?}; known: google, places, trustpilot (Yelp: /_sandbox/yelp/limits; Facebook: /_sandbox/facebook/usage)"
            ));
        }
    }
    let shown: Vec<Value> = windows
        .iter()
        .map(|w| json!({"limit": w.limit, "per_s": w.per.as_secs()}))
        .collect();
    Json(json!({"platform": body.platform, "windows": shown})).into_response()
}

/// The other origin's address and every request it received (redirect
/// tests point `{"redirect":{"to":...}}` faults at its `base_url`).
async fn elsewhere(State(c): State<Control>) -> Json<Value> {
    let requests: Vec<Value> = c
        .elsewhere
        .requests()
        .into_iter()
        .map(|r| {
            json!({
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "headers": r.headers,
                "body": String::from_utf8_lossy(&r.body),
            })
        })
        .collect();
    Json(json!({"base_url": c.elsewhere.base_url(), "requests": requests}))
}

/// A fault as written in control requests: `{"status":500}`,
/// `{"too_many":{"retry_after_s":2}}`, `"drop"`, `{"slow_ms":500}`,
/// `{"redirect":{"status":307,"to":"http://127.0.0.1:PORT"}}` (no `to`: to
/// the sandbox itself) or
/// `{"answer":{"status":200,"content_type":"text/html","body":"<html>OK</html>"}}`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultSpec {
    Status(u16),
    TooMany {
        retry_after_s: Option<u64>,
    },
    Drop,
    SlowMs(u64),
    Redirect {
        status: u16,
        to: Option<String>,
    },
    Answer {
        status: u16,
        content_type: Option<String>,
        #[serde(default)]
        body: String,
    },
}

impl From<FaultSpec> for Fault {
    fn from(spec: FaultSpec) -> Fault {
        match spec {
            FaultSpec::Status(code) => Fault::Status(code),
            FaultSpec::TooMany { retry_after_s } => Fault::TooManyRequests {
                retry_after: retry_after_s.map(Duration::from_secs),
            },
            FaultSpec::Drop => Fault::Drop,
            FaultSpec::SlowMs(ms) => Fault::Slow(Duration::from_millis(ms)),
            FaultSpec::Redirect { status, to } => Fault::Redirect { status, to },
            FaultSpec::Answer {
                status,
                content_type,
                body,
            } => Fault::Answer {
                status,
                content_type,
                body,
            },
        }
    }
}

fn endpoint(name: &str) -> Result<Endpoint, String> {
    Endpoint::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
        format!("unknown endpoint {name:?}; known: {}", known.join(", "))
    })
}

#[derive(Deserialize)]
struct PushFault {
    endpoint: String,
    fault: FaultSpec,
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

async fn push_fault(State(c): State<Control>, Json(body): Json<PushFault>) -> Response {
    let endpoint = match endpoint(&body.endpoint) {
        Ok(endpoint) => endpoint,
        Err(message) => return bad_request(message),
    };
    c.faults.push(endpoint, body.fault.into(), body.times);
    Json(json!({"pending": c.faults.pending(endpoint)})).into_response()
}

#[derive(Deserialize)]
struct SetRates {
    endpoint: String,
    #[serde(default)]
    status_500: f64,
    #[serde(default)]
    too_many: f64,
    retry_after_s: Option<u64>,
    #[serde(default)]
    drop: f64,
    #[serde(default)]
    slow: f64,
    #[serde(default)]
    slow_ms: u64,
}

async fn set_rates(State(c): State<Control>, Json(body): Json<SetRates>) -> Response {
    let endpoint = match endpoint(&body.endpoint) {
        Ok(endpoint) => endpoint,
        Err(message) => return bad_request(message),
    };
    let rates = FaultRates {
        status_500: body.status_500,
        too_many: body.too_many,
        retry_after: body.retry_after_s.map(Duration::from_secs),
        drop: body.drop,
        slow: body.slow,
        slow_by: Duration::from_millis(body.slow_ms),
    };
    let total = rates.status_500 + rates.too_many + rates.drop + rates.slow;
    if !(0.0..=1.0).contains(&total)
        || [rates.status_500, rates.too_many, rates.drop, rates.slow]
            .iter()
            .any(|r| *r < 0.0)
    {
        return bad_request(format!(
            "rates must be >= 0 and sum to at most 1 (sum is {total})"
        ));
    }
    c.faults.set_rates(endpoint, rates);
    Json(json!({"ok": true})).into_response()
}

async fn clear_faults(State(c): State<Control>) -> Json<Value> {
    c.faults.clear();
    Json(json!({"ok": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_parse_in_every_documented_form() {
        let parse = |s: &str| -> Fault {
            serde_json::from_str::<FaultSpec>(s)
                .expect("valid fault spec")
                .into()
        };
        assert_eq!(parse(r#"{"status":500}"#), Fault::Status(500));
        assert_eq!(
            parse(r#"{"too_many":{"retry_after_s":2}}"#),
            Fault::TooManyRequests {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            parse(r#"{"too_many":{}}"#),
            Fault::TooManyRequests { retry_after: None }
        );
        assert_eq!(parse(r#""drop""#), Fault::Drop);
        assert_eq!(
            parse(r#"{"slow_ms":500}"#),
            Fault::Slow(Duration::from_millis(500))
        );
        assert_eq!(
            parse(r#"{"redirect":{"status":307,"to":"http://127.0.0.1:9"}}"#),
            Fault::Redirect {
                status: 307,
                to: Some("http://127.0.0.1:9".into())
            }
        );
        assert_eq!(
            parse(r#"{"redirect":{"status":301}}"#),
            Fault::Redirect {
                status: 301,
                to: None
            }
        );
        assert_eq!(
            parse(r#"{"answer":{"status":204}}"#),
            Fault::Answer {
                status: 204,
                content_type: None,
                body: String::new()
            }
        );
        assert!(serde_json::from_str::<FaultSpec>(r#""explode""#).is_err());
    }
}
