//! `wrun logs [-f] [-t] [--since T] [--until T] [--tail N] INSTANCE`: the
//! instance's stdout and stderr, as `docker logs`.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::DaemonTarget;
use crate::client::{Demux, print_frame};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output until the instance ends
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show timestamps (RFC 3339 with nanoseconds, UTC) before each line
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs since a time (e.g. 2013-01-02T13:23:37Z, Unix seconds) or a duration back from now (e.g. 42m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Show logs before a time (e.g. 2013-01-02T13:23:37Z, Unix seconds) or a duration back from now (e.g. 42m)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Number of lines to show from the end ("all" by default)
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    pub tail: String,
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
}

pub fn run(target: &DaemonTarget, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let mut path = format!(
        "/containers/{}/logs?stdout=1&stderr=1&follow={}&tail={}&timestamps={}",
        super::escape(&args.instance),
        u8::from(args.follow),
        super::escape(&args.tail),
        u8::from(args.timestamps),
    );
    for (key, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(value) = value {
            let t = api_timestamp(value, now)
                .map_err(|e| anyhow::anyhow!("invalid value for --{key}: {e}"))?;
            path.push_str(&format!("&{key}={t}"));
        }
    }
    let mut demux = Demux::default();
    target.client()?.stream(Method::GET, &path, |bytes| {
        demux.feed(bytes, print_frame)?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What the docker CLI sends for `--since` and `--until`: Unix seconds
/// (`SECONDS.NANOSECONDS` for a date), from a Go duration back from `now`
/// (`10m`, `1h30m`; whole seconds, as docker's), an RFC 3339 date or a
/// shorter one (`2006-01-02`, `2006-01-02T15`, `2006-01-02T15:04`, each
/// with an optional zone), or Unix seconds as given. A date without a zone
/// is read as UTC (docker reads it in the local zone).
fn api_timestamp(value: &str, now: OffsetDateTime) -> Result<String, String> {
    if value != "0"
        && let Some(back) = go_duration_nanos(value)
    {
        let then =
            i128::from(now.unix_timestamp()) * 1_000_000_000 + i128::from(now.nanosecond()) - back;
        return Ok(then.div_euclid(1_000_000_000).to_string());
    }
    if let Some(t) = date_time(value) {
        return Ok(format!("{}.{:09}", t.unix_timestamp(), t.nanosecond()));
    }
    // Docker's rule: with a `-` it was meant as a date, else it may be
    // Unix seconds already, passed on as they are.
    let (secs, fraction) = value
        .split_once('.')
        .map_or((value, None), |(s, f)| (s, Some(f)));
    let digits = |s: &str| s.parse::<i64>().is_ok();
    if !value.contains('-') && digits(secs) && fraction.is_none_or(digits) {
        return Ok(value.to_owned());
    }
    Err(format!(
        "failed to parse value as time or duration: {value:?}"
    ))
}

/// A Go duration (`300ms`, `-1.5h`, `2h45m`) in nanoseconds.
fn go_duration_nanos(s: &str) -> Option<i128> {
    let (sign, mut rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = after;
    }
    (total < 9.3e18).then_some(sign * total as i128)
}

/// `YYYY-MM-DD[THH[:MM[:SS[.FRACTION]]]][Z|±HH:MM]`, UTC when no zone.
fn date_time(s: &str) -> Option<OffsetDateTime> {
    fn number(s: &str, len: usize) -> Option<(u32, &str)> {
        let head = s.get(..len)?;
        if !head.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((head.parse().ok()?, &s[len..]))
    }
    fn expect(s: &str, c: char) -> Option<&str> {
        s.strip_prefix(c)
    }
    let (year, rest) = number(s, 4)?;
    let (month, rest) = number(expect(rest, '-')?, 2)?;
    let (day, mut rest) = number(expect(rest, '-')?, 2)?;
    let date = Date::from_calendar_date(
        i32::try_from(year).ok()?,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0);
    if let Some(t) = rest.strip_prefix('T') {
        let (h, r) = number(t, 2)?;
        hour = h;
        rest = r;
        if let Some(r) = rest.strip_prefix(':') {
            let (m, r) = number(r, 2)?;
            minute = m;
            rest = r;
            if let Some(r) = rest.strip_prefix(':') {
                let (sec, r) = number(r, 2)?;
                second = sec;
                rest = r;
                if let Some(r) = rest.strip_prefix('.') {
                    let len = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                    if len == 0 || len > 9 {
                        return None;
                    }
                    let (frac, r) = number(r, len)?;
                    nanos = frac * 10u32.pow(9 - len as u32);
                    rest = r;
                }
            }
        }
    }
    let offset = match rest {
        "" | "Z" | "z" => UtcOffset::UTC,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, r) = number(&zone[1..], 2)?;
            let (m, r) = number(expect(r, ':')?, 2)?;
            if !r.is_empty() {
                return None;
            }
            UtcOffset::from_hms(
                sign * i8::try_from(h).ok()?,
                sign * i8::try_from(m).ok()?,
                0,
            )
            .ok()?
        }
    };
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_until_become_what_the_docker_cli_sends() {
        // 2026-12-07T15:00:00.5Z
        let now = OffsetDateTime::from_unix_timestamp_nanos(1_796_655_600_500_000_000).unwrap();
        let cases = [
            ("10m", "1796655000"),
            ("1h30m", "1796650200"),
            ("1.5s", "1796655599"),
            ("-5s", "1796655605"),
            ("0", "0"),
            ("1796655600", "1796655600"),
            ("1796655600.25", "1796655600.25"),
            ("2026-12-07", "1796601600.000000000"),
            ("2026-12-07T15", "1796655600.000000000"),
            ("2026-12-07T15:04", "1796655840.000000000"),
            ("2026-12-07T15:04:05Z", "1796655845.000000000"),
            ("2026-12-07T15:04:05.123456789Z", "1796655845.123456789"),
            ("2026-12-07T15:04:05.5+01:00", "1796652245.500000000"),
            ("2026-12-07T15:04:05-02:30", "1796664845.000000000"),
        ];
        for (given, sent) in cases {
            assert_eq!(api_timestamp(given, now).as_deref(), Ok(sent), "{given}");
        }
        for bad in [
            "abc",
            "10x",
            "2026-13-01",
            "2026-12-07T25",
            "1.2.3",
            "",
            "1e3",
        ] {
            assert_eq!(
                api_timestamp(bad, now),
                Err(format!(
                    "failed to parse value as time or duration: {bad:?}"
                )),
                "{bad}"
            );
        }
    }
}
