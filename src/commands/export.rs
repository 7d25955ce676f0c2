//! `wrun export [-o FILE] INSTANCE`: an instance's merged rootfs (its
//! image and its writes) as a tar, streamed as the daemon writes it.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use hyper::Method;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
}

pub fn run(target: &DaemonTarget, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/containers/{}/export", super::escape(&args.instance));
    match &args.output {
        Some(file) => {
            // Written beside its name and renamed when whole: a failed
            // export leaves no half tar under the name asked for.
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            let mut out = BufWriter::new(tmp);
            target
                .client()?
                .stream(Method::GET, &path, |chunk| Ok(out.write_all(chunk)?))?;
            let tmp = out.into_inner().map_err(|e| e.into_error())?;
            tmp.persist(file)
                .with_context(|| format!("writing {}", file.display()))?;
        }
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = BufWriter::new(io::stdout().lock());
            target
                .client()?
                .stream(Method::GET, &path, |chunk| Ok(out.write_all(chunk)?))?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
