//! Each instance's writable rootfs: one copy-on-write view
//! (`wrun_rootfs::Layers`) per record, its upper at
//! `<root>/containers/layers/<id>` (the parts the view makes beside it,
//! `<id>.work` and `<id>.whiteouts`, go with it), the image snapshots
//! below shared.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use anyhow::Context;
use cap_std::fs::Dir;
use wrun_rootfs::{Layers, UpperOptions, WeakLayers};

use crate::error::DaemonError;

/// The directory of the uppers under `<root>/containers`.
pub(crate) const LAYERS: &str = "layers";

/// What an upper being removed is renamed to first (`<id>.removing`), so
/// the instance's path is free at once and the tree goes in the background.
const REMOVING: &str = ".removing";

/// A size of 0 (`--storage-opt size=0`, as in Docker): no limit.
const NO_LIMIT: u64 = 0;

/// The writable rootfs of a `HostConfig.StorageOpt`: its `size` (Docker's
/// only key for overlay2: bytes the instance may write over its image,
/// `10G`, `512m`, `0` for none). `Ok(None)`: none asked. Any other key is
/// refused in dockerd's words (`Unknown option KEY`).
pub fn storage_size(opts: Option<&BTreeMap<String, String>>) -> Result<Option<u64>, DaemonError> {
    let mut size = None;
    for (key, value) in opts.into_iter().flatten() {
        match key.to_ascii_lowercase().as_str() {
            "size" => size = Some(parse_size(value).map_err(DaemonError::invalid)?),
            _ => return Err(DaemonError::invalid(format!("Unknown option {key}"))),
        }
    }
    Ok(size.filter(|&s| s != NO_LIMIT))
}

/// A size as Docker's `units.RAMInBytes` reads it (`0` allowed: no limit).
pub fn parse_size(value: &str) -> Result<u64, String> {
    if value.trim().parse::<u64>() == Ok(0) {
        return Ok(NO_LIMIT);
    }
    wrun_api::parse::parse_memory(value).map_err(|e| format!("invalid storage option size: {e}"))
}

/// The daemon's views: where the uppers live, the open snapshot
/// directories shared by every view over them, the default size limit.
pub(crate) struct RootfsViews {
    layers_dir: PathBuf,
    /// Snapshot rootfs path → its open directory, while a view holds it.
    lowers: Mutex<HashMap<PathBuf, Weak<Dir>>>,
    /// `wrun daemon --storage-opt size=`: the limit of an instance that
    /// asks for none ([`NO_LIMIT`]: none).
    default_size: AtomicU64,
}

