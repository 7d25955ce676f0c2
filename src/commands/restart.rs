//! `wrun restart INSTANCE...`: stop (if running) and start instances.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Accepted for Docker compatibility: instances end at once, there is no grace period
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub time: Option<u64>,
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: RestartArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.instances, |name| {
        client.call(
            Method::POST,
            &format!("/containers/{}/restart", super::escape(name)),
            None,
        )?;
        println!("{name}");
        Ok(())
    })
}
