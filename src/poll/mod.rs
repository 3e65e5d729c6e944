//! A poll pass of one source: every location read from where it was left,
//! each page recorded in the ledger in one transaction as it arrives, the
//! platform's total compared with the ledger, and one poll-log row per
//! location. One failing location never aborts the pass; a revoked platform
//! credential stops only this source.
//!
//! How one location is read, whatever the platform (paging, the incremental
//! stop, the cursor, the bounds of a read), is [`location`]'s business, and
//! so is a batch read of many locations at once; which locations an
//! incremental pass reads by batch, and a batch read's bookkeeping (a
//! poll-log row per location, refused locations read on their own), is
//! `batch`'s;
//! where the pages go is a [`sink::PassSink`]'s: the ledger, or nowhere for
//! `sync --dry-run` (`crate::dry_run`), which is the same pass. Which
//! locations a pass reads (configured, and discovered on the platform) and
//! where their reviews go is `crate::locations`' business; what a full
//! reconciliation pass does differently is `crate::reconcile`'s.

mod batch;
pub mod location;
pub(crate) mod sink;

use crate::config::SourceConfig;
use crate::domain::{LocationId, Rejected};
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
use futures_util::future::Either;
pub use location::{Cursor, LocationRead, PassStop};
use location::{NOT_READ, ReadError, STOPPED_PREFIX};
use sink::{LedgerSink, PassSink};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A configured source with its client, ready to poll.
pub struct SourcePoller {
    config: SourceConfig,
    client: Box<dyn SourceClient>,
    ledger: LedgerSink,
    // Once the platform refuses the credential for good (invalid_grant),
    // further passes would only repeat the refusal: the source stays stopped
    // until a reload builds a new poller with new credentials.
    needs_consent: Mutex<Option<String>>,
}

impl SourcePoller {
    /// A poller for `config`, taking its requests from `quotas`.
    pub fn new(
        config: SourceConfig,
        ledger: LedgerHandle,
        http: reqwest::Client,
        quotas: &std::sync::Arc<crate::quota::Quotas>,
    ) -> SourcePoller {
        let client = crate::platforms::client(&config, http, quotas);
        SourcePoller {
            config,
            client,
            ledger: LedgerSink::new(ledger),
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
    pub fn client(&self) -> &dyn SourceClient {
        self.client.as_ref()
    }

    /// One pass of `kind` over the configured locations and, for a source
    /// that discovers, the locations the platform lists. A source whose
    /// kind cannot list every review gets an incremental pass when asked for
    /// a reconciliation.
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
        Pass {
            config: &self.config,
            client: self.client.as_ref(),
            sink: &self.ledger,
            needs_consent: &self.needs_consent,
            stop,
            progress,
        }
        .run(kind)
        .await
    }

    /// An incremental read of one location now, through the same plan
    /// (its group, or held when unmapped), paging, bounds, cursor and ledger
    /// as a scheduled pass: what a push hint starts. A location the source
    /// does not read (neither configured nor discovered) reads nothing; the
    /// caller keeps passes of one source from overlapping, as for a pass.
    pub async fn read_location(&self, location: &LocationId) -> SourceReport {
        Pass {
            config: &self.config,
            client: self.client.as_ref(),
            sink: &self.ledger,
            needs_consent: &self.needs_consent,
            stop: &PassStop::never(),
            progress: &PassProgress::default(),
        }
        .run_on(PassKind::Incremental, Some(location))
        .await
    }

    /// The platform its reviews are recorded under (a file source's
    /// `platform`, or the kind's), also for its quarantined records.
    pub fn platform(&self) -> String {
        default_platform(&self.config)
    }
}

/// One pass over one source, its pages going to `sink`.
pub(crate) struct Pass<'p, S> {
    pub(crate) config: &'p SourceConfig,
    pub(crate) client: &'p dyn SourceClient,
    pub(crate) sink: &'p S,
    /// Set when the platform refused the credential for good: the source's
    /// later passes stop at once.
    pub(crate) needs_consent: &'p Mutex<Option<String>>,
    pub(crate) stop: &'p PassStop,
    pub(crate) progress: &'p PassProgress,
}

