//! Dockerfile syntax (`Dockerfile`, `Wasmfile`) parsed into a [`Program`]:
//! stages, each a `FROM` and its instructions, checked for what can be
//! checked before anything runs (unknown instructions, bad flags, bad JSON,
//! `COPY --from` naming a stage that is not built before it), each error
//! with the file and line.

use crate::BuildError;
use crate::plan::{CommandForm, CopySource, Instruction, Op, Program, StageSpec};

/// Parses a `Wasmfile`/`Dockerfile`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Program, BuildError> {
    let mut program = Program {
        file: file.to_string(),
        ..Program::default()
    };
    // `COPY --from` values, resolved once every stage name is known.
    let mut copy_froms: Vec<(usize, usize, String, usize)> = Vec::new();
    for (line_no, line) in logical_lines(text) {
        let err = |message: String| BuildError::BuildFile {
            file: file.to_string(),
            message,
            line: Some(line_no),
        };
        let (word, rest) = line
            .split_once(char::is_whitespace)
            .unwrap_or((line.as_str(), ""));
        let instr = word.to_ascii_uppercase();
        let rest = rest.trim();
        let op = match instr.as_str() {
            "FROM" => {
                let words = split_args(rest).map_err(&err)?;
                if words.iter().any(|w| w.starts_with("--")) {
                    return Err(err(format!(
                        "FROM {}: flags are not supported (wasm images have one platform)",
                        words[0]
                    )));
                }
                let (base, name) = match words.as_slice() {
                    [base] => (base.clone(), None),
                    [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
                        (base.clone(), Some(name.to_ascii_lowercase()))
                    }
                    _ => {
                        return Err(err(
                            "FROM takes an image and optionally `AS name`: FROM IMAGE [AS NAME]"
                                .into(),
                        ));
                    }
                };
                if let Some(n) = &name {
                    if !n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        || !n
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                    {
                        return Err(err(format!(
                            "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
                        )));
                    }
                    if program.stage_named(n).is_some() {
                        return Err(err(format!("{n}: a stage name already used")));
                    }
                }
                program.stages.push(StageSpec {
                    from: Instruction {
                        line: line_no,
                        text: line.clone(),
                        op: Op::From { base },
                    },
                    name,
                    instructions: Vec::new(),
                    literal: false,
                });
                continue;
            }
            "ARG" => {
                let (name, default) = match rest.split_once('=') {
                    Some((n, d)) => (n.trim().to_string(), Some(unquote(d.trim()))),
                    None => (rest.to_string(), None),
                };
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(err("ARG takes one NAME[=default]".into()));
                }
                if !program.declared_args.contains(&name) {
                    program.declared_args.push(name.clone());
                }
                Op::Arg { name, default }
            }
            _ if program.stages.is_empty() => {
                return Err(err(format!(
                    "{instr} before FROM: a build file starts with FROM (only ARG may come before it)"
                )));
            }
            "COPY" | "ADD" => {
                let mut words = split_args(rest).map_err(&err)?;
                let mut mode = None;
                let mut from = CopySource::Context;
                while words.first().is_some_and(|w| w.starts_with("--")) {
                    let flag = words.remove(0);
                    if let Some(m) = flag.strip_prefix("--chmod=") {
                        mode = Some(
                            u32::from_str_radix(m, 8)
                                .ok()
                                .filter(|m| *m <= 0o7777)
                                .ok_or_else(|| {
                                    err(format!("invalid --chmod {m:?}: expected an octal mode"))
                                })?,
                        );
                    } else if let Some(f) = flag.strip_prefix("--from=")
                        && instr == "COPY"
                    {
                        if f.is_empty() {
                            return Err(err("COPY --from needs a stage or an image".into()));
                        }
                        let stage = program.stages.len() - 1;
                        let at = program.stages[stage].instructions.len();
                        copy_froms.push((stage, at, f.to_string(), line_no));
                        from = CopySource::Image(f.to_string());
                    } else if flag.starts_with("--chown=") || flag == "--link" {
                        // Owners are always 0:0 in wasm images; --link is how wrun builds anyway.
                    } else {
                        return Err(err(format!("{instr} {flag} is not supported")));
                    }
                }
                if words.len() < 2 {
                    return Err(err(format!(
                        "{instr} needs at least one source and a destination"
                    )));
                }
                if words.iter().any(|w| w.contains("://")) {
                    return Err(err(format!(
                        "{instr} from a URL is not supported (the build has no network)"
                    )));
                }
                let dest = words.pop().expect("checked: at least two words");
                Op::Copy {
                    add: instr == "ADD",
                    from,
                    mode,
                    sources: words,
                    dest,
                    created_by: None,
                }
            }
            "ENTRYPOINT" => Op::Entrypoint(command_form(&instr, rest).map_err(&err)?),
            "CMD" => Op::Cmd(command_form(&instr, rest).map_err(&err)?),
            "RUN" => {
                if rest.starts_with("--") {
                    let flag = rest.split_whitespace().next().unwrap_or(rest);
                    return Err(err(format!("RUN {flag} is not supported")));
                }
                Op::Run(command_form(&instr, rest).map_err(&err)?)
            }
            "ENV" => Op::Env(key_values(rest).map_err(&err)?),
            "LABEL" => Op::Label(key_values(rest).map_err(&err)?),
            "WORKDIR" => {
                if rest.is_empty() {
                    return Err(err("WORKDIR requires exactly one argument".into()));
                }
                Op::Workdir(unquote(rest))
            }
            "EXPOSE" => {
                let ports: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
                if ports.is_empty() {
                    return Err(err("EXPOSE requires at least one argument".into()));
                }
                Op::Expose(ports)
            }
            "VOLUME" => {
                let list = if rest.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(rest)
                        .map_err(|e| err(format!("VOLUME: invalid JSON array: {e}")))?
                } else {
                    rest.split_whitespace().map(str::to_string).collect()
                };
                if list.is_empty() {
                    return Err(err("VOLUME requires at least one argument".into()));
                }
                Op::Volume(list)
            }
            "USER" => {
                if rest.is_empty() || rest.contains(char::is_whitespace) {
                    return Err(err("USER requires exactly one argument".into()));
                }
                Op::User(rest.to_string())
            }
            "STOPSIGNAL" => {
                if rest.is_empty() || rest.contains(char::is_whitespace) {
                    return Err(err("STOPSIGNAL requires exactly one argument".into()));
                }
                Op::StopSignal(rest.to_string())
            }
            "MAINTAINER" => Op::Maintainer(rest.to_string()),
            "HEALTHCHECK" | "SHELL" | "ONBUILD" => {
                program.warnings.push(format!(
                    "{file}:{line_no}: {instr} has no meaning for a wasm image and was ignored"
                ));
                continue;
            }
            other => return Err(err(format!("unknown instruction: {other}"))),
        };
        let instruction = Instruction {
            line: line_no,
            text: line.clone(),
            op,
        };
        match program.stages.last_mut() {
            Some(stage) => stage.instructions.push(instruction),
            None => program.global_args.push(instruction),
        }
    }
    if program.stages.is_empty() {
        return Err(BuildError::BuildFile {
            file: file.to_string(),
            message: "no FROM instruction (start with `FROM scratch` or `FROM IMAGE`)".into(),
            line: None,
        });
    }
    for (stage, at, value, line) in copy_froms {
        let err = |message: String| BuildError::BuildFile {
            file: file.to_string(),
            message,
            line: Some(line),
        };
        let target = if let Ok(index) = value.parse::<usize>() {
            if index >= program.stages.len() {
                return Err(err(format!(
                    "invalid from flag value {value}: index out of bounds (the file has {} stages)",
                    program.stages.len()
                )));
            }
            Some(index)
        } else {
            program.stage_named(&value)
        };
        let from = match target {
            Some(index) if index < stage => CopySource::Stage(index),
            Some(index) => {
                return Err(err(format!(
                    "COPY --from={value}: stage {value} (line {}) is {}; a stage copies only from stages before it",
                    program.stages[index].from.line,
                    if index == stage {
                        "this stage itself"
                    } else {
                        "built after this one"
                    }
                )));
            }
            None => CopySource::Image(value),
        };
        if let Op::Copy { from: f, .. } = &mut program.stages[stage].instructions[at].op {
            *f = from;
        }
    }
    Ok(program)
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

