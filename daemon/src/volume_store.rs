//! Named volumes in the store (`<root>/volumes/NAME/_data` beside the
//! volume's metadata), which instances mount as binds: making, finding,
//! listing and deleting them, and which volumes an instance's config
//! mounts. The `/volumes` routes are in `volumes.rs`.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use wrun_api::containers::{ContainerConfig, HostConfig, MountPoint};
use wrun_api::parse::{BindSpec, check_volume_name};
use wrun_api::volumes::{LOCAL_DRIVER, Volume};

use crate::error::DaemonError;

/// The volumes' folder under the store root.
const VOLUMES: &str = "volumes";
/// The volume's data, in its folder (Docker's name).
const DATA: &str = "_data";
/// The volume's metadata, in its folder.
const META: &str = "volume.json";
/// A volume being removed is renamed so first: no reader sees half of it.
const REMOVING_PREFIX: &str = ".removing-";

/// Create and remove are one at a time: a removal never races a create
/// of the same name into a half-made volume.
static CHANGES: Mutex<()> = Mutex::new(());

fn changes() -> MutexGuard<'static, ()> {
    CHANGES.lock().unwrap_or_else(|p| p.into_inner())
}

/// What is kept of a volume beside its data.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct VolumeMeta {
    created_at: String,
    labels: Option<BTreeMap<String, String>>,
    /// Made for an instance's unnamed mount point (an image `VOLUME`):
    /// removed with the instance by `rm -v` and `--rm`.
    anonymous: bool,
}

