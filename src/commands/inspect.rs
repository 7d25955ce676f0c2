//! `wrun image inspect`: the Docker-shaped JSON of one or more images.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::open_store;
use crate::api::images;
use crate::output::print_inspected;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output with a template ({{.Id}}, {{json .Config}}) or "json"
    #[arg(short = 'f', long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run(root: &Path, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let mut found = Vec::new();
    let code = super::for_each(&args.images, |name| {
        let record = store.find(name)?;
        found.push(images::inspect(&store, &record)?);
        Ok(())
    })?;
    print_inspected(&found, args.format.as_deref())?;
    Ok(code)
}
