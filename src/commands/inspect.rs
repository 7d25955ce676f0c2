//! `wrun image inspect`: the Docker-shaped JSON of one or more images.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::output::print_inspected;
use wrun_api::images::ImageInspect;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output with a template ({{.Id}}, {{json .Config}}) or "json"
    #[arg(short = 'f', long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run(root: &Path, host: Option<&str>, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let images = crate::image_backend::choose(root, host)?;
    let mut found: Vec<ImageInspect> = Vec::new();
    let code = super::for_each(&args.images, |name| {
        found.push(images.inspect(name)?);
        Ok(())
    })?;
    print_inspected(&found, args.format.as_deref())?;
    Ok(code)
}
