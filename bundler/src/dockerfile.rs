//! The Dockerfile-syntax subset that makes sense for wasm images (`FROM
//! scratch`, `COPY`, `ENTRYPOINT`, `CMD`, `ENV`, `ARG`, `WORKDIR`, `LABEL`,
//! `EXPOSE`, `VOLUME`), turned into a [`BuildPlan`].

use std::collections::BTreeMap;

use crate::BuildError;
use crate::plan::{BuildPlan, CopyStep, normalize_port, substitute};

/// Parses a `Wasmfile`/`Dockerfile`; `file` names it in errors.
pub fn parse(
    text: &str,
    file: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<BuildPlan, BuildError> {
    let mut plan = BuildPlan::default();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut declared: Vec<String> = Vec::new();
    let mut seen_from = false;
    let mut workdir = "/".to_string();
    for (line_no, line) in logical_lines(text) {
        let err = |message: String| BuildError::BuildFile {
            file: file.to_string(),
            message,
            line: Some(line_no),
        };
        let (instr, rest) = line
            .split_once(char::is_whitespace)
            .unwrap_or((line.as_str(), ""));
        let instr = instr.to_ascii_uppercase();
        let rest = rest.trim();
        let mut used = Vec::new();
        let mut expand = |s: &str| substitute(s, &vars, &mut used, true).map_err(&err);
        match instr.as_str() {
            "FROM" => {
                let image = expand(rest)?;
                if !image.eq_ignore_ascii_case("scratch") {
                    return Err(err(format!(
                        "FROM {image}: only `FROM scratch` is supported (a wasm image has no base OS; copy the module in)"
                    )));
                }
                if seen_from {
                    return Err(err("multi-stage builds are not supported".into()));
                }
                seen_from = true;
            }
            "ARG" => {
                let (name, default) = match rest.split_once('=') {
                    Some((n, d)) => (n.trim().to_string(), Some(unquote(d.trim()))),
                    None => (rest.to_string(), None),
                };
                if name.is_empty() {
                    return Err(err("ARG needs a name".into()));
                }
                if let Some(v) = build_args.get(&name).cloned().or(default) {
                    vars.insert(name.clone(), v);
                }
                declared.push(name);
            }
            _ if !seen_from => {
                return Err(err(format!(
                    "{instr} before FROM: a build file starts with `FROM scratch`"
                )));
            }
            "COPY" | "ADD" => {
                let mut words = split_args(rest).map_err(&err)?;
                let mut mode = None;
                while words.first().is_some_and(|w| w.starts_with("--")) {
                    let flag = words.remove(0);
                    if let Some(m) = flag.strip_prefix("--chmod=") {
                        mode = Some(
                            u32::from_str_radix(m, 8)
                                .map_err(|_| err(format!("invalid --chmod {m:?}")))?,
                        );
                    } else if flag.starts_with("--chown=") || flag.starts_with("--link") {
                        // Ownership is always 0:0 in wasm images; --link is how wrun builds anyway.
                    } else {
                        return Err(err(format!("{instr} {flag} is not supported")));
                    }
                }
                if words.len() < 2 {
                    return Err(err(format!(
                        "{instr} needs at least one source and a destination"
                    )));
                }
                let words: Vec<String> =
                    words.iter().map(|w| expand(w)).collect::<Result<_, _>>()?;
                if words.iter().any(|w| w.contains("://")) {
                    return Err(err(format!(
                        "{instr} from a URL is not supported (the build has no network)"
                    )));
                }
                let (dest, sources) = words.split_last().expect("checked: at least two words");
                let dest = if dest.starts_with('/') {
                    dest.clone()
                } else {
                    format!("{}/{}", workdir.trim_end_matches('/'), dest)
                };
                plan.copies.push(CopyStep {
                    sources: sources.to_vec(),
                    dest: dest.clone(),
                    mode,
                    created_by: format!("COPY {} {dest}", sources.join(" ")),
                });
            }
            "ENTRYPOINT" => {
                plan.entrypoint = Some(exec_form(&instr, rest, &mut expand).map_err(&err)?)
            }
            "CMD" => plan.cmd = Some(exec_form(&instr, rest, &mut expand).map_err(&err)?),
            "ENV" => {
                // Values see the variables as they were before this line, as in Docker.
                let mut pairs = Vec::new();
                for (k, v) in key_values(rest).map_err(&err)? {
                    pairs.push((k, expand(&v)?));
                }
                for (k, v) in pairs {
                    plan.env.retain(|(name, _)| name != &k);
                    plan.env.push((k.clone(), v.clone()));
                    vars.insert(k, v);
                }
            }
            "LABEL" => {
                for (k, v) in key_values(rest).map_err(&err)? {
                    plan.labels.insert(expand(&k)?, expand(&v)?);
                }
            }
            "WORKDIR" => {
                let w = expand(&unquote(rest))?;
                workdir = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{}", workdir.trim_end_matches('/'), w)
                };
                plan.workdir = Some(workdir.clone());
            }
            "EXPOSE" => {
                for p in rest.split_whitespace() {
                    plan.expose.push(normalize_port(&expand(p)?).map_err(&err)?);
                }
            }
            "VOLUME" => {
                let list = if rest.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(rest)
                        .map_err(|e| err(format!("VOLUME: {e}")))?
                } else {
                    rest.split_whitespace().map(str::to_string).collect()
                };
                for v in list {
                    let v = expand(&v)?;
                    if !v.starts_with('/') {
                        return Err(err(format!("VOLUME {v:?} must be an absolute path")));
                    }
                    plan.volumes.push(v);
                }
            }
            "RUN" => {
                return Err(err(
                    "RUN is not supported: a wasm image has no shell at build time; build the module first and COPY it".into(),
                ));
            }
            "USER" | "HEALTHCHECK" | "SHELL" | "STOPSIGNAL" | "ONBUILD" | "MAINTAINER" => {
                plan.warnings.push(format!(
                    "{file}:{line_no}: {instr} has no meaning for a wasm image and was ignored"
                ));
            }
            other => return Err(err(format!("unknown instruction {other}"))),
        }
        plan.consumed_args.extend(used);
    }
    if !seen_from {
        return Err(BuildError::BuildFile {
            file: file.to_string(),
            message: "no FROM instruction (start with `FROM scratch`)".into(),
            line: None,
        });
    }
    plan.consumed_args.extend(declared);
    Ok(plan)
}

