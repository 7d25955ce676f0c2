//! The tars of an instance's filesystem verbs, over its copy-on-write view
//! (`wrun_rootfs::Layers`): a path as dockerd names and stats it, that path
//! or the whole rootfs written as a tar (`cp` out, `export`), and a tar
//! extracted into the view (`cp` in) with dockerd's rules and refusals.
//!
//! Every access goes through the view, which resolves each name inside the
//! instance: a guest that swaps a directory for a symlink while a copy runs
//! can send the copy elsewhere in its own rootfs, never outside it.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tar::{EntryType, Header};
use wrun_api::archive::{ContainerPathStat, file_mode};
use wrun_rootfs::{
    Error as FsError, Kind, Layers, OpenOptions, Opened, SetTime, TreeEntry, ViewPath,
};

/// Why a filesystem verb failed; the router turns each into dockerd's
/// status and words (`container_fs::answer`).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The path (as asked) names nothing in the instance.
    #[error("Could not find the file {0}")]
    NotFound(String),
    /// The path cannot be looked up (a file used as a directory, a loop).
    #[error("lstat {path}: {source}")]
    Lookup {
        path: String,
        #[source]
        source: FsError,
    },
    /// A path led through more symlinks than dockerd follows (a loop).
    #[error("evalSymlinksInScope: too many links in {0}")]
    TooManyLinks(String),
    /// `PUT` into a mount given `:ro`.
    #[error("mounted volume is marked read-only")]
    ReadOnlyMount,
    /// `PUT` to a path that is not a directory.
    #[error("extraction point is not a directory")]
    NotADirectory,
    /// The tar is malformed or hostile (names out of the destination,
    /// oversized headers, entry kinds an instance cannot hold).
    #[error("Error processing tar file(exit status 1): {0}")]
    BadTar(String),
    /// The tar does not fit what is there (`noOverwriteDirNonDir`).
    #[error("Error processing tar file(exit status 1): {0}")]
    Conflict(String),
    /// The view failed (its size limit, the host disk).
    #[error("Error processing tar file(exit status 1): {what}: {source}")]
    View {
        what: String,
        #[source]
        source: FsError,
    },
}

/// Most bytes of a PAX header's records (Go's archive/tar reads at most
/// 1 MiB of them too).
const MAX_PAX: u64 = 1 << 20;
/// Most bytes of a GNU long name or link (Linux's `PATH_MAX`).
const MAX_LONG_NAME: u64 = 4096;
/// Most entries one extraction takes (as an image layer's unpacking).
const MAX_ENTRIES: u64 = 1_000_000;

/// A path as dockerd takes it: absolute, cleaned, with a trailing `/` or
/// `/.` of the request kept (`PreserveTrailingDotOrSeparator`).
pub fn container_path(path: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                names.pop();
            }
            n => names.push(n),
        }
    }
    let mut abs = format!("/{}", names.join("/"));
    let last = path.rsplit('/').next().unwrap_or("");
    if last == "." && !abs.ends_with("/.") {
        if !abs.ends_with('/') {
            abs.push('/');
        }
        abs.push('.');
    } else if path.ends_with('/') && !abs.ends_with('/') {
        abs.push('/');
    }
    abs
}

/// `/a/b` of a canonical path.
pub fn shown(path: &ViewPath) -> String {
    format!("/{}", String::from_utf8_lossy(&path.to_relative_bytes()))
}

/// A mount of the instance (a named volume or a bind) as `cp` reaches it:
/// dockerd resolves a path in the container's mount namespace, so a path
/// at or below a mount point is the mount's file. (A `--tmpfs` is no such
/// mount: dockerd 20.10 copies to and from the rootfs underneath it, and
/// so does wrun.)
pub struct Mount {
    /// Where the guest sees it.
    pub guest: ViewPath,
    /// The host directory, for writes: every name below it resolved by
    /// cap-std, which never leaves it.
    pub dir: cap_std::fs::Dir,
    /// The same directory read through the view's own confined resolution:
    /// the lower of a read-only view with no upper, so a symlink in the
    /// mount resolves inside it, as in the rootfs.
    pub read: Layers,
    /// `:ro`: `PUT` refused as dockerd refuses it.
    pub read_only: bool,
}

/// An instance's files as `cp` and `export` see them: its rootfs view
/// with its mounts over it.
pub struct Namespace {
    pub view: Layers,
    pub mounts: Vec<Mount>,
    /// The time of the mount points the view does not hold, which dockerd
    /// makes (0755) in the container's rootfs when it creates it.
    pub created: SystemTime,
}

/// A directory dockerd makes in the rootfs for a mount point (and above
/// one) the image lacks: 0755, empty, made at `created`.
fn made_dir(view: &Layers, path: &ViewPath, created: SystemTime) -> Result<TreeEntry, FsError> {
    let mut e = view.entry(&ViewPath::root())?;
    e.path = path.clone();
    e.stat.mode = 0o755;
    e.stat.size = 0;
    e.stat.mtime = created;
    e.stat.atime = created;
    e.stat.ctime = created;
    Ok(e)
}

/// Which file system of a [`Namespace`] holds a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fs {
    View,
    Mount(usize),
}

/// Most symlinks one resolution follows (dockerd's `FollowSymlinkInScope`:
/// 255; the view's own, a guest's, is Linux's 40).
const MAX_LINKS: usize = 255;

/// The names of `path` after its first `skip`, below `base`.
fn under(base: &ViewPath, path: &ViewPath, skip: usize) -> ViewPath {
    path.names()[skip..]
        .iter()
        .fold(base.clone(), |p, n| p.join(n))
}

impl Namespace {
    /// The file system `path` is in: the deepest mount at or above it, not
    /// counting mount `except`.
    fn owner_except(&self, path: &ViewPath, except: Option<usize>) -> Fs {
        self.mounts
            .iter()
            .enumerate()
            .filter(|(i, m)| Some(*i) != except && path.starts_with(&m.guest))
            .max_by_key(|(_, m)| m.guest.names().len())
            .map_or(Fs::View, |(i, _)| Fs::Mount(i))
    }

