//! What Yelp says about its limits, as budget [`Adjustment`]s: its daily
//! cap per API key, reported on every answer as `RateLimit-DailyLimit`,
//! `RateLimit-Remaining`, `RateLimit-ResetTime` (ISO 8601), and optionally
//! `RateLimit-ResourceDailyLimit`/`RateLimit-ResourceRemaining` for the
//! endpoint (the smaller of the two counts binds). Too fast: 429
//! `TOO_MANY_REQUESTS_PER_SECOND`; the cap used up: 429
//! `ACCESS_LIMIT_REACHED`.
//! *(official)* <https://docs.developer.yelp.com/docs/places-rate-limiting>

use crate::quota::headers::{Adjustment, Answer, header_str, header_u32, parse_time};
use crate::quota::{Why, Window};
use reqwest::header::HeaderMap;
use std::time::Duration;

/// Yelp's Starter plan: 300 calls per 24 hours per API key, reset at
/// midnight UTC (docs.developer.yelp.com/docs/places-rate-limiting). Other
/// plans differ: the `RateLimit-DailyLimit` of the first answer replaces it.
pub const PER_DAY: u32 = 300;

/// Yelp publishes a per-second limit without a number: one call a second
/// stays under it.
pub const PER_SECOND: u32 = 1;

/// How long a 429 `TOO_MANY_REQUESTS_PER_SECOND` pauses a key: Yelp gives
/// no `Retry-After`, and its limit is per second.
pub const QPS_PAUSE: Duration = Duration::from_secs(1);

/// The published windows of an API key.
pub(super) fn windows() -> Vec<Window> {
    vec![Window::daily_from_midnight(PER_DAY), Window::per_second(PER_SECOND)]
}

/// What one answer says: the daily count of any answer, and a refusal's code.
pub(super) fn observe(answer: &Answer<'_>) -> Vec<Adjustment> {
    let code = answer
        .json
        .and_then(|json| json.pointer("/error/code"))
        .and_then(serde_json::Value::as_str);
    refusal(answer.status.as_u16(), code, answer.headers)
}

/// The daily count from any answer's headers; `None` without a
/// readable `RateLimit-Remaining`.
pub fn daily(headers: &HeaderMap) -> Option<Adjustment> {
    let daily = header_u32(headers, "ratelimit-remaining").map(|r| {
        (
            r,
            header_u32(headers, "ratelimit-dailylimit"),
            "RateLimit-Remaining",
        )
    });
    let resource = header_u32(headers, "ratelimit-resourceremaining").map(|r| {
        (
            r,
            header_u32(headers, "ratelimit-resourcedailylimit"),
            "RateLimit-ResourceRemaining",
        )
    });
    // The endpoint's own cap, when it has one and it is the tighter.
    let (remaining, limit, header) = match (daily, resource) {
        (Some(d), Some(r)) if r.0 < d.0 => r,
        (Some(d), _) => d,
        (None, r) => r?,
    };
    Some(Adjustment::Daily {
        limit,
        remaining,
        resets_at: header_str(headers, "ratelimit-resettime").and_then(parse_time),
        header,
    })
}

