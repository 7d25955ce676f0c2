//! Network grants: what an instance may connect to, look up and publish.
//!
//! The default (`NetworkGrants::default()`) is no network at all: no socket,
//! no name lookup. Each grant widens it explicitly:
//!
//! - `--allow-connect HOST[:PORT]` / `CIDR[:PORT]` / `IP[:PORT]`: outgoing
//!   TCP (and, with `udp`, UDP) to those destinations only; a rule without a
//!   port allows every port.
//! - `--allow-dns`: `wasi:sockets/ip-name-lookup`.
//! - `--allow-udp`: UDP sockets (still limited by the connect rules).
//! - `--network host`: every address, lookup and protocol.
//! - `-p [IP:][HOSTPORT:]GUESTPORT[/tcp|udp]`: the guest may bind GUESTPORT,
//!   and that bind lands on the host's HOSTPORT.
//! - user-defined networks (`peers`): the instances on the networks it is
//!   on, by name and address, in process (`crate::peer_net`); never the
//!   host.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Everything an instance may do on the network. Deny by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkGrants {
    /// `--network host`: no restriction at all.
    pub host: bool,
    /// Destinations the guest may connect (or send datagrams) to.
    pub connect: Vec<ConnectRule>,
    /// Name lookup (`wasi:sockets/ip-name-lookup`).
    pub dns: bool,
    /// UDP sockets.
    pub udp: bool,
    /// Guest ports the guest may bind, and where they land on the host.
    pub publish: Vec<PortMapping>,
    /// The instance's handle on the in-process network of user-defined
    /// networks: peers it may look up and connect to, and where its own
    /// listeners are reachable (see [`crate::peer_net`]). `None`: on no
    /// network. Grants nothing on the host.
    pub peers: Option<crate::InstancePeers>,
}

impl NetworkGrants {
    /// True when nothing at all is granted on the host (the in-process
    /// `peers` are not counted: they reach no host address).
    pub fn is_none(&self) -> bool {
        !self.host && self.connect.is_empty() && !self.dns && !self.udp && self.publish.is_empty()
    }

    /// Whether a connection (or datagram) to `addr` is allowed by an address
    /// rule. Host-name rules match only through [`Self::allows_host`] or
    /// once resolved into address rules (see [`ConnectTarget::Host`]).
    pub fn allows_addr(&self, addr: SocketAddr) -> bool {
        self.host || self.connect.iter().any(|r| r.matches_addr(addr))
    }

