//! Docker's network shapes: `PortBindings`, `NetworkSettings.Ports`, the
//! `Ports` of `ps`, network modes and the PORTS column.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `HostConfig.PortBindings` and `NetworkSettings.Ports`:
/// `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`; `null` for an
/// exposed port that is not published.
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

/// One host address a guest port is published on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// Empty: every address.
    pub host_ip: String,
    /// Empty or "0": a port the kernel picks when the instance starts.
    pub host_port: String,
}

/// An element of `Ports` in `GET /containers/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct Port {
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    pub private_port: u16,
    #[serde(skip_serializing_if = "is_zero")]
    pub public_port: u16,
    #[serde(rename = "Type")]
    pub kind: String,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// What `--network MODE` / `HostConfig.NetworkMode` means in wrun: `host`
/// (everything) or not. `bridge` and `default` are what the docker client
/// sends when no network is named; they mean wrun's default, no network.
pub fn is_host_mode(mode: &str) -> Result<bool, String> {
    match mode {
        "" | "none" | "default" | "bridge" => Ok(false),
        "host" => Ok(true),
        other => Err(format!(
            "network mode {other:?} is not supported: wrun has none (the default; bridge and default mean it too) and host"
        )),
    }
}

/// The mode to show: `host` or `none`.
pub fn shown_mode(mode: &str) -> &'static str {
    if is_host_mode(mode).unwrap_or(false) {
        "host"
    } else {
        "none"
    }
}

/// Docker's PORTS column: `0.0.0.0:8080->80/tcp, 7/tcp`.
pub fn ports_column(ports: &[Port]) -> String {
    ports
        .iter()
        .map(|p| {
            if p.public_port == 0 {
                format!("{}/{}", p.private_port, p.kind)
            } else if p.ip.contains(':') {
                format!(
                    "[{}]:{}->{}/{}",
                    p.ip, p.public_port, p.private_port, p.kind
                )
            } else {
                format!("{}:{}->{}/{}", p.ip, p.public_port, p.private_port, p.kind)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `NetworkingConfig` of a create request: the endpoint settings per
/// network the docker client sends (wrun reads what it must refuse).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    pub endpoints_config: Option<BTreeMap<String, EndpointSettings>>,
}

/// One network's endpoint in a create request (the fields a client sets;
/// the others are the daemon's to fill).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
    pub links: Option<Vec<String>>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: Option<String>,
    pub driver_opts: Option<BTreeMap<String, String>>,
}

/// `IPAMConfig` of an endpoint: addresses asked for (`--ip`, `--ip6`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointIpamConfig {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: Option<String>,
    #[serde(rename = "LinkLocalIPs")]
    pub link_local_ips: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_column_reads_like_dockers() {
        let ports = [
            Port {
                ip: "0.0.0.0".into(),
                private_port: 80,
                public_port: 8080,
                kind: "tcp".into(),
            },
            Port {
                ip: "::1".into(),
                private_port: 9,
                public_port: 9,
                kind: "udp".into(),
            },
            Port {
                ip: String::new(),
                private_port: 7,
                public_port: 0,
                kind: "tcp".into(),
            },
        ];
        assert_eq!(
            ports_column(&ports),
            "0.0.0.0:8080->80/tcp, [::1]:9->9/udp, 7/tcp"
        );
    }

    #[test]
    fn only_host_mode_opens_the_network() {
        for mode in ["", "none", "default", "bridge"] {
            assert_eq!(is_host_mode(mode), Ok(false), "{mode}");
        }
        assert_eq!(is_host_mode("host"), Ok(true));
        assert!(is_host_mode("overlay").is_err());
        assert_eq!(shown_mode("bridge"), "none");
    }
}
