//! Serverless HTTP: serving a `wasi:http/proxy` component with one fresh
//! instance per request, and the grant-checked `wasi:http/outgoing-handler`.
//!
//! [`Runtime::serve`] accepts connections on listeners the caller bound and
//! answers HTTP/1.1 with bounded concurrency, a queue that overflows into
//! 503, a per-request deadline (504), a request-body cap (413), a header
//! read timeout against slow clients, graceful shutdown and one access-log
//! line per request. Outgoing requests of any component go through
//! [`OutgoingHttp`], which connects only to addresses the instance's
//! [`NetworkGrants`] allow and never re-resolves a name after checking it.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, TryAcquireError, oneshot, watch};
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme as WasiScheme;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks, WasiHttpView,
};

use crate::limiter::InstanceLimiter;
use crate::outcome::DeadlineExceeded;
use crate::runtime::{ComponentState, is_capacity, new_store};
use crate::sandbox::{SharedView, grant_in_view, grant_shared};
use crate::stdio::{OutputSink, OutputTarget};
use crate::{InstanceSpec, NetworkGrants, PreparedModule, Runtime, RuntimeError};

/// How long an outgoing connection may take when the guest sets no
/// `connect-timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first byte of an outgoing response, and then each further
/// chunk, may take when the guest sets no timeout of its own.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
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
        let mut accepting = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let registered = listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener));
            accepting.push(registered.map_err(|source| RuntimeError::Listener { source })?);
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
    scratch: Option<Arc<crate::sandbox::ScratchRoot>>,
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

