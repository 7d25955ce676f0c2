//! `GET /containers/{id}/json`: a record as Docker's inspect document.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use wrun_api::time::ZERO_TIME;

use super::http::{Body, Query, json};
use super::instance::Container;
use super::record::ContainerRecord;
use super::state::Daemon;
use crate::lifecycle::Status;
use wrun_api::containers::{
    ContainerInspect, ContainerState, DEFAULT_LOG_DRIVER, GraphDriver, LegacyEndpoint, MountPoint,
    NetworkSettings,
};

/// `GET /containers/{id}/json?size=`: with `size`, `SizeRw` (the bytes
/// of the files the instance wrote over its image) and `SizeRootFs` (the
/// image's size plus those), as Docker adds them.
pub fn inspect(daemon: &Daemon, c: &Arc<Container>, query: &Query) -> Response<Body> {
    let r = c.record();
    let mut view = inspect_view(&r);
    // A volume's Source is its directory in this daemon's store.
    let volumes = crate::volume_store::Volumes::of(daemon.store.root());
    view.mounts = mounts_at(&r, Some(&volumes));
    view.log_path = c.log.path().display().to_string();
    view.exec_ids = daemon.execs.ids_of(c);
    view.network_settings.networks = daemon.networks.endpoints_of(&r.id);
    let upper = daemon.rootfs.upper_path(&r.id);
    view.graph_driver.data = graph_driver_data(daemon, &r, &upper);
    if query.flag("size") {
        let image = crate::image_views::find(&daemon.store, &r.image_id)
            .map_or(0, |i| i64::try_from(i.size).unwrap_or(i64::MAX));
        let written = i64::try_from(crate::rootfs_views::upper_bytes(&upper)).unwrap_or(i64::MAX);
        view.size_rw = Some(written);
        view.size_root_fs = Some(image.saturating_add(written));
    }
    json(StatusCode::OK, &view)
}

/// `GraphDriver.Data`, overlay2's keys for what wrun has: the image
/// snapshot the view reads (`LowerDir`), the instance's files over it
/// (`UpperDir`, made at its first write) and its copy-ups in progress
/// (`WorkDir`). No `MergedDir`: the merged view is served to the guest by
/// wrun, never mounted.
fn graph_driver_data(
    daemon: &Daemon,
    r: &ContainerRecord,
    upper: &std::path::Path,
) -> std::collections::BTreeMap<String, String> {
    let mut data = std::collections::BTreeMap::new();
    if let Some(lower) = daemon
        .store
        .find(&r.image_id)
        .ok()
        .and_then(|i| daemon.store.rootfs_path(&i))
    {
        data.insert("LowerDir".to_owned(), lower.display().to_string());
    }
    // The upper path is the tree; the copy-up area sits beside it.
    if let Ok(parts) = wrun_rootfs::UpperParts::of(upper) {
        for (key, dir) in [("UpperDir", parts.tree), ("WorkDir", parts.work)] {
            data.insert(key.to_owned(), dir.display().to_string());
        }
    }
    data
}

pub fn inspect_view(r: &ContainerRecord) -> ContainerInspect {
    let st = &r.state;
    let mut host_config = r.host_config.clone();
    host_config.network_mode = wrun_api::network::shown_mode(&host_config.network_mode).into();
    if host_config.runtime.is_empty() {
        host_config.runtime = crate::system::RUNTIME.into();
    }
    if host_config.log_config.kind.is_empty() {
        // Records from before create stored the driver: the log was always
        // this one.
        host_config.log_config.kind = DEFAULT_LOG_DRIVER.into();
    }
    // dockerd lists the /proc and /sys paths it hides; an instance sees no
    // /proc or /sys at all, so nothing there is masked or made read-only.
    host_config.masked_paths.get_or_insert_with(Vec::new);
    host_config.readonly_paths.get_or_insert_with(Vec::new);
    let mut config = r.config.clone();
    config.image = r.image.clone();
    if config
        .entrypoint
        .as_deref()
        .is_some_and(|e| matches!(e, [only] if only.is_empty()))
    {
        // `--entrypoint ""`: kept in the record so a start runs it the
        // same way, shown as Docker shows it.
        config.entrypoint = None;
    }
    if config.hostname.is_empty() {
        config.hostname = r.id.chars().take(12).collect();
    }
    ContainerInspect {
        id: r.id.clone(),
        created: r.created.clone(),
        path: r.path.clone(),
        args: r.args.clone(),
        state: ContainerState {
            status: if st.restarting {
                "restarting".into()
            } else {
                st.status.as_str().into()
            },
            running: st.is_live(),
            restarting: st.restarting,
            paused: st.status == Status::Paused,
            oom_killed: st.oom_killed,
            pid: if st.is_live() {
                i64::from(std::process::id())
            } else {
                0
            },
            exit_code: st.exit_code,
            error: st.error.clone(),
            started_at: st.started_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
            finished_at: st.finished_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
            ..ContainerState::default()
        },
        image: r.image_id.clone(),
        log_path: String::new(),
        name: format!("/{}", r.name),
        restart_count: r.restart_count,
        driver: "wasm".into(),
        platform: "wasi".into(),
        host_config,
        graph_driver: GraphDriver {
            name: "wasm".into(),
            ..GraphDriver::default()
        },
        size_rw: None,
        size_root_fs: None,
        config,
        mounts: mounts(r),
        network_settings: network_settings(r),
        ..ContainerInspect::default()
    }
}

