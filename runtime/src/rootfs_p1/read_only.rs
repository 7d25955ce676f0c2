//! Which of wasmtime-wasi's preview 1 descriptors lie under a read-only
//! preopen, so that their refused changes are EROFS as on Linux.
//!
//! wasmtime-wasi refuses a change under a read-only preopen (a `:ro`
//! volume or bind, the rootfs served without a view) with `EPERM`; the
//! same change on Linux's read-only mount, which is what dockerd gives a
//! `:ro` volume, is `EROFS`. Preview 1 shows no descriptor's permissions
//! (wasmtime-wasi answers the same rights for every preopen), so the
//! descriptors are followed from the preopens through `path_open`,
//! `fd_renumber` and `fd_close`.

use std::collections::BTreeSet;

use wasmtime_wasi::p1::types::{self, Errno};

/// The descriptor numbers opened under a read-only preopen (the preopens
/// included).
#[derive(Debug, Default)]
pub(crate) struct ReadOnlyFds(BTreeSet<u32>);

impl ReadOnlyFds {
    /// Starts from the read-only preopens' numbers.
    pub(crate) fn new(preopens: impl IntoIterator<Item = u32>) -> Self {
        ReadOnlyFds(preopens.into_iter().collect())
    }

    fn contains(&self, fd: types::Fd) -> bool {
        self.0.contains(&u32::from(fd))
    }

    /// `opened` was opened under `dir`.
    pub(super) fn opened(&mut self, dir: types::Fd, opened: types::Fd) {
        if self.contains(dir) {
            self.0.insert(u32::from(opened));
        } else {
            self.0.remove(&u32::from(opened));
        }
    }

    pub(super) fn closed(&mut self, fd: types::Fd) {
        self.0.remove(&u32::from(fd));
    }

    /// `from` now has the number `to` (whatever `to` was is closed).
    pub(super) fn renumbered(&mut self, from: types::Fd, to: types::Fd) {
        if from == to {
            return;
        }
        let read_only = self.0.remove(&u32::from(from));
        if read_only {
            self.0.insert(u32::from(to));
        } else {
            self.0.remove(&u32::from(to));
        }
    }

    /// The errno Linux gives a change through `dirs` that wasmtime-wasi
    /// refused with `EPERM`: `EROFS` when every one is under a read-only
    /// preopen, `EXDEV` for a rename or link between a read-only and a
    /// writable one (two mounts: Linux checks that first); any other
    /// result unchanged.
    pub(super) fn as_linux<T>(
        &self,
        dirs: &[types::Fd],
        result: Result<T, types::Error>,
    ) -> Result<T, types::Error> {
        match result {
            Err(e) if matches!(e.downcast_ref(), Some(Errno::Perm)) => {
                let read_only = dirs.iter().filter(|d| self.contains(**d)).count();
                Err(match read_only {
                    0 => e,
                    n if n == dirs.len() => Errno::Rofs.into(),
                    _ => Errno::Xdev.into(),
                })
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd(n: u32) -> types::Fd {
        types::Fd::from(n)
    }

    fn errno<T: std::fmt::Debug>(r: Result<T, types::Error>) -> Errno {
        r.expect_err("an error")
            .downcast()
            .expect("an errno, not a trap")
    }

    #[test]
    fn eperm_under_a_read_only_preopen_is_erofs_and_follows_its_descriptors() {
        let mut fds = ReadOnlyFds::new([5]);
        let perm = || Err::<(), _>(Errno::Perm.into());
        assert_eq!(errno(fds.as_linux(&[fd(5)], perm())), Errno::Rofs);
        // A writable preopen keeps wasmtime-wasi's answer.
        assert_eq!(errno(fds.as_linux(&[fd(4)], perm())), Errno::Perm);
        // Other errors and successes pass.
        let noent = Err::<(), _>(Errno::Noent.into());
        assert_eq!(errno(fds.as_linux(&[fd(5)], noent)), Errno::Noent);
        assert!(fds.as_linux(&[fd(5)], Ok(())).is_ok());
        // Between a read-only and a writable mount: EXDEV.
        assert_eq!(errno(fds.as_linux(&[fd(5), fd(4)], perm())), Errno::Xdev);

        fds.opened(fd(5), fd(7));
        assert_eq!(errno(fds.as_linux(&[fd(7)], perm())), Errno::Rofs);
        // A number reused by a descriptor under a writable preopen.
        fds.opened(fd(4), fd(7));
        assert_eq!(errno(fds.as_linux(&[fd(7)], perm())), Errno::Perm);
        fds.opened(fd(5), fd(8));
        fds.renumbered(fd(8), fd(9));
        assert_eq!(errno(fds.as_linux(&[fd(9)], perm())), Errno::Rofs);
        assert_eq!(errno(fds.as_linux(&[fd(8)], perm())), Errno::Perm);
        fds.renumbered(fd(4), fd(9));
        assert_eq!(errno(fds.as_linux(&[fd(9)], perm())), Errno::Perm);
        fds.closed(fd(5));
        assert_eq!(errno(fds.as_linux(&[fd(5)], perm())), Errno::Perm);
    }
}
