//! Named volumes: directories in the store (`<root>/volumes/NAME/_data`
//! beside the volume's metadata), which instances mount as binds; and the
//! `/volumes` routes, in Docker's shapes and words.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use wrun_api::containers::{ContainerConfig, HostConfig, MountPoint};
use wrun_api::parse::{BindSpec, Filters};
use wrun_api::volumes::{
    LOCAL_DRIVER, Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse,
    check_volume_name,
};

use crate::error::DaemonError;
use crate::http::{Body, Query, empty, json, parse_json, query_filters, read_body};
use crate::record::ContainerRecord;
use crate::state::Daemon;

/// The volumes' folder under the store root.
const VOLUMES: &str = "volumes";
/// The volume's data, in its folder (Docker's name).
const DATA: &str = "_data";
/// The volume's metadata, in its folder.
const META: &str = "volume.json";
/// A volume being removed is renamed so first: no reader sees half of it.
const REMOVING_PREFIX: &str = ".removing-";

/// The filters of `GET /volumes` and of `POST /volumes/prune` (API 1.41).
const LIST_FILTERS: &[&str] = &["dangling", "name", "driver", "label"];
const PRUNE_FILTERS: &[&str] = &["label", "label!"];

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
    fn delete(&self, name: &str) -> Result<u64, DaemonError> {
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
    let unmounted: Vec<String> = crate::launch::unmounted_volumes(config, &host)
        .cloned()
        .collect();
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

/// After an instance is removed with `-v` or by `--rm`: its anonymous
/// volumes that no other instance mounts go with it, as in Docker.
pub fn remove_anonymous(daemon: &Daemon, removed: &ContainerRecord) {
    let volumes = Volumes::of(daemon.store.root());
    for m in mounts_of(&removed.host_config) {
        if !volumes.is_anonymous(&m.name) || !users(daemon, &m.name).is_empty() {
            continue;
        }
        if let Err(e) = volumes.delete(&m.name) {
            eprintln!("wrun daemon: removing volume {}: {e}", m.name);
        }
    }
}

/// [`remove_anonymous`] on a blocking thread: for an `--rm` instance
/// whose run has just ended.
pub fn remove_anonymous_later(daemon: &Arc<Daemon>, removed: ContainerRecord) {
    if mounts_of(&removed.host_config).is_empty() {
        return;
    }
    let d = Arc::clone(daemon);
    tokio::task::spawn_blocking(move || remove_anonymous(&d, &removed));
}

/// The instances (IDs, oldest first as listed) that mount volume `name`,
/// stopped ones too.
fn users(daemon: &Daemon, name: &str) -> Vec<String> {
    daemon
        .all()
        .iter()
        .filter(|c| {
            mounts_of(&c.lock().record.host_config)
                .iter()
                .any(|m| m.name == name)
        })
        .map(|c| c.id.clone())
        .collect()
}

/// How many instances mount each volume.
pub(crate) fn ref_counts(daemon: &Daemon) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for c in daemon.all() {
        for m in mounts_of(&c.lock().record.host_config) {
            *counts.entry(m.name).or_insert(0) += 1;
        }
    }
    counts
}

/// Runs volume work on a blocking thread; a panic there is a 500.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DaemonError> + Send + 'static,
) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("volume operation failed: {e}"))?
}

/// `GET /volumes?filters=`: `dangling`, `name` (a part of the name),
/// `driver`, `label` (all must match), by name.
pub async fn list(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = query_filters(query.get("filters"), LIST_FILTERS)?;
    let dangling = filters
        .bool_value("dangling")
        .map_err(DaemonError::invalid)?;
    let d = Arc::clone(daemon);
    let volumes = blocking(move || {
        let counts = ref_counts(&d);
        Ok(Volumes::of(d.store.root())
            .list()
            .into_iter()
            .filter(|v| {
                dangling.is_none_or(|want| want != counts.contains_key(&v.name))
                    && passes(&filters, v)
            })
            .collect())
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &VolumeListResponse {
            volumes,
            warnings: None,
        },
    ))
}

