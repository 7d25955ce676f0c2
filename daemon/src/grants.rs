//! From Docker's network fields (`NetworkMode`, `PortBindings`,
//! `ExposedPorts`, wrun's `WrunAllow*`) to the runtime's `NetworkGrants`,
//! and back to the shapes `inspect` and `ps` show.

use std::net::IpAddr;

use wrun_api::containers::{ContainerConfig, HostConfig};
use wrun_api::images::EmptyObject;
use wrun_api::network::{Port, PortBinding, PortMap, is_host_mode};
use wrun_runtime::{ConnectRule, NetworkGrants, PortMapping, Protocol};

/// `"80/tcp"` → (80, tcp); a bare `"80"` is TCP, as in Docker.
fn parse_port_key(key: &str) -> Result<(u16, Protocol), String> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(format!(
                "port {key:?}: protocol {other:?} is not tcp or udp"
            ));
        }
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((p, protocol)),
        _ => Err(format!(
            "port {key:?}: expected PORT[/tcp|udp] with a port from 1 to 65535 (ranges are not supported)"
        )),
    }
}

fn port_key(guest_port: u16, protocol: Protocol) -> String {
    format!("{guest_port}/{protocol}")
}

/// The grants a create request asks for: `NetworkMode`, `PortBindings`
/// (plus `PublishAllPorts` over `ExposedPorts`), and wrun's own
/// `WrunAllowConnect`, `WrunAllowDns`, `WrunAllowUdp`. Errors are the
/// request's fault (400).
pub fn grants(config: &ContainerConfig, host: &HostConfig) -> Result<NetworkGrants, String> {
    let mut g = NetworkGrants {
        host: is_host_mode(&host.network_mode)?,
        dns: host.wrun_allow_dns,
        udp: host.wrun_allow_udp,
        ..NetworkGrants::default()
    };
    if host.network_mode == "none"
        && (host.wrun_allow_dns
            || host.wrun_allow_udp
            || host
                .wrun_allow_connect
                .as_ref()
                .is_some_and(|c| !c.is_empty())
            || host.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || host.publish_all_ports)
    {
        return Err(
            "network mode none conflicts with published ports and --allow-* grants (leave the network mode out: no network is already wrun's default)".into(),
        );
    }
    for rule in host.wrun_allow_connect.iter().flatten() {
        g.connect
            .push(rule.parse::<ConnectRule>().map_err(|e| e.to_string())?);
    }
    for (key, bindings) in host.port_bindings.iter().flatten() {
        let (guest_port, protocol) = parse_port_key(key)?;
        let bindings = bindings.as_deref().unwrap_or_default();
        let binding = match bindings {
            [] => PortBinding::default(),
            [one] => one.clone(),
            _ => {
                return Err(format!(
                    "port {key:?} has {} host bindings: wrun publishes a guest port on one host address",
                    bindings.len()
                ));
            }
        };
        g.publish.push(mapping(guest_port, protocol, &binding)?);
    }
    if host.publish_all_ports {
        publish_exposed(
            &mut g,
            config.exposed_ports.iter().flatten().map(|(k, _)| k),
        )?;
    }
    g.check().map_err(|e| e.to_string())?;
    Ok(g)
}

/// `-P` / `PublishAllPorts`: each exposed port (`"7/tcp"`, `"53/udp"`, `"80"`)
/// not yet published is published on a port the kernel picks.
pub fn publish_exposed<'a>(
    g: &mut NetworkGrants,
    exposed: impl Iterator<Item = &'a String>,
) -> Result<(), String> {
    for key in exposed {
        let (guest_port, protocol) = parse_port_key(key)?;
        if g.published(guest_port, protocol).is_none() {
            g.publish.push(PortMapping {
                host_ip: None,
                host_port: 0,
                guest_port,
                protocol,
            });
        }
    }
    Ok(())
}

