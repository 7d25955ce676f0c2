//! Docker's `--change` instructions (`commit -c`, `import -c`): Dockerfile
//! lines that edit an image's run config, read with dockerd's rules.
//!
//! Docker's set is `CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `USER`,
//! `VOLUME`, `WORKDIR`, `HEALTHCHECK` and `ONBUILD`. wrun refuses the last
//! two (it runs no health checks and no build triggers) and the shell form
//! of `CMD`/`ENTRYPOINT` (a wasm image has no shell); anything else is
//! dockerd's "X is not a valid change command".

use std::collections::{BTreeSet, HashMap};

use oci_spec::image::Config;

use crate::error::{ImageError, Result};

/// Applies `changes` (each may hold several lines, `\` continuing one) to
/// `config` in order, as `dockerd` does for `commit --change` and `import
/// --change`. `ENTRYPOINT` empties `Cmd` unless a `CMD` is among them.
pub fn apply_changes(config: &mut Config, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for line in logical_lines(&changes.join("\n")) {
        let (instr, rest) = line
            .split_once(char::is_whitespace)
            .unwrap_or((line.as_str(), ""));
        let rest = rest.trim();
        let lower = instr.to_ascii_lowercase();
        let env = config.env().clone().unwrap_or_default();
        match lower.as_str() {
            "cmd" => {
                config.set_cmd(Some(exec_form("CMD", rest)?));
                cmd_set = true;
            }
            "entrypoint" => {
                config.set_entrypoint(Some(exec_form("ENTRYPOINT", rest)?));
                if !cmd_set {
                    config.set_cmd(None);
                }
            }
            "env" => {
                let mut list = env;
                for (k, v) in key_values("ENV", rest, &list)? {
                    let prefix = format!("{k}=");
                    list.retain(|kv| !kv.starts_with(&prefix) && kv != &k);
                    list.push(format!("{k}={v}"));
                }
                config.set_env(Some(list));
            }
            "label" => {
                let mut labels = config.labels().clone().unwrap_or_default();
                for (k, v) in key_values("LABEL", rest, &env)? {
                    labels.insert(k, v);
                }
                config.set_labels(Some(labels));
            }
            "expose" => {
                let words = words(rest, &env)?;
                if words.is_empty() {
                    return Err(bad("EXPOSE requires at least one argument"));
                }
                let mut ports: BTreeSet<String> = config
                    .exposed_ports()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                for w in &words {
                    ports.extend(exposed_ports(w)?);
                }
                config.set_exposed_ports(Some(ports.into_iter().collect()));
            }
            "user" => {
                let words = words(rest, &env)?;
                let [user] = words.as_slice() else {
                    return Err(bad("USER requires exactly one argument"));
                };
                config.set_user(Some(user.clone()));
            }
            "volume" => {
                let list = if rest.starts_with('[') {
                    json_array("VOLUME", rest)?
                } else {
                    words(rest, &env)?
                };
                if list.is_empty() {
                    return Err(bad("VOLUME requires at least one argument"));
                }
                let mut volumes: BTreeSet<String> = config
                    .volumes()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                for v in list {
                    let v = v.trim().to_string();
                    if v.is_empty() {
                        return Err(bad("VOLUME specified can not be an empty string"));
                    }
                    volumes.insert(v);
                }
                config.set_volumes(Some(volumes.into_iter().collect()));
            }
            "workdir" => {
                let words = words(rest, &env)?;
                let [dir] = words.as_slice() else {
                    return Err(bad("WORKDIR requires exactly one argument"));
                };
                let base = config.working_dir().clone().unwrap_or_default();
                config.set_working_dir(Some(join_workdir(&base, dir)));
            }
            "onbuild" => {
                return Err(bad(
                    "ONBUILD is not supported: wrun builds run no triggers (a wasm image has no RUN steps)",
                ));
            }
            "healthcheck" => {
                return Err(bad(
                    "HEALTHCHECK is not supported: wrun runs no health checks",
                ));
            }
            _ => return Err(bad(format!("{lower} is not a valid change command"))),
        }
    }
    Ok(())
}

fn bad(message: impl Into<String>) -> ImageError {
    ImageError::BadChange(message.into())
}

