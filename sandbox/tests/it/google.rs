//! The Google emulator: OAuth refresh grant, reviews.list paging and
//! ordering, live changes to the data, determinism of the seed.

use std::collections::HashSet;

use sandbox::{
    GOOGLE_CLIENT_ID, GOOGLE_REFRESH_TOKEN, GoogleSeed, NewGoogleReview, SandboxOptions,
};
use serde_json::{Value, json};

use crate::helpers::*;

fn opts(reviews_per_location: u32) -> SandboxOptions {
    SandboxOptions {
        google: GoogleSeed {
            accounts: 2,
            locations_per_account: 2,
            reviews_per_location,
        },
        ..SandboxOptions::default()
    }
}

#[tokio::test]
async fn refresh_grant_issues_tokens_until_revoked() {
    let sb = start().await;
    let client = client();
    let response = google_token_response(&sb, &client, GOOGLE_REFRESH_TOKEN).await;
    assert_eq!(response.status(), 200);
    let grant: Value = response.json().await.expect("json");
    assert!(
        grant["access_token"]
            .as_str()
            .expect("token")
            .starts_with("ya29.")
    );
    assert_eq!(grant["expires_in"], 3600);
    assert_eq!(grant["token_type"], "Bearer");
    assert_eq!(
        grant["scope"],
        "https://www.googleapis.com/auth/business.manage"
    );

    let unknown = google_token_response(&sb, &client, "other-refresh-token").await;
    assert_eq!(unknown.status(), 400);
    let invalid_grant = json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."});
    assert_eq!(unknown.json::<Value>().await.expect("json"), invalid_grant);

    sb.google().revoke_refresh_token();
    let revoked = google_token_response(&sb, &client, GOOGLE_REFRESH_TOKEN).await;
    assert_eq!(revoked.status(), 400);
    assert_eq!(revoked.json::<Value>().await.expect("json"), invalid_grant);

    sb.google().restore_refresh_token();
    google_token(&sb, &client).await;

    let wrong_client = client
        .post(sb.google_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", GOOGLE_CLIENT_ID),
            ("client_secret", "wrong"),
            ("refresh_token", GOOGLE_REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(wrong_client.status(), 401);
    assert_eq!(
        wrong_client.json::<Value>().await.expect("json"),
        json!({"error": "invalid_client", "error_description": "The OAuth client was not found."})
    );
    assert_eq!(sb.google().token_requests(), 2);
}

#[tokio::test]
async fn page_chain_covers_every_review_once_newest_first() {
    let sb = start_with(opts(120)).await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let location = sb.google().locations()[1].clone();
    assert_eq!(location, "accounts/1000/locations/2001");

    let pages = all_pages(&sb, &client, &token, &location, &[("pageSize", "500")]).await;
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["reviews"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [50, 50, 20], "pageSize is clamped at 50");
    for page in &pages {
        assert_eq!(page["totalReviewCount"], 120);
        let average = page["averageRating"].as_f64().expect("averageRating");
        assert!((1.0..=5.0).contains(&average));
    }
    assert!(pages[2].get("nextPageToken").is_none());

    let reviews = reviews_of(&pages);
    let ids: HashSet<&str> = reviews
        .iter()
        .map(|r| r["reviewId"].as_str().expect("reviewId"))
        .collect();
    assert_eq!(ids.len(), 120, "every review exactly once");
    for pair in reviews.windows(2) {
        assert!(time(&pair[0]["updateTime"]) >= time(&pair[1]["updateTime"]));
    }
    assert_eq!(
        reviews,
        sb.google().reviews(&location),
        "served as the library reports"
    );
    for review in &reviews {
        let id = review["reviewId"].as_str().expect("reviewId");
        assert_eq!(review["name"], format!("{location}/reviews/{id}"));
        assert!(time(&review["updateTime"]) >= time(&review["createTime"]));
    }
    assert_eq!(sb.google().list_requests(&location), 3);
    assert_eq!(sb.google().list_requests_total(), 3);
}

#[tokio::test]
async fn page_size_defaults_to_fifty_and_smaller_sizes_are_honoured() {
    let sb = start_with(opts(60)).await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let location = sb.google().locations()[0].clone();
    for (query, expected) in [
        (vec![], 50),
        (vec![("pageSize", "0")], 50),
        (vec![("pageSize", "7")], 7),
    ] {
        let page: Value = list_reviews(&sb, &client, Some(&token), &location, &query)
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert_eq!(
            page["reviews"].as_array().map(Vec::len),
            Some(expected),
            "{query:?}"
        );
        assert!(page["nextPageToken"].is_string());
    }
    let pages = all_pages(&sb, &client, &token, &location, &[("pageSize", "7")]).await;
    assert_eq!(pages.len(), 9);
    assert_eq!(reviews_of(&pages).len(), 60);
}

#[tokio::test]
async fn rating_orders_are_supported() {
    let sb = start_with(opts(80)).await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let location = sb.google().locations()[0].clone();
    let stars = |r: &Value| {
        [
            "STAR_RATING_UNSPECIFIED",
            "ONE",
            "TWO",
            "THREE",
            "FOUR",
            "FIVE",
        ]
        .iter()
        .position(|s| r["starRating"] == *s)
        .expect("known starRating")
    };
    let desc = reviews_of(
        &all_pages(
            &sb,
            &client,
            &token,
            &location,
            &[("orderBy", "rating desc")],
        )
        .await,
    );
    assert_eq!(desc.len(), 80);
    assert!(desc.windows(2).all(|p| stars(&p[0]) >= stars(&p[1])));
    let asc =
        reviews_of(&all_pages(&sb, &client, &token, &location, &[("orderBy", "rating")]).await);
    assert!(asc.windows(2).all(|p| stars(&p[0]) <= stars(&p[1])));
}

#[tokio::test]
async fn list_errors_use_the_google_error_shape() {
    let sb = start().await;
    let client = client();
    let location = sb.google().locations()[0].clone();
    let unauthenticated = json!({"error": {
        "code": 401,
        "message": "Request had invalid authentication credentials.",
        "status": "UNAUTHENTICATED"
    }});

    let response = list_reviews(&sb, &client, None, &location, &[])
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        unauthenticated
    );
    let response = list_reviews(&sb, &client, Some("ya29.bogus"), &location, &[])
        .await
        .expect("request");
    assert_eq!(response.status(), 401);

    let token = google_token(&sb, &client).await;
    sb.google().expire_all_tokens();
    let response = list_reviews(&sb, &client, Some(&token), &location, &[])
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        unauthenticated
    );

    let token = google_token(&sb, &client).await;
    let response = list_reviews(
        &sb,
        &client,
        Some(&token),
        "accounts/1000/locations/9999",
        &[],
    )
    .await
    .expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})
    );

    for query in [
        vec![("orderBy", "createTime desc")],
        vec![("pageToken", "garbage!")],
        vec![("pageSize", "-3")],
    ] {
        let response = list_reviews(&sb, &client, Some(&token), &location, &query)
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{query:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(body["error"]["code"], 400);
    }
}

