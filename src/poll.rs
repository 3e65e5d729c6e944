//! A poll pass of one source: every location read from where it was left,
//! each page recorded in the ledger in one transaction as it arrives, the
//! platform's total compared with the ledger, and one poll-log row per
//! location. One failing location never aborts the pass; a revoked platform
//! credential stops only this source.
//!
//! Each location's read is bounded by pages and by time
//! ([`crate::config::PassBounds`]), and a whole pass can be stopped early
//! ([`PassStop`]: `sync --wait`, Ctrl-C). A read cut short either way keeps
//! the pages it recorded and leaves the high-water mark where it was.
//!
//! Which locations a pass reads (configured, and discovered on the platform)
//! and where their reviews go is `crate::locations`' business; what a full
//! reconciliation pass does differently is `crate::reconcile`'s.

use crate::config::SourceConfig;
use crate::domain::Rejected;
use crate::ledger::{
    IncomingReview, LedgerError, LedgerHandle, PageCounts, PageRecord, PollLog, PollState,
    QuarantineRecord,
};
use crate::locations::{self, DiscoveryReport, Target};
use crate::platforms::{FetchedPage, PlatformError, SourceClient};
pub use crate::reconcile::PassKind;
use crate::reconcile::{LocationTally, Settled, can_reconcile};
use crate::travtus::build_payload;
use chrono::Utc;
use futures_util::StreamExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Locations of one source polled at once. The source's rate limit is the
/// real bound; a little parallelism hides each request's latency.
const LOCATIONS_IN_PARALLEL: usize = 4;

/// The outcome of one location's poll.
#[derive(Debug, Clone)]
pub struct LocationReport {
    /// The location.
    pub location_id: String,
    /// What was recorded.
    pub counts: PageCounts,
    /// Pages read.
    pub pages: u64,
    /// The platform's total minus the ledger's count, when there is a total.
    pub gap: Option<i64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Reviews a reconciliation pass marked removed (0 on other passes).
    pub removed: u64,
    /// Reviews marked removed earlier that a reconciliation pass found again.
    pub returned: u64,
}

/// The outcome of a pass over a source.
#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    /// The source.
    pub source: String,
    /// One per location.
    pub locations: Vec<LocationReport>,
    /// Set when the source is stopped because its credential needs new consent.
    pub needs_consent: Option<String>,
    /// A full reconciliation pass (`false` also when one was asked for but
    /// the source's kind cannot list every review).
    pub reconcile: bool,
    /// What discovery found, for a source with `discover_accounts`.
    pub discovery: Option<DiscoveryReport>,
    /// Set when the pass was stopped ([`PassStop`]) before every location
    /// was read: why.
    pub stopped: Option<String>,
}

impl SourceReport {
    /// Sum of every location's counts.
    pub fn totals(&self) -> PageCounts {
        let mut total = PageCounts::default();
        for l in &self.locations {
            total += l.counts;
        }
        total
    }
    /// Locations that failed.
    pub fn failed(&self) -> usize {
        self.locations.iter().filter(|l| l.error.is_some()).count()
    }
    /// Reviews marked removed by this pass.
    pub fn removed(&self) -> u64 {
        self.locations.iter().map(|l| l.removed).sum()
    }
    /// Reviews that came back in this pass.
    pub fn returned(&self) -> u64 {
        self.locations.iter().map(|l| l.returned).sum()
    }
    /// Accounts whose locations could not be listed.
    pub fn discovery_failed(&self) -> usize {
        self.discovery.as_ref().map_or(0, |d| d.failures.len())
    }
    /// Discovered locations without a mapping (their reviews are held).
    pub fn unmapped(&self) -> usize {
        self.discovery.as_ref().map_or(0, |d| d.unmapped.len())
    }
}

/// Counts of the passes in progress, for `sync`'s progress line. One per
/// [`crate::app::App`], shared by its sources' passes; counts since start.
#[derive(Debug, Default)]
pub struct PassProgress {
    /// Locations a pass set out to read (configured and discovered).
    pub locations: AtomicU64,
    /// Of those, locations whose read ended (read, failed or stopped).
    pub locations_done: AtomicU64,
    /// Reviews recorded as new.
    pub new: AtomicU64,
    /// Reviews recorded as edited.
    pub edited: AtomicU64,
}

