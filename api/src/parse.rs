//! Parsers of the values users type and the API carries: memory sizes,
//! durations, bind specs, instance names and `--filter` flags. Errors are
//! the one line the user sees.

use std::collections::BTreeMap;
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
    /// A host directory: absolute, or `./relative` on the CLI side.
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
            return Err(format!(
                "invalid volume {spec:?}: named volumes are not supported; give a host directory (absolute or ./relative)"
            ));
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

impl std::fmt::Display for BindSpec {
    /// The `Binds` form, mode always written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.read_only { "ro" } else { "rw" };
        write!(f, "{}:{}:{mode}", self.host, self.guest)
    }
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ))
    }
}

/// `--filter k=v` flags as Docker's `{"k":{"v":true}}` query value.
pub fn filters_json(filters: &[String]) -> Result<String, String> {
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            return Err(format!("invalid filter {f:?}: expected KEY=VALUE"));
        };
        map.entry(k.to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    serde_json::to_string(&map).map_err(|e| e.to_string())
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
        assert!(
            BindSpec::parse("myvol:/data")
                .unwrap_err()
                .contains("named volumes")
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
        assert!(filters_json(&["nope".into()]).is_err());
    }
}
