//! Push keys: off by default, read when written, and each problem at its
//! key.

use super::*;
use crate::platforms::google::GoogleConfig;

#[test]
fn push_keys_are_off_by_default_and_read_when_written() {
    let config = ok(&google_source(""));
    assert!(config.push.is_none());
    assert!(config.sources[0].kind.push().is_none());
    let config = ok(&google_source(
        "push_subscription = \"projects/p-1/subscriptions/review-sync\"\n",
    ));
    let Some(crate::push::SourcePush::PubSub(push)) = config.sources[0].kind.push() else {
        panic!("expected Pub/Sub push");
    };
    assert_eq!(
        push.subscription.to_string(),
        "projects/p-1/subscriptions/review-sync"
    );
    assert_eq!(push.base_url.as_str(), "https://pubsub.googleapis.com/");
    // Without push_credentials: the source's own OAuth client.
    assert!(matches!(
        push.credentials,
        crate::push::PubSubCredentials::SourceOAuth { ref client_id, .. } if client_id == "gid"
    ));
    let google = config.sources[0]
        .kind
        .settings::<GoogleConfig>()
        .expect("google");
    assert!(
        google
            .urls()
            .iter()
            .any(|u| u.as_str() == "https://pubsub.googleapis.com/")
    );
    // Where `check --online --set-notifications` sends the source's token:
    // one of its credential URLs.
    assert_eq!(
        google.notifications_base_url.as_str(),
        "https://mybusinessnotifications.googleapis.com/"
    );
    assert!(
        google
            .urls()
            .iter()
            .any(|u| u.as_str() == "https://mybusinessnotifications.googleapis.com/")
    );
}

#[test]
fn push_problems_name_the_key() {
    const LISTEN: &str = "[push]\nlisten = \"127.0.0.1:9188\"\n";
    assert_refused(&[
        refused(
            "a topic where a subscription is expected",
            google_source("push_subscription = \"topics/nope\"\n"),
            &[
                "10:21: push_subscription: \"topics/nope\" is not a subscription name: expected projects/PROJECT/subscriptions/ID (letters, digits and - _ . ~ + %)",
            ],
        ),
        refused(
            "pubsub_base_url without push_subscription",
            google_source("pubsub_base_url = \"https://pubsub.example\"\n"),
            &[
                "10:1: `pubsub_base_url` is only used with `push_subscription` (Pub/Sub push is off without it)",
            ],
        ),
        refused(
            "push_credentials that are not JSON",
            google_source(
                "push_subscription = \"projects/p/subscriptions/review-sync\"\npush_credentials = \"{not json\"\n",
            ),
            &[
                "11:1: push_credentials: service-account key is not JSON (line 1, column 2): syntax error",
            ],
        ),
        refused(
            "plain http:// Pub/Sub on another host",
            google_source(
                "push_subscription = \"projects/p/subscriptions/review-sync\"\npubsub_base_url = \"http://pubsub.example\"\n",
            ),
            &[
                "11:19: pubsub_base_url: plain http:// is only allowed for loopback hosts (got pubsub.example)",
            ],
        ),
        refused(
            "notifications_base_url without push_subscription",
            google_source("notifications_base_url = \"https://n.example\"\n"),
            &[
                "10:1: `notifications_base_url` is only used with `push_subscription` (by `check --online --set-notifications`)",
            ],
        ),
        refused(
            "plain http:// Notifications API on another host",
            google_source(
                "push_subscription = \"projects/p/subscriptions/review-sync\"\nnotifications_base_url = \"http://n.example\"\n",
            ),
            &[
                "11:26: notifications_base_url: plain http:// is only allowed for loopback hosts (got n.example)",
            ],
        ),
        // Webhook secrets need a receiver, and Facebook's come in pairs.
        refused(
            "a webhook secret without [push] listen",
            platform_source(
                "trustpilot",
                "api_key = \"k\"\nwebhook_verify_token = \"s\"\n",
                "bu",
                "",
            ),
            &[
                "8:1: webhook_verify_token: webhooks need `[push] listen` (the address their receiver serves /webhooks/{source} on); without it nothing receives them",
            ],
        ),
        refused(
            "a Facebook app secret without its verify token",
            format!(
                "{LISTEN}{}",
                platform_source(
                    "facebook",
                    "access_token = \"t\"\nwebhook_app_secret = \"s\"\n",
                    "1",
                    ""
                )
            ),
            &[
                "10:1: `webhook_app_secret` and `webhook_verify_token` go together (the app secret verifies X-Hub-Signature-256, the token answers the subscription handshake); missing `webhook_verify_token`",
            ],
        ),
        refused(
            "listen that is not IP:PORT",
            format!(
                "[push]\nlisten = \"nowhere\"\n{}",
                platform_source("facebook", "access_token = \"t\"\n", "1", "")
            ),
            &[
                "2:10: listen: expected IP:PORT such as \"127.0.0.1:9188\" (invalid socket address syntax)",
            ],
        ),
        refused(
            "webhook_silence_alert past its bound",
            format!(
                "{LISTEN}webhook_silence_alert = \"31d\"\n{}",
                platform_source("facebook", "access_token = \"t\"\n", "1", "")
            ),
            &["3:25: webhook_silence_alert: \"31d\" is too long: at most 30days"],
        ),
        // A key of another platform's push is not this kind's.
        refused(
            "Facebook's app secret on a Trustpilot source",
            format!(
                "{LISTEN}{}",
                platform_source(
                    "trustpilot",
                    "api_key = \"k\"\nwebhook_app_secret = \"s\"\n",
                    "bu",
                    ""
                )
            ),
            &["10:1: key `webhook_app_secret` is not used by kind trustpilot"],
        ),
    ]);
}

#[test]
fn webhook_sources_get_their_platform_checks() {
    let config = ok(&format!(
        "[push]\nlisten = \"127.0.0.1:9188\"\nwebhook_silence_alert = \"2h\"\n{}",
        platform_source(
            "facebook",
            "access_token = \"t\"\nwebhook_app_secret = \"s\"\nwebhook_verify_token = \"v\"\n",
            "1",
            ""
        )
    ));
    let push = config.push.as_ref().expect("[push]");
    assert_eq!(push.listen.to_string(), "127.0.0.1:9188");
    assert_eq!(
        push.webhook_silence_alert,
        Some(std::time::Duration::from_secs(7200))
    );
    let Some(crate::push::SourcePush::Webhook(hook)) = config.sources[0].kind.push() else {
        panic!("expected a webhook");
    };
    assert_eq!(hook.channel().as_str(), "facebook");
}
