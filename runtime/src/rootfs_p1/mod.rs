//! WASI preview 1 filesystem functions over an instance's writable rootfs
//! (a `wrun_rootfs::Layers`): the view's descriptors are served here, every
//! other call goes to wasmtime-wasi's `WasiP1Ctx` unchanged.
//!
//! `CoreState` implements wasmtime-wasi's generated `WasiSnapshotPreview1`
//! trait and is linked in place of `WasiP1Ctx`. Descriptor numbers: the
//! view's root is wasmtime-wasi's first preopen (fd 3, `/`, a read-only
//! handle on the lower that only answers `fd_prestat_*` and `fd_fdstat_get`),
//! so wasi-libc finds `/` as before; what a guest opens under it gets a
//! number from [`VIEW_FD_BASE`] up, in this module's own table, which
//! wasmtime-wasi's table (last used + 1, or a freed number) never reaches.
//! See docs/rootfs.md, "Preview 1 guests".

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::types::{self, Errno};
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1;
use wiggle::{GuestMemory, GuestPtr, GuestType};
use wrun_rootfs::{DirEntry, Kind, Layers, OpenOptions, Opened, SetTime, Stat, ViewDir, ViewFile};

use crate::RuntimeError;

mod host;
mod read_only;

pub(crate) use read_only::ReadOnlyFds;

type Result<T, E = types::Error> = std::result::Result<T, E>;

/// The first number of a descriptor opened under the view. wasmtime-wasi
/// numbers its own from 0 up and caps its table at a million entries, so it
/// never gets here; wasi-libc takes any non-negative `int`.
pub(crate) const VIEW_FD_BASE: u32 = 1 << 30;

/// Descriptors a guest may hold open under the view at once (Linux's
/// default soft `RLIMIT_NOFILE`): `EMFILE` after that, long before the
/// host runs out. A directory costs no host descriptor, a file one.
pub(crate) const MAX_VIEW_FDS: usize = 1024;

/// wasmtime-wasi numbers stdin, stdout, stderr 0 to 2, then the preopens
/// in order; the rootfs is the first (`sandbox::preopen_dirs`).
const ROOT_FD: u32 = 3;

/// wasmtime's default fuel for one host call's copies out of guest memory,
/// before the first call sets it.
const DEFAULT_HOSTCALL_FUEL: usize = 128 << 20;

/// The view's descriptors of one core instance. Without a view a store has
/// none of this; with one that is never opened, it holds the `Layers` and
/// an empty table (no allocation, no host descriptor).
pub(crate) struct ViewFds {
    layers: Layers,
    /// The guest's number for the view's root: wasmtime-wasi's `/`
    /// preopen; `None` once the guest closed it.
    root: Option<u32>,
    /// The root's last listing, for `fd_readdir` calls after the first.
    root_listing: Option<Arc<Vec<DirEntry>>>,
    open: BTreeMap<u32, ViewFd>,
    /// What is left of this host call's budget for copies out of guest
    /// memory (wasmtime's hostcall fuel, as `WasiP1Ctx` counts it).
    fuel: usize,
}

enum ViewFd {
    Dir {
        dir: ViewDir,
        /// The listing `fd_readdir` read at cookie 0, for the calls that
        /// continue it (cookies are indexes into one listing).
        listing: Option<Arc<Vec<DirEntry>>>,
    },
    File(OpenFile),
}

struct OpenFile {
    file: ViewFile,
    pos: u64,
    /// `APPEND`, `NONBLOCK` and the sync flags the guest asked for.
    flags: types::Fdflags,
}

/// What a descriptor number names for the view.
enum Held {
    Root,
    Dir(ViewDir),
    File,
}