fn mapping(guest_port: u16, protocol: Protocol, b: &PortBinding) -> Result<PortMapping, String> {
    let host_ip = match b.host_ip.trim_matches(|c| c == '[' || c == ']') {
        "" => None,
        ip => Some(ip.parse::<IpAddr>().map_err(|_| {
            format!("port {guest_port}/{protocol}: HostIp {ip:?} is not an IP address")
        })?),
    };
    let host_port = match b.host_port.as_str() {
        "" => 0,
        p => p.parse::<u16>().map_err(|_| {
            format!(
                "port {guest_port}/{protocol}: HostPort {p:?} is not a port number (ranges are not supported)"
            )
        })?,
    };
    Ok(PortMapping {
        host_ip,
        host_port,
        guest_port,
        protocol,
    })
}

/// The request fields for these grants (the reverse of [`grants`]), as
/// `wrun run -d` sends them.
pub fn request_fields(
    g: &NetworkGrants,
    mode: &str,
    config: &mut ContainerConfig,
    host: &mut HostConfig,
) {
    host.network_mode = mode.to_string();
    host.wrun_allow_dns = g.dns;
    host.wrun_allow_udp = g.udp;
    host.wrun_allow_connect = Some(g.connect.iter().map(ToString::to_string).collect())
        .filter(|v: &Vec<_>| !v.is_empty());
    if !g.publish.is_empty() {
        host.port_bindings = Some(bindings(&g.publish));
        config.exposed_ports = Some(
            g.publish
                .iter()
                .map(|m| (port_key(m.guest_port, m.protocol), EmptyObject {}))
                .collect(),
        );
    }
}

fn bindings(publish: &[PortMapping]) -> PortMap {
    publish
        .iter()
        .map(|m| {
            (
                port_key(m.guest_port, m.protocol),
                Some(vec![PortBinding {
                    host_ip: m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    host_port: if m.host_port == 0 {
                        String::new()
                    } else {
                        m.host_port.to_string()
                    },
                }]),
            )
        })
        .collect()
}

/// `NetworkSettings.Ports` of a running instance: each published port with
/// the host address it landed on (`0.0.0.0` for every address, as Docker),
/// and each exposed but unpublished port as `null`.
pub fn settings_ports(config: &ContainerConfig, published: &[PortMapping]) -> PortMap {
    let mut ports: PortMap = config
        .exposed_ports
        .iter()
        .flatten()
        .map(|(k, _)| (normalize_key(k), None))
        .collect();
    for m in published {
        ports.insert(
            port_key(m.guest_port, m.protocol),
            Some(vec![PortBinding {
                host_ip: m.host_addr().ip().to_string(),
                host_port: m.host_port.to_string(),
            }]),
        );
    }
    ports
}

fn normalize_key(k: &str) -> String {
    match parse_port_key(k) {
        Ok((p, proto)) => port_key(p, proto),
        Err(_) => k.to_string(),
    }
}

/// The `Ports` of a `ps` row.
pub fn summary_ports(published: &[PortMapping]) -> Vec<Port> {
    published
        .iter()
        .map(|m| Port {
            ip: m.host_addr().ip().to_string(),
            private_port: m.guest_port,
            public_port: m.host_port,
            kind: m.protocol.to_string(),
        })
        .collect()
}

/// One line saying what the instance may do on the network, for `inspect`
/// (loud for `--network host`).
pub fn describe(g: &NetworkGrants) -> String {
    if g.host {
        return "UNRESTRICTED (--network host): any address, name lookup, UDP and any bind".into();
    }
    if g.is_none() {
        return "none: no socket, no name lookup".into();
    }
    let mut parts = Vec::new();
    if !g.connect.is_empty() {
        let rules: Vec<String> = g.connect.iter().map(ToString::to_string).collect();
        parts.push(format!("connect to {}", rules.join(", ")));
    }
    if g.dns {
        parts.push("name lookup".into());
    }
    if g.udp {
        parts.push("UDP".into());
    }
    if !g.publish.is_empty() {
        let ports: Vec<String> = g
            .publish
            .iter()
            .map(|m| port_key(m.guest_port, m.protocol))
            .collect();
        parts.push(format!("bind {}", ports.join(", ")));
    }
    parts.join("; ")
}

