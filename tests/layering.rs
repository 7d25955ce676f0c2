//! The layering docs/architecture.md describes, checked: no module of any
//! crate imports, through any chain, a module that imports it back, and
//! the Docker API crate depends on no other wrun crate.
//!
//! Imports are read as text: `use` paths and inline `crate::`/`super::`
//! paths outside `#[cfg(test)]` blocks, with names a crate root re-exports
//! (`pub use m::Name`) followed to the module that defines them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source folders of the workspace's crates, with their root file.
const CRATES: &[(&str, &str)] = &[
    ("src", "main.rs"),
    ("api/src", "lib.rs"),
    ("daemon/src", "lib.rs"),
    ("runtime/src", "lib.rs"),
    ("image/src", "lib.rs"),
    ("bundler/src", "lib.rs"),
    ("rootfs/src", "lib.rs"),
];

type Module = Vec<String>;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, with its module path (`a/mod.rs` and
/// `a.rs` are `a`; the crate root is the empty path).
fn modules(dir: &Path, root_file: &str) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)
            .expect("read a source folder")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(dir).expect("under the folder");
            let mut parts: Module = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") || rel == Path::new(root_file) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            out.insert(parts, without_tests_and_comments(&text));
        }
    }
    out
}

/// The text before the first `#[cfg(test)]`, without `//` comments.
fn without_tests_and_comments(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or_default();
    body.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file names that start at `crate`, `super` or `self`, with
/// one level of `{a, b::c}` groups expanded.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            let boundary = at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':');
            if !boundary {
                continue;
            }
            let (head, rest) = chain(&text[at..]);
            match rest.strip_prefix('{') {
                Some(group) => {
                    let inner = &group[..group.find('}').unwrap_or(group.len())];
                    for item in inner.split(',') {
                        let (tail, _) = chain(item.trim());
                        if !tail.is_empty() {
                            out.push(head.iter().cloned().chain(tail).collect());
                        }
                    }
                }
                None => out.push(head),
            }
        }
    }
    out
}

/// The `a::b::c` identifiers at the start of `s`, and what follows them.
fn chain(s: &str) -> (Vec<String>, &str) {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        parts.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    (parts, rest)
}

/// Names the crate root re-exports, and the module each comes from.
fn reexports(root: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in root.split(';') {
        let stmt = stmt.trim();
        let Some(path) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let (head, rest) = chain(path);
        let Some(module) = head.first() else { continue };
        let names: Vec<String> = match rest.strip_prefix('{') {
            Some(group) => group
                .trim_end_matches('}')
                .split(',')
                .filter_map(|i| i.split_whitespace().last().map(str::to_owned))
                .collect(),
            None => head.last().cloned().into_iter().collect(),
        };
        for n in names {
            out.insert(
                n.trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
                    .to_string(),
                module.clone(),
            );
        }
    }
    out
}

/// The module a path names, from the file `from`: its longest prefix that
/// is a module of the crate.
fn resolve(
    from: &Module,
    path: &[String],
    known: &BTreeMap<Module, String>,
    reexported: &BTreeMap<String, String>,
) -> Option<Module> {
    let (mut base, rest): (Module, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (from.clone(), &path[1..]),
        "super" => {
            let mut b = from.clone();
            let mut rest = path;
            while rest.first().is_some_and(|p| p == "super") {
                b.pop();
                rest = &rest[1..];
            }
            (b, rest)
        }
        _ => return None,
    };
    if base.is_empty()
        && let Some(first) = rest.first()
        && !known.contains_key(&vec![first.clone()])
        && let Some(m) = reexported.get(first)
    {
        return Some(vec![m.clone()]);
    }
    let mut found = known.contains_key(&base).then(|| base.clone());
    for part in rest {
        base.push(part.clone());
        if known.contains_key(&base) {
            found = Some(base.clone());
        }
    }
    found
}

/// The module-level import graph of one crate.
fn graph(dir: &str, root_file: &str) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(&workspace().join(dir), root_file);
    let reexported = reexports(known.get(&Vec::new()).map_or("", String::as_str));
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in &known {
        let targets = edges.entry(module.clone()).or_default();
        for path in paths(text) {
            if let Some(to) = resolve(module, &path, &known, &reexported)
                && &to != module
                && !to.is_empty()
            {
                targets.insert(to);
            }
        }
    }
    edges
}

/// The groups of two or more modules that reach each other (Tarjan).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    self.out.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.out
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut found = Vec::new();
    for (dir, root) in CRATES {
        for group in cycles(&graph(dir, root)) {
            let names: Vec<String> = group.iter().map(|m| m.join("::")).collect();
            found.push(format!("{dir}: {}", names.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle_through_a_reexport_and_a_parent() {
    let known: BTreeMap<Module, String> = [
        (vec![], "pub use b::Thing;".to_string()),
        (vec!["a".to_string()], "use crate::Thing;".to_string()),
        (vec!["b".to_string()], "use crate::{a::f, c};".to_string()),
        (vec!["c".to_string()], String::new()),
    ]
    .into_iter()
    .collect();
    let reexported = reexports(&known[&Vec::new()]);
    let a = vec!["a".to_string()];
    let b = vec!["b".to_string()];
    let to_b = paths(&known[&a])
        .iter()
        .filter_map(|p| resolve(&a, p, &known, &reexported))
        .collect::<Vec<_>>();
    assert_eq!(to_b, vec![b.clone()]);
    let from_b: BTreeSet<Module> = paths(&known[&b])
        .iter()
        .filter_map(|p| resolve(&b, p, &known, &reexported))
        .collect();
    assert!(from_b.contains(&a) && from_b.contains(&vec!["c".to_string()]));
    let edges: BTreeMap<Module, BTreeSet<Module>> = [
        (a.clone(), [b.clone()].into()),
        (b.clone(), [a.clone()].into()),
    ]
    .into();
    assert_eq!(cycles(&edges).len(), 1);
    let parent = vec!["p".to_string()];
    let child = vec!["p".to_string(), "q".to_string()];
    let super_path = paths("use super::helper;");
    let with_parent: BTreeMap<Module, String> = [
        (parent.clone(), String::new()),
        (child.clone(), String::new()),
    ]
    .into();
    assert_eq!(
        resolve(&child, &super_path[0], &with_parent, &BTreeMap::new()),
        Some(parent)
    );
}

#[test]
fn the_api_crate_depends_on_no_other_wrun_crate() {
    let manifest =
        std::fs::read_to_string(workspace().join("api/Cargo.toml")).expect("api/Cargo.toml");
    let deps = manifest.split("[dependencies]").nth(1).unwrap_or_default();
    let deps = deps.split("\n[").next().unwrap_or_default();
    assert!(
        !deps.contains("wrun"),
        "api/ must stay below every other crate: {deps}"
    );
}