/// Joins `\`-continued lines, drops blank and comment lines.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(body) => {
                current.push_str(body);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// `["/app.wasm", "arg"]`; the shell form is refused: there is no shell.
fn exec_form(instr: &str, rest: &str) -> Result<Vec<String>> {
    if !rest.starts_with('[') {
        return Err(bad(format!(
            "{instr} {rest}: use the JSON form, e.g. {instr} [\"/app.wasm\"] (a wasm image has no shell to run the shell form)"
        )));
    }
    json_array(instr, rest)
}

fn json_array(instr: &str, rest: &str) -> Result<Vec<String>> {
    serde_json::from_str(rest)
        .map_err(|e| bad(format!("{instr} {rest}: not a JSON array of strings: {e}")))
}

/// `K=V K2="v 2"` or the older `K V` (one pair, the rest of the line its
/// value), as `ENV` and `LABEL` take them.
fn key_values(instr: &str, rest: &str, env: &[String]) -> Result<Vec<(String, String)>> {
    let list = words(rest, env)?;
    let Some(first) = list.first() else {
        return Err(bad(format!("{instr} requires at least one argument")));
    };
    if !first.contains('=') {
        let (key, value) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(format!("{instr} must have two arguments")))?;
        let value = words(value.trim(), env)?.join(" ");
        return Ok(vec![(key.to_string(), value)]);
    }
    list.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            Some(_) => Err(bad(format!("{instr} names can not be blank"))),
            None => Err(bad(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ))),
        })
        .collect()
}

/// Splits a line into words as Docker's shell lexer does for these
/// instructions: whitespace outside quotes separates, `'…'` is literal,
/// `"…"` and bare text expand `$NAME`, `${NAME}`, `${NAME:-word}` and
/// `${NAME:+word}` from `env` (an unset name is empty), `\` escapes.
fn words(text: &str, env: &[String]) -> Result<Vec<String>> {
    let vars: HashMap<&str, &str> = env
        .iter()
        .map(|kv| kv.split_once('=').unwrap_or((kv.as_str(), "")))
        .collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => {
                            return Err(bad(format!(
                                "unexpected end of line in {text:?}: a ' is not closed"
                            )));
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => {
                                return Err(bad(format!(
                                    "unexpected end of line in {text:?}: a \" is not closed"
                                )));
                            }
                        },
                        Some('$') => expand(&mut chars, &vars, &mut word, text)?,
                        Some(c) => word.push(c),
                        None => {
                            return Err(bad(format!(
                                "unexpected end of line in {text:?}: a \" is not closed"
                            )));
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    word.push(e);
                }
            }
            '$' => {
                in_word = true;
                expand(&mut chars, &vars, &mut word, text)?;
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// Expands what follows a `$` into `word`.
fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    vars: &HashMap<&str, &str>,
    word: &mut String,
    text: &str,
) -> Result<()> {
    let value = |name: &str| vars.get(name).copied().unwrap_or("");
    if chars.peek() == Some(&'{') {
        chars.next();
        let mut inner = String::new();
        loop {
            match chars.next() {
                Some('}') => break,
                Some(c) => inner.push(c),
                None => return Err(bad(format!("missing '}}' in {text:?}"))),
            }
        }
        let (name, modifier) = match inner.find(':') {
            Some(i) => (&inner[..i], Some(&inner[i..])),
            None => (inner.as_str(), None),
        };
        let set = vars.get(name).is_some_and(|v| !v.is_empty());
        match modifier {
            None => word.push_str(value(name)),
            Some(m) if m.starts_with(":-") => {
                word.push_str(if set { value(name) } else { &m[2..] });
            }
            Some(m) if m.starts_with(":+") => {
                if set {
                    word.push_str(&m[2..]);
                }
            }
            Some(m) => {
                return Err(bad(format!(
                    "unsupported modifier ({m}) in substitution in {text:?}"
                )));
            }
        }
        return Ok(());
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '_' {
            name.push(c);
            chars.next();
        } else {
            break;
        }
    }
    if name.is_empty() {
        word.push('$');
    } else {
        word.push_str(value(&name));
    }
    Ok(())
}

