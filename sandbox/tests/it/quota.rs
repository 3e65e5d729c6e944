//! The emulators report usage and enforce quotas as the real platforms do:
//! Yelp's `RateLimit-*` headers, daily cap and per-second limit; Meta's
//! `X-Business-Use-Case-Usage` per Page and its refusal at 100%; and 429s
//! from Google, Places and Trustpilot past windows a test sets (off by
//! default). Driven through the control API where it has a route.

use chrono::{DateTime, Timelike, Utc};
use reqwest::{Client, Response};
use sandbox::{
    FACEBOOK_ACCESS_TOKEN, FacebookEmulator, PLACES_API_KEY, Sandbox, TRUSTPILOT_API_KEY,
    YELP_API_KEY,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::helpers::*;

async fn control(sb: &Sandbox, client: &Client, path: &str, body: Value) -> Response {
    client
        .post(format!("{}/_sandbox/{path}", sb.base_url()))
        .json(&body)
        .send()
        .await
        .expect("control request")
}

async fn state(sb: &Sandbox, client: &Client) -> Value {
    client
        .get(format!("{}/_sandbox/state", sb.base_url()))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("state json")
}

async fn yelp_reviews(sb: &Sandbox, client: &Client) -> Response {
    let business = &sb.yelp().business_ids()[0];
    client
        .get(format!(
            "{}/v3/businesses/{business}/reviews",
            sb.yelp_base_url()
        ))
        .bearer_auth(YELP_API_KEY)
        .send()
        .await
        .expect("yelp request")
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii header")
}

async fn error_code(response: Response) -> Value {
    let body: Value = response.json().await.expect("error json");
    body["error"]["code"].clone()
}

#[tokio::test]
async fn yelp_reports_its_daily_count_and_enforces_the_cap_and_the_per_second_limit() {
    let sb = start().await;
    let client = client();

    // Every answer carries the count, as in Yelp's own example
    // (docs.developer.yelp.com/docs/places-rate-limiting).
    let first = yelp_reviews(&sb, &client).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-dailylimit"), "5000");
    assert_eq!(header(&first, "ratelimit-remaining"), "4999");
    let reset = header(&first, "ratelimit-resettime");
    assert!(reset.ends_with("T00:00:00+00:00"), "{reset}");
    let reset: DateTime<Utc> = DateTime::parse_from_rfc3339(reset)
        .expect("ISO 8601")
        .into();
    let now = Utc::now();
    assert!(
        reset > now && reset - now <= chrono::TimeDelta::days(1),
        "{reset}"
    );
    assert_eq!((reset.hour(), reset.minute()), (0, 0));

    // A Starter plan with two calls left today.
    let set = control(
        &sb,
        &client,
        "yelp/limits",
        json!({"daily_limit": 300, "remaining": 2}),
    )
    .await;
    assert_eq!(set.status(), 200);
    let set: Value = set.json().await.expect("json");
    assert_eq!(
        set,
        json!({"daily_limit": 300, "remaining": 2, "per_second": null})
    );
    for left in ["1", "0"] {
        let answer = yelp_reviews(&sb, &client).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(header(&answer, "ratelimit-dailylimit"), "300");
        assert_eq!(header(&answer, "ratelimit-remaining"), left);
    }
    let refused = yelp_reviews(&sb, &client).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    assert_eq!(error_code(refused).await, "ACCESS_LIMIT_REACHED");

    // One call a second: the second call in the same second is refused,
    // and a refused call does not spend the day's count.
    let set = control(
        &sb,
        &client,
        "yelp/limits",
        json!({"daily_limit": 300, "per_second": 1}),
    )
    .await;
    let set: Value = set.json().await.expect("json");
    assert_eq!(
        set,
        json!({"daily_limit": 300, "remaining": 300, "per_second": 1})
    );
    // Five calls back to back: after the first, the rest fall in its second.
    let mut passed = 0u64;
    let mut too_fast = None;
    for _ in 0..5 {
        let answer = yelp_reviews(&sb, &client).await;
        match answer.status().as_u16() {
            200 => passed += 1,
            429 => {
                too_fast.get_or_insert((answer, 300 - passed));
            }
            other => panic!("status {other}"),
        }
    }
    let (too_fast, left) = too_fast.expect("five loopback calls in a row, none refused");
    assert_eq!(
        header(&too_fast, "ratelimit-remaining"),
        left.to_string(),
        "refused calls are not counted"
    );
    assert_eq!(error_code(too_fast).await, "TOO_MANY_REQUESTS_PER_SECOND");
    // The next second lets one through again (polled, with a deadline).
    let deadline = Instant::now() + Duration::from_secs(10);
    while yelp_reviews(&sb, &client).await.status() != 200 {
        assert!(
            Instant::now() < deadline,
            "the per-second limit never lifted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = state(&sb, &client).await;
    assert!(
        counts["yelp_refused_for_rate"].as_u64() >= Some(2),
        "{counts}"
    );
    // Off again: calls in a row all go.
    control(&sb, &client, "yelp/limits", json!({"per_second": 0})).await;
    for _ in 0..3 {
        assert_eq!(yelp_reviews(&sb, &client).await.status(), 200);
    }
    assert_eq!(sb.yelp().per_second_limit(), None);
}

async fn ratings(sb: &Sandbox, client: &Client, page: &str, token: &str) -> Response {
    client
        .get(format!(
            "{}/v21.0/{page}/ratings?access_token={token}",
            sb.facebook_base_url()
        ))
        .send()
        .await
        .expect("ratings request")
}

fn usage_of(response: &Response, page: &str) -> Value {
    let raw = header(response, "x-business-use-case-usage");
    let value: Value = serde_json::from_str(raw).expect("usage header is JSON");
    value[page][0].clone()
}

#[tokio::test]
async fn facebook_reports_business_use_case_usage_per_page_and_refuses_at_full() {
    let sb = start().await;
    let client = client();
    let pages = sb.facebook().page_ids();
    let (a, b) = (&pages[0], &pages[1]);
    let token_a = FacebookEmulator::page_token(a);

    // Counted: one call of 4,800 a day is 1%, under the Page's own id.
    let first = ratings(&sb, &client, a, &token_a).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        usage_of(&first, a),
        json!({"type": "pages", "call_count": 1, "total_cputime": 0, "total_time": 0, "estimated_time_to_regain_access": 0})
    );

    // A test sets 95% on Page A; Page B keeps its counted usage.
    let set = control(
        &sb,
        &client,
        "facebook/usage",
        json!({"page": a, "usage": {"call_count": 95, "total_cputime": 40, "total_time": 60}}),
    )
    .await;
    assert_eq!(set.status(), 200);
    let set: Value = set.json().await.expect("json");
    assert_eq!(set["pages"][a]["call_count"], 95);
    let busy = ratings(&sb, &client, a, &token_a).await;
    assert_eq!(busy.status(), 200, "95% is not refused");
    assert_eq!(usage_of(&busy, a)["call_count"], 95);
    assert_eq!(usage_of(&busy, a)["total_time"], 60);
    let other = ratings(&sb, &client, b, FACEBOOK_ACCESS_TOKEN).await;
    assert_eq!(usage_of(&other, b)["call_count"], 1);

    // 100%: refused with error 80001, the estimate in the header.
    control(
        &sb,
        &client,
        "facebook/usage",
        json!({"page": a, "usage": {"call_count": 100, "estimated_time_to_regain_access": 7}}),
    )
    .await;
    let refused = ratings(&sb, &client, a, &token_a).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(usage_of(&refused, a)["estimated_time_to_regain_access"], 7);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], 80001);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(
        body["error"]["message"].as_str().is_some_and(
            |m| m.starts_with("(#80001) There have been too many calls to this Page account")
        ),
        "{body}"
    );
    // Or error 32, as for a user token (restfb/restfb#734).
    control(
        &sb,
        &client,
        "facebook/usage",
        json!({"page": a, "usage": {"call_count": 100}, "throttle_code": 32}),
    )
    .await;
    let refused = ratings(&sb, &client, a, &token_a).await;
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], 32);
    assert_eq!(body["error"]["message"], "(#32) Page request limit reached");
    assert_eq!(state(&sb, &client).await["facebook_refused_for_rate"], 2);

    // Back to counted usage; a Page that reaches its daily calls is
    // throttled by the count itself, until the oldest call is a day old.
    control(
        &sb,
        &client,
        "facebook/usage",
        json!({"page": a, "usage": null, "calls_per_day": 5, "throttle_code": 80001}),
    )
    .await;
    let counted = ratings(&sb, &client, a, &token_a).await;
    assert_eq!(
        counted.status(),
        400,
        "the 5th call of Page A today (refused ones count too)"
    );
    let estimate = usage_of(&counted, a)["estimated_time_to_regain_access"]
        .as_u64()
        .expect("minutes");
    assert!((1..=1440).contains(&estimate), "{estimate}");
    assert_eq!(
        ratings(&sb, &client, b, FACEBOOK_ACCESS_TOKEN)
            .await
            .status(),
        200
    );
    // An unknown Page is named.
    let unknown = control(
        &sb,
        &client,
        "facebook/usage",
        json!({"page": "404", "usage": null}),
    )
    .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn facebook_sends_no_usage_header_at_zero() {
    // Meta sends none while usage is effectively 0% (restfb/restfb#548).
    let sb = start().await;
    let client = client();
    let page = sb.facebook().page_ids()[0].clone();
    control(
        &sb,
        &client,
        "facebook/usage",
        json!({"page": page, "usage": {"call_count": 0}}),
    )
    .await;
    let answer = ratings(&sb, &client, &page, FACEBOOK_ACCESS_TOKEN).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().get("x-business-use-case-usage").is_none());
}

