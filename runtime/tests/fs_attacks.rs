//! Attacks on the host's filesystem by a guest, each run by the hostile
//! guest `tests/guests/fs-attack` against real host directories.

mod common;

use std::path::Path;

use common::{RO_WRITE_STEPS, RW_OK_STEPS, capture, guest_path, prepare_file, runtime};
use wrun_runtime::{InstanceSpec, RunOutcome};

/// Runs fs-attack with `args` and returns its output lines.
fn attack(spec: InstanceSpec) -> Vec<String> {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &guest_path("fs-attack"));
    let (out, target) = capture();
    let outcome = rt.run_blocking(&module, spec.stdout(target)).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0), "output: {}", out.text());
    out.text().lines().map(str::to_owned).collect()
}

fn assert_all_refused(lines: &[String], prefixes: &[&str]) {
    for prefix in prefixes {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{prefix}:")))
            .unwrap_or_else(|| panic!("no line for {prefix} in {lines:#?}"));
        assert!(line.contains(": err"), "attack succeeded: {line}");
    }
}

/// Every file under `dir`, with its content, for before/after comparison.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readdir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            let name = path
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            if meta.is_dir() {
                stack.push(path);
                out.push((name, Vec::new()));
            } else if meta.is_file() {
                out.push((name, std::fs::read(&path).expect("read")));
            } else {
                out.push((name, b"<symlink>".to_vec()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn guest_symlinks_pointing_outside_the_view_are_refused() {
    let host = tempfile::tempdir().expect("tempdir");
    let victim = host.path().join("victim");
    std::fs::create_dir(&victim).expect("mkdir");
    std::fs::write(victim.join("secret.txt"), b"secret").expect("write");
    let vol = host.path().join("vol");
    std::fs::create_dir(&vol).expect("mkdir");
    let before = snapshot(&victim);

    let lines = attack(
        InstanceSpec::new(["fs-attack", "symlink-escape", "/vol"]).volume(&vol, "/vol", false),
    );

    for name in ["abs", "abs-file", "up", "up2", "trail", "upfile"] {
        assert_all_refused(
            &lines,
            &[
                &format!("write-through {name}"),
                &format!("truncate-through {name}"),
                &format!("read-through {name}"),
            ],
        );
    }
    // Absolute targets are refused outright at creation.
    assert_all_refused(&lines, &["symlink abs", "symlink abs-file"]);
    assert_eq!(snapshot(&victim), before, "victim directory changed");
    assert!(!host.path().join("pwned").exists());
    assert!(!Path::new("/etc/pwned").exists());
}

#[test]
fn read_only_volume_refuses_write_truncate_rename_link_and_delete() {
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("file.txt"), b"original").expect("write");
    let before = snapshot(host.path());

    let lines = attack(
        InstanceSpec::new(["fs-attack", "ro-write", "/ro/file.txt"]).volume(
            host.path(),
            "/ro",
            true,
        ),
    );

    assert_all_refused(&lines, &RO_WRITE_STEPS);
    assert_eq!(snapshot(host.path()), before, "read-only volume changed");
}

#[test]
fn read_write_volume_accepts_the_same_operations() {
    // The control for the test above: the guest's attempts do work when the
    // grant allows them, so "err" above comes from the read-only grant.
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("file.txt"), b"original").expect("write");
    let lines = attack(
        InstanceSpec::new(["fs-attack", "ro-write", "/rw/file.txt"]).volume(
            host.path(),
            "/rw",
            false,
        ),
    );
    for op in RW_OK_STEPS {
        assert!(
            lines.contains(&format!("{op}: ok")),
            "{op} failed on rw: {lines:#?}"
        );
    }
}

#[test]
fn rename_and_link_across_read_only_and_read_write_mounts_are_refused() {
    let host = tempfile::tempdir().expect("tempdir");
    let ro = host.path().join("ro");
    let rw = host.path().join("rw");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::create_dir(&rw).expect("mkdir");
    std::fs::write(ro.join("file.txt"), b"original").expect("write");
    let before = snapshot(&ro);

    let lines = attack(
        InstanceSpec::new(["fs-attack", "cross-mount", "/ro/file.txt", "/rw"])
            .volume(&ro, "/ro", true)
            .volume(&rw, "/rw", false),
    );

    assert_all_refused(
        &lines,
        &[
            "rename-ro-to-rw",
            "rename-rw-to-ro",
            "link-ro-to-rw",
            "link-rw-to-ro",
            "write-through-link",
        ],
    );
    assert_eq!(snapshot(&ro), before, "read-only mount changed");
    assert!(!rw.join("stolen.txt").exists());
    assert!(!rw.join("linked.txt").exists());
}

#[test]
fn guest_listing_every_fd_sees_only_stdio_and_its_declared_mounts() {
    let rootfs = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let lines = attack(
        InstanceSpec::new(["fs-attack", "list-fds"])
            .rootfs(rootfs.path())
            .tmp(true)
            .volume(data.path(), "/data", true),
    );
    assert_eq!(
        lines,
        [
            "fd 0",
            "fd 1",
            "fd 2",
            "fd 3 preopen /",
            "fd 4 preopen /tmp",
            "fd 5 preopen /data"
        ]
    );
}

#[test]
fn guest_without_grants_sees_no_directory_at_all() {
    let lines = attack(InstanceSpec::new(["fs-attack", "list-fds"]));
    assert_eq!(lines, ["fd 0", "fd 1", "fd 2"]);
}

#[test]
fn private_tmp_is_writable_and_removed_when_the_instance_ends() {
    let (rt, scratch) = runtime(4);
    let module = prepare_file(&rt, &common::repo_path("examples/fs-copy/fs-copy.wasm"));
    let rootfs = tempfile::tempdir().expect("tempdir");
    std::fs::write(rootfs.path().join("in.txt"), "x\ny\n").expect("write");
    let spec = InstanceSpec::new(["fs-copy", "/in.txt", "/tmp/out.txt"])
        .rootfs(rootfs.path())
        .tmp(true);
    let (out, target) = capture();
    let outcome = rt.run_blocking(&module, spec.stdout(target)).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert!(out.text().contains("copied 2 lines"), "{}", out.text());
    let left: Vec<_> = std::fs::read_dir(scratch.path().join("scratch"))
        .expect("scratch exists")
        .collect();
    assert!(left.is_empty(), "instance /tmp left behind: {left:?}");
}
