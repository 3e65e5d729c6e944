//! The Travtus emulator: token grants, accepted messages, every documented error.

use std::time::Duration;

use sandbox::{SandboxOptions, TRAVTUS_CLIENT_ID, TRAVTUS_CLIENT_SECRET, TRAVTUS_STATIC_TOKEN};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn token_grant_then_message_is_accepted_and_recorded() {
    let sb = start().await;
    let client = client();
    let response = client
        .post(sb.travtus_token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", TRAVTUS_CLIENT_ID),
            ("client_secret", TRAVTUS_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let grant: Value = response.json().await.expect("json");
    assert_eq!(grant["token_type"], "Bearer");
    assert_eq!(grant["expires_in"], 3600);
    let token = grant["access_token"].as_str().expect("token").to_owned();

    let body = review_message("portfolio-1", "review-1");
    let response = client
        .post(format!("{}/messages/", sb.travtus_base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .header("Idempotency-Key", "key-1")
        .json(&body)
        .send()
        .await
        .expect("message request");
    assert_eq!(response.status(), 200);
    let accepted: Value = response.json().await.expect("json");
    let request_id = accepted["request_id"].as_str().expect("request_id");
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");

    let travtus = sb.travtus();
    let messages = travtus.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.request_id, request_id);
    assert_eq!(message.body, body);
    assert_eq!(message.idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(message.content_type.as_deref(), Some("application/json"));
    let group = travtus.group_by_ref("portfolio-1").expect("seeded group");
    assert_eq!(message.group_id, group.id);
    assert_eq!(travtus.message_count(), 1);
    assert_eq!(travtus.token_requests(), 1);
    assert_eq!(travtus.message_requests(), 1);
    let log = travtus.request_log();
    let statuses: Vec<(&str, u16)> = log.iter().map(|e| (e.path.as_str(), e.status)).collect();
    assert_eq!(
        statuses,
        [("/travtus/oauth2/token", 200), ("/travtus/messages/", 200)]
    );
    assert_eq!(log[1].idempotency_key.as_deref(), Some("key-1"));
    sb.shutdown().await;
}

#[tokio::test]
async fn messages_by_group_id_and_without_trailing_slash_are_accepted() {
    let sb = start().await;
    let client = client();
    let group = sb.travtus().group_by_ref("portfolio-2").expect("group");
    let body = json!({
        "group_id": group.id,
        "group_external_ref": null,
        "channel": "review",
        "review": {"source": "google", "review_id": "r1"}
    });
    let response = client
        .post(format!("{}/messages", sb.travtus_base_url()))
        .bearer_auth(TRAVTUS_STATIC_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let message = sb.travtus().last_message().expect("recorded");
    assert_eq!(message.group_id, group.id);
    // Nulls are kept in the recorded body so tests can see them.
    assert_eq!(message.body["group_external_ref"], Value::Null);
}

#[tokio::test]
async fn token_endpoint_checks_client_and_grant() {
    let sb = start().await;
    let client = client();
    let post = |form: Vec<(&'static str, &'static str)>| {
        client.post(sb.travtus_token_url()).form(&form).send()
    };

    let wrong = post(vec![
        ("grant_type", "client_credentials"),
        ("client_id", TRAVTUS_CLIENT_ID),
        ("client_secret", "nope"),
    ])
    .await
    .expect("request");
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.expect("json"),
        json!({"error": "invalid_client"})
    );

    let grant = post(vec![
        ("grant_type", "password"),
        ("client_id", TRAVTUS_CLIENT_ID),
        ("client_secret", TRAVTUS_CLIENT_SECRET),
    ])
    .await
    .expect("request");
    assert_eq!(grant.status(), 400);
    assert_eq!(
        grant.json::<Value>().await.expect("json"),
        json!({"error": "unsupported_grant_type"})
    );

    let basic = client
        .post(sb.travtus_token_url())
        .basic_auth(TRAVTUS_CLIENT_ID, Some(TRAVTUS_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), 200);
    assert_eq!(
        sb.travtus().token_requests(),
        1,
        "only successful grants count"
    );
}

#[tokio::test]
async fn missing_authorization_is_400() {
    let sb = start().await;
    let client = client();
    let body = review_message("portfolio-1", "r");
    let response = post_message(&sb, &client, None, &body)
        .await
        .expect("request");
    let message = assert_travtus_error(response, 400, "missing_authorization").await;
    assert_eq!(
        message,
        "Your request does not include an 'Authorization' header with a bearer token for your account."
    );
    let basic = client
        .post(format!("{}/messages/", sb.travtus_base_url()))
        .basic_auth("a", Some("b"))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_travtus_error(basic, 400, "missing_authorization").await;
    assert_eq!(sb.travtus().message_count(), 0);
    assert_eq!(sb.travtus().message_requests(), 2);
}

#[tokio::test]
async fn unknown_and_revoked_tokens_are_invalid_authorization() {
    let sb = start().await;
    let client = client();
    let body = review_message("portfolio-1", "r");
    let response = post_message(&sb, &client, Some("made-up"), &body)
        .await
        .expect("request");
    let message = assert_travtus_error(response, 401, "invalid_authorization").await;
    assert_eq!(
        message,
        "The bearer token you have provided in the 'Authorization' header is invalid."
    );

    let token = travtus_token(&sb, &client).await;
    sb.travtus().revoke_all_tokens();
    let response = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_travtus_error(response, 401, "invalid_authorization").await;
    assert_eq!(sb.travtus().message_count(), 0);
}

#[tokio::test]
async fn expired_token_is_401_expired_token() {
    let sb = start_with(SandboxOptions {
        travtus_token_lifetime: Duration::from_secs(1),
        ..SandboxOptions::default()
    })
    .await;
    let client = client();
    let grant: Value = client
        .post(sb.travtus_token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", TRAVTUS_CLIENT_ID),
            ("client_secret", TRAVTUS_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(grant["expires_in"], 1);
    let token = grant["access_token"].as_str().expect("token");
    sb.travtus().expire_all_tokens();

    let body = review_message("portfolio-1", "r");
    let response = post_message(&sb, &client, Some(token), &body)
        .await
        .expect("request");
    let message = assert_travtus_error(response, 401, "expired_token").await;
    assert_eq!(
        message,
        "The bearer token you have provided in the 'Authorization' header has expired. Please obtain a new one."
    );
    // The static token never expires.
    let response = post_message(&sb, &client, Some(TRAVTUS_STATIC_TOKEN), &body)
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    // A fresh token works again.
    let fresh = travtus_token(&sb, &client).await;
    let response = post_message(&sb, &client, Some(&fresh), &body)
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(sb.travtus().message_count(), 2);
}

#[tokio::test]
async fn group_errors_follow_the_documented_types() {
    let sb = start().await;
    let client = client();
    let token = travtus_token(&sb, &client).await;
    let post = |body: Value| {
        let client = client.clone();
        let token = token.clone();
        let sb = &sb;
        async move {
            post_message(sb, &client, Some(&token), &body)
                .await
                .expect("request")
        }
    };
    let review = json!({"source": "google", "review_id": "r"});

    let none = post(json!({"channel": "review", "review": review})).await;
    let message = assert_travtus_error(none, 400, "no_group").await;
    assert_eq!(
        message,
        "You must either provide a group id or group external reference in the request body."
    );

    let nulls = post(json!({"channel": "review", "review": review, "group_id": null})).await;
    let message = assert_travtus_error(nulls, 400, "no_group").await;
    assert!(message.contains("null given for: group_id"), "{message}");

    let both = post(json!({
        "channel": "review", "review": review,
        "group_id": "x", "group_external_ref": "portfolio-1"
    }))
    .await;
    let message = assert_travtus_error(both, 400, "both_group_identifiers_provided").await;
    assert!(message.starts_with("You have provided both a group id and group external reference"));

    let unknown_id = post(json!({"channel": "review", "review": review, "group_id": "nope"})).await;
    let message = assert_travtus_error(unknown_id, 404, "group_not_found").await;
    assert_eq!(
        message,
        "We could not find a group with the ID you have provided."
    );
    let unknown_ref =
        post(json!({"channel": "review", "review": review, "group_external_ref": "portfolio-99"}))
            .await;
    assert_travtus_error(unknown_ref, 404, "group_not_found").await;

    let restricted =
        post(json!({"channel": "review", "review": review, "group_external_ref": "restricted-1"}))
            .await;
    let message = assert_travtus_error(restricted, 401, "no_access_to_group").await;
    assert_eq!(
        message,
        "You do not have access to the group you have provided."
    );

    let added = sb.travtus().add_group("late-portfolio", true);
    let ok = post(json!({"channel": "review", "review": review, "group_id": added.id})).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(sb.travtus().message_count(), 1);
    assert_eq!(sb.travtus().message_requests(), 7);
}

#[tokio::test]
async fn malformed_bodies_are_rejected_before_the_group_checks() {
    let sb = start().await;
    let client = client();
    let token = travtus_token(&sb, &client).await;

    let not_json = client
        .post(format!("{}/messages/", sb.travtus_base_url()))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_travtus_error(not_json, 400, "invalid_request").await;

    let array = post_message(&sb, &client, Some(&token), &json!([1, 2]))
        .await
        .expect("request");
    assert_travtus_error(array, 400, "invalid_request").await;

    let mut sms = review_message("portfolio-1", "r");
    sms["channel"] = json!("sms");
    let response = post_message(&sb, &client, Some(&token), &sms)
        .await
        .expect("request");
    assert_travtus_error(response, 400, "invalid_channel").await;

    let mut no_id = review_message("portfolio-1", "r");
    no_id["review"]
        .as_object_mut()
        .expect("object")
        .remove("review_id");
    let response = post_message(&sb, &client, Some(&token), &no_id)
        .await
        .expect("request");
    let message = assert_travtus_error(response, 400, "invalid_review").await;
    assert!(message.contains("review_id"), "{message}");

    let mut not_object = review_message("portfolio-1", "r");
    not_object["review"] = json!("text");
    let response = post_message(&sb, &client, Some(&token), &not_object)
        .await
        .expect("request");
    assert_travtus_error(response, 400, "invalid_review").await;

    let mut numeric_group = review_message("portfolio-1", "r");
    numeric_group["group_external_ref"] = json!(1);
    let response = post_message(&sb, &client, Some(&token), &numeric_group)
        .await
        .expect("request");
    assert_travtus_error(response, 400, "invalid_request").await;

    assert_eq!(sb.travtus().message_count(), 0);
    let statuses: Vec<u16> = sb
        .travtus()
        .request_log()
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [200, 400, 400, 400, 400, 400, 400]);
}
