#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! One daemon per store: a second `wrun daemon` on a store already served
//! refuses with one line naming the first, the store's records are left as
//! they were, and the CLI finds the serving daemon instead of starting
//! another (the data loss of two daemons replacing each other's journal).

mod common;

use common::{Daemon, Env};

#[test]
fn a_second_daemon_on_the_same_store_is_refused_and_the_cli_uses_the_first() {
    let env = Env::new();
    env.build_hello("hello:1.0");
    let first = Daemon::start(env);
    let id = first.wrun_ok(&["create", "--name", "kept", "hello:1.0"]);
    let journal = first.env.root().join("containers/records.journal");
    let before = std::fs::read(&journal).unwrap();

    // A second daemon, same store, another socket.
    let other = first.env.path("other.sock");
    let out = first
        .env
        .cmd()
        .args(["daemon", "--socket", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the second daemon must refuse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pid = first.child.as_ref().unwrap().id().to_string();
    assert!(stderr.contains("already served"), "{stderr}");
    assert!(
        stderr.contains(&pid),
        "names the running daemon's pid: {stderr}"
    );
    assert!(
        stderr.contains(first.socket.to_str().unwrap()),
        "names its socket: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!other.exists(), "the refused daemon bound no socket");
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "the records journal is untouched"
    );

    // A daemon on the first one's socket, for another store, is refused
    // before it creates that store.
    let elsewhere = first.env.path("elsewhere");
    let out = first
        .env
        .cmd()
        .env("WRUN_ROOT", &elsewhere)
        .args(["daemon", "--socket", first.socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already listening"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !elsewhere.exists(),
        "no store was created for a refused daemon"
    );

    // The CLI pointed at a dead socket for this store finds the daemon
    // that serves it instead of starting a second one.
    let dead = first.env.path("dead.sock");
    let out = first
        .env
        .cmd()
        .env("WRUN_HOST", format!("unix://{}", dead.display()))
        .args(["ps", "-a", "-q", "--no-trunc"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(id.trim()),
        "lists the first daemon's instance: {stdout}"
    );
    assert!(!dead.exists(), "no daemon was started on the dead socket");
}
