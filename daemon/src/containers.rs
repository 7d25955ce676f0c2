//! `/containers/…`: each request is parsed into a typed action, checked
//! against the instance's state, then executed.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use wrun_api::time::ZERO_TIME;

use super::http::{Body, Query, empty, json, parse_filters, parse_json, read_body, streaming};
use super::instance::Container;
use super::logs::{Follow, Streams};
use super::record::ContainerRecord;
use super::state::Daemon;
use crate::error::DaemonError;
use crate::lifecycle::{Status, StopKind};
use wrun_api::containers::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerInspect, ContainerPruneResponse,
    ContainerState, ContainerStats, ContainerSummary, CpuStats, CpuUsage, MemoryStats, MountPoint,
    NetworkSettings, PidsStats, SummaryHostConfig, TopResponse, WaitError, WaitResponse,
};
use wrun_api::time::human_duration;

const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

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

/// `POST /containers/{id}/wait?condition=`: headers at once, the body when
/// the condition holds (`not-running`, `next-exit`, `removed`).
pub fn wait(c: &Arc<Container>, query: &Query) -> Result<Response<Body>, DaemonError> {
    #[derive(Clone, Copy)]
    enum Until {
        NotRunning,
        NextExit(u64),
        Removed,
    }
    let mut rx = c.watch();
    let until = match query.get("condition").unwrap_or("") {
        "" | "not-running" => Until::NotRunning,
        "next-exit" => Until::NextExit(rx.borrow().exits),
        "removed" => Until::Removed,
        other => {
            return Err(DaemonError::invalid(format!(
                "invalid condition: {other:?} (not-running, next-exit or removed)"
            )));
        }
    };
    let (tx, response) = streaming("application/json");
    tokio::spawn(async move {
        let done = rx
            .wait_for(|l| match until {
                Until::NotRunning => !l.running,
                Until::NextExit(n) => l.exits > n || l.removed,
                Until::Removed => l.removed,
            })
            .await
            .map(|l| l.clone());
        let answer = match done {
            Ok(l) => WaitResponse {
                status_code: l.exit_code,
                error: Some(l.error)
                    .filter(|e| !e.is_empty())
                    .map(|message| WaitError { message }),
            },
            Err(_) => WaitResponse {
                status_code: -1,
                error: Some(WaitError {
                    message: "the daemon is shutting down".into(),
                }),
            },
        };
        if let Ok(mut bytes) = serde_json::to_vec(&answer) {
            bytes.push(b'\n');
            let _ = tx.send(Bytes::from(bytes)).await;
        }
    });
    Ok(response)
}

