//! The merged view: resolution of guest paths component by component with
//! chroot semantics, lookups through upper then lower, copy-up, whiteouts,
//! and the directory operations a WASI filesystem host needs.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{
    Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::file::{CopyUpHandle, Layer, ViewFile};
use crate::host::{self, Kind, SetTime, Stat};
use crate::journal::Whiteouts;
use crate::path::{self, MAX_SYMLINKS, ViewPath, checked_name};
use crate::quota::Quota;
use crate::upper::{self, JOURNAL_SUFFIX, WORK_SUFFIX};

/// How the upper layer is set up. Deny by default: no size limit means
/// none is enforced by the view (the host disk still is one).
#[derive(Clone, Debug, Default)]
pub struct UpperOptions {
    /// Most bytes of file data the upper may hold (written or copied up);
    /// a write past it fails with `NoSpace`.
    pub size_limit: Option<u64>,
}

/// One instance's layered view: a shared read-only lower and its own upper.
/// Cheap to clone (every clone is the same view, as a later `exec` needs).
#[derive(Clone)]
pub struct Layers {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers")
            .field("upper", &self.inner.upper_path)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    lower: Arc<cap_std::fs::Dir>,
    upper_path: PathBuf,
    /// The upper's file name, which its parts beside it are named after.
    upper_name: OsString,
    quota: Arc<Quota>,
    state: RwLock<State>,
    copy_seq: AtomicU64,
    read_only: bool,
    /// What a [`WeakLayers`] of this view reopens it from.
    reopen: Arc<Reopen>,
}

/// A view held weakly ([`Layers::downgrade`]): what a holder that does
/// not use the view keeps (a stopped instance's record), so that its host
/// descriptors (the upper's tree, staging area and journal) close when the
/// last [`Layers`] clone and the last file opened through it are dropped.
/// [`upgrade`](WeakLayers::upgrade) gives the view back while anyone holds
/// it; [`reopen`](WeakLayers::reopen) opens it again from the same upper
/// (its journal read again, its size count kept), and never makes a second
/// view of an upper while one is live. Cheap to clone; every clone is of
/// the same view.
#[derive(Clone)]
pub struct WeakLayers {
    reopen: Arc<Reopen>,
}

impl std::fmt::Debug for WeakLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakLayers")
            .field("upper", &self.reopen.upper_path)
            .finish_non_exhaustive()
    }
}

/// What outlives the view: where its upper is, how it was opened, the
/// size count (kept, not counted again from the tree), and the live view.
struct Reopen {
    /// The live view, if any; taken with this lock held, so two reopens
    /// cannot make two views of one upper.
    live: Mutex<Weak<Inner>>,
    upper_path: PathBuf,
    read_only: bool,
    quota: Arc<Quota>,
}

impl Reopen {
    fn live(&self) -> std::sync::MutexGuard<'_, Weak<Inner>> {
        // A single assignment under the lock: usable after a panic.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WeakLayers {
    /// The view, while anyone holds it (a run, an exec, a verb, an open
    /// file); `None` once its descriptors are closed.
    pub fn upgrade(&self) -> Option<Layers> {
        self.reopen.live().upgrade().map(|inner| Layers { inner })
    }

    /// The view: the live one when there is one, else opened again over
    /// `lower` (the same image rootfs, maybe through a new handle) from the
    /// same upper, with the same options and size count, and its journal
    /// loaded again. A failed reopen leaves this handle as it was.
    pub fn reopen(&self, lower: Arc<cap_std::fs::Dir>) -> Result<Layers> {
        let mut live = self.reopen.live();
        if let Some(inner) = live.upgrade() {
            return Ok(Layers { inner });
        }
        let view = Layers::open_as(lower, &self.reopen, false)?;
        *live = Arc::downgrade(&view.inner);
        Ok(view)
    }

    /// Where the upper lives on the host (created or not).
    pub fn upper_path(&self) -> &Path {
        &self.reopen.upper_path
    }
}

struct State {
    upper: Option<Upper>,
    whiteouts: Whiteouts,
}

/// The upper's host handles: its tree from its creation, the staging area
/// and the journal from their first use (each made then, beside the tree).
struct Upper {
    tree: OwnedFd,
    work: OnceLock<OwnedFd>,
    journal: OnceLock<File>,
}

/// A directory of the view, named by its canonical path (what a WASI
/// directory descriptor holds). It names a path, not an inode: a directory
/// renamed away is not followed by its old handles.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ViewDir {
    path: ViewPath,
}

impl ViewDir {
    pub fn path(&self) -> &ViewPath {
        &self.path
    }
}

/// What `open_at` opened.
pub enum Opened {
    Dir(ViewDir),
    File(ViewFile),
}

/// How `open_at` opens. Deny by default: nothing read, written, created or
/// followed unless asked.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub read: bool,
    pub write: bool,
    /// Create the file when missing (with `exclusive`, fail when present).
    pub create: bool,
    pub exclusive: bool,
    pub truncate: bool,
    /// The path must name a directory.
    pub directory: bool,
    /// Follow a symlink in the last component.
    pub follow: bool,
    /// Permission bits of a created file (the process umask applies);
    /// `0o666` when `None`.
    pub mode: Option<u32>,
}

/// One entry of `read_dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub kind: Kind,
    pub ino: u64,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub layer: Layer,
    pub stat: Stat,
}

pub(crate) enum Fd<'a> {
    Root(BorrowedFd<'a>),
    Own(OwnedFd),
}

impl Fd<'_> {
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Fd::Root(b) => *b,
            Fd::Own(o) => o.as_fd(),
        }
    }
}

pub(crate) struct Frame<'a> {
    pub upper: Option<Fd<'a>>,
    pub lower: Option<Fd<'a>>,
}

/// A position in the view: a canonical directory path and its upper and
/// lower directories opened (no-follow). Only the directory itself is held
/// open, so a deep tree costs no descriptor per level.
pub(crate) struct Cursor<'a> {
    pub path: ViewPath,
    top: Frame<'a>,
}

impl<'a> Cursor<'a> {
    pub fn top(&self) -> &Frame<'a> {
        &self.top
    }

    fn upper_fd(&self) -> Result<BorrowedFd<'_>> {
        self.top.upper.as_ref().map(Fd::fd).ok_or(Error::NotFound)
    }

    fn layer_fd(&self, layer: Layer) -> Result<BorrowedFd<'_>> {
        match layer {
            Layer::Upper => self.top.upper.as_ref(),
            Layer::Lower => self.top.lower.as_ref(),
        }
        .map(Fd::fd)
        .ok_or(Error::NotFound)
    }

    /// The directory's own metadata, as the guest sees it.
    fn stat(&self) -> Result<Stat> {
        let fd = self
            .top
            .upper
            .as_ref()
            .or(self.top.lower.as_ref())
            .ok_or(Error::NotFound)?;
        host::fstat(fd.fd())
    }
}

/// What a path resolved to.
pub(crate) enum Target {
    /// The path names the cursor's directory itself (`.`, `a/..`, `/`).
    Itself,
    /// A name in the cursor's directory, present or not.
    Child {
        name: OsString,
        entry: Option<Entry>,
    },
}

impl Target {
    /// The name a path ends in and what is there; `itself` is the error
    /// when the path names the cursor's directory itself.
    fn child(self, itself: Error) -> Result<(OsString, Option<Entry>)> {
        match self {
            Target::Itself => Err(itself),
            Target::Child { name, entry } => Ok((name, entry)),
        }
    }

    /// The existing node a path names: `None` for the cursor's directory
    /// itself, `NotFound` when its name is free.
    fn node(self) -> Result<Option<(OsString, Entry)>> {
        match self {
            Target::Itself => Ok(None),
            Target::Child { entry: None, .. } => Err(Error::NotFound),
            Target::Child {
                name,
                entry: Some(e),
            } => Ok(Some((name, e))),
        }
    }

    /// The existing node a path names in the cursor's directory; `itself`
    /// is the error when the path names that directory itself.
    fn existing_child(self, itself: Error) -> Result<(OsString, Entry)> {
        self.node()?.ok_or(itself)
    }

    /// The free name a new node gets: `Exists` when anything is there.
    fn free_name(self) -> Result<OsString> {
        match self.child(Error::Exists)? {
            (name, None) => Ok(name),
            (_, Some(_)) => Err(Error::Exists),
        }
    }
}

pub(crate) struct Resolved<'a> {
    pub cur: Cursor<'a>,
    pub target: Target,
    /// The path ended in `/`: it must name a directory.
    pub dir_only: bool,
}

/// Why a mutating step stopped: an error, or that the upper must be created
/// first (nothing was changed yet; the step is run again).
pub(crate) enum Fail {
    Err(Error),
    NeedUpper,
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Err(e)
    }
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail::Err(e.into())
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail::Err(e.into())
    }
}

type Step<T> = std::result::Result<T, Fail>;

/// Everything a resolution or a change needs, borrowed from the state.
pub(crate) struct Ctx<'a> {
    inner: &'a Inner,
    upper: Option<&'a Upper>,
    whiteouts: WhiteoutsRef<'a>,
}

/// Reads share the whiteouts under the read lock; changes own them.
enum WhiteoutsRef<'a> {
    Shared(&'a Whiteouts),
    Exclusive(&'a mut Whiteouts),
}

impl WhiteoutsRef<'_> {
    fn get(&self) -> &Whiteouts {
        match self {
            WhiteoutsRef::Shared(w) => w,
            WhiteoutsRef::Exclusive(w) => w,
        }
    }
}

