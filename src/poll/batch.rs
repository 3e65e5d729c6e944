//! Batch reads in an incremental pass: which planned locations are read
//! together through the platform's batch call (`platforms::BatchReads`),
//! and the bookkeeping of one batch read. How a batch read pages, where it
//! stops and which cursor each location gets is `location`'s
//! (`BatchRead`), as for a location read on its own; this module only
//! chooses the batches and records what they read.
//!
//! - **Which locations.** Those the platform can batch (Google: by
//!   account) that already have a high-water mark. A location without one
//!   (its first read, a backfill) is read on its own, as is a batch group
//!   of one location (its own list also says the platform's total).
//! - **Which batches.** Per batch group, the locations sorted by mark,
//!   newest first, cut into batches of the client's most locations per
//!   call: a batch reads down to its oldest mark minus the overlap, so
//!   locations with close marks read the fewest pages together.
//! - **What is recorded.** Each page's part for a location goes to the same
//!   sink as a location read's pages (one transaction per location per
//!   page: dedup and edit detection as always). Each location gets its own
//!   poll-log row and metrics; its row's `pages` are the batch read's, and
//!   the batch read's requests are counted once, on the row of its first
//!   location (so the rows of a pass still add up to its requests). Batch
//!   answers carry no `totalReviewCount`, so there is no gap check.
//! - **Refusals.** A location the batch call refuses is read on its own
//!   (and named in the log); the others are read by batch again. When the
//!   platform refuses the call as a whole, naming no location, every
//!   location of the batch is read on its own.
//! - **Failures.** A batch read that fails (a server error or throttling
//!   after the retries, a transport error, a refused credential), or is cut
//!   short by its time bound or the pass's stop, fails every location it
//!   read: their pages stay recorded, every mark stays where it was, and
//!   the next pass reads them by batch again. One that fails on its
//!   answers (a paging loop, an answer of the wrong shape or size, past the
//!   page bound: what one broken location does to every call naming it) is
//!   followed by a read of each of its locations on its own, so that the
//!   location at fault fails alone. Either way no mark moves on what the
//!   batch read.

use super::location::{BatchRead, BatchStep, Cursor};
use super::sink::PassSink;
use super::{LocationReport, Pass, PassKind, PassProgress, PollError};
use crate::ledger::{PollLog, Sightings};
use crate::locations::Target;
use crate::platforms::BatchReads;
use chrono::Utc;
use std::collections::HashMap;

/// Locations of one pass read by one batch read.
pub(super) struct Batch<'t> {
    /// The batch group (Google: the account).
    group: String,
    /// Each location's index in the plan, its target, and its stored cursor
    /// (with a high-water mark).
    members: Vec<Member<'t>>,
}

/// The planned locations: by batch, and on their own.
type Split<'t> = (Vec<Batch<'t>>, Vec<(usize, &'t Target)>);

/// A batch member: its index in the plan, its target and stored cursor.
type Member<'t> = (usize, &'t Target, Cursor);

