//! Applying layer tars to a rootfs directory, confined to it: every path is
//! checked lexically, then opened through a cap-std `Dir` that refuses to
//! leave the root even through symlinks planted by earlier entries.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use cap_fs_ext::{DirExt, SystemTimeSpec};
use cap_std::fs::{Dir, Permissions, PermissionsExt};

use crate::digest::{Digest, HashingReader, LimitedReader};
use crate::error::{ImageError, IoContext, Result, is_disk_error};

/// Caps on what one image's layers may contain. Exceeding any of them fails
/// the operation; the partial rootfs lives in a temp area that is removed.
#[derive(Clone, Debug)]
pub struct UnpackLimits {
    /// Uncompressed bytes over all layers of an image.
    pub max_bytes: u64,
    /// Entries over all layers of an image.
    pub max_entries: u64,
    /// Path components of one entry.
    pub max_depth: usize,
    /// Bytes of one entry's path.
    pub max_path_len: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 16 << 30,
            max_entries: 1_000_000,
            max_depth: 64,
            max_path_len: 4096,
        }
    }
}

/// What unpacking one layer measured.
#[derive(Clone, Copy, Debug)]
pub struct LayerStats {
    /// Digest of the uncompressed tar: must equal the config's diff_id.
    pub diff_id: Digest,
    /// Uncompressed tar size in bytes.
    pub size: u64,
}

/// Running totals over the layers of one image, checked against the limits.
#[derive(Default)]
pub struct UnpackBudget {
    bytes: u64,
    entries: u64,
}

impl UnpackBudget {
    /// A budget of which `bytes` and `entries` are spent already (by the
    /// layers under a stored snapshot reused as it is).
    pub(crate) fn spent(bytes: u64, entries: u64) -> Self {
        UnpackBudget { bytes, entries }
    }
}

/// Wraps a layer blob in a decompressor chosen by sniffing its first bytes
/// (gzip or plain tar; zstd is refused with a clear message).
pub fn decompressed<'a, R: Read + 'a>(blob: R, what: &str) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, blob);
    let head = buffered
        .fill_buf()
        .io_context(|| format!("reading {what}"))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buffered)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(ImageError::invalid(
            what,
            "zstd-compressed layers are not supported; re-export the image with gzip or uncompressed layers",
        ))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Wraps a tar archive that is not a layer (a build context, a tar `ADD`
/// extracts) in a decompressor chosen by sniffing its first bytes, as
/// Docker's archive package does: gzip, bzip2, xz or plain; zstd is refused
/// with a clear message.
pub fn archive_decompressed<'a, R: Read + 'a>(
    archive: R,
    what: &str,
) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, archive);
    let head = buffered
        .fill_buf()
        .io_context(|| format!("reading {what}"))?;
    if head.starts_with(b"BZh") {
        Ok(Box::new(bzip2::read::MultiBzDecoder::new(buffered)))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Ok(Box::new(liblzma::read::XzDecoder::new_multi_decoder(
            buffered,
        )))
    } else {
        decompressed(buffered, what)
    }
}

