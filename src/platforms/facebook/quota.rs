//! What Meta says about a Page's limits, as budget [`Adjustment`]s. Meta
//! reports Business Use Case usage of Page-token calls in
//! `X-Business-Use-Case-Usage` (a JSON object keyed by business object id,
//! each an array of `{type, call_count, total_cputime, total_time,
//! estimated_time_to_regain_access}`: percentages, and minutes), and
//! Platform usage in `X-App-Usage`/`X-Page-Usage` (`call_count`,
//! `total_cputime`, `total_time`). Any at 100 means throttled; no header at
//! all means usage is effectively 0%. Throttled calls answer error 4, 17,
//! 32, 613 or 80001 (Pages, BUC).
//! *(official)* <https://developers.facebook.com/docs/graph-api/overview/rate-limiting/>,
//! <https://developers.facebook.com/blog/post/2016/06/16/page-level-rate-limits/>

use crate::quota::headers::{Adjustment, Answer, LONGEST_PAUSE, header_str, percent};
use crate::quota::{DAY, Why, Window};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// Pages under Business Use Case limits: 4,800 calls per engaged user per
/// 24 hours (a sliding window) per Page; one engaged user is the least a
/// Page can have and still be read
/// (developers.facebook.com/blog/post/2016/06/16/page-level-rate-limits/).
/// `X-Business-Use-Case-Usage` reports the real usage.
pub const PAGE_PER_DAY: u32 = 4_800;

/// How long a throttled Page (usage at 100%, or a throttling error) is
/// left alone when Meta gives no `estimated_time_to_regain_access`: its
/// windows are one hour (apps) or 24 hours (Pages), and every call made
/// while throttled counts against it again.
pub const DEFAULT_REGAIN: Duration = Duration::from_secs(15 * 60);

/// Graph error codes that mean "throttled": application (4), user (17),
/// Page (32), custom (613) and Pages Business Use Case (80001).
pub const THROTTLE_CODES: [i64; 5] = [4, 17, 32, 613, 80001];

/// The published window of a Page.
pub(super) fn windows() -> Vec<Window> {
    vec![Window::rolling(PAGE_PER_DAY, DAY)]
}

/// What one answer says: its usage headers, and a refusal's code.
pub(super) fn observe(answer: &Answer<'_>) -> Vec<Adjustment> {
    let page = answer.scope.location_id();
    let code = answer
        .json
        .and_then(|json| json.pointer("/error/code"))
        .and_then(Value::as_i64);
    match code {
        Some(code) if !answer.status.is_success() => refusal(code, answer.headers, page),
        _ => usage(answer.headers, page),
    }
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
/// for `estimated_time_to_regain_access`, or [`DEFAULT_REGAIN`] at
/// 100% without one.
pub fn usage(headers: &HeaderMap, page: Option<&str>) -> Vec<Adjustment> {
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
            for_: DEFAULT_REGAIN,
            why: Why::Stopped(format!("{header} reports {metric} at {percent}%")),
        });
    }
    adjustments
}

/// What a Graph error answer changes: a throttling code
/// ([`THROTTLE_CODES`]) pauses the scope for Meta's estimate, else
/// [`DEFAULT_REGAIN`]; any answer's usage headers are followed.
pub fn refusal(code: i64, headers: &HeaderMap, page: Option<&str>) -> Vec<Adjustment> {
    let mut adjustments = usage(headers, page);
    if THROTTLE_CODES.contains(&code)
        && !adjustments
            .iter()
            .any(|a| matches!(a, Adjustment::Pause { .. }))
    {
        adjustments.push(Adjustment::Pause {
            for_: DEFAULT_REGAIN,
            why: Why::Stopped(format!(
                "Graph refused the call with error {code} (throttled)"
            )),
        });
    }
    adjustments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
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
            usage(&recorded, Some("100000000000001")),
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
            usage(&throttled_page, Some("100000000000001")),
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
            usage(&throttled_page, Some("42")).first(),
            Some(Adjustment::Usage { percent: 100, .. })
        ));
        // Meta's documented X-App-Usage example: 28/25/25.
        let app = headers(&[(
            "x-app-usage",
            r#"{"call_count":28,"total_time":25,"total_cputime":25}"#,
        )]);
        assert_eq!(
            usage(&app, None),
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
            usage(&cpu, None),
            vec![Adjustment::Usage {
                header: "X-Page-Usage",
                metric: "total_cputime",
                percent: 95,
            }]
        );
        // 100% without an estimate: the default pause.
        let full = headers(&[("x-app-usage", r#"{"call_count":100}"#)]);
        assert!(matches!(
            usage(&full, None).as_slice(),
            [Adjustment::Usage { percent: 100, .. }, Adjustment::Pause { for_, .. }] if *for_ == DEFAULT_REGAIN
        ));
    }

    #[test]
    fn no_or_broken_usage_headers_mean_no_slow_down() {
        let none = usage(&HeaderMap::new(), Some("1"));
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
            usage(&broken, Some("1")).as_slice(),
            [Adjustment::Usage { percent: 0, .. }]
        ));
        // An absurd estimate is capped at a day.
        let absurd = headers(&[(
            "x-business-use-case-usage",
            r#"{"1":[{"call_count":100,"estimated_time_to_regain_access":99999999}]}"#,
        )]);
        assert!(matches!(
            usage(&absurd, Some("1")).last(),
            Some(Adjustment::Pause { for_, .. }) if *for_ == LONGEST_PAUSE
        ));
    }

    #[test]
    fn graph_throttling_errors_pause_even_without_headers() {
        // restfb/restfb#734: a real "(#32) Page request limited reached"
        // came with no usage header at all.
        let paused = refusal(32, &HeaderMap::new(), Some("1"));
        assert!(matches!(
            paused.last(),
            Some(Adjustment::Pause { for_, why }) if *for_ == DEFAULT_REGAIN
                && why.to_string() == "Graph refused the call with error 32 (throttled)"
        ));
        for code in THROTTLE_CODES {
            assert_eq!(
                refusal(code, &HeaderMap::new(), None).len(),
                2,
                "{code}"
            );
        }
        // With Meta's estimate, the estimate wins.
        let with_estimate = headers(&[(
            "x-business-use-case-usage",
            r#"{"1":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":3}]}"#,
        )]);
        let paused = refusal(80001, &with_estimate, Some("1"));
        assert!(matches!(
            paused.last(),
            Some(Adjustment::Pause { for_, .. }) if *for_ == Duration::from_secs(180)
        ));
        // Not a throttling code (a revoked permission): no pause.
        assert_eq!(refusal(283, &HeaderMap::new(), Some("1")).len(), 1);
    }

}
