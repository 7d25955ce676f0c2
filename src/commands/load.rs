//! `wrun load`: read an image tar (wrun's, skopeo's, Docker's) into the store.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use super::open_store;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(root: &Path, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let report = match &args.input {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            wrun_image::archive::load(&store, file)
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => {
            if io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty (use -i FILE or redirect)");
            }
            wrun_image::archive::load(&store, io::stdin().lock()).context("loading from stdin")?
        }
    };
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    if !args.quiet {
        for (record, names) in &report.images {
            if names.is_empty() {
                println!("Loaded image ID: {}", record.id);
            }
            for name in names {
                println!("Loaded image: {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
