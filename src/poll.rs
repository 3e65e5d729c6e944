//! A poll pass of one source: every location read from where it was left,
//! each page recorded in the ledger in one transaction as it arrives, the
//! platform's total compared with the ledger, and one poll-log row per
//! location. One failing location never aborts the pass; a revoked platform
//! credential stops only this source.
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
        let plan = locations::plan(&self.config, &self.client).await;
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
        let polls: Vec<_> = plan
            .targets
            .iter()
            .map(|target| self.poll_location(target, kind))
            .collect();
        let locations: Vec<LocationReport> = futures_util::stream::iter(polls)
            .buffer_unordered(LOCATIONS_IN_PARALLEL)
            .collect()
            .await;
        let report = SourceReport {
            source,
            locations,
            needs_consent: self.lock_consent().clone(),
            reconcile: kind.is_reconcile(),
            discovery: plan.discovery,
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
    async fn poll_location(&self, target: &Target, kind: PassKind) -> LocationReport {
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
        let result = self.read_pages(target, kind, &mut log).await;
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
        log.ended_at = Utc::now();
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
    /// (only reached when every page was read and recorded).
    async fn read_pages(
        &self,
        target: &Target,
        kind: PassKind,
        log: &mut PollLog,
    ) -> Result<(PollState, Settled), PollError> {
        let (s, l) = (log.source_name.clone(), log.location_id.clone());
        let stored = self.ledger.run(move |x| x.poll_state(&s, &l)).await?;
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
        while let Some(page) = poll.next_page().await? {
            log.pages += 1;
            log.fetched += page.reviews.len() as u64;
            if page.reported_total.is_some() {
                log.reported_total = page.reported_total;
            }
            let record = self.page_record(target, page);
            let sightings = kind.sightings();
            let counts = self
                .ledger
                .run(move |x| x.record_page_as(&record, Utc::now(), sightings))
                .await?;
            // Delivery starts with the first page, not after the whole pass.
            if counts.new + counts.edited > 0 {
                self.ledger.notify_due();
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

/// Why a location's poll stopped.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl PollError {
    fn error_type(&self) -> &'static str {
        match self {
            PollError::Platform(p) => p.error_type(),
            PollError::Ledger(_) => "ledger",
        }
    }
}
