//! `wrun cp`: files between an instance's rootfs and the host, with
//! `docker cp`'s rules for trailing `/` and `/.`, existing or missing
//! destinations, and `-` for a tar on stdin or stdout. The daemon reads
//! and writes the instance's side (`GET`/`PUT /containers/{id}/archive`);
//! the host side is extracted confined to the destination's directory.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use cap_std::fs::{Dir, PermissionsExt};
use clap::Args;
use hyper::Method;
use std::os::unix::fs::PermissionsExt as _;

use super::DaemonTarget;
use crate::client::Client;
use wrun_api::archive::{ContainerPathStat, PATH_STAT_HEADER};

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information); refused: an instance
    /// has no users or file owners
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy. Progress output is
    /// automatically suppressed if no terminal is attached
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// INSTANCE:SRC_PATH, or a host path, or `-` for a tar on stdin
    #[arg(value_name = "SRC")]
    pub source: String,
    /// INSTANCE:DEST_PATH, or a host path, or `-` for a tar on stdout
    #[arg(value_name = "DEST")]
    pub dest: String,
}

/// `INSTANCE:path` → (instance, path); a host path → (None, path), as the
/// docker client splits them (an absolute path or `./x:y` is the host's).
fn split(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((instance, path)) if !instance.starts_with('.') => (Some(instance), path),
        _ => (None, arg),
    }
}

pub fn run(target: &DaemonTarget, args: CpArgs) -> anyhow::Result<ExitCode> {
    let (src_instance, src) = split(&args.source);
    let (dst_instance, dst) = split(&args.dest);
    match (src_instance, dst_instance) {
        (None, None) => bail!("must specify at least one container source"),
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (Some(i), None) => from_instance(target, &args, i, src, dst),
        (None, Some(i)) => {
            if args.archive {
                bail!(
                    "-a: a wrun instance has no users or file owners (WASI has none), so there is no owner to give the files; copy without -a"
                );
            }
            to_instance(target, &args, src, i, dst)
        }
    }?;
    Ok(ExitCode::SUCCESS)
}

fn archive_path(instance: &str, path: &str) -> String {
    format!(
        "/containers/{}/archive?path={}",
        super::escape(instance),
        super::escape(path)
    )
}

/// The stat of a path of the instance (`HEAD`), `None` on a failure (as
/// the docker client, which goes on and lets the copy fail if it must),
/// but a path the daemon does not serve (a mount): that is the answer.
fn stat(client: &Client, instance: &str, path: &str) -> anyhow::Result<Option<ContainerPathStat>> {
    let mut found = None;
    let asked = client.stream_with_headers(
        Method::HEAD,
        &archive_path(instance, path),
        |h| {
            found = h
                .get(PATH_STAT_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| ContainerPathStat::from_header(v).ok());
            Ok(())
        },
        |_| Ok(()),
    );
    match asked {
        Ok(()) => Ok(found),
        Err(e)
            if e.downcast_ref::<crate::client::DaemonError>()
                .is_some_and(|d| d.status == hyper::StatusCode::NOT_IMPLEMENTED) =>
        {
            // A HEAD answer has no body: the GET says why.
            client.call(Method::GET, &archive_path(instance, path), None)?;
            Err(e)
        }
        Err(_) => Ok(None),
    }
}

/// Go's `filepath.Base` of a slash path (`/` for the root).
fn base(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return if path.is_empty() { "." } else { "/" };
    }
    t.rsplit('/').next().unwrap_or(t)
}

/// Whether the path says "the directory itself" (`dir/.`).
fn specifies_current_dir(path: &str) -> bool {
    base(path) == "."
}

/// Whether the path must name a directory (`dir/` or `dir/.`).
fn asserts_directory(path: &str) -> bool {
    path.ends_with('/') || specifies_current_dir(path)
}

/// docker's `SplitPathDirEntry`: the directory and the last name, `.`
/// kept as the name of `dir/.`.
fn split_dir_entry(path: &str) -> (String, String) {
    let cleaned = clean(path);
    let cleaned = if specifies_current_dir(path) && cleaned != "." {
        format!("{cleaned}/.")
    } else {
        cleaned
    };
    if cleaned == "/" {
        // Go's `filepath.Dir` and `filepath.Base` of the root are both `/`.
        return ("/".into(), "/".into());
    }
    match cleaned.rsplit_once('/') {
        Some(("", b)) => ("/".into(), b.into()),
        Some((d, b)) => (d.into(), b.into()),
        None => (".".into(), cleaned),
    }
}

