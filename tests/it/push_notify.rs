//! `check --online --set-notifications` (issue 14), through the real
//! binary against the sandbox's Notifications and Pub/Sub emulators: each
//! account a push source reads gets its review notifications pointed at the
//! subscription's topic (keeping the types it had), a second run changes
//! nothing, a refused account fails the check without stopping the others,
//! and the flag means nothing without `--online`.

use crate::helpers::{TestEnv, seed, spawn_env, text};
use crate::push_daemon::push_config_unset;
use sandbox::{NewGoogleReview, SANDBOX_PUBSUB_SUBSCRIPTION, SANDBOX_PUBSUB_TOPIC};
use std::path::Path;
use std::process::Output;

/// A schedule that does not fire while the test runs.
const YEARLY: &str = "0 0 0 1 1 *";

async fn review_sync(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("review-sync runs")
}

async fn set_notifications(config: &Path) -> Output {
    review_sync(config, &["check", "--online", "--set-notifications"]).await
}

fn line(account: &str, outcome: &str) -> String {
    format!(
        "acme-google: push: notifications of {account} \u{2192} {SANDBOX_PUBSUB_TOPIC}: {outcome}"
    )
}

fn setting(env: &TestEnv, account: &str) -> Option<(Option<String>, Vec<String>)> {
    env.sb.notifications().setting(account)
}

fn review_types() -> Vec<String> {
    vec!["NEW_REVIEW".into(), "UPDATED_REVIEW".into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_notifications_points_fresh_accounts_at_the_topic_and_a_new_review_is_published() {
    let env = spawn_env(seed(1)).await;
    let config = push_config_unset(&env, YEARLY, "");
    let accounts = env.sb.google().accounts();
    assert_eq!(accounts.len(), 2);
    for account in &accounts {
        assert_eq!(setting(&env, account), None, "a fresh account has none");
    }

    let out = set_notifications(&config).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for account in &accounts {
        assert!(stdout.contains(&line(account, "set")), "{stdout}");
        assert_eq!(
            setting(&env, account),
            Some((Some(SANDBOX_PUBSUB_TOPIC.to_owned()), review_types())),
            "{account}"
        );
    }
    for secret in [
        sandbox::GOOGLE_CLIENT_SECRET,
        sandbox::GOOGLE_REFRESH_TOKEN,
        sandbox::TRAVTUS_CLIENT_SECRET,
    ] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }

    // The setting works: a new review is published to the subscription.
    assert!(
        env.sb
            .pubsub()
            .backlog(SANDBOX_PUBSUB_SUBSCRIPTION)
            .is_empty()
    );
    let location = env.sb.google().locations()[4].clone();
    let review = env.sb.google().add_review(
        &location,
        NewGoogleReview {
            star_rating: Some(2),
            comment: Some("lift broken".into()),
            ..NewGoogleReview::default()
        },
    );
    let backlog = env.sb.pubsub().backlog(SANDBOX_PUBSUB_SUBSCRIPTION);
    assert_eq!(backlog.len(), 1, "{backlog:?}");
    let data = String::from_utf8_lossy(&backlog[0].data).into_owned();
    assert!(
        data.contains("NEW_REVIEW") && data.contains(&location) && data.contains(&review),
        "{data}"
    );

    // A second run finds everything in place and writes nothing.
    let out = set_notifications(&config).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for account in &accounts {
        assert!(stdout.contains(&line(account, "already set")), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_notifications_keeps_the_types_an_account_already_has() {
    let env = spawn_env(seed(1)).await;
    let config = push_config_unset(&env, YEARLY, "");
    let [first, second] = &env.sb.google().accounts()[..] else {
        panic!("two accounts");
    };
    let notifications = env.sb.notifications();
    // One account has everything plus the admin's questions; the other
    // only the questions.
    assert!(notifications.set_setting(
        first,
        SANDBOX_PUBSUB_TOPIC,
        &["NEW_QUESTION", "UPDATED_REVIEW", "NEW_REVIEW"]
    ));
    assert!(notifications.set_setting(second, SANDBOX_PUBSUB_TOPIC, &["NEW_QUESTION"]));

    let out = set_notifications(&config).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&line(first, "already set")), "{stdout}");
    assert!(stdout.contains(&line(second, "set")), "{stdout}");
    let topic = Some(SANDBOX_PUBSUB_TOPIC.to_owned());
    assert_eq!(
        setting(&env, first),
        Some((
            topic.clone(),
            vec![
                "NEW_QUESTION".into(),
                "UPDATED_REVIEW".into(),
                "NEW_REVIEW".into()
            ]
        ))
    );
    assert_eq!(
        setting(&env, second),
        Some((
            topic,
            vec![
                "NEW_QUESTION".into(),
                "NEW_REVIEW".into(),
                "UPDATED_REVIEW".into()
            ]
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_account_fails_the_check_and_the_others_are_still_set() {
    let env = spawn_env(seed(1)).await;
    let config = push_config_unset(&env, YEARLY, "");
    let [first, second] = &env.sb.google().accounts()[..] else {
        panic!("two accounts");
    };
    // The token may read the first account's reviews but not manage it.
    env.sb.notifications().refuse_account(first);

    let out = set_notifications(&config).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&line(
            first,
            "FAILED: HTTP 403: The caller does not have permission"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&line(second, "set")), "{stdout}");
    assert_eq!(setting(&env, first), None);
    assert_eq!(
        setting(&env, second),
        Some((Some(SANDBOX_PUBSUB_TOPIC.to_owned()), review_types()))
    );
    // Everything else online is fine: the failure is the refused account's.
    assert_eq!(stdout.matches("FAILED").count(), 1, "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_notifications_without_online_is_a_usage_error() {
    let env = spawn_env(seed(1)).await;
    let config = push_config_unset(&env, YEARLY, "");
    let out = review_sync(&config, &["check", "--set-notifications"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("--online"), "{stderr}");
    assert_eq!(setting(&env, &env.sb.google().accounts()[0]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_or_lying_notifications_api_fails_and_gets_no_token_elsewhere() {
    let env = spawn_env(seed(1)).await;
    let config = push_config_unset(&env, YEARLY, "");
    let elsewhere = env.sb.elsewhere();

    // A 307 to another origin is not followed: the token stays here.
    env.sb.notifications().redirect_to(&elsewhere.base_url());
    let out = set_notifications(&config).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for account in env.sb.google().accounts() {
        let failed = line(&account, "FAILED: HTTP 307 redirect to");
        assert!(stdout.contains(&failed), "{stdout}");
        assert_eq!(setting(&env, &account), None);
    }
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );

    // A configured host whose 2xx is not a setting (Elsewhere's tempting
    // JSON): the answer to the update must show the topic and both types.
    let text_of = std::fs::read_to_string(&config).expect("config");
    let lying = text_of.replace(
        &env.sb.google_notifications_base_url(),
        &elsewhere.base_url(),
    );
    assert_ne!(lying, text_of);
    std::fs::write(&config, lying).expect("write config");
    let out = set_notifications(&config).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAILED: invalid answer: the answer to the update does not show the topic"),
        "{stdout}"
    );
    assert!(!stdout.contains(": set"), "{stdout}");
}