/// What a Yelp refusal changes: `code` is the error body's `error.code`.
pub fn refusal(status: u16, code: Option<&str>, headers: &HeaderMap) -> Vec<Adjustment> {
    let mut adjustments: Vec<Adjustment> = Vec::new();
    match (status, code) {
        (429, Some("ACCESS_LIMIT_REACHED")) => {
            let reported = daily(headers);
            let (limit, resets_at) = match &reported {
                Some(Adjustment::Daily {
                    limit, resets_at, ..
                }) => (*limit, *resets_at),
                _ => (None, None),
            };
            // Whatever the headers say, nothing is left today.
            adjustments.push(Adjustment::Daily {
                limit,
                remaining: 0,
                resets_at,
                header: "429 ACCESS_LIMIT_REACHED",
            });
        }
        (429, _) => {
            adjustments.extend(daily(headers));
            let what = code.unwrap_or("(no code)");
            adjustments.push(Adjustment::Pause {
                for_: QPS_PAUSE,
                why: Why::Stopped(format!("Yelp answered 429 {what}")),
            });
        }
        _ => adjustments.extend(daily(headers)),
    }
    adjustments
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    /// Yelp's own example answer
    /// (https://docs.developer.yelp.com/docs/places-rate-limiting).
    fn yelp_documented() -> HeaderMap {
        headers(&[
            ("ratelimit-dailylimit", "500"),
            ("ratelimit-remaining", "499"),
            ("ratelimit-resourcedailylimit", "100"),
            ("ratelimit-resourceremaining", "99"),
            ("ratelimit-resettime", "2024-03-28T00:00:00+00:00"),
        ])
    }

    #[test]
    fn yelps_documented_headers_give_the_tighter_count_and_the_reset() {
        let reset = Utc.with_ymd_and_hms(2024, 3, 28, 0, 0, 0).unwrap();
        assert_eq!(
            daily(&yelp_documented()),
            Some(Adjustment::Daily {
                limit: Some(100),
                remaining: 99,
                resets_at: Some(reset),
                header: "RateLimit-ResourceRemaining",
            })
        );
        // Without the optional resource headers: the key's count.
        let plain = headers(&[
            ("ratelimit-dailylimit", "300"),
            ("ratelimit-remaining", "12"),
            ("ratelimit-resettime", "2026-11-26T00:00:00Z"),
        ]);
        assert_eq!(
            daily(&plain),
            Some(Adjustment::Daily {
                limit: Some(300),
                remaining: 12,
                resets_at: Some(Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()),
                header: "RateLimit-Remaining",
            })
        );
    }

    #[test]
    fn yelp_headers_that_do_not_parse_are_ignored_not_errors() {
        assert_eq!(daily(&HeaderMap::new()), None);
        assert_eq!(daily(&headers(&[("ratelimit-remaining", "lots")])), None);
        let odd = headers(&[
            ("ratelimit-remaining", " 7 "),
            ("ratelimit-resettime", "tomorrow-ish"),
        ]);
        assert_eq!(
            daily(&odd),
            Some(Adjustment::Daily {
                limit: None,
                remaining: 7,
                resets_at: None,
                header: "RateLimit-Remaining",
            })
        );
        // An HTTP date is read too.
        let http_date = headers(&[
            ("ratelimit-remaining", "1"),
            ("ratelimit-resettime", "Thu, 26 Nov 2026 00:00:00 GMT"),
        ]);
        assert!(matches!(
            daily(&http_date),
            Some(Adjustment::Daily { resets_at: Some(t), .. }) if t == Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
        ));
    }

    #[test]
    fn yelp_refusals_stop_for_the_day_or_for_a_second() {
        let used_up = refusal(429, Some("ACCESS_LIMIT_REACHED"), &yelp_documented());
        assert!(matches!(
            used_up.as_slice(),
            [Adjustment::Daily {
                remaining: 0,
                limit: Some(100),
                resets_at: Some(_),
                ..
            }]
        ));
        // The same without headers: nothing left, reset unknown (ours applies).
        let bare = refusal(429, Some("ACCESS_LIMIT_REACHED"), &HeaderMap::new());
        assert!(matches!(
            bare.as_slice(),
            [Adjustment::Daily {
                remaining: 0,
                limit: None,
                resets_at: None,
                ..
            }]
        ));
        let too_fast = refusal(429, Some("TOO_MANY_REQUESTS_PER_SECOND"), &HeaderMap::new());
        assert_eq!(
            too_fast,
            vec![Adjustment::Pause {
                for_: QPS_PAUSE,
                why: Why::Stopped("Yelp answered 429 TOO_MANY_REQUESTS_PER_SECOND".into()),
            }]
        );
        // Another error still carries the count.
        assert!(matches!(
            refusal(404, Some("BUSINESS_NOT_FOUND"), &yelp_documented()).as_slice(),
            [Adjustment::Daily { remaining: 99, .. }]
        ));
    }

}
