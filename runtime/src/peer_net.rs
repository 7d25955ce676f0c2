//! The in-process network of user-defined networks (issue 21's data plane):
//! instances on a shared network look each other up by name and connect
//! over in-memory byte pipes, with no host socket, route or interface.
//!
//! Three pieces:
//!
//! - [`PeerDirectory`], filled by the embedder (the daemon's network table):
//!   which names and addresses each instance can see. It is asked on every
//!   lookup and connect, so a peer that joins later is found at once and
//!   one that left is not.
//! - [`PeerNet`], one per process: the listeners of running instances and
//!   their open connections, so a disconnect or a stop can reset them.
//! - [`InstancePeers`], one instance's handle on it (given to the runtime in
//!   [`NetworkGrants::peers`](crate::NetworkGrants::peers)): resolve a name,
//!   route an address, listen on a port, connect to a peer. While any clone
//!   of it lives the instance's listeners are reachable; when the last one
//!   is dropped (the run ended) its listeners go and its connections are
//!   reset at both ends.
//!
//! `wasi:sockets` guests use it through `crate::sockets`; host code (an
//! in-process `wasi:http` client or server) uses [`InstancePeers::connect`]
//! and [`InstancePeers::listen`], whose [`PeerStream`] is a tokio
//! `AsyncRead + AsyncWrite` (wrap it in `hyper_util::rt::TokioIo` for hyper).
//!
//! The addresses are IPv4 addresses of the networks' subnets. They exist
//! only inside wrun: an address [`Route`]d to a network is never connected
//! on the host, whatever `--allow-connect` says.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// Bytes one direction of a connection holds before the writer waits (a
/// socket buffer's worth).
const PIPE_CAPACITY: usize = 256 << 10;

/// Connections a listener queues before `accept` (its backlog when the guest
/// sets none; Linux's default `somaxconn` is 4096, a guest rarely needs it).
pub const DEFAULT_BACKLOG: usize = 128;

/// The first port handed to the connecting end of an in-process connection
/// (Linux's `ip_local_port_range` starts at 32768).
const EPHEMERAL_FIRST: u16 = 32768;

/// What the embedder knows about networks: the names and addresses each
/// instance can see. Called on every lookup and connect, from async code:
/// answer from memory, without blocking.
///
/// `instance` is the ID the handle was attached with
/// ([`PeerNet::attach`]); peer IDs are the same kind of ID.
pub trait PeerDirectory: Send + Sync + 'static {
    /// The instances `name` (a container name, a network alias such as a
    /// compose service name, a short ID: what the embedder answers to)
    /// stands for on the networks `instance` is on, with their address on
    /// that network. Instances that are not running (not attached) are
    /// left out by the caller. Empty: not a
    /// peer name for `instance` (the lookup then goes to the host resolver,
    /// if the instance's grants allow one).
    fn resolve(&self, instance: &str, name: &str) -> Vec<PeerAddr>;

    /// Where a connection from `instance` to `addr` goes.
    fn route(&self, instance: &str, addr: IpAddr) -> Route;

    /// `instance`'s own addresses, one per network it is on.
    fn own_addresses(&self, instance: &str) -> Vec<Ipv4Addr>;
}

/// One instance's address on one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The instance's ID.
    pub instance: String,
    pub addr: Ipv4Addr,
}

/// Where an address leads, for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Not an address of any network: the instance's grants decide, as for
    /// any host address.
    Host,
    /// The address of instance `peer` on a network the asking instance is
    /// on; `from` is the asking instance's own address there.
    Peer { peer: String, from: Ipv4Addr },
    /// An address of a network the instance cannot use it on: a network it
    /// is not on, or an address nobody (no running instance) holds there.
    /// Never a host address.
    Unreachable,
}

/// Why an in-process connect or listen failed, as Linux would say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Nobody listens on that port of the peer (`ECONNREFUSED`).
    #[error("connection refused")]
    Refused,
    /// No route to that address from this instance (`EHOSTUNREACH`).
    #[error("no route to host")]
    Unreachable,
    /// The port is already listened on at that address (`EADDRINUSE`).
    #[error("address already in use")]
    AddressInUse,
    /// The address is none of the instance's (`EADDRNOTAVAIL`).
    #[error("cannot assign requested address")]
    AddressNotAvailable,
}

