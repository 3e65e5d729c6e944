//! What an answer of `POST /messages/` means for the review: the table of
//! SPEC section 5, as a pure function so every row of it is unit-tested.
//! Deciding "retry or not" is kept apart from sending (Vector's split of
//! "retryable?" from "was this success really a failure?").
//!
//! A 2xx alone is not a delivery: a captive portal, a misrouted proxy or a
//! maintenance page answers 200 too. Only a 2xx with a `request_id` (the
//! client keeps it only when it is a non-empty JSON string) is
//! [`Class::Delivered`]; any other 2xx, and any 3xx, is [`Class::Anomaly`].

/// The class of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// 2xx with a non-empty `request_id`: delivered.
    Delivered,
    /// 2xx without a `request_id` (empty, HTML, `{"ok":true}`, a 204, a
    /// number), or a 3xx (never followed): not a delivery, whatever the
    /// status says. Retried with backoff; the review stays `pending` with
    /// the anomaly named in `last_error`.
    Anomaly,
    /// 401 `expired_token`: fetch a new token once and retry at once.
    TokenExpired,
    /// 401 `invalid_authorization`, 400 `missing_authorization`: fetch a new
    /// token and retry once; a second failure pauses all deliveries.
    AuthFailed,
    /// 401 `no_access_to_group`, 404 `group_not_found`: the mapping is wrong;
    /// no retry, the review is held.
    Held,
    /// 400 `no_group`, `both_group_identifiers_provided`, other 4xx: no retry.
    Rejected,
    /// 429, 5xx (and, outside this function, timeouts and connection errors):
    /// retry with backoff.
    Retry,
}

/// Classifies an HTTP status, the 2xx body's `request_id` and the error
/// body's `error.type`.
pub fn classify(status: u16, request_id: Option<&str>, error_type: Option<&str>) -> Class {
    match (status, error_type) {
        (200..=299, _) if request_id.is_some_and(|id| !id.is_empty()) => Class::Delivered,
        (200..=399, _) => Class::Anomaly,
        (_, Some("expired_token")) => Class::TokenExpired,
        (_, Some("invalid_authorization" | "missing_authorization")) => Class::AuthFailed,
        (_, Some("no_access_to_group" | "group_not_found")) => Class::Held,
        // The status of missing_authorization differs between pages (400 vs
        // 401); a bare 401 without a type is the same credential problem.
        (401, None) => Class::AuthFailed,
        (408 | 429, _) => Class::Retry,
        (500..=599, _) => Class::Retry,
        (400..=499, _) => Class::Rejected,
        // 1xx (or a status past 599) is not an answer this endpoint gives;
        // try again later rather than lose the review.
        _ => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_answer_has_its_class() {
        let id = Some("3f2a");
        let table = [
            (200, id, None, Class::Delivered),
            (201, id, None, Class::Delivered),
            (202, id, None, Class::Delivered),
            (401, None, Some("expired_token"), Class::TokenExpired),
            (401, None, Some("invalid_authorization"), Class::AuthFailed),
            (400, None, Some("missing_authorization"), Class::AuthFailed),
            (401, None, Some("missing_authorization"), Class::AuthFailed),
            (401, None, Some("no_access_to_group"), Class::Held),
            (404, None, Some("group_not_found"), Class::Held),
            (400, None, Some("no_group"), Class::Rejected),
            (
                400,
                None,
                Some("both_group_identifiers_provided"),
                Class::Rejected,
            ),
            (422, None, Some("whatever"), Class::Rejected),
            (404, None, None, Class::Rejected),
            (429, None, None, Class::Retry),
            (500, None, None, Class::Retry),
            (503, None, Some("unavailable"), Class::Retry),
            (401, None, None, Class::AuthFailed),
            (100, None, None, Class::Retry),
        ];
        for (status, request_id, error_type, expected) in table {
            assert_eq!(
                classify(status, request_id, error_type),
                expected,
                "{status} {request_id:?} {error_type:?}"
            );
        }
    }

    /// Issue 10: any 2xx counted as delivered, with or without a
    /// `request_id`; a followed redirect's answer too.
    #[test]
    fn a_2xx_without_a_request_id_and_any_3xx_are_anomalies() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(classify(status, None, None), Class::Anomaly, "{status}");
            assert_eq!(classify(status, Some(""), None), Class::Anomaly, "{status}");
            assert_eq!(
                classify(status, None, Some("no_request_id")),
                Class::Anomaly,
                "{status}"
            );
        }
        for status in [300, 301, 302, 303, 304, 307, 308] {
            assert_eq!(
                classify(status, Some("from-elsewhere"), Some("redirect")),
                Class::Anomaly,
                "{status}"
            );
            assert_eq!(classify(status, None, None), Class::Anomaly, "{status}");
        }
    }
}
