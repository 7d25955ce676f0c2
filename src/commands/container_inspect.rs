//! `wrun inspect NAME...`: an instance's JSON (State, Config, HostConfig,
//! Mounts) from the daemon, or an image's when no instance has that name.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::client::is_not_found;
use crate::output::print_inspected;

#[derive(Debug, Args)]
pub struct ContainerInspectArgs {
    /// Format the output with a template ({{.State.Status}}, {{json .Config}})
    #[arg(short = 'f', long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Add SizeRw and SizeRootFs to an instance's JSON
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: ContainerInspectArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    let mut found: Vec<serde_json::Value> = Vec::new();
    let code = super::for_each(&args.names, |name| {
        let size = if args.size { "?size=1" } else { "" };
        let path = format!("/containers/{}/json{size}", super::escape(name));
        let answer = client
            .json::<serde_json::Value>(Method::GET, &path, None)
            .or_else(|e| {
                if !is_not_found(&e) {
                    return Err(e);
                }
                // Not an instance: an image of the same daemon, as docker does.
                let path = format!("/images/{}/json", super::escape(name));
                client
                    .json::<serde_json::Value>(Method::GET, &path, None)
                    .map_err(|e| {
                        if is_not_found(&e) {
                            anyhow::anyhow!("No such object: {name}")
                        } else {
                            e
                        }
                    })
            })?;
        found.push(answer);
        Ok(())
    })?;
    print_inspected(&found, args.format.as_deref())?;
    Ok(code)
}