    /// Whether a connection to `host:port` is allowed, where `host` is a
    /// name or a literal address (as in an HTTP authority).
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        if self.host {
            return true;
        }
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return self.allows_addr(SocketAddr::new(ip, port));
        }
        self.connect.iter().any(|r| r.matches_name(host, port))
    }

    /// The mapping for a guest bind of `guest_port` with `protocol`, if that
    /// port is published.
    pub fn published(&self, guest_port: u16, protocol: Protocol) -> Option<&PortMapping> {
        self.publish
            .iter()
            .find(|m| m.guest_port == guest_port && m.protocol == protocol)
    }

    /// Refuses grant sets that cannot mean what they say: a guest port
    /// published twice (one guest bind lands on one host socket), or one
    /// host address given to two guest ports.
    pub fn check(&self) -> Result<(), GrantParseError> {
        for (i, m) in self.publish.iter().enumerate() {
            for earlier in &self.publish[..i] {
                if earlier.guest_port == m.guest_port && earlier.protocol == m.protocol {
                    return Err(parse_err(
                        "-p",
                        &m.spec(),
                        format!(
                            "guest port {}/{} is already published (as {}); a guest port lands on one host address",
                            m.guest_port,
                            m.protocol,
                            earlier.spec()
                        ),
                    ));
                }
                if m.host_port != 0
                    && earlier.host_port == m.host_port
                    && earlier.protocol == m.protocol
                    && (earlier.host_ip.is_none()
                        || m.host_ip.is_none()
                        || earlier.host_ip == m.host_ip)
                {
                    return Err(parse_err(
                        "-p",
                        &m.spec(),
                        format!(
                            "host port {}/{} is already published (as {})",
                            m.host_port,
                            m.protocol,
                            earlier.spec()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks that every published host address can be bound now, and
    /// picks a free port for each mapping with host port 0 (so the mapping
    /// can be shown, as Docker shows `-p 80`). Called when an instance
    /// starts: a conflict is a clear error then, not a failed bind inside
    /// the guest later.
    ///
    /// This is a probe, not a reservation: the address is bound and
    /// released, and the guest's own bind takes it again.
    pub fn claim_host_ports(&mut self) -> Result<(), PublishError> {
        self.check().map_err(PublishError::Invalid)?;
        for m in &mut self.publish {
            let addr = m.host_addr();
            let bound = match m.protocol {
                Protocol::Tcp => std::net::TcpListener::bind(addr).and_then(|l| l.local_addr()),
                Protocol::Udp => std::net::UdpSocket::bind(addr).and_then(|s| s.local_addr()),
            };
            match bound {
                Ok(local) => m.host_port = local.port(),
                Err(source) => {
                    return Err(PublishError::Bind {
                        mapping: m.spec(),
                        addr,
                        protocol: m.protocol,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// A published port that cannot be set up when the instance starts.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Invalid(GrantParseError),
    /// The host address is taken (or not ours to bind).
    #[error("cannot publish {mapping}: {}", bind_reason(addr, *protocol, source))]
    Bind {
        mapping: String,
        addr: SocketAddr,
        protocol: Protocol,
        #[source]
        source: std::io::Error,
    },
}

fn bind_reason(addr: &SocketAddr, protocol: Protocol, err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("host address {addr}/{protocol} is already in use; pick another host port")
        }
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "binding host port {}/{protocol} needs root or CAP_NET_BIND_SERVICE; pick a port of 1024 or more",
            addr.port()
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{} is not an address of this host", addr.ip())
        }
        _ => format!("binding host address {addr}/{protocol} failed"),
    }
}

/// One `--allow-connect` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRule {
    pub target: ConnectTarget,
    /// `None`: every port.
    pub port: Option<u16>,
}

/// What a connect rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectTarget {
    /// One address.
    Ip(IpAddr),
    /// A network, `addr/prefix` (the address is stored with host bits
    /// cleared).
    Cidr(IpAddr, u8),
    /// A host name, lower-cased. Matched by name for HTTP authorities; for
    /// sockets it must be resolved on the host when the instance starts.
    Host(String),
}

impl ConnectRule {
    fn port_ok(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// Address and network rules against a socket address. IPv4-mapped IPv6
    /// addresses are compared as IPv4, so `::ffff:127.0.0.1` cannot slip
    /// past a rule about `127.0.0.1` or be granted by accident.
    pub fn matches_addr(&self, addr: SocketAddr) -> bool {
        if !self.port_ok(addr.port()) {
            return false;
        }
        let ip = canonical(addr.ip());
        match &self.target {
            ConnectTarget::Ip(want) => canonical(*want) == ip,
            ConnectTarget::Cidr(net, prefix) => in_network(ip, canonical(*net), *prefix),
            ConnectTarget::Host(_) => false,
        }
    }

    /// Host-name rules against a name (case-insensitive, exact).
    pub fn matches_name(&self, host: &str, port: u16) -> bool {
        matches!(&self.target, ConnectTarget::Host(name) if name.eq_ignore_ascii_case(host))
            && self.port_ok(port)
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`; other addresses unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A grant that could not be parsed; the message names the value and says
/// what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct GrantParseError {
    pub what: &'static str,
    pub value: String,
    pub reason: String,
}

fn parse_err(what: &'static str, value: &str, reason: impl Into<String>) -> GrantParseError {
    GrantParseError {
        what,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn parse_port(what: &'static str, whole: &str, port: &str) -> Result<u16, GrantParseError> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(parse_err(
            what,
            whole,
            format!("port {port:?} is not a number from 1 to 65535"),
        )),
    }
}

impl FromStr for ConnectRule {
    type Err = GrantParseError;

    /// `HOST[:PORT]`, `IP[:PORT]`, `[IPV6][:PORT]`, `IPV6`, `CIDR[:PORT]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "--allow-connect";
        if s.is_empty() {
            return Err(parse_err(WHAT, s, "expected HOST[:PORT] or CIDR[:PORT]"));
        }
        // A bare IPv6 address (no brackets, no port).
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self {
                target: ConnectTarget::Ip(ip),
                port: None,
            });
        }
        let (addr, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| parse_err(WHAT, s, "missing ] after an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| parse_err(WHAT, s, "expected :PORT after ]"))?,
                ),
            };
            (inside, port)
        } else if let Some((net, port)) = s.split_once('/').map(|(a, b)| {
            // CIDR: "10.0.0.0/8" or "10.0.0.0/8:443" or "fd00::/8".
            let (len, port) = match b.split_once(':') {
                Some((len, port)) => (len, Some(port)),
                None => (b, None),
            };
            (format!("{a}/{len}"), port)
        }) {
            let target = parse_cidr(s, &net)?;
            let port = port.map(|p| parse_port(WHAT, s, p)).transpose()?;
            return Ok(Self { target, port });
        } else {
            match s.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        let port = port.map(|p| parse_port(WHAT, s, p)).transpose()?;
        if let Ok(ip) = addr.parse::<IpAddr>() {
            return Ok(Self {
                target: ConnectTarget::Ip(ip),
                port,
            });
        }
        if s.starts_with('[') {
            return Err(parse_err(WHAT, s, "not an IPv6 address inside [ ]"));
        }
        if !valid_host_name(addr) {
            return Err(parse_err(
                WHAT,
                s,
                "not a host name, IP address or CIDR network",
            ));
        }
        Ok(Self {
            target: ConnectTarget::Host(addr.to_ascii_lowercase()),
            port,
        })
    }
}

fn parse_cidr(whole: &str, net: &str) -> Result<ConnectTarget, GrantParseError> {
    const WHAT: &str = "--allow-connect";
    let (addr, len) = net
        .split_once('/')
        .ok_or_else(|| parse_err(WHAT, whole, "expected ADDRESS/PREFIX"))?;
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| parse_err(WHAT, whole, format!("{addr:?} is not an IP address")))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = len
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| parse_err(WHAT, whole, format!("prefix length must be 0 to {max}")))?;
    let net = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    };
    Ok(ConnectTarget::Cidr(net, prefix))
}

/// RFC 1123 host names: dot-separated labels of letters, digits and `-`,
/// 1–63 characters each, not starting or ending with `-`; 253 at most.
fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl fmt::Display for ConnectRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.target, self.port) {
            (ConnectTarget::Ip(IpAddr::V6(ip)), Some(p)) => write!(f, "[{ip}]:{p}"),
            (ConnectTarget::Ip(ip), Some(p)) => write!(f, "{ip}:{p}"),
            (ConnectTarget::Ip(ip), None) => write!(f, "{ip}"),
            (ConnectTarget::Cidr(ip, len), Some(p)) => write!(f, "{ip}/{len}:{p}"),
            (ConnectTarget::Cidr(ip, len), None) => write!(f, "{ip}/{len}"),
            (ConnectTarget::Host(h), Some(p)) => write!(f, "{h}:{p}"),
            (ConnectTarget::Host(h), None) => write!(f, "{h}"),
        }
    }
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One `-p` mapping: a guest bind of `guest_port` lands on
/// `host_ip:host_port` (`host_ip` `None`: every address; `host_port` 0: a
/// port the kernel picks when the instance starts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub guest_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// The `-p` form, `[IP:][HOSTPORT:]GUESTPORT/PROTO` (a host port of 0
    /// is left out, as it was given).
    pub fn spec(&self) -> String {
        let host = match (self.host_ip, self.host_port) {
            (None, 0) => String::new(),
            (None, p) => format!("{p}:"),
            (Some(IpAddr::V6(ip)), 0) => format!("[{ip}]::"),
            (Some(IpAddr::V6(ip)), p) => format!("[{ip}]:{p}:"),
            (Some(ip), 0) => format!("{ip}::"),
            (Some(ip), p) => format!("{ip}:{p}:"),
        };
        format!("{host}{}/{}", self.guest_port, self.protocol)
    }

    /// The host address a guest bind of this port lands on.
    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.host_port,
        )
    }
}

