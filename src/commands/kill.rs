//! `wrun kill [-s SIGNAL] INSTANCE...`: end running instances at once,
//! recorded with exit code 128 + the signal's number.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal whose number sets the exit code (128 + N); the guest ends at once either way
    #[arg(short = 's', long, value_name = "SIGNAL", default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: KillArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.instances, |name| {
        client.call(
            Method::POST,
            &format!(
                "/containers/{}/kill?signal={}",
                super::escape(name),
                super::escape(&args.signal)
            ),
            None,
        )?;
        println!("{name}");
        Ok(())
    })
}
