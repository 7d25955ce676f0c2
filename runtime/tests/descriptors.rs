#![allow(clippy::unwrap_used)]
//! No open file descriptor per idle instance: instances without a private
//! `/tmp` share their rootfs and volume handles. Alone in its binary, so no
//! other test opens descriptors while this one counts.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CaptureSink, prepare_file, repo_path, runtime};
use wrun_runtime::{InstanceSpec, OutputTarget, PreparedModule, Runtime};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Starts `n` idle instances of `spec` and waits until each printed `ready`.
/// Returns their tasks (abort them to end the instances).
async fn start_idle(
    rt: &Runtime,
    module: &PreparedModule,
    spec: &InstanceSpec,
    n: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut sinks = Vec::new();
    for _ in 0..n {
        let sink = Arc::new(CaptureSink::default());
        let spec = spec.clone().stdout(OutputTarget::Sink(sink.clone()));
        let (rt, module) = (rt.clone(), module.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = rt.run(&module, spec).await;
            panic!("an idle instance ended: {outcome:?}");
        }));
        sinks.push(sink);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sinks.iter().all(|s| s.text().contains("ready")) {
        assert!(Instant::now() < deadline, "instances did not print ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tasks
}

async fn end(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        assert!(t.await.unwrap_err().is_cancelled());
    }
}

fn spec(rootfs: &Path, volume: &Path) -> InstanceSpec {
    InstanceSpec::new(["idle"])
        .rootfs(rootfs)
        .volume(volume, "/data", true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_instances_without_tmp_hold_no_descriptor_of_their_own() {
    let (rt, _scratch) = runtime(260);
    let module = prepare_file(&rt, &repo_path("examples/idle/idle.wasm"));
    let host = tempfile::tempdir().unwrap();
    let (rootfs, volume) = (host.path().join("rootfs"), host.path().join("vol"));
    std::fs::create_dir(&rootfs).unwrap();
    std::fs::create_dir(&volume).unwrap();
    // Warm up the executor and the scratch root, so they are not counted.
    end(start_idle(&rt, &module, &spec(&rootfs, &volume).tmp(true), 1).await).await;

    let before = open_fds();
    let shared = start_idle(&rt, &module, &spec(&rootfs, &volume), 200).await;
    let with_200 = open_fds();
    // The shared view: one handle for the rootfs, one for the volume.
    assert!(
        with_200 <= before + 4,
        "200 idle instances without /tmp grew the descriptors from {before} to {with_200}"
    );
    end(shared).await;
    assert!(
        open_fds() <= before,
        "the shared view outlived its instances"
    );

    // The counter works: instances with a private /tmp open their own
    // directories (rootfs, /tmp, volume).
    let private = start_idle(&rt, &module, &spec(&rootfs, &volume).tmp(true), 20).await;
    let with_tmp = open_fds();
    assert!(
        with_tmp >= before + 3 * 20,
        "20 instances with /tmp: {before} -> {with_tmp} descriptors"
    );
    end(private).await;
}