/// The warning a create answer carries for `--network host`.
pub const HOST_MODE_WARNING: &str = "--network host: this instance has unrestricted network access (any address, name lookup, UDP and any bind on the host)";

#[cfg(test)]
mod tests {
    use super::*;

    fn host_config(json: &str) -> HostConfig {
        serde_json::from_str(json).expect("host config")
    }

    #[test]
    fn docker_port_bindings_become_mappings() {
        let host = host_config(
            r#"{"NetworkMode":"default","PortBindings":{"7/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"53/udp":[{"HostIp":"","HostPort":""}]},"WrunAllowConnect":["10.0.0.0/8:443"],"WrunAllowDns":true}"#,
        );
        let g = grants(&ContainerConfig::default(), &host).expect("grants");
        assert!(!g.host && g.dns && !g.udp);
        assert_eq!(g.connect.len(), 1);
        let tcp = g.published(7, Protocol::Tcp).expect("7/tcp");
        assert_eq!(tcp.spec(), "127.0.0.1:8080:7/tcp");
        assert_eq!(g.published(53, Protocol::Udp).expect("53").host_port, 0);
    }

    #[test]
    fn bad_network_requests_are_refused_with_a_reason() {
        for (json, says) in [
            (r#"{"NetworkMode":"container:abc"}"#, "not supported"),
            (
                r#"{"NetworkMode":"none","PortBindings":{"7/tcp":[]}}"#,
                "conflicts",
            ),
            (r#"{"PortBindings":{"7-9/tcp":[]}}"#, "ranges"),
            (r#"{"PortBindings":{"7/sctp":[]}}"#, "sctp"),
            (
                r#"{"PortBindings":{"7/tcp":[{"HostPort":"80-81"}]}}"#,
                "80-81",
            ),
            (r#"{"PortBindings":{"7/tcp":[{"HostIp":"x"}]}}"#, "\"x\""),
            (
                r#"{"PortBindings":{"7/tcp":[{"HostPort":"1"},{"HostPort":"2"}]}}"#,
                "one host address",
            ),
            (r#"{"WrunAllowConnect":["bad_host"]}"#, "bad_host"),
        ] {
            let err = grants(&ContainerConfig::default(), &host_config(json)).expect_err(json);
            assert!(err.contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn publish_all_ports_publishes_exposed_ports_on_kernel_picked_ports() {
        let config: ContainerConfig =
            serde_json::from_str(r#"{"ExposedPorts":{"7/tcp":{},"9/udp":{}}}"#).expect("config");
        let host = host_config(r#"{"PublishAllPorts":true}"#);
        let g = grants(&config, &host).expect("grants");
        assert_eq!(g.publish.len(), 2);
        assert!(g.publish.iter().all(|m| m.host_port == 0));
    }

    #[test]
    fn request_fields_round_trip_through_grants() {
        let g = NetworkGrants {
            connect: vec!["api.test:443".parse().expect("rule")],
            udp: true,
            publish: vec![
                "127.0.0.1:8080:7".parse().expect("p"),
                "9/udp".parse().expect("p"),
            ],
            ..NetworkGrants::default()
        };
        let (mut config, mut host) = (ContainerConfig::default(), HostConfig::default());
        request_fields(&g, "", &mut config, &mut host);
        assert_eq!(grants(&config, &host).expect("grants"), g);
    }

    #[test]
    fn ports_show_like_docker() {
        let published: Vec<PortMapping> = vec![
            "8080:80".parse().expect("p"),
            "[::1]:9:9/udp".parse().expect("p"),
        ];
        assert_eq!(
            wrun_api::network::ports_column(&summary_ports(&published)),
            "0.0.0.0:8080->80/tcp, [::1]:9->9/udp"
        );
        let config: ContainerConfig =
            serde_json::from_str(r#"{"ExposedPorts":{"80/tcp":{},"443":{}}}"#).expect("config");
        let ports = settings_ports(&config, &published);
        assert_eq!(ports["443/tcp"], None);
        assert_eq!(
            ports["80/tcp"],
            Some(vec![PortBinding {
                host_ip: "0.0.0.0".into(),
                host_port: "8080".into()
            }])
        );
    }
}
