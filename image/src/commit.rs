//! `commit`: an instance's upper layer (`wrun_rootfs::Layers::upper_layer`)
//! written as an OCI layer on top of its image's, and the image adding it.
//!
//! Deletions become `.wh.NAME` whiteouts and opaque directories
//! `DIR/.wh..wh..opq`, as overlay2 commits them. A name the guest made that
//! starts with `.wh.` cannot be told from a whiteout once in a layer
//! (dockerd writes it as is, and the file silently vanishes from the new
//! image), so it is refused.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use oci_spec::image::{
    Config, Descriptor, HistoryBuilder, ImageConfiguration, ImageManifest, MediaType,
};
use serde::Serialize;
use wrun_rootfs::{Kind, LayerItem, Layers, TreeEntry, ViewPath};

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::layer::{BuiltLayer, LayerWriter};
use crate::reference::ImageRef;
use crate::store::{ImageRecord, MAX_DOCUMENT, Staging, Store, now_rfc3339};

/// gzip level of committed layers: a commit is interactive (`docker commit`
/// of a running container, paused meanwhile), so the fastest level. On
/// 100 MB of random data it took 1.4 s of CPU against 2.6 s at the level 6
/// of builds, for a blob 5% larger (docs/benchmarks/rootfs.md); data that
/// compresses gains more time.
const COMMIT_GZIP_LEVEL: u32 = 1;

/// What the new image says besides its layers.
#[derive(Clone, Debug, Default)]
pub struct CommitSpec {
    /// The run config of the new image (the base's, the instance's and the
    /// `--change`s already merged).
    pub config: Config,
    /// `-a`: the image's and the history entry's author.
    pub author: Option<String>,
    /// `-m`: the history entry's comment.
    pub comment: Option<String>,
    /// The history entry's `created_by` (dockerd: the instance's Cmd).
    pub created_by: String,
    /// The names to put on the new image (may be none: a dangling image).
    pub names: Vec<ImageRef>,
    /// The committed instance, written in the config as dockerd writes it.
    pub origin: CommitOrigin,
}

/// What dockerd's commit writes in an image config besides the OCI fields
/// (its `container` and `container_config`): the committed container's
/// full ID and its config as inspect showed it. Empty for an image that
/// was not committed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CommitOrigin {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_config: Option<serde_json::Value>,
}

/// An image config with the commit's origin beside the OCI fields.
#[derive(Serialize)]
struct ConfigWithOrigin<'a> {
    #[serde(flatten)]
    config: &'a ImageConfiguration,
    #[serde(flatten)]
    origin: &'a CommitOrigin,
}

/// The [`CommitOrigin`] the config of a stored image names (read from the
/// config blob: the parsed OCI config has no place for it). A loaded
/// image's config may say anything there: a `container` that is no string
/// or a `container_config` that is no object counts as absent.
pub fn origin(store: &Store, record: &ImageRecord) -> Result<CommitOrigin> {
    let bytes = store.read_blob(&record.id, MAX_DOCUMENT)?;
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: format!("config {}", record.id),
            source,
        })?;
    Ok(CommitOrigin {
        container: doc
            .get("container")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string(),
        container_config: doc
            .get("container_config")
            .filter(|c| c.is_object())
            .cloned(),
    })
}

