//! The runtime's scratch directory and the private `/tmp` directories made
//! in it: each removed with its contents when its last handle goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{Dir, DirBuilder};

use crate::RuntimeError;
use crate::host_dir::{IfMissing, open_host_dir};

/// The runtime's scratch directory, under which each instance with `tmp`
/// gets its own `/tmp`.
pub(crate) struct ScratchRoot {
    dir: Arc<Dir>,
}

/// An instance's private `/tmp` on the host; removed with its contents when
/// dropped (when the instance's store is dropped).
pub(crate) struct ScratchDir {
    root: Arc<Dir>,
    name: String,
}

/// A private `/tmp` that several instances may be given through
/// [`InstanceSpec::shared_tmp`](crate::InstanceSpec::shared_tmp) (an instance and the execs beside it), made
/// with [`Runtime::shared_tmp`](crate::Runtime::shared_tmp). Clones are
/// handles on the one directory, removed with its contents once the last
/// handle (the caller's, or a running instance's) is dropped.
#[derive(Clone)]
pub struct SharedTmp(Arc<ScratchDir>);

impl SharedTmp {
    /// The directory, opened now (to preopen it for an instance).
    pub(crate) fn open(&self) -> Result<Dir, RuntimeError> {
        self.0
            .root
            .open_dir(&self.0.name)
            .map_err(|source| RuntimeError::Scratch { source })
    }

    /// Its name in the scratch directory.
    #[cfg(test)]
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether `other` is a handle on the same directory.
    #[cfg(test)]
    pub(crate) fn is(&self, other: &SharedTmp) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for SharedTmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedTmp").field(&self.0.name).finish()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // cap-std's remove_dir_all does not follow symlinks the guest made.
        let _ = self.root.remove_dir_all(&self.name);
    }
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ScratchRoot {
    pub(crate) fn open(path: &std::path::Path) -> Result<Self, RuntimeError> {
        let dir = open_host_dir(path, IfMissing::CreatePrivate).map_err(|source| {
            RuntimeError::HostDir {
                what: "scratch",
                path: path.to_owned(),
                source,
            }
        })?;
        let root = Self { dir: Arc::new(dir) };
        root.remove_leftovers();
        Ok(root)
    }

    /// Removes private `/tmp` directories left by processes that died
    /// without cleaning up (`kill -9`). Directories of live processes,
    /// including this one, are left alone.
    fn remove_leftovers(&self) {
        let Ok(entries) = self.dir.entries() else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("tmp-"))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
            else {
                continue;
            };
            let dead = matches!(
                rustix::process::test_kill_process(pid),
                Err(e) if e == rustix::io::Errno::SRCH
            );
            if dead {
                let _ = self.dir.remove_dir_all(&name);
            }
        }
    }

    /// A new empty `/tmp` directory (0700) under the root.
    pub(crate) fn create(&self) -> Result<SharedTmp, RuntimeError> {
        let mut builder = DirBuilder::new();
        {
            use cap_std::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        let mut attempts = 0;
        loop {
            let name = format!(
                "tmp-{}-{}",
                std::process::id(),
                SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            match self.dir.create_dir_with(&name, &builder) {
                Ok(()) => {
                    return Ok(SharedTmp(Arc::new(ScratchDir {
                        root: Arc::clone(&self.dir),
                        name,
                    })));
                }
                // A leftover of an earlier process with the same pid.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 64 => {
                    attempts += 1;
                }
                Err(source) => return Err(RuntimeError::Scratch { source }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_dirs_of_dead_processes_are_removed_and_live_ones_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        // pid_max is at most 2^22 on Linux: this pid cannot be alive.
        let dead = root.path().join("tmp-2147483646-0");
        let mine = root
            .path()
            .join(format!("tmp-{}-999999", std::process::id()));
        for dir in [&dead, &mine] {
            std::fs::create_dir(dir).expect("mkdir");
            std::fs::write(dir.join("f"), b"x").expect("write");
        }
        ScratchRoot::open(root.path()).expect("open");
        assert!(!dead.exists(), "leftover of a dead process kept");
        assert!(mine.exists(), "a live process's /tmp was removed");
    }
}
