//! `wrun system prune` and `wrun image prune`: reclaim space (`system df`
//! is `system_df`).

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;
use wrun_api::containers::ContainerPruneResponse;

use crate::client::Client;
use crate::output::human_size;

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `image prune` and `system prune`, through the image backend (a daemon
/// serving the store prunes it: it knows the instances created a moment
/// ago).
pub fn prune(
    root: &Path,
    host: Option<&str>,
    args: PruneArgs,
    system: bool,
) -> anyhow::Result<ExitCode> {
    if !args.force {
        let what = if args.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        let (first, extra) = if system {
            (
                "  - all stopped containers\n",
                "\n  - unused build cache and staging leftovers",
            )
        } else {
            ("", "")
        };
        eprint!(
            "WARNING! This will remove:\n{first}  - {what}{extra}\nAre you sure you want to continue? [y/N] "
        );
        io::stderr().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    // Instances live in a daemon only: the one the image verbs use, when
    // there is one (as `docker system prune` starts with the containers).
    let mut reclaimed = 0;
    if system && let Some(client) = serving_daemon(root, host)? {
        let r: ContainerPruneResponse = client.json(Method::POST, "/containers/prune", None)?;
        let deleted = r.containers_deleted.unwrap_or_default();
        if !deleted.is_empty() {
            println!("Deleted Containers:");
            for id in &deleted {
                println!("{id}");
            }
            println!();
        }
        reclaimed += r.space_reclaimed;
    }
    let pruned = crate::image_backend::choose(root, host)?.prune(args.all)?;
    if let Some(items) = pruned.images_deleted.filter(|i| !i.is_empty()) {
        println!("Deleted Images:");
        for item in items {
            if let Some(n) = item.untagged {
                println!("untagged: {n}");
            }
            if let Some(id) = item.deleted {
                println!("deleted: {id}");
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(reclaimed + pruned.space_reclaimed)
    );
    Ok(ExitCode::SUCCESS)
}

/// The daemon `image_backend::choose` would send image verbs to (the named
/// host, else the one serving the store); `None` when the store is used
/// directly, which holds no instances.
fn serving_daemon(root: &Path, host: Option<&str>) -> anyhow::Result<Option<Client>> {
    let socket = if host.is_some_and(|h| !h.is_empty()) {
        crate::host::socket_path(host)?
    } else if let Some(daemon) = wrun_daemon::daemon_lock::DaemonLock::holder(root) {
        daemon.socket
    } else {
        return Ok(None);
    };
    Ok(Some(Client::connect_existing(&socket)?))
}
