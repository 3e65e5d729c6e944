//! What one attempt of a claimed review is as an [`AttemptRecord`]: an
//! answer of `POST /messages/` (classified by [`crate::travtus::classify`]),
//! a transport error, or a token that could not be had. Pure but for the
//! clock and the jitter of a retry time; what an answer does to the worker
//! (a renewal, a pause) is `send.rs`'s business.

use crate::ledger::{AttemptOutcome, AttemptRecord, DueReview};
use crate::oauth::TokenError;
use crate::retry::Backoff;
use crate::travtus::{Class, PostResult, classify};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// `error_type` of an attempt whose token request was refused (the client
/// id or secret, or the grant): it pauses every sender.
pub(super) const TOKEN_REFUSED: &str = "token_refused";

/// `error_type` of an attempt whose token request failed in a way that may
/// pass (no answer, 5xx, 429).
const TOKEN_UNAVAILABLE: &str = "token_unavailable";

/// One POST, read: the attempt's record, with its outcome still to decide
/// (`Held` until the sender sets it), and what the answer means.
pub(super) struct Answered {
    /// The attempt: status, error type and message, request id, duration.
    pub(super) record: AttemptRecord,
    /// What the answer means for the review (no answer at all: `Retry`).
    pub(super) class: Class,
    /// `Retry-After`, when the answer had one.
    pub(super) retry_after: Option<Duration>,
}

impl Answered {
    /// Reads `result`, the answer to a POST of `due` sent at `attempted_at`
    /// that took `duration_ms`. A non-delivery without an `error.type` is
    /// named after its status (`http_500`).
    pub(super) fn read(
        due: &DueReview,
        attempted_at: DateTime<Utc>,
        duration_ms: u64,
        result: PostResult,
    ) -> Answered {
        let mut record = blank(due, attempted_at);
        record.duration_ms = duration_ms;
        match result {
            PostResult::Transport {
                error_type,
                message,
            } => {
                record.error_type = Some(error_type.to_owned());
                record.error_message = Some(message);
                Answered {
                    record,
                    class: Class::Retry,
                    retry_after: None,
                }
            }
            PostResult::Answer {
                status,
                request_id,
                error_type,
                message,
                retry_after,
            } => {
                let class = classify(status, request_id.as_deref(), error_type.as_deref());
                record.http_status = Some(status);
                record.error_type = error_type
                    .or_else(|| (class != Class::Delivered).then(|| format!("http_{status}")));
                record.error_message = message;
                record.request_id = request_id;
                Answered {
                    record,
                    class,
                    retry_after,
                }
            }
        }
    }
}

/// The attempt of `due` whose token could not be had (so nothing was
/// sent): `token_refused` when the token endpoint refused us for good,
/// `redirect` when it answered with one, `token_unavailable` otherwise;
/// retried with backoff (the endpoint's `Retry-After` wins).
pub(super) fn token_failure(due: &DueReview, e: &TokenError) -> AttemptRecord {
    let retry_after = match e {
        TokenError::Http { retry_after, .. } => *retry_after,
        _ => None,
    };
    let error_type = if let TokenError::Redirect(_) = e {
        crate::travtus::client::ERROR_REDIRECT
    } else if e.is_retryable() {
        TOKEN_UNAVAILABLE
    } else {
        TOKEN_REFUSED
    };
    AttemptRecord {
        error_type: Some(error_type.to_owned()),
        error_message: Some(e.to_string()),
        outcome: retry_at(due.retry_count, retry_after),
        ..blank(due, Utc::now())
    }
}

/// A retry after `retry_count` failed attempts, `retry_after` winning
/// (see [`Backoff::delay`]).
pub(super) fn retry_at(retry_count: u32, retry_after: Option<Duration>) -> AttemptOutcome {
    let delay = Backoff::DELIVERY.delay(retry_count, retry_after, &mut rand::rng());
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    AttemptOutcome::Retry {
        next_attempt_at: Utc::now() + delay,
    }
}

