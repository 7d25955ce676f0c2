//! From an image record and run settings to a running guest: the argv, env,
//! grants and limits of an `InstanceSpec`, the prepared module, and the
//! Docker-style report of how the guest ended. Shared by `wrun run` and the daemon.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use wrun_image::{ImageRecord, Store};
use wrun_runtime::{
    InstanceSpec, Limits, ModuleDigest, ModuleKind, PrepareOptions, PreparedModule, RunOutcome,
    Runtime,
};

use crate::commands::{RunFailure, describe, trap_exit_code, trap_summary};

/// What a run asks for on top of the image's defaults.
#[derive(Clone, Debug, Default)]
pub struct RunSettings {
    /// Replaces the image's entrypoint when non-empty.
    pub entrypoint: Vec<String>,
    /// Replaces the image's Cmd when non-empty.
    pub cmd: Vec<String>,
    /// Set over the image's Env, in order (a later key replaces an earlier one).
    pub env: Vec<(String, String)>,
    /// Replaces the image's WorkingDir.
    pub workdir: Option<String>,
    /// Host directory, guest path, read-only.
    pub volumes: Vec<(PathBuf, String, bool)>,
    /// A private writable `/tmp`.
    pub tmp: bool,
    pub limits: Limits,
    /// What the instance may do on the network; nothing by default.
    pub network: wrun_runtime::NetworkGrants,
    /// `-P`: publish every port the image exposes (and is not published
    /// already) on a port the kernel picks.
    pub publish_all: bool,
    /// Limits of serving, when the module is an HTTP handler.
    pub serve: crate::serve::ServeSettings,
}

/// An instance ready to be prepared and run; stdio is left to the caller.
#[derive(Debug)]
pub struct Launch {
    pub spec: InstanceSpec,
    /// argv\[0\]: the module's path in the image.
    pub module_name: String,
    rootfs: PathBuf,
    options: PrepareOptions,
    known_digest: Option<ModuleDigest>,
    image_id: String,
    module: Option<wrun_image::ModuleInfo>,
}

/// Builds the spec: argv = entrypoint + Cmd, env = image Env then the
/// settings', the rootfs read-only, volumes and limits as given.
pub fn plan(
    store: &Store,
    record: &ImageRecord,
    image: &str,
    settings: &RunSettings,
) -> anyhow::Result<Launch> {
    let config = store
        .config(record)
        .with_context(|| format!("reading the config of image {image}"))?;
    let image_cfg = config.config().clone().unwrap_or_default();
    let entrypoint = if settings.entrypoint.is_empty() {
        image_cfg.entrypoint().clone().unwrap_or_default()
    } else {
        settings.entrypoint.clone()
    };
    let cmd = if settings.cmd.is_empty() {
        image_cfg.cmd().clone().unwrap_or_default()
    } else {
        settings.cmd.clone()
    };
    let mut argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    let Some(first) = argv.first_mut() else {
        bail!("image {image} has no entrypoint or command to run");
    };
    if !first.starts_with('/') {
        *first = format!("/{first}");
    }
    let module_name = first.clone();
    let rootfs = store
        .rootfs_path(record)
        .with_context(|| format!("image {image} has no layers, so no module to run"))?;
    let expect = match record.os.as_str() {
        "wasip1" => Some(ModuleKind::CoreModule),
        "wasip2" => Some(ModuleKind::Component),
        _ => None,
    };

    let mut spec = InstanceSpec::new(argv)
        .rootfs(&rootfs)
        .tmp(settings.tmp)
        .limits(settings.limits);
    spec.network = settings.network.clone();
    if settings.publish_all {
        let exposed = image_cfg.exposed_ports().clone().unwrap_or_default();
        crate::api::network::publish_exposed(&mut spec.network, exposed.iter())
            .map_err(|e| anyhow::anyhow!("publishing the ports image {image} exposes: {e}"))?;
    }
    let mut env: Vec<(String, String)> = Vec::new();
    let image_env = image_cfg.env().clone().unwrap_or_default();
    let image_env = image_env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()));
    for (k, v) in image_env.chain(settings.env.iter().cloned()) {
        env.retain(|(name, _)| name != &k);
        env.push((k, v));
    }
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    if let Some(w) = settings
        .workdir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image_cfg.working_dir().clone().filter(|w| !w.is_empty()))
    {
        if !w.starts_with('/') {
            bail!("the working directory {w:?} is not absolute");
        }
        spec = spec.workdir(w);
    }
    for (host, guest, read_only) in &settings.volumes {
        spec = spec.volume(host, guest, *read_only);
    }
    let known_digest = record
        .module
        .as_ref()
        .filter(|m| m.path == module_name)
        .map(|m| ModuleDigest::parse(&m.digest.to_string()))
        .transpose()?;
    Ok(Launch {
        spec,
        module_name,
        rootfs,
        options: PrepareOptions {
            expect,
            fuel: settings.limits.fuel.is_some(),
        },
        known_digest,
        image_id: record.id.short(),
        module: record.module.clone(),
    })
}