impl ViewFds {
    /// The view's descriptors for a store whose WASI context is `wasi`, or
    /// `None` without a view. The view needs the rootfs preopen (`/`, fd
    /// 3): it is served in its place.
    pub(crate) fn attach(
        layers: Option<Layers>,
        wasi: &mut WasiP1Ctx,
    ) -> Result<Option<ViewFds>, RuntimeError> {
        let Some(layers) = layers else {
            return Ok(None);
        };
        // `fd_prestat_get` reads no guest memory. A preopen of name length
        // 1 is `/`: volumes are never at `/`, and `/tmp` is longer.
        let mut no_memory: [u8; 0] = [];
        let mut memory = GuestMemory::Unshared(&mut no_memory);
        let root_is_slash = matches!(
            wasi.fd_prestat_get(&mut memory, types::Fd::from(ROOT_FD)),
            Ok(types::Prestat::Dir(types::PrestatDir { pr_name_len: 1 }))
        );
        if !root_is_slash {
            return Err(RuntimeError::InvalidSpec {
                what: "writable rootfs",
                value: layers.upper_path().display().to_string(),
                reason: "needs `rootfs` too: the view is served in place of its read-only `/`",
            });
        }
        Ok(Some(ViewFds {
            layers,
            root: Some(ROOT_FD),
            root_listing: None,
            open: BTreeMap::new(),
            fuel: DEFAULT_HOSTCALL_FUEL,
        }))
    }

    fn owns(&self, fd: types::Fd) -> bool {
        let n = u32::from(fd);
        self.root == Some(n) || self.open.contains_key(&n)
    }

    fn held(&self, fd: types::Fd) -> Result<Held> {
        let n = u32::from(fd);
        if self.root == Some(n) {
            return Ok(Held::Root);
        }
        match self.open.get(&n) {
            Some(ViewFd::Dir { dir, .. }) => Ok(Held::Dir(dir.clone())),
            Some(ViewFd::File(_)) => Ok(Held::File),
            None => Err(Errno::Badf.into()),
        }
    }

    /// The directory `fd` names (the root or one opened under it).
    fn dir(&self, fd: types::Fd) -> Result<ViewDir> {
        match self.held(fd)? {
            Held::Root => Ok(self.layers.root()),
            Held::Dir(dir) => Ok(dir),
            // wasmtime-wasi's answer to a path call on a file.
            Held::File => Err(Errno::Badf.into()),
        }
    }

    fn file(&mut self, fd: types::Fd) -> Result<&mut OpenFile> {
        match self.open.get_mut(&u32::from(fd)) {
            Some(ViewFd::File(f)) => Ok(f),
            _ => Err(Errno::Badf.into()),
        }
    }

    fn consume_fuel(&mut self, amount: usize) -> Result<()> {
        if amount > self.fuel {
            return Err(Errno::Nomem.into());
        }
        self.fuel -= amount;
        Ok(())
    }

    fn consume_fuel_for_array<T: GuestType>(&mut self, array: GuestPtr<[T]>) -> Result<()> {
        let bytes = usize::try_from(array.len())?
            .checked_mul(usize::try_from(T::guest_size())?)
            .ok_or(Errno::Overflow)?;
        self.consume_fuel(bytes)
    }

    fn read_string(&mut self, memory: &GuestMemory<'_>, ptr: GuestPtr<str>) -> Result<String> {
        self.consume_fuel(usize::try_from(ptr.len())?)?;
        Ok(memory.as_cow_str(ptr)?.into_owned())
    }

    /// The first non-empty buffer of `iovs` (an empty one if none), as
    /// wasmtime-wasi reads and writes: one buffer per call.
    fn first_buffer<T>(
        &mut self,
        memory: &GuestMemory<'_>,
        iovs: GuestPtr<[T]>,
        buf: impl Fn(&T) -> (GuestPtr<u8>, u32),
    ) -> Result<GuestPtr<[u8]>>
    where
        T: GuestType,
    {
        self.consume_fuel_for_array(iovs)?;
        for iov in iovs.iter() {
            let iov = memory.read(iov?)?;
            let (ptr, len) = buf(&iov);
            if len == 0 {
                continue;
            }
            let array = ptr.as_array(len);
            self.consume_fuel(usize::try_from(len)?)?;
            return Ok(array);
        }
        Ok(GuestPtr::new((0, 0)))
    }

