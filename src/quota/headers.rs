//! What the platforms say about their limits, read from their answers:
//! pure functions from headers (and refusals) to [`Adjustment`]s that a
//! [`super::Budget`] follows ([`super::Budget::follow`]).
//!
//! - **Yelp** reports its daily cap on every answer: `RateLimit-DailyLimit`,
//!   `RateLimit-Remaining`, `RateLimit-ResetTime` (ISO 8601), and optionally
//!   `RateLimit-ResourceDailyLimit`/`RateLimit-ResourceRemaining` for the
//!   endpoint (the smaller of the two counts binds). Too fast: 429
//!   `TOO_MANY_REQUESTS_PER_SECOND`; the cap used up: 429
//!   `ACCESS_LIMIT_REACHED`.
//!   *(official)* <https://docs.developer.yelp.com/docs/places-rate-limiting>
//! - **Meta** reports Business Use Case usage of Page-token calls in
//!   `X-Business-Use-Case-Usage` (a JSON object keyed by business object id,
//!   each an array of `{type, call_count, total_cputime, total_time,
//!   estimated_time_to_regain_access}`: percentages, and minutes), and
//!   Platform usage in `X-App-Usage`/`X-Page-Usage` (`call_count`,
//!   `total_cputime`, `total_time`). Any at 100 means throttled; no header
//!   at all means usage is effectively 0%. Throttled calls answer error 4,
//!   17, 32, 613 or 80001 (Pages, BUC).
//!   *(official)* <https://developers.facebook.com/docs/graph-api/overview/rate-limiting/>,
//!   <https://developers.facebook.com/blog/post/2016/06/16/page-level-rate-limits/>
//! - **Google, Places, Trustpilot** report nothing: a 429 pauses the scope
//!   ([`throttled`]).
//!
//! Every reader is tolerant: a header that is missing, not a number, not
//! JSON, or a time that does not parse is ignored (the budget keeps its own
//! count), never an error.

use super::meter::Why;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// How long a 429 `TOO_MANY_REQUESTS_PER_SECOND` pauses a Yelp key: Yelp
/// gives no `Retry-After`, and its limit is per second.
pub const YELP_QPS_PAUSE: Duration = Duration::from_secs(1);

/// How long a throttled Facebook Page (usage at 100%, or a throttling
/// error) is left alone when Meta gives no `estimated_time_to_regain_access`:
/// its windows are one hour (apps) or 24 hours (Pages), and every call made
/// while throttled counts against it again.
pub const FACEBOOK_DEFAULT_REGAIN: Duration = Duration::from_secs(15 * 60);

/// The least pause after a 429 from a platform without usage headers:
/// Google asks for at least 30 s before retrying a quota error.
pub const THROTTLE_PAUSE: Duration = Duration::from_secs(30);

/// The longest pause a platform's header can impose (a day): a wrong
/// value must not park a scope for longer than a daily cap could.
pub const LONGEST_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// Graph error codes that mean "throttled": application (4), user (17),
/// Page (32), custom (613) and Pages Business Use Case (80001).
pub const FACEBOOK_THROTTLE_CODES: [i64; 5] = [4, 17, 32, 613, 80001];

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

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn header_u32(headers: &HeaderMap, name: &str) -> Option<u32> {
    header_str(headers, name)?.parse().ok()
}

/// An ISO 8601 / RFC 3339 time (Yelp writes `2024-03-28T00:00:00+00:00`),
/// or an HTTP date, as a fallback.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_rfc2822(value))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Yelp's daily count from any answer's headers; `None` without a
/// readable `RateLimit-Remaining`.
pub fn yelp(headers: &HeaderMap) -> Option<Adjustment> {
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
pub fn yelp_refusal(status: u16, code: Option<&str>, headers: &HeaderMap) -> Vec<Adjustment> {
    let mut adjustments: Vec<Adjustment> = Vec::new();
    match (status, code) {
        (429, Some("ACCESS_LIMIT_REACHED")) => {
            let reported = yelp(headers);
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
            adjustments.extend(yelp(headers));
            let what = code.unwrap_or("(no code)");
            adjustments.push(Adjustment::Pause {
                for_: YELP_QPS_PAUSE,
                why: Why::Stopped(format!("Yelp answered 429 {what}")),
            });
        }
        _ => adjustments.extend(yelp(headers)),
    }
    adjustments
}

/// A usage percentage as JSON writes it: a number (whole or not), or a
/// string of one.
fn percent(value: &Value) -> Option<u32> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (number.is_finite() && number >= 0.0).then(|| number.ceil().min(f64::from(u32::MAX)) as u32)
}