/// Prepares the module: mapped from the cache by the image's module digest
/// when possible (no read at all), else read through the rootfs and compiled.
/// Blocking (disk, maybe compilation): async callers use a blocking thread.
pub fn prepare(runtime: &Runtime, launch: &Launch) -> anyhow::Result<PreparedModule> {
    let module_name = &launch.module_name;
    let cannot_run = |e: wrun_runtime::RuntimeError| {
        RunFailure::CannotRun(format!(
            "{module_name}: {}",
            describe(&anyhow::Error::from(e))
        ))
    };
    if let Some(d) = &launch.known_digest
        && let Some(m) = runtime
            .prepare_cached(d, launch.options)
            .map_err(cannot_run)?
    {
        return Ok(m);
    }
    let (wasm, digest) = read_module(launch)?;
    Ok(runtime
        .prepare(&digest, &wasm, launch.options)
        .map_err(cannot_run)?)
}

/// Checks that every published host address is free now and picks the
/// ports left to the kernel (`-p 80`), so they can be shown; a conflict is a
/// clear error before the guest starts. An image of core modules given
/// network grants is refused first (the runtime refuses it too, but a port
/// should not be claimed for it).
pub fn claim_ports(launch: &mut Launch) -> anyhow::Result<()> {
    if launch.options.expect == Some(ModuleKind::CoreModule) && !launch.spec.network.is_none() {
        return Err(wrun_runtime::RuntimeError::NetworkNeedsComponent.into());
    }
    launch
        .spec
        .network
        .claim_host_ports()
        .context("publishing the instance's ports")
}

/// Reads the module through a handle on the rootfs, so a symlink in the
/// image can never make wrun read a host file.
fn read_module(launch: &Launch) -> anyhow::Result<(Vec<u8>, ModuleDigest)> {
    let rootfs: &Path = &launch.rootfs;
    let root = cap_std::fs::Dir::open_ambient_dir(rootfs, cap_std::ambient_authority())
        .with_context(|| format!("opening the image rootfs {}", rootfs.display()))?;
    let module = &launch.module_name;
    let wasm = root.read(module.trim_start_matches('/')).map_err(|_| {
        RunFailure::ModuleMissing(format!(
            "{module} is not a file in image {}",
            launch.image_id
        ))
    })?;
    let digest = match &launch.module {
        Some(m) if &m.path == module => ModuleDigest::parse(&m.digest.to_string())?,
        _ => ModuleDigest::of(&wasm),
    };
    Ok((wasm, digest))
}

/// How a guest ended, in Docker's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The process-style exit code (0–255).
    pub exit_code: u8,
    /// Why it was stopped, when a trap stopped it.
    pub error: Option<String>,
    /// Stopped by the memory limit (Docker's `OOMKilled`).
    pub oom_killed: bool,
    pub backtrace: Option<String>,
}

/// Maps an outcome to the exit code and message `run` reports.
pub fn ended(outcome: &RunOutcome, module_name: &str) -> Ended {
    match outcome {
        RunOutcome::Exited(code) => Ended {
            exit_code: (code & 0xff) as u8,
            error: None,
            oom_killed: false,
            backtrace: None,
        },
        RunOutcome::Trapped {
            reason,
            message,
            backtrace,
        } => Ended {
            exit_code: trap_exit_code(*reason),
            error: Some(format!(
                "{module_name}: {} ({message})",
                trap_summary(*reason)
            )),
            oom_killed: *reason == wrun_runtime::TrapReason::MemoryLimit,
            backtrace: backtrace.clone(),
        },
    }
}

/// The exit code of a run that failed before the guest started.
pub fn failure_exit_code(err: &anyhow::Error) -> u8 {
    crate::commands::exit_code(err, true)
}
