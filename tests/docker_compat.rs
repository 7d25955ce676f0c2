#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! Differential tests against a real dockerd: tests/compat/harness.py runs
//! each scenario of its table against the oracle (`WRUN_DOCKER_ORACLE`,
//! started by `dev/oracle`) and against a wrun daemon on a temp store, and
//! fails on any difference not listed in tests/compat/expectations.toml.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Daemon, Env, FS_COPY_DIR, HELLO_DIR, IDLE_DIR, have_tool, write_cat_context};

const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/harness.py");

/// The oracle's socket, or None (with a message) where none was started;
/// CI (WRUN_REQUIRE_PEERS) must have one.
fn oracle() -> Option<String> {
    match std::env::var("WRUN_DOCKER_ORACLE") {
        Ok(host) if !host.is_empty() => Some(host),
        _ => {
            assert!(
                std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
                "WRUN_DOCKER_ORACLE is not set (WRUN_REQUIRE_PEERS is): start dockerd with dev/oracle"
            );
            eprintln!(
                "skipping: no Docker oracle (set WRUN_DOCKER_ORACLE=$(dev/oracle); it needs root and docker.io)"
            );
            None
        }
    }
}

/// True when `python3` has the Docker SDK 7 the harness drives.
fn have_docker_sdk() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import docker, sys; sys.exit(int(docker.__version__.split('.')[0]) < 7)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
            "python3's Docker SDK 7 is required (WRUN_REQUIRE_PEERS is set); dev/setup installs it"
        );
        eprintln!("skipping: python3 lacks the Docker SDK 7 (dev/setup installs it)");
    }
    ok
}

/// The build context of compat-fsh:1.0: tests/compat/fsh-image (its
/// wrun.toml and files) with examples/fsh's fsh.wasm beside them.
fn fsh_context(env: &Env) -> std::path::PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/fsh-image");
    let ctx = env.path("fsh");
    copy_tree(&from, &ctx);
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fsh/fsh.wasm");
    std::fs::copy(wasm, ctx.join("fsh.wasm")).unwrap();
    ctx
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn scenarios_agree_with_dockerd() {
    let Some(oracle) = oracle() else { return };
    if !have_tool("docker")
        || !have_tool("docker-compose")
        || !have_tool("gcc")
        || !have_docker_sdk()
    {
        return;
    }
    let env = Env::new();
    env.build("compat-hello:1.0", HELLO_DIR);
    env.build("compat-idle:1.0", IDLE_DIR);
    env.build("compat-fs-copy:1.0", FS_COPY_DIR);
    let cat = env.path("cat");
    write_cat_context(&cat);
    env.build("compat-cat:1.0", cat.to_str().unwrap());
    env.build("compat-fsh:1.0", fsh_context(&env).to_str().unwrap());
    let d = Daemon::start(env);

    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docker-compat");
    let mut cmd = Command::new("python3");
    cmd.arg(HARNESS)
        .args(["--oracle", &oracle, "--wrun", &d.host()])
        .arg("--report")
        .arg(&report);
    if let Ok(only) = std::env::var("WRUN_COMPAT_ONLY") {
        cmd.args(["--only", &only]);
    }
    if let Ok(jobs) = std::env::var("WRUN_COMPAT_JOBS") {
        cmd.args(["--jobs", &jobs]);
    }
    if std::env::var_os("WRUN_COMPAT_UPDATE_DOC").is_some() {
        cmd.arg("--update-doc");
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "the scenarios disagree with dockerd ({}); the lines marked FAIL above say how, \
         {}/report.md has every difference\n{}",
        out.status,
        report.display(),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("  ran "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