#[tokio::test]
async fn google_places_and_trustpilot_answer_429_past_the_windows_a_test_sets() {
    let sb = start().await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let location = sb.google().locations()[0].clone();
    let account = location
        .split("/locations/")
        .next()
        .expect("account")
        .to_owned();
    let list = || list_reviews(&sb, &client, Some(&token), &location, &[]);
    let batch = || {
        client
            .post(format!(
                "{}/v4/{account}/locations:batchGetReviews",
                sb.google_base_url()
            ))
            .bearer_auth(&token)
            .json(&json!({"locationNames": [location.clone()]}))
            .send()
    };
    let place = sb.places().place_ids()[0].clone();
    let details = || {
        client
            .get(format!("{}/v1/places/{place}", sb.places_base_url()))
            .header("X-Goog-Api-Key", PLACES_API_KEY)
            .header("X-Goog-FieldMask", "id,reviews")
            .send()
    };
    let unit = sb.trustpilot().business_unit_ids()[0].clone();
    let tp = || {
        client
            .get(format!(
                "{}/v1/business-units/{unit}/reviews",
                sb.trustpilot_base_url()
            ))
            .header("apikey", TRUSTPILOT_API_KEY)
            .send()
    };

    // Off by default: a burst goes through everywhere.
    for _ in 0..5 {
        assert_eq!(list().await.expect("list").status(), 200);
        assert_eq!(details().await.expect("details").status(), 200);
        assert_eq!(tp().await.expect("trustpilot").status(), 200);
    }

    // Google: one project's quota over both reviews methods.
    let set = control(
        &sb,
        &client,
        "rate_limits",
        json!({"platform": "google", "windows": [{"limit": 2, "per_s": 60}]}),
    )
    .await;
    assert_eq!(set.status(), 200);
    assert_eq!(
        set.json::<Value>().await.expect("json"),
        json!({"platform": "google", "windows": [{"limit": 2, "per_s": 60}]})
    );
    assert_eq!(list().await.expect("list").status(), 200);
    assert_eq!(batch().await.expect("batch").status(), 200);
    let refused = list().await.expect("list");
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(batch().await.expect("batch").status(), 429);

    // Places: the key's quota.
    control(
        &sb,
        &client,
        "rate_limits",
        json!({"platform": "places", "windows": [{"limit": 1, "per_s": 60}]}),
    )
    .await;
    assert_eq!(details().await.expect("details").status(), 200);
    let refused = details().await.expect("details");
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");

    // Trustpilot: 833 per 5 minutes in spirit, 1 here.
    control(&sb, &client, "rate_limits", json!({"platform": "trustpilot", "windows": [{"limit": 1, "per_s": 300}, {"limit": 10000, "per_s": 3600}]})).await;
    assert_eq!(tp().await.expect("trustpilot").status(), 200);
    let refused = tp().await.expect("trustpilot");
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        body["fault"]["detail"]["errorcode"],
        "policies.ratelimit.QuotaViolation"
    );

    let counts = state(&sb, &client).await;
    assert_eq!(counts["google_refused_for_rate"], 2, "{counts}");
    assert_eq!(counts["places_refused_for_rate"], 1, "{counts}");
    assert_eq!(counts["trustpilot_refused_for_rate"], 1, "{counts}");

    // No windows: no limit again.
    control(&sb, &client, "rate_limits", json!({"platform": "google"})).await;
    assert_eq!(list().await.expect("list").status(), 200);
    assert!(sb.google().rate_limit().is_empty());

    // Bad requests are named.
    let unknown = control(
        &sb,
        &client,
        "rate_limits",
        json!({"platform": "myspace", "windows": []}),
    )
    .await;
    assert_eq!(unknown.status(), 400);
    let zero = control(
        &sb,
        &client,
        "rate_limits",
        json!({"platform": "places", "windows": [{"limit": 0, "per_s": 60}]}),
    )
    .await;
    assert_eq!(zero.status(), 400);
}
