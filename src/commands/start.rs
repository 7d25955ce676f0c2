//! `wrun start INSTANCE...`: start created or exited instances again.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: StartArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.instances, |name| {
        client.call(
            Method::POST,
            &format!("/containers/{}/start", super::escape(name)),
            None,
        )?;
        println!("{name}");
        Ok(())
    })
}
