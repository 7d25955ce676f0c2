//! `wrun load`: read an image tar (wrun's, skopeo's, Docker's) into the
//! store of the engine [`crate::image_backend::choose`] picks.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::client::Client;
use crate::image_backend::{post_load, print_notes};

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(root: &Path, host: Option<&str>, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let (input, what): (Box<dyn Read + Send>, String) = match &args.input {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            (Box::new(file), path.display().to_string())
        }
        None => {
            if io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty (use -i FILE or redirect)");
            }
            (Box::new(io::stdin()), "from stdin".into())
        }
    };
    let messages = crate::image_backend::choose(root, host)?.load(input, &what)?;
    // Notes reach stderr even with -q: they say what the load changed.
    for line in print_notes(messages) {
        if !args.quiet {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends an image tar to the daemon's `POST /images/load`; prints its
/// `note:` lines on stderr and returns the others (`Loaded image: NAME`,
/// `Loaded image ID: ID`).
pub fn load_into_daemon(
    client: &Client,
    tar: impl Read + Send + 'static,
    what: &str,
) -> anyhow::Result<Vec<String>> {
    Ok(print_notes(post_load(client, Box::new(tar), what)?))
}
