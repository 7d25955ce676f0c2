//! `wasi:sockets` for one instance as its `NetworkGrants` allow: the address
//! policy wasmtime-wasi consults, published-port binds moved to their host
//! address, and a cap on the sockets an instance holds at once.
//!
//! What a guest sees when it is refused:
//!
//! - creating a TCP socket with no grant at all, a UDP socket without
//!   `--allow-udp` (or a published UDP port), or a name lookup without
//!   `--allow-dns`: `access-denied`;
//! - connecting (or sending a datagram) to an address no `--allow-connect`
//!   rule covers: `access-denied`;
//! - binding and listening on a port that was not published: the bind of
//!   an ephemeral port (0) succeeds, `listen` on it is `access-denied`; a bind
//!   of any other unpublished port is `access-denied`;
//! - more than [`MAX_SOCKETS`] sockets open at once: `new-socket-limit`.
//!
//! A guest bind of a published port `GUESTPORT` binds the host address of
//! its mapping (`-p [IP:]HOSTPORT:GUESTPORT`) instead, whatever address the
//! guest named; `local-address` reports `GUESTPORT` back, so the guest sees
//! the port it asked for. wasmtime-wasi's own implementation does the rest:
//! the functions here are shadowing wrappers that call it.
//!
//! An instance on user-defined networks (`NetworkGrants::peers`) also has
//! the in-process network of `crate::peer_net`, served here without
//! wasmtime-wasi's host sockets (the wasmtime-wasi socket at the same table
//! index is only a shell; `InstanceSockets::peer` holds the real state):
//!
//! - name lookup answers the names of peers on its networks first, with
//!   or without `--allow-dns`; other names go to the host resolver only
//!   when granted, as before;
//! - a bind of one of its network addresses, or of an unpublished port on
//!   every address while it is on a network, binds no host socket: `listen`
//!   makes it reachable from its peers;
//! - a connect to a network address is served in process: a peer's
//!   listener, else `connection-refused`; an address of a network it is
//!   not on, or that no running instance holds, `remote-unreachable`. A
//!   network address never reaches the host, whatever the grants say;
//! - a disconnect or a stop resets the open connections at both ends
//!   (reads and writes fail with `connection-reset`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable, ResourceType};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::tcp::ShutdownType;
use wasmtime_wasi::p2::bindings::sockets::{tcp, tcp_create_socket, udp, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, Pollable};
use wasmtime_wasi::p2::{SocketError, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};
use wasmtime_wasi::{WasiCtxBuilder, WasiView};

use crate::RuntimeError;
use crate::net::{ConnectRule, ConnectTarget, NetworkGrants, PortMapping, Protocol};
use crate::peer_net::{DEFAULT_BACKLOG, InstancePeers, PeerError, PeerListener, PeerStream, Route};

/// Sockets (TCP and UDP, listening, connected or accepted) one instance may
/// hold open at once. Past it, creating or accepting one fails with
/// `new-socket-limit`: a guest that opens sockets in a loop runs out long
/// before the host runs out of descriptors.
pub const MAX_SOCKETS: usize = 256;

/// The `wasi:sockets` version wasmtime-wasi 48 defines; guests importing any
/// 0.2.x version are linked to it, so the wrappers shadow these names.
const SOCKETS_VERSION: &str = "0.2.12";

/// Datagram peers a published UDP port may answer (see [`AddressPolicy`]).
const MAX_UDP_PEERS: usize = 4096;

/// Checks every published host address is free (a conflict is an error
/// now, not a failed bind in the guest later), picks host ports for
/// mappings that left them to the kernel, and turns host-name
/// `--allow-connect` rules into address rules (resolved on the host now,
/// with the rule's port). Called when an instance starts.
pub(crate) async fn resolve(grants: &mut NetworkGrants) -> Result<(), RuntimeError> {
    if !grants.publish.is_empty() {
        grants.claim_host_ports()?;
    }
    let mut resolved = Vec::new();
    for rule in &grants.connect {
        let ConnectTarget::Host(name) = &rule.target else {
            continue;
        };
        let addrs = tokio::net::lookup_host((name.as_str(), rule.port.unwrap_or(0)))
            .await
            .map_err(|source| RuntimeError::ResolveGrant {
                host: name.clone(),
                source,
            })?;
        for addr in addrs {
            resolved.push(ConnectRule {
                target: ConnectTarget::Ip(addr.ip()),
                port: rule.port,
            });
        }
    }
    grants.connect.extend(resolved);
    Ok(())
}