/// The usage of one `{call_count, total_cputime, total_time, ...}` object:
/// its highest metric, and `estimated_time_to_regain_access` (minutes).
fn usage_of(entry: &Value) -> (Option<(&'static str, u32)>, u64) {
    let mut highest: Option<(&'static str, u32)> = None;
    for metric in ["call_count", "total_cputime", "total_time"] {
        if let Some(p) = entry.get(metric).and_then(percent)
            && highest.is_none_or(|(_, h)| p > h)
        {
            highest = Some((metric, p));
        }
    }
    let regain = entry
        .get("estimated_time_to_regain_access")
        .and_then(percent)
        .map_or(0, u64::from);
    (highest, regain)
}

/// What a Graph answer's usage headers change for the scope of `page`.
///
/// `X-Business-Use-Case-Usage` entries of `page` are read when the header
/// has that key, else every entry (a system user's token reports under its
/// business id). Always one [`Adjustment::Usage`] (0% when no header came:
/// Meta sends none while usage is effectively 0), and a [`Adjustment::Pause`]
/// for `estimated_time_to_regain_access`, or [`FACEBOOK_DEFAULT_REGAIN`] at
/// 100% without one.
pub fn facebook(headers: &HeaderMap, page: Option<&str>) -> Vec<Adjustment> {
    const BUC: &str = "X-Business-Use-Case-Usage";
    let mut highest: Option<(&'static str, &'static str, u32)> = None;
    let mut regain_minutes = 0u64;
    let mut note = |header: &'static str, entry: &Value| {
        let (top, regain) = usage_of(entry);
        if let Some((metric, p)) = top
            && highest.is_none_or(|(_, _, h)| p > h)
        {
            highest = Some((header, metric, p));
        }
        regain_minutes = regain_minutes.max(regain);
    };
    let parsed =
        |name: &str| -> Option<Value> { serde_json::from_str(header_str(headers, name)?).ok() };
    if let Some(Value::Object(by_business)) = parsed("x-business-use-case-usage") {
        let own = page.and_then(|p| by_business.get(p));
        let lists: Vec<&Value> = match own {
            Some(list) => vec![list],
            None => by_business.values().collect(),
        };
        for list in lists {
            match list {
                Value::Array(entries) => entries.iter().for_each(|e| note(BUC, e)),
                entry @ Value::Object(_) => note(BUC, entry),
                _ => {}
            }
        }
    }
    for (name, header) in [
        ("x-page-usage", "X-Page-Usage"),
        ("x-app-usage", "X-App-Usage"),
    ] {
        if let Some(entry @ Value::Object(_)) = parsed(name) {
            note(header, &entry);
        }
    }
    let (header, metric, percent) = highest.unwrap_or((BUC, "call_count", 0));
    let mut adjustments = vec![Adjustment::Usage {
        header,
        metric,
        percent,
    }];
    if regain_minutes > 0 {
        adjustments.push(Adjustment::Pause {
            for_: Duration::from_secs(regain_minutes.saturating_mul(60)).min(LONGEST_PAUSE),
            why: Why::Stopped(format!(
                "{header} estimated_time_to_regain_access is {regain_minutes} min"
            )),
        });
    } else if percent >= 100 {
        adjustments.push(Adjustment::Pause {
            for_: FACEBOOK_DEFAULT_REGAIN,
            why: Why::Stopped(format!("{header} reports {metric} at {percent}%")),
        });
    }
    adjustments
}

/// What a Graph error answer changes: a throttling code
/// ([`FACEBOOK_THROTTLE_CODES`]) pauses the scope for Meta's estimate, else
/// [`FACEBOOK_DEFAULT_REGAIN`]; any answer's usage headers are followed.
pub fn facebook_refusal(code: i64, headers: &HeaderMap, page: Option<&str>) -> Vec<Adjustment> {
    let mut adjustments = facebook(headers, page);
    if FACEBOOK_THROTTLE_CODES.contains(&code)
        && !adjustments
            .iter()
            .any(|a| matches!(a, Adjustment::Pause { .. }))
    {
        adjustments.push(Adjustment::Pause {
            for_: FACEBOOK_DEFAULT_REGAIN,
            why: Why::Stopped(format!(
                "Graph refused the call with error {code} (throttled)"
            )),
        });
    }
    adjustments
}

/// A 429 from a platform that reports no usage (Google, Places,
/// Trustpilot): the scope pauses for `Retry-After`, at least
/// [`THROTTLE_PAUSE`], at most [`LONGEST_PAUSE`].
pub fn throttled(retry_after: Option<Duration>) -> Adjustment {
    let for_ = retry_after
        .unwrap_or(Duration::ZERO)
        .clamp(THROTTLE_PAUSE, LONGEST_PAUSE);
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
    use chrono::TimeZone;

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
            yelp(&yelp_documented()),
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
            yelp(&plain),
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
        assert_eq!(yelp(&HeaderMap::new()), None);
        assert_eq!(yelp(&headers(&[("ratelimit-remaining", "lots")])), None);
        let odd = headers(&[
            ("ratelimit-remaining", " 7 "),
            ("ratelimit-resettime", "tomorrow-ish"),
        ]);
        assert_eq!(
            yelp(&odd),
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
            yelp(&http_date),
            Some(Adjustment::Daily { resets_at: Some(t), .. }) if t == Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
        ));
    }

    #[test]
    fn yelp_refusals_stop_for_the_day_or_for_a_second() {
        let used_up = yelp_refusal(429, Some("ACCESS_LIMIT_REACHED"), &yelp_documented());
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
        let bare = yelp_refusal(429, Some("ACCESS_LIMIT_REACHED"), &HeaderMap::new());
        assert!(matches!(
            bare.as_slice(),
            [Adjustment::Daily {
                remaining: 0,
                limit: None,
                resets_at: None,
                ..
            }]
        ));
        let too_fast = yelp_refusal(429, Some("TOO_MANY_REQUESTS_PER_SECOND"), &HeaderMap::new());
        assert_eq!(
            too_fast,
            vec![Adjustment::Pause {
                for_: YELP_QPS_PAUSE,
                why: Why::Stopped("Yelp answered 429 TOO_MANY_REQUESTS_PER_SECOND".into()),
            }]
        );
        // Another error still carries the count.
        assert!(matches!(
            yelp_refusal(404, Some("BUSINESS_NOT_FOUND"), &yelp_documented()).as_slice(),
            [Adjustment::Daily { remaining: 99, .. }]
        ));
    }

    #[test]
    fn a_recorded_business_use_case_header_reads_as_low_usage() {
        // Recorded from a real Graph v23.0 answer (a public debugging dump,
        // found by code search); the Marketing business id stands where a
        // Page id would for a Page token.
        let recorded = headers(&[(
            "x-business-use-case-usage",
            r#"{"339410370":[{"type":"ads_insights","call_count":1,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0,"ads_api_access_tier":"development_access"}]}"#,
        )]);
        assert_eq!(
            facebook(&recorded, Some("100000000000001")),
            vec![Adjustment::Usage {
                header: "X-Business-Use-Case-Usage",
                metric: "call_count",
                percent: 1,
            }]
        );
    }

    #[test]
    fn metas_documented_shapes_slow_down_and_stop() {
        // The shape of Meta's rate-limiting page: percentages, and minutes
        // to regain access; the Page's own key wins over other businesses.
        let throttled_page = headers(&[(
            "x-business-use-case-usage",
            r#"{"100000000000001":[{"type":"pages","call_count":100,"total_cputime":25,"total_time":25,"estimated_time_to_regain_access":19}],"999":[{"type":"pages","call_count":5,"total_cputime":5,"total_time":5,"estimated_time_to_regain_access":0}]}"#,
        )]);
        assert_eq!(
            facebook(&throttled_page, Some("100000000000001")),
            vec![
                Adjustment::Usage {
                    header: "X-Business-Use-Case-Usage",
                    metric: "call_count",
                    percent: 100,
                },
                Adjustment::Pause {
                    for_: Duration::from_secs(19 * 60),
                    why: Why::Stopped(
                        "X-Business-Use-Case-Usage estimated_time_to_regain_access is 19 min"
                            .into()
                    ),
                },
            ]
        );
        // Another Page's key only: that one is read (a system user token).
        assert!(matches!(
            facebook(&throttled_page, Some("42")).first(),
            Some(Adjustment::Usage { percent: 100, .. })
        ));
        // Meta's documented X-App-Usage example: 28/25/25.
        let app = headers(&[(
            "x-app-usage",
            r#"{"call_count":28,"total_time":25,"total_cputime":25}"#,
        )]);
        assert_eq!(
            facebook(&app, None),
            vec![Adjustment::Usage {
                header: "X-App-Usage",
                metric: "call_count",
                percent: 28,
            }]
        );
        // CPU time near the limit is the highest metric; fractions round up.
        let cpu = headers(&[(
            "x-page-usage",
            r#"{"call_count":"12","total_cputime":94.2,"total_time":30}"#,
        )]);
        assert_eq!(
            facebook(&cpu, None),
            vec![Adjustment::Usage {
                header: "X-Page-Usage",
                metric: "total_cputime",
                percent: 95,
            }]
        );
        // 100% without an estimate: the default pause.
        let full = headers(&[("x-app-usage", r#"{"call_count":100}"#)]);
        assert!(matches!(
            facebook(&full, None).as_slice(),
            [Adjustment::Usage { percent: 100, .. }, Adjustment::Pause { for_, .. }] if *for_ == FACEBOOK_DEFAULT_REGAIN
        ));
    }

    #[test]
    fn no_or_broken_usage_headers_mean_no_slow_down() {
        let none = facebook(&HeaderMap::new(), Some("1"));
        assert!(matches!(
            none.as_slice(),
            [Adjustment::Usage { percent: 0, .. }]
        ));
        let broken = headers(&[
            ("x-business-use-case-usage", "{not json"),
            ("x-app-usage", r#"["call_count", 100]"#),
            ("x-page-usage", r#"{"call_count":-5,"total_time":null}"#),
        ]);
        assert!(matches!(
            facebook(&broken, Some("1")).as_slice(),
            [Adjustment::Usage { percent: 0, .. }]
        ));
        // An absurd estimate is capped at a day.
        let absurd = headers(&[(
            "x-business-use-case-usage",
            r#"{"1":[{"call_count":100,"estimated_time_to_regain_access":99999999}]}"#,
        )]);
        assert!(matches!(
            facebook(&absurd, Some("1")).last(),
            Some(Adjustment::Pause { for_, .. }) if *for_ == LONGEST_PAUSE
        ));
    }

    #[test]
    fn graph_throttling_errors_pause_even_without_headers() {
        // restfb/restfb#734: a real "(#32) Page request limited reached"
        // came with no usage header at all.
        let paused = facebook_refusal(32, &HeaderMap::new(), Some("1"));
        assert!(matches!(
            paused.last(),
            Some(Adjustment::Pause { for_, why }) if *for_ == FACEBOOK_DEFAULT_REGAIN
                && why.to_string() == "Graph refused the call with error 32 (throttled)"
        ));
        for code in FACEBOOK_THROTTLE_CODES {
            assert_eq!(
                facebook_refusal(code, &HeaderMap::new(), None).len(),
                2,
                "{code}"
            );
        }
        // With Meta's estimate, the estimate wins.
        let with_estimate = headers(&[(
            "x-business-use-case-usage",
            r#"{"1":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":3}]}"#,
        )]);
        let paused = facebook_refusal(80001, &with_estimate, Some("1"));
        assert!(matches!(
            paused.last(),
            Some(Adjustment::Pause { for_, .. }) if *for_ == Duration::from_secs(180)
        ));
        // Not a throttling code (a revoked permission): no pause.
        assert_eq!(facebook_refusal(283, &HeaderMap::new(), Some("1")).len(), 1);
    }

    #[test]
    fn a_429_without_usage_headers_pauses_at_least_thirty_seconds() {
        let pause = |a: Adjustment| match a {
            Adjustment::Pause { for_, .. } => for_,
            other => panic!("{other:?}"),
        };
        assert_eq!(pause(throttled(None)), THROTTLE_PAUSE);
        assert_eq!(
            pause(throttled(Some(Duration::from_secs(2)))),
            THROTTLE_PAUSE
        );
        assert_eq!(
            pause(throttled(Some(Duration::from_secs(120)))),
            Duration::from_secs(120)
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
    }
}
