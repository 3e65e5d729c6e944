//! Fault injection: every kind, queue order, probabilistic rates, and the
//! rule that a faulted request has no side effect.

use std::time::Duration;

use reqwest::Client;
use sandbox::{Endpoint, Fault, FaultRates, SandboxOptions};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn drop_closes_the_connection_and_records_nothing() {
    let sb = start().await;
    let client = client();
    let token = travtus_token(&sb, &client).await;
    let body = review_message("portfolio-1", "r");
    sb.travtus()
        .faults()
        .push(Endpoint::TravtusMessages, Fault::Drop, 1);

    let error = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect_err("a dropped connection is a client error, not a response");
    assert!(error.status().is_none(), "{error:?}");
    assert_eq!(sb.travtus().message_count(), 0);
    assert_eq!(sb.travtus().message_requests(), 1);
    assert_eq!(sb.travtus().faults().injected(), 1);
    let log = sb.travtus().request_log();
    assert_eq!(log.last().map(|e| e.status), Some(0));

    // The same client (fresh connection from its pool) works again.
    let response = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(sb.travtus().message_count(), 1);
    assert_eq!(sb.travtus().message_requests(), 2);
}

#[tokio::test]
async fn keep_alive_connections_survive_other_connections_being_dropped() {
    let sb = start().await;
    let steady = client();
    let victim = client();
    let token = travtus_token(&sb, &steady).await;
    let body = review_message("portfolio-1", "r");
    for _ in 0..3 {
        let response = post_message(&sb, &steady, Some(&token), &body)
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
    }
    sb.travtus()
        .faults()
        .push(Endpoint::TravtusMessages, Fault::Drop, 1);
    assert!(
        post_message(&sb, &victim, Some(&token), &body)
            .await
            .is_err()
    );
    for _ in 0..3 {
        let response = post_message(&sb, &steady, Some(&token), &body)
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(sb.travtus().message_count(), 6);
}

#[tokio::test]
async fn queued_faults_are_consumed_in_order() {
    let sb = start().await;
    let client = client();
    let token = travtus_token(&sb, &client).await;
    let body = review_message("portfolio-1", "r");
    let faults = sb.travtus().faults();
    faults.push(Endpoint::TravtusMessages, Fault::Status(503), 1);
    faults.push(
        Endpoint::TravtusMessages,
        Fault::TooManyRequests {
            retry_after: Some(Duration::from_secs(2)),
        },
        1,
    );
    faults.push(
        Endpoint::TravtusMessages,
        Fault::TooManyRequests { retry_after: None },
        1,
    );
    faults.push(Endpoint::TravtusMessages, Fault::Status(500), 2);

    let first = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_travtus_error(first, 503, "service_unavailable").await;

    let second = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_eq!(second.status(), 429);
    assert_eq!(
        second
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let third = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_eq!(third.status(), 429);
    assert!(third.headers().get("retry-after").is_none());

    for _ in 0..2 {
        let response = post_message(&sb, &client, Some(&token), &body)
            .await
            .expect("request");
        assert_eq!(response.status(), 500);
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["type"], "internal_server_error");
        assert!(error["error"]["message"].is_string());
    }
    let ok = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);

    assert_eq!(
        sb.travtus().message_count(),
        1,
        "faulted requests record nothing"
    );
    assert_eq!(sb.travtus().message_requests(), 6);
    assert_eq!(faults.injected(), 5);
    assert_eq!(faults.pending(Endpoint::TravtusMessages), 0);
}

#[tokio::test]
async fn faulted_token_requests_issue_no_token() {
    let sb = start().await;
    let client = client();
    let faults = sb.travtus().faults();
    faults.push(Endpoint::TravtusToken, Fault::Status(500), 1);
    faults.push(Endpoint::TravtusToken, Fault::Drop, 1);
    let request = || {
        client
            .post(sb.travtus_token_url())
            .basic_auth(
                sandbox::TRAVTUS_CLIENT_ID,
                Some(sandbox::TRAVTUS_CLIENT_SECRET),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let response = request().await.expect("request");
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": "server_error"})
    );
    assert!(request().await.is_err());
    assert_eq!(sb.travtus().token_requests(), 0);
    assert_eq!(request().await.expect("request").status(), 200);
    assert_eq!(sb.travtus().token_requests(), 1);
    let statuses: Vec<u16> = sb
        .travtus()
        .request_log()
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [500, 0, 200]);
}

#[tokio::test]
async fn google_faults_use_the_google_shape_and_count_as_list_requests() {
    let sb = start().await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let location = sb.google().locations()[0].clone();
    let faults = sb.google().faults();
    faults.push(Endpoint::GoogleList, Fault::Status(500), 1);
    faults.push(Endpoint::GoogleList, Fault::Drop, 1);
    faults.push(
        Endpoint::GoogleList,
        Fault::TooManyRequests { retry_after: None },
        1,
    );

    let response = list_reviews(&sb, &client, Some(&token), &location, &[])
        .await
        .expect("request");
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}})
    );
    assert!(
        list_reviews(&sb, &client, Some(&token), &location, &[])
            .await
            .is_err()
    );
    let response = list_reviews(&sb, &client, Some(&token), &location, &[])
        .await
        .expect("request");
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    let response = list_reviews(&sb, &client, Some(&token), &location, &[])
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    assert_eq!(sb.google().list_requests(&location), 4);
    assert_eq!(faults.injected(), 3);
    assert_eq!(
        sb.travtus().faults().injected(),
        0,
        "scoped to the emulator"
    );
    assert_eq!(sb.faults().injected(), 3);

    faults.push(Endpoint::GoogleToken, Fault::Status(503), 1);
    let response = google_token_response(&sb, &client, sandbox::GOOGLE_REFRESH_TOKEN).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        sb.google().token_requests(),
        1,
        "only the first grant issued a token"
    );
}

