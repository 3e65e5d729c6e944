//! The HTTP control API under `/_sandbox`.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn control_api_drives_and_reports_the_sandbox() {
    let sb = start().await;
    let client = client();
    let control = |path: &str| format!("{}/_sandbox/{path}", sb.base_url());
    let post = |path: &str, body: Value| client.post(control(path)).json(&body).send();

    // Script a 500, then see it, then a normal acceptance.
    let queued = post(
        "faults",
        json!({"endpoint": "travtus_messages", "fault": {"status": 500}, "times": 1}),
    )
    .await
    .expect("request");
    assert_eq!(queued.status(), 200);
    let token = travtus_token(&sb, &client).await;
    let body = review_message("portfolio-3", "r-1");
    let response = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_eq!(response.status(), 500);
    let response = post_message(&sb, &client, Some(&token), &body)
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    let state: Value = client
        .get(control("state"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(state["travtus_messages_accepted"], 1);
    assert_eq!(state["travtus_message_requests"], 2);
    assert_eq!(state["travtus_token_requests"], 1);
    assert_eq!(state["google_list_requests_total"], 0);
    assert_eq!(state["faults_injected"], 1);

    let messages: Value = client
        .get(control("travtus/messages"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(messages.as_array().map(Vec::len), Some(1));
    assert_eq!(messages[0]["body"], body);
    let group = sb.travtus().group_by_ref("portfolio-3").expect("group");
    assert_eq!(messages[0]["group_id"], group.id);

    // Google reviews added and edited over HTTP are served.
    let location = sb.google().locations()[0].clone();
    let added: Value = post(
        "google/reviews",
        json!({"location": location, "star_rating": 4, "comment": "Über gut", "display_name": "Ana"}),
    )
    .await
    .expect("request")
    .json()
    .await
    .expect("json");
    let review_id = added["review_id"].as_str().expect("review_id").to_owned();
    let top = sb.google().reviews(&location)[0].clone();
    assert_eq!(top["reviewId"], review_id.as_str());
    assert_eq!(top["comment"], "Über gut");
    let edited = post(
        "google/edit",
        json!({"location": location, "review_id": review_id, "comment": "Edited", "star_rating": 2}),
    )
    .await
    .expect("request");
    assert_eq!(edited.status(), 200);
    assert_eq!(sb.google().reviews(&location)[0]["starRating"], "TWO");
    let missing = post(
        "google/reviews",
        json!({"location": "accounts/1/locations/1"}),
    )
    .await
    .expect("request");
    assert_eq!(missing.status(), 404);

    // Token lifetime over HTTP.
    let set = post("travtus/token_lifetime", json!({"seconds": 1}))
        .await
        .expect("request");
    assert_eq!(set.status(), 200);
    let grant: Value = client
        .post(sb.travtus_token_url())
        .basic_auth(
            sandbox::TRAVTUS_CLIENT_ID,
            Some(sandbox::TRAVTUS_CLIENT_SECRET),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(grant["expires_in"], 1);

    // Other fault forms parse; unknown endpoints are refused.
    for fault in [
        json!("drop"),
        json!({"too_many": {"retry_after_s": 2}}),
        json!({"slow_ms": 5}),
    ] {
        let response = post("faults", json!({"endpoint": "google_list", "fault": fault}))
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{fault}");
    }
    assert_eq!(sb.faults().pending(sandbox::Endpoint::GoogleList), 3);
    let unknown = post("faults", json!({"endpoint": "yelp", "fault": "drop"}))
        .await
        .expect("request");
    assert_eq!(unknown.status(), 400);
    let cleared = post("faults/clear", json!({})).await.expect("request");
    assert_eq!(cleared.status(), 200);
    assert_eq!(sb.faults().pending(sandbox::Endpoint::GoogleList), 0);
}