/// Go's `filepath.Clean`.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut names: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." if names.last().is_some_and(|n| *n != "..") => {
                names.pop();
            }
            ".." if rooted => {}
            n => names.push(n),
        }
    }
    let joined = names.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The host side of a copy: where it lands, as docker's
/// `CopyInfoDestinationPath` finds it.
struct HostDest {
    path: PathBuf,
    exists: bool,
    is_dir: bool,
}

fn lstat_error(path: &Path, e: io::Error) -> anyhow::Error {
    let why = match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::NotADirectory => "not a directory".to_string(),
        _ => e.to_string(),
    };
    anyhow::anyhow!("lstat {}: {why}", path.display())
}

fn host_dest(path: &str) -> anyhow::Result<HostDest> {
    let mut path = PathBuf::from(path);
    for _ in 0..=10 {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(p) if target.is_relative() => p.join(target),
                    _ => target,
                };
            }
            Ok(m) => {
                return Ok(HostDest {
                    path,
                    exists: true,
                    is_dir: m.is_dir(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let text = path.to_string_lossy().into_owned();
                let (parent, _) = split_dir_entry(&text);
                let m = std::fs::metadata(&parent)
                    .map_err(|e| anyhow::anyhow!("stat {parent}: {}", io_words(&e)))?;
                if !m.is_dir() {
                    bail!("not a directory");
                }
                return Ok(HostDest {
                    path,
                    exists: false,
                    is_dir: false,
                });
            }
            Err(e) => return Err(lstat_error(&path, e)),
        }
    }
    bail!("too many symlinks in {}", path.display())
}

fn io_words(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::NotADirectory => "not a directory".into(),
        _ => e.to_string(),
    }
}

/// Where a tar whose top entry is named `from` is extracted, and the name
/// that entry takes there (docker's `PrepareArchiveCopy`).
fn prepare(
    src_is_dir: bool,
    dst: &HostDest,
    dst_text: &str,
) -> anyhow::Result<(PathBuf, Option<String>)> {
    let (dst_dir, dst_base) = split_dir_entry(&dst.path.to_string_lossy());
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src_is_dir {
        bail!("cannot copy directory");
    }
    if !dst.exists && !src_is_dir && asserts_directory(dst_text) {
        bail!("no such directory");
    }
    Ok((PathBuf::from(dst_dir), Some(dst_base)))
}

/// Renames the top entry `from` (and what is below it) to `to`: docker's
/// `RebaseArchiveEntries`.
fn rebase(name: &str, from: &str, to: &str) -> String {
    if from == to {
        return name.to_string();
    }
    if from == "/" {
        return format!("{to}/{}", name.trim_start_matches('/'));
    }
    match name.strip_prefix(from) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{to}{rest}"),
        _ => name.to_string(),
    }
}

/// A host path made absolute as docker's `resolveLocalPath` does, its
/// trailing `/` or `/.` kept.
fn absolute(path: &str) -> anyhow::Result<String> {
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    Ok(format!("{}/{path}", cwd.display()))
}

/// Prints docker's closing line when a terminal watches.
fn report(args: &CpArgs, bytes: u64, to: &str) {
    if !args.quiet && io::stderr().is_terminal() {
        eprintln!(
            "Successfully copied {} to {to}",
            crate::output::human_size(bytes)
        );
    }
}