impl From<PeerError> for io::Error {
    fn from(e: PeerError) -> Self {
        let kind = match e {
            PeerError::Refused => io::ErrorKind::ConnectionRefused,
            PeerError::Unreachable => io::ErrorKind::HostUnreachable,
            PeerError::AddressInUse => io::ErrorKind::AddrInUse,
            PeerError::AddressNotAvailable => io::ErrorKind::AddrNotAvailable,
        };
        io::Error::new(kind, e)
    }
}

/// The process's in-process network: running instances' listeners and
/// open connections. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct PeerNet {
    inner: Arc<NetInner>,
}

struct NetInner {
    directory: Arc<dyn PeerDirectory>,
    state: Mutex<NetState>,
}

#[derive(Default)]
struct NetState {
    /// Running instances by ID: how many handles hold each, and its
    /// listeners by (address, port), `None` for every address.
    attached: HashMap<String, Attached>,
    /// Open connections, to reset them when an end's instance leaves.
    conns: HashMap<u64, ConnRecord>,
    next_conn: u64,
    next_port: u16,
    /// Turns the answers of a name several peers share, so connections
    /// spread over them (dockerd's DNS shuffles them).
    lookups: usize,
}

#[derive(Default)]
struct Attached {
    handles: usize,
    listeners: HashMap<(Option<Ipv4Addr>, u16), Weak<Listener>>,
}

struct ConnRecord {
    conn: Weak<Conn>,
    /// Each end's instance and address.
    ends: [(String, Ipv4Addr); 2],
}

impl PeerNet {
    /// An empty network whose names and routes `directory` answers.
    pub fn new(directory: Arc<dyn PeerDirectory>) -> Self {
        Self {
            inner: Arc::new(NetInner {
                directory,
                state: Mutex::new(NetState {
                    next_port: EPHEMERAL_FIRST,
                    ..NetState::default()
                }),
            }),
        }
    }

    /// Instance `instance`'s handle, for the time it runs: give it to the
    /// runtime in [`NetworkGrants::peers`](crate::NetworkGrants::peers).
    /// Its listeners are reachable while a clone of the handle lives.
    pub fn attach(&self, instance: &str) -> InstancePeers {
        self.inner
            .lock()
            .attached
            .entry(instance.to_string())
            .or_default()
            .handles += 1;
        InstancePeers {
            guard: Arc::new(AttachGuard {
                net: self.clone(),
                instance: instance.to_string(),
            }),
        }
    }

    /// Resets (`connection-reset` at both ends) the open connections that
    /// instance `instance` has through its address `addr`: call it when the
    /// instance leaves the network `addr` belongs to.
    pub fn disconnected(&self, instance: &str, addr: Ipv4Addr) {
        self.reset_where(|(i, a)| i == instance && *a == addr);
    }

    /// Open in-process connections (each counted once), for tests and
    /// leak checks.
    pub fn open_connections(&self) -> usize {
        self.inner.lock().conns.len()
    }

    fn reset_where(&self, matches: impl Fn(&(String, Ipv4Addr)) -> bool) {
        let doomed: Vec<Arc<Conn>> = {
            let mut state = self.inner.lock();
            let ids: Vec<u64> = state
                .conns
                .iter()
                .filter(|(_, r)| r.ends.iter().any(&matches))
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| state.conns.remove(id))
                .filter_map(|r| r.conn.upgrade())
                .collect()
        };
        for conn in doomed {
            conn.reset();
        }
    }

    fn detach(&self, instance: &str) {
        let listeners: Vec<Arc<Listener>> = {
            let mut state = self.inner.lock();
            let Some(a) = state.attached.get_mut(instance) else {
                return;
            };
            a.handles -= 1;
            if a.handles > 0 {
                return;
            }
            state
                .attached
                .remove(instance)
                .map(|a| {
                    a.listeners
                        .into_values()
                        .filter_map(|l| l.upgrade())
                        .collect()
                })
                .unwrap_or_default()
        };
        for l in listeners {
            l.close();
        }
        self.reset_where(|(i, _)| i == instance);
    }
}

