//! `GET /containers/{id}/json`: a record as Docker's inspect document.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use wrun_api::time::ZERO_TIME;

use super::http::{Body, json};
use super::instance::Container;
use super::record::ContainerRecord;
use crate::lifecycle::Status;
use wrun_api::containers::{ContainerInspect, ContainerState, MountPoint, NetworkSettings};

/// `GET /containers/{id}/json`
pub fn inspect(c: &Arc<Container>) -> Response<Body> {
    let mut view = inspect_view(&c.record());
    view.log_path = c.log.path().display().to_string();
    json(StatusCode::OK, &view)
}

pub fn inspect_view(r: &ContainerRecord) -> ContainerInspect {
    let st = &r.state;
    let mut host_config = r.host_config.clone();
    host_config.network_mode = wrun_api::network::shown_mode(&host_config.network_mode).into();
    let mut config = r.config.clone();
    config.image = r.image.clone();
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
        config,
        mounts: mounts(r),
        network_settings: network_settings(r),
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
        wrun_network: match &grants {
            Ok(g) => crate::grants::describe(g),
            Err(e) => format!("invalid: {e}"),
        },
        ..NetworkSettings::default()
    }
}

pub(crate) fn mounts(r: &ContainerRecord) -> Vec<MountPoint> {
    r.host_config
        .binds
        .iter()
        .flatten()
        .filter_map(|b| wrun_api::parse::BindSpec::parse(b).ok())
        .map(|b| MountPoint {
            kind: "bind".into(),
            source: b.host,
            destination: b.guest,
            mode: if b.read_only { "ro" } else { "rw" }.into(),
            rw: !b.read_only,
        })
        .collect()
}
