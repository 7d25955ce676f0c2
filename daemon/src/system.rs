//! `/_ping`, `/version`, `/info`, and wrun's own `/wrun/shutdown`.

use std::sync::Arc;

use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::http::{Body, Query, empty, full, json};
use super::state::Daemon;
use crate::error::DaemonError;
use crate::lifecycle::Status;
use wrun_api::system::{
    API_VERSION, BuildCachePruneResponse, Component, MIN_API_VERSION, Platform, PluginsInfo,
    RuntimeInfo, SwarmInfo, SystemInfo, SystemVersion,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Headers every response carries, as Docker's daemon sends them.
pub fn add_headers(r: &mut Response<Body>) {
    let h = r.headers_mut();
    h.insert(
        HeaderName::from_static("api-version"),
        HeaderValue::from_static(API_VERSION),
    );
    h.insert(
        HeaderName::from_static("docker-experimental"),
        HeaderValue::from_static("false"),
    );
    h.insert(
        HeaderName::from_static("ostype"),
        HeaderValue::from_static("linux"),
    );
    h.insert(
        hyper::header::SERVER,
        HeaderValue::from_static(concat!("wrun/", env!("CARGO_PKG_VERSION"))),
    );
}

/// A `text/plain` answer, as Go's `http.Error` writes it.
pub fn plain_text(status: StatusCode, message: String) -> Response<Body> {
    let mut r = Response::new(full(format!("{message}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET|HEAD /_ping`
pub fn ping(method: &Method) -> Response<Body> {
    let mut r = if method == Method::HEAD {
        empty(StatusCode::OK)
    } else {
        Response::new(full("OK"))
    };
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    r.headers_mut()
        .insert(hyper::header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// What `GoVersion` says of a daemon written in Rust.
const GO_VERSION: &str = "n/a (Rust)";

/// `GET /version`
pub fn version() -> Response<Body> {
    let v = SystemVersion {
        platform: Platform {
            name: "wrun".into(),
        },
        components: vec![
            Component {
                name: "Engine".into(),
                version: VERSION.into(),
                details: [
                    ("ApiVersion", API_VERSION.to_string()),
                    ("MinAPIVersion", MIN_API_VERSION.to_string()),
                    ("Os", "linux".to_string()),
                    ("Arch", std::env::consts::ARCH.to_string()),
                    ("KernelVersion", crate::host::kernel()),
                    ("Experimental", "false".to_string()),
                    // As the top-level fields: wrun records no commit or
                    // build time (reproducible builds) and has no Go.
                    ("GitCommit", String::new()),
                    ("GoVersion", GO_VERSION.to_string()),
                    ("BuildTime", String::new()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            },
            Component {
                // The wasm runtime every instance runs in, as dockerd lists
                // containerd and runc.
                name: RUNTIME.into(),
                version: wrun_runtime::WASMTIME_VERSION.into(),
                details: Default::default(),
            },
        ],
        version: VERSION.into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        git_commit: String::new(),
        go_version: GO_VERSION.into(),
        os: "linux".into(),
        arch: std::env::consts::ARCH.into(),
        kernel_version: crate::host::kernel(),
        build_time: String::new(),
    };
    json(StatusCode::OK, &v)
}

/// `GET /info`: the host's CPUs, memory, kernel and OS as dockerd reports
/// them; for the engine, what wrun has (the wasm runtime, its log driver,
/// no cgroups, swarm or registry).
pub fn info(daemon: &Arc<Daemon>) -> Response<Body> {
    let records: Vec<_> = daemon.all().iter().map(|c| c.record()).collect();
    let running = records
        .iter()
        .filter(|r| r.state.status == Status::Running)
        .count() as i64;
    let paused = records
        .iter()
        .filter(|r| r.state.status == Status::Paused)
        .count() as i64;
    let images = daemon.store.images().map(|i| i.len() as i64).unwrap_or(0);
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let os_field = |key: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let info = SystemInfo {
        id: engine_id(&name, daemon.store.root()),
        containers: records.len() as i64,
        containers_running: running,
        containers_paused: paused,
        containers_stopped: records.len() as i64 - running - paused,
        images,
        driver: "wasm".into(),
        plugins: PluginsInfo {
            // No volume drivers; `null` is `none` (the default) and `host`.
            volume: Vec::new(),
            network: strings(&["host", "null"]),
            authorization: None,
            log: strings(&[wrun_api::containers::DEFAULT_LOG_DRIVER, "local"]),
        },
        // `Memory` bounds an instance's linear memories and tables.
        memory_limit: true,
        nfd: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64),
        n_goroutines: proc_status("Threads:").unwrap_or(0),
        system_time: wrun_api::time::now(),
        logging_driver: wrun_api::containers::DEFAULT_LOG_DRIVER.into(),
        // Instances are not put in cgroups; the version is the host's.
        cgroup_driver: "none".into(),
        cgroup_version: if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "2"
        } else {
            "1"
        }
        .into(),
        n_events_listener: daemon.events.listeners() as i64,
        kernel_version: crate::host::kernel(),
        operating_system: os_field("PRETTY_NAME"),
        os_version: os_field("VERSION_ID"),
        os_type: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get() as i64),
        mem_total: i64::try_from(crate::host::memory()).unwrap_or(i64::MAX),
        docker_root_dir: daemon.store.root().display().to_string(),
        name,
        server_version: VERSION.into(),
        runtimes: [(
            RUNTIME.to_string(),
            RuntimeInfo {
                path: std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            },
        )]
        .into_iter()
        .collect(),
        default_runtime: RUNTIME.into(),
        swarm: SwarmInfo {
            local_node_state: "inactive".into(),
            ..SwarmInfo::default()
        },
        ..SystemInfo::default()
    };
    let mut info = info;
    let capacity = capacity_info(daemon);
    info.labels = capacity.labels();
    let mut body = match serde_json::to_value(&info) {
        Ok(v) => v,
        Err(e) => {
            return crate::http::error_response(DaemonError::Internal(format!(
                "encoding /info: {e}"
            )));
        }
    };
    if let (Some(map), Ok(extra)) = (body.as_object_mut(), serde_json::to_value(&capacity)) {
        map.insert("WrunCapacity".into(), extra);
    }
    json(StatusCode::OK, &body)
}

/// `/info`'s `WrunCapacity` (wrun's own key; `wrun info` shows it) and the
/// same figures as engine `Labels` (which `docker info` shows).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct CapacityInfo {
    /// Instances that can be alive at once.
    instances: u32,
    /// Instances holding a slot now (running ones, and served requests).
    in_use: u32,
    /// What set `instances`.
    bound: String,
    /// What raises it.
    raise: String,
    /// Largest memory (linear memories and tables) of one instance.
    max_memory_per_instance: u64,
    /// Address space a live instance maps for its fiber stack; its memory
    /// is mapped as it grows, nothing is reserved ahead.
    stack_per_instance: u64,
    /// Kernel memory mappings a live instance costs.
    mappings_per_instance: u64,
    /// The kernel's `vm.max_map_count`, when readable.
    max_map_count: Option<u64>,
}

impl CapacityInfo {
    fn labels(&self) -> Vec<String> {
        let mut labels = vec![
            format!("wrun.capacity.instances={}", self.instances),
            format!("wrun.capacity.in-use={}", self.in_use),
            format!("wrun.capacity.bound={}", self.bound),
            format!("wrun.capacity.raise={}", self.raise),
            format!("wrun.instance.max-memory={}", self.max_memory_per_instance),
            format!("wrun.instance.stack={}", self.stack_per_instance),
            format!("wrun.instance.mappings={}", self.mappings_per_instance),
        ];
        if let Some(m) = self.max_map_count {
            labels.push(format!("wrun.host.max-map-count={m}"));
        }
        labels
    }
}

fn capacity_info(daemon: &Daemon) -> CapacityInfo {
    let (in_use, instances) = daemon.runtime.slots_in_use();
    let config = daemon.runtime.config();
    let (bound, raise, max_map_count) = match crate::capacity::get() {
        Some(c) => (c.bound_text(), c.remedy(), c.max_map_count),
        None => (String::new(), String::new(), None),
    };
    CapacityInfo {
        instances,
        in_use,
        bound,
        raise,
        max_memory_per_instance: config.max_memory_per_instance,
        stack_per_instance: wrun_runtime::stack_bytes(config),
        mappings_per_instance: crate::capacity::MAPPINGS_PER_INSTANCE,
        max_map_count,
    }
}

/// The engine's `ID`: stable for a store on a host (a digest of both, in
/// the UUID form newer dockerd uses), so clients can tell engines apart.
fn engine_id(host: &str, root: &std::path::Path) -> String {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    digest.update(host.as_bytes());
    digest.update([0]);
    digest.update(root.as_os_str().as_encoded_bytes());
    let h = hex::encode(&digest.finalize()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The runtime every instance runs in (`DefaultRuntime`, the only
/// `HostConfig.Runtime` accepted besides none).
pub const RUNTIME: &str = "wasmtime";

/// A number field of `/proc/self/status` (`Threads:`).
fn proc_status(field: &str) -> Option<i64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .parse()
        .ok()
}

/// `POST /build/prune`: `wrun build` keeps no build cache (each build works
/// in a scratch store it deletes), so there is nothing to remove.
pub fn prune_build_cache(query: &Query) -> Result<Response<Body>, DaemonError> {
    crate::prune_filters::PruneFilters::parse(query).map_err(|e| match e {
        DaemonError::InvalidArgument(m) => {
            DaemonError::invalid(format!("failed to prune build cache: {m}"))
        }
        e => e,
    })?;
    Ok(json(StatusCode::OK, &BuildCachePruneResponse::default()))
}

/// `POST /wrun/shutdown` (wrun's own): answers, then the daemon stops.
pub fn shutdown(daemon: &Arc<Daemon>) -> Response<Body> {
    daemon.shutdown.notify_one();
    empty(StatusCode::NO_CONTENT)
}