impl NetInner {
    fn lock(&self) -> MutexGuard<'_, NetState> {
        // Every change is a single insert or remove: usable after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct AttachGuard {
    net: PeerNet,
    instance: String,
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        self.net.detach(&self.instance);
    }
}

/// One running instance's view of the networks it is on: the peers it can
/// see by name and address, and their listeners. Clones share one
/// attachment; when the last is dropped the instance's listeners close and
/// its connections are reset at both ends.
#[derive(Clone)]
pub struct InstancePeers {
    guard: Arc<AttachGuard>,
}

impl fmt::Debug for InstancePeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InstancePeers")
            .field(&self.guard.instance)
            .finish()
    }
}

impl PartialEq for InstancePeers {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.guard, &other.guard)
    }
}

impl Eq for InstancePeers {}

impl InstancePeers {
    /// The instance's ID.
    pub fn instance(&self) -> &str {
        &self.guard.instance
    }

    fn net(&self) -> &NetInner {
        &self.guard.net.inner
    }

    /// The addresses `name` has for this instance: the running peers it
    /// names on the networks this instance is on. `None`: not a peer name
    /// (nothing running answers to it here). A name several peers share (a
    /// compose service scaled up) gives their addresses in a turning
    /// order, so clients that take the first spread over them.
    pub fn resolve(&self, name: &str) -> Option<Vec<IpAddr>> {
        let found = self.net().directory.resolve(self.instance(), name);
        let mut state = self.net().lock();
        let mut addrs: Vec<IpAddr> = found
            .into_iter()
            .filter(|p| state.attached.contains_key(&p.instance))
            .map(|p| IpAddr::V4(p.addr))
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            return None;
        }
        state.lookups = state.lookups.wrapping_add(1);
        let turn = state.lookups % addrs.len();
        addrs.rotate_left(turn);
        Some(addrs)
    }

    /// Where a connection to `addr` goes (see [`Route`]). A peer address
    /// of an instance that is not running is [`Route::Unreachable`].
    pub fn route(&self, addr: IpAddr) -> Route {
        let addr = addr.to_canonical();
        match self.net().directory.route(self.instance(), addr) {
            Route::Peer { peer, from } if self.net().lock().attached.contains_key(&peer) => {
                Route::Peer { peer, from }
            }
            Route::Peer { .. } => Route::Unreachable,
            other => other,
        }
    }

    /// This instance's own addresses, one per network it is on (none when
    /// it is on no network now).
    pub fn own_addresses(&self) -> Vec<Ipv4Addr> {
        self.net().directory.own_addresses(self.instance())
    }

    /// Listens on `port` at `addr` (`None`: every address of the instance,
    /// the networks it joins later too), queueing up to `backlog`
    /// connections. Port 0 is not taken: an in-process listener needs its
    /// port.
    pub fn listen(
        &self,
        addr: Option<Ipv4Addr>,
        port: u16,
        backlog: usize,
    ) -> Result<PeerListener, PeerError> {
        if port == 0 {
            return Err(PeerError::AddressNotAvailable);
        }
        if let Some(a) = addr
            && !self.own_addresses().contains(&a)
        {
            return Err(PeerError::AddressNotAvailable);
        }
        let mut state = self.net().lock();
        let Some(me) = state.attached.get_mut(self.instance()) else {
            return Err(PeerError::AddressNotAvailable);
        };
        me.listeners.retain(|_, l| l.strong_count() > 0);
        let clash = me
            .listeners
            .keys()
            .any(|(a, p)| *p == port && (a.is_none() || addr.is_none() || *a == addr));
        if clash {
            return Err(PeerError::AddressInUse);
        }
        let listener = Arc::new(Listener {
            state: Mutex::new(ListenState {
                queue: VecDeque::new(),
                backlog: backlog.max(1),
                waker: None,
                closed: false,
            }),
        });
        me.listeners.insert((addr, port), Arc::downgrade(&listener));
        Ok(PeerListener {
            listener,
            local: SocketAddr::new(IpAddr::V4(addr.unwrap_or(Ipv4Addr::UNSPECIFIED)), port),
        })
    }

    /// Connects to `to` in process. `to` must route to a peer
    /// ([`InstancePeers::route`]); a peer with no listener on the port is
    /// [`PeerError::Refused`], an address not routed to a running peer
    /// [`PeerError::Unreachable`]. The answer is immediate: there is no
    /// handshake to wait for.
    pub fn connect(&self, to: SocketAddr) -> Result<PeerStream, PeerError> {
        let IpAddr::V4(to_ip) = to.ip().to_canonical() else {
            return Err(PeerError::Unreachable);
        };
        let Route::Peer { peer, from } = self.route(IpAddr::V4(to_ip)) else {
            return Err(PeerError::Unreachable);
        };
        let mut state = self.net().lock();
        let listener = state
            .attached
            .get(&peer)
            .and_then(|a| {
                a.listeners
                    .get(&(Some(to_ip), to.port()))
                    .or_else(|| a.listeners.get(&(None, to.port())))
            })
            .and_then(Weak::upgrade)
            .ok_or(PeerError::Refused)?;
        let port = state.next_port;
        state.next_port = port.checked_add(1).unwrap_or(EPHEMERAL_FIRST);
        let id = state.next_conn;
        state.next_conn += 1;
        let client_addr = SocketAddr::new(IpAddr::V4(from), port);
        let server_addr = SocketAddr::new(IpAddr::V4(to_ip), to.port());
        let conn = Arc::new(Conn::new(id, Arc::downgrade(&self.guard.net.inner)));
        let client = End::new(Arc::clone(&conn), 0, client_addr, server_addr);
        let server = End::new(Arc::clone(&conn), 1, server_addr, client_addr);
        listener.push(server)?;
        state.conns.insert(
            id,
            ConnRecord {
                conn: Arc::downgrade(&conn),
                ends: [(self.instance().to_string(), from), (peer, to_ip)],
            },
        );
        Ok(PeerStream::new(client))
    }
}