    pub fn owner(&self, path: &ViewPath) -> Fs {
        self.owner_except(path, None)
    }

    /// The file system's own view of its files.
    pub fn layers(&self, fs: Fs) -> &Layers {
        match fs {
            Fs::View => &self.view,
            Fs::Mount(i) => &self.mounts[i].read,
        }
    }

    /// Where the file system's root is in the namespace.
    fn base(&self, fs: Fs) -> ViewPath {
        match fs {
            Fs::View => ViewPath::root(),
            Fs::Mount(i) => self.mounts[i].guest.clone(),
        }
    }

    /// `path` as the file system `fs` names it.
    fn rel(&self, fs: Fs, path: &ViewPath) -> ViewPath {
        under(&ViewPath::root(), path, self.base(fs).names().len())
    }

    /// Whether a mount point is strictly below `path`.
    fn holds_mount(&self, path: &ViewPath) -> bool {
        self.mounts
            .iter()
            .any(|m| m.guest.starts_with(path) && m.guest != *path)
    }

    /// A directory dockerd would have made for a mount point (or above
    /// one) that the view does not hold: 0755, empty, made at creation.
    fn made_dir(&self, path: &ViewPath) -> Result<TreeEntry, FsError> {
        made_dir(&self.view, path, self.created)
    }

    /// The node at the canonical `path`, not followed, with the file system
    /// holding it; the entry's path is that file system's own.
    pub fn entry(&self, path: &ViewPath) -> Result<(Fs, TreeEntry), FsError> {
        let fs = self.owner(path);
        match self.layers(fs).entry(&self.rel(fs, path)) {
            Err(FsError::NotFound) if fs == Fs::View && self.holds_mount(path) => {
                Ok((Fs::View, self.made_dir(path)?))
            }
            found => found.map(|e| (fs, e)),
        }
    }

    /// Resolves the absolute `path` as dockerd's `FollowSymlinkInScope`
    /// does in the container's mount namespace: name by name, a symlink's
    /// target read and resolved again from the root (absolute) or its
    /// directory, `..` at the root staying there, a missing name taken as
    /// it is; the final name followed only with `follow_last`. Each name is
    /// looked up by the file system holding it, with its own confinement.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<ViewPath, FsError> {
        let mut todo: VecDeque<Vec<u8>> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(|c| c.as_bytes().to_vec())
            .collect();
        let mut cur = ViewPath::root();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            match &name[..] {
                b"." => continue,
                b".." => {
                    cur = cur.parent().unwrap_or_default();
                    continue;
                }
                _ => {}
            }
            let next = cur.join(std::ffi::OsStr::from_bytes(&name));
            if self.mounts.iter().any(|m| m.guest == next) {
                cur = next;
                continue;
            }
            let follow = follow_last || !todo.is_empty();
            match self.entry(&next) {
                Ok((_, e)) if follow && e.stat.kind == Kind::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(FsError::Loop);
                    }
                    let target = e.link_target.unwrap_or_default().into_vec();
                    if target.starts_with(b"/") {
                        cur = ViewPath::root();
                    }
                    for c in target.rsplit(|b| *b == b'/').filter(|c| !c.is_empty()) {
                        todo.push_front(c.to_vec());
                    }
                }
                Ok(_) | Err(FsError::NotFound) => cur = next,
                Err(e) => return Err(e),
            }
        }
        Ok(cur)
    }

    /// Calls `emit` for every node below the directory `top` (canonical),
    /// parents first, as dockerd's tar of a path walks it with the mounts in
    /// place: a mount point below `top` is the mount's root and what is in
    /// the mount, never what the file system under it holds there. `emit`
    /// gets the node's file system, its entry and its path.
    fn walk_below(
        &self,
        top: &ViewPath,
        emit: &mut dyn FnMut(&Layers, &TreeEntry, &ViewPath) -> io::Result<()>,
    ) -> io::Result<()> {
        let fs = self.owner(top);
        let layers = self.layers(fs);
        let base = self.base(fs);
        let skip = base.names().len();
        // The mounts this walk grafts: below `top`, right over `fs`.
        let grafted: Vec<usize> = (0..self.mounts.len())
            .filter(|&i| {
                let g = &self.mounts[i].guest;
                g.starts_with(top) && g != top && self.owner_except(g, Some(i)) == fs
            })
            .collect();
        let mut met = vec![false; grafted.len()];
        for e in layers.merged_tree_below(self.rel(fs, top)) {
            let e = e.map_err(io::Error::other)?;
            let path = under(&base, &e.path, 0);
            if let Some(k) = grafted.iter().position(|&i| self.mounts[i].guest == path) {
                met[k] = true;
                self.graft(grafted[k], emit)?;
            } else if !grafted
                .iter()
                .any(|&i| path.starts_with(&self.mounts[i].guest))
            {
                emit(layers, &e, &path)?;
            }
        }
        // Mount points `fs` does not hold: with the directories above them
        // it lacks too, as dockerd makes them.
        let mut made: Vec<ViewPath> = Vec::new();
        for (k, &i) in grafted.iter().enumerate() {
            if met[k] {
                continue;
            }
            let guest = &self.mounts[i].guest;
            for depth in top.names().len() + 1..guest.names().len() {
                let above = guest.names()[..depth]
                    .iter()
                    .fold(ViewPath::root(), |p, n| p.join(n));
                let held = layers
                    .entry(&under(&ViewPath::root(), &above, skip))
                    .is_ok_and(|e| e.stat.kind == Kind::Dir);
                if held || made.contains(&above) {
                    continue;
                }
                let dir = self.made_dir(&above).map_err(io::Error::other)?;
                emit(&self.view, &dir, &above)?;
                made.push(above);
            }
            self.graft(i, emit)?;
        }
        Ok(())
    }

    /// Mount `i`'s root at its mount point, then everything in it.
    fn graft(
        &self,
        i: usize,
        emit: &mut dyn FnMut(&Layers, &TreeEntry, &ViewPath) -> io::Result<()>,
    ) -> io::Result<()> {
        let m = &self.mounts[i];
        let root = m.read.entry(&ViewPath::root()).map_err(io::Error::other)?;
        emit(&m.read, &root, &m.guest)?;
        self.walk_below(&m.guest, emit)
    }
}