/// An attempt of `due` at `attempted_at` with nothing known about it yet.
fn blank(due: &DueReview, attempted_at: DateTime<Utc>) -> AttemptRecord {
    AttemptRecord {
        platform: due.platform.clone(),
        review_id: due.review_id.clone(),
        content_hash: due.content_hash.clone(),
        attempted_at,
        http_status: None,
        error_type: None,
        error_message: None,
        request_id: None,
        duration_ms: 0,
        outcome: AttemptOutcome::Held,
        sent: due.sent.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GroupRef;
    use crate::ledger::SentAs;

    fn due() -> DueReview {
        let payload = r#"{"group_external_ref":"g1"}"#.to_owned();
        DueReview {
            platform: "google".into(),
            review_id: "r1".into(),
            sent: SentAs::new(Some(GroupRef::ExternalRef("g1".into())), &payload),
            payload,
            content_hash: "h1".into(),
            retry_count: 3,
        }
    }

    fn answer(status: u16, request_id: Option<&str>, error_type: Option<&str>) -> PostResult {
        PostResult::Answer {
            status,
            request_id: request_id.map(str::to_owned),
            error_type: error_type.map(str::to_owned),
            message: None,
            retry_after: None,
        }
    }

    #[test]
    fn an_answer_becomes_a_record_of_the_version_and_body_sent() {
        let at = Utc::now();
        let a = Answered::read(&due(), at, 12, answer(201, Some("req-1"), None));
        assert_eq!(a.class, Class::Delivered);
        assert_eq!(a.record.request_id.as_deref(), Some("req-1"));
        assert_eq!(a.record.error_type, None, "a delivery has no error type");
        assert_eq!(
            (a.record.http_status, a.record.duration_ms),
            (Some(201), 12)
        );
        assert_eq!(a.record.attempted_at, at);
        assert_eq!(a.record.content_hash, "h1");
        assert_eq!(a.record.sent, due().sent, "the claim's group and body hash");

        let a = Answered::read(&due(), at, 1, answer(503, None, None));
        assert_eq!(a.class, Class::Retry);
        assert_eq!(a.record.error_type.as_deref(), Some("http_503"));

        let a = Answered::read(&due(), at, 1, answer(404, None, Some("group_not_found")));
        assert_eq!(a.class, Class::Held);
        assert_eq!(a.record.error_type.as_deref(), Some("group_not_found"));

        // A 2xx the client found no request_id in is not a delivery.
        let a = Answered::read(&due(), at, 1, answer(200, None, Some("no_request_id")));
        assert_eq!(a.class, Class::Anomaly);
        assert_eq!(a.record.error_type.as_deref(), Some("no_request_id"));

        let a = Answered::read(
            &due(),
            at,
            5000,
            PostResult::Transport {
                error_type: "timeout",
                message: "timed out".into(),
            },
        );
        assert_eq!(a.class, Class::Retry);
        assert_eq!(a.record.http_status, None);
        assert_eq!(a.record.error_type.as_deref(), Some("timeout"));
        assert_eq!(a.record.error_message.as_deref(), Some("timed out"));
    }

    #[test]
    fn a_token_failure_is_named_and_retried_after_the_endpoints_wait() {
        let refused = TokenError::ClientRefused {
            error: "invalid_client".into(),
            description: String::new(),
        };
        assert_eq!(
            token_failure(&due(), &refused).error_type.as_deref(),
            Some(TOKEN_REFUSED)
        );
        let busy = TokenError::Http {
            status: 429,
            retry_after: Some(Duration::from_secs(90)),
        };
        let before = Utc::now();
        let record = token_failure(&due(), &busy);
        assert_eq!(record.error_type.as_deref(), Some(TOKEN_UNAVAILABLE));
        assert_eq!(record.http_status, None, "nothing was sent");
        match record.outcome {
            AttemptOutcome::Retry { next_attempt_at } => assert!(
                next_attempt_at >= before + chrono::Duration::seconds(90),
                "Retry-After wins: {next_attempt_at}"
            ),
            other => panic!("not a retry: {other:?}"),
        }
    }
}
