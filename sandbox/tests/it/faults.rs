//! Fault injection: every kind, queue order, probabilistic rates, and the
//! rule that a faulted request has no side effect.

use std::time::Duration;

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