/// A path of the instance, found as dockerd's `ResolvePath` + `StatPath`
/// find it: the directory part resolved (symlinks followed, inside the
/// instance), the last name not followed unless a trailing `/` asks.
pub struct Located {
    /// Its canonical path in the namespace.
    pub path: ViewPath,
    /// The file system holding it, and its entry there.
    pub fs: Fs,
    pub entry: TreeEntry,
    pub stat: ContainerPathStat,
}

/// dockerd's words for a resolution that met too many symlinks, naming
/// the path it resolved (without dockerd's storage path before it).
fn too_many_links(path: &str) -> ArchiveError {
    let shown = path.trim_end_matches('/');
    let shown = shown.strip_suffix("/.").unwrap_or(shown);
    ArchiveError::TooManyLinks(if shown.is_empty() { "/" } else { shown }.to_string())
}

fn lookup_error(asked: &str, abs: &str, e: FsError) -> ArchiveError {
    match e {
        // No file can have a name with a NUL or over 255 bytes: not found
        // (dockerd fails the lstat with a 500).
        FsError::NotFound | FsError::Invalid | FsError::NameTooLong => {
            ArchiveError::NotFound(asked.to_string())
        }
        FsError::Loop => too_many_links(abs),
        e => ArchiveError::Lookup {
            path: abs.to_string(),
            source: e,
        },
    }
}

/// Finds `asked` (a path as a client sent it) in the instance.
pub fn locate(ns: &Namespace, asked: &str) -> Result<Located, ArchiveError> {
    let abs = container_path(asked);
    let (dir, base) = abs.rsplit_once('/').unwrap_or(("", &abs));
    let dir = if dir.is_empty() { "/" } else { dir };
    let parent = ns
        .resolve(dir, true)
        .map_err(|e| lookup_error(asked, dir, e))?;
    let path = match base {
        "" | "." => parent,
        name => parent.join(std::ffi::OsStr::new(name)),
    };
    let (fs, entry) = ns.entry(&path).map_err(|e| lookup_error(asked, &abs, e))?;
    // A trailing `/` or `/.` asks for a directory.
    if matches!(base, "" | ".") && entry.stat.kind != Kind::Dir {
        return Err(lookup_error(asked, &abs, FsError::NotDir));
    }
    let name = match abs.trim_end_matches('/').rsplit('/').next() {
        Some("") | None => "/".to_string(),
        Some(n) => n.to_string(),
    };
    // dockerd names where a symlink leads, resolved in the container
    // (a dangling one's target taken as it is).
    let link_target = match entry.stat.kind {
        Kind::Symlink => shown(
            &ns.resolve(&shown(&path), true)
                .map_err(|e| lookup_error(asked, &abs, e))?,
        ),
        _ => String::new(),
    };
    let stat = ContainerPathStat {
        name,
        size: i64::try_from(entry.stat.size).unwrap_or(i64::MAX),
        mode: go_mode(&entry),
        mtime: rfc3339(entry.stat.mtime),
        link_target,
    };
    Ok(Located {
        path,
        fs,
        entry,
        stat,
    })
}

fn unix_type(kind: Kind) -> u32 {
    match kind {
        Kind::File => 0o100000,
        Kind::Dir => 0o040000,
        Kind::Symlink => 0o120000,
        Kind::Fifo => 0o010000,
        Kind::Socket => 0o140000,
        Kind::CharDevice => 0o020000,
        Kind::BlockDevice => 0o060000,
        Kind::Unknown => 0,
    }
}

fn go_mode(e: &TreeEntry) -> u32 {
    file_mode::from_unix(unix_type(e.stat.kind) | (e.stat.mode & 0o7777))
}