fn streams(query: &Query) -> Result<Streams, DaemonError> {
    let s = Streams {
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
    };
    if !s.stdout && !s.stderr {
        return Err(DaemonError::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    Ok(s)
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=`
pub fn logs(c: &Arc<Container>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let streams = streams(query)?;
    let running = c.watch().borrow().running;
    let follow = if query.flag("follow") && running {
        Follow::UntilRunEnds(c.log.runs_ended())
    } else {
        Follow::No
    };
    let tail = match query.get("tail").unwrap_or("all") {
        "all" | "" => None,
        n => Some(n.parse::<usize>().map_err(|_| {
            DaemonError::invalid(format!("invalid tail {n:?}: expected a number or \"all\""))
        })?),
    };
    let (first, mut reader) = match tail {
        Some(n) => c
            .log
            .tail(n, streams, follow)
            .map_err(|e| anyhow::anyhow!("reading the log of {}: {e}", c.id))?,
        None => (Vec::new(), c.log.reader_all(streams, follow)),
    };
    let (tx, response) = streaming(MULTIPLEXED);
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        while let Some(frames) = reader.next().await {
            if tx.send(Bytes::from(frames)).await.is_err() {
                return;
            }
        }
    });
    Ok(response)
}

/// `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1[&stdin=1]`:
/// upgrades the connection to a raw stream of multiplexed frames, from now
/// until the instance's next run ends. With `stdin=1`, for an instance
/// created with `OpenStdin`, what the client sends goes to the guest's
/// stdin, and the client closing its side (`CloseWrite`) is end of file.
pub fn attach(
    c: &Arc<Container>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let streams = streams(query)?;
    let upgrading = req
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"));
    let stdin = if upgrading && query.flag("stdin") {
        c.attach_stdin()
    } else {
        None
    };
    let reader_follow = Follow::UntilRunEnds(c.log.runs_ended());
    let mut reader = c.log.reader_from_end(streams, reader_follow);
    if !upgrading {
        // Without an upgrade, stream the frames as the response body.
        let (tx, response) = streaming(MULTIPLEXED);
        tokio::spawn(async move {
            while let Some(frames) = reader.next().await {
                if tx.send(Bytes::from(frames)).await.is_err() {
                    return;
                }
            }
        });
        return Ok(response);
    }
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let (mut from_client, mut to_client) = tokio::io::split(TokioIo::new(upgraded));
        if let Some(mut stdin) = stdin {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
                // Dropping the pipe's end is the guest's end of file.
                let _ = stdin.shutdown().await;
            });
        }
        while let Some(frames) = reader.next().await {
            if to_client.write_all(&frames).await.is_err() {
                return;
            }
        }
        let _ = to_client.shutdown().await;
    });
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(MULTIPLEXED));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    Ok(r)
}

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
fn published(r: &ContainerRecord) -> Vec<wrun_runtime::PortMapping> {
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

fn mounts(r: &ContainerRecord) -> Vec<MountPoint> {
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

fn unix(t: Option<&str>) -> Option<i64> {
    wrun_api::time::unix_seconds(t)
}

/// Docker's STATUS column: "Created", "Up 5 minutes", "Exited (0) 2 hours ago".
fn status_text(r: &ContainerRecord) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let st = &r.state;
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}",
            human_duration(now - unix(st.started_at.as_deref()).unwrap_or(now))
        ),
        Status::Paused => format!(
            "Up {} (Paused)",
            human_duration(now - unix(st.started_at.as_deref()).unwrap_or(now))
        ),
        Status::Exited if st.restarting => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            human_duration(now - unix(st.finished_at.as_deref()).unwrap_or(now))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code,
            human_duration(now - unix(st.finished_at.as_deref()).unwrap_or(now))
        ),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// Whether a record passes `ps` filters: for every key, one value matches.
/// `status`, `name` (substring), `id` (prefix), `label` (`k` or `k=v`),
/// `ancestor` (the image as named or its ID), `exited` (the code).
fn passes(r: &ContainerRecord, filters: &HashMap<String, Vec<String>>) -> bool {
    let status = if r.state.restarting {
        "restarting"
    } else {
        r.state.status.as_str()
    };
    let labels = r.config.labels.clone().unwrap_or_default();
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "status" => status == v,
            "name" => r.name.contains(v.trim_start_matches('/')),
            "id" => r.id.starts_with(v.as_str()),
            "label" => match v.split_once('=') {
                Some((k, want)) => labels.get(k).is_some_and(|x| x == want),
                None => labels.contains_key(v),
            },
            "ancestor" => {
                r.image == *v
                    || r.image_id == *v
                    || r.image_id
                        .strip_prefix("sha256:")
                        .is_some_and(|h| h.starts_with(v.as_str()))
            }
            "exited" => r.state.status == Status::Exited && r.state.exit_code.to_string() == *v,
            _ => false,
        })
    })
}

/// `GET /containers/json?all=&filters=`: running ones only unless `all`
/// (or a `status` filter); 400 for a filter wrun does not know.
pub fn list(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = parse_filters(
        query.get("filters"),
        &["status", "name", "id", "label", "ancestor", "exited"],
    )?;
    let all = query.flag("all") || filters.contains_key("status");
    let mut rows: Vec<(i64, ContainerSummary)> = daemon
        .all()
        .iter()
        .map(|c| c.record())
        .filter(|r| all || r.state.is_live())
        .filter(|r| passes(r, &filters))
        .map(|r| {
            let created = unix(Some(&r.created)).unwrap_or(0);
            let command = std::iter::once(r.path.clone())
                .chain(r.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            let nanos = wrun_api::time::parse(&r.created)
                .map(|t| t.unix_timestamp_nanos() as i64)
                .unwrap_or(0);
            (
                nanos,
                ContainerSummary {
                    id: r.id.clone(),
                    names: vec![format!("/{}", r.name)],
                    image: r.image.clone(),
                    image_id: r.image_id.clone(),
                    command,
                    created,
                    state: if r.state.restarting {
                        "restarting".into()
                    } else {
                        r.state.status.as_str().into()
                    },
                    status: status_text(&r),
                    host_config: SummaryHostConfig {
                        network_mode: wrun_api::network::shown_mode(&r.host_config.network_mode)
                            .into(),
                    },
                    ports: crate::grants::summary_ports(&published(&r)),
                    mounts: mounts(&r),
                    labels: r.config.labels.clone().unwrap_or_default(),
                    ..ContainerSummary::default()
                },
            )
        })
        .collect();
    // Newest first, as Docker lists.
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let rows: Vec<ContainerSummary> = rows.into_iter().map(|(_, s)| s).collect();
    Ok(json(StatusCode::OK, &rows))
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
