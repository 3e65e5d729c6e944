//! Timestamps in and out: every platform's way of writing an instant (RFC 3339
//! with any offset and fraction, naive date-times meant as UTC, Unix seconds,
//! naive local times in a named time zone) becomes a `DateTime<Utc>` here, and
//! [`travtus_format`] writes the one form Travtus accepts. Pure functions, no
//! I/O, shared by all platform clients.
//!
//! **Invariant:** every instant that leaves this module lies in the years
//! 1970..=9999, so the Travtus format is always exactly 19 characters.
//!
//! **Invariant:** no instant that leaves this module is a leap second
//! (`23:59:60`, which chrono represents as `:59` with nanoseconds past 1e9):
//! every parser folds one into the last nanosecond of the second before
//! ([`fold_leap_second`]), so it is never sent as `:60`.
//!
//! Parsing says whether a text is a time; [`check_review_time`] says whether
//! a time is believable for a review (2000 to a day from now), which the
//! platform mappers ask before a record becomes a review.

use chrono::{
    DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The earliest year we accept. Reviews predate no platform's launch, and an
/// instant before the Unix epoch is a sign of a zero or garbage value.
const MIN_YEAR: i32 = 1970;
/// The latest year we accept: beyond it `%Y` is no longer four digits.
const MAX_YEAR: i32 = 9999;

/// The longest stretch of local time a DST (or calendar) change skips. Samoa
/// skipped all of 2011-12-30, so a day, plus slack.
const MAX_GAP: Duration = Duration::hours(48);

/// Why a timestamp was refused. The text is short and names what was wrong,
/// never more than the offending value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The text is not in the expected format.
    #[error("{value:?} is not {expected}")]
    Format {
        /// The text as given (trimmed, cut to 64 characters).
        value: String,
        /// What was expected, e.g. "an RFC 3339 timestamp".
        expected: &'static str,
    },
    /// A well-formed instant outside the years we accept.
    #[error("year {0} is outside {MIN_YEAR}..={MAX_YEAR}")]
    OutOfRange(i64),
}

/// A leap second (`…:60`, at any fraction) as the last nanosecond of the
/// second before it (`…:59.999999999`); any other instant unchanged.
///
/// Why this and not another reading: Travtus takes whole seconds in
/// `0..=59`, so `:60` must become a valid second. Folding back keeps the
/// date (a `2016-12-31T23:59:60Z` review stays on New Year's Eve rather
/// than moving to 2017 and another day's counts), keeps order with every
/// other instant (later than any time in the `:59` second, earlier than the
/// next minute), and is what POSIX time, which has no leap seconds, makes
/// of it within a second. Smeared clocks (Google's) never produce `:60`.
pub fn fold_leap_second(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.nanosecond() < 1_000_000_000 {
        return t;
    }
    t.with_nanosecond(999_999_999).unwrap_or(t)
}

/// [`fold_leap_second`] for a naive date-time (before a time zone is applied).
fn fold_leap_second_naive(t: NaiveDateTime) -> NaiveDateTime {
    if t.nanosecond() < 1_000_000_000 {
        return t;
    }
    t.with_nanosecond(999_999_999).unwrap_or(t)
}

/// Parses RFC 3339 (`2014-10-02T15:01:23.045123456+02:00`, any offset,
/// 0..9 fractional digits; `Z` or `z`) and converts it to UTC.
pub fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, TimestampError> {
    let trimmed = s.trim();
    let parsed = DateTime::parse_from_rfc3339(trimmed)
        .map_err(|_| format_error(trimmed, "an RFC 3339 timestamp"))?;
    in_range(parsed.with_timezone(&Utc))
}

/// Parses a date-time without offset, `YYYY-MM-DDThh:mm:ss[.fff]` or
/// `YYYY-MM-DD hh:mm:ss[.fff]`, taken as UTC.
pub fn parse_naive_utc(s: &str) -> Result<DateTime<Utc>, TimestampError> {
    let naive = parse_naive(s.trim())?;
    in_range(naive.and_utc())
}

/// RFC 3339 as [`parse_rfc3339`], or, when the text carries no zone at all,
/// a date-time read as UTC ([`parse_naive_utc`]). For platforms that document
/// zone-less examples of a field that is UTC (Trustpilot's
/// `"2013-09-07T13:37:00"`). The error is the RFC 3339 one, which says what
/// is expected.
pub fn parse_rfc3339_or_naive_utc(s: &str) -> Result<DateTime<Utc>, TimestampError> {
    parse_rfc3339(s).or_else(|rfc3339_error| match rfc3339_error {
        TimestampError::Format { .. } => {
            parse_naive_utc(s).map_err(|naive_error| match naive_error {
                TimestampError::Format { .. } => rfc3339_error,
                out_of_range => out_of_range,
            })
        }
        out_of_range => Err(out_of_range),
    })
}

