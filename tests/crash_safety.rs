//! End to end: `kill -9` in the middle of a load, and several writers at
//! once, leave a consistent store where earlier images survive and a retry
//! succeeds.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;

/// An image tar `big:1` with `size` incompressible bytes, built in a store
/// of its own (kept alive by the returned Env).
fn big_image_tar(size: usize) -> (Env, std::path::PathBuf) {
    let maker = Env::new();
    let ctx = big_context(size);
    let big = maker.path("big.tar");
    maker.ok(&[
        "build",
        "-q",
        "-t",
        "big:1",
        "-o",
        big.to_str().unwrap(),
        ctx.path().to_str().unwrap(),
    ]);
    (maker, big)
}

#[test]
fn kill_9_during_load_leaves_a_consistent_store_and_a_retry_succeeds() {
    let (_maker, big) = big_image_tar(48 << 20);

    let env = Env::new();
    env.build_hello("hello:1.0");
    for delay_ms in [2u64, 10, 40, 100, 200, 400] {
        let mut child = env
            .cmd()
            .args(["load", "-q", "-i", big.to_str().unwrap()])
            .spawn()
            .expect("spawn wrun load");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_store_consistent(&env);
        let images = env.ok(&["images"]);
        assert!(
            images.contains("hello"),
            "the earlier image survives a killed load:\n{images}"
        );
    }
    assert_eq!(
        env.ok(&["load", "-i", big.to_str().unwrap()]).trim(),
        "Loaded image: big:1"
    );
    assert_store_consistent(&env);
    let leftovers: Vec<_> = std::fs::read_dir(env.root().join("tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging areas of killed loads are cleaned up: {leftovers:?}"
    );
    assert!(env.ok(&["images"]).contains("hello"));
}

#[test]
fn concurrent_loads_and_builds_all_land() {
    let (_maker, big) = big_image_tar(8 << 20);

    let env = Env::new();
    let mut children = Vec::new();
    for i in 0..3 {
        children.push(
            env.cmd()
                .args(["load", "-q", "-i", big.to_str().unwrap()])
                .spawn()
                .unwrap(),
        );
        children.push(
            env.cmd()
                .args(["build", "-q", "-t", &format!("hello:{i}"), HELLO_DIR])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_store_consistent(&env);
    let images = env.ok(&["images"]);
    for name in ["big ", "hello "] {
        assert!(images.contains(name), "{images}");
    }
    assert_eq!(
        images.lines().filter(|l| l.starts_with("hello")).count(),
        3,
        "{images}"
    );
}
