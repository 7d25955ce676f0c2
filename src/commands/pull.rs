//! `wrun pull HOST[:PORT]/NAME[:TAG|@DIGEST]`: download an image from a
//! registry into the store (docker's output lines; `-q` the name alone).

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use wrun_image::registry::{self, Access, RemoteRef};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

pub fn run(root: &Path, host: Option<&str>, args: PullArgs) -> anyhow::Result<ExitCode> {
    refuse_daemon("pull", root, host)?;
    let reference = RemoteRef::parse(&args.image)?;
    let store = wrun_daemon::open_store(root)?;
    let options = super::login::transfer_options(&reference, Access::Pull)?;
    let report = registry::pull(&store, &reference, &options)?;
    let name = reference.to_string();
    if args.quiet {
        println!("{name}");
        return Ok(ExitCode::SUCCESS);
    }
    let what = match (&reference.tag, &reference.digest) {
        (_, Some(d)) => d.to_string(),
        (Some(tag), None) => tag.clone(),
        (None, None) => String::new(),
    };
    println!("{what}: Pulling from {}", reference.repository);
    for (layer, fetched) in &report.layers {
        let how = if *fetched {
            "Pull complete"
        } else {
            "Already exists"
        };
        println!("{}: {how}", layer.short());
    }
    println!("Digest: {}", report.digest);
    if report.up_to_date {
        println!("Status: Image is up to date for {name}");
    } else {
        println!("Status: Downloaded newer image for {name}");
    }
    println!("{name}");
    Ok(ExitCode::SUCCESS)
}

/// Registry transfers run in this process on the store itself; the
/// daemon's routes for them (`POST /images/create`, `/images/{name}/push`)
/// are not served yet, so a verb meant for a daemon is refused, not sent
/// around it.
pub(super) fn refuse_daemon(verb: &str, root: &Path, host: Option<&str>) -> anyhow::Result<()> {
    if host.is_some_and(|h| !h.is_empty()) {
        bail!(
            "wrun {verb} through a daemon (-H/WRUN_HOST) is not served yet: run it without a host, on the store"
        );
    }
    if let Some(daemon) = wrun_daemon::daemon_lock::DaemonLock::holder(root) {
        bail!(
            "the daemon on {} serves {}; wrun {verb} works on a store no daemon serves (stop it with `wrun system shutdown`)",
            daemon.socket.display(),
            root.display()
        );
    }
    Ok(())
}