impl PassProgress {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What stops a pass early, beyond each location's own bounds: `sync`'s
/// `--wait` (a deadline) and Ctrl-C (a token). A location being read stops
/// between two requests (a request in flight is dropped: its page was not
/// recorded); locations not started yet are not read. Either way the pages
/// recorded stay and the high-water mark does not move.
#[derive(Debug, Clone, Default)]
pub struct PassStop {
    /// Stops the pass when cancelled.
    pub cancel: CancellationToken,
    /// Stops the pass at this instant; the duration is the limit it stands
    /// for (`sync --wait`), for messages.
    pub deadline: Option<(Instant, Duration)>,
}

impl PassStop {
    /// Never stops (the daemon's passes).
    pub fn never() -> PassStop {
        PassStop::default()
    }

    /// Why the pass is stopped, if it is.
    pub fn reason(&self) -> Option<String> {
        match self.deadline {
            Some((at, limit)) if Instant::now() >= at => Some(format!(
                "sync --wait {} ran out",
                humantime::format_duration(limit)
            )),
            _ if self.cancel.is_cancelled() => Some("interrupted".to_owned()),
            _ => None,
        }
    }

    /// Completes once the pass must stop.
    async fn stopped(&self) {
        let deadline = async {
            match self.deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.cancel.cancelled() => {}
            () = deadline => {}
        }
    }
}

/// The bounds of one location's read, by kind of read (also applied by
/// `sync --dry-run`, which reads the same pages).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBound {
    pub(crate) pages: u32,
    pub(crate) time: Duration,
    /// The config keys, for errors.
    pages_key: &'static str,
    time_key: &'static str,
    what: &'static str,
}

impl ReadBound {
    /// A full read (a first read, with no high-water mark, or a
    /// reconciliation) or an incremental one.
    pub(crate) fn of(bounds: &crate::config::PassBounds, full_read: bool) -> ReadBound {
        if full_read {
            ReadBound {
                pages: bounds.full_read_pages,
                time: bounds.full_read_time,
                pages_key: "max_pages_per_full_read",
                time_key: "max_full_read_time",
                what: "full read",
            }
        } else {
            ReadBound {
                pages: bounds.incremental_pages,
                time: bounds.incremental_time,
                pages_key: "max_pages_per_pass",
                time_key: "max_pass_time",
                what: "incremental pass",
            }
        }
    }

    /// Past the page bound: what it is.
    pub(crate) fn pages_message(&self) -> String {
        format!(
            "pass bound: more than {} pages in one {} ({} = {})",
            self.pages, self.what, self.pages_key, self.pages
        )
    }

    /// Past the time bound, with `pages` read: what it is.
    pub(crate) fn time_message(&self, pages: u64) -> String {
        format!(
            "pass bound: {} not finished after {} ({} = \"{}\"), {pages} page(s) read",
            self.what,
            humantime::format_duration(self.time),
            self.time_key,
            humantime::format_duration(self.time),
        )
    }

    fn pages_error(&self) -> PollError {
        PollError::Bounded(format!("{}{KEPT}", self.pages_message()))
    }

    fn time_error(&self, pages: u64) -> PollError {
        PollError::Bounded(format!("{}{KEPT}", self.time_message(pages)))
    }
}

/// A configured source with its client, ready to poll.
pub struct SourcePoller {
    config: SourceConfig,
    client: SourceClient,
    ledger: LedgerHandle,
    // Once the platform refuses the credential for good (invalid_grant),
    // further passes would only repeat the refusal: the source stays stopped
    // until a reload builds a new poller with new credentials.
    needs_consent: Mutex<Option<String>>,
}

