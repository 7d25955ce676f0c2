#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! The stock docker client, refused: each refusal reads as dockerd's does
//! (its words checked against dockerd 20.10 on this machine kind), with
//! docker's exit code, and leaves the instances as they were.

mod common;

use common::{Daemon, Env, have_tool};

/// Runs docker expecting a refusal; returns its stderr and exit code.
fn refused(d: &Daemon, args: &[&str]) -> (String, i32) {
    let out = d.docker(args);
    assert!(!out.status.success(), "docker {args:?} should fail");
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn refusals_read_as_dockerds() {
    if !have_tool("docker") {
        return;
    }
    let env = Env::new();
    env.build("idle:1.0", "examples/idle");
    let d = Daemon::start(env);
    let svc = d.docker_ok(&["run", "-d", "--name", "svc", "idle:1.0"]);
    let svc = svc.trim();
    d.docker_ok(&["create", "--name", "other", "idle:1.0"]);

    d.docker_ok(&["pause", "svc"]);
    let (err, code) = refused(&d, &["start", "svc"]);
    assert!(
        err.contains("cannot start a paused container, try unpause instead"),
        "{err}"
    );
    assert_eq!(code, 1);
    let (err, _) = refused(&d, &["rm", "svc"]);
    assert!(
        err.contains(&format!(
            "You cannot remove a paused container {svc}. Unpause and then stop the container"
        )),
        "{err}"
    );
    d.docker_ok(&["unpause", "svc"]);

    let (err, _) = refused(&d, &["rename", "other", "svc"]);
    assert!(
        err.contains("Error when allocating new name: Conflict. The container name \"/svc\" is already in use"),
        "{err}"
    );
    let (err, _) = refused(&d, &["rename", "svc", "svc"]);
    assert!(
        err.contains("Error response from daemon: Renaming a container with the same name as its current name\n"),
        "{err}"
    );

    let (err, _) = refused(&d, &["kill", "other"]);
    assert!(
        err.contains("Cannot kill container: other: Container "),
        "{err}"
    );
    assert!(err.contains(" is not running"), "{err}");
    let (err, _) = refused(&d, &["kill", "nosuch"]);
    assert!(
        err.contains("Cannot kill container: nosuch: No such container: nosuch"),
        "{err}"
    );

    // An image the daemon lacks: docker tries to pull it, and is told how
    // to get it instead (no registry client yet).
    let (err, code) = refused(&d, &["run", "--rm", "nosuch:1"]);
    assert_eq!(code, 125);
    assert!(err.contains("cannot pull nosuch:1"), "{err}");
    assert!(
        err.contains("wrun build") && err.contains("wrun load"),
        "{err}"
    );
    let (err, _) = refused(&d, &["pull", "nosuch:1"]);
    assert!(err.contains("cannot pull nosuch:1"), "{err}");

    // Nothing refused changed anything: svc still runs, other is created.
    let ps = d.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert!(ps.contains("svc running"), "{ps}");
    assert!(ps.contains("other created"), "{ps}");
}
