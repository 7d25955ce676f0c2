//! Binds that would hand a guest wrun's own process or its store: every
//! instance runs inside wrun's process, so `/proc` lets a guest read that
//! process's memory and environment, and the store holds every instance's
//! environment and the images every instance runs. They are refused
//! (symlinks and `..` resolved) unless the daemon, or a foreground run, is
//! given `--allow-dangerous-binds`; the store never. Ordinary binds work.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};

use common::{Daemon, Env, FS_COPY_DIR, HELLO_DIR, have_tool};

const DANGER: &str = "invalid mount config for type \"bind\": ";

/// A store with hello and fs-copy, a directory with a file to copy, an
/// output directory, and two symlinks: one to `/proc`, one to the data.
struct Setup {
    env: Env,
    data: PathBuf,
    out: PathBuf,
    to_proc: PathBuf,
    to_data: PathBuf,
}

fn setup() -> Setup {
    let env = Env::with_image("hello:1", HELLO_DIR);
    env.build("fs-copy:1", FS_COPY_DIR);
    let data = env.path("data");
    let out = env.path("out");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(data.join("words.txt"), "alpha\nbeta\n").unwrap();
    let to_proc = env.path("innocent");
    std::os::unix::fs::symlink("/proc", &to_proc).unwrap();
    let to_data = env.path("to-data");
    std::os::unix::fs::symlink(&data, &to_data).unwrap();
    Setup {
        env,
        data,
        out,
        to_proc,
        to_data,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Each refused bind (as `-v HOST:GUEST`) and what its error must say.
fn refused_binds(st: &Setup) -> Vec<(String, &'static str)> {
    let root = st.env.root();
    vec![
        ("/proc:/p:ro".into(), "/proc is the process information"),
        ("/proc/self:/p".into(), "is inside /proc"),
        ("/sys:/s".into(), "/sys is the kernel's view"),
        ("/dev/shm:/d".into(), "is inside /dev"),
        ("/:/host".into(), "/ holds /proc"),
        (format!("{}:/p", s(&st.to_proc)), "(which is /proc)"),
        (
            format!("{}/../../../../../../../../proc:/p", s(&st.data)),
            "(which is /proc)",
        ),
        (format!("{}:/h", s(st.env.dir.path())), "holds wrun's store"),
        (format!("{}:/st", s(&root)), "the store is never bound"),
        (
            format!("{}:/b", s(&root.join("blobs"))),
            "the store is never bound",
        ),
    ]
}

/// Fails the test unless `stderr` is one line naming the refusal.
fn one_line_refusal(stderr: &str, says: &str, what: &str) {
    assert!(stderr.contains(DANGER), "{what}: {stderr}");
    assert!(stderr.contains(says), "{what}: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "{what}: one line: {stderr}"
    );
    if !says.contains("store is never") {
        assert!(
            stderr.contains("--allow-dangerous-binds"),
            "{what}: the opt-in is named: {stderr}"
        );
    }
}

#[test]
fn a_foreground_run_refuses_them_and_grants_ordinary_binds() {
    let st = setup();
    for (bind, says) in refused_binds(&st) {
        let out = st.env.run(&["run", "--rm", "-v", &bind, "hello:1"]);
        assert_eq!(out.status.code(), Some(125), "-v {bind}");
        one_line_refusal(&String::from_utf8_lossy(&out.stderr), says, &bind);
    }
    let out = st.env.run(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/sys,target=/s,readonly",
        "hello:1",
    ]);
    assert_eq!(out.status.code(), Some(125));
    one_line_refusal(&String::from_utf8_lossy(&out.stderr), "/sys", "--mount");

    // Ordinary binds, one through a symlink, still work.
    let stdout = st.env.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/in:ro", s(&st.to_data)),
        "-v",
        &format!("{}:/out", s(&st.out)),
        "fs-copy:1",
        "/in/words.txt",
        "/out/words.txt",
    ]);
    assert!(stdout.contains("copied 2 lines"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(st.out.join("words.txt")).unwrap(),
        "1: ALPHA\n2: BETA\n"
    );
}

#[test]
fn a_foreground_run_given_the_opt_in_grants_proc_but_never_the_store() {
    let st = setup();
    // What the refusal prevents: the guest reads wrun's own environment.
    let stdout = st.env.ok(&[
        "run",
        "--rm",
        "--allow-dangerous-binds",
        "-v",
        "/proc:/p:ro",
        "-v",
        &format!("{}:/out", s(&st.out)),
        "fs-copy:1",
        "/p/self/environ",
        "/out/environ",
    ]);
    assert!(stdout.contains("copied"), "{stdout}");
    let environ = std::fs::read_to_string(st.out.join("environ")).unwrap();
    assert!(environ.contains("WRUN_ROOT="), "{environ:?}");

    let store = format!("{}:/st", s(&st.env.root()));
    let out = st.env.run(&[
        "run",
        "--rm",
        "--allow-dangerous-binds",
        "-v",
        &store,
        "hello:1",
    ]);
    assert_eq!(out.status.code(), Some(125));
    one_line_refusal(
        &String::from_utf8_lossy(&out.stderr),
        "the store is never bound",
        &store,
    );
}

