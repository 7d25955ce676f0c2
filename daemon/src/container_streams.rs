//! `/containers/{id}/wait`, `…/logs` and `…/attach`: the routes that answer
//! with a stream, and the hijack of a connection that attach and exec
//! start share.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::UnixStream;

use super::http::{Body, Query, empty, streaming};
use super::instance::Container;
use super::logs::{Follow, LogReader, LogView, Streams};
use crate::error::DaemonError;
use crate::events::ContainerSubject;
use crate::state::Daemon;
use wrun_api::containers::{WaitError, WaitResponse};

const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

/// `POST /containers/{id}/wait?condition=`: headers at once, the body when
/// the condition holds (`not-running`, `next-exit`, `removed`).
pub fn wait(c: &Arc<Container>, query: &Query) -> Result<Response<Body>, DaemonError> {
    #[derive(Clone, Copy)]
    enum Until {
        /// Not running, or the run current at the request (its count of
        /// ended runs) has ended, even if another started since.
        NotRunning(u64),
        NextExit(u64),
        Removed,
    }
    let mut rx = c.watch();
    let until = match query.get("condition").unwrap_or("") {
        "" | "not-running" => Until::NotRunning(rx.borrow().exits),
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
                Until::NotRunning(n) => !l.running || l.exits > n,
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

fn streams(query: &Query) -> Streams {
    Streams {
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
    }
}

/// Docker's `since` and `until`: Unix seconds, optionally a `.` and a
/// fraction (what the docker CLI sends, whatever the user typed), as Unix
/// nanoseconds. dockerd 20.10 answers a bad one with a 500 and Go's parse
/// error; wrun calls it what it is, bad input (400), and says what it takes.
fn parse_unix_time(key: &str, value: &str) -> Result<i128, DaemonError> {
    wrun_api::time::unix_nanos(value).ok_or_else(|| {
        DaemonError::invalid(format!(
            "invalid {key} {value:?}: expected Unix seconds with an optional fraction \
             (the docker client converts durations and dates)"
        ))
    })
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=&since=&until=&timestamps=`
pub fn logs(c: &Arc<Container>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let streams = streams(query);
    if !streams.stdout && !streams.stderr {
        return Err(DaemonError::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let view = LogView {
        streams,
        timestamps: query.flag("timestamps"),
        since: query
            .get("since")
            .filter(|v| !v.is_empty())
            .map(|v| parse_unix_time("since", v))
            .transpose()?,
        // Docker reads "0" as no bound.
        until: query
            .get("until")
            .filter(|v| !v.is_empty() && *v != "0")
            .map(|v| parse_unix_time("until", v))
            .transpose()?,
    };
    // Whether a run goes on and how many ended before it, from one
    // snapshot: read apart, a run ending between the two reads left the
    // follower waiting for the end of the next run (docker-py's `run`, which
    // follows the logs of a quick container, hung so). The log counts the
    // same ends, one step ahead (`Container::finish`).
    let (running, ended_before) = {
        let l = c.watch();
        let l = l.borrow();
        (l.running, l.exits)
    };
    let follow = if query.flag("follow") && running {
        Follow::UntilRunEnds(ended_before)
    } else {
        Follow::No
    };
    // As Docker: a number of lines; anything else (`all`, negative, not a
    // number) is the whole log.
    let tail = query
        .get("tail")
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|n| usize::try_from(n).ok());
    let (first, mut reader) = match tail {
        Some(n) => c
            .log
            .tail(n, view, follow)
            .map_err(|e| anyhow::anyhow!("reading the log of {}: {e}", c.id))?,
        None => (Vec::new(), c.log.reader_all(view, follow)),
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

/// `POST /containers/{id}/attach?logs=&stream=&stdin=&stdout=&stderr=`,
/// Docker's semantics: `logs=1` sends what the log holds first; `stream=1`
/// then follows until the instance's run ends (the current one, or for an
/// instance not running its next one, however long until it starts);
/// without `stream` the answer ends after the log (at once without
/// `logs`). With `Upgrade: tcp` the connection becomes a raw stream of
/// multiplexed frames, else they are the response's body. With `stdin=1`
/// (upgraded, streaming, for an instance created with `OpenStdin`) what
/// the client sends goes to the guest's stdin, and the client closing its
/// side (`CloseWrite`) is end of file. Refused for a paused instance or
/// one waiting for its policy restart, as Docker does. `key` is how the
/// client named the instance, for Docker's messages.
pub fn attach(
    daemon: &Daemon,
    c: &Arc<Container>,
    key: &str,
    query: &Query,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let record = c.check_attach(key)?;
    let streams = streams(query);
    let (logs, stream) = (query.flag("logs"), query.flag("stream"));
    let on_upgrade = upgrade_of(&mut req);
    let stdin = if on_upgrade.is_some() && stream && query.flag("stdin") {
        c.attach_stdin()
    } else {
        None
    };
    let follow = if stream {
        Follow::UntilRunEnds(c.log.runs_ended())
    } else {
        Follow::No
    };
    let view = LogView::from(streams);
    // With no stream to pass on, a reader of none still ends with the run:
    // what keeps a stdin-only attach open.
    let reader = if !streams.stdout && !streams.stderr && stdin.is_none() {
        None
    } else if logs {
        Some(c.log.reader_all(view, follow))
    } else if stream {
        Some(c.log.reader_from_end(view, follow))
    } else {
        None
    };
    daemon
        .events
        .container("attach", &c.id, &ContainerSubject::of(&record), &[]);
    Ok(match on_upgrade {
        Some(on_upgrade) => hijack(on_upgrade, MULTIPLEXED, stdin, reader),
        // Without an upgrade, the frames are the response's body.
        None => frames_body(MULTIPLEXED, reader),
    })
}

/// Where the frames sent to an attached client come from: an instance's
/// log (attach) or an exec's output (exec start).
pub(crate) trait FrameSource: Send + 'static {
    /// The next bytes of whole frames; `None` after the last.
    fn next_frames(&mut self) -> impl Future<Output = Option<Bytes>> + Send;

    /// The client is gone: it stopped reading, or never took the stream.
    fn client_gone(&mut self) {}
}

/// An attach's log reader; none when it passes no stream.
impl FrameSource for Option<LogReader> {
    async fn next_frames(&mut self) -> Option<Bytes> {
        self.as_mut()?.next().await.map(Bytes::from)
    }
}

/// The request's `Upgrade: tcp` (the docker CLI's and docker-py's ask to
/// take the connection over), as the handle of the connection to come.
pub(crate) fn upgrade_of(req: &mut Request<Incoming>) -> Option<OnUpgrade> {
    req.headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"))
        .then(|| hyper::upgrade::on(req))
}

/// A 200 whose body is the frames of `frames`, for a client that did not
/// ask for an upgrade.
pub(crate) fn frames_body(
    content_type: &'static str,
    mut frames: impl FrameSource,
) -> Response<Body> {
    let (tx, response) = streaming(content_type);
    tokio::spawn(async move {
        while let Some(chunk) = frames.next_frames().await {
            if tx.send(chunk).await.is_err() {
                frames.client_gone();
                return;
            }
        }
    });
    response
}

/// dockerd's hijack: the 101 (`Upgrade: tcp`) whose connection, once
/// handed over (`on_upgrade`), carries the frames of `frames` to the client
/// after it has read the head ([`until_head_read`]), and what the client
/// sends (from the bytes that came with its request on) to `stdin`, until
/// it shuts its side (the guest's end of file). The client's side is shut
/// after the last frame. Attach and exec start, alike.
pub(crate) fn hijack(
    on_upgrade: OnUpgrade,
    content_type: &'static str,
    stdin: Option<DuplexStream>,
    mut frames: impl FrameSource,
) -> Response<Body> {
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            frames.client_gone();
            return;
        };
        match upgraded.downcast::<TokioIo<UnixStream>>() {
            Ok(parts) => {
                let socket = parts.io.into_inner();
                until_head_read(&socket).await;
                copy_hijacked(socket, parts.read_buf, stdin, frames).await;
            }
            Err(upgraded) => {
                copy_hijacked(TokioIo::new(upgraded), Bytes::new(), stdin, frames).await;
            }
        }
    });
    let mut r = empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    r
}

/// Runs a taken-over connection (see [`hijack`]); `early`: what the client
/// sent with its request.
async fn copy_hijacked<S>(
    io: S,
    early: Bytes,
    stdin: Option<DuplexStream>,
    mut frames: impl FrameSource,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut from_client, mut to_client) = tokio::io::split(io);
    if let Some(mut stdin) = stdin {
        tokio::spawn(async move {
            if stdin.write_all(&early).await.is_ok() {
                let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
            }
            // Dropping the pipe's end is the guest's end of file.
            let _ = stdin.shutdown().await;
        });
    }
    while let Some(chunk) = frames.next_frames().await {
        if to_client.write_all(&chunk).await.is_err() {
            frames.client_gone();
            return;
        }
    }
    let _ = to_client.shutdown().await;
}

/// How long an attach waits for its client to read the 101's head.
const HEAD_READ_WAIT: Duration = Duration::from_secs(1);

/// Returns once the client has read everything sent to it so far (the
/// 101's head), or after [`HEAD_READ_WAIT`]. docker-py reads the head
/// through a buffered reader and then the socket beneath it: frames that
/// reached it together with the head were lost to it (the whole answer of
/// `attach(stream=False, logs=True)`). dockerd's writes happen to come
/// apart; here the first frame waits for the head to be read.
async fn until_head_read(socket: &UnixStream) {
    let deadline = tokio::time::Instant::now() + HEAD_READ_WAIT;
    while unread_by_peer(socket) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Bytes sent on `socket` that its peer has not read yet (0 when unknown).
#[cfg(target_os = "linux")]
fn unread_by_peer(socket: &UnixStream) -> i32 {
    /// Linux's `SIOCOUTQ` (`TIOCOUTQ`): a Unix stream socket's unread
    /// output.
    const SIOCOUTQ: rustix::ioctl::Opcode = 0x5411;
    // SAFETY: SIOCOUTQ is a valid request on a socket, and the kernel
    // writes one C int through the pointer the getter passes.
    let unread = unsafe {
        rustix::ioctl::ioctl(
            socket,
            rustix::ioctl::Getter::<SIOCOUTQ, std::ffi::c_int>::new(),
        )
    };
    unread.unwrap_or(0)
}

#[cfg(not(target_os = "linux"))]
fn unread_by_peer(_: &UnixStream) -> i32 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_until_read_as_docker_reads_them() {
        assert_eq!(parse_unix_time("since", "0").unwrap(), 0);
        assert_eq!(parse_unix_time("since", "12").unwrap(), 12_000_000_000);
        assert_eq!(parse_unix_time("since", "-5").unwrap(), -5_000_000_000);
        assert_eq!(parse_unix_time("since", "1.5").unwrap(), 1_500_000_000);
        assert_eq!(
            parse_unix_time("since", "1796656669.123456789").unwrap(),
            1_796_656_669_123_456_789
        );
        assert_eq!(
            parse_unix_time("since", "3.000000001").unwrap(),
            3_000_000_001
        );
        // Bad input is a 400 naming the key and what it takes.
        for bad in [
            "abc",
            "10m",
            "2020-01-01T00:00:00Z",
            "1.abc",
            "1.",
            "99999999999999999999",
        ] {
            let e = parse_unix_time("since", bad).unwrap_err();
            assert_eq!(e.status(), hyper::StatusCode::BAD_REQUEST, "{bad}");
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid since {bad:?}: expected Unix seconds")),
                "{bad}: {e}"
            );
        }
    }
}