/// RFC 3339 with nanoseconds, UTC, as Go writes a `time.Time`.
fn rfc3339(t: SystemTime) -> String {
    wrun_api::time::format(time::OffsetDateTime::from(t))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Writes tar entries of the view: GNU headers, owner 0 named `root` as
/// dockerd names it (an instance has no other owner), names verbatim
/// (long ones as GNU long-name entries), hard links as links to the first
/// name met.
pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        TarWriter {
            builder,
            links: HashMap::new(),
        }
    }

    /// Ends the tar (its two zero blocks) and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }

    fn long(&mut self, kind: EntryType, bytes: &[u8]) -> io::Result<()> {
        let mut h = Header::new_gnu();
        put_bytes(&mut h.as_old_mut().name, b"././@LongLink");
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(kind);
        let mut data = bytes.to_vec();
        data.push(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, &data[..])
    }

    /// One entry named `name` (a directory gets its trailing `/` here).
    /// A file replaced or removed since the walk met it is left out.
    pub fn append(&mut self, layers: &Layers, e: &TreeEntry, name: &[u8]) -> io::Result<()> {
        let mut h = Header::new_gnu();
        h.set_mode(e.stat.mode & 0o7777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        h.set_mtime(unix_seconds(e.stat.mtime));
        h.set_size(0);
        let mut name = name.to_vec();
        let mut link: Option<Vec<u8>> = None;
        let mut data: Option<std::fs::File> = None;
        match e.stat.kind {
            Kind::Dir => {
                h.set_entry_type(EntryType::Directory);
                if !name.ends_with(b"/") {
                    name.push(b'/');
                }
            }
            Kind::Symlink => {
                h.set_entry_type(EntryType::Symlink);
                link = Some(
                    e.link_target
                        .as_deref()
                        .map(|t| t.as_bytes().to_vec())
                        .unwrap_or_default(),
                );
            }
            Kind::File => {
                let key = (e.stat.dev, e.stat.ino);
                match self.links.get(&key) {
                    Some(first) if e.stat.nlink > 1 => {
                        h.set_entry_type(EntryType::Link);
                        link = Some(first.clone());
                    }
                    _ => {
                        let file = match layers.open_entry(e) {
                            Ok(f) => f,
                            Err(FsError::NotFound) => return Ok(()),
                            Err(err) => return Err(io::Error::other(err)),
                        };
                        if e.stat.nlink > 1 {
                            self.links.insert(key, name.clone());
                        }
                        h.set_entry_type(EntryType::Regular);
                        h.set_size(e.stat.size);
                        data = Some(file);
                    }
                }
            }
            Kind::Fifo => h.set_entry_type(EntryType::Fifo),
            // Sockets are left out, as Docker's tars do; device nodes
            // cannot be made in a view, and their numbers are not kept.
            _ => return Ok(()),
        }
        if name.len() > 100 {
            self.long(EntryType::GNULongName, &name)?;
        }
        put_bytes(&mut h.as_old_mut().name, &name);
        if let Some(link) = &link {
            if link.len() > 100 {
                self.long(EntryType::GNULongLink, link)?;
            }
            put_bytes(&mut h.as_old_mut().linkname, link);
        }
        h.set_cksum();
        match data {
            // Exactly the size the header says: a file the guest shrinks
            // meanwhile is padded with zeros, one it grows is cut.
            Some(file) => {
                let size = e.stat.size;
                let body = file.take(size).chain(io::repeat(0)).take(size);
                self.builder.append(&h, body)
            }
            None => self.builder.append(&h, io::empty()),
        }
    }
}

/// Copies as much of `bytes` as the field holds (a longer name went first
/// as a GNU long-name entry).
fn put_bytes(field: &mut [u8], bytes: &[u8]) {
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
    field[n..].fill(0);
}

/// The tar of a located path, as dockerd's `GET /containers/{id}/archive`
/// writes it: the node named `name` (the last name asked: `data`, `.`,
/// `/`), then, for a directory, everything below it as `name/rel`, the
/// mounts below it with what they hold.
pub fn write_path<W: Write>(ns: &Namespace, top: &Located, out: W) -> io::Result<W> {
    let mut tar = TarWriter::new(out);
    let name = top.stat.name.as_bytes().to_vec();
    tar.append(ns.layers(top.fs), &top.entry, &name)?;
    if top.entry.stat.kind == Kind::Dir {
        let skip = top.path.names().len();
        ns.walk_below(&top.path, &mut |layers, e, path| {
            let mut full = name.clone();
            if !full.ends_with(b"/") {
                full.push(b'/');
            }
            full.extend(relative(path, skip));
            tar.append(layers, e, &full)
        })?;
    }
    tar.finish()
}

/// The whole rootfs as `docker export` writes it: names relative to the
/// root, no entry for the root itself. As dockerd's, it holds no mount's
/// files: the view's own under a mount point, and each of the mount
/// `points` the view lacks as the empty directory dockerd makes for it
/// when the instance is `created` (a mount point inside another mount is
/// made in that mount, so not in the rootfs).
pub fn write_export<W: Write>(
    view: &Layers,
    points: &[ViewPath],
    created: SystemTime,
    out: W,
) -> io::Result<W> {
    let mut tar = TarWriter::new(out);
    for e in view.merged_tree() {
        let e = e.map_err(io::Error::other)?;
        tar.append(view, &e, &e.path.to_relative_bytes())?;
    }
    let mut made: Vec<ViewPath> = Vec::new();
    for point in points {
        if points.iter().any(|p| p != point && point.starts_with(p)) {
            continue;
        }
        for depth in 1..=point.names().len() {
            let path = point.names()[..depth]
                .iter()
                .fold(ViewPath::root(), |p, n| p.join(n));
            if made.contains(&path) || view.entry(&path).is_ok() {
                continue;
            }
            let dir = made_dir(view, &path, created).map_err(io::Error::other)?;
            tar.append(view, &dir, &path.to_relative_bytes())?;
            made.push(path);
        }
    }
    tar.finish()
}

/// `a/b` of the names of `path` after its first `skip`.
fn relative(path: &ViewPath, skip: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, n) in path.names()[skip..].iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(n.as_bytes());
    }
    out
}

/// How `PUT /containers/{id}/archive` extracts.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExtractOptions {
    /// `noOverwriteDirNonDir`: a directory may not replace a file, nor a
    /// file a directory (otherwise the old node is removed first).
    pub no_overwrite_dir_non_dir: bool,
}

/// Where a `PUT` extracts: the directory `asked` names in the instance,
/// its last symlink followed too (dockerd's `GetResourcePath`), with the
/// file system holding it. Refused, in dockerd's order: a path that is no
/// directory, then a mount given `:ro`.
pub fn extraction_point(ns: &Namespace, asked: &str) -> Result<(Fs, ViewPath), ArchiveError> {
    let abs = container_path(asked);
    let not_dir = |e: FsError| match e {
        FsError::NotDir => ArchiveError::NotADirectory,
        e => lookup_error(asked, &abs, e),
    };
    let path = ns.resolve(&abs, true).map_err(not_dir)?;
    let (fs, entry) = ns.entry(&path).map_err(not_dir)?;
    if entry.stat.kind != Kind::Dir {
        return Err(ArchiveError::NotADirectory);
    }
    if let Fs::Mount(i) = fs
        && ns.mounts[i].read_only
    {
        return Err(ArchiveError::ReadOnlyMount);
    }
    Ok((fs, path))
}