/// `80`, `80/udp`, `8000-8002/tcp` → `80/tcp`, …, in dockerd's words
/// when it is none of these.
fn exposed_ports(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(format!("Invalid proto: {proto}")));
    }
    let invalid = || bad(format!("Invalid containerPort: {ports}"));
    let parse = |p: &str| p.parse::<u16>().map_err(|_| invalid());
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(bad(format!(
            "Invalid range specified for the Port: {ports}"
        )));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `WORKDIR` relative to the one before, cleaned as Go's `path.Clean`.
fn join_workdir(base: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("/{base}/{dir}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(base: &Config, changes: &[&str]) -> Result<Config> {
        let mut c = base.clone();
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &changes)?;
        Ok(c)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entrypoint_drops_the_cmd_unless_a_cmd_is_given_too() {
        let mut base = Config::default();
        base.set_cmd(Some(strings(&["/old.wasm"])));
        let c = apply(&base, &[r#"ENTRYPOINT ["/app.wasm"]"#]).unwrap();
        assert_eq!(
            c.entrypoint().as_deref(),
            Some(&strings(&["/app.wasm"])[..])
        );
        assert_eq!(c.cmd(), &None);
        let c = apply(&base, &[r#"CMD ["a"]"#, r#"entrypoint ["/app.wasm"]"#]).unwrap();
        assert_eq!(c.cmd().as_deref(), Some(&strings(&["a"])[..]));
    }

    #[test]
    fn env_label_expose_volume_user_workdir_as_docker_reads_them() {
        let mut base = Config::default();
        base.set_env(Some(strings(&["PATH=/bin", "A=old"])));
        base.set_working_dir(Some("/srv".into()));
        let c = apply(
            &base,
            &[
                "ENV A=1 B=\"two words\" C=$PATH:/x",
                "ENV D the rest of the line",
                "LABEL org.x=\"y z\" k=${A}",
                "EXPOSE 80 53/udp 8000-8001",
                "VOLUME /data /cache",
                "VOLUME [\"/json\"]",
                "USER 1000",
                "WORKDIR app/../web",
            ],
        )
        .unwrap();
        assert_eq!(
            c.env().clone().unwrap(),
            strings(&[
                "PATH=/bin",
                "A=1",
                "B=two words",
                "C=/bin:/x",
                "D=the rest of the line"
            ])
        );
        let labels = c.labels().clone().unwrap();
        assert_eq!(labels["org.x"], "y z");
        assert_eq!(labels["k"], "1");
        assert_eq!(
            c.exposed_ports().clone().unwrap(),
            strings(&["53/udp", "80/tcp", "8000/tcp", "8001/tcp"])
        );
        assert_eq!(
            c.volumes().clone().unwrap(),
            strings(&["/cache", "/data", "/json"])
        );
        assert_eq!(c.user().as_deref(), Some("1000"));
        assert_eq!(c.working_dir().as_deref(), Some("/srv/web"));
    }

    #[test]
    fn refusals_are_dockers_words_or_say_why() {
        let base = Config::default();
        let cases = [
            ("FOO bar", "foo is not a valid change command"),
            ("RUN x", "run is not a valid change command"),
            ("STOPSIGNAL 9", "stopsignal is not a valid change command"),
            ("EXPOSE abc", "Invalid containerPort: abc"),
            ("ENV", "ENV requires at least one argument"),
            ("ONBUILD RUN x", "ONBUILD is not supported"),
            ("HEALTHCHECK NONE", "HEALTHCHECK is not supported"),
            ("CMD /app.wasm", "use the JSON form"),
            ("ENTRYPOINT [\"/a\"", "not a JSON array"),
            ("LABEL a=b c", "can't find = in \"c\""),
            ("WORKDIR a b", "WORKDIR requires exactly one argument"),
        ];
        for (change, wanted) in cases {
            let err = apply(&base, &[change]).unwrap_err().to_string();
            assert!(err.contains(wanted), "{change}: {err}");
        }
    }

    #[test]
    fn one_change_may_hold_several_lines() {
        let c = apply(
            &Config::default(),
            &["# a comment\nENV A=1 \\\n  B=2\n\nCMD [\"/x.wasm\"]"],
        )
        .unwrap();
        assert_eq!(c.env().clone().unwrap(), strings(&["A=1", "B=2"]));
        assert_eq!(c.cmd().as_deref(), Some(&strings(&["/x.wasm"])[..]));
    }
}
