//! What the platforms say about their limits, read from their answers, as
//! [`Adjustment`]s that a [`super::Budget`] follows
//! ([`super::Budget::follow`]). Every answer a platform client gets (success
//! or error) is handed to its platform's observer (its registry entry's
//! `observe`) as an [`Answer`]; the platforms that report usage read their
//! own headers in their folder (Yelp's `RateLimit-*`, Meta's usage
//! headers), with the tolerant readers here. The others report nothing but
//! a 429: [`on_429`] pauses the scope ([`throttled`]).
//!
//! Every reader is tolerant: a header that is missing, not a number, not
//! JSON, or a time that does not parse is ignored (the budget keeps its own
//! count), never an error.

use super::meter::Why;
use super::scope::ScopeKey;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// How long a 429 without `Retry-After` pauses its whole scope (every
/// source of it), on top of the request's own backoff: the budget's count
/// keeps the scope under the published quota, so a 429 means someone else
/// spends it too, and a short pause of everyone is what helps.
pub const THROTTLE_PAUSE: Duration = Duration::from_secs(1);

/// The longest pause a platform's header can impose (a day): a wrong
/// value must not park a scope for longer than a daily cap could.
pub const LONGEST_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// One answer of a platform, as its observer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The HTTP status.
    pub status: StatusCode,
    /// The answer's headers.
    pub headers: &'a HeaderMap,
    /// The body of an error answer, when it was JSON (success bodies are
    /// not handed over: no platform reports its usage there).
    pub json: Option<&'a Value>,
    /// The scope the request counted against.
    pub scope: &'a ScopeKey,
}

/// What a platform's answer changes in a budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adjustment {
    /// The platform's own count of its daily window (Yelp).
    Daily {
        /// The cap, when reported.
        limit: Option<u32>,
        /// Calls left before the reset.
        remaining: u32,
        /// When the count starts again, when reported (and readable).
        resets_at: Option<DateTime<Utc>>,
        /// The header it came from, for log lines.
        header: &'static str,
    },
    /// How much of a window the platform keeps to itself is used (Meta):
    /// the highest metric of every usage header of the answer.
    Usage {
        /// The header.
        header: &'static str,
        /// The metric.
        metric: &'static str,
        /// Percent used (0 when the platform sent no usage header).
        percent: u32,
    },
    /// No call for this long.
    Pause {
        /// How long.
        for_: Duration,
        /// Why (names the header or error).
        why: Why,
    },
}

/// A header as trimmed text.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// A header as a whole number.
pub fn header_u32(headers: &HeaderMap, name: &str) -> Option<u32> {
    header_str(headers, name)?.parse().ok()
}

/// An ISO 8601 / RFC 3339 time (Yelp writes `2024-03-28T00:00:00+00:00`),
/// or an HTTP date, as a fallback.
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_rfc2822(value))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A usage percentage as JSON writes it: a number (whole or not), or a
/// string of one; rounded up.
pub fn percent(value: &Value) -> Option<u32> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (number.is_finite() && number >= 0.0).then(|| number.ceil().min(f64::from(u32::MAX)) as u32)
}

/// What a platform that reports no usage says: a 429 pauses the scope
/// ([`throttled`], for `Retry-After` when sent); nothing else does.
pub fn on_429(answer: &Answer<'_>) -> Vec<Adjustment> {
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        vec![throttled(crate::retry::retry_after_header(answer.headers))]
    } else {
        Vec::new()
    }
}

/// A 429 from a platform: the scope pauses for `Retry-After` (at most
/// [`LONGEST_PAUSE`]), else for [`THROTTLE_PAUSE`].
pub fn throttled(retry_after: Option<Duration>) -> Adjustment {
    let for_ = retry_after.unwrap_or(THROTTLE_PAUSE).min(LONGEST_PAUSE);
    let why = match retry_after {
        Some(after) => Why::Stopped(format!(
            "the platform answered 429 with Retry-After {}",
            humantime::format_duration(Duration::from_secs(after.as_secs()))
        )),
        None => Why::Stopped("the platform answered 429".into()),
    };
    Adjustment::Pause { for_, why }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_pauses_for_retry_after_or_a_second() {
        let pause = |a: Adjustment| match a {
            Adjustment::Pause { for_, .. } => for_,
            other => panic!("{other:?}"),
        };
        assert_eq!(pause(throttled(None)), THROTTLE_PAUSE);
        assert_eq!(
            pause(throttled(Some(Duration::from_secs(2)))),
            Duration::from_secs(2)
        );
        assert_eq!(
            pause(throttled(Some(Duration::from_secs(10_000_000)))),
            LONGEST_PAUSE
        );
        assert_eq!(
            throttled(Some(Duration::from_secs(120))),
            Adjustment::Pause {
                for_: Duration::from_secs(120),
                why: Why::Stopped("the platform answered 429 with Retry-After 2m".into()),
            }
        );
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        let scope = ScopeKey::places_key("k");
        let answer = |status: u16| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: &headers,
            json: None,
            scope: &scope,
        };
        assert_eq!(
            on_429(&answer(429)),
            vec![throttled(Some(Duration::from_secs(7)))]
        );
        assert!(on_429(&answer(503)).is_empty());
        assert!(on_429(&answer(200)).is_empty());
    }

    #[test]
    fn percentages_read_as_json_writes_them() {
        assert_eq!(percent(&serde_json::json!(94.2)), Some(95));
        assert_eq!(percent(&serde_json::json!("12")), Some(12));
        assert_eq!(percent(&serde_json::json!(-5)), None);
        assert_eq!(percent(&serde_json::json!(null)), None);
    }
}