/// Sets the builder's sockets as `grants` allow. No grant: TCP, UDP and
/// name lookup off and every address refused (also with grants, every
/// address not granted is refused).
pub(crate) fn configure(b: &mut WasiCtxBuilder, grants: &NetworkGrants) {
    if grants.is_none() {
        // An instance that may join a network may make TCP sockets while it
        // is on one (`InstanceSockets::may_use_tcp` asks at each socket);
        // no host address is granted all the same.
        b.allow_tcp(grants.peers.is_some())
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        return;
    }
    let udp_published = grants.publish.iter().any(|m| m.protocol == Protocol::Udp);
    let policy = Arc::new(AddressPolicy {
        grants: grants.clone(),
        udp_peers: Mutex::new(HashSet::new()),
    });
    b.allow_tcp(true)
        .allow_udp(grants.udp || grants.host || udp_published)
        .allow_ip_name_lookup(grants.dns || grants.host)
        .socket_addr_check(move |addr, use_| {
            let allowed = policy.allows(addr, use_);
            Box::pin(async move { allowed })
        });
}

/// The answer to wasmtime-wasi's "may this address be used for this?".
struct AddressPolicy {
    grants: NetworkGrants,
    /// Peers that sent a datagram to a published UDP port, so the guest can
    /// answer them (as a published UDP service must).
    udp_peers: Mutex<HashSet<SocketAddr>>,
}

impl AddressPolicy {
    fn allows(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let g = &self.grants;
        // A network address is never a host address, whatever the rules
        // say: the networks' subnets are wrun's own.
        if let Some(peers) = &g.peers
            && peers.route(addr.ip()) != Route::Host
        {
            return false;
        }
        match use_ {
            SocketAddrUse::TcpConnect => g.allows_addr(addr),
            // Port 0 is the implicit bind of a connect (or an explicit one
            // before it); listening on such a port is refused below.
            SocketAddrUse::TcpBind => {
                g.host || addr.port() == 0 || self.published(addr, Protocol::Tcp)
            }
            SocketAddrUse::TcpListen => g.host || self.published(addr, Protocol::Tcp),
            // Only a listener on a published port gets this far.
            SocketAddrUse::TcpAccept => true,
            SocketAddrUse::UdpBind => {
                g.host || addr.port() == 0 || self.published(addr, Protocol::Udp)
            }
            SocketAddrUse::UdpSend => g.allows_addr(addr) || self.peers().contains(&addr),
            SocketAddrUse::UdpReceive => {
                if g.allows_addr(addr) {
                    return true;
                }
                if !g.publish.iter().any(|m| m.protocol == Protocol::Udp) {
                    return false;
                }
                let mut peers = self.peers();
                if peers.len() >= MAX_UDP_PEERS {
                    peers.clear();
                }
                peers.insert(addr);
                true
            }
        }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashSet<SocketAddr>> {
        // Inserts and clears are single calls: usable after a panic.
        self.udp_peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `addr` is the host address of a published mapping.
    fn published(&self, addr: SocketAddr, protocol: Protocol) -> bool {
        self.grants
            .publish
            .iter()
            .any(|m| lands_on(m, addr) && m.protocol == protocol)
    }
}

/// Whether `addr` (a bound host address) is where mapping `m` lands.
fn lands_on(m: &PortMapping, addr: SocketAddr) -> bool {
    m.host_port == addr.port()
        && match m.host_ip {
            None => addr.ip().is_unspecified(),
            Some(ip) => same_ip(ip, addr.ip()),
        }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    canonical(a) == canonical(b)
}

/// A TCP socket served on the instance's networks, in process. The
/// wasmtime-wasi socket at the same table index is only its shell (its
/// options, its family); no host address is bound or connected for it.
enum PeerSocket {
    /// Bound to a port on every address or on a network address of the
    /// instance; `pending` until `finish-bind`.
    Bound {
        local: SocketAddr,
        pending: bool,
        backlog: usize,
    },
    /// Listening; `pending` until `finish-listen`.
    Listening {
        listener: PeerListener,
        local: SocketAddr,
        pending: bool,
    },
    /// `start-connect` answered at once (there is no handshake); taken by
    /// `finish-connect`.
    Connecting(Result<PeerStream, ErrorCode>),
    /// Connected; the streams handed out hold the connection too.
    Connected(PeerStream),
}

/// Per-instance socket state the wrappers keep.
pub(crate) struct InstanceSockets {
    grants: Arc<NetworkGrants>,
    /// Table indices of the TCP and UDP sockets handed out (some may be
    /// closed since; see [`InstanceSockets::open`]).
    tcp: HashSet<u32>,
    udp: HashSet<u32>,
    /// The TCP sockets served in process, by table index (removed by the
    /// socket's destructor).
    peer: HashMap<u32, PeerSocket>,
    /// Host listeners of published ports that peers reach too, by table
    /// index (see [`PublishedToPeers`]).
    forwarders: HashMap<u32, PublishedToPeers>,
}

/// A published port's host listener made reachable from the instance's
/// peers as well: an in-process listener on the same guest port whose
/// connections are handed to the host listener over loopback (so the
/// guest accepts them from the loopback address). Dropping it stops the
/// in-process listener.
struct PublishedToPeers(tokio::task::JoinHandle<()>);

impl Drop for PublishedToPeers {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PublishedToPeers {
    /// Listens on `guest_port` for peers and forwards each connection to
    /// the host listener at `host`.
    fn start(listener: PeerListener, host: SocketAddr) -> Self {
        let target = match host.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), host.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), host.port())
            }
            _ => host,
        };
        Self(tokio::spawn(async move {
            while let Ok(mut peer) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut guest) = tokio::net::TcpStream::connect(target).await else {
                        // The guest stopped listening meanwhile: the
                        // peer's connection ends.
                        return;
                    };
                    if tokio::io::copy_bidirectional(&mut peer, &mut guest)
                        .await
                        .is_err()
                    {
                        // A reset at one end is a reset at the other.
                        let _ = guest.set_zero_linger();
                    }
                });
            }
        }))
    }
}