    fn insert(&mut self, fd: ViewFd) -> Result<types::Fd> {
        if self.open.len() >= MAX_VIEW_FDS {
            return Err(Errno::Mfile.into());
        }
        // The lowest free number, as POSIX hands them out.
        let mut n = VIEW_FD_BASE;
        for used in self.open.keys() {
            if *used != n {
                break;
            }
            n += 1;
        }
        self.open.insert(n, fd);
        Ok(types::Fd::from(n))
    }

    fn fdstat(&self, fd: types::Fd) -> Result<types::Fdstat> {
        let (filetype, flags, readable, writable) = match self.open.get(&u32::from(fd)) {
            Some(ViewFd::Dir { .. }) => (
                types::Filetype::Directory,
                types::Fdflags::empty(),
                true,
                false,
            ),
            Some(ViewFd::File(f)) => (
                types::Filetype::RegularFile,
                f.flags,
                f.file.is_readable(),
                f.file.is_writable(),
            ),
            None => return Err(Errno::Badf.into()),
        };
        // wasmtime-wasi's rights for a descriptor it opened.
        let mut rights = types::Rights::all();
        if filetype == types::Filetype::Directory {
            rights &= !(types::Rights::FD_SEEK
                | types::Rights::FD_FILESTAT_SET_SIZE
                | types::Rights::PATH_FILESTAT_SET_SIZE);
        }
        if !readable {
            rights &= !(types::Rights::FD_READ | types::Rights::FD_READDIR);
        }
        if !writable {
            rights &= !types::Rights::FD_WRITE;
        }
        Ok(types::Fdstat {
            fs_filetype: filetype,
            fs_flags: flags,
            fs_rights_base: rights,
            fs_rights_inheriting: rights,
        })
    }

    async fn filestat(&mut self, fd: types::Fd) -> Result<types::Filestat> {
        let layers = self.layers.clone();
        let stat = match self.held(fd)? {
            Held::Root => blocking(move || layers.stat(&layers.root())).await?,
            Held::Dir(dir) => blocking(move || layers.stat(&dir)).await?,
            Held::File => {
                let file = self.file(fd)?.file.clone();
                blocking(move || file.stat()).await?
            }
        };
        Ok(filestat(&stat))
    }

    async fn set_times(&mut self, fd: types::Fd, atime: SetTime, mtime: SetTime) -> Result<()> {
        match self.held(fd)? {
            Held::File => {
                let file = self.file(fd)?.file.clone();
                blocking(move || file.set_times(atime, mtime)).await
            }
            Held::Root | Held::Dir(_) => {
                let (layers, dir) = (self.layers.clone(), self.dir(fd)?);
                blocking(move || layers.set_times_at(&dir, ".", true, atime, mtime)).await
            }
        }
    }

    async fn read(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
        at: Option<u64>,
    ) -> Result<types::Size> {
        let buf = self.first_buffer(memory, iovs, |iov| (iov.buf, iov.buf_len))?;
        let f = self.file(fd)?;
        let (file, pos) = (f.file.clone(), at.unwrap_or(f.pos));
        let len = usize::try_from(buf.len())?;
        // Off the executor thread, as wasmtime-wasi reads: a big read or a
        // slow disk never stalls the other guests.
        let data = blocking(move || {
            let mut data = vec![0; len];
            let n = file.read_at(&mut data, pos)?;
            data.truncate(n);
            Ok(data)
        })
        .await?;
        let n = u32::try_from(data.len())?;
        let dest = buf.get_range(0..n).ok_or(Errno::Range)?;
        memory.copy_from_slice(&data, dest)?;
        if at.is_none() {
            let f = self.file(fd)?;
            f.pos = pos.checked_add(u64::from(n)).ok_or(Errno::Overflow)?;
        }
        Ok(n)
    }