/// Joins `\`-continued lines and drops comments and blank lines, keeping the
/// number of each instruction's first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if current.is_some() && trimmed.starts_with('#') {
            continue;
        }
        let (body, continued) = match trimmed.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        if !entry.1.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(body);
        if !continued {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// `["a", "b"]` (exec form). The shell form needs a shell, which wasm
/// images do not have, so it is refused with a hint.
fn exec_form(
    instr: &str,
    rest: &str,
    expand: &mut impl FnMut(&str) -> Result<String, BuildError>,
) -> Result<Vec<String>, String> {
    if !rest.starts_with('[') {
        return Err(format!(
            "{instr} {rest}: use the JSON form, e.g. {instr} [\"/app.wasm\"] (there is no shell in a wasm image)"
        ));
    }
    let list: Vec<String> =
        serde_json::from_str(rest).map_err(|e| format!("{instr}: invalid JSON array: {e}"))?;
    list.iter()
        .map(|s| expand(s).map_err(|e| e.to_string()))
        .collect()
}

/// Splits on whitespace, honouring double quotes.
fn split_args(s: &str) -> Result<Vec<String>, String> {
    if s.starts_with('[') {
        return serde_json::from_str(s).map_err(|e| format!("invalid JSON array: {e}"));
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// `K=V K2="v 2"`, or the legacy `K V` form for a single pair.
fn key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_args(s)?;
    if words.is_empty() {
        return Err("expected KEY=VALUE".into());
    }
    if !words[0].contains('=') {
        let (k, v) = s
            .split_once(char::is_whitespace)
            .ok_or("expected KEY=VALUE")?;
        return Ok(vec![(k.to_string(), unquote(v))]);
    }
    words
        .into_iter()
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("expected KEY=VALUE, got {w:?}"))?;
            if k.is_empty() {
                return Err(format!("empty name in {w:?}"));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
# syntax is ignored
FROM scratch
ARG VERSION=1
COPY hello.wasm /hello.wasm
COPY --chmod=644 static/ \
     /srv/static/
ENV GREETING="hi there" MODE=prod
WORKDIR /srv
LABEL org.example.version=$VERSION
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/hello.wasm"]
CMD ["world"]
"#;

    #[test]
    fn parses_the_supported_subset() {
        let plan = parse(
            FILE,
            "Wasmfile",
            &BTreeMap::from([("VERSION".into(), "2".into())]),
        )
        .unwrap();
        assert_eq!(plan.copies.len(), 2);
        assert_eq!(plan.copies[1].dest, "/srv/static/");
        assert_eq!(plan.copies[1].mode, Some(0o644));
        assert_eq!(
            plan.env[0],
            ("GREETING".to_string(), "hi there".to_string())
        );
        assert_eq!(plan.labels["org.example.version"], "2");
        assert_eq!(plan.workdir.as_deref(), Some("/srv"));
        assert_eq!(plan.expose, vec!["8080/tcp"]);
        assert_eq!(plan.entrypoint, Some(vec!["/hello.wasm".to_string()]));
        assert_eq!(plan.cmd, Some(vec!["world".to_string()]));
    }

    #[test]
    fn refuses_what_a_wasm_image_cannot_do_with_the_line() {
        for (text, needle) in [
            ("FROM ubuntu:22.04\n", "only `FROM scratch`"),
            ("FROM scratch\nRUN make\n", "RUN is not supported"),
            ("FROM scratch\nCMD run.sh\n", "JSON form"),
            ("COPY a b\n", "before FROM"),
            ("FROM scratch\nBOGUS x\n", "unknown instruction"),
        ] {
            let err = parse(text, "Dockerfile", &BTreeMap::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.contains("Dockerfile:"), "{err}");
        }
    }
}
