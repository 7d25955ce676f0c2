//! `wrun stop INSTANCE...`: end running instances (WASI has no signals:
//! the guest ends at once and is recorded with exit code 143).

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Accepted for Docker compatibility: instances end at once, there is no grace period
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub time: Option<u64>,
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: StopArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.instances, |name| {
        client.call(
            Method::POST,
            &format!("/containers/{}/stop", super::escape(name)),
            None,
        )?;
        println!("{name}");
        Ok(())
    })
}