#[tokio::test]
async fn slow_answers_normally_and_can_be_abandoned() {
    let sb = start().await;
    let client = client();
    let token = travtus_token(&sb, &client).await;
    let body = review_message("portfolio-1", "r");
    let faults = sb.travtus().faults();
    faults.push(
        Endpoint::TravtusMessages,
        Fault::Slow(Duration::from_millis(20)),
        1,
    );
    let response = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(sb.travtus().message_count(), 1);

    // A client that gives up on a very slow answer gets an error; nothing
    // was recorded, and shutdown does not wait for the abandoned request.
    faults.push(
        Endpoint::TravtusMessages,
        Fault::Slow(Duration::from_secs(3600)),
        1,
    );
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let error = post_message(&sb, &impatient, Some(&token), &body)
        .await
        .expect_err("times out");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(sb.travtus().message_count(), 1);
    assert_eq!(faults.injected(), 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn probabilistic_faults_are_deterministic_per_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let sb = start_with(SandboxOptions {
            seed,
            ..SandboxOptions::default()
        })
        .await;
        let client = client();
        let body = review_message("portfolio-1", "r");
        sb.faults().set_rates(
            Endpoint::TravtusMessages,
            FaultRates {
                status_500: 0.3,
                too_many: 0.2,
                ..FaultRates::default()
            },
        );
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let response = post_message(&sb, &client, Some(sandbox::TRAVTUS_STATIC_TOKEN), &body)
                .await
                .expect("request");
            statuses.push(response.status().as_u16());
        }
        let faulted = statuses.iter().filter(|s| **s != 200).count();
        assert_eq!(sb.faults().injected(), faulted as u64);
        assert_eq!(sb.travtus().message_count(), 40 - faulted);
        sb.faults().clear();
        let response = post_message(&sb, &client, Some(sandbox::TRAVTUS_STATIC_TOKEN), &body)
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "clear removes the rates");
        statuses
    }
    let a = statuses(11).await;
    assert_eq!(a, statuses(11).await);
    assert!(
        a.contains(&500) && a.contains(&429) && a.contains(&200),
        "{a:?}"
    );
}

/// A redirect fault keeps the request's path and query on the origin it
/// names (or on the sandbox itself), and [`sandbox::Elsewhere`] records what
/// a client that follows it sends there.
#[tokio::test]
async fn redirects_keep_path_and_query_and_elsewhere_records_what_arrives() {
    let sb = start().await;
    let no_follow = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let elsewhere = sb.elsewhere().base_url();
    assert_ne!(elsewhere, sb.base_url(), "another origin");
    sb.faults().push(
        Endpoint::PlacesDetails,
        Fault::Redirect {
            status: 308,
            to: Some(elsewhere.clone()),
        },
        1,
    );
    let url = format!("{}/v1/places/p-1?languageCode=en", sb.places_base_url());
    let response = no_follow.get(&url).send().await.expect("answer");
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("{elsewhere}/places/v1/places/p-1?languageCode=en").as_str()
    );

    // To the sandbox itself: a relative Location, the same endpoint again.
    sb.faults().push(
        Endpoint::TravtusMessages,
        Fault::Redirect {
            status: 302,
            to: None,
        },
        1,
    );
    let response = no_follow
        .post(format!("{}/messages/", sb.travtus_base_url()))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/travtus/messages/");
    assert_eq!(
        sb.travtus().message_count(),
        0,
        "a fault has no side effect"
    );

    // A client that follows blindly (reqwest's default) takes its secret there.
    sb.faults().push(
        Endpoint::YelpReviews,
        Fault::Redirect {
            status: 301,
            to: Some(elsewhere),
        },
        1,
    );
    let response = Client::new()
        .get(format!(
            "{}/v3/businesses/b/reviews?k=v",
            sb.yelp_base_url()
        ))
        .header("apikey", "s3cret")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let seen = sb.elsewhere().requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/yelp/v3/businesses/b/reviews");
    assert_eq!(seen[0].query.as_deref(), Some("k=v"));
    assert!(
        seen[0].text().contains("apikey: s3cret"),
        "{}",
        seen[0].text()
    );
    assert_eq!(
        response.text().await.expect("body"),
        sandbox::ELSEWHERE_DEFAULT_BODY
    );
}

/// An answer fault replaces the endpoint's answer: status, content type
/// and body as given, and no side effect.
#[tokio::test]
async fn answer_faults_send_exactly_what_they_say() {
    let sb = start().await;
    let client = client();
    let token = travtus_token(&sb, &client).await;
    let body = review_message("portfolio-1", "r");
    sb.faults().push(
        Endpoint::TravtusMessages,
        Fault::Answer {
            status: 200,
            content_type: Some("text/html".into()),
            body: "<html>OK</html>".into(),
        },
        1,
    );
    sb.faults().push(
        Endpoint::TravtusMessages,
        Fault::Answer {
            status: 204,
            content_type: None,
            body: String::new(),
        },
        1,
    );
    let first = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("answer");
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "text/html");
    assert_eq!(first.text().await.expect("body"), "<html>OK</html>");
    let second = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("answer");
    assert_eq!(second.status(), 204);
    assert!(second.headers().get("content-type").is_none());
    assert_eq!(sb.travtus().message_count(), 0);
}
