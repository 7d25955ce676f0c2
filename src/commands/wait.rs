//! `wrun wait INSTANCE...`: block until instances stop, print their exit codes.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use wrun_api::containers::WaitResponse;

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.instances, |name| {
        let w: WaitResponse = client.json(
            Method::POST,
            &format!("/containers/{}/wait", super::escape(name)),
            None,
        )?;
        println!("{}", w.status_code);
        Ok(())
    })
}
