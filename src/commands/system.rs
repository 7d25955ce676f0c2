//! `wrun system df|prune` and `wrun image prune`: show and reclaim space.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;
use wrun_api::containers::ContainerPruneResponse;

use super::open_store;
use crate::client::Client;
use crate::output::{RowFormat, TEMPLATE_ERRORS, human_size, print_table};

/// docker system df's template fields (in the order of a row) and titles.
const DF_HEADERS: [(&str, &str); 5] = [
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Output format: "table" (default), "json" (the store's figures as one
    /// object), "table TEMPLATE" or a Go template of each row: {{.Type}}
    /// {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn df(root: &Path, args: DfArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let usage = store.disk_usage()?;
    let image_bytes = usage.blob_bytes + usage.snapshot_bytes;
    let format = RowFormat::parse(args.format.as_deref(), &TEMPLATE_ERRORS)?;
    if let RowFormat::Json = format {
        println!("{}", serde_json::to_string(&usage)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let rows = vec![
        vec![
            "Images".into(),
            usage.images.to_string(),
            "0".into(),
            human_size(image_bytes),
            format!(
                "{} ({}%)",
                human_size(image_bytes),
                pct(image_bytes, image_bytes)
            ),
        ],
        vec![
            "Containers".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
        vec![
            "Build Cache".into(),
            "0".into(),
            "0".into(),
            human_size(usage.cache_bytes + usage.tmp_bytes),
            human_size(usage.cache_bytes + usage.tmp_bytes),
        ],
    ];
    if let RowFormat::Table = format {
        print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let lines: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut map = serde_json::Map::new();
            for ((key, _), value) in DF_HEADERS.iter().zip(row) {
                map.insert((*key).into(), value.clone().into());
            }
            serde_json::Value::Object(map)
        })
        .collect();
    format.print_rows(&lines, &DF_HEADERS, &TEMPLATE_ERRORS)?;
    Ok(ExitCode::SUCCESS)
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