/// Applies one layer (already decompressed) to `root`, following OCI
/// whiteout rules, and returns its diff_id and size. `layer` names the layer
/// in errors.
pub fn apply_layer(
    root: &Dir,
    tar_stream: impl Read,
    layer: &str,
    limits: &UnpackLimits,
    budget: &mut UnpackBudget,
) -> Result<LayerStats> {
    let remaining = limits.max_bytes.saturating_sub(budget.bytes);
    let hashing = HashingReader::new(LimitedReader::new(
        tar_stream,
        remaining,
        "the uncompressed layers",
    ));
    let mut archive = tar::Archive::new(hashing);
    // Paths created by this layer: an opaque whiteout hides only what lower
    // layers put in the directory, never this layer's own entries.
    let mut created: HashSet<PathBuf> = HashSet::new();
    // The directories of this layer and their times, set once the layer is
    // in (writing their entries changes them), as dockerd does.
    let mut dirs: Vec<(PathBuf, EntryTimes)> = Vec::new();
    let entries = archive.entries().map_err(|e| tar_error(layer, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| tar_error(layer, e))?;
        budget.entries += 1;
        if budget.entries > limits.max_entries {
            return Err(ImageError::LimitExceeded {
                what: format!("layer {layer}: the number of entries"),
                limit: limits.max_entries.to_string(),
            });
        }
        let raw = entry.path_bytes().into_owned();
        let path = confined_path(&raw, limits).map_err(|reason| ImageError::UnsafeEntry {
            layer: layer.to_string(),
            path: String::from_utf8_lossy(&raw).into_owned(),
            reason,
        })?;
        let times = entry_times(&mut entry).map_err(|reason| ImageError::UnsafeEntry {
            layer: layer.to_string(),
            path: String::from_utf8_lossy(&raw).into_owned(),
            reason,
        })?;
        let Some(path) = path else {
            // The root itself: only its times are taken.
            if entry.header().entry_type() == tar::EntryType::Directory {
                dirs.push((PathBuf::from("."), times));
            }
            continue;
        };
        let unsafe_entry = |reason: String| ImageError::UnsafeEntry {
            layer: layer.to_string(),
            path: path.display().to_string(),
            reason,
        };
        // A full disk is the store's failure, not the entry's or the tar's.
        let disk_or = |e: io::Error, other: &dyn Fn(io::Error) -> ImageError| {
            if is_disk_error(&e) {
                ImageError::Io {
                    context: format!("layer {layer}: writing {}", path.display()),
                    source: e,
                }
            } else {
                other(e)
            }
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();

        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                clear_lower_children(root, &parent, &created)
                    .map_err(|e| unsafe_entry(format!("cannot apply opaque whiteout: {e}")))?;
            } else if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(unsafe_entry("whiteout names no file".into()));
            } else {
                let target = parent.join(hidden);
                remove_existing(root, &target)
                    .map_err(|e| unsafe_entry(format!("cannot apply whiteout: {e}")))?;
            }
            continue;
        }

        if !parent.as_os_str().is_empty() {
            root.create_dir_all(&parent).map_err(|e| {
                disk_or(e, &|e| {
                    unsafe_entry(format!("cannot create its parent directory: {e}"))
                })
            })?;
        }
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                match root.symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_existing(root, &path).map_err(|e| unsafe_entry(e.to_string()))?;
                        root.create_dir(&path)
                            .map_err(|e| unsafe_entry(e.to_string()))?;
                    }
                    Err(_) => root
                        .create_dir(&path)
                        .map_err(|e| disk_or(e, &|e| unsafe_entry(e.to_string())))?,
                }
                set_mode(root, &path, mode | 0o700).map_err(|e| unsafe_entry(e.to_string()))?;
                dirs.push((path.clone(), times));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(root, &path).map_err(|e| unsafe_entry(e.to_string()))?;
                let mut file = root
                    .create(&path)
                    .map_err(|e| disk_or(e, &|e| unsafe_entry(format!("cannot create: {e}"))))?;
                io::copy(&mut entry, &mut file)
                    .map_err(|e| disk_or(e, &|e| tar_error(layer, e)))?;
                file.into_std()
                    .set_times(times.file_times())
                    .map_err(|e| unsafe_entry(format!("cannot set its times: {e}")))?;
                set_mode(root, &path, mode).map_err(|e| unsafe_entry(e.to_string()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("symlink without a target".into()))?
                    .into_owned();
                if target.is_empty() || target.contains(&0) {
                    return Err(unsafe_entry(
                        "symlink target is empty or has a NUL byte".into(),
                    ));
                }
                remove_existing(root, &path).map_err(|e| unsafe_entry(e.to_string()))?;
                // Stored as data: the target is never followed while
                // unpacking, and guests resolve it inside their own view.
                root.symlink_contents(bytes_to_path(&target), &path)
                    .map_err(|e| unsafe_entry(format!("cannot create symlink: {e}")))?;
                root.set_symlink_times(&path, times.atime(), times.mtime())
                    .map_err(|e| unsafe_entry(format!("cannot set its times: {e}")))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry("hard link without a target".into()))?
                    .into_owned();
                let target = confined_path(&target, limits)
                    .map_err(|r| unsafe_entry(format!("hard link target: {r}")))?
                    .ok_or_else(|| unsafe_entry("hard link to the root".into()))?;
                let meta = root.symlink_metadata(&target).map_err(|_| {
                    unsafe_entry(format!(
                        "hard link target {} is not in the image",
                        target.display()
                    ))
                })?;
                if meta.is_dir() {
                    return Err(unsafe_entry("hard link to a directory".into()));
                }
                remove_existing(root, &path).map_err(|e| unsafe_entry(e.to_string()))?;
                root.hard_link(&target, root, &path)
                    .map_err(|e| unsafe_entry(format!("cannot create hard link: {e}")))?;
                // dockerd sets the link's times on the file it shares (not
                // on a symlink). Only on a file of this layer: a lower one
                // may be a stored snapshot's, hard-linked into this tree.
                if !meta.is_symlink() && created.contains(&target) {
                    root.set_times(&path, times.atime(), times.mtime())
                        .map_err(|e| unsafe_entry(format!("cannot set its times: {e}")))?;
                }
            }
            tar::EntryType::GNUSparse => {
                return Err(unsafe_entry("sparse files are not supported".into()));
            }
            // Devices, FIFOs and sockets mean nothing to a WASI guest.
            _ => continue,
        }
        created.insert(path);
    }
    for (path, times) in dirs {
        // A later entry of the layer may have replaced or removed it.
        if root.symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            root.set_times(&path, times.atime(), times.mtime())
                .map_err(|e| ImageError::UnsafeEntry {
                    layer: layer.to_string(),
                    path: path.display().to_string(),
                    reason: format!("cannot set its times: {e}"),
                })?;
        }
    }
    let (diff_id, size) = archive
        .into_inner()
        .finish()
        .map_err(|e| tar_error(layer, e))?;
    budget.bytes += size;
    Ok(LayerStats { diff_id, size })
}