impl FromStr for PortMapping {
    type Err = GrantParseError;

    /// `[IP:][HOSTPORT:]GUESTPORT[/tcp|udp]`, as docker's `-p` (no ranges);
    /// an IPv6 host address goes in brackets.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "-p";
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Protocol::Tcp),
            Some((spec, "udp")) => (spec, Protocol::Udp),
            Some((_, other)) => {
                return Err(parse_err(
                    WHAT,
                    s,
                    format!("protocol {other:?} is not tcp or udp"),
                ));
            }
            None => (s, Protocol::Tcp),
        };
        let (host_ip, rest) = if let Some(rest) = spec.strip_prefix('[') {
            let (ip, after) = rest
                .split_once("]:")
                .ok_or_else(|| parse_err(WHAT, s, "expected [IPV6]:HOSTPORT:GUESTPORT"))?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| parse_err(WHAT, s, format!("{ip:?} is not an IPv6 address")))?;
            (Some(ip), after)
        } else {
            let parts: Vec<&str> = spec.split(':').collect();
            match parts.as_slice() {
                [ip, host, guest] => {
                    let ip: IpAddr = ip
                        .parse()
                        .map_err(|_| parse_err(WHAT, s, format!("{ip:?} is not an IP address")))?;
                    (Some(ip), &spec[spec.len() - host.len() - guest.len() - 1..])
                }
                [_, _] | [_] => (None, spec),
                _ => {
                    return Err(parse_err(
                        WHAT,
                        s,
                        "expected [IP:][HOSTPORT:]GUESTPORT[/tcp|udp]",
                    ));
                }
            }
        };
        let (host_port, guest_port) = match rest.split_once(':') {
            Some(("", guest)) => (0, parse_port(WHAT, s, guest)?),
            Some((host, guest)) => (parse_port(WHAT, s, host)?, parse_port(WHAT, s, guest)?),
            None => (0, parse_port(WHAT, s, rest)?),
        };
        Ok(Self {
            host_ip,
            host_port,
            guest_port,
            protocol,
        })
    }
}

