//! The CLI's side of the REST API: HTTP/1.1 over the daemon's Unix socket,
//! starting a daemon in the background when none answers.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use wrun_api::ErrorResponse;

/// An error answer of the daemon, shown as Docker's CLI shows it.
#[derive(Debug)]
pub struct DaemonError {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for DaemonError {}

/// A connection target: the daemon's socket and the store it should serve.
pub struct Client {
    socket: PathBuf,
    executor: tokio::runtime::Runtime,
}

impl Client {
    /// Connects to the daemon on `socket`, starting one (serving `root`)
    /// in the background when none answers.
    /// A daemon already serving `root` on another socket is used instead:
    /// one daemon per store (see `wrun_daemon::daemon_lock`), also when
    /// another CLI started it while this one was starting its own.
    pub fn connect(socket: &Path, root: &Path) -> anyhow::Result<Self> {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Self::new(socket);
        }
        if let Some(serving) = serving_daemon(root) {
            return Self::new(&serving);
        }
        match start_daemon(socket, root) {
            Ok(()) => Self::new(socket),
            Err(e) => match serving_daemon(root) {
                Some(serving) => Self::new(&serving),
                None => Err(e),
            },
        }
    }

    /// A client that does not start a daemon.
    pub fn new(socket: &Path) -> anyhow::Result<Self> {
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async executor")?;
        Ok(Self {
            socket: socket.to_path_buf(),
            executor,
        })
    }

    /// A client of the daemon on `socket` when one accepts a connection
    /// there; never starts one. The error is the one a request would give.
    pub fn connect_existing(socket: &Path) -> anyhow::Result<Self> {
        std::os::unix::net::UnixStream::connect(socket).with_context(|| cannot_connect(socket))?;
        Self::new(socket)
    }

