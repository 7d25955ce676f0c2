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
    let mut failed = false;
    for name in &args.images {
        match store
            .find(name)
            .map_err(anyhow::Error::from)
            .and_then(|r| images::inspect(&store, &r))
        {
            Ok(view) => found.push(view),
            Err(e) => {
                eprintln!("Error: {}", super::describe(&e));
                failed = true;
            }
        }
    }
    print_inspected(&found, args.format.as_deref())?;
    Ok(if failed {
        ExitCode::from(super::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}