/// A listener of an instance on its networks. Dropping it stops listening;
/// connections queued and not accepted are reset.
pub struct PeerListener {
    listener: Arc<Listener>,
    local: SocketAddr,
}

impl fmt::Debug for PeerListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerListener")
            .field("local", &self.local)
            .finish()
    }
}

impl PeerListener {
    /// The address listened on (`0.0.0.0:PORT` for every address).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next connection, when one is queued.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<PeerStream>> {
        let mut s = self.listener.lock();
        if let Some(end) = s.queue.pop_front() {
            return Poll::Ready(Ok(PeerStream::new(end)));
        }
        if s.closed {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected)));
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<PeerStream> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The next connection if one is queued now.
    pub fn try_accept(&self) -> Option<PeerStream> {
        self.listener.lock().queue.pop_front().map(PeerStream::new)
    }

    /// Changes how many connections may wait to be accepted.
    pub fn set_backlog(&self, backlog: usize) {
        self.listener.lock().backlog = backlog.max(1);
    }

    /// Waits until a connection is queued (or the listener closed).
    pub async fn ready(&self) {
        self.listener.ready().await
    }

    /// A pollable for a guest's `subscribe`: ready when a connection is
    /// queued.
    pub(crate) fn waiter(&self) -> ListenerWaiter {
        ListenerWaiter(Arc::clone(&self.listener))
    }
}

/// Ready when a listener has a connection to accept (or is closed).
pub(crate) struct ListenerWaiter(Arc<Listener>);

#[wasmtime_wasi::async_trait]
impl Pollable for ListenerWaiter {
    async fn ready(&mut self) {
        self.0.ready().await
    }
}

impl Drop for PeerListener {
    fn drop(&mut self) {
        self.listener.close();
    }
}

struct Listener {
    state: Mutex<ListenState>,
}

struct ListenState {
    queue: VecDeque<End>,
    backlog: usize,
    waker: Option<Waker>,
    closed: bool,
}

