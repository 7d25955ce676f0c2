//! Serving a `wasi:http/proxy` component: one fresh instance per request,
//! bounded concurrency and queue, deadlines, a body cap, an access-log line.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Semaphore, TryAcquireError, oneshot, watch};
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme as WasiScheme;
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpCtx, WasiHttpView};

use crate::checked_body::{CheckedBody, FrameCheck};
use crate::limiter::InstanceLimiter;
use crate::outcome::DeadlineExceeded;
use crate::outgoing::OutgoingHttp;
use crate::peer_net::{DEFAULT_BACKLOG, PeerListener};
use crate::sandbox::{SharedView, grant_in_view, grant_shared};
use crate::scratch::ScratchRoot;
use crate::sockets::InstanceSockets;
use crate::stdio::{OutputSink, OutputTarget};
use crate::store::{ComponentState, new_store};
use crate::{InstanceSpec, NetworkGrants, PreparedModule, Runtime, RuntimeError};

/// How long aborted connections and guests get to unwind after the drain
/// bound of a graceful shutdown ran out.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// How [`Runtime::serve`] bounds the work clients can cause.
///
/// The per-request deadline is the template spec's `limits.timeout`: each
/// request's instance gets that budget from the moment it was accepted for
/// running (a request that waited in the queue until then gets 503 instead).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Requests handled (instances alive) at once. Default 100.
    pub max_concurrency: usize,
    /// Requests waiting for a free instance slot when all are busy; one more
    /// is answered 503 at once. Default 1000.
    pub max_queue: usize,
    /// Largest request body accepted, in bytes: a larger `Content-Length` is
    /// answered 413 before any instance starts; a chunked body that grows
    /// past it fails the guest's read and the answer is 413. Default 10 MiB.
    pub max_body_size: u64,
    /// A client must send a request's whole header within this time (also
    /// the idle bound of a kept-alive connection). Default 10 s.
    pub header_read_timeout: Duration,
    /// Connections open at once; further clients wait in the kernel's
    /// backlog. Default 1024.
    pub max_connections: usize,
    /// On shutdown: how long in-flight requests may take to finish before
    /// they are cut off. Default 10 s.
    pub drain_timeout: Duration,
    /// Where the access log goes: one line per request. Default: discarded.
    pub access_log: OutputTarget,
    /// Ports on which the instance's peers on its user-defined networks
    /// (the spec's `network.peers`) reach this server in process, at any
    /// of its network addresses: no host socket is opened for them. Needs
    /// `peers` when not empty. Default: none.
    pub peer_ports: Vec<u16>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_concurrency: 100,
            max_queue: 1000,
            max_body_size: 10 << 20,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(10),
            access_log: OutputTarget::Null,
            peer_ports: Vec::new(),
        }
    }
}

/// What a finished [`Runtime::serve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Requests answered (any status).
    pub requests: u64,
    /// Requests still in flight when the drain bound ran out (cut off).
    pub cut_off: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    Draining,
    Abort,
}