/// Unix seconds to UTC.
pub fn from_unix_seconds(secs: i64) -> Result<DateTime<Utc>, TimestampError> {
    let dt = DateTime::from_timestamp(secs, 0).ok_or(TimestampError::OutOfRange(
        // Out of chrono's range: far outside ours too; report the rough year.
        1970 + secs / 31_556_952,
    ))?;
    in_range(dt)
}

/// Fractional Unix seconds (e.g. `1700000000.25`) to UTC.
pub fn from_unix_seconds_f64(secs: f64) -> Result<DateTime<Utc>, TimestampError> {
    if !secs.is_finite() {
        return Err(format_error(&secs.to_string(), "a number of Unix seconds"));
    }
    // Anything beyond year 9999 (2.5e11 s) is refused anyway; clamping keeps
    // the cast from saturating into a misleading error.
    let whole = secs.floor().clamp(-1e13, 1e13);
    let nanos = ((secs - whole) * 1e9).clamp(0.0, 999_999_999.0) as u32;
    let dt = DateTime::from_timestamp(whole as i64, nanos)
        .ok_or(TimestampError::OutOfRange(1970 + whole as i64 / 31_556_952))?;
    in_range(dt)
}

/// Parses Unix seconds written as digits (an optional leading `-` is
/// accepted, and then refused as before 1970).
pub fn parse_unix_seconds(s: &str) -> Result<DateTime<Utc>, TimestampError> {
    let trimmed = s.trim();
    let secs: i64 = trimmed
        .parse()
        .map_err(|_| format_error(trimmed, "a number of Unix seconds"))?;
    from_unix_seconds(secs)
}

/// Parses a naive local date-time (`YYYY-MM-DD hh:mm:ss` or with `T`) as
/// wall-clock time in `tz` and converts it to UTC. See [`local_to_utc`] for
/// how DST transitions are resolved.
pub fn parse_local(s: &str, tz: Tz) -> Result<DateTime<Utc>, TimestampError> {
    let naive = parse_naive(s.trim())?;
    // A year far outside ours is refused before any zone arithmetic: near
    // the ends of chrono's range (years ±262,143), applying an offset
    // overflowed and panicked (a Yelp `time_created` of
    // "+262142-12-31 23:59:59" took the daemon down).
    let year = naive.year();
    if !(MIN_YEAR - 1..=MAX_YEAR + 1).contains(&year) {
        return Err(TimestampError::OutOfRange(i64::from(year)));
    }
    in_range(local_to_utc(naive, tz))
}

/// A wall-clock time in `tz` as a UTC instant.
///
/// - A time that occurs twice (clocks go back) is taken as the **earlier**
///   instant: the platform most likely recorded it in the first pass, and a
///   consistent choice keeps the review's content hash stable across polls.
/// - A time that never occurs (clocks jump forward) is **shifted forward** by
///   the length of the gap, i.e. read with the offset in force just before
///   it: 02:30 on a spring-forward night in New York becomes 03:30 EDT. This
///   is what most calendar software does ("compatible" disambiguation).
pub fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    if let Some(dt) = tz.from_local_datetime(&naive).earliest() {
        return dt.with_timezone(&Utc);
    }
    // In a gap: walk back minute by minute to the last wall-clock time that
    // exists (offsets change on whole minutes), and use its offset. Checked
    // arithmetic: at the ends of chrono's range there is no minute before,
    // and no instant for the offset.
    let mut probe = naive;
    let limit = naive
        .checked_sub_signed(MAX_GAP)
        .unwrap_or(NaiveDateTime::MIN);
    while probe > limit {
        let Some(earlier) = probe.checked_sub_signed(Duration::minutes(1)) else {
            break;
        };
        probe = earlier;
        if let Some(before) = tz.from_local_datetime(&probe).earliest() {
            let offset = Duration::seconds(i64::from(before.offset().fix().local_minus_utc()));
            if let Some(utc) = naive.checked_sub_signed(offset) {
                return utc.and_utc();
            }
            break;
        }
    }
    // No zone has a gap this long; reading the time as UTC is the least wrong.
    naive.and_utc()
}

