//! `.dockerignore`: which context paths a build leaves out, with Docker's
//! rules (moby's patternmatcher: Go's `filepath.Match` plus `**` and `!`).
//!
//! Each line is trimmed; `#` starts a comment; `!` makes an exception. A
//! pattern is cleaned as Go's `filepath.Clean` cleans it and a leading `/` is
//! dropped, so `/foo`, `./foo` and `foo/` all mean `foo`. `*` and `?` stop at
//! `/`, `[...]` is a class (negated by `^`), `\` escapes the next character,
//! `**/` matches any number of directories (none included) and a trailing
//! `**` anything. A pattern excludes a path when it matches the path or one
//! of its parent directories; the last matching line decides.

use regex::Regex;

/// One compiled line.
#[derive(Debug)]
struct Rule {
    exception: bool,
    regex: Regex,
}

/// The rules of one `.dockerignore` file.
#[derive(Debug, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Parses a `.dockerignore` text; an error names the line and why
    /// Docker would refuse it too (a bare `!`, an unterminated `[`).
    pub fn parse(text: &str) -> Result<IgnoreRules, String> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let mut pattern = raw.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
                if pattern.is_empty() {
                    return Err(format!("line {}: illegal exclusion pattern: \"!\"", i + 1));
                }
            }
            let mut cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let regex =
                Regex::new(&to_regex(&cleaned).map_err(|e| format!("line {}: {e}", i + 1))?)
                    .map_err(|e| format!("line {}: invalid pattern {pattern:?}: {e}", i + 1))?;
            rules.push(Rule { exception, regex });
        }
        Ok(IgnoreRules { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule is an exception (`!pattern`): then an excluded
    /// directory must still be walked, for the files it re-includes.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is
    /// left out of the build context.
    pub fn excludes(&self, path: &str) -> bool {
        let path = go_clean(path);
        let parents: Vec<&str> = match path.rfind('/') {
            Some(at) => path[..at].split('/').collect(),
            None => Vec::new(),
        };
        let mut excluded = false;
        for rule in &self.rules {
            // Only a rule that could change the answer is tried.
            if rule.exception != excluded {
                continue;
            }
            let mut matched = rule.regex.is_match(&path);
            if !matched {
                matched = (1..=parents.len()).any(|n| rule.regex.is_match(&parents[..n].join("/")));
            }
            if matched {
                excluded = !rule.exception;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean` on a `/`-separated path.
fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Translates one cleaned pattern into an anchored regular expression, as
/// moby's patternmatcher does.
fn to_regex(pattern: &str) -> Result<String, String> {
    let mut out = String::from("^");
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    out.push(']');
                }
                '\\' => {
                    let next = chars
                        .next()
                        .ok_or_else(|| format!("pattern {pattern:?} ends with a lone \\"))?;
                    out.push_str(&regex::escape(&next.to_string()));
                }
                '[' => out.push_str("\\["),
                c => out.push(c),
            }
            continue;
        }
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    out.push_str(".*");
                } else {
                    out.push_str("(.*/)?");
                }
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            '\\' => {
                let next = chars
                    .next()
                    .ok_or_else(|| format!("pattern {pattern:?} ends with a lone \\"))?;
                out.push_str(&regex::escape(&next.to_string()));
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    if in_class {
        return Err(format!("pattern {pattern:?} has an unterminated ["));
    }
    out.push('$');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text).unwrap()
    }

    #[test]
    fn a_pattern_excludes_the_path_and_everything_below_it() {
        let r = rules("node_modules\n/build/\n./tmp\n");
        assert!(r.excludes("node_modules"));
        assert!(r.excludes("node_modules/x/y.js"));
        assert!(r.excludes("build/out.o"));
        assert!(r.excludes("tmp"));
        // Unlike .gitignore, a bare name is anchored at the root.
        assert!(!r.excludes("src/node_modules"));
        assert!(!r.excludes("buildx"));
    }

    #[test]
    fn stars_stop_at_slashes_and_double_stars_do_not() {
        let r = rules("*.md\n**/*.log\ndocs/**\n");
        assert!(r.excludes("README.md"));
        assert!(!r.excludes("sub/README.md"), "* does not cross /");
        assert!(r.excludes("a.log") && r.excludes("a/b/c.log"));
        assert!(r.excludes("docs/a/b"));
        assert!(!r.excludes("docs"), "docs/** needs something below docs");
        let r = rules("a/**/z\n");
        assert!(r.excludes("a/z") && r.excludes("a/b/c/z"));
    }

    #[test]
    fn the_last_matching_line_decides_and_exceptions_reinclude() {
        let r = rules("*.md\n!README.md\n");
        assert!(r.excludes("CHANGES.md"));
        assert!(!r.excludes("README.md"));
        let r = rules("!README.md\n*.md\n");
        assert!(r.excludes("README.md"), "a later exclusion wins");
        let r = rules("dir\n!dir/keep\n");
        assert!(r.excludes("dir/other"));
        assert!(!r.excludes("dir/keep"));
        assert!(r.has_exceptions());
    }

    #[test]
    fn classes_question_marks_escapes_and_comments() {
        let r = rules("# comment\nfile?.txt\n[a-c].bin\n[^x]y\nweird\\*name\n");
        assert!(r.excludes("file1.txt") && !r.excludes("file10.txt"));
        assert!(r.excludes("b.bin") && !r.excludes("d.bin"));
        assert!(r.excludes("zy") && !r.excludes("xy"));
        assert!(r.excludes("weird*name") && !r.excludes("weirdXname"));
        assert!(!r.excludes("# comment"));
        let r = rules("a.b\n");
        assert!(!r.excludes("axb"), "a dot is literal");
    }

    #[test]
    fn docker_refuses_a_bare_bang_and_an_open_class() {
        assert!(
            IgnoreRules::parse("!\n")
                .unwrap_err()
                .contains("illegal exclusion")
        );
        assert!(
            IgnoreRules::parse("ok\n[abc\n")
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn go_clean_matches_go() {
        assert_eq!(go_clean("./a/../b/"), "b");
        assert_eq!(go_clean("/../a"), "/a");
        assert_eq!(go_clean("../a"), "../a");
        assert_eq!(go_clean(""), ".");
    }
}
