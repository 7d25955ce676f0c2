//! `wrun push HOST[:PORT]/NAME[:TAG]`: upload a stored image to a registry
//! (only the blobs it lacks, then the manifest as stored; docker's lines).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use wrun_image::registry::{self, LayerPush};

use crate::image_backend::TransferOutput;
use crate::progress::{Direction, LayerProgress};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: super::login::RegistryFlags,
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

pub fn run(root: &Path, host: Option<&str>, args: PushArgs) -> anyhow::Result<ExitCode> {
    let reference = super::login::remote_ref(&args.image)?;
    if let Some(client) = crate::image_backend::transfer_daemon(root, host)? {
        super::login::refuse_insecure_through_daemon(&args.registry)?;
        let out = TransferOutput::unless_quiet(args.quiet, TransferOutput::Stdout);
        crate::image_backend::push_through_daemon(&client, &reference, out)?;
        if args.quiet {
            println!("{reference}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let store = wrun_daemon::open_store(root)?;
    if !args.quiet {
        println!(
            "The push refers to repository [{}/{}]",
            reference.registry, reference.repository
        );
    }
    let progress = LayerProgress::new(Direction::Push, args.quiet, None);
    // The repositories blobs may be mounted from: a token must let the
    // push read them too.
    let mount_from: BTreeSet<String> = registry::mount_sources(&store, &reference)?
        .into_values()
        .flatten()
        .collect();
    let mut options = super::login::registry_options(&reference.registry, &args.registry)?;
    options.auth = registry::push_auth(
        &options,
        &reference.registry,
        &reference.repository,
        super::login::stored_credentials(&reference.registry)?.as_ref(),
        &mount_from.into_iter().collect::<Vec<_>>(),
    )?;
    options.progress = progress.sink();
    let report = registry::push(&store, &reference, &options)?;
    if args.quiet {
        println!("{reference}");
        return Ok(ExitCode::SUCCESS);
    }
    let words: Vec<_> = report
        .layers
        .iter()
        .map(|(d, how)| {
            let word = match how {
                LayerPush::Exists => "Layer already exists".to_owned(),
                LayerPush::Mounted { from } => format!("Mounted from {from}"),
                LayerPush::Uploaded => "Pushed".to_owned(),
            };
            (*d, word)
        })
        .collect();
    progress.finish_with(&words);
    println!(
        "{}: digest: {} size: {}",
        report.tag, report.digest, report.size
    );
    Ok(ExitCode::SUCCESS)
}
