//! The host side: every call here takes a directory handle and ONE checked
//! name, never a path, and never follows a symlink; plus the one function
//! that opens a host path with ambient authority (the upper's directories).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::error::Result;
use crate::path::ViewPath;

/// What kind of node a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl Kind {
    pub(crate) fn from_mode(mode: u32) -> Kind {
        Kind::from_file_type(rustix::fs::FileType::from_raw_mode(mode))
    }

    pub(crate) fn from_file_type(t: rustix::fs::FileType) -> Kind {
        use rustix::fs::FileType as T;
        match t {
            T::RegularFile => Kind::File,
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink,
            T::Fifo => Kind::Fifo,
            T::Socket => Kind::Socket,
            T::CharacterDevice => Kind::CharDevice,
            T::BlockDevice => Kind::BlockDevice,
            T::Unknown => Kind::Unknown,
        }
    }
}

/// The metadata of a node as the guest sees it (the topmost layer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    /// Permission bits, `0o7777` at most.
    pub mode: u32,
    pub size: u64,
    pub nlink: u64,
    /// Host device and inode: a copy-up changes them (the upper is another
    /// file), as on overlayfs without `xino`.
    pub dev: u64,
    pub ino: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// A new access or modification time for `set_times`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    Keep,
    Now,
    At(SystemTime),
}

fn time(secs: i64, nanos: u64) -> SystemTime {
    let nanos = Duration::from_nanos(nanos.min(999_999_999));
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs()) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
    }
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub(crate) fn stat_of(st: &rustix::fs::Stat) -> Stat {
    Stat {
        kind: Kind::from_mode(st.st_mode as u32),
        mode: (st.st_mode as u32) & 0o7777,
        size: u64::try_from(st.st_size).unwrap_or(0),
        nlink: st.st_nlink as u64,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        atime: time(st.st_atime as i64, st.st_atime_nsec as u64),
        mtime: time(st.st_mtime as i64, st.st_mtime_nsec as u64),
        ctime: time(st.st_ctime as i64, st.st_ctime_nsec as u64),
    }
}

pub(crate) fn timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        },
        Err(before) => {
            let d = before.duration();
            let mut secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut nanos = i64::from(d.subsec_nanos());
            if nanos > 0 {
                secs -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            Timespec {
                tv_sec: secs,
                tv_nsec: nanos,
            }
        }
    }
}

fn set_time_spec(t: SetTime) -> Timespec {
    match t {
        SetTime::Keep => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        SetTime::Now => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        SetTime::At(t) => timespec(t),
    }
}

pub(crate) fn timestamps(atime: SetTime, mtime: SetTime) -> Timestamps {
    Timestamps {
        last_access: set_time_spec(atime),
        last_modification: set_time_spec(mtime),
    }
}

pub(crate) fn copy_times(st: &Stat) -> Timestamps {
    timestamps(SetTime::At(st.atime), SetTime::At(st.mtime))
}

/// `lstat` of one name in `dir`; `None` when it does not exist.
pub(crate) fn lstat(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(stat_of(&st))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> Result<Stat> {
    Ok(stat_of(&rustix::fs::fstat(fd)?))
}

/// Opens the directory `name` in `dir`; `None` when `name` is missing, not
/// a directory or a symlink (never followed).
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<OwnedFd>> {
    match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens the file `name` in `dir` with `flags` (NOFOLLOW and CLOEXEC added).
pub(crate) fn open_file(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlags,
    mode: u32,
) -> Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?)
}

pub(crate) fn read_link(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OsString> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(OsString::from_vec(target.into_bytes()))
}

/// One entry of a host directory listing.
pub(crate) struct HostEntry {
    pub name: OsString,
    pub kind: Kind,
    pub ino: u64,
}

/// The entries of a directory, `.` and `..` left out. The kind comes from
/// `d_type`, or an `lstat` when the filesystem does not fill it.
pub(crate) fn list(dir: BorrowedFd<'_>) -> Result<Vec<HostEntry>> {
    let mut out = Vec::new();
    // A fresh descriptor of the directory: its own offset, and readable even
    // when `dir` is an O_PATH handle (as cap-std opens directories).
    let own = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for entry in rustix::fs::Dir::new(own)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsString::from_vec(name.to_vec());
        let mut kind = Kind::from_file_type(entry.file_type());
        if kind == Kind::Unknown {
            match lstat(dir, &name)? {
                Some(st) => kind = st.kind,
                None => continue,
            }
        }
        out.push(HostEntry {
            name,
            kind,
            ino: entry.ino(),
        });
    }
    Ok(out)
}

/// Opens the directory at `path` below `root`, no symlink followed; `None`
/// when missing or not a directory.
pub(crate) fn open_chain(root: BorrowedFd<'_>, path: &ViewPath) -> Result<Option<OwnedFd>> {
    let mut fd: Option<OwnedFd> = None;
    for name in path.names() {
        let parent = fd.as_ref().map_or(root, |f| f.as_fd());
        match open_dir(parent, name)? {
            Some(d) => fd = Some(d),
            None => return Ok(None),
        }
    }
    match fd {
        Some(fd) => Ok(Some(fd)),
        None => Ok(Some(rustix::io::fcntl_dupfd_cloexec(root, 0)?)),
    }
}

/// `lstat` of `path` below `root`, no symlink followed on the way.
pub(crate) fn lstat_at(root: BorrowedFd<'_>, path: &ViewPath) -> Result<Option<Stat>> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return fstat(root).map(Some);
    };
    match open_chain(root, &parent)? {
        Some(dir) => lstat(dir.as_fd(), name),
        None => Ok(None),
    }
}

/// Every node below `root` (paths relative to it), parents first, names
/// sorted. Directories are reopened from the root, so a deep tree holds
/// no descriptor per level.
pub(crate) fn walk_host(
    root: BorrowedFd<'_>,
    mut visit: impl FnMut(&ViewPath, &Stat) -> Result<()>,
) -> Result<()> {
    let mut stack = vec![ViewPath::root()];
    while let Some(dir_path) = stack.pop() {
        let Some(dir) = open_chain(root, &dir_path)? else {
            continue;
        };
        let mut entries = list(dir.as_fd())?;
        entries.sort_by(|a, b| b.name.cmp(&a.name));
        let mut subdirs = Vec::new();
        for e in entries.into_iter().rev() {
            let Some(st) = lstat(dir.as_fd(), &e.name)? else {
                continue;
            };
            let path = dir_path.join(&e.name);
            visit(&path, &st)?;
            if st.kind == Kind::Dir {
                subdirs.push(path);
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

/// Bytes of regular-file data below `root`, each inode counted once.
pub(crate) fn file_bytes(root: BorrowedFd<'_>) -> Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    walk_host(root, |_, st| {
        if st.kind == Kind::File && seen.insert((st.dev, st.ino)) {
            total = total.saturating_add(st.size);
        }
        Ok(())
    })?;
    Ok(total)
}

/// Opens a host directory of the upper by its path: the upper's tree, or
/// the directory it sits in (with `create`, made first with its parents,
/// 0700: the upper sits in the owner's private store). `None` when it does
/// not exist and `create` is false. The only place this crate turns a host
/// path into a handle with ambient authority; everything else is relative
/// to what it opens.
pub(crate) fn open_upper_dir(path: &Path, create: bool) -> Result<Option<OwnedFd>> {
    if create {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)?;
    }
    match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) if !create => Ok(None),
        Err(e) => Err(e.into()),
    }
}
