//! `wrun run -d`: create and start the instance in the daemon, print its ID;
//! and `wrun create`: the same request, not started.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use hyper::Method;

use wrun_api::containers::ContainerCreateResponse;
use wrun_api::images::LoadMessage;

use super::run_args::{RunArgs, create_request, image_file, resolve_image};
use super::{DaemonTarget, open_store};

pub fn run(root: &Path, host: Option<&str>, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (client, id) = create(root, host, &args)?;
    client.call(Method::POST, &format!("/containers/{id}/start"), None)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// `wrun create`: the instance `run -d` would start, created only.
pub fn run_create(root: &Path, host: Option<&str>, args: RunArgs) -> anyhow::Result<ExitCode> {
    args.refused.check("create")?;
    if args.detach {
        anyhow::bail!("unknown flag: --detach (create never starts the instance)");
    }
    let (_, id) = create(root, host, &args)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// Sends `POST /containers/create` for the flags; returns the client and
/// the new instance's ID.
fn create(
    root: &Path,
    host: Option<&str>,
    args: &RunArgs,
) -> anyhow::Result<(crate::client::Client, String)> {
    if args.allow_dangerous_binds {
        anyhow::bail!(
            "--allow-dangerous-binds applies to a foreground run: the daemon's instances get such binds only from a daemon started with `wrun daemon --allow-dangerous-binds`"
        );
    }
    // docker run's pull of an image not stored (or --pull always), into
    // the daemon named, else the store at `root`.
    super::run_args::pull_for_run(root, host, args)?;
    let target = DaemonTarget::new(root, host)?;
    let image = if host.is_some_and(|h| !h.is_empty()) {
        // The daemon named may serve another store than `root`: it resolves
        // the name, and an image tar is loaded into it.
        match image_file(args.image()) {
            Some(path) => load_tar_into_daemon(&target.client()?, path)?,
            None if args.image().ends_with(".tar") => {
                anyhow::bail!("{}: no such file", args.image())
            }
            None => args.image().to_string(),
        }
    } else {
        // The daemon started for `root` (or found serving it): an image tar
        // is loaded here, then named by ID; a missing name fails here.
        let store = open_store(root)?;
        let record = resolve_image(&store, args.image())?;
        if args.image().ends_with(".tar") || Path::new(args.image()).is_file() {
            record.id.to_string()
        } else {
            args.image().to_string()
        }
    };
    let request = create_request(args, image)?;
    let client = target.client()?;
    let mut path = "/containers/create".to_string();
    if let Some(n) = &args.name {
        path.push_str("?name=");
        path.extend(form_urlencoded::byte_serialize(n.as_bytes()));
    }
    let created: ContainerCreateResponse = client.json(
        Method::POST,
        &path,
        Some(serde_json::to_vec(&request).context("encoding the request")?),
    )?;
    for warning in &created.warnings {
        eprintln!("WARNING: {warning}");
    }
    Ok((client, created.id))
}

/// Loads the image tar at `path` into the daemon; returns what names the
/// one image it holds there (its name, or its ID when it has none).
fn load_tar_into_daemon(client: &crate::client::Client, path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let lines = super::load::load_into_daemon(client, file, &path.display().to_string())?;
    let images: Vec<&str> = lines
        .iter()
        .filter_map(|l| LoadMessage::loaded_image(l))
        .collect();
    match images.as_slice() {
        [one] => Ok((*one).to_owned()),
        _ => anyhow::bail!(
            "{} holds {} images; load it and run one by name",
            path.display(),
            images.len()
        ),
    }
}
