//! One claimed review, sent: wait out a global pause (unless stopped
//! first), get a token, POST, renew the token once when Travtus asks for
//! it, and turn each answer into an attempt record (`outcome.rs`). What an
//! answer means for every sender (a 429, refused credentials) goes to the
//! worker's pause.

use super::Deliverer;
use super::outcome::{self, Answered, TOKEN_REFUSED};
use crate::ledger::{AttemptOutcome, AttemptRecord, DueReview};
use crate::retry::Backoff;
use crate::travtus::{Class, idempotency_key};
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What became of a claimed review handed to a sender.
pub(super) enum Attempted {
    /// Sent: every attempt made (two when the token was renewed).
    Sent(Vec<AttemptRecord>),
    /// Not sent (stopped first), with the lease it was claimed under.
    NotSent(DueReview, DateTime<Utc>),
}

impl Deliverer {
    /// Sends one claimed review (see [`Deliverer::send`]), unless `stop`
    /// fires first. A review claimed but not yet sent when another one met
    /// a 429 or a credential refusal waits out the pause too; its lease
    /// covers a crash meanwhile. Once stopping, it is not sent at all: no
    /// attempt to record, and it is handed back (or its lease brings it
    /// back later).
    pub(super) async fn attempt(
        &self,
        due: DueReview,
        lease_until: DateTime<Utc>,
        stop: CancellationToken,
    ) -> Attempted {
        loop {
            if stop.is_cancelled() {
                return Attempted::NotSent(due, lease_until);
            }
            let Some(until) = self.paused_until() else {
                break;
            };
            tokio::select! {
                _ = stop.cancelled() => return Attempted::NotSent(due, lease_until),
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        Attempted::Sent(self.send(&due).await)
    }

    /// Sends one review, renewing the token once when the API asks for it.
    async fn send(&self, due: &DueReview) -> Vec<AttemptRecord> {
        let key = idempotency_key(&due.platform, &due.review_id, &due.content_hash);
        let mut records = Vec::with_capacity(1);
        let asked_at = Instant::now();
        let mut token = match self.tokens.get().await {
            Ok(t) => t,
            Err(e) => return vec![self.token_failure(due, e, asked_at)],
        };
        let mut renewed = false;
        loop {
            let attempted_at = Utc::now();
            let started = Instant::now();
            let result = self.client.post(&due.payload, &key, &token).await;
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let Answered {
                mut record,
                class,
                retry_after,
            } = Answered::read(due, attempted_at, duration_ms, result);
            let auth = matches!(class, Class::TokenExpired | Class::AuthFailed);
            if auth && !renewed {
                // Once per review: a new token, and the same body again at once.
                renewed = true;
                record.outcome = AttemptOutcome::Retry {
                    next_attempt_at: Utc::now(),
                };
                records.push(record);
                match self.tokens.renew(&token).await {
                    Ok(t) => {
                        token = t;
                        continue;
                    }
                    Err(e) => {
                        records.push(self.token_failure(due, e, started));
                        return records;
                    }
                }
            }
            let retries_so_far = due.retry_count + records.len() as u32;
            record.outcome = match class {
                Class::Delivered => {
                    self.pause.delivered();
                    AttemptOutcome::Delivered {
                        request_id: record.request_id.clone().unwrap_or_default(),
                    }
                }
                Class::TokenExpired | Class::AuthFailed => {
                    self.pause.credentials_refused(
                        record.error_type.as_deref().unwrap_or("auth"),
                        started,
                    );
                    outcome::retry_at(retries_so_far, None)
                }
                Class::Anomaly => {
                    // Not a delivery, whatever the status: counted by its
                    // error_type in the delivery errors metric.
                    tracing::warn!(
                        platform = %due.platform,
                        review_id = %due.review_id,
                        http_status = record.http_status,
                        error_type = record.error_type.as_deref(),
                        error = record.error_message.as_deref(),
                        "Travtus answer is not a delivery; the review stays pending"
                    );
                    outcome::retry_at(retries_so_far, retry_after)
                }
                Class::Held => AttemptOutcome::Held,
                Class::Rejected => AttemptOutcome::Rejected,
                Class::Retry => {
                    if record.http_status == Some(429) {
                        // The limit is per API key: everyone waits.
                        self.pause
                            .rate_limited(retry_after.unwrap_or(Backoff::DELIVERY.base));
                    }
                    outcome::retry_at(retries_so_far, retry_after)
                }
            };
            self.held_log.note(&record);
            records.push(record);
            return records;
        }
    }

    /// The attempt whose token request (asked at `asked_at`) failed; a
    /// refusal pauses every sender.
    fn token_failure(
        &self,
        due: &DueReview,
        e: crate::oauth::TokenError,
        asked_at: Instant,
    ) -> AttemptRecord {
        let record = outcome::token_failure(due, &e);
        if record.error_type.as_deref() == Some(TOKEN_REFUSED) {
            self.pause.credentials_refused(TOKEN_REFUSED, asked_at);
        }
        record
    }
}
