//! `review-sync ledger retry`: puts held and rejected reviews back to
//! pending after a mapping or credential was fixed, regrouped by the
//! config's mapping (or a discovered location's store code, asking the
//! platform), each recorded in the `requeues` table.

use super::RetryStatus;
use review_sync::config::SourceMap;
use review_sync::escape::Escaped;
use review_sync::ledger::{Ledger, ReviewFilter, Status};
use review_sync::locations::DiscoveredGroups;
use std::path::Path;
use std::process::ExitCode;

/// What `retry` was asked to put back.
pub(super) struct Retry {
    /// `--status`: only held, or only rejected (default both).
    pub(super) status: Option<RetryStatus>,
    /// `--source`.
    pub(super) source: Option<String>,
    /// `--group`.
    pub(super) group: Option<String>,
    /// PLATFORM REVIEW_ID, or empty.
    pub(super) review: Vec<String>,
}

/// Puts the reviews `ask` names back to pending in the ledger at `path`,
/// regrouped by the config's mapping (read without secrets) or the store
/// codes of discovered locations.
pub(super) async fn retry(
    config_path: &Path,
    path: review_sync::ledger::Target,
    ask: Retry,
) -> anyhow::Result<ExitCode> {
    let mapping = review_sync::config::load_source_map(config_path)?;
    let discovered = discovery(config_path, &mapping, ask.source.as_deref()).await?;
    super::blocking(move || {
        let Retry {
            status,
            source,
            group,
            review,
        } = ask;
        let mut ledger = Ledger::open(&path)?;
        let statuses = match status {
            Some(RetryStatus::Held) => vec![Status::Held],
            Some(RetryStatus::Rejected) => vec![Status::Rejected],
            None => vec![Status::Held, Status::Rejected],
        };
        let one = match review.as_slice() {
            [p, id] => Some((p.clone(), id.clone())),
            _ => None,
        };
        if let Some((p, id)) = &one
            && let Some(code) = explain_unretryable(&ledger, p, id, &statuses)?
        {
            return Ok(code);
        }
        let filter = ReviewFilter {
            statuses,
            source,
            group,
            review: one.clone(),
            ..ReviewFilter::default()
        };
        // The config's mapping wins; else a discovered location's
        // store code as the platform lists it now.
        let regroup = |s: &str, l: &str| {
            mapping
                .group_of(s, l)
                .or_else(|| discovered.group_of(s, l))
                .cloned()
        };
        let (requeued, skipped) = ledger.retry(&filter, chrono::Utc::now(), &regroup)?;
        println!("{requeued} review(s) put back to pending");
        if skipped > 0 {
            println!("{skipped} review(s) left as they are: their location has no mapping in the config (nor a store code on the platform, for a discovered location)");
        }
        // One named review that stayed as it was: the command did
        // not do what was asked.
        Ok(if one.is_some() && requeued == 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
    .await
}

/// For `retry PLATFORM REVIEW_ID`: why the named review cannot be put back,
/// as the exit status to return (`None`: it can). Missing or delivered is an
/// error; already pending is not.
fn explain_unretryable(
    ledger: &Ledger,
    platform: &str,
    review_id: &str,
    statuses: &[Status],
) -> anyhow::Result<Option<ExitCode>> {
    let (p, id) = (Escaped(platform), Escaped(review_id));
    match ledger.review_status(platform, review_id)? {
        None => anyhow::bail!("no review {p} {id} in the ledger"),
        Some(Status::Delivered) => anyhow::bail!(
            "{p} {id} is delivered: `ledger retry` puts back held and rejected reviews; to send it again on purpose, run `review-sync ledger resend {p} {id}`"
        ),
        Some(Status::Pending) => {
            println!("{p} {id} is already pending: it is sent when due; nothing to put back");
            Ok(Some(ExitCode::SUCCESS))
        }
        Some(s) if !statuses.contains(&s) => anyhow::bail!(
            "{p} {id} is {}, which --status leaves out: nothing put back",
            s.as_str()
        ),
        Some(_) => Ok(None),
    }
}

/// For `retry` with a source that discovers its locations: the groups their
/// store codes give now (asking the platform), so that reviews held because
/// their location had no store code go out once it has one. That needs the
/// sources' credentials: when they cannot be read (a shell without the
/// unit's `$CREDENTIALS_DIRECTORY`), or an account cannot be listed, it
/// says so, and those reviews stay held.
async fn discovery(
    config_path: &Path,
    mapping: &SourceMap,
    source: Option<&str>,
) -> anyhow::Result<DiscoveredGroups> {
    if !mapping.discovers() {
        return Ok(DiscoveredGroups::default());
    }
    let config = match review_sync::config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            let first = e.lines().into_iter().next().unwrap_or_default();
            eprintln!(
                "warning: cannot ask the platforms for the store codes of discovered locations: the config's secrets cannot be read ({first}); reviews held for want of a store code stay held"
            );
            return Ok(DiscoveredGroups::default());
        }
    };
    let http = review_sync::app::http_client()?;
    let discovered = DiscoveredGroups::fetch(&config, source, http).await;
    for (source, account, error) in &discovered.failures {
        eprintln!(
            "warning: {} {}: cannot list its locations ({}); reviews held for want of a store code there stay held",
            Escaped(source),
            Escaped(account),
            Escaped(error)
        );
    }
    Ok(discovered)
}
