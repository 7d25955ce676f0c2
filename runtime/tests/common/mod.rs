//! Helpers shared by the runtime's integration tests: a small runtime, guest
//! loading, an output sink that records what it was given, and instances
//! started in the background.

#![allow(dead_code, reason = "each test file uses a different subset")]

pub mod http_client;
pub mod net_probe;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wrun_runtime::{
    InstanceSpec, ModuleDigest, OutputSink, OutputTarget, PrepareOptions, PreparedModule,
    RunOutcome, Runtime, RuntimeConfig, RuntimeError,
};

/// A runtime with a small pool, so tests running in parallel do not reserve
/// terabytes of address space, and a scratch dir private to the test.
pub fn runtime(max_instances: u32) -> (Runtime, tempfile::TempDir) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let config = RuntimeConfig {
        max_instances,
        max_memory_per_instance: 64 << 20,
        scratch_dir: Some(scratch.path().join("scratch")),
        ..RuntimeConfig::default()
    };
    (Runtime::new(config).expect("runtime"), scratch)
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

pub fn guest_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/guests")
        .join(format!("{name}.wasm"))
}

pub fn prepare_bytes(rt: &Runtime, wasm: &[u8]) -> PreparedModule {
    rt.prepare(&ModuleDigest::of(wasm), wasm, PrepareOptions::default())
        .expect("prepare")
}

pub fn prepare_file(rt: &Runtime, path: &std::path::Path) -> PreparedModule {
    let wasm = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    prepare_bytes(rt, &wasm)
}

pub fn prepare_wat(rt: &Runtime, wat: &str) -> PreparedModule {
    prepare_bytes(rt, &wat::parse_str(wat).expect("valid wat"))
}

/// Records every chunk handed to it.
#[derive(Default)]
pub struct CaptureSink {
    pub bytes: Mutex<Vec<u8>>,
    pub chunks: Mutex<Vec<usize>>,
}

impl OutputSink for CaptureSink {
    fn write(&self, chunk: &[u8]) -> std::io::Result<()> {
        self.chunks.lock().expect("lock").push(chunk.len());
        self.bytes.lock().expect("lock").extend_from_slice(chunk);
        Ok(())
    }
}

impl CaptureSink {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().expect("lock")).into_owned()
    }
}

pub fn capture() -> (Arc<CaptureSink>, OutputTarget) {
    let sink = Arc::new(CaptureSink::default());
    let target = OutputTarget::Sink(sink.clone());
    (sink, target)
}

/// Runs `module` as `spec` on a task of its own, its stdout captured;
/// returns the task and the output once the output shows `ready` (within
/// 30 s).
pub async fn start_instance(
    rt: &Runtime,
    module: &PreparedModule,
    spec: InstanceSpec,
    ready: &str,
) -> (
    tokio::task::JoinHandle<Result<RunOutcome, RuntimeError>>,
    Arc<CaptureSink>,
) {
    let (sink, target) = capture();
    let spec = spec.stdout(target);
    let (rt, module) = (rt.clone(), module.clone());
    let task = tokio::spawn(async move { rt.run(&module, spec).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sink.text().contains(ready) {
        assert!(
            Instant::now() < deadline,
            "no {ready:?} within 30 s in {:?}",
            sink.text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (task, sink)
}

/// Every step of fs-attack's `ro-write` attack: each one writes to the file
/// it is given or its directory.
pub const RO_WRITE_STEPS: [&str; 10] = [
    "write",
    "append",
    "truncate",
    "set-len",
    "create",
    "rename",
    "hard-link",
    "remove",
    "mkdir",
    "symlink",
];

/// The `ro-write` steps that succeed on a read-write grant (the others fail
/// there too: set-len on a file opened for reading, a hard link after the
/// rename).
pub const RW_OK_STEPS: [&str; 7] = [
    "write", "append", "truncate", "create", "rename", "mkdir", "symlink",
];
