//! Image references as users type them: `name[:tag][@digest]`, with the
//! Docker grammar (lowercase path components, optional registry host).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{ImageError, Result};

/// The tag a reference gets when it names none.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, validated image reference. `repository` keeps the registry host
/// when one was given (`localhost:5000/app`); there is no implicit
/// `docker.io/library/` prefix, so `hello` stays `hello`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// The `repository:tag` form a name is stored under (tag defaults to
    /// `latest`).
    pub fn name(&self) -> String {
        format!(
            "{}:{}",
            self.repository,
            self.tag.as_deref().unwrap_or(DEFAULT_TAG)
        )
    }

    /// The same reference with the default tag filled in and no digest: what
    /// `tag`, `build -t` and `load` store.
    pub fn tagged(&self) -> ImageRef {
        ImageRef {
            repository: self.repository.clone(),
            tag: Some(self.tag.clone().unwrap_or_else(|| DEFAULT_TAG.into())),
            digest: None,
        }
    }

    /// The registry host and port when the first path component names one.
    pub fn registry(&self) -> Option<&str> {
        let (first, _) = self.repository.split_once('/')?;
        (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn bad(reference: &str, reason: &str) -> ImageError {
    ImageError::BadReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    }
}

fn is_path_component(s: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    let b = s.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

impl FromStr for ImageRef {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<ImageRef> {
        if s.is_empty() {
            return Err(bad(s, "the reference is empty"));
        }
        if s.len() > 512 {
            return Err(bad(s, "the reference is longer than 512 characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| bad(s, "the digest must be sha256:<64 hex digits>"))?,
                ),
            ),
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(t) = &tag
            && !is_tag(t)
        {
            return Err(bad(
                s,
                "a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            ));
        }
        if repository.len() > 255 {
            return Err(bad(s, "the repository name is longer than 255 characters"));
        }
        let mut parts: Vec<&str> = repository.split('/').collect();
        if parts.len() > 1
            && (is_domain(parts[0]) && parts[0].contains(['.', ':']) || parts[0] == "localhost")
        {
            parts.remove(0);
        }
        for part in parts {
            if part.bytes().any(|c| c.is_ascii_uppercase()) {
                return Err(bad(s, "repository name must be lowercase"));
            }
            if !is_path_component(part) {
                return Err(bad(
                    s,
                    "each part of a repository name is lowercase letters and digits, separated by '.', '_', '__' or '-'",
                ));
            }
        }
        Ok(ImageRef {
            repository: repository.to_string(),
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_type() {
        let r: ImageRef = "hello".parse().unwrap();
        assert_eq!(r.name(), "hello:latest");
        let r: ImageRef = "hello:1.0".parse().unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("hello", Some("1.0"))
        );
        let r: ImageRef = "localhost:5000/team/app:v2".parse().unwrap();
        assert_eq!(r.repository, "localhost:5000/team/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.registry(), Some("localhost:5000"));
        let r: ImageRef = "localhost:5000/app".parse().unwrap();
        assert_eq!(r.tag, None);
        let d = Digest::of(b"x");
        let r: ImageRef = format!("app@{d}").parse().unwrap();
        assert_eq!(r.digest, Some(d));
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "",
            "Hello",
            "hello:",
            "hello:-x",
            "a//b",
            "-a",
            "a..b",
            "hello@sha256:short",
            "../etc",
            "a b",
            "hello:1.0:2",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad:?} must be rejected");
        }
    }
}
