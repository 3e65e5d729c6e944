//! `sync --dry-run`: reads the platforms exactly as a pass would, and
//! returns the exact bodies that would be POSTed (new and edited reviews,
//! and what is already pending), without writing anything: the ledger is
//! opened read-only (or not at all when it does not exist yet) and Travtus
//! is not contacted.

use crate::app::{AppError, http_client};
use crate::config::Config;
use crate::ledger::{Ledger, LedgerError, LedgerHandle, PollState, ReviewFilter, Status};
use crate::platforms::SourceClient;
use crate::poll::ReadBound;
use crate::travtus::build_payload;

/// What a dry run found.
#[derive(Debug, Default)]
pub struct DryRun {
    /// Bodies that would be POSTed, in order.
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
        let client = SourceClient::new(source, http.clone());
        // The same locations and mapping a pass would use, discovered ones
        // included (discovery only reads the platform).
        let plan = crate::locations::plan(source, &client).await;
        if let Some(discovery) = &plan.discovery {
            for (account, error) in &discovery.failures {
                out.failures.push((
                    source.name.to_string(),
                    account.clone(),
                    format!("discovery failed: {error}"),
                ));
            }
        }
        for loc in &plan.targets {
            let state = match &ledger {
                Some(l) => {
                    let (s, id) = (source.name.to_string(), loc.id.to_string());
                    l.run(move |x| x.poll_state(&s, &id)).await?
                }
                None => PollState::default(),
            };
            // The bounds of a real pass: a platform that pages forever
            // costs this location here too.
            let bound = ReadBound::of(&source.pass_bounds, state.high_water.is_none());
            let bound_at = tokio::time::Instant::now() + bound.time;
            let mut pages = 0u64;
            let mut poll = client.start_poll(&loc.id, state);
            loop {
                let fail = |out: &mut DryRun, e: String| {
                    out.failures
                        .push((source.name.to_string(), loc.id.to_string(), e));
                };
                if pages >= u64::from(bound.pages) && !poll.is_done() {
                    fail(&mut out, bound.pages_message());
                    break;
                }
                let page = match tokio::time::timeout_at(bound_at, poll.next_page()).await {
                    Ok(Ok(Some(page))) => page,
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        fail(&mut out, e.to_string());
                        break;
                    }
                    Err(_) => {
                        fail(&mut out, bound.time_message(pages));
                        break;
                    }
                };
                pages += 1;
                out.quarantined += page.rejected.len() as u64;
                for review in &page.reviews {
                    let payload = build_payload(review, loc.group.as_ref());
                    let known = match &ledger {
                        Some(l) => {
                            let (p, id) =
                                (review.platform.to_string(), review.review_id.to_string());
                            l.run(move |x| x.show(&p, &id)).await?.map(|(row, _)| row)
                        }
                        None => None,
                    };
                    let is_new = match known {
                        None => true,
                        Some(row) if row.content_hash != payload.content_hash => false,
                        Some(_) => continue,
                    };
                    if loc.group.is_none() {
                        out.held += 1;
                        continue;
                    }
                    if is_new {
                        out.new += 1;
                    } else {
                        out.edited += 1;
                    }
                    out.bodies.push(payload.json);
                }
            }
        }
    }
    Ok(out)
}
