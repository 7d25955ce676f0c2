//! `/containers/…` lifecycle verbs: each request is parsed into a typed
//! action, checked against the instance's state, then executed. Streams
//! (wait, logs, attach) are in `container_streams`, views in
//! `container_inspect` and `container_list`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use wrun_api::signal::{self, DefaultAction};
use wrun_api::time::ZERO_TIME;

use super::http::{Body, Query, empty, json, parse_json, read_body, streaming};
use super::instance::Container;
use super::state::Daemon;
use crate::error::DaemonError;
use crate::events::ContainerSubject;
use crate::lifecycle::{Status, StopKind};
use crate::prune_filters::PruneFilters;
use wrun_api::containers::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerPruneResponse, ContainerStats,
    CpuStats, CpuUsage, MemoryStats, PidsStats, TopResponse,
};

/// `POST /containers/create?name=`
pub async fn create(
    daemon: &Arc<Daemon>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let body = read_body(req).await?;
    let (create, mut warnings) = parse_create(&body)?;
    let name = query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_string());
    // The networks it joins must exist before it is made.
    let networks = crate::networks::networks_of_create(daemon, &create)?;
    let d = Arc::clone(daemon);
    let c = tokio::task::spawn_blocking(move || d.create(name, create.config, create.host_config))
        .await
        .map_err(|e| anyhow::anyhow!("creating the instance failed: {e}"))??;
    crate::networks::join_at_create(daemon, &c, networks).await?;
    // The request's own anonymous volumes were refused: these are the image's.
    let r = c.record();
    warnings.extend(
        crate::volume_store::unmounted_volumes(&r.config, &r.host_config)
            .map(|v| crate::launch::image_volume_warning(v)),
    );
    Ok(json(
        StatusCode::CREATED,
        &ContainerCreateResponse {
            id: c.id.clone(),
            warnings,
        },
    ))
}

/// A create request's body, read and adapted to what wrun runs, with the
/// warnings to answer; 400 for a body Docker refuses too. Nothing is looked
/// up yet (image, name): that is [`Daemon::create`]'s part.
pub(crate) fn parse_create(
    body: &[u8],
) -> Result<(ContainerCreateRequest, Vec<String>), DaemonError> {
    let mut create: ContainerCreateRequest = parse_json(body)?;
    if create.config.image.is_empty() && !sets_config(body) {
        return Err(DaemonError::invalid(
            "Config cannot be empty in order to create a container",
        ));
    }
    let mut warnings = crate::launch::adapt(&mut create.config, &mut create.host_config)?;
    if let Some(n) = &create.networking_config {
        crate::launch::check_networking(n)?;
    }
    if wrun_api::network::is_host_mode(&create.host_config.network_mode).unwrap_or(false) {
        warnings.push(crate::grants::HOST_MODE_WARNING.to_string());
    }
    let log = &mut create.host_config.log_config;
    if log.kind.is_empty() {
        log.kind = wrun_api::containers::DEFAULT_LOG_DRIVER.into();
    }
    Ok((create, warnings))
}

