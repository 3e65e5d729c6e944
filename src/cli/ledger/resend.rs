//! `review-sync ledger resend PLATFORM REVIEW_ID`: sends a delivered review
//! again on purpose (Travtus lost it, or it went to the wrong group before a
//! mapping was fixed). The review goes back to `pending`, to the group the
//! config maps its location to now (else the one it went to), and the
//! change is a row of `requeues`.

use review_sync::config::SourceMap;
use review_sync::escape::Escaped;
use review_sync::ledger::{Ledger, ResendOutcome, Status, format_time};
use std::process::ExitCode;

/// Puts one delivered review back to pending; an error (exit 1) when it is
/// missing, not delivered, or its text was purged.
pub(crate) fn resend(
    ledger: &mut Ledger,
    mapping: &SourceMap,
    platform: &str,
    review_id: &str,
) -> anyhow::Result<ExitCode> {
    let regroup = |s: &str, l: &str| mapping.group_of(s, l).cloned();
    let outcome = ledger.resend(platform, review_id, chrono::Utc::now(), &regroup)?;
    let (p, id) = (Escaped(platform), Escaped(review_id));
    match outcome {
        ResendOutcome::Requeued(group) => {
            println!(
                "{p} {id} put back to pending for {}: the daemon (or `review-sync sync`) sends it again; recorded in the requeues table",
                Escaped(group)
            );
            Ok(ExitCode::SUCCESS)
        }
        ResendOutcome::NotFound => anyhow::bail!("no review {p} {id} in the ledger"),
        ResendOutcome::NotDelivered(Status::Pending) => {
            anyhow::bail!("{p} {id} is pending: it is sent when due; nothing to resend")
        }
        ResendOutcome::NotDelivered(status) => anyhow::bail!(
            "{p} {id} is {}, not delivered: `ledger resend` sends a delivered review again; to put a held or rejected one back, run `review-sync ledger retry {p} {id}`",
            status.as_str()
        ),
        ResendOutcome::TextPurged(at) => anyhow::bail!(
            "{p} {id}: retention purged its text at {}; its body would now erase the text Travtus holds, so it is not resent",
            format_time(at)
        ),
    }
}