/// The form Travtus expects: UTC, exactly `YYYY-MM-DDThh:mm:ss`, no fraction
/// (dropped, not rounded) and no offset. A leap second is written `:59`
/// ([`fold_leap_second`]), never `:60`.
pub fn travtus_format(dt: DateTime<Utc>) -> String {
    fold_leap_second(dt).format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The earliest year a review may carry. No platform we read took reviews
/// before 2000 (Google's began in 2007, Yelp's in 2004), so an earlier time
/// is a zero, default or garbage value, not a review's age.
pub const EARLIEST_REVIEW_YEAR: i32 = 2000;

/// How far past our clock a review's time may lie. Clocks disagree by
/// seconds, and a platform that writes local time as UTC by up to 14 hours;
/// a time more than a day ahead is garbage, and taking it would also pin the
/// location's high-water mark in the future.
pub const FUTURE_TOLERANCE: TimeDelta = TimeDelta::days(1);

/// Why a well-formed review time is not believable (the record is
/// quarantined with this as the reason, after the field name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImplausibleTime {
    /// Before [`EARLIEST_REVIEW_YEAR`].
    #[error("{0} is before {EARLIEST_REVIEW_YEAR}: no review platform is that old")]
    TooEarly(String),
    /// More than [`FUTURE_TOLERANCE`] after now.
    #[error("{0} is more than a day in the future")]
    InFuture(String),
}

