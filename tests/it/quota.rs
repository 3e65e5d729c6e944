//! The quota module (`review_sync::quota`) and the platforms' readers of
//! their answers (`platforms::yelp::quota`, `platforms::facebook::quota`)
//! against the sandbox's real answers over loopback: the headers the
//! emulators send are the ones the readers read, and a budget that follows
//! them slows down, stops, and says why. The same through the real binary
//! with default settings: `budgets.rs`.

use review_sync::platforms::{facebook, yelp};
use review_sync::quota::{Budget, DAY, Quotas, ScopeKey, SourceBudget, Why, Window, headers};
use sandbox::{FacebookEmulator, PageUsage, RateWindow, Sandbox, SandboxOptions, YELP_API_KEY};
use std::sync::Arc;
use std::time::Duration;

/// The published windows of a scope's platform, as its registry entry has them.
fn published(key: &ScopeKey) -> Vec<Window> {
    match key.kind() {
        "yelp" => vec![Window::daily_from_midnight(300), Window::per_second(1)],
        "facebook" => vec![Window::rolling(4800, DAY)],
        _ => vec![Window::per_minute(300)],
    }
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox")
}

/// A budget that has just let one call through (the pace counts from it).
async fn taken(quotas: &Quotas, key: &ScopeKey, source: &SourceBudget) -> Arc<Budget> {
    let budget = quotas.budget(key, &published(key), None);
    budget.take(source).await;
    budget
}

#[tokio::test]
async fn a_yelp_budget_follows_the_emulators_daily_count_and_stops_when_it_is_spent() {
    let sb = sandbox().await;
    let client = reqwest::Client::new();
    let business = sb.yelp().business_ids()[0].clone();
    let url = format!("{}/v3/businesses/{business}/reviews", sb.yelp_base_url());
    let quotas = Quotas::new();
    let key = ScopeKey::credential("yelp", "API key", YELP_API_KEY);
    let source = SourceBudget::new("yelp-sf", None);

    sb.yelp().set_daily_limit(300, 40);
    let budget = taken(&quotas, &key, &source).await;
    let answer = client
        .get(&url)
        .bearer_auth(YELP_API_KEY)
        .send()
        .await
        .expect("yelp");
    assert_eq!(answer.status(), 200);
    let adjustment = yelp::quota::daily(answer.headers()).expect("RateLimit headers");
    budget.follow("yelp-sf", &[adjustment]);
    let (left, resets_at) = budget.daily().expect("a daily window");
    assert_eq!(left, 39, "the emulator's count, not ours");
    assert_eq!(resets_at.format("%H:%M:%S").to_string(), "00:00:00");

    // Spent: the refusal's code and headers stop the key until the reset.
    sb.yelp().set_daily_limit(300, 0);
    let refused = client
        .get(&url)
        .bearer_auth(YELP_API_KEY)
        .send()
        .await
        .expect("yelp");
    assert_eq!(refused.status(), 429);
    let headers_of_refusal = refused.headers().clone();
    let body: serde_json::Value = refused.json().await.expect("json");
    let code = body["error"]["code"].as_str();
    budget.follow(
        "yelp-sf",
        &yelp::quota::refusal(429, code, &headers_of_refusal),
    );
    let over = budget
        .take_within(&source, Duration::from_secs(60))
        .await
        .expect_err("nothing left until midnight UTC");
    assert!(
        matches!(over.why, Why::Window(w) if w.limit == 300),
        "{over}"
    );
    assert!(
        over.to_string()
            .contains("the daily cap (300 per day (resets 00:00 UTC)) is used up"),
        "{over}"
    );

    // Too fast: a one-second pause for the key.
    sb.yelp().set_daily_limit(300, 300);
    sb.yelp().set_per_second_limit(Some(1));
    // A fresh budget: its own one-per-second window has nothing to say.
    let other = Quotas::new();
    let budget = other.budget(&key, &published(&key), None);
    let mut seen_too_fast = false;
    for _ in 0..5 {
        let answer = client
            .get(&url)
            .bearer_auth(YELP_API_KEY)
            .send()
            .await
            .expect("yelp");
        if answer.status() == 429 {
            let h = answer.headers().clone();
            let body: serde_json::Value = answer.json().await.expect("json");
            budget.follow(
                "yelp-sf",
                &yelp::quota::refusal(429, body["error"]["code"].as_str(), &h),
            );
            seen_too_fast = true;
            break;
        }
    }
    assert!(seen_too_fast, "five calls in a row, none refused");
    let over = budget
        .take_within(&source, Duration::from_millis(10))
        .await
        .expect_err("paused");
    assert_eq!(
        over.why,
        Why::Stopped("Yelp answered 429 TOO_MANY_REQUESTS_PER_SECOND".into())
    );
}

