//! The webhook receiver: `GET`/`POST /webhooks/{source}` for Facebook Page
//! and Trustpilot webhooks, served behind the operator's TLS reverse proxy.
//! It checks who is calling, turns a delivery into hints on the
//! [`HintQueue`] and answers 200 at once; the read happens afterwards, in
//! whatever drains the queue. It never reads a platform itself.
//!
//! Facebook (Meta Webhooks, developers.facebook.com/docs/graph-api/webhooks/getting-started):
//! - `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C`: answers
//!   `C` with 200 when `T` is the source's verify token, else 403.
//! - `POST`: `X-Hub-Signature-256: sha256=<hex>` must be the HMAC-SHA256
//!   of the raw body bytes keyed with the app secret, compared in constant
//!   time; missing or wrong: 401 and nothing recorded. The body
//!   (`{"object":"page","entry":[{"id":PAGE,"changes":[{"field":"ratings",...}]}]}`)
//!   names the Page; only `entry[].id` and `changes[].field` are read.
//!
//! Trustpilot: its pages about webhooks (support.trustpilot.com community
//! post 10109980750738 "How to set up Trustpilot Webhooks", and article
//! 115015822068 "Manage your webhook notifications") describe the payload
//! (`{"events":[{"eventName":"service-review-created|updated|deleted","version":"1","eventData":{...}}]}`)
//! and a subscription URL entered in the business app, and no signature or
//! secret header; the payload does not name the business unit. What we rely
//! on is therefore the subscription URL: it carries the source's secret
//! (`webhook_verify_token`) either as HTTP Basic credentials
//! (`https://review-sync:SECRET@host/webhooks/NAME`, which an HTTP client
//! sends as `Authorization: Basic`) or as `?token=SECRET`, compared in
//! constant time; missing or wrong: 401. `?location=ID` names the business
//! unit when a source has several; without it every location of the source
//! is hinted. Over HTTPS the secret is as private as a signing key would
//! be, but it is replayable: replays only cause reads.
//!
//! Both: bodies over the cap answer 413 without being read further; an
//! unknown source answers 404; a verified body that does not parse hints
//! every location of its source (the read will tell). Hints name only
//! configured locations: a Page or unit that is not configured is counted
//! and ignored.

use super::hints::{Hint, HintChannel, HintQueue, PushOutcome};
use crate::config::Secret;
use crate::domain::{LocationId, SourceName};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// The default body cap. A Page webhook batches at most a few changes; a
/// Trustpilot delivery is one review's text.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The longest `hub.challenge` echoed (Meta sends a short number).
const MAX_CHALLENGE_LEN: usize = 256;

/// How a source's deliveries are authenticated.
#[derive(Clone, Debug)]
pub enum WebhookAuth {
    /// Facebook: `X-Hub-Signature-256` with the app secret, and the
    /// verify token for the subscription handshake.
    Facebook {
        /// `webhook_app_secret`.
        app_secret: Secret,
        /// `webhook_verify_token`.
        verify_token: Secret,
    },
    /// Trustpilot: the secret the subscription URL carries (see the
    /// module doc).
    Trustpilot {
        /// `webhook_verify_token`.
        secret: Secret,
    },
}

/// One source that receives webhooks.
#[derive(Clone, Debug)]
pub struct WebhookSource {
    /// Its configured name (the `{source}` of the path).
    pub name: SourceName,
    /// How deliveries prove where they come from.
    pub auth: WebhookAuth,
    /// Its configured locations (Page ids, business unit ids): the only
    /// ones a hint may name.
    pub locations: Vec<LocationId>,
}