    /// Sends a request with an optional JSON body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let content_type = body.as_ref().map(|_| "application/json");
        let body = Full::new(Bytes::from(body.unwrap_or_default()));
        self.send_body(method, path, content_type, &[], body).await
    }

    /// Sends a request with any body; a 4xx or 5xx answer becomes a
    /// [`DaemonError`].
    async fn send_body<B>(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&'static str>,
        headers: &[(&'static str, &str)],
        body: B,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>>
    where
        B: hyper::body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .with_context(|| cannot_connect(&self.socket))?;
        let stream = EarlyAnswerStream::new(stream);
        let peer_closed = stream.peer_closed();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("talking to the daemon")?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "wrun");
        if let Some(content_type) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let body = StopWhenPeerClosed {
            inner: body,
            peer_closed: Arc::clone(&peer_closed),
        };
        let req = req.body(body).context("building the request")?;
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => {
                let closed = peer_closed.lock().ok().and_then(|mut c| c.take());
                return Err(match closed {
                    Some(write_error) => anyhow::Error::new(write_error)
                        .context("the daemon closed the connection without an answer"),
                    None => anyhow::Error::new(e).context("talking to the daemon"),
                });
            }
        };
        if resp.status().is_client_error() || resp.status().is_server_error() {
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let message = serde_json::from_slice::<ErrorResponse>(&bytes)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_string());
            return Err(DaemonError { status, message }.into());
        }
        Ok(resp)
    }

    /// Sends a request; returns the status and the whole body.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.executor.block_on(async {
            let resp = self.send(method, path, body).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .context("reading the daemon's answer")?
                .to_bytes();
            Ok((status, bytes))
        })
    }

    pub fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<T> {
        let (_, bytes) = self.call(method, path, body)?;
        serde_json::from_slice(&bytes).context("the daemon's answer is not the expected JSON")
    }

    /// Sends a request and returns once the answer's headers are in, its
    /// body left to [`finish_json`](Client::finish_json): a `wait` placed
    /// before the start it waits for, so no end can slip past it.
    pub fn begin(&self, method: Method, path: &str) -> anyhow::Result<Pending> {
        self.executor
            .block_on(self.send(method, path, None))
            .map(Pending)
    }

    /// Reads the rest of a [`begin`](Client::begin)'s answer as JSON.
    pub fn finish_json<T: DeserializeOwned>(&self, pending: Pending) -> anyhow::Result<T> {
        let bytes = self.executor.block_on(async {
            Ok::<_, anyhow::Error>(
                pending
                    .0
                    .into_body()
                    .collect()
                    .await
                    .context("reading the daemon's answer")?
                    .to_bytes(),
            )
        })?;
        serde_json::from_slice(&bytes).context("the daemon's answer is not the expected JSON")
    }

    /// Streams the body to `chunk` as it arrives.
    pub fn stream(
        &self,
        method: Method,
        path: &str,
        mut chunk: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.executor.block_on(async {
            let mut body = self.send(method, path, None).await?.into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("reading the daemon's answer")?;
                if let Some(data) = frame.data_ref() {
                    chunk(data)?;
                }
            }
            Ok(())
        })
    }

    /// [`stream`](Client::stream) of a request with `headers` and no body
    /// (a pull's or push's `X-Registry-Auth`).
    pub fn stream_with_request_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, &str)],
        mut chunk: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.executor.block_on(async {
            let body = Full::new(Bytes::new());
            let mut body = self
                .send_body(method, path, None, headers, body)
                .await?
                .into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("reading the daemon's answer")?;
                if let Some(data) = frame.data_ref() {
                    chunk(data)?;
                }
            }
            Ok(())
        })
    }

    /// [`stream`](Client::stream), handing the answer's headers to
    /// `headers` before the first chunk (`cp`'s path stat header).
    pub fn stream_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: impl FnOnce(&hyper::HeaderMap) -> anyhow::Result<()>,
        mut chunk: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.executor.block_on(async {
            let resp = self.send(method, path, None).await?;
            headers(resp.headers())?;
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("reading the daemon's answer")?;
                if let Some(data) = frame.data_ref() {
                    chunk(data)?;
                }
            }
            Ok(())
        })
    }

    /// Sends `body` (read in chunks on a thread of its own as the request
    /// goes out, never held whole) and returns the whole answer.
    pub fn upload(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: impl Read + Send + 'static,
    ) -> anyhow::Result<Bytes> {
        let mut answer = Vec::new();
        self.upload_streaming(method, path, content_type, body, |chunk| {
            answer.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(Bytes::from(answer))
    }

    /// [`upload`](Client::upload), handing the answer to `chunk` as it
    /// arrives (a build's progress).
    pub fn upload_streaming(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        mut body: impl Read + Send + 'static,
        mut chunk: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        // A plain thread, not the executor's blocking pool: if the daemon
        // answers early, the process need not wait for a slow reader.
        std::thread::spawn(move || {
            loop {
                let mut chunk = vec![0u8; UPLOAD_CHUNK];
                let item = match body.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        Ok(Bytes::from(chunk))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        self.executor.block_on(async {
            let mut answer = self
                .send_body(method, path, Some(content_type), &[], ChannelBody { rx })
                .await?
                .into_body();
            while let Some(frame) = answer.frame().await {
                let frame = frame.context("reading the daemon's answer")?;
                if let Some(data) = frame.data_ref() {
                    chunk(data)?;
                }
            }
            Ok(())
        })
    }
}

const UPLOAD_CHUNK: usize = 256 * 1024;

/// An answer whose headers have arrived; see [`Client::begin`].
pub struct Pending(hyper::Response<hyper::body::Incoming>);

/// A request body fed, chunk by chunk, by the thread reading the input.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// The daemon's socket, tolerant of an answer that comes before the whole
/// request body went out: the daemon may answer a streamed upload early
/// (404 No such container) and close without reading the rest, and the
/// next write then fails (EPIPE). As Go's HTTP client (the docker CLI),
/// the answer is what the user must see, so a write to a closed peer is
/// recorded and the rest of the request discarded while the answer,
/// already queued on the socket, is read.
struct EarlyAnswerStream {
    inner: tokio::net::UnixStream,
    /// The write error once the peer has closed its side, shared with the
    /// body (which then ends) and the caller (which reports it when no
    /// answer came).
    closed: Arc<Mutex<Option<std::io::Error>>>,
}

impl EarlyAnswerStream {
    fn new(inner: tokio::net::UnixStream) -> Self {
        Self {
            inner,
            closed: Arc::new(Mutex::new(None)),
        }
    }

    fn peer_closed(&self) -> Arc<Mutex<Option<std::io::Error>>> {
        Arc::clone(&self.closed)
    }

    fn is_closed(&self) -> bool {
        self.closed.lock().map(|c| c.is_some()).unwrap_or(true)
    }

    /// A write result, with a closed peer's error kept and turned into a
    /// discarded write.
    fn absorb<T>(&self, result: std::io::Result<T>, discarded: T) -> std::io::Result<T> {
        match result {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                if let Ok(mut closed) = self.closed.lock() {
                    closed.get_or_insert(e);
                }
                Ok(discarded)
            }
            other => other,
        }
    }
}

impl tokio::io::AsyncRead for EarlyAnswerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for EarlyAnswerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.is_closed() {
            return Poll::Ready(Ok(buf.len()));
        }
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        Poll::Ready(self.absorb(written, buf.len()))
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.is_closed() {
            return Poll::Ready(Ok(()));
        }
        let flushed = std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx));
        Poll::Ready(self.absorb(flushed, ()))
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let shut = std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        Poll::Ready(self.absorb(shut, ()))
    }
}

