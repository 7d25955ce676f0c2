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

use wrun_api::containers::{ContainerConfig, HostConfig, Mount};
use wrun_api::images::EmptyObject;
use wrun_api::network::NetworkingConfig;
use wrun_api::parse::BindSpec;

use crate::error::{DaemonError, describe};
use crate::outcome::RunFailure;

/// What a run asks for on top of the image's defaults.
#[derive(Clone, Debug, Default)]
pub struct RunSettings {
    /// The request's entrypoint: `None` takes the image's; given, it also
    /// drops the image's Cmd (`[]` keeps it); `[""]` means none at all.
    pub entrypoint: Option<Vec<String>>,
    /// The request's Cmd: replaces the image's when non-empty.
    pub cmd: Option<Vec<String>>,
    /// Set over the image's Env, in order (a later key replaces an earlier one).
    pub env: Vec<(String, String)>,
    /// Named without a value (`NAME`): the image's value is not set either.
    pub unset: Vec<String>,
    /// Replaces the image's WorkingDir.
    pub workdir: Option<String>,
    /// Host directory (absolute) or a volume's name (relative: [`plan`]
    /// finds it in the store, created when missing), guest path, read-only.
    pub volumes: Vec<(PathBuf, String, bool)>,
    /// A private writable `/tmp`.
    pub tmp: bool,
    /// `--read-only` (`HostConfig.ReadonlyRootfs`): the guest's `/` is the
    /// image snapshot, read-only; otherwise the caller gives the spec a
    /// writable view over it (`InstanceSpec::writable_rootfs`).
    pub read_only: bool,
    /// `--storage-opt size=` (`HostConfig.StorageOpt`): the most bytes of
    /// file data the writable rootfs may hold; `None`: the daemon's
    /// default (none in a foreground run).
    pub storage_size: Option<u64>,
    pub limits: Limits,
    /// What the instance may do on the network; nothing by default.
    pub network: wrun_runtime::NetworkGrants,
    /// `-P`: publish every port the image exposes (and is not published
    /// already) on a port the kernel picks.
    pub publish_all: bool,
    /// Limits of serving, when the module is an HTTP handler.
    pub serve: ServeSettings,
    /// Which host directories the binds may name: the daemon's (or a
    /// foreground run's) own setting, never the request's.
    pub host_binds: HostBinds,
}

impl RunSettings {
    /// These settings with binds checked against `policy`.
    pub fn host_binds(mut self, policy: HostBinds) -> Self {
        self.host_binds = policy;
        self
    }
}

/// Which host directories a bind may grant. Every instance runs inside
/// wrun's own process (the daemon's, or a foreground `wrun run`'s), so a
/// guest given `/proc` reads that process's memory and environment
/// (`/proc/self/…`), and one given the store reads every instance's
/// environment and can change the images every instance runs.
///
/// By default ([`HostBinds::DAEMON`]) a bind is refused when its host
/// directory, symlinks resolved, is `/proc`, `/sys` or `/dev`, is under
/// one of them, holds one of them (`/`), is a proc or sysfs mount
/// elsewhere, or holds the store. The store itself, and anything in it, is
/// refused whatever the setting: nothing there is a guest's business but a
/// named volume's data (`volumes/NAME/_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBinds {
    /// Grant what the default refuses (all but the store and what is in it).
    pub allow_dangerous: bool,
    /// How the user permits it, for the refusal's message.
    pub opt_in: &'static str,
}

impl HostBinds {
    /// The daemon's default: dangerous binds refused.
    pub const DAEMON: HostBinds = HostBinds {
        allow_dangerous: false,
        opt_in: "start the daemon with --allow-dangerous-binds to permit it",
    };
    /// A foreground `wrun run`'s default: dangerous binds refused.
    pub const FOREGROUND: HostBinds = HostBinds {
        allow_dangerous: false,
        opt_in: "run with --allow-dangerous-binds to permit it",
    };

    /// This policy with dangerous binds permitted when `allow` is set.
    pub fn allowing(self, allow: bool) -> HostBinds {
        HostBinds {
            allow_dangerous: allow,
            ..self
        }
    }
}

impl Default for HostBinds {
    fn default() -> Self {
        HostBinds::DAEMON
    }
}

/// The host directories no guest gets without the opt-in: what each is,
/// and what a guest given it could do.
const HOST_SYSTEM_DIRS: [(&str, &str, &str); 3] = [
    (
        "/proc",
        "the process information of wrun's own process, where every instance runs",
        "a guest would read its memory and environment",
    ),
    (
        "/sys",
        "the kernel's view of the host's devices and settings",
        "a guest would read them and could change them",
    ),
    (
        "/dev",
        "the host's devices",
        "a guest would read and write disks, terminals and memory",
    ),
];

/// Whether `real` is a named volume's data directory in the store
/// (`volumes/NAME/_data`, see `volumes.rs`) or under one: what a volume
/// mount gives a guest anyway, and nothing else of the store.
fn in_volume_data(real: &Path, store: &Path) -> bool {
    use std::path::Component;
    let Ok(rest) = real.strip_prefix(store.join("volumes")) else {
        return false;
    };
    let mut parts = rest.components();
    matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), Some(Component::Normal(data))) if data == "_data"
    )
}