#[tokio::test]
async fn a_facebook_page_at_95_percent_slows_its_budget_and_at_100_stops_it() {
    let sb = sandbox().await;
    let client = reqwest::Client::new();
    let page = sb.facebook().page_ids()[0].clone();
    let url = format!(
        "{}/v21.0/{page}/ratings?access_token={}",
        sb.facebook_base_url(),
        FacebookEmulator::page_token(&page)
    );
    let quotas = Quotas::new();
    let key = ScopeKey::location("facebook", "Page", &page);
    let source = SourceBudget::new("facebook-pages", None);

    // Low usage (counted by the emulator): no slow-down.
    let budget = taken(&quotas, &key, &source).await;
    let answer = client.get(&url).send().await.expect("graph");
    budget.follow(
        "facebook-pages",
        &facebook::quota::usage(answer.headers(), key.location_id()),
    );
    assert_eq!(
        budget.take_within(&source, Duration::ZERO).await.ok(),
        Some(Duration::ZERO)
    );

    // 95%: the next call waits (7.5 s), and says why.
    sb.facebook().set_usage(
        Some(&page),
        Some(PageUsage {
            call_count: 95,
            total_cputime: 30,
            total_time: 40,
            estimated_time_to_regain_access: 0,
        }),
    );
    let answer = client.get(&url).send().await.expect("graph");
    assert_eq!(answer.status(), 200, "95% is not refused");
    budget.follow(
        "facebook-pages",
        &facebook::quota::usage(answer.headers(), key.location_id()),
    );
    let over = budget
        .take_within(&source, Duration::from_secs(1))
        .await
        .expect_err("slowed");
    assert_eq!(
        over.why,
        Why::Usage {
            header: "X-Business-Use-Case-Usage",
            metric: "call_count",
            percent: 95
        }
    );
    assert!(
        over.wait > Duration::from_secs(6) && over.wait <= Duration::from_millis(7500),
        "{over:?}"
    );

    // 100%: refused with 80001; the estimate stops the Page for 7 minutes.
    sb.facebook().set_usage(
        Some(&page),
        Some(PageUsage {
            call_count: 100,
            estimated_time_to_regain_access: 7,
            ..PageUsage::default()
        }),
    );
    let refused = client.get(&url).send().await.expect("graph");
    assert_eq!(refused.status(), 400);
    let h = refused.headers().clone();
    let body: serde_json::Value = refused.json().await.expect("json");
    let code = body["error"]["code"].as_i64().expect("code");
    assert_eq!(code, 80001);
    budget.follow(
        "facebook-pages",
        &facebook::quota::refusal(code, &h, key.location_id()),
    );
    let over = budget
        .take_within(&source, Duration::from_secs(60))
        .await
        .expect_err("stopped");
    assert_eq!(
        over.why,
        Why::Stopped("X-Business-Use-Case-Usage estimated_time_to_regain_access is 7 min".into())
    );
    assert!(over.wait > Duration::from_secs(6 * 60), "{over:?}");
}

#[tokio::test]
async fn a_google_429_pauses_the_whole_project() {
    let sb = sandbox().await;
    sb.google()
        .set_rate_limit(&[RateWindow::new(1, Duration::from_secs(60))]);
    let client = reqwest::Client::new();
    let token = {
        let answer = client
            .post(sb.google_token_url())
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", sandbox::GOOGLE_CLIENT_ID),
                ("client_secret", sandbox::GOOGLE_CLIENT_SECRET),
                ("refresh_token", sandbox::GOOGLE_REFRESH_TOKEN),
            ])
            .send()
            .await
            .expect("token");
        let body: serde_json::Value = answer.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    };
    let location = sb.google().locations()[0].clone();
    let url = format!("{}/v4/{location}/reviews", sb.google_base_url());
    let quotas = Quotas::new();
    let key = ScopeKey::credential(
        "google_business_profile",
        "OAuth client",
        sandbox::GOOGLE_CLIENT_ID,
    );
    // Two sources on the same OAuth client: one project, one budget.
    let east = SourceBudget::new("google-east", None);
    let west = SourceBudget::new("google-west", None);
    let budget = quotas.budget(&key, &published(&key), None);
    assert!(Arc::ptr_eq(&budget, &quotas.budget(&key, &[], None)));
    for _ in 0..2 {
        budget.take(&east).await;
        let answer = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("list");
        if answer.status() == 429 {
            let retry_after = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(Duration::from_secs);
            budget.follow("google-east", &[headers::throttled(retry_after)]);
        }
    }
    assert_eq!(sb.google().refused_for_rate(), 1);
    // The emulator sends no Retry-After: the project pauses for a second.
    let over = budget
        .take_within(&west, Duration::from_millis(10))
        .await
        .expect_err("the project is paused for the other source too");
    assert!(
        !over.wait.is_zero() && over.wait <= headers::THROTTLE_PAUSE,
        "{over:?}"
    );
    assert_eq!(over.why, Why::Stopped("the platform answered 429".into()));
}
