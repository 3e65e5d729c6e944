//! Warnings about reviews that need a person (ended `held` or `rejected`
//! by Travtus), aggregated: one line per outcome, group and error, with a
//! count and one example review, instead of one line per review. A
//! location mapped to an unknown group otherwise logs a line for each of
//! its reviews, which buries everything else in the journal.
//!
//! The delivery worker notes each such attempt and flushes whenever it has
//! nothing in hand (so a line comes out right after a batch), and at least
//! every [`WINDOW`] while it stays busy. The group is the one the attempt
//! records ([`AttemptRecord::sent`], from the claimed row): the body is
//! never parsed again here.

use crate::ledger::{AttemptOutcome, AttemptRecord};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The longest a noted review waits for its line while the worker is busy.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// What one line is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    outcome: &'static str,
    group: String,
    error_type: String,
    http_status: Option<u16>,
}

#[derive(Debug)]
struct Entry {
    reviews: u64,
    example: String,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<Key, Entry>,
    // When the oldest noted entry came in.
    since: Option<Instant>,
}

/// The aggregated warnings of one delivery worker.
#[derive(Debug, Default)]
pub(crate) struct HeldLog {
    inner: Mutex<Inner>,
}

impl HeldLog {
    /// Notes `record` if it ended held or rejected; flushes if the window
    /// is over.
    pub(crate) fn note(&self, record: &AttemptRecord) {
        let outcome = match record.outcome {
            AttemptOutcome::Held | AttemptOutcome::Rejected => record.outcome.as_str(),
            _ => return,
        };
        let key = Key {
            outcome,
            group: record
                .sent
                .group
                .as_ref()
                .map_or_else(|| UNMAPPED.to_owned(), |g| g.to_string()),
            error_type: record.error_type.clone().unwrap_or_default(),
            http_status: record.http_status,
        };
        let due = {
            let mut inner = self.lock();
            inner
                .entries
                .entry(key)
                .or_insert_with(|| Entry {
                    reviews: 0,
                    example: format!("{}:{}", record.platform, record.review_id),
                })
                .reviews += 1;
            *inner.since.get_or_insert_with(Instant::now) + WINDOW <= Instant::now()
        };
        if due {
            self.flush();
        }
    }

    /// Logs one warning per outcome, group and error noted since the last
    /// flush, with the number of reviews.
    pub(crate) fn flush(&self) {
        let entries = {
            let mut inner = self.lock();
            if inner.entries.is_empty() {
                return;
            }
            inner.since = None;
            std::mem::take(&mut inner.entries)
        };
        for (key, entry) in entries {
            tracing::warn!(
                outcome = key.outcome,
                group = %key.group,
                error_type = %key.error_type,
                http_status = key.http_status,
                reviews = entry.reviews,
                example = %entry.example,
                "reviews not delivered: they need a person (`review-sync ledger list --status {}` has them, `ledger show` the answer)",
                key.outcome
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain data, valid even after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The group of an attempt whose body named none (a review held for want
/// of a mapping).
const UNMAPPED: &str = "(unmapped)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GroupRef;
    use crate::ledger::SentAs;

    /// A held attempt of `review`, sent to `group` (the claim's `sent`).
    fn held(review: &str, group: Option<GroupRef>) -> AttemptRecord {
        AttemptRecord {
            platform: "google".into(),
            review_id: review.into(),
            content_hash: "h".into(),
            attempted_at: chrono::Utc::now(),
            http_status: Some(404),
            error_type: Some("group_not_found".into()),
            error_message: None,
            request_id: None,
            duration_ms: 1,
            outcome: AttemptOutcome::Held,
            sent: SentAs::new(group, "{}"),
        }
    }

    #[test]
    fn counts_per_group_and_error_and_ignores_other_outcomes() {
        let log = HeldLog::default();
        let to = |g: &str| Some(GroupRef::ExternalRef(g.into()));
        for i in 0..5 {
            log.note(&held(&format!("r{i}"), to("typo")));
        }
        log.note(&held("x", to("other")));
        log.note(&held("n", Some(GroupRef::Id("12".into()))));
        log.note(&held("u", None));
        let mut delivered = held("d", to("typo"));
        delivered.outcome = AttemptOutcome::Delivered {
            request_id: "req".into(),
        };
        log.note(&delivered);
        let inner = log.lock();
        let counts: Vec<(String, u64)> = inner
            .entries
            .iter()
            .map(|(k, e)| (k.group.clone(), e.reviews))
            .collect();
        assert_eq!(
            counts,
            vec![
                ("(unmapped)".into(), 1),
                ("group_external_ref=other".into(), 1),
                ("group_external_ref=typo".into(), 5),
                ("group_id=12".into(), 1),
            ]
        );
        drop(inner);
        log.flush();
        assert!(log.lock().entries.is_empty());
    }
}