impl Listener {
    fn lock(&self) -> MutexGuard<'_, ListenState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn ready(&self) {
        poll_fn(|cx| {
            let mut s = self.lock();
            if !s.queue.is_empty() || s.closed {
                return Poll::Ready(());
            }
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Queues the server end of a new connection; a full backlog or a
    /// closed listener refuses it.
    fn push(&self, end: End) -> Result<(), PeerError> {
        let mut s = self.lock();
        if s.closed || s.queue.len() >= s.backlog {
            return Err(PeerError::Refused);
        }
        s.queue.push_back(end);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        Ok(())
    }

    fn close(&self) {
        let queued: Vec<End> = {
            let mut s = self.lock();
            s.closed = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            s.queue.drain(..).collect()
        };
        for end in queued {
            end.conn.reset();
        }
    }
}

/// One connection: a pipe each way, and whether it was reset.
struct Conn {
    id: u64,
    net: Weak<NetInner>,
    state: Mutex<ConnState>,
}

#[derive(Default)]
struct ConnState {
    /// `pipes[i]` carries what end `i` writes to end `1 - i`.
    pipes: [Pipe; 2],
    reset: bool,
    ends_alive: u8,
}

#[derive(Default)]
struct Pipe {
    /// The bytes written and not yet read, as the writes handed them (no
    /// copy in between), and how many.
    buf: VecDeque<Bytes>,
    len: usize,
    /// The writer shut down its side or is gone: EOF after `buf`.
    write_closed: bool,
    /// The reader is gone: writes fail.
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    /// Up to `max` bytes from the front: one write's bytes at most, split
    /// without a copy.
    fn take(&mut self, max: usize) -> Bytes {
        let Some(front) = self.buf.front_mut() else {
            return Bytes::new();
        };
        let chunk = if front.len() > max {
            front.split_to(max)
        } else {
            self.buf.pop_front().unwrap_or_default()
        };
        self.len -= chunk.len();
        chunk
    }

    fn clear(&mut self) {
        self.buf = VecDeque::new();
        self.len = 0;
    }

    fn wake_all(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

impl Conn {
    fn new(id: u64, net: Weak<NetInner>) -> Self {
        Self {
            id,
            net,
            state: Mutex::new(ConnState {
                ends_alive: 2,
                ..ConnState::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reset(&self) {
        let mut s = self.lock();
        s.reset = true;
        for p in &mut s.pipes {
            p.clear();
            p.wake_all();
        }
    }
}

/// One end of a connection; dropping it closes that end (the peer reads
/// EOF, its writes fail).
struct End {
    conn: Arc<Conn>,
    side: usize,
    local: SocketAddr,
    remote: SocketAddr,
}

impl End {
    fn new(conn: Arc<Conn>, side: usize, local: SocketAddr, remote: SocketAddr) -> Self {
        Self {
            conn,
            side,
            local,
            remote,
        }
    }

    fn reset_error() -> io::Error {
        io::Error::from(io::ErrorKind::ConnectionReset)
    }

    /// Reads up to `max` bytes: `Ready(Ok(empty))` is EOF.
    fn poll_read_bytes(&self, cx: Option<&Context<'_>>, max: usize) -> Poll<io::Result<Bytes>> {
        let mut s = self.conn.lock();
        if s.reset {
            return Poll::Ready(Err(Self::reset_error()));
        }
        let pipe = &mut s.pipes[1 - self.side];
        if pipe.len > 0 && max > 0 {
            let bytes = pipe.take(max);
            if let Some(w) = pipe.writer.take() {
                w.wake();
            }
            return Poll::Ready(Ok(bytes));
        }
        if pipe.write_closed {
            return Poll::Ready(Ok(Bytes::new()));
        }
        if let Some(cx) = cx {
            pipe.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Room for a write now: `Ready(Ok(n))` with `n > 0`, or the error a
    /// write would get.
    fn poll_room(&self, cx: Option<&Context<'_>>) -> Poll<io::Result<usize>> {
        let mut s = self.conn.lock();
        if s.reset {
            return Poll::Ready(Err(Self::reset_error()));
        }
        let pipe = &mut s.pipes[self.side];
        if pipe.write_closed {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        if pipe.read_closed {
            // The peer closed the connection: Linux answers a write with
            // a reset then.
            return Poll::Ready(Err(Self::reset_error()));
        }
        let room = PIPE_CAPACITY.saturating_sub(pipe.len);
        if room > 0 {
            return Poll::Ready(Ok(room));
        }
        if let Some(cx) = cx {
            pipe.writer = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn push(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let mut s = self.conn.lock();
        let pipe = &mut s.pipes[self.side];
        pipe.len += data.len();
        pipe.buf.push_back(data);
        if let Some(w) = pipe.reader.take() {
            w.wake();
        }
    }

    fn shutdown_write(&self) {
        let mut s = self.conn.lock();
        let pipe = &mut s.pipes[self.side];
        pipe.write_closed = true;
        pipe.wake_all();
    }
}

impl Drop for End {
    fn drop(&mut self) {
        let last = {
            let mut s = self.conn.lock();
            let mine = &mut s.pipes[self.side];
            mine.write_closed = true;
            mine.wake_all();
            let theirs = &mut s.pipes[1 - self.side];
            theirs.read_closed = true;
            theirs.clear();
            theirs.wake_all();
            s.ends_alive -= 1;
            s.ends_alive == 0
        };
        if last && let Some(net) = self.conn.net.upgrade() {
            net.lock().conns.remove(&self.conn.id);
        }
    }
}

/// One end of an in-process connection: a tokio `AsyncRead + AsyncWrite`.
/// Dropping it closes the connection at this end (the peer reads EOF); a
/// reset (the peer's instance left the network or stopped) fails reads and
/// writes with `ConnectionReset`.
pub struct PeerStream {
    end: Arc<End>,
}

impl fmt::Debug for PeerStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerStream")
            .field("local", &self.end.local)
            .field("remote", &self.end.remote)
            .finish()
    }
}

impl PeerStream {
    fn new(end: End) -> Self {
        Self { end: Arc::new(end) }
    }

    /// This end's address (its instance's address on the network, and a
    /// port).
    pub fn local_addr(&self) -> SocketAddr {
        self.end.local
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.end.remote
    }

    /// Another handle on this end (the connection stays open while one
    /// lives).
    pub(crate) fn share(&self) -> PeerStream {
        PeerStream {
            end: Arc::clone(&self.end),
        }
    }

    /// This end as `wasi:io` streams for a guest. The connection stays
    /// open while either stream lives.
    pub(crate) fn into_wasi_streams(self) -> (PeerInput, PeerOutput) {
        (
            PeerInput {
                end: Arc::clone(&self.end),
            },
            PeerOutput { end: self.end },
        )
    }

    /// Closes the writing side (the peer reads EOF); reading goes on.
    pub fn shutdown_write(&self) {
        self.end.shutdown_write();
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        match self.end.poll_read_bytes(Some(cx), buf.remaining()) {
            Poll::Ready(Ok(bytes)) => {
                buf.put_slice(&bytes);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.end.poll_room(Some(cx)) {
            Poll::Ready(Ok(room)) => {
                let n = room.min(buf.len());
                self.end.push(Bytes::copy_from_slice(&buf[..n]));
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.end.shutdown_write();
        Poll::Ready(Ok(()))
    }
}

/// The guest's input stream of an in-process connection.
pub(crate) struct PeerInput {
    end: Arc<End>,
}

fn stream_error(e: io::Error) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(e))
}

#[wasmtime_wasi::async_trait]
impl Pollable for PeerInput {
    async fn ready(&mut self) {
        // One lock for the check and the waker: a write between the two
        // would wake nobody.
        poll_fn(|cx| {
            let mut s = self.end.conn.lock();
            let reset = s.reset;
            let pipe = &mut s.pipes[1 - self.end.side];
            if reset || pipe.len > 0 || pipe.write_closed {
                return Poll::Ready(());
            }
            pipe.reader = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl InputStream for PeerInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match self.end.poll_read_bytes(None, size) {
            Poll::Ready(Ok(bytes)) if bytes.is_empty() && size > 0 => Err(StreamError::Closed),
            Poll::Ready(Ok(bytes)) => Ok(bytes),
            Poll::Ready(Err(e)) => Err(stream_error(e)),
            Poll::Pending => Ok(Bytes::new()),
        }
    }
}

/// The guest's output stream of an in-process connection.
pub(crate) struct PeerOutput {
    end: Arc<End>,
}

impl PeerOutput {
    fn check(&self, cx: Option<&Context<'_>>) -> Poll<StreamResult<usize>> {
        self.end.poll_room(cx).map_err(|e| {
            // This end was shut down for sending: the stream is closed.
            if e.kind() == io::ErrorKind::BrokenPipe {
                StreamError::Closed
            } else {
                stream_error(e)
            }
        })
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PeerOutput {
    async fn ready(&mut self) {
        poll_fn(|cx| self.check(Some(cx)).map(|_| ())).await
    }
}

impl OutputStream for PeerOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        match self.check(None) {
            Poll::Ready(Err(e)) => Err(e),
            _ => {
                self.end.push(bytes);
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        match self.check(None) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        match self.check(None) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Two networks: `a` (10.0.0.0/24) holds `one` (.2) and `two` (.3);
    /// `b` (10.1.0.0/24) holds `three` (.2) alone.
    struct Fixed;

    const MEMBERS: [(&str, &str, [u8; 4]); 3] = [
        ("one", "a", [10, 0, 0, 2]),
        ("two", "a", [10, 0, 0, 3]),
        ("three", "b", [10, 1, 0, 2]),
    ];

    fn network_of(addr: Ipv4Addr) -> Option<&'static str> {
        match addr.octets() {
            [10, 0, 0, _] => Some("a"),
            [10, 1, 0, _] => Some("b"),
            _ => None,
        }
    }

    impl PeerDirectory for Fixed {
        fn resolve(&self, instance: &str, name: &str) -> Vec<PeerAddr> {
            let mine: Vec<&str> = MEMBERS
                .iter()
                .filter(|m| m.0 == instance)
                .map(|m| m.1)
                .collect();
            MEMBERS
                .iter()
                .filter(|m| m.0 == name && mine.contains(&m.1))
                .map(|m| PeerAddr {
                    instance: m.0.into(),
                    addr: Ipv4Addr::from(m.2),
                })
                .collect()
        }

        fn route(&self, instance: &str, addr: IpAddr) -> Route {
            let IpAddr::V4(v4) = addr else {
                return Route::Host;
            };
            let Some(net) = network_of(v4) else {
                return Route::Host;
            };
            let from = MEMBERS.iter().find(|m| m.0 == instance && m.1 == net);
            let to = MEMBERS.iter().find(|m| Ipv4Addr::from(m.2) == v4);
            match (from, to) {
                (Some(f), Some(t)) => Route::Peer {
                    peer: t.0.into(),
                    from: Ipv4Addr::from(f.2),
                },
                _ => Route::Unreachable,
            }
        }

        fn own_addresses(&self, instance: &str) -> Vec<Ipv4Addr> {
            MEMBERS
                .iter()
                .filter(|m| m.0 == instance)
                .map(|m| Ipv4Addr::from(m.2))
                .collect()
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[tokio::test]
    async fn a_peer_on_a_shared_network_echoes_through_the_pipe() {
        let net = PeerNet::new(Arc::new(Fixed));
        let one = net.attach("one");
        let two = net.attach("two");
        let listener = two.listen(None, 7, DEFAULT_BACKLOG).expect("listen");
        assert_eq!(one.resolve("two"), Some(vec![IpAddr::from([10, 0, 0, 3])]));
        let mut client = one.connect(sa("10.0.0.3:7")).expect("connect");
        assert_eq!(client.local_addr().ip(), IpAddr::from([10, 0, 0, 2]));
        let mut server = listener.accept().await.expect("accept");
        assert_eq!(server.peer_addr(), client.local_addr());
        client.write_all(b"hello").await.expect("write");
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"hello");
        drop(client);
        assert_eq!(server.read(&mut buf).await.expect("eof"), 0);
        drop(server);
        assert_eq!(net.open_connections(), 0);
    }

    #[tokio::test]
    async fn nobody_listening_is_refused_and_other_networks_unreachable() {
        let net = PeerNet::new(Arc::new(Fixed));
        let one = net.attach("one");
        let _two = net.attach("two");
        let three = net.attach("three");
        let _l = three.listen(None, 7, 1).expect("listen");
        assert_eq!(
            one.connect(sa("10.0.0.3:7")).err(),
            Some(PeerError::Refused)
        );
        assert_eq!(
            one.connect(sa("10.1.0.2:7")).err(),
            Some(PeerError::Unreachable)
        );
        assert_eq!(one.resolve("three"), None);
        assert_eq!(one.route(IpAddr::from([10, 1, 0, 2])), Route::Unreachable);
        assert_eq!(one.route(IpAddr::from([127, 0, 0, 1])), Route::Host);
    }

    #[tokio::test]
    async fn a_stopped_peer_is_not_found_and_its_connections_reset() {
        let net = PeerNet::new(Arc::new(Fixed));
        let one = net.attach("one");
        let two = net.attach("two");
        let listener = two.listen(None, 7, 4).expect("listen");
        let mut client = one.connect(sa("10.0.0.3:7")).expect("connect");
        let server = listener.accept().await.expect("accept");
        drop(listener);
        drop(two);
        let mut buf = [0u8; 1];
        let err = client.read(&mut buf).await.expect_err("reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        drop(server);
        assert_eq!(one.resolve("two"), None);
        assert_eq!(one.route(IpAddr::from([10, 0, 0, 3])), Route::Unreachable);
        drop(client);
        assert_eq!(net.open_connections(), 0);
    }

    #[tokio::test]
    async fn a_disconnect_resets_both_ends() {
        let net = PeerNet::new(Arc::new(Fixed));
        let one = net.attach("one");
        let two = net.attach("two");
        let listener = two.listen(None, 7, 4).expect("listen");
        let mut client = one.connect(sa("10.0.0.3:7")).expect("connect");
        let mut server = listener.accept().await.expect("accept");
        net.disconnected("two", Ipv4Addr::new(10, 0, 0, 3));
        let mut buf = [0u8; 1];
        for end in [&mut client, &mut server] {
            let err = end.read(&mut buf).await.expect_err("reset");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
            let err = end.write(b"x").await.expect_err("reset");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        }
    }

    #[test]
    fn a_name_peers_share_gives_each_first_in_turn() {
        struct Scaled;
        impl PeerDirectory for Scaled {
            fn resolve(&self, _: &str, name: &str) -> Vec<PeerAddr> {
                if name != "api" {
                    return Vec::new();
                }
                (2..5)
                    .map(|h| PeerAddr {
                        instance: format!("api{h}"),
                        addr: Ipv4Addr::new(10, 0, 0, h),
                    })
                    .collect()
            }
            fn route(&self, _: &str, _: IpAddr) -> Route {
                Route::Unreachable
            }
            fn own_addresses(&self, _: &str) -> Vec<Ipv4Addr> {
                Vec::new()
            }
        }
        let net = PeerNet::new(Arc::new(Scaled));
        let me = net.attach("web");
        let replicas: Vec<InstancePeers> = ["api2", "api3", "api4"].map(|i| net.attach(i)).into();
        let firsts: std::collections::BTreeSet<IpAddr> = (0..3)
            .map(|_| me.resolve("api").expect("resolves")[0])
            .collect();
        assert_eq!(firsts.len(), 3, "{firsts:?}");
        assert_eq!(me.resolve("api").expect("resolves").len(), 3);
        // A replica that stopped is left out.
        drop(replicas);
        assert_eq!(me.resolve("api"), None);
    }

    #[tokio::test]
    async fn writes_arrive_whole_and_in_order_through_short_reads() {
        let net = PeerNet::new(Arc::new(Fixed));
        let one = net.attach("one");
        let two = net.attach("two");
        let listener = two.listen(None, 7, 4).expect("listen");
        let mut client = one.connect(sa("10.0.0.3:7")).expect("connect");
        let mut server = listener.accept().await.expect("accept");
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for chunk in sent.chunks(7_000) {
                    client.write_all(chunk).await.expect("write");
                }
                client.shutdown().await.expect("shutdown");
            })
        };
        let mut got = Vec::new();
        let mut buf = [0u8; 1_000];
        loop {
            let n = server.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.expect("writer");
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn a_port_is_listened_on_once() {
        let net = PeerNet::new(Arc::new(Fixed));
        let two = net.attach("two");
        let l = two.listen(None, 80, 4).expect("listen");
        assert_eq!(
            two.listen(Some(Ipv4Addr::new(10, 0, 0, 3)), 80, 4).err(),
            Some(PeerError::AddressInUse)
        );
        assert_eq!(
            two.listen(Some(Ipv4Addr::new(10, 0, 0, 9)), 81, 4).err(),
            Some(PeerError::AddressNotAvailable)
        );
        drop(l);
        two.listen(Some(Ipv4Addr::new(10, 0, 0, 3)), 80, 4)
            .expect("free again once dropped");
    }
}