/// An entry's access and modification times, as dockerd's unpacking sets
/// them: the header's, a PAX record's (to the nanosecond) taking their
/// place; the access time is the modification time when the header has
/// none or an earlier one; a time before 1970 is 1970.
#[derive(Clone, Copy, Debug, PartialEq)]
struct EntryTimes {
    accessed: SystemTime,
    modified: SystemTime,
}

impl EntryTimes {
    fn atime(&self) -> Option<SystemTimeSpec> {
        Some(SystemTimeSpec::from_std(self.accessed.into()))
    }

    fn mtime(&self) -> Option<SystemTimeSpec> {
        Some(SystemTimeSpec::from_std(self.modified.into()))
    }

    fn file_times(&self) -> std::fs::FileTimes {
        std::fs::FileTimes::new()
            .set_accessed(self.accessed)
            .set_modified(self.modified)
    }
}

fn entry_times<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::result::Result<EntryTimes, String> {
    let header = entry.header();
    let seconds = header
        .mtime()
        .map_err(|e| format!("malformed modification time: {e}"))?;
    let mut modified = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
    let mut accessed = header
        .as_gnu()
        .and_then(|gnu| gnu.atime().ok())
        .filter(|&a| a != 0)
        .map(|a| SystemTime::UNIX_EPOCH + Duration::from_secs(a));
    if let Some(pax) = entry
        .pax_extensions()
        .map_err(|e| format!("malformed PAX header: {e}"))?
    {
        for record in pax {
            let record = record.map_err(|e| format!("malformed PAX header: {e}"))?;
            let key = record.key().unwrap_or_default();
            if key == "mtime" || key == "atime" {
                let value = record.value().unwrap_or_default();
                let time = pax_time(value)
                    .ok_or_else(|| format!("malformed PAX {key} record {value:?}"))?;
                if key == "mtime" {
                    modified = time;
                } else {
                    accessed = Some(time);
                }
            }
        }
    }
    Ok(EntryTimes {
        accessed: accessed.filter(|&a| a >= modified).unwrap_or(modified),
        modified,
    })
}

