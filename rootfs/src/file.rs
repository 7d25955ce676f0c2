//! An open file of the view: reads and writes at offsets, append, size,
//! times, sync. A file opened for writing is already in the upper (copied
//! up at open), so its data operations never touch the lower.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, PoisonError, RwLock};

use rustix::fs::Mode;
use rustix::io::ReadWriteFlags;

use crate::error::{Error, Result};
use crate::host::{self, SetTime, Stat};
use crate::path::ViewPath;
use crate::quota::Quota;

/// Which layer holds a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Upper,
    Lower,
}

/// What a file handle asks of its view when a metadata change reaches a
/// file it reads from the lower: copy the file at `path` up if it is still
/// that lower file (same device and inode) and open the copy read-only.
pub(crate) trait CopyUpHandle: Send + Sync {
    fn copy_up_handle(&self, path: &ViewPath, lower: &Stat) -> Result<File>;
    /// Whether the view is read-only: no metadata change of any file.
    fn is_read_only(&self) -> bool;
}

/// An open file; clones share it (one WASI descriptor, several streams).
#[derive(Clone)]
pub struct ViewFile {
    inner: Arc<FileInner>,
}

struct FileInner {
    view: Arc<dyn CopyUpHandle>,
    quota: Arc<Quota>,
    path: ViewPath,
    read: bool,
    write: bool,
    host: RwLock<HostFile>,
}

struct HostFile {
    file: File,
    layer: Layer,
}

impl ViewFile {
    pub(crate) fn new(
        view: Arc<dyn CopyUpHandle>,
        quota: Arc<Quota>,
        path: ViewPath,
        file: File,
        layer: Layer,
        read: bool,
        write: bool,
    ) -> ViewFile {
        ViewFile {
            inner: Arc::new(FileInner {
                view,
                quota,
                path,
                read,
                write,
                host: RwLock::new(HostFile { file, layer }),
            }),
        }
    }

    fn host(&self) -> std::sync::RwLockReadGuard<'_, HostFile> {
        self.inner
            .host
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The path the file was opened at (it does not follow renames).
    pub fn path(&self) -> &ViewPath {
        &self.inner.path
    }

    pub fn is_readable(&self) -> bool {
        self.inner.read
    }

    pub fn is_writable(&self) -> bool {
        self.inner.write
    }

    /// Reads at `offset`; 0 at the end of the file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if !self.inner.read {
            return Err(Error::BadDescriptor("reading"));
        }
        Ok(self.host().file.read_at(buf, offset)?)
    }

    /// Writes at `offset` (growing the file as needed, within the upper's
    /// size limit).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize> {
        let end = offset.checked_add(buf.len() as u64).ok_or(Error::Invalid)?;
        self.write_with(|_| end, |f| f.write_at(buf, offset))
    }

    /// Writes at the end of the file, atomically with respect to other
    /// appends (`pwritev2` with `RWF_APPEND`, whatever the offset).
    pub fn append(&self, buf: &[u8]) -> Result<usize> {
        let len = buf.len() as u64;
        self.write_with(
            |size| size.saturating_add(len),
            |f| {
                rustix::io::pwritev2(f, &[std::io::IoSlice::new(buf)], 0, ReadWriteFlags::APPEND)
                    .map_err(std::io::Error::from)
            },
        )
    }

    /// Runs a write, charging the growth of the file to the size limit.
    /// Under a limit, writes of one view are serialised with each other so
    /// the count stays exact.
    fn write_with(
        &self,
        end: impl FnOnce(u64) -> u64,
        op: impl FnOnce(&File) -> std::io::Result<usize>,
    ) -> Result<usize> {
        if !self.inner.write {
            return Err(Error::BadDescriptor("writing"));
        }
        let host = self.host();
        let quota = &self.inner.quota;
        let Some(limit) = quota.limit() else {
            return Ok(op(&host.file)?);
        };
        let mut used = quota.used();
        let size = host.file.metadata()?.len();
        let grow = end(size).saturating_sub(size);
        if used.saturating_add(grow) > limit {
            return Err(quota.refuse());
        }
        let n = op(&host.file)?;
        let after = host.file.metadata()?.len();
        *used = used.saturating_add(after.saturating_sub(size));
        Ok(n)
    }

    /// `ftruncate`: cuts or extends (with zeros, within the size limit).
    pub fn set_size(&self, len: u64) -> Result<()> {
        if !self.inner.write {
            return Err(Error::BadDescriptor("writing"));
        }
        let host = self.host();
        let quota = &self.inner.quota;
        let Some(limit) = quota.limit() else {
            host.file.set_len(len)?;
            return Ok(());
        };
        let mut used = quota.used();
        let size = host.file.metadata()?.len();
        if len > size && used.saturating_add(len - size) > limit {
            return Err(quota.refuse());
        }
        host.file.set_len(len)?;
        if len > size {
            *used = used.saturating_add(len - size);
        } else {
            *used = used.saturating_sub(size - len);
        }
        Ok(())
    }

    pub fn stat(&self) -> Result<Stat> {
        host::fstat(std::os::fd::AsFd::as_fd(&self.host().file))
    }

    pub fn sync(&self) -> Result<()> {
        Ok(self.host().file.sync_all()?)
    }

    pub fn sync_data(&self) -> Result<()> {
        Ok(self.host().file.sync_data()?)
    }

    /// `futimens`: copies a lower file up first.
    pub fn set_times(&self, atime: SetTime, mtime: SetTime) -> Result<()> {
        let ts = host::timestamps(atime, mtime);
        self.in_upper(|f| Ok(rustix::fs::futimens(f, &ts)?))
    }

    /// `fchmod`: copies a lower file up first.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        self.in_upper(|f| Ok(rustix::fs::fchmod(f, Mode::from_raw_mode(mode & 0o7777))?))
    }

    /// Runs a metadata change on the upper's file, first copying the lower
    /// file this handle reads up and moving the handle onto the copy.
    fn in_upper(&self, op: impl FnOnce(&File) -> Result<()>) -> Result<()> {
        if self.inner.view.is_read_only() {
            return Err(Error::ReadOnly);
        }
        {
            let host = self.host();
            if host.layer == Layer::Upper {
                return op(&host.file);
            }
        }
        let mut host = self
            .inner
            .host
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if host.layer == Layer::Lower {
            let lower = host::fstat(std::os::fd::AsFd::as_fd(&host.file))?;
            host.file = self.inner.view.copy_up_handle(&self.inner.path, &lower)?;
            host.layer = Layer::Upper;
        }
        op(&host.file)
    }
}
