//! Instantiate + run `_start` of examples/hello from a prepared module, with
//! output discarded: the in-process cost of one short-lived instance.
//!
//! Run: cargo bench -p wrun-runtime --bench instantiate -- --quick

mod common;

use common::prepared_example;
use criterion::{Criterion, criterion_group, criterion_main};
use wrun_runtime::{
    InstanceSpec, ModuleDigest, OutputTarget, PrepareOptions, RunOutcome, Runtime, RuntimeConfig,
};

fn instantiate_and_run(c: &mut Criterion) {
    let (runtime, module) = prepared_example(
        "hello",
        RuntimeConfig {
            max_instances: 16,
            ..RuntimeConfig::default()
        },
    );
    let spec = InstanceSpec::new(["hello", "bench"])
        .env("GREETING", "Hi")
        .stdout(OutputTarget::Null);
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    c.bench_function("hello: instantiate + _start (prepared, null stdout)", |b| {
        b.iter(|| {
            let outcome = executor
                .block_on(runtime.run(&module, spec.clone()))
                .expect("run");
            assert_eq!(outcome, RunOutcome::Exited(0));
        });
    });
    c.bench_function("hello: run_blocking (own current-thread executor)", |b| {
        b.iter(|| {
            let outcome = runtime.run_blocking(&module, spec.clone()).expect("run");
            assert_eq!(outcome, RunOutcome::Exited(0));
        });
    });
}

/// What a foreground `wrun run` pays in process: a new runtime on a warm
/// cache directory, mapping the cached artifact, one run.
fn cold_runtime_warm_cache(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/hello.wasm");
    let wasm = std::fs::read(path).expect("examples/hello/hello.wasm is built");
    let digest = ModuleDigest::of(&wasm);
    let cache = std::env::temp_dir().join(format!("wrun-bench-cache-{}", std::process::id()));
    let config = RuntimeConfig {
        cache_dir: Some(cache.clone()),
        ..RuntimeConfig::foreground()
    };
    let warm = Runtime::new(config.clone()).expect("runtime");
    warm.prepare(&digest, &wasm, PrepareOptions::default())
        .expect("prepare");
    drop(warm);
    let spec = InstanceSpec::new(["hello"]).stdout(OutputTarget::Null);

    c.bench_function(
        "hello: foreground Runtime::new + prepare (disk cache hit) + run_blocking",
        |b| {
            b.iter(|| {
                let runtime = Runtime::new(config.clone()).expect("runtime");
                let module = runtime
                    .prepare(&digest, &wasm, PrepareOptions::default())
                    .expect("prepare");
                assert_eq!(module.origin(), wrun_runtime::ModuleOrigin::DiskCache);
                let outcome = runtime.run_blocking(&module, spec.clone()).expect("run");
                assert_eq!(outcome, RunOutcome::Exited(0));
            });
        },
    );
    let _ = std::fs::remove_dir_all(cache);
}

criterion_group!(benches, instantiate_and_run, cold_runtime_warm_cache);
criterion_main!(benches);