/// Checks that a review's create or update time is believable at `now`:
/// not before [`EARLIEST_REVIEW_YEAR`] and not more than
/// [`FUTURE_TOLERANCE`] ahead. Every platform mapper applies it, so a
/// record with such a time is quarantined rather than delivered.
pub fn check_review_time(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ImplausibleTime> {
    if t.year() < EARLIEST_REVIEW_YEAR {
        return Err(ImplausibleTime::TooEarly(travtus_format(t)));
    }
    if t > now + FUTURE_TOLERANCE {
        return Err(ImplausibleTime::InFuture(travtus_format(t)));
    }
    Ok(())
}

fn parse_naive(s: &str) -> Result<NaiveDateTime, TimestampError> {
    // `%.f` makes the fraction optional, with any number of digits.
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .map(fold_leap_second_naive)
        .map_err(|_| format_error(s, "a date-time like 2024-01-31T12:00:00"))
}

/// The last step of every parser: the year range, and no leap second.
fn in_range(dt: DateTime<Utc>) -> Result<DateTime<Utc>, TimestampError> {
    let year = dt.year();
    if (MIN_YEAR..=MAX_YEAR).contains(&year) {
        Ok(fold_leap_second(dt))
    } else {
        Err(TimestampError::OutOfRange(i64::from(year)))
    }
}

fn format_error(value: &str, expected: &'static str) -> TimestampError {
    // Cut long garbage so a reason stays one readable line.
    let value: String = value.chars().take(64).collect();
    TimestampError::Format { value, expected }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, NaiveDate, Timelike};
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("bad test timestamp {s}: {e}"))
    }

    #[test]
    fn rfc3339_accepts_fractions_and_offsets() {
        let cases = [
            ("2014-10-02T15:01:23Z", "2014-10-02T15:01:23"),
            ("2014-10-02T15:01:23.045Z", "2014-10-02T15:01:23"),
            ("2014-10-02T15:01:23.045123Z", "2014-10-02T15:01:23"),
            ("2014-10-02T15:01:23.045123456Z", "2014-10-02T15:01:23"),
            ("2014-10-02T15:01:23.999999999Z", "2014-10-02T15:01:23"),
            ("2014-10-02T15:01:23+02:00", "2014-10-02T13:01:23"),
            ("2014-10-02T01:01:23.5-05:30", "2014-10-02T06:31:23"),
            ("2014-10-02t15:01:23z", "2014-10-02T15:01:23"),
        ];
        for (input, want) in cases {
            let got = parse_rfc3339(input).map(travtus_format);
            assert_eq!(got.as_deref(), Ok(want), "{input}");
        }
        let nanos = parse_rfc3339("2014-10-02T15:01:23.045123456Z").map(|d| d.nanosecond());
        assert_eq!(nanos, Ok(45_123_456));
    }

    #[test]
    fn rfc3339_refuses_garbage_and_out_of_range_years() {
        for bad in [
            "",
            "yesterday",
            "2014-10-02",
            "2014-10-02T15:01:23",
            "2014-13-02T00:00:00Z",
        ] {
            assert!(
                matches!(parse_rfc3339(bad), Err(TimestampError::Format { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            Err(TimestampError::OutOfRange(1969))
        );
        // Before 1970 in UTC even though the local date says 1970.
        assert_eq!(
            parse_rfc3339("1970-01-01T00:30:00+01:00"),
            Err(TimestampError::OutOfRange(1969))
        );
        assert!(parse_rfc3339("1970-01-01T00:00:00Z").is_ok());
        assert!(parse_rfc3339("9999-12-31T23:59:59Z").is_ok());
    }

    #[test]
    fn naive_times_are_utc() {
        let want = Ok(utc("2024-03-01T12:34:56Z"));
        assert_eq!(parse_naive_utc("2024-03-01T12:34:56"), want);
        assert_eq!(parse_naive_utc("2024-03-01 12:34:56"), want);
        assert_eq!(
            parse_naive_utc("2024-03-01 12:34:56.789").map(travtus_format),
            Ok("2024-03-01T12:34:56".to_owned())
        );
        assert!(parse_naive_utc("2024-03-01").is_err());
        assert!(parse_naive_utc("2024-03-01T12:34:56Z").is_err());
    }

    #[test]
    fn zone_less_times_are_utc_and_zoned_ones_keep_their_offset() {
        let read = |s: &str| parse_rfc3339_or_naive_utc(s).map(travtus_format);
        assert_eq!(
            read("2013-09-07T13:37:00").as_deref(),
            Ok("2013-09-07T13:37:00")
        );
        assert_eq!(
            read("2013-09-07T13:37:00.123").as_deref(),
            Ok("2013-09-07T13:37:00")
        );
        assert_eq!(
            read("2013-09-07T15:37:00+02:00").as_deref(),
            Ok("2013-09-07T13:37:00")
        );
        assert_eq!(
            read("2013-09-07T13:37:00Z").as_deref(),
            Ok("2013-09-07T13:37:00")
        );
        assert_eq!(
            parse_rfc3339_or_naive_utc("soon"),
            Err(TimestampError::Format {
                value: "soon".into(),
                expected: "an RFC 3339 timestamp"
            })
        );
        assert_eq!(
            parse_rfc3339_or_naive_utc("1969-12-31T23:59:59"),
            Err(TimestampError::OutOfRange(1969))
        );
        assert!(
            parse_rfc3339_or_naive_utc("2013-09-07").is_err(),
            "a date alone"
        );
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(parse_unix_seconds("0"), Ok(utc("1970-01-01T00:00:00Z")));
        assert_eq!(
            parse_unix_seconds(" 1700000000 "),
            Ok(utc("2023-11-14T22:13:20Z"))
        );
        assert_eq!(
            parse_unix_seconds("-1"),
            Err(TimestampError::OutOfRange(1969))
        );
        assert!(parse_unix_seconds("17e8").is_err());
        assert!(from_unix_seconds(i64::MAX).is_err());
        assert_eq!(
            from_unix_seconds_f64(1_700_000_000.25).map(|d| (d.timestamp(), d.nanosecond())),
            Ok((1_700_000_000, 250_000_000))
        );
        assert!(from_unix_seconds_f64(f64::NAN).is_err());
        assert!(from_unix_seconds_f64(1e300).is_err());
    }

    #[test]
    fn local_times_resolve_dst_transitions() {
        let ny: Tz = chrono_tz::America::New_York;
        // Ordinary winter time: UTC-5.
        assert_eq!(
            parse_local("2024-01-15 10:00:00", ny),
            Ok(utc("2024-01-15T15:00:00Z"))
        );
        // 2024-11-03 01:30 happens twice (EDT then EST): the earlier, EDT.
        assert_eq!(
            parse_local("2024-11-03 01:30:00", ny),
            Ok(utc("2024-11-03T05:30:00Z"))
        );
        // 2024-03-10 02:30 never happens: shifted forward to 03:30 EDT.
        assert_eq!(
            parse_local("2024-03-10T02:30:00", ny),
            Ok(utc("2024-03-10T07:30:00Z"))
        );
        // Samoa skipped 2011-12-30 entirely (UTC-10 to UTC+14).
        let apia: Tz = chrono_tz::Pacific::Apia;
        assert_eq!(
            parse_local("2011-12-30 12:00:00", apia),
            Ok(utc("2011-12-30T22:00:00Z"))
        );
    }

    /// Regression: a naive time near the ends of chrono's range panicked
    /// in the zone arithmetic (`naive - offset`, `naive - MAX_GAP`).
    #[test]
    fn local_times_at_the_ends_of_chrono_s_range_are_refused_not_a_panic() {
        let zones = [
            chrono_tz::America::New_York,
            chrono_tz::America::Los_Angeles,
            chrono_tz::Pacific::Apia,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::UTC,
        ];
        for tz in zones {
            for (text, year) in [
                ("+262142-12-31 23:59:59", 262_142),
                ("-262143-01-01 00:00:00", -262_143),
                ("-262143-01-01 00:30:00", -262_143),
                ("+10001-01-01 00:00:00", 10_001),
                ("1968-12-31 23:59:59", 1968),
            ] {
                assert_eq!(
                    parse_local(text, tz),
                    Err(TimestampError::OutOfRange(year)),
                    "{tz} {text}"
                );
            }
        }
        let extremes = [NaiveDateTime::MIN, NaiveDateTime::MAX];
        for tz in zones {
            for naive in extremes {
                // Whatever it answers, it answers.
                let _ = local_to_utc(naive, tz);
            }
        }
    }

    #[test]
    fn travtus_format_drops_the_fraction() {
        let dt = NaiveDate::from_ymd_opt(2023, 1, 2)
            .and_then(|d| d.and_hms_nano_opt(8, 0, 59, 999_999_999))
            .map(|n| n.and_utc());
        assert_eq!(
            dt.map(travtus_format).as_deref(),
            Some("2023-01-02T08:00:59")
        );
    }

    #[test]
    fn review_times_before_2000_or_a_day_ahead_are_implausible() {
        let now = utc("2026-11-24T12:00:00Z");
        let check = |t: &str| check_review_time(utc(t), now);
        assert_eq!(check("2000-01-01T00:00:00Z"), Ok(()));
        assert_eq!(check("2026-11-25T12:00:00Z"), Ok(()), "a day of skew");
        assert_eq!(
            check("1999-12-31T23:59:59Z"),
            Err(ImplausibleTime::TooEarly("1999-12-31T23:59:59".into()))
        );
        assert_eq!(
            check("2026-11-25T12:00:01Z").map_err(|e| e.to_string()),
            Err("2026-11-25T12:00:01 is more than a day in the future".into())
        );
        assert_eq!(
            check("1970-01-01T00:00:00Z").map_err(|e| e.to_string()),
            Err("1970-01-01T00:00:00 is before 2000: no review platform is that old".into())
        );
    }

    /// A leap second, as every parser reads it: the last nanosecond of the
    /// second before, written `:59` for Travtus; ordered after the whole
    /// `:59` second and before the next minute.
    #[test]
    fn a_leap_second_folds_into_the_second_before_in_every_parser() {
        let folded = utc("2016-12-31T23:59:59.999999999Z");
        let ny: Tz = chrono_tz::America::New_York;
        let parsed = [
            ("rfc3339", parse_rfc3339("2016-12-31T23:59:60Z")),
            ("rfc3339 fraction", parse_rfc3339("2016-12-31T23:59:60.5Z")),
            ("rfc3339 offset", parse_rfc3339("2017-01-01T08:59:60+09:00")),
            (
                "rfc3339 lower case",
                parse_rfc3339("2016-12-31t23:59:60.123456789z"),
            ),
            ("naive", parse_naive_utc("2016-12-31T23:59:60")),
            ("naive space", parse_naive_utc("2016-12-31 23:59:60.25")),
            ("local", parse_local("2016-12-31 18:59:60", ny)),
        ];
        for (parser, t) in parsed {
            assert_eq!(t, Ok(folded), "{parser}");
            assert_eq!(
                t.map(travtus_format).as_deref(),
                Ok("2016-12-31T23:59:59"),
                "{parser}"
            );
        }
        // Unix seconds cannot name one: 1483228800 is the next day.
        assert_eq!(
            parse_unix_seconds("1483228800")
                .map(travtus_format)
                .as_deref(),
            Ok("2017-01-01T00:00:00")
        );
        assert!(parse_rfc3339("2016-12-31T23:59:59.999Z").unwrap() < folded);
        assert!(folded < utc("2017-01-01T00:00:00Z"));
        // A leap second made elsewhere (chrono's own representation) is
        // still written `:59`.
        let raw = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .map(|n| n.and_utc())
            .unwrap();
        assert_eq!(travtus_format(raw), "2016-12-31T23:59:59");
        assert_eq!(fold_leap_second(raw), folded);
        assert_eq!(fold_leap_second(folded), folded);
        assert_eq!(
            check_review_time(folded, utc("2026-01-01T00:00:00Z")),
            Ok(())
        );
    }

    /// Instants from 1970 to 9999 with a random fraction.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..253_402_300_799, 0u32..1_000_000_000)
            .prop_filter_map("valid instant", |(s, n)| DateTime::from_timestamp(s, n))
    }

    proptest! {
        #[test]
        fn only_times_from_2000_to_a_day_ahead_are_plausible(
            dt in instant(),
            now in instant(),
        ) {
            let plausible = dt.year() >= EARLIEST_REVIEW_YEAR && dt <= now + FUTURE_TOLERANCE;
            prop_assert_eq!(check_review_time(dt, now).is_ok(), plausible);
        }

        #[test]
        fn parsers_never_panic_and_keep_the_range(text in "\\PC{0,40}", secs in any::<i64>(), f in any::<f64>()) {
            let ny: Tz = chrono_tz::America::New_York;
            let parsed = [
                parse_rfc3339(&text),
                parse_naive_utc(&text),
                parse_unix_seconds(&text),
                parse_local(&text, ny),
                from_unix_seconds(secs),
                from_unix_seconds_f64(f),
            ];
            for t in parsed.into_iter().flatten() {
                prop_assert_eq!(travtus_format(t).len(), 19);
                prop_assert!(t.nanosecond() < 1_000_000_000, "a leap second left a parser: {:?}", t);
            }
        }

        #[test]
        fn a_leap_second_at_any_offset_and_fraction_is_the_end_of_its_minute(
            minute in 2i64..166_666_666, // whole minutes, 1970-01-01T00:02 .. 2286
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
            fraction in prop::option::of("[0-9]{1,9}"),
            separator in prop::sample::select(vec!["T", " "]),
        ) {
            // The minute ending at `end`, written as its `:60` second.
            let end = DateTime::from_timestamp(minute * 60, 0)
                .ok_or_else(|| TestCaseError::fail("instant"))?;
            let last = end - Duration::seconds(1);
            let offset = FixedOffset::east_opt(offset_minutes * 60)
                .ok_or_else(|| TestCaseError::fail("offset"))?;
            let local = last.with_timezone(&offset);
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let stem = local.format("%Y-%m-%dT%H:%M:").to_string();
            let text = format!("{stem}60{fraction}{}", local.format("%:z"));
            let parsed = parse_rfc3339(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let want = last.with_nanosecond(999_999_999).ok_or_else(|| TestCaseError::fail("nanos"))?;
            prop_assert_eq!(parsed, want, "{}", text);
            prop_assert_eq!(travtus_format(parsed), travtus_format(last));
            prop_assert!(parsed < end && parsed > last);
            // The same second without an offset, read as UTC.
            let naive = format!("{}{separator}{}60{fraction}", last.format("%Y-%m-%d"), last.format("%H:%M:"));
            prop_assert_eq!(parse_naive_utc(&naive), Ok(want), "{}", naive);
        }

        #[test]
        fn format_then_parse_is_the_same_second(dt in instant()) {
            let text = travtus_format(dt);
            prop_assert_eq!(text.len(), 19);
            let back = parse_naive_utc(&text);
            prop_assert_eq!(back, Ok(dt.with_nanosecond(0).unwrap_or(dt)));
        }

        #[test]
        fn rfc3339_with_any_offset_and_fraction_converts_to_utc(
            dt in (86_400i64..253_402_128_000, 0u32..1_000_000_000)
                .prop_filter_map("valid instant", |(s, n)| DateTime::from_timestamp(s, n)),
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
            digits in 0usize..=9,
        ) {
            let offset = FixedOffset::east_opt(offset_minutes * 60)
                .ok_or_else(|| TestCaseError::fail("offset"))?;
            let local = dt.with_timezone(&offset);
            let fraction = if digits == 0 {
                String::new()
            } else {
                format!(".{:09}", dt.nanosecond())[..=digits].to_owned()
            };
            let text = format!("{}{}{}", local.format("%Y-%m-%dT%H:%M:%S"), fraction, local.format("%:z"));
            let parsed = parse_rfc3339(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Same second, and the fraction kept to the digits written.
            prop_assert_eq!(parsed.timestamp(), dt.timestamp());
            let scale = 10u32.pow(9 - digits as u32);
            prop_assert_eq!(parsed.nanosecond(), dt.nanosecond() / scale * scale);
        }
    }
}
