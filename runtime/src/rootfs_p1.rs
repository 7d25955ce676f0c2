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
use crate::store::CoreState;

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

impl CoreState {
    /// The view, when `fd` is one of its descriptors.
    fn view_fd(&mut self, fd: types::Fd) -> Option<&mut ViewFds> {
        self.rootfs.as_mut().filter(|v| v.owns(fd))
    }

    /// Whether wasmtime-wasi has a descriptor `fd`.
    async fn host_has(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> bool {
        self.wasi.fd_fdstat_get(memory, fd).await.is_ok()
    }

    /// Where a call on two descriptors goes: `Some(view)` when both are
    /// the view's, `None` when neither is; a pair across the view and a
    /// host directory is `EXDEV` (as across two mounts).
    async fn pair(
        &mut self,
        memory: &mut GuestMemory<'_>,
        a: types::Fd,
        b: types::Fd,
    ) -> Result<bool> {
        let Some(view) = &self.rootfs else {
            return Ok(false);
        };
        match (view.owns(a), view.owns(b)) {
            (true, true) => Ok(true),
            (false, false) => Ok(false),
            (true, false) if !self.host_has(memory, b).await => Err(Errno::Badf.into()),
            (false, true) if !self.host_has(memory, a).await => Err(Errno::Badf.into()),
            _ => Err(Errno::Xdev.into()),
        }
    }
}

/// The preview 1 functions of a core instance: the filesystem calls on the
/// view's descriptors are served by [`ViewFds`], everything else by
/// wasmtime-wasi's `WasiP1Ctx` as before.
impl WasiSnapshotPreview1 for CoreState {
    fn set_hostcall_fuel(&mut self, fuel: usize) {
        if let Some(view) = &mut self.rootfs {
            view.fuel = fuel;
        }
        self.wasi.set_hostcall_fuel(fuel);
    }

    fn args_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        argv: GuestPtr<GuestPtr<u8>>,
        argv_buf: GuestPtr<u8>,
    ) -> Result<()> {
        self.wasi.args_get(memory, argv, argv_buf)
    }