/// The volumes of one store.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    /// The volumes of the store at `store_root` (the folder is made on the
    /// first create).
    pub fn of(store_root: &Path) -> Self {
        Self {
            dir: store_root.join(VOLUMES),
        }
    }

    /// Where the data of volume `name` is: what an instance mounts.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA)
    }

    /// Creates volume `name` (a new anonymous name when `None`); an
    /// existing one is answered as it is, as Docker does.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: Option<BTreeMap<String, String>>,
        anonymous: bool,
    ) -> Result<Volume, DaemonError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => crate::registry::new_id(),
        };
        check_volume_name(&name)
            .map_err(|e| DaemonError::invalid(format!("create {name}: {e}")))?;
        let _changes = changes();
        if let Ok(v) = self.get(&name) {
            return Ok(v);
        }
        let failed = |e: io::Error| DaemonError::Internal(format!("create {name}: {e}"));
        private_dir(&self.dir).map_err(failed)?;
        let vol_dir = self.dir.join(&name);
        private_dir(&vol_dir).map_err(failed)?;
        match std::fs::DirBuilder::new()
            .mode(0o755)
            .create(vol_dir.join(DATA))
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed(e)),
        }
        let meta = VolumeMeta {
            created_at: wrun_image::store::now_rfc3339(),
            labels,
            anonymous,
        };
        let text = serde_json::to_vec(&meta).map_err(|e| failed(io::Error::other(e)))?;
        // The metadata comes last and whole: a volume without it is one a
        // crash interrupted, and is not listed.
        wrun_image::store::write_atomic(&vol_dir.join(META), &text)
            .map_err(|e| DaemonError::Internal(format!("create {name}: {e}")))?;
        self.get(&name)
    }

    /// The directory an instance mounting volume `name` is given; the
    /// volume is made when missing (`-v NAME:/path` creates it, as with
    /// dockerd).
    pub fn mount_source(&self, name: &str) -> Result<PathBuf, DaemonError> {
        self.create(Some(name), None, false)?;
        Ok(self.data_dir(name))
    }

    /// Volume `name`; Docker's 404 `get NAME: no such volume`.
    pub fn get(&self, name: &str) -> Result<Volume, DaemonError> {
        let meta = self
            .meta(name)
            .ok_or_else(|| DaemonError::not_found(format!("get {name}: no such volume")))?;
        Ok(self.view(name, meta))
    }

    /// Whether volume `name` exists (made whole: its metadata written).
    pub fn exists(&self, name: &str) -> bool {
        self.meta(name).is_some()
    }

    fn meta(&self, name: &str) -> Option<VolumeMeta> {
        if check_volume_name(name).is_err() {
            return None;
        }
        let text = std::fs::read(self.dir.join(name).join(META)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn view(&self, name: &str, meta: VolumeMeta) -> Volume {
        Volume {
            created_at: meta.created_at,
            driver: LOCAL_DRIVER.into(),
            labels: meta.labels,
            mountpoint: self.data_dir(name).display().to_string(),
            name: name.to_string(),
            options: None,
            scope: "local".into(),
            usage_data: None,
        }
    }

    /// Whether `name` was made for an instance's unnamed mount point.
    pub fn is_anonymous(&self, name: &str) -> bool {
        self.meta(name).is_some_and(|m| m.anonymous)
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Volume> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| {
                let meta = self.meta(&n)?;
                Some(self.view(&n, meta))
            })
            .collect()
    }

    /// Deletes volume `name` and its data; the caller has checked that no
    /// instance uses it. Returns the bytes freed.
    pub(crate) fn delete(&self, name: &str) -> Result<u64, DaemonError> {
        let _changes = changes();
        // What a removal a crash cut short left goes first.
        self.remove_leftovers();
        let from = self.dir.join(name);
        if self.meta(name).is_none() {
            return Err(DaemonError::not_found(format!(
                "get {name}: no such volume"
            )));
        }
        let size = self.size(name);
        let gone = self.dir.join(format!(
            "{REMOVING_PREFIX}{name}-{}",
            crate::registry::new_id()
        ));
        let failed = |e: io::Error| DaemonError::Internal(format!("remove {name}: {e}"));
        std::fs::rename(&from, &gone).map_err(failed)?;
        std::fs::remove_dir_all(&gone).map_err(failed)?;
        Ok(size)
    }

    /// Bytes of the files in volume `name` (links not followed).
    pub fn size(&self, name: &str) -> u64 {
        wrun_image::store::dir_size(&self.data_dir(name))
    }

    /// Removes what a removal a crash cut short left (the caller holds
    /// [`changes`]: no removal of this process is under way).
    fn remove_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(REMOVING_PREFIX) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Makes `dir` (mode 0700) when missing.
fn private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Made by an older wrun or by hand: private all the same.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

/// A volume an instance mounts, as its request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub name: String,
    pub destination: String,
    pub read_only: bool,
    /// As Docker shows it: the bind's mode as written, else `z`.
    pub mode: String,
}

/// The volumes `host` mounts: `NAME:/path` binds and `volume` mounts.
pub fn mounts_of(host: &HostConfig) -> Vec<VolumeMount> {
    let binds = host.binds.iter().flatten().filter_map(|b| {
        let spec = BindSpec::parse(b).ok()?;
        let name = spec.volume_name()?.to_string();
        Some(VolumeMount {
            name,
            destination: spec.guest,
            read_only: spec.read_only,
            mode: b.split(':').nth(2).unwrap_or("z").into(),
        })
    });
    let mounts = host
        .mounts
        .iter()
        .flatten()
        .filter(|m| m.kind == "volume" && !m.source.is_empty())
        .map(|m| VolumeMount {
            name: m.source.clone(),
            destination: m.target.clone(),
            read_only: m.read_only,
            mode: "z".into(),
        });
    mounts.chain(binds).collect()
}

