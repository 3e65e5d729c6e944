//! The global delivery pause: after a 429 (the limit is per API key) or
//! after Travtus refused our credentials twice in a row (every request
//! would meet the same bad secret), no sender starts a request until it
//! ends. One credential incident is one step of its backoff.

use crate::retry::Backoff;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Backoff of the global pause after Travtus refused our credentials twice
/// in a row: long enough not to hammer the token endpoint, short enough
/// that a fixed credential is picked up within minutes.
const AUTH_PAUSE: Backoff = Backoff {
    base: Duration::from_secs(5),
    cap: Duration::from_secs(600),
};

/// Why deliveries are paused, for `/healthz` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseStatus {
    /// Travtus refused our credentials (after a token renewal): nothing is
    /// delivered until a person fixes them; it clears at the next delivery.
    CredentialsRefused {
        /// The refusal's error type (`token_refused`, `http_401`, ...).
        error_type: String,
        /// How long until the next try (zero: trying again).
        retry_in: Duration,
    },
    /// Travtus answered 429: everyone waits this long.
    RateLimited {
        /// How long until deliveries resume.
        retry_in: Duration,
    },
}

impl PauseStatus {
    /// The `reason` label of `review_sync_deliveries_paused`.
    pub fn reason(&self) -> &'static str {
        match self {
            PauseStatus::CredentialsRefused { .. } => "credentials_refused",
            PauseStatus::RateLimited { .. } => "rate_limited",
        }
    }
}

impl std::fmt::Display for PauseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PauseStatus::CredentialsRefused {
                error_type,
                retry_in,
            } => write!(
                f,
                "deliveries paused: Travtus refused our credentials ({error_type}); \
                 next try in {}s (check [travtus] client_id/client_secret or token)",
                retry_in.as_secs()
            ),
            PauseStatus::RateLimited { retry_in } => write!(
                f,
                "deliveries paused for {}s: rate limited by Travtus (429)",
                retry_in.as_secs()
            ),
        }
    }
}

/// The pause every sender of a worker obeys. Senders run on several
/// threads, and `/healthz` reads it too: a plain mutex, never held across
/// an await.
#[derive(Debug, Default)]
pub(super) struct Pause {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    // No request starts before this.
    until: Option<Instant>,
    // Credential incidents in a row (reset by a delivery): the step of
    // `AUTH_PAUSE`, and what makes `/healthz` red.
    auth_failures: u32,
    // When the last credential pause began: a refusal of a request sent
    // before it belongs to the same incident (the other senders' requests
    // in flight then), which must not step the backoff again.
    auth_paused_at: Option<Instant>,
    // The error type of that refusal, for `/healthz` and the metrics.
    auth_error: Option<String>,
}

impl Pause {
    /// Until when deliveries are paused, if they are now.
    pub(super) fn until(&self) -> Option<Instant> {
        self.lock().until.filter(|u| *u > Instant::now())
    }

    /// Whether deliveries are paused, and why. Refused credentials count
    /// until a delivery succeeds again, also between pauses.
    pub(super) fn status(&self) -> Option<PauseStatus> {
        let state = self.lock();
        let retry_in = state.until.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        });
        if state.auth_failures > 0 {
            return Some(PauseStatus::CredentialsRefused {
                error_type: state.auth_error.clone().unwrap_or_default(),
                retry_in,
            });
        }
        (!retry_in.is_zero()).then_some(PauseStatus::RateLimited { retry_in })
    }

    /// A delivery went through: the credentials work again.
    pub(super) fn delivered(&self) {
        let mut state = self.lock();
        state.auth_failures = 0;
        state.auth_paused_at = None;
    }

    /// Pauses every sender for `wait` (capped at
    /// [`crate::retry::MAX_RETRY_AFTER`]); an existing longer pause stays.
    pub(super) fn rate_limited(&self, wait: Duration) {
        let until = Instant::now() + wait.min(crate::retry::MAX_RETRY_AFTER);
        let mut state = self.lock();
        state.until = Some(state.until.map_or(until, |u| u.max(until)));
    }

    /// Pauses every sender after Travtus refused our credentials for a
    /// request sent at `sent_at`. One incident, one step of the backoff:
    /// the refusals of requests already in flight when the pause began
    /// (every sender meets the same bad secret within milliseconds) are
    /// part of it, and only a request sent after it can start the next.
    pub(super) fn credentials_refused(&self, error_type: &str, sent_at: Instant) {
        let wait = {
            let mut state = self.lock();
            if state.auth_paused_at.is_some_and(|began| sent_at <= began) {
                return;
            }
            state.auth_failures += 1;
            state.auth_paused_at = Some(Instant::now());
            state.auth_error = Some(error_type.to_owned());
            AUTH_PAUSE.ceiling(state.auth_failures - 1)
        };
        tracing::error!(
            error_type,
            pause_s = wait.as_secs(),
            "Travtus refused our credentials after a token refresh; all deliveries paused (check [travtus] client_id/client_secret or token)"
        );
        self.rate_limited(wait);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoning only means a panic elsewhere; the pause data stays valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sender meets the same bad secret: the refusals of requests
    /// sent before the pause began are one incident, and only a request
    /// sent after it steps the backoff.
    #[tokio::test(start_paused = true)]
    async fn refusals_of_requests_in_flight_are_one_incident() {
        let pause = Pause::default();
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        pause.credentials_refused("http_401", sent);
        pause.credentials_refused("http_401", sent);
        pause.credentials_refused("token_refused", Instant::now());
        assert_eq!(pause.lock().auth_failures, 1, "one incident");
        assert_eq!(
            pause.until().map(|u| u - Instant::now()),
            Some(AUTH_PAUSE.base)
        );
        assert_eq!(
            pause.status(),
            Some(PauseStatus::CredentialsRefused {
                error_type: "http_401".into(),
                retry_in: AUTH_PAUSE.base,
            })
        );

        tokio::time::advance(AUTH_PAUSE.base).await;
        assert_eq!(pause.until(), None, "the pause is over");
        pause.credentials_refused("http_401", Instant::now());
        assert_eq!(pause.lock().auth_failures, 2, "a new request, a new step");
        assert_eq!(
            pause.until().map(|u| u - Instant::now()),
            Some(AUTH_PAUSE.base * 2)
        );

        pause.delivered();
        assert_eq!(pause.lock().auth_failures, 0);
        assert!(matches!(
            pause.status(),
            Some(PauseStatus::RateLimited { .. })
        ));
    }

    /// A 429 never shortens a longer pause, and its wait is capped.
    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_keeps_the_longer_pause_and_is_capped() {
        let pause = Pause::default();
        pause.rate_limited(Duration::from_secs(30));
        pause.rate_limited(Duration::from_secs(5));
        assert_eq!(
            pause.until().map(|u| u - Instant::now()),
            Some(Duration::from_secs(30))
        );
        pause.rate_limited(Duration::from_secs(86_400));
        assert_eq!(
            pause.until().map(|u| u - Instant::now()),
            Some(crate::retry::MAX_RETRY_AFTER)
        );
    }
}
