//! `wrun save`: write images as one OCI image layout tar.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use crate::image_backend::write_atomically;

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run(root: &Path, host: Option<&str>, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let images = crate::image_backend::choose(root, host)?;
    let tar = images.save(&args.images)?;
    match &args.output {
        Some(path) => write_atomically(path, tar)?,
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = BufWriter::new(io::stdout().lock());
            tar(&mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
