//! Durations and times given on the command line, parsed for clap and
//! bounded, so that no value a user can type reaches `Instant + d` or
//! chrono arithmetic out of range: an out-of-range value is a usage error
//! (exit 2) naming the flag and the bound, never a panic.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use std::time::Duration;

/// The longest `sync --wait`: a week. `sync` is one pass; a longer wait is
/// the daemon's job (`run`), and the bound keeps `now + wait` far from the
/// end of the monotonic clock's range (which `18446744073709551615s` passed).
pub(super) const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The years a time on the command line may name: those the ledger can
/// store and compare (fixed-width `YYYY` text, see `ledger::format_time`).
const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

/// clap's parser of `sync --wait`: a humantime duration (`90s`, `2m`,
/// `1h 30m`) up to [`MAX_WAIT`].
pub(super) fn wait(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d > MAX_WAIT {
        return Err(format!(
            "too long: at most {} ({} s)",
            humantime::format_duration(MAX_WAIT),
            MAX_WAIT.as_secs()
        ));
    }
    Ok(d)
}

/// clap's check of `--since` and `--before`: the text is kept (the command
/// parses it again with [`parse_time`], which then cannot fail).
pub(super) fn time_arg(text: &str) -> Result<String, String> {
    parse_time(text).map(|_| text.to_owned())
}

/// A time on the command line: RFC 3339, or a date (midnight UTC), in the
/// years 0000..=9999. A leap second (`23:59:60`) is read as the end of the
/// second before it, as platform times are (`timestamps`).
pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = match DateTime::parse_from_rfc3339(text) {
        Ok(t) => review_sync::timestamps::fold_leap_second(t.with_timezone(&Utc)),
        Err(_) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|e| {
                format!(
                    "{e}: expected a date (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)"
                )
            })?
            .and_time(NaiveTime::MIN)
            .and_utc(),
    };
    if !YEARS.contains(&t.year()) {
        return Err(format!(
            "year {} is out of range: from {} to {}",
            t.year(),
            YEARS.start(),
            YEARS.end()
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_bounded_by_a_week() {
        assert_eq!(wait("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(wait("1week"), Ok(MAX_WAIT));
        for huge in ["18446744073709551615s", "500000000000y", "1week 1s"] {
            let e = wait(huge).unwrap_err();
            assert!(e.contains("at most 7days (604800 s)"), "{huge}: {e}");
        }
        assert!(wait("soon").is_err());
    }

    #[test]
    fn times_stay_within_the_years_the_ledger_stores() {
        assert_eq!(
            parse_time("2026-01-31").map(|t| t.to_rfc3339()),
            Ok("2026-01-31T00:00:00+00:00".to_owned())
        );
        assert!(parse_time("0000-01-01").is_ok());
        assert!(parse_time("9999-12-31T23:59:59Z").is_ok());
        for out in ["-99999-01-01", "+10000-01-01", "99999-01-01", "-0001-12-31"] {
            assert!(parse_time(out).is_err(), "{out}");
        }
        let e = parse_time("-99999-01-01").unwrap_err();
        assert!(
            e.contains("year -99999 is out of range: from 0 to 9999"),
            "{e}"
        );
        assert!(
            parse_time("yesterday")
                .unwrap_err()
                .contains("expected a date")
        );
    }

    #[test]
    fn a_leap_second_is_the_end_of_the_second_before() {
        let t = parse_time("2016-12-31T23:59:60Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2016-12-31T23:59:59.999999999+00:00");
    }
}
