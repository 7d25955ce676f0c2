//! `wrun daemon [--socket PATH] [--stop]` and `wrun system shutdown`: run
//! the daemon in the foreground, or ask the running one to stop.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::client::Client;
use wrun_daemon::{DaemonConfig, serve};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Socket to serve [default: -H/$WRUN_HOST, /run/wrun/wrun.sock as root, else $XDG_RUNTIME_DIR/wrun.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// Instances that can run at once [default: as many as the host holds
    /// (vm.max_map_count, memory); `wrun info` shows it]
    #[arg(long, value_name = "N")]
    pub max_instances: Option<u32>,
    /// Largest linear memory any instance may reach (e.g. 64m); a run's -m
    /// cannot go above it [default: 4g]
    #[arg(long, value_name = "BYTES", value_parser = wrun_api::parse::parse_memory)]
    pub max_instance_memory: Option<u64>,
    /// How long a client has to send a whole request head before the
    /// daemon closes its connection (e.g. 10s, 2m) [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = wrun_api::parse::parse_duration)]
    pub api_header_timeout: Option<std::time::Duration>,
    /// Permit binds of /proc, /sys, /dev (or under them, or holding them,
    /// as /) and of directories holding the store: every instance runs in
    /// the daemon's process, so such a guest can read the daemon's memory
    /// and environment. The store itself is never bound
    #[arg(long, conflicts_with = "stop")]
    pub allow_dangerous_binds: bool,
    /// Default storage options of every instance's writable rootfs, as
    /// dockerd's overlay2.size: size=SIZE, the most an instance's files may
    /// hold over its image (e.g. 10G) unless it asks for its own with
    /// `run --storage-opt size=` [default: no limit]
    #[arg(long = "storage-opt", value_name = "size=SIZE", value_parser = parse_storage_opt, conflicts_with = "stop")]
    pub storage_opts: Vec<u64>,
    /// Stop the daemon listening on the socket, then exit
    #[arg(long)]
    pub stop: bool,
}

pub fn run(target: &DaemonTarget, args: DaemonArgs) -> anyhow::Result<ExitCode> {
    let socket = args.socket.unwrap_or_else(|| target.socket.clone());
    if args.stop {
        return shutdown(&DaemonTarget {
            root: target.root.clone(),
            socket,
        });
    }
    serve(DaemonConfig {
        root: target.root.clone(),
        socket,
        max_instances: args.max_instances,
        max_instance_memory: args.max_instance_memory,
        api_header_timeout: args.api_header_timeout,
        allow_dangerous_binds: args.allow_dangerous_binds,
        storage_size: args.storage_opts.last().copied().filter(|&s| s > 0),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A `--storage-opt` of the daemon: `size=SIZE` (`overlay2.size=` too, as
/// dockerd spells it), in bytes; 0 is no limit.
fn parse_storage_opt(value: &str) -> Result<u64, String> {
    match value.split_once('=') {
        Some((key, size))
            if matches!(key.to_ascii_lowercase().as_str(), "size" | "overlay2.size") =>
        {
            wrun_daemon::rootfs_views::parse_size(size)
        }
        Some((key, _)) => Err(format!("Unknown option {key} (wrun takes size=SIZE)")),
        None => Err(format!(
            "invalid storage option {value:?}: expected size=SIZE"
        )),
    }
}

/// Asks the daemon to stop and waits until its socket is gone.
///
/// The daemon exits as soon as its instances are ended, and its answer to
/// the request may not have left by then: a connection closed before the
/// answer is no failure when the daemon is gone after it. Only a daemon
/// still answering after that is.
pub fn shutdown(target: &DaemonTarget) -> anyhow::Result<ExitCode> {
    if !answers(&target.socket) {
        eprintln!("no daemon is listening on {}", target.socket.display());
        return Ok(ExitCode::SUCCESS);
    }
    let asked = match Client::new(&target.socket)?.call(Method::POST, "/wrun/shutdown", None) {
        // It answered with a refusal: it is not stopping.
        Err(e) if e.downcast_ref::<crate::client::DaemonError>().is_some() => return Err(e),
        asked => asked,
    };
    for _ in 0..500 {
        if !answers(&target.socket) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    asked?;
    anyhow::bail!(
        "the daemon on {} did not stop within 10 s",
        target.socket.display()
    )
}

fn answers(socket: &std::path::Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}