/// Stores the image `base` plus the upper of `layers` (the view of an
/// instance of `base`) as a new image. An upper with nothing in it adds no
/// layer, only a history entry marked `empty_layer`, as dockerd does.
pub fn commit(
    store: &Store,
    base: &ImageRecord,
    layers: &Layers,
    spec: CommitSpec,
) -> Result<ImageRecord> {
    let mut staging = store.staging()?;
    let manifest = store.manifest(base)?;
    let mut config = store.config(base)?;
    let built = write_upper_layer(&mut staging, layers)?;
    let created = now_rfc3339();
    let mut history = config.history().clone().unwrap_or_default();
    let mut entry = HistoryBuilder::default()
        .created(created.clone())
        .created_by(spec.created_by)
        .empty_layer(built.is_none())
        .build()
        .map_err(|e| ImageError::invalid("the history entry", e.to_string()))?;
    entry.set_author(spec.author.clone());
    entry.set_comment(spec.comment.filter(|c| !c.is_empty()));
    history.push(entry);
    config.set_history(Some(history));
    config.set_created(Some(created));
    config.set_author(spec.author);
    config.set_config(Some(spec.config));
    let mut descriptors = manifest.layers().clone();
    if let Some(layer) = built {
        let mut rootfs = config.rootfs().clone();
        let mut diff_ids = rootfs.diff_ids().clone();
        diff_ids.push(layer.diff_id.to_string());
        rootfs.set_diff_ids(diff_ids);
        config.set_rootfs(rootfs);
        descriptors.push(Descriptor::new(
            MediaType::ImageLayerGzip,
            layer.size,
            layer.digest.to_oci(),
        ));
    }
    let digest = write_image_with_origin(&mut staging, config, descriptors, &spec.origin)?;
    // dockerd's local parent: the image the instance ran.
    staging.set_parent(digest, base.id);
    let mut records = store.commit(staging, &[(digest, spec.names)])?;
    records
        .pop()
        .ok_or_else(|| ImageError::invalid("commit", "the store stored no image"))
}

/// Writes `config` and a manifest of `layers`, unpacks them (every layer
/// checked as `load` checks it) and sets the config's `os` to the kind of
/// the module its entrypoint names (`wasip1` for a core module, `wasip2`
/// for a component) when that differs. Returns the manifest's digest.
pub(crate) fn write_runnable_image(
    staging: &mut Staging<'_>,
    config: ImageConfiguration,
    layers: Vec<Descriptor>,
) -> Result<Digest> {
    write_image_with_origin(staging, config, layers, &CommitOrigin::default())
}

/// [`write_runnable_image`] with `origin` in the config.
fn write_image_with_origin(
    staging: &mut Staging<'_>,
    mut config: ImageConfiguration,
    layers: Vec<Descriptor>,
    origin: &CommitOrigin,
) -> Result<Digest> {
    let written = ConfigWithOrigin {
        config: &config,
        origin,
    };
    let digest = staging.write_image(&written, layers.clone(), None)?;
    let manifest: ImageManifest = staging.manifest(&digest)?;
    let chain = staging.prepare_snapshot(&manifest, &config)?;
    let module = staging.module_info(&config, chain.as_ref())?;
    match module {
        Some(m) if m.kind.oci_os() != config.os().to_string() => {
            config.set_os(m.kind.oci_os().into());
            let written = ConfigWithOrigin {
                config: &config,
                origin,
            };
            staging.write_image(&written, layers, None)
        }
        _ => Ok(digest),
    }
}

/// Writes the upper of `layers` as a gzip layer blob in `staging`; `None`
/// when the upper holds nothing.
pub fn write_upper_layer(staging: &mut Staging<'_>, layers: &Layers) -> Result<Option<BuiltLayer>> {
    write_upper_layer_at(staging, layers, COMMIT_GZIP_LEVEL)
}

/// [`write_upper_layer`] at gzip `level` (0 to 9).
pub fn write_upper_layer_at(
    staging: &mut Staging<'_>,
    layers: &Layers,
    level: u32,
) -> Result<Option<BuiltLayer>> {
    write_upper_layer_clamped(staging, layers, level, None)
}