impl SourcePoller {
    /// A poller for `config`.
    pub fn new(config: SourceConfig, ledger: LedgerHandle, http: reqwest::Client) -> SourcePoller {
        let client = SourceClient::new(&config, http);
        SourcePoller {
            config,
            client,
            ledger,
            needs_consent: Mutex::new(None),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        self.config.name.as_str()
    }

    /// The source's config.
    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// The platform client (for `check --online` and request counts).
    pub fn client(&self) -> &SourceClient {
        &self.client
    }

    /// Polls every location once (an incremental pass). Ledger failures are
    /// reported per location (the pages recorded before them stay).
    pub async fn poll_once(&self) -> SourceReport {
        self.pass(PassKind::Incremental).await
    }

    /// A full reconciliation pass: every review of every location read, and
    /// those that vanished from the platform marked removed. A source whose
    /// kind cannot list every review gets an incremental pass instead.
    pub async fn reconcile_once(&self) -> SourceReport {
        self.pass(PassKind::Reconcile).await
    }

    /// One pass of `kind` over the configured locations and, for a source
    /// that discovers, the locations the platform lists.
    pub async fn pass(&self, kind: PassKind) -> SourceReport {
        self.pass_with(kind, &PassStop::never(), &PassProgress::default())
            .await
    }

    /// [`SourcePoller::pass`] that `stop` can cut short, counting into
    /// `progress` as it goes (`sync`).
    pub async fn pass_with(
        &self,
        kind: PassKind,
        stop: &PassStop,
        progress: &PassProgress,
    ) -> SourceReport {
        let source = self.name().to_owned();
        if let Some(reason) = self.lock_consent().clone() {
            tracing::warn!(source, reason, "source stopped: it needs new consent");
            return SourceReport {
                source,
                needs_consent: Some(reason),
                ..SourceReport::default()
            };
        }
        let kind = if kind.is_reconcile() && !can_reconcile(&self.config) {
            tracing::info!(
                source,
                kind = self.config.kind.kind_name(),
                "this kind cannot list every review: an incremental pass instead of a reconciliation"
            );
            PassKind::Incremental
        } else {
            kind
        };
        let plan = tokio::select! {
            biased;
            plan = locations::plan(&self.config, &self.client) => plan,
            () = stop.stopped() => {
                let reason = stop.reason().unwrap_or_else(|| "stopped".to_owned());
                tracing::warn!(source, reason, "pass stopped before its locations were listed");
                return SourceReport {
                    source,
                    reconcile: kind.is_reconcile(),
                    stopped: Some(reason),
                    ..SourceReport::default()
                };
            }
        };
        if let Some(reason) = plan.needs_consent {
            tracing::error!(
                source,
                reason,
                "platform credential refused: this source stops until it is given new consent and the config is reloaded"
            );
            *self.lock_consent() = Some(reason.clone());
            return SourceReport {
                source,
                needs_consent: Some(reason),
                reconcile: kind.is_reconcile(),
                discovery: plan.discovery,
                ..SourceReport::default()
            };
        }
        // Futures collected first: mapping a borrowed iterator inside the
        // stream trips rustc's higher-ranked lifetime check once spawned.
        PassProgress::add(&progress.locations, plan.targets.len() as u64);
        let polls: Vec<_> = plan
            .targets
            .iter()
            .map(|target| self.poll_location(target, kind, stop, progress))
            .collect();
        let locations: Vec<LocationReport> = futures_util::stream::iter(polls)
            .buffer_unordered(LOCATIONS_IN_PARALLEL)
            .collect()
            .await;
        let stopped = stop.reason().filter(|_| {
            locations
                .iter()
                .any(|l| l.error.as_deref().is_some_and(is_stop_error))
        });
        let report = SourceReport {
            source,
            locations,
            needs_consent: self.lock_consent().clone(),
            reconcile: kind.is_reconcile(),
            discovery: plan.discovery,
            stopped,
        };
        let totals = report.totals();
        tracing::info!(
            source = %report.source,
            pass = kind.as_str(),
            locations = report.locations.len(),
            failed = report.failed(),
            new = totals.new,
            edited = totals.edited,
            unchanged = totals.unchanged,
            quarantined = totals.quarantined,
            removed = report.removed(),
            returned = report.returned(),
            unmapped = report.unmapped(),
            discovery_failed = report.discovery_failed(),
            "poll pass finished"
        );
        report
    }

    #[tracing::instrument(skip_all, fields(source = %self.config.name, location = %target.id, pass = kind.as_str()))]
    async fn poll_location(
        &self,
        target: &Target,
        kind: PassKind,
        stop: &PassStop,
        progress: &PassProgress,
    ) -> LocationReport {
        let report = self
            .poll_location_counted(target, kind, stop, progress)
            .await;
        PassProgress::add(&progress.locations_done, 1);
        report
    }

    async fn poll_location_counted(
        &self,
        target: &Target,
        kind: PassKind,
        stop: &PassStop,
        progress: &PassProgress,
    ) -> LocationReport {
        // A location the stop came before is not read at all: no request,
        // no poll-log row (nothing happened to it).
        if let Some(reason) = stop.reason() {
            return LocationReport {
                location_id: target.id.as_str().to_owned(),
                counts: PageCounts::default(),
                pages: 0,
                gap: None,
                error: Some(format!("{STOPPED_PREFIX}{NOT_READ}{reason}")),
                removed: 0,
                returned: 0,
            };
        }
        let started_at = Utc::now();
        let requests_before = self.client.requests();
        let mut log = PollLog {
            source_name: self.name().to_owned(),
            location_id: target.id.as_str().to_owned(),
            started_at,
            ended_at: started_at,
            reconcile: kind.is_reconcile(),
            ..PollLog::default()
        };
        let result = self
            .read_pages(target, kind, stop, progress, &mut log)
            .await;
        let mut settled = Settled::default();
        let new_state = match result {
            Ok((state, done)) => {
                settled = done;
                Some(state)
            }
            Err(e) => {
                if let PollError::Platform(PlatformError::NeedsConsent(reason)) = &e {
                    tracing::error!(
                        source = %self.config.name,
                        reason,
                        "platform credential refused: this source stops until it is given new consent and the config is reloaded"
                    );
                    *self.lock_consent() = Some(reason.clone());
                }
                tracing::warn!(error = %e, error_type = e.error_type(), "location poll failed");
                crate::metrics::poll_failed(self.name(), e.error_type());
                log.error = Some(e.to_string());
                None
            }
        };
        if let Some(total) = log.reported_total {
            let (s, l) = (log.source_name.clone(), log.location_id.clone());
            match self
                .ledger
                .run(move |x| x.location_review_count(&s, &l))
                .await
            {
                Ok(held) => {
                    let gap = i64::try_from(total).unwrap_or(i64::MAX) - held as i64;
                    log.gap = Some(gap);
                    if gap > 0 {
                        tracing::warn!(
                            reported = total,
                            in_ledger = held,
                            gap,
                            "platform reports more reviews than the ledger holds"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot count the location's reviews"),
            }
        }
        log.ended_at = Utc::now().max(log.started_at);
        log.requests = self.client.requests().saturating_sub(requests_before);
        if kind.is_reconcile() && log.error.is_none() {
            tracing::info!(
                removed = settled.removed,
                returned = settled.returned,
                "location reconciled"
            );
        }
        crate::metrics::location_polled(self.name(), &log.counts, log.error.is_some());
        let report = LocationReport {
            location_id: log.location_id.clone(),
            counts: log.counts,
            pages: log.pages,
            gap: log.gap,
            error: log.error.clone(),
            removed: settled.removed,
            returned: settled.returned,
        };
        if let Err(e) = self
            .ledger
            .run(move |l| l.finish_poll(&log, new_state.as_ref()))
            .await
        {
            crate::metrics::ledger_error(&e);
            tracing::error!(error = %e, "cannot record the poll");
        }
        report
    }

    /// Reads every page, recording each; returns the new polling state and,
    /// for a reconciliation pass, what marking the vanished reviews changed
    /// (only reached when every page was read and recorded). A read past
    /// its bound, or stopped, ends with an error after recording what it
    /// read.
    async fn read_pages(
        &self,
        target: &Target,
        kind: PassKind,
        stop: &PassStop,
        progress: &PassProgress,
        log: &mut PollLog,
    ) -> Result<(PollState, Settled), PollError> {
        let (s, l) = (log.source_name.clone(), log.location_id.clone());
        let stored = self.ledger.run(move |x| x.poll_state(&s, &l)).await?;
        let full_read = kind.is_reconcile() || stored.high_water.is_none();
        let bound = ReadBound::of(&self.config.pass_bounds, full_read);
        let bound_at = Instant::now() + bound.time;
        let tally = match kind {
            PassKind::Reconcile => Some(
                LocationTally::open(
                    &self.ledger,
                    &log.source_name,
                    &log.location_id,
                    log.started_at,
                )
                .await?,
            ),
            PassKind::Incremental => None,
        };
        let mut poll = self
            .client
            .start_poll(&target.id, kind.start_state(&stored));
        loop {
            if log.pages >= u64::from(bound.pages) && !poll.is_done() {
                return Err(bound.pages_error());
            }
            // Only the request is cut short: a page read is always recorded.
            let next = tokio::select! {
                biased;
                () = stop.stopped() => {
                    let reason = stop.reason().unwrap_or_else(|| "stopped".to_owned());
                    return Err(PollError::Stopped(format!(
                        "{STOPPED_PREFIX}{reason} after {} page(s){KEPT}",
                        log.pages
                    )));
                }
                () = tokio::time::sleep_until(bound_at) => return Err(bound.time_error(log.pages)),
                next = poll.next_page() => next?,
            };
            let Some(page) = next else {
                break;
            };
            log.pages += 1;
            log.fetched += page.reviews.len() as u64;
            if page.reported_total.is_some() {
                log.reported_total = page.reported_total;
            }
            let record = self.page_record(target, page);
            let sightings = kind.sightings();
            // Never before the pass began, even if the wall clock went back
            // meanwhile: a reconciliation marks removed what was last seen
            // before its start, which would be everything seen after a step.
            let seen_at = Utc::now().max(log.started_at);
            let counts = self
                .ledger
                .run(move |x| x.record_page_as(&record, seen_at, sightings))
                .await?;
            // Delivery starts with the first page, not after the whole pass.
            if counts.new + counts.edited > 0 {
                self.ledger.notify_due();
                PassProgress::add(&progress.new, counts.new);
                PassProgress::add(&progress.edited, counts.edited);
            }
            log.counts += counts;
        }
        let state = kind.end_state(&stored, poll.finish());
        let settled = match tally {
            Some(tally) => tally.settle(&self.ledger, log.counts.new).await?,
            None => Settled::default(),
        };
        log.removed = settled.removed;
        Ok((state, settled))
    }

    fn page_record(&self, target: &Target, page: FetchedPage) -> PageRecord {
        let platform_of_source = self.default_platform();
        let reviews = page
            .reviews
            .iter()
            .map(|r| {
                let payload = build_payload(r, target.group.as_ref());
                IncomingReview {
                    platform: r.platform.as_str().to_owned(),
                    review_id: r.review_id.as_str().to_owned(),
                    payload: payload.json,
                    content_hash: payload.content_hash,
                    source_updated_at: Some(r.last_changed()),
                    notes: (!r.notes.is_empty()).then(|| notes_json(&r.notes)),
                }
            })
            .collect();
        let quarantined = page
            .rejected
            .into_iter()
            .map(
                |Rejected {
                     reference,
                     reason,
                     raw,
                 }| QuarantineRecord {
                    platform: platform_of_source.clone(),
                    reference,
                    reason,
                    raw,
                },
            )
            .collect();
        PageRecord {
            source_name: self.name().to_owned(),
            location_id: target.id.as_str().to_owned(),
            group: target.group.clone(),
            hold_reason: target.hold_reason.clone(),
            reviews,
            quarantined,
        }
    }

    /// The platform its reviews are recorded under (a file source's
    /// `platform`, or the kind's), also for its quarantined records.
    pub fn platform(&self) -> String {
        self.default_platform()
    }

    /// The platform name recorded for quarantined records of this source.
    fn default_platform(&self) -> String {
        match &self.config.kind {
            crate::config::SourceKind::GoogleBusinessProfile(_)
            | crate::config::SourceKind::GooglePlaces(_) => "google".to_owned(),
            crate::config::SourceKind::Yelp(_) => "yelp".to_owned(),
            crate::config::SourceKind::Facebook(_) => "facebook".to_owned(),
            crate::config::SourceKind::Trustpilot(_) => "trustpilot".to_owned(),
            crate::config::SourceKind::File(f) => {
                f.platform.clone().unwrap_or_else(|| "file".to_owned())
            }
        }
    }

    fn lock_consent(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.needs_consent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The ledger's `notes` text for a review's notes.
fn notes_json(notes: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::Value::Object(
        notes
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect(),
    )
    .to_string()
}

/// The end of the error of a read cut short: what became of it.
const KEPT: &str = "; the pages read are recorded, the high-water mark is unchanged";

/// How the error of a location that a [`PassStop`] cut short begins.
const STOPPED_PREFIX: &str = "stopped: ";

/// Whether a location's error says a [`PassStop`] cut it short (rather than
/// the location failing).
pub fn is_stop_error(error: &str) -> bool {
    error.starts_with(STOPPED_PREFIX)
}

/// Whether a location's error says a [`PassStop`] came before it was read
/// at all.
pub fn was_not_read(error: &str) -> bool {
    error
        .strip_prefix(STOPPED_PREFIX)
        .is_some_and(|rest| rest.starts_with(NOT_READ))
}

/// After [`STOPPED_PREFIX`]: a location the stop came before.
const NOT_READ: &str = "not read: ";

/// Why a location's poll stopped.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Past its page or time bound ([`crate::config::PassBounds`]).
    #[error("{0}")]
    Bounded(String),
    /// Cut short by the pass's [`PassStop`].
    #[error("{0}")]
    Stopped(String),
}

impl PollError {
    fn error_type(&self) -> &'static str {
        match self {
            PollError::Platform(p) => p.error_type(),
            PollError::Ledger(_) => "ledger",
            PollError::Bounded(_) => "pass_bound",
            PollError::Stopped(_) => "stopped",
        }
    }
}
