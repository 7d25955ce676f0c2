//! `wrun logs [-f] [--tail N] INSTANCE`: the instance's stdout and stderr.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::client::{Demux, print_frame};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output until the instance ends
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end ("all" by default)
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    pub tail: String,
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
}

pub fn run(target: &DaemonTarget, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/containers/{}/logs?stdout=1&stderr=1&follow={}&tail={}",
        super::escape(&args.instance),
        u8::from(args.follow),
        super::escape(&args.tail)
    );
    let mut demux = Demux::default();
    target.client()?.stream(Method::GET, &path, |bytes| {
        demux.feed(bytes, print_frame)?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