/// The file system an extracted name lands in, and the calls on it: the
/// view (paths from its root, resolved by the view), or a mount's host
/// directory (paths from it, resolved by cap-std beneath it).
#[derive(Clone, Copy)]
enum Target<'a> {
    View(&'a Layers),
    Mount(&'a Mount),
}

/// A file being written by an extraction.
enum Sink {
    View(wrun_rootfs::ViewFile),
    Host(std::fs::File),
}

impl Sink {
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize, FsError> {
        match self {
            Sink::View(f) => f.write_at(buf, offset),
            Sink::Host(f) => Ok(std::os::unix::fs::FileExt::write_at(f, buf, offset)?),
        }
    }
}

fn kind_of(t: cap_std::fs::FileType) -> Kind {
    use cap_std::fs::FileTypeExt;
    if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else if t.is_file() {
        Kind::File
    } else if t.is_fifo() {
        Kind::Fifo
    } else if t.is_socket() {
        Kind::Socket
    } else if t.is_char_device() {
        Kind::CharDevice
    } else if t.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::Unknown
    }
}

impl Target<'_> {
    /// A mount's path as cap-std takes it (`.` for its root).
    fn host(rel: &str) -> &str {
        if rel.is_empty() { "." } else { rel }
    }

    /// The mount, if it may be written.
    fn writable(m: &Mount) -> Result<&cap_std::fs::Dir, FsError> {
        if m.read_only {
            return Err(FsError::ReadOnly);
        }
        Ok(&m.dir)
    }

    fn stat(self, rel: &str, follow: bool) -> Result<Kind, FsError> {
        match self {
            Target::View(l) => Ok(l.stat_at(&l.root(), rel, follow)?.kind),
            Target::Mount(m) => {
                let meta = if follow {
                    m.dir.metadata(Self::host(rel))
                } else {
                    m.dir.symlink_metadata(Self::host(rel))
                };
                Ok(kind_of(meta?.file_type()))
            }
        }
    }

    fn mkdir(self, rel: &str) -> Result<(), FsError> {
        match self {
            Target::View(l) => l.create_dir_at(&l.root(), rel),
            Target::Mount(m) => Ok(Self::writable(m)?.create_dir(Self::host(rel))?),
        }
    }

    fn chmod(self, rel: &str, mode: u32) -> Result<(), FsError> {
        match self {
            Target::View(l) => l.set_mode_at(&l.root(), rel, false, mode),
            Target::Mount(m) => {
                use std::os::unix::fs::PermissionsExt;
                let perm =
                    cap_std::fs::Permissions::from_std(std::fs::Permissions::from_mode(mode));
                Ok(Self::writable(m)?.set_permissions(Self::host(rel), perm)?)
            }
        }
    }

    /// A new file (none may be there), open for writing.
    fn create(self, rel: &str, mode: u32) -> Result<Sink, FsError> {
        match self {
            Target::View(l) => {
                let o = OpenOptions {
                    write: true,
                    create: true,
                    exclusive: true,
                    mode: Some(mode),
                    ..OpenOptions::default()
                };
                match l.open_at(&l.root(), rel, &o)? {
                    Opened::File(f) => Ok(Sink::View(f)),
                    Opened::Dir(_) => Err(FsError::IsDir),
                }
            }
            Target::Mount(m) => {
                use cap_std::fs::OpenOptionsExt;
                let mut o = cap_std::fs::OpenOptions::new();
                o.write(true).create_new(true).mode(mode);
                let f = Self::writable(m)?.open_with(Self::host(rel), &o)?;
                Ok(Sink::Host(f.into_std()))
            }
        }
    }

    /// Sets both times of `rel` itself (a symlink not followed).
    fn set_times(self, rel: &str, t: SystemTime) -> Result<(), FsError> {
        match self {
            Target::View(l) => {
                l.set_times_at(&l.root(), rel, false, SetTime::At(t), SetTime::At(t))
            }
            Target::Mount(m) => {
                let dir = Self::writable(m)?;
                // The parent opened beneath the mount, then one name.
                let (parent, name) = match rel.rsplit_once('/') {
                    Some((p, n)) => (Some(dir.open_dir(p)?), n),
                    None => (None, Self::host(rel)),
                };
                let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                let ts = rustix::fs::Timespec {
                    tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(d.subsec_nanos()),
                };
                let times = rustix::fs::Timestamps {
                    last_access: ts,
                    last_modification: ts,
                };
                rustix::fs::utimensat(
                    parent.as_ref().unwrap_or(dir),
                    name,
                    &times,
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )?;
                Ok(())
            }
        }
    }

    fn symlink(self, target: &str, rel: &str) -> Result<(), FsError> {
        match self {
            Target::View(l) => l.symlink_at(target, &l.root(), rel),
            Target::Mount(m) => Ok(Self::writable(m)?.symlink_contents(target, rel)?),
        }
    }

    fn link(self, from: &str, rel: &str) -> Result<(), FsError> {
        match self {
            Target::View(l) => l.link_at(&l.root(), from, false, &l.root(), rel),
            Target::Mount(m) => {
                let dir = Self::writable(m)?;
                Ok(dir.hard_link(from, dir, rel)?)
            }
        }
    }

    fn unlink(self, rel: &str) -> Result<(), FsError> {
        match self {
            Target::View(l) => l.unlink_file_at(&l.root(), rel),
            Target::Mount(m) => Ok(Self::writable(m)?.remove_file(rel)?),
        }
    }

    fn rmdir(self, rel: &str) -> Result<(), FsError> {
        match self {
            Target::View(l) => l.remove_dir_at(&l.root(), rel),
            Target::Mount(m) => Ok(Self::writable(m)?.remove_dir(rel)?),
        }
    }

    fn list(self, rel: &str) -> Result<Vec<String>, FsError> {
        let names: Vec<std::ffi::OsString> = match self {
            Target::View(l) => {
                let o = OpenOptions {
                    directory: true,
                    ..OpenOptions::default()
                };
                let Opened::Dir(here) = l.open_at(&l.root(), rel, &o)? else {
                    return Err(FsError::NotDir);
                };
                l.read_dir(&here, false)?
                    .into_iter()
                    .map(|e| e.name)
                    .collect()
            }
            Target::Mount(m) => {
                let mut out = Vec::new();
                for e in m.dir.read_dir(Self::host(rel))? {
                    out.push(e?.file_name());
                }
                out
            }
        };
        names
            .into_iter()
            .map(|n| n.into_string().map_err(|_| FsError::Invalid))
            .collect()
    }

    /// Removes `rel` and, for a directory, everything in it, without
    /// recursion (a guest may have made a very deep tree).
    fn remove_all(self, rel: &str) -> Result<(), FsError> {
        let mut stack: Vec<(String, bool)> = vec![(rel.to_string(), false)];
        while let Some((path, listed)) = stack.pop() {
            let kind = match self.stat(&path, false) {
                Ok(k) => k,
                Err(FsError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            if kind != Kind::Dir {
                self.unlink(&path)?;
            } else if listed {
                self.rmdir(&path)?;
            } else {
                stack.push((path.clone(), true));
                for name in self.list(&path)? {
                    stack.push((format!("{path}/{name}"), false));
                }
            }
        }
        Ok(())
    }
}

/// The path of `names` from the root.
fn path_of(names: &[String]) -> ViewPath {
    names
        .iter()
        .fold(ViewPath::root(), |p, n| p.join(std::ffi::OsStr::new(n)))
}

impl Namespace {
    /// Where the name `names` (from the root) is written: its file system
    /// and its path there.
    fn target(&self, names: &[String]) -> (Target<'_>, String) {
        match self.owner(&path_of(names)) {
            Fs::View => (Target::View(&self.view), names.join("/")),
            Fs::Mount(i) => {
                let m = &self.mounts[i];
                let skip = m.guest.names().len();
                (Target::Mount(m), names[skip..].join("/"))
            }
        }
    }
}

/// Extended header records the extraction honours.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    mtime: Option<SystemTime>,
}