/// `["a", "b"]` (exec form) or the shell form: a line that does not parse
/// as a JSON array of strings is the shell form, as in Docker.
fn command_form(instr: &str, rest: &str) -> Result<CommandForm, String> {
    if rest.is_empty() {
        return Err(format!("{instr} requires at least one argument"));
    }
    if rest.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(rest)
    {
        return Ok(CommandForm::Exec(list));
    }
    Ok(CommandForm::Shell(rest.to_string()))
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
ARG BASE=scratch
FROM ${BASE} AS build
ARG VERSION=1
COPY hello.wasm /hello.wasm
COPY --chmod=644 static/ \
     /srv/static/
ENV GREETING="hi there" MODE=prod
WORKDIR /srv
LABEL org.example.version=$VERSION
EXPOSE 8080
VOLUME ["/data"]
FROM scratch
COPY --from=build /hello.wasm /hello.wasm
COPY --from=0 /srv /srv
COPY --from=other:1 /x /x
ENTRYPOINT ["/hello.wasm"]
CMD ["world"]
RUN make all
"#;

    #[test]
    fn parses_stages_and_their_instructions_with_lines() {
        let p = parse(FILE, "Wasmfile").unwrap();
        assert_eq!(p.global_args.len(), 1);
        assert_eq!(p.stages.len(), 2);
        assert_eq!(p.stages[0].name.as_deref(), Some("build"));
        assert_eq!(p.stages[0].from.line, 4);
        assert_eq!(
            p.stages[0].from.op,
            Op::From {
                base: "${BASE}".into()
            }
        );
        let copy = &p.stages[0].instructions[2];
        assert_eq!(copy.line, 7, "a continued line counts from its first line");
        assert!(
            matches!(&copy.op, Op::Copy { mode: Some(0o644), dest, .. } if dest == "/srv/static/")
        );
        assert_eq!(
            p.stages[0].instructions[3].op,
            Op::Env(vec![
                ("GREETING".into(), "hi there".into()),
                ("MODE".into(), "prod".into())
            ])
        );
        let froms: Vec<&CopySource> = p.stages[1]
            .instructions
            .iter()
            .filter_map(|i| match &i.op {
                Op::Copy { from, .. } => Some(from),
                _ => None,
            })
            .collect();
        assert_eq!(
            froms,
            vec![
                &CopySource::Stage(0),
                &CopySource::Stage(0),
                &CopySource::Image("other:1".into())
            ]
        );
        assert_eq!(
            p.stages[1].instructions.last().unwrap().op,
            Op::Run(CommandForm::Shell("make all".into()))
        );
        assert_eq!(p.declared_args, vec!["BASE", "VERSION"]);
        assert_eq!(p.step_count(), 1 + 9 + 7);
    }

    #[test]
    fn refuses_malformed_files_with_the_line() {
        for (text, needle, line) in [
            ("COPY a b\n", "before FROM", 1),
            ("FROM scratch\nBOGUS x\n", "unknown instruction: BOGUS", 2),
            ("FROM scratch\nCOPY a\n", "at least one source", 2),
            (
                "FROM scratch\nCOPY --chown=1 --bad a b\n",
                "--bad is not supported",
                2,
            ),
            (
                "FROM scratch AS x\nFROM scratch AS X\n",
                "a stage name already used",
                2,
            ),
            ("FROM scratch AS 1x\n", "invalid name for build stage", 1),
            ("FROM a b c d\n", "FROM IMAGE [AS NAME]", 1),
            (
                "FROM scratch\nCOPY --from=2 a b\n",
                "index out of bounds",
                2,
            ),
            (
                "FROM scratch AS a\nCOPY --from=b x y\nFROM scratch AS b\n",
                "built after this one",
                2,
            ),
            (
                "FROM scratch AS a\n\nCOPY --from=a x y\n",
                "this stage itself",
                3,
            ),
            ("FROM scratch\nADD http://x/y /y\n", "URL", 2),
            (
                "FROM scratch\nRUN --mount=type=cache x\n",
                "--mount=type=cache",
                2,
            ),
        ] {
            let err = parse(text, "Dockerfile").unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(
                err.starts_with(&format!("Dockerfile:{line}: ")),
                "{text:?}: {err}"
            );
        }
        let err = parse("# only a comment\n", "Dockerfile").unwrap_err();
        assert!(err.to_string().contains("no FROM"), "{err}");
    }

    #[test]
    fn exec_and_shell_forms() {
        assert_eq!(
            command_form("RUN", r#"["/a.wasm", "x y"]"#).unwrap(),
            CommandForm::Exec(vec!["/a.wasm".into(), "x y".into()])
        );
        // Not a JSON array of strings: the shell form, as Docker reads it.
        assert_eq!(
            command_form("CMD", "[oops").unwrap(),
            CommandForm::Shell("[oops".into())
        );
        assert!(command_form("CMD", "").is_err());
    }
}