/// [`write_upper_layer_at`] with every modification time later than
/// `clamp_mtime` (seconds since the epoch) written as `clamp_mtime`, as
/// BuildKit's `SOURCE_DATE_EPOCH` does: a build's `RUN` step passes the
/// time its other layers get, so a deterministic step gives the same layer
/// digest on every build. `None` keeps the times the guest left.
pub fn write_upper_layer_clamped(
    staging: &mut Staging<'_>,
    layers: &Layers,
    level: u32,
    clamp_mtime: Option<u64>,
) -> Result<Option<BuiltLayer>> {
    let items = layers
        .upper_layer()
        .map_err(|e| view_error("reading the instance's upper layer", e))?;
    if items.is_empty() {
        return Ok(None);
    }
    let mut writer = LayerWriter::with_level(staging, 0, level)?;
    // The first path of each file with several links in the upper.
    let mut linked: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for item in &items {
        match item {
            LayerItem::Node(entry) => {
                add_node(&mut writer, layers, entry, clamp_mtime, &mut linked)?
            }
            LayerItem::Whiteout(path) => {
                let (parent, name) = split(path)?;
                let mut marker = b".wh.".to_vec();
                marker.extend_from_slice(name.as_bytes());
                add_marker(&mut writer, &parent.join(OsStr::from_bytes(&marker)), 0o600)?;
            }
            LayerItem::Opaque(dir) => {
                add_marker(&mut writer, &tar_path(dir).join(".wh..wh..opq"), 0o755)?;
            }
        }
    }
    writer.finish(staging).map(Some)
}

/// A node's path in a layer tar: relative, no leading `/`.
fn tar_path(path: &ViewPath) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&path.to_relative_bytes()))
}

fn split(path: &ViewPath) -> Result<(PathBuf, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| ImageError::invalid("commit", "a whiteout of the root"))?;
    let parent = path.parent().map(|p| tar_path(&p)).unwrap_or_default();
    Ok((parent, name))
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// An empty whiteout or opaque marker file.
fn add_marker(writer: &mut LayerWriter, path: &Path, mode: u32) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, 0, 0);
    writer.append(&mut h, path, io::empty())
}

fn add_node(
    writer: &mut LayerWriter,
    layers: &Layers,
    entry: &TreeEntry,
    clamp_mtime: Option<u64>,
    linked: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let shown = format!(
        "/{}",
        String::from_utf8_lossy(&entry.path.to_relative_bytes())
    );
    if entry
        .path
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
    {
        return Err(ImageError::invalid(
            format!("cannot commit {shown}"),
            "a name starting with .wh. cannot be stored in an image layer (OCI reads it as a whiteout that deletes a file); rename or remove it in the instance first",
        ));
    }
    let path = tar_path(&entry.path);
    let st = &entry.stat;
    let mode = st.mode & 0o7777;
    let mtime = st
        .mtime
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(clamp_mtime.unwrap_or(u64::MAX));
    match st.kind {
        Kind::Dir => {
            let mut h = header(tar::EntryType::Directory, mode, 0, mtime);
            let mut dir = path.into_os_string();
            dir.push("/");
            writer.append(&mut h, Path::new(&dir), io::empty())
        }
        Kind::Symlink => {
            let target = entry.link_target.clone().unwrap_or_default();
            let mut h = header(tar::EntryType::Symlink, 0o777, 0, mtime);
            writer.append_link(&mut h, &path, Path::new(&target))
        }
        Kind::File => {
            if st.nlink > 1 {
                if let Some(first) = linked.get(&(st.dev, st.ino)) {
                    let mut h = header(tar::EntryType::Link, mode, 0, mtime);
                    return writer.append_link(&mut h, &path, first);
                }
                linked.insert((st.dev, st.ino), path.clone());
            }
            let file = layers
                .open_entry(entry)
                .map_err(|e| view_error(&format!("reading {shown}"), e))?;
            // The size now, not at the walk: the data read is this file's.
            let size = file
                .metadata()
                .map_err(|e| ImageError::Io {
                    context: format!("reading {shown}"),
                    source: e,
                })?
                .len();
            let mut h = header(tar::EntryType::Regular, mode, size, mtime);
            writer.append(&mut h, &path, Exact::new(file, size, &shown))
        }
        other => Err(ImageError::invalid(
            format!("cannot commit {shown}"),
            format!("a {other:?} cannot be stored in a wasm image layer"),
        )),
    }
}

