//! `wrun rm [-f] [-v] INSTANCE...`: remove instances (and their logs, and
//! with `-v` their anonymous volumes).

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running instance (ends it first)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove the anonymous volumes of the instance too
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: RmArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.instances, |name| {
        client.call(
            Method::DELETE,
            &format!(
                "/containers/{}?force={}&v={}",
                super::escape(name),
                u8::from(args.force),
                u8::from(args.volumes)
            ),
            None,
        )?;
        println!("{name}");
        Ok(())
    })
}
