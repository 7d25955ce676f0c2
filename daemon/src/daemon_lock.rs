//! One daemon per store: `<root>/daemon.lock`, locked exclusively (the
//! store's own `lock` file works the same way) for the daemon's life, says
//! which process serves the store and on which socket, so a second daemon
//! refuses and the CLI finds the first.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The lock file's name under the store root.
const LOCK_FILE: &str = "daemon.lock";

/// Who serves a store, as its lock file says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonHolder {
    pub pid: u32,
    pub socket: PathBuf,
}

/// A store's daemon lock, held; released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
}

fn open(root: &Path) -> anyhow::Result<File> {
    let path = root.join(LOCK_FILE);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

fn read_holder(file: &mut File) -> Option<DaemonHolder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl DaemonLock {
    /// Takes the store at `root` for a daemon serving `socket`; refuses,
    /// naming the holder, when another daemon has it.
    pub fn acquire(root: &Path, socket: &Path) -> anyhow::Result<Self> {
        let mut file = open(root)?;
        if file.try_lock().is_err() {
            let held_by = match read_holder(&mut file) {
                Some(h) => format!("pid {} on {}", h.pid, h.socket.display()),
                None => "another process".to_owned(),
            };
            anyhow::bail!(
                "the store {} is already served by a wrun daemon ({held_by}): one daemon per store; use that daemon (wrun -H unix://SOCKET …) or another --root",
                root.display()
            );
        }
        let holder = DaemonHolder {
            pid: std::process::id(),
            socket: std::path::absolute(socket).unwrap_or_else(|_| socket.to_path_buf()),
        };
        let text = serde_json::to_vec(&holder).context("encoding the store lock")?;
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(&text))
            .with_context(|| format!("writing {}", root.join(LOCK_FILE).display()))?;
        Ok(Self { _file: file })
    }

    /// The daemon serving the store at `root` right now, if any: a lock file
    /// whose lock is held. Never creates the store.
    pub fn holder(root: &Path) -> Option<DaemonHolder> {
        let mut file = File::open(root.join(LOCK_FILE)).ok()?;
        if file.try_lock_shared().is_ok() {
            // Nobody holds it: the daemon that wrote it is gone.
            return None;
        }
        read_holder(&mut file)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_daemon_on_one_store_is_refused_naming_the_first() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(DaemonLock::holder(root.path()), None);
        let first = DaemonLock::acquire(root.path(), Path::new("/run/a.sock")).unwrap();
        let held = DaemonLock::holder(root.path()).unwrap();
        assert_eq!(held.pid, std::process::id());
        assert_eq!(held.socket, Path::new("/run/a.sock"));
        // The lock belongs to the open file: a second open is a second
        // daemon, even in this process.
        let err = DaemonLock::acquire(root.path(), Path::new("/run/b.sock")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("already served"), "{msg}");
        assert!(msg.contains("/run/a.sock"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        drop(first);
        assert_eq!(
            DaemonLock::holder(root.path()),
            None,
            "released with the daemon"
        );
        let again = DaemonLock::acquire(root.path(), Path::new("/run/b.sock")).unwrap();
        assert_eq!(
            DaemonLock::holder(root.path()).unwrap().socket,
            Path::new("/run/b.sock")
        );
        drop(again);
    }
}