impl Runtime {
    /// Serves `module`, a `wasi:http/proxy` component, on `listeners` until
    /// `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish for up to `options.drain_timeout`, cuts off the rest and
    /// returns.
    ///
    /// Each request runs in a fresh instance built from `spec` (env, rootfs,
    /// volumes, `/tmp`, stdout/stderr, limits, network grants for outgoing
    /// requests); its args are ignored. The listeners are put in
    /// non-blocking mode. Must be polled inside a multi-thread or
    /// current-thread tokio runtime with time and I/O enabled.
    ///
    /// Answers HTTP/1.1 with bounded concurrency, a queue that overflows
    /// into 503, a per-request deadline (504), a request-body cap (413), a
    /// header read timeout against slow clients, and one access-log line per
    /// request (see [`ServeOptions`]).
    ///
    /// `Err` means serving never started: the module is not a proxy, the
    /// spec is invalid, or a listener could not be registered.
    pub async fn serve(
        &self,
        module: &PreparedModule,
        listeners: Vec<std::net::TcpListener>,
        spec: InstanceSpec,
        options: ServeOptions,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<ServeReport, RuntimeError> {
        let pre = module
            .proxy_pre()
            .ok_or(RuntimeError::NotAnHttpProxy)?
            .clone();
        if spec.limits.fuel.is_some() && !module.fuel_metered() {
            return Err(RuntimeError::FuelNotPrepared);
        }
        // Host-name rules resolved once, as for a run, for the handler's own
        // sockets; the published ports are this server's listeners, not
        // ports for the guest to bind, so they are not probed.
        let mut spec = spec;
        let publish = std::mem::take(&mut spec.network.publish);
        crate::sockets::resolve(&mut spec.network).await?;
        spec.network.publish = publish;
        // Check the spec once up front, so a bad grant fails the start and
        // not every request.
        let scratch = if spec.tmp {
            Some(self.scratch()?)
        } else {
            None
        };
        // Without a private `/tmp`, every request shares one set of rootfs
        // and volume handles, kept open while serving.
        let view = grant_shared(&spec, scratch.as_deref(), self.views())?.shared;
        let mut accepting = Vec::with_capacity(listeners.len() + options.peer_ports.len());
        for listener in listeners {
            let registered = listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener));
            accepting.push(Acceptor::Host(
                registered.map_err(|source| RuntimeError::Listener { source })?,
            ));
        }
        if !options.peer_ports.is_empty() {
            let peers = spec
                .network
                .peers
                .as_ref()
                .ok_or_else(|| RuntimeError::Listener {
                    source: std::io::Error::new(
                        std::io::ErrorKind::AddrNotAvailable,
                        "ports to serve on the instance's networks, but the instance is on none",
                    ),
                })?;
            let mut ports = options.peer_ports.clone();
            ports.sort_unstable();
            ports.dedup();
            for port in ports {
                let listener = peers
                    .listen(None, port, DEFAULT_BACKLOG)
                    .map_err(|e| RuntimeError::Listener { source: e.into() })?;
                accepting.push(Acceptor::Peers(listener));
            }
        }
        let max_concurrency = options.max_concurrency.clamp(1, Semaphore::MAX_PERMITS);
        let max_connections = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let (phase_tx, phase) = watch::channel(Phase::Serving);
        let server = Arc::new(Server {
            engine: self.engine_of(module)?,
            runtime: self.clone(),
            view,
            yield_every: self.config().yield_every_ticks.max(1),
            pre,
            grants: Arc::new(spec.network.clone()),
            spec,
            scratch,
            slots: Arc::new(Semaphore::new(max_concurrency)),
            waiting: AtomicUsize::new(0),
            max_queue: options.max_queue,
            max_body_size: options.max_body_size,
            access_log: options.access_log.clone(),
            requests: AtomicU64::new(0),
            phase,
        });
        let connections = Arc::new(Semaphore::new(max_connections));
        let mut acceptors = tokio::task::JoinSet::new();
        for listener in accepting {
            acceptors.spawn(accept_loop(
                listener,
                Arc::clone(&server),
                Arc::clone(&connections),
                options.header_read_timeout,
            ));
        }

        shutdown.await;
        let _ = phase_tx.send(Phase::Draining);
        acceptors.shutdown().await;
        let everything_done = async {
            // Every connection and every guest holds a permit until it ends.
            let _c = connections.acquire_many(permits(max_connections)).await;
            let _s = server.slots.acquire_many(permits(max_concurrency)).await;
        };
        let mut cut_off = 0;
        if tokio::time::timeout(options.drain_timeout, everything_done)
            .await
            .is_err()
        {
            cut_off = (max_concurrency - server.slots.available_permits()) as u64;
            let _ = phase_tx.send(Phase::Abort);
            let _ = tokio::time::timeout(ABORT_GRACE, async {
                let _c = connections.acquire_many(permits(max_connections)).await;
                let _s = server.slots.acquire_many(permits(max_concurrency)).await;
            })
            .await;
        }
        Ok(ServeReport {
            requests: server.requests.load(Ordering::Relaxed),
            cut_off,
        })
    }
}