impl InstanceSockets {
    pub(crate) fn new(grants: &NetworkGrants) -> Self {
        Self {
            grants: Arc::new(grants.clone()),
            tcp: HashSet::new(),
            udp: HashSet::new(),
            peer: HashMap::new(),
            forwarders: HashMap::new(),
        }
    }

    fn peers(&self) -> Option<&InstancePeers> {
        self.grants.peers.as_ref()
    }

    /// Whether the guest may make TCP sockets now: with a grant, or while
    /// it is on a network (a running instance may be connected to one
    /// later, so this is asked at each socket, not once at start).
    fn may_use_tcp(&self) -> bool {
        !self.grants.is_none() || self.peers().is_some_and(|p| !p.own_addresses().is_empty())
    }

    /// After a host listen: a published port is reachable from the
    /// instance's peers too, at its guest port (`-p` publishes to the host
    /// as ever). Best effort: the host listener stands either way.
    fn publish_to_peers(&mut self, view: &mut WasiSocketsCtxView<'_>, rep: u32) {
        let Some(peers) = self.peers() else {
            return;
        };
        let Ok(host) = tcp::HostTcpSocket::local_address(view, Resource::new_borrow(rep))
            .map(SocketAddr::from)
        else {
            return;
        };
        let guest = self.guest_view(host, Protocol::Tcp);
        if guest == host {
            return;
        }
        if let Ok(listener) = peers.listen(None, guest.port(), DEFAULT_BACKLOG) {
            self.forwarders
                .insert(rep, PublishedToPeers::start(listener, host));
        }
    }

    /// Whether a guest bind of `local` is served on the instance's
    /// networks: a bind of one of its network addresses, or of a port
    /// that is not published on every address while it is on a network.
    /// A network address that is not its own cannot be bound.
    fn peer_bind(&self, local: SocketAddr) -> Result<bool, ErrorCode> {
        let Some(peers) = self.peers() else {
            return Ok(false);
        };
        let ip = local.ip().to_canonical();
        let own = peers.own_addresses();
        if let IpAddr::V4(v4) = ip
            && own.contains(&v4)
        {
            return if local.port() == 0 {
                Err(ErrorCode::AddressNotBindable)
            } else {
                Ok(true)
            };
        }
        if peers.route(ip) != Route::Host {
            return Err(ErrorCode::AddressNotBindable);
        }
        Ok(ip.is_unspecified()
            && !own.is_empty()
            && local.port() != 0
            && self.grants.published(local.port(), Protocol::Tcp).is_none())
    }

    /// Sockets still open: forgets the indices whose socket the guest
    /// dropped. An index reused by a new socket of the same kind is that
    /// socket, counted once.
    fn open(&mut self, table: &ResourceTable) -> usize {
        self.tcp
            .retain(|rep| table.get(&Resource::<TcpSocket>::new_own(*rep)).is_ok());
        self.udp
            .retain(|rep| table.get(&Resource::<UdpSocket>::new_own(*rep)).is_ok());
        self.tcp.len() + self.udp.len()
    }

