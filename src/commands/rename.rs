//! `wrun rename INSTANCE NEW_NAME`: give an instance another name.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct RenameArgs {
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

pub fn run(target: &DaemonTarget, args: RenameArgs) -> anyhow::Result<ExitCode> {
    target.client()?.call(
        Method::POST,
        &format!(
            "/containers/{}/rename?name={}",
            super::escape(&args.instance),
            super::escape(&args.new_name)
        ),
        None,
    )?;
    Ok(ExitCode::SUCCESS)
}
