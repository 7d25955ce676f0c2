//! The Docker SDK for Python (docker-py 7) against the daemon: the script
//! `tests/py/docker_run.py` runs `containers.run` (plain, `remove`,
//! `auto_remove` twenty times, a failing guest), `attach(stream=False)` and
//! `logs` with times. Skipped with a message when python3 cannot import
//! `docker`; CI (`WRUN_REQUIRE_PEERS=1`) installs the SDK and fails instead.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::Command;

use common::{Daemon, Env, HELLO_DIR, IDLE_DIR};

/// Whether python3 has the Docker SDK; fails when it must (CI).
fn have_docker_py() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import docker"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
            "python3's Docker SDK is required (WRUN_REQUIRE_PEERS is set) but cannot be imported"
        );
        eprintln!("skipping: python3 cannot import docker (the Docker SDK for Python)");
    }
    found
}

#[test]
fn docker_py_runs_attaches_and_reads_logs() {
    if !have_docker_py() {
        return;
    }
    let env = Env::with_image("hello:1.0", HELLO_DIR);
    env.build("idle:1.0", IDLE_DIR);
    let d = Daemon::start(env);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/docker_run.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(d.host())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.ends_with("all ok\n"),
        "docker_run.py failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
