//! The `/volumes` routes, in Docker's shapes and words, over the volumes
//! of the store (`volume_store.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use wrun_api::parse::Filters;
use wrun_api::volumes::{
    LOCAL_DRIVER, Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse,
};

use crate::error::DaemonError;
use crate::http::{Body, Query, empty, json, parse_json, query_filters, read_body};
use crate::images::blocking;
use crate::state::Daemon;
use crate::volume_store::{Volumes, mounts_of};

/// The filters of `GET /volumes` and of `POST /volumes/prune` (API 1.41).
const LIST_FILTERS: &[&str] = &["dangling", "name", "driver", "label"];
const PRUNE_FILTERS: &[&str] = &["label", "label!"];

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

/// `GET /volumes?filters=`: `dangling`, `name` (a part of the name),
/// `driver`, `label` (all must match), by name.
pub async fn list(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = query_filters(query.get("filters"), LIST_FILTERS)?;
    let dangling = filters
        .bool_value("dangling")
        .map_err(DaemonError::invalid)?;
    let d = Arc::clone(daemon);
    let volumes = blocking("listing volumes", move || {
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
    let v = blocking("creating the volume", move || {
        volumes.create(name.as_deref(), request.labels, false)
    })
    .await?;
    Ok(json(StatusCode::CREATED, &v))
}

/// `GET /volumes/{name}`: 404 `get NAME: no such volume` when unknown.
pub async fn inspect(daemon: &Arc<Daemon>, name: String) -> Result<Response<Body>, DaemonError> {
    let volumes = Volumes::of(daemon.store.root());
    let v = blocking("inspecting the volume", move || volumes.get(&name)).await?;
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
    blocking("removing the volume", move || {
        let volumes = Volumes::of(d.store.root());
        if !volumes.exists(&name) {
            if force {
                return Ok(());
            }
            return Err(DaemonError::not_found(format!(
                "get {name}: no such volume"
            )));
        }
        let users = d.volume_users(&name);
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
    let answer = blocking("pruning volumes", move || {
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
            if !filters.match_labels("label", label)
                || excluded
                || !d.volume_users(&v.name).is_empty()
            {
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
