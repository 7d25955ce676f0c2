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

    // An image the daemon lacks: docker tries to pull it, and is told
    // that the name names no registry (and how to name one).
    let (err, code) = refused(&d, &["run", "--rm", "nosuch:1"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("Unable to find image 'nosuch:1' locally"),
        "{err}"
    );
    assert!(err.contains("nosuch:1 names no registry"), "{err}");
    assert!(err.contains("HOST[:PORT]/nosuch:1"), "{err}");
    let (err, _) = refused(&d, &["pull", "nosuch:1"]);
    assert!(err.contains("nosuch:1 names no registry"), "{err}");

    // Nothing refused changed anything: svc still runs, other is created.
    let ps = d.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert!(ps.contains("svc running"), "{ps}");
    assert!(ps.contains("other created"), "{ps}");
}

/// The State of an instance as `docker inspect` shows it: status and exit code.
fn state(d: &Daemon, name: &str) -> String {
    d.docker_ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        name,
    ])
    .trim()
    .to_string()
}

/// `docker kill -s` takes every signal dockerd's Linux table has (names
/// with or without SIG, numbers, RTMIN+n, RTMAX-n); a guest has no
/// handlers, so each does its default action: most end the instance as
/// 128 + N, STOP pauses it, CONT resumes it, WINCH leaves it running.
/// Refusals are dockerd's: 400 for what ParseSignal refuses, before the
/// lookup; 500 for a number Linux has not, after it.
#[test]
fn kill_takes_every_signal_dockerd_takes() {
    if !have_tool("docker") {
        return;
    }
    let env = Env::new();
    env.build("idle:1.0", "examples/idle");
    let d = Daemon::start(env);
    d.docker_ok(&["run", "-d", "--name", "sig", "idle:1.0"]);

    for sig in ["WINCH", "sigwinch", "28", "SIGCHLD", "URG", "CONT"] {
        d.docker_ok(&["kill", "-s", sig, "sig"]);
        assert_eq!(state(&d, "sig"), "running 0", "after kill -s {sig}");
    }
    d.docker_ok(&["kill", "-s", "SIGSTOP", "sig"]);
    assert_eq!(state(&d, "sig"), "paused 0");
    d.docker_ok(&["kill", "-s", "STOP", "sig"]);
    assert_eq!(
        state(&d, "sig"),
        "paused 0",
        "a second STOP changes nothing"
    );
    // Any signal but those that end it resumes a paused one, as dockerd.
    d.docker_ok(&["kill", "-s", "WINCH", "sig"]);
    assert_eq!(state(&d, "sig"), "running 0");
    d.docker_ok(&["kill", "-s", "TSTP", "sig"]);
    d.docker_ok(&["kill", "-s", "SIGCONT", "sig"]);
    assert_eq!(state(&d, "sig"), "running 0");

    let (err, code) = refused(&d, &["kill", "-s", "NOPE", "sig"]);
    assert!(err.contains("Invalid signal: NOPE"), "{err}");
    assert_eq!(code, 1);
    for (query, status, words) in [
        ("signal=0", 400, "Invalid signal: 0"),
        ("signal=RTMIN%2B16", 400, "Invalid signal: RTMIN+16"),
        ("signal=RTMAX-15", 400, "Invalid signal: RTMAX-15"),
        (
            "signal=65",
            500,
            "Cannot kill container: sig: The linux daemon does not support signal 65",
        ),
        (
            "signal=32",
            500,
            "Cannot kill container: sig: The linux daemon does not support signal 32",
        ),
        (
            "signal=-1",
            500,
            "Cannot kill container: sig: The linux daemon does not support signal 18446744073709551615",
        ),
    ] {
        let (got, body) = d.request("POST", &format!("/v1.41/containers/sig/kill?{query}"), "");
        assert_eq!(got, status, "{query}: {body}");
        assert!(body.contains(words), "{query}: {body}");
    }
    // ParseSignal's 400 comes before the lookup.
    let (got, body) = d.request("POST", "/v1.41/containers/nosuch/kill?signal=NOPE", "");
    assert_eq!(
        (got, body.contains("Invalid signal: NOPE")),
        (400, true),
        "{body}"
    );
    assert_eq!(state(&d, "sig"), "running 0", "refusals change nothing");

    // A real-time signal by name ends it as 128 + its number (RTMIN = 34).
    d.docker_ok(&["kill", "-s", "SIGRTMIN+3", "sig"]);
    assert_eq!(state(&d, "sig"), "exited 165");
    d.docker_ok(&["start", "sig"]);
    d.docker_ok(&["kill", "-s", "rtmax-1", "sig"]);
    assert_eq!(state(&d, "sig"), "exited 191");
    d.docker_ok(&["start", "sig"]);
    d.docker_ok(&["kill", "-s", "HUP", "sig"]);
    assert_eq!(state(&d, "sig"), "exited 129");

    // A StopSignal is checked against the same table.
    d.docker_ok(&["create", "--stop-signal", "SIGWINCH", "idle:1.0"]);
    let (err, _) = refused(&d, &["create", "--stop-signal", "RTMIN+16", "idle:1.0"]);
    assert!(err.contains("Invalid signal: RTMIN+16"), "{err}");
}

/// An image route given a name that is no reference answers as dockerd
/// 20.10 does: inspect 400 `no such image: NAME: WORDS`, history, tag and
/// remove 400 `WORDS`, save 500 `WORDS`; a well-formed name no image has
/// stays a 404.
#[test]
fn image_routes_refuse_a_name_that_is_no_reference() {
    let env = Env::new();
    env.build("idle:1.0", "examples/idle");
    let d = Daemon::start(env);
    let invalid = "invalid reference format";
    let upper = "invalid reference format: repository name must be lowercase";
    for (name, shown, words) in [
        ("bad%20ref!", "bad ref!", invalid),
        ("a:b:c", "a:b:c", invalid),
        ("a@sha256:abc", "a@sha256:abc", invalid),
        ("UPPER", "UPPER", upper),
        ("localhost:5000/Foo", "localhost:5000/Foo", upper),
    ] {
        for (method, path, status, message) in [
            (
                "GET",
                format!("/v1.41/images/{name}/json"),
                400,
                format!("no such image: {shown}: {words}"),
            ),
            (
                "GET",
                format!("/v1.41/images/{name}/history"),
                400,
                words.to_string(),
            ),
            (
                "DELETE",
                format!("/v1.41/images/{name}"),
                400,
                words.to_string(),
            ),
            (
                "POST",
                format!("/v1.41/images/{name}/tag?repo=x&tag=y"),
                400,
                words.to_string(),
            ),
            (
                "GET",
                format!("/v1.41/images/{name}/get"),
                500,
                words.to_string(),
            ),
            (
                "POST",
                "/v1.41/containers/create".to_string(),
                400,
                words.to_string(),
            ),
        ] {
            let body = if path.ends_with("/create") {
                format!(r#"{{"Image":"{shown}"}}"#)
            } else {
                String::new()
            };
            let (got, answer) = d.request(method, &path, &body);
            assert_eq!(got, status, "{method} {path}: {answer}");
            let expected = serde_json::json!({ "message": message }).to_string();
            assert_eq!(answer.trim(), expected, "{method} {path}");
        }
    }
    let (got, answer) = d.request("GET", "/v1.41/images/nope/json", "");
    assert_eq!(got, 404, "{answer}");
    assert!(
        answer.contains("no such image: nope: No such image: nope:latest"),
        "{answer}"
    );
    let (got, _) = d.request("GET", "/v1.41/images/idle:1.0/json", "");
    assert_eq!(got, 200);
}
