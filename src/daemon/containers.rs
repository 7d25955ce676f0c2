//! `/containers/…`: each request is parsed into a typed action, checked
//! against the instance's state, then executed.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::AsyncWriteExt;

use super::http::{ApiError, Body, Query, empty, json, parse_json, read_body, streaming};
use super::logs::{Follow, Streams};
use super::state::{Container, ContainerRecord, Daemon, Status, StopKind};
use crate::api::containers::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerInspect, ContainerState,
    ContainerSummary, MountPoint, NetworkSettings, SummaryHostConfig, WaitError, WaitResponse,
};
use crate::output::human_duration;

const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `POST /containers/create?name=`
pub async fn create(
    daemon: &Arc<Daemon>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body = read_body(req).await?;
    let create: ContainerCreateRequest = parse_json(&body)?;
    let name = query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_string());
    let d = Arc::clone(daemon);
    let c = tokio::task::spawn_blocking(move || d.create(name, create.config, create.host_config))
        .await
        .map_err(|e| anyhow::anyhow!("creating the instance failed: {e}"))??;
    Ok(json(
        StatusCode::CREATED,
        &ContainerCreateResponse {
            id: c.id.clone(),
            warnings: Vec::new(),
        },
    ))
}

/// `POST /containers/{id}/start`: 204, or 304 when already running.
pub async fn start(daemon: &Arc<Daemon>, c: &Arc<Container>) -> Result<Response<Body>, ApiError> {
    Ok(empty(if daemon.start(c).await? {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/stop`: 204, or 304 when not running.
pub async fn stop(daemon: &Arc<Daemon>, c: &Arc<Container>) -> Result<Response<Body>, ApiError> {
    Ok(empty(if daemon.stop(c, StopKind::Stop).await? {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/kill?signal=`: 204, or 409 when not running.
pub async fn kill(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let signal = parse_signal(query.get("signal").unwrap_or("SIGKILL"))?;
    if daemon.stop(c, StopKind::Signal(signal)).await? {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Err(ApiError::conflict(format!(
            "Cannot kill container: {}: container {} is not running",
            c.name(),
            c.id
        )))
    }
}

/// A signal name (`SIGTERM`, `TERM`) or number. WASI has no signals: the
/// instance ends at once whatever the signal; the number is the exit code − 128.
fn parse_signal(s: &str) -> Result<u8, ApiError> {
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
        .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {s}")))
}

/// `DELETE /containers/{id}?force=`
pub async fn remove(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    daemon.remove(c, query.flag("force")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=`: headers at once, the body when
/// the condition holds (`not-running`, `next-exit`, `removed`).
pub fn wait(c: &Arc<Container>, query: &Query) -> Result<Response<Body>, ApiError> {
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
            return Err(ApiError::bad_request(format!(
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

fn streams(query: &Query) -> Result<Streams, ApiError> {
    let s = Streams {
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
    };
    if !s.stdout && !s.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    Ok(s)
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=`
pub fn logs(c: &Arc<Container>, query: &Query) -> Result<Response<Body>, ApiError> {
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
            ApiError::bad_request(format!("invalid tail {n:?}: expected a number or \"all\""))
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

/// `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1`: upgrades the
/// connection to a raw stream of multiplexed frames, from now until the
/// instance's next run ends. Stdin is not attached.
pub fn attach(
    c: &Arc<Container>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let streams = streams(query)?;
    let reader_follow = Follow::UntilRunEnds(c.log.runs_ended());
    let mut reader = c.log.reader_from_end(streams, reader_follow);
    let upgrading = req
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"));
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
        let mut io = TokioIo::new(upgraded);
        while let Some(frames) = reader.next().await {
            if io.write_all(&frames).await.is_err() {
                return;
            }
        }
        let _ = io.shutdown().await;
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
    if host_config.network_mode.is_empty() {
        host_config.network_mode = "none".into();
    }
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
            status: st.status.as_str().into(),
            running: st.status == Status::Running,
            oom_killed: st.oom_killed,
            pid: if st.status == Status::Running {
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
        network_settings: NetworkSettings::default(),
    }
}

fn mounts(r: &ContainerRecord) -> Vec<MountPoint> {
    r.host_config
        .binds
        .iter()
        .flatten()
        .filter_map(|b| crate::commands::run::parse_volume(b).ok())
        .map(|(host, guest, ro)| MountPoint {
            kind: "bind".into(),
            source: host.display().to_string(),
            destination: guest,
            mode: if ro { "ro" } else { "rw" }.into(),
            rw: !ro,
        })
        .collect()
}

fn unix(t: Option<&str>) -> Option<i64> {
    t.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .map(|t| t.unix_timestamp())
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
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code,
            human_duration(now - unix(st.finished_at.as_deref()).unwrap_or(now))
        ),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// `GET /containers/json?all=`: running ones only unless `all`.
pub fn list(daemon: &Arc<Daemon>, query: &Query) -> Response<Body> {
    let all = query.flag("all");
    let mut rows: Vec<(i64, ContainerSummary)> = daemon
        .all()
        .iter()
        .map(|c| c.record())
        .filter(|r| all || r.state.status == Status::Running)
        .map(|r| {
            let created = unix(Some(&r.created)).unwrap_or(0);
            let command = std::iter::once(r.path.clone())
                .chain(r.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            let nanos = OffsetDateTime::parse(&r.created, &Rfc3339)
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
                    state: r.state.status.as_str().into(),
                    status: status_text(&r),
                    host_config: SummaryHostConfig {
                        network_mode: "none".into(),
                    },
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
    json(StatusCode::OK, &rows)
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
