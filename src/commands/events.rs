//! `wrun events [--since T] [--until T] [--filter K=V] [--format F]`:
//! stream what happens to instances and images, as Docker's JSON lines, a
//! Go template of each, or one readable line each.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use hyper::Method;
use time::OffsetDateTime;

use super::DaemonTarget;
use crate::output::{GoTemplate, JsonEscape, template_value};
use wrun_api::system::EventMessage;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show events since this time: Unix seconds, RFC 3339, or a duration ago (10m, 1h30m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stop at this time (same forms as --since); without it, stream until interrupted
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Filter: type=, event=, container=, image=, network=, label= (repeatable)
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// `json` for one JSON object per line, or a Go template of each event
    /// ({{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "name"}} {{.Time}} {{.TimeNano}})
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// A time as Unix seconds with nanoseconds, as Docker's CLI sends it.
fn timestamp(raw: &str, now: OffsetDateTime) -> anyhow::Result<String> {
    let at = if let Some(t) = wrun_api::time::parse(raw) {
        t
    } else if let Some(d) = parse_duration(raw) {
        now - d
    } else if let Some((s, f)) = raw.split_once('.').or(Some((raw, "")))
        && s.parse::<i64>().is_ok()
        && f.bytes().all(|b| b.is_ascii_digit())
        && f.len() <= 9
    {
        return Ok(raw.to_string());
    } else {
        bail!("invalid time {raw:?}: use Unix seconds, RFC 3339, or a duration such as 10m");
    };
    let nanos = at.unix_timestamp_nanos();
    Ok(format!(
        "{}.{:09}",
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000)
    ))
}

/// `90s`, `10m`, `1h30m`, `2h`.
fn parse_duration(raw: &str) -> Option<time::Duration> {
    let mut total = 0i64;
    let mut digits = String::new();
    let mut any = false;
    for ch in raw.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        total += n * match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        any = true;
    }
    (any && digits.is_empty()).then(|| time::Duration::seconds(total))
}

fn readable(m: &EventMessage) -> String {
    let when = OffsetDateTime::from_unix_timestamp_nanos(i128::from(m.time_nano))
        .map(wrun_api::time::format)
        .unwrap_or_default();
    let attrs = m
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{when} {} {} {} ({attrs})", m.kind, m.action, m.actor.id)
}

/// Docker runs an events template on its Go structure, whose field names
/// differ from the JSON keys for these.
fn go_field_names(message: &mut serde_json::Value) {
    if let Some(map) = message.as_object_mut() {
        for (json, go) in [
            ("status", "Status"),
            ("id", "ID"),
            ("from", "From"),
            ("scope", "Scope"),
            ("time", "Time"),
            ("timeNano", "TimeNano"),
        ] {
            if let Some(v) = map.remove(json) {
                map.insert(go.to_string(), v);
            }
        }
    }
}

pub fn run(target: &DaemonTarget, args: EventsArgs) -> anyhow::Result<ExitCode> {
    // `json` is docker's `{{json .}}`: the daemon's line as it came.
    let template = match args.format.as_deref() {
        None | Some("json" | "{{json .}}") => None,
        Some(text) => Some(
            GoTemplate::parse(text, JsonEscape::Never)
                .map_err(|e| anyhow::anyhow!("Error parsing format: {e}"))?,
        ),
    };
    let json = args.format.is_some();
    let now = OffsetDateTime::now_utc();
    let mut query = Vec::new();
    if let Some(s) = &args.since {
        query.push(format!("since={}", super::escape(&timestamp(s, now)?)));
    }
    if let Some(u) = &args.until {
        query.push(format!("until={}", super::escape(&timestamp(u, now)?)));
    }
    if !args.filters.is_empty() {
        query.push(format!(
            "filters={}",
            super::escape(&super::filters_json(&args.filters)?)
        ));
    }
    let path = format!("/events?{}", query.join("&"));
    let mut pending = Vec::new();
    let stdout = std::io::stdout();
    target.client()?.stream(Method::GET, &path, |chunk| {
        pending.extend_from_slice(chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let mut out = stdout.lock();
            if let Some(t) = &template {
                let mut message: serde_json::Value = serde_json::from_slice(&line)?;
                go_field_names(&mut message);
                let text = t
                    .render(&template_value(&message))
                    .map_err(|e| anyhow::anyhow!("template: {e}"))?;
                writeln!(out, "{text}")?;
            } else if json {
                out.write_all(&line)?;
            } else if let Ok(m) = serde_json::from_slice::<EventMessage>(&line) {
                writeln!(out, "{}", readable(&m))?;
            }
            out.flush()?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_become_unix_seconds() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        assert_eq!(timestamp("10m", now).unwrap(), "999400.000000000");
        assert_eq!(timestamp("1h30m", now).unwrap(), "994600.000000000");
        assert_eq!(timestamp("12345", now).unwrap(), "12345");
        assert_eq!(
            timestamp("1970-01-12T13:46:40Z", now).unwrap(),
            "1000000.000000000"
        );
        assert!(timestamp("yesterday", now).is_err());
        assert!(timestamp("10x", now).is_err());
    }
}
