//! Facebook Page webhooks (Meta Webhooks,
//! developers.facebook.com/docs/graph-api/webhooks/getting-started), as a
//! push channel ([`WebhookKind`]):
//! - `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C`: answers
//!   `C` with 200 when `T` is the source's verify token, else 403.
//! - `POST`: `X-Hub-Signature-256: sha256=<hex>` must be the HMAC-SHA256
//!   of the raw body bytes keyed with the app secret, compared in constant
//!   time; missing or wrong: 401 and nothing recorded. The body
//!   (`{"object":"page","entry":[{"id":PAGE,"changes":[{"field":"ratings",...}]}]}`)
//!   names the Page; only `entry[].id` and `changes[].field` are read (and
//!   `open_graph_story_id`, for logs).

use crate::config::Secret;
use crate::domain::LocationId;
use crate::push::HintChannel;
use crate::push::webhook::{
    Handshake, Refusal, Targets, WebhookKind, WebhookStats, configured, every_location, same,
};
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;

/// The longest `hub.challenge` echoed (Meta sends a short number).
const MAX_CHALLENGE_LEN: usize = 256;

/// A source's Page webhooks: the app secret that signs them and the verify
/// token of the subscription handshake.
#[derive(Clone, Debug)]
pub struct FacebookWebhook {
    /// `webhook_app_secret`.
    pub app_secret: Secret,
    /// `webhook_verify_token`.
    pub verify_token: Secret,
}

impl WebhookKind for FacebookWebhook {
    fn channel(&self) -> HintChannel {
        HintChannel::Webhook(super::PLATFORM.kind)
    }

    fn handshake(&self, query: &HashMap<String, String>, stats: &WebhookStats) -> Option<Handshake> {
        let mode = query.get("hub.mode").map(String::as_str);
        let token = query
            .get("hub.verify_token")
            .map(String::as_str)
            .unwrap_or("");
        let challenge = query.get("hub.challenge").map(String::as_str).unwrap_or("");
        if mode != Some("subscribe") || !same(token, self.verify_token.expose()) {
            WebhookStats::count(&stats.handshakes_refused);
            return Some(Handshake::Refused(
                StatusCode::FORBIDDEN,
                "verification failed\n",
            ));
        }
        // Only a plausible challenge is echoed, so this endpoint cannot be
        // made to reflect arbitrary content.
        if challenge.is_empty()
            || challenge.len() > MAX_CHALLENGE_LEN
            || !challenge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            WebhookStats::count(&stats.handshakes_refused);
            return Some(Handshake::Refused(
                StatusCode::BAD_REQUEST,
                "bad hub.challenge\n",
            ));
        }
        WebhookStats::count(&stats.handshakes_ok);
        Some(Handshake::Confirmed(challenge.to_owned()))
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        _query: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<(), Refusal> {
        if signature_ok(headers, body, self.app_secret.expose()) {
            Ok(())
        } else {
            Err(Refusal {
                text: "bad signature\n",
                challenge: None,
            })
        }
    }

    /// The Pages a verified body names, with a `ratings` change.
    fn targets(
        &self,
        body: &[u8],
        _query: &HashMap<String, String>,
        locations: &[LocationId],
        stats: &WebhookStats,
    ) -> Targets {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            WebhookStats::count(&stats.unparsed);
            return every_location(locations);
        };
        let Some(entries) = value.get("entry").and_then(|e| e.as_array()) else {
            WebhookStats::count(&stats.unparsed);
            return every_location(locations);
        };
        if value.get("object").and_then(|o| o.as_str()) != Some("page") {
            // Another object's webhook (user, instagram...): nothing of ours.
            return Vec::new();
        }
        let mut targets: Targets = Vec::new();
        for entry in entries {
            let page = match entry.get("id") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            let ratings: Vec<Option<String>> = entry
                .get("changes")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
                .filter(|c| c.get("field").and_then(|f| f.as_str()) == Some("ratings"))
                .map(|c| {
                    c.get("value")
                        .and_then(|v| v.get("open_graph_story_id"))
                        .and_then(|s| s.as_str())
                        .map(str::to_owned)
                })
                .collect();
            if ratings.is_empty() {
                continue;
            }
            let Some(location) = configured(locations, &page) else {
                WebhookStats::count(&stats.unknown_locations);
                continue;
            };
            for review in ratings {
                targets.push((location.clone(), review));
            }
        }
        targets
    }
}

/// Whether `X-Hub-Signature-256` is `sha256=` + the hex HMAC-SHA256 of the
/// raw body keyed with `app_secret` (constant-time comparison).
pub(super) fn signature_ok(headers: &HeaderMap, body: &[u8], app_secret: &str) -> bool {
    let Some(value) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(hex_digest) = value.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time (and refuses a wrong length).
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn signed(secret: &str, body: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            sandbox::facebook_signature(secret, body)
                .parse()
                .expect("header"),
        );
        headers
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_raw_bytes() {
        let body = r#"{"object":"page","entry":[]}"#;
        assert!(signature_ok(
            &signed("s3cret", body),
            body.as_bytes(),
            "s3cret"
        ));
        // Another secret, another body (one byte of whitespace), no header,
        // no prefix, bad hex, a truncated digest: all refused.
        assert!(!signature_ok(
            &signed("other", body),
            body.as_bytes(),
            "s3cret"
        ));
        assert!(!signature_ok(
            &signed("s3cret", body),
            format!("{body} ").as_bytes(),
            "s3cret"
        ));
        assert!(!signature_ok(&HeaderMap::new(), body.as_bytes(), "s3cret"));
        let mut headers = HeaderMap::new();
        let digest = sandbox::facebook_signature("s3cret", body);
        let hex_only = digest.trim_start_matches("sha256=");
        headers.insert("x-hub-signature-256", hex_only.parse().expect("header"));
        assert!(!signature_ok(&headers, body.as_bytes(), "s3cret"));
        headers.insert("x-hub-signature-256", "sha256=zz".parse().expect("header"));
        assert!(!signature_ok(&headers, body.as_bytes(), "s3cret"));
        headers.insert(
            "x-hub-signature-256",
            digest[..digest.len() - 2].parse().expect("header"),
        );
        assert!(!signature_ok(&headers, body.as_bytes(), "s3cret"));
    }

    #[test]
    fn bodies_name_only_configured_pages_with_ratings_changes() {
        let stats = WebhookStats::default();
        let hook = FacebookWebhook {
            app_secret: Secret::new("a"),
            verify_token: Secret::new("v"),
        };
        let pages = [LocationId::new("111"), LocationId::new("222")];
        let targets = |body: &[u8]| hook.targets(body, &HashMap::new(), &pages, &stats);
        let body = br#"{"object":"page","entry":[
            {"id":"111","time":1,"changes":[{"field":"ratings","value":{"verb":"add","open_graph_story_id":"s1"}}]},
            {"id":222,"time":1,"changes":[{"field":"feed","value":{}}]},
            {"id":"999","time":1,"changes":[{"field":"ratings","value":{}}]}
        ]}"#;
        assert_eq!(
            targets(body),
            vec![(LocationId::new("111"), Some("s1".to_owned()))]
        );
        assert_eq!(stats.unknown_locations.load(Ordering::Relaxed), 1);
        // Unparseable but verified: every location, counted.
        assert_eq!(targets(b"{oops").len(), 2);
        assert_eq!(stats.unparsed.load(Ordering::Relaxed), 1);
        // Another object type: nothing.
        assert!(targets(br#"{"object":"user","entry":[]}"#).is_empty());
    }
}