/// Counters of what the receiver saw, for metrics and `/healthz`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Requests to a known source.
    pub received: AtomicU64,
    /// Deliveries whose signature or secret checked out.
    pub verified: AtomicU64,
    /// Deliveries refused with 401.
    pub unauthorized: AtomicU64,
    /// Requests for an unknown source (404).
    pub unknown_source: AtomicU64,
    /// Bodies over the cap (413).
    pub too_large: AtomicU64,
    /// Handshakes answered / refused.
    pub handshakes_ok: AtomicU64,
    /// Handshakes refused (wrong token or mode).
    pub handshakes_refused: AtomicU64,
    /// Hints that queued a read.
    pub hints_queued: AtomicU64,
    /// Hints folded into a pending read.
    pub hints_coalesced: AtomicU64,
    /// Hints the queue refused (memory bound).
    pub hints_refused: AtomicU64,
    /// Changes about a Page or unit that is not configured.
    pub unknown_locations: AtomicU64,
    /// Verified bodies that did not parse (every location was hinted).
    pub unparsed: AtomicU64,
    /// When each source last delivered a verified body (for "silent too long").
    last_verified: Mutex<HashMap<SourceName, SystemTime>>,
}

impl WebhookStats {
    /// When `source` last delivered a verified body, if it ever did.
    pub fn last_verified(&self, source: &SourceName) -> Option<SystemTime> {
        self.last_verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .copied()
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the handlers share.
struct Receiver {
    sources: HashMap<String, WebhookSource>,
    queue: HintQueue,
    stats: Arc<WebhookStats>,
}

/// The router for `/webhooks/{source}`, with `body_limit` bytes at most per
/// body. Mount it on the `[push] listen` address.
pub fn router(
    sources: Vec<WebhookSource>,
    queue: HintQueue,
    stats: Arc<WebhookStats>,
    body_limit: usize,
) -> axum::Router {
    let receiver = Arc::new(Receiver {
        sources: sources
            .into_iter()
            .map(|s| (s.name.as_str().to_owned(), s))
            .collect(),
        queue,
        stats,
    });
    axum::Router::new()
        .route(
            "/webhooks/{source}",
            axum::routing::get(handshake).post(deliver),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(receiver)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

async fn handshake(
    State(receiver): State<Arc<Receiver>>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(source) = receiver.sources.get(&source) else {
        WebhookStats::count(&receiver.stats.unknown_source);
        return plain(StatusCode::NOT_FOUND, "no such webhook\n");
    };
    WebhookStats::count(&receiver.stats.received);
    let WebhookAuth::Facebook { verify_token, .. } = &source.auth else {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    };
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query
        .get("hub.verify_token")
        .map(String::as_str)
        .unwrap_or("");
    let challenge = query.get("hub.challenge").map(String::as_str).unwrap_or("");
    if mode != Some("subscribe") || !same(token, verify_token.expose()) {
        WebhookStats::count(&receiver.stats.handshakes_refused);
        return plain(StatusCode::FORBIDDEN, "verification failed\n");
    }
    // Only a plausible challenge is echoed, so this endpoint cannot be
    // made to reflect arbitrary content.
    if challenge.is_empty()
        || challenge.len() > MAX_CHALLENGE_LEN
        || !challenge
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        WebhookStats::count(&receiver.stats.handshakes_refused);
        return plain(StatusCode::BAD_REQUEST, "bad hub.challenge\n");
    }
    WebhookStats::count(&receiver.stats.handshakes_ok);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        challenge.to_owned(),
    )
        .into_response()
}

async fn deliver(
    State(receiver): State<Arc<Receiver>>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(source) = receiver.sources.get(&source) else {
        WebhookStats::count(&receiver.stats.unknown_source);
        return plain(StatusCode::NOT_FOUND, "no such webhook\n");
    };
    let stats = &receiver.stats;
    WebhookStats::count(&stats.received);
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            WebhookStats::count(&stats.too_large);
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
        }
        Err(rejection) => return rejection.into_response(),
    };
    let (channel, targets) = match &source.auth {
        WebhookAuth::Facebook { app_secret, .. } => {
            if !signature_ok(&headers, &body, app_secret.expose()) {
                WebhookStats::count(&stats.unauthorized);
                return plain(StatusCode::UNAUTHORIZED, "bad signature\n");
            }
            (
                HintChannel::Facebook,
                facebook_targets(source, &body, stats),
            )
        }
        WebhookAuth::Trustpilot { secret } => {
            if !trustpilot_secret_ok(&headers, &query, secret.expose()) {
                WebhookStats::count(&stats.unauthorized);
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"review-sync\"")],
                    "bad credentials\n",
                )
                    .into_response();
            }
            (
                HintChannel::Trustpilot,
                trustpilot_targets(source, &body, query.get("location"), stats),
            )
        }
    };
    WebhookStats::count(&stats.verified);
    stats
        .last_verified
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(source.name.clone(), SystemTime::now());
    for (location, review) in targets {
        let mut hint = Hint::new(source.name.clone(), location, channel);
        hint.review = review;
        let counter = match receiver.queue.push(hint) {
            PushOutcome::Queued => &stats.hints_queued,
            PushOutcome::Coalesced | PushOutcome::AckNotKept { .. } => &stats.hints_coalesced,
            PushOutcome::Refused { .. } => &stats.hints_refused,
        };
        WebhookStats::count(counter);
    }
    plain(StatusCode::OK, "ok\n")
}

