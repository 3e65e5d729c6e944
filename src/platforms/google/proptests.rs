//! Property tests of the Google mapping: any JSON record maps to a review or
//! to a rejection that names a field, never a panic; and a review built from
//! arbitrary valid fields maps back to exactly those domain values.

use super::wire::map_page_at;
use crate::domain::Rating;
use crate::platforms::fuzzing::{check_page, fuzz_now};
use chrono::{DateTime, FixedOffset, Offset, Timelike, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The fields Google sends, and a few it does not.
const KEYS: &[&str] = &[
    "name",
    "reviewId",
    "reviewer",
    "starRating",
    "comment",
    "createTime",
    "updateTime",
    "reviewReply",
    "displayName",
    "isAnonymous",
    "other",
];

/// Strings that are sometimes what a field wants.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        Just("FOUR".to_owned()),
        Just("STAR_RATING_UNSPECIFIED".to_owned()),
        Just("2024-05-01T10:00:00Z".to_owned()),
        Just("1999-05-01T10:00:00.5+02:00".to_owned()),
        Just("2999-05-01T10:00:00Z".to_owned()),
        Just("2016-12-31T23:59:60Z".to_owned()),
        Just("2017-01-01T00:59:60.5+01:00".to_owned()),
        Just("accounts/1/locations/2/reviews/r1".to_owned()),
        Just("(Translated by Google) x (Original) y".to_owned()),
        Just("a\u{0}b\u{1b}[31m".to_owned()),
        Just(" ".to_owned()),
    ]
}

/// Any JSON value, objects keyed mostly by Google's field names.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-10i64..10).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..8).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A review object: Google's keys, each present or not, with any values.
fn any_record() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(KEYS), any_json(), 0..9)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// A valid instant between 2000 and the fuzzing clock, with a fraction.
fn review_time() -> impl Strategy<Value = DateTime<Utc>> {
    let (from, to) = (946_684_800i64, fuzz_now().timestamp());
    (from..to, 0u32..1_000_000_000)
        .prop_filter_map("valid instant", |(s, n)| DateTime::from_timestamp(s, n))
}

/// RFC 3339 text of `t` at an offset, with 0..=9 fraction digits; and the
/// instant that text means.
fn rfc3339(t: DateTime<Utc>, offset_minutes: i32, digits: usize) -> (String, DateTime<Utc>) {
    let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap_or(Utc.fix());
    let local = t.with_timezone(&offset);
    let fraction = if digits == 0 {
        String::new()
    } else {
        format!(".{:09}", t.nanosecond())[..=digits].to_owned()
    };
    let scale = 10u32.pow(9 - digits as u32);
    let meant = t
        .with_nanosecond(t.nanosecond() / scale * scale)
        .unwrap_or(t);
    (
        format!(
            "{}{fraction}{}",
            local.format("%Y-%m-%dT%H:%M:%S"),
            local.format("%:z")
        ),
        meant,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_record_maps_or_is_rejected_with_a_field_named(record in any_record()) {
        let page = json!({"reviews": [record.clone()]});
        let mapped = map_page_at(&page, 1, fuzz_now());
        let mapped = mapped.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(mapped.page.reviews.len() + mapped.page.rejected.len(), 1);
        check_page(&mapped.page, Some(fuzz_now()));
        if let Some(rejected) = mapped.page.rejected.first() {
            let field = rejected.reason.split(':').next().unwrap_or_default();
            prop_assert!(
                ["reviewId", "name", "review", "starRating", "comment", "reviewer.displayName",
                 "reviewer.isAnonymous", "reviewer", "createTime", "updateTime"].contains(&field),
                "{}", rejected.reason
            );
            prop_assert_eq!(&rejected.raw, &record.to_string());
        }
    }

    #[test]
    fn any_page_maps_or_is_refused_whole(page in any_json()) {
        if let Ok(mapped) = map_page_at(&page, 1, fuzz_now()) {
            check_page(&mapped.page, Some(fuzz_now()));
        }
    }

    #[test]
    fn a_review_of_valid_fields_maps_back_to_them(
        id in "[A-Za-z0-9_-]{1,120}",
        from_name in any::<bool>(),
        stars in prop::option::of(1u8..=5),
        stars_as_number in any::<bool>(),
        comment in prop::option::of("[^\\p{Cc}]{0,5}\\PC{1,60}"),
        name in prop::option::of("\\PC{1,30}"),
        anonymous in prop::option::of(any::<bool>()),
        created in review_time(),
        updated in prop::option::of(review_time()),
        offset in -(14 * 60)..=(14 * 60),
        digits in 0usize..=9,
    ) {
        let mut record = Map::new();
        if from_name {
            record.insert("name".into(), json!(format!("accounts/1/locations/2/reviews/{id}")));
        } else {
            record.insert("reviewId".into(), json!(id));
        }
        if let Some(stars) = stars {
            let words = ["ONE", "TWO", "THREE", "FOUR", "FIVE"];
            let value = if stars_as_number { json!(stars) } else { json!(words[usize::from(stars) - 1]) };
            record.insert("starRating".into(), value);
        }
        if let Some(comment) = &comment {
            record.insert("comment".into(), json!(comment));
        }
        if name.is_some() || anonymous.is_some() {
            let mut reviewer = Map::new();
            if let Some(name) = &name {
                reviewer.insert("displayName".into(), json!(name));
            }
            if let Some(anonymous) = anonymous {
                reviewer.insert("isAnonymous".into(), json!(anonymous));
            }
            record.insert("reviewer".into(), Value::Object(reviewer));
        }
        let (created_text, created_at) = rfc3339(created, offset, digits);
        record.insert("createTime".into(), json!(created_text));
        let updated_at = updated.map(|u| {
            let (text, at) = rfc3339(u, -offset, 9 - digits);
            record.insert("updateTime".into(), json!(text));
            at
        });

        let page = json!({"reviews": [Value::Object(record)]});
        let mapped = map_page_at(&page, 1, fuzz_now()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(mapped.page.rejected.is_empty(), "{:?}", mapped.page.rejected);
        let review = &mapped.page.reviews[0];
        prop_assert_eq!(review.platform.as_str(), "google");
        prop_assert_eq!(review.review_id.as_str(), id.as_str());
        prop_assert_eq!(review.rating.map(Rating::get), stars);
        let want_comment = comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
        prop_assert_eq!(review.comment.as_deref(), want_comment);
        let want_name = name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        prop_assert_eq!(review.display_name.as_deref(), want_name);
        let reviewer_sent = name.is_some() || anonymous.is_some();
        prop_assert_eq!(review.is_anonymous, reviewer_sent.then_some(anonymous.unwrap_or(false)));
        prop_assert_eq!(review.created_at, created_at);
        prop_assert_eq!(review.updated_at, updated_at);
        prop_assert_eq!(review.title.as_deref(), None);
        check_page(&mapped.page, Some(fuzz_now()));
    }
}
