//! `/_ping`, `/version`, `/info`, and wrun's own `/wrun/shutdown`.

use std::sync::Arc;

use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::http::{Body, empty, full, json};
use super::state::Daemon;
use crate::lifecycle::Status;
use wrun_api::system::{
    API_VERSION, Component, MIN_API_VERSION, Platform, SystemInfo, SystemVersion,
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
    r
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `GET /version`
pub fn version() -> Response<Body> {
    let v = SystemVersion {
        platform: Platform {
            name: "wrun".into(),
        },
        components: vec![Component {
            name: "Engine".into(),
            version: VERSION.into(),
            details: [
                ("ApiVersion", API_VERSION.to_string()),
                ("MinAPIVersion", MIN_API_VERSION.to_string()),
                ("Os", "linux".to_string()),
                ("Arch", std::env::consts::ARCH.to_string()),
                ("KernelVersion", kernel()),
                ("Experimental", "false".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }],
        version: VERSION.into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        git_commit: String::new(),
        go_version: "n/a (Rust)".into(),
        os: "linux".into(),
        arch: std::env::consts::ARCH.into(),
        kernel_version: kernel(),
        build_time: String::new(),
    };
    json(StatusCode::OK, &v)
}

/// `GET /info`
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
    let info = SystemInfo {
        id: String::new(),
        containers: records.len() as i64,
        containers_running: running,
        containers_paused: paused,
        containers_stopped: records.len() as i64 - running - paused,
        images,
        driver: "wasm".into(),
        docker_root_dir: daemon.store.root().display().to_string(),
        operating_system: "wrun (WASI instances)".into(),
        os_type: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get() as i64),
        mem_total: 0,
        name: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        server_version: VERSION.into(),
        kernel_version: kernel(),
        default_runtime: "wasmtime".into(),
        warnings: Vec::new(),
    };
    json(StatusCode::OK, &info)
}

/// `POST /wrun/shutdown` (wrun's own): answers, then the daemon stops.
pub fn shutdown(daemon: &Arc<Daemon>) -> Response<Body> {
    daemon.shutdown.notify_one();
    empty(StatusCode::NO_CONTENT)
}