impl<S: PassSink> Pass<'_, S> {
    fn name(&self) -> &str {
        self.config.name.as_str()
    }

    /// Runs the pass: plans the locations, reads them (a few at once), and
    /// reports.
    pub(crate) async fn run(&self, kind: PassKind) -> SourceReport {
        self.run_on(kind, None).await
    }

    /// [`Pass::run`] over the planned locations, or only `only` of them
    /// (a location another source's plan does not have reads nothing).
    async fn run_on(&self, kind: PassKind, only: Option<&LocationId>) -> SourceReport {
        let (stop, progress) = (self.stop, self.progress);
        let source = self.name().to_owned();
        if let Some(reason) = self.lock_consent().clone() {
            tracing::warn!(source, reason, "source stopped: it needs new consent");
            return SourceReport {
                source,
                needs_consent: Some(reason),
                ..SourceReport::default()
            };
        }
        let kind = if kind.is_reconcile() && !can_reconcile(self.config) {
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
            plan = locations::plan(self.config, self.client) => plan,
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
        let targets: Vec<(usize, &Target)> = plan
            .targets
            .iter()
            .enumerate()
            .filter(|(_, target)| only.is_none_or(|id| target.id == *id))
            .collect();
        PassProgress::add(&progress.locations, targets.len() as u64);
        // Batch reads are for incremental passes over the source's
        // locations; one location's read (a push hint's) stays its own.
        let batch_reads = self
            .client
            .batch()
            .filter(|_| kind == PassKind::Incremental && only.is_none());
        let (batches, singles) = match batch_reads {
            Some(reads) => self.plan_batches(reads, targets).await,
            None => (Vec::new(), targets),
        };
        let mut reads: Vec<_> = batches
            .into_iter()
            .filter_map(|b| batch_reads.map(|reads| Either::Left(self.poll_batch(reads, b))))
            .collect();
        reads.extend(singles.into_iter().map(|(index, target)| {
            Either::Right(async move { vec![self.poll_location(index, target, kind, 0).await] })
        }));
        let locations: Vec<LocationReport> = futures_util::stream::iter(reads)
            .buffer_unordered(LOCATIONS_IN_PARALLEL)
            .flat_map(futures_util::stream::iter)
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
            "{} finished",
            S::PASS
        );
        report
    }

    /// Reads the `index`th location of the plan on its own; its poll-log
    /// row also counts `carried` requests made for it elsewhere (a batch
    /// call that could not serve it).
    #[tracing::instrument(skip_all, fields(source = %self.config.name, location = %target.id, pass = kind.as_str()))]
    async fn poll_location(
        &self,
        index: usize,
        target: &Target,
        kind: PassKind,
        carried: u64,
    ) -> LocationReport {
        let report = self
            .poll_location_counted(index, target, kind, carried)
            .await;
        PassProgress::add(&self.progress.locations_done, 1);
        report
    }

    async fn poll_location_counted(
        &self,
        index: usize,
        target: &Target,
        kind: PassKind,
        carried: u64,
    ) -> LocationReport {
        // A location the stop came before is not read at all: no request,
        // no poll-log row (nothing happened to it).
        if let Some(reason) = self.stop.reason() {
            return not_read(target, &reason);
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
        let result = self.read_pages(index, target, kind, &mut log).await;
        let mut settled = Settled::default();
        let new_cursor = match result {
            Ok((cursor, done)) => {
                settled = done;
                Some(cursor)
            }
            Err(e) => {
                self.note_consent(&e);
                tracing::warn!(error = %e, error_type = e.error_type(), "location poll failed");
                crate::metrics::poll_failed(self.name(), e.error_type());
                log.error = Some(Self::error_text(&e));
                None
            }
        };
        if let (Some(total), Some(ledger)) = (log.reported_total, self.sink.ledger()) {
            let (s, l) = (log.source_name.clone(), log.location_id.clone());
            match ledger.run(move |x| x.location_review_count(&s, &l)).await {
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
        log.requests = self
            .client
            .requests()
            .saturating_sub(requests_before)
            .saturating_add(carried);
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
        self.sink.finish(log, new_cursor).await;
        report
    }

    /// Reads every page, handing each to the sink; returns the cursor to
    /// store and, for a reconciliation pass, what marking the vanished
    /// reviews changed (only reached when every page was read and recorded).
    /// A read past its bound, or stopped, ends with an error after recording
    /// what it read.
    async fn read_pages(
        &self,
        index: usize,
        target: &Target,
        kind: PassKind,
        log: &mut PollLog,
    ) -> Result<(Cursor, Settled), PollError> {
        let stored = self.sink.cursor(&log.source_name, &log.location_id).await?;
        let tally = match (kind, self.sink.ledger()) {
            (PassKind::Reconcile, Some(ledger)) => Some(
                LocationTally::open(ledger, &log.source_name, &log.location_id, log.started_at)
                    .await?,
            ),
            _ => None,
        };
        let mut read = LocationRead::start(
            self.client,
            &target.id,
            kind.start_cursor(&stored),
            &self.config.pass_bounds,
            kind.is_reconcile(),
        );
        while let Some(page) = read.next_page(self.stop).await? {
            log.pages = read.pages();
            log.fetched += page.reviews.len() as u64;
            if page.reported_total.is_some() {
                log.reported_total = page.reported_total;
            }
            let record = self.page_record(target, page);
            // Never before the pass began, even if the wall clock went back
            // meanwhile: a reconciliation marks removed what was last seen
            // before its start, which would be everything seen after a step.
            let seen_at = Utc::now().max(log.started_at);
            let counts = self
                .sink
                .take(index, record, seen_at, kind.sightings())
                .await?;
            if counts.new + counts.edited > 0 {
                PassProgress::add(&self.progress.new, counts.new);
                PassProgress::add(&self.progress.edited, counts.edited);
            }
            log.counts += counts;
        }
        let cursor = kind.end_cursor(&stored, read.finish());
        let settled = match (tally, self.sink.ledger()) {
            (Some(tally), Some(ledger)) => tally.settle(ledger, log.counts.new).await?,
            _ => Settled::default(),
        };
        log.removed = settled.removed;
        Ok((cursor, settled))
    }

    /// A refused credential stops the source (for this pass's later
    /// locations and every later pass).
    fn note_consent(&self, e: &PollError) {
        if let PollError::Read(ReadError::Platform(PlatformError::NeedsConsent(reason))) = e {
            tracing::error!(
                source = %self.config.name,
                reason,
                "platform credential refused: this source stops until it is given new consent and the config is reloaded"
            );
            *self.lock_consent() = Some(reason.clone());
        }
    }

    /// The poll-log error of a failed read: a read cut short says what
    /// became of the pages it read.
    fn error_text(e: &PollError) -> String {
        match e {
            PollError::Read(ReadError::Bounded(_) | ReadError::Stopped(_)) => {
                format!("{e}{}", S::KEPT)
            }
            e => e.to_string(),
        }
    }

    fn page_record(&self, target: &Target, page: FetchedPage) -> PageRecord {
        let platform_of_source = default_platform(self.config);
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

    fn lock_consent(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.needs_consent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The report of a location the pass's stop came before: not read at all
/// (no request, no poll-log row: nothing happened to it).
fn not_read(target: &Target, reason: &str) -> LocationReport {
    LocationReport {
        location_id: target.id.as_str().to_owned(),
        counts: PageCounts::default(),
        pages: 0,
        gap: None,
        error: Some(format!("{STOPPED_PREFIX}{NOT_READ}{reason}")),
        removed: 0,
        returned: 0,
    }
}

/// The platform name recorded for quarantined records of a source.
fn default_platform(config: &SourceConfig) -> String {
    config.kind.review_platform().to_owned()
}

/// The cursor of a location as the ledger stores it.
impl From<PollState> for Cursor {
    fn from(state: PollState) -> Cursor {
        Cursor {
            high_water: state.high_water,
            position: state.cursor,
        }
    }
}

/// What the ledger stores of a cursor: the mark, and the position as an
/// opaque string.
impl From<Cursor> for PollState {
    fn from(cursor: Cursor) -> PollState {
        PollState {
            high_water: cursor.high_water,
            cursor: cursor.position,
        }
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

/// Why a location's poll stopped.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl PollError {
    fn error_type(&self) -> &'static str {
        match self {
            PollError::Read(ReadError::Platform(p)) => p.error_type(),
            PollError::Read(ReadError::Bounded(_)) => "pass_bound",
            PollError::Read(ReadError::Stopped(_)) => "stopped",
            PollError::Ledger(_) => "ledger",
        }
    }
}
