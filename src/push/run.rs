//! Push in the daemon: one generation's push tasks, spawned by
//! `crate::daemon` beside the sources' cron tasks, on the same cancel token
//! and task tracker.
//!
//! - A Pub/Sub pull loop per source with `push_subscription`: each message
//!   naming a configured (or discoverable) location of the source becomes a
//!   hint carrying its ack id; anything else is acknowledged at once (it
//!   never gets better). The ack ids held are leased: extended to
//!   [`LEASE`] when pulled and every [`LEASE_RENEW_EVERY`] while held.
//! - The webhook receiver on `[push] listen` (`super::webhook`), with a
//!   watch on sources silent longer than `webhook_silence_alert`.
//! - [`READERS`] readers draining the [`HintQueue`]: each read takes the
//!   source's pass lock (the one its scheduled passes hold), reads the one
//!   location through `SourcePoller::read_location` (the same plan, budget,
//!   cursor and ledger as a scheduled pass), marks the reviews it found
//!   first as first seen by push, and only then settles its ticket: its
//!   ack ids are acknowledged after the commit, or handed back for a later
//!   redelivery when the read failed. A stop drops unfinished tickets, so
//!   their messages come again after the restart.
//!
//! A broken channel (403, 404, repeated failures, a silent webhook) is
//! logged once when it breaks and once when it recovers, shown in
//! `/healthz`'s detail ([`PushStatus`]) and in `review_sync_push_channel_up`;
//! the scheduled polls are not touched.

use super::hints::{
    Hint, HintChannel, HintQueue, HintQueueLimits, PushOutcome, ReadOutcome, ReadTicket,
};
use super::metrics as m;
use super::notification;
use super::pubsub::{PubSubClient, PubSubError, ReceivedMessage};
use super::source::SourcePush;
use super::webhook::{self, WebhookSource, WebhookStats};
use crate::app::App;
use crate::domain::{LocationId, SourceName};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long Pub/Sub is asked to keep a pulled message ours.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often the lease of held messages is extended (well inside [`LEASE`]).
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(20);
/// When a read failed, how long before Pub/Sub delivers its messages again.
pub const RETRY_DELAY: Duration = Duration::from_secs(60);
/// Locations read at once on behalf of hints (each source's own rate limit
/// still paces its requests).
pub const READERS: usize = 4;
/// Messages asked for per pull.
const PULL_MAX: u32 = 100;
/// A pull that came back empty sooner than this is followed by a pause,
/// so a server that does not hold pulls open is not asked in a tight loop.
const EMPTY_PULL_PAUSE: Duration = Duration::from_millis(500);
/// The wait before asking again after a channel broke (403, 404).
const BROKEN_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between tries after transient failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Transient failures in a row after which the channel counts as broken.
const TRANSIENT_FAILURES_BROKEN: u32 = 3;
/// Bounds one Pub/Sub request (a pull may be held open by the server for
/// a while when there is nothing to deliver).
const PUBSUB_TIMEOUT: Duration = Duration::from_secs(90);

/// The state of each push channel, for `/healthz` and logs.
#[derive(Debug, Default)]
pub struct PushStatus {
    broken: Mutex<BTreeMap<String, String>>,
}

impl PushStatus {
    /// `channel` (a source's name, or `webhooks` for the receiver) works.
    /// Logs the recovery of a broken one.
    fn up(&self, channel: &str) {
        let was = self.lock().remove(channel);
        if let Some(reason) = was {
            tracing::info!(source = channel, previous = %reason, "push channel works again");
        }
        m::channel(channel, true);
    }

    /// `channel` is broken for `reason`: logged when it breaks (not at each
    /// retry), shown in `/healthz`.
    fn broken(&self, channel: &str, reason: String) {
        let first = self
            .lock()
            .insert(channel.to_owned(), reason.clone())
            .is_none();
        if first {
            tracing::error!(
                source = channel,
                reason = %reason,
                "push channel broken: scheduled polls carry on; new reviews wait for the next poll"
            );
        }
        m::channel(channel, false);
    }