fn permits(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What every request of one `serve` shares.
struct Server {
    engine: wasmtime::Engine,
    runtime: Runtime,
    /// The rootfs and volume handles every request uses (none when the
    /// spec has a private `/tmp` or no directories), open while serving.
    view: Option<Arc<SharedView>>,
    yield_every: u64,
    pre: ProxyPre<ComponentState>,
    spec: InstanceSpec,
    grants: Arc<NetworkGrants>,
    scratch: Option<Arc<ScratchRoot>>,
    /// One permit per request allowed to run an instance.
    slots: Arc<Semaphore>,
    /// Requests queued for a permit.
    waiting: AtomicUsize,
    max_queue: usize,
    max_body_size: u64,
    access_log: OutputTarget,
    requests: AtomicU64,
    phase: watch::Receiver<Phase>,
}

/// Where a server takes connections from: a published port on the host, or
/// a port of the instance on its networks (in process).
enum Acceptor {
    Host(tokio::net::TcpListener),
    Peers(PeerListener),
}

async fn accept_loop(
    listener: Acceptor,
    server: Arc<Server>,
    connections: Arc<Semaphore>,
    header_read_timeout: Duration,
) {
    loop {
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            return;
        };
        let server = Arc::clone(&server);
        match &listener {
            Acceptor::Host(listener) => {
                let (stream, remote) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    // Out of descriptors or a connection reset before
                    // accept: the listener itself is fine, try again shortly.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Small responses go out at once instead of waiting on Nagle.
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    serve_connection(stream, remote, server, header_read_timeout).await;
                    drop(permit);
                });
            }
            Acceptor::Peers(listener) => {
                // An in-process listener fails only once its instance left
                // every network: nothing more will come.
                let Ok(stream) = listener.accept().await else {
                    return;
                };
                let remote = stream.peer_addr();
                tokio::spawn(async move {
                    serve_connection(stream, remote, server, header_read_timeout).await;
                    drop(permit);
                });
            }
        }
    }
}