#[tokio::test]
async fn added_and_edited_reviews_move_to_the_top() {
    let sb = start().await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let google = sb.google();
    let location = google.locations()[0].clone();
    let before = google.reviews(&location);
    let oldest = before.last().expect("seeded reviews").clone();

    let added = google.add_review(
        &location,
        NewGoogleReview {
            star_rating: Some(4),
            comment: Some("Nouvelle critique — très bien 👍".into()),
            display_name: "Zoë".into(),
            is_anonymous: false,
        },
    );
    let page = first_page(&sb, &client, &token, &location).await;
    assert_eq!(page[0]["reviewId"], added);
    assert_eq!(page[0]["starRating"], "FOUR");
    assert_eq!(page[0]["comment"], "Nouvelle critique — très bien 👍");
    assert_eq!(page[0]["createTime"], page[0]["updateTime"]);
    assert!(time(&page[0]["updateTime"]) > time(&before[0]["updateTime"]));

    let oldest_id = oldest["reviewId"].as_str().expect("reviewId");
    assert!(google.edit_review(&location, oldest_id, Some("Edited".into()), Some(1)));
    let page = first_page(&sb, &client, &token, &location).await;
    assert_eq!(page[0]["reviewId"], oldest_id);
    assert_eq!(page[0]["comment"], "Edited");
    assert_eq!(page[0]["starRating"], "ONE");
    assert_eq!(page[0]["createTime"], oldest["createTime"]);
    assert!(time(&page[0]["updateTime"]) > time(&page[1]["updateTime"]));
    assert_eq!(page[1]["reviewId"], added);

    assert!(!google.edit_review(&location, "no-such-review", None, None));
    assert!(google.delete_review(&location, &added));
    assert!(!google.delete_review(&location, &added));
    assert_eq!(google.reviews(&location).len(), before.len());
}

/// The reviews on the first page of `location` in the default order.
async fn first_page(
    sb: &sandbox::Sandbox,
    client: &reqwest::Client,
    token: &str,
    location: &str,
) -> Vec<Value> {
    let page: Value = list_reviews(sb, client, Some(token), location, &[])
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    page["reviews"].as_array().expect("reviews").clone()
}

#[tokio::test]
async fn empty_locations_and_raw_reviews_are_served_as_google_would() {
    let sb = start().await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let location = sb.google().add_location("accounts/1000");
    assert_eq!(location, "accounts/1000/locations/2003");
    let page: Value = list_reviews(&sb, &client, Some(&token), &location, &[])
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        page,
        json!({}),
        "proto3 JSON omits every default-valued field"
    );

    let raw = json!({"reviewId": "broken", "starRating": 7, "updateTime": "yesterday"});
    assert!(sb.google().insert_raw_review(&location, raw.clone()));
    let page: Value = list_reviews(&sb, &client, Some(&token), &location, &[])
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(page["reviews"], json!([raw]));
    assert_eq!(page["totalReviewCount"], 1);
    assert!(
        !sb.google()
            .insert_raw_review("accounts/1/locations/1", json!({}))
    );
}

#[tokio::test]
async fn same_seed_serves_identical_data() {
    let a = start_with(opts(30)).await;
    let b = start_with(opts(30)).await;
    let c = start_with(SandboxOptions {
        seed: 7,
        ..opts(30)
    })
    .await;
    let client = client();
    assert_eq!(a.google().accounts(), b.google().accounts());
    assert_eq!(a.google().locations(), b.google().locations());
    assert_eq!(a.travtus().groups(), b.travtus().groups());
    assert_ne!(a.travtus().groups(), c.travtus().groups());
    let mut differs = false;
    for location in a.google().locations() {
        let token_a = google_token(&a, &client).await;
        let token_b = google_token(&b, &client).await;
        let token_c = google_token(&c, &client).await;
        let served_a = all_pages(&a, &client, &token_a, &location, &[]).await;
        let served_b = all_pages(&b, &client, &token_b, &location, &[]).await;
        let served_c = all_pages(&c, &client, &token_c, &location, &[]).await;
        assert_eq!(served_a, served_b, "{location}");
        differs |= served_a != served_c;
    }
    assert!(differs, "another seed gives other data");
}