/// A PAX time record: decimal seconds since 1970, maybe negative, maybe with
/// a fraction (digits past the ninth are dropped).
fn pax_time(value: &str) -> Option<SystemTime> {
    let (negative, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if negative {
        return Some(SystemTime::UNIX_EPOCH);
    }
    let seconds: u64 = whole.parse().ok()?;
    let nanos = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

fn tar_error(layer: &str, e: io::Error) -> ImageError {
    ImageError::Io {
        context: format!("layer {layer}: malformed or truncated tar"),
        source: e,
    }
}

fn bytes_to_path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

/// Turns a tar path into a relative path that cannot leave the root: leading
/// `/` and `./` are dropped (as Docker does), `..` and NUL are refused.
/// `Ok(None)` is the root directory itself.
fn confined_path(
    raw: &[u8],
    limits: &UnpackLimits,
) -> std::result::Result<Option<PathBuf>, String> {
    if raw.contains(&0) {
        return Err("the path has a NUL byte".into());
    }
    if raw.len() > limits.max_path_len {
        return Err(format!(
            "the path is longer than {} bytes",
            limits.max_path_len
        ));
    }
    let path = bytes_to_path(raw);
    let mut out = PathBuf::new();
    let mut depth = 0;
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => {
                if part.len() > 255 {
                    return Err("a path component is longer than 255 bytes".into());
                }
                depth += 1;
                out.push(part);
            }
            Component::ParentDir => return Err("the path climbs out with '..'".into()),
            Component::Prefix(_) => return Err("the path has a drive prefix".into()),
        }
    }
    if depth > limits.max_depth {
        return Err(format!(
            "the path is deeper than {} levels",
            limits.max_depth
        ));
    }
    Ok((depth > 0).then_some(out))
}

fn set_mode(root: &Dir, path: &Path, mode: u32) -> io::Result<()> {
    // cap-std refuses to follow a symlink out of the root here.
    root.set_permissions(path, Permissions::from_mode(mode))
}

