//! `wrun tag SOURCE TARGET`: put another name on a stored image.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;
use wrun_image::ImageRef;

use super::{ImageBackend, escape};

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
    match ImageBackend::choose(root, host)? {
        ImageBackend::Local(store) => {
            store.tag(&args.source, &target)?;
        }
        ImageBackend::Api(client) => {
            let mut path = format!(
                "/images/{}/tag?repo={}",
                escape(&args.source),
                escape(&target.repository)
            );
            if let Some(tag) = &target.tag {
                path.push_str(&format!("&tag={}", escape(tag)));
            }
            client.call(Method::POST, &path, None)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
