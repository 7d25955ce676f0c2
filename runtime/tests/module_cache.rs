//! The on-disk module cache: a second runtime maps instead of compiling, and
//! corrupt, truncated or foreign entries are detected, deleted and rebuilt.

mod common;

use std::path::{Path, PathBuf};

use common::repo_path;
use wrun_runtime::{
    InstanceSpec, ModuleDigest, ModuleOrigin, PrepareOptions, RunOutcome, Runtime, RuntimeConfig,
};

fn cached_runtime(cache: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: 4,
        max_memory_per_instance: 64 << 20,
        cache_dir: Some(cache.to_owned()),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

fn hello() -> (ModuleDigest, Vec<u8>) {
    let wasm = std::fs::read(repo_path("examples/hello/hello.wasm")).expect("read");
    (ModuleDigest::of(&wasm), wasm)
}

fn entries(cache: &Path, suffix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// Prepares hello in a fresh runtime on `cache` and runs it once.
fn prepare_and_run(cache: &Path) -> (Runtime, ModuleOrigin) {
    let rt = cached_runtime(cache);
    let (digest, wasm) = hello();
    let module = rt
        .prepare(&digest, &wasm, PrepareOptions::default())
        .expect("prepare");
    let outcome = rt
        .run_blocking(&module, InstanceSpec::new(["hello"]))
        .expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    (rt, module.origin())
}

#[test]
fn second_runtime_on_the_same_cache_maps_instead_of_compiling() {
    let cache = tempfile::tempdir().expect("tempdir");
    let (first, origin) = prepare_and_run(cache.path());
    assert_eq!(origin, ModuleOrigin::Compiled);
    assert_eq!(first.cache_stats().compiled, 1);
    assert_eq!(entries(cache.path(), ".cwasm").len(), 1);
    assert_eq!(entries(cache.path(), ".cwasm.sha256").len(), 1);

    let (second, origin) = prepare_and_run(cache.path());
    assert_eq!(origin, ModuleOrigin::DiskCache);
    let stats = second.cache_stats();
    assert_eq!((stats.compiled, stats.disk_hits, stats.rejected), (0, 1, 0));

    // Same process, same module: neither compiled nor mapped again.
    let (digest, wasm) = hello();
    let again = second
        .prepare(&digest, &wasm, PrepareOptions::default())
        .expect("prepare");
    assert_eq!(again.origin(), ModuleOrigin::Memory);
    assert_eq!(second.cache_stats().memory_hits, 1);
}

fn assert_rebuilt_after(damage: impl FnOnce(&Path)) {
    let cache = tempfile::tempdir().expect("tempdir");
    prepare_and_run(cache.path());
    damage(cache.path());

    let (rebuilt, origin) = prepare_and_run(cache.path());
    assert_eq!(origin, ModuleOrigin::Compiled);
    let stats = rebuilt.cache_stats();
    assert_eq!((stats.rejected, stats.compiled, stats.disk_hits), (1, 1, 0));

    // The rebuilt entry is good again.
    let (_, origin) = prepare_and_run(cache.path());
    assert_eq!(origin, ModuleOrigin::DiskCache);
}

#[test]
fn flipped_byte_in_a_cached_artifact_is_detected_and_rebuilt() {
    assert_rebuilt_after(|cache| {
        let artifact = &entries(cache, ".cwasm")[0];
        let mut bytes = std::fs::read(artifact).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        std::fs::write(artifact, bytes).expect("write");
    });
}

#[test]
fn truncated_cached_artifact_is_detected_and_rebuilt() {
    assert_rebuilt_after(|cache| {
        let artifact = &entries(cache, ".cwasm")[0];
        let bytes = std::fs::read(artifact).expect("read");
        std::fs::write(artifact, &bytes[..bytes.len() / 3]).expect("write");
    });
}

#[test]
fn missing_checksum_is_treated_as_corrupt() {
    assert_rebuilt_after(|cache| {
        std::fs::remove_file(&entries(cache, ".cwasm.sha256")[0]).expect("rm");
    });
}

#[test]
fn foreign_file_with_a_matching_checksum_is_not_mapped() {
    // An entry whose checksum is right but which is no wasmtime artifact
    // (e.g. written by something else, or a stale format): wasmtime's own
    // header check must refuse it before anything is executed.
    assert_rebuilt_after(|cache| {
        use sha2::Digest;
        let artifact = &entries(cache, ".cwasm")[0];
        let junk = b"\x7fELF this is not a wasmtime artifact".to_vec();
        std::fs::write(artifact, &junk).expect("write");
        let sum = format!("{}\n", hex::encode(sha2::Sha256::digest(&junk)));
        std::fs::write(&entries(cache, ".cwasm.sha256")[0], sum).expect("write");
    });
}

#[test]
fn metered_and_plain_builds_of_one_module_are_cached_separately() {
    let cache = tempfile::tempdir().expect("tempdir");
    let rt = cached_runtime(cache.path());
    let (digest, wasm) = hello();
    rt.prepare(&digest, &wasm, PrepareOptions::default())
        .expect("plain");
    let metered = PrepareOptions {
        fuel: true,
        ..PrepareOptions::default()
    };
    let m = rt.prepare(&digest, &wasm, metered).expect("metered");
    assert!(m.fuel_metered());
    assert_eq!(rt.cache_stats().compiled, 2);
    assert_eq!(entries(cache.path(), ".cwasm").len(), 2);
}

#[test]
fn cache_files_hold_no_temp_leftovers_after_a_write() {
    let cache = tempfile::tempdir().expect("tempdir");
    prepare_and_run(cache.path());
    assert!(
        entries(cache.path(), "")
            .iter()
            .all(|p| !p.to_string_lossy().contains(".tmp-"))
    );
}

#[test]
fn prepare_cached_needs_no_bytes_on_a_warm_cache_and_says_none_on_a_cold_one() {
    let cache = tempfile::tempdir().expect("tempdir");
    let (digest, _) = hello();
    let cold = cached_runtime(cache.path());
    assert!(
        cold.prepare_cached(&digest, PrepareOptions::default())
            .expect("lookup")
            .is_none(),
        "nothing compiled yet"
    );
    drop(cold);
    prepare_and_run(cache.path());

    let warm = cached_runtime(cache.path());
    let module = warm
        .prepare_cached(&digest, PrepareOptions::default())
        .expect("lookup")
        .expect("a disk hit");
    assert_eq!(module.origin(), ModuleOrigin::DiskCache);
    assert_eq!(warm.cache_stats().compiled, 0);
    let outcome = warm
        .run_blocking(&module, InstanceSpec::new(["hello"]))
        .expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    let again = warm
        .prepare_cached(&digest, PrepareOptions::default())
        .expect("lookup")
        .expect("a memory hit");
    assert_eq!(again.origin(), ModuleOrigin::Memory);
    // Asking for the other kind never hands out the cached module.
    let component = PrepareOptions {
        expect: Some(wrun_runtime::ModuleKind::Component),
        ..PrepareOptions::default()
    };
    assert!(warm.prepare_cached(&digest, component).is_err());
}
