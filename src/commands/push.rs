//! `wrun push HOST[:PORT]/NAME[:TAG]`: upload a stored image to a registry
//! (only the blobs it lacks, then the manifest as stored; docker's lines).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use wrun_image::registry::{self, Access, RemoteRef};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

pub fn run(root: &Path, host: Option<&str>, args: PushArgs) -> anyhow::Result<ExitCode> {
    super::pull::refuse_daemon("push", root, host)?;
    let reference = RemoteRef::parse(&args.image)?;
    let store = wrun_daemon::open_store(root)?;
    if !args.quiet {
        println!(
            "The push refers to repository [{}/{}]",
            reference.registry, reference.repository
        );
    }
    let options = super::login::transfer_options(&reference, Access::Push)?;
    let report = registry::push(&store, &reference, &options)?;
    if args.quiet {
        println!("{reference}");
        return Ok(ExitCode::SUCCESS);
    }
    // Top layer first, as docker lists them.
    for (layer, uploaded) in report.layers.iter().rev() {
        let how = if *uploaded {
            "Pushed"
        } else {
            "Layer already exists"
        };
        println!("{}: {how}", layer.short());
    }
    println!(
        "{}: digest: {} size: {}",
        report.tag, report.digest, report.size
    );
    Ok(ExitCode::SUCCESS)
}
