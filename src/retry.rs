//! The one retry policy: capped exponential backoff with full jitter, where a
//! server's `Retry-After` wins (capped, so a one-hour value cannot freeze a
//! source). Pure: callers pass the retry count and a random source, so the
//! delays are unit-tested, and the delivery worker can persist
//! `next_attempt_at` in the ledger instead of sleeping in memory.

use chrono::{DateTime, Utc};
use rand::Rng;
use std::time::Duration;

/// The most of a server's `Retry-After` we honour. One public client froze all
/// calls for an hour on a bogus value; ten minutes is past any real throttle
/// window we know of (Google asks for 30 s, Yelp resets daily but answers
/// 429 again cheaply).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Capped exponential backoff with full jitter (AWS architecture blog's
/// "full jitter": uniform in `[0, min(cap, base * 2^n)]`), which spreads
/// retries of many workers best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    pub base: Duration,
    /// The largest ceiling any retry gets.
    pub cap: Duration,
}

impl Backoff {
    /// Delivery to Travtus: starts at 1 s, at most 5 min between attempts so a
    /// recovered API is noticed quickly.
    pub const DELIVERY: Backoff = Backoff {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(300),
    };

    /// Platform list calls inside one poll: short, because a poll holds the
    /// source's slot; a poll that keeps failing ends and the next cron tick
    /// tries again.
    pub const PLATFORM: Backoff = Backoff {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(30),
    };

    /// The ceiling for retry number `retry_count` (0 for the first retry).
    pub fn ceiling(&self, retry_count: u32) -> Duration {
        // 2^20 * 1 s is already 12 days: clamp the shift so it cannot overflow.
        let factor = 1u32 << retry_count.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A jittered delay for retry number `retry_count`, unless the server
    /// said how long to wait (`retry_after`), which wins, capped at
    /// [`MAX_RETRY_AFTER`].
    pub fn delay(
        &self,
        retry_count: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(MAX_RETRY_AFTER);
        }
        let ceiling = self.ceiling(retry_count);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=millis))
    }
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date (relative to
/// `now`). A date in the past means "now"; anything unparseable is ignored.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Reads `Retry-After` from response headers.
pub(crate) fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let ceilings: Vec<u64> = (0..6).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jittered_delays_stay_within_the_ceiling_and_vary() {
        let mut rng = StdRng::seed_from_u64(7);
        let b = Backoff::DELIVERY;
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(3, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 50, "full jitter should spread delays");
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let mut rng = StdRng::seed_from_u64(1);
        let b = Backoff::PLATFORM;
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(2)), &mut rng),
            Duration::from_secs(2)
        );
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(3600)), &mut rng),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .map(|d| d.with_timezone(&Utc))
            .expect("valid test date");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