/// Reads exactly `size` bytes: a file that shrank while it was read (the
/// instance wrote it during a commit without pause) is an error, never a
/// tar whose entry ends early.
struct Exact<R> {
    inner: R,
    left: u64,
    what: String,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, size: u64, what: &str) -> Self {
        Exact {
            inner,
            left: size,
            what: what.to_string(),
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while it was committed (commit with --pause, the default, to take a consistent layer)",
                    self.what
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A failure of the view as an I/O error of the store, its cause kept.
fn view_error(context: &str, e: wrun_rootfs::Error) -> ImageError {
    let source = match e {
        wrun_rootfs::Error::Io(io) => io,
        other => io::Error::from_raw_os_error(other.errno()),
    };
    ImageError::Io {
        context: context.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use cap_std::ambient_authority;
    use wrun_rootfs::{OpenOptions, UpperOptions};

    /// A lower with `etc/a`, `etc/b`, `gone`, `d/a`; the view over it.
    fn view(tmp: &Path) -> Layers {
        let lower = tmp.join("lower");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(lower.join("d")).unwrap();
        for (p, data) in [("etc/a", "a"), ("etc/b", "b"), ("gone", "g"), ("d/a", "da")] {
            std::fs::write(lower.join(p), data).unwrap();
        }
        let dir = cap_std::fs::Dir::open_ambient_dir(&lower, ambient_authority()).unwrap();
        Layers::open(Arc::new(dir), tmp.join("upper"), UpperOptions::default()).unwrap()
    }

    fn write(layers: &Layers, path: &str, data: &[u8]) {
        let o = OpenOptions {
            write: true,
            create: true,
            truncate: true,
            ..OpenOptions::default()
        };
        let wrun_rootfs::Opened::File(f) = layers.open_at(&layers.root(), path, &o).unwrap() else {
            panic!("{path} opened as a directory");
        };
        f.write_at(data, 0).unwrap();
    }

    /// The entries of a gzip layer blob: (path, kind, data or link target).
    fn entries(staging: &Staging<'_>, layer: &BuiltLayer) -> Vec<(String, char, String)> {
        let blob = staging.open_blob(&layer.digest).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        let mut out = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = match e.header().entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                _ => 'f',
            };
            let mut data = String::new();
            match kind {
                'l' | 'h' => {
                    data = String::from_utf8_lossy(&e.link_name_bytes().unwrap()).into_owned()
                }
                _ => {
                    e.read_to_string(&mut data).unwrap();
                }
            }
            out.push((path, kind, data));
        }
        out
    }

    #[test]
    fn changes_become_files_whiteouts_and_an_opaque_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = view(tmp.path());
        let root = layers.root();
        write(&layers, "etc/a", b"new");
        layers.unlink_file_at(&root, "gone").unwrap();
        layers.create_dir_at(&root, "n").unwrap();
        write(&layers, "n/f", b"hi");
        layers.unlink_file_at(&root, "d/a").unwrap();
        layers.remove_dir_at(&root, "d").unwrap();
        layers.create_dir_at(&root, "d").unwrap();
        write(&layers, "d/z", b"z");
        layers.symlink_at("../etc/a", &root, "n/l").unwrap();
        layers.link_at(&root, "n/f", false, &root, "n/f2").unwrap();

        let store = Store::open(tmp.path().join("store")).unwrap();
        let mut staging = store.staging().unwrap();
        let layer = write_upper_layer(&mut staging, &layers).unwrap().unwrap();
        let mut got = entries(&staging, &layer);
        // Each directory comes before what is in it.
        for (i, (path, _, _)) in got.iter().enumerate() {
            if let Some((dir, _)) = path.trim_end_matches('/').rsplit_once('/') {
                let at = got.iter().position(|(p, _, _)| p == &format!("{dir}/"));
                assert!(at.is_some_and(|at| at < i), "{path} before its directory");
            }
        }
        got.sort();
        let want = [
            (".wh.gone", 'f', ""),
            ("d/", 'd', ""),
            ("d/.wh..wh..opq", 'f', ""),
            ("d/z", 'f', "z"),
            ("etc/", 'd', ""),
            ("etc/a", 'f', "new"),
            ("n/", 'd', ""),
            ("n/f", 'f', "hi"),
            ("n/f2", 'h', "n/f"),
            ("n/l", 'l', "../etc/a"),
        ];
        let want: Vec<(String, char, String)> = want
            .iter()
            .map(|(p, k, d)| (p.to_string(), *k, d.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    /// A base image imported from a tar of `files`, and a view over its
    /// snapshot as an instance of it has.
    fn base_image(tmp: &Path, files: &[(&str, &str)]) -> (Store, ImageRecord, Layers) {
        let store = Store::open(tmp.join("store")).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, path, data.as_bytes()).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let spec = crate::import::ImportSpec {
            changes: vec![r#"CMD ["/x.wasm"]"#.into()],
            source: "-".into(),
            names: vec!["base:1".parse().unwrap()],
            ..Default::default()
        };
        let base = crate::import::import(&store, &bytes[..], spec).unwrap();
        let lower = store.rootfs_path(&base).unwrap();
        let dir = cap_std::fs::Dir::open_ambient_dir(&lower, ambient_authority()).unwrap();
        let layers =
            Layers::open(Arc::new(dir), tmp.join("upper"), UpperOptions::default()).unwrap();
        (store, base, layers)
    }

    #[test]
    fn the_committed_image_unpacks_with_the_changes_and_deletions_applied() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, base, layers) = base_image(
            tmp.path(),
            &[("etc/a", "a"), ("gone", "g"), ("d/a", "da"), ("d/b", "db")],
        );
        let root = layers.root();
        write(&layers, "etc/a", b"new");
        layers.unlink_file_at(&root, "gone").unwrap();
        layers.unlink_file_at(&root, "d/a").unwrap();
        layers.unlink_file_at(&root, "d/b").unwrap();
        layers.remove_dir_at(&root, "d").unwrap();
        layers.create_dir_at(&root, "d").unwrap();
        write(&layers, "d/z", b"z");
        let mut config = store.config(&base).unwrap().config().clone().unwrap();
        config.set_env(Some(vec!["A=1".into()]));
        let spec = CommitSpec {
            config,
            author: Some("me".into()),
            comment: Some("my msg".into()),
            created_by: "/x.wasm run".into(),
            names: vec!["new:1".parse().unwrap()],
            origin: CommitOrigin {
                container: "c0ffee".into(),
                container_config: Some(serde_json::json!({"Cmd": ["run"]})),
            },
        };
        let record = commit(&store, &base, &layers, spec).unwrap();
        assert_eq!(record.names, ["new:1"]);
        assert_eq!(record.parent, Some(base.id), "the base is the parent");
        let found = origin(&store, &record).unwrap();
        assert_eq!(found.container, "c0ffee");
        assert_eq!(
            found.container_config,
            Some(serde_json::json!({"Cmd": ["run"]}))
        );
        let base_origin = origin(&store, &base).unwrap();
        assert!(base_origin.container.is_empty() && base_origin.container_config.is_none());
        assert_eq!(base.parent, None, "an imported image has no parent");
        let rootfs = store.rootfs_path(&record).unwrap();
        assert_eq!(
            std::fs::read_to_string(rootfs.join("etc/a")).unwrap(),
            "new"
        );
        assert!(
            !rootfs.join("gone").exists(),
            "a deleted file stays deleted"
        );
        assert!(
            !rootfs.join("d/a").exists(),
            "an opaque directory hides the lower"
        );
        assert_eq!(std::fs::read_to_string(rootfs.join("d/z")).unwrap(), "z");
        // The base image is unchanged.
        let base_root = store.rootfs_path(&base).unwrap();
        assert_eq!(
            std::fs::read_to_string(base_root.join("gone")).unwrap(),
            "g"
        );

        let config = store.config(&record).unwrap();
        assert_eq!(config.rootfs().diff_ids().len(), 2);
        assert_eq!(config.author().as_deref(), Some("me"));
        let history = config.history().clone().unwrap();
        let last = history.last().unwrap();
        assert_eq!(last.created_by().as_deref(), Some("/x.wasm run"));
        assert_eq!(last.comment().as_deref(), Some("my msg"));
        assert_eq!(last.empty_layer(), Some(false));
        assert_eq!(
            config.config().as_ref().unwrap().env().as_deref(),
            Some(&["A=1".to_string()][..])
        );
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).unwrap().ino()
    }

    #[test]
    fn the_new_snapshot_links_the_base_files_instead_of_unpacking_them_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, base, layers) = base_image(tmp.path(), &[("big", "b"), ("etc/a", "a")]);
        write(&layers, "etc/a", b"new");
        let spec = CommitSpec {
            created_by: "x".into(),
            ..Default::default()
        };
        let record = commit(&store, &base, &layers, spec).unwrap();
        let (old, new) = (
            store.rootfs_path(&base).unwrap(),
            store.rootfs_path(&record).unwrap(),
        );
        assert_eq!(inode(&old.join("big")), inode(&new.join("big")), "linked");
        assert_ne!(inode(&old.join("etc/a")), inode(&new.join("etc/a")));
        assert_eq!(std::fs::read_to_string(new.join("etc/a")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(old.join("etc/a")).unwrap(), "a");
        let chain = record.chain_id.unwrap();
        assert!(
            store.snapshot_intact(&chain),
            "its digest is the linked tree's"
        );
        assert!(store.snapshot_intact(&base.chain_id.unwrap()));
    }

    #[test]
    fn a_damaged_base_snapshot_is_not_linked_the_layers_are_unpacked() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, base, layers) = base_image(tmp.path(), &[("big", "b")]);
        write(&layers, "n", b"n");
        // A host user changes the base's snapshot behind the store's back.
        let old = store.rootfs_path(&base).unwrap();
        std::fs::write(old.join("big"), "damaged").unwrap();
        let spec = CommitSpec {
            created_by: "x".into(),
            ..Default::default()
        };
        let record = commit(&store, &base, &layers, spec).unwrap();
        let new = store.rootfs_path(&record).unwrap();
        assert_eq!(std::fs::read_to_string(new.join("big")).unwrap(), "b");
        assert_ne!(inode(&old.join("big")), inode(&new.join("big")));
        assert!(store.snapshot_intact(&record.chain_id.unwrap()));
    }

    #[test]
    fn committing_an_unchanged_instance_adds_an_empty_history_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, base, layers) = base_image(tmp.path(), &[("f", "x")]);
        let spec = CommitSpec {
            created_by: "x".into(),
            ..Default::default()
        };
        let record = commit(&store, &base, &layers, spec).unwrap();
        assert!(record.names.is_empty());
        let config = store.config(&record).unwrap();
        assert_eq!(config.rootfs().diff_ids().len(), 1);
        let history = config.history().clone().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].empty_layer(), Some(true));
        assert_eq!(record.chain_id, base.chain_id, "the same rootfs");
    }

    #[test]
    fn a_view_that_never_wrote_adds_no_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = view(tmp.path());
        let store = Store::open(tmp.path().join("store")).unwrap();
        let mut staging = store.staging().unwrap();
        assert!(write_upper_layer(&mut staging, &layers).unwrap().is_none());
    }

    #[test]
    fn a_guest_made_whiteout_name_is_refused_not_committed_as_a_deletion() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = view(tmp.path());
        write(&layers, ".wh.etc", b"x");
        let store = Store::open(tmp.path().join("store")).unwrap();
        let mut staging = store.staging().unwrap();
        let err = write_upper_layer(&mut staging, &layers)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot commit /.wh.etc"), "{err}");
        assert!(err.contains("starting with .wh."), "{err}");
    }

    #[test]
    fn a_file_that_shrinks_while_read_is_an_error() {
        let mut r = Exact::new(&b"abc"[..], 5, "/f");
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("/f shrank"), "{err}");
        let mut r = Exact::new(&b"abcdef"[..], 3, "/f");
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc", "a file that grew gives the size it had");
    }
}
