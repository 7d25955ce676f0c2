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
/// object through the `--format` Go template (`template parsing error: …`
/// when it does not parse or a key is missing, as docker's raw fallback).
pub fn print_inspected<T: serde::Serialize>(
    found: &[T],
    format: Option<&str>,
) -> anyhow::Result<()> {
    match format {
        None | Some("json") => print_json_pretty(&found),
        Some(text) => {
            let template = GoTemplate::parse(text, JsonEscape::Never)
                .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
            let mut out = String::new();
            for item in found {
                let value = template_value(&serde_json::to_value(item)?);
                out.push_str(
                    &template
                        .render(&value)
                        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?,
                );
                out.push('\n');
            }
            io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
    }
}

/// Whether the `json` template function escapes `<`, `>` and `&` in a map
/// (Docker's listing rows marshal themselves with Go's `json.Marshal`, which
/// escapes; its `json` function on anything else does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonEscape {
    Never,
    Maps,
}

/// A `--format` Go template (Go's `text/template`, through `gotmpl`) with
/// the functions the docker client registers: `json`, `split`, `join`,
/// `title`, `lower`, `upper`, `pad`, `truncate`, besides Go's builtins
/// (`index`, `len`, `printf`, `println`, `eq`, …). A missing key is an
/// error, as in docker (`map has no entry for key`).
pub struct GoTemplate {
    template: gotmpl::Template,
}

impl GoTemplate {
    pub fn parse(text: &str, escape: JsonEscape) -> Result<Self, TemplateFailure> {
        let template = docker_functions(gotmpl::Template::new(""), escape)
            .missing_key(gotmpl::MissingKey::Error)
            .parse(&rewrite_label_method(text))
            .map_err(TemplateFailure)?;
        Ok(GoTemplate { template })
    }

    /// The template's header line: the same template run over a map from
    /// each field to its column title, with docker's header functions
    /// (which return their first argument unchanged).
    fn parse_header(text: &str) -> Result<Self, TemplateFailure> {
        let mut t = gotmpl::Template::new("");
        for name in ["json", "title", "lower", "upper"] {
            t = t.func(name, |args: &[gotmpl::Value]| Ok(first_arg(args)));
        }
        for name in ["split", "join", "pad", "truncate"] {
            t = t.func(name, |args: &[gotmpl::Value]| Ok(first_arg(args)));
        }
        // `.Label "com.example.key"` is headed by the key's last part.
        t = t.func("label", |args: &[gotmpl::Value]| {
            let key = args.get(1).and_then(|v| v.as_str()).unwrap_or("");
            let last = key.rsplit('.').next().unwrap_or(key);
            Ok(gotmpl::Value::String(
                last.replace(['-', '_'], " ").as_str().into(),
            ))
        });
        let template = t
            .parse(&rewrite_label_method(text))
            .map_err(TemplateFailure)?;
        Ok(GoTemplate { template })
    }

    pub fn render(&self, value: &gotmpl::Value) -> Result<String, TemplateFailure> {
        self.template
            .execute_to_string(value)
            .map_err(TemplateFailure)
    }
}

/// A template that does not parse or run, told in Go's words where the
/// engine's differ (`function "x" not defined`, `map has no entry for key "K"`).
#[derive(Debug)]
pub struct TemplateFailure(gotmpl::TemplateError);

impl std::fmt::Display for TemplateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            gotmpl::TemplateError::UndefinedFunction(name) => {
                write!(f, "template: function {name:?} not defined")
            }
            gotmpl::TemplateError::MissingKey { key } => {
                write!(f, "template: map has no entry for key {key:?}")
            }
            other => write!(f, "{other}"),
        }
    }
}

fn first_arg(args: &[gotmpl::Value]) -> gotmpl::Value {
    args.first().cloned().unwrap_or(gotmpl::Value::Nil)
}

