//! `wrun pause INSTANCE...`: stop scheduling instances; they keep their
//! memory and go on from where they were at `unpause`.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct PauseArgs {
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: PauseArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.instances, |name| {
        client.call(
            Method::POST,
            &format!("/containers/{}/pause", super::escape(name)),
            None,
        )?;
        println!("{name}");
        Ok(())
    })
}
