//! The Google emulator: OAuth refresh grant, reviews.list paging and
//! ordering, live changes to the data, determinism of the seed; and
//! batchGetReviews (shapes, page size, order across locations, rating-only
//! reviews, the cap on names, per-location errors, counting, auth).

use std::collections::HashSet;

use sandbox::{
    Endpoint, Fault, GOOGLE_CLIENT_ID, GOOGLE_REFRESH_TOKEN, GoogleSeed, NewGoogleReview,
    SandboxOptions,
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

// ------------------------------------------------------- batchGetReviews

/// `POST {google}/v4/{account}/locations:batchGetReviews` with `body`.
async fn batch(
    sb: &sandbox::Sandbox,
    client: &reqwest::Client,
    token: Option<&str>,
    account: &str,
    body: &Value,
) -> reqwest::Response {
    let mut request = client
        .post(format!(
            "{}/v4/{account}/locations:batchGetReviews",
            sb.google_base_url()
        ))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("batch request")
}

/// Every page of a batch call: follows `nextPageToken` with the same body.
async fn batch_pages(
    sb: &sandbox::Sandbox,
    client: &reqwest::Client,
    token: &str,
    account: &str,
    body: &Value,
) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut body = body.clone();
    loop {
        let response = batch(sb, client, Some(token), account, &body).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("json");
        let next = page
            .get("nextPageToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        pages.push(page);
        match next {
            Some(next) => body["pageToken"] = json!(next),
            None => return pages,
        }
    }
}

fn location_reviews(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["locationReviews"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn batch_reads_the_named_locations_newest_first_across_them() {
    let sb = start_with(opts(30)).await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let names: Vec<String> = sb
        .google()
        .locations()
        .into_iter()
        .filter(|l| l.starts_with("accounts/1000/"))
        .collect();
    assert_eq!(names.len(), 2);
    let newest = sb.google().add_review(
        &names[1],
        NewGoogleReview {
            star_rating: Some(4),
            comment: Some("Just moved in".into()),
            display_name: "Ana".into(),
            is_anonymous: false,
        },
    );

    let pages = batch_pages(
        &sb,
        &client,
        &token,
        "accounts/1000",
        &json!({"locationNames": names}),
    )
    .await;
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["locationReviews"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [50, 11], "pageSize defaults to 50");
    assert!(pages[0]["nextPageToken"].is_string());
    assert!(
        pages[1].get("nextPageToken").is_none(),
        "absent on the last page"
    );
    for page in &pages {
        let keys: Vec<&String> = page.as_object().expect("object").keys().collect();
        assert!(
            keys.iter()
                .all(|k| *k == "locationReviews" || *k == "nextPageToken"),
            "{keys:?}"
        );
    }

    let items = location_reviews(&pages);
    assert_eq!(items[0]["name"], json!(names[1]));
    assert_eq!(
        items[0]["review"]["reviewId"],
        json!(newest),
        "the newest review of either location first"
    );
    let mut seen = HashSet::new();
    for item in &items {
        let location = item["name"].as_str().expect("name");
        let review = &item["review"];
        let review_name = review["name"].as_str().expect("review name");
        assert!(
            review_name.starts_with(&format!("{location}/reviews/")),
            "{item}"
        );
        assert!(seen.insert(review_name.to_owned()), "once: {review_name}");
    }
    assert_eq!(seen.len(), 61, "every review of both locations, once");
    for pair in items.windows(2) {
        assert!(time(&pair[0]["review"]["updateTime"]) >= time(&pair[1]["review"]["updateTime"]));
    }
    // The reviews are the ones reviews.list serves.
    let mut listed: Vec<Value> = names.iter().flat_map(|n| sb.google().reviews(n)).collect();
    let mut batched: Vec<Value> = items.iter().map(|i| i["review"].clone()).collect();
    let key = |v: &Value| v["name"].as_str().unwrap_or_default().to_owned();
    listed.sort_by_key(key);
    batched.sort_by_key(key);
    assert_eq!(batched, listed);

    // One count per call, whatever it names; reviews.list is not counted.
    assert_eq!(sb.google().batch_requests(), 2);
    assert_eq!(sb.google().batch_requests_naming(&names[0]), 2);
    assert_eq!(
        sb.google()
            .batch_requests_naming("accounts/1001/locations/2002"),
        0
    );
    assert_eq!(sb.google().list_requests_total(), 0);

    // Nothing to serve: proto3 leaves every field out.
    let empty = sb.google().add_location("accounts/1000");
    let page: Value = batch(
        &sb,
        &client,
        Some(&token),
        "accounts/1000",
        &json!({"locationNames": [empty]}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(page, json!({}));
}

#[tokio::test]
async fn batch_page_size_orders_and_rating_only_reviews() {
    let sb = start_with(opts(30)).await;
    let client = client();
    let token = google_token(&sb, &client).await;
    let names = [
        "accounts/1000/locations/2000",
        "accounts/1000/locations/2001",
    ];
    let rating_only = sb.google().add_review(
        names[0],
        NewGoogleReview {
            star_rating: Some(2),
            comment: None,
            display_name: "Bo".into(),
            is_anonymous: false,
        },
    );
    let count = |pages: &[Value]| location_reviews(pages).len();

    let big = batch_pages(
        &sb,
        &client,
        &token,
        "accounts/1000",
        &json!({"locationNames": names, "pageSize": 500}),
    )
    .await;
    assert_eq!(
        big[0]["locationReviews"].as_array().map(Vec::len),
        Some(50),
        "capped at 50"
    );
    assert_eq!(count(&big), 61);
    let small = batch_pages(
        &sb,
        &client,
        &token,
        "accounts/1000",
        &json!({"locationNames": names, "pageSize": 7}),
    )
    .await;
    assert_eq!(small.len(), 9);
    assert_eq!(count(&small), 61);

    for (order, ascending) in [("rating", true), ("rating desc", false)] {
        let pages = batch_pages(
            &sb,
            &client,
            &token,
            "accounts/1000",
            &json!({"locationNames": names, "orderBy": order}),
        )
        .await;
        let stars: Vec<u8> = location_reviews(&pages)
            .iter()
            .map(|i| match i["review"]["starRating"].as_str() {
                Some("ONE") => 1,
                Some("TWO") => 2,
                Some("THREE") => 3,
                Some("FOUR") => 4,
                Some("FIVE") => 5,
                _ => 0,
            })
            .collect();
        assert_eq!(stars.len(), 61);
        assert!(
            stars.windows(2).all(|w| if ascending {
                w[0] <= w[1]
            } else {
                w[0] >= w[1]
            }),
            "{order}: {stars:?}"
        );
    }

    let with_text = batch_pages(
        &sb,
        &client,
        &token,
        "accounts/1000",
        &json!({"locationNames": names, "ignoreRatingOnlyReviews": true}),
    )
    .await;
    let items = location_reviews(&with_text);
    assert!(items.iter().all(|i| {
        i["review"]["comment"]
            .as_str()
            .is_some_and(|c| !c.trim().is_empty())
    }));
    assert!(
        items
            .iter()
            .all(|i| i["review"]["reviewId"] != json!(rating_only))
    );
    let with_rating_only = location_reviews(&big);
    assert!(
        with_rating_only
            .iter()
            .any(|i| i["review"]["reviewId"] == json!(rating_only))
    );
    assert!(items.len() < with_rating_only.len());

    // A token from one request is refused with another body.
    let token_for_two = small[0]["nextPageToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let response = batch(
        &sb,
        &client,
        Some(&token),
        "accounts/1000",
        &json!({"locationNames": [names[0]], "pageSize": 7, "pageToken": token_for_two}),
    )
    .await;
    assert_eq!(response.status(), 400);
}

async fn error_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], status, "{body}");
    body
}

#[tokio::test]
async fn batch_refuses_the_whole_call_naming_the_location_and_caps_names() {
    let sb = start_with(opts(3)).await;
    let client = client();
    let good = "accounts/1000/locations/2000";

    // The same auth as reviews.list.
    let body = json!({"locationNames": [good]});
    let none = error_of(batch(&sb, &client, None, "accounts/1000", &body).await, 401).await;
    assert_eq!(none["error"]["status"], "UNAUTHENTICATED");
    error_of(
        batch(&sb, &client, Some("ya29.bogus"), "accounts/1000", &body).await,
        401,
    )
    .await;
    let token = google_token(&sb, &client).await;

    // A name outside the path's account, an unknown and an unverified
    // location each fail the whole call, named in message and detail.
    let foreign = "accounts/1001/locations/2002";
    let refused = error_of(
        batch(
            &sb,
            &client,
            Some(&token),
            "accounts/1000",
            &json!({"locationNames": [good, foreign]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(refused["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(foreign)),
        "{refused}"
    );
    assert_eq!(refused["error"]["details"][0]["resourceName"], foreign);
    assert_eq!(
        refused["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ResourceInfo"
    );

    let unknown = "accounts/1000/locations/9999";
    let missing = error_of(
        batch(
            &sb,
            &client,
            Some(&token),
            "accounts/1000",
            &json!({"locationNames": [good, unknown]}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(missing["error"]["status"], "NOT_FOUND");
    assert_eq!(missing["error"]["details"][0]["resourceName"], unknown);

    let second = "accounts/1000/locations/2001";
    assert!(sb.google().set_verified(second, false));
    let unverified = error_of(
        batch(
            &sb,
            &client,
            Some(&token),
            "accounts/1000",
            &json!({"locationNames": [good, second]}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(
        unverified["error"]["message"],
        format!("Location {second} is not verified.")
    );
    assert_eq!(unverified["error"]["details"][0]["resourceName"], second);
    let listed = list_reviews(&sb, &client, Some(&token), second, &[])
        .await
        .expect("list");
    assert_eq!(listed.status(), 404, "reviews.list refuses it too");
    assert!(sb.google().set_verified(second, true));
    let ok = batch(
        &sb,
        &client,
        Some(&token),
        "accounts/1000",
        &json!({"locationNames": [good, second]}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert!(!sb.google().set_verified(unknown, false));

    // No names, or more than the cap (50 unless set; 200 is the other
    // documented value).
    let empty = error_of(
        batch(
            &sb,
            &client,
            Some(&token),
            "accounts/1000",
            &json!({"locationNames": []}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(empty["error"]["status"], "INVALID_ARGUMENT");
    let mut many = vec![good.to_owned(), second.to_owned()];
    while many.len() < 60 {
        many.push(sb.google().add_location("accounts/1000"));
    }
    let too_many = error_of(
        batch(
            &sb,
            &client,
            Some(&token),
            "accounts/1000",
            &json!({"locationNames": many}),
        )
        .await,
        400,
    )
    .await;
    assert!(
        too_many["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("60 given, at most 50")),
        "{too_many}"
    );
    sb.google().set_batch_location_cap(200);
    let pages = batch_pages(
        &sb,
        &client,
        &token,
        "accounts/1000",
        &json!({"locationNames": many}),
    )
    .await;
    assert_eq!(
        location_reviews(&pages).len(),
        6,
        "3 reviews in each seeded location"
    );

    // Garbage bodies.
    for bad in [
        json!("x"),
        json!({"locationNames": [good], "pageSize": -1}),
        json!({"locationNames": [good], "orderBy": "createTime"}),
    ] {
        error_of(
            batch(&sb, &client, Some(&token), "accounts/1000", &bad).await,
            400,
        )
        .await;
    }

    // Batch calls have their own fault plan: a list fault waits for a list
    // call, a batch fault hits the next batch call; each call counts.
    let before = sb.google().batch_requests();
    sb.faults()
        .push(Endpoint::GoogleList, Fault::Status(500), 1);
    sb.faults()
        .push(Endpoint::GoogleBatch, Fault::Status(503), 1);
    let faulted = error_of(
        batch(&sb, &client, Some(&token), "accounts/1000", &body).await,
        503,
    )
    .await;
    assert_eq!(faulted["error"]["status"], "UNAVAILABLE");
    assert_eq!(sb.google().batch_requests(), before + 1);
    assert_eq!(sb.faults().pending(Endpoint::GoogleList), 1, "untouched");
    assert_eq!(sb.faults().injected_for(Endpoint::GoogleBatch), 1);
    assert_eq!(
        sb.google().list_requests(good),
        0,
        "batch calls are not list calls"
    );
    let listed = list_reviews(&sb, &client, Some(&token), good, &[])
        .await
        .expect("list");
    assert_eq!(listed.status(), 500, "the list fault hits the list");
    let ok = batch(&sb, &client, Some(&token), "accounts/1000", &body).await;
    assert_eq!(ok.status(), 200, "the batch fault was used once");
    let state: Value = client
        .get(format!("{}/_sandbox/state", sb.base_url()))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    assert_eq!(state["google_batch_requests_total"], before + 2);
    assert_eq!(
        state["google_list_requests_total"],
        sb.google().list_requests_total()
    );
}