/// `POST /containers/{id}/start`: 204, or 304 when already running.
pub async fn start(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
) -> Result<Response<Body>, DaemonError> {
    Ok(empty(if daemon.start(c).await? {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/stop`: 204, or 304 when not running.
pub async fn stop(daemon: &Arc<Daemon>, c: &Arc<Container>) -> Result<Response<Body>, DaemonError> {
    Ok(empty(if daemon.stop(c, StopKind::Stop).await? {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/restart`: 204. A failure is dockerd's 500
/// `Cannot restart container KEY: …` (it wraps every cause), but a full
/// pool, which a client may retry.
pub async fn restart(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    key: &str,
) -> Result<Response<Body>, DaemonError> {
    daemon.restart(c).await.map_err(|e| match e {
        DaemonError::Capacity(_) => e,
        e => DaemonError::Internal(format!("Cannot restart container {key}: {}", e.message())),
    })?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause`: 204; 409 when not running or paused already.
pub fn pause(daemon: &Arc<Daemon>, c: &Arc<Container>) -> Result<Response<Body>, DaemonError> {
    daemon.pause(c)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/unpause`: 204; 409 when not paused.
pub fn unpause(daemon: &Arc<Daemon>, c: &Arc<Container>) -> Result<Response<Body>, DaemonError> {
    daemon.unpause(c)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/rename?name=`: 204; 409 when the name is taken.
pub fn rename(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let name = query.get("name").unwrap_or("");
    daemon.rename(c, name)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Whether a create body sets any field of the container's Config: dockerd
/// has no Config at all (and says so) when none is given, as Go's JSON
/// decoder leaves the embedded struct nil; its keys match in any case.
fn sets_config(body: &[u8]) -> bool {
    const CONFIG_KEYS: [&str; 25] = [
        "hostname",
        "domainname",
        "user",
        "attachstdin",
        "attachstdout",
        "attachstderr",
        "exposedports",
        "tty",
        "openstdin",
        "stdinonce",
        "env",
        "cmd",
        "healthcheck",
        "argsescaped",
        "image",
        "volumes",
        "workingdir",
        "entrypoint",
        "networkdisabled",
        "macaddress",
        "onbuild",
        "labels",
        "stopsignal",
        "stoptimeout",
        "shell",
    ];
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(fields)) => fields
            .keys()
            .any(|k| CONFIG_KEYS.contains(&k.to_ascii_lowercase().as_str())),
        _ => false,
    }
}

/// `POST /containers/prune?filters=`: removes every instance that is not
/// running and passes the filters Docker's prune takes: `until` (created
/// before a time or duration ago), `label` and `label!` (`KEY` or
/// `KEY=VALUE`).
pub async fn prune(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = PruneFilters::parse(query)?;
    let d = Arc::clone(daemon);
    let (deleted, space) = if filters.is_empty() {
        tokio::task::spawn_blocking(move || d.prune())
            .await
            .map_err(|e| anyhow::anyhow!("pruning failed: {e}"))?
    } else {
        let mut deleted = Vec::new();
        let mut space = 0;
        for c in daemon.all() {
            let r = c.record();
            if r.state.is_live() || !prune_passes(&filters, &r) {
                continue;
            }
            let held = c.log.disk_bytes();
            // One started or removed since is left alone.
            if daemon.remove(&c, false).await.is_ok() {
                space += held;
                deleted.push(c.id.clone());
            }
        }
        (deleted, space)
    };
    Ok(json(
        StatusCode::OK,
        &ContainerPruneResponse {
            // Docker's `null` when nothing went.
            containers_deleted: Some(deleted).filter(|d| !d.is_empty()),
            space_reclaimed: space,
        },
    ))
}

/// Whether a container prune with these filters removes this record.
fn prune_passes(filters: &PruneFilters, r: &crate::record::ContainerRecord) -> bool {
    let labels = r.config.labels.clone().unwrap_or_default();
    filters.matches(&labels, wrun_api::time::unix_seconds(Some(&r.created)))
}

/// `GET /containers/{id}/top`: a row for the instance (it has no
/// processes): the daemon's pid, the CPU time spent on it, its argv; then a
/// row for each running exec.
pub fn top(daemon: &Daemon, c: &Arc<Container>) -> Result<Response<Body>, DaemonError> {
    let r = c.record();
    let Some(gate) = c.gate().filter(|_| r.state.is_live()) else {
        return Err(crate::lifecycle::not_running(&c.id));
    };
    let secs = gate.cpu_time().as_secs();
    let cmd = std::iter::once(r.path.clone())
        .chain(r.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut top = TopResponse {
        titles: ["PID", "USER", "TIME", "STATUS", "CMD"]
            .map(String::from)
            .to_vec(),
        processes: vec![vec![
            std::process::id().to_string(),
            "wasm".into(),
            format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
            r.state.status.as_str().into(),
            cmd,
        ]],
    };
    // Each running exec is another row, as another process in Docker's.
    top.processes
        .extend(crate::exec::top_rows(daemon, c, r.state.status.as_str()));
    Ok(json(StatusCode::OK, &top))
}

/// One sample of an instance's CPU time and memory, beside the host's.
fn sample(c: &Container, limit: u64) -> (CpuStats, MemoryStats, String) {
    let gate = c.gate();
    let online = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let cpu = CpuStats {
        cpu_usage: CpuUsage {
            total_usage: gate.as_ref().map_or(0, |g| {
                u64::try_from(g.cpu_time().as_nanos()).unwrap_or(u64::MAX)
            }),
            ..CpuUsage::default()
        },
        system_cpu_usage: crate::host::cpu_nanos(),
        online_cpus: online,
    };
    let memory = MemoryStats {
        usage: gate.as_ref().map_or(0, |g| g.memory.bytes()),
        limit,
        ..MemoryStats::default()
    };
    let read = wrun_api::time::now();
    (cpu, memory, read)
}

/// How long `stats?stream=false` measures CPU use over, and the interval
/// of streamed samples.
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /containers/{id}/stats?stream=&one-shot=`: memory = linear memory
/// plus tables in use, CPU = time the daemon spent running the instance.
/// `stream=false` answers once after measuring over an interval (at once
/// with `one-shot`); otherwise a JSON line per interval while live.
pub fn stats(c: &Arc<Container>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let stream = query.get("stream").is_none_or(|_| query.flag("stream"));
    let one_shot = query.flag("one-shot");
    let r = c.record();
    let limit = if r.host_config.memory > 0 {
        r.host_config.memory as u64
    } else {
        crate::host::memory()
    };
    let (tx, response) = streaming("application/json");
    let c = Arc::clone(c);
    tokio::spawn(async move {
        let mut previous: Option<(CpuStats, String)> = None;
        if !stream && !one_shot && c.record().state.is_live() {
            let (cpu, _, read) = sample(&c, limit);
            previous = Some((cpu, read));
            tokio::time::sleep(STATS_INTERVAL).await;
        }
        loop {
            let r = c.record();
            let (cpu, memory, read) = sample(&c, limit);
            let (precpu, preread) = previous
                .clone()
                .unwrap_or_else(|| (CpuStats::default(), ZERO_TIME.into()));
            let live = r.state.is_live();
            let s = ContainerStats {
                read: read.clone(),
                preread,
                name: format!("/{}", r.name),
                id: r.id.clone(),
                pids_stats: PidsStats {
                    current: u64::from(live),
                },
                num_procs: 0,
                cpu_stats: cpu.clone(),
                precpu_stats: precpu,
                memory_stats: memory,
            };
            let Ok(mut bytes) = serde_json::to_vec(&s) else {
                return;
            };
            bytes.push(b'\n');
            if tx.send(Bytes::from(bytes)).await.is_err() || !stream || !live {
                return;
            }
            previous = Some((cpu, read));
            tokio::select! {
                _ = tokio::time::sleep(STATS_INTERVAL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(response)
}

/// `POST /containers/{id}/kill?signal=`: 204, or 409 when not running.
/// A guest has no signal handlers, so a signal does what it does by
/// default to a Linux process: most end the instance at once (recorded as
/// exit 128 + N); `STOP`, `TSTP`, `TTIN` and `TTOU` pause it; `CONT`,
/// `CHLD`, `URG` and `WINCH` leave it running (and unpause a paused one,
/// as dockerd does after any signal but `KILL`).
pub async fn kill(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    key: &str,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let n = signal(query)?;
    let refused = |e| match e {
        DaemonError::Conflict(m) => {
            DaemonError::Conflict(format!("Cannot kill container: {key}: {m}"))
        }
        e => e,
    };
    // Checked after the lookup and before the state, as dockerd does.
    let number = match u8::try_from(n) {
        Ok(number) if signal::is_linux(n) => number,
        _ => {
            return Err(DaemonError::Internal(format!(
                "Cannot kill container: {key}: {}",
                signal::unsupported(n)
            )));
        }
    };
    let action = signal::default_action(n);
    if action == DefaultAction::End {
        // Nothing running is the lifecycle's 409 (`Status::kill`); Docker
        // names the instance as the client did, by name or by ID.
        daemon
            .stop(c, StopKind::Signal(number))
            .await
            .map_err(refused)?;
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let r = c.record();
    if !matches!(r.state.status, Status::Running | Status::Paused) {
        return Err(refused(crate::lifecycle::not_running(&c.id)));
    }
    daemon.events.container(
        "kill",
        &c.id,
        &ContainerSubject::of(&r),
        &[("signal", n.to_string())],
    );
    match (action, r.state.status) {
        (DefaultAction::Stop, Status::Running) => daemon.pause(c).map_err(refused)?,
        (DefaultAction::Ignore | DefaultAction::Continue, Status::Paused) => {
            daemon.unpause(c).map_err(refused)?;
        }
        _ => {}
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The signal a kill asks for (`SIGKILL` when none) as dockerd's
/// `ParseSignal` reads it, or its 400.
pub fn signal(query: &Query) -> Result<i64, DaemonError> {
    let raw = query
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("SIGKILL");
    signal::parse(raw).map_err(DaemonError::invalid)
}

/// `DELETE /containers/{id}?force=`
pub async fn remove(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    daemon.remove(c, query.flag("force")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_without_config_fields_has_no_config() {
        assert!(!sets_config(b"{}"));
        assert!(!sets_config(br#"{"HostConfig":{"Memory":1},"Bogus":1}"#));
        assert!(!sets_config(b""));
        assert!(sets_config(br#"{"Image":""}"#));
        assert!(sets_config(br#"{"cmd":["x"]}"#));
    }

    #[test]
    fn kill_signal_from_the_query_kill_when_none() {
        let signal_of = |q: &str| signal(&Query::parse(Some(q)));
        assert_eq!(signal_of("").unwrap(), 9);
        assert_eq!(signal_of("signal=").unwrap(), 9);
        assert_eq!(signal_of("signal=term").unwrap(), 15);
        assert_eq!(signal_of("signal=SIGWINCH").unwrap(), 28);
        assert_eq!(signal_of("signal=RTMIN%2B3").unwrap(), 37);
        assert_eq!(
            signal_of("signal=SIGNOPE").unwrap_err().message(),
            "Invalid signal: SIGNOPE"
        );
    }
}
