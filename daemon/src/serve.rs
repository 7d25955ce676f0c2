//! Readying an instance whose module is a `wasi:http/proxy` component for
//! serving: its per-request deadline and its published ports, bound before
//! it starts. The daemon's server is `serving.rs`; the CLI's foreground
//! server is `src/commands/run_http.rs`.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Context, bail};
use wrun_runtime::{NetworkGrants, Protocol, PublishError};

use crate::launch::Launch;

/// Where a served instance takes requests from: its published ports, bound,
/// and the ports its peers on its networks reach it on in process.
pub struct ServedPorts {
    pub listeners: Vec<TcpListener>,
    pub peer_ports: Vec<u16>,
}

/// The per-request deadline when the run gives no `--timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Readies `launch` for serving: each request gets `--timeout` (or
/// [`DEFAULT_REQUEST_TIMEOUT`]), and the published TCP ports are bound now,
/// so a taken port fails the start. The mappings are updated with the ports
/// the kernel picked for `-p GUESTPORT`.
///
/// A private `/tmp` is refused: a request's instance lives for one request,
/// and creating and removing a directory on the store's disk for each one
/// cut throughput to a third (docs/serving.md); without it, all requests
/// share one set of rootfs and volume handles.
pub fn bind(image: &str, launch: &mut Launch) -> anyhow::Result<Vec<TcpListener>> {
    ready(image, launch)?;
    bind_published(image, &mut launch.spec.network)
}

/// As [`bind`], for an instance that may be on user-defined networks: it
/// is also served in process to its peers there, on the ports
/// [`peer_ports`] gives (`exposed`: its config's `ExposedPorts`), and needs
/// no published port then.
pub fn bind_with_peers<'a>(
    image: &str,
    launch: &mut Launch,
    exposed: impl Iterator<Item = &'a String>,
) -> anyhow::Result<ServedPorts> {
    ready(image, launch)?;
    let network = &mut launch.spec.network;
    let peer_ports = if network.peers.is_some() {
        peer_ports(network, exposed)
    } else {
        Vec::new()
    };
    let listeners = if network.publish.is_empty() && !peer_ports.is_empty() {
        Vec::new()
    } else {
        bind_published(image, network)?
    };
    Ok(ServedPorts {
        listeners,
        peer_ports,
    })
}

fn ready(image: &str, launch: &mut Launch) -> anyhow::Result<()> {
    if launch.spec.tmp {
        bail!(
            "{image} is an HTTP handler (wasi:http/proxy): --tmpfs /tmp is not available to it (each request runs in an instance of its own); keep state in a volume (-v)"
        );
    }
    launch
        .spec
        .limits
        .timeout
        .get_or_insert(DEFAULT_REQUEST_TIMEOUT);
    Ok(())
}

/// The ports an HTTP handler on a network answers its peers on: the guest
/// ports it publishes and exposes over TCP, or 80 when it has none (as
/// `http://NAME/` asks for).
fn peer_ports<'a>(network: &NetworkGrants, exposed: impl Iterator<Item = &'a String>) -> Vec<u16> {
    let mut ports: Vec<u16> = network
        .publish
        .iter()
        .filter(|m| m.protocol == Protocol::Tcp)
        .map(|m| m.guest_port)
        .chain(exposed.filter_map(|key| match key.split_once('/') {
            None => key.parse().ok(),
            Some((port, "tcp")) => port.parse().ok(),
            Some(_) => None,
        }))
        .collect();
    if ports.is_empty() {
        ports.push(80);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn bind_published(image: &str, network: &mut NetworkGrants) -> anyhow::Result<Vec<TcpListener>> {
    if network.publish.is_empty() {
        bail!(
            "{image} is an HTTP handler (wasi:http/proxy): publish the port to serve it on, e.g. -p 8080:80"
        );
    }
    let mut listeners = Vec::with_capacity(network.publish.len());
    for m in &mut network.publish {
        if m.protocol != Protocol::Tcp {
            bail!(
                "cannot publish {}: {image} is an HTTP handler and serves TCP only",
                m.spec()
            );
        }
        let addr = m.host_addr();
        let listener = TcpListener::bind(addr).map_err(|source| PublishError::Bind {
            mapping: m.spec(),
            addr,
            protocol: m.protocol,
            source,
        })?;
        m.host_port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Where a published mapping can be reached, for the start-up message.
pub fn url(m: &wrun_runtime::PortMapping) -> String {
    match m.host_addr() {
        std::net::SocketAddr::V6(a) => format!("http://[{}]:{}/", a.ip(), a.port()),
        a => format!("http://{a}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(specs: &[&str]) -> NetworkGrants {
        NetworkGrants {
            publish: specs.iter().map(|s| s.parse().unwrap()).collect(),
            ..NetworkGrants::default()
        }
    }

    #[test]
    fn serving_needs_a_published_tcp_port() {
        let err = bind_published("h.tar", &mut grants(&[])).unwrap_err();
        assert!(err.to_string().contains("-p 8080:80"), "{err}");
        let err = bind_published("h.tar", &mut grants(&["127.0.0.1::53/udp"])).unwrap_err();
        assert!(err.to_string().contains("TCP only"), "{err}");
    }

    #[test]
    fn peers_are_served_on_the_published_and_exposed_tcp_ports_or_80() {
        let exposed = [
            "8080/tcp".to_string(),
            "53/udp".to_string(),
            "81".to_string(),
        ];
        let g = grants(&["127.0.0.1:9000:80"]);
        assert_eq!(peer_ports(&g, exposed.iter()), [80, 81, 8080]);
        assert_eq!(peer_ports(&grants(&[]), [].iter()), [80]);
        let udp_only = ["53/udp".to_string()];
        assert_eq!(peer_ports(&grants(&[]), udp_only.iter()), [80]);
    }

    #[test]
    fn a_taken_port_is_named_and_a_free_one_is_resolved() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err =
            bind_published("h.tar", &mut grants(&[&format!("127.0.0.1:{port}:80")])).unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
        let mut g = grants(&["127.0.0.1::80"]);
        let listeners = bind_published("h.tar", &mut g).unwrap();
        assert_eq!(
            g.publish[0].host_port,
            listeners[0].local_addr().unwrap().port()
        );
    }
}
