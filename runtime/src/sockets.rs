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

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::{tcp, tcp_create_socket, udp, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};
use wasmtime_wasi::p2::{SocketError, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};
use wasmtime_wasi::{WasiCtxBuilder, WasiView};

use crate::RuntimeError;
use crate::net::{ConnectRule, ConnectTarget, NetworkGrants, PortMapping, Protocol};

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
        b.allow_tcp(false)
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

/// Per-instance socket state the wrappers keep.
pub(crate) struct InstanceSockets {
    grants: Arc<NetworkGrants>,
    /// Table indices of the TCP and UDP sockets handed out (some may be
    /// closed since; see [`InstanceSockets::open`]).
    tcp: HashSet<u32>,
    udp: HashSet<u32>,
}

impl InstanceSockets {
    pub(crate) fn new(grants: &NetworkGrants) -> Self {
        Self {
            grants: Arc::new(grants.clone()),
            tcp: HashSet::new(),
            udp: HashSet::new(),
        }
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
    i.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut store: StoreContextMut<'_, T>,
         (this, network, local): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let (mine, mut view) = store.data_mut().sockets_split();
                match mine.host_bind(local.into(), Protocol::Tcp) {
                    Ok(host) => answer(
                        tcp::HostTcpSocket::start_bind(&mut view, this, network, host.into()).await,
                    ),
                    Err(code) => Ok((Err(code),)),
                }
            })
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
            answer(
                tcp::HostTcpSocket::accept(&mut view, this).inspect(|accepted| {
                    mine.tcp.insert(accepted.0.rep());
                }),
            )
        },
    )?;
    i.func_wrap(
        "[method]tcp-socket.local-address",
        |mut store: StoreContextMut<'_, T>,
         (this,): (Resource<TcpSocket>,)|
         -> Answer<IpSocketAddress> {
            let (mine, mut view) = store.data_mut().sockets_split();
            answer(
                tcp::HostTcpSocket::local_address(&mut view, this)
                    .map(|addr| mine.guest_view(addr.into(), Protocol::Tcp).into()),
            )
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