/// The `message` of a JSON error body (chunked or not).
fn message(body: &str) -> String {
    let start = body.find('{').unwrap();
    let end = body.rfind('}').unwrap();
    let v: serde_json::Value = serde_json::from_str(&body[start..=end]).unwrap();
    v["message"].as_str().unwrap().to_owned()
}

#[test]
fn the_daemon_refuses_them_through_the_api_the_docker_client_and_at_start() {
    let st = setup();
    let (to_data, out_dir, data) = (st.to_data.clone(), st.out.clone(), st.data.clone());
    let binds = refused_binds(&st);
    let d = Daemon::start(st.env);

    for (bind, says) in &binds {
        let body = serde_json::json!({"Image": "hello:1", "HostConfig": {"Binds": [bind]}});
        let (status, answer) = d.request("POST", "/containers/create", &body.to_string());
        assert_eq!(status, 400, "{bind}: {answer}");
        let m = message(&answer);
        one_line_refusal(&m, says, bind);
        assert!(
            m.contains("start the daemon with --allow-dangerous-binds") || says.contains("store")
        );
    }
    let body = serde_json::json!({"Image": "hello:1", "HostConfig": {"Mounts": [
        {"Type": "bind", "Source": "/dev", "Target": "/d", "ReadOnly": true}
    ]}});
    let (status, answer) = d.request("POST", "/containers/create", &body.to_string());
    assert_eq!(status, 400, "{answer}");
    one_line_refusal(&message(&answer), "/dev is the host's devices", "Mounts");
    let ps = d.wrun_ok(&["ps", "-aq"]);
    assert_eq!(ps.trim(), "", "a refused create leaves no instance");

    // A symlink that named an ordinary directory at create and /proc at
    // start: the start checks again, and the instance is not run.
    let link = out_dir.with_file_name("swapped");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let id = d
        .wrun_ok(&["create", "-v", &format!("{}:/p", s(&link)), "hello:1"])
        .trim()
        .to_string();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/proc", &link).unwrap();
    let start = d.wrun(&["start", &id]);
    assert!(!start.status.success(), "the start went ahead");
    one_line_refusal(
        &String::from_utf8_lossy(&start.stderr),
        "(which is /proc)",
        "start",
    );

    if !have_tool("docker") {
        return;
    }
    let out = d.docker(&["run", "--rm", "-v", "/proc:/p:ro", "hello:1"]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Error response from daemon: {DANGER}/proc is")),
        "{stderr}"
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!(
            "type=bind,source={}/../../../../../../sys,target=/s",
            s(&data)
        ),
        "hello:1",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(which is /sys)"));

    // An ordinary bind through the docker client, via a symlink.
    let stdout = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/in:ro", s(&to_data)),
        "-v",
        &format!("{}:/out", s(&out_dir)),
        "fs-copy:1",
        "/in/words.txt",
        "/out/copy.txt",
    ]);
    assert!(stdout.contains("copied 2 lines"), "{stdout}");
    assert!(out_dir.join("copy.txt").is_file());
}

#[test]
fn a_daemon_started_with_the_opt_in_grants_proc_but_never_the_store() {
    let st = setup();
    let out_dir = st.out.clone();
    let d = Daemon::start_with(st.env, &["--allow-dangerous-binds"]);
    let id = d
        .wrun_ok(&[
            "run",
            "-d",
            "-v",
            "/proc:/p:ro",
            "-v",
            &format!("{}:/out", s(&out_dir)),
            "fs-copy:1",
            "/p/self/environ",
            "/out/environ",
        ])
        .trim()
        .to_string();
    let code = d.wrun_ok(&["wait", &id]);
    assert_eq!(code.trim(), "0", "{}", d.wrun_ok(&["logs", &id]));
    // The daemon's own environment, as the guest read it.
    let environ = std::fs::read_to_string(out_dir.join("environ")).unwrap();
    assert!(environ.contains("WRUN_ROOT="), "{environ:?}");

    let store = format!("{}:/st", s(&d.env.root()));
    let body = serde_json::json!({"Image": "hello:1", "HostConfig": {"Binds": [&store]}});
    let (status, answer) = d.request("POST", "/containers/create", &body.to_string());
    assert_eq!(status, 400, "{answer}");
    one_line_refusal(&message(&answer), "the store is never bound", &store);
}
