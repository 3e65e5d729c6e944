//! Push components (issue 14) against the sandbox over loopback: the
//! Pub/Sub client with a real service-account JWT grant, the Google
//! emulator's notifications, and the webhook receiver with the sandbox's
//! signing Facebook and Trustpilot senders. Not wired into the daemon yet:
//! these drive the components directly.

use crate::helpers::wait_until;
use review_sync::config::Secret;
use review_sync::domain::{LocationId, SourceName};
use review_sync::oauth::{TokenCache, TokenError};
use review_sync::platforms::facebook::FacebookWebhook;
use review_sync::platforms::trustpilot::TrustpilotWebhook;
use review_sync::push::notification::{self, NotificationKind};
use review_sync::push::pubsub::{PubSubClient, PubSubError, SubscriptionName};
use review_sync::push::service_account::ServiceAccountKey;
use review_sync::push::webhook::{self, WebhookSource, WebhookStats};
use review_sync::push::{HintChannel, HintQueue, HintQueueLimits, ReadOutcome};
use sandbox::{
    Endpoint, Fault, NewGoogleReview, NewRecommendation, NewTrustpilotReview, NotificationStyle,
    SANDBOX_PUBSUB_SUBSCRIPTION, SANDBOX_PUBSUB_TOPIC, Sandbox, SandboxOptions,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use url::Url;

const WAIT: Duration = Duration::from_secs(30);

async fn sandbox() -> Sandbox {
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    // An empty pull answers after this long instead of the default 2 s.
    sb.pubsub().set_pull_wait(Duration::from_millis(100));
    sb
}

/// A client without redirects, as the daemon's is meant to be.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn tokens(sb: &Sandbox) -> Arc<TokenCache> {
    let key = ServiceAccountKey::from_json(&sb.service_account().key_json()).expect("key parses");
    Arc::new(key.token_cache(http()))
}

fn client(sb: &Sandbox, subscription: &str) -> PubSubClient {
    PubSubClient::new(
        http(),
        Url::parse(&sb.pubsub_base_url()).expect("url"),
        tokens(sb),
        SubscriptionName::parse(subscription).expect("subscription name"),
        Duration::from_secs(10),
    )
}

#[tokio::test]
async fn pubsub_pull_ack_and_redelivery_after_an_unacked_deadline() {
    let sb = sandbox().await;
    let c = client(&sb, SANDBOX_PUBSUB_SUBSCRIPTION);
    let attributes = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    let id = sb
        .pubsub()
        .publish(SANDBOX_PUBSUB_TOPIC, b"{\"hello\":1}", attributes.clone())
        .expect("published");

    let first = c.pull(10).await.expect("pull");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].message_id, id);
    assert_eq!(first[0].data.as_deref(), Some(&b"{\"hello\":1}"[..]));
    assert_eq!(first[0].attributes, attributes);
    assert_eq!(first[0].delivery_attempt, Some(1));
    assert!(first[0].publish_time.is_some());

    // Leased: not delivered again before its deadline (the default 10 s)...
    assert!(c.pull(10).await.expect("pull").is_empty());
    sb.pubsub().advance_clock(Duration::from_secs(9));
    assert!(c.pull(10).await.expect("pull").is_empty());
    // ...and delivered again after it, under a new ack id.
    sb.pubsub().advance_clock(Duration::from_secs(2));
    let again = c.pull(10).await.expect("pull");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, id);
    assert_eq!(again[0].delivery_attempt, Some(2));
    assert_ne!(again[0].ack_id, first[0].ack_id);

    // The first lease's ack id no longer settles it; the current one does.
    c.acknowledge(&[first[0].ack_id.clone()])
        .await
        .expect("ack of a stale id is no error");
    assert_eq!(sb.pubsub().backlog(SANDBOX_PUBSUB_SUBSCRIPTION).len(), 1);
    c.acknowledge(&[again[0].ack_id.clone()])
        .await
        .expect("ack");
    assert!(sb.pubsub().backlog(SANDBOX_PUBSUB_SUBSCRIPTION).is_empty());
    sb.pubsub().advance_clock(Duration::from_secs(60));
    assert!(c.pull(10).await.expect("pull").is_empty());
}