impl<S: PassSink> Pass<'_, S> {
    /// Splits the pass's `targets` into batch reads and locations read on
    /// their own (in plan order).
    pub(super) async fn plan_batches<'t>(
        &self,
        reads: &dyn BatchReads,
        targets: Vec<(usize, &'t Target)>,
    ) -> Split<'t> {
        let mut singles = Vec::new();
        let mut groups: Vec<(String, Vec<Member<'t>>)> = Vec::new();
        let mut group_at: HashMap<String, usize> = HashMap::new();
        for (index, target) in targets {
            let Some(group) = reads.batch_group(&target.id) else {
                singles.push((index, target));
                continue;
            };
            // A cursor that cannot be read is the location's own read's
            // error to report.
            let cursor = match self.sink.cursor(self.name(), target.id.as_str()).await {
                Ok(cursor) if cursor.high_water.is_some() => cursor,
                _ => {
                    singles.push((index, target));
                    continue;
                }
            };
            let at = *group_at.entry(group.clone()).or_insert_with(|| {
                groups.push((group, Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push((index, target, cursor));
        }
        let size = reads.max_locations().max(2);
        let mut batches = Vec::new();
        for (group, mut members) in groups {
            members.sort_by(|a, b| b.2.high_water.cmp(&a.2.high_water).then(a.0.cmp(&b.0)));
            let mut members = members.into_iter().peekable();
            while members.peek().is_some() {
                let chunk: Vec<_> = members.by_ref().take(size).collect();
                if let [(index, target, _)] = chunk.as_slice() {
                    singles.push((*index, *target));
                } else {
                    batches.push(Batch {
                        group: group.clone(),
                        members: chunk,
                    });
                }
            }
        }
        singles.sort_by_key(|(index, _)| *index);
        (batches, singles)
    }

    /// One batch read, and the own reads of the locations it could not
    /// serve: a report per location.
    #[tracing::instrument(skip_all, fields(source = %self.config.name, batch = %batch.group, locations = batch.members.len(), pass = "incremental"))]
    pub(super) async fn poll_batch(
        &self,
        reads: &dyn BatchReads,
        batch: Batch<'_>,
    ) -> Vec<LocationReport> {
        let members = batch.members;
        if let Some(reason) = self.stop.reason() {
            PassProgress::add(&self.progress.locations_done, members.len() as u64);
            return members
                .iter()
                .map(|(_, target, _)| super::not_read(target, &reason))
                .collect();
        }
        let started_at = Utc::now();
        let requests_before = self.client.requests();
        let mut logs: Vec<PollLog> = members
            .iter()
            .map(|(_, target, _)| PollLog {
                source_name: self.name().to_owned(),
                location_id: target.id.as_str().to_owned(),
                started_at,
                ended_at: started_at,
                reconcile: false,
                ..PollLog::default()
            })
            .collect();
        let mut read = BatchRead::start(
            self.client,
            reads,
            members
                .iter()
                .map(|(_, target, cursor)| (target.id.clone(), cursor.clone()))
                .collect(),
            &self.config.pass_bounds,
        );
        // Members to read on their own, in the order they were given up.
        let mut alone: Vec<usize> = Vec::new();
        // `Ok(true)`: read up to date; `Ok(false)`: its locations are to be
        // read one by one.
        let outcome: Result<bool, PollError> = loop {
            match read.next_page(self.stop).await {
                Ok(BatchStep::Page(parts)) => {
                    if let Err(e) = self.take_parts(&members, &mut logs, parts).await {
                        break Err(e);
                    }
                }
                Ok(BatchStep::Refused { member, error }) => {
                    tracing::warn!(
                        location = %members[member].1.id,
                        error = %error,
                        "the batch read refused this location: it is read on its own, the others by batch"
                    );
                    alone.push(member);
                }
                Ok(BatchStep::Unserved(error)) => {
                    tracing::warn!(
                        error = %error,
                        "the platform did not serve the batch read: its locations are read one by one"
                    );
                    break Ok(false);
                }
                Ok(BatchStep::End) => break Ok(true),
                Err(e) if read.failed_on_its_answers(&e) => {
                    tracing::warn!(
                        error = %e,
                        "batch read failed on its answers: its locations are read one by one, so that the one at fault fails alone"
                    );
                    break Ok(false);
                }
                Err(e) => break Err(e.into()),
            }
        };
        let pages = read.pages();
        let cursors = match outcome {
            Ok(true) => read.finish(),
            _ => vec![None; members.len()],
        };
        if let Ok(false) = outcome {
            // Every member not refused yet is read on its own.
            for m in 0..members.len() {
                if !alone.contains(&m) {
                    alone.push(m);
                }
            }
        }
        let error = outcome.err().map(|e| {
            self.note_consent(&e);
            (Self::error_text(&e), e.error_type())
        });
        let mut unattributed = self.client.requests().saturating_sub(requests_before);
        let mut reports = Vec::with_capacity(members.len());
        for (m, (mut log, cursor)) in logs.into_iter().zip(cursors).enumerate() {
            if alone.contains(&m) {
                continue;
            }
            log.pages = pages;
            log.requests = std::mem::take(&mut unattributed);
            log.ended_at = Utc::now().max(log.started_at);
            if let Some((text, error_type)) = &error {
                // The same line as a location read's failure, per location.
                tracing::warn!(
                    location = %log.location_id,
                    error = %text,
                    error_type,
                    "location poll failed"
                );
                crate::metrics::poll_failed(self.name(), error_type);
                log.error = Some(text.clone());
            }
            crate::metrics::location_polled(self.name(), &log.counts, log.error.is_some());
            reports.push(LocationReport {
                location_id: log.location_id.clone(),
                counts: log.counts,
                pages: log.pages,
                gap: None,
                error: log.error.clone(),
                removed: 0,
                returned: 0,
            });
            self.sink.finish(log, cursor).await;
            PassProgress::add(&self.progress.locations_done, 1);
        }
        for m in alone {
            let (index, target, _) = members[m];
            let carried = std::mem::take(&mut unattributed);
            reports.push(
                self.poll_location(index, target, PassKind::Incremental, carried)
                    .await,
            );
        }
        reports
    }

    /// Records one batch page: each member's part through the sink, as a
    /// page of that location.
    async fn take_parts(
        &self,
        members: &[(usize, &Target, Cursor)],
        logs: &mut [PollLog],
        parts: Vec<(usize, crate::platforms::FetchedPage)>,
    ) -> Result<(), PollError> {
        let seen_at = Utc::now();
        for (m, fetched) in parts {
            let (index, target, _) = members[m];
            let log = &mut logs[m];
            log.fetched += fetched.reviews.len() as u64;
            let record = self.page_record(target, fetched);
            let seen_at = seen_at.max(log.started_at);
            let counts = self
                .sink
                .take(index, record, seen_at, Sightings::Skip)
                .await?;
            if counts.new + counts.edited > 0 {
                PassProgress::add(&self.progress.new, counts.new);
                PassProgress::add(&self.progress.edited, counts.edited);
            }
            log.counts += counts;
        }
        Ok(())
    }
}