    async fn write(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
        at: Option<u64>,
    ) -> Result<types::Size> {
        let buf = self.first_buffer(memory, ciovs, |iov| (iov.buf, iov.buf_len))?;
        let f = self.file(fd)?;
        let (file, pos, flags) = (f.file.clone(), at.unwrap_or(f.pos), f.flags);
        let data = memory.to_vec(buf)?;
        // Linux's `pwrite` on an `O_APPEND` file appends too.
        let append = flags.contains(types::Fdflags::APPEND);
        let (n, end) = blocking(move || {
            let n = if append {
                file.append(&data)?
            } else {
                file.write_at(&data, pos)?
            };
            if flags.contains(types::Fdflags::SYNC) {
                file.sync()?;
            } else if flags.contains(types::Fdflags::DSYNC) {
                file.sync_data()?;
            }
            let end = if append {
                Some(file.stat()?.size)
            } else {
                None
            };
            Ok((n, end))
        })
        .await?;
        if at.is_none() {
            let f = self.file(fd)?;
            f.pos = match end {
                Some(end) => end,
                None => pos.checked_add(u64::try_from(n)?).ok_or(Errno::Overflow)?,
            };
        }
        Ok(u32::try_from(n)?)
    }

    async fn seek(&mut self, fd: types::Fd, offset: i64, whence: types::Whence) -> Result<u64> {
        let f = self.file(fd)?;
        let pos = match whence {
            types::Whence::Set => u64::try_from(offset).map_err(|_| Errno::Inval)?,
            types::Whence::Cur => f.pos.checked_add_signed(offset).ok_or(Errno::Inval)?,
            types::Whence::End => {
                let file = f.file.clone();
                let size = blocking(move || file.stat()).await?.size;
                size.checked_add_signed(offset).ok_or(Errno::Inval)?
            }
        };
        self.file(fd)?.pos = pos;
        Ok(pos)
    }

    async fn readdir(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
        cookie: types::Dircookie,
    ) -> Result<types::Size> {
        let dir = self.dir(fd)?;
        let skip = usize::try_from(cookie).map_err(|_| Errno::Overflow)?;
        let n = u32::from(fd);
        let cached = match self.open.get(&n) {
            Some(ViewFd::Dir { listing, .. }) => listing.clone(),
            _ => self.root_listing.clone(),
        };
        // Cookie 0 starts a listing afresh; later cookies index the listing
        // that call read, so a directory listed in several calls is one
        // consistent snapshot (as the host's `getdents` cursor would give).
        let listing = match cached {
            Some(listing) if skip != 0 => listing,
            _ => {
                let layers = self.layers.clone();
                let listing = Arc::new(blocking(move || layers.read_dir(&dir, true)).await?);
                match self.open.get_mut(&n) {
                    Some(ViewFd::Dir { listing: slot, .. }) => *slot = Some(listing.clone()),
                    _ => self.root_listing = Some(listing.clone()),
                }
                listing
            }
        };

        // wasmtime-wasi's layout: each dirent then its name, cut off where
        // the buffer ends (a full buffer tells libc to ask again).
        let mut out = buf;
        let mut cap = buf_len;
        let head_size = types::Dirent::guest_size();
        for (index, entry) in listing.iter().enumerate().skip(skip) {
            let name = entry.name.as_bytes();
            let mut head = [0u8; 24];
            let next = u64::try_from(index)?
                .checked_add(1)
                .ok_or(Errno::Overflow)?;
            head[0..8].copy_from_slice(&next.to_le_bytes());
            head[8..16].copy_from_slice(&entry.ino.to_le_bytes());
            head[16..20].copy_from_slice(&u32::try_from(name.len())?.to_le_bytes());
            head[20] = filetype(entry.kind) as u8;
            let take = cap.min(head_size);
            out = write_bytes(memory, out, &head[..usize::try_from(take)?])?;
            cap -= take;
            if cap == 0 {
                return Ok(buf_len);
            }
            let name = &name[..name.len().min(usize::try_from(cap)?)];
            out = write_bytes(memory, out, name)?;
            cap -= u32::try_from(name.len())?;
            if cap == 0 {
                return Ok(buf_len);
            }
        }
        Ok(buf_len - cap)
    }

