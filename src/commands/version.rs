//! `wrun version [--format TEMPLATE]`: this CLI's version, then the
//! daemon's (`GET /version`), laid out as `docker version`; without a daemon
//! the client part, then why the server part is missing.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;
use serde_json::{Value, json};

use super::DaemonTarget;
use crate::client::Client;
use wrun_api::system::{API_VERSION, SystemVersion};

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Format the output: `json`, or a Go template over {Client, Server}
    /// (e.g. '{{.Server.Version}}')
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// What `docker version` calls the client's figures.
fn client_info() -> Value {
    json!({
        "Platform": { "Name": "wrun" },
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "WasmtimeVersion": wrun_runtime::WASMTIME_VERSION,
        "Os": std::env::consts::OS,
        "Arch": std::env::consts::ARCH,
    })
}

pub fn run(target: &DaemonTarget, args: VersionArgs) -> anyhow::Result<ExitCode> {
    // A version query does not start a daemon: it says there is none.
    let server = Client::connect_existing(&target.socket)
        .and_then(|c| c.json::<Value>(Method::GET, "/version", None));
    let client = client_info();
    match args.format.as_deref() {
        Some(format) => {
            let server_value = server.as_ref().ok().cloned().unwrap_or(Value::Null);
            let data = json!({ "Client": client, "Server": server_value });
            if format == "json" {
                println!("{}", serde_json::to_string(&data)?);
            } else {
                crate::output::print_inspected(&[data], Some(format))?;
            }
        }
        None => {
            print!("{}", client_text(&client));
            if let Ok(v) = &server {
                let version: SystemVersion = serde_json::from_value(v.clone())?;
                print!("\n{}", server_text(&version));
            }
        }
    }
    server.map(|_| ExitCode::SUCCESS)
}

fn client_text(client: &Value) -> String {
    let s = |k: &str| client[k].as_str().unwrap_or_default().to_string();
    format!(
        "Client:\n Version:           {}\n API version:       {}\n Wasmtime version:  {}\n \
         OS/Arch:           {}/{}\n",
        s("Version"),
        s("ApiVersion"),
        s("WasmtimeVersion"),
        s("Os"),
        s("Arch")
    )
}

fn server_text(v: &SystemVersion) -> String {
    let mut out = format!("Server: {}\n", v.platform.name);
    for c in &v.components {
        out.push_str(&format!(
            " {}:\n  Version:          {}\n",
            c.name, c.version
        ));
        if c.name == "Engine" {
            let d = |k: &str| c.details.get(k).cloned().unwrap_or_default();
            out.push_str(&format!(
                "  API version:      {} (minimum version {})\n  OS/Arch:          {}/{}\n  \
                 Kernel version:   {}\n  Experimental:     {}\n",
                d("ApiVersion"),
                d("MinAPIVersion"),
                d("Os"),
                d("Arch"),
                d("KernelVersion"),
                d("Experimental")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_part_names_the_versions() {
        let text = client_text(&client_info());
        assert!(text.starts_with("Client:\n Version:           "));
        assert!(text.contains(&format!(" API version:       {API_VERSION}\n")));
        assert!(text.contains(wrun_runtime::WASMTIME_VERSION));
    }
}
