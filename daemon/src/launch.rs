//! From a create request to a running guest: the request's settings, then
//! the argv, env, grants and limits of an `InstanceSpec` over the image, and
//! the prepared module. Shared by the CLI's foreground run and the daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use wrun_image::{ImageRecord, Store};
use wrun_runtime::{
    InstanceSpec, Limits, ModuleDigest, ModuleKind, OutputTarget, PrepareOptions, PreparedModule,
    Runtime, ServeOptions,
};

use wrun_api::containers::{ContainerConfig, HostConfig};
use wrun_api::parse::BindSpec;

use crate::error::{DaemonError, describe};
use crate::outcome::RunFailure;

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
    pub serve: ServeSettings,
}

/// What `--max-concurrency`, `--max-body-size` and `--header-timeout` ask
/// for; `None`: the default of [`ServeOptions`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeSettings {
    pub max_concurrency: Option<usize>,
    pub max_body_size: Option<u64>,
    pub header_timeout: Option<Duration>,
}

impl ServeSettings {
    /// The runtime's serve options, the access log going to `access_log`.
    pub fn options(&self, access_log: OutputTarget) -> ServeOptions {
        let defaults = ServeOptions::default();
        ServeOptions {
            max_concurrency: self.max_concurrency.unwrap_or(defaults.max_concurrency),
            max_body_size: self.max_body_size.unwrap_or(defaults.max_body_size),
            header_read_timeout: self.header_timeout.unwrap_or(defaults.header_read_timeout),
            access_log,
            ..defaults
        }
    }
}

/// What a create request asks the runtime for: the one conversion from
/// the API's `Config` and `HostConfig` to [`RunSettings`], used by the
/// daemon's create and start and by the CLI's foreground run. The
/// request's errors are [`DaemonError::InvalidArgument`].
pub fn settings(config: &ContainerConfig, host: &HostConfig) -> Result<RunSettings, DaemonError> {
    let mut env = Vec::new();
    for kv in config.env.iter().flatten() {
        match kv.split_once('=') {
            Some(("", _)) => {
                return Err(DaemonError::invalid(format!(
                    "invalid environment variable {kv:?}: the name is empty"
                )));
            }
            Some((k, v)) => env.push((k.to_string(), v.to_string())),
            None => {} // `NAME` alone: unset, as Docker does for an unknown host variable
        }
    }
    let mut volumes = Vec::new();
    for bind in host.binds.iter().flatten() {
        volumes.push(volume(bind)?);
    }
    let memory = match host.memory {
        0 => None,
        m if m < 0 => return Err(DaemonError::invalid("Memory must not be negative")),
        m => Some(m as u64),
    };
    let timeout = match host.wasm_timeout {
        0 => None,
        t if t < 0 => return Err(DaemonError::invalid("WasmTimeout must not be negative")),
        t => Some(std::time::Duration::from_nanos(t as u64)),
    };
    Ok(RunSettings {
        entrypoint: config.entrypoint.clone().unwrap_or_default(),
        cmd: config.cmd.clone().unwrap_or_default(),
        env,
        workdir: Some(config.working_dir.clone()).filter(|w| !w.is_empty()),
        volumes,
        tmp: wrun_api::containers::private_tmp(
            host.tmpfs.iter().flat_map(|m| m.keys().map(String::as_str)),
        )
        .map_err(DaemonError::invalid)?,
        limits: wrun_runtime::Limits {
            memory,
            timeout,
            fuel: Some(host.wasm_fuel).filter(|f| *f > 0),
        },
        network: crate::grants::grants(config, host).map_err(DaemonError::invalid)?,
        publish_all: host.publish_all_ports,
        serve: serve_settings(host)?,
    })
}

