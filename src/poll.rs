//! A poll pass of one source: every location read from where it was left,
//! each page recorded in the ledger in one transaction as it arrives, the
//! platform's total compared with the ledger, and one poll-log row per
//! location. One failing location never aborts the pass; a revoked platform
//! credential stops only this source.

use crate::config::{LocationConfig, SourceConfig};
use crate::domain::Rejected;
use crate::ledger::{
    IncomingReview, LedgerError, LedgerHandle, PageCounts, PageRecord, PollLog, QuarantineRecord,
};
use crate::platforms::{FetchedPage, PlatformError, SourceClient};
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

    /// Polls every location once. Ledger failures are reported per location
    /// (the pages recorded before them stay).
    pub async fn poll_once(&self) -> SourceReport {
        let source = self.name().to_owned();
        if let Some(reason) = self.lock_consent().clone() {
            tracing::warn!(source, reason, "source stopped: it needs new consent");
            return SourceReport {
                source,
                locations: Vec::new(),
                needs_consent: Some(reason),
            };
        }
        // Futures collected first: mapping a borrowed iterator inside the
        // stream trips rustc's higher-ranked lifetime check once spawned.
        let polls: Vec<_> = self
            .config
            .locations
            .iter()
            .map(|loc| self.poll_location(loc))
            .collect();
        let locations: Vec<LocationReport> = futures_util::stream::iter(polls)
            .buffer_unordered(LOCATIONS_IN_PARALLEL)
            .collect()
            .await;
        let report = SourceReport {
            source,
            locations,
            needs_consent: self.lock_consent().clone(),
        };
        let totals = report.totals();
        tracing::info!(
            source = %report.source,
            locations = report.locations.len(),
            failed = report.failed(),
            new = totals.new,
            edited = totals.edited,
            unchanged = totals.unchanged,
            quarantined = totals.quarantined,
            "poll pass finished"
        );
        report
    }

    #[tracing::instrument(skip_all, fields(source = %self.config.name, location = %loc.id))]
    async fn poll_location(&self, loc: &LocationConfig) -> LocationReport {
        let started_at = Utc::now();
        let requests_before = self.client.requests();
        let mut log = PollLog {
            source_name: self.name().to_owned(),
            location_id: loc.id.as_str().to_owned(),
            started_at,
            ended_at: started_at,
            ..PollLog::default()
        };
        let result = self.read_pages(loc, &mut log).await;
        let new_state = match result {
            Ok(state) => Some(state),
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
        let report = LocationReport {
            location_id: log.location_id.clone(),
            counts: log.counts,
            pages: log.pages,
            gap: log.gap,
            error: log.error.clone(),
        };
        if let Err(e) = self
            .ledger
            .run(move |l| l.finish_poll(&log, new_state.as_ref()))
            .await
        {
            tracing::error!(error = %e, "cannot record the poll");
        }
        report
    }

    /// Reads every page, recording each; returns the new polling state.
    async fn read_pages(
        &self,
        loc: &LocationConfig,
        log: &mut PollLog,
    ) -> Result<crate::ledger::PollState, PollError> {
        let (s, l) = (log.source_name.clone(), log.location_id.clone());
        let state = self.ledger.run(move |x| x.poll_state(&s, &l)).await?;
        let mut poll = self.client.start_poll(&loc.id, state);
        while let Some(page) = poll.next_page().await? {
            log.pages += 1;
            log.fetched += page.reviews.len() as u64;
            if page.reported_total.is_some() {
                log.reported_total = page.reported_total;
            }
            let record = self.page_record(loc, page);
            let counts = self
                .ledger
                .run(move |x| x.record_page(&record, Utc::now()))
                .await?;
            log.counts += counts;
        }
        Ok(poll.finish())
    }

    fn page_record(&self, loc: &LocationConfig, page: FetchedPage) -> PageRecord {
        let platform_of_source = self.default_platform();
        let reviews = page
            .reviews
            .iter()
            .map(|r| {
                let payload = build_payload(r, Some(&loc.group));
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
            location_id: loc.id.as_str().to_owned(),
            group: Some(loc.group.clone()),
            hold_reason: None,
            reviews,
            quarantined,
        }
    }

    /// The platform name recorded for quarantined records of this source.
    fn default_platform(&self) -> String {
        match &self.config.kind {
            crate::config::SourceKind::GoogleBusinessProfile(_) => "google".to_owned(),
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
