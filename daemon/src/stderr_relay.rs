//! The daemon's stderr, relayed through a pipe by a thread of its own, so
//! that saying something never fails: `eprintln!` panics when its write
//! fails, and the log of a daemon started on demand (`<root>/daemon.log`)
//! sits on the store's disk, which may be full.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

/// The relay in place: fd 2 is the pipe. Dropped, it puts the original
/// stderr back and waits until everything said before has been copied.
pub struct StderrRelay {
    original: OwnedFd,
    copier: Option<JoinHandle<()>>,
}

impl StderrRelay {
    /// Puts a pipe in place of this process's stderr and starts the thread
    /// that copies it to where stderr went. What cannot be written there is
    /// dropped, and the count said once writing works again.
    pub fn start() -> std::io::Result<Self> {
        let original = rustix::io::dup(std::io::stderr().as_fd())?;
        let to = File::from(original.try_clone()?);
        let (reader, writer) = std::io::pipe()?;
        let copier = std::thread::Builder::new()
            .name("wrun-stderr".into())
            .spawn(move || copy(reader, to))?;
        rustix::stdio::dup2_stderr(&writer)?;
        Ok(Self {
            original,
            copier: Some(copier),
        })
    }
}

impl Drop for StderrRelay {
    fn drop(&mut self) {
        // fd 2 held the pipe's last write end: the copier reads to its end.
        if rustix::stdio::dup2_stderr(&self.original).is_ok()
            && let Some(copier) = self.copier.take()
        {
            let _ = copier.join();
        }
    }
}

/// Copies `from` to `to` until `from` ends, dropping what `to` refuses.
fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0; 64 << 10];
    let mut dropped = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if dropped > 0 {
            let note = format!(
                "wrun daemon: {dropped} bytes of this log were dropped: they could not be written\n"
            );
            if to.write_all(note.as_bytes()).is_ok() {
                dropped = 0;
            }
        }
        if dropped > 0 || to.write_all(&buf[..n]).is_err() {
            dropped += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A disk that is full while `room` is false.
    struct Disk {
        room: Rc<Cell<bool>>,
        kept: Vec<u8>,
    }

    impl Write for &mut Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.room.get() {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.kept.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the daemon says, a write at a time, and whether the disk has
    /// room by then.
    struct Said {
        writes: Vec<(&'static [u8], bool)>,
        room: Rc<Cell<bool>>,
    }

    impl Read for Said {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.writes.is_empty() {
                return Ok(0);
            }
            let (bytes, room) = self.writes.remove(0);
            self.room.set(room);
            buf[..bytes.len()].copy_from_slice(bytes);
            Ok(bytes.len())
        }
    }

    #[test]
    fn what_cannot_be_written_is_dropped_then_counted() {
        let room = Rc::new(Cell::new(false));
        let mut disk = Disk {
            room: Rc::clone(&room),
            kept: Vec::new(),
        };
        let said = Said {
            writes: vec![
                (b"lost\n", false),
                (b"lost too\n", false),
                (b"kept\n", true),
            ],
            room,
        };
        copy(said, &mut disk);
        assert_eq!(
            String::from_utf8(disk.kept).unwrap(),
            "wrun daemon: 14 bytes of this log were dropped: they could not be written\nkept\n"
        );
    }
}
