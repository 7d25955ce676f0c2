//! Parsers of the values users type and the API carries: memory sizes,
//! durations, bind specs, instance names and `--filter` flags. Errors are
//! the one line the user sees.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Docker's memory syntax: a number with an optional b, k, m, g, t suffix
/// (binary multiples, optional trailing "b": 64m, 64mb, 1g).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number with an optional unit (b, k, m, g)")
    })?;
    let mult: u64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (use b, k, m, g)"
            ));
        }
    };
    let bytes = value * mult as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("invalid size {s:?}: must be positive"));
    }
    Ok(bytes as u64)
}

/// `500ms`, `5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 5s, 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {unit:?} (use ms, s, m, h)"
            ));
        }
    };
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A bind as `-v` and `HostConfig.Binds` write it: `HOST:GUEST[:ro|rw]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindSpec {
    /// A host directory (absolute, or `./relative` on the CLI side), or
    /// the name of a volume ([`BindSpec::volume_name`]).
    pub host: String,
    /// An absolute guest path other than `/`.
    pub guest: String,
    pub read_only: bool,
}

impl BindSpec {
    /// Checks the syntax only; whether the host directory exists is the
    /// side that opens it to say.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, guest, mode) = match parts.as_slice() {
            [h, g] => (*h, *g, "rw"),
            [h, g, m] => (*h, *g, *m),
            _ => {
                return Err(format!(
                    "invalid volume {spec:?}: expected HOST:GUEST[:ro|rw]"
                ));
            }
        };
        let read_only = match mode {
            "ro" => true,
            "rw" => false,
            other => {
                return Err(format!(
                    "invalid volume {spec:?}: mode {other:?} is not ro or rw"
                ));
            }
        };
        if !(host.starts_with('/') || host.starts_with('.')) {
            // A named volume: dockerd's words for a name it refuses.
            check_volume_name(host).map_err(|e| format!("create {host}: {e}"))?;
        }
        if !guest.starts_with('/') || guest == "/" {
            return Err(format!(
                "invalid volume {spec:?}: the guest path must be absolute and not /"
            ));
        }
        Ok(Self {
            host: host.to_string(),
            guest: guest.to_string(),
            read_only,
        })
    }
}

impl BindSpec {
    /// The volume's name when the bind names a volume, not a host path.
    pub fn volume_name(&self) -> Option<&str> {
        (!(self.host.starts_with('/') || self.host.starts_with('.'))).then_some(self.host.as_str())
    }
}

impl std::fmt::Display for BindSpec {
    /// The `Binds` form, mode always written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.read_only { "ro" } else { "rw" };
        write!(f, "{}:{}:{mode}", self.host, self.guest)
    }
}

/// Docker's rule for the names of containers and local volumes:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn docker_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), String> {
    if docker_name(name) {
        Ok(())
    } else {
        Err(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ))
    }
}

/// Docker's filter arguments: each key with its set of values. Values of
/// one key are alternatives (a row passes when one matches), keys all apply;
/// `label` is the exception: every value must match ([`Filters::match_labels`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeSet<String>>);

/// The CLI's refusal of a `--filter` value without `=`, worded as Docker's.
pub const BAD_FILTER_FLAG: &str = "bad format of filter (expected name=value)";

impl Filters {
    /// The `filters` query value: `{"key":{"value":true}}` as Docker's
    /// clients send it, or the older `{"key":["value"]}` (either per key);
    /// empty is no filter. Anything else is Docker's `invalid filter`.
    pub fn from_json(raw: &str) -> Result<Self, String> {
        let invalid = || "invalid filter".to_string();
        if raw.is_empty() {
            return Ok(Self::default());
        }
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(raw).map_err(|_| invalid())?;
        let mut filters = Self::default();
        for (key, values) in map {
            let values: BTreeSet<String> = match values {
                serde_json::Value::Object(set) if set.values().all(|v| v.is_boolean()) => {
                    set.into_iter().map(|(v, _)| v).collect()
                }
                serde_json::Value::Array(list) => list
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => Ok(s),
                        _ => Err(invalid()),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(invalid()),
            };
            filters.0.insert(key, values);
        }
        Ok(filters)
    }

    /// `--filter KEY=VALUE` flags (the value may hold more `=`).
    pub fn from_flags(flags: &[String]) -> Result<Self, String> {
        let mut filters = Self::default();
        for f in flags {
            let (k, v) = split_filter_flag(f)?;
            filters.add(k, v);
        }
        Ok(filters)
    }

    pub fn add(&mut self, key: &str, value: &str) {
        self.0
            .entry(key.to_string())
            .or_default()
            .insert(value.to_string());
    }

    /// The `filters` query value Docker's clients send.
    pub fn to_json(&self) -> String {
        let sets: BTreeMap<&String, BTreeMap<&String, bool>> = self
            .0
            .iter()
            .map(|(k, v)| (k, v.iter().map(|x| (x, true)).collect()))
            .collect();
        serde_json::to_string(&sets).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The values of `key`, sorted; none when the key is absent.
    pub fn values(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0.get(key).into_iter().flatten().map(String::as_str)
    }

    /// Every key with its values, as `key → [values]`.
    pub fn to_map(&self) -> BTreeMap<String, Vec<String>> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect()
    }

    /// dockerd 20.10's `Invalid filter 'KEY'` for the first key not in `accepted`.
    pub fn validate(&self, accepted: &[&str]) -> Result<(), String> {
        match self.0.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(format!("Invalid filter '{k}'")),
            None => Ok(()),
        }
    }

    /// dockerd 20.10's `Invalid filter 'KEY=[V1 V2]'` for a bad value of `key`.
    pub fn invalid_value(&self, key: &str) -> String {
        let values: Vec<&str> = self.values(key).collect();
        format!("Invalid filter '{key}=[{}]'", values.join(" "))
    }

    /// Whether `labels` holds every `label` value of `key` (`k` present, or
    /// `k=v` equal): Docker ANDs labels. True when the key is absent.
    pub fn match_labels<'a>(&self, key: &str, labels: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.values(key).all(|want| match want.split_once('=') {
            Some((k, v)) => labels(k) == Some(v),
            None => labels(want).is_some(),
        })
    }

    /// A boolean key (`true`/`1`, `false`/`0`); `None` when absent, an
    /// error when no value or both truths are given.
    pub fn bool_value(&self, key: &str) -> Result<Option<bool>, String> {
        let Some(values) = self.0.get(key) else {
            return Ok(None);
        };
        let truthy = values.contains("true") || values.contains("1");
        let falsy = values.contains("false") || values.contains("0");
        if truthy == falsy {
            return Err(self.invalid_value(key));
        }
        Ok(Some(truthy))
    }
}

/// A `--filter` flag's `KEY` and `VALUE`; Docker's words for one without `=`.
pub fn split_filter_flag(flag: &str) -> Result<(&str, &str), String> {
    match flag.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(BAD_FILTER_FLAG.to_string()),
    }
}

/// `--filter k=v` flags as Docker's `{"k":{"v":true}}` query value.
pub fn filters_json(filters: &[String]) -> Result<String, String> {
    Filters::from_flags(filters).map(|f| f.to_json())
}

/// Go's `path.Match`, which Docker's `reference` filter uses: `*` is any run
/// of characters but `/`, `?` one character but `/`, `[a-z]`/`[^a-z]` a
/// class, `\\` escapes. A malformed pattern is `syntax error in pattern`.
pub fn glob_match(pattern: &str, text: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    check_pattern(&p)?;
    Ok(glob_at(&p, &t))
}

const BAD_PATTERN: &str = "syntax error in pattern";

/// Refuses what Go refuses whether or not the text gets that far: an
/// unclosed or empty class, a dangling escape.
fn check_pattern(p: &[char]) -> Result<(), String> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(BAD_PATTERN.into());
                }
                i += 2;
            }
            '[' => i = class_end(p, i).ok_or_else(|| BAD_PATTERN.to_string())?,
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index after the class that opens at `p[open]`, if well formed.
fn class_end(p: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if p.get(i) == Some(&'^') {
        i += 1;
    }
    let mut ranges = 0;
    loop {
        let c = *p.get(i)?;
        if c == ']' && ranges > 0 {
            return Some(i + 1);
        }
        let lo = class_char(p, &mut i)?;
        if p.get(i) == Some(&'-') {
            i += 1;
            let hi = class_char(p, &mut i)?;
            if hi < lo {
                return None;
            }
        }
        ranges += 1;
    }
}

fn class_char(p: &[char], i: &mut usize) -> Option<char> {
    let c = *p.get(*i)?;
    if c == '-' || c == ']' {
        return None;
    }
    if c == '\\' {
        *i += 1;
    }
    let c = *p.get(*i)?;
    *i += 1;
    Some(c)
}

/// Whether `c` is in the (well-formed) class at `p[open]`.
fn class_matches(p: &[char], open: usize, c: char) -> bool {
    let mut i = open + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while let Some(&x) = p.get(i) {
        if x == ']' && !first {
            break;
        }
        first = false;
        let Some(lo) = class_char(p, &mut i) else {
            break;
        };
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            i += 1;
            hi = class_char(p, &mut i).unwrap_or(lo);
        }
        if lo <= c && c <= hi {
            found = true;
        }
    }
    found != negated
}

/// Go's algorithm: the pattern is chunks, each after a run of `*`, and a
/// chunk is taken at the first place it fits (a star never crosses '/', so
/// nothing is lost by not trying later places). The work is bounded by
/// pattern × text; trying every split of every star, as this once did, is
/// exponential in the stars ("*a*a*a*a*a*a*a*a*a*a*a*a*b" took minutes).
fn glob_at(mut p: &[char], mut t: &[char]) -> bool {
    while !p.is_empty() {
        let (star, chunk, rest) = scan_chunk(p);
        p = rest;
        if star && chunk.is_empty() {
            return !t.contains(&'/');
        }
        // The last chunk must end the text; another may end anywhere.
        let fits = |left: &[char]| left.is_empty() || !p.is_empty();
        if let Some(left) = match_chunk(chunk, t).filter(|l| fits(l)) {
            t = left;
            continue;
        }
        if !star {
            return false;
        }
        let skip = t.iter().take_while(|&&c| c != '/').count();
        match (1..=skip).find_map(|n| match_chunk(chunk, &t[n..]).filter(|l| fits(l))) {
            Some(left) => t = left,
            None => return false,
        }
    }
    t.is_empty()
}

/// Splits off the leading stars and the chunk up to the next star outside
/// a class: (whether there were stars, the chunk, the rest).
fn scan_chunk(p: &[char]) -> (bool, &[char], &[char]) {
    let stars = p.iter().take_while(|&&c| c == '*').count();
    let p = &p[stars..];
    let mut in_class = false;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 < p.len() => i += 1,
            '[' => in_class = true,
            ']' => in_class = false,
            '*' if !in_class => break,
            _ => {}
        }
        i += 1;
    }
    (stars > 0, &p[..i], &p[i..])
}

/// Matches a chunk (no `*` outside classes) at the start of `t`; the text
/// left after it.
fn match_chunk<'t>(mut chunk: &[char], mut t: &'t [char]) -> Option<&'t [char]> {
    while let Some(&first) = chunk.first() {
        let (&c, rest) = t.split_first()?;
        let used = match first {
            '?' => (c != '/').then_some(1)?,
            '[' => {
                let end = class_end(chunk, 0).unwrap_or(chunk.len());
                (c != '/' && class_matches(chunk, 0, c)).then_some(end)?
            }
            '\\' => (chunk.get(1) == Some(&c)).then_some(2)?,
            other => (other == c).then_some(1)?,
        };
        chunk = &chunk[used..];
        t = rest;
    }
    Some(t)
}

/// Docker's rule for a local volume's name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`),
/// with dockerd's words for a name it refuses (the caller adds the
/// `create NAME: ` prefix dockerd puts before them).
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if name.len() == 1 {
        return Err(
            "volume name is too short, names should be at least two alphanumeric characters".into(),
        );
    }
    if docker_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_follow_docker() {
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert_eq!(parse_memory("64MB"), Ok(64 << 20));
        assert_eq!(parse_memory("1g"), Ok(1 << 30));
        assert_eq!(parse_memory("512"), Ok(512));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("10x").is_err());
        assert!(parse_memory("0").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn binds_need_a_host_directory_and_an_absolute_guest_path() {
        let b = BindSpec::parse("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (b.host.as_str(), b.guest.as_str(), b.read_only),
            ("/srv/data", "/data", true)
        );
        assert_eq!(b.to_string(), "/srv/data:/data:ro");
        assert!(!BindSpec::parse("./d:/data").unwrap().read_only);
        assert!(BindSpec::parse("/d:data").is_err());
        assert!(BindSpec::parse("/d:/").is_err());
        assert!(
            BindSpec::parse("/d:/data:rx")
                .unwrap_err()
                .contains("\"rx\"")
        );
        let named = BindSpec::parse("myvol:/data").unwrap();
        assert_eq!(named.volume_name(), Some("myvol"));
        assert_eq!(BindSpec::parse("/d:/data").unwrap().volume_name(), None);
        assert_eq!(BindSpec::parse("./d:/data").unwrap().volume_name(), None);
        assert_eq!(
            BindSpec::parse("a/b:/data").unwrap_err(),
            "create a/b: \"a/b\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
        assert!(
            BindSpec::parse("x:/data")
                .unwrap_err()
                .contains("too short")
        );
        assert!(BindSpec::parse("/a:/b:ro:x").is_err());
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("a").is_err());
        assert!(check_name("-web").is_err());
        assert!(
            check_name("web/1")
                .unwrap_err()
                .contains("Invalid container name")
        );
    }

    #[test]
    fn filters_become_dockers_json() {
        let json = filters_json(&["label=a=b".into(), "label=c".into(), "status=exited".into()]);
        assert_eq!(
            json.unwrap(),
            r#"{"label":{"a=b":true,"c":true},"status":{"exited":true}}"#
        );
        assert_eq!(
            filters_json(&["nope".into()]).unwrap_err(),
            "bad format of filter (expected name=value)"
        );
    }

    #[test]
    fn filters_read_both_of_dockers_json_forms_and_refuse_the_rest() {
        let sets = Filters::from_json(r#"{"name":{"a":true,"b":true}}"#).unwrap();
        let lists = Filters::from_json(r#"{"name":["a","b"]}"#).unwrap();
        assert_eq!(sets, lists);
        assert_eq!(sets.values("name").collect::<Vec<_>>(), ["a", "b"]);
        assert!(Filters::from_json("").unwrap().is_empty());
        for bad in ["{", "[]", r#"{"label":5}"#, "null"] {
            assert_eq!(
                Filters::from_json(bad).unwrap_err(),
                "invalid filter",
                "{bad}"
            );
        }
        assert_eq!(sets.validate(&["id"]).unwrap_err(), "Invalid filter 'name'");
        assert!(sets.validate(&["id", "name"]).is_ok());
    }

    #[test]
    fn labels_are_anded_and_booleans_are_dockers() {
        let f = Filters::from_flags(&["label=a=1".into(), "label=b".into()]).unwrap();
        let both: BTreeMap<&str, &str> = [("a", "1"), ("b", "x")].into();
        let one: BTreeMap<&str, &str> = [("a", "1")].into();
        assert!(f.match_labels("label", |k| both.get(k).copied()));
        assert!(!f.match_labels("label", |k| one.get(k).copied()));
        assert!(Filters::default().match_labels("label", |_| None));
        let f = Filters::from_flags(&["dangling=1".into()]).unwrap();
        assert_eq!(f.bool_value("dangling"), Ok(Some(true)));
        assert_eq!(f.bool_value("other"), Ok(None));
        let f = Filters::from_flags(&["dangling=maybe".into()]).unwrap();
        assert_eq!(
            f.bool_value("dangling").unwrap_err(),
            "Invalid filter 'dangling=[maybe]'"
        );
        let f = Filters::from_flags(&["d=true".into(), "d=false".into()]).unwrap();
        assert_eq!(
            f.bool_value("d").unwrap_err(),
            "Invalid filter 'd=[false true]'"
        );
    }

    /// Found by the api_parse fuzz target: trying every split of every
    /// star took minutes for a dozen stars; a daemon's `reference` filter
    /// is user input. Now each chunk is tried once per position.
    #[test]
    fn many_stars_against_a_long_name_answer_at_once() {
        let pattern = "*a".repeat(40) + "*b";
        let name = "a".repeat(200);
        assert_eq!(glob_match(&pattern, &name), Ok(false));
        assert_eq!(glob_match(&pattern, &(name.clone() + "b")), Ok(true));
        assert_eq!(glob_match(&pattern, &(name + "/b")), Ok(false));
    }

    #[test]
    fn globs_follow_gos_path_match() {
        let yes = |p: &str, t: &str| glob_match(p, t).unwrap();
        assert!(yes("hel*", "hello:1"));
        assert!(yes("*", "hello"));
        assert!(!yes("*", "me/app"));
        assert!(yes("*/*", "me/app"));
        assert!(yes("h?llo", "hello"));
        assert!(yes("h[a-f]llo", "hello"));
        assert!(!yes("h[^a-f]llo", "hello"));
        assert!(yes("a\\*", "a*"));
        assert!(!yes("a\\*", "ab"));
        assert!(!yes("hello", "hello:1"));
        assert!(yes("*a*b", "xaybzb"));
        assert!(!yes("*a*b", "xaybzbc"));
        assert!(yes("a*/b*", "axx/byy"));
        assert!(!yes("a*b", "ax/b"));
        for bad in ["[", "a[", "[]", "x\\", "[z-a]"] {
            assert_eq!(
                glob_match(bad, "zzz").unwrap_err(),
                "syntax error in pattern",
                "{bad}"
            );
        }
    }

    #[test]
    fn volume_names_follow_dockers_rule_and_words() {
        for good in ["ab", "my-vol", "a.b_c-9", "0123"] {
            assert!(check_volume_name(good).is_ok(), "{good}");
        }
        assert_eq!(
            check_volume_name("x").unwrap_err(),
            "volume name is too short, names should be at least two alphanumeric characters"
        );
        for bad in ["bad/name", "-ab", ".ab", "a:b", "a b", "", "é1"] {
            let e = check_volume_name(bad).unwrap_err();
            assert!(
                e.ends_with("includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"),
                "{bad}: {e}"
            );
        }
        assert!(
            check_volume_name("bad/name")
                .unwrap_err()
                .starts_with("\"bad/name\" includes")
        );
    }
}
