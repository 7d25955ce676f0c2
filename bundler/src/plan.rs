//! The build plan: what both build file syntaxes turn into before any file
//! is read — the layers to copy and the image config to write.

use std::collections::BTreeMap;

/// One `COPY`-like step: `sources` (relative to the context) into `dest`
/// (absolute in the rootfs). Docker's rules apply: a directory source copies
/// its contents; a single file source goes to `dest`, or into it when
/// `dest` ends with `/` or there are several sources.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyStep {
    pub sources: Vec<String>,
    pub dest: String,
    /// Forces this mode on copied files (the module gets 0755).
    pub mode: Option<u32>,
    /// The history line (`COPY hello.wasm /hello.wasm`).
    pub created_by: String,
}

/// Everything a build file says, with build args already substituted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildPlan {
    /// Default repository name when no `-t` is given.
    pub name: Option<String>,
    pub copies: Vec<CopyStep>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` in the order declared.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `PORT/PROTO`, normalized (`8080` becomes `8080/tcp`).
    pub expose: Vec<String>,
    pub volumes: Vec<String>,
    /// Build args the file declared or used (to warn about unused `--build-arg`s).
    pub consumed_args: Vec<String>,
    /// Non-fatal remarks for the user (ignored instructions).
    pub warnings: Vec<String>,
}

/// A build file as a sequence of steps over stages: what both syntaxes turn
/// into, still unexpanded (Dockerfile values are expanded when the step runs,
/// against the stage's `ARG`s and its `Env`, base image's included).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    /// The build file, for errors (`Dockerfile:3: ...`).
    pub file: String,
    /// Default repository name when no `-t` is given (wrun.toml's `name`).
    pub name: Option<String>,
    /// `ARG`s before the first `FROM`: usable in `FROM` lines only, unless a
    /// stage declares them again.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<StageSpec>,
    /// Every `ARG` name the file declares (to warn about unused `--build-arg`s).
    pub declared_args: Vec<String>,
    /// Non-fatal remarks for the user (ignored instructions).
    pub warnings: Vec<String>,
}

impl Program {
    /// The number of steps, as Docker counts them in `Step N/M`: every
    /// instruction, `FROM`s and global `ARG`s included.
    pub fn step_count(&self) -> usize {
        self.global_args.len()
            + self
                .stages
                .iter()
                .map(|s| 1 + s.instructions.len())
                .sum::<usize>()
    }

    /// The index of the stage named `name` (case-insensitive, as Docker).
    pub fn stage_named(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }
}

/// One `FROM` and the instructions after it.
#[derive(Clone, Debug, PartialEq)]
pub struct StageSpec {
    /// The `FROM` line itself (its [`Op::From`] names the base).
    pub from: Instruction,
    /// `AS name`, lower-cased as Docker keeps it.
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
    /// Values are already expanded (wrun.toml): no `$` substitution.
    pub literal: bool,
}

/// One instruction, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Instruction {
    /// 1-based line of the build file (0 when the file has no lines, as a
    /// wrun.toml step).
    pub line: usize,
    /// As written (continuations joined): shown as `Step N/M : TEXT`.
    pub text: String,
    pub op: Op,
}

/// The exec (`["a", "b"]`) or shell (`a b`) form of `RUN`, `CMD`, `ENTRYPOINT`.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandForm {
    Exec(Vec<String>),
    Shell(String),
}

/// Where `COPY --from` reads.
#[derive(Clone, Debug, PartialEq)]
pub enum CopySource {
    /// The build context (`.dockerignore` applies).
    Context,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image of the store, by name or ID.
    Image(String),
}

/// What one instruction does; values are as written (see [`Program`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    From {
        base: String,
    },
    Arg {
        name: String,
        default: Option<String>,
    },
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Copy {
        /// `ADD`: a local tar source is extracted.
        add: bool,
        from: CopySource,
        /// `--chmod`, forced on copied files.
        mode: Option<u32>,
        sources: Vec<String>,
        dest: String,
        /// The history line, when the build file fixes it (wrun.toml).
        created_by: Option<String>,
    },
    Entrypoint(CommandForm),
    Cmd(CommandForm),
    Run(CommandForm),
    Workdir(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    StopSignal(String),
    Maintainer(String),
}

impl BuildPlan {
    /// The wrun.toml plan as a one-stage program: `FROM scratch`, one
    /// `COPY` per copy, then the config, all values already expanded.
    pub fn into_program(self, file: &str) -> Program {
        let step = |text: String, op: Op| Instruction { line: 0, text, op };
        let mut instructions = Vec::new();
        for c in self.copies {
            instructions.push(step(
                c.created_by.clone(),
                Op::Copy {
                    add: false,
                    from: CopySource::Context,
                    mode: c.mode,
                    sources: c.sources,
                    dest: c.dest,
                    created_by: Some(c.created_by),
                },
            ));
        }
        if !self.env.is_empty() {
            let text = self
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>();
            instructions.push(step(format!("ENV {}", text.join(" ")), Op::Env(self.env)));
        }
        if !self.labels.is_empty() {
            let pairs: Vec<(String, String)> = self.labels.into_iter().collect();
            let text = pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>();
            instructions.push(step(format!("LABEL {}", text.join(" ")), Op::Label(pairs)));
        }
        if let Some(w) = self.workdir {
            instructions.push(step(format!("WORKDIR {w}"), Op::Workdir(w)));
        }
        if !self.expose.is_empty() {
            instructions.push(step(
                format!("EXPOSE {}", self.expose.join(" ")),
                Op::Expose(self.expose),
            ));
        }
        if !self.volumes.is_empty() {
            instructions.push(step(
                format!("VOLUME {:?}", self.volumes),
                Op::Volume(self.volumes),
            ));
        }
        if let Some(e) = self.entrypoint {
            instructions.push(step(
                format!("ENTRYPOINT {}", json_list(&e)),
                Op::Entrypoint(CommandForm::Exec(e)),
            ));
        }
        if let Some(c) = self.cmd {
            instructions.push(step(
                format!("CMD {}", json_list(&c)),
                Op::Cmd(CommandForm::Exec(c)),
            ));
        }
        Program {
            file: file.to_string(),
            name: self.name,
            global_args: Vec::new(),
            stages: vec![StageSpec {
                from: step(
                    "FROM scratch".into(),
                    Op::From {
                        base: "scratch".into(),
                    },
                ),
                name: None,
                instructions,
                literal: true,
            }],
            declared_args: self.consumed_args,
            warnings: self.warnings,
        }
    }
}

fn json_list(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_default()
}

/// Normalizes an `EXPOSE`/`expose` entry to `PORT/PROTO`.
pub fn normalize_port(spec: &str) -> Result<String, String> {
    let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" {
        return Err(format!(
            "invalid port {spec:?}: the protocol must be tcp or udp"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(format!("{p}/{proto}")),
        _ => Err(format!(
            "invalid port {spec:?}: expected a number from 1 to 65535"
        )),
    }
}

/// Replaces `${NAME}` (and `$NAME` when `bare` is set, as Dockerfiles allow)
/// with values from `vars`; records each name used. An unknown name is an
/// error naming it in wrun.toml; in a Dockerfile (`bare`) it expands to
/// nothing, as dockerd's, which also knows `${NAME:-WORD}` (WORD when NAME
/// is unset or empty) and `${NAME:+WORD}` (WORD when it is set and not).
pub fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
    used: &mut Vec<String>,
    bare: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\\' && bare {
            if let Some(&(_, '$')) = chars.peek() {
                out.push('$');
                chars.next();
                continue;
            }
            out.push(c);
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        let rest = &text[i + 1..];
        let (name, consumed) = if let Some(inner) = rest.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
            (&inner[..end], end + 2)
        } else if bare {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], end)
        } else {
            out.push('$');
            continue;
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let (name, modifier) = match name.find(':') {
            Some(at) if bare => (&name[..at], Some(&name[at + 1..])),
            _ => (name, None),
        };
        let value = match (vars.get(name), modifier) {
            (value, Some(m)) => {
                let set = value.filter(|v| !v.is_empty());
                if let Some(word) = m.strip_prefix('-') {
                    set.cloned()
                        .unwrap_or(substitute(word, vars, &mut Vec::new(), bare)?)
                } else if let Some(word) = m.strip_prefix('+') {
                    match set {
                        Some(_) => substitute(word, vars, &mut Vec::new(), bare)?,
                        None => String::new(),
                    }
                } else {
                    return Err(format!(
                        "unsupported modifier ({}) in substitution: {text:?}",
                        m.chars().next().unwrap_or(':')
                    ));
                }
            }
            (Some(value), None) => value.clone(),
            (None, None) if bare => String::new(),
            (None, None) => {
                return Err(format!(
                    "${{{name}}} is not set (declare it or pass --build-arg {name}=VALUE)"
                ));
            }
        };
        out.push_str(&value);
        if !used.iter().any(|u| u == name) {
            used.push(name.to_string());
        }
        // `consumed` counts bytes: skip the characters that start before
        // its end (a name may hold multi-byte characters).
        while chars.next_if(|&(j, _)| j <= i + consumed).is_some() {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_known_names_and_names_unknown_ones() {
        let vars = BTreeMap::from([("V".to_string(), "1.2".to_string())]);
        let mut used = Vec::new();
        assert_eq!(
            substitute("app-${V}.wasm", &vars, &mut used, false).unwrap(),
            "app-1.2.wasm"
        );
        assert_eq!(substitute("$V/x", &vars, &mut used, true).unwrap(), "1.2/x");
        assert_eq!(
            substitute("cost $5", &vars, &mut used, false).unwrap(),
            "cost $5"
        );
        assert_eq!(used, vec!["V"]);
        let err = substitute("${NOPE}", &vars, &mut used, false).unwrap_err();
        assert!(err.contains("--build-arg NOPE=VALUE"), "{err}");
    }

    /// A Dockerfile's unset name is empty, as dockerd expands it; its
    /// `:-` and `:+` forms.
    #[test]
    fn dockerfile_names_unset_are_empty_and_modifiers_apply() {
        let vars = BTreeMap::from([
            ("V".to_string(), "1".to_string()),
            ("E".to_string(), String::new()),
        ]);
        let mut used = Vec::new();
        let sub = |t: &str| substitute(t, &vars, &mut Vec::new(), true).unwrap();
        assert_eq!(sub("a$NOPE-b${NOPE}c"), "a-bc");
        assert_eq!(sub("${NOPE:-x$V}"), "x1");
        assert_eq!(sub("${E:-d}"), "d");
        assert_eq!(sub("${V:-d}"), "1");
        assert_eq!(sub("${V:+on}|${E:+on}|${NOPE:+on}"), "on||");
        assert!(substitute("${V:?x}", &vars, &mut used, true).is_err());
    }

    /// A name of multi-byte characters used to swallow as many characters
    /// after it as its bytes outnumbered its characters.
    #[test]
    fn text_after_a_name_of_multi_byte_characters_is_kept() {
        let vars = BTreeMap::from([("ÉTÉ".to_string(), "summer".to_string())]);
        let mut used = Vec::new();
        assert_eq!(
            substitute("${ÉTÉ}-end", &vars, &mut used, false).unwrap(),
            "summer-end"
        );
        assert_eq!(
            substitute("a${ÉTÉ}bcd", &vars, &mut used, true).unwrap(),
            "asummerbcd"
        );
    }

    #[test]
    fn ports_are_normalized_and_checked() {
        assert_eq!(normalize_port("8080").unwrap(), "8080/tcp");
        assert_eq!(normalize_port("53/UDP").unwrap(), "53/udp");
        assert!(normalize_port("0").is_err());
        assert!(normalize_port("70000/tcp").is_err());
        assert!(normalize_port("80/sctp").is_err());
    }
}
