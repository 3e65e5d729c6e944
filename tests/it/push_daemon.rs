//! Push wired into the daemon (issue 14), through the real binary against
//! the sandbox: a Google review reaches Travtus by a Pub/Sub notification
//! while the scheduled poll is a year away; a kill between the read and the
//! acknowledgement loses nothing (the message comes again); a storm of
//! notifications costs a few reads; a forged webhook is refused and reads
//! nothing; a broken subscription is reported and polling delivers on.

use crate::crash::Daemon;
use crate::helpers::{TestEnv, seed, spawn_env, wait_until};
use crate::monitoring::{config_with_metrics, endpoint, eventually, get, health_becomes, sample};
use sandbox::{
    Endpoint, Fault, NewGoogleReview, NewRecommendation, SANDBOX_PUBSUB_SUBSCRIPTION,
    SANDBOX_PUBSUB_TOPIC,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// A schedule that does not fire during a test: only push reads.
const YEARLY: &str = "0 0 0 1 1 *";

/// The env's config with Pub/Sub push on for its Google source (a
/// service-account key in a file), `schedule` instead of every second, and
/// `/metrics` on a free port; every account's notifications go to the
/// sandbox's topic.
fn push_config(env: &TestEnv, schedule: &str, extra: &str) -> PathBuf {
    let path = push_config_unset(env, schedule, extra);
    // Every account's review notifications go to the sandbox's topic.
    for account in env.sb.google().accounts() {
        assert!(env.sb.notifications().set_setting(
            &account,
            SANDBOX_PUBSUB_TOPIC,
            &["NEW_REVIEW", "UPDATED_REVIEW"]
        ));
    }
    path
}

/// [`push_config`] with the accounts' notification settings left as they
/// are (none, in a fresh sandbox).
pub(crate) fn push_config_unset(env: &TestEnv, schedule: &str, extra: &str) -> PathBuf {
    let key = env.dir.path().join("pubsub-sa.json");
    std::fs::write(&key, env.sb.service_account().key_json()).expect("write key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let path = config_with_metrics(env, "push.toml", "ledger.db");
    let text = std::fs::read_to_string(&path).expect("config");
    let push_keys = format!(
        "push_subscription = \"{SANDBOX_PUBSUB_SUBSCRIPTION}\"\npubsub_base_url = \"{}\"\nnotifications_base_url = \"{}\"\npush_credentials = {{ file = \"pubsub-sa.json\" }}\n",
        env.sb.pubsub_base_url(),
        env.sb.google_notifications_base_url()
    );
    let text = text
        .replace(
            "schedule = \"*/1 * * * * *\"\n",
            &format!("schedule = \"{schedule}\"\n{push_keys}"),
        )
        .replace("[metrics]", &format!("{extra}\n[metrics]"));
    assert!(text.contains("push_subscription"), "{text}");
    std::fs::write(&path, text).expect("write config");
    // Empty pulls answer quickly, so a stop is not held up by one.
    env.sb.pubsub().set_pull_wait(Duration::from_millis(200));
    path
}

/// The `review_id` of every message Travtus accepted, in order.
fn delivered_ids(env: &TestEnv) -> Vec<String> {
    env.sb
        .travtus()
        .messages()
        .iter()
        .filter_map(|m| {
            m.body
                .pointer("/review/review_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// Whether Travtus accepted a review with this comment.
fn delivered_comment(env: &TestEnv, comment: &str) -> bool {
    env.sb
        .travtus()
        .messages()
        .iter()
        .any(|m| m.body.pointer("/review/comment").and_then(|v| v.as_str()) == Some(comment))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pubsub_notification_delivers_a_new_review_with_polls_a_year_away() {
    let env = spawn_env(seed(2)).await;
    let config = push_config(&env, YEARLY, "");
    let daemon = Daemon::start(&config, &env.dir.path().join("push.log"));
    let base = endpoint(&daemon).await;
    wait_until("the first pull", WAIT, || env.sb.pubsub().pulls() > 0).await;

    let location = env.sb.google().locations()[1].clone();
    env.sb.google().add_review(
        &location,
        NewGoogleReview {
            star_rating: Some(1),
            comment: Some("cold showers".into()),
            ..NewGoogleReview::default()
        },
    );
    wait_until("the pushed review delivered", WAIT, || {
        delivered_comment(&env, "cold showers")
    })
    .await;
    // Read back from the API: the location's whole first read went with it.
    assert_eq!(
        env.sb
            .google()
            .list_requests(&env.sb.google().locations()[0]),
        0,
        "only the notified location was read"
    );
    wait_until("the message acknowledged", WAIT, || {
        env.sb
            .pubsub()
            .backlog(SANDBOX_PUBSUB_SUBSCRIPTION)
            .is_empty()
    })
    .await;
    let via = crate::helpers::ledger_sql(
        &env.ledger(),
        "SELECT first_seen_via, COUNT(*), COUNT(push_hint_at) FROM reviews GROUP BY 1",
    );
    assert_eq!(via.len(), 1, "{via:?}");
    assert_eq!(via[0][0].text().as_deref(), Some("push"), "{via:?}");
    let metrics = get(&format!("{base}/metrics")).await.1;
    assert!(
        sample(
            &metrics,
            "review_sync_push_delivery_latency_seconds_count",
            &[]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "review_sync_push_hints_total",
            &[("channel", "pubsub"), ("outcome", "queued")]
        ),
        Some(1.0)
    );
    assert!(daemon.log().contains("push read committed"));
    let _ = daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_read_and_the_ack_loses_nothing_the_message_comes_again() {
    let env = spawn_env(seed(1)).await;
    let config = push_config(&env, YEARLY, "");
    // The lease extension after the pull goes through; the acknowledgement
    // after the read hangs, so the daemon is killed with it unsent.
    env.sb
        .pubsub()
        .faults()
        .push(Endpoint::PubSubAck, Fault::Slow(Duration::ZERO), 1);
    env.sb.pubsub().faults().push(
        Endpoint::PubSubAck,
        Fault::Slow(Duration::from_secs(600)),
        1,
    );
    let log = env.dir.path().join("first.log");
    let daemon = Daemon::start(&config, &log);
    wait_until("the first pull", WAIT, || env.sb.pubsub().pulls() > 0).await;
    let location = env.sb.google().locations()[2].clone();
    env.sb
        .google()
        .add_review(&location, NewGoogleReview::default());
    let expected = env.sb.google().reviews(&location).len();
    wait_until("the read committed", WAIT, || {
        daemon.log().contains("push read committed")
    })
    .await;
    assert_eq!(
        env.sb.pubsub().backlog(SANDBOX_PUBSUB_SUBSCRIPTION).len(),
        1,
        "not acknowledged yet"
    );
    let _ = daemon.kill().await;
    let committed = crate::helpers::ledger_sql(
        &env.ledger(),
        &format!("SELECT COUNT(*) FROM reviews WHERE location_id = '{location}'"),
    );
    assert_eq!(committed[0][0], crate::helpers::Sql::Int(expected as i64));

    // While it is down, another review: its notification waits too.
    env.sb
        .google()
        .add_review(&location, NewGoogleReview::default());
    // The unacknowledged lease runs out; Pub/Sub delivers it again.
    env.sb.faults().clear();
    env.sb.pubsub().faults().clear();
    env.sb.pubsub().advance_clock(Duration::from_secs(120));
    let daemon = Daemon::start(&config, &env.dir.path().join("second.log"));
    wait_until("every notification acknowledged", WAIT, || {
        env.sb
            .pubsub()
            .backlog(SANDBOX_PUBSUB_SUBSCRIPTION)
            .is_empty()
    })
    .await;
    wait_until("every review delivered", WAIT, || {
        delivered_ids(&env).len() == expected + 1
    })
    .await;
    let mut ids = delivered_ids(&env);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected + 1, "each review once");
    let _ = daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_notifications_for_one_location_within_a_second_cost_a_few_reads() {
    let env = spawn_env(seed(1)).await;
    let config = push_config(&env, YEARLY, "");
    let daemon = Daemon::start(&config, &env.dir.path().join("storm.log"));
    wait_until("the first pull", WAIT, || env.sb.pubsub().pulls() > 0).await;
    let location = env.sb.google().locations()[0].clone();
    let data = serde_json::json!({"notificationType": "NEW_REVIEW", "locationName": location, "reviewName": format!("{location}/reviews/storm")}).to_string();
    for _ in 0..1000 {
        env.sb
            .pubsub()
            .publish(SANDBOX_PUBSUB_TOPIC, data.as_bytes(), BTreeMap::new())
            .expect("published");
    }
    wait_until("all 1,000 acknowledged", WAIT, || {
        env.sb
            .pubsub()
            .backlog(SANDBOX_PUBSUB_SUBSCRIPTION)
            .is_empty()
    })
    .await;
    let reads = env.sb.google().list_requests(&location);
    assert!((1..=5).contains(&reads), "{reads} reads for 1,000 hints");
    let _ = daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_subscription_is_reported_and_polling_delivers_everything() {
    let env = spawn_env(seed(2)).await;
    let config = push_config(&env, "*/1 * * * * *", "");
    assert!(
        env.sb
            .pubsub()
            .delete_subscription(SANDBOX_PUBSUB_SUBSCRIPTION)
    );
    let daemon = Daemon::start(&config, &env.dir.path().join("broken.log"));
    let base = endpoint(&daemon).await;
    let body = health_becomes(&base, 200, "push broken").await;
    assert!(body.contains("not found (404)"), "{body}");
    let location = env.sb.google().locations()[0].clone();
    env.sb
        .google()
        .add_review(&location, NewGoogleReview::default());
    let total = env.google_review_count();
    wait_until("polling delivered every review", WAIT, || {
        delivered_ids(&env).len() == total
    })
    .await;
    let metrics = get(&format!("{base}/metrics")).await.1;
    assert_eq!(
        sample(
            &metrics,
            "review_sync_push_channel_up",
            &[("source", "acme-google")]
        ),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "review_sync_push_channel_errors_total",
            &[("source", "acme-google"), ("error_type", "not_found")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        daemon.log().matches("push channel broken").count(),
        1,
        "logged once, not at each retry"
    );
    let _ = daemon.kill().await;
}

/// The env's config plus the sandbox's Facebook Pages as a source with
/// webhooks on `[push] listen`, polled yearly.
fn webhook_config(env: &TestEnv, push_extra: &str) -> PathBuf {
    let path = config_with_metrics(env, "hooks.toml", "ledger.db");
    let text = std::fs::read_to_string(&path).expect("config");
    let mut source = format!(
        r#"
[push]
listen = "127.0.0.1:0"
{push_extra}

[[source]]
name = "acme-facebook"
kind = "facebook"
schedule = "{YEARLY}"
requests_per_minute = 600
access_token = "{token}"
api_base_url = "{base}/facebook"
webhook_app_secret = {{ file = "fb_app_secret" }}
webhook_verify_token = "fb-verify"
"#,
        token = sandbox::FACEBOOK_ACCESS_TOKEN,
        base = env.sb.base_url(),
    );
    for page in env.sb.facebook().page_ids() {
        source.push_str(&format!(
            "\n  [[source.location]]\n  id = \"{page}\"\n  group_external_ref = \"portfolio-1\"\n"
        ));
    }
    std::fs::write(env.dir.path().join("fb_app_secret"), "fb-app-s3cret\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            env.dir.path().join("fb_app_secret"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
    }
    let text = text
        .replace(
            "schedule = \"*/1 * * * * *\"",
            &format!("schedule = \"{YEARLY}\""),
        )
        .replace("[metrics]", &format!("{source}\n[metrics]"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// `http://ADDR` of the webhook receiver, once logged.
async fn webhook_base(daemon: &Daemon) -> String {
    let mut base = None;
    eventually("the webhook receiver's address", || {
        base = daemon
            .log()
            .lines()
            .find(|l| l.contains("webhook receiver listening"))
            .and_then(|l| l.split("listen=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(|addr| format!("http://{addr}"));
        std::future::ready(base.is_some())
    })
    .await;
    base.expect("address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_webhook_is_refused_and_reads_nothing_a_signed_one_delivers() {
    let env = spawn_env(seed(1)).await;
    let config = webhook_config(&env, "");
    let daemon = Daemon::start(&config, &env.dir.path().join("hooks.log"));
    let base = webhook_base(&daemon).await;
    let metrics_base = endpoint(&daemon).await;
    let pages = env.sb.facebook().page_ids();
    let (forged_page, real_page) = (pages[0].clone(), pages[1].clone());

    // Forged: signed with another secret.
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"{forged_page}","time":1,"changes":[{{"field":"ratings","value":{{"verb":"add"}}}}]}}]}}"#
    );
    let answer = reqwest::Client::new()
        .post(format!("{base}/webhooks/acme-facebook"))
        .header(
            "X-Hub-Signature-256",
            sandbox::facebook_signature("not-the-secret", &body),
        )
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 401);

    // The platform's own sender: handshake, then a signed delivery.
    env.sb
        .facebook()
        .subscribe_webhook(
            &format!("{base}/webhooks/acme-facebook"),
            "fb-verify",
            "fb-app-s3cret",
        )
        .await
        .expect("handshake answered");
    env.sb.facebook().add_recommendation(
        &real_page,
        NewRecommendation {
            positive: true,
            text: Some("lovely".into()),
            reviewer: Some("Ana".into()),
        },
    );
    wait_until(
        "the signed delivery's page read and delivered",
        WAIT,
        || env.sb.facebook().requests(&real_page) > 0 && delivered_comment(&env, "lovely"),
    )
    .await;
    assert_eq!(
        env.sb.facebook().requests(&forged_page),
        0,
        "the forged delivery read nothing"
    );
    eventually("the webhook counters", || {
        let metrics_base = metrics_base.clone();
        async move {
            let metrics = get(&format!("{metrics_base}/metrics")).await.1;
            sample(
                &metrics,
                "review_sync_webhook_requests_total",
                &[("outcome", "unauthorized")],
            ) == Some(1.0)
                && sample(
                    &metrics,
                    "review_sync_webhook_requests_total",
                    &[("outcome", "verified")],
                ) >= Some(1.0)
        }
    })
    .await;
    let _ = daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_says_whether_the_subscription_exists() {
    let env = spawn_env(seed(1)).await;
    let config = push_config(&env, YEARLY, "");
    let run = |config: PathBuf| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
            .arg("--config")
            .arg(&config)
            .args(["check", "--online"])
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("check runs")
    };
    let out = run(config.clone()).await;
    let (stdout, stderr) = crate::helpers::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "acme-google: push: Pub/Sub subscription {SANDBOX_PUBSUB_SUBSCRIPTION} ok"
        )),
        "{stdout}"
    );
    assert!(
        env.sb
            .pubsub()
            .delete_subscription(SANDBOX_PUBSUB_SUBSCRIPTION)
    );
    let out = run(config).await;
    let (stdout, stderr) = crate::helpers::text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("acme-google: FAILED: push: Pub/Sub subscription")
            && stdout.contains("not found (404)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_a_review_arriving_by_push() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("demo")
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("demo runs");
    let (stdout, stderr) = crate::helpers::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let push = stdout
        .split("== push")
        .nth(1)
        .unwrap_or_else(|| panic!("no push part: {stdout}"));
    assert!(
        push.contains("Pushed: no hot water since this morning."),
        "{stdout}"
    );
    assert!(push.contains("arrived by push in "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_silent_past_its_alert_is_reported_until_it_delivers_again() {
    let env = spawn_env(seed(1)).await;
    let config = webhook_config(&env, "webhook_silence_alert = \"1s\"");
    let daemon = Daemon::start(&config, &env.dir.path().join("silent.log"));
    let base = webhook_base(&daemon).await;
    let metrics_base = endpoint(&daemon).await;
    let body = health_becomes(&metrics_base, 200, "no verified webhook delivery").await;
    assert!(body.contains("acme-facebook"), "{body}");
    let page = env.sb.facebook().page_ids()[0].clone();
    let delivery = format!(
        r#"{{"object":"page","entry":[{{"id":"{page}","time":1,"changes":[{{"field":"ratings","value":{{"verb":"add"}}}}]}}]}}"#
    );
    // Delivered every 200 ms for a while: the watch checks every second.
    let client = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..50 {
        let answer = client
            .post(format!("{base}/webhooks/acme-facebook"))
            .header(
                "X-Hub-Signature-256",
                sandbox::facebook_signature("fb-app-s3cret", &delivery),
            )
            .body(delivery.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 200);
        let (status, body) = get(&format!("{metrics_base}/healthz")).await;
        if status == 200 && !body.contains("push broken") {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healthy, "the detail never cleared: {}", daemon.log());
    assert!(daemon.log().contains("push channel works again"));
    let _ = daemon.kill().await;
}
