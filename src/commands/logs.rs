//! `wrun logs [-f] [--tail N] INSTANCE`: the instance's stdout and stderr.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::client::Demux;

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
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    target.client()?.stream(Method::GET, &path, |bytes| {
        demux.feed(bytes, |stream, payload| {
            if stream == crate::daemon::logs::STDERR {
                stderr.lock().write_all(payload)
            } else {
                let mut out = stdout.lock();
                out.write_all(payload)?;
                out.flush()
            }
        })?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
