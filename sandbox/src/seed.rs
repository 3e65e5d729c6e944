//! Deterministic seed data: Travtus groups and Google accounts, locations
//! and reviews, all derived from the sandbox seed and a fixed base instant,
//! never from the wall clock, so two sandboxes with the same seed serve
//! byte-identical data.
//!
//! The Google reviews are deliberately awkward in the ways real ones are:
//! rating-only reviews without `comment`, anonymous reviewers, unspecified
//! ratings, non-ASCII text (accents, CJK, emoji), embedded newlines and
//! quotes, and timestamps with 0, 3, 6 or 9 fractional digits.

use chrono::{DateTime, SecondsFormat, TimeDelta, TimeZone, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::GoogleSeed;

/// The instant all seeded timestamps are measured back from:
/// 2026-01-01T00:00:00Z. Seeded reviews are created in the ~3 years before it.
pub fn seed_base_time() -> DateTime<Utc> {
    // A constant, valid date: `single()` cannot be None here.
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Salts that give each kind of seeded data its own RNG stream, so adding
/// data of one kind never shifts another kind's values.
const GROUP_SALT: u64 = 0x7472_6176_7475_7301;
const GOOGLE_SALT: u64 = 0x676f_6f67_6c65_0001;

/// The RNG for Travtus group ids. The emulator keeps it to give groups
/// added later ids that are deterministic too.
pub(crate) fn group_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ GROUP_SALT)
}

/// A UUID-shaped (version 4 layout) id drawn from `rng`.
pub(crate) fn uuid_like(rng: &mut StdRng) -> String {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The seeded Travtus groups: `(external_ref, accessible)` in creation order.
pub(crate) fn travtus_group_refs() -> Vec<(String, bool)> {
    let mut refs: Vec<(String, bool)> =
        (1..=10).map(|i| (format!("portfolio-{i}"), true)).collect();
    refs.push(("restricted-1".to_owned(), false));
    refs
}

/// Formats `t` as RFC 3339 UTC with `Z` and exactly `digits` (0, 3, 6 or 9)
/// fractional digits, truncating finer precision.
pub(crate) fn format_timestamp(t: DateTime<Utc>, digits: u8) -> String {
    let (format, unit) = match digits {
        0 => (SecondsFormat::Secs, 1_000_000_000),
        3 => (SecondsFormat::Millis, 1_000_000),
        6 => (SecondsFormat::Micros, 1_000),
        _ => (SecondsFormat::Nanos, 1),
    };
    let nanos = t.nanosecond() % 1_000_000_000 / unit * unit;
    t.with_nanosecond(nanos)
        .unwrap_or(t)
        .to_rfc3339_opts(format, true)
}

/// One seeded location: its full name and its reviews as served.
pub(crate) struct SeededLocation {
    pub(crate) account: String,
    pub(crate) name: String,
    pub(crate) reviews: Vec<Value>,
}

/// Seeded Google data.
pub(crate) struct SeededGoogle {
    pub(crate) accounts: Vec<String>,
    pub(crate) locations: Vec<SeededLocation>,
    /// The next free location number, for `add_location`.
    pub(crate) next_location_id: u64,
}

/// First account number; accounts are `accounts/1000`, `accounts/1001`, ...
pub(crate) const FIRST_ACCOUNT_ID: u64 = 1000;
/// First location number; location numbers are unique across accounts.
pub(crate) const FIRST_LOCATION_ID: u64 = 2000;

/// Builds the Google accounts, locations and reviews for `seed`.
pub(crate) fn google(seed: u64, shape: &GoogleSeed) -> SeededGoogle {
    let mut rng = StdRng::seed_from_u64(seed ^ GOOGLE_SALT);
    let mut accounts = Vec::new();
    let mut locations = Vec::new();
    let mut next_location_id = FIRST_LOCATION_ID;
    for a in 0..u64::from(shape.accounts) {
        let account = format!("accounts/{}", FIRST_ACCOUNT_ID + a);
        for _ in 0..shape.locations_per_account {
            let name = format!("{account}/locations/{next_location_id}");
            let reviews = (0..shape.reviews_per_location)
                .map(|n| review(&mut rng, &name, next_location_id, n))
                .collect();
            locations.push(SeededLocation {
                account: account.clone(),
                name,
                reviews,
            });
            next_location_id += 1;
        }
        accounts.push(account);
    }
    SeededGoogle {
        accounts,
        locations,
        next_location_id,
    }
}

/// Reviewer names, some non-ASCII.
const NAMES: &[&str] = &[
    "Maria Lopez",
    "James O'Connor",
    "José García",
    "Zoë Müller",
    "李雷",
    "Aoife Ní Bhriain",
    "Søren Kierkegaard",
    "Priya Natarajan",
    "Tom",
    "Nguyễn Thị Hoa",
    "Élodie Dubois",
    "Marcus \"Mac\" Bell",
];

/// Comment fragments: plain English, accents, CJK, emoji, quotes, a newline.
const FRAGMENTS: &[&str] = &[
    "Lovely apartment, great rent and service, would recommend!",
    "Maintenance took three weeks to fix the heating.",
    "Très bien situé, personnel très accueillant.",
    "Sehr schöne Wohnung – gerne wieder!",
    "とても良いアパートでした。スタッフも親切です。",
    "管理员很热情 👍",
    "Great place 🏡✨ love the gym",
    "The office said \"we'll call you back\" and never did.",
    "Parking is a nightmare.\nOtherwise fine.",
    "Quiet neighbours, clean hallways, fast Wi-Fi.",
    "Ñandú's café downstairs is a bonus ☕",
    "Rent went up 12% — not happy.",
    "Move-in was smooth; the concierge (Ana) was wonderful.",
    "Noise from the bar next door until 2am 😴",
];

const REPLIES: &[&str] = &[
    "Thank you for your feedback!",
    "We're sorry to hear this — please contact the leasing office.",
    "Merci beaucoup ! 😊",
    "Thanks, we've passed this on to the maintenance team.",
];

const STAR_NAMES: [&str; 6] = [
    "STAR_RATING_UNSPECIFIED",
    "ONE",
    "TWO",
    "THREE",
    "FOUR",
    "FIVE",
];

/// The Google enum string for a 1..=5 rating; anything else is unspecified.
pub(crate) fn star_rating_name(rating: Option<u8>) -> &'static str {
    match rating {
        Some(r @ 1..=5) => STAR_NAMES[usize::from(r)],
        _ => STAR_NAMES[0],
    }
}

