//! The tars of an instance's filesystem verbs, over its copy-on-write view
//! (`wrun_rootfs::Layers`): a path as dockerd names and stats it, that path
//! or the whole rootfs written as a tar (`cp` out, `export`), and a tar
//! extracted into the view (`cp` in) with dockerd's rules and refusals.
//!
//! Every access goes through the view, which resolves each name inside the
//! instance: a guest that swaps a directory for a symlink while a copy runs
//! can send the copy elsewhere in its own rootfs, never outside it.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tar::{EntryType, Header};
use wrun_api::archive::{ContainerPathStat, file_mode};
use wrun_rootfs::{
    Error as FsError, Kind, Layers, OpenOptions, Opened, SetTime, TreeEntry, ViewDir, ViewPath,
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

/// A path of the instance, found as dockerd's `ResolvePath` + `StatPath`
/// find it: the directory part resolved (symlinks followed, inside the
/// view), the last name not followed unless a trailing `/` asks.
pub struct Located {
    pub entry: TreeEntry,
    pub stat: ContainerPathStat,
}

fn lookup_error(asked: &str, abs: &str, e: FsError) -> ArchiveError {
    match e {
        // No file can have a name with a NUL or over 255 bytes: not found
        // (dockerd fails the lstat with a 500).
        FsError::NotFound | FsError::Invalid | FsError::NameTooLong => {
            ArchiveError::NotFound(asked.to_string())
        }
        e => ArchiveError::Lookup {
            path: abs.to_string(),
            source: e,
        },
    }
}

/// Opens the directory `path` names from the root, symlinks followed.
fn open_dir(layers: &Layers, path: &str) -> Result<ViewDir, FsError> {
    let o = OpenOptions {
        directory: true,
        follow: true,
        ..OpenOptions::default()
    };
    match layers.open_at(&layers.root(), path, &o)? {
        Opened::Dir(d) => Ok(d),
        Opened::File(_) => Err(FsError::NotDir),
    }
}

/// Finds `asked` (a path as a client sent it) in the view.
pub fn locate(layers: &Layers, asked: &str) -> Result<Located, ArchiveError> {
    let abs = container_path(asked);
    let (dir, base) = abs.rsplit_once('/').unwrap_or(("", &abs));
    let dir = if dir.is_empty() { "/" } else { dir };
    let parent = open_dir(layers, dir).map_err(|e| lookup_error(asked, &abs, e))?;
    let path = match base {
        "" | "." => parent.path().clone(),
        name => parent.path().join(std::ffi::OsStr::new(name)),
    };
    let entry = layers
        .entry(&path)
        .map_err(|e| lookup_error(asked, &abs, e))?;
    let name = match abs.trim_end_matches('/').rsplit('/').next() {
        Some("") | None => "/".to_string(),
        Some(n) => n.to_string(),
    };
    let link_target = match entry.stat.kind {
        Kind::Symlink => link_target(layers, &path, &entry),
        _ => String::new(),
    };
    let stat = ContainerPathStat {
        name,
        size: i64::try_from(entry.stat.size).unwrap_or(i64::MAX),
        mode: go_mode(&entry),
        mtime: rfc3339(entry.stat.mtime),
        link_target,
    };
    Ok(Located { entry, stat })
}

/// Where a symlink leads, resolved inside the view (dockerd's
/// `FollowSymlinkInScope`), absolute; for a dangling link, its target
/// taken lexically from the link's directory.
fn link_target(layers: &Layers, path: &ViewPath, entry: &TreeEntry) -> String {
    let o = OpenOptions {
        follow: true,
        ..OpenOptions::default()
    };
    match layers.open_at(&layers.root(), &shown(path), &o) {
        Ok(Opened::Dir(d)) => shown(d.path()),
        Ok(Opened::File(f)) => shown(f.path()),
        Err(_) => {
            let target = entry
                .link_target
                .as_deref()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let base: Vec<String> = if target.starts_with('/') {
                Vec::new()
            } else {
                path.parent()
                    .unwrap_or_default()
                    .names()
                    .iter()
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect()
            };
            format!("/{}", lexical(&base, &target).join("/"))
        }
    }
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

/// Writes tar entries of the view: GNU headers, owner 0, names verbatim
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
/// `/`), then, for a directory, everything below it as `name/rel`.
pub fn write_path<W: Write>(layers: &Layers, top: &Located, out: W) -> io::Result<W> {
    let mut tar = TarWriter::new(out);
    let name = top.stat.name.as_bytes().to_vec();
    tar.append(layers, &top.entry, &name)?;
    if top.entry.stat.kind == Kind::Dir {
        let skip = top.entry.path.names().len();
        for e in layers.merged_tree_below(top.entry.path.clone()) {
            let e = e.map_err(io::Error::other)?;
            let mut full = name.clone();
            if !full.ends_with(b"/") {
                full.push(b'/');
            }
            full.extend(relative(&e.path, skip));
            tar.append(layers, &e, &full)?;
        }
    }
    tar.finish()
}

/// The whole merged rootfs as `docker export` writes it: names relative
/// to the root, no entry for the root itself.
pub fn write_export<W: Write>(layers: &Layers, out: W) -> io::Result<W> {
    let mut tar = TarWriter::new(out);
    for e in layers.merged_tree() {
        let e = e.map_err(io::Error::other)?;
        tar.append(layers, &e, &e.path.to_relative_bytes())?;
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

/// Where a `PUT` extracts: the directory `asked` names, its last symlink
/// followed too (dockerd's `GetResourcePath`).
pub fn extraction_point(layers: &Layers, asked: &str) -> Result<ViewDir, ArchiveError> {
    let abs = container_path(asked);
    match layers.stat_at(&layers.root(), &abs, true) {
        Ok(st) if st.kind == Kind::Dir => {}
        Ok(_) | Err(FsError::NotDir) => return Err(ArchiveError::NotADirectory),
        Err(e) => return Err(lookup_error(asked, &abs, e)),
    }
    open_dir(layers, &abs).map_err(|e| match e {
        FsError::NotDir => ArchiveError::NotADirectory,
        e => lookup_error(asked, &abs, e),
    })
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

/// Extracts a tar into the directory `dest` of the view, as dockerd's
/// `Unpack` does in the container's root: missing parents made (0755), an
/// existing node replaced unless both are directories, directories' times
/// set last. Refused: names out of `dest`, symlinks and hard links whose
/// target leaves it, device and FIFO entries (a view holds none), PAX and
/// long-name headers over their caps, more than [`MAX_ENTRIES`] entries.
pub fn extract(
    layers: &Layers,
    dest: &ViewDir,
    input: impl Read,
    options: ExtractOptions,
) -> Result<(), ArchiveError> {
    let dest_shown = shown(dest.path());
    let dest_names: Vec<String> = dest
        .path()
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
    let mut dirs: Vec<(String, SystemTime)> = Vec::new();
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
        let rel = names.join("/");
        let full = if dest_shown == "/" {
            format!("/{rel}")
        } else {
            format!("{dest_shown}/{rel}")
        };
        let _ = last;
        // Missing parents are made, as dockerd's MkdirAll (0755).
        for i in 1..=parents.len() {
            let p = parents[..i].join("/");
            match layers.stat_at(dest, &p, true) {
                Ok(_) => {}
                Err(FsError::NotFound) => {
                    layers
                        .create_dir_at(dest, &p)
                        .map_err(view_err(format!("mkdir {full}")))?;
                    layers
                        .set_mode_at(dest, &p, false, 0o755)
                        .map_err(view_err(format!("chmod {full}")))?;
                }
                Err(e) => return Err(view_err(format!("lstat {full}"))(e)),
            }
        }
        let is_dir_entry = kind == EntryType::Directory;
        match layers.stat_at(dest, &rel, false) {
            Ok(st) => {
                let is_dir = st.kind == Kind::Dir;
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
                    remove_all(layers, dest, &rel).map_err(view_err(format!("remove {full}")))?;
                }
            }
            Err(FsError::NotFound) => {}
            Err(e) => return Err(view_err(format!("lstat {full}"))(e)),
        }
        let times = |layers: &Layers| {
            layers
                .set_times_at(dest, &rel, false, SetTime::At(mtime), SetTime::At(mtime))
                .map_err(view_err(format!("chtimes {full}")))
        };
        match kind {
            EntryType::Directory => {
                if !layers
                    .stat_at(dest, &rel, false)
                    .is_ok_and(|s| s.kind == Kind::Dir)
                {
                    layers
                        .create_dir_at(dest, &rel)
                        .map_err(view_err(format!("mkdir {full}")))?;
                }
                layers
                    .set_mode_at(dest, &rel, false, mode)
                    .map_err(view_err(format!("chmod {full}")))?;
                dirs.push((rel, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let o = OpenOptions {
                    write: true,
                    create: true,
                    exclusive: true,
                    mode: Some(mode),
                    ..OpenOptions::default()
                };
                let Opened::File(file) = layers
                    .open_at(dest, &rel, &o)
                    .map_err(view_err(format!("open {full}")))?
                else {
                    return Err(view_err(format!("open {full}"))(FsError::IsDir));
                };
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
                layers
                    .set_mode_at(dest, &rel, false, mode)
                    .map_err(view_err(format!("chmod {full}")))?;
                times(layers)?;
            }
            EntryType::Symlink => {
                let target = utf8(raw_link.unwrap_or_default(), "symlink target")?;
                let mut base = dest_names.clone();
                base.extend(parents.iter().cloned());
                if !lexical(&base, &target).starts_with(&dest_names) {
                    return Err(bad(format!("invalid symlink {full:?} -> {target:?}")));
                }
                layers
                    .symlink_at(&target, dest, &rel)
                    .map_err(view_err(format!("symlink {full}")))?;
                times(layers)?;
            }
            EntryType::Link => {
                let target = utf8(raw_link.unwrap_or_default(), "hard link target")?;
                let to = lexical(&dest_names, &target);
                if !to.starts_with(&dest_names) || to.len() == dest_names.len() {
                    return Err(bad(format!("invalid hardlink {full:?} -> {target:?}")));
                }
                let from = to[dest_names.len()..].join("/");
                layers
                    .link_at(dest, &from, false, dest, &rel)
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
    for (rel, mtime) in dirs.into_iter().rev() {
        match layers.set_times_at(dest, &rel, false, SetTime::At(mtime), SetTime::At(mtime)) {
            Ok(()) | Err(FsError::NotFound) => {}
            Err(e) => return Err(view_err(format!("chtimes {rel}"))(e)),
        }
    }
    Ok(())
}

/// Removes `rel` (below `dir`) and, for a directory, everything in it,
/// without recursion (a guest may have made a very deep tree).
fn remove_all(layers: &Layers, dir: &ViewDir, rel: &str) -> Result<(), FsError> {
    let mut stack: Vec<(String, bool)> = vec![(rel.to_string(), false)];
    while let Some((path, listed)) = stack.pop() {
        let st = match layers.stat_at(dir, &path, false) {
            Ok(st) => st,
            Err(FsError::NotFound) => continue,
            Err(e) => return Err(e),
        };
        if st.kind != Kind::Dir {
            layers.unlink_file_at(dir, &path)?;
            continue;
        }
        if listed {
            layers.remove_dir_at(dir, &path)?;
            continue;
        }
        let here = match layers.open_at(
            dir,
            &path,
            &OpenOptions {
                directory: true,
                ..OpenOptions::default()
            },
        )? {
            Opened::Dir(d) => d,
            Opened::File(_) => return Err(FsError::NotDir),
        };
        stack.push((path.clone(), true));
        for e in layers.read_dir(&here, false)? {
            let name = e.name.to_str().ok_or(FsError::Invalid)?;
            stack.push((format!("{path}/{name}"), false));
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
