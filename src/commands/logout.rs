//! `wrun logout SERVER`: forget the credentials wrun keeps for a registry
//! (docker's own `config.json` is docker's to change).

use std::process::ExitCode;

use clap::Args;
use wrun_image::registry::AuthFile;

use super::login::{server_host, stored_credentials, wrun_config_file};

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry, HOST[:PORT]
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

pub fn run(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let host = server_host(args.server.as_deref(), "logout")?;
    let path = wrun_config_file()?;
    let mut file = AuthFile::read(&path)?;
    // As docker: the line is printed whether or not there was an entry.
    println!("Removing login credentials for {host}");
    if file.remove(&host) {
        file.write()?;
    }
    if stored_credentials(&host)?.is_some() {
        eprintln!(
            "WARNING! docker's config.json still holds credentials for {host}, which wrun reads too: `docker logout {host}` removes them."
        );
    }
    Ok(ExitCode::SUCCESS)
}