    async fn open(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
        options: OpenOptions,
        fdflags: types::Fdflags,
    ) -> Result<types::Fd> {
        let dir = match self.held(dirfd)? {
            Held::File => return Err(Errno::Notdir.into()),
            _ => self.dir(dirfd)?,
        };
        let path = self.read_string(memory, path)?;
        if self.open.len() >= MAX_VIEW_FDS {
            return Err(Errno::Mfile.into());
        }
        let layers = self.layers.clone();
        let opened = blocking(move || layers.open_at(&dir, &path, &options)).await?;
        self.insert(match opened {
            Opened::Dir(dir) => ViewFd::Dir { dir, listing: None },
            Opened::File(file) => ViewFd::File(OpenFile {
                file,
                pos: 0,
                flags: fdflags
                    & (types::Fdflags::APPEND
                        | types::Fdflags::NONBLOCK
                        | types::Fdflags::SYNC
                        | types::Fdflags::DSYNC
                        | types::Fdflags::RSYNC),
            }),
        })
    }

    /// The events of the subscriptions on the view's descriptors: a file
    /// of the view is always ready, as a host file is to `poll`.
    async fn poll_events(&mut self, subs: &[types::Subscription]) -> Result<Vec<types::Event>> {
        let mut events = Vec::with_capacity(subs.len());
        for sub in subs {
            let (fd, type_) = match &sub.u {
                types::SubscriptionU::FdRead(s) => (s.file_descriptor, types::Eventtype::FdRead),
                types::SubscriptionU::FdWrite(s) => (s.file_descriptor, types::Eventtype::FdWrite),
                types::SubscriptionU::Clock(_) => continue,
            };
            // wasmtime-wasi refuses a directory the same way.
            let f = self.file(fd)?;
            let (nbytes, flags) = if type_ == types::Eventtype::FdRead {
                let (file, pos) = (f.file.clone(), f.pos);
                let size = blocking(move || file.stat()).await?.size;
                let left = size.saturating_sub(pos);
                let flags = if left == 0 {
                    types::Eventrwflags::FD_READWRITE_HANGUP
                } else {
                    types::Eventrwflags::empty()
                };
                (left, flags)
            } else {
                (1, types::Eventrwflags::empty())
            };
            events.push(types::Event {
                userdata: sub.userdata,
                error: Errno::Success,
                type_,
                fd_readwrite: types::EventFdReadwrite { nbytes, flags },
            });
        }
        Ok(events)
    }
}

/// Runs a call of the view on tokio's blocking pool, as wasmtime-wasi runs
/// host filesystem calls: a copy-up, a big read or a slow disk never holds
/// the executor thread the other guests run on.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> wrun_rootfs::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(op).await {
        Ok(result) => result.map_err(view_error),
        Err(join) => Err(types::Error::trap(wasmtime::format_err!(
            "a filesystem call on the writable rootfs did not finish: {join}"
        ))),
    }
}

/// The preview 1 errno of a view error (`wrun_rootfs::Error` is one errno
/// per variant; a host error keeps its own number where p1 has it).
fn view_error(err: wrun_rootfs::Error) -> types::Error {
    use wrun_rootfs::Error as E;
    let errno = match err {
        E::NotFound => Errno::Noent,
        E::Exists => Errno::Exist,
        E::NotDir => Errno::Notdir,
        E::IsDir => Errno::Isdir,
        E::NotEmpty => Errno::Notempty,
        E::Loop => Errno::Loop,
        E::CrossDevice => Errno::Xdev,
        E::Access => Errno::Acces,
        E::NotPermitted => Errno::Perm,
        E::NoSpace => Errno::Nospc,
        E::Invalid => Errno::Inval,
        E::NameTooLong => Errno::Nametoolong,
        E::ReadOnly => Errno::Rofs,
        E::BadDescriptor(_) => Errno::Badf,
        E::Io(e) => host_errno(&e),
    };
    errno.into()
}

fn host_errno(err: &std::io::Error) -> Errno {
    use rustix::io::Errno as H;
    let Some(raw) = err.raw_os_error() else {
        return Errno::Io;
    };
    match H::from_raw_os_error(raw) {
        H::DQUOT => Errno::Dquot,
        H::FBIG => Errno::Fbig,
        H::MFILE => Errno::Mfile,
        H::NFILE => Errno::Nfile,
        H::NOMEM => Errno::Nomem,
        H::ROFS => Errno::Rofs,
        H::MLINK => Errno::Mlink,
        H::OVERFLOW => Errno::Overflow,
        H::BUSY => Errno::Busy,
        H::TXTBSY => Errno::Txtbsy,
        H::AGAIN => Errno::Again,
        H::INTR => Errno::Intr,
        H::NOTSUP => Errno::Notsup,
        H::ILSEQ => Errno::Ilseq,
        _ => Errno::Io,
    }
}