/// Whether `X-Hub-Signature-256` is `sha256=` + the hex HMAC-SHA256 of the
/// raw body keyed with `app_secret` (constant-time comparison).
pub fn signature_ok(headers: &HeaderMap, body: &[u8], app_secret: &str) -> bool {
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

/// Whether the Trustpilot delivery carries the secret: as the password of
/// HTTP Basic credentials, or as `?token=`.
fn trustpilot_secret_ok(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    secret: &str,
) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, encoded) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then_some(encoded.trim())
        })
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(_, password)| password.to_owned())
        });
    let from_basic = basic.is_some_and(|password| same(&password, secret));
    let from_query = query.get("token").is_some_and(|token| same(token, secret));
    from_basic | from_query
}

type Targets = Vec<(LocationId, Option<String>)>;

fn every_location(source: &WebhookSource) -> Targets {
    source.locations.iter().map(|l| (l.clone(), None)).collect()
}

fn configured<'a>(source: &'a WebhookSource, id: &str) -> Option<&'a LocationId> {
    source.locations.iter().find(|l| l.as_str() == id)
}

/// The Pages a verified Facebook body names, with a `ratings` change.
fn facebook_targets(source: &WebhookSource, body: &[u8], stats: &WebhookStats) -> Targets {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        WebhookStats::count(&stats.unparsed);
        return every_location(source);
    };
    let Some(entries) = value.get("entry").and_then(|e| e.as_array()) else {
        WebhookStats::count(&stats.unparsed);
        return every_location(source);
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
        let Some(location) = configured(source, &page) else {
            WebhookStats::count(&stats.unknown_locations);
            continue;
        };
        for review in ratings {
            targets.push((location.clone(), review));
        }
    }
    targets
}

