//! `wrun attach [--no-stdin] INSTANCE`: follow a running instance's output
//! (and feed its stdin, if it was created with `-i`) until it ends; exits
//! with its exit code, as `docker attach` does.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Accepted for Docker compatibility: WASI has no signals to proxy
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: Option<bool>,
    /// Accepted for Docker compatibility: wrun has no TTY to detach from
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
}

pub fn run(target: &DaemonTarget, args: AttachArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    let id = super::escape(&args.instance);
    let view: serde_json::Value =
        client.json(Method::GET, &format!("/containers/{id}/json"), None)?;
    if view["State"]["Running"] != true {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    // Stdin only where the instance has one open (`wrun run -d -i`).
    let stdin = !args.no_stdin && view["Config"]["OpenStdin"] == true;
    // Placed first, as docker's attach does: the exit code of this run
    // even if it ends (and an `--rm` instance goes) before the attach.
    let waiting = client.begin(Method::POST, &super::start::wait_path(&id, "not-running"))?;
    let attached = client.hijack(&super::start::attach_path(&id, stdin))?;
    super::start::follow(&client, attached, stdin, waiting)
}