/// A request body that ends once the daemon has closed the connection:
/// what is left of the input would only be discarded.
struct StopWhenPeerClosed<B> {
    inner: B,
    peer_closed: Arc<Mutex<Option<std::io::Error>>>,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for StopWhenPeerClosed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        if self.peer_closed.lock().map(|c| c.is_some()).unwrap_or(true) {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}

/// The socket of the daemon serving the store at `root`, when one holds
/// it and answers there; says so on stderr.
fn serving_daemon(root: &Path) -> Option<PathBuf> {
    let holder = wrun_daemon::daemon_lock::DaemonLock::holder(root)?;
    std::os::unix::net::UnixStream::connect(&holder.socket).ok()?;
    eprintln!(
        "wrun: the store {} is served by the daemon on {} (pid {}); using it",
        root.display(),
        holder.socket.display(),
        holder.pid
    );
    Some(holder.socket)
}

fn cannot_connect(socket: &Path) -> String {
    format!(
        "cannot connect to the wrun daemon at {} (is `wrun daemon` running?)",
        socket.display()
    )
}

/// Whether the error is the daemon's 404.
pub fn is_not_found(err: &anyhow::Error) -> bool {
    err.downcast_ref::<DaemonError>()
        .is_some_and(|e| e.status == StatusCode::NOT_FOUND)
}

/// Starts `wrun daemon` detached (own process group, output to
/// `<root>/daemon.log`) and waits until it answers.
fn start_daemon(socket: &Path, root: &Path) -> anyhow::Result<()> {
    wrun_image::store::create_private_dir_all(root)
        .with_context(|| format!("creating {}", root.display()))?;
    let log_path = root.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(wrun_image::store::PRIVATE_FILE)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the wrun binary")?;
    let mut child = Command::new(exe)
        .arg("--root")
        .arg(root)
        .arg("daemon")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log handle")?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the wrun daemon")?;
    eprintln!(
        "wrun: no daemon answered on {}; started one in the background (pid {}, log {})",
        socket.display(),
        child.id(),
        log_path.display()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "the wrun daemon exited at start ({status}); see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "the wrun daemon did not answer on {} within 30 s; see {}",
        socket.display(),
        log_path.display()
    )
}

/// An attach upgraded to a raw stream (`Upgrade: tcp`): Docker's
/// multiplexed frames from the daemon, and the way back to the guest's
/// stdin.
pub struct Hijacked {
    pub from_daemon: std::io::BufReader<std::os::unix::net::UnixStream>,
    pub to_daemon: std::os::unix::net::UnixStream,
}

impl Client {
    /// Sends `POST path` asking to upgrade the connection, as `docker
    /// attach` does; an error answer becomes a [`DaemonError`].
    pub fn hijack(&self, path: &str) -> anyhow::Result<Hijacked> {
        self.hijack_with_json(path, b"")
    }

    /// [`hijack`](Client::hijack) with a JSON body, as `docker exec`'s
    /// start sends one.
    pub fn hijack_with_json(&self, path: &str, body: &[u8]) -> anyhow::Result<Hijacked> {
        use std::io::{BufRead, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket)
            .with_context(|| cannot_connect(&self.socket))?;
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/json\r\n"
        };
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: wrun\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n{content_type}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .and_then(|()| stream.write_all(body))
        .context("talking to the daemon")?;
        let mut from_daemon =
            std::io::BufReader::new(stream.try_clone().context("talking to the daemon")?);
        let mut line = String::new();
        from_daemon
            .read_line(&mut line)
            .context("reading the daemon's answer")?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .with_context(|| format!("the daemon's answer is not HTTP: {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            from_daemon
                .read_line(&mut line)
                .context("reading the daemon's answer")?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let mut body = vec![0u8; length.min(1 << 20)];
            from_daemon
                .read_exact(&mut body)
                .context("reading the daemon's answer")?;
            let message = serde_json::from_slice::<ErrorResponse>(&body)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
            return Err(DaemonError { status, message }.into());
        }
        Ok(Hijacked {
            from_daemon,
            to_daemon: stream,
        })
    }
}

/// Writes one demultiplexed payload where it belongs: stderr's to our
/// stderr, anything else to our stdout (flushed, so a follower sees each
/// line as it comes).
pub fn print_frame(stream: u8, payload: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if stream == wrun_api::stream::STDERR {
        std::io::stderr().lock().write_all(payload)
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(payload)?;
        out.flush()
    }
}

pub use wrun_api::stream::Demux;
