//! The one place where the runtime opens a host path with ambient authority.
//! Everything else reaches host files through the `cap_std::fs::Dir` handles
//! this module returns.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

/// Whether [`open_host_dir`] may create the directory first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IfMissing {
    /// A missing directory is an error (rootfs, volumes: the user named them).
    Fail,
    /// Create it with mode 0700 (the runtime's own cache and scratch space).
    CreatePrivate,
}

/// Opens a host directory by path with ambient authority.
///
/// This is the only function of the crate that turns a host path into a
/// handle; a test (`ambient_authority_is_used_in_one_function`) keeps it so.
/// Callers pass paths that came from the user or the runtime configuration:
/// the rootfs snapshot, volume sources, the cache and scratch directories.
pub(crate) fn open_host_dir(path: &Path, if_missing: IfMissing) -> std::io::Result<Dir> {
    if if_missing == IfMissing::CreatePrivate {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Dir::open_ambient_dir(path, ambient_authority())
}

/// Which directory a handle or path refers to (device and inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirIdentity {
    dev: u64,
    ino: u64,
}

impl DirIdentity {
    /// The identity of an open directory.
    pub(crate) fn of(dir: &Dir) -> Self {
        match rustix::fs::fstat(dir) {
            Ok(st) => Self::from_stat(&st),
            // fstat of an open descriptor does not fail; if it did, no path
            // would match this identity and the next use opens afresh.
            Err(_) => Self { dev: 0, ino: 0 },
        }
    }

    fn from_stat(st: &rustix::fs::Stat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// What a host path names now (following symlinks, as [`open_host_dir`]
/// does), without opening it.
pub(crate) fn host_dir_identity(path: &Path) -> std::io::Result<DirIdentity> {
    let st = rustix::fs::stat(path)?;
    Ok(DirIdentity::from_stat(&st))
}

/// A path naming an already-open descriptor, for the few wasmtime APIs that
/// take a path rather than a handle (`WasiCtxBuilder::preopened_dir`,
/// `Module::deserialize_file`).
///
/// Opening it yields the very object the descriptor refers to, not whatever
/// the original path names now, so a directory swapped for a symlink after
/// we opened it cannot redirect the grant.
pub(crate) fn descriptor_path(fd: &impl AsRawFd) -> PathBuf {
    #[cfg(target_os = "linux")]
    let base = "/proc/self/fd";
    #[cfg(not(target_os = "linux"))]
    let base = "/dev/fd";
    PathBuf::from(format!("{base}/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambient_authority_is_used_in_one_function() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut hits = Vec::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("src is readable") {
                let path = entry.expect("src entry is readable").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("source is utf-8");
                    // The needle is split so this test does not count itself.
                    let needle = ["ambient_", "authority()"].concat();
                    for (n, line) in text.lines().enumerate() {
                        if line.contains(&needle) && !line.contains("let needle") {
                            hits.push(format!("{}:{}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
        assert_eq!(hits.len(), 1, "ambient authority used at: {hits:?}");
        assert!(hits[0].contains("host_dir.rs"), "{hits:?}");
    }

    #[test]
    fn descriptor_path_reopens_the_same_directory_after_a_swap() {
        let root = tempfile::tempdir().expect("tempdir");
        let granted = root.path().join("granted");
        std::fs::create_dir(&granted).expect("mkdir");
        std::fs::write(granted.join("marker"), b"granted").expect("write");
        let dir = open_host_dir(&granted, IfMissing::Fail).expect("open");
        // The attacker swaps the path for another directory after the open.
        std::fs::rename(&granted, root.path().join("moved")).expect("rename");
        std::fs::create_dir(&granted).expect("mkdir");
        let reopened = std::fs::read(descriptor_path(&dir).join("marker")).expect("read");
        assert_eq!(reopened, b"granted");
    }

    #[test]
    fn missing_directory_is_not_created_for_user_grants() {
        let root = tempfile::tempdir().expect("tempdir");
        let missing = root.path().join("nope");
        assert!(open_host_dir(&missing, IfMissing::Fail).is_err());
        assert!(!missing.exists());
    }
}