/// The ports a live instance published, as they landed on the host.
pub(crate) fn published(r: &ContainerRecord) -> Vec<wrun_runtime::PortMapping> {
    if !r.state.is_live() {
        return Vec::new();
    }
    r.state
        .published
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn network_settings(r: &ContainerRecord) -> NetworkSettings {
    let grants = crate::grants::grants(&r.config, &r.host_config);
    NetworkSettings {
        ports: crate::grants::settings_ports(&r.config, &published(r)),
        endpoint: Some(LegacyEndpoint::default()),
        wrun_network: match &grants {
            Ok(g) => crate::grants::describe(g),
            Err(e) => format!("invalid: {e}"),
        },
        ..NetworkSettings::default()
    }
}

/// `Mounts`: each volume, bind (`Binds`, then bind `Mounts`) and tmpfs
/// `Mounts` entry, as Docker lists them (`--tmpfs` is not listed, as in
/// Docker). A volume's Source is empty, as in Docker's `ps` rows.
pub(crate) fn mounts(r: &ContainerRecord) -> Vec<MountPoint> {
    mounts_at(r, None)
}

/// [`mounts`], a volume's Source its directory in `volumes` when given.
fn mounts_at(
    r: &ContainerRecord,
    volumes: Option<&crate::volume_store::Volumes>,
) -> Vec<MountPoint> {
    let binds = r.host_config.binds.iter().flatten().filter_map(|b| {
        let spec = wrun_api::parse::BindSpec::parse(b).ok()?;
        if spec.volume_name().is_some() {
            return None;
        }
        Some(MountPoint {
            kind: "bind".into(),
            source: spec.host,
            destination: spec.guest,
            // As written after the second colon: "" when not given.
            mode: b.split(':').nth(2).unwrap_or("").into(),
            rw: !spec.read_only,
            propagation: "rprivate".into(),
            ..MountPoint::default()
        })
    });
    let mounts = r
        .host_config
        .mounts
        .iter()
        .flatten()
        .filter(|m| m.kind != "volume")
        .map(|m| MountPoint {
            kind: m.kind.clone(),
            source: m.source.clone(),
            destination: m.target.clone(),
            mode: String::new(),
            rw: !m.read_only,
            propagation: if m.kind == "bind" {
                "rprivate".into()
            } else {
                String::new()
            },
            ..MountPoint::default()
        });
    let volumes = crate::volume_store::mount_points(volumes, &r.host_config);
    volumes.into_iter().chain(mounts).chain(binds).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_before_the_merge_reads_and_shows_dockers_shape() {
        // As a daemon before Docker's create merge wrote it: the request's
        // Config alone, no log driver, a bind without a mode.
        let old = r#"{"id":"0123456789abcdef","name":"old","created":"2026-01-01T00:00:00Z",
            "image":"hello:1.0","image_id":"sha256:00","path":"/hello.wasm","args":["x"],
            "config":{"Image":"hello:1.0","Cmd":["x"]},
            "host_config":{"Binds":["/srv:/data","/srv:/ro:ro"],"LogConfig":{"Type":"","Config":{}}},
            "state":{"status":"exited","exit_code":0},"restart_count":0}"#;
        let r: ContainerRecord = serde_json::from_str(old).unwrap();
        let v = serde_json::to_value(inspect_view(&r)).unwrap();
        assert_eq!(v["HostConfig"]["LogConfig"]["Type"], DEFAULT_LOG_DRIVER);
        assert_eq!(v["HostConfig"]["Runtime"], "wasmtime");
        assert_eq!(v["Config"]["Cmd"], serde_json::json!(["x"]));
        assert_eq!(v["Config"]["Hostname"], "0123456789ab");
        assert_eq!(v["Mounts"][0]["Mode"], "");
        assert_eq!(v["Mounts"][1]["Mode"], "ro");
        assert_eq!(v["Mounts"][1]["RW"], false);
        assert_eq!(v["NetworkSettings"]["IPAddress"], "");
        assert!(v.get("SizeRw").is_none());
    }

    #[test]
    fn an_entrypoint_reset_is_shown_as_null() {
        let mut r: ContainerRecord = serde_json::from_str(
            r#"{"id":"a","name":"n","created":"","image":"i","image_id":"","path":"","args":[],
                "config":{},"host_config":{},"state":{},"restart_count":0}"#,
        )
        .unwrap();
        r.config.entrypoint = Some(vec![String::new()]);
        let v = serde_json::to_value(inspect_view(&r)).unwrap();
        assert_eq!(v["Config"]["Entrypoint"], serde_json::Value::Null);
    }
}