/// The 1..=5 value of a Google enum string; 0 for unspecified or unknown.
pub(crate) fn star_rating_value(name: &str) -> u8 {
    STAR_NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0)
}

const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn opaque(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(URL_SAFE[rng.random_range(0..URL_SAFE.len())]))
        .collect()
}

fn precision(rng: &mut StdRng) -> u8 {
    [0, 3, 6, 9][rng.random_range(0..4)]
}

/// One seeded review of location `name` (number `location_id`), index `n`.
fn review(rng: &mut StdRng, name: &str, location_id: u64, n: u32) -> Value {
    let base = seed_base_time();
    // Ids vary in style (readable, with `_`, opaque like Google's) but the
    // index suffix keeps them unique within the location.
    let review_id = match n % 3 {
        0 => format!("r-{location_id}-{n}"),
        1 => format!("r_{location_id}_{n}"),
        _ => format!("AIe9_{}-{n}", opaque(rng, 16)),
    };

    const THREE_YEARS_S: i64 = 3 * 365 * 86_400;
    let created = base - TimeDelta::seconds(rng.random_range(3_600..THREE_YEARS_S))
        + TimeDelta::nanoseconds(rng.random_range(0..1_000_000_000));
    let create_time = format_timestamp(created, precision(rng));
    let update_time = if rng.random_bool(0.25) {
        let room = (base - created).num_seconds().clamp(61, 200 * 86_400);
        let updated = created
            + TimeDelta::seconds(rng.random_range(60..room))
            + TimeDelta::nanoseconds(rng.random_range(0..1_000_000_000));
        format_timestamp(updated.min(base), precision(rng))
    } else {
        create_time.clone()
    };

    let star: u8 = if rng.random_bool(0.03) {
        0
    } else {
        // Skewed like real review sites: mostly fives, a bump at one.
        match rng.random_range(0..100) {
            0..45 => 5,
            45..70 => 4,
            70..80 => 3,
            80..88 => 2,
            _ => 1,
        }
    };

    let mut reviewer = Map::new();
    if rng.random_bool(0.10) {
        reviewer.insert("displayName".into(), json!("A Google User"));
        reviewer.insert("isAnonymous".into(), json!(true));
    } else {
        let display_name = NAMES[rng.random_range(0..NAMES.len())];
        reviewer.insert(
            "profilePhotoUrl".into(),
            json!(format!(
                "https://lh3.googleusercontent.com/a-/sandbox{}",
                opaque(rng, 12)
            )),
        );
        reviewer.insert("displayName".into(), json!(display_name));
    }

    let mut review = Map::new();
    review.insert("name".into(), json!(format!("{name}/reviews/{review_id}")));
    review.insert("reviewId".into(), json!(review_id));
    review.insert("reviewer".into(), Value::Object(reviewer));
    review.insert("starRating".into(), json!(STAR_NAMES[usize::from(star)]));
    if !rng.random_bool(0.10) {
        let first = FRAGMENTS[rng.random_range(0..FRAGMENTS.len())];
        let comment = if rng.random_bool(0.3) {
            let second = FRAGMENTS[rng.random_range(0..FRAGMENTS.len())];
            let joiner = if rng.random_bool(0.5) { "\n\n" } else { " " };
            format!("{first}{joiner}{second}")
        } else {
            first.to_owned()
        };
        review.insert("comment".into(), json!(comment));
    }
    review.insert("createTime".into(), json!(create_time));
    review.insert("updateTime".into(), json!(update_time.clone()));
    if rng.random_bool(0.3) {
        let updated = DateTime::parse_from_rfc3339(&update_time)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(base);
        let replied = (updated + TimeDelta::seconds(rng.random_range(60..30 * 86_400))).min(base);
        review.insert(
            "reviewReply".into(),
            json!({
                "comment": REPLIES[rng.random_range(0..REPLIES.len())],
                "updateTime": format_timestamp(replied, precision(rng)),
            }),
        );
    }
    Value::Object(review)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_the_requested_precision() {
        let t = seed_base_time() + TimeDelta::nanoseconds(123_456_789);
        assert_eq!(format_timestamp(t, 0), "2026-01-01T00:00:00Z");
        assert_eq!(format_timestamp(t, 3), "2026-01-01T00:00:00.123Z");
        assert_eq!(format_timestamp(t, 6), "2026-01-01T00:00:00.123456Z");
        assert_eq!(format_timestamp(t, 9), "2026-01-01T00:00:00.123456789Z");
    }

    #[test]
    fn star_names_round_trip() {
        for r in 1..=5 {
            assert_eq!(star_rating_value(star_rating_name(Some(r))), r);
        }
        assert_eq!(star_rating_name(Some(9)), "STAR_RATING_UNSPECIFIED");
        assert_eq!(star_rating_value("STAR_RATING_UNSPECIFIED"), 0);
        assert_eq!(star_rating_value("bogus"), 0);
    }

    #[test]
    fn seeded_reviews_cover_the_awkward_cases() {
        let data = google(
            42,
            &GoogleSeed {
                accounts: 2,
                locations_per_account: 2,
                reviews_per_location: 100,
            },
        );
        assert_eq!(data.accounts, ["accounts/1000", "accounts/1001"]);
        assert_eq!(data.locations[2].name, "accounts/1001/locations/2002");
        let reviews: Vec<&Value> = data.locations.iter().flat_map(|l| &l.reviews).collect();
        assert_eq!(reviews.len(), 400);
        let count = |pred: &dyn Fn(&Value) -> bool| reviews.iter().filter(|r| pred(r)).count();
        assert!(count(&|r| r.get("comment").is_none()) > 10);
        assert!(count(&|r| r["reviewer"]["isAnonymous"] == json!(true)) > 10);
        assert!(count(&|r| r["starRating"] == "STAR_RATING_UNSPECIFIED") > 0);
        assert!(count(&|r| r["comment"].as_str().is_some_and(|c| c.contains('\n'))) > 0);
        assert!(count(&|r| r["comment"].as_str().is_some_and(|c| c.contains('"'))) > 0);
        assert!(count(&|r| r.get("reviewReply").is_some()) > 10);
        assert!(count(&|r| r["createTime"] != r["updateTime"]) > 10);
        for digits in [0, 3, 6, 9] {
            // "2025-01-01T00:00:00" is 19 chars, then "." + digits, then "Z".
            let len = if digits == 0 { 20 } else { 21 + digits };
            assert!(count(&|r| r["createTime"].as_str().is_some_and(|t| t.len() == len)) > 0);
        }
        let time = |v: &Value| {
            v.as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        };
        for r in &reviews {
            assert!(time(&r["updateTime"]) >= time(&r["createTime"]), "{r}");
            assert!(time(&r["createTime"]).is_some(), "{r}");
        }
    }
}