/// Removes whatever is at `path` unless it is a directory (directories are
/// merged with the layer's entries, or replaced by `remove_any`).
fn remove_existing(root: &Dir, path: &Path) -> io::Result<()> {
    match root.symlink_metadata(path) {
        Ok(m) if m.is_dir() => root.remove_dir_all(path),
        Ok(_) => root.remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn clear_lower_children(root: &Dir, dir: &Path, created: &HashSet<PathBuf>) -> io::Result<()> {
    let handle = if dir.as_os_str().is_empty() {
        root.try_clone()?
    } else {
        match root.symlink_metadata(dir) {
            Ok(m) if m.is_dir() => root.open_dir(dir)?,
            Ok(_) => return Err(io::Error::other("the opaque directory is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    };
    for child in handle.entries()? {
        let child = child?;
        let child_path = dir.join(child.file_name());
        if created.contains(&child_path) {
            continue;
        }
        remove_existing(root, &child_path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    /// A tar entry written with raw header bytes, so hostile names the `tar`
    /// crate's safe builders refuse can still be produced.
    pub(crate) fn raw_entry(
        out: &mut Vec<u8>,
        name: &[u8],
        kind: tar::EntryType,
        link: &[u8],
        data: &[u8],
    ) {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name[..name.len()].copy_from_slice(name);
            gnu.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }

    fn finish(mut t: Vec<u8>) -> Vec<u8> {
        t.extend(std::iter::repeat_n(0u8, 1024));
        t
    }

    struct Sandbox {
        _tmp: tempfile::TempDir,
        outside: PathBuf,
        root_path: PathBuf,
        root: Dir,
    }

    fn sandbox() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        let root_path = tmp.path().join("root");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"precious").unwrap();
        std::fs::create_dir_all(&root_path).unwrap();
        let root = Dir::open_ambient_dir(&root_path, ambient_authority()).unwrap();
        Sandbox {
            _tmp: tmp,
            outside,
            root_path,
            root,
        }
    }

    fn apply(sb: &Sandbox, tar: &[u8]) -> Result<LayerStats> {
        apply_layer(
            &sb.root,
            tar,
            "test",
            &UnpackLimits::default(),
            &mut UnpackBudget::default(),
        )
    }

    fn outside_untouched(sb: &Sandbox) {
        assert_eq!(
            std::fs::read(sb.outside.join("victim")).unwrap(),
            b"precious"
        );
        let names: Vec<_> = std::fs::read_dir(&sb.outside).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing new may appear outside the root");
    }

    #[test]
    fn zip_slip_dotdot_entry_is_refused() {
        let sb = sandbox();
        let mut t = Vec::new();
        raw_entry(
            &mut t,
            b"../outside/evil",
            tar::EntryType::Regular,
            b"",
            b"x",
        );
        let err = apply(&sb, &finish(t)).unwrap_err();
        assert!(err.to_string().contains("'..'"), "{err}");
        outside_untouched(&sb);
    }

    #[test]
    fn absolute_path_entry_lands_inside_the_root() {
        let sb = sandbox();
        let mut t = Vec::new();
        raw_entry(&mut t, b"/abs.txt", tar::EntryType::Regular, b"", b"hi");
        apply(&sb, &finish(t)).unwrap();
        assert_eq!(std::fs::read(sb.root_path.join("abs.txt")).unwrap(), b"hi");
        outside_untouched(&sb);
    }

    #[test]
    fn symlink_to_parent_then_write_through_it_is_refused() {
        let sb = sandbox();
        let mut t = Vec::new();
        raw_entry(&mut t, b"a", tar::EntryType::Symlink, b"..", b"");
        raw_entry(
            &mut t,
            b"a/outside/evil",
            tar::EntryType::Regular,
            b"",
            b"x",
        );
        assert!(apply(&sb, &finish(t)).is_err());
        outside_untouched(&sb);
    }

    #[test]
    fn absolute_symlink_then_directory_mode_change_is_refused() {
        // containerd CVE-2021-32760: `d -> /victim`, then a directory `d`.
        let sb = sandbox();
        let victim_dir = sb.outside.display().to_string();
        let mut t = Vec::new();
        raw_entry(
            &mut t,
            b"d",
            tar::EntryType::Symlink,
            victim_dir.as_bytes(),
            b"",
        );
        raw_entry(&mut t, b"d/x", tar::EntryType::Regular, b"", b"x");
        assert!(apply(&sb, &finish(t)).is_err());
        outside_untouched(&sb);
        let before = std::fs::metadata(&sb.outside).unwrap().permissions();
        let sb2 = sandbox();
        let mut t = Vec::new();
        raw_entry(
            &mut t,
            b"d",
            tar::EntryType::Symlink,
            sb2.outside.display().to_string().as_bytes(),
            b"",
        );
        raw_entry(&mut t, b"d/", tar::EntryType::Directory, b"", b"");
        // The directory replaces the symlink inside the root; the target's
        // mode is never changed.
        apply(&sb2, &finish(t)).unwrap();
        assert!(sb2.root_path.join("d").is_dir());
        assert!(!sb2.root_path.join("d").is_symlink());
        assert_eq!(
            std::fs::metadata(&sb2.outside).unwrap().permissions(),
            before
        );
        outside_untouched(&sb2);
    }

    #[test]
    fn hard_link_to_a_path_outside_is_refused() {
        let sb = sandbox();
        let mut t = Vec::new();
        raw_entry(
            &mut t,
            b"h",
            tar::EntryType::Link,
            b"../outside/victim",
            b"",
        );
        assert!(apply(&sb, &finish(t)).is_err());
        let mut t = Vec::new();
        raw_entry(&mut t, b"h", tar::EntryType::Link, b"/etc/passwd", b"");
        let err = apply(&sb, &finish(t)).unwrap_err();
        assert!(err.to_string().contains("not in the image"), "{err}");
        outside_untouched(&sb);
    }

    #[test]
    fn hard_link_then_overwrite_does_not_change_the_lower_file_outside() {
        let sb = sandbox();
        let mut t = Vec::new();
        raw_entry(&mut t, b"orig", tar::EntryType::Regular, b"", b"one");
        raw_entry(&mut t, b"link", tar::EntryType::Link, b"orig", b"");
        raw_entry(&mut t, b"link", tar::EntryType::Regular, b"", b"two");
        apply(&sb, &finish(t)).unwrap();
        assert_eq!(std::fs::read(sb.root_path.join("orig")).unwrap(), b"one");
        assert_eq!(std::fs::read(sb.root_path.join("link")).unwrap(), b"two");
    }

    #[test]
    fn whiteout_naming_parent_or_root_is_refused() {
        let sb = sandbox();
        for name in [&b".wh..."[..], b"x/.wh...", b".wh."] {
            let mut t = Vec::new();
            raw_entry(&mut t, name, tar::EntryType::Regular, b"", b"");
            assert!(
                apply(&sb, &finish(t)).is_err(),
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
        outside_untouched(&sb);
    }

    #[test]
    fn whiteouts_remove_lower_files_and_opaque_keeps_own_entries() {
        let sb = sandbox();
        let mut lower = Vec::new();
        raw_entry(&mut lower, b"etc/", tar::EntryType::Directory, b"", b"");
        raw_entry(&mut lower, b"etc/a", tar::EntryType::Regular, b"", b"a");
        raw_entry(&mut lower, b"etc/b", tar::EntryType::Regular, b"", b"b");
        raw_entry(&mut lower, b"gone", tar::EntryType::Regular, b"", b"g");
        apply(&sb, &finish(lower)).unwrap();
        let mut upper = Vec::new();
        raw_entry(&mut upper, b"etc/new", tar::EntryType::Regular, b"", b"n");
        raw_entry(
            &mut upper,
            b"etc/.wh..wh..opq",
            tar::EntryType::Regular,
            b"",
            b"",
        );
        raw_entry(&mut upper, b".wh.gone", tar::EntryType::Regular, b"", b"");
        apply(&sb, &finish(upper)).unwrap();
        assert!(sb.root_path.join("etc/new").exists());
        assert!(!sb.root_path.join("etc/a").exists());
        assert!(!sb.root_path.join("gone").exists());
    }

    #[test]
    fn nul_byte_and_over_long_names_are_refused() {
        let sb = sandbox();
        assert!(confined_path(b"a\0b", &UnpackLimits::default()).is_err());
        let long = vec![b'a'; 300];
        assert!(confined_path(&long, &UnpackLimits::default()).is_err());
        let deep = b"a/".repeat(100);
        assert!(confined_path(&deep, &UnpackLimits::default()).is_err());
        outside_untouched(&sb);
    }

    #[test]
    fn decompression_bomb_is_stopped_at_the_cap() {
        use std::io::Write;
        let sb = sandbox();
        let mut t = Vec::new();
        raw_entry(
            &mut t,
            b"zeros",
            tar::EntryType::Regular,
            b"",
            &vec![0u8; 1 << 20],
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&finish(t)).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 10_000, "the bomb is small compressed");
        let limits = UnpackLimits {
            max_bytes: 64 * 1024,
            ..UnpackLimits::default()
        };
        let err = apply_layer(
            &sb.root,
            decompressed(&bomb[..], "bomb").unwrap(),
            "bomb",
            &limits,
            &mut UnpackBudget::default(),
        )
        .unwrap_err();
        assert!(format!("{err:?}").contains("limit"), "{err:?}");
    }

    #[test]
    fn entry_count_cap_stops_millions_of_entries() {
        let sb = sandbox();
        let mut t = Vec::new();
        for i in 0..20 {
            raw_entry(
                &mut t,
                format!("f{i}").as_bytes(),
                tar::EntryType::Regular,
                b"",
                b"",
            );
        }
        let limits = UnpackLimits {
            max_entries: 10,
            ..UnpackLimits::default()
        };
        let err = apply_layer(
            &sb.root,
            &finish(t)[..],
            "many",
            &limits,
            &mut UnpackBudget::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("number of entries"), "{err}");
    }

    #[test]
    fn malformed_header_is_a_clear_error() {
        let sb = sandbox();
        let mut t = Vec::new();
        raw_entry(&mut t, b"ok", tar::EntryType::Regular, b"", b"data");
        t[148..156].copy_from_slice(b"garbage!"); // break the checksum
        let err = apply(&sb, &finish(t)).unwrap_err();
        assert!(err.to_string().contains("malformed or truncated"), "{err}");
        let mut t = Vec::new();
        raw_entry(&mut t, b"big", tar::EntryType::Regular, b"", &[7u8; 2000]);
        t.truncate(900); // truncated in the middle of the data
        assert!(apply(&sb, &t).is_err());
    }

    fn mtime(path: &Path) -> std::time::SystemTime {
        std::fs::symlink_metadata(path).unwrap().modified().unwrap()
    }

    fn at(seconds: u64, nanos: u32) -> std::time::SystemTime {
        std::time::SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos)
    }

    /// A PAX tar as Go's archive/tar and GNU tar write one: a header with
    /// whole seconds and an `x` record with the exact times.
    fn pax_entry(out: &mut Vec<u8>, name: &str, records: &[(&str, &str)], data: &[u8]) {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, v.as_bytes())))
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        h.set_cksum();
        builder.append(&h, data).unwrap();
        out.extend_from_slice(&builder.into_inner().unwrap());
        out.truncate(out.len() - 1024); // the builder's end-of-archive
    }

    #[test]
    fn unpacked_files_directories_and_symlinks_keep_the_layer_mtimes() {
        // dockerd keeps each entry's header time (checked with `docker
        // import` on 20.10: the overlay2 diff holds exactly these), a
        // directory's once its children are written, a symlink's itself,
        // a hard link's on the file it shares.
        let sb = sandbox();
        let stamp = |t: &mut Vec<u8>, at: u64| {
            // The last entry has no data: its header ends the tar.
            let header = t.len() - 512;
            let mut h = tar::Header::from_byte_slice(&t[header..header + 512]).clone();
            h.set_mtime(at);
            h.set_cksum();
            t[header..header + 512].copy_from_slice(h.as_bytes());
        };
        let mut t = Vec::new();
        raw_entry(&mut t, b"./", tar::EntryType::Directory, b"", b"");
        stamp(&mut t, 900_000_000);
        raw_entry(&mut t, b"d/", tar::EntryType::Directory, b"", b"");
        stamp(&mut t, 1_100_000_000);
        raw_entry(&mut t, b"d/f", tar::EntryType::Regular, b"", b"");
        stamp(&mut t, 1_200_000_000);
        raw_entry(&mut t, b"d/l", tar::EntryType::Symlink, b"f", b"");
        stamp(&mut t, 1_300_000_000);
        raw_entry(&mut t, b"d/sub/", tar::EntryType::Directory, b"", b"");
        stamp(&mut t, 1_350_000_000);
        raw_entry(&mut t, b"d/h", tar::EntryType::Link, b"d/f", b"");
        stamp(&mut t, 1_400_000_000);
        pax_entry(
            &mut t,
            "d/sub/frac",
            &[("mtime", "1500000000.123456789"), ("atime", "1600000000.5")],
            b"z",
        );
        raw_entry(&mut t, b"implied/x", tar::EntryType::Regular, b"", b"");
        stamp(&mut t, 1_000_000_000);
        apply(&sb, &finish(t)).unwrap();
        let r = &sb.root_path;
        assert_eq!(mtime(r), at(900_000_000, 0), "the root's own entry");
        assert_eq!(mtime(&r.join("d")), at(1_100_000_000, 0));
        assert_eq!(mtime(&r.join("d/sub")), at(1_350_000_000, 0));
        assert_eq!(mtime(&r.join("d/l")), at(1_300_000_000, 0), "lutimes");
        assert_eq!(mtime(&r.join("d/f")), at(1_400_000_000, 0), "the link's");
        assert_eq!(mtime(&r.join("d/h")), at(1_400_000_000, 0));
        assert_eq!(mtime(&r.join("implied/x")), at(1_000_000_000, 0));
        let frac = std::fs::metadata(r.join("d/sub/frac")).unwrap();
        assert_eq!(frac.modified().unwrap(), at(1_500_000_000, 123_456_789));
        assert_eq!(frac.accessed().unwrap(), at(1_600_000_000, 500_000_000));
        assert_eq!(
            std::fs::metadata(r.join("d/f"))
                .unwrap()
                .accessed()
                .unwrap(),
            at(1_400_000_000, 0),
            "no atime in the header: the mtime"
        );
    }

    #[test]
    fn malformed_pax_time_is_a_clear_error() {
        let sb = sandbox();
        let mut t = Vec::new();
        pax_entry(&mut t, "f", &[("mtime", "12x.5")], b"z");
        let err = apply(&sb, &finish(t)).unwrap_err();
        assert!(err.to_string().contains("malformed PAX mtime"), "{err}");
        assert_eq!(pax_time("-7.25"), Some(std::time::SystemTime::UNIX_EPOCH));
        assert_eq!(pax_time("5.1"), Some(at(5, 100_000_000)));
        assert_eq!(pax_time("5.1234567891"), Some(at(5, 123_456_789)));
        assert_eq!(pax_time("."), None);
    }

    #[test]
    fn diff_id_is_the_digest_of_the_uncompressed_stream() {
        let sb = sandbox();
        let mut t = Vec::new();
        raw_entry(&mut t, b"f", tar::EntryType::Regular, b"", b"content");
        let t = finish(t);
        let stats = apply(&sb, &t).unwrap();
        assert_eq!(stats.diff_id, Digest::of(&t));
        assert_eq!(stats.size, t.len() as u64);
    }
}