/// Checks a bind's host directory against `policy` and the store at
/// `store_root`; returns the directory with symlinks resolved, which is
/// what the instance is given (a symlink changed later redirects nothing).
/// Refusals are Docker's "invalid mount config" (400; `run` exits 125).
pub fn check_bind(
    host: &Path,
    store_root: &Path,
    policy: HostBinds,
) -> Result<PathBuf, DaemonError> {
    let refuse = |why: String| {
        DaemonError::invalid(format!("invalid mount config for type \"bind\": {why}"))
    };
    let real = std::fs::canonicalize(host)
        .map_err(|e| refuse(format!("bind source path {}: {e}", host.display())))?;
    let shown = if real == host {
        host.display().to_string()
    } else {
        format!("{} (which is {})", host.display(), real.display())
    };
    let store_why = "a guest would read every instance's environment and could change the images every instance runs";
    // The store may be named through a symlink too; one that does not
    // exist yet holds nothing to protect.
    let store = std::fs::canonicalize(store_root).ok();
    if let Some(store) = &store
        && real.starts_with(store)
        && !in_volume_data(&real, store)
    {
        let place = if &real == store { "is" } else { "is inside" };
        return Err(refuse(format!(
            "{shown} {place} wrun's store {}: {store_why}; the store is never bound",
            store.display()
        )));
    }
    if policy.allow_dangerous {
        return Ok(real);
    }
    let opt_in = policy.opt_in;
    for (dir, what, risk) in HOST_SYSTEM_DIRS {
        let place = if real == Path::new(dir) {
            "is".to_owned()
        } else if real.starts_with(dir) {
            format!("is inside {dir},")
        } else if Path::new(dir).starts_with(&real) {
            format!("holds {dir},")
        } else {
            continue;
        };
        return Err(refuse(format!("{shown} {place} {what}: {risk} ({opt_in})")));
    }
    if let Some(store) = &store
        && store.starts_with(&real)
    {
        return Err(refuse(format!(
            "{shown} holds wrun's store {}: {store_why} ({opt_in})",
            store.display()
        )));
    }
    // /proc or /sys mounted (or bind-mounted) somewhere else.
    if let Ok(fs) = rustix::fs::statfs(&real) {
        const PROC_SUPER_MAGIC: u32 = 0x9fa0;
        const SYSFS_MAGIC: u32 = 0x6265_6572;
        let (dir, what, risk) = match u32::try_from(fs.f_type) {
            Ok(PROC_SUPER_MAGIC) => HOST_SYSTEM_DIRS[0],
            Ok(SYSFS_MAGIC) => HOST_SYSTEM_DIRS[1],
            _ => return Ok(real),
        };
        return Err(refuse(format!(
            "{shown} is a mount of {dir}, {what}: {risk} ({opt_in})"
        )));
    }
    Ok(real)
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
    let mut unset = Vec::new();
    for kv in config.env.iter().flatten() {
        match kv.split_once('=') {
            Some(("", _)) => {
                return Err(DaemonError::invalid(format!(
                    "invalid environment variable {kv:?}: the name is empty"
                )));
            }
            Some((k, v)) => env.push((k.to_string(), v.to_string())),
            // `NAME` alone: unset, the image's value too, as in Docker.
            None => unset.push(kv.clone()),
        }
    }
    let mut volumes = Vec::new();
    for bind in host.binds.iter().flatten() {
        volumes.push(volume(bind)?);
    }
    let mut tmp = wrun_api::containers::private_tmp(
        host.tmpfs.iter().flat_map(|m| m.keys().map(String::as_str)),
    )
    .map_err(DaemonError::invalid)?;
    for m in host.mounts.iter().flatten() {
        match mount(m)? {
            Some(bind) => volumes.push(bind),
            None => tmp = true,
        }
    }
    if let Some(dup) = duplicate_target(&volumes, tmp && host.tmpfs.is_some()) {
        return Err(DaemonError::invalid(format!(
            "Duplicate mount point: {dup}"
        )));
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
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        env,
        unset,
        workdir: Some(config.working_dir.clone()).filter(|w| !w.is_empty()),
        volumes,
        tmp,
        read_only: host.readonly_rootfs,
        storage_size: crate::rootfs_views::storage_size(host.storage_opt.as_ref())?,
        limits: wrun_runtime::Limits {
            memory,
            timeout,
            fuel: Some(host.wasm_fuel).filter(|f| *f > 0),
        },
        network: crate::grants::grants(config, host).map_err(DaemonError::invalid)?,
        publish_all: host.publish_all_ports,
        serve: serve_settings(host)?,
        host_binds: HostBinds::default(),
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
/// to an existing directory, or `NAME:GUEST[:ro|rw]` naming a volume.
fn volume(bind: &str) -> Result<(PathBuf, String, bool), DaemonError> {
    let spec = BindSpec::parse(bind).map_err(DaemonError::InvalidArgument)?;
    if let Some(name) = spec.volume_name() {
        return Ok((PathBuf::from(name), spec.guest, spec.read_only));
    }
    // The CLI makes `./relative` absolute: only another client's relative
    // path reaches here without a `/`.
    if !bind.starts_with('/') {
        return Err(DaemonError::invalid(format!(
            "invalid bind {bind:?}: the host path must be absolute"
        )));
    }
    let host = PathBuf::from(&spec.host);
    if !host.is_dir() {
        return Err(DaemonError::invalid(format!(
            "invalid volume {bind:?}: host directory {} does not exist",
            host.display()
        )));
    }
    Ok((host, spec.guest, spec.read_only))
}

/// The smallest `Memory` dockerd takes (Linux), and its words below it.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// dockerd's own checks of a create request (`verifyContainerSettings`),
/// in its order and words, made before wrun's: a request dockerd refuses
/// is refused the same way whatever wrun would do with it.
fn verify_as_dockerd(config: &ContainerConfig, host: &HostConfig) -> Result<(), DaemonError> {
    if !config.stop_signal.is_empty() {
        wrun_api::signal::parse(&config.stop_signal).map_err(DaemonError::invalid)?;
    }
    if let Some(h) = &config.healthcheck {
        // Durations in nanoseconds; 0 is "inherit", else at least 1 ms.
        let short = |d: i64| d != 0 && d < 1_000_000;
        let refuse = |what: &str| {
            Err(DaemonError::invalid(format!(
                "{what} in Healthcheck cannot be less than 1ms"
            )))
        };
        if short(h.interval) {
            return refuse("Interval");
        }
        if short(h.timeout) {
            return refuse("Timeout");
        }
        if h.retries < 0 {
            return Err(DaemonError::invalid(
                "Retries in Healthcheck cannot be negative",
            ));
        }
        if short(h.start_period) {
            return refuse("StartPeriod");
        }
    }
    if host.memory != 0 && host.memory < MIN_MEMORY {
        return Err(DaemonError::invalid("Minimum memory limit allowed is 6MB"));
    }
    Ok(())
}

/// What wrun does with each create field it has no use of its own for, as
/// Docker does with what a kernel lacks: a field whose point is isolation
/// or access wrun cannot give (or that would mislead if dropped) is refused
/// (400); a tuning field wrun cannot apply is discarded (reset in the
/// request, so inspect shows what applies) with a warning for the create
/// response; a field wrun's instances satisfy by construction is accepted.
/// docs/daemon.md lists each decision.
pub fn adapt(
    config: &mut ContainerConfig,
    host: &mut HostConfig,
) -> Result<Vec<String>, DaemonError> {
    verify_as_dockerd(config, host)?;
    let mut warnings = Vec::new();
    let refuse = |m: String| Err(DaemonError::invalid(m));
    let given = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());

    // Config.
    if !config.user.is_empty() && !is_daemon_user(&config.user) {
        return refuse(format!(
            "user {:?} cannot be applied: a wasm instance has no users; it reaches only the directories granted to it, with the daemon's file access",
            config.user
        ));
    }
    if config.healthcheck.as_ref().is_some_and(|h| h.checks()) {
        return refuse(
            "health checks are not supported: wrun cannot run a command inside a wasm instance (leave them out, or --no-healthcheck)".into(),
        );
    }
    if !config.mac_address.is_empty() {
        return refuse("MacAddress cannot be set: a wasm instance has no network interface".into());
    }
    if config.network_disabled
        && (wrun_api::network::is_host_mode(&host.network_mode).unwrap_or(false)
            || host.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || host.publish_all_ports
            || given(&host.wrun_allow_connect)
            || host.wrun_allow_dns
            || host.wrun_allow_udp)
    {
        return refuse(
            "NetworkDisabled conflicts with the network the request grants (-p, -P, --network host, --allow-*)".into(),
        );
    }
    if !config.stop_signal.is_empty() {
        warnings.push(format!(
            "StopSignal {} discarded: a wasm instance has no signals; stop ends it at once",
            config.stop_signal
        ));
        config.stop_signal.clear();
    }

    // HostConfig: isolation and access wrun cannot give.
    if host.privileged {
        return refuse(
            "privileged mode is not supported: a wasm instance gets only what it is granted (-v, --mount, -p, --network host, --allow-*)".into(),
        );
    }
    if given(&host.cap_add) {
        return refuse(format!(
            "capabilities cannot be added ({}): a wasm instance has no Linux capabilities; grant directories with -v and network with -p, --network host or --allow-*",
            host.cap_add
                .iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if given(&host.group_add) {
        return refuse("GroupAdd cannot be applied: a wasm instance has no users or groups".into());
    }
    if host.devices.as_ref().is_some_and(|d| !d.is_empty())
        || given(&host.device_cgroup_rules)
        || host.device_requests.as_ref().is_some_and(|d| !d.is_empty())
    {
        return refuse(
            "devices cannot be given to a wasm instance (Devices, DeviceCgroupRules, DeviceRequests/--gpus)".into(),
        );
    }
    for (what, mode) in [
        ("IPC", &host.ipc_mode),
        ("PID", &host.pid_mode),
        ("UTS", &host.uts_mode),
        ("cgroup namespace", &host.cgroupns_mode),
    ] {
        if !matches!(mode.as_str(), "" | "private" | "none" | "shareable") {
            return refuse(format!(
                "{what} mode {mode:?} is not supported: a wasm instance shares no namespace with the host or another instance"
            ));
        }
    }
    if !matches!(host.userns_mode.as_str(), "" | "host") {
        return refuse(format!(
            "user namespace mode {:?} is not supported: a wasm instance has no users",
            host.userns_mode
        ));
    }
    if !host.cgroup.is_empty() {
        return refuse(format!(
            "Cgroup {:?} is not supported: a wasm instance is not in a cgroup of its own",
            host.cgroup
        ));
    }
    if given(&host.links) {
        return refuse(
            "links are not supported: instances reach each other only through published ports"
                .into(),
        );
    }
    if given(&host.dns)
        || given(&host.dns_options)
        || given(&host.dns_search)
        || given(&host.extra_hosts)
    {
        return refuse(
            "custom name resolution (--dns, --dns-option, --dns-search, --add-host) is not supported: an instance granted --allow-dns resolves names with the host's resolver".into(),
        );
    }
    if !matches!(
        host.volume_driver.as_str(),
        "" | wrun_api::volumes::LOCAL_DRIVER
    ) {
        return refuse(format!(
            "VolumeDriver {:?} is not supported: a wrun volume is a directory of the store (driver local)",
            host.volume_driver
        ));
    }
    if given(&host.volumes_from) {
        return refuse(
            "VolumesFrom is not supported: mount the same volumes by name (-v NAME:/guest)".into(),
        );
    }
    if host.sysctls.as_ref().is_some_and(|o| !o.is_empty()) {
        return refuse(
            "sysctls are not supported: a wasm instance has no kernel parameters of its own".into(),
        );
    }
    if !matches!(host.runtime.as_str(), "" | "wasmtime") {
        return refuse(format!("Unknown runtime specified {}", host.runtime));
    }
    if !matches!(host.isolation.as_str(), "" | "default") {
        return refuse(format!(
            "Invalid isolation: {:?} - linux only supports 'default'",
            host.isolation
        ));
    }

    // Resources: CPU.
    if host.nano_cpus != 0 {
        return refuse(
            "NanoCPUs can not be set, as wrun does not limit an instance's share of the CPU (bound its work with --fuel or --timeout)".into(),
        );
    }
    if host.cpu_realtime_period != 0 || host.cpu_realtime_runtime != 0 {
        return refuse(
            "CPU real-time scheduling is not supported: wasm instances run on the daemon's threads"
                .into(),
        );
    }
    if host.io_maximum_iops != 0 || host.io_maximum_bandwidth != 0 {
        return refuse(
            "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"
                .into(),
        );
    }
    let cpu = "wrun does not limit an instance's share of the CPU (bound its work with --fuel or --timeout)";
    if host.cpu_shares != 0 {
        warnings.push(format!("CPU shares discarded: {cpu}"));
        host.cpu_shares = 0;
    }
    if host.cpu_period != 0 || host.cpu_quota != 0 {
        warnings.push(format!("CPU period/quota discarded: {cpu}"));
        (host.cpu_period, host.cpu_quota) = (0, 0);
    }
    if host.cpu_count != 0 || host.cpu_percent != 0 {
        warnings.push(format!("CPU count/percent discarded: {cpu}"));
        (host.cpu_count, host.cpu_percent) = (0, 0);
    }
    if !host.cpuset_cpus.is_empty() || !host.cpuset_mems.is_empty() {
        warnings
            .push("Cpuset discarded: wrun does not pin instances to CPUs or memory nodes".into());
        host.cpuset_cpus.clear();
        host.cpuset_mems.clear();
    }
    if !host.cgroup_parent.is_empty() {
        warnings.push(format!(
            "CgroupParent {} discarded: a wasm instance is not in a cgroup of its own",
            host.cgroup_parent
        ));
        host.cgroup_parent.clear();
    }

    // Resources: memory (Memory itself bounds linear memories and tables).
    if host.memory_swap > 0 && host.memory == 0 {
        return refuse(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        );
    }
    if host.memory_swap > 0 && host.memory_swap < host.memory {
        return refuse(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if host.memory_swap > host.memory {
        warnings.push("Memory limited without swap: wasm instances have no swap".into());
        host.memory_swap = 0;
    }
    match host.memory_swappiness {
        // dockerd stores "not set" (-1, what the docker client sends) as null.
        Some(-1) => host.memory_swappiness = None,
        None => {}
        Some(n @ 0..=100) => {
            warnings.push(format!(
                "Memory swappiness {n} discarded: wasm instances have no swap"
            ));
            host.memory_swappiness = None;
        }
        Some(n) => {
            return refuse(format!(
                "Invalid value: {n}, valid memory swappiness range is 0-100"
            ));
        }
    }
    if host.memory_reservation != 0 {
        warnings
            .push("Memory reservation discarded: wrun enforces Memory, a hard limit, only".into());
        host.memory_reservation = 0;
    }
    if host.kernel_memory != 0 || host.kernel_memory_tcp != 0 {
        warnings.push(
            "Kernel memory limit discarded: a wasm instance holds no kernel memory of its own"
                .into(),
        );
        (host.kernel_memory, host.kernel_memory_tcp) = (0, 0);
    }
    if host.oom_kill_disable == Some(true) {
        warnings.push(
            "OomKillDisable discarded: an instance that passes its Memory limit is stopped (OOMKilled)".into(),
        );
        host.oom_kill_disable = None;
    }
    if host.oom_score_adj != 0 {
        warnings.push(
            "OomScoreAdj discarded: instances run inside the daemon's process, which the kernel scores as a whole".into(),
        );
        host.oom_score_adj = 0;
    }
    if host.shm_size != 0 {
        warnings.push("ShmSize discarded: a wasm instance has no /dev/shm".into());
        host.shm_size = 0;
    }

    // Resources: block I/O, limits.
    let no_devices = |v: &Option<Vec<wrun_api::containers::ThrottleDevice>>| {
        v.as_ref().is_none_or(Vec::is_empty)
    };
    if host.blkio_weight != 0
        || host
            .blkio_weight_device
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || !no_devices(&host.blkio_device_read_bps)
        || !no_devices(&host.blkio_device_write_bps)
        || !no_devices(&host.blkio_device_read_iops)
        || !no_devices(&host.blkio_device_write_iops)
    {
        warnings.push(
            "Block I/O weight and limits discarded: wrun does not limit an instance's disk I/O"
                .into(),
        );
        host.blkio_weight = 0;
        host.blkio_weight_device = None;
        host.blkio_device_read_bps = None;
        host.blkio_device_write_bps = None;
        host.blkio_device_read_iops = None;
        host.blkio_device_write_iops = None;
    }
    if host.ulimits.as_ref().is_some_and(|u| !u.is_empty()) {
        warnings.push(
            "Ulimits discarded: instances run inside the daemon's process and share its limits"
                .into(),
        );
        host.ulimits = None;
    }
    if let Some(opts) = host.security_opt.as_mut() {
        let (kept, dropped): (Vec<String>, Vec<String>) = opts.drain(..).partition(|o| {
            matches!(
                o.as_str(),
                "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
            )
        });
        if !dropped.is_empty() {
            warnings.push(format!(
                "SecurityOpt {} discarded: a wasm instance is confined by the wasm runtime, not by seccomp, AppArmor or SELinux",
                dropped.join(", ")
            ));
        }
        *opts = kept;
    }
    // As dockerd stores them: no PIDs limit is null, and the namespaces an
    // instance does not share are private.
    if host.pids_limit.is_some_and(|n| n <= 0) {
        host.pids_limit = None;
    }
    for mode in [&mut host.ipc_mode, &mut host.cgroupns_mode] {
        if mode.is_empty() {
            *mode = "private".into();
        }
    }
    if host.init == Some(true) {
        warnings.push(
            "Init discarded: a wasm instance has no child processes to reap or signals to forward"
                .into(),
        );
        host.init = None;
    }
    for (path, options) in host.tmpfs.iter_mut().flatten() {
        if !options.is_empty() {
            warnings.push(format!(
                "tmpfs options discarded ({path}:{options}): wrun's /tmp is a private directory on the host's disk"
            ));
            options.clear();
        }
    }
    Ok(warnings)
}

/// `NetworkingConfig`: what the docker client sends for the network the
/// instance joins. Aliases are kept (for a user-defined network, see
/// `networks::networks_of_create`); an instance has no interface, so
/// addresses, links, a MAC and driver options are refused (400).
pub fn check_networking(n: &NetworkingConfig) -> Result<(), DaemonError> {
    for (network, e) in n.endpoints_config.iter().flatten() {
        crate::network_table::check_endpoint(network, e)?;
    }
    Ok(())
}

/// The warning of a foreground run for a `VOLUME` of the image nothing is
/// mounted at (the daemon gives it an anonymous volume, as dockerd does).
pub fn image_volume_warning(path: &str) -> String {
    format!(
        "the image's volume {path} is read-only image content in a foreground run: run with -d for an anonymous volume, or mount one there (-v NAME:{path})"
    )
}

/// Whether `user` (`NAME|UID[:GROUP|GID]`) is who the daemon runs as, so
/// asking for it asks for nothing wrun does not give.
fn is_daemon_user(user: &str) -> bool {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let matches =
        |name: &str, id: u32| name.parse::<u32>().ok() == Some(id) || (id == 0 && name == "root");
    matches(u, uid) && (g.is_empty() || matches(g, gid))
}

/// A `--mount`: a bind becomes a volume (as `Binds` do), a tmpfs at
/// `/tmp` the private `/tmp` (`None`); every other type is refused in
/// Docker's words ("invalid mount config for type …").
fn mount(m: &Mount) -> Result<Option<(PathBuf, String, bool)>, DaemonError> {
    let invalid = |why: String| {
        DaemonError::invalid(format!("invalid mount config for type {:?}: {why}", m.kind))
    };
    if !m.target.starts_with('/') {
        return Err(invalid(format!(
            "invalid mount path: '{}' mount path must be absolute",
            m.target
        )));
    }
    match m.kind.as_str() {
        "bind" => {
            if m.volume_options.is_some() || m.tmpfs_options.is_some() {
                return Err(invalid("only BindOptions may be given to a bind".into()));
            }
            if !m.source.starts_with('/') {
                return Err(invalid(format!(
                    "invalid mount path: '{}' mount path must be absolute",
                    m.source
                )));
            }
            if let Some(o) = &m.bind_options {
                if !matches!(o.propagation.as_str(), "" | "rprivate" | "private") {
                    return Err(invalid(format!(
                        "bind propagation {:?} is not supported: a wasm instance sees no mounts made after it starts",
                        o.propagation
                    )));
                }
                if o.create_mountpoint {
                    return Err(invalid(
                        "CreateMountpoint is not supported: create the host directory first".into(),
                    ));
                }
            }
            let host = PathBuf::from(&m.source);
            if !host.is_dir() {
                return Err(invalid(format!(
                    "bind source path does not exist: {}",
                    m.source
                )));
            }
            Ok(Some((host, m.target.clone(), m.read_only)))
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(invalid("Source must not be specified".into()));
            }
            if m.target.trim_end_matches('/') != "/tmp" {
                return Err(invalid(format!(
                    "{}: wrun gives a private writable directory only at /tmp",
                    m.target
                )));
            }
            if m.tmpfs_options.as_ref().is_some_and(|o| o.size_bytes != 0) {
                return Err(invalid(
                    "SizeBytes cannot be enforced: wrun's /tmp is a directory on the host's disk"
                        .into(),
                ));
            }
            Ok(None)
        }
        "volume" => {
            if m.bind_options.is_some() || m.tmpfs_options.is_some() {
                return Err(invalid(
                    "only VolumeOptions may be given to a volume".into(),
                ));
            }
            if m.source.is_empty() {
                return Err(invalid(
                    "wrun needs the volume's name here (source=NAME); an image VOLUME gets an anonymous volume by itself".into(),
                ));
            }
            wrun_api::parse::check_volume_name(&m.source).map_err(invalid)?;
            if m.volume_options
                .as_ref()
                .is_some_and(|o| o.labels.as_ref().is_some_and(|l| !l.is_empty()))
            {
                return Err(invalid(
                    "volume labels cannot be set here: create the volume first (wrun volume create --label K=V NAME)".into(),
                ));
            }
            Ok(Some((
                PathBuf::from(&m.source),
                m.target.clone(),
                m.read_only,
            )))
        }
        _ => Err(invalid("mount type unknown".into())),
    }
}

/// The first guest path given twice (by `Binds`, `Mounts` or `Tmpfs`).
fn duplicate_target(volumes: &[(PathBuf, String, bool)], tmpfs_too: bool) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let tmp = tmpfs_too.then(|| "/tmp".to_string());
    volumes
        .iter()
        .map(|(_, guest, _)| guest.trim_end_matches('/').to_string())
        .chain(tmp)
        .find(|g| !seen.insert(g.clone()))
}

/// Docker's rule for what runs: a request that names an entrypoint drops
/// the image's Cmd unless it gives its own (`[]` keeps the image's Cmd and
/// no entrypoint); an entrypoint of `[""]` means none; a request's Cmd
/// replaces the image's. Applying it twice changes nothing, so a record
/// that stores the merged values runs as it did at create.
fn merged_argv(
    entrypoint: Option<&[String]>,
    cmd: Option<&[String]>,
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
) -> (Vec<String>, Vec<String>) {
    let cmd = cmd.unwrap_or_default();
    let image_cmd = || {
        if cmd.is_empty() {
            image_cmd.unwrap_or_default().to_vec()
        } else {
            cmd.to_vec()
        }
    };
    match entrypoint {
        Some([only]) if only.is_empty() => (Vec::new(), cmd.to_vec()),
        Some([]) => (Vec::new(), image_cmd()),
        Some(e) => (e.to_vec(), cmd.to_vec()),
        None => (image_entrypoint.unwrap_or_default().to_vec(), image_cmd()),
    }
}

/// The environment as Docker merges it: the request's variables, then
/// each of the image's the request does not name (a bare `NAME` in the
/// request names it and leaves it unset).
fn merged_env(
    given: &[(String, String)],
    unset: &[String],
    image: &[String],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in given {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    for kv in image {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !kv.contains('=') || env.iter().any(|(n, _)| n == k) || unset.iter().any(|n| n == k) {
            continue;
        }
        env.push((k.to_string(), v.to_string()));
    }
    env
}

/// The `Config` Docker stores and shows for a create request over an
/// image (its `merge`): the request's Env then the image's others, its
/// Labels, ExposedPorts and Volumes over the image's, Cmd and Entrypoint by
/// [`merged_argv`]'s rule, the image's WorkingDir, User and StopSignal
/// unless given.
pub fn merge_config(mut user: ContainerConfig, image: &ContainerConfig) -> ContainerConfig {
    if user.user.is_empty() {
        user.user.clone_from(&image.user);
    }
    let given = user.env.clone().unwrap_or_default();
    if given.is_empty() {
        user.env.clone_from(&image.env);
    } else {
        let named = |kv: &str| -> String { kv.split('=').next().unwrap_or("").to_string() };
        let mut env = given.clone();
        for kv in image.env.iter().flatten() {
            if !given.iter().any(|g| named(g) == named(kv)) {
                env.push(kv.clone());
            }
        }
        user.env = Some(env);
    }
    let mut labels = user.labels.take().unwrap_or_default();
    for (k, v) in image.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    user.labels = Some(labels);
    for (mine, theirs) in [
        (&mut user.exposed_ports, &image.exposed_ports),
        (&mut user.volumes, &image.volumes),
    ] {
        if mine.as_ref().is_none_or(|m| m.is_empty()) {
            mine.clone_from(theirs);
        } else if let (Some(mine), Some(theirs)) = (mine.as_mut(), theirs) {
            for k in theirs.keys() {
                mine.entry(k.clone()).or_default();
            }
        }
    }
    if user.entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if user.cmd.as_ref().is_none_or(Vec::is_empty) {
            user.cmd.clone_from(&image.cmd);
        }
        if user.entrypoint.is_none() {
            user.entrypoint.clone_from(&image.entrypoint);
        }
    }
    if user.working_dir.is_empty() {
        user.working_dir.clone_from(&image.working_dir);
    }
    if user.stop_signal.is_empty() {
        user.stop_signal.clone_from(&image.stop_signal);
    }
    user
}

/// The run defaults an image config carries, as a container config (the
/// fields no image config has left empty): what a create merges with, and
/// what a commit's `--change`s are merged back from.
pub(crate) fn image_defaults(c: &wrun_image::oci_spec::image::Config) -> ContainerConfig {
    let set = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|keys| keys.iter().map(|k| (k.clone(), EmptyObject {})).collect())
    };
    ContainerConfig {
        user: c.user().clone().unwrap_or_default(),
        env: c.env().clone(),
        cmd: c.cmd().clone(),
        entrypoint: c.entrypoint().clone(),
        working_dir: c.working_dir().clone().unwrap_or_default(),
        labels: c
            .labels()
            .as_ref()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        exposed_ports: set(c.exposed_ports()),
        volumes: set(c.volumes()),
        stop_signal: c.stop_signal().clone().unwrap_or_default(),
        ..ContainerConfig::default()
    }
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
    /// The image's run defaults, what [`Launch::merged_config`] merges with.
    image_config: ContainerConfig,
}

impl Launch {
    /// The `Config` to store and show for a create request: the request
    /// merged with the image's defaults, as Docker does at create.
    pub fn merged_config(&self, request: ContainerConfig) -> ContainerConfig {
        merge_config(request, &self.image_config)
    }
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
    let image_cfg = image_defaults(&config.config().clone().unwrap_or_default());
    let (entrypoint, cmd) = merged_argv(
        settings.entrypoint.as_deref(),
        settings.cmd.as_deref(),
        image_cfg.entrypoint.as_deref(),
        image_cfg.cmd.as_deref(),
    );
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
        let exposed = image_cfg.exposed_ports.clone().unwrap_or_default();
        crate::grants::publish_exposed(&mut spec.network, exposed.keys())
            .map_err(|e| anyhow::anyhow!("publishing the ports image {image} exposes: {e}"))?;
    }
    let image_env = image_cfg.env.as_deref().unwrap_or_default();
    for (k, v) in merged_env(&settings.env, &settings.unset, image_env) {
        spec = spec.env(k, v);
    }
    if let Some(w) = settings
        .workdir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(image_cfg.working_dir.clone()).filter(|w| !w.is_empty()))
    {
        if !w.starts_with('/') {
            bail!("the working directory {w:?} is not absolute");
        }
        spec = spec.workdir(w);
    }
    for (host, guest, read_only) in &settings.volumes {
        let host = match host.to_str().filter(|h| !h.starts_with('/')) {
            // A named volume: its directory in the store, made when missing
            // (`-v NAME:/path` creates it, as with dockerd).
            Some(name) => {
                let data = crate::volume_store::Volumes::of(store.root()).mount_source(name)?;
                check_bind(&data, store.root(), settings.host_binds)?
            }
            None => check_bind(host, store.root(), settings.host_binds)?,
        };
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
        image_config: image_cfg,
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

/// Gives a run with no record (a foreground `wrun run`) its writable
/// rootfs: a view over the image snapshot with its upper at `upper`, made
/// on the first write; the caller removes `upper` when the run ends. The
/// daemon's instances keep theirs with the record instead
/// ([`Daemon::rootfs_view`](crate::state::Daemon::rootfs_view)).
pub fn give_writable_rootfs(
    launch: &mut Launch,
    upper: &Path,
    size_limit: Option<u64>,
) -> anyhow::Result<()> {
    let lower = std::sync::Arc::new(crate::rootfs_views::open_image_rootfs(&launch.rootfs)?);
    let view = wrun_rootfs::Layers::open(lower, upper, wrun_rootfs::UpperOptions { size_limit })
        .with_context(|| format!("opening the writable rootfs at {}", upper.display()))?;
    launch.spec.writable_rootfs = Some(view);
    Ok(())
}

/// Reads the module through a handle on the rootfs, so a symlink in the
/// image can never make wrun read a host file.
fn read_module(launch: &Launch) -> anyhow::Result<(Vec<u8>, ModuleDigest)> {
    let root = crate::rootfs_views::open_image_rootfs(&launch.rootfs)?;
    let module = &launch.module_name;
    // The module the image was stored with, when the run uses it.
    let recorded = launch.module.as_ref().filter(|m| &m.path == module);
    let damaged = |what: &str| {
        RunFailure::CannotRun(format!(
            "{module}: the snapshot of image {} is damaged ({what}): `wrun load` or `wrun build` of the image again repairs it",
            launch.image_id
        ))
    };
    let wasm = match root.read(module.trim_start_matches('/')) {
        Ok(wasm) => wasm,
        Err(_) if recorded.is_some() => {
            return Err(damaged("the module unpacked from its layers is gone").into());
        }
        // The docker client turns a start error saying "no such file or
        // directory" into run's exit status 127, as for a missing program.
        Err(_) => {
            return Err(RunFailure::ModuleMissing(format!(
                "{module}: no such file or directory in image {}",
                launch.image_id
            ))
            .into());
        }
    };
    let digest = ModuleDigest::of(&wasm);
    // Compiled code is cached under the digest: bytes changed in the
    // snapshot must never be compiled (and cached) as the image's module.
    if let Some(m) = recorded
        && ModuleDigest::parse(&m.digest.to_string())? != digest
    {
        return Err(damaged("the module differs from the one unpacked from its layers").into());
    }
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
        let (name, guest, ro) = volume("myvol:/data").unwrap();
        assert_eq!(
            (name.as_path(), guest.as_str(), ro),
            (Path::new("myvol"), "/data", false)
        );
        refused(
            "a/b:/data",
            "includes invalid characters for a local volume name",
        );
        refused("./here:/data", "must be absolute");
        refused("/nonexistent/dir:/data", "does not exist");
        refused(&format!("{d}:/data:rx"), "\"rx\"");
        refused(&format!("{d}:data"), "guest path must be absolute");
    }

    #[test]
    fn binds_that_hand_a_guest_the_process_or_the_store_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("store");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(store.join("blobs")).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink("/proc", tmp.path().join("to-proc")).unwrap();
        std::os::unix::fs::symlink(&store, tmp.path().join("to-store")).unwrap();
        let check =
            |host: &Path, allow: bool| check_bind(host, &store, HostBinds::DAEMON.allowing(allow));
        let refused = |host: &Path, allow: bool, says: &str| {
            let err = check(host, allow).unwrap_err();
            assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST, "{host:?}");
            let m = err.message();
            assert!(m.contains(says), "{host:?}: {m}");
            assert!(
                m.starts_with("invalid mount config for type \"bind\": "),
                "{m}"
            );
            assert!(!m.contains('\n'), "one line: {m}");
            if !allow && !says.contains("store") {
                assert!(m.contains("--allow-dangerous-binds"), "{m}");
            }
        };
        let dotdot = tmp.path().join("data/../../../../../../../../proc");
        for (host, says) in [
            (Path::new("/proc"), "/proc is the process information"),
            (Path::new("/proc/self"), "is inside /proc"),
            (Path::new("/sys/kernel"), "is inside /sys"),
            (Path::new("/dev"), "/dev is the host's devices"),
            (Path::new("/"), "/ holds /proc"),
            (
                &tmp.path().join("to-proc"),
                "(which is /proc) is the process",
            ),
            (&dotdot, "(which is /proc)"),
            (tmp.path(), "holds wrun's store"),
        ] {
            refused(host, false, says);
            assert!(check(host, true).is_ok(), "{host:?} is permitted");
        }
        for host in [
            store.clone(),
            store.join("blobs"),
            tmp.path().join("to-store"),
        ] {
            refused(&host, false, "the store is never bound");
            refused(&host, true, "the store is never bound");
        }
        // A named volume's data is what a volume mount gives anyway; the
        // volumes folder around it is the store's.
        let volume = store.join("volumes/v1/_data/sub");
        std::fs::create_dir_all(&volume).unwrap();
        assert!(check(&volume, false).is_ok());
        assert!(check(volume.parent().unwrap(), false).is_ok());
        refused(&store.join("volumes/v1"), true, "the store is never bound");
        refused(&store.join("volumes"), true, "the store is never bound");
        // An ordinary directory is granted as it is, a symlink to it resolved.
        std::os::unix::fs::symlink(&data, tmp.path().join("to-data")).unwrap();
        let real = data.canonicalize().unwrap();
        assert_eq!(check(&data, false).unwrap(), real);
        assert_eq!(check(&tmp.path().join("to-data"), false).unwrap(), real);
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
        assert_eq!(s.cmd, Some(vec!["Bob".to_string()]));
        assert_eq!(s.unset, ["UNSET"]);
        assert_eq!(s.limits.memory, Some(64 << 20));
        assert_eq!(s.limits.timeout, Some(Duration::from_secs(2)));
        assert!(s.tmp && s.network.is_none());
        for (json, says) in [
            (r#"{"Memory":-1}"#, "Memory must not be negative"),
            (r#"{"WasmTimeout":-1}"#, "WasmTimeout must not be negative"),
            (r#"{"Tmpfs":{"/var":""}}"#, "/var"),
            (r#"{"NetworkMode":"container:abc"}"#, "not supported"),
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

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_follows_dockers_entrypoint_and_cmd_rule() {
        let (ep, cmd) = (strings(&["/app.wasm"]), strings(&["world"]));
        let argv = |e: Option<&[&str]>, c: Option<&[&str]>| {
            let e = e.map(strings);
            let c = c.map(strings);
            let (e, c) = merged_argv(e.as_deref(), c.as_deref(), Some(&ep), Some(&cmd));
            e.into_iter().chain(c).collect::<Vec<_>>()
        };
        assert_eq!(argv(None, None), ["/app.wasm", "world"]);
        assert_eq!(argv(None, Some(&["x"])), ["/app.wasm", "x"]);
        // An entrypoint given drops the image's Cmd.
        assert_eq!(argv(Some(&["/other.wasm"]), None), ["/other.wasm"]);
        assert_eq!(argv(Some(&["/o.wasm"]), Some(&["y"])), ["/o.wasm", "y"]);
        // `[]` keeps the image's Cmd and no entrypoint; `[""]` runs the Cmd given.
        assert_eq!(argv(Some(&[]), None), ["world"]);
        assert_eq!(argv(Some(&[""]), Some(&["/x.wasm", "a"])), ["/x.wasm", "a"]);
        assert!(argv(Some(&[""]), None).is_empty());
    }

    #[test]
    fn config_merges_as_dockers_and_merging_again_changes_nothing() {
        let image = ContainerConfig {
            env: Some(strings(&["GREETING=Hello", "A=img"])),
            cmd: Some(strings(&["world"])),
            entrypoint: Some(strings(&["/hello.wasm"])),
            working_dir: "/w".into(),
            labels: Some([("a".into(), "img".into()), ("b".into(), "img".into())].into()),
            exposed_ports: Some([("80/tcp".into(), EmptyObject {})].into()),
            volumes: Some([("/data".into(), EmptyObject {})].into()),
            ..ContainerConfig::default()
        };
        let user = ContainerConfig {
            env: Some(strings(&["A=user", "U=1"])),
            labels: Some([("a".into(), "user".into())].into()),
            exposed_ports: Some([("81/tcp".into(), EmptyObject {})].into()),
            ..ContainerConfig::default()
        };
        let merged = merge_config(user, &image);
        assert_eq!(
            merged.env.as_deref().unwrap(),
            ["A=user", "U=1", "GREETING=Hello"]
        );
        assert_eq!(merged.cmd.as_deref().unwrap(), ["world"]);
        assert_eq!(merged.entrypoint.as_deref().unwrap(), ["/hello.wasm"]);
        assert_eq!(merged.working_dir, "/w");
        let labels = merged.labels.clone().unwrap();
        assert_eq!(
            (labels["a"].as_str(), labels["b"].as_str()),
            ("user", "img")
        );
        let ports: Vec<_> = merged.exposed_ports.clone().unwrap().into_keys().collect();
        assert_eq!(ports, ["80/tcp", "81/tcp"]);
        assert!(merged.volumes.as_ref().unwrap().contains_key("/data"));
        let again = merge_config(merged.clone(), &image);
        assert_eq!(again.env, merged.env);
        assert_eq!(
            (again.cmd, again.entrypoint),
            (merged.cmd, merged.entrypoint)
        );

        let entrypoint_given = ContainerConfig {
            entrypoint: Some(strings(&["/other.wasm"])),
            ..ContainerConfig::default()
        };
        let merged = merge_config(entrypoint_given, &image);
        assert_eq!(merged.cmd, None, "the image's Cmd goes with its entrypoint");
        assert_eq!(merged.env, image.env);
        let reset = ContainerConfig {
            entrypoint: Some(strings(&[""])),
            cmd: Some(strings(&["/x.wasm"])),
            ..ContainerConfig::default()
        };
        let merged = merge_config(reset, &image);
        assert_eq!(
            merge_config(merged.clone(), &image).entrypoint,
            merged.entrypoint
        );
        assert_eq!(merged.entrypoint.as_deref().unwrap(), [""]);
        assert!(
            merge_config(ContainerConfig::default(), &ContainerConfig::default())
                .volumes
                .is_none()
        );
    }

    #[test]
    fn bind_and_tmpfs_mounts_apply_other_types_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let host = |mounts: &str| host_config(&format!(r#"{{"Mounts":{mounts}}}"#));
        let s = settings(
            &ContainerConfig::default(),
            &host(&format!(
                r#"[{{"Type":"bind","Source":"{d}","Target":"/x","ReadOnly":true}},{{"Type":"tmpfs","Target":"/tmp"}}]"#
            )),
        )
        .unwrap();
        assert_eq!(
            s.volumes,
            [(dir.path().to_path_buf(), "/x".to_string(), true)]
        );
        assert!(s.tmp);
        for (mounts, says) in [
            (
                r#"[{"Type":"volume","Target":"/x"}]"#.to_string(),
                "wrun needs the volume's name here",
            ),
            (
                r#"[{"Type":"volume","Source":"v1","Target":"/x","VolumeOptions":{"Labels":{"a":"b"}}}]"#.to_string(),
                "create the volume first",
            ),
            (
                r#"[{"Type":"npipe","Source":"/a","Target":"/x"}]"#.into(),
                "mount type unknown",
            ),
            (
                r#"[{"Type":"bind","Source":"/nonexistent/h3","Target":"/x"}]"#.into(),
                "bind source path does not exist: /nonexistent/h3",
            ),
            (
                format!(r#"[{{"Type":"bind","Source":"{d}","Target":"rel"}}]"#),
                "'rel' mount path must be absolute",
            ),
            (
                r#"[{"Type":"tmpfs","Target":"/var"}]"#.into(),
                "only at /tmp",
            ),
            (
                format!(
                    r#"[{{"Type":"bind","Source":"{d}","Target":"/x"}},{{"Type":"bind","Source":"{d}","Target":"/x/"}}]"#
                ),
                "Duplicate mount point: /x",
            ),
        ] {
            let err = settings(&ContainerConfig::default(), &host(&mounts)).unwrap_err();
            assert!(matches!(err, DaemonError::InvalidArgument(_)), "{mounts}");
            assert!(err.message().contains(says), "{mounts}: {err}");
        }
    }

    #[test]
    fn endpoint_settings_an_instance_cannot_have_are_refused() {
        let check = |json: &str| check_networking(&serde_json::from_str(json).unwrap());
        // What the docker client sends with no network flag.
        check(
            r#"{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,
                "MacAddress":"","DriverOpts":null,"NetworkID":"","IPAddress":""}}}"#,
        )
        .unwrap();
        // Aliases are for a user-defined network (checked at create).
        check(r#"{"EndpointsConfig":{"web":{"Aliases":["db"]}}}"#).unwrap();
        for (json, says) in [
            (
                r#"{"EndpointsConfig":{"default":{"IPAMConfig":{"IPv4Address":"10.1.2.3"}}}}"#,
                "IP address",
            ),
            (
                r#"{"EndpointsConfig":{"default":{"Links":["a:b"]}}}"#,
                "links",
            ),
            (
                r#"{"EndpointsConfig":{"default":{"MacAddress":"02:42:ac:11:00:02"}}}"#,
                "MacAddress",
            ),
            (
                r#"{"EndpointsConfig":{"default":{"DriverOpts":{"a":"b"}}}}"#,
                "driver options",
            ),
        ] {
            let err = check(json).unwrap_err();
            assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST, "{json}");
            assert!(err.message().contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn what_dockerd_refuses_is_refused_first_in_its_words() {
        let refusal = |json: &str| {
            let mut req: wrun_api::containers::ContainerCreateRequest =
                serde_json::from_str(json).unwrap();
            adapt(&mut req.config, &mut req.host_config)
                .err()
                .map(|e| (e.status().as_u16(), e.message().to_string()))
        };
        let bad = |says: &str| Some((400, says.to_string()));
        for (json, expected) in [
            (
                r#"{"HostConfig":{"Memory":1}}"#,
                bad("Minimum memory limit allowed is 6MB"),
            ),
            (
                r#"{"HostConfig":{"Memory":-1}}"#,
                bad("Minimum memory limit allowed is 6MB"),
            ),
            (
                r#"{"HostConfig":{"Memory":6291455}}"#,
                bad("Minimum memory limit allowed is 6MB"),
            ),
            (r#"{"HostConfig":{"Memory":6291456}}"#, None),
            (
                r#"{"Healthcheck":{"Test":["CMD","true"],"Interval":-1}}"#,
                bad("Interval in Healthcheck cannot be less than 1ms"),
            ),
            (
                r#"{"Healthcheck":{"Interval":5}}"#,
                bad("Interval in Healthcheck cannot be less than 1ms"),
            ),
            (
                r#"{"Healthcheck":{"Timeout":-1,"Retries":-1}}"#,
                bad("Timeout in Healthcheck cannot be less than 1ms"),
            ),
            (
                r#"{"Healthcheck":{"Retries":-1,"StartPeriod":-1}}"#,
                bad("Retries in Healthcheck cannot be negative"),
            ),
            (
                r#"{"Healthcheck":{"StartPeriod":-1}}"#,
                bad("StartPeriod in Healthcheck cannot be less than 1ms"),
            ),
            (
                r#"{"Healthcheck":{"Test":["NONE"],"Interval":1000000}}"#,
                None,
            ),
            (r#"{"StopSignal":"BOGUS"}"#, bad("Invalid signal: BOGUS")),
            (r#"{"StopSignal":"0"}"#, bad("Invalid signal: 0")),
            (
                r#"{"StopSignal":"RTMIN+16"}"#,
                bad("Invalid signal: RTMIN+16"),
            ),
            (
                r#"{"StopSignal":"RTMAX-15"}"#,
                bad("Invalid signal: RTMAX-15"),
            ),
            // dockerd's order: the signal, the healthcheck, the memory.
            (
                r#"{"StopSignal":"X","Healthcheck":{"Interval":-1},"HostConfig":{"Memory":1}}"#,
                bad("Invalid signal: X"),
            ),
            (
                r#"{"Healthcheck":{"Interval":-1},"HostConfig":{"Memory":1}}"#,
                bad("Interval in Healthcheck cannot be less than 1ms"),
            ),
        ] {
            assert_eq!(refusal(json), expected, "{json}");
        }
        for signal in [
            "SIGINT", "int", "sigwinch", "rtmin+3", "RTMAX-14", "RTMAX", "99", "-5",
        ] {
            let json = format!(r#"{{"StopSignal":"{signal}"}}"#);
            assert_eq!(refusal(&json), None, "{json}");
        }
    }

    #[test]
    fn fields_wrun_cannot_honour_are_refused_or_discarded_with_a_warning() {
        let adapted = |json: &str| {
            let mut req: wrun_api::containers::ContainerCreateRequest =
                serde_json::from_str(json).unwrap();
            adapt(&mut req.config, &mut req.host_config).map(|w| (w, req))
        };
        for (json, says) in [
            (
                r#"{"User":"4242:4242"}"#,
                "user \"4242:4242\" cannot be applied",
            ),
            (
                r#"{"HostConfig":{"VolumeDriver":"nfs"}}"#,
                "VolumeDriver \"nfs\" is not supported",
            ),
            (
                r#"{"Healthcheck":{"Test":["CMD","true"]}}"#,
                "health checks are not supported",
            ),
            (r#"{"HostConfig":{"Privileged":true}}"#, "privileged mode"),
            (
                r#"{"HostConfig":{"NanoCpus":1000000000}}"#,
                "NanoCPUs can not be set",
            ),
            (
                r#"{"HostConfig":{"CapAdd":["NET_ADMIN"]}}"#,
                "capabilities cannot be added",
            ),
            (
                r#"{"HostConfig":{"Devices":[{"PathOnHost":"/dev/null"}]}}"#,
                "devices",
            ),
            (r#"{"HostConfig":{"Sysctls":{"a":"1"}}}"#, "sysctls"),
            (r#"{"HostConfig":{"PidMode":"host"}}"#, "PID mode \"host\""),
            (r#"{"HostConfig":{"Dns":["1.1.1.1"]}}"#, "name resolution"),
            (
                r#"{"HostConfig":{"Runtime":"runc"}}"#,
                "Unknown runtime specified runc",
            ),
            (
                r#"{"HostConfig":{"MemorySwap":1000}}"#,
                "set the Memory limit",
            ),
            (
                r#"{"HostConfig":{"MemorySwappiness":101}}"#,
                "valid memory swappiness range is 0-100",
            ),
            (
                r#"{"NetworkDisabled":true,"HostConfig":{"NetworkMode":"host"}}"#,
                "NetworkDisabled conflicts",
            ),
        ] {
            let err = adapted(json).unwrap_err();
            assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST, "{json}");
            assert!(err.message().contains(says), "{json}: {err}");
        }
        let (warnings, req) = adapted(
            r#"{"StopSignal":"SIGINT","HostConfig":{"Init":true,"CpuShares":512,"ShmSize":1024,
                "Ulimits":[{"Name":"nofile","Soft":1,"Hard":1}],"MemorySwappiness":10,
                "SecurityOpt":["no-new-privileges","seccomp=unconfined"],"Tmpfs":{"/tmp":"size=1m"}}}"#,
        )
        .unwrap();
        assert_eq!(warnings.len(), 8, "{warnings:#?}");
        let h = &req.host_config;
        assert_eq!(
            (h.init, h.cpu_shares, h.shm_size),
            (None, 0, 0),
            "discarded"
        );
        assert_eq!(h.security_opt.as_deref().unwrap(), ["no-new-privileges"]);
        assert_eq!(h.tmpfs.as_ref().unwrap()["/tmp"], "");
        assert!(req.config.stop_signal.is_empty());
        // docker-py names each bind's guest path in Volumes too.
        let (warnings, _) = adapted(
            r#"{"Volumes":{"/out":{},"/tmp":{}},"HostConfig":{"Binds":["/srv:/out:ro"],"Tmpfs":{"/tmp":""}}}"#,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        // What the docker client sends when no flag is given asks for nothing.
        let (warnings, req) = adapted(
            r#"{"Volumes":{},"Labels":{},"HostConfig":{"ConsoleSize":[0,0],"MemorySwappiness":-1,
                "PidsLimit":0,"Devices":[],"Dns":[],"OomKillDisable":false,"CapDrop":["ALL"],
                "BlkioWeightDevice":[],"NetworkMode":"default","Init":null,"Runtime":null}}"#,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let h = &req.host_config;
        assert_eq!(
            (h.memory_swappiness, h.pids_limit),
            (None, None),
            "stored as dockerd"
        );
        assert_eq!(
            (h.ipc_mode.as_str(), h.cgroupns_mode.as_str()),
            ("private", "private")
        );
    }
}