    /// Where a guest bind of `guest` with `protocol` goes on the host: the
    /// mapping's host address for a published port, else unchanged (the
    /// address policy decides).
    fn host_bind(&self, guest: SocketAddr, protocol: Protocol) -> Result<SocketAddr, ErrorCode> {
        let Some(m) = self.grants.published(guest.port(), protocol) else {
            return Ok(guest);
        };
        let ip = match (m.host_ip, guest.ip()) {
            (None, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (None, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            (Some(ip), guest_ip) if ip.is_ipv4() == guest_ip.is_ipv4() => ip,
            // The socket's family is fixed: an IPv6 guest socket cannot
            // bind the IPv4 host address its port is published on.
            (Some(_), _) => return Err(ErrorCode::AddressNotBindable),
        };
        Ok(SocketAddr::new(ip, m.host_port))
    }

    /// The address to report for a socket bound on the host at `host`: the
    /// guest port for a published mapping.
    fn guest_view(&self, host: SocketAddr, protocol: Protocol) -> SocketAddr {
        match self
            .grants
            .publish
            .iter()
            .find(|m| m.protocol == protocol && lands_on(m, host))
        {
            Some(m) => SocketAddr::new(host.ip(), m.guest_port),
            None => host,
        }
    }
}

/// The guest's error for an in-process connect or listen.
fn peer_code(e: PeerError) -> ErrorCode {
    match e {
        PeerError::Refused => ErrorCode::ConnectionRefused,
        PeerError::Unreachable => ErrorCode::RemoteUnreachable,
        PeerError::AddressInUse => ErrorCode::AddressInUse,
        PeerError::AddressNotAvailable => ErrorCode::AddressNotBindable,
    }
}

/// A pollable that is always ready (an in-process socket has nothing to
/// wait for but its listener's queue).
struct AlwaysReady;

#[wasmtime_wasi::async_trait]
impl Pollable for AlwaysReady {
    async fn ready(&mut self) {}
}

/// A name lookup's answers: the addresses of a peer on the instance's
/// networks, or wasmtime-wasi's host lookup (its stream kept in the table
/// at that index, removed with this one).
pub(crate) enum NameLookup {
    Peers(std::vec::IntoIter<IpAddr>),
    Host(u32),
}

#[wasmtime_wasi::async_trait]
impl Pollable for NameLookup {
    // Only the peers' answers are waited on through this type: they are
    // there from the start.
    async fn ready(&mut self) {}
}

/// Store data that holds a WASI context and an instance's socket state.
pub(crate) trait SocketHost: WasiView + 'static {
    /// The instance's socket state and wasmtime-wasi's sockets view, split
    /// so both can be used in one call.
    fn sockets_split(&mut self) -> (&mut InstanceSockets, WasiSocketsCtxView<'_>);
}

/// The guest's error for a failed wasmtime-wasi call; a trap stays a trap.
fn guest_error(e: SocketError) -> wasmtime::Result<ErrorCode> {
    e.downcast()
}

type Answer<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;

/// A wasmtime-wasi call's result as the guest's answer (see [`guest_error`]).
fn answer<T>(result: Result<T, SocketError>) -> Answer<T> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(e) => Ok((Err(guest_error(e)?),)),
    }
}

/// Shadows the `wasi:sockets` functions that bind, create, accept and report
/// local addresses with the wrappers above. Call after
/// `wasmtime_wasi::p2::add_to_linker_async`.
pub(crate) fn add_to_linker<T: SocketHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = shadow(linker);
    linker.allow_shadowing(false);
    result
}