fn from_instance(
    target: &DaemonTarget,
    args: &CpArgs,
    instance: &str,
    src: &str,
    dst: &str,
) -> anyhow::Result<()> {
    let dst = if dst == "-" {
        dst.to_string()
    } else {
        let dst = absolute(dst)?;
        // docker's ValidateOutputPath: the directory above must exist.
        let (parent, _) = split_dir_entry(&clean(&dst));
        if std::fs::metadata(&parent).is_err() {
            bail!("invalid output path: directory {parent:?} does not exist");
        }
        dst
    };
    let client = target.client()?;
    let mut src_path = src.to_string();
    let mut rebase_name = None;
    if args.follow_link
        && let Some(s) = stat(&client, instance, src)?
        && s.is_symlink()
    {
        let mut link = s.link_target.clone();
        if specifies_current_dir(src) && !specifies_current_dir(&link) {
            link.push_str("/.");
        }
        if src.ends_with('/') && !link.ends_with('/') {
            link.push('/');
        }
        if base(src) != base(&link) {
            rebase_name = Some(base(src).to_string());
        }
        src_path = link;
    }
    let path = archive_path(instance, &src_path);
    if dst == "-" {
        let mut out = io::BufWriter::new(io::stdout().lock());
        client.stream(Method::GET, &path, |chunk| Ok(out.write_all(chunk)?))?;
        out.flush()?;
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let mut rx = Some(rx);
    let mut extraction: Option<std::thread::JoinHandle<anyhow::Result<()>>> = None;
    let mut bytes = 0u64;
    let streamed = client.stream_with_headers(
        Method::GET,
        &path,
        |headers| {
            let stat = headers
                .get(PATH_STAT_HEADER)
                .and_then(|v| v.to_str().ok())
                .context("the daemon's answer has no path stat header")
                .and_then(|v| ContainerPathStat::from_header(v).map_err(anyhow::Error::msg))?;
            let dest = host_dest(&dst)?;
            let (dir, to) = prepare(stat.is_dir(), &dest, &dst)?;
            // The daemon names the top entry as asked (`stat.name`); it
            // goes by the destination's name, or the name -L kept.
            let to = to
                .or(rebase_name.clone())
                .unwrap_or_else(|| stat.name.clone());
            let reader = ChannelReader {
                rx: rx.take().context("the answer's headers came twice")?,
                current: Vec::new(),
                at: 0,
            };
            let from = stat.name.clone();
            extraction = Some(std::thread::spawn(move || {
                extract_on_host(&dir, &from, &to, reader)
            }));
            Ok(())
        },
        |chunk| {
            bytes += chunk.len() as u64;
            // A send fails when the extraction stopped: its error says why.
            tx.send(chunk.to_vec())
                .map_err(|_| anyhow::anyhow!("the extraction stopped"))
        },
    );
    drop(tx);
    let extracted = match extraction {
        Some(handle) => handle
            .join()
            .map_err(|_| anyhow::anyhow!("the extraction panicked"))?,
        None => Ok(()),
    };
    extracted?;
    streamed?;
    report(args, bytes, &dst);
    Ok(())
}

/// Reads the chunks of a streamed answer on the extraction's thread.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// An entry name as plain names below the extraction directory; `None`
/// for one that would leave it.
fn names_below(name: &str) -> Option<Vec<&str>> {
    let mut names = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                names.pop()?;
            }
            n => names.push(n),
        }
    }
    Some(names)
}