impl RootfsViews {
    /// The views of the daemon keeping its instances in `containers_dir`;
    /// makes `layers/` (0700) and removes the uppers of instances not in
    /// `live` (removed while the daemon was down, or a removal cut short).
    pub(crate) fn open(
        containers_dir: &Path,
        live: &dyn Fn(&str) -> bool,
    ) -> anyhow::Result<RootfsViews> {
        let layers_dir = containers_dir.join(LAYERS);
        wrun_image::store::create_private_dir_all(&layers_dir)
            .with_context(|| format!("creating {}", layers_dir.display()))?;
        let entries = std::fs::read_dir(&layers_dir)
            .with_context(|| format!("listing {}", layers_dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            // `<id>.work` and `<id>.whiteouts` live and go with `<id>`.
            if !live(&wrun_rootfs::upper_name_of(&name).to_string_lossy()) {
                remove_tree(&entry.path());
            }
        }
        Ok(RootfsViews {
            layers_dir,
            lowers: Mutex::new(HashMap::new()),
            default_size: AtomicU64::new(NO_LIMIT),
        })
    }

    /// Sets the size limit of instances that ask for none.
    pub(crate) fn set_default_size(&self, size: Option<u64>) {
        self.default_size
            .store(size.unwrap_or(NO_LIMIT), Ordering::Relaxed);
    }

    /// The limit of an instance that asks for `asked`.
    fn size_limit(&self, asked: Option<u64>) -> Option<u64> {
        asked.or_else(|| Some(self.default_size.load(Ordering::Relaxed)).filter(|&s| s != NO_LIMIT))
    }

    /// Where the upper of instance `id` lives (created on its first write).
    pub(crate) fn upper_path(&self, id: &str) -> PathBuf {
        self.layers_dir.join(id)
    }

    fn lowers(&self) -> MutexGuard<'_, HashMap<PathBuf, Weak<Dir>>> {
        // Inserts and removes are single calls: usable after a panic.
        self.lowers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open snapshot directory at `rootfs`, shared with every view over
    /// it; opened afresh when the path names another directory now (a
    /// snapshot repaired by a new load).
    fn lower(&self, rootfs: &Path) -> anyhow::Result<Arc<Dir>> {
        let now = rustix::fs::stat(rootfs)
            .with_context(|| format!("opening the image rootfs {}", rootfs.display()))?;
        let mut lowers = self.lowers();
        if let Some(dir) = lowers.get(rootfs).and_then(Weak::upgrade)
            && rustix::fs::fstat(&*dir)
                .is_ok_and(|st| (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino))
        {
            return Ok(dir);
        }
        let dir = Arc::new(open_image_rootfs(rootfs)?);
        // Entries of snapshots no view holds any more go as new ones come.
        lowers.retain(|_, d| d.strong_count() > 0);
        lowers.insert(rootfs.to_path_buf(), Arc::downgrade(&dir));
        Ok(dir)
    }

    /// Opens the view of instance `id` over the snapshot at `rootfs`:
    /// `held` again when the record holds it weakly (the same upper, size
    /// limit and count; the live view if anyone has it), else a new one
    /// with the size limit `asked` (or the daemon's default), read-only for
    /// a `--read-only` instance (`HostConfig.ReadonlyRootfs`: its runs,
    /// execs and verbs see the image, and any change is EROFS). Loads an
    /// upper left by an earlier run or daemon. Blocking (it may read the
    /// upper's journal and count its bytes).
    pub(crate) fn open_view(
        &self,
        id: &str,
        rootfs: &Path,
        asked: Option<u64>,
        read_only: bool,
        held: Option<&WeakLayers>,
    ) -> anyhow::Result<Layers> {
        let lower = self.lower(rootfs)?;
        let upper = self.upper_path(id);
        match held {
            Some(held) => held.reopen(lower),
            None if read_only => Layers::open_read_only(lower, &upper),
            None => Layers::open(
                lower,
                &upper,
                UpperOptions {
                    size_limit: self.size_limit(asked),
                },
            ),
        }
        .with_context(|| {
            format!(
                "opening the writable rootfs of instance {id} at {}",
                upper.display()
            )
        })
    }

    /// Removes the upper of instance `id` with its parts: renamed away at
    /// once (its path is free, a daemon restart removes what is left),
    /// removed on a blocking thread.
    pub(crate) fn remove_upper(&self, id: &str) {
        let upper = self.upper_path(id);
        let doomed = self.layers_dir.join(format!("{id}{REMOVING}"));
        match wrun_rootfs::rename_upper(&upper, &doomed) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                eprintln!(
                    "wrun daemon: removing the writable rootfs {}: {e}",
                    upper.display()
                );
                return;
            }
        }
        let remove = move || {
            if let Err(e) = wrun_rootfs::remove_upper(&doomed) {
                eprintln!(
                    "wrun daemon: removing the writable rootfs {}: {e}",
                    doomed.display()
                );
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(remove);
            }
            Err(_) => remove(),
        }
    }
}

/// Removes a directory tree of the store (symlinks in it are removed, never
/// followed), saying so when it cannot.
fn remove_tree(path: &Path) {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = removed {
        eprintln!("wrun daemon: removing {}: {e}", path.display());
    }
}

/// Bytes of file data in an upper's tree (the upper path itself), each
/// inode counted once, symlinks not followed: what Docker shows as
/// `SizeRw`. 0 when the instance never wrote.
pub(crate) fn upper_bytes(upper: &Path) -> u64 {
    let Ok(tree) = open_image_rootfs(upper) else {
        return 0;
    };
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![tree];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = dir.entries() else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if let Ok(sub) = entry.open_dir() {
                    stack.push(sub);
                }
            } else if meta.is_file() {
                use cap_std::fs::MetadataExt;
                if seen.insert((meta.dev(), meta.ino())) {
                    total = total.saturating_add(meta.len());
                }
            }
        }
    }
    total
}

/// A read-only view of the image snapshot at `rootfs` for a run that keeps
/// no record (a foreground `wrun run --read-only`): the guest's changes are
/// EROFS, as under the daemon. `upper` is never made; it only names the
/// view (`Layers::upper_path`).
pub fn read_only_view(rootfs: &Path, upper: &Path) -> anyhow::Result<Layers> {
    let lower = Arc::new(open_image_rootfs(rootfs)?);
    Layers::open_read_only(lower, upper)
        .with_context(|| format!("opening the read-only rootfs {}", rootfs.display()))
}

