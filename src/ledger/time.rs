//! The one place that turns instants into ledger text and back.
//!
//! Every timestamp column holds ISO 8601 UTC text of fixed width with
//! milliseconds (`2026-11-24T22:45:52.123Z`): fixed width is what makes text
//! order equal time order, so SQL can compare and sort timestamps as text
//! (`next_attempt_at <= ?`, `ORDER BY first_seen_at`) and auditors can read them.

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};

/// The stored format. `%.3f` always writes exactly three digits.
const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Length of every stored timestamp (years 0000..=9999).
const WIDTH: usize = "2026-11-24T22:45:52.123Z".len();

/// The ledger text of `t`, truncated to the millisecond.
///
/// Written digit by digit rather than through `format(FORMAT)`: every
/// recorded review and attempt writes several timestamps, and chrono's
/// format interpreter was 2.6% of the daemon's CPU in a backfill
/// (`cargo bench --bench pipeline`). A test checks both agree.
pub(super) fn to_text(t: DateTime<Utc>) -> String {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return crate::timestamps::fold_leap_second(t)
            .format(FORMAT)
            .to_string();
    }
    let mut out = String::with_capacity(WIDTH);
    // `year` is in 0..=9999 here, so `unsigned_abs` is the year itself.
    push_digits(&mut out, year.unsigned_abs(), 4);
    let fields = [
        ('-', t.month(), 2),
        ('-', t.day(), 2),
        ('T', t.hour(), 2),
        (':', t.minute(), 2),
        (':', t.second(), 2),
        // A leap second (nanoseconds past 1e9) is written as the end of
        // the second before, as `timestamps::fold_leap_second` reads one:
        // `:59.999`, so text order stays time order.
        ('.', (t.nanosecond() / 1_000_000).min(999), 3),
    ];
    for (separator, n, width) in fields {
        out.push(separator);
        push_digits(&mut out, n, width);
    }
    out.push('Z');
    out
}

/// Appends `n` as exactly `width` decimal digits (`n` < 10^`width`).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = n / 10u32.pow(place) % 10;
        // `digit` < 10, so the cast is exact.
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Parses ledger text written by [`to_text`]; `None` for anything else, so a
/// hand-edited value in another shape (which would sort wrongly) is reported
/// as corrupt rather than half-understood.
pub(super) fn from_text(s: &str) -> Option<DateTime<Utc>> {
    if s.len() != WIDTH {
        return None;
    }
    NaiveDateTime::parse_from_str(s, FORMAT)
        .ok()
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    #[test]
    fn writes_fixed_width_millisecond_utc() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 22, 45, 52).unwrap()
            + Duration::microseconds(123_456);
        assert_eq!(to_text(t), "2026-11-24T22:45:52.123Z");
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(to_text(whole), "2026-01-02T03:04:05.000Z");
    }

    #[test]
    fn a_leap_second_is_stored_as_the_end_of_the_second_before() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .map(|n| n.and_utc())
            .unwrap();
        assert_eq!(to_text(leap), "2016-12-31T23:59:59.999Z");
        let before =
            Utc.with_ymd_and_hms(2016, 12, 31, 23, 59, 59).unwrap() + Duration::milliseconds(700);
        assert!(to_text(before) < to_text(leap), "text order is time order");
        assert_eq!(
            from_text(&to_text(leap)),
            Some(crate::timestamps::fold_leap_second(leap) - Duration::nanoseconds(999_999))
        );
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "yesterday",
            "2026-11-24T22:45:52Z",
            "2026-11-24T22:45:52.123+00:00",
            "2026-11-24 22:45:52.123Z",
            "2026-11-24T22:45:52.1234Z",
            "2026-13-24T22:45:52.123Z",
        ] {
            assert_eq!(from_text(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trips_and_text_order_is_time_order(a in 0i64..253_402_300_799_000, b in 0i64..253_402_300_799_000) {
            let ta = Utc.timestamp_millis_opt(a).unwrap();
            let tb = Utc.timestamp_millis_opt(b).unwrap();
            let (sa, sb) = (to_text(ta), to_text(tb));
            prop_assert_eq!(from_text(&sa), Some(ta));
            prop_assert_eq!(sa.len(), WIDTH);
            prop_assert_eq!(sa.cmp(&sb), ta.cmp(&tb));
        }

        #[test]
        fn the_fast_writer_agrees_with_the_format_string(ms in 0i64..253_402_300_799_000, sub_ms in 0i64..1_000_000) {
            let t = Utc.timestamp_millis_opt(ms).unwrap() + Duration::nanoseconds(sub_ms);
            prop_assert_eq!(to_text(t), t.format(FORMAT).to_string());
        }
    }
}