fn shadow<T: SocketHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut i = linker.instance(&format!("wasi:sockets/tcp-create-socket@{SOCKETS_VERSION}"))?;
    i.func_wrap(
        "create-tcp-socket",
        |mut store: StoreContextMut<'_, T>,
         (family,): (IpAddressFamily,)|
         -> Answer<Resource<TcpSocket>> {
            let (mine, mut view) = store.data_mut().sockets_split();
            if !mine.may_use_tcp() {
                return Ok((Err(ErrorCode::AccessDenied),));
            }
            if mine.open(view.table) >= MAX_SOCKETS {
                return Ok((Err(ErrorCode::NewSocketLimit),));
            }
            answer(
                tcp_create_socket::Host::create_tcp_socket(&mut view, family).inspect(|socket| {
                    mine.tcp.insert(socket.rep());
                }),
            )
        },
    )?;

    let mut i = linker.instance(&format!("wasi:sockets/udp-create-socket@{SOCKETS_VERSION}"))?;
    i.func_wrap_async(
        "create-udp-socket",
        |mut store: StoreContextMut<'_, T>, (family,): (IpAddressFamily,)| {
            Box::new(async move {
                let (mine, mut view) = store.data_mut().sockets_split();
                if mine.open(view.table) >= MAX_SOCKETS {
                    return Ok((Err(ErrorCode::NewSocketLimit),));
                }
                answer(
                    udp_create_socket::Host::create_udp_socket(&mut view, family)
                        .await
                        .inspect(|socket| {
                            mine.udp.insert(socket.rep());
                        }),
                )
            })
        },
    )?;

    let mut i = linker.instance(&format!("wasi:sockets/tcp@{SOCKETS_VERSION}"))?;
    i.resource(
        "tcp-socket",
        ResourceType::host::<TcpSocket>(),
        |mut store: StoreContextMut<'_, T>, rep: u32| {
            let (mine, mut view) = store.data_mut().sockets_split();
            // The in-process state goes with its shell: a listener stops,
            // a connection closes.
            mine.peer.remove(&rep);
            mine.forwarders.remove(&rep);
            tcp::HostTcpSocket::drop(&mut view, Resource::new_own(rep))
        },
    )?;
    i.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut store: StoreContextMut<'_, T>,
         (this, network, local): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let (mine, mut view) = store.data_mut().sockets_split();
                let local = SocketAddr::from(local);
                if mine.peer.contains_key(&this.rep()) {
                    return Ok((Err(ErrorCode::InvalidState),));
                }
                match mine.peer_bind(local) {
                    Ok(true) => {
                        view.table.get(&network)?;
                        mine.peer.insert(
                            this.rep(),
                            PeerSocket::Bound {
                                local,
                                pending: true,
                                backlog: DEFAULT_BACKLOG,
                            },
                        );
                        return Ok((Ok(()),));
                    }
                    Ok(false) => {}
                    Err(code) => return Ok((Err(code),)),
                }
                match mine.host_bind(local, Protocol::Tcp) {
                    Ok(host) => answer(
                        tcp::HostTcpSocket::start_bind(&mut view, this, network, host.into()).await,
                    ),
                    Err(code) => Ok((Err(code),)),
                }
            })
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.finish-bind",
        |mut store: StoreContextMut<'_, T>, (this,): (Resource<TcpSocket>,)| -> Answer<()> {
            let (mine, mut view) = store.data_mut().sockets_split();
            match mine.peer.get_mut(&this.rep()) {
                Some(PeerSocket::Bound { pending, .. }) if *pending => {
                    *pending = false;
                    Ok((Ok(()),))
                }
                Some(_) => Ok((Err(ErrorCode::NotInProgress),)),
                None => answer(tcp::HostTcpSocket::finish_bind(&mut view, this)),
            }
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.set-listen-backlog-size",
        |mut store: StoreContextMut<'_, T>,
         (this, value): (Resource<TcpSocket>, u64)|
         -> Answer<()> {
            let (mine, mut view) = store.data_mut().sockets_split();
            let size = usize::try_from(value).unwrap_or(usize::MAX);
            if value == 0 && mine.peer.contains_key(&this.rep()) {
                return Ok((Err(ErrorCode::InvalidArgument),));
            }
            match mine.peer.get_mut(&this.rep()) {
                Some(PeerSocket::Bound { backlog, .. }) => {
                    *backlog = size;
                    Ok((Ok(()),))
                }
                Some(PeerSocket::Listening { listener, .. }) => {
                    listener.set_backlog(size);
                    Ok((Ok(()),))
                }
                Some(_) => Ok((Err(ErrorCode::InvalidState),)),
                None => answer(tcp::HostTcpSocket::set_listen_backlog_size(
                    &mut view, this, value,
                )),
            }
        },
    )?;
    i.func_wrap_async(
        "[method]tcp-socket.start-listen",
        |mut store: StoreContextMut<'_, T>, (this,): (Resource<TcpSocket>,)| {
            Box::new(async move {
                let (mine, mut view) = store.data_mut().sockets_split();
                let rep = this.rep();
                let (local, backlog) = match mine.peer.get(&rep) {
                    None => {
                        let listening = tcp::HostTcpSocket::start_listen(&mut view, this).await;
                        if listening.is_ok() {
                            mine.publish_to_peers(&mut view, rep);
                        }
                        return answer(listening);
                    }
                    Some(PeerSocket::Bound {
                        local,
                        pending: false,
                        backlog,
                    }) => (*local, *backlog),
                    Some(PeerSocket::Bound { .. }) => {
                        return Ok((Err(ErrorCode::ConcurrencyConflict),));
                    }
                    Some(_) => return Ok((Err(ErrorCode::InvalidState),)),
                };
                let Some(peers) = mine.peers() else {
                    return Ok((Err(ErrorCode::InvalidState),));
                };
                let at = match local.ip().to_canonical() {
                    IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
                    _ => None,
                };
                match peers.listen(at, local.port(), backlog) {
                    Ok(listener) => {
                        mine.peer.insert(
                            rep,
                            PeerSocket::Listening {
                                listener,
                                local,
                                pending: true,
                            },
                        );
                        Ok((Ok(()),))
                    }
                    Err(e) => Ok((Err(peer_code(e)),)),
                }
            })
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.finish-listen",
        |mut store: StoreContextMut<'_, T>, (this,): (Resource<TcpSocket>,)| -> Answer<()> {
            let (mine, mut view) = store.data_mut().sockets_split();
            match mine.peer.get_mut(&this.rep()) {
                Some(PeerSocket::Listening { pending, .. }) if *pending => {
                    *pending = false;
                    Ok((Ok(()),))
                }
                Some(_) => Ok((Err(ErrorCode::NotInProgress),)),
                None => answer(tcp::HostTcpSocket::finish_listen(&mut view, this)),
            }
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.start-connect",
        |mut store: StoreContextMut<'_, T>,
         (this, network, remote): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)|
         -> Answer<()> {
            let (mine, mut view) = store.data_mut().sockets_split();
            let remote = SocketAddr::from(remote);
            let rep = this.rep();
            let route = mine.peers().map(|p| (p.clone(), p.route(remote.ip())));
            match route {
                None | Some((_, Route::Host)) => {
                    if mine.peer.contains_key(&rep) {
                        // Bound in process: its address is no host's.
                        return Ok((Err(ErrorCode::InvalidState),));
                    }
                    answer(tcp::HostTcpSocket::start_connect(
                        &mut view,
                        this,
                        network,
                        remote.into(),
                    ))
                }
                Some((peers, route)) => {
                    view.table.get(&network)?;
                    if !matches!(mine.peer.get(&rep), None | Some(PeerSocket::Bound { .. })) {
                        return Ok((Err(ErrorCode::InvalidState),));
                    }
                    let result = match route {
                        Route::Peer { .. } => peers.connect(remote).map_err(peer_code),
                        _ => Err(ErrorCode::RemoteUnreachable),
                    };
                    mine.peer.insert(rep, PeerSocket::Connecting(result));
                    Ok((Ok(()),))
                }
            }
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.finish-connect",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<TcpSocket>,)|
         -> Answer<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
            let (mine, mut view) = store.data_mut().sockets_split();
            let rep = this.rep();
            match mine.peer.remove(&rep) {
                None => answer(tcp::HostTcpSocket::finish_connect(&mut view, this)),
                Some(PeerSocket::Connecting(Ok(stream))) => {
                    mine.peer.insert(rep, PeerSocket::Connected(stream.share()));
                    let (input, output) = stream.into_wasi_streams();
                    let input: DynInputStream = Box::new(input);
                    let output: DynOutputStream = Box::new(output);
                    let input = view.table.push_child(input, &this)?;
                    let output = view.table.push_child(output, &this)?;
                    Ok((Ok((input, output)),))
                }
                // A failed connect leaves the socket as it was before.
                Some(PeerSocket::Connecting(Err(code))) => Ok((Err(code),)),
                Some(other) => {
                    mine.peer.insert(rep, other);
                    Ok((Err(ErrorCode::NotInProgress),))
                }
            }
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.accept",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<TcpSocket>,)|
         -> Answer<(
            Resource<TcpSocket>,
            Resource<DynInputStream>,
            Resource<DynOutputStream>,
        )> {
            let (mine, mut view) = store.data_mut().sockets_split();
            if mine.open(view.table) >= MAX_SOCKETS {
                return Ok((Err(ErrorCode::NewSocketLimit),));
            }
            let stream = match mine.peer.get(&this.rep()) {
                None => {
                    return answer(tcp::HostTcpSocket::accept(&mut view, this).inspect(
                        |accepted| {
                            mine.tcp.insert(accepted.0.rep());
                        },
                    ));
                }
                Some(PeerSocket::Listening {
                    listener,
                    pending: false,
                    ..
                }) => listener.try_accept(),
                Some(_) => return Ok((Err(ErrorCode::InvalidState),)),
            };
            let Some(stream) = stream else {
                return Ok((Err(ErrorCode::WouldBlock),));
            };
            let family =
                tcp::HostTcpSocket::address_family(&mut view, Resource::new_borrow(this.rep()))?;
            let shell = match tcp_create_socket::Host::create_tcp_socket(&mut view, family) {
                Ok(shell) => shell,
                Err(e) => return Ok((Err(guest_error(e)?),)),
            };
            mine.tcp.insert(shell.rep());
            mine.peer
                .insert(shell.rep(), PeerSocket::Connected(stream.share()));
            let (input, output) = stream.into_wasi_streams();
            let input: DynInputStream = Box::new(input);
            let output: DynOutputStream = Box::new(output);
            let input = view.table.push_child(input, &shell)?;
            let output = view.table.push_child(output, &shell)?;
            Ok((Ok((shell, input, output)),))
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.local-address",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<TcpSocket>,)|
         -> Answer<IpSocketAddress> {
            let (mine, mut view) = store.data_mut().sockets_split();
            match mine.peer.get(&this.rep()) {
                None => answer(
                    tcp::HostTcpSocket::local_address(&mut view, this)
                        .map(|addr| mine.guest_view(addr.into(), Protocol::Tcp).into()),
                ),
                Some(PeerSocket::Bound { local, .. } | PeerSocket::Listening { local, .. }) => {
                    Ok((Ok((*local).into()),))
                }
                Some(PeerSocket::Connected(s) | PeerSocket::Connecting(Ok(s))) => {
                    Ok((Ok(s.local_addr().into()),))
                }
                Some(PeerSocket::Connecting(Err(_))) => Ok((Err(ErrorCode::InvalidState),)),
            }
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.remote-address",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<TcpSocket>,)|
         -> Answer<IpSocketAddress> {
            let (mine, mut view) = store.data_mut().sockets_split();
            match mine.peer.get(&this.rep()) {
                None => answer(tcp::HostTcpSocket::remote_address(&mut view, this)),
                Some(PeerSocket::Connected(s)) => Ok((Ok(s.peer_addr().into()),)),
                Some(_) => Ok((Err(ErrorCode::InvalidState),)),
            }
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.is-listening",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<TcpSocket>,)|
         -> wasmtime::Result<(bool,)> {
            let (mine, mut view) = store.data_mut().sockets_split();
            match mine.peer.get(&this.rep()) {
                None => Ok((tcp::HostTcpSocket::is_listening(&mut view, this)?,)),
                Some(s) => Ok((matches!(s, PeerSocket::Listening { .. }),)),
            }
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.subscribe",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<TcpSocket>,)|
         -> wasmtime::Result<(Resource<DynPollable>,)> {
            let (mine, mut view) = store.data_mut().sockets_split();
            let pollable = match mine.peer.get(&this.rep()) {
                None => tcp::HostTcpSocket::subscribe(&mut view, this)?,
                Some(PeerSocket::Listening { listener, .. }) => {
                    let waiter = view.table.push(listener.waiter())?;
                    wasmtime_wasi::p2::subscribe(view.table, waiter)?
                }
                Some(_) => {
                    let ready = view.table.push(AlwaysReady)?;
                    wasmtime_wasi::p2::subscribe(view.table, ready)?
                }
            };
            Ok((pollable,))
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.shutdown",
        |mut store: StoreContextMut<'_, T>,
         (this, how): (Resource<TcpSocket>, ShutdownType)|
         -> Answer<()> {
            let (mine, mut view) = store.data_mut().sockets_split();
            match mine.peer.get(&this.rep()) {
                None => answer(tcp::HostTcpSocket::shutdown(&mut view, this, how)),
                Some(PeerSocket::Connected(s)) => {
                    if matches!(how, ShutdownType::Send | ShutdownType::Both) {
                        s.shutdown_write();
                    }
                    Ok((Ok(()),))
                }
                Some(_) => Ok((Err(ErrorCode::InvalidState),)),
            }
        },
    )?;

    let mut i = linker.instance(&format!("wasi:sockets/ip-name-lookup@{SOCKETS_VERSION}"))?;
    i.resource(
        "resolve-address-stream",
        ResourceType::host::<NameLookup>(),
        |mut store: StoreContextMut<'_, T>, rep: u32| {
            let (_, mut view) = store.data_mut().sockets_split();
            let lookup = view.table.delete(Resource::<NameLookup>::new_own(rep))?;
            if let NameLookup::Host(inner) = lookup {
                HostResolveAddressStream::drop(
                    &mut view,
                    Resource::<ResolveAddressStream>::new_own(inner),
                )?;
            }
            Ok(())
        },
    )?;
    i.func_wrap(
        "resolve-addresses",
        |mut store: StoreContextMut<'_, T>,
         (network, name): (Resource<Network>, String)|
         -> Answer<Resource<NameLookup>> {
            let (mine, mut view) = store.data_mut().sockets_split();
            // The names of peers on the instance's networks first, granted
            // or not; any other name is the host resolver's, if granted.
            if let Some(addrs) = mine.peers().and_then(|p| p.resolve(&name)) {
                view.table.get(&network)?;
                let lookup = view.table.push(NameLookup::Peers(addrs.into_iter()))?;
                return Ok((Ok(lookup),));
            }
            match ip_name_lookup::Host::resolve_addresses(&mut view, network, name) {
                Ok(inner) => {
                    let lookup = view.table.push(NameLookup::Host(inner.rep()))?;
                    Ok((Ok(lookup),))
                }
                Err(e) => Ok((Err(guest_error(e)?),)),
            }
        },
    )?;
    i.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<NameLookup>,)|
         -> Answer<Option<IpAddress>> {
            let (_, mut view) = store.data_mut().sockets_split();
            match view.table.get_mut(&this)? {
                NameLookup::Peers(addrs) => Ok((Ok(addrs.next().map(IpAddress::from)),)),
                NameLookup::Host(inner) => {
                    let inner = Resource::<ResolveAddressStream>::new_borrow(*inner);
                    answer(HostResolveAddressStream::resolve_next_address(
                        &mut view, inner,
                    ))
                }
            }
        },
    )?;
    i.func_wrap(
        "[method]resolve-address-stream.subscribe",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<NameLookup>,)|
         -> wasmtime::Result<(Resource<DynPollable>,)> {
            let (_, mut view) = store.data_mut().sockets_split();
            let pollable = match view.table.get(&this)? {
                NameLookup::Peers(_) => wasmtime_wasi::p2::subscribe(view.table, this)?,
                NameLookup::Host(inner) => {
                    let inner = Resource::<ResolveAddressStream>::new_borrow(*inner);
                    HostResolveAddressStream::subscribe(&mut view, inner)?
                }
            };
            Ok((pollable,))
        },
    )?;

    let mut i = linker.instance(&format!("wasi:sockets/udp@{SOCKETS_VERSION}"))?;
    i.func_wrap_async(
        "[method]udp-socket.start-bind",
        |mut store: StoreContextMut<'_, T>,
         (this, network, local): (Resource<UdpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let (mine, mut view) = store.data_mut().sockets_split();
                match mine.host_bind(local.into(), Protocol::Udp) {
                    Ok(host) => answer(
                        udp::HostUdpSocket::start_bind(&mut view, this, network, host.into()).await,
                    ),
                    Err(code) => Ok((Err(code),)),
                }
            })
        },
    )?;
    i.func_wrap(
        "[method]udp-socket.local-address",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<UdpSocket>,)|
         -> Answer<IpSocketAddress> {
            let (mine, mut view) = store.data_mut().sockets_split();
            answer(
                udp::HostUdpSocket::local_address(&mut view, this)
                    .map(|addr| mine.guest_view(addr.into(), Protocol::Udp).into()),
            )
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grants: NetworkGrants) -> AddressPolicy {
        AddressPolicy {
            grants,
            udp_peers: Mutex::new(HashSet::new()),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn mapping(s: &str) -> PortMapping {
        s.parse().expect("mapping")
    }

    #[test]
    fn only_published_host_addresses_may_listen() {
        let p = policy(NetworkGrants {
            publish: vec![mapping("127.0.0.1:18080:7"), mapping("18081:8")],
            ..NetworkGrants::default()
        });
        assert!(p.allows(addr("127.0.0.1:18080"), SocketAddrUse::TcpBind));
        assert!(p.allows(addr("127.0.0.1:18080"), SocketAddrUse::TcpListen));
        assert!(p.allows(addr("0.0.0.0:18081"), SocketAddrUse::TcpListen));
        assert!(p.allows(addr("[::]:18081"), SocketAddrUse::TcpListen));
        // An ephemeral bind is allowed (it is how connect binds), listening
        // on it is not.
        assert!(p.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(!p.allows(addr("0.0.0.0:41234"), SocketAddrUse::TcpListen));
        assert!(!p.allows(addr("0.0.0.0:18080"), SocketAddrUse::TcpListen));
        assert!(!p.allows(addr("0.0.0.0:7"), SocketAddrUse::TcpBind));
        assert!(!p.allows(addr("127.0.0.1:18080"), SocketAddrUse::UdpBind));
        assert!(!p.allows(addr("127.0.0.1:18080"), SocketAddrUse::TcpConnect));
    }

    #[test]
    fn udp_answers_go_only_to_peers_that_wrote_to_a_published_port() {
        let p = policy(NetworkGrants {
            publish: vec![mapping("127.0.0.1:15353:53/udp")],
            ..NetworkGrants::default()
        });
        let peer = addr("127.0.0.1:40000");
        assert!(!p.allows(peer, SocketAddrUse::UdpSend));
        assert!(p.allows(peer, SocketAddrUse::UdpReceive));
        assert!(p.allows(peer, SocketAddrUse::UdpSend));
        assert!(!p.allows(addr("169.254.169.254:53"), SocketAddrUse::UdpSend));

        let unpublished = policy(NetworkGrants {
            udp: true,
            ..NetworkGrants::default()
        });
        assert!(!unpublished.allows(peer, SocketAddrUse::UdpReceive));
        assert!(!unpublished.allows(peer, SocketAddrUse::UdpSend));
    }

    #[test]
    fn guest_binds_of_published_ports_land_on_the_host_address() {
        let s = InstanceSockets::new(&NetworkGrants {
            publish: vec![mapping("127.0.0.1:18080:7"), mapping("18081:8")],
            ..NetworkGrants::default()
        });
        assert_eq!(
            s.host_bind(addr("0.0.0.0:7"), Protocol::Tcp).ok(),
            Some(addr("127.0.0.1:18080"))
        );
        assert_eq!(
            s.host_bind(addr("[::]:8"), Protocol::Tcp).ok(),
            Some(addr("[::]:18081"))
        );
        assert!(s.host_bind(addr("[::]:7"), Protocol::Tcp).is_err());
        assert_eq!(
            s.host_bind(addr("0.0.0.0:9"), Protocol::Tcp).ok(),
            Some(addr("0.0.0.0:9")),
            "unpublished: left to the address policy"
        );
        assert_eq!(
            s.guest_view(addr("127.0.0.1:18080"), Protocol::Tcp),
            addr("127.0.0.1:7")
        );
        assert_eq!(
            s.guest_view(addr("127.0.0.1:18080"), Protocol::Udp),
            addr("127.0.0.1:18080")
        );
    }
}