async fn serve_connection<S>(
    stream: S,
    remote: SocketAddr,
    server: Arc<Server>,
    header_read_timeout: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut phase = server.phase.clone();
    let service = {
        let server = Arc::clone(&server);
        hyper::service::service_fn(move |req| {
            let server = Arc::clone(&server);
            async move { Ok::<_, Infallible>(server.handle(remote, req).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    if *phase.borrow_and_update() != Phase::Serving {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = phase.changed() => {
                if changed.is_err() {
                    let _ = conn.as_mut().await;
                    return;
                }
                match *phase.borrow_and_update() {
                    Phase::Serving => {}
                    Phase::Draining => conn.as_mut().graceful_shutdown(),
                    Phase::Abort => return,
                }
            }
        }
    }
}

/// How a request's guest ended when it sent no response.
enum GuestEnd {
    Returned,
    Failed(String),
    TimedOut,
    Aborted,
}

impl Server {
    async fn handle(
        self: Arc<Self>,
        remote: SocketAddr,
        req: Request<Incoming>,
    ) -> Response<Logged> {
        let started = Instant::now();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let entry = AccessEntry {
            at: SystemTime::now(),
            remote,
            method: req.method().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            version: req.version(),
            started,
            note: None,
        };
        let (response, note) = self.respond(req, started).await;
        let mut entry = entry;
        entry.note = note;
        let status = response.status();
        let expected = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        response.map(|body| Logged {
            expected: expected.or_else(|| body.size_hint().exact()),
            inner: body,
            bytes: 0,
            status,
            entry: Some(entry),
            log: self.access_log.clone(),
        })
    }

    /// The response and, for a response wrun made itself, why.
    async fn respond(
        &self,
        req: Request<Incoming>,
        started: Instant,
    ) -> (Response<WasiBody>, Option<String>) {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_size) {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {} bytes", self.max_body_size),
            );
        }
        let deadline = self.spec.limits.timeout.map(|t| started + t);
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => {
                return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
            }
            Err(TryAcquireError::NoPermits) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many requests waiting".into(),
                    );
                }
                let acquire = self.slots.clone().acquire_owned();
                let got = match deadline {
                    Some(at) => tokio::time::timeout_at(at.into(), acquire).await.ok(),
                    None => Some(acquire.await),
                };
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match got {
                    Some(Ok(p)) => p,
                    Some(Err(_closed)) => {
                        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
                    }
                    None => {
                        return plain(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "no free instance before the request's deadline".into(),
                        );
                    }
                }
            }
        };

        // Each request's instance takes one of the runtime's slots, shared
        // with runs: a daemon full of idle instances answers 503.
        let slot = match self.runtime.reserve() {
            Ok(slot) => slot,
            Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        };
        let too_large = Arc::new(AtomicBool::new(false));
        let req = req.map(|body| CheckedBody {
            inner: body,
            check: BodyCap {
                left: self.max_body_size,
                too_large: Arc::clone(&too_large),
            },
        });
        let (tx, rx) = oneshot::channel();
        let mut store = match self.new_store(deadline) {
            Ok(s) => s,
            Err(e) => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot set up the instance: {e}"),
                );
            }
        };
        let handles = {
            let mut view = store.data_mut().http();
            view.new_incoming_request(WasiScheme::Http, req)
                .and_then(|r| Ok((r, view.new_response_outparam(tx)?)))
        };
        let (request, outparam) = match handles {
            Ok(h) => h,
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}")),
        };
        let pre = self.pre.clone();
        let mut phase = self.phase.clone();
        // The guest is polled on this connection's task until it answers
        // (no hand-off to another thread for a quick handler); if it is
        // still streaming the body then, it goes on in a task of its own.
        let mut guest = Box::pin(async move {
            let _permit = permit;
            let _slot = slot;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            };
            let bounded = async {
                match deadline {
                    Some(at) => tokio::time::timeout_at(at.into(), run)
                        .await
                        .unwrap_or_else(|_| Err(wasmtime::Error::new(DeadlineExceeded))),
                    None => run.await,
                }
            };
            let aborted = phase.wait_for(|p| *p == Phase::Abort);
            tokio::select! {
                result = bounded => match result {
                    Ok(()) => GuestEnd::Returned,
                    Err(e) if e.is::<DeadlineExceeded>() || e.chain().any(|c| c.is::<DeadlineExceeded>()) => GuestEnd::TimedOut,
                    Err(e) => GuestEnd::Failed(format!("{e:#}")),
                },
                _ = aborted => GuestEnd::Aborted,
            }
        });
        let mut rx = rx;
        let first = tokio::select! {
            answer = &mut rx => Err(answer),
            end = &mut guest => Ok(end),
        };
        let (answer, ended) = match first {
            // The guest is done; whatever it set (or not) is in the channel.
            Ok(end) => (rx.await, Some(end)),
            Err(answer) => (answer, None),
        };
        // Past the cap the guest saw a failed read; whatever it made of
        // that, the client's request was too large.
        if too_large.load(Ordering::Relaxed) {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {} bytes", self.max_body_size),
            );
        }
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the guest answered with an error: {code:?}"),
                );
            }
            Err(_no_response) => {
                let end = match ended {
                    Some(end) => end,
                    None => guest.await,
                };
                return match end {
                    GuestEnd::TimedOut => plain(
                        StatusCode::GATEWAY_TIMEOUT,
                        "the request's deadline passed before the guest answered".into(),
                    ),
                    GuestEnd::Aborted => {
                        plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
                    }
                    GuestEnd::Failed(e) => plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the guest failed: {}", first_line(&e)),
                    ),
                    GuestEnd::Returned => plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the guest returned without setting a response".into(),
                    ),
                };
            }
        };
        if ended.is_none() {
            // Answered but not finished: let it write the rest of the body.
            tokio::spawn(guest);
        }
        (response, None)
    }

    fn new_store(
        &self,
        deadline: Option<Instant>,
    ) -> Result<wasmtime::Store<ComponentState>, RuntimeError> {
        // The server's view was checked when serving started: each request
        // takes it as is (no lookup, no stat of the host paths).
        let grants = match &self.view {
            Some(view) => grant_in_view(&self.spec, view)?,
            None => grant_shared(&self.spec, self.scratch.as_deref(), self.runtime.views())?,
        };
        let mut builder = grants.builder;
        let mut ctx = builder.build();
        if let Some(view) = &grants.shared {
            view.install(&mut ctx);
        }
        let state = ComponentState {
            ctx,
            table: ResourceTable::new(),
            // A per-instance gauge would be overwritten by every concurrent
            // request; serving reports no live memory figure.
            limiter: InstanceLimiter::new(
                Some(self.runtime.memory_budget(self.spec.limits.memory)),
                None,
            ),
            http: WasiHttpCtx::new(),
            outgoing: OutgoingHttp {
                grants: Arc::clone(&self.grants),
            },
            sockets: InstanceSockets::new(&self.spec.network),
            // Every request's instance sees the served instance's one view,
            // as every process of a container sees its one filesystem.
            rootfs: self.spec.writable_rootfs.clone(),
            _tmp: grants.tmp,
        };
        new_store(
            &self.engine,
            state,
            &self.spec.limits,
            deadline,
            self.yield_every,
        )
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A response wrun writes itself, with the reason as its body and log note.
fn plain(status: StatusCode, reason: String) -> (Response<WasiBody>, Option<String>) {
    let body = http_body_util::Full::new(Bytes::from(format!("{reason}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    (response, Some(reason))
}

/// Fails a request body once more than `left` bytes arrived, and says so
/// in `too_large`.
struct BodyCap {
    left: u64,
    too_large: Arc<AtomicBool>,
}

impl FrameCheck for BodyCap {
    fn frame(&mut self, frame: &Frame<Bytes>) -> Result<(), HttpError> {
        let n = frame.data_ref().map_or(0, |d| d.len() as u64);
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => {
                self.too_large.store(true, Ordering::Relaxed);
                Err(HttpError::HttpRequestBodySize(None))
            }
        }
    }
}

/// One request as the access log shows it.
struct AccessEntry {
    at: SystemTime,
    remote: SocketAddr,
    method: String,
    target: String,
    version: http::Version,
    started: Instant,
    note: Option<String>,
}

/// A response body that counts what it sent and writes the access-log line
/// when it ends, fails or is dropped (the client went away).
struct Logged {
    inner: WasiBody,
    bytes: u64,
    /// The body's length when known: hyper stops polling once it is sent.
    expected: Option<u64>,
    status: StatusCode,
    entry: Option<AccessEntry>,
    log: OutputTarget,
}

impl Logged {
    fn finish(&mut self, outcome: Option<&str>) {
        let Some(e) = self.entry.take() else {
            return;
        };
        let mut line = format!(
            "{} {} \"{} {} {:?}\" {} {} {:.3}ms",
            rfc3339(e.at),
            e.remote,
            e.method,
            e.target,
            e.version,
            self.status.as_u16(),
            self.bytes,
            e.started.elapsed().as_secs_f64() * 1000.0,
        );
        if let Some(note) = e.note.as_deref().or(outcome) {
            line.push_str(&format!(" ({note})"));
        }
        line.push('\n');
        write_line(&self.log, line.as_bytes());
    }
}

fn write_line(target: &OutputTarget, line: &[u8]) {
    use std::io::Write;
    match target {
        OutputTarget::Null => {}
        OutputTarget::Inherit => {
            let _ = std::io::stderr().lock().write_all(line);
        }
        OutputTarget::Sink(sink) => {
            let _ = OutputSink::write(sink.as_ref(), line);
        }
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                if this.inner.is_end_stream() || this.expected.is_some_and(|n| this.bytes >= n) {
                    this.finish(None);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let why = format!("response body failed: {e}");
                this.finish(Some(&why));
            }
            Poll::Ready(None) => this.finish(None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream() || self.expected.is_some_and(|n| self.bytes >= n);
        let note = if complete {
            None
        } else {
            Some("client gone before the response ended")
        };
        self.finish(note);
    }
}

/// `at` in RFC 3339, UTC, to the millisecond: `2026-11-28T12:34:56.789Z`
/// (as RFC 3339 allows, trailing zeros of the fraction are left out).
fn rfc3339(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    at.replace_millisecond(at.millisecond())
        .unwrap_or(at)
        .format(&Rfc3339)
        // Only a clock outside the years 0 to 9999 cannot be written.
        .unwrap_or_else(|_| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuntimeConfig;
    use crate::outgoing::tests::TwoNetworks;
    use std::io::{Read, Write};

    fn hello_http(rt: &Runtime) -> PreparedModule {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/hello-http/hello-http.wasm"
        );
        let wasm = std::fs::read(path).expect("examples/hello-http/hello-http.wasm");
        rt.prepare(
            &crate::ModuleDigest::of(&wasm),
            &wasm,
            crate::PrepareOptions::default(),
        )
        .expect("prepare hello-http")
    }

    /// One GET on a new connection; the whole answer.
    fn get(addr: SocketAddr, target: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read the answer");
        answer
    }

    /// Two served components on one network: `front` on a host port, `api`
    /// on no host port at all, reachable from `front` by its name alone.
    #[test]
    fn a_served_peer_answers_by_name_in_process_without_a_host_socket() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 8,
            scratch_dir: Some(scratch.path().join("scratch")),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let module = hello_http(&rt);
        let net = crate::PeerNet::new(Arc::new(TwoNetworks));
        let peers_of = |name: &str| {
            let mut spec = InstanceSpec::default().env("ROLE", name);
            spec.network.peers = Some(net.attach(name));
            spec
        };
        let (api_spec, front_spec) = (peers_of("api"), peers_of("front"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio")
                .block_on(async {
                    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
                        let _ = rx.wait_for(|s| *s).await;
                    };
                    let api = rt.serve(
                        &module,
                        Vec::new(),
                        api_spec,
                        ServeOptions {
                            peer_ports: vec![80],
                            ..ServeOptions::default()
                        },
                        until_stopped(stopped.clone()),
                    );
                    let front = rt.serve(
                        &module,
                        vec![listener],
                        front_spec,
                        ServeOptions::default(),
                        until_stopped(stopped),
                    );
                    let (api, front) = tokio::join!(api, front);
                    (api.expect("api served"), front.expect("front served"))
                })
        });
        let answer = get(addr, "/fetch?http://api/env?ROLE");
        assert!(answer.ends_with("\r\n\r\n200 api\n"), "{answer}");
        // Its network address works too; a port it does not serve is refused.
        let answer = get(addr, "/fetch?http://10.0.0.3/env?ROLE");
        assert!(answer.ends_with("200 api\n"), "{answer}");
        let answer = get(addr, "/fetch?http://api:8080/");
        assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
        assert!(answer.contains("ConnectionRefused"), "{answer}");
        stop.send(true).expect("servers listening");
        let (api, front) = server.join().expect("server thread");
        assert_eq!((api.requests, front.requests), (2, 3));
    }

    #[test]
    fn peer_ports_without_a_network_are_refused() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 2,
            scratch_dir: Some(scratch.path().join("scratch")),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let module = hello_http(&rt);
        let served = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio")
            .block_on(rt.serve(
                &module,
                Vec::new(),
                InstanceSpec::default(),
                ServeOptions {
                    peer_ports: vec![80],
                    ..ServeOptions::default()
                },
                std::future::ready(()),
            ));
        assert!(
            matches!(served, Err(RuntimeError::Listener { .. })),
            "{served:?}"
        );
    }

    #[test]
    fn access_log_times_are_rfc3339_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_862_096_789);
        assert_eq!(rfc3339(at), "2026-11-28T10:34:56.789Z");
        // Below the millisecond is cut, not rounded.
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_795_862_096_789_999_999);
        assert_eq!(rfc3339(at), "2026-11-28T10:34:56.789Z");
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_862_096_780);
        assert_eq!(rfc3339(at), "2026-11-28T10:34:56.78Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // Every line's time reads back as the instant it names.
        let now = SystemTime::now();
        let back = OffsetDateTime::parse(&rfc3339(now), &Rfc3339).expect("parses as RFC 3339");
        let ms = |t: OffsetDateTime| t.unix_timestamp_nanos() / 1_000_000;
        assert_eq!(ms(back), ms(OffsetDateTime::from(now)));
        assert_eq!(back.offset(), time::UtcOffset::UTC);
    }
}