/// Docker's listing contexts have one method that takes an argument,
/// `.Label "KEY"`; the engine has fields only, so such a call becomes the
/// function `label . "KEY"` (only as a word inside an action, outside
/// string literals).
fn rewrite_label_method(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open + 2]);
        rest = &rest[open + 2..];
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut prev = '{';
        let mut end = rest.len();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q != '`' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                    out.push(c);
                }
                None if c == '}' && rest[i..].starts_with("}}") => {
                    end = i;
                    break;
                }
                None if c == '"' || c == '`' || c == '\'' => {
                    quote = Some(c);
                    out.push(c);
                }
                None if c == '.'
                    && rest[i..].starts_with(".Label")
                    && (prev.is_whitespace() || matches!(prev, '{' | '(' | '|' | '-'))
                    && rest[i + 6..]
                        .chars()
                        .next()
                        .is_none_or(|n| n.is_whitespace() || matches!(n, ')' | '}' | '|')) =>
                {
                    out.push_str("label .");
                    for _ in 0..5 {
                        chars.next();
                    }
                }
                None => out.push(c),
            }
            prev = c;
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A JSON document as a template value: objects become maps (sorted, as
/// Go ranges over them), numbers keep their integer-ness.
pub fn template_value(json: &serde_json::Value) -> gotmpl::Value {
    use gotmpl::Value;
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::Uint(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(template_value).collect()),
        serde_json::Value::Object(map) => Value::Map(std::sync::Arc::new(
            map.iter()
                .map(|(k, v)| (k.as_str().into(), template_value(v)))
                .collect(),
        )),
    }
}

/// The reverse of [`template_value`], for the `json` function.
fn json_value(value: &gotmpl::Value) -> serde_json::Value {
    use gotmpl::Value;
    match value {
        Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(items) => serde_json::Value::Array(items.iter().map(json_value).collect()),
        Value::Map(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), json_value(v)))
                .collect(),
        ),
    }
}

fn template_error(message: String) -> gotmpl::TemplateError {
    gotmpl::TemplateError::Exec(message)
}

fn string_arg<'a>(name: &str, args: &'a [gotmpl::Value], i: usize) -> gotmpl::Result<&'a str> {
    match args.get(i) {
        Some(gotmpl::Value::String(s)) => Ok(s),
        Some(other) => Err(template_error(format!(
            "wrong type for value; expected string; got {} (argument {} of {name})",
            other.type_name(),
            i + 1
        ))),
        None => Err(template_error(format!(
            "wrong number of args for {name}: want {} got {}",
            i + 1,
            args.len()
        ))),
    }
}

fn int_arg(name: &str, args: &[gotmpl::Value], i: usize) -> gotmpl::Result<i64> {
    args.get(i).and_then(gotmpl::Value::as_int).ok_or_else(|| {
        template_error(format!(
            "wrong type for value; expected int (argument {} of {name})",
            i + 1
        ))
    })
}

fn arg_count(name: &str, args: &[gotmpl::Value], want: usize) -> gotmpl::Result<()> {
    if args.len() == want {
        Ok(())
    } else {
        Err(template_error(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        )))
    }
}

fn text(s: impl AsRef<str>) -> gotmpl::Value {
    gotmpl::Value::String(s.as_ref().into())
}

