//! The build's layer cache, as dockerd's classic builder keeps it: a step
//! whose parent state, expanded instruction and read content are unchanged
//! is taken from the store's build cache instead of being run again.

use wrun_image::Digest;

/// How a build uses the layer cache and its base images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachePolicy {
    /// `--no-cache`: every step runs; what they make is still recorded.
    pub no_cache: bool,
    /// `--pull`: a base image is fetched again from where it came from
    /// (its registry for `HOST[:PORT]/NAME`; the daemon's store for a
    /// scratch-store build); a stored base named without a registry has
    /// nowhere to come from, and the build says so.
    pub pull: bool,
}

/// A step's cache key: the state it runs on (`None`: `FROM scratch` with
/// nothing yet), the build's timestamp (it is in every file and config it
/// writes), the kind of step and what it does once expanded (its history
/// line, which names the digest of what a `COPY` reads and the build args
/// a `RUN` sees; the `RUN`'s module and files are the parent's).
pub fn step_key(parent: Option<&Digest>, epoch: u64, kind: &str, what: &str) -> Digest {
    let parent = parent.map(Digest::to_string).unwrap_or_default();
    let text = format!("wrun build cache 1\nparent {parent}\nepoch {epoch}\n{kind}\n{what}");
    Digest::of(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_a_step_changes_its_key() {
        let a = Digest::of(b"a");
        let base = step_key(Some(&a), 0, "RUN", "/x");
        assert_eq!(base, step_key(Some(&a), 0, "RUN", "/x"));
        for other in [
            step_key(None, 0, "RUN", "/x"),
            step_key(Some(&Digest::of(b"b")), 0, "RUN", "/x"),
            step_key(Some(&a), 1, "RUN", "/x"),
            step_key(Some(&a), 0, "COPY", "/x"),
            step_key(Some(&a), 0, "RUN", "/y"),
        ] {
            assert_ne!(base, other);
        }
    }
}
