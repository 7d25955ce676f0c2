//! `wrun rmi`: remove names, and images with no name left.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image (all its names)
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run(root: &Path, host: Option<&str>, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let images = crate::image_backend::choose(root, host)?;
    super::for_each(&args.images, |name| {
        for item in images.remove(name, args.force)? {
            if let Some(u) = item.untagged {
                println!("Untagged: {u}");
            }
            if let Some(d) = item.deleted {
                println!("Deleted: {d}");
            }
        }
        Ok(())
    })
}
