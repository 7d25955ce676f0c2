//! `wrun load`: read an image tar (wrun's, skopeo's, Docker's) into the store,
//! or send it to the daemon when one answers.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use hyper::Method;

use super::ImageBackend;
use crate::client::Client;
use wrun_api::images::LoadMessage;

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
    let store = match ImageBackend::choose(root, host)? {
        ImageBackend::Local(store) => store,
        ImageBackend::Api(client) => {
            for line in load_into_daemon(&client, input, &what)? {
                if !args.quiet {
                    println!("{line}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let report =
        wrun_image::archive::load(&store, input).with_context(|| format!("loading {what}"))?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    if !args.quiet {
        for (record, names) in &report.images {
            if names.is_empty() {
                print!("{}", LoadMessage::loaded_id(&record.id.to_string()).stream);
            }
            for name in names {
                print!("{}", LoadMessage::loaded(name).stream);
            }
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
    // Not `quiet=1`: the daemon would drop the notes, which -q keeps.
    let answer = client
        .upload(Method::POST, "/images/load", "application/x-tar", tar)
        .with_context(|| format!("loading {what}"))?;
    let mut lines = Vec::new();
    for message in serde_json::Deserializer::from_slice(&answer).into_iter::<LoadMessage>() {
        let message = message.context("the daemon's answer is not the expected JSON")?;
        let line = message.stream.trim_end();
        if line.starts_with("note: ") {
            eprintln!("{line}");
        } else if !line.is_empty() {
            lines.push(line.to_owned());
        }
    }
    Ok(lines)
}
