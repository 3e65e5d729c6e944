//! Shared helpers: start a sandbox, get tokens, post messages, list reviews.

use reqwest::{Client, Response};
use sandbox::{
    GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET, GOOGLE_REFRESH_TOKEN, Sandbox, SandboxOptions,
    TRAVTUS_CLIENT_ID, TRAVTUS_CLIENT_SECRET,
};
use serde_json::{Value, json};

/// A sandbox with default options on a free loopback port.
pub async fn start() -> Sandbox {
    start_with(SandboxOptions::default()).await
}

/// A sandbox with `opts` (its `listen` is used as given).
pub async fn start_with(opts: SandboxOptions) -> Sandbox {
    Sandbox::start(opts).await.expect("sandbox starts")
}

/// A plain client, as review-sync would use (keep-alive on).
pub fn client() -> Client {
    Client::new()
}

/// Gets a Travtus access token through the token endpoint.
pub async fn travtus_token(sb: &Sandbox, client: &Client) -> String {
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
    let body: Value = response.json().await.expect("token json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A valid `/messages/` body for the group with this external ref.
pub fn review_message(group_external_ref: &str, review_id: &str) -> Value {
    json!({
        "group_external_ref": group_external_ref,
        "channel": "review",
        "review": {
            "source": "google",
            "review_id": review_id,
            "comment": "Lovely apartment 🏡",
            "rating": 5,
            "created_datetime": "2023-01-01T00:00:00"
        }
    })
}

/// Posts `body` (any JSON) to `/travtus/messages/` with an optional bearer token.
pub async fn post_message(
    sb: &Sandbox,
    client: &Client,
    token: Option<&str>,
    body: &Value,
) -> reqwest::Result<Response> {
    let mut request = client
        .post(format!("{}/messages/", sb.travtus_base_url()))
        .json(body);
    if let Some(token) = token {
        request = request.header("Authorization", format!("bearer {token}"));
    }
    request.send().await
}

/// Asserts a Travtus error response: status, `error.type` and, when given, `error.message`.
pub async fn assert_travtus_error(response: Response, status: u16, kind: &str) -> String {
    assert_eq!(response.status(), status, "status for {kind}");
    let body: Value = response.json().await.expect("error json");
    assert_eq!(body["error"]["type"], kind, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("error.message is a string")
        .to_owned()
}

/// Requests a Google access token with the refresh-token grant.
pub async fn google_token_response(sb: &Sandbox, client: &Client, refresh_token: &str) -> Response {
    client
        .post(sb.google_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", GOOGLE_CLIENT_ID),
            ("client_secret", GOOGLE_CLIENT_SECRET),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .expect("google token request")
}

/// Gets a Google access token.
pub async fn google_token(sb: &Sandbox, client: &Client) -> String {
    let response = google_token_response(sb, client, GOOGLE_REFRESH_TOKEN).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("token json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Calls reviews.list for `location` (full name) with query parameters.
pub async fn list_reviews(
    sb: &Sandbox,
    client: &Client,
    token: Option<&str>,
    location: &str,
    query: &[(&str, &str)],
) -> reqwest::Result<Response> {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    let mut request = client.get(format!(
        "{}/v4/{location}/reviews?{query}",
        sb.google_base_url()
    ));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await
}

/// Follows `nextPageToken` from the first page to the last and returns every page.
pub async fn all_pages(
    sb: &Sandbox,
    client: &Client,
    token: &str,
    location: &str,
    extra: &[(&str, &str)],
) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut query: Vec<(&str, &str)> = extra.to_vec();
        if let Some(t) = &page_token {
            query.push(("pageToken", t));
        }
        let response = list_reviews(sb, client, Some(token), location, &query)
            .await
            .expect("list request");
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("list json");
        page_token = page["nextPageToken"].as_str().map(str::to_owned);
        pages.push(page);
        if page_token.is_none() {
            return pages;
        }
        assert!(pages.len() < 1000, "page chain does not end");
    }
}

/// The reviews of all pages, in order.
pub fn reviews_of(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["reviews"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Parses an RFC 3339 timestamp field.
pub fn time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("timestamp string"))
        .expect("RFC 3339 timestamp")
}