/// Opens a directory by its path: an image snapshot's rootfs (what the
/// module is read through, and the lower of every writable view over it),
/// an upper's tree, or a volume's or bind's directory (checked first, for
/// `cp`). The daemon's one use of ambient authority; everything below it is
/// reached through the handle.
pub(crate) fn open_image_rootfs(rootfs: &Path) -> anyhow::Result<cap_std::fs::Dir> {
    cap_std::fs::Dir::open_ambient_dir(rootfs, cap_std::ambient_authority())
        .with_context(|| format!("opening the image rootfs {}", rootfs.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn storage_opt_takes_dockers_size_and_refuses_other_keys_in_its_words() {
        assert_eq!(storage_size(None).unwrap(), None);
        assert_eq!(storage_size(Some(&opts(&[]))).unwrap(), None);
        for (given, bytes) in [
            ("10G", Some(10 << 30)),
            ("1m", Some(1 << 20)),
            ("512kb", Some(512 << 10)),
            ("4096", Some(4096)),
            ("0", None),
        ] {
            assert_eq!(
                storage_size(Some(&opts(&[("size", given)]))).unwrap(),
                bytes,
                "{given}"
            );
        }
        assert_eq!(
            storage_size(Some(&opts(&[("Size", "1g")]))).unwrap(),
            Some(1 << 30),
            "dockerd lowercases the key"
        );
        assert_eq!(
            storage_size(Some(&opts(&[("foo", "bar")]))).unwrap_err(),
            DaemonError::invalid("Unknown option foo")
        );
        for bad in ["abc", "", "-1", "1x", "1.5.5g"] {
            let e = storage_size(Some(&opts(&[("size", bad)]))).unwrap_err();
            assert!(
                e.message().starts_with("invalid storage option size: "),
                "{bad}: {e}"
            );
            assert!(!e.message().contains('\n'), "one line");
        }
    }

    #[test]
    fn uppers_of_instances_that_are_gone_are_removed_at_open_and_removal_frees_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = tmp.path().join(LAYERS);
        for dir in [
            "live/a",
            "live.work",
            "gone/b",
            "gone.work",
            "cut.removing",
            "cut.removing.work",
        ] {
            std::fs::create_dir_all(layers.join(dir)).unwrap();
        }
        for file in ["live.whiteouts", "gone.whiteouts", "cut.removing.whiteouts"] {
            std::fs::write(layers.join(file), b"").unwrap();
        }
        let views = RootfsViews::open(tmp.path(), &|id| id == "live").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&layers)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["live", "live.whiteouts", "live.work"]);
        std::fs::write(layers.join("live/a/f"), b"12345").unwrap();
        std::fs::hard_link(layers.join("live/a/f"), layers.join("live/g")).unwrap();
        std::os::unix::fs::symlink("/", layers.join("live/out")).unwrap();
        assert_eq!(
            upper_bytes(&views.upper_path("live")),
            5,
            "one inode, no symlink followed"
        );
        assert_eq!(upper_bytes(&views.upper_path("never")), 0);
        views.remove_upper("live");
        assert!(!views.upper_path("live").exists());
        assert!(std::fs::read_dir(&layers).unwrap().next().is_none());
        views.remove_upper("never-wrote");
    }

    fn read(view: &Layers, path: &str) -> String {
        let o = wrun_rootfs::OpenOptions {
            read: true,
            ..Default::default()
        };
        let Ok(wrun_rootfs::Opened::File(f)) = view.open_at(&view.root(), path, &o) else {
            return format!("no {path}");
        };
        let mut buf = vec![0; 256];
        let n = f.read_at(&mut buf, 0).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn write(view: &Layers, path: &str, data: &str) {
        let o = wrun_rootfs::OpenOptions {
            write: true,
            create: true,
            truncate: true,
            ..Default::default()
        };
        let Ok(wrun_rootfs::Opened::File(f)) = view.open_at(&view.root(), path, &o) else {
            panic!("{path} not opened for writing")
        };
        f.write_at(data.as_bytes(), 0).unwrap();
    }

    /// What diff, export, cp and commit rely on: the view a verb gets is
    /// the one the instance's runs write through, before, during and after
    /// them; a removed instance has none, and its upper is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_verbs_and_the_runs_of_an_instance_share_its_one_view() {
        use wrun_api::containers::{ContainerConfig, HostConfig};
        let dir = tempfile::tempdir().unwrap();
        let store = wrun_image::Store::open(dir.path()).unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        let fsh = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fsh/fsh.wasm");
        std::fs::copy(fsh, ctx.join("fsh.wasm")).unwrap();
        std::fs::write(ctx.join("motd"), "image").unwrap();
        std::fs::write(
            ctx.join("wrun.toml"),
            "name = \"fsh\"\nmodule = \"fsh.wasm\"\n\n[[copy]]\nsrc = \"motd\"\ndest = \"/motd\"\n",
        )
        .unwrap();
        let request = wrun_bundler::BuildRequest {
            context: ctx,
            tags: vec!["fsh:1".parse().unwrap()],
            ..Default::default()
        };
        wrun_bundler::build(&store, &request).unwrap();
        let runtime = wrun_runtime::Runtime::new(wrun_runtime::RuntimeConfig {
            max_instances: 4,
            max_memory_per_instance: 64 << 20,
            ..wrun_runtime::RuntimeConfig::default()
        })
        .unwrap();
        let d = crate::state::Daemon::load(store, runtime, dir.path().join("s.sock")).unwrap();
        let cmd = [
            "append", "/f", "run", ";", "cp", "/g", "/h", ";", "rm", "/seen", ";", "cp", "/motd",
            "/seen",
        ];
        let c = d
            .create(
                Some("shared".into()),
                ContainerConfig {
                    image: "fsh:1".into(),
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    ..ContainerConfig::default()
                },
                HostConfig::default(),
            )
            .unwrap();
        assert_eq!(
            d.rootfs_view("nope").unwrap_err(),
            DaemonError::no_such_container("nope")
        );
        // A verb before any run: what it writes, the run reads.
        let view = d.rootfs_view("shared").unwrap();
        write(&view, "g", "from the verb");
        let mut rx = c.watch();
        d.start(&c).await.unwrap();
        rx.wait_for(|l| l.exits >= 1).await.unwrap();
        assert_eq!(read(&view, "seen"), "image");
        // A deletion of an image file through the verb's view is a
        // whiteout the next run's view must know of: the same view.
        let again = d.rootfs_view("shared").unwrap();
        view.unlink_file_at(&view.root(), "motd").unwrap();
        assert_eq!(read(&again, "motd"), "no motd", "two views of one upper");
        d.start(&c).await.unwrap();
        rx.wait_for(|l| l.exits >= 2).await.unwrap();
        assert_eq!(read(&view, "seen"), "no seen", "the run saw /motd");
        // What the runs wrote, the verb's view (and a later one) reads.
        assert_eq!(read(&view, "f"), "runrun");
        assert_eq!(read(&view, "h"), "from the verb");
        assert_eq!(read(&d.rootfs_view(&c.id[..12]).unwrap(), "f"), "runrun");
        let upper = d.rootfs.upper_path(&c.id);
        assert!(upper.join("f").is_file());
        d.remove(&c, false).await.unwrap();
        assert!(!upper.exists(), "rm removes the upper");
        assert_eq!(
            d.container_rootfs(&c).unwrap_err(),
            DaemonError::no_such_container(&c.id)
        );
    }

    #[test]
    fn views_over_one_snapshot_share_one_directory_and_a_default_limit_applies() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        std::fs::write(rootfs.join("f"), b"lower").unwrap();
        let views = RootfsViews::open(tmp.path(), &|_| true).unwrap();
        let a = views.lower(&rootfs).unwrap();
        let b = views.lower(&rootfs).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        views.set_default_size(Some(3));
        assert_eq!(views.size_limit(None), Some(3));
        assert_eq!(views.size_limit(Some(10)), Some(10));
        let view = views.open_view("x", &rootfs, None, false, None).unwrap();
        assert!(!view.has_upper(), "nothing made before the first write");
        assert!(!views.upper_path("x").exists());
        let o = wrun_rootfs::OpenOptions {
            write: true,
            create: true,
            ..Default::default()
        };
        let wrun_rootfs::Opened::File(f) = view.open_at(&view.root(), "new", &o).unwrap() else {
            panic!("a file")
        };
        assert!(matches!(
            f.write_at(b"four", 0),
            Err(wrun_rootfs::Error::NoSpace)
        ));
        assert!(views.upper_path("x").is_dir());
        assert_eq!(std::fs::read(rootfs.join("f")).unwrap(), b"lower");
    }
}
