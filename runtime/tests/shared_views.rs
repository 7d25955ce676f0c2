#![allow(clippy::unwrap_used)]
//! Instances without a private `/tmp` share their rootfs and volume handles
//! while one of them lives (runtime/src/sandbox.rs, `SharedViews`). Sharing
//! must not widen anything: the rootfs stays read-only, a volume is only
//! reachable by instances granted that very directory with that very mode,
//! and a host path that now names another directory is opened afresh.

mod common;

use std::path::{Path, PathBuf};

use common::{
    RO_WRITE_STEPS, RW_OK_STEPS, capture, guest_path, prepare_file, repo_path, runtime,
    start_instance,
};
use wrun_runtime::{InstanceSpec, RunOutcome, Runtime, RuntimeError};

/// Starts an idle instance of `spec` (holding its shared view) and waits
/// for its `ready`.
async fn hold(
    rt: &Runtime,
    spec: InstanceSpec,
) -> tokio::task::JoinHandle<Result<RunOutcome, RuntimeError>> {
    let module = prepare_file(rt, &repo_path("examples/idle/idle.wasm"));
    start_instance(rt, &module, spec, "ready").await.0
}

/// Runs fs-attack as `spec` (argv replaced) and returns its output lines.
async fn attack(rt: &Runtime, spec: InstanceSpec, args: &[&str]) -> Vec<String> {
    let module = prepare_file(rt, &guest_path("fs-attack"));
    let mut spec = spec;
    spec.args = std::iter::once("fs-attack")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let (out, target) = capture();
    let outcome = rt.run(&module, spec.stdout(target)).await.unwrap();
    assert_eq!(outcome, RunOutcome::Exited(0), "output: {}", out.text());
    out.text().lines().map(str::to_owned).collect()
}

fn assert_all(lines: &[String], refused: bool) {
    let steps: &[&str] = if refused {
        &RO_WRITE_STEPS
    } else {
        &RW_OK_STEPS
    };
    for step in steps {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{step}:")))
            .unwrap_or_else(|| panic!("no line for {step} in {lines:#?}"));
        assert_eq!(line.contains(": err"), refused, "{line}");
    }
}

fn dir_with_file(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::write(path.join("file.txt"), b"original").unwrap();
}

/// A temporary host directory with the named directories in it, each made
/// by [`dir_with_file`].
fn host_dirs<const N: usize>(names: [&str; N]) -> (tempfile::TempDir, [PathBuf; N]) {
    let host = tempfile::tempdir().unwrap();
    let dirs = names.map(|name| host.path().join(name));
    for dir in &dirs {
        dir_with_file(dir);
    }
    (host, dirs)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_rootfs_still_cannot_write_to_it() {
    let (rt, _scratch) = runtime(8);
    let (_host, [rootfs, vol]) = host_dirs(["rootfs", "vol"]);
    let grants = InstanceSpec::new(["x"])
        .rootfs(&rootfs)
        .volume(&vol, "/rw", false);
    let holder = hold(&rt, grants.clone()).await;

    for _ in 0..2 {
        let lines = attack(&rt, grants.clone(), &["ro-write", "/file.txt"]).await;
        assert_all(&lines, true);
    }
    assert_eq!(names(&rootfs), ["file.txt"]);
    assert_eq!(std::fs::read(rootfs.join("file.txt")).unwrap(), b"original");
    // The read-write volume of the same shared view is writable.
    let lines = attack(&rt, grants, &["ro-write", "/rw/file.txt"]).await;
    assert_all(&lines, false);
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_grant_stays_read_only_while_the_same_dir_is_held_read_write() {
    let (rt, _scratch) = runtime(8);
    let (_host, [rootfs, vol]) = host_dirs(["rootfs", "vol"]);
    let rw = InstanceSpec::new(["x"])
        .rootfs(&rootfs)
        .volume(&vol, "/data", false);
    let holder = hold(&rt, rw).await;

    let ro = InstanceSpec::new(["x"])
        .rootfs(&rootfs)
        .volume(&vol, "/data", true);
    let lines = attack(&rt, ro, &["ro-write", "/data/file.txt"]).await;
    assert_all(&lines, true);
    assert_eq!(names(&vol), ["file.txt"]);
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_with_other_volumes_at_the_same_guest_path_do_not_reach_each_other() {
    let (rt, _scratch) = runtime(8);
    let (_host, [rootfs, mine, theirs]) = host_dirs(["rootfs", "mine", "theirs"]);
    let holder = hold(
        &rt,
        InstanceSpec::new(["x"])
            .rootfs(&rootfs)
            .volume(&mine, "/data", false),
    )
    .await;

    let other = InstanceSpec::new(["x"])
        .rootfs(&rootfs)
        .volume(&theirs, "/data", false);
    let lines = attack(&rt, other, &["ro-write", "/data/file.txt"]).await;
    assert_all(&lines, false);
    assert_eq!(
        names(&mine),
        ["file.txt"],
        "wrote into another instance's volume"
    );
    assert_ne!(
        names(&theirs),
        ["file.txt"],
        "its own volume was not written"
    );
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_path_that_now_names_another_directory_is_opened_afresh() {
    let (rt, _scratch) = runtime(8);
    let (host, [rootfs, vol]) = host_dirs(["rootfs", "vol"]);
    let grants = InstanceSpec::new(["x"])
        .rootfs(&rootfs)
        .volume(&vol, "/data", false);
    let holder = hold(&rt, grants.clone()).await;

    let old = host.path().join("vol.old");
    std::fs::rename(&vol, &old).unwrap();
    dir_with_file(&vol);
    let lines = attack(&rt, grants, &["ro-write", "/data/file.txt"]).await;
    assert_all(&lines, false);
    assert_eq!(
        names(&old),
        ["file.txt"],
        "the replaced directory was written"
    );
    assert_ne!(names(&vol), ["file.txt"]);
    holder.abort();
}