/// The `Mounts` entries of the volumes `host` mounts, as Docker shows
/// them: Source is the volume's directory in `volumes` (empty without, as
/// in Docker's `ps` rows); an image's anonymous volume has an empty mode.
pub fn mount_points(volumes: Option<&Volumes>, host: &HostConfig) -> Vec<MountPoint> {
    mounts_of(host)
        .into_iter()
        .map(|m| {
            let anonymous = volumes.is_some_and(|v| v.is_anonymous(&m.name)) && m.mode == "z";
            MountPoint {
                kind: "volume".into(),
                source: volumes
                    .map_or_else(String::new, |v| v.data_dir(&m.name).display().to_string()),
                destination: m.destination,
                driver: LOCAL_DRIVER.into(),
                mode: if anonymous { String::new() } else { m.mode },
                rw: !m.read_only,
                propagation: String::new(),
                name: m.name,
            }
        })
        .collect()
}

/// At create: an anonymous volume for each path of `config.Volumes` (the
/// request's and the image's, merged) that nothing in `host` mounts; each
/// becomes a bind `ID:/path` of `host`, so every start finds it.
pub fn add_anonymous(
    volumes: &Volumes,
    config: &ContainerConfig,
    mut host: HostConfig,
) -> Result<HostConfig, DaemonError> {
    let unmounted: Vec<String> = unmounted_volumes(config, &host).cloned().collect();
    // The docker CLI sends `-v x:/out` (a one-letter name, read as a
    // drive) here as it is: no guest path wrun could mount at. Checked
    // before any volume is made.
    if let Some(bad) = unmounted
        .iter()
        .find(|p| !p.starts_with('/') || p.contains(':'))
    {
        return Err(DaemonError::invalid(format!(
            "invalid volume {bad:?}: an anonymous volume's guest path must be absolute (a volume's name has two characters or more)"
        )));
    }
    for path in unmounted {
        let v = volumes.create(None, None, true)?;
        host.binds
            .get_or_insert_with(Vec::new)
            .push(format!("{}:{path}", v.name));
    }
    Ok(host)
}

