//! `wrun.toml`, the native build file: a flat description of the module,
//! its defaults and the extra files, turned into a [`BuildPlan`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::BuildError;
use crate::plan::{BuildPlan, CopyStep, normalize_port, substitute};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrunToml {
    name: Option<String>,
    module: String,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    workdir: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    expose: Vec<String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    copy: Vec<CopyEntry>,
    /// Defaults for `${NAME}` substitutions, overridden by `--build-arg`.
    #[serde(default, rename = "build-args")]
    build_args: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyEntry {
    src: String,
    dest: String,
}

/// Parses `wrun.toml` text; `file` names it in errors.
pub fn parse(
    text: &str,
    file: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<BuildPlan, BuildError> {
    let doc: WrunToml = toml::from_str(text).map_err(|e| BuildError::BuildFile {
        file: file.to_string(),
        message: e.message().to_string(),
        line: e.span().map(|s| text[..s.start].matches('\n').count() + 1),
    })?;
    let mut vars = doc.build_args.clone();
    vars.extend(build_args.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut used = doc.build_args.keys().cloned().collect::<Vec<_>>();
    let bad = |message: String| BuildError::BuildFile {
        file: file.to_string(),
        message,
        line: None,
    };
    let mut sub = |s: &str| substitute(s, &vars, &mut used, false).map_err(bad);

    let module = sub(&doc.module)?;
    let module_name = module
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "..")
        .ok_or_else(|| bad(format!("module {module:?} does not name a file")))?
        .to_string();
    let mut plan = BuildPlan {
        name: doc.name.as_deref().map(&mut sub).transpose()?,
        entrypoint: Some(vec![format!("/{module_name}")]),
        cmd: doc
            .args
            .as_ref()
            .map(|a| a.iter().map(|s| sub(s)).collect::<Result<Vec<_>, _>>())
            .transpose()?,
        workdir: doc.workdir.as_deref().map(&mut sub).transpose()?,
        ..BuildPlan::default()
    };
    plan.copies.push(CopyStep {
        sources: vec![module.clone()],
        dest: format!("/{module_name}"),
        mode: Some(0o755),
        created_by: format!("COPY {module} /{module_name} # wrun.toml module"),
    });
    for c in &doc.copy {
        let (src, dest) = (sub(&c.src)?, sub(&c.dest)?);
        if !dest.starts_with('/') {
            return Err(bad(format!(
                "copy dest {dest:?} must be an absolute path in the image"
            )));
        }
        plan.copies.push(CopyStep {
            created_by: format!("COPY {src} {dest}"),
            sources: vec![src],
            dest,
            mode: None,
        });
    }
    for (k, v) in &doc.env {
        if k.is_empty() || k.contains('=') {
            return Err(bad(format!("env name {k:?} is empty or contains '='")));
        }
        plan.env.push((k.clone(), sub(v)?));
    }
    for (k, v) in &doc.labels {
        plan.labels.insert(k.clone(), sub(v)?);
    }
    for p in &doc.expose {
        plan.expose.push(normalize_port(&sub(p)?).map_err(bad)?);
    }
    for v in &doc.volumes {
        let v = sub(v)?;
        if !v.starts_with('/') {
            return Err(bad(format!(
                "volume {v:?} must be an absolute path in the image"
            )));
        }
        plan.volumes.push(v);
    }
    if let Some(w) = &plan.workdir
        && !w.starts_with('/')
    {
        return Err(bad(format!("workdir {w:?} must be an absolute path")));
    }
    plan.consumed_args = used;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_key() {
        let text = r#"
name = "hello"
module = "hello-${V}.wasm"
args = ["world"]
env = { GREETING = "hello" }
workdir = "/"
labels = { "org.example.team" = "edge" }
expose = ["8080/tcp", "53/udp"]
volumes = ["/data"]
[build-args]
V = "1"
[[copy]]
src = "static"
dest = "/srv/static"
"#;
        let plan = parse(
            text,
            "wrun.toml",
            &BTreeMap::from([("V".into(), "2".into())]),
        )
        .unwrap();
        assert_eq!(plan.name.as_deref(), Some("hello"));
        assert_eq!(plan.entrypoint, Some(vec!["/hello-2.wasm".to_string()]));
        assert_eq!(plan.copies[0].sources, vec!["hello-2.wasm"]);
        assert_eq!(plan.copies[1].dest, "/srv/static");
        assert_eq!(plan.cmd, Some(vec!["world".to_string()]));
        assert_eq!(
            plan.env,
            vec![("GREETING".to_string(), "hello".to_string())]
        );
        assert_eq!(plan.expose, vec!["8080/tcp", "53/udp"]);
        assert_eq!(plan.volumes, vec!["/data"]);
        assert!(plan.consumed_args.contains(&"V".to_string()));
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let err = parse(
            "module = \"a.wasm\"\nmodul = 1\n",
            "wrun.toml",
            &BTreeMap::new(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("wrun.toml:2") && msg.contains("modul"),
            "{msg}"
        );
    }

    #[test]
    fn relative_copy_dest_is_refused() {
        let text = "module = \"a.wasm\"\n[[copy]]\nsrc = \"x\"\ndest = \"srv\"\n";
        assert!(parse(text, "wrun.toml", &BTreeMap::new()).is_err());
    }
}
