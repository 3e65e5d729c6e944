//! What an answer of `POST /messages/` means for the review: the table of
//! SPEC section 5, as a pure function so every row of it is unit-tested.
//! Deciding "retry or not" is kept apart from sending (Vector's split of
//! "retryable?" from "was this success really a failure?").

/// The class of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// 2xx: delivered.
    Delivered,
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

/// Classifies an HTTP status and the body's `error.type`.
pub fn classify(status: u16, error_type: Option<&str>) -> Class {
    match (status, error_type) {
        (200..=299, _) => Class::Delivered,
        (_, Some("expired_token")) => Class::TokenExpired,
        (_, Some("invalid_authorization" | "missing_authorization")) => Class::AuthFailed,
        (_, Some("no_access_to_group" | "group_not_found")) => Class::Held,
        // The status of missing_authorization differs between pages (400 vs
        // 401); a bare 401 without a type is the same credential problem.
        (401, None) => Class::AuthFailed,
        (408 | 429, _) => Class::Retry,
        (500..=599, _) => Class::Retry,
        (400..=499, _) => Class::Rejected,
        // 1xx/3xx are not answers this endpoint gives; try again later
        // rather than lose the review.
        _ => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_answer_has_its_class() {
        let table = [
            (200, None, Class::Delivered),
            (202, None, Class::Delivered),
            (401, Some("expired_token"), Class::TokenExpired),
            (401, Some("invalid_authorization"), Class::AuthFailed),
            (400, Some("missing_authorization"), Class::AuthFailed),
            (401, Some("missing_authorization"), Class::AuthFailed),
            (401, Some("no_access_to_group"), Class::Held),
            (404, Some("group_not_found"), Class::Held),
            (400, Some("no_group"), Class::Rejected),
            (
                400,
                Some("both_group_identifiers_provided"),
                Class::Rejected,
            ),
            (422, Some("whatever"), Class::Rejected),
            (404, None, Class::Rejected),
            (429, None, Class::Retry),
            (500, None, Class::Retry),
            (503, Some("unavailable"), Class::Retry),
            (401, None, Class::AuthFailed),
        ];
        for (status, error_type, expected) in table {
            assert_eq!(
                classify(status, error_type),
                expected,
                "{status} {error_type:?}"
            );
        }
    }
}