async fn accept_loop(
    listener: tokio::net::TcpListener,
    server: Arc<Server>,
    connections: Arc<Semaphore>,
    header_read_timeout: Duration,
) {
    loop {
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            return;
        };
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors or a connection reset before accept: the
            // listener itself is fine, try again shortly.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small responses go out at once instead of waiting on Nagle.
        let _ = stream.set_nodelay(true);
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            serve_connection(stream, remote, server, header_read_timeout).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    server: Arc<Server>,
    header_read_timeout: Duration,
) {
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
    NoCapacity,
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

        let too_large = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
                    Err(e) if is_capacity(&e) => GuestEnd::NoCapacity,
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
                    GuestEnd::NoCapacity => plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no free instance slot".into(),
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
            limiter: InstanceLimiter::new(self.spec.limits.memory, None),
            http: WasiHttpCtx::new(),
            outgoing: OutgoingHttp {
                grants: Arc::clone(&self.grants),
            },
            sockets: crate::sockets::InstanceSockets::new(&self.spec.network),
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

/// A hyper body passed on frame by frame, each frame (and each wait for
/// one) first shown to a [`FrameCheck`] that may end the body with an error.
struct CheckedBody<C> {
    inner: Incoming,
    check: C,
}

/// What a [`CheckedBody`] checks as its frames arrive.
trait FrameCheck: Unpin {
    /// Sees each frame before it is passed on.
    fn frame(&mut self, frame: &Frame<Bytes>) -> Result<(), HttpError>;

    /// Called each time no frame is ready yet.
    fn pending(&mut self, _cx: &mut Context<'_>) -> Result<(), HttpError> {
        Ok(())
    }
}

impl<C: FrameCheck> Body for CheckedBody<C> {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(HttpError::from);
        let checked = match &polled {
            Poll::Ready(Some(Ok(frame))) => this.check.frame(frame),
            Poll::Ready(_) => Ok(()),
            Poll::Pending => this.check.pending(cx),
        };
        match checked {
            Ok(()) => polled,
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Fails a request body once more than `left` bytes arrived, and says so
/// in `too_large`.
struct BodyCap {
    left: u64,
    too_large: Arc<std::sync::atomic::AtomicBool>,
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

/// Fails a response body when no chunk arrives for `idle`.
struct IdleBound {
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl FrameCheck for IdleBound {
    fn frame(&mut self, _frame: &Frame<Bytes>) -> Result<(), HttpError> {
        let next = tokio::time::Instant::now() + self.idle;
        self.timer.as_mut().reset(next);
        Ok(())
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Result<(), HttpError> {
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Err(HttpError::ConnectionReadTimeout),
            Poll::Pending => Ok(()),
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

/// `2026-11-28T12:34:56.789Z` for a time after the epoch.
fn rfc3339(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The `wasi:http` hooks of one instance: outgoing requests go only where
/// its network grants allow.
pub(crate) struct OutgoingHttp {
    pub(crate) grants: Arc<NetworkGrants>,
}

impl OutgoingHttp {
    pub(crate) fn new(grants: &NetworkGrants) -> Self {
        Self {
            grants: Arc::new(grants.clone()),
        }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        Box::new(send_granted(Arc::clone(&self.grants), request, options))
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outgoing,
        }
    }
}

/// Sends one outgoing request over plain HTTP/1.1 to an address the grants
/// allow. Refused (`HTTP-request-denied`) before any packet leaves when the
/// destination is not granted; HTTPS is refused with a message (wrun links
/// no TLS stack).
async fn send_granted(
    grants: Arc<NetworkGrants>,
    mut request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
    let uri = request.uri().clone();
    let authority = uri.authority().ok_or(HttpError::HttpRequestUriInvalid)?;
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addrs = granted_addrs(&grants, authority.host(), port).await?;
    if tls {
        return Err(HttpError::InternalError(Some(
            "wrun does not support outgoing HTTPS yet: use an http:// URL".to_owned(),
        )));
    }
    let options = options.unwrap_or_default();
    let connect_timeout = options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let stream = connect_first(&addrs, connect_timeout).await?;
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    let conn = wasmtime_wasi::runtime::spawn(conn);
    // The request line carries only the path: the full URI is for proxies.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let first_byte = options.first_byte_timeout.unwrap_or(DEFAULT_READ_TIMEOUT);
    let between = options
        .between_bytes_timeout
        .unwrap_or(DEFAULT_READ_TIMEOUT)
        .max(Duration::from_millis(1));
    let response = tokio::time::timeout(first_byte, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)??;
    let response = response.map(|body| {
        CheckedBody {
            inner: body,
            check: IdleBound {
                idle: between,
                timer: Box::pin(tokio::time::sleep(between)),
            },
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move { conn.await.map_err(HttpError::from) });
    Ok((response, io))
}

/// The addresses a request to `host:port` may connect to: a literal address
/// if a rule allows it; a name granted by name, resolved on the host; or,
/// with DNS granted, a name resolved and kept to the addresses a rule
/// allows. A name that is neither is refused without a lookup.
async fn granted_addrs(
    grants: &NetworkGrants,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, HttpError> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, port);
        return if grants.allows_addr(addr) {
            Ok(vec![addr])
        } else {
            Err(HttpError::HttpRequestDenied)
        };
    }
    let by_name = grants.allows_host(literal, port);
    if !by_name && !grants.dns {
        return Err(HttpError::HttpRequestDenied);
    }
    let found = tokio::net::lookup_host((literal, port))
        .await
        .map_err(|_| HttpError::DnsError {
            rcode: Some("address not found".to_owned()),
            info_code: None,
        })?;
    let allowed: Vec<SocketAddr> = found
        .filter(|a| by_name || grants.allows_addr(*a))
        .collect();
    if allowed.is_empty() {
        return Err(HttpError::HttpRequestDenied);
    }
    Ok(allowed)
}

async fn connect_first(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<tokio::net::TcpStream, HttpError> {
    let mut last = HttpError::ConnectionRefused;
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = HttpError::Connect(e),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(rules: &[&str], dns: bool) -> NetworkGrants {
        NetworkGrants {
            connect: rules
                .iter()
                .map(|r| r.parse().unwrap_or_else(|e| panic!("{r}: {e}")))
                .collect(),
            dns,
            ..NetworkGrants::default()
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn denied(r: Result<Vec<SocketAddr>, HttpError>) -> bool {
        matches!(r, Err(HttpError::HttpRequestDenied))
    }

    #[test]
    fn metadata_address_and_ungranted_ports_are_denied() {
        let g = grants(&["127.0.0.1:8080"], false);
        assert!(denied(block_on(granted_addrs(&g, "169.254.169.254", 80))));
        assert!(denied(block_on(granted_addrs(&g, "127.0.0.1", 8081))));
        assert!(denied(block_on(granted_addrs(
            &g,
            "[::ffff:169.254.169.254]",
            80
        ))));
        let ok = block_on(granted_addrs(&g, "127.0.0.1", 8080)).expect("granted");
        assert_eq!(
            ok,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().expect("addr")]
        );
    }

    #[test]
    fn names_are_not_looked_up_without_a_name_rule_or_dns() {
        // `localhost` resolves to 127.0.0.1, which the rule allows: only a
        // lookup could find that, and without --allow-dns there is none.
        let g = grants(&["127.0.0.1:8080"], false);
        assert!(denied(block_on(granted_addrs(&g, "localhost", 8080))));
        let g = grants(&["localhost:8080"], false);
        let found = block_on(granted_addrs(&g, "localhost", 8080)).expect("granted by name");
        assert!(found.iter().all(|a| a.port() == 8080));
    }

    #[test]
    fn with_dns_a_name_keeps_only_granted_addresses() {
        let g = grants(&["10.0.0.0/8:8080"], true);
        // localhost resolves to loopback only: nothing granted is left.
        assert!(denied(block_on(granted_addrs(&g, "localhost", 8080))));
    }

    #[test]
    fn access_log_times_are_rfc3339_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_862_096_789);
        assert_eq!(rfc3339(at), "2026-11-28T10:34:56.789Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