/// The serve limits a create request's `HostConfig` asks for.
fn serve_settings(host: &HostConfig) -> Result<ServeSettings, DaemonError> {
    let header_timeout = match host.wrun_http_header_timeout {
        0 => None,
        t if t < 0 => {
            return Err(DaemonError::invalid(
                "WrunHttpHeaderTimeout must not be negative",
            ));
        }
        t => Some(std::time::Duration::from_nanos(t as u64)),
    };
    Ok(ServeSettings {
        max_concurrency: Some(host.wrun_http_max_concurrency)
            .filter(|n| *n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        max_body_size: Some(host.wrun_http_max_body_size).filter(|n| *n > 0),
        header_timeout,
    })
}

/// A bind of the request: `HOST:GUEST[:ro|rw]` with HOST an absolute path
/// to an existing directory.
fn volume(bind: &str) -> Result<(PathBuf, String, bool), DaemonError> {
    // Before the syntax: the CLI makes `./relative` absolute, so only a
    // name (a named volume) or a relative path reaches here without a `/`.
    if !bind.starts_with('/') {
        return Err(DaemonError::invalid(format!(
            "invalid bind {bind:?}: the host path must be absolute (named volumes are not supported)"
        )));
    }
    let spec = BindSpec::parse(bind).map_err(DaemonError::InvalidArgument)?;
    let host = PathBuf::from(&spec.host);
    if !host.is_dir() {
        return Err(DaemonError::invalid(format!(
            "invalid volume {bind:?}: host directory {} does not exist",
            host.display()
        )));
    }
    Ok((host, spec.guest, spec.read_only))
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
        crate::grants::publish_exposed(&mut spec.network, exposed.iter())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn host_config(json: &str) -> HostConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn binds_need_an_existing_absolute_host_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (host, guest, ro) = volume(&format!("{d}:/data:ro")).unwrap();
        assert_eq!(
            (host.as_path(), guest.as_str(), ro),
            (dir.path(), "/data", true)
        );
        let refused = |bind: &str, says: &str| {
            let err = volume(bind).unwrap_err();
            assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST, "{bind}");
            assert!(err.message().contains(says), "{bind}: {err}");
        };
        refused("myvol:/data", "named volumes are not supported");
        refused("./here:/data", "must be absolute");
        refused("/nonexistent/dir:/data", "does not exist");
        refused(&format!("{d}:/data:rx"), "\"rx\"");
        refused(&format!("{d}:data"), "guest path must be absolute");
    }

    #[test]
    fn a_request_becomes_settings_or_a_400() {
        let config = ContainerConfig {
            env: Some(vec!["A=1".into(), "UNSET".into(), "B=x=y".into()]),
            cmd: Some(vec!["Bob".into()]),
            ..ContainerConfig::default()
        };
        let host =
            host_config(r#"{"Memory":67108864,"WasmTimeout":2000000000,"Tmpfs":{"/tmp":""}}"#);
        let s = settings(&config, &host).unwrap();
        assert_eq!(
            s.env,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(s.cmd, ["Bob"]);
        assert_eq!(s.limits.memory, Some(64 << 20));
        assert_eq!(s.limits.timeout, Some(Duration::from_secs(2)));
        assert!(s.tmp && s.network.is_none());
        for (json, says) in [
            (r#"{"Memory":-1}"#, "Memory must not be negative"),
            (r#"{"WasmTimeout":-1}"#, "WasmTimeout must not be negative"),
            (r#"{"Tmpfs":{"/var":""}}"#, "/var"),
            (r#"{"NetworkMode":"overlay"}"#, "not supported"),
            (r#"{"WrunHttpHeaderTimeout":-5}"#, "must not be negative"),
        ] {
            let err = settings(&ContainerConfig::default(), &host_config(json)).unwrap_err();
            assert!(matches!(err, DaemonError::InvalidArgument(_)), "{json}");
            assert!(err.message().contains(says), "{json}: {err}");
        }
        let bad_env = ContainerConfig {
            env: Some(vec!["=x".into()]),
            ..ContainerConfig::default()
        };
        assert!(settings(&bad_env, &HostConfig::default()).is_err());
    }
}