    fn args_sizes_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
    ) -> Result<(types::Size, types::Size)> {
        self.wasi.args_sizes_get(memory)
    }

    fn environ_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        environ: GuestPtr<GuestPtr<u8>>,
        environ_buf: GuestPtr<u8>,
    ) -> Result<()> {
        self.wasi.environ_get(memory, environ, environ_buf)
    }

    fn environ_sizes_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
    ) -> Result<(types::Size, types::Size)> {
        self.wasi.environ_sizes_get(memory)
    }

    fn clock_res_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        id: types::Clockid,
    ) -> Result<types::Timestamp> {
        self.wasi.clock_res_get(memory, id)
    }

    fn clock_time_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        id: types::Clockid,
        precision: types::Timestamp,
    ) -> Result<types::Timestamp> {
        self.wasi.clock_time_get(memory, id, precision)
    }

    async fn fd_advise(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> Result<()> {
        match self.view_fd(fd) {
            // Advice is a hint; the view's reads need none.
            Some(view) if !matches!(view.held(fd)?, Held::Root) => view.file(fd).map(|_| ()),
            _ => self.wasi.fd_advise(memory, fd, offset, len, advice).await,
        }
    }

    fn fd_allocate(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filesize,
        len: types::Filesize,
    ) -> Result<()> {
        match self.view_fd(fd) {
            // wasmtime-wasi's answer for any file.
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.file(fd)?;
                Err(Errno::Notsup.into())
            }
            _ => self.wasi.fd_allocate(memory, fd, offset, len),
        }
    }

    async fn fd_close(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        let Some(view) = self.view_fd(fd) else {
            return self.wasi.fd_close(memory, fd).await;
        };
        if view.root == Some(u32::from(fd)) {
            view.root = None;
            view.root_listing = None;
            return self.wasi.fd_close(memory, fd).await;
        }
        view.open.remove(&u32::from(fd));
        Ok(())
    }

    async fn fd_datasync(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                let file = view.file(fd)?.file.clone();
                blocking(move || file.sync_data()).await
            }
            _ => self.wasi.fd_datasync(memory, fd).await,
        }
    }

    async fn fd_fdstat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Fdstat> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => view.fdstat(fd),
            // The root keeps wasmtime-wasi's preopen rights.
            _ => self.wasi.fd_fdstat_get(memory, fd).await,
        }
    }

    fn fd_fdstat_set_flags(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Fdflags,
    ) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                let f = view.file(fd)?;
                // As wasmtime-wasi: only APPEND and NONBLOCK change.
                let sync = types::Fdflags::SYNC | types::Fdflags::DSYNC | types::Fdflags::RSYNC;
                if flags.intersects(sync) {
                    return Err(Errno::Inval.into());
                }
                f.flags = (f.flags & sync)
                    | (flags & (types::Fdflags::APPEND | types::Fdflags::NONBLOCK));
                Ok(())
            }
            _ => self.wasi.fd_fdstat_set_flags(memory, fd, flags),
        }
    }

    fn fd_fdstat_set_rights(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        base: types::Rights,
        inheriting: types::Rights,
    ) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => Err(Errno::Notsup.into()),
            _ => self.wasi.fd_fdstat_set_rights(memory, fd, base, inheriting),
        }
    }

    async fn fd_filestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Filestat> {
        match self.view_fd(fd) {
            Some(view) => view.filestat(fd).await,
            None => self.wasi.fd_filestat_get(memory, fd).await,
        }
    }

    async fn fd_filestat_set_size(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        size: types::Filesize,
    ) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                let file = view.file(fd)?.file.clone();
                blocking(move || file.set_size(size)).await
            }
            _ => self.wasi.fd_filestat_set_size(memory, fd, size).await,
        }
    }

    async fn fd_filestat_set_times(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst_flags: types::Fstflags,
    ) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) => {
                let (atime, mtime) = times(atim, mtim, fst_flags)?;
                view.set_times(fd, atime, mtime).await
            }
            None => {
                self.wasi
                    .fd_filestat_set_times(memory, fd, atim, mtim, fst_flags)
                    .await
            }
        }
    }

    async fn fd_read(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.read(memory, fd, iovs, None).await
            }
            _ => self.wasi.fd_read(memory, fd, iovs).await,
        }
    }

    async fn fd_pread(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.read(memory, fd, iovs, Some(offset)).await
            }
            _ => self.wasi.fd_pread(memory, fd, iovs, offset).await,
        }
    }

    async fn fd_write(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.write(memory, fd, ciovs, None).await
            }
            _ => self.wasi.fd_write(memory, fd, ciovs).await,
        }
    }

    async fn fd_pwrite(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.write(memory, fd, ciovs, Some(offset)).await
            }
            _ => self.wasi.fd_pwrite(memory, fd, ciovs, offset).await,
        }
    }

    fn fd_prestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Prestat> {
        self.wasi.fd_prestat_get(memory, fd)
    }

    fn fd_prestat_dir_name(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<u8>,
        path_max_len: types::Size,
    ) -> Result<()> {
        self.wasi
            .fd_prestat_dir_name(memory, fd, path, path_max_len)
    }

    async fn fd_renumber(
        &mut self,
        memory: &mut GuestMemory<'_>,
        from: types::Fd,
        to: types::Fd,
    ) -> Result<()> {
        let (Some(view), from_n, to_n) = (&mut self.rootfs, u32::from(from), u32::from(to)) else {
            return self.wasi.fd_renumber(memory, from, to).await;
        };
        let is_root = |n| view.root == Some(n);
        let (from_mine, to_mine) = (
            view.open.contains_key(&from_n),
            view.open.contains_key(&to_n),
        );
        match (from_mine, to_mine) {
            (true, true) => {
                if from_n != to_n
                    && let Some(moved) = view.open.remove(&from_n)
                {
                    view.open.insert(to_n, moved);
                }
                Ok(())
            }
            (false, false) => {
                // Both wasmtime-wasi's: the root may move or be replaced.
                let (root_from, root_to) = (is_root(from_n), is_root(to_n));
                self.wasi.fd_renumber(memory, from, to).await?;
                if let Some(view) = &mut self.rootfs
                    && from_n != to_n
                {
                    if root_from {
                        view.root = Some(to_n);
                    } else if root_to {
                        view.root = None;
                        view.root_listing = None;
                    }
                }
                Ok(())
            }
            (true, false) if !self.host_has(memory, to).await => Err(Errno::Badf.into()),
            (false, true) if !self.host_has(memory, from).await => Err(Errno::Badf.into()),
            // A descriptor of the view cannot take a number of wasmtime-wasi's
            // table, nor the other way round: the two tables are separate.
            _ => Err(Errno::Notsup.into()),
        }
    }

    async fn fd_seek(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filedelta,
        whence: types::Whence,
    ) -> Result<types::Filesize> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.seek(fd, offset, whence).await
            }
            _ => self.wasi.fd_seek(memory, fd, offset, whence).await,
        }
    }

    async fn fd_sync(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                let file = view.file(fd)?.file.clone();
                blocking(move || file.sync()).await
            }
            _ => self.wasi.fd_sync(memory, fd).await,
        }
    }

    fn fd_tell(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Filesize> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => Ok(view.file(fd)?.pos),
            _ => self.wasi.fd_tell(memory, fd),
        }
    }

    async fn fd_readdir(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
        cookie: types::Dircookie,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) => view.readdir(memory, fd, buf, buf_len, cookie).await,
            None => self.wasi.fd_readdir(memory, fd, buf, buf_len, cookie).await,
        }
    }

    async fn path_create_directory(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            return self.wasi.path_create_directory(memory, dirfd, path).await;
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        blocking(move || layers.create_dir_at(&dir, &path)).await
    }

    async fn path_filestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
    ) -> Result<types::Filestat> {
        let Some(view) = self.view_fd(dirfd) else {
            return self
                .wasi
                .path_filestat_get(memory, dirfd, flags, path)
                .await;
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        let follow = flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        let stat = blocking(move || layers.stat_at(&dir, &path, follow)).await?;
        Ok(filestat(&stat))
    }

    async fn path_filestat_set_times(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst_flags: types::Fstflags,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            return self
                .wasi
                .path_filestat_set_times(memory, dirfd, flags, path, atim, mtim, fst_flags)
                .await;
        };
        let (atime, mtime) = times(atim, mtim, fst_flags)?;
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        let follow = flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        blocking(move || layers.set_times_at(&dir, &path, follow, atime, mtime)).await
    }

    async fn path_link(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_fd: types::Fd,
        src_flags: types::Lookupflags,
        src_path: GuestPtr<str>,
        target_fd: types::Fd,
        target_path: GuestPtr<str>,
    ) -> Result<()> {
        if !self.pair(memory, src_fd, target_fd).await? {
            return self
                .wasi
                .path_link(memory, src_fd, src_flags, src_path, target_fd, target_path)
                .await;
        }
        let Some(view) = &mut self.rootfs else {
            return Err(Errno::Badf.into());
        };
        let (layers, src_dir, target_dir) =
            (view.layers.clone(), view.dir(src_fd)?, view.dir(target_fd)?);
        let src_path = view.read_string(memory, src_path)?;
        let target_path = view.read_string(memory, target_path)?;
        let follow = src_flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        blocking(move || layers.link_at(&src_dir, &src_path, follow, &target_dir, &target_path))
            .await
    }

    async fn path_open(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        dirflags: types::Lookupflags,
        path: GuestPtr<str>,
        oflags: types::Oflags,
        fs_rights_base: types::Rights,
        fs_rights_inheriting: types::Rights,
        fdflags: types::Fdflags,
    ) -> Result<types::Fd> {
        match self.view_fd(dirfd) {
            Some(view) => {
                let options = OpenOptions {
                    read: fs_rights_base.contains(types::Rights::FD_READ),
                    write: fs_rights_base.contains(types::Rights::FD_WRITE),
                    create: oflags.contains(types::Oflags::CREAT),
                    exclusive: oflags.contains(types::Oflags::EXCL),
                    truncate: oflags.contains(types::Oflags::TRUNC),
                    directory: oflags.contains(types::Oflags::DIRECTORY),
                    follow: dirflags.contains(types::Lookupflags::SYMLINK_FOLLOW),
                    mode: None,
                };
                view.open(memory, dirfd, path, options, fdflags).await
            }
            None => {
                self.wasi
                    .path_open(
                        memory,
                        dirfd,
                        dirflags,
                        path,
                        oflags,
                        fs_rights_base,
                        fs_rights_inheriting,
                        fdflags,
                    )
                    .await
            }
        }
    }

    async fn path_readlink(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<types::Size> {
        let Some(view) = self.view_fd(dirfd) else {
            return self
                .wasi
                .path_readlink(memory, dirfd, path, buf, buf_len)
                .await;
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        let target: OsString = blocking(move || layers.readlink_at(&dir, &path)).await?;
        let target = target.as_bytes();
        let target = &target[..target.len().min(usize::try_from(buf_len)?)];
        write_bytes(memory, buf, target)?;
        Ok(u32::try_from(target.len())?)
    }

    async fn path_remove_directory(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            return self.wasi.path_remove_directory(memory, dirfd, path).await;
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        blocking(move || layers.remove_dir_at(&dir, &path)).await
    }

    async fn path_rename(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_fd: types::Fd,
        src_path: GuestPtr<str>,
        dest_fd: types::Fd,
        dest_path: GuestPtr<str>,
    ) -> Result<()> {
        if !self.pair(memory, src_fd, dest_fd).await? {
            return self
                .wasi
                .path_rename(memory, src_fd, src_path, dest_fd, dest_path)
                .await;
        }
        let Some(view) = &mut self.rootfs else {
            return Err(Errno::Badf.into());
        };
        let (layers, src_dir, dest_dir) =
            (view.layers.clone(), view.dir(src_fd)?, view.dir(dest_fd)?);
        let src_path = view.read_string(memory, src_path)?;
        let dest_path = view.read_string(memory, dest_path)?;
        blocking(move || layers.rename_at(&src_dir, &src_path, &dest_dir, &dest_path)).await
    }

    async fn path_symlink(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_path: GuestPtr<str>,
        dirfd: types::Fd,
        dest_path: GuestPtr<str>,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            return self
                .wasi
                .path_symlink(memory, src_path, dirfd, dest_path)
                .await;
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let target = view.read_string(memory, src_path)?;
        let path = view.read_string(memory, dest_path)?;
        blocking(move || layers.symlink_at(&target, &dir, &path)).await
    }

    async fn path_unlink_file(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            return self.wasi.path_unlink_file(memory, dirfd, path).await;
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        blocking(move || layers.unlink_file_at(&dir, &path)).await
    }

    async fn poll_oneoff(
        &mut self,
        memory: &mut GuestMemory<'_>,
        subs: GuestPtr<types::Subscription>,
        events: GuestPtr<types::Event>,
        nsubscriptions: types::Size,
    ) -> Result<types::Size> {
        let Some(view) = &mut self.rootfs else {
            return self
                .wasi
                .poll_oneoff(memory, subs, events, nsubscriptions)
                .await;
        };
        if nsubscriptions == 0 || (view.root.is_none() && view.open.is_empty()) {
            return self
                .wasi
                .poll_oneoff(memory, subs, events, nsubscriptions)
                .await;
        }
        let all = subs.as_array(nsubscriptions);
        view.consume_fuel_for_array(all)?;
        let mut mine = Vec::new();
        for sub in all.iter() {
            let sub = memory.read(sub?)?;
            let fd = match &sub.u {
                types::SubscriptionU::FdRead(s) | types::SubscriptionU::FdWrite(s) => {
                    s.file_descriptor
                }
                types::SubscriptionU::Clock(_) => continue,
            };
            if view.owns(fd) {
                mine.push(sub);
            }
        }
        if mine.is_empty() {
            return self
                .wasi
                .poll_oneoff(memory, subs, events, nsubscriptions)
                .await;
        }
        // Files of the view are ready at once: poll answers with them
        // alone and waits for nothing else (a subset of the ready events
        // is a valid answer; the guest polls again for the rest).
        let ready = view.poll_events(&mine).await?;
        let count = u32::try_from(ready.len())?;
        let out = events.as_array(nsubscriptions);
        for (event, slot) in ready.into_iter().zip(out.iter()) {
            memory.write(slot?, event)?;
        }
        Ok(count)
    }

    fn proc_exit(
        &mut self,
        memory: &mut GuestMemory<'_>,
        status: types::Exitcode,
    ) -> wasmtime::Error {
        self.wasi.proc_exit(memory, status)
    }

    fn proc_raise(&mut self, memory: &mut GuestMemory<'_>, sig: types::Signal) -> Result<()> {
        self.wasi.proc_raise(memory, sig)
    }

    fn sched_yield(&mut self, memory: &mut GuestMemory<'_>) -> Result<()> {
        self.wasi.sched_yield(memory)
    }

    fn random_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<()> {
        self.wasi.random_get(memory, buf, buf_len)
    }

    fn sock_accept(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Fdflags,
    ) -> Result<types::Fd> {
        self.wasi.sock_accept(memory, fd, flags)
    }

    fn sock_recv(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ri_data: types::IovecArray,
        ri_flags: types::Riflags,
    ) -> Result<(types::Size, types::Roflags)> {
        self.wasi.sock_recv(memory, fd, ri_data, ri_flags)
    }

    fn sock_send(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        si_data: types::CiovecArray,
        si_flags: types::Siflags,
    ) -> Result<types::Size> {
        self.wasi.sock_send(memory, fd, si_data, si_flags)
    }

    fn sock_shutdown(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        how: types::Sdflags,
    ) -> Result<()> {
        self.wasi.sock_shutdown(memory, fd, how)
    }
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