    /// The `/healthz` detail: every broken channel and why; `None` when all work.
    pub fn detail(&self) -> Option<String> {
        let broken = self.lock();
        if broken.is_empty() {
            return None;
        }
        let list: Vec<String> = broken.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        Some(format!(
            "push broken (polling carries on): {}",
            list.join("; ")
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.broken.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One source's Pub/Sub subscription.
struct PubSubSource {
    name: SourceName,
    client: PubSubClient,
    /// Its configured locations.
    locations: Vec<LocationId>,
    /// Whether it discovers its locations (a notification's location is
    /// then read even when not configured).
    discovers: bool,
    /// Ack ids of messages held by the hint queue or a running read.
    held: Mutex<HashSet<String>>,
}

impl PubSubSource {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the tasks share.
struct Shared {
    app: Arc<App>,
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    queue: HintQueue,
    status: Arc<PushStatus>,
    pubsub: HashMap<String, Arc<PubSubSource>>,
}

/// The HTTP client of push's Pub/Sub calls: it follows no redirect at all
/// (Pub/Sub answers are never redirects, and a token never follows one).
pub(crate) fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("review-sync/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
}

/// Spawns the push tasks of a generation. `locks` holds each source's pass
/// lock (by name), the one its scheduled passes take. `None` when no source
/// has push configured (nothing is spawned).
pub fn start(
    app: &Arc<App>,
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> Option<Arc<PushStatus>> {
    let http = match http_client() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "push is off: no HTTP client");
            return None;
        }
    };
    let status = Arc::new(PushStatus::default());
    let mut pubsub = HashMap::new();
    let mut hooks = Vec::new();
    for poller in &app.pollers {
        let source = poller.config();
        let locations: Vec<LocationId> = source.locations.iter().map(|l| l.id.clone()).collect();
        match source.kind.push() {
            None => {}
            Some(SourcePush::PubSub(settings)) => {
                let tokens = match settings.token_cache(http.clone()) {
                    Ok(tokens) => Arc::new(tokens),
                    Err(e) => {
                        status.broken(source.name.as_str(), format!("push_credentials: {e}"));
                        continue;
                    }
                };
                let client = PubSubClient::new(
                    http.clone(),
                    settings.base_url.clone(),
                    tokens,
                    settings.subscription.clone(),
                    PUBSUB_TIMEOUT,
                );
                pubsub.insert(
                    source.name.as_str().to_owned(),
                    Arc::new(PubSubSource {
                        name: source.name.clone(),
                        client,
                        locations,
                        discovers: source.kind.discovers(),
                        held: Mutex::default(),
                    }),
                );
            }
            Some(SourcePush::Webhook(auth)) => hooks.push(WebhookSource {
                name: source.name.clone(),
                auth,
                locations,
            }),
        }
    }
    if pubsub.is_empty() && hooks.is_empty() {
        return None;
    }
    let mut names: Vec<String> = pubsub.keys().cloned().collect();
    names.extend(hooks.iter().map(|h| h.name.as_str().to_owned()));
    m::register(&names);
    let shared = Arc::new(Shared {
        app: Arc::clone(app),
        locks,
        queue: HintQueue::new(HintQueueLimits::default()),
        status: Arc::clone(&status),
        pubsub,
    });
    for source in shared.pubsub.values() {
        tracing::info!(source = %source.name, subscription = %source.client.subscription(), "push: reading the Pub/Sub subscription");
        tracker.spawn(pull_loop(
            Arc::clone(&shared),
            Arc::clone(source),
            cancel.clone(),
        ));
        tracker.spawn(lease_keeper(Arc::clone(source), cancel.clone()));
    }
    if !hooks.is_empty() {
        start_webhooks(&shared, hooks, cancel, tracker);
    }
    for _ in 0..READERS {
        tracker.spawn(reader(Arc::clone(&shared), cancel.clone()));
    }
    Some(status)
}

/// The webhook receiver, and its watch (metrics, silence).
fn start_webhooks(
    shared: &Arc<Shared>,
    hooks: Vec<WebhookSource>,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) {
    let Some(push) = shared.app.config.push.clone() else {
        // Config validation refuses webhook secrets without `[push] listen`.
        return;
    };
    let stats = Arc::new(WebhookStats::default());
    let names: Vec<SourceName> = hooks.iter().map(|h| h.name.clone()).collect();
    let router = webhook::router(
        hooks,
        shared.queue.clone(),
        Arc::clone(&stats),
        webhook::DEFAULT_BODY_LIMIT,
    );
    let (status, cancel_server) = (Arc::clone(&shared.status), cancel.clone());
    tracker.spawn(async move {
        let listener = match tokio::net::TcpListener::bind(push.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                m::channel_error("webhooks", "listen");
                status.broken(
                    "webhooks",
                    format!("[push] listen {}: cannot listen: {e}", push.listen),
                );
                return;
            }
        };
        let bound = listener.local_addr().map_or(push.listen, |a| a);
        tracing::info!(listen = %bound, "push: webhook receiver listening on /webhooks/{{source}}");
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(cancel_server.cancelled_owned())
            .await;
        if let Err(e) = served {
            status.broken("webhooks", format!("webhook receiver stopped: {e}"));
        }
    });
    let (status, cancel) = (Arc::clone(&shared.status), cancel.clone());
    tracker.spawn(async move {
        let started = SystemTime::now();
        loop {
            webhook_metrics(&stats);
            if let Some(limit) = push.webhook_silence_alert {
                for name in &names {
                    let last = stats.last_verified(name).unwrap_or(started);
                    let silent = SystemTime::now().duration_since(last).unwrap_or_default();
                    if silent > limit {
                        status.broken(
                            name.as_str(),
                            format!(
                                "no verified webhook delivery for {}s (webhook_silence_alert {}s)",
                                silent.as_secs(),
                                limit.as_secs()
                            ),
                        );
                    } else {
                        status.up(name.as_str());
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}

fn webhook_metrics(stats: &WebhookStats) {
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    m::webhook_totals(&[
        ("verified", n(&stats.verified)),
        ("unauthorized", n(&stats.unauthorized)),
        ("too_large", n(&stats.too_large)),
        ("unknown_source", n(&stats.unknown_source)),
        ("handshake_ok", n(&stats.handshakes_ok)),
        ("handshake_refused", n(&stats.handshakes_refused)),
    ]);
    let hints = [
        ("queued", n(&stats.hints_queued)),
        ("coalesced", n(&stats.hints_coalesced)),
        ("refused", n(&stats.hints_refused)),
        ("ignored", n(&stats.unknown_locations)),
    ];
    for (outcome, total) in hints {
        metrics::counter!(m::HINTS, "channel" => "webhook", "outcome" => outcome).absolute(total);
    }
}

/// Pulls one subscription until `cancel`.
async fn pull_loop(shared: Arc<Shared>, source: Arc<PubSubSource>, cancel: CancellationToken) {
    let name = source.name.as_str().to_owned();
    let mut failures: u32 = 0;
    loop {
        let asked = tokio::time::Instant::now();
        let pulled = tokio::select! {
            _ = cancel.cancelled() => return,
            pulled = source.client.pull(PULL_MAX) => pulled,
        };
        let wait = match pulled {
            Ok(messages) => {
                failures = 0;
                shared.status.up(&name);
                let empty = messages.is_empty();
                take(&shared, &source, messages).await;
                (empty && asked.elapsed() < EMPTY_PULL_PAUSE).then_some(EMPTY_PULL_PAUSE)
            }
            Err(e) => Some(pull_failed(&shared, &name, &e, &mut failures)),
        };
        if let Some(wait) = wait {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Logs and counts a failed pull; how long to wait before the next.
fn pull_failed(shared: &Shared, name: &str, e: &PubSubError, failures: &mut u32) -> Duration {
    m::channel_error(name, e.kind());
    *failures += 1;
    if e.channel_broken() {
        shared.status.broken(name, e.to_string());
        return BROKEN_RETRY;
    }
    if *failures >= TRANSIENT_FAILURES_BROKEN {
        shared
            .status
            .broken(name, format!("{} failures in a row, last: {e}", *failures));
    } else {
        tracing::warn!(source = name, error = %e, "Pub/Sub pull failed; trying again");
    }
    let exponent = (*failures).min(6);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// Turns pulled messages into hints: leases the ones kept, acknowledges
/// the rest at once.
async fn take(shared: &Shared, source: &PubSubSource, messages: Vec<ReceivedMessage>) {
    let mut hints = Vec::new();
    let mut done = Vec::new();
    for message in messages {
        match target(source, &message) {
            Some((location, review)) => {
                let mut hint = Hint::new(source.name.clone(), location, HintChannel::PubSub)
                    .with_ack_id(message.ack_id);
                hint.review = review;
                hints.push(hint);
            }
            None => {
                m::hint("pubsub", "ignored");
                done.push(message.ack_id);
            }
        }
    }
    if !done.is_empty()
        && let Err(e) = source.client.acknowledge(&done).await
    {
        tracing::warn!(source = %source.name, error = %e, "Pub/Sub: ignored messages not acknowledged; they come again");
    }
    if hints.is_empty() {
        return;
    }
    // Ours for LEASE before anything can settle them: the subscription's
    // own deadline may be as short as 10 s.
    let ids: Vec<String> = hints.iter().filter_map(|h| h.ack_id.clone()).collect();
    source.held().extend(ids.iter().cloned());
    if let Err(e) = source.client.modify_ack_deadline(&ids, LEASE).await {
        tracing::warn!(source = %source.name, error = %e, "Pub/Sub: lease not extended; messages may come twice");
    }
    for hint in hints {
        let (outcome, unkept) = match shared.queue.push(hint) {
            PushOutcome::Queued => ("queued", None),
            PushOutcome::Coalesced => ("coalesced", None),
            PushOutcome::AckNotKept { ack_id } => ("coalesced", Some(ack_id)),
            PushOutcome::Refused { ack_id } => ("refused", ack_id),
        };
        m::hint("pubsub", outcome);
        if let Some(ack_id) = unkept {
            // Left to expire: Pub/Sub delivers it again later.
            source.held().remove(&ack_id);
        }
    }
}

/// The configured location (and the review) a message is about; `None`
/// for anything that asks for no read.
fn target(
    source: &PubSubSource,
    message: &ReceivedMessage,
) -> Option<(LocationId, Option<String>)> {
    let data = message.data.as_deref()?;
    let parsed = match notification::parse(data) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(source = %source.name, message_id = %message.message_id, error = %e, "Pub/Sub message is not a Business Profile notification; acknowledged");
            return None;
        }
    };
    if !parsed.wants_read() {
        tracing::debug!(source = %source.name, kind = ?parsed.kind, "notification needs no read");
        return None;
    }
    let notified = parsed.location.as_ref()?;
    let location = match notified.resolve(&source.locations) {
        Some(location) => location.clone(),
        None => match (&notified.account, source.discovers) {
            (Some(account), true) => LocationId::new(format!(
                "accounts/{account}/locations/{}",
                notified.location
            )),
            _ => {
                tracing::info!(source = %source.name, location = %notified.location, "notification about a location the source does not read; acknowledged");
                return None;
            }
        },
    };
    Some((location, parsed.review))
}

/// Extends the lease of every held message, every [`LEASE_RENEW_EVERY`].
async fn lease_keeper(source: Arc<PubSubSource>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(LEASE_RENEW_EVERY) => {}
        }
        let ids: Vec<String> = source.held().iter().cloned().collect();
        if ids.is_empty() {
            continue;
        }
        if let Err(e) = source.client.modify_ack_deadline(&ids, LEASE).await {
            tracing::warn!(source = %source.name, error = %e, "Pub/Sub: lease not extended; messages may come twice");
        }
    }
}

/// Reads locations as the queue hands them out, until `cancel`.
async fn reader(shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let ticket = tokio::select! {
            _ = cancel.cancelled() => return,
            ticket = shared.queue.next() => ticket,
        };
        tokio::select! {
            // Dropped unfinished: its messages come again.
            _ = cancel.cancelled() => return,
            _ = read(&shared, ticket, &cancel) => {}
        }
    }
}

/// One read of a ticket's location, settled after its commit.
async fn read(shared: &Shared, ticket: ReadTicket, cancel: &CancellationToken) {
    let source = ticket.source.as_str().to_owned();
    let Some(poller) = shared.app.pollers.iter().find(|p| p.name() == source) else {
        settle(shared, ticket, ReadOutcome::Committed).await;
        return;
    };
    let Some(lock) = shared.locks.get(&source) else {
        return;
    };
    // The source's pass lock: a scheduled pass and this read never overlap.
    let guard = Arc::clone(lock).lock_owned().await;
    if let Err(e) = shared.app.ledger.verify().await {
        tracing::warn!(source, error = %e, "push read skipped: the ledger takes no work");
        drop(guard);
        settle(shared, ticket, ReadOutcome::Failed).await;
        return;
    }
    let started = chrono::Utc::now();
    // On a shared ledger the source's pass lease too: no other daemon reads
    // the source meanwhile (one holding it has its messages come again).
    let lease = crate::cluster::pass_lease(&source);
    let ran = crate::cluster::exclusive(
        &shared.app.ledger,
        &lease,
        shared.app.config.ledger.lease,
        None,
        cancel,
        poller.read_location(&ticket.location),
    )
    .await;
    let report = match ran {
        crate::cluster::Leased::Done(report) => report,
        not_run => {
            tracing::info!(source, location = %ticket.location, outcome = ?not_run, "push read not run here: its messages come again");
            drop(guard);
            settle(shared, ticket, ReadOutcome::Failed).await;
            return;
        }
    };
    shared.app.deliverer.wake();
    let failed = report
        .needs_consent
        .clone()
        .or_else(|| report.stopped.clone())
        .or_else(|| report.locations.iter().find_map(|l| l.error.clone()));
    let counts = report.totals();
    if failed.is_none() && counts.new > 0 {
        let (location, hint_at) = (ticket.location.as_str().to_owned(), ticket.first_hint_at);
        let src = source.clone();
        let marked = shared
            .app
            .ledger
            .run(move |l| {
                l.mark_first_seen_by_push(&src, &location, started, chrono::DateTime::from(hint_at))
            })
            .await;
        match marked {
            Ok(marked) => m::first_seen_by_push(&source, &marked, hint_at),
            Err(e) => {
                crate::metrics::ledger_error(&e);
                tracing::warn!(source, error = %e, "push read: first_seen_via not recorded");
            }
        }
    }
    drop(guard);
    let waited = SystemTime::now()
        .duration_since(ticket.first_hint_at)
        .unwrap_or_default();
    match &failed {
        None => tracing::info!(
            source,
            location = %ticket.location,
            channel = ticket.channel.as_str(),
            hints = ticket.hints,
            new = counts.new,
            edited = counts.edited,
            since_hint_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            "push read committed"
        ),
        Some(error) => tracing::warn!(
            source,
            location = %ticket.location,
            channel = ticket.channel.as_str(),
            error = %error,
            "push read failed; its notifications come again later, and the scheduled polls carry on"
        ),
    }
    m::read(&source, failed.is_none());
    let outcome = if failed.is_none() {
        ReadOutcome::Committed
    } else {
        ReadOutcome::Failed
    };
    settle(shared, ticket, outcome).await;
}

/// Finishes a ticket and tells Pub/Sub.
async fn settle(shared: &Shared, ticket: ReadTicket, outcome: ReadOutcome) {
    let source = shared.pubsub.get(ticket.source.as_str()).cloned();
    let settlement = ticket.finish(outcome);
    let Some(source) = source else {
        return;
    };
    {
        let mut held = source.held();
        for id in settlement.acknowledge.iter().chain(&settlement.redeliver) {
            held.remove(id);
        }
    }
    if !settlement.acknowledge.is_empty()
        && let Err(e) = source.client.acknowledge(&settlement.acknowledge).await
    {
        // The read is committed: a redelivery costs one read that finds nothing new.
        tracing::warn!(source = %source.name, error = %e, "Pub/Sub: acknowledge failed; the messages come again");
    }
    if !settlement.redeliver.is_empty()
        && let Err(e) = source
            .client
            .modify_ack_deadline(&settlement.redeliver, RETRY_DELAY)
            .await
    {
        tracing::warn!(source = %source.name, error = %e, "Pub/Sub: redelivery delay not set");
    }
}
