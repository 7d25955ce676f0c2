//! Times as the API writes them: RFC 3339 text, Unix seconds, and Docker's
//! human durations ("About a minute") for status columns.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The zero time as Docker writes it for "never" (e.g. `FinishedAt`).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The current time in RFC 3339, UTC, with nanoseconds.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// `t` in RFC 3339.
pub fn format(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// An RFC 3339 time; `None` when absent or unparsable.
pub fn parse(rfc3339: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(rfc3339, &Rfc3339).ok()
}

/// Unix seconds of an RFC 3339 time; `None` when absent or unparsable.
pub fn unix_seconds(rfc3339: Option<&str>) -> Option<i64> {
    rfc3339.and_then(parse).map(|t| t.unix_timestamp())
}

/// What [`unix_nanos`] reads, as the API description's pattern: an optional
/// minus, up to 12 digits of seconds, optionally a point and 1 to 9 digits;
/// or nothing (the routes read an empty value as no bound, as Docker does).
pub const UNIX_TIME_PATTERN: &str = r"^(-?[0-9]{1,12}(\.[0-9]{1,9})?)?$";

/// A `since`/`until` query value as Docker's daemon reads it (Unix seconds,
/// optionally negative, with an optional fraction scaled to nanoseconds):
/// the nanoseconds, or `None` when it is not that. The empty value is the
/// caller's "no bound"; here it is `None` like any other bad text.
pub fn unix_nanos(value: &str) -> Option<i128> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let (secs, fraction) = match digits.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (digits, None),
    };
    let all_digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(secs, 12) || fraction.is_some_and(|f| !all_digits(f, 9)) {
        return None;
    }
    let mut nanos = secs.parse::<i128>().ok()? * 1_000_000_000;
    if let Some(f) = fraction {
        // ".5" is half a second: the digits padded to nine.
        nanos += format!("{f:0<9}").parse::<i128>().ok()?;
    }
    Some(if digits.len() < value.len() {
        -nanos
    } else {
        nanos
    })
}

/// Docker's `HumanDuration`: "Less than a second", "About a minute",
/// "3 hours", "2 weeks", ...
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = minutes / 60;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(56 * 365 * 86400), "56 years");
    }

    #[test]
    fn times_round_trip_through_rfc3339() {
        let text = now();
        let t = parse(&text).expect("now() parses");
        assert_eq!(format(t), text);
        assert_eq!(unix_seconds(Some("1970-01-01T00:01:00Z")), Some(60));
        assert_eq!(unix_seconds(Some("yesterday")), None);
        assert_eq!(unix_seconds(None), None);
    }

    #[test]
    fn unix_times_read_as_dockers_daemon_reads_them() {
        assert_eq!(unix_nanos("0"), Some(0));
        assert_eq!(unix_nanos("12"), Some(12_000_000_000));
        assert_eq!(unix_nanos("-5"), Some(-5_000_000_000));
        assert_eq!(unix_nanos("-1.5"), Some(-1_500_000_000));
        assert_eq!(unix_nanos("1.5"), Some(1_500_000_000));
        assert_eq!(
            unix_nanos("1796656669.123456789"),
            Some(1_796_656_669_123_456_789)
        );
        assert_eq!(unix_nanos("3.000000001"), Some(3_000_000_001));
        // Exactly what the pattern of the API description takes, no more.
        let pattern = regex::Regex::new(UNIX_TIME_PATTERN).unwrap();
        for bad in [
            "",
            "abc",
            "10m",
            "+5",
            "--5",
            "-",
            "1.",
            ".5",
            "1.+5",
            "1.-5",
            "1.0000000001",
            "2020-01-01T00:00:00Z",
            "9999999999999",
            " 1",
        ] {
            assert_eq!(unix_nanos(bad), None, "{bad:?}");
            assert_eq!(pattern.is_match(bad), bad.is_empty(), "{bad:?}");
        }
        for good in ["0", "-5", "1.5", "999999999999.999999999"] {
            assert!(pattern.is_match(good), "{good:?}");
        }
    }
}
