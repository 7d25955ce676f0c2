//! Docker's network shapes: `PortBindings`, `NetworkSettings.Ports`, the
//! `Ports` of `ps`, network modes and the PORTS column, and the `/networks`
//! resource (docs/networks.md).

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
/// Any other valid network name is a user-defined network (the daemon
/// checks that it exists); `container:ID` is refused.
pub fn is_host_mode(mode: &str) -> Result<bool, String> {
    match mode {
        "" | "none" | "default" | "bridge" => Ok(false),
        "host" => Ok(true),
        other if check_network_name(other).is_ok() => Ok(false),
        other => Err(format!(
            "network mode {other:?} is not supported: wrun has none (the default; bridge and default mean it too), host and user-defined networks (wrun network create)"
        )),
    }
}

/// The user-defined network `mode` names, if it names one.
pub fn user_network(mode: &str) -> Option<&str> {
    match is_host_mode(mode) {
        Ok(false) if !matches!(mode, "" | "none" | "default" | "bridge") => Some(mode),
        _ => None,
    }
}

/// The mode to show: `host`, `none`, or the user-defined network's name.
pub fn shown_mode(mode: &str) -> &str {
    match is_host_mode(mode) {
        Ok(true) => "host",
        _ => user_network(mode).unwrap_or("none"),
    }
}

/// A network name as dockerd takes one: a letter or digit, then letters,
/// digits, `_`, `.` or `-`.
pub fn check_network_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(format!("invalid name: {name}"))
    }
}

/// The predefined networks wrun lists, as a dockerd started with
/// `--bridge=none` lists its own: `host` and `none` (docs/networks.md).
pub const PREDEFINED: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// The driver of a user-defined network: the only one wrun has.
pub const BRIDGE_DRIVER: &str = "bridge";

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

/// One network's endpoint: what a client sets in a create or connect
/// request (`IPAMConfig`, `Links`, `Aliases`, `MacAddress`, `DriverOpts`),
/// and in inspect's `NetworkSettings.Networks` what the daemon filled in
/// (read-only: a request's values are ignored, as dockerd ignores them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
    pub links: Option<Vec<String>>,
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "NetworkID")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub endpoint_id: String,
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub global_ipv6_prefix_len: i64,
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

/// `GET /networks/{id}` and an element of `GET /networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    pub name: String,
    pub id: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// Always `local`.
    pub scope: String,
    /// `bridge` for a user-defined network; `host` and `null` for the
    /// predefined ones.
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    /// The instances on the network by ID.
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// `IPAM` of a network, and of a create request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    /// `default`, the only IPAM driver.
    pub driver: String,
    /// `null` for the predefined networks, `{}` for the others.
    pub options: Option<BTreeMap<String, String>>,
    pub config: Option<Vec<IpamConfig>>,
}

/// One address pool of a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    /// `A.B.C.D/N`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    /// Refused in a request: wrun hands out the whole subnet.
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Refused in a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auxiliary_addresses: Option<BTreeMap<String, String>>,
}

/// `ConfigFrom`: the config-only network a network was made from (none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    pub network: String,
}

/// An instance in a network's `Containers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    /// `A.B.C.D/N`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `POST /networks/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    pub name: String,
    /// Ignored as by API 1.44's dockerd: a taken name is always refused.
    pub check_duplicate: bool,
    /// `bridge` (the default, also when empty).
    pub driver: String,
    pub scope: String,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub config_only: bool,
    pub config_from: Option<ConfigReference>,
}

/// The answer of `POST /networks/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnectRequest {
    pub container: String,
    pub endpoint_config: Option<EndpointSettings>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkDisconnectRequest {
    pub container: String,
    pub force: bool,
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
        assert_eq!(is_host_mode("two_default"), Ok(false));
        assert!(is_host_mode("container:abc").is_err());
        assert!(is_host_mode("-x").is_err());
        assert_eq!(shown_mode("bridge"), "none");
        assert_eq!(shown_mode("two_default"), "two_default");
        assert_eq!(user_network("default"), None);
        assert_eq!(user_network("web"), Some("web"));
    }
}
