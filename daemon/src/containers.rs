//! `/containers/…` lifecycle verbs: each request is parsed into a typed
//! action, checked against the instance's state, then executed. Streams
//! (wait, logs, attach) are in `container_streams`, views in
//! `container_inspect` and `container_list`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use wrun_api::time::ZERO_TIME;

use super::http::{Body, Query, empty, json, parse_json, read_body, streaming};
use super::instance::Container;
use super::state::Daemon;
use crate::error::DaemonError;
use crate::lifecycle::StopKind;
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
    let create: ContainerCreateRequest = parse_json(&body)?;
    let name = query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_string());
    let mut warnings = Vec::new();
    if wrun_api::network::is_host_mode(&create.host_config.network_mode).unwrap_or(false) {
        warnings.push(crate::grants::HOST_MODE_WARNING.to_string());
    }
    let d = Arc::clone(daemon);
    let c = tokio::task::spawn_blocking(move || d.create(name, create.config, create.host_config))
        .await
        .map_err(|e| anyhow::anyhow!("creating the instance failed: {e}"))??;
    Ok(json(
        StatusCode::CREATED,
        &ContainerCreateResponse {
            id: c.id.clone(),
            warnings,
        },
    ))
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

/// `POST /containers/{id}/restart`: 204.
pub async fn restart(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
) -> Result<Response<Body>, DaemonError> {
    daemon.restart(c).await?;
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

/// `POST /containers/prune`: removes every instance that is not running.
pub async fn prune(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    if let Some(f) = query.get("filters").filter(|f| !f.is_empty() && *f != "{}") {
        return Err(DaemonError::invalid(format!(
            "wrun's container prune takes no filters yet (got {f})"
        )));
    }
    let d = Arc::clone(daemon);
    let (deleted, space) = tokio::task::spawn_blocking(move || d.prune())
        .await
        .map_err(|e| anyhow::anyhow!("pruning failed: {e}"))?;
    Ok(json(
        StatusCode::OK,
        &ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: space,
        },
    ))
}

/// `GET /containers/{id}/top`: one row, the instance (it has no
/// processes): the daemon's pid, the CPU time spent on it, its argv.
pub fn top(c: &Arc<Container>) -> Result<Response<Body>, DaemonError> {
    let r = c.record();
    let Some(gate) = c.gate().filter(|_| r.state.is_live()) else {
        return Err(crate::lifecycle::not_running(&c.id));
    };
    let secs = gate.cpu_time().as_secs();
    let cmd = std::iter::once(r.path.clone())
        .chain(r.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let top = TopResponse {
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
        system_cpu_usage: host_cpu_nanos(),
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

/// The host's CPU time over all CPUs in nanoseconds (`/proc/stat`, in
/// USER_HZ = 100 ticks per second); 0 when unreadable.
fn host_cpu_nanos() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.strip_prefix("cpu ")?.to_string();
            Some(
                line.split_whitespace()
                    .filter_map(|t| t.parse::<u64>().ok())
                    .sum::<u64>()
                    .saturating_mul(10_000_000),
            )
        })
        .unwrap_or(0)
}

/// The host's memory in bytes (`/proc/meminfo`); 0 when unreadable.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let kib = s
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
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
        host_memory()
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
pub async fn kill(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let signal = parse_signal(query.get("signal").unwrap_or("SIGKILL"))?;
    // Nothing running is the lifecycle's 409 (`Status::kill`).
    daemon.stop(c, StopKind::Signal(signal)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// A signal name (`SIGTERM`, `TERM`) or number. WASI has no signals: the
/// instance ends at once whatever the signal; the number is the exit code − 128.
fn parse_signal(s: &str) -> Result<u8, DaemonError> {
    const NAMES: [(&str, u8); 8] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("KILL", 9),
        ("USR1", 10),
        ("USR2", 12),
        ("TERM", 15),
        ("STOP", 19),
    ];
    if let Ok(n) = s.parse::<u8>()
        && (1..=64).contains(&n)
    {
        return Ok(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| DaemonError::invalid(format!("Invalid signal: {s}")))
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
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
