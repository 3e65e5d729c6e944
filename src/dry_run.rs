//! `sync --dry-run`: the same pass as `sync` (the same locations, pages,
//! bounds and mapping), with a sink that writes nothing: each page's bodies
//! are kept when the review is new or edited by the ledger's content hash,
//! and printed instead of POSTed, after what is already pending. The ledger
//! is opened read-only (or not at all when it does not exist yet) and
//! Travtus is not contacted.

use crate::app::{AppError, http_client};
use crate::config::Config;
use crate::ledger::{
    Ledger, LedgerError, LedgerHandle, PageCounts, PageRecord, PollLog, ReviewFilter, Sightings,
    Status,
};
use crate::poll::sink::PassSink;
use crate::poll::{Cursor, Pass, PassKind, PassProgress, PassStop};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a dry run found.
#[derive(Debug, Default)]
pub struct DryRun {
    /// Bodies that would be POSTed, in order: what is pending, then each
    /// source's in the config's order, each location's in its plan's order.
    pub bodies: Vec<String>,
    /// Of those, reviews not in the ledger yet.
    pub new: u64,
    /// Of those, reviews whose content changed.
    pub edited: u64,
    /// Of those, rows already pending in the ledger.
    pub pending: u64,
    /// Records that would be quarantined.
    pub quarantined: u64,
    /// New or edited reviews of unmapped (discovered) locations: they would
    /// be recorded `held`, not POSTed, so they have no body here.
    pub held: u64,
    /// Locations (or discovered accounts) that could not be read, with the reason.
    pub failures: Vec<(String, String, String)>,
}

/// Runs a dry pass over `names` (all when empty).
pub async fn dry_run(config: &Config, names: &[String]) -> Result<DryRun, AppError> {
    let ledger = if config.ledger.path.exists() {
        let path = config.ledger.path.clone();
        match tokio::task::spawn_blocking(move || Ledger::open_readonly(&path))
            .await
            .map_err(|e| LedgerError::Task(e.to_string()))?
        {
            Ok(l) => Some(LedgerHandle::new(l)),
            // A database no daemon has opened yet: as a missing file.
            Err(LedgerError::NotCreated { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let http = http_client()?;
    let mut out = DryRun::default();
    if let Some(ledger) = &ledger {
        let pending = ledger
            .run(|l| {
                let mut bodies = Vec::new();
                let filter = ReviewFilter {
                    statuses: vec![Status::Pending],
                    ..ReviewFilter::default()
                };
                l.for_each_review(&filter, &mut |row| {
                    bodies.push(row.payload.clone());
                    Ok(())
                })?;
                Ok(bodies)
            })
            .await?;
        out.pending = pending.len() as u64;
        out.bodies.extend(pending);
    }
    for source in &config.sources {
        if !names.is_empty() && !names.iter().any(|n| n == source.name.as_str()) {
            continue;
        }
        let client = crate::platforms::client(source, http.clone());
        let sink = DrySink {
            ledger: ledger.as_ref(),
            found: Mutex::default(),
        };
        let report = Pass {
            config: source,
            client: client.as_ref(),
            sink: &sink,
            needs_consent: &Mutex::new(None),
            stop: &PassStop::never(),
            progress: &PassProgress::default(),
        }
        .run(PassKind::Incremental)
        .await;
        let found = sink.found.into_inner().unwrap_or_else(|p| p.into_inner());
        out.bodies.extend(found.bodies.into_values().flatten());
        out.new += found.new;
        out.edited += found.edited;
        out.held += found.held;
        out.quarantined += found.quarantined;
        let name = source.name.to_string();
        if let Some(discovery) = &report.discovery {
            for (account, error) in &discovery.failures {
                out.failures.push((
                    name.clone(),
                    account.clone(),
                    format!("discovery failed: {error}"),
                ));
            }
        }
        for location in report.locations {
            if let Some(error) = location.error {
                out.failures
                    .push((name.clone(), location.location_id, error));
            }
        }
    }
    Ok(out)
}

/// What the pages of one source's dry pass would send.
#[derive(Debug, Default)]
struct Found {
    /// Bodies by the location's place in the pass's plan.
    bodies: BTreeMap<usize, Vec<String>>,
    new: u64,
    edited: u64,
    held: u64,
    quarantined: u64,
}

/// A sink that writes nothing: it reads the ledger (when there is one) for
/// each location's cursor and each review's stored version, and keeps the
/// bodies that would be sent.
struct DrySink<'l> {
    ledger: Option<&'l LedgerHandle>,
    found: Mutex<Found>,
}

impl PassSink for DrySink<'_> {
    const KEPT: &'static str = "";
    const PASS: &'static str = "dry-run pass (nothing recorded)";

    async fn cursor(&self, source: &str, location: &str) -> Result<Cursor, LedgerError> {
        let Some(ledger) = self.ledger else {
            return Ok(Cursor::default());
        };
        let (s, l) = (source.to_owned(), location.to_owned());
        Ok(ledger.run(move |x| x.poll_state(&s, &l)).await?.into())
    }

    /// New when the ledger does not know the review, edited when its
    /// content hash differs, else nothing to send; a review of an unmapped
    /// location would be held rather than sent.
    async fn take(
        &self,
        index: usize,
        page: PageRecord,
        _seen_at: DateTime<Utc>,
        _sightings: Sightings,
    ) -> Result<PageCounts, LedgerError> {
        let mut counts = PageCounts {
            quarantined: page.quarantined.len() as u64,
            ..PageCounts::default()
        };
        let mut bodies = Vec::new();
        for review in page.reviews {
            let stored = match self.ledger {
                Some(ledger) => {
                    let (p, id) = (review.platform.clone(), review.review_id.clone());
                    ledger
                        .run(move |x| x.show(&p, &id))
                        .await?
                        .map(|(row, _)| row.content_hash)
                }
                None => None,
            };
            match stored {
                None => counts.new += 1,
                Some(hash) if hash != review.content_hash => counts.edited += 1,
                Some(_) => {
                    counts.unchanged += 1;
                    continue;
                }
            }
            if page.group.is_some() {
                bodies.push(review.payload);
            }
        }
        let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        if page.group.is_some() {
            found.new += counts.new;
            found.edited += counts.edited;
        } else {
            found.held += counts.new + counts.edited;
        }
        found.quarantined += counts.quarantined;
        found.bodies.entry(index).or_default().extend(bodies);
        Ok(counts)
    }

    async fn finish(&self, _log: PollLog, _cursor: Option<Cursor>) {}

    fn ledger(&self) -> Option<&LedgerHandle> {
        None
    }
}