/// Go's `strings.Title`: a letter after a non-letter, non-digit (other
/// than `_` and `'`) is upper-cased.
fn title_case(s: &str) -> String {
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let separator = !(prev.is_alphanumeric() || prev == '_' || prev == '\'');
            prev = c;
            if separator {
                c.to_uppercase().collect::<String>()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn docker_functions(t: gotmpl::Template, escape: JsonEscape) -> gotmpl::Template {
    use gotmpl::Value;
    t.func("json", move |args: &[Value]| {
        arg_count("json", args, 1)?;
        let json = json_value(&args[0]);
        let text_out = match (&args[0], escape) {
            (Value::Map(_), JsonEscape::Maps) => go_json(&json),
            _ => serde_json::to_string(&json).map_err(anyhow::Error::from),
        }
        .map_err(|e| template_error(e.to_string()))?;
        Ok(text(text_out))
    })
    .func("split", |args: &[Value]| {
        arg_count("split", args, 2)?;
        let s = string_arg("split", args, 0)?;
        let sep = string_arg("split", args, 1)?;
        let parts: Vec<Value> = if sep.is_empty() {
            s.chars().map(|c| text(c.to_string())).collect()
        } else {
            s.split(sep).map(text).collect()
        };
        Ok(Value::List(parts.into()))
    })
    .func("join", |args: &[Value]| {
        arg_count("join", args, 2)?;
        let sep = string_arg("join", args, 1)?;
        let items: Vec<&str> = match &args[0] {
            Value::Nil => Vec::new(),
            Value::List(items) => items
                .iter()
                .map(|v| {
                    v.as_str().ok_or_else(|| {
                        template_error(format!(
                            "wrong type for value; expected []string; got a list holding {}",
                            v.type_name()
                        ))
                    })
                })
                .collect::<gotmpl::Result<_>>()?,
            other => {
                return Err(template_error(format!(
                    "wrong type for value; expected []string; got {}",
                    other.type_name()
                )));
            }
        };
        Ok(text(items.join(sep)))
    })
    .func("title", |args: &[Value]| {
        arg_count("title", args, 1)?;
        Ok(text(title_case(string_arg("title", args, 0)?)))
    })
    .func("lower", |args: &[Value]| {
        arg_count("lower", args, 1)?;
        Ok(text(string_arg("lower", args, 0)?.to_lowercase()))
    })
    .func("upper", |args: &[Value]| {
        arg_count("upper", args, 1)?;
        Ok(text(string_arg("upper", args, 0)?.to_uppercase()))
    })
    .func("pad", |args: &[Value]| {
        arg_count("pad", args, 3)?;
        let s = string_arg("pad", args, 0)?;
        let before = usize::try_from(int_arg("pad", args, 1)?).unwrap_or(0);
        let after = usize::try_from(int_arg("pad", args, 2)?).unwrap_or(0);
        if s.is_empty() {
            return Ok(text(""));
        }
        Ok(text(format!(
            "{}{s}{}",
            " ".repeat(before),
            " ".repeat(after)
        )))
    })
    .func("truncate", |args: &[Value]| {
        arg_count("truncate", args, 2)?;
        let s = string_arg("truncate", args, 0)?;
        let len = usize::try_from(int_arg("truncate", args, 1)?).unwrap_or(0);
        if s.len() < len {
            return Ok(text(s));
        }
        let mut cut = len;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        Ok(text(&s[..cut]))
    })
    // Go's `index` of a missing key gives the map's zero value: "" for the
    // string maps scripts index (labels, options), where the engine gives nil.
    .func("index", |args: &[Value]| {
        if args.len() < 2 {
            return Err(template_error(format!(
                "wrong number of args for index: want at least 1 got {}",
                args.len()
            )));
        }
        let mut value = args[0].clone();
        for key in &args[1..] {
            value = match (&value, key) {
                (Value::Nil, Value::String(_)) => text(""),
                (Value::Map(map), Value::String(k)) => match map.get(k.as_ref()) {
                    Some(v) => v.clone(),
                    None if map.values().all(|v| v.as_str().is_some()) => text(""),
                    None => Value::Nil,
                },
                _ => value.index(key)?,
            };
        }
        Ok(value)
    })
    // `.Label "KEY"` of a listing row (see `rewrite_label_method`).
    .func("label", |args: &[Value]| {
        arg_count("label", args, 2)?;
        let key = string_arg("label", args, 1)?;
        let labels = match args[0].field("Labels") {
            Some(Value::String(s)) => s.to_string(),
            _ => return Err(template_error("can't evaluate field Label".into())),
        };
        let found = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        Ok(text(found))
    })
}

/// How a listing's `--format` prints its rows: Docker's table, `json` (one
/// object per line) or a Go template, whose `table ` prefix adds the header
/// line and aligns the columns (`\t` and `\n` typed as two characters
/// are a tab and a newline there, as in docker).
pub enum RowFormat {
    Table,
    Json,
    Template {
        template: Box<GoTemplate>,
        /// The header line when the template begins with `table`.
        header: Option<Box<GoTemplate>>,
        /// The template's text, for the verbs that look at which fields it uses.
        text: String,
    },
}

/// The error prefixes of a verb (docker words them differently per verb).
pub struct TemplateErrorWords {
    pub parse: &'static str,
    pub execute: &'static str,
}

/// Docker's words for most verbs.
pub const TEMPLATE_ERRORS: TemplateErrorWords = TemplateErrorWords {
    parse: "template parsing error",
    execute: "template parsing error",
};

impl RowFormat {
    pub fn parse(format: Option<&str>, words: &TemplateErrorWords) -> anyhow::Result<RowFormat> {
        let format = match format {
            None | Some("") | Some("table") => return Ok(RowFormat::Table),
            Some("json") => return Ok(RowFormat::Json),
            Some(f) => f,
        };
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let fail = |e: TemplateFailure| anyhow::anyhow!("{}: {e}", words.parse);
        let template = Box::new(GoTemplate::parse(&body, JsonEscape::Maps).map_err(fail)?);
        let header = if table {
            Some(Box::new(GoTemplate::parse_header(&body).map_err(fail)?))
        } else {
            None
        };
        Ok(RowFormat::Template {
            template,
            header,
            text: body,
        })
    }

    /// Whether the template reads the field `name` (`{{.Size}}`, `{{json .}}`).
    pub fn uses_field(&self, name: &str) -> bool {
        match self {
            RowFormat::Template { text, .. } => {
                text.contains(&format!(".{name}")) || text.contains("json .}}")
            }
            _ => false,
        }
    }

    /// Prints rows (each a JSON object with Docker's keys) through the
    /// template; `headers` names each field's column for a `table` template.
    pub fn print_rows(
        &self,
        rows: &[serde_json::Value],
        headers: &[(&str, &str)],
        words: &TemplateErrorWords,
    ) -> anyhow::Result<()> {
        let RowFormat::Template {
            template, header, ..
        } = self
        else {
            anyhow::bail!("print_rows is for template formats");
        };
        let fail = |e: TemplateFailure| anyhow::anyhow!("{}: {e}", words.execute);
        let mut out = String::new();
        for row in rows {
            out.push_str(&template.render(&template_value(row)).map_err(fail)?);
            out.push('\n');
        }
        match header {
            None => io::stdout().write_all(out.as_bytes())?,
            Some(h) => {
                let titles = serde_json::Value::Object(
                    headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                        .collect(),
                );
                let line = h.render(&template_value(&titles)).map_err(fail)?;
                let stdout = io::stdout();
                let mut tw = TabWriter::new(stdout.lock()).minwidth(7).padding(3);
                writeln!(tw, "{line}")?;
                tw.write_all(out.as_bytes())?;
                tw.flush()?;
            }
        }
        Ok(())
    }
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

    fn render(template: &str, v: &serde_json::Value) -> Result<String, TemplateFailure> {
        GoTemplate::parse(template, JsonEscape::Never)?.render(&template_value(v))
    }

    #[test]
    fn templates_render_as_docker_s() {
        let v = serde_json::json!({
            "Id": "sha256:abc",
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "<1>"}, "Cmd": ["/hi", "x"], "Entrypoint": null},
            "State": {"Status": "running", "Pid": 7},
            "Mounts": [{"Source": "/s", "Destination": "/d"}, {"Source": "/t", "Destination": "/e"}],
        });
        let cases = [
            ("{{.Id}}", "sha256:abc"),
            ("x={{json .Config.Env}}", r#"x=["A=1","B=2"]"#),
            ("{{json .Config.Labels}}", r#"{"a":"<1>","b":"2"}"#),
            ("{{.Config.Env}}", "[A=1 B=2]"),
            ("{{.Config.Labels}}", "map[a:<1> b:2]"),
            (
                "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}",
                "/s:/d /t:/e ",
            ),
            ("{{.State.Status}} {{.State.Pid}}", "running 7"),
            (
                r#"{{index .Config.Labels "b"}}|{{index .Config.Labels "zz"}}"#,
                "2|",
            ),
            (r#"{{join .Config.Cmd " "}}"#, "/hi x"),
            (
                r#"{{upper .State.Status}} {{title "ab cd-ef"}} {{lower "AB"}}"#,
                "RUNNING Ab Cd-Ef ab",
            ),
            (
                r#"{{split "a,b" ","}} [{{pad "x" 1 2}}] [{{pad "" 1 2}}] {{truncate "abcdef" 3}}"#,
                "[a b] [ x  ] [] abc",
            ),
            ("{{println}}end", "\nend"),
            (
                "{{if eq .State.Status \"running\"}}up{{else}}down{{end}}",
                "up",
            ),
            ("{{len .Mounts}}", "2"),
        ];
        for (template, want) in cases {
            assert_eq!(render(template, &v).unwrap(), want, "{template}");
        }
    }

    #[test]
    fn template_errors_are_errors() {
        let v = serde_json::json!({"Id": "x", "Config": {}});
        let missing = render("{{.Nope}}", &v).unwrap_err().to_string();
        assert!(missing.contains("Nope"), "{missing}");
        assert!(render("{{.Config.Nope}}", &v).is_err());
        let unclosed = render("{{.Id", &v).unwrap_err().to_string();
        assert!(unclosed.contains("unclosed action"), "{unclosed}");
        let undefined = render("{{nope .}}", &v).unwrap_err().to_string();
        assert!(undefined.contains("nope"), "{undefined}");
        assert!(render("{{upper 3}}", &v).is_err());
    }

    #[test]
    fn the_label_method_becomes_a_function() {
        assert_eq!(
            rewrite_label_method(
                r#"a {{.Label "x"}} {{- .Label "y" | upper}} "{{.Labels}}" {{printf ".Label %s" .ID}}"#
            ),
            r#"a {{label . "x"}} {{- label . "y" | upper}} "{{.Labels}}" {{printf ".Label %s" .ID}}"#
        );
        let row = serde_json::json!({"Labels": "a=1,com.x=two", "Names": "n"});
        let t = GoTemplate::parse(
            r#"{{.Names}} {{.Label "com.x"}} [{{.Label "zz"}}]"#,
            JsonEscape::Maps,
        )
        .unwrap();
        assert_eq!(t.render(&template_value(&row)).unwrap(), "n two []");
    }

    #[test]
    fn table_headers_name_the_columns() {
        let RowFormat::Template {
            header: Some(h), ..
        } = RowFormat::parse(
            Some(r#"table {{.Names}}\t{{upper .State}}\t{{.Label "com.x-y"}}"#),
            &TEMPLATE_ERRORS,
        )
        .unwrap()
        else {
            panic!("a table template");
        };
        let titles = serde_json::json!({"Names": "NAMES", "State": "STATE"});
        assert_eq!(
            h.render(&template_value(&titles)).unwrap(),
            "NAMES\tSTATE\tx y"
        );
    }

    #[test]
    fn json_of_a_row_escapes_as_docker_s() {
        let row = serde_json::json!({"Digest": "<none>"});
        let t = GoTemplate::parse("{{json .}} {{json .Digest}}", JsonEscape::Maps).unwrap();
        assert_eq!(
            t.render(&template_value(&row)).unwrap(),
            r#"{"Digest":"\u003cnone\u003e"} "<none>""#
        );
    }
}
