//! `wrun port INSTANCE [GUESTPORT[/PROTO]]`: the host addresses an
//! instance's published ports landed on, as `docker port` prints them.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use wrun_api::containers::ContainerInspect;
use wrun_api::network::PortMap;

#[derive(Debug, Args)]
pub struct PortArgs {
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
    /// Only this guest port (PORT or PORT/tcp, PORT/udp)
    #[arg(value_name = "GUESTPORT[/PROTO]")]
    pub port: Option<String>,
}

pub fn run(target: &DaemonTarget, args: PortArgs) -> anyhow::Result<ExitCode> {
    let view: ContainerInspect = target.client()?.json(
        Method::GET,
        &format!("/containers/{}/json", super::escape(&args.instance)),
        None,
    )?;
    let lines = lines(&view.network_settings.ports, args.port.as_deref())?;
    if lines.is_empty()
        && let Some(p) = &args.port
    {
        anyhow::bail!(
            "No public port '{}' published for {}",
            with_proto(p),
            args.instance
        );
    }
    for line in lines {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn with_proto(port: &str) -> String {
    if port.contains('/') {
        port.to_string()
    } else {
        format!("{port}/tcp")
    }
}

/// Docker's lines: `7/tcp -> 127.0.0.1:8080` for every port, or just
/// `127.0.0.1:8080` for the one asked for.
fn lines(ports: &PortMap, only: Option<&str>) -> anyhow::Result<Vec<String>> {
    let only = only.map(with_proto);
    if let Some(p) = &only {
        let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp") {
            anyhow::bail!("invalid port {p:?}: expected GUESTPORT[/tcp|udp]");
        }
    }
    let mut out = Vec::new();
    for (key, bindings) in ports {
        if only.as_ref().is_some_and(|o| o != key) {
            continue;
        }
        for b in bindings.iter().flatten() {
            let addr = if b.host_ip.contains(':') {
                format!("[{}]:{}", b.host_ip, b.host_port)
            } else {
                format!("{}:{}", b.host_ip, b.host_port)
            };
            out.push(if only.is_some() {
                addr
            } else {
                format!("{key} -> {addr}")
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wrun_api::network::PortBinding;

    #[test]
    fn ports_print_like_docker_port() {
        let mut ports = PortMap::new();
        ports.insert(
            "7/tcp".into(),
            Some(vec![PortBinding {
                host_ip: "127.0.0.1".into(),
                host_port: "8080".into(),
            }]),
        );
        ports.insert(
            "9/udp".into(),
            Some(vec![PortBinding {
                host_ip: "::".into(),
                host_port: "9000".into(),
            }]),
        );
        ports.insert("443/tcp".into(), None);
        assert_eq!(
            lines(&ports, None).expect("lines"),
            ["7/tcp -> 127.0.0.1:8080", "9/udp -> [::]:9000"]
        );
        assert_eq!(lines(&ports, Some("7")).expect("lines"), ["127.0.0.1:8080"]);
        assert!(lines(&ports, Some("443")).expect("lines").is_empty());
        assert!(lines(&ports, Some("x/tcp")).is_err());
    }
}