fn bad(message: impl Into<String>) -> ArchiveError {
    ArchiveError::BadTar(message.into())
}

/// Reads an extension entry's data, refusing more than `cap` bytes before
/// reading any of it.
fn read_capped(
    entry: &mut impl Read,
    size: u64,
    cap: u64,
    what: &str,
) -> Result<Vec<u8>, ArchiveError> {
    if size > cap {
        return Err(bad(format!(
            "a {what} of {size} bytes (at most {cap} are taken)"
        )));
    }
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry
        .take(cap)
        .read_to_end(&mut data)
        .map_err(|e| bad(format!("reading a {what}: {e}")))?;
    Ok(data)
}

/// The records of a PAX header (`LEN key=value\n` each).
fn parse_pax(data: &[u8]) -> Result<Pax, ArchiveError> {
    let mut pax = Pax::default();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad("malformed PAX header record"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|l| *l > space + 1 && *l <= rest.len())
            .ok_or_else(|| bad("malformed PAX header record length"))?;
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| bad("malformed PAX header record"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"mtime" => {
                let secs = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.split('.').next()?.parse::<u64>().ok());
                pax.mtime = secs.map(|s| UNIX_EPOCH + Duration::from_secs(s));
            }
            b"size" => {
                return Err(bad("a PAX size record (entries over 8 GiB are not taken)"));
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(pax)
}

/// An entry's name as names below the destination; `..` that would leave
/// it is dockerd's breakout error. A rooted name starts at the destination.
fn entry_names(name: &str, dest: &str) -> Result<Vec<String>, ArchiveError> {
    let mut names: Vec<String> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." if names.pop().is_some() => {}
            ".." if name.starts_with('/') => {}
            ".." => return Err(bad(format!("{name:?} is outside of {dest:?}"))),
            n => names.push(n.to_string()),
        }
    }
    Ok(names)
}

/// A link's target as names from the root, lexically from `base`.
fn lexical(base: &[String], target: &str) -> Vec<String> {
    let mut names = base.to_vec();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                names.pop();
            }
            n => names.push(n.to_string()),
        }
    }
    names
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, ArchiveError> {
    String::from_utf8(bytes).map_err(|e| {
        bad(format!(
            "a {what} that is not UTF-8: {:?}",
            String::from_utf8_lossy(e.as_bytes())
        ))
    })
}

