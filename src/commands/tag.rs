//! `wrun tag SOURCE TARGET`: put another name on a stored image.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use wrun_image::ImageRef;

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

pub fn run(root: &Path, host: Option<&str>, args: TagArgs) -> anyhow::Result<ExitCode> {
    let target: ImageRef = args.target.parse()?;
    if target.digest.is_some() {
        anyhow::bail!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        );
    }
    crate::image_backend::choose(root, host)?.tag(&args.source, &target)?;
    Ok(ExitCode::SUCCESS)
}