/// The `Volumes` of `config` nothing in `host` mounts (no bind, mount or
/// tmpfs at that path): where dockerd would make an anonymous volume.
pub fn unmounted_volumes<'a>(
    config: &'a ContainerConfig,
    host: &'a HostConfig,
) -> impl Iterator<Item = &'a String> {
    let mounted = move |path: &str| {
        let path = path.trim_end_matches('/');
        let bound = host
            .binds
            .iter()
            .flatten()
            .any(|b| BindSpec::parse(b).is_ok_and(|s| s.guest.trim_end_matches('/') == path));
        bound
            || host
                .mounts
                .iter()
                .flatten()
                .any(|m| m.target.trim_end_matches('/') == path)
            || host
                .tmpfs
                .as_ref()
                .is_some_and(|t| t.keys().any(|k| k.trim_end_matches('/') == path))
    };
    config
        .volumes
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(move |k| !mounted(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wrun-volumes-{name}-{}-{}",
            std::process::id(),
            crate::registry::new_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn create_get_list_delete_keep_dockers_shape_and_private_dirs() {
        let root = temp_root("cycle");
        let volumes = Volumes::of(&root);
        let labels = Some([("a".to_string(), "b".to_string())].into());
        let v = volumes
            .create(Some("data-1"), labels.clone(), false)
            .unwrap();
        assert_eq!(v.name, "data-1");
        assert_eq!(v.driver, "local");
        assert_eq!(v.scope, "local");
        assert_eq!(v.labels, labels);
        assert_eq!(
            v.mountpoint,
            root.join("volumes/data-1/_data").display().to_string()
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("volumes")), 0o700);
        assert_eq!(mode(&root.join("volumes/data-1")), 0o700);
        // Creating again answers the one there, its labels unchanged.
        let again = volumes.create(Some("data-1"), None, false).unwrap();
        assert_eq!(again, v);
        // A mount of a missing volume makes it.
        assert_eq!(
            volumes.mount_source("made-here").unwrap(),
            volumes.data_dir("made-here")
        );
        assert!(volumes.data_dir("made-here").is_dir() && !volumes.is_anonymous("made-here"));
        volumes.delete("made-here").unwrap();
        let anonymous = volumes.create(None, None, true).unwrap();
        assert_eq!(anonymous.name.len(), 64);
        assert!(volumes.is_anonymous(&anonymous.name) && !volumes.is_anonymous("data-1"));
        let names: Vec<String> = volumes.list().into_iter().map(|v| v.name).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"data-1".to_string()));
        std::fs::write(volumes.data_dir("data-1").join("f"), b"12345").unwrap();
        assert_eq!(volumes.size("data-1"), 5);
        assert_eq!(volumes.delete("data-1").unwrap(), 5);
        assert_eq!(
            volumes.get("data-1").unwrap_err(),
            DaemonError::not_found("get data-1: no such volume")
        );
        assert!(!root.join("volumes/data-1").exists());
        let bad = volumes.create(Some("a/b"), None, false).unwrap_err();
        assert_eq!(bad.status(), hyper::StatusCode::BAD_REQUEST);
        assert!(
            bad.message()
                .starts_with("create a/b: \"a/b\" includes invalid characters")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_volume_a_crash_cut_short_is_not_listed() {
        let root = temp_root("crash");
        let volumes = Volumes::of(&root);
        volumes.create(Some("whole"), None, false).unwrap();
        // No metadata: a create interrupted before its last write.
        std::fs::create_dir_all(root.join("volumes/half/_data")).unwrap();
        std::fs::create_dir_all(root.join("volumes/.removing-old-1/_data")).unwrap();
        let names: Vec<String> = volumes.list().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["whole"]);
        // Creating the half one completes it; the next removal clears
        // what an interrupted one left.
        volumes.create(Some("half"), None, false).unwrap();
        assert_eq!(volumes.list().len(), 2);
        volumes.delete("whole").unwrap();
        assert!(!root.join("volumes/.removing-old-1").exists());
        assert_eq!(volumes.list().len(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn mounts_are_named_binds_and_volume_mounts_with_dockers_modes() {
        let host: HostConfig = serde_json::from_str(
            r#"{"Binds":["/srv:/srv","cache:/c:ro","./rel:/r","data:/d"],
                "Mounts":[{"Type":"volume","Source":"m1","Target":"/m"},{"Type":"bind","Source":"/x","Target":"/x"}]}"#,
        )
        .unwrap();
        let mounts = mounts_of(&host);
        let seen: Vec<(&str, &str, bool, &str)> = mounts
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.destination.as_str(),
                    m.read_only,
                    m.mode.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("m1", "/m", false, "z"),
                ("cache", "/c", true, "ro"),
                ("data", "/d", false, "z")
            ]
        );
    }

    #[test]
    fn unmounted_config_volumes_become_anonymous_binds() {
        let root = temp_root("anon");
        let volumes = Volumes::of(&root);
        let config: ContainerConfig =
            serde_json::from_str(r#"{"Volumes":{"/data":{},"/out":{}}}"#).unwrap();
        let host: HostConfig = serde_json::from_str(r#"{"Binds":["/tmp:/out"]}"#).unwrap();
        let host = add_anonymous(&volumes, &config, host).unwrap();
        let binds = host.binds.clone().unwrap();
        assert_eq!(binds.len(), 2);
        let (name, path) = binds[1].split_once(':').unwrap();
        assert_eq!(path, "/data");
        assert!(volumes.is_anonymous(name));
        // A path that cannot be mounted is refused before any volume is made.
        let odd: ContainerConfig =
            serde_json::from_str(r#"{"Volumes":{"/a":{},"x:/out":{}}}"#).unwrap();
        let err = add_anonymous(&volumes, &odd, HostConfig::default()).unwrap_err();
        assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST);
        assert_eq!(volumes.list().len(), 1);
        let points = mount_points(Some(&volumes), &host);
        let data = points.iter().find(|p| p.destination == "/data").unwrap();
        assert_eq!((data.kind.as_str(), data.mode.as_str()), ("volume", ""));
        assert_eq!(data.source, volumes.data_dir(name).display().to_string());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