/// Extracts the daemon's tar into `dir` on the host, the top entry `from`
/// renamed `to`, as docker's `Untar` with `NoOverwriteDirNonDir`. Every
/// path is opened below `dir` through cap-std, which refuses to leave it
/// (also through a symlink an earlier entry made).
fn extract_on_host(dir: &Path, from: &str, to: &str, input: impl Read) -> anyhow::Result<()> {
    let root = Dir::open_ambient_dir(dir, cap_std::ambient_authority())
        .with_context(|| format!("opening {}", dir.display()))?;
    let mut archive = tar::Archive::new(input);
    let mut dirs: Vec<(PathBuf, std::time::SystemTime)> = Vec::new();
    for entry in archive.entries().context("reading the tar")? {
        let mut entry = entry.context("reading the tar")?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).context("a name in the tar is not UTF-8")?;
        let name = rebase(&name, from, to);
        let names =
            names_below(&name).with_context(|| format!("{name:?} is outside of {dir:?}"))?;
        let kind = entry.header().entry_type();
        if names.is_empty() {
            // The destination itself (`./`).
            continue;
        }
        let rel: PathBuf = names.iter().collect();
        let shown = dir.join(&rel);
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let mtime = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(entry.header().mtime().unwrap_or(0));
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            root.create_dir_all(parent)
                .with_context(|| format!("creating {}", dir.join(parent).display()))?;
        }
        let is_dir_entry = kind == tar::EntryType::Directory;
        if let Ok(m) = root.symlink_metadata(&rel) {
            if m.is_dir() && !is_dir_entry {
                bail!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    shown.display().to_string(),
                    dir.display().to_string()
                );
            }
            if !m.is_dir() && is_dir_entry {
                bail!(
                    "cannot overwrite non-directory {:?} with directory {:?}",
                    shown.display().to_string(),
                    dir.display().to_string()
                );
            }
            if !m.is_dir() {
                root.remove_file(&rel)
                    .with_context(|| format!("replacing {}", shown.display()))?;
            }
        }
        let perms = cap_std::fs::Permissions::from_mode(mode);
        match kind {
            tar::EntryType::Directory => {
                if !root.is_dir(&rel) {
                    root.create_dir(&rel)
                        .with_context(|| format!("creating {}", shown.display()))?;
                }
                root.set_permissions(&rel, perms)
                    .with_context(|| format!("setting the mode of {}", shown.display()))?;
                dirs.push((rel, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = root
                    .create(&rel)
                    .with_context(|| format!("creating {}", shown.display()))?;
                io::copy(&mut entry, &mut file)
                    .with_context(|| format!("writing {}", shown.display()))?;
                let file = file.into_std();
                file.set_permissions(std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("setting the mode of {}", shown.display()))?;
                file.set_modified(mtime)
                    .with_context(|| format!("setting the time of {}", shown.display()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target = PathBuf::from(
                    <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(target),
                );
                // cap-std refuses a target that leaves the directory; the
                // link is only made (symlinkat never follows), in the
                // parent opened below `dir`, so any target is taken.
                let parent = match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Some(p) => root.open_dir(p),
                    None => root.try_clone(),
                }
                .with_context(|| format!("opening the directory of {}", shown.display()))?;
                let last = rel.file_name().context("an entry without a name")?;
                rustix::fs::symlinkat(target.as_os_str(), &parent, last)
                    .with_context(|| format!("creating the symlink {}", shown.display()))?
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let target = rebase(&target, from, to);
                let link: PathBuf = names_below(&target)
                    .filter(|n| !n.is_empty())
                    .with_context(|| format!("invalid hardlink {target:?}"))?
                    .iter()
                    .collect();
                root.hard_link(&link, &root, &rel)
                    .with_context(|| format!("linking {}", shown.display()))?;
            }
            other => bail!(
                "{}: unhandled tar header type {}",
                shown.display(),
                other.as_byte()
            ),
        }
    }
    for (rel, mtime) in dirs.into_iter().rev() {
        if let Ok(d) = root.open_dir(&rel) {
            let _ = d.into_std_file().set_modified(mtime);
        }
    }
    Ok(())
}

/// docker's `ResolveHostSourcePath` and `CopyInfoSourcePath`: the path to
/// tar, whether it is a directory, and the name its top entry keeps.
fn host_source(path: &str, follow: bool) -> anyhow::Result<(String, bool, Option<String>)> {
    let (resolved, rebase_name) = if follow {
        let real = std::fs::canonicalize(path).map_err(|e| lstat_error(Path::new(path), e))?;
        let mut real = real.to_string_lossy().into_owned();
        if specifies_current_dir(path) && !specifies_current_dir(&real) {
            real.push_str("/.");
        }
        if path.ends_with('/') && !real.ends_with('/') {
            real.push('/');
        }
        let rebase = (base(path) != base(&real)).then(|| base(path).to_string());
        (real, rebase)
    } else {
        let (dir, name) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let dir = if dir.is_empty() { "." } else { dir };
        let real_dir = std::fs::canonicalize(dir).map_err(|e| lstat_error(Path::new(dir), e))?;
        let resolved = format!(
            "{}/{name}",
            real_dir.display().to_string().trim_end_matches('/')
        );
        let rebase =
            (path.ends_with('/') && base(path) != base(&resolved)).then(|| base(path).to_string());
        (resolved, rebase)
    };
    let m =
        std::fs::symlink_metadata(&resolved).map_err(|e| lstat_error(Path::new(&resolved), e))?;
    Ok((resolved, m.is_dir(), rebase_name))
}

/// Writes the tar of `path` (with everything below it for a directory),
/// its top entry named `top` (`.`: no top entry, the rest by their
/// relative names). Symlinks are written as symlinks.
fn write_host_tar(path: &Path, top: &str, out: impl Write) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let name_of = |rel: &Path| -> PathBuf {
        if top == "." {
            rel.to_path_buf()
        } else {
            Path::new(top).join(rel)
        }
    };
    if top != "." {
        tar.append_path_with_name(path, top)?;
    }
    if std::fs::symlink_metadata(path)?.is_dir() {
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let mut names: Vec<_> = std::fs::read_dir(path.join(&rel))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()?;
            names.sort();
            let mut subdirs = Vec::new();
            for n in names {
                let child = rel.join(&n);
                let full = path.join(&child);
                tar.append_path_with_name(&full, name_of(&child))?;
                if std::fs::symlink_metadata(&full)?.is_dir() {
                    subdirs.push(child);
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
    }
    tar.into_inner()?.flush()
}

fn to_instance(
    target: &DaemonTarget,
    args: &CpArgs,
    src: &str,
    instance: &str,
    dst: &str,
) -> anyhow::Result<()> {
    let client = target.client()?;
    let shown_dst = format!("{instance}:{dst}");
    let mut dst_path = dst.to_string();
    let mut dst_stat = stat(&client, instance, dst)?;
    if let Some(s) = dst_stat.as_ref().filter(|s| s.is_symlink()) {
        dst_path = s.link_target.clone();
        dst_stat = stat(&client, instance, &dst_path)?;
    }
    if let Some(s) = &dst_stat
        && !s.is_dir_or_regular()
    {
        bail!("destination {shown_dst:?} must be a directory or a regular file");
    }
    let (dst_exists, dst_is_dir) = (
        dst_stat.is_some(),
        dst_stat.as_ref().is_some_and(|s| s.is_dir()),
    );
    if src == "-" {
        if !dst_is_dir {
            bail!("destination {shown_dst:?} must be a directory");
        }
        if io::stdin().is_terminal() {
            bail!("cp - reads a tar from stdin: redirect it from a file or a pipe");
        }
        let path = format!(
            "{}&noOverwriteDirNonDir=true",
            archive_path(instance, &dst_path)
        );
        client.upload(Method::PUT, &path, "application/x-tar", io::stdin())?;
        return Ok(());
    }
    let src = absolute(src)?;
    let (resolved, src_is_dir, rebase_name) = host_source(&src, args.follow_link)?;
    let (_, src_base) = split_dir_entry(&resolved);
    let src_base = rebase_name.unwrap_or(src_base);
    let (dir_text, dst_base) = split_dir_entry(&dst_path);
    let (extract_to, top) = if dst_exists && dst_is_dir {
        (dst_path.clone(), src_base)
    } else if dst_exists && src_is_dir {
        bail!("cannot copy directory");
    } else if !dst_exists && !src_is_dir && asserts_directory(&dst_path) {
        bail!("no such directory");
    } else {
        (dir_text, dst_base)
    };
    let (reader, writer) = io::pipe().context("making a pipe")?;
    let source = PathBuf::from(resolved.trim_end_matches("/.").to_string());
    let source = if source.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        source
    };
    let writing = std::thread::spawn(move || write_host_tar(&source, &top, writer));
    let path = format!(
        "{}&noOverwriteDirNonDir=true",
        archive_path(instance, &extract_to)
    );
    let counted = CountingReader {
        inner: reader,
        bytes: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    };
    let bytes = std::sync::Arc::clone(&counted.bytes);
    let sent = client.upload(Method::PUT, &path, "application/x-tar", counted);
    // The client's executor holds the request, and so the pipe's reading
    // end, until it goes: after an early answer the tar's writer would wait
    // on a full pipe for ever.
    drop(client);
    let written = writing
        .join()
        .map_err(|_| anyhow::anyhow!("writing the tar panicked"))?;
    // A daemon that answers early (no such container) leaves the tar's
    // writer a broken pipe: its answer is the reason to show.
    if let (Err(w), Err(_)) = (&written, &sent)
        && w.kind() == io::ErrorKind::BrokenPipe
    {
        return sent.map(drop);
    }
    written.with_context(|| format!("reading {src}"))?;
    sent?;
    report(
        args,
        bytes.load(std::sync::atomic::Ordering::Relaxed),
        &shown_dst,
    );
    Ok(())
}

/// Counts what the upload reads, for the closing line.
struct CountingReader<R> {
    inner: R,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_the_docker_client_splits_them() {
        assert_eq!(split("c1:/etc"), (Some("c1"), "/etc"));
        assert_eq!(split("c1:"), (Some("c1"), ""));
        assert_eq!(split("/abs:x"), (None, "/abs:x"));
        assert_eq!(split("./f:x"), (None, "./f:x"));
        assert_eq!(split("plain"), (None, "plain"));
    }

    #[test]
    fn paths_split_and_rebase_as_docker_archive_does() {
        assert_eq!(split_dir_entry("/data/."), ("/data".into(), ".".into()));
        assert_eq!(split_dir_entry("/data/"), ("/".into(), "data".into()));
        assert_eq!(split_dir_entry("/"), ("/".into(), "/".into()));
        assert_eq!(split_dir_entry("x"), (".".into(), "x".into()));
        assert!(asserts_directory("d/") && asserts_directory("d/.") && !asserts_directory("d"));
        assert_eq!(rebase("./a", ".", "new"), "new/a");
        assert_eq!(rebase("data/sub", "data", "d1"), "d1/sub");
        assert_eq!(rebase("database", "data", "d1"), "database");
        assert_eq!(rebase("/data/a", "/", "r"), "r/data/a");
        assert_eq!(clean("/a/../../b/./"), "/b");
        assert!(names_below("a/../../x").is_none());
    }
}