/// The `name`, `driver` and `label` filters.
fn passes(filters: &Filters, v: &Volume) -> bool {
    let labels = v.labels.clone().unwrap_or_default();
    (!filters.contains("name") || filters.values("name").any(|n| v.name.contains(n)))
        && (!filters.contains("driver") || filters.values("driver").any(|d| d == v.driver))
        && filters.match_labels("label", |k| labels.get(k).map(String::as_str))
}

/// `POST /volumes/create`: 201 with the volume (an existing one as it is).
/// Only the `local` driver, without options: wrun mounts nothing, a
/// volume is a directory of the store.
pub async fn create(
    daemon: &Arc<Daemon>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let body = read_body(req).await?;
    let request: VolumeCreateRequest = parse_json(&body)?;
    let name = Some(request.name.clone()).filter(|n| !n.is_empty());
    let shown = name.clone().unwrap_or_default();
    if !matches!(request.driver.as_str(), "" | LOCAL_DRIVER) {
        // dockerd's words when it has no such plugin.
        return Err(DaemonError::not_found(format!(
            "create {shown}: error looking up volume plugin {0}: plugin \"{0}\" not found",
            request.driver
        )));
    }
    if let Some(opts) = request.driver_opts.as_ref().filter(|o| !o.is_empty()) {
        let keys: Vec<&str> = opts.keys().map(String::as_str).collect();
        return Err(DaemonError::invalid(format!(
            "create {shown}: volume options ({}) are not supported: a wrun volume is a directory of the store, nothing is mounted (leave -o out)",
            keys.join(", ")
        )));
    }
    let volumes = Volumes::of(daemon.store.root());
    let v = blocking(move || volumes.create(name.as_deref(), request.labels, false)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// `GET /volumes/{name}`: 404 `get NAME: no such volume` when unknown.
pub async fn inspect(daemon: &Arc<Daemon>, name: String) -> Result<Response<Body>, DaemonError> {
    let volumes = Volumes::of(daemon.store.root());
    let v = blocking(move || volumes.get(&name)).await?;
    Ok(json(StatusCode::OK, &v))
}

/// `DELETE /volumes/{name}?force=`: 204; 409 `remove NAME: volume is in
/// use - [IDS]` while an instance (even a stopped one) mounts it; with
/// `force`, a missing volume is no error (it is still refused in use, as
/// dockerd refuses it).
pub async fn remove(
    daemon: &Arc<Daemon>,
    name: String,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let force = query.flag("force");
    let d = Arc::clone(daemon);
    blocking(move || {
        let volumes = Volumes::of(d.store.root());
        if volumes.meta(&name).is_none() {
            if force {
                return Ok(());
            }
            return Err(DaemonError::not_found(format!(
                "get {name}: no such volume"
            )));
        }
        let users = users(&d, &name);
        if !users.is_empty() {
            return Err(DaemonError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        match volumes.delete(&name) {
            Ok(_) => Ok(()),
            Err(DaemonError::NotFound(_)) if force => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune?filters=`: every volume no instance mounts (API
/// 1.41's rule: named ones too) that the `label`/`label!` filters select.
pub async fn prune(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = query_filters(query.get("filters"), PRUNE_FILTERS)?;
    let d = Arc::clone(daemon);
    let answer = blocking(move || {
        let volumes = Volumes::of(d.store.root());
        let mut answer = VolumePruneResponse::default();
        for v in volumes.list() {
            let labels = v.labels.clone().unwrap_or_default();
            let label = |k: &str| labels.get(k).map(String::as_str);
            let excluded = filters.contains("label!")
                && filters
                    .values("label!")
                    .any(|want| match want.split_once('=') {
                        Some((k, val)) => label(k) == Some(val),
                        None => label(want).is_some(),
                    });
            if !filters.match_labels("label", label) || excluded || !users(&d, &v.name).is_empty() {
                continue;
            }
            match volumes.delete(&v.name) {
                Ok(bytes) => {
                    answer.space_reclaimed += bytes;
                    answer.volumes_deleted.push(v.name);
                }
                Err(DaemonError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(answer)
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
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
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
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
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(volumes.list().len(), 1);
        let points = mount_points(Some(&volumes), &host);
        let data = points.iter().find(|p| p.destination == "/data").unwrap();
        assert_eq!((data.kind.as_str(), data.mode.as_str()), ("volume", ""));
        assert_eq!(data.source, volumes.data_dir(name).display().to_string());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
