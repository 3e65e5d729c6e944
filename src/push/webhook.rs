//! The webhook receiver: `GET`/`POST /webhooks/{source}` for the platforms
//! that push by webhook (Facebook Page webhooks, Trustpilot's), served
//! behind the operator's TLS reverse proxy. It checks who is calling, turns
//! a delivery into hints on the [`HintQueue`] and answers 200 at once; the
//! read happens afterwards, in whatever drains the queue. It never reads a
//! platform itself.
//!
//! What a platform's deliveries look like (its subscription handshake, how a
//! delivery proves where it comes from, which locations a body names) is
//! the platform's own ([`WebhookKind`], implemented in
//! `src/platforms/<name>/webhook.rs`); this module is the same for all.
//!
//! For every platform: bodies over the cap answer 413 without being read
//! further; an unknown source answers 404; a delivery that does not prove
//! itself answers 401 before its body is looked at; a verified body that
//! does not parse hints every location of its source (the read will tell).
//! Hints name only configured locations: a location that is not configured
//! is counted and ignored.

use super::hints::{Hint, HintChannel, HintQueue, PushOutcome};
use crate::domain::{LocationId, SourceName};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// The default body cap. A Page webhook batches at most a few changes; a
/// Trustpilot delivery is one review's text.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What a `GET` to a platform's webhook is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// The subscription is confirmed: 200 with this text.
    Confirmed(String),
    /// Refused, with the status and a short text.
    Refused(StatusCode, &'static str),
}

/// How a delivery that does not prove itself is refused: 401 with a short
/// text, and the `WWW-Authenticate` challenge when the platform uses one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The answer's text.
    pub text: &'static str,
    /// `WWW-Authenticate`, when the platform authenticates with HTTP auth.
    pub challenge: Option<&'static str>,
}

/// The locations (each with a review id, when the delivery names one) a
/// delivery asks to read.
pub type Targets = Vec<(LocationId, Option<String>)>;

/// One platform's webhook deliveries: implemented in the platform's folder
/// (`src/platforms/<name>/webhook.rs`) with the source's secrets.
pub trait WebhookKind: std::fmt::Debug + Send + Sync {
    /// The channel its hints come by (a platform's kind: "facebook").
    fn channel(&self) -> HintChannel;

    /// Answers a `GET`: a subscription handshake, or `None` when the
    /// platform has none (405: POST only). Counted in `stats`.
    fn handshake(&self, query: &HashMap<String, String>, stats: &WebhookStats)
    -> Option<Handshake>;

    /// Whether a delivery proves it comes from the platform, before its
    /// body is read for anything else.
    fn verify(
        &self,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<(), Refusal>;

    /// The configured `locations` a verified delivery names; every one when
    /// its body does not parse (counted in `stats`).
    fn targets(
        &self,
        body: &[u8],
        query: &HashMap<String, String>,
        locations: &[LocationId],
        stats: &WebhookStats,
    ) -> Targets;
}

/// One source that receives webhooks.
#[derive(Clone, Debug)]
pub struct WebhookSource {
    /// Its configured name (the `{source}` of the path).
    pub name: SourceName,
    /// How its deliveries look and prove where they come from.
    pub auth: Arc<dyn WebhookKind>,
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

    /// Adds one to `counter`.
    pub fn count(counter: &AtomicU64) {
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

/// Whether two secrets are equal, compared in constant time.
pub fn same(a: &str, b: &str) -> bool {
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
    match source.auth.handshake(&query, &receiver.stats) {
        None => plain(StatusCode::METHOD_NOT_ALLOWED, "POST only\n"),
        Some(Handshake::Refused(status, text)) => plain(status, text),
        Some(Handshake::Confirmed(challenge)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            challenge,
        )
            .into_response(),
    }
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
    if let Err(refusal) = source.auth.verify(&headers, &query, &body) {
        WebhookStats::count(&stats.unauthorized);
        return match refusal.challenge {
            Some(challenge) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
                refusal.text,
            )
                .into_response(),
            None => plain(StatusCode::UNAUTHORIZED, refusal.text),
        };
    }
    let channel = source.auth.channel();
    let targets = source.auth.targets(&body, &query, &source.locations, stats);
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

/// The configured location of `locations` whose id is `id`.
pub fn configured<'a>(locations: &'a [LocationId], id: &str) -> Option<&'a LocationId> {
    locations.iter().find(|l| l.as_str() == id)
}

/// Every location of `locations`, with no review named.
pub fn every_location(locations: &[LocationId]) -> Targets {
    locations.iter().map(|l| (l.clone(), None)).collect()
}