#[tokio::test]
async fn pubsub_modify_ack_deadline_extends_and_nacks() {
    let sb = sandbox().await;
    let c = client(&sb, SANDBOX_PUBSUB_SUBSCRIPTION);
    sb.pubsub()
        .publish(SANDBOX_PUBSUB_TOPIC, b"m", BTreeMap::new())
        .expect("published");
    let pulled = c.pull(1).await.expect("pull");
    let ack = vec![pulled[0].ack_id.clone()];

    // Working on it: 60 s more, so 11 s later it is still ours.
    c.modify_ack_deadline(&ack, Duration::from_secs(60))
        .await
        .expect("extend");
    sb.pubsub().advance_clock(Duration::from_secs(11));
    assert!(c.pull(1).await.expect("pull").is_empty());
    sb.pubsub().advance_clock(Duration::from_secs(50));
    let back = c.pull(1).await.expect("pull");
    assert_eq!(back.len(), 1, "due again once the extension ran out");

    // A deadline of zero gives it back at once.
    c.modify_ack_deadline(&[back[0].ack_id.clone()], Duration::ZERO)
        .await
        .expect("nack");
    let now = c.pull(1).await.expect("pull");
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].delivery_attempt, Some(3));
}

#[tokio::test]
async fn a_real_jwt_grant_gets_a_cached_token_and_a_forged_key_is_refused() {
    let sb = sandbox().await;
    let cache = tokens(&sb);
    cache.get().await.expect("token");
    cache.get().await.expect("token");
    assert_eq!(sb.service_account().grants(), 1, "the token is cached");
    assert_eq!(sb.service_account().refusals(), 0);

    // The same file, signed by another key: the emulator verifies RS256.
    let forged = sandbox::service_account_key_json(
        sandbox::FORGED_PRIVATE_KEY_PEM,
        &sb.service_account_token_url(),
    );
    let cache = ServiceAccountKey::from_json(&forged)
        .expect("parses: it is a valid key, just not the account's")
        .token_cache(http());
    let err = cache.get().await.expect_err("refused");
    assert!(
        matches!(&err, TokenError::GrantRefused { error, .. } if error == "invalid_grant"),
        "{err:?}"
    );
    assert_eq!(
        sb.service_account().last_refusal().as_deref(),
        Some("Invalid JWT Signature.")
    );

    // A disabled account: refused too, and not retryable.
    sb.service_account().disable_account(true);
    let err = tokens(&sb).get().await.expect_err("refused");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn pubsub_403_and_404_are_named_and_break_the_channel_but_5xx_does_not() {
    let sb = sandbox().await;
    let c = client(&sb, SANDBOX_PUBSUB_SUBSCRIPTION);
    let info = c.get_subscription().await.expect("exists");
    assert_eq!(info.topic, SANDBOX_PUBSUB_TOPIC);
    assert_eq!(info.ack_deadline, Duration::from_secs(10));
    assert!(!info.push);

    sb.faults()
        .push(Endpoint::PubSubPull, Fault::Status(503), 1);
    let err = c.pull(10).await.expect_err("503");
    assert!(
        matches!(err, PubSubError::Http { status: 503, .. }),
        "{err:?}"
    );
    assert!(!err.channel_broken());

    sb.pubsub().deny(SANDBOX_PUBSUB_SUBSCRIPTION, true);
    let err = c.pull(10).await.expect_err("403");
    assert!(
        matches!(err, PubSubError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(err.channel_broken());
    assert!(
        err.to_string().contains(SANDBOX_PUBSUB_SUBSCRIPTION),
        "{err}"
    );
    sb.pubsub().deny(SANDBOX_PUBSUB_SUBSCRIPTION, false);

    assert!(sb.pubsub().delete_subscription(SANDBOX_PUBSUB_SUBSCRIPTION));
    let err = c.pull(10).await.expect_err("404");
    assert!(matches!(err, PubSubError::NotFound { .. }), "{err:?}");
    assert!(err.channel_broken());
    let err = c.get_subscription().await.expect_err("404");
    assert!(matches!(err, PubSubError::NotFound { .. }), "{err:?}");
    let err = c
        .acknowledge(&["sandbox-ack-000000000001-1".to_owned()])
        .await
        .expect_err("404");
    assert!(matches!(err, PubSubError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn pubsub_client_on_the_shared_pool_refuses_a_redirect() {
    let sb = sandbox().await;
    let shared = review_sync::app::http_client().expect("pool");
    let c = PubSubClient::new(
        shared,
        Url::parse(&sb.pubsub_base_url()).expect("url"),
        tokens(&sb),
        SubscriptionName::parse(SANDBOX_PUBSUB_SUBSCRIPTION).expect("name"),
        Duration::from_secs(10),
    );
    sb.faults()
        .push(Endpoint::PubSubPull, Fault::Status(307), 1);
    let err = c.pull(10).await.expect_err("a redirect is an error");
    assert!(
        matches!(err, PubSubError::Redirected { status: 307, .. }),
        "{err:?}"
    );
    assert!(err.channel_broken());
}

#[tokio::test]
async fn pubsub_401_renews_the_token_once() {
    let sb = sandbox().await;
    let c = client(&sb, SANDBOX_PUBSUB_SUBSCRIPTION);
    assert!(c.pull(1).await.expect("pull").is_empty());
    assert_eq!(sb.service_account().grants(), 1);
    sb.service_account().expire_all_tokens();
    assert!(c.pull(1).await.expect("pull after renewal").is_empty());
    assert_eq!(sb.service_account().grants(), 2);
}

/// A Business Profile OAuth token, for the Notifications API.
async fn google_token(sb: &Sandbox) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(sb.google_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", sandbox::GOOGLE_CLIENT_ID),
            ("client_secret", sandbox::GOOGLE_CLIENT_SECRET),
            ("refresh_token", sandbox::GOOGLE_REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    answer["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn google_add_and_edit_review_publish_notifications_naming_the_location() {
    let sb = sandbox().await;
    let account = sb.google().accounts()[0].clone();
    let location = sb.google().locations()[1].clone();
    let configured: Vec<LocationId> = sb
        .google()
        .locations()
        .into_iter()
        .map(LocationId::new)
        .collect();

    // Nothing is published before the account asks for it.
    sb.google()
        .add_review(&location, NewGoogleReview::default());
    assert_eq!(sb.pubsub().published(), 0);

    // The operator's one-off setup, through the Notifications API.
    let token = google_token(&sb).await;
    let answer = reqwest::Client::new()
        .patch(format!(
            "{}/v1/{account}/notificationSetting?updateMask=pubsubTopic,notificationTypes",
            sb.google_notifications_base_url()
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": format!("{account}/notificationSetting"),
            "pubsubTopic": SANDBOX_PUBSUB_TOPIC,
            "notificationTypes": ["NEW_REVIEW", "UPDATED_REVIEW"],
        }))
        .send()
        .await
        .expect("patch");
    assert_eq!(answer.status(), 200);

    let c = client(&sb, SANDBOX_PUBSUB_SUBSCRIPTION);
    let review_id = sb.google().add_review(
        &location,
        NewGoogleReview {
            star_rating: Some(1),
            comment: Some("cold showers".into()),
            ..NewGoogleReview::default()
        },
    );
    let messages = c.pull(10).await.expect("pull");
    assert_eq!(messages.len(), 1);
    let n = notification::parse(messages[0].data.as_deref().expect("data")).expect("parses");
    assert_eq!(n.kind, NotificationKind::NewReview);
    let notified = n.location.clone().expect("a location");
    assert_eq!(
        notified.resolve(&configured),
        Some(&LocationId::new(&location))
    );
    assert_eq!(
        n.review.as_deref(),
        Some(format!("{location}/reviews/{review_id}").as_str())
    );
    // The review is listed by the time the notification is out.
    assert!(
        sb.google()
            .reviews(&location)
            .iter()
            .any(|r| r["reviewId"] == review_id.as_str())
    );
    c.acknowledge(&[messages[0].ack_id.clone()])
        .await
        .expect("ack");

    // An edit, in the other reading of the notification's keys.
    sb.notifications().set_style(NotificationStyle::Short);
    assert!(
        sb.google()
            .edit_review(&location, &review_id, Some("fixed".into()), Some(4))
    );
    let messages = c.pull(10).await.expect("pull");
    assert_eq!(messages.len(), 1);
    let raw: serde_json::Value =
        serde_json::from_slice(messages[0].data.as_deref().expect("data")).expect("json");
    assert!(raw.get("type").is_some(), "short style: {raw}");
    let n = notification::parse(messages[0].data.as_deref().expect("data")).expect("parses");
    assert_eq!(n.kind, NotificationKind::UpdatedReview);
    assert_eq!(
        n.location.expect("location").resolve(&configured),
        Some(&LocationId::new(&location))
    );
}

/// The webhook receiver on a loopback port, with its queue and counters.
struct Receiver {
    base: String,
    queue: HintQueue,
    stats: Arc<WebhookStats>,
    _server: tokio::task::JoinHandle<()>,
}

async fn receiver(sources: Vec<WebhookSource>, body_limit: usize) -> Receiver {
    let queue = HintQueue::new(HintQueueLimits::default());
    let stats = Arc::new(WebhookStats::default());
    let app = webhook::router(sources, queue.clone(), Arc::clone(&stats), body_limit);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        base: format!("http://{addr}"),
        queue,
        stats,
        _server: server,
    }
}

const APP_SECRET: &str = "fb-app-secret";
const VERIFY_TOKEN: &str = "fb-verify-token";

fn facebook_source(pages: &[String]) -> WebhookSource {
    WebhookSource {
        name: SourceName::new("acme-facebook"),
        auth: Arc::new(FacebookWebhook {
            app_secret: Secret::new(APP_SECRET),
            verify_token: Secret::new(VERIFY_TOKEN),
        }),
        locations: pages.iter().map(LocationId::new).collect(),
    }
}

#[tokio::test]
async fn a_signed_facebook_webhook_is_a_hint_and_a_forged_one_is_refused() {
    let sb = sandbox().await;
    let pages = sb.facebook().page_ids();
    let r = receiver(
        vec![facebook_source(&pages[..1])],
        webhook::DEFAULT_BODY_LIMIT,
    )
    .await;
    let callback = format!("{}/webhooks/acme-facebook", r.base);

    // The handshake: a wrong verify token does not subscribe...
    let refused = sb
        .facebook()
        .subscribe_webhook(&callback, "wrong token", APP_SECRET)
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(r.stats.handshakes_refused.load(Ordering::Relaxed), 1);
    // ...the right one does.
    sb.facebook()
        .subscribe_webhook(&callback, VERIFY_TOKEN, APP_SECRET)
        .await
        .expect("verified");

    // A recommendation on the configured Page: a signed delivery, a 200
    // at once (nothing reads the queue here), one hint for that Page.
    let story = sb
        .facebook()
        .add_recommendation(
            &pages[0],
            NewRecommendation {
                positive: false,
                text: Some("noisy".into()),
                reviewer: None,
            },
        )
        .expect("page exists");
    wait_until("the delivery", WAIT, || {
        !sb.facebook().webhook_deliveries().is_empty()
    })
    .await;
    assert_eq!(sb.facebook().webhook_deliveries()[0].status, Some(200));
    let ticket = r.queue.try_next().expect("a read of the Page");
    assert_eq!(ticket.location.as_str(), pages[0]);
    assert_eq!(ticket.channel, HintChannel::Webhook("facebook"));
    assert_eq!(ticket.source.as_str(), "acme-facebook");
    ticket.finish(ReadOutcome::Committed);

    // A Page this source does not have: delivered, verified, no hint.
    sb.facebook().add_recommendation(
        &pages[1],
        NewRecommendation {
            positive: true,
            text: None,
            reviewer: None,
        },
    );
    wait_until("the second delivery", WAIT, || {
        sb.facebook().webhook_deliveries().len() == 2
    })
    .await;
    assert_eq!(r.stats.unknown_locations.load(Ordering::Relaxed), 1);

    // Forged: the same body with a signature made with another secret, or
    // none at all: 401, and nothing queued.
    let body = serde_json::json!({
        "object": "page",
        "entry": [{"id": pages[0], "time": 1, "changes": [{"field": "ratings", "value": {"open_graph_story_id": story}}]}],
    })
    .to_string();
    let http = reqwest::Client::new();
    for signature in [
        Some(sandbox::facebook_signature("not the app secret", &body)),
        None,
    ] {
        let mut request = http
            .post(&callback)
            .header("Content-Type", "application/json")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        assert_eq!(request.send().await.expect("answer").status(), 401);
    }
    assert_eq!(r.stats.unauthorized.load(Ordering::Relaxed), 2);
    assert_eq!(r.queue.pending(), 0, "a forged webhook reads nothing");

    // The genuine signature over the same bytes is accepted.
    let answer = http
        .post(&callback)
        .header(
            "X-Hub-Signature-256",
            sandbox::facebook_signature(APP_SECRET, &body),
        )
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(r.queue.pending(), 1);
}

#[tokio::test]
async fn webhook_bodies_over_the_cap_are_refused_with_413() {
    let r = receiver(vec![facebook_source(&["1".to_owned()])], 1024).await;
    let body = "x".repeat(4096);
    let answer = reqwest::Client::new()
        .post(format!("{}/webhooks/acme-facebook", r.base))
        .header(
            "X-Hub-Signature-256",
            sandbox::facebook_signature(APP_SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 413);
    assert_eq!(r.stats.too_large.load(Ordering::Relaxed), 1);
    let answer = reqwest::Client::new()
        .post(format!("{}/webhooks/nobody", r.base))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 404);
}

#[tokio::test]
async fn a_trustpilot_webhook_with_the_secret_in_its_url_is_a_hint_and_without_it_401() {
    let sb = sandbox().await;
    let units = sb.trustpilot().business_unit_ids();
    let r = receiver(
        vec![WebhookSource {
            name: SourceName::new("acme-trustpilot"),
            auth: Arc::new(TrustpilotWebhook {
                secret: Secret::new("tp-s3cret"),
            }),
            locations: units.iter().map(LocationId::new).collect(),
        }],
        webhook::DEFAULT_BODY_LIMIT,
    )
    .await;
    let host = r.base.trim_start_matches("http://");

    // Without the secret: refused.
    sb.trustpilot()
        .set_webhook_url(Some(&format!("http://{host}/webhooks/acme-trustpilot")));
    sb.trustpilot().add_review(
        &units[0],
        NewTrustpilotReview {
            stars: 2,
            title: "meh".into(),
            text: "meh".into(),
            consumer: "A".into(),
        },
    );
    wait_until("the delivery", WAIT, || {
        sb.trustpilot().webhook_deliveries().len() == 1
    })
    .await;
    assert_eq!(sb.trustpilot().webhook_deliveries()[0].status, Some(401));
    assert!(r.queue.try_next().is_none());

    // With it as Basic credentials in the URL, naming the unit.
    sb.trustpilot().set_webhook_url(Some(&format!(
        "http://review-sync:tp-s3cret@{host}/webhooks/acme-trustpilot?location={}",
        units[1]
    )));
    let id = sb
        .trustpilot()
        .add_review(
            &units[1],
            NewTrustpilotReview {
                stars: 5,
                title: "great".into(),
                text: "great".into(),
                consumer: "B".into(),
            },
        )
        .expect("unit exists");
    wait_until("the delivery", WAIT, || {
        sb.trustpilot().webhook_deliveries().len() == 2
    })
    .await;
    assert_eq!(sb.trustpilot().webhook_deliveries()[1].status, Some(200));
    let ticket = r.queue.try_next().expect("a read of the unit");
    assert_eq!(ticket.location.as_str(), units[1]);
    assert_eq!(ticket.channel, HintChannel::Webhook("trustpilot"));
    assert!(r.queue.try_next().is_none(), "only the named unit");
    drop(ticket);

    // As `?token=`, without naming the unit: every unit of the source.
    sb.trustpilot().set_webhook_url(Some(&format!(
        "http://{host}/webhooks/acme-trustpilot?token=tp-s3cret"
    )));
    assert!(
        sb.trustpilot()
            .edit_review(&id, None, Some("even better".into()), None)
    );
    wait_until("the delivery", WAIT, || {
        sb.trustpilot().webhook_deliveries().len() == 3
    })
    .await;
    assert_eq!(sb.trustpilot().webhook_deliveries()[2].status, Some(200));
    assert_eq!(r.queue.pending(), units.len());
}
