//! Terminal output in Docker's habits: aligned tables, "2 hours ago",
//! decimal sizes ("1.23MB"), and JSON.

use std::io::{self, Write};

use tabwriter::TabWriter;
use time::OffsetDateTime;

/// Writes tab-separated rows as an aligned table (Docker's tabwriter
/// settings: minimum width 10 padding included, padding 3; this crate adds
/// the padding to the minimum, so 7 here).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let stdout = io::stdout();
    let mut tw = TabWriter::new(stdout.lock()).minwidth(7).padding(3);
    writeln!(tw, "{}", header.join("\t"))?;
    for row in rows {
        writeln!(tw, "{}", row.join("\t"))?;
    }
    tw.flush()
}

/// Docker's `HumanSizeWithPrecision(size, 3)`: decimal units, 3 significant digits.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 3)
}

/// Docker's `HumanSizeWithPrecision`: decimal units, `precision`
/// significant digits (Go's `%.*g`), no trailing zeros.
pub fn human_size_with_precision(bytes: u64, precision: usize) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let int_digits = if value >= 100.0 {
        3
    } else if value >= 10.0 {
        2
    } else {
        1
    };
    let digits = precision.saturating_sub(int_digits);
    let mut s = format!("{value:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[unit])
}

/// One JSON line as the docker client writes `--format json`: Go's encoder
/// escapes `<`, `>` and `&` (which only occur inside strings).
pub fn go_json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let text = serde_json::to_string(value)?;
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

/// A time as Docker's `--format` shows `CreatedAt` (Go's `time.String`,
/// in UTC): `2024-05-01 12:00:00 +0000 UTC`.
pub fn docker_time(unix_seconds: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub use wrun_api::time::human_duration;

/// "2 hours ago" for an RFC 3339 time; "N/A" when absent or unparsable.
pub fn ago(rfc3339: Option<&str>) -> String {
    match rfc3339.and_then(wrun_api::time::parse) {
        Some(t) => {
            let secs = (OffsetDateTime::now_utc() - t).whole_seconds();
            format!("{} ago", human_duration(secs))
        }
        None => "N/A".into(),
    }
}

/// Pretty JSON with Docker's four-space indentation.
pub fn print_json_pretty<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    io::stdout().write_all(&out)?;
    Ok(())
}

/// Prints `inspect` results as Docker does: a pretty JSON array, or each
/// object through the `--format` template.
pub fn print_inspected<T: serde::Serialize>(
    found: &[T],
    format: Option<&str>,
) -> anyhow::Result<()> {
    match format {
        None | Some("json") => print_json_pretty(&found),
        Some(template) => {
            for item in found {
                println!(
                    "{}",
                    render_template(template, &serde_json::to_value(item)?)?
                );
            }
            Ok(())
        }
    }
}

/// Renders a Go-template-like `--format` string against a JSON value:
/// `{{.Field}}`, `{{.A.B}}`, `{{json .Field}}` and `{{json .}}`, which covers
/// what scripts commonly pass to `docker inspect -f`.
pub fn render_template(template: &str, value: &serde_json::Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            anyhow::anyhow!("template parsing error: unclosed action in {template:?}")
        })?;
        let action = after[..end].trim();
        let (json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        if !path.starts_with('.') {
            anyhow::bail!(
                "template: unsupported action {{{{{action}}}}} (use {{{{.Field}}}} or {{{{json .Field}}}})"
            );
        }
        let mut v = value;
        for key in path[1..].split('.').filter(|k| !k.is_empty()) {
            v = v
                .get(key)
                .ok_or_else(|| anyhow::anyhow!("template: can't evaluate field {key} in {path}"))?;
        }
        match (json, v) {
            (false, serde_json::Value::String(s)) => out.push_str(s),
            (false, serde_json::Value::Null) => out.push_str("<no value>"),
            (_, other) => out.push_str(&serde_json::to_string(other)?),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(53954), "54kB");
        assert_eq!(human_size(1_234_567), "1.23MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(200_000_000), "200MB");
        assert_eq!(human_size(56_832), "56.8kB");
        assert_eq!(human_size_with_precision(56_832, 4), "56.83kB");
        assert_eq!(human_size_with_precision(762_424, 4), "762.4kB");
    }

    #[test]
    fn json_lines_escape_as_gos_encoder() {
        let line = go_json(
            &serde_json::json!({"Ports": "0.0.0.0:80->7/tcp", "Digest": "<none>", "A": "a&b"}),
        );
        assert_eq!(
            line.unwrap(),
            r#"{"A":"a\u0026b","Digest":"\u003cnone\u003e","Ports":"0.0.0.0:80-\u003e7/tcp"}"#
        );
    }

    #[test]
    fn times_read_as_gos_time_string() {
        assert_eq!(docker_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(docker_time(1_796_656_615), "2026-12-07 15:16:55 +0000 UTC");
    }

    #[test]
    fn template_renders_fields_and_json() {
        let v = serde_json::json!({"Id": "sha256:abc", "Config": {"Env": ["A=1"]}});
        assert_eq!(render_template("{{.Id}}", &v).unwrap(), "sha256:abc");
        assert_eq!(
            render_template("x={{json .Config.Env}}", &v).unwrap(),
            "x=[\"A=1\"]"
        );
        assert!(render_template("{{.Nope}}", &v).is_err());
    }
}
