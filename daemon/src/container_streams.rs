//! `/containers/{id}/wait`, `…/logs` and `…/attach`: the routes that answer
//! with a stream.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::http::{Body, Query, empty, streaming};
use super::instance::Container;
use super::logs::{Follow, Streams};
use crate::error::DaemonError;
use wrun_api::containers::{WaitError, WaitResponse};

const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

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
