//! `wrun info [--format TEMPLATE]`: the daemon's figures (`GET /info`) laid
//! out as `docker info`, with wrun's capacity; without a daemon the client
//! part, then why the server part is missing.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;
use serde_json::{Value, json};

use super::DaemonTarget;
use crate::client::Client;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format the output: `json`, or a Go template over /info's keys (e.g.
    /// '{{.ContainersRunning}}'; the client's are under .ClientInfo)
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

pub fn run(target: &DaemonTarget, args: InfoArgs) -> anyhow::Result<ExitCode> {
    // Asking for figures does not start a daemon: it says there is none.
    let server = Client::connect_existing(&target.socket)
        .and_then(|c| c.json::<Value>(Method::GET, "/info", None));
    let client = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "WasmtimeVersion": wrun_runtime::WASMTIME_VERSION,
    });
    match args.format.as_deref() {
        Some(format) => {
            let mut data = server.as_ref().ok().cloned().unwrap_or_else(|| json!({}));
            if let Some(map) = data.as_object_mut() {
                map.insert("ClientInfo".into(), client);
            }
            if format == "json" {
                println!("{}", serde_json::to_string(&data)?);
            } else {
                crate::output::print_inspected(&[data], Some(format))?;
            }
        }
        None => {
            print!(
                "Client:\n Version:    {}\n Wasmtime:   {}\n\nServer:\n",
                env!("CARGO_PKG_VERSION"),
                wrun_runtime::WASMTIME_VERSION
            );
            if let Ok(info) = &server {
                print!("{}", server_text(info));
            }
        }
    }
    server.map(|_| ExitCode::SUCCESS)
}

fn server_text(i: &Value) -> String {
    let s = |k: &str| match &i[k] {
        Value::String(v) => v.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    let n = |k: &str| i[k].as_i64().unwrap_or(0);
    let mut out = format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n Images: {}\n \
         Server Version: {}\n Storage Driver: {}\n Logging Driver: {}\n Cgroup Driver: {}\n \
         Cgroup Version: {}\n",
        n("Containers"),
        n("ContainersRunning"),
        n("ContainersPaused"),
        n("ContainersStopped"),
        n("Images"),
        s("ServerVersion"),
        s("Driver"),
        s("LoggingDriver"),
        s("CgroupDriver"),
        s("CgroupVersion"),
    );
    let runtimes: Vec<&String> = i["Runtimes"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let runtimes: Vec<&str> = runtimes.iter().map(|r| r.as_str()).collect();
    out.push_str(&format!(
        " Runtimes: {}\n Default Runtime: {}\n",
        runtimes.join(" "),
        s("DefaultRuntime")
    ));
    let c = &i["WrunCapacity"];
    if c.is_object() {
        let cn = |k: &str| c[k].as_u64().unwrap_or(0);
        let cs = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        out.push_str(&format!(
            " Capacity:\n  Instances: {}\n  In Use: {}\n  Bound By: {}\n  To Raise: {}\n  \
             Max Memory Per Instance: {}\n  Stack Per Instance: {}\n  Mappings Per Instance: {}\n",
            cn("Instances"),
            cn("InUse"),
            cs("Bound"),
            cs("Raise"),
            binary_size(cn("MaxMemoryPerInstance")),
            binary_size(cn("StackPerInstance")),
            cn("MappingsPerInstance"),
        ));
        if let Some(m) = c["MaxMapCount"].as_u64() {
            out.push_str(&format!("  vm.max_map_count: {m}\n"));
        }
    }
    out.push_str(&format!(
        " Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}\n \
         CPUs: {}\n Total Memory: {}\n Name: {}\n ID: {}\n Root Dir: {}\n",
        s("KernelVersion"),
        s("OperatingSystem"),
        s("OSType"),
        s("Architecture"),
        n("NCPU"),
        binary_size(u64::try_from(n("MemTotal")).unwrap_or(0)),
        s("Name"),
        s("ID"),
        s("DockerRootDir"),
    ));
    out
}

/// `23.54GiB`, as docker prints `Total Memory` (binary units, two decimals).
fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_dockers() {
        assert_eq!(binary_size(25_276_198_912), "23.54GiB");
        assert_eq!(binary_size(4 << 30), "4GiB");
        assert_eq!(binary_size(1_576_960), "1.5MiB");
    }

    #[test]
    fn the_server_part_shows_the_counts_and_the_capacity() {
        let info = json!({
            "Containers": 3, "ContainersRunning": 1, "ContainersPaused": 0,
            "ContainersStopped": 2, "Images": 4, "ServerVersion": "0.1.0",
            "Runtimes": {"wasmtime": {"path": "/bin/wrun"}}, "DefaultRuntime": "wasmtime",
            "NCPU": 2, "MemTotal": 25_276_198_912_u64, "DockerRootDir": "/var/lib/wrun",
            "WrunCapacity": {"Instances": 30717, "InUse": 1, "Bound": "vm.max_map_count 65530",
                "Raise": "raise it", "MaxMemoryPerInstance": 4_294_967_296_u64,
                "StackPerInstance": 1_576_960, "MappingsPerInstance": 2, "MaxMapCount": 65530}
        });
        let text = server_text(&info);
        for line in [
            " Containers: 3\n  Running: 1\n",
            " Runtimes: wasmtime\n",
            "  Instances: 30717\n  In Use: 1\n  Bound By: vm.max_map_count 65530\n",
            "  Max Memory Per Instance: 4GiB\n",
            " Total Memory: 23.54GiB\n",
            " Root Dir: /var/lib/wrun\n",
        ] {
            assert!(text.contains(line), "{line:?} not in {text}");
        }
    }
}