/// Extracts a tar into the directory `dest` (canonical) of the instance,
/// as dockerd's `Unpack` does in the container's root with its mounts in
/// place (each name written in the view or the mount it is in): missing
/// parents made (0755), an existing node replaced unless both are
/// directories, directories' times set last. Refused: names out of
/// `dest`, symlinks and hard links whose target leaves it, a hard link
/// across two file systems, a mount point replaced, device and FIFO
/// entries (a view holds none), PAX and long-name headers over their caps,
/// more than [`MAX_ENTRIES`] entries.
pub fn extract(
    ns: &Namespace,
    dest: &ViewPath,
    input: impl Read,
    options: ExtractOptions,
) -> Result<(), ArchiveError> {
    let dest_shown = shown(dest);
    let dest_names: Vec<String> = dest
        .names()
        .iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let view_err = |what: String| move |source: FsError| ArchiveError::View { what, source };
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("reading the tar: {e}")))?
        .raw(true);
    let (mut long_name, mut long_link, mut pax): (Option<Vec<u8>>, Option<Vec<u8>>, Pax) =
        (None, None, Pax::default());
    let mut dirs: Vec<(Vec<String>, SystemTime)> = Vec::new();
    let mut count = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("reading the tar: {e}")))?;
        let kind = entry.header().entry_type();
        let size = entry
            .header()
            .entry_size()
            .map_err(|e| bad(e.to_string()))?;
        match kind {
            EntryType::GNULongName => {
                let mut n = read_capped(&mut entry, size, MAX_LONG_NAME + 1, "long name")?;
                n.retain(|b| *b != 0);
                long_name = Some(n);
                continue;
            }
            EntryType::GNULongLink => {
                let mut n = read_capped(&mut entry, size, MAX_LONG_NAME + 1, "long link name")?;
                n.retain(|b| *b != 0);
                long_link = Some(n);
                continue;
            }
            EntryType::XHeader => {
                pax = parse_pax(&read_capped(&mut entry, size, MAX_PAX, "PAX header")?)?;
                continue;
            }
            EntryType::XGlobalHeader => {
                // dockerd ignores global headers too.
                read_capped(&mut entry, size, MAX_PAX, "PAX global header")?;
                continue;
            }
            _ => {}
        }
        count += 1;
        if count > MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let raw_name = match (pax.path.take(), long_name.take()) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => entry.path_bytes().into_owned(),
        };
        let raw_link = match (pax.linkpath.take(), long_link.take()) {
            (Some(p), _) | (None, Some(p)) => Some(p),
            (None, None) => entry.link_name_bytes().map(|l| l.into_owned()),
        };
        let mtime = pax.mtime.take().unwrap_or_else(|| {
            UNIX_EPOCH + Duration::from_secs(entry.header().mtime().unwrap_or(0))
        });
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let name = utf8(raw_name, "name")?;
        let names = entry_names(&name, &dest_shown)?;
        let Some((last, parents)) = names.split_last() else {
            // The destination itself (`./`): dockerd skips a directory.
            if kind == EntryType::Directory {
                continue;
            }
            return Err(bad(format!("{name:?} names the extraction point itself")));
        };
        let mut all = dest_names.clone();
        all.extend(names.iter().cloned());
        let full = format!("/{}", all.join("/"));
        let _ = last;
        // Missing parents are made, as dockerd's MkdirAll (0755).
        for i in 1..=parents.len() {
            let (at, p) = ns.target(&all[..dest_names.len() + i]);
            match at.stat(&p, true) {
                Ok(_) => {}
                // Above a mount point: dockerd made it at create.
                Err(FsError::NotFound)
                    if ns.holds_mount(&path_of(&all[..dest_names.len() + i])) => {}
                Err(FsError::NotFound) => {
                    at.mkdir(&p).map_err(view_err(format!("mkdir {full}")))?;
                    at.chmod(&p, 0o755)
                        .map_err(view_err(format!("chmod {full}")))?;
                }
                Err(e) => return Err(view_err(format!("lstat {full}"))(e)),
            }
        }
        let (at, rel) = ns.target(&all);
        let is_dir_entry = kind == EntryType::Directory;
        if rel.is_empty() && matches!(at, Target::Mount(_)) && !is_dir_entry {
            // The kernel's answer to replacing a mount point.
            return Err(ArchiveError::Conflict(format!(
                "unlinkat {full}: device or resource busy"
            )));
        }
        match at.stat(&rel, false) {
            Ok(st) => {
                let is_dir = st == Kind::Dir;
                if options.no_overwrite_dir_non_dir && is_dir && !is_dir_entry {
                    return Err(ArchiveError::Conflict(format!(
                        "cannot overwrite directory {full:?} with non-directory {dest_shown:?}"
                    )));
                }
                if options.no_overwrite_dir_non_dir && !is_dir && is_dir_entry {
                    return Err(ArchiveError::Conflict(format!(
                        "cannot overwrite non-directory {full:?} with directory {dest_shown:?}"
                    )));
                }
                if !(is_dir && is_dir_entry) {
                    at.remove_all(&rel)
                        .map_err(view_err(format!("remove {full}")))?;
                }
            }
            Err(FsError::NotFound) => {}
            Err(e) => return Err(view_err(format!("lstat {full}"))(e)),
        }
        let times = || {
            at.set_times(&rel, mtime)
                .map_err(view_err(format!("chtimes {full}")))
        };
        match kind {
            EntryType::Directory => {
                if !at.stat(&rel, false).is_ok_and(|k| k == Kind::Dir) {
                    at.mkdir(&rel).map_err(view_err(format!("mkdir {full}")))?;
                }
                at.chmod(&rel, mode)
                    .map_err(view_err(format!("chmod {full}")))?;
                dirs.push((all, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let file = at
                    .create(&rel, mode)
                    .map_err(view_err(format!("open {full}")))?;
                let mut buf = vec![0u8; 64 * 1024];
                let mut offset = 0u64;
                loop {
                    let n = entry
                        .read(&mut buf)
                        .map_err(|e| bad(format!("reading {name:?}: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    let mut done = 0;
                    while done < n {
                        let w = file
                            .write_at(&buf[done..n], offset)
                            .map_err(view_err(format!("write {full}")))?;
                        if w == 0 {
                            return Err(view_err(format!("write {full}"))(FsError::NoSpace));
                        }
                        done += w;
                        offset += w as u64;
                    }
                }
                drop(file);
                at.chmod(&rel, mode)
                    .map_err(view_err(format!("chmod {full}")))?;
                times()?;
            }
            EntryType::Symlink => {
                let target = utf8(raw_link.unwrap_or_default(), "symlink target")?;
                let mut base = dest_names.clone();
                base.extend(parents.iter().cloned());
                if !lexical(&base, &target).starts_with(&dest_names) {
                    return Err(bad(format!("invalid symlink {full:?} -> {target:?}")));
                }
                at.symlink(&target, &rel)
                    .map_err(view_err(format!("symlink {full}")))?;
                times()?;
            }
            EntryType::Link => {
                let target = utf8(raw_link.unwrap_or_default(), "hard link target")?;
                let to = lexical(&dest_names, &target);
                if !to.starts_with(&dest_names) || to.len() == dest_names.len() {
                    return Err(bad(format!("invalid hardlink {full:?} -> {target:?}")));
                }
                // Both names in one file system, as link(2) wants.
                let (from_at, from) = ns.target(&to);
                match (from_at, at) {
                    (Target::View(_), Target::View(_)) => {}
                    (Target::Mount(a), Target::Mount(b)) if std::ptr::eq(a, b) => {}
                    _ => return Err(view_err(format!("link {full}"))(FsError::CrossDevice)),
                }
                at.link(&from, &rel)
                    .map_err(view_err(format!("link {full}")))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(bad(format!(
                    "{name:?}: an instance's rootfs holds no device or FIFO nodes (WASI has none)"
                )));
            }
            other => {
                return Err(bad(format!(
                    "unhandled tar header type {}",
                    other.as_byte()
                )));
            }
        }
    }
    for (all, mtime) in dirs.into_iter().rev() {
        let (at, rel) = ns.target(&all);
        match at.set_times(&rel, mtime) {
            Ok(()) | Err(FsError::NotFound) => {}
            Err(e) => return Err(view_err(format!("chtimes /{}", all.join("/")))(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_dockerd_cleans_them() {
        for (asked, abs) in [
            ("/data", "/data"),
            ("data", "/data"),
            ("/data/", "/data/"),
            ("/data/.", "/data/."),
            ("/data/sub/..", "/data"),
            ("/", "/"),
            ("/.", "/."),
            ("../../etc", "/etc"),
            ("/a//b/./c/", "/a/b/c/"),
        ] {
            assert_eq!(container_path(asked), abs, "{asked}");
        }
    }

    #[test]
    fn entry_names_stay_below_the_destination() {
        assert_eq!(entry_names("./a/b", "/d").unwrap(), ["a", "b"]);
        assert_eq!(entry_names("/../../x", "/d").unwrap(), ["x"]);
        assert_eq!(entry_names("a/../b", "/d").unwrap(), ["b"]);
        let e = entry_names("a/../../x", "/d").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"Error processing tar file(exit status 1): "a/../../x" is outside of "/d""#
        );
        assert!(entry_names("./", "/d").unwrap().is_empty());
    }

    /// A view over `lower/` (`/etc/motd`, `/loop -> /loop`) and a mount of
    /// `vol/` at `/mnt/vol` (`sub/f`, `abs -> /etc`): `/mnt` is in neither.
    fn namespace(tmp: &std::path::Path) -> Namespace {
        use std::sync::Arc;
        let (lower, vol) = (tmp.join("lower"), tmp.join("vol"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/motd"), "image").unwrap();
        std::os::unix::fs::symlink("/loop", lower.join("loop")).unwrap();
        std::fs::create_dir_all(vol.join("sub")).unwrap();
        std::fs::write(vol.join("sub/f"), "v").unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("abs")).unwrap();
        let open = |p: &std::path::Path| {
            cap_std::fs::Dir::open_ambient_dir(p, cap_std::ambient_authority()).unwrap()
        };
        let layers = |lower: &std::path::Path, upper: &str| {
            let upper = tmp.join("layers").join(upper);
            Layers::open_read_only(Arc::new(open(lower)), upper).unwrap()
        };
        Namespace {
            view: layers(&lower, "up"),
            mounts: vec![Mount {
                guest: ViewPath::parse("/mnt/vol").unwrap(),
                dir: open(&vol),
                read: layers(&vol, "never"),
                read_only: false,
            }],
            created: UNIX_EPOCH,
        }
    }

    fn names_of(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn the_namespace_resolves_walks_and_extracts_through_a_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let ns = namespace(tmp.path());
        // A symlink in the mount resolves from the instance's root.
        let p = ns.resolve("/mnt/vol/abs/motd", false).unwrap();
        assert_eq!(shown(&p), "/etc/motd");
        assert_eq!(ns.entry(&p).unwrap().0, Fs::View);
        let f = locate(&ns, "/mnt/vol/sub/f").unwrap();
        assert_eq!((f.fs, f.entry.stat.size), (Fs::Mount(0), 1));
        assert_eq!(locate(&ns, "/mnt").unwrap().entry.stat.kind, Kind::Dir);
        // A loop: dockerd's words, naming the directory resolved.
        let e = locate(&ns, "/loop/x").err().unwrap();
        assert_eq!(
            e.to_string(),
            "evalSymlinksInScope: too many links in /loop"
        );
        // cp of / holds the mount's files; export only its mount point.
        let top = locate(&ns, "/").unwrap();
        let names = names_of(&write_path(&ns, &top, Vec::new()).unwrap());
        for n in [
            "/mnt/",
            "/mnt/vol/",
            "/mnt/vol/sub/f",
            "/mnt/vol/abs",
            "/etc/motd",
        ] {
            assert!(names.contains(&n.to_string()), "{n} not in {names:?}");
        }
        let points = [ns.mounts[0].guest.clone()];
        let names = names_of(&write_export(&ns.view, &points, UNIX_EPOCH, Vec::new()).unwrap());
        assert!(names.contains(&"mnt/vol/".to_string()), "{names:?}");
        assert!(
            !names.iter().any(|n| n.starts_with("mnt/vol/s")),
            "{names:?}"
        );
        // A tar put at / lands in the mount; nothing is made in the view.
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "mnt/vol/new", &b"new"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let (fs, dest) = extraction_point(&ns, "/").unwrap();
        assert_eq!(fs, Fs::View);
        extract(&ns, &dest, &tar[..], ExtractOptions::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("vol/new")).unwrap(),
            "new"
        );
        assert!(!ns.view.has_upper());
    }

    #[test]
    fn pax_records_are_read_and_a_size_is_refused() {
        let pax = parse_pax(b"18 path=a/long/na\n13 mtime=1.5\n").unwrap();
        assert_eq!(pax.path.as_deref(), Some(&b"a/long/na"[..]));
        assert_eq!(pax.mtime, Some(UNIX_EPOCH + Duration::from_secs(1)));
        assert!(parse_pax(b"16 size=9999999\n").is_err());
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"path=x\n").is_err());
    }
}