impl<'a> Ctx<'a> {
    pub fn root(&self) -> Cursor<'a> {
        let lower: &'a cap_std::fs::Dir = &self.inner.lower;
        Cursor {
            path: ViewPath::root(),
            top: Frame {
                upper: self.upper.map(|u| Fd::Root(u.tree.as_fd())),
                lower: Some(Fd::Root(lower.as_fd())),
            },
        }
    }

    pub fn upper_tree(&self) -> Option<BorrowedFd<'a>> {
        self.upper.map(|u| u.tree.as_fd())
    }

    pub fn lower_root(&self) -> BorrowedFd<'a> {
        let lower: &'a cap_std::fs::Dir = &self.inner.lower;
        lower.as_fd()
    }

    pub fn whiteouts(&self) -> &Whiteouts {
        self.whiteouts.get()
    }

    fn has_upper(&self) -> Step<&'a Upper> {
        self.writable()?;
        self.upper.ok_or(Fail::NeedUpper)
    }

    /// `ReadOnly` in a read-only view. Each change asks it where Linux
    /// checks for a read-only mount (after the lookups it makes first:
    /// `mkdir` of an existing name is EEXIST, `unlink` of a missing one
    /// EROFS), and [`has_upper`](Ctx::has_upper) asks it again before any
    /// write to the upper.
    fn writable(&self) -> Step<()> {
        if self.inner.read_only {
            return Err(Error::ReadOnly.into());
        }
        Ok(())
    }

    /// The node `name` in the cursor's directory: the upper's if it has
    /// one, else the lower's unless whited out.
    pub fn lookup(&self, cur: &Cursor<'a>, name: &OsStr) -> Result<Option<Entry>> {
        let f = cur.top();
        if let Some(u) = &f.upper
            && let Some(stat) = host::lstat(u.fd(), name)?
        {
            return Ok(Some(Entry {
                layer: Layer::Upper,
                stat,
            }));
        }
        Ok(self.lower_visible(cur, name)?.map(|stat| Entry {
            layer: Layer::Lower,
            stat,
        }))
    }

    /// The lower's node `name` if the merged view lets it show (upper
    /// aside): its directory is merged with the lower and it is not whited
    /// out.
    pub fn lower_visible(&self, cur: &Cursor<'a>, name: &OsStr) -> Result<Option<Stat>> {
        let Some(l) = &cur.top().lower else {
            return Ok(None);
        };
        if !self.whiteouts.get().is_empty() && self.whiteouts.get().contains(&cur.path.join(name)) {
            return Ok(None);
        }
        host::lstat(l.fd(), name)
    }

    /// Moves the cursor into the directory `name` (an entry of kind Dir).
    pub fn descend(&self, cur: &mut Cursor<'a>, name: &OsStr, entry: &Entry) -> Result<()> {
        let f = cur.top();
        let upper = match (&f.upper, entry.layer) {
            (Some(u), Layer::Upper) => Some(host::open_dir(u.fd(), name)?.ok_or(Error::NotFound)?),
            _ => None,
        };
        let lower = match &f.lower {
            Some(l)
                if self.whiteouts.get().is_empty()
                    || !self.whiteouts.get().contains(&cur.path.join(name)) =>
            {
                host::open_dir(l.fd(), name)?
            }
            _ => None,
        };
        if upper.is_none() && lower.is_none() {
            return Err(Error::NotFound);
        }
        cur.top = Frame {
            upper: upper.map(Fd::Own),
            lower: lower.map(Fd::Own),
        };
        cur.path.push(name.to_owned());
        Ok(())
    }

    /// Moves the cursor to its parent (`..`; the root stays the root).
    fn up(&self, cur: &mut Cursor<'a>) -> Result<()> {
        if let Some(parent) = cur.path.parent() {
            *cur = self.cursor_at(&parent)?;
        }
        Ok(())
    }

    /// A cursor at a canonical directory path (a descriptor's).
    pub fn cursor_at(&self, path: &ViewPath) -> Result<Cursor<'a>> {
        let mut cur = self.root();
        for name in path.names() {
            let entry = self.lookup(&cur, name)?.ok_or(Error::NotFound)?;
            if entry.stat.kind != Kind::Dir {
                return Err(Error::NotFound);
            }
            self.descend(&mut cur, name, &entry)?;
        }
        Ok(cur)
    }

    /// Resolves a guest `path` from the directory `base`, as the kernel
    /// would inside a chroot at the view's root.
    pub fn resolve(&self, base: &ViewPath, path: &[u8], follow: bool) -> Result<Resolved<'a>> {
        let comps = path::split(path)?;
        let mut cur = if comps.absolute {
            self.root()
        } else {
            self.cursor_at(base)?
        };
        let mut dir_only = comps.trailing_slash;
        let mut pending: VecDeque<Vec<u8>> = comps.parts.into();
        self.lower_fast_path(&mut cur, &mut pending);
        let mut links = 0;
        loop {
            let Some(c) = pending.pop_front() else {
                return Ok(Resolved {
                    cur,
                    target: Target::Itself,
                    dir_only,
                });
            };
            let last = pending.is_empty();
            if c == b"." {
                continue;
            }
            if c == b".." {
                self.up(&mut cur)?;
                continue;
            }
            let name = checked_name(&c)?;
            let Some(entry) = self.lookup(&cur, &name)? else {
                if last {
                    return Ok(Resolved {
                        cur,
                        target: Target::Child { name, entry: None },
                        dir_only,
                    });
                }
                return Err(Error::NotFound);
            };
            match entry.stat.kind {
                Kind::Symlink if !last || follow || dir_only => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Error::Loop);
                    }
                    // EINVAL: no longer a symlink, changed on the host
                    // behind the view's lock; the node it was is gone.
                    let target = match host::read_link(cur.layer_fd(entry.layer)?, &name) {
                        Err(Error::Invalid) => return Err(Error::NotFound),
                        other => other?,
                    };
                    let t = path::split(target.as_bytes())?;
                    if t.absolute {
                        cur = self.root();
                    }
                    if last && t.trailing_slash {
                        dir_only = true;
                    }
                    for p in t.parts.into_iter().rev() {
                        pending.push_front(p);
                    }
                }
                Kind::Dir if !last => self.descend(&mut cur, &name, &entry)?,
                _ if !last => return Err(Error::NotDir),
                _ => {
                    return Ok(Resolved {
                        cur,
                        target: Target::Child {
                            name,
                            entry: Some(entry),
                        },
                        dir_only,
                    });
                }
            }
        }
    }

    /// Where the cursor's directory has nothing in the upper, nothing below
    /// it has (an upper node always has its parents there, and so does a
    /// whiteout): the leading plain directory names of `pending` are then
    /// resolved in the lower with one `openat2` that refuses any symlink and
    /// any step out. On any failure nothing moves and the walk goes name by
    /// name, so errors and their order are the walk's.
    fn lower_fast_path(&self, cur: &mut Cursor<'a>, pending: &mut VecDeque<Vec<u8>>) {
        if cur.top.upper.is_some() || pending.len() < 2 {
            return;
        }
        let Some(lower) = &cur.top.lower else {
            return;
        };
        let run = pending
            .iter()
            .take(pending.len() - 1)
            .take_while(|c| {
                c.as_slice() != b"." && c.as_slice() != b".." && checked_name(c).is_ok()
            })
            .count();
        if run == 0 {
            return;
        }
        let mut joined = Vec::new();
        for (i, c) in pending.iter().take(run).enumerate() {
            if i > 0 {
                joined.push(b'/');
            }
            joined.extend_from_slice(c);
        }
        let Ok(fd) = rustix::fs::openat2(
            lower.fd(),
            joined.as_slice(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        ) else {
            return;
        };
        for c in pending.drain(..run) {
            cur.path.push(OsString::from_vec(c));
        }
        cur.top = Frame {
            upper: None,
            lower: Some(Fd::Own(fd)),
        };
    }

    /// The merged entries of the cursor's directory, upper first.
    pub fn list(&self, cur: &Cursor<'a>) -> Result<Vec<DirEntry>> {
        let f = cur.top();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if let Some(u) = &f.upper {
            for e in host::list(u.fd())? {
                seen.insert(e.name.clone());
                out.push(DirEntry {
                    name: e.name,
                    kind: e.kind,
                    ino: e.ino,
                });
            }
        }
        if let Some(l) = &f.lower {
            for e in host::list(l.fd())? {
                if seen.contains(&e.name)
                    || (!self.whiteouts.get().is_empty()
                        && self.whiteouts.get().contains(&cur.path.join(&e.name)))
                {
                    continue;
                }
                out.push(DirEntry {
                    name: e.name,
                    kind: e.kind,
                    ino: e.ino,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn is_empty_dir(&self, cur: &Cursor<'a>, name: &OsStr, entry: &Entry) -> Result<bool> {
        let f = cur.top();
        let upper = match (&f.upper, entry.layer) {
            (Some(u), Layer::Upper) => host::open_dir(u.fd(), name)?,
            _ => None,
        };
        let lower = match self.lower_visible(cur, name)? {
            Some(st) if st.kind == Kind::Dir => match &f.lower {
                Some(l) => host::open_dir(l.fd(), name)?,
                None => None,
            },
            _ => None,
        };
        let child = Cursor {
            path: cur.path.join(name),
            top: Frame {
                upper: upper.map(Fd::Own),
                lower: lower.map(Fd::Own),
            },
        };
        Ok(self.list(&child)?.is_empty())
    }

    /// Makes every directory of the cursor's path exist in the upper, each
    /// created with the lower's mode and times (a directory copy-up).
    pub fn ensure_upper_dirs(&self, cur: &mut Cursor<'a>) -> Step<()> {
        let upper = self.has_upper()?;
        if cur.top.upper.is_some() {
            return Ok(());
        }
        let mut up = Fd::Root(upper.tree.as_fd());
        let mut low = Some(Fd::Root(self.inner.lower.as_fd()));
        for name in cur.path.names() {
            let lower_child = match &low {
                Some(l) => host::open_dir(l.fd(), name)?,
                None => None,
            };
            let parent = up.fd();
            let dir = match host::open_dir(parent, name)? {
                Some(d) => d,
                None => {
                    let lower = lower_child.as_ref().ok_or(Error::NotFound)?;
                    let st = host::fstat(lower.as_fd())?;
                    let parent_st = host::fstat(parent)?;
                    rustix::fs::mkdirat(parent, name.as_os_str(), Mode::from_raw_mode(0o700))?;
                    let d = host::open_dir(parent, name)?.ok_or(Error::NotFound)?;
                    rustix::fs::fchmod(&d, Mode::from_raw_mode(st.mode))?;
                    rustix::fs::futimens(&d, &host::copy_times(&st))?;
                    // A copy-up is no change in the merged view: the parent
                    // keeps its times.
                    rustix::fs::futimens(parent, &host::copy_times(&parent_st))?;
                    d
                }
            };
            up = Fd::Own(dir);
            low = lower_child.map(Fd::Own);
        }
        cur.top.upper = Some(up);
        Ok(())
    }

    /// Copies the lower node `name` of the cursor's directory up: data
    /// (unless `with_data` is false, for an open that truncates), mode,
    /// times; a symlink's target. The copy is made in the work directory
    /// and renamed in, so a crash leaves either the lower or the whole copy.
    pub fn copy_up(&self, cur: &mut Cursor<'a>, name: &OsStr, with_data: bool) -> Step<()> {
        let upper = self.has_upper()?;
        self.ensure_upper_dirs(cur)?;
        let lower = cur.layer_fd(Layer::Lower)?;
        let st = host::lstat(lower, name)?.ok_or(Error::NotFound)?;
        let up = cur.upper_fd()?;
        let parent_st = host::fstat(up)?;
        let tmp = OsString::from(format!(
            "copy-{}",
            self.inner.copy_seq.fetch_add(1, Ordering::Relaxed)
        ));
        let work = self.inner.work_dir(upper)?;
        match st.kind {
            Kind::File => {
                let charge = if with_data { st.size } else { 0 };
                self.inner.quota.reserve(charge)?;
                let made = (|| -> Result<()> {
                    let dst = host::open_file(
                        work,
                        &tmp,
                        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY,
                        0o600,
                    )?;
                    let mut dst = File::from(dst);
                    if with_data {
                        let src = host::open_file(lower, name, OFlags::RDONLY, 0)?;
                        std::io::copy(&mut File::from(src), &mut dst)?;
                    }
                    rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.mode))?;
                    rustix::fs::futimens(&dst, &host::copy_times(&st))?;
                    Ok(())
                })();
                if let Err(e) = made {
                    let _ = rustix::fs::unlinkat(work, &tmp, AtFlags::empty());
                    self.inner.quota.release(charge);
                    return Err(e.into());
                }
            }
            Kind::Symlink => {
                let target = host::read_link(lower, name)?;
                rustix::fs::symlinkat(target.as_os_str(), work, &tmp)?;
                rustix::fs::utimensat(
                    work,
                    &tmp,
                    &host::copy_times(&st),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            Kind::Dir => return Err(Error::Invalid.into()),
            _ => return Err(Error::NotPermitted.into()),
        }
        rustix::fs::renameat(work, &tmp, up, name)?;
        rustix::fs::futimens(up, &host::copy_times(&parent_st))?;
        Ok(())
    }

    /// Records a whiteout for `name` in the cursor's directory (durably,
    /// before the change it stands for) and makes the directory exist in
    /// the upper, as overlayfs's holds its whiteouts.
    pub fn record_whiteout(&mut self, cur: &mut Cursor<'a>, name: &OsStr) -> Step<()> {
        let upper = self.has_upper()?;
        self.ensure_upper_dirs(cur)?;
        match &mut self.whiteouts {
            WhiteoutsRef::Exclusive(w) => w
                .record(self.inner.journal(upper)?, cur.path.join(name))
                .map_err(Fail::Err),
            WhiteoutsRef::Shared(_) => Err(Error::Invalid.into()),
        }
    }
}

/// The parent's times change when an entry is removed from it.
fn touch_dir(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::fs::futimens(fd, &host::timestamps(SetTime::Keep, SetTime::Now))?;
    Ok(())
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a read-only step under the read lock.
    pub(crate) fn view<T>(&self, f: impl FnOnce(&Ctx<'_>) -> Result<T>) -> Result<T> {
        let st = self.read();
        let ctx = Ctx {
            inner: self,
            upper: st.upper.as_ref(),
            whiteouts: WhiteoutsRef::Shared(&st.whiteouts),
        };
        f(&ctx)
    }

    /// Runs a changing step under the write lock; when it needs the upper
    /// and there is none yet, creates it and runs the step again.
    pub(crate) fn change<T>(&self, mut f: impl FnMut(&mut Ctx<'_>) -> Step<T>) -> Result<T> {
        let mut st = self.write();
        loop {
            let state = &mut *st;
            let mut ctx = Ctx {
                inner: self,
                upper: state.upper.as_ref(),
                whiteouts: WhiteoutsRef::Exclusive(&mut state.whiteouts),
            };
            match f(&mut ctx) {
                Ok(v) => return Ok(v),
                Err(Fail::Err(e)) => return Err(e),
                Err(Fail::NeedUpper) if state.upper.is_none() => {
                    if self.read_only {
                        return Err(Error::ReadOnly);
                    }
                    state.upper = Some(self.create_upper()?);
                }
                Err(Fail::NeedUpper) => return Err(Error::Invalid),
            }
        }
    }

    /// Creates the upper: its tree, staged as `<upper>.work` (the root
    /// taking the lower root's mode and times) and renamed into place, so
    /// a crash leaves no upper or a whole one. Parts left without a tree
    /// are another upper's (one removed, one never finished): removed
    /// first, or a stale journal would hide files of the lower.
    fn create_upper(&self) -> Result<Upper> {
        let dir = upper::split(&self.upper_path)?.0;
        let parent = host::open_upper_dir(dir, true)?.ok_or(Error::NotFound)?;
        let parent = cap_std::fs::Dir::from(parent);
        let work = upper::part_name(&self.upper_name, WORK_SUFFIX);
        upper::remove_part(&parent, &work)?;
        upper::remove_part(&parent, &upper::part_name(&self.upper_name, JOURNAL_SUFFIX))?;
        rustix::fs::mkdirat(&parent, &work, Mode::from_raw_mode(0o700))?;
        let tree = host::open_dir(parent.as_fd(), &work)?.ok_or(Error::NotFound)?;
        let st = host::fstat(self.lower.as_fd())?;
        rustix::fs::fchmod(&tree, Mode::from_raw_mode(st.mode))?;
        rustix::fs::futimens(&tree, &host::copy_times(&st))?;
        rustix::fs::renameat(&parent, &work, &parent, &self.upper_name)?;
        rustix::fs::fsync(&parent)?;
        Ok(Upper {
            tree,
            work: OnceLock::new(),
            journal: OnceLock::new(),
        })
    }

    /// The directory the upper's tree sits in, where its parts are made:
    /// reached from the tree, no host path involved.
    fn upper_parent(&self, upper: &Upper) -> Result<cap_std::fs::Dir> {
        let parent = host::open_dir(upper.tree.as_fd(), OsStr::new(".."))?;
        Ok(cap_std::fs::Dir::from(parent.ok_or(Error::NotFound)?))
    }

    /// The staging area of copy-ups, `<upper>.work`: made at the first.
    fn work_dir<'u>(&self, upper: &'u Upper) -> Result<BorrowedFd<'u>> {
        if let Some(work) = upper.work.get() {
            return Ok(work.as_fd());
        }
        let parent = self.upper_parent(upper)?;
        let name = upper::part_name(&self.upper_name, WORK_SUFFIX);
        match rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let work = host::open_dir(parent.as_fd(), &name)?.ok_or(Error::NotDir)?;
        // Changes run under the view's write lock: no other thread sets it.
        Ok(upper.work.get_or_init(|| work).as_fd())
    }

    /// The deletion journal, `<upper>.whiteouts`: made (and its name made
    /// durable) at the first whiteout, before any record goes in.
    fn journal<'u>(&self, upper: &'u Upper) -> Result<&'u File> {
        if let Some(journal) = upper.journal.get() {
            return Ok(journal);
        }
        let parent = self.upper_parent(upper)?;
        let journal = File::from(host::open_file(
            parent.as_fd(),
            &upper::part_name(&self.upper_name, JOURNAL_SUFFIX),
            OFlags::CREATE | OFlags::APPEND | OFlags::RDWR,
            0o600,
        )?);
        rustix::fs::fsync(&parent)?;
        Ok(upper.journal.get_or_init(|| journal))
    }
}

/// Opens the parts of an existing upper (its tree is `tree`): removes the
/// staging area (copies a crash cut short; made again at the next
/// copy-up) and opens the journal when there is one.
fn open_upper_parts(tree: OwnedFd, name: &OsStr, read_only: bool) -> Result<Upper> {
    let parent = host::open_dir(tree.as_fd(), OsStr::new(".."))?.ok_or(Error::NotFound)?;
    let parent = cap_std::fs::Dir::from(parent);
    // A read-only view changes nothing, not even a cut-short copy.
    if !read_only {
        upper::remove_part(&parent, &upper::part_name(name, WORK_SUFFIX))?;
    }
    let mode = if read_only {
        OFlags::RDONLY
    } else {
        OFlags::APPEND | OFlags::RDWR
    };
    let journal = match host::open_file(
        parent.as_fd(),
        &upper::part_name(name, JOURNAL_SUFFIX),
        mode,
        0,
    ) {
        Ok(fd) => OnceLock::from(File::from(fd)),
        Err(Error::NotFound) => OnceLock::new(),
        Err(e) => return Err(e),
    };
    Ok(Upper {
        tree,
        work: OnceLock::new(),
        journal,
    })
}

fn open_flags(o: &OpenOptions) -> OFlags {
    match (o.read, o.write) {
        (true, true) => OFlags::RDWR,
        (false, true) => OFlags::WRONLY,
        _ => OFlags::RDONLY,
    }
}

impl Layers {
    /// The view over `lower` (the image's unpacked rootfs, shared by every
    /// instance of the image) with its upper at `upper`: a host directory,
    /// the guest's tree, created on the first write only, with the view's
    /// parts beside it (see [`UpperParts`](crate::UpperParts)). An existing
    /// upper (after a daemon restart) is opened and its whiteouts loaded.
    /// `Invalid` when `upper` has no file name or names another's part.
    pub fn open(
        lower: Arc<cap_std::fs::Dir>,
        upper: impl Into<PathBuf>,
        options: UpperOptions,
    ) -> Result<Layers> {
        Layers::open_with(lower, upper.into(), options.size_limit, false)
    }

    /// A read-only view (`--read-only`) over `lower` and the upper at
    /// `upper` if there is one (served as it is): every change fails with
    /// `ReadOnly` (EROFS) where Linux checks a read-only mount (after the
    /// lookups it makes first), no upper is ever made, nothing on disk is
    /// changed.
    pub fn open_read_only(
        lower: Arc<cap_std::fs::Dir>,
        upper: impl Into<PathBuf>,
    ) -> Result<Layers> {
        Layers::open_with(lower, upper.into(), None, true)
    }

    fn open_with(
        lower: Arc<cap_std::fs::Dir>,
        upper_path: PathBuf,
        size_limit: Option<u64>,
        read_only: bool,
    ) -> Result<Layers> {
        upper::split(&upper_path)?;
        let reopen = Arc::new(Reopen {
            live: Mutex::new(Weak::new()),
            upper_path,
            read_only,
            quota: Arc::new(Quota::new(size_limit, 0)),
        });
        let mut live = reopen.live();
        let view = Layers::open_as(lower, &reopen, true)?;
        *live = Arc::downgrade(&view.inner);
        drop(live);
        Ok(view)
    }

    /// Opens the view `reopen` describes, with `live` (its lock) held by
    /// the caller; `count` counts the upper's bytes for the size limit (a
    /// reopen keeps the count it had).
    fn open_as(lower: Arc<cap_std::fs::Dir>, reopen: &Arc<Reopen>, count: bool) -> Result<Layers> {
        let upper_path = reopen.upper_path.clone();
        let upper_name = upper::split(&upper_path)?.1.to_owned();
        let (upper, whiteouts) = match host::open_upper_dir(&upper_path, false)? {
            Some(tree) => {
                let parts = open_upper_parts(tree, &upper_name, reopen.read_only)?;
                let whiteouts = match parts.journal.get() {
                    Some(journal) => Whiteouts::load(journal)?,
                    None => Whiteouts::default(),
                };
                (Some(parts), whiteouts)
            }
            None => (None, Whiteouts::default()),
        };
        if count && let (Some(u), Some(_)) = (&upper, reopen.quota.limit()) {
            *reopen.quota.used() = host::file_bytes(u.tree.as_fd())?;
        }
        Ok(Layers {
            inner: Arc::new(Inner {
                lower,
                upper_path,
                upper_name,
                quota: Arc::clone(&reopen.quota),
                state: RwLock::new(State { upper, whiteouts }),
                copy_seq: AtomicU64::new(0),
                read_only: reopen.read_only,
                reopen: Arc::clone(reopen),
            }),
        })
    }

    /// This view held weakly: see [`WeakLayers`]. The view's descriptors
    /// close when the last `Layers` clone (and file) of it is dropped.
    pub fn downgrade(&self) -> WeakLayers {
        WeakLayers {
            reopen: Arc::clone(&self.inner.reopen),
        }
    }

    /// Whether the view is read-only ([`Layers::open_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The view's root directory.
    pub fn root(&self) -> ViewDir {
        ViewDir {
            path: ViewPath::root(),
        }
    }

    /// A directory by canonical path (from `diff`, a tar, a saved `-w`).
    pub fn dir(&self, path: &ViewPath) -> Result<ViewDir> {
        self.inner.view(|ctx| {
            ctx.cursor_at(path)?;
            Ok(ViewDir { path: path.clone() })
        })
    }

    /// Where the upper lives on the host (created or not).
    pub fn upper_path(&self) -> &Path {
        &self.inner.upper_path
    }

    /// Whether the upper exists: false for an instance that never wrote.
    pub fn has_upper(&self) -> bool {
        self.inner.read().upper.is_some()
    }

    /// Bytes of file data the upper holds, as the size limit counts them
    /// (0 when there is no limit: nothing is counted then).
    pub fn upper_usage(&self) -> u64 {
        *self.inner.quota.used()
    }

    /// Whether the size limit ever refused a write, a size change or a
    /// copy-up of this view (since it was opened): a build step that failed
    /// after filling its upper is told so.
    pub fn size_limit_reached(&self) -> bool {
        self.inner.quota.refused()
    }

    /// Opens `path` from `dir`: a directory, or a file (copied up first
    /// when opened for writing or truncating).
    pub fn open_at(&self, dir: &ViewDir, path: &str, o: &OpenOptions) -> Result<Opened> {
        if o.truncate && !o.write {
            return Err(Error::Invalid);
        }
        let follow = o.follow && !(o.create && o.exclusive);
        if !(o.write || o.create) {
            return self.inner.view(|ctx| {
                let r = ctx.resolve(&dir.path, path.as_bytes(), follow)?;
                match r.target.node()? {
                    None => Ok(Opened::Dir(ViewDir { path: r.cur.path })),
                    Some((name, e)) => self.open_existing(&r.cur, name, e, r.dir_only, o),
                }
            });
        }
        self.inner.change(|ctx| {
            let r = ctx.resolve(&dir.path, path.as_bytes(), follow)?;
            let mut cur = r.cur;
            match r.target {
                Target::Itself => Err(if o.create && o.exclusive {
                    Error::Exists
                } else if o.write {
                    Error::IsDir
                } else {
                    return Ok(Opened::Dir(ViewDir { path: cur.path }));
                }
                .into()),
                Target::Child { entry: None, name } => {
                    if !o.create {
                        return Err(Error::NotFound.into());
                    }
                    if r.dir_only {
                        return Err(Error::IsDir.into());
                    }
                    if o.directory {
                        return Err(Error::Invalid.into());
                    }
                    ctx.writable()?;
                    ctx.ensure_upper_dirs(&mut cur)?;
                    let fd = host::open_file(
                        cur.upper_fd()?,
                        &name,
                        open_flags(o) | OFlags::CREATE | OFlags::EXCL,
                        o.mode.unwrap_or(0o666) & 0o7777,
                    )?;
                    Ok(Opened::File(ViewFile::new(
                        self.inner.clone(),
                        self.inner.quota.clone(),
                        cur.path.join(&name),
                        File::from(fd),
                        Layer::Upper,
                        o.read,
                        o.write,
                    )))
                }
                Target::Child {
                    name,
                    entry: Some(e),
                } => {
                    if o.create && o.exclusive {
                        return Err(Error::Exists.into());
                    }
                    if e.stat.kind != Kind::File || !o.write {
                        return Ok(self.open_existing(&cur, name, e, r.dir_only, o)?);
                    }
                    if r.dir_only || o.directory {
                        return Err(Error::NotDir.into());
                    }
                    ctx.writable()?;
                    let mut flags = open_flags(o);
                    match e.layer {
                        Layer::Lower => ctx.copy_up(&mut cur, &name, !o.truncate)?,
                        Layer::Upper if o.truncate => {
                            self.inner.quota.release(e.stat.size);
                            flags |= OFlags::TRUNC;
                        }
                        Layer::Upper => {}
                    }
                    let fd = host::open_file(cur.upper_fd()?, &name, flags, 0)?;
                    Ok(Opened::File(ViewFile::new(
                        self.inner.clone(),
                        self.inner.quota.clone(),
                        cur.path.join(&name),
                        File::from(fd),
                        Layer::Upper,
                        o.read,
                        o.write,
                    )))
                }
            }
        })
    }

    /// Opens an existing node without changing anything: a directory, or a
    /// file for reading from whichever layer holds it.
    fn open_existing(
        &self,
        cur: &Cursor<'_>,
        name: OsString,
        e: Entry,
        dir_only: bool,
        o: &OpenOptions,
    ) -> Result<Opened> {
        match e.stat.kind {
            Kind::Symlink => Err(Error::Loop),
            Kind::Dir if o.write => Err(Error::IsDir),
            Kind::Dir => Ok(Opened::Dir(ViewDir {
                path: cur.path.join(&name),
            })),
            _ if dir_only || o.directory => Err(Error::NotDir),
            Kind::File => {
                let fd = host::open_file(cur.layer_fd(e.layer)?, &name, OFlags::RDONLY, 0)?;
                Ok(Opened::File(ViewFile::new(
                    self.inner.clone(),
                    self.inner.quota.clone(),
                    cur.path.join(&name),
                    File::from(fd),
                    e.layer,
                    o.read,
                    false,
                )))
            }
            _ => Err(Error::NotPermitted),
        }
    }

    /// `stat` of a directory handle.
    pub fn stat(&self, dir: &ViewDir) -> Result<Stat> {
        self.inner.view(|ctx| ctx.cursor_at(&dir.path)?.stat())
    }

    /// `stat` (`follow`) or `lstat` of `path` from `dir`.
    pub fn stat_at(&self, dir: &ViewDir, path: &str, follow: bool) -> Result<Stat> {
        self.inner.view(|ctx| {
            let r = ctx.resolve(&dir.path, path.as_bytes(), follow)?;
            match r.target.node()? {
                None => r.cur.stat(),
                Some((_, e)) if r.dir_only && e.stat.kind != Kind::Dir => Err(Error::NotDir),
                Some((_, e)) => Ok(e.stat),
            }
        })
    }

    /// The entries of a directory in the merged view, sorted by name: the
    /// upper's, then the lower's not shadowed or whited out (none of the
    /// lower's when the directory is opaque). With `dots`, `.` and `..`
    /// come first (`..` of the root is the root).
    pub fn read_dir(&self, dir: &ViewDir, dots: bool) -> Result<Vec<DirEntry>> {
        self.inner.view(|ctx| {
            let cur = ctx.cursor_at(&dir.path)?;
            let mut out = Vec::new();
            if dots {
                out.push(DirEntry {
                    name: ".".into(),
                    kind: Kind::Dir,
                    ino: cur.stat()?.ino,
                });
                let parent = match dir.path.parent() {
                    Some(p) => ctx.cursor_at(&p)?.stat()?,
                    None => cur.stat()?,
                };
                out.push(DirEntry {
                    name: "..".into(),
                    kind: Kind::Dir,
                    ino: parent.ino,
                });
            }
            out.extend(ctx.list(&cur)?);
            Ok(out)
        })
    }

    /// `mkdir`. A directory made where a whiteout is stays opaque: nothing
    /// of the lower's old directory shows in it.
    pub fn create_dir_at(&self, dir: &ViewDir, path: &str) -> Result<()> {
        self.inner.change(|ctx| {
            let r = ctx.resolve(&dir.path, path.as_bytes(), false)?;
            let mut cur = r.cur;
            let name = r.target.free_name()?;
            ctx.writable()?;
            ctx.ensure_upper_dirs(&mut cur)?;
            rustix::fs::mkdirat(cur.upper_fd()?, &name, Mode::from_raw_mode(0o777))?;
            Ok(())
        })
    }

    /// `rmdir`: fails with `NotEmpty` unless empty in the merged view.
    pub fn remove_dir_at(&self, dir: &ViewDir, path: &str) -> Result<()> {
        self.inner.change(|ctx| {
            let r = ctx.resolve(&dir.path, path.as_bytes(), false)?;
            // Linux checks the mount before it looks the name up.
            if !matches!(r.target, Target::Itself) {
                ctx.writable()?;
            }
            let mut cur = r.cur;
            let (name, e) = r.target.existing_child(Error::Invalid)?;
            if e.stat.kind != Kind::Dir {
                return Err(Error::NotDir.into());
            }
            if !ctx.is_empty_dir(&cur, &name, &e)? {
                return Err(Error::NotEmpty.into());
            }
            if ctx.lower_visible(&cur, &name)?.is_some() {
                ctx.record_whiteout(&mut cur, &name)?;
                if e.layer == Layer::Lower {
                    touch_dir(cur.upper_fd()?)?;
                }
            }
            if e.layer == Layer::Upper {
                rustix::fs::unlinkat(cur.upper_fd()?, &name, AtFlags::REMOVEDIR)?;
            }
            Ok(())
        })
    }

    /// `unlink` of a non-directory.
    pub fn unlink_file_at(&self, dir: &ViewDir, path: &str) -> Result<()> {
        self.inner.change(|ctx| {
            let r = ctx.resolve(&dir.path, path.as_bytes(), false)?;
            // Linux checks the mount before it looks the name up.
            if !matches!(r.target, Target::Itself) {
                ctx.writable()?;
            }
            let mut cur = r.cur;
            let (name, e) = r.target.existing_child(Error::IsDir)?;
            if e.stat.kind == Kind::Dir {
                return Err(Error::IsDir.into());
            }
            if r.dir_only {
                return Err(Error::NotDir.into());
            }
            if ctx.lower_visible(&cur, &name)?.is_some() {
                ctx.record_whiteout(&mut cur, &name)?;
                if e.layer == Layer::Lower {
                    touch_dir(cur.upper_fd()?)?;
                }
            }
            if e.layer == Layer::Upper {
                rustix::fs::unlinkat(cur.upper_fd()?, &name, AtFlags::empty())?;
                if e.stat.kind == Kind::File && e.stat.nlink <= 1 {
                    self.inner.quota.release(e.stat.size);
                }
            }
            Ok(())
        })
    }

    /// `rename`. A file of the lower is copied up first and its old name
    /// whited out; a directory with anything in the lower fails with
    /// `CrossDevice`, as on overlay2 (no `redirect_dir`): callers copy.
    pub fn rename_at(
        &self,
        dir: &ViewDir,
        path: &str,
        new_dir: &ViewDir,
        new_path: &str,
    ) -> Result<()> {
        self.inner.change(|ctx| {
            let ro = ctx.resolve(&dir.path, path.as_bytes(), false)?;
            let rn = ctx.resolve(&new_dir.path, new_path.as_bytes(), false)?;
            // Linux checks the mount before it looks either name up.
            if !matches!(ro.target, Target::Itself) && !matches!(rn.target, Target::Itself) {
                ctx.writable()?;
            }
            let (mut oc, mut nc) = (ro.cur, rn.cur);
            let (oname, oe) = ro.target.existing_child(Error::Invalid)?;
            let (nname, ne) = rn.target.child(Error::Invalid)?;
            let is_dir = oe.stat.kind == Kind::Dir;
            if !is_dir && (ro.dir_only || rn.dir_only) {
                return Err(Error::NotDir.into());
            }
            let old_path = oc.path.join(&oname);
            let new_path = nc.path.join(&nname);
            if old_path == new_path {
                return Ok(());
            }
            // Linux's order: a directory into itself, then a target that
            // is an ancestor of the source, then the kinds, then (overlay)
            // EXDEV, then a non-empty target.
            if new_path.starts_with(&old_path) {
                return Err(Error::Invalid.into());
            }
            if old_path.starts_with(&new_path) {
                return Err(Error::NotEmpty.into());
            }
            if is_dir {
                if let Some(ne) = &ne
                    && ne.stat.kind != Kind::Dir
                {
                    return Err(Error::NotDir.into());
                }
                if oe.layer == Layer::Lower || ctx.lower_visible(&oc, &oname)?.is_some() {
                    return Err(Error::CrossDevice.into());
                }
                if let Some(ne) = &ne
                    && !ctx.is_empty_dir(&nc, &nname, ne)?
                {
                    return Err(Error::NotEmpty.into());
                }
                ctx.ensure_upper_dirs(&mut nc)?;
                if ctx.lower_visible(&nc, &nname)?.is_some() {
                    ctx.record_whiteout(&mut nc, &nname)?;
                }
                rustix::fs::renameat(oc.upper_fd()?, &oname, nc.upper_fd()?, &nname)?;
                return Ok(());
            }
            if ne.as_ref().is_some_and(|e| e.stat.kind == Kind::Dir) {
                return Err(Error::IsDir.into());
            }
            if oe.layer == Layer::Lower {
                ctx.copy_up(&mut oc, &oname, true)?;
            }
            ctx.ensure_upper_dirs(&mut nc)?;
            if let Some(ne) = &ne
                && ne.layer == Layer::Upper
            {
                let old_now = host::lstat(oc.upper_fd()?, &oname)?.ok_or(Error::NotFound)?;
                if (old_now.dev, old_now.ino) == (ne.stat.dev, ne.stat.ino) {
                    // Two links of one file: POSIX says do nothing.
                    return Ok(());
                }
                if ne.stat.kind == Kind::File && ne.stat.nlink <= 1 {
                    self.inner.quota.release(ne.stat.size);
                }
            }
            if ctx.lower_visible(&oc, &oname)?.is_some() {
                ctx.record_whiteout(&mut oc, &oname)?;
            }
            rustix::fs::renameat(oc.upper_fd()?, &oname, nc.upper_fd()?, &nname)?;
            Ok(())
        })
    }

    /// `symlink`: the target is kept verbatim; it is only ever resolved by
    /// the view, inside it.
    pub fn symlink_at(&self, target: &str, dir: &ViewDir, path: &str) -> Result<()> {
        path::split(target.as_bytes())?;
        self.inner.change(|ctx| {
            let r = ctx.resolve(&dir.path, path.as_bytes(), false)?;
            let mut cur = r.cur;
            let name = r.target.free_name()?;
            if r.dir_only {
                return Err(Error::NotFound.into());
            }
            ctx.writable()?;
            ctx.ensure_upper_dirs(&mut cur)?;
            rustix::fs::symlinkat(target, cur.upper_fd()?, &name)?;
            Ok(())
        })
    }

    /// `readlink`: the target as stored.
    pub fn readlink_at(&self, dir: &ViewDir, path: &str) -> Result<OsString> {
        self.inner.view(|ctx| {
            let r = ctx.resolve(&dir.path, path.as_bytes(), false)?;
            match r.target.existing_child(Error::Invalid)? {
                (name, e) if e.stat.kind == Kind::Symlink => {
                    host::read_link(r.cur.layer_fd(e.layer)?, &name)
                }
                _ => Err(Error::Invalid),
            }
        })
    }

    /// `link`: a hard link to a lower file copies it up first and links the
    /// copy, so writing through either name never reaches the lower.
    pub fn link_at(
        &self,
        dir: &ViewDir,
        path: &str,
        follow: bool,
        new_dir: &ViewDir,
        new_path: &str,
    ) -> Result<()> {
        self.inner.change(|ctx| {
            let ro = ctx.resolve(&dir.path, path.as_bytes(), follow)?;
            let mut oc = ro.cur;
            let (oname, oe) = ro.target.existing_child(Error::NotPermitted)?;
            let rn = ctx.resolve(&new_dir.path, new_path.as_bytes(), false)?;
            let mut nc = rn.cur;
            let nname = rn.target.free_name()?;
            if rn.dir_only {
                return Err(Error::NotFound.into());
            }
            ctx.writable()?;
            // Linux checks the new name before the kind of the old one.
            if oe.stat.kind == Kind::Dir {
                return Err(Error::NotPermitted.into());
            }
            if ro.dir_only {
                return Err(Error::NotDir.into());
            }
            if oe.layer == Layer::Lower {
                ctx.copy_up(&mut oc, &oname, true)?;
            } else {
                ctx.has_upper()?;
            }
            ctx.ensure_upper_dirs(&mut nc)?;
            rustix::fs::linkat(
                oc.upper_fd()?,
                &oname,
                nc.upper_fd()?,
                &nname,
                AtFlags::empty(),
            )?;
            Ok(())
        })
    }

    /// Sets the times of `path` (copying it up first).
    pub fn set_times_at(
        &self,
        dir: &ViewDir,
        path: &str,
        follow: bool,
        atime: SetTime,
        mtime: SetTime,
    ) -> Result<()> {
        let ts = host::timestamps(atime, mtime);
        self.change_node(dir, path, follow, true, |fd, name| match name {
            None => Ok(rustix::fs::futimens(fd, &ts)?),
            Some(name) => Ok(rustix::fs::utimensat(
                fd,
                name,
                &ts,
                AtFlags::SYMLINK_NOFOLLOW,
            )?),
        })
    }

    /// `chmod` of `path` (copying it up first); the permission bits only.
    pub fn set_mode_at(&self, dir: &ViewDir, path: &str, follow: bool, mode: u32) -> Result<()> {
        let mode = Mode::from_raw_mode(mode & 0o7777);
        self.change_node(dir, path, follow, false, |fd, name| match name {
            None => Ok(rustix::fs::fchmod(fd, mode)?),
            // The node is not a symlink (checked under the lock) and only
            // this view writes the upper: chmodat has no NOFOLLOW on Linux.
            Some(name) => Ok(rustix::fs::chmodat(fd, name, mode, AtFlags::empty())?),
        })
    }

    /// Copies the node `path` names up and applies `op` to it: to the
    /// directory's own handle (`None`) or to `(parent, name)`.
    fn change_node(
        &self,
        dir: &ViewDir,
        path: &str,
        follow: bool,
        on_symlink: bool,
        op: impl Fn(BorrowedFd<'_>, Option<&OsStr>) -> Result<()>,
    ) -> Result<()> {
        self.inner.change(|ctx| {
            let r = ctx.resolve(&dir.path, path.as_bytes(), follow)?;
            let mut cur = r.cur;
            let node = r.target.node()?;
            if !(r.dir_only && node.as_ref().is_some_and(|(_, e)| e.stat.kind != Kind::Dir)) {
                ctx.writable()?;
            }
            if let Some((name, e)) = node {
                match e.stat.kind {
                    Kind::Dir => ctx.descend(&mut cur, &name, &e)?,
                    _ if r.dir_only => return Err(Error::NotDir.into()),
                    // Linux has no chmod of a symlink itself.
                    Kind::Symlink if !on_symlink => return Err(Error::NotPermitted.into()),
                    _ => {
                        if e.layer == Layer::Lower {
                            ctx.copy_up(&mut cur, &name, true)?;
                        } else {
                            ctx.has_upper()?;
                        }
                        return Ok(op(cur.upper_fd()?, Some(&name))?);
                    }
                }
            }
            ctx.ensure_upper_dirs(&mut cur)?;
            Ok(op(cur.upper_fd()?, None)?)
        })
    }
}

impl CopyUpHandle for Inner {
    fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// For a file handle opened on the lower that now must change (times,
    /// mode): copies the file at `path` up if it is still that lower file
    /// (same device and inode) and opens the copy read-only.
    fn copy_up_handle(&self, path: &ViewPath, lower: &Stat) -> Result<File> {
        let parent = path.parent().ok_or(Error::Invalid)?;
        let name = path.file_name().ok_or(Error::Invalid)?.to_owned();
        self.change(|ctx| {
            let mut cur = ctx.cursor_at(&parent)?;
            let e = ctx.lookup(&cur, &name)?.ok_or(Error::NotFound)?;
            match e.layer {
                Layer::Lower if (e.stat.dev, e.stat.ino) == (lower.dev, lower.ino) => {
                    ctx.copy_up(&mut cur, &name, true)?;
                }
                Layer::Upper if e.stat.kind == Kind::File => ctx.has_upper().map(|_| ())?,
                _ => return Err(Error::NotFound.into()),
            }
            let fd = host::open_file(cur.upper_fd()?, &name, OFlags::RDONLY, 0)?;
            Ok(File::from(fd))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::NAME_MAX;
    use crate::walk::{Change, ChangeKind, LayerItem};
    use std::io::Write;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A lower with `/etc/conf` (0640), `/bin/app`, `/d/a`, `/d/s/t`,
    /// `/k/l`, `/empty/`, `/lnk -> etc/conf`; and a view over it whose upper
    /// is not created yet.
    struct Fixture {
        _tmp: tempfile::TempDir,
        lower: PathBuf,
        upper: PathBuf,
        layers: Layers,
    }

    fn fixture_with(options: UpperOptions) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lower = tmp.path().join("lower");
        for d in ["etc", "bin", "d/s", "k", "empty"] {
            std::fs::create_dir_all(lower.join(d)).expect("mkdir");
        }
        for (f, data) in [
            ("etc/conf", "conf\n"),
            ("bin/app", "app"),
            ("d/a", "a"),
            ("d/s/t", "t"),
            ("k/l", "l"),
        ] {
            std::fs::write(lower.join(f), data).expect("write");
        }
        std::fs::set_permissions(
            lower.join("etc/conf"),
            std::fs::Permissions::from_mode(0o640),
        )
        .expect("chmod");
        symlink("etc/conf", lower.join("lnk")).expect("symlink");
        let upper = tmp.path().join("instance/upper");
        let layers = open_view(&lower, &upper, options);
        Fixture {
            _tmp: tmp,
            lower,
            upper,
            layers,
        }
    }

    fn open_view(lower: &Path, upper: &Path, options: UpperOptions) -> Layers {
        let dir =
            cap_std::fs::Dir::open_ambient_dir(lower, cap_std::ambient_authority()).expect("lower");
        Layers::open(Arc::new(dir), upper, options).expect("view")
    }

    fn fixture() -> Fixture {
        fixture_with(UpperOptions::default())
    }

    impl Fixture {
        /// A lower file's text, read on the host (never through the view).
        fn lower_text(&self, path: &str) -> String {
            std::fs::read_to_string(self.lower.join(path)).expect("lower")
        }
    }

    fn read(l: &Layers, path: &str) -> Result<String> {
        let o = OpenOptions {
            read: true,
            follow: true,
            ..OpenOptions::default()
        };
        let Opened::File(f) = l.open_at(&l.root(), path, &o)? else {
            return Err(Error::IsDir);
        };
        let mut buf = vec![0; 4096];
        let n = f.read_at(&mut buf, 0)?;
        buf.truncate(n);
        Ok(String::from_utf8(buf).expect("utf-8"))
    }

    fn write(l: &Layers, path: &str, data: &str, truncate: bool) -> Result<()> {
        let o = OpenOptions {
            write: true,
            create: true,
            truncate,
            follow: true,
            ..OpenOptions::default()
        };
        let Opened::File(f) = l.open_at(&l.root(), path, &o)? else {
            return Err(Error::IsDir);
        };
        f.write_at(data.as_bytes(), 0)?;
        Ok(())
    }

    fn names(l: &Layers, path: &str) -> Vec<String> {
        let dir = match l
            .open_at(&l.root(), path, &OpenOptions::default())
            .expect("open dir")
        {
            Opened::Dir(d) => d,
            Opened::File(_) => panic!("{path} is a file"),
        };
        l.read_dir(&dir, false)
            .expect("read_dir")
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn reads_never_create_the_upper() {
        let fx = fixture();
        let l = &fx.layers;
        assert_eq!(read(l, "/etc/conf").expect("read"), "conf\n");
        assert_eq!(read(l, "lnk").expect("through the symlink"), "conf\n");
        assert_eq!(
            l.stat_at(&l.root(), "etc/conf", false).expect("stat").mode,
            0o640
        );
        assert_eq!(names(l, "/"), ["bin", "d", "empty", "etc", "k", "lnk"]);
        assert!(matches!(
            l.unlink_file_at(&l.root(), "nope"),
            Err(Error::NotFound)
        ));
        assert!(matches!(
            l.create_dir_at(&l.root(), "etc"),
            Err(Error::Exists)
        ));
        assert!(!l.has_upper());
        assert!(
            !fx.upper.exists(),
            "no directory for an instance that never wrote"
        );
    }

    #[test]
    fn a_write_copies_up_and_the_lower_stays() {
        let fx = fixture();
        let l = &fx.layers;
        let before = std::fs::metadata(fx.lower.join("etc/conf")).expect("stat");
        let o = OpenOptions {
            read: true,
            write: true,
            ..OpenOptions::default()
        };
        let Ok(Opened::File(f)) = l.open_at(&l.root(), "etc/conf", &o) else {
            panic!("open for writing");
        };
        f.write_at(b"CO", 0).expect("write");
        assert_eq!(read(l, "etc/conf").expect("read"), "COnf\n");
        let st = f.stat().expect("stat");
        assert_eq!(st.mode, 0o640, "mode copied up");
        assert_eq!(
            std::fs::metadata(fx.lower.join("etc/conf"))
                .expect("stat")
                .modified()
                .expect("mtime"),
            before.modified().expect("mtime")
        );
        assert_eq!(fx.lower_text("etc/conf"), "conf\n");
        assert!(fx.upper.join("etc/conf").exists());
        f.append(b"!").expect("append");
        assert_eq!(read(l, "etc/conf").expect("read"), "COnf\n!");
        f.set_size(2).expect("truncate");
        assert_eq!(read(l, "etc/conf").expect("read"), "CO");
        // A truncating open copies no data.
        write(l, "bin/app", "new", true).expect("truncate lower file");
        assert_eq!(read(l, "bin/app").expect("read"), "new");
        assert_eq!(fx.lower_text("bin/app"), "app");
    }

    #[test]
    fn a_read_only_handle_refuses_writes() {
        let fx = fixture();
        let l = &fx.layers;
        let o = OpenOptions {
            read: true,
            ..OpenOptions::default()
        };
        let Ok(Opened::File(f)) = l.open_at(&l.root(), "etc/conf", &o) else {
            panic!("open");
        };
        assert!(matches!(f.write_at(b"x", 0), Err(Error::BadDescriptor(_))));
        assert!(matches!(f.set_size(0), Err(Error::BadDescriptor(_))));
        // Times through a lower handle copy the file up and move the handle.
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        f.set_times(SetTime::Keep, SetTime::At(t))
            .expect("futimens");
        assert_eq!(f.stat().expect("stat").mtime, t);
        assert_eq!(
            l.stat_at(&l.root(), "etc/conf", false).expect("stat").mtime,
            t
        );
        assert_ne!(
            std::fs::metadata(fx.lower.join("etc/conf"))
                .expect("lower")
                .modified()
                .expect("mtime"),
            t
        );
    }

    #[test]
    fn unlink_and_rmdir_of_lower_nodes_leave_whiteouts() {
        let fx = fixture();
        let l = &fx.layers;
        assert!(matches!(
            l.remove_dir_at(&l.root(), "d"),
            Err(Error::NotEmpty)
        ));
        assert!(matches!(
            l.unlink_file_at(&l.root(), "d"),
            Err(Error::IsDir)
        ));
        assert!(matches!(
            l.remove_dir_at(&l.root(), "d/a"),
            Err(Error::NotDir)
        ));
        l.unlink_file_at(&l.root(), "d/a").expect("unlink");
        assert!(matches!(read(l, "d/a"), Err(Error::NotFound)));
        l.unlink_file_at(&l.root(), "d/s/t").expect("unlink");
        l.remove_dir_at(&l.root(), "d/s").expect("rmdir");
        l.remove_dir_at(&l.root(), "d")
            .expect("rmdir of a dir empty in the view");
        l.remove_dir_at(&l.root(), "empty").expect("rmdir");
        assert_eq!(names(l, "/"), ["bin", "etc", "k", "lnk"]);
        assert!(
            fx.lower.join("d/s/t").exists(),
            "the lower is never written"
        );
        // Recreated: opaque, nothing of the old lower directory shows.
        l.create_dir_at(&l.root(), "d").expect("mkdir");
        assert!(names(l, "d").is_empty());
        write(l, "d/a", "new a", false).expect("create");
        assert_eq!(names(l, "d"), ["a"]);
        assert_eq!(read(l, "d/a").expect("read"), "new a");
        // Delete then recreate a file.
        l.unlink_file_at(&l.root(), "k/l").expect("unlink");
        write(l, "k/l", "again", false).expect("recreate");
        assert_eq!(read(l, "k/l").expect("read"), "again");
        l.unlink_file_at(&l.root(), "k/l").expect("unlink again");
        assert!(
            matches!(read(l, "k/l"), Err(Error::NotFound)),
            "the whiteout still hides the lower"
        );
    }

    #[test]
    fn the_upper_survives_a_reopen() {
        let fx = fixture();
        {
            let l = &fx.layers;
            l.unlink_file_at(&l.root(), "d/a").expect("unlink");
            l.unlink_file_at(&l.root(), "k/l").expect("unlink");
            l.remove_dir_at(&l.root(), "k").expect("rmdir");
            l.create_dir_at(&l.root(), "k").expect("opaque mkdir");
            write(l, "new", "n", false).expect("create");
        }
        let again = open_view(&fx.lower, &fx.upper, UpperOptions::default());
        assert_eq!(
            names(&again, "/"),
            ["bin", "d", "empty", "etc", "k", "lnk", "new"]
        );
        assert_eq!(names(&again, "d"), ["s"]);
        assert!(names(&again, "k").is_empty());
        assert_eq!(read(&again, "new").expect("read"), "n");
    }

    /// The host entries beside the upper (in the directory holding it).
    fn beside(fx: &Fixture) -> Vec<String> {
        let dir = fx.upper.parent().expect("parent");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn an_upper_is_one_directory_until_a_part_is_needed() {
        let fx = fixture();
        let l = &fx.layers;
        write(l, "new", "n", false).expect("create");
        assert_eq!(beside(&fx), ["upper"], "a new file: the tree alone");
        let names: Vec<_> = std::fs::read_dir(&fx.upper)
            .expect("tree")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["new"], "the upper path is the guest's tree");
        let (tree, lower) = (
            std::fs::metadata(&fx.upper).expect("tree"),
            std::fs::metadata(&fx.lower).expect("lower"),
        );
        assert_eq!(tree.permissions(), lower.permissions(), "the root's mode");

        write(l, "etc/conf", "C", false).expect("copy-up");
        assert_eq!(beside(&fx), ["upper", "upper.work"]);
        assert_eq!(
            std::fs::read_dir(fx.upper.with_file_name("upper.work"))
                .expect("work")
                .count(),
            0,
            "the copy was renamed into the tree"
        );
        l.unlink_file_at(&l.root(), "d/a").expect("whiteout");
        assert_eq!(beside(&fx), ["upper", "upper.whiteouts", "upper.work"]);

        // A copy cut short by a crash: the staging area goes at the reopen.
        std::fs::write(fx.upper.with_file_name("upper.work/copy-9"), "half").expect("leftover");
        let again = open_view(&fx.lower, &fx.upper, UpperOptions::default());
        assert_eq!(beside(&fx), ["upper", "upper.whiteouts"]);
        assert_eq!(read(&again, "etc/conf").expect("read"), "Conf\n");
        assert!(matches!(read(&again, "d/a"), Err(Error::NotFound)));
        write(&again, "bin/app", "A", false).expect("a copy-up makes it again");
        assert_eq!(beside(&fx), ["upper", "upper.whiteouts", "upper.work"]);
        assert_eq!(read(&again, "bin/app").expect("read"), "App");

        crate::remove_upper(&fx.upper).expect("remove");
        assert!(beside(&fx).is_empty(), "every part removed");
        assert_eq!(fx.lower_text("bin/app"), "app");
    }

    #[test]
    fn parts_left_without_a_tree_are_removed_at_the_first_write() {
        let fx = fixture();
        let dir = fx.upper.parent().expect("parent");
        std::fs::create_dir_all(dir.join("upper.work/root")).expect("a tree never renamed in");
        std::fs::write(dir.join("upper.work/copy-1"), "half").expect("a copy");
        // A journal of an upper removed tree first, whiteout of etc/conf.
        let journal = File::options()
            .create(true)
            .append(true)
            .read(true)
            .open(dir.join("upper.whiteouts"))
            .expect("journal");
        let mut stale = Whiteouts::default();
        stale
            .record(&journal, ViewPath::parse("etc/conf").expect("path"))
            .expect("record");
        drop(journal);
        let l = open_view(&fx.lower, &fx.upper, UpperOptions::default());
        assert!(!l.has_upper());
        assert_eq!(
            read(&l, "etc/conf").expect("no tree: no whiteout"),
            "conf\n"
        );
        write(&l, "new", "n", false).expect("create");
        assert_eq!(beside(&fx), ["upper"], "the leftovers went");
        assert_eq!(read(&l, "etc/conf").expect("read"), "conf\n");
        let again = open_view(&fx.lower, &fx.upper, UpperOptions::default());
        assert_eq!(read(&again, "etc/conf").expect("read"), "conf\n");
        assert_eq!(read(&again, "new").expect("read"), "n");
    }

    #[test]
    fn an_upper_path_that_names_a_part_is_refused() {
        let fx = fixture();
        for bad in ["x.work", "x.whiteouts", "/"] {
            let dir = cap_std::fs::Dir::open_ambient_dir(&fx.lower, cap_std::ambient_authority())
                .expect("lower");
            assert!(
                matches!(
                    Layers::open(Arc::new(dir), bad, UpperOptions::default()),
                    Err(Error::Invalid)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn rename_follows_overlay2() {
        let fx = fixture();
        let l = &fx.layers;
        let root = l.root();
        assert!(matches!(
            l.rename_at(&root, "d", &root, "d2"),
            Err(Error::CrossDevice)
        ));
        assert!(matches!(
            l.rename_at(&root, "empty", &root, "e2"),
            Err(Error::CrossDevice)
        ));
        l.rename_at(&root, "d/a", &root, "a2")
            .expect("rename a lower file");
        assert!(matches!(read(l, "d/a"), Err(Error::NotFound)));
        assert_eq!(read(l, "a2").expect("read"), "a");
        l.create_dir_at(&root, "up").expect("mkdir");
        write(l, "up/f", "f", false).expect("create");
        l.rename_at(&root, "up", &root, "up2")
            .expect("rename an upper dir");
        assert_eq!(read(l, "up2/f").expect("read"), "f");
        assert!(matches!(
            l.rename_at(&root, "up2", &root, "up2/x"),
            Err(Error::Invalid)
        ));
        assert!(matches!(
            l.rename_at(&root, "up2", &root, "etc"),
            Err(Error::NotEmpty)
        ));
        assert!(matches!(
            l.rename_at(&root, "a2", &root, "etc"),
            Err(Error::IsDir)
        ));
        // Onto an empty lower directory: it becomes opaque.
        l.rename_at(&root, "up2", &root, "empty")
            .expect("rename onto an empty dir");
        assert_eq!(names(l, "empty"), ["f"]);
        // Over an existing lower file.
        l.rename_at(&root, "a2", &root, "bin/app").expect("replace");
        assert_eq!(read(l, "bin/app").expect("read"), "a");
        assert_eq!(fx.lower_text("bin/app"), "app");
    }

    #[test]
    fn a_hard_link_to_a_lower_file_links_a_copy() {
        let fx = fixture();
        let l = &fx.layers;
        let root = l.root();
        l.link_at(&root, "etc/conf", false, &root, "hard")
            .expect("link");
        write(l, "hard", "HARD", false).expect("write through the link");
        assert_eq!(read(l, "etc/conf").expect("read"), "HARD\n");
        assert_eq!(l.stat_at(&root, "hard", false).expect("stat").nlink, 2);
        assert_eq!(fx.lower_text("etc/conf"), "conf\n");
        assert!(matches!(
            l.link_at(&root, "d", false, &root, "d2"),
            Err(Error::NotPermitted)
        ));
    }

    #[test]
    fn symlinks_resolve_inside_the_view() {
        let fx = fixture();
        let l = &fx.layers;
        let root = l.root();
        l.symlink_at("/etc/conf", &root, "abs").expect("symlink");
        l.symlink_at("../../../../etc/conf", &root, "bin/rel")
            .expect("symlink");
        assert_eq!(read(l, "abs").expect("read"), "conf\n");
        assert_eq!(read(l, "bin/rel").expect("read"), "conf\n");
        assert_eq!(l.readlink_at(&root, "abs").expect("readlink"), "/etc/conf");
        assert!(matches!(l.readlink_at(&root, "etc"), Err(Error::Invalid)));
        assert_eq!(read(l, "/../../etc/conf").expect("read"), "conf\n");
        l.symlink_at("loop2", &root, "loop1").expect("symlink");
        l.symlink_at("loop1", &root, "loop2").expect("symlink");
        assert!(matches!(read(l, "loop1"), Err(Error::Loop)));
        let o = OpenOptions {
            read: true,
            ..OpenOptions::default()
        };
        assert!(
            matches!(l.open_at(&root, "abs", &o), Err(Error::Loop)),
            "no-follow open"
        );
        assert!(matches!(
            l.stat_at(&root, "etc/conf/", true),
            Err(Error::NotDir)
        ));
        let long = "x".repeat(NAME_MAX + 1);
        assert!(matches!(
            l.stat_at(&root, &long, true),
            Err(Error::NameTooLong)
        ));
        assert!(matches!(
            l.symlink_at("", &root, "empty-link"),
            Err(Error::NotFound)
        ));
    }

    #[test]
    fn times_and_mode_copy_up() {
        let fx = fixture();
        let l = &fx.layers;
        let root = l.root();
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_234_567, 89);
        l.set_times_at(&root, "d", true, SetTime::At(t), SetTime::At(t))
            .expect("utimens dir");
        assert_eq!(l.stat_at(&root, "d", true).expect("stat").mtime, t);
        let lower_app = std::fs::metadata(fx.lower.join("bin/app")).expect("lower");
        l.set_mode_at(&root, "bin/app", true, 0o700).expect("chmod");
        let st = l.stat_at(&root, "bin/app", true).expect("stat");
        assert_eq!(st.mode, 0o700);
        assert_eq!(
            st.mtime,
            lower_app.modified().expect("mtime"),
            "times copied up"
        );
        let after = std::fs::metadata(fx.lower.join("bin/app")).expect("lower");
        assert_eq!(after.permissions().mode(), lower_app.permissions().mode());
        assert!(matches!(
            l.set_mode_at(&root, "lnk", false, 0o700),
            Err(Error::NotPermitted)
        ));
        l.set_times_at(&root, "lnk", false, SetTime::Keep, SetTime::At(t))
            .expect("lutimes");
        assert_eq!(l.stat_at(&root, "lnk", false).expect("lstat").mtime, t);
        assert_eq!(read(l, "lnk").expect("still a link"), "conf\n");
    }

    #[test]
    fn the_size_limit_fails_writes_with_no_space() {
        let fx = fixture_with(UpperOptions {
            size_limit: Some(10),
        });
        let l = &fx.layers;
        write(l, "etc/conf", "12345678", false).expect("copy-up of 5 bytes grown to 8");
        assert_eq!(l.upper_usage(), 8);
        assert!(matches!(
            write(l, "big", "0123456789", false),
            Err(Error::NoSpace)
        ));
        // The file was created (no data): creating costs nothing.
        assert_eq!(read(l, "big").expect("empty file"), "");
        write(l, "small", "12", false).expect("fits");
        l.unlink_file_at(&l.root(), "small").expect("unlink frees");
        write(l, "big", "12", false).expect("fits again");
        let again = open_view(
            &fx.lower,
            &fx.upper,
            UpperOptions {
                size_limit: Some(10),
            },
        );
        assert_eq!(again.upper_usage(), 10, "the count is rebuilt on reopen");
    }

    #[test]
    fn diff_matches_docker_overlay2() {
        // The same steps as a container on dockerd 20.10 (overlay2) whose
        // `docker diff` printed: C /d, D /d/a, D /d/s, C /k, D /k/l, C /bin,
        // C /bin/app, A /new, C /etc (its only change is hidden, no line).
        let fx = fixture();
        let l = &fx.layers;
        let root = l.root();
        l.unlink_file_at(&root, "d/a").expect("unlink");
        l.unlink_file_at(&root, "d/s/t").expect("unlink");
        l.remove_dir_at(&root, "d/s").expect("rmdir");
        l.remove_dir_at(&root, "d").expect("rmdir");
        l.create_dir_at(&root, "d").expect("mkdir");
        l.unlink_file_at(&root, "k/l").expect("unlink");
        write(l, "bin/app", "x", false).expect("write");
        write(l, "new", "n", false).expect("create");
        write(l, "tmp", "n", false).expect("create");
        l.unlink_file_at(&root, "tmp").expect("unlink");
        let got: Vec<String> = l
            .changes()
            .expect("diff")
            .into_iter()
            .map(|Change { path, kind }| format!("{} {path}", kind.letter()))
            .collect();
        assert_eq!(
            got,
            [
                "C /bin",
                "C /bin/app",
                "C /d",
                "D /d/a",
                "D /d/s",
                "C /k",
                "D /k/l",
                "A /new"
            ]
        );
        let items = l.upper_layer().expect("layer");
        let whiteouts: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                LayerItem::Whiteout(p) => Some(format!("W {p}")),
                LayerItem::Opaque(p) => Some(format!("O {p}")),
                LayerItem::Node(_) => None,
            })
            .collect();
        assert_eq!(whiteouts, ["O /d", "W /k/l"]);
        let _ = ChangeKind::Added;
    }

    #[test]
    fn the_merged_tree_lists_the_view() {
        let fx = fixture();
        let l = &fx.layers;
        l.unlink_file_at(&l.root(), "d/s/t").expect("unlink");
        write(l, "d/s/u", "u", false).expect("create");
        let paths: Vec<String> = l
            .merged_tree()
            .map(|e| e.expect("entry").path.to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "/bin",
                "/bin/app",
                "/d",
                "/d/a",
                "/d/s",
                "/d/s/u",
                "/empty",
                "/etc",
                "/etc/conf",
                "/k",
                "/k/l",
                "/lnk"
            ]
        );
        let e = l
            .entry(&ViewPath::parse("/d/s/u").expect("path"))
            .expect("entry");
        let mut s = String::new();
        std::io::Read::read_to_string(&mut l.open_entry(&e).expect("open"), &mut s).expect("read");
        assert_eq!(s, "u");
        let link = l
            .entry(&ViewPath::parse("/lnk").expect("path"))
            .expect("entry");
        assert_eq!(link.link_target.as_deref(), Some(OsStr::new("etc/conf")));
        let _ = std::io::stdout().flush();
    }

    /// Host descriptors of this process that name `path` or something
    /// beside or below it (its parts): what a held view keeps open.
    fn fds_at(path: &Path) -> usize {
        let prefix = path.as_os_str().as_bytes();
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|t| t.as_os_str().as_bytes().starts_with(prefix))
            .count()
    }

    /// Every node below `root` on the host: its mode, data or target, and
    /// modification time.
    fn host_tree(root: &Path) -> std::collections::BTreeMap<PathBuf, (u32, Vec<u8>, i64)> {
        use std::os::unix::fs::MetadataExt;
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("ls") {
                let p = e.expect("entry").path();
                let m = std::fs::symlink_metadata(&p).expect("lstat");
                let data = if m.is_dir() {
                    stack.push(p.clone());
                    Vec::new()
                } else if m.is_symlink() {
                    std::fs::read_link(&p)
                        .expect("readlink")
                        .into_os_string()
                        .into_vec()
                } else {
                    std::fs::read(&p).expect("read")
                };
                out.insert(
                    p,
                    (m.mode(), data, m.mtime_nsec() + m.mtime() * 1_000_000_000),
                );
            }
        }
        out
    }

    fn lower_dir(path: &Path) -> Arc<cap_std::fs::Dir> {
        Arc::new(
            cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority()).expect("lower"),
        )
    }

    #[test]
    fn a_weakly_held_view_closes_its_descriptors_and_reopens_with_its_writes_and_count() {
        let fx = fixture_with(UpperOptions {
            size_limit: Some(1000),
        });
        write(&fx.layers, "etc/conf", "mine", true).expect("write");
        write(&fx.layers, "new", "12345", true).expect("write");
        fx.layers
            .unlink_file_at(&fx.layers.root(), "bin/app")
            .expect("rm");
        fx.layers
            .unlink_file_at(&fx.layers.root(), "d/a")
            .expect("rm");
        let used = fx.layers.upper_usage();
        assert_eq!(used, 9);
        let parent = fx.upper.parent().expect("parent").to_owned();
        assert_eq!(fds_at(&parent), 3, "tree, staging area, journal");

        let weak = fx.layers.downgrade();
        let again = weak.upgrade().expect("live while held");
        write(&again, "seen", "x", true).expect("write");
        assert_eq!(read(&fx.layers, "seen").expect("one view"), "x");
        let Opened::File(open) = again
            .open_at(
                &again.root(),
                "new",
                &OpenOptions {
                    read: true,
                    ..OpenOptions::default()
                },
            )
            .expect("open")
        else {
            panic!("a file")
        };
        let Fixture {
            _tmp,
            lower,
            upper,
            layers,
        } = fx;
        drop((layers, again));
        assert!(weak.upgrade().is_some(), "an open file holds the view");
        drop(open);
        assert!(weak.upgrade().is_none(), "nothing holds it");
        assert_eq!(fds_at(&parent), 0, "its descriptors closed");
        assert_eq!(weak.upper_path(), upper);

        let view = weak.reopen(lower_dir(&lower)).expect("reopen");
        assert_eq!(read(&view, "etc/conf").expect("copy-up"), "mine");
        assert_eq!(read(&view, "new").expect("new"), "12345");
        assert_eq!(read(&view, "seen").expect("seen"), "x");
        assert!(
            matches!(read(&view, "bin/app"), Err(Error::NotFound)),
            "whiteout kept"
        );
        assert!(
            matches!(read(&view, "d/a"), Err(Error::NotFound)),
            "whiteout kept"
        );
        assert_eq!(view.upper_usage(), used + 1, "the count carried over");
        // The same limit and count: 990 bytes fit, one more does not.
        write(&view, "fill", &"f".repeat(990), true).expect("to the limit");
        assert!(matches!(
            write(&view, "over", "o", true),
            Err(Error::NoSpace)
        ));
        // A second reopen while the view lives is that view, not another.
        let twin = weak.reopen(lower_dir(&lower)).expect("reopen");
        write(&twin, "twin", "t", false).expect_err("full");
        twin.unlink_file_at(&twin.root(), "fill").expect("rm");
        assert_eq!(view.upper_usage(), used + 1, "one count for both");
        assert!(Arc::ptr_eq(&view.inner, &twin.inner));
        drop((view, twin));
        assert_eq!(fds_at(&parent), 0);
        // A view that never wrote holds nothing either way.
        let idle = open_view(&lower, &parent.join("idle"), UpperOptions::default());
        let weak_idle = idle.downgrade();
        drop(idle);
        let idle = weak_idle.reopen(lower_dir(&lower)).expect("reopen");
        assert!(!idle.has_upper());
        assert!(!parent.join("idle").exists());
    }

    #[test]
    fn a_read_only_view_reads_and_refuses_every_change_with_erofs_in_linuxs_order() {
        let fx = fixture();
        let before = host_tree(&fx.lower);
        let ro = Layers::open_read_only(lower_dir(&fx.lower), &fx.upper).expect("view");
        assert!(ro.is_read_only());
        let root = ro.root();
        assert_eq!(read(&ro, "etc/conf").expect("read"), "conf\n");
        assert_eq!(read(&ro, "lnk").expect("through a symlink"), "conf\n");
        assert!(ro.read_dir(&root, false).expect("ls").len() > 3);
        let rofs = |r: Result<()>, what: &str| {
            assert!(matches!(r, Err(Error::ReadOnly)), "{what}: {r:?}");
        };
        let opened = |o: OpenOptions, path: &str| ro.open_at(&root, path, &o).map(|_| ());
        let w = OpenOptions {
            write: true,
            ..OpenOptions::default()
        };
        let c = OpenOptions {
            create: true,
            ..OpenOptions::default()
        };
        rofs(opened(w.clone(), "etc/conf"), "open for writing");
        rofs(
            opened(
                OpenOptions {
                    truncate: true,
                    ..w.clone()
                },
                "etc/conf",
            ),
            "truncate",
        );
        rofs(opened(c.clone(), "new"), "create");
        rofs(ro.create_dir_at(&root, "x"), "mkdir");
        rofs(ro.remove_dir_at(&root, "empty"), "rmdir");
        rofs(ro.remove_dir_at(&root, "d"), "rmdir of a full directory");
        rofs(
            ro.remove_dir_at(&root, "missing"),
            "rmdir of a missing name",
        );
        rofs(ro.unlink_file_at(&root, "bin/app"), "unlink");
        rofs(
            ro.unlink_file_at(&root, "missing"),
            "unlink of a missing name",
        );
        rofs(ro.rename_at(&root, "d/a", &root, "d/b"), "rename");
        rofs(
            ro.rename_at(&root, "missing", &root, "d/b"),
            "rename of a missing name",
        );
        rofs(ro.symlink_at("etc/conf", &root, "l2"), "symlink");
        rofs(ro.link_at(&root, "bin/app", false, &root, "l3"), "link");
        rofs(
            ro.link_at(&root, "d", false, &root, "l4"),
            "link of a directory",
        );
        rofs(ro.set_mode_at(&root, "etc/conf", false, 0o600), "chmod");
        rofs(
            ro.set_mode_at(&root, "lnk", false, 0o600),
            "chmod of a symlink",
        );
        rofs(
            ro.set_times_at(&root, "d", false, SetTime::Now, SetTime::Now),
            "utimes",
        );
        // What Linux finds before it asks the mount.
        let err = |r: Result<()>| r.expect_err("refused").errno();
        assert_eq!(err(ro.create_dir_at(&root, "etc")), Error::Exists.errno());
        assert_eq!(
            err(ro.symlink_at("x", &root, "bin/app")),
            Error::Exists.errno()
        );
        assert_eq!(
            err(opened(
                OpenOptions {
                    exclusive: true,
                    ..c.clone()
                },
                "etc/conf"
            )),
            Error::Exists.errno()
        );
        assert_eq!(err(opened(w.clone(), "missing")), Error::NotFound.errno());
        assert_eq!(err(opened(w.clone(), "etc")), Error::IsDir.errno());
        assert_eq!(
            err(ro.create_dir_at(&root, "no/x")),
            Error::NotFound.errno()
        );
        assert_eq!(
            err(ro.unlink_file_at(&root, "no/x")),
            Error::NotFound.errno()
        );
        assert_eq!(
            err(ro.set_mode_at(&root, "missing", false, 0o600)),
            Error::NotFound.errno()
        );
        assert_eq!(
            err(ro.link_at(&root, "missing", false, &root, "l5")),
            Error::NotFound.errno()
        );
        // An existing file opened with create but not write just opens.
        opened(c, "etc/conf").expect("O_CREAT of an existing file, read-only");
        // A file opened for reading changes no metadata either.
        let Opened::File(f) = ro
            .open_at(
                &root,
                "etc/conf",
                &OpenOptions {
                    read: true,
                    ..OpenOptions::default()
                },
            )
            .expect("open")
        else {
            panic!("a file")
        };
        rofs(f.set_mode(0o600), "fchmod");
        rofs(f.set_times(SetTime::Now, SetTime::Now), "futimens");
        assert!(
            matches!(f.write_at(b"x", 0), Err(Error::BadDescriptor(_))),
            "EBADF as on Linux"
        );
        assert!(!ro.has_upper());
        assert!(!fx.upper.exists(), "no upper made");
        assert!(!fx.upper.with_extension("work").exists());
        assert_eq!(host_tree(&fx.lower), before);
    }

    #[test]
    fn a_read_only_view_serves_an_upper_on_disk_as_it_is() {
        let fx = fixture();
        write(&fx.layers, "etc/conf", "mine", true).expect("write");
        fx.layers
            .unlink_file_at(&fx.layers.root(), "d/a")
            .expect("rm");
        let before = host_tree(&fx.upper);
        let Fixture {
            _tmp,
            lower,
            upper,
            layers,
        } = fx;
        drop(layers);
        let ro = Layers::open_read_only(lower_dir(&lower), &upper).expect("view");
        assert!(ro.has_upper());
        assert_eq!(read(&ro, "etc/conf").expect("the upper's"), "mine");
        assert!(matches!(read(&ro, "d/a"), Err(Error::NotFound)));
        let root = ro.root();
        assert!(matches!(
            ro.unlink_file_at(&root, "etc/conf"),
            Err(Error::ReadOnly)
        ));
        assert!(matches!(
            ro.set_mode_at(&root, "etc/conf", false, 0o600),
            Err(Error::ReadOnly)
        ));
        assert!(matches!(
            write(&ro, "etc/conf", "no", true),
            Err(Error::ReadOnly)
        ));
        assert!(matches!(
            ro.create_dir_at(&root, "etc/x"),
            Err(Error::ReadOnly)
        ));
        assert_eq!(host_tree(&upper), before);
    }
}