impl fmt::Display for PortMapping {
    /// Docker's `docker port` form: `8080/tcp -> 0.0.0.0:18080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host_addr();
        write!(f, "{}/{} -> {}", self.guest_port, self.protocol, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> ConnectRule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let g = NetworkGrants::default();
        assert!(g.is_none());
        for a in ["127.0.0.1:80", "169.254.169.254:80", "[::1]:443"] {
            assert!(!g.allows_addr(addr(a)), "{a} allowed by default");
        }
        assert!(!g.allows_host("localhost", 80));
        assert!(g.published(8080, Protocol::Tcp).is_none());
    }

    #[test]
    fn connect_rules_parse_every_documented_form() {
        assert_eq!(
            rule("10.1.2.3:443").target,
            ConnectTarget::Ip("10.1.2.3".parse().expect("ip"))
        );
        assert_eq!(rule("10.1.2.3:443").port, Some(443));
        assert_eq!(rule("10.1.2.3").port, None);
        assert_eq!(rule("[::1]:8080").port, Some(8080));
        assert_eq!(
            rule("::1").target,
            ConnectTarget::Ip("::1".parse().expect("ip"))
        );
        assert_eq!(
            rule("10.9.9.9/8:53").target,
            ConnectTarget::Cidr("10.0.0.0".parse().expect("ip"), 8)
        );
        assert_eq!(rule("10.9.9.9/8:53").port, Some(53));
        assert_eq!(
            rule("Example.COM:443").target,
            ConnectTarget::Host("example.com".into())
        );
        assert_eq!(rule("fd00::/8").to_string(), "fd00::/8");
        assert_eq!(rule("[::1]:80").to_string(), "[::1]:80");
    }

