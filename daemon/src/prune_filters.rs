//! The filters every prune route reads (`until`, `label`, `label!`), as
//! dockerd parses them: containers, images (with `dangling`), networks and
//! the build cache.

use crate::error::DaemonError;
use crate::http::{Query, parse_filters};

/// The filters of a prune: `until`, `label`, `label!`.
#[derive(Debug, Default)]
pub struct PruneFilters {
    /// Unix seconds: only what was created before.
    until: Option<i64>,
    labels: Vec<String>,
    not_labels: Vec<String>,
}

impl PruneFilters {
    pub fn parse(query: &Query) -> Result<Self, DaemonError> {
        Self::parse_with(query, &[]).map(|(f, _)| f)
    }

    /// These filters and the values of `extra` keys the caller reads (image
    /// prune's `dangling`).
    pub fn parse_with(
        query: &Query,
        extra: &[&str],
    ) -> Result<(Self, std::collections::HashMap<String, Vec<String>>), DaemonError> {
        let mut allowed = vec!["until", "label", "label!"];
        allowed.extend_from_slice(extra);
        let mut raw = parse_filters(query.get("filters"), &allowed).map_err(|e| match e {
            // Docker's words for a key it does not know.
            DaemonError::InvalidArgument(m) if m.starts_with("Invalid filter '") => {
                let key = m.split('\'').nth(1).unwrap_or("");
                DaemonError::invalid(format!("Invalid filter '{key}'"))
            }
            e => e,
        })?;
        let mut f = PruneFilters::default();
        let ours: Vec<String> = raw
            .keys()
            .filter(|k| !extra.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in ours {
            let values = raw.remove(&key).unwrap_or_default();
            match key.as_str() {
                "until" => {
                    let [value] = values.as_slice() else {
                        // Docker answers 500 to both of these.
                        return Err(DaemonError::Internal(
                            "more than one until filter specified".into(),
                        ));
                    };
                    f.until = Some(until(value)?);
                }
                "label" => f.labels = values,
                _ => f.not_labels = values,
            }
        }
        Ok((f, raw))
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_none() && self.labels.is_empty() && self.not_labels.is_empty()
    }

    /// Whether something with these labels, created then (Unix seconds;
    /// `None`: unknown, the zero time as Docker reads it), is pruned.
    pub fn matches(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
        created: Option<i64>,
    ) -> bool {
        let has = |l: &String| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l),
        };
        self.until.is_none_or(|t| created.unwrap_or(i64::MIN) < t)
            && self.labels.iter().all(has)
            && !self.not_labels.iter().any(has)
    }
}

/// An `until` value as Docker takes it: Unix seconds, an RFC 3339 time, or
/// a duration before now (`24h`, `10m`).
fn until(value: &str) -> Result<i64, DaemonError> {
    if let Ok(secs) = value.split('.').next().unwrap_or("").parse::<i64>()
        && !value.contains(|c: char| c.is_ascii_alphabetic())
    {
        return Ok(secs);
    }
    if let Some(t) = wrun_api::time::unix_seconds(Some(value)) {
        return Ok(t);
    }
    // dockerd quotes the value with Go's %q: escaped, on one line.
    let ago = go_duration(value).ok_or_else(|| {
        DaemonError::Internal(format!(
            "failed to parse value as time or duration: {value:?}"
        ))
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok(now.saturating_sub(ago))
}

/// Whole seconds of a Go duration (`90s`, `1h30m`, `1.5h`, `-10m`), as
/// Docker parses an `until` duration; `None` when it is not one.
fn go_duration(s: &str) -> Option<i64> {
    let (sign, mut rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut secs = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        secs += value * scale;
    }
    let secs = sign * secs;
    (secs.abs() < 1e15).then_some(secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_takes_unix_seconds_rfc_3339_or_a_go_duration_ago() {
        assert_eq!(go_duration("90s"), Some(90));
        assert_eq!(go_duration("1h30m"), Some(5400));
        assert_eq!(go_duration("1.5h"), Some(5400));
        assert_eq!(go_duration("-10m"), Some(-600));
        for bad in ["", "10", "10x", "h", "1h 2m"] {
            assert_eq!(go_duration(bad), None, "{bad:?}");
        }
        assert_eq!(until("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(until("1700000000.5").unwrap(), 1_700_000_000);
        assert_eq!(until("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000);
        assert_eq!(
            until("a\nb").unwrap_err().message(),
            r#"failed to parse value as time or duration: "a\nb""#
        );
        let now = until("0s").unwrap();
        assert!((until("1h").unwrap() - (now - 3600)).abs() <= 1);
        let err = until("nope").unwrap_err();
        assert_eq!(
            err.message(),
            "failed to parse value as time or duration: \"nope\""
        );
    }
}