fn filetype(kind: Kind) -> types::Filetype {
    match kind {
        Kind::File => types::Filetype::RegularFile,
        Kind::Dir => types::Filetype::Directory,
        Kind::Symlink => types::Filetype::SymbolicLink,
        Kind::CharDevice => types::Filetype::CharacterDevice,
        Kind::BlockDevice => types::Filetype::BlockDevice,
        // p1 has no FIFO; wasmtime-wasi calls it unknown too.
        Kind::Fifo | Kind::Socket | Kind::Unknown => types::Filetype::Unknown,
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `dev` is 1 for every node, as wasmtime-wasi reports; the lower and the
/// upper live on one host filesystem, so inode numbers stay distinct.
fn filestat(s: &Stat) -> types::Filestat {
    types::Filestat {
        dev: 1,
        ino: s.ino,
        filetype: filetype(s.kind),
        nlink: s.nlink,
        size: s.size,
        atim: nanos(s.atime),
        mtim: nanos(s.mtime),
        ctim: nanos(s.ctime),
    }
}

fn set_time(set: bool, at: types::Timestamp, now: bool) -> Result<SetTime> {
    match (set, now) {
        (true, true) => Err(Errno::Inval.into()),
        (true, false) => Ok(SetTime::At(UNIX_EPOCH + Duration::from_nanos(at))),
        (false, true) => Ok(SetTime::Now),
        (false, false) => Ok(SetTime::Keep),
    }
}

fn times(
    atim: types::Timestamp,
    mtim: types::Timestamp,
    flags: types::Fstflags,
) -> Result<(SetTime, SetTime)> {
    Ok((
        set_time(
            flags.contains(types::Fstflags::ATIM),
            atim,
            flags.contains(types::Fstflags::ATIM_NOW),
        )?,
        set_time(
            flags.contains(types::Fstflags::MTIM),
            mtim,
            flags.contains(types::Fstflags::MTIM_NOW),
        )?,
    ))
}

fn write_bytes(
    memory: &mut GuestMemory<'_>,
    ptr: GuestPtr<u8>,
    bytes: &[u8],
) -> Result<GuestPtr<u8>> {
    let len = u32::try_from(bytes.len())?;
    memory.copy_from_slice(bytes, ptr.as_array(len))?;
    Ok(ptr.add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with a view pays this much more than one without, and no
    /// allocation until the guest opens something under it.
    #[test]
    fn the_view_descriptors_of_an_instance_are_a_small_struct() {
        assert!(size_of::<ViewFds>() <= 64, "{}", size_of::<ViewFds>());
        assert!(size_of::<Option<ViewFds>>() <= 64);
    }

    #[test]
    fn view_errors_map_to_their_preview_1_errno() {
        use wrun_rootfs::Error as E;
        let cases = [
            (E::NotFound, Errno::Noent),
            (E::Exists, Errno::Exist),
            (E::NotDir, Errno::Notdir),
            (E::IsDir, Errno::Isdir),
            (E::NotEmpty, Errno::Notempty),
            (E::Loop, Errno::Loop),
            (E::CrossDevice, Errno::Xdev),
            (E::Access, Errno::Acces),
            (E::NotPermitted, Errno::Perm),
            (E::NoSpace, Errno::Nospc),
            (E::Invalid, Errno::Inval),
            (E::NameTooLong, Errno::Nametoolong),
            (E::ReadOnly, Errno::Rofs),
            (E::BadDescriptor("writing"), Errno::Badf),
            (E::Io(std::io::Error::from_raw_os_error(30)), Errno::Rofs),
            (E::Io(std::io::Error::from_raw_os_error(24)), Errno::Mfile),
            (E::Io(std::io::Error::from_raw_os_error(5)), Errno::Io),
            (E::Io(std::io::Error::other("no number")), Errno::Io),
        ];
        for (err, want) in cases {
            let shown = err.to_string();
            let got = view_error(err).downcast().expect("an errno, not a trap");
            assert_eq!(got, want, "{shown}");
        }
    }

    fn view_over(entries: &[&str]) -> (tempfile::TempDir, ViewFds) {
        let dir = tempfile::tempdir().expect("tempdir");
        let lower = dir.path().join("lower");
        std::fs::create_dir(&lower).expect("mkdir");
        for name in entries {
            std::fs::write(lower.join(name), name).expect("write");
        }
        let lower =
            crate::host_dir::open_host_dir(&lower, crate::host_dir::IfMissing::Fail).expect("open");
        let layers = Layers::open(
            Arc::new(lower),
            dir.path().join("upper"),
            wrun_rootfs::UpperOptions::default(),
        )
        .expect("view");
        let fds = ViewFds {
            layers,
            root: Some(ROOT_FD),
            root_listing: None,
            open: BTreeMap::new(),
            fuel: DEFAULT_HOSTCALL_FUEL,
        };
        (dir, fds)
    }

    /// `fd_readdir` into a fresh buffer of `len` bytes: what it returned
    /// and the bytes.
    async fn readdir(fds: &mut ViewFds, len: u32, cookie: u64) -> (u32, Vec<u8>) {
        let mut bytes = vec![0u8; usize::try_from(len).expect("len")];
        let mut memory = GuestMemory::Unshared(&mut bytes);
        let n = fds
            .readdir(
                &mut memory,
                types::Fd::from(ROOT_FD),
                GuestPtr::new(0),
                len,
                cookie,
            )
            .await
            .expect("readdir");
        (n, bytes)
    }

    /// The (d_next, name) pairs of whole entries in a readdir buffer.
    fn entries(bytes: &[u8]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while rest.len() >= 24 {
            let next = u64::from_le_bytes(rest[0..8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(rest[16..20].try_into().expect("4 bytes"));
            let len = usize::try_from(len).expect("len");
            if rest.len() < 24 + len {
                break;
            }
            out.push((
                next,
                String::from_utf8_lossy(&rest[24..24 + len]).into_owned(),
            ));
            rest = &rest[24 + len..];
        }
        out
    }

    #[tokio::test]
    async fn readdir_cookies_continue_one_listing_and_a_full_buffer_asks_for_more() {
        let (_dir, mut fds) = view_over(&["a", "b", "c"]);
        let (n, bytes) = readdir(&mut fds, 4096, 0).await;
        let all = entries(&bytes[..usize::try_from(n).expect("n")]);
        let want: Vec<(u64, String)> = [".", "..", "a", "b", "c"]
            .iter()
            .zip(1..)
            .map(|(name, next)| (next, (*name).to_owned()))
            .collect();
        assert_eq!(all, want);

        // A buffer that ends inside an entry is returned full: libc then
        // asks again from the last whole entry's cookie.
        let (n, bytes) = readdir(&mut fds, 30, 0).await;
        assert_eq!(n, 30);
        assert_eq!(entries(&bytes), [(1, ".".to_owned())]);

        // A later cookie continues the listing read at cookie 0, even after
        // the directory changed; cookie 0 reads it afresh.
        fds.layers
            .open_at(
                &fds.layers.root(),
                "d",
                &OpenOptions {
                    write: true,
                    create: true,
                    ..OpenOptions::default()
                },
            )
            .expect("create d");
        let (n, bytes) = readdir(&mut fds, 4096, 3).await;
        let names: Vec<String> = entries(&bytes[..usize::try_from(n).expect("n")])
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        assert_eq!(names, ["b", "c"]);
        let (n, bytes) = readdir(&mut fds, 4096, 0).await;
        let names: Vec<String> = entries(&bytes[..usize::try_from(n).expect("n")])
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        assert_eq!(names, [".", "..", "a", "b", "c", "d"]);
        // Past the end: nothing.
        assert_eq!(readdir(&mut fds, 4096, 6).await.0, 0);
    }
}
