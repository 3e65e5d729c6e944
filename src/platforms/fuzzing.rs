//! What every platform parser promises, checked after each fuzzed input: the
//! `cargo fuzz` targets in `fuzz/` and the kept crash inputs in the test
//! suite (`tests/it/regressions/`) feed bytes to each platform's
//! `fuzz_parse_*` entry point, which maps them as a poll would and then calls
//! [`check_page`]. A broken promise panics, and the fuzzer keeps the input.
//!
//! Not part of the API: hidden from the docs, and only the fuzz targets and
//! tests call it.

use super::{FetchedPage, check_review_id};
use crate::domain::GroupRef;
use crate::timestamps::{check_review_time, travtus_format};
use crate::travtus::body::build_payload;
use chrono::{DateTime, TimeZone, Timelike, Utc};

/// The longest rejection reason we accept from a mapper.
const MAX_REASON_BYTES: usize = 512;

/// The fixed "now" of fuzzed parses, so that a kept input maps the same way
/// on every run (times "in the future" are judged against it).
pub fn fuzz_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Checks a mapped page against the promises of SPEC §4 and §5: every review
/// has a valid id and, with `now`, believable times; its Travtus body builds,
/// is one JSON object with the id, times of exactly 19 characters, a rating
/// within 1..5 and no blank or null field; every rejected record says why.
///
/// # Panics
/// On the first broken promise, naming it.
pub fn check_page(page: &FetchedPage, now: Option<DateTime<Utc>>) {
    let group = GroupRef::ExternalRef("fuzz".into());
    for review in &page.reviews {
        let id = review.review_id.as_str();
        if let Err(e) = check_review_id(id) {
            panic!("a review with an invalid id was accepted: {e}");
        }
        for (field, time) in [
            ("created", Some(review.created_at)),
            ("updated", review.updated_at),
        ] {
            let Some(time) = time else { continue };
            assert_eq!(travtus_format(time).len(), 19, "{field} time out of range");
            assert!(
                time.nanosecond() < 1_000_000_000,
                "{field} time is a leap second: {time:?}"
            );
            if let Some(now) = now
                && let Err(e) = check_review_time(time, now)
            {
                panic!("an implausible {field} time was accepted: {e}");
            }
        }
        for (field, text) in [
            ("title", &review.title),
            ("comment", &review.comment),
            ("display_name", &review.display_name),
        ] {
            if let Some(text) = text {
                assert!(
                    !text.trim().is_empty(),
                    "{field} is blank instead of absent"
                );
            }
        }
        let payload = build_payload(review, Some(&group));
        assert_eq!(
            payload.content_hash.len(),
            64,
            "content hash is SHA-256 hex"
        );
        let body: serde_json::Value =
            serde_json::from_str(&payload.json).expect("the body is JSON");
        let sent = &body["review"];
        assert_eq!(sent["review_id"].as_str(), Some(id), "review_id sent as is");
        assert_eq!(body["group_external_ref"], "fuzz");
        for (key, value) in sent.as_object().expect("review is an object") {
            assert!(!value.is_null(), "{key} is null instead of absent");
        }
        if let Some(stars) = sent.get("rating") {
            assert!(
                stars.as_u64().is_some_and(|s| (1..=5).contains(&s)),
                "rating {stars} outside 1..5"
            );
        }
        for key in ["created_datetime", "updated_datetime"] {
            if let Some(time) = sent.get(key) {
                assert_eq!(time.as_str().map(str::len), Some(19), "{key}: {time}");
            }
        }
    }
    for rejected in &page.rejected {
        assert!(!rejected.reason.is_empty(), "a rejection without a reason");
        // A reason names the field and the fault; it never carries a huge
        // value along (the raw record is stored beside it).
        assert!(
            rejected.reason.len() <= MAX_REASON_BYTES,
            "a {} byte rejection reason",
            rejected.reason.len()
        );
        assert!(
            !rejected.reference.is_empty(),
            "a rejection without a reference"
        );
    }
}
