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
}
