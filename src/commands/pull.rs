//! `wrun pull HOST[:PORT]/NAME[:TAG|@DIGEST]`: download an image from a
//! registry into the store (docker's output lines; `-q` the name alone).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use wrun_image::registry::{self, Access};

use crate::image_backend::TransferOutput;
use crate::progress::{Direction, LayerProgress};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: super::login::RegistryFlags,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

pub fn run(root: &Path, host: Option<&str>, args: PullArgs) -> anyhow::Result<ExitCode> {
    let reference = super::login::remote_ref(&args.image)?;
    if let Some(client) = crate::image_backend::transfer_daemon(root, host)? {
        super::login::refuse_insecure_through_daemon(&args.registry)?;
        let out = TransferOutput::unless_quiet(args.quiet, TransferOutput::Stdout);
        crate::image_backend::pull_through_daemon(&client, &reference, out)?;
        println!("{reference}");
        return Ok(ExitCode::SUCCESS);
    }
    let store = wrun_daemon::open_store(root)?;
    let what = match (&reference.tag, &reference.digest) {
        (_, Some(d)) => d.to_string(),
        (Some(tag), None) => tag.clone(),
        (None, None) => String::new(),
    };
    let header = format!("{what}: Pulling from {}", reference.repository);
    let progress = LayerProgress::new(Direction::Pull, args.quiet, Some(header.clone()));
    let mut options =
        super::login::transfer_options_with(&reference, Access::Pull, &args.registry)?;
    options.progress = progress.sink();
    let report = registry::pull(&store, &reference, &options)?;
    let name = reference.to_string();
    if args.quiet {
        println!("{name}");
        return Ok(ExitCode::SUCCESS);
    }
    if !progress.drawn() {
        println!("{header}");
    }
    progress.finish(&report.layers);
    println!("Digest: {}", report.digest);
    if report.up_to_date {
        println!("Status: Image is up to date for {name}");
    } else {
        println!("Status: Downloaded newer image for {name}");
    }
    println!("{name}");
    Ok(ExitCode::SUCCESS)
}