/// The business units a verified Trustpilot body is about.
fn trustpilot_targets(
    source: &WebhookSource,
    body: &[u8],
    location: Option<&String>,
    stats: &WebhookStats,
) -> Targets {
    let locations: Vec<LocationId> = match location {
        Some(id) => match configured(source, id) {
            Some(location) => vec![location.clone()],
            None => {
                WebhookStats::count(&stats.unknown_locations);
                return Vec::new();
            }
        },
        None => source.locations.clone(),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        WebhookStats::count(&stats.unparsed);
        return locations.into_iter().map(|l| (l, None)).collect();
    };
    let Some(events) = value.get("events").and_then(|e| e.as_array()) else {
        WebhookStats::count(&stats.unparsed);
        return locations.into_iter().map(|l| (l, None)).collect();
    };
    let reviews: Vec<Option<String>> = events
        .iter()
        .filter(|e| {
            e.get("eventName")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.starts_with("service-review-"))
        })
        .map(|e| {
            e.get("eventData")
                .and_then(|d| d.get("id"))
                .and_then(|i| i.as_str())
                .map(str::to_owned)
        })
        .collect();
    let mut targets = Targets::new();
    for location in locations {
        for review in &reviews {
            targets.push((location.clone(), review.clone()));
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn source(auth: WebhookAuth, locations: &[&str]) -> WebhookSource {
        WebhookSource {
            name: SourceName::new("fb"),
            auth,
            locations: locations.iter().map(|l| LocationId::new(*l)).collect(),
        }
    }

    fn facebook() -> WebhookAuth {
        WebhookAuth::Facebook {
            app_secret: Secret::new("a"),
            verify_token: Secret::new("v"),
        }
    }

    #[test]
    fn facebook_bodies_name_only_configured_pages_with_ratings_changes() {
        let stats = WebhookStats::default();
        let src = source(facebook(), &["111", "222"]);
        let body = br#"{"object":"page","entry":[
            {"id":"111","time":1,"changes":[{"field":"ratings","value":{"verb":"add","open_graph_story_id":"s1"}}]},
            {"id":222,"time":1,"changes":[{"field":"feed","value":{}}]},
            {"id":"999","time":1,"changes":[{"field":"ratings","value":{}}]}
        ]}"#;
        let targets = facebook_targets(&src, body, &stats);
        assert_eq!(
            targets,
            vec![(LocationId::new("111"), Some("s1".to_owned()))]
        );
        assert_eq!(stats.unknown_locations.load(Ordering::Relaxed), 1);
        // Unparseable but verified: every location, counted.
        assert_eq!(facebook_targets(&src, b"{oops", &stats).len(), 2);
        assert_eq!(stats.unparsed.load(Ordering::Relaxed), 1);
        // Another object type: nothing.
        assert!(facebook_targets(&src, br#"{"object":"user","entry":[]}"#, &stats).is_empty());
    }

    #[test]
    fn trustpilot_bodies_hint_the_named_unit_or_every_unit() {
        let stats = WebhookStats::default();
        let src = source(
            WebhookAuth::Trustpilot {
                secret: Secret::new("t"),
            },
            &["bu1", "bu2"],
        );
        // The shape of Trustpilot's published example.
        let body = br#"{"events":[{"eventName":"service-review-created","version":"1","eventData":{"id":"53bffd360000640002975387","stars":5,"locationId":"43f51215-a1fc-4c60-b6dd-e4afb6d7b831"}}]}"#;
        let one = trustpilot_targets(&src, body, Some(&"bu2".to_owned()), &stats);
        assert_eq!(
            one,
            vec![(
                LocationId::new("bu2"),
                Some("53bffd360000640002975387".to_owned())
            )]
        );
        assert_eq!(trustpilot_targets(&src, body, None, &stats).len(), 2);
        assert!(trustpilot_targets(&src, body, Some(&"nope".to_owned()), &stats).is_empty());
        let other =
            br#"{"events":[{"eventName":"product-review-created","eventData":{"id":"x"}}]}"#;
        assert!(trustpilot_targets(&src, other, None, &stats).is_empty());
    }

    #[test]
    fn trustpilot_secret_in_basic_auth_or_query() {
        let mut headers = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("review-sync:s3cret");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().expect("header"),
        );
        let none = HashMap::new();
        assert!(trustpilot_secret_ok(&headers, &none, "s3cret"));
        assert!(!trustpilot_secret_ok(&headers, &none, "other"));
        let query = HashMap::from([("token".to_owned(), "s3cret".to_owned())]);
        assert!(trustpilot_secret_ok(&HeaderMap::new(), &query, "s3cret"));
        assert!(!trustpilot_secret_ok(&HeaderMap::new(), &none, "s3cret"));
        let wrong = HashMap::from([("token".to_owned(), "s3cre".to_owned())]);
        assert!(!trustpilot_secret_ok(&HeaderMap::new(), &wrong, "s3cret"));
    }
}
