//! The push emulators at the wire level: Pub/Sub's REST shapes and
//! validation, the service-account token endpoint's checks of the JWT, and
//! the Business Profile Notifications API.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Client;
use sandbox::{
    NewGoogleReview, PUBSUB_SCOPE, SANDBOX_PUBSUB_SUBSCRIPTION, SANDBOX_PUBSUB_TOPIC,
    SERVICE_ACCOUNT_EMAIL, SERVICE_ACCOUNT_PRIVATE_KEY_PEM, Sandbox,
};
use serde_json::{Value, json};

use crate::helpers::*;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An assertion with these claims, signed with `pem`.
fn assertion(pem: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key");
    encode(&Header::new(Algorithm::RS256), claims, &key).expect("signs")
}

fn good_claims(sb: &Sandbox) -> Value {
    json!({
        "iss": SERVICE_ACCOUNT_EMAIL,
        "scope": PUBSUB_SCOPE,
        "aud": sb.service_account_token_url(),
        "iat": now(),
        "exp": now() + 3600,
    })
}

async fn grant(sb: &Sandbox, client: &Client, assertion: &str) -> (u16, Value) {
    let response = client
        .post(sb.service_account_token_url())
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ])
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn pubsub_token(sb: &Sandbox, client: &Client) -> String {
    let (status, body) = grant(
        sb,
        client,
        &assertion(SERVICE_ACCOUNT_PRIVATE_KEY_PEM, &good_claims(sb)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn the_token_endpoint_verifies_signature_issuer_audience_time_and_scope() {
    let sb = start().await;
    let client = client();
    let (status, body) = grant(
        &sb,
        &client,
        &assertion(SERVICE_ACCOUNT_PRIVATE_KEY_PEM, &good_claims(&sb)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);

    let with = |field: &str, value: Value| {
        let mut claims = good_claims(&sb);
        claims[field] = value;
        assertion(SERVICE_ACCOUNT_PRIVATE_KEY_PEM, &claims)
    };
    let cases = [
        (
            assertion(sandbox::FORGED_PRIVATE_KEY_PEM, &good_claims(&sb)),
            "invalid_grant",
            "Invalid JWT Signature.",
        ),
        (
            with("iss", json!("someone@else.iam.gserviceaccount.com")),
            "invalid_grant",
            "account not found",
        ),
        (
            with("aud", json!("https://oauth2.googleapis.com/token")),
            "invalid_grant",
            "audience",
        ),
        (
            with("exp", json!(now() - 600)),
            "invalid_grant",
            "short-lived",
        ),
        (
            with("exp", json!(now() + 7200)),
            "invalid_grant",
            "short-lived",
        ),
        (
            with("iat", json!(now() + 600)),
            "invalid_grant",
            "short-lived",
        ),
        (
            with(
                "scope",
                json!("https://www.googleapis.com/auth/business.manage"),
            ),
            "invalid_scope",
            "scope",
        ),
    ];
    for (jwt, error, description) in cases {
        let (status, body) = grant(&sb, &client, &jwt).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], error, "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(description)),
            "{body}"
        );
    }
    // A tampered payload under a genuine signature.
    let genuine = assertion(SERVICE_ACCOUNT_PRIVATE_KEY_PEM, &good_claims(&sb));
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut claims = good_claims(&sb);
    claims["scope"] = json!(sandbox::CLOUD_PLATFORM_SCOPE);
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    let (status, body) = grant(&sb, &client, &tampered).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let response = client
        .post(sb.service_account_token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "unsupported_grant_type");
    assert_eq!(sb.service_account().grants(), 1);
}

fn subscription_url(sb: &Sandbox, verb: &str) -> String {
    format!(
        "{}/v1/{SANDBOX_PUBSUB_SUBSCRIPTION}{verb}",
        sb.pubsub_base_url()
    )
}

#[tokio::test]
async fn pull_answers_in_the_rest_shape_and_validates_its_requests() {
    let sb = start().await;
    let client = client();
    let token = pubsub_token(&sb, &client).await;

    // Nothing there, returnImmediately: `{}`.
    let answer: Value = client
        .post(subscription_url(&sb, ":pull"))
        .bearer_auth(&token)
        .json(&json!({"maxMessages": 5, "returnImmediately": true}))
        .send()
        .await
        .expect("pull")
        .json()
        .await
        .expect("json");
    assert_eq!(answer, json!({}));

    sb.pubsub().publish(
        SANDBOX_PUBSUB_TOPIC,
        b"hello",
        BTreeMap::from([("a".to_owned(), "b".to_owned())]),
    );
    let answer: Value = client
        .post(subscription_url(&sb, ":pull"))
        .bearer_auth(&token)
        .json(&json!({"maxMessages": "5"}))
        .send()
        .await
        .expect("pull")
        .json()
        .await
        .expect("json");
    let received = &answer["receivedMessages"][0];
    assert!(received["ackId"].as_str().is_some_and(|a| !a.is_empty()));
    assert_eq!(received["message"]["data"], "aGVsbG8=");
    assert_eq!(received["message"]["attributes"], json!({"a": "b"}));
    assert!(received["message"]["messageId"].as_str().is_some());
    assert!(
        received["message"]["publishTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(received["deliveryAttempt"], 1);

    for (verb, body) in [
        (":pull", json!({})),
        (":pull", json!({"maxMessages": 0})),
        (":acknowledge", json!({"ackIds": []})),
        (":acknowledge", json!({"ackIds": ["not-an-ack-id"]})),
        (
            ":modifyAckDeadline",
            json!({"ackIds": [received["ackId"]], "ackDeadlineSeconds": 601}),
        ),
    ] {
        let response = client
            .post(subscription_url(&sb, verb))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 400, "{verb} {body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["status"], "INVALID_ARGUMENT", "{error}");
    }

    // No token, or another API's stale one: 401 UNAUTHENTICATED.
    let response = client
        .post(subscription_url(&sb, ":pull"))
        .json(&json!({"maxMessages": 1}))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn an_empty_pull_waits_for_a_message_instead_of_answering_at_once() {
    let sb = start().await;
    let client = client();
    let token = pubsub_token(&sb, &client).await;
    sb.pubsub().set_pull_wait(Duration::from_secs(20));
    let pull = client
        .post(subscription_url(&sb, ":pull"))
        .bearer_auth(&token)
        .json(&json!({"maxMessages": 1}))
        .send();
    let publisher = async {
        // Publish once the pull found nothing and is waiting.
        while sb.pubsub().waiting_pulls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sb.pubsub()
            .publish(SANDBOX_PUBSUB_TOPIC, b"late", BTreeMap::new());
    };
    let (answer, ()) = tokio::join!(pull, publisher);
    let answer: Value = answer.expect("pull").json().await.expect("json");
    assert_eq!(answer["receivedMessages"][0]["message"]["data"], "bGF0ZQ==");
}

#[tokio::test]
async fn subscriptions_are_created_with_valid_deadlines_on_existing_topics() {
    let sb = start().await;
    let client = client();
    let token = pubsub_token(&sb, &client).await;
    let put = |name: &str, body: Value| {
        client
            .put(format!(
                "{}/v1/projects/sandbox-project/subscriptions/{name}",
                sb.pubsub_base_url()
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let answer = put("fresh", json!({"topic": SANDBOX_PUBSUB_TOPIC}))
        .await
        .expect("put");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["ackDeadlineSeconds"], 10, "the default deadline");
    assert_eq!(
        put(
            "short",
            json!({"topic": SANDBOX_PUBSUB_TOPIC, "ackDeadlineSeconds": 5})
        )
        .await
        .expect("put")
        .status(),
        400
    );
    assert_eq!(
        put(
            "orphan",
            json!({"topic": "projects/sandbox-project/topics/none"})
        )
        .await
        .expect("put")
        .status(),
        404
    );
    assert_eq!(
        put("fresh", json!({"topic": SANDBOX_PUBSUB_TOPIC}))
            .await
            .expect("put")
            .status(),
        409
    );
    // Messages published before a subscription exists never reach it.
    sb.pubsub()
        .publish(SANDBOX_PUBSUB_TOPIC, b"x", BTreeMap::new());
    assert_eq!(
        sb.pubsub()
            .backlog("projects/sandbox-project/subscriptions/fresh")
            .len(),
        1
    );
    put("later", json!({"topic": SANDBOX_PUBSUB_TOPIC}))
        .await
        .expect("put");
    assert!(
        sb.pubsub()
            .backlog("projects/sandbox-project/subscriptions/later")
            .is_empty()
    );
}

#[tokio::test]
async fn notification_settings_are_patched_by_mask_and_validated() {
    let sb = start().await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let account = sb.google().accounts()[0].clone();
    let url = |mask: &str| {
        format!(
            "{}/v1/{account}/notificationSetting{mask}",
            sb.google_notifications_base_url()
        )
    };
    let get: Value = client
        .get(url(""))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        get,
        json!({"name": format!("{account}/notificationSetting")})
    );

    let patch = |mask: &'static str, body: Value| {
        client
            .patch(url(mask))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let full = json!({"pubsubTopic": SANDBOX_PUBSUB_TOPIC, "notificationTypes": ["NEW_REVIEW"]});
    assert_eq!(
        patch("", full.clone()).await.expect("patch").status(),
        400,
        "no mask"
    );
    assert_eq!(
        patch(
            "?updateMask=pubsubTopic",
            json!({"pubsubTopic": "projects/x/topics/none"})
        )
        .await
        .expect("patch")
        .status(),
        400,
        "unknown topic"
    );
    assert_eq!(
        patch(
            "?updateMask=notificationTypes",
            json!({"notificationTypes": ["NEW_TWEET"]})
        )
        .await
        .expect("patch")
        .status(),
        400,
        "unknown type"
    );
    // Only the masked field changes.
    let answer = patch("?updateMask=pubsubTopic", full.clone())
        .await
        .expect("patch");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["pubsubTopic"], SANDBOX_PUBSUB_TOPIC);
    assert!(body.get("notificationTypes").is_none(), "{body}");
    // No type yet: a new review publishes nothing.
    let location = sb.google().locations()[0].clone();
    sb.google()
        .add_review(&location, NewGoogleReview::default());
    assert_eq!(sb.notifications().published(), 0);
    patch("?updateMask=notificationTypes", full)
        .await
        .expect("patch");
    sb.google()
        .add_review(&location, NewGoogleReview::default());
    assert_eq!(sb.notifications().published(), 1);
    // UPDATED_REVIEW was not asked for.
    let id = sb
        .google()
        .add_review(&location, NewGoogleReview::default());
    assert!(
        sb.google()
            .edit_review(&location, &id, Some("x".into()), None)
    );
    assert_eq!(sb.notifications().published(), 2);

    let response = client.get(url("")).send().await.expect("get");
    assert_eq!(response.status(), 401);
    let response = client
        .get(format!(
            "{}/v1/accounts/424242/notificationSetting",
            sb.google_notifications_base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 403);
}
