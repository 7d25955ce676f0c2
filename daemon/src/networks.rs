//! The `/networks` routes, in dockerd's shapes and words, over the
//! daemon's table of networks (`network_table.rs`), and the networks of a
//! container create.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use wrun_api::network::{
    Network, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use wrun_api::parse::Filters;
use wrun_api::system::NetworkPruneResponse;

use crate::error::DaemonError;
use crate::http::{Body, Query, empty, json, parse_json, query_filters, read_body};
use crate::instance::Container;
use crate::network_table::{Found, check_endpoint};
use crate::state::Daemon;

/// The filters of `GET /networks` (API 1.41).
const LIST_FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];

/// The name of instance `id` as a network's `Containers` shows it.
fn name_of(daemon: &Daemon) -> impl Fn(&str) -> Option<String> + '_ {
    |id| {
        daemon
            .find(id)
            .ok()
            .map(|c| c.lock().record.name.trim_start_matches('/').to_string())
    }
}

/// The `name`, `id`, `driver`, `label`, `scope`, `type` and `dangling`
/// filters of `GET /networks`, as dockerd applies them.
fn passes(filters: &Filters, n: &Network, predefined: bool) -> Result<bool, DaemonError> {
    let any = |key: &str, ok: &dyn Fn(&str) -> bool| {
        !filters.contains(key) || filters.values(key).any(ok)
    };
    for t in filters.values("type") {
        if !matches!(t, "custom" | "builtin") {
            return Err(DaemonError::invalid(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let dangling = filters
        .bool_value("dangling")
        .map_err(DaemonError::invalid)?;
    Ok(any("name", &|v| n.name.contains(v))
        && any("id", &|v| n.id.contains(v))
        && any("driver", &|v| n.driver == v)
        && any("scope", &|v| v == "local")
        && any("type", &|v| (v == "builtin") == predefined)
        && filters.match_labels("label", |k| n.labels.get(k).map(String::as_str))
        && dangling.is_none_or(|want| want == (!predefined && n.containers.is_empty())))
}

/// `GET /networks?filters=`: every network dockerd would list.
pub fn list(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = query_filters(query.get("filters"), LIST_FILTERS)?;
    let names = name_of(daemon);
    let mut out = Vec::new();
    for found in daemon.networks.all() {
        let n = daemon.networks.view(&found, &names);
        if passes(&filters, &n, matches!(found, Found::Predefined(..)))? {
            out.push(n);
        }
    }
    Ok(json(StatusCode::OK, &out))
}

/// `GET /networks/{id}`: by ID, name or unique ID prefix.
pub fn inspect(daemon: &Arc<Daemon>, key: &str) -> Result<Response<Body>, DaemonError> {
    let found = daemon.networks.find(key)?;
    let names = name_of(daemon);
    Ok(json(StatusCode::OK, &daemon.networks.view(&found, &names)))
}

/// `POST /networks/create`: 201 `{Id, Warning}`.
pub async fn create(
    daemon: &Arc<Daemon>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let body = read_body(req).await?;
    let request: NetworkCreateRequest = parse_json(&body)?;
    let name = request.name.clone();
    let created = daemon.networks.create(request)?;
    daemon.events.network("create", &created.id, &name, None);
    Ok(json(StatusCode::CREATED, &created))
}

/// `DELETE /networks/{id}`: 204; 403 while an instance is on it.
pub fn remove(daemon: &Arc<Daemon>, key: &str) -> Result<Response<Body>, DaemonError> {
    let removed = daemon.networks.remove(key)?;
    daemon
        .events
        .network("destroy", &removed.id, &removed.name, None);
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/{id}/connect`: 200.
pub async fn connect(
    daemon: &Arc<Daemon>,
    key: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let body = read_body(req).await?;
    let request: NetworkConnectRequest = parse_json(&body)?;
    let c = daemon.find(&request.container)?;
    let endpoint = request.endpoint_config.unwrap_or_default();
    check_endpoint(key, &endpoint)?;
    let joined = daemon
        .networks
        .connect(key, &c, endpoint.aliases.unwrap_or_default())?;
    if let Some(n) = joined {
        daemon
            .events
            .network("connect", &n.id, &n.name, Some(&c.id));
    }
    Ok(empty(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect`: 200.
pub async fn disconnect(
    daemon: &Arc<Daemon>,
    key: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let body = read_body(req).await?;
    let request: NetworkDisconnectRequest = parse_json(&body)?;
    let c = daemon.find(&request.container)?;
    let left = daemon.networks.disconnect(key, &c.id)?;
    daemon
        .events
        .network("disconnect", &left.id, &left.name, Some(&c.id));
    Ok(empty(StatusCode::OK))
}

/// `POST /networks/prune`: removes every user-defined network no instance
/// is on (`until`, `label`, `label!` filters).
pub fn prune(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = crate::prune_filters::PruneFilters::parse(query)?;
    let mut candidates = daemon.networks.unused(|labels, created| {
        filters.matches(labels, wrun_api::time::unix_seconds(Some(created)))
    });
    candidates.sort_by(|a, b| a.1.cmp(&b.1));
    let mut deleted = Vec::new();
    for (id, name) in candidates {
        // One that gained an instance since is kept.
        if daemon.networks.remove(&id).is_ok() {
            daemon.events.network("destroy", &id, &name, None);
            deleted.push(name);
        }
    }
    daemon.events.network_prune();
    Ok(json(
        StatusCode::OK,
        &NetworkPruneResponse {
            networks_deleted: Some(deleted).filter(|d| !d.is_empty()),
        },
    ))
}

/// The networks a create request puts the instance on, with their aliases:
/// `NetworkMode` when it names a user network, and each network of
/// `NetworkingConfig.EndpointsConfig` (dockerd takes only one there at
/// create). Each must exist; checked before the instance is made.
pub fn networks_of_create(
    daemon: &Daemon,
    create: &wrun_api::containers::ContainerCreateRequest,
) -> Result<Vec<(String, Vec<String>)>, DaemonError> {
    let endpoints = create
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default();
    let mode = wrun_api::network::user_network(&create.host_config.network_mode);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (name, e) in &endpoints {
        let aliases = e.aliases.clone().unwrap_or_default();
        if wrun_api::network::user_network(name).is_none() {
            if !aliases.is_empty() {
                return Err(DaemonError::invalid(
                    "network-scoped alias is supported only for containers in user defined networks",
                ));
            }
            continue;
        }
        out.push((name.clone(), aliases));
    }
    if let Some(mode) = mode
        && !out.iter().any(|(n, _)| n == mode)
    {
        out.insert(0, (mode.to_string(), Vec::new()));
    }
    if out.len() > 1 {
        return Err(DaemonError::invalid(
            "Container cannot be connected to network endpoints: give one network at create, then `network connect` the others",
        ));
    }
    // 400, not dockerd's 404 (its create takes a missing network and its
    // start fails): a 404 at create sends the docker client pulling the
    // image as if the image were missing.
    for (name, _) in &out {
        daemon
            .networks
            .user_network_id(name)
            .map_err(DaemonError::into_invalid)?;
    }
    Ok(out)
}

/// After the instance is made: puts it on the networks of its create
/// request. A failure removes it again, so a create is all or nothing.
pub async fn join_at_create(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    networks: Vec<(String, Vec<String>)>,
) -> Result<(), DaemonError> {
    for (name, aliases) in networks {
        match daemon.networks.connect(&name, c, aliases) {
            Ok(Some(n)) => daemon
                .events
                .network("connect", &n.id, &n.name, Some(&c.id)),
            Ok(None) => {}
            Err(e) => {
                let _ = daemon.remove(c, true).await;
                return Err(e);
            }
        }
    }
    Ok(())
}
