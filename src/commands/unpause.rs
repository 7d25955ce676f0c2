//! `wrun unpause INSTANCE...`: schedule paused instances again.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct UnpauseArgs {
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: UnpauseArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.instances, |name| {
        client.call(
            Method::POST,
            &format!("/containers/{}/unpause", super::escape(name)),
            None,
        )?;
        println!("{name}");
        Ok(())
    })
}