    #[test]
    fn malformed_connect_rules_are_refused_with_the_value() {
        for bad in [
            "",
            "host:0",
            "host:99999",
            "host:http",
            "10.0.0.0/33",
            "[::1",
            "[::1]80",
            "bad_name:80",
            "-x.com",
            "a..b",
            "1.2.3.4/8/9",
        ] {
            let err = bad.parse::<ConnectRule>().expect_err(bad);
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "{err} does not name {bad:?}"
            );
        }
    }

    #[test]
    fn rules_match_only_their_address_network_and_port() {
        let g = NetworkGrants {
            connect: vec![
                rule("127.0.0.1:8080"),
                rule("10.0.0.0/8"),
                rule("api.test:443"),
            ],
            ..NetworkGrants::default()
        };
        assert!(g.allows_addr(addr("127.0.0.1:8080")));
        assert!(!g.allows_addr(addr("127.0.0.1:8081")));
        assert!(!g.allows_addr(addr("127.0.0.2:8080")));
        assert!(g.allows_addr(addr("10.200.3.4:1")));
        assert!(!g.allows_addr(addr("11.0.0.1:1")));
        assert!(!g.allows_addr(addr("169.254.169.254:80")));
        // IPv4-mapped IPv6 is the same address, not a way around a rule.
        assert!(g.allows_addr(addr("[::ffff:127.0.0.1]:8080")));
        assert!(!g.allows_addr(addr("[::ffff:169.254.169.254]:80")));
        assert!(g.allows_host("API.test", 443));
        assert!(!g.allows_host("api.test", 80));
        assert!(!g.allows_host("evil.test", 443));
        assert!(g.allows_host("127.0.0.1", 8080));
        assert!(g.allows_host("[::ffff:127.0.0.1]", 8080));
        // A host-name rule never matches an address by itself.
        assert!(!g.allows_addr(addr("1.2.3.4:443")));
    }

    #[test]
    fn host_network_allows_everything() {
        let g = NetworkGrants {
            host: true,
            ..NetworkGrants::default()
        };
        assert!(g.allows_addr(addr("169.254.169.254:80")));
        assert!(g.allows_host("anything.test", 1));
    }

    #[test]
    fn port_mappings_parse_like_docker() {
        let m: PortMapping = "8080:80".parse().expect("parse");
        assert_eq!((m.host_ip, m.host_port, m.guest_port), (None, 8080, 80));
        assert_eq!(m.protocol, Protocol::Tcp);
        let m: PortMapping = "127.0.0.1:8080:80/udp".parse().expect("parse");
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(m.protocol, Protocol::Udp);
        assert_eq!(m.to_string(), "80/udp -> 127.0.0.1:8080");
        let m: PortMapping = "80".parse().expect("parse");
        assert_eq!((m.host_port, m.guest_port), (0, 80));
        let m: PortMapping = "[::1]:8080:80".parse().expect("parse");
        assert_eq!(m.host_ip, Some("::1".parse().expect("ip")));
        let m: PortMapping = "127.0.0.1::80".parse().expect("parse");
        assert_eq!((m.host_port, m.guest_port), (0, 80));
        for bad in [
            "",
            "x:80",
            "8080:80/sctp",
            "1:2:3:4",
            "70000:80",
            "a.b.c.d:1:2",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn port_mappings_print_back_as_they_parse() {
        for spec in [
            "80/tcp",
            "8080:80/tcp",
            "127.0.0.1:8080:80/udp",
            "127.0.0.1::80/tcp",
            "[::1]:8080:80/tcp",
            "[::1]::80/tcp",
        ] {
            let m: PortMapping = spec.parse().expect("parse");
            assert_eq!(m.spec(), spec);
        }
    }

    fn grants(publish: &[&str]) -> NetworkGrants {
        NetworkGrants {
            publish: publish
                .iter()
                .map(|p| p.parse().expect("mapping"))
                .collect(),
            ..NetworkGrants::default()
        }
    }

    #[test]
    fn a_guest_port_or_host_port_published_twice_is_refused() {
        assert!(grants(&["8080:80", "8081:80"]).check().is_err());
        assert!(grants(&["8080:80", "8080:81"]).check().is_err());
        assert!(grants(&["127.0.0.1:8080:80", "8080:81"]).check().is_err());
        assert!(grants(&["8080:80", "8080:80/udp"]).check().is_ok());
        assert!(
            grants(&["127.0.0.1:8080:80", "127.0.0.2:8080:81"])
                .check()
                .is_ok()
        );
        assert!(grants(&["80", "81"]).check().is_ok());
    }

    #[test]
    fn claiming_picks_free_ports_and_names_a_taken_one() {
        let mut g = grants(&["127.0.0.1::80", "127.0.0.1::53/udp"]);
        g.claim_host_ports().expect("claim");
        assert!(g.publish.iter().all(|m| m.host_port != 0), "{g:?}");

        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let mut g = grants(&[&format!("127.0.0.1:{port}:7")]);
        let err = g.claim_host_ports().expect_err("port in use");
        let text = err.to_string();
        assert!(text.contains("already in use"), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    }
}
