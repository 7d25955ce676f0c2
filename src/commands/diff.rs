//! `wrun diff INSTANCE`: what an instance changed in its image's
//! filesystem, one `C`/`A`/`D` line per path, as `docker diff` prints them.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use wrun_api::archive::ContainerChange;

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
}

pub fn run(target: &DaemonTarget, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let changes: Option<Vec<ContainerChange>> = target.client()?.json(
        Method::GET,
        &format!("/containers/{}/changes", super::escape(&args.instance)),
        None,
    )?;
    let mut out = std::io::stdout().lock();
    for c in changes.unwrap_or_default() {
        writeln!(out, "{} {}", c.letter(), c.path)?;
    }
    Ok(ExitCode::SUCCESS)
}
