//! The daemon's capacity: sized from the host by default, what a live
//! instance costs in kernel mappings, a start beyond it (or that cannot
//! happen for another reason) refused at once with the instance left as it
//! was, `-m` over the daemon's cap refused at create, and `info`/`version`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;

fn idle_env() -> Env {
    let env = Env::new();
    env.build("idle:1.0", IDLE_DIR);
    env
}

fn state(d: &Daemon, name: &str) -> String {
    d.wrun_ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}",
        name,
    ])
    .trim()
    .to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_start_beyond_capacity_fails_at_once_and_the_instance_stays_created() {
    let d = Daemon::start_with(idle_env(), &["--max-instances", "3"]);
    for name in ["one", "two", "three"] {
        d.wrun_ok(&["run", "-d", "--name", name, "idle:1.0"]);
    }
    d.wrun_ok(&["create", "--name", "fourth", "idle:1.0"]);

    let start = d.wrun(&["start", "fourth"]);
    assert!(!start.status.success(), "a start past capacity succeeded");
    let err = stderr(&start);
    assert!(
        err.contains("instance capacity reached: all 3 instance slots are in use")
            && err.contains("--max-instances"),
        "the refusal names the limit and what raises it: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        state(&d, "fourth").starts_with("created "),
        "{}",
        state(&d, "fourth")
    );

    // The API answers the start itself with the refusal.
    let (status, body) = d.request("POST", "/containers/fourth/start", "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"message\":\"cannot start fourth: instance capacity reached"));

    // `run -d` fails the same way, with docker's exit code for a failed run.
    let run = d.wrun(&["run", "-d", "--name", "fifth", "idle:1.0"]);
    assert_eq!(run.status.code(), Some(125), "{}", stderr(&run));
    assert!(stderr(&run).contains("instance capacity reached"));
    assert!(state(&d, "fifth").starts_with("created "));

    // One created with --rm is removed, as dockerd removes it.
    let run = d.wrun(&["run", "-d", "--rm", "--name", "gone", "idle:1.0"]);
    assert_eq!(run.status.code(), Some(125), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("instance capacity reached"),
        "{}",
        stderr(&run)
    );
    let names = d.wrun_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        !names.contains("gone") && names.contains("fifth"),
        "{names}"
    );

    if have_tool("docker") {
        let out = d.docker(&["start", "fourth"]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(
                "Error response from daemon: cannot start fourth: instance capacity reached"
            ),
            "{}",
            stderr(&out)
        );
    }

    // A slot freed is a start allowed.
    d.wrun_ok(&["stop", "one"]);
    d.wrun_ok(&["start", "fourth"]);
    assert!(state(&d, "fourth").starts_with("running "));
    let info = d.wrun_ok(&["info"]);
    assert!(
        info.contains("  Instances: 3\n  In Use: 3\n  Bound By: --max-instances\n"),
        "{info}"
    );
}

#[test]
fn a_start_that_cannot_happen_fails_and_leaves_the_instance_as_it_was() {
    let env = idle_env();
    let vol = env.path("vol");
    std::fs::create_dir(&vol).unwrap();
    let d = Daemon::start_with(env, &[]);
    let bind = format!("{}:/data", vol.display());
    d.wrun_ok(&["create", "--name", "nodir", "-v", &bind, "idle:1.0"]);
    std::fs::remove_dir(&vol).unwrap();
    let out = d.wrun(&["start", "nodir"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let s = state(&d, "nodir");
    assert!(
        s.starts_with("created 125 ") && s.contains("does not exist"),
        "{s}"
    );
    let (status, body) = d.request("POST", "/containers/nodir/start", "");
    assert_eq!(status, 400, "{body}");

    // Its image gone.
    d.wrun_ok(&["tag", "idle:1.0", "doomed:1"]);
    d.wrun_ok(&["create", "--name", "noimage", "doomed:1"]);
    d.wrun_ok(&["rmi", "-f", "doomed:1", "idle:1.0"]);
    let (status, body) = d.request("POST", "/containers/noimage/start", "");
    assert_eq!(status, 404, "{body}");
    let s = state(&d, "noimage");
    assert!(
        s.starts_with("created ") && s.contains("No such image"),
        "{s}"
    );
    // No run was announced for either.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let until = now.to_string();
    let events = d.wrun_ok(&[
        "events", "--since", "0", "--until", &until, "--format", "json",
    ]);
    assert!(events.contains("\"Action\":\"create\""), "{events}");
    assert!(!events.contains("\"Action\":\"start\""), "{events}");
    assert!(!events.contains("\"Action\":\"die\""), "{events}");
}

#[test]
fn memory_over_the_daemons_cap_is_refused_at_create() {
    let d = Daemon::start_with(idle_env(), &["--max-instance-memory", "64m"]);
    let out = d.wrun(&["create", "--name", "big", "-m", "100m", "idle:1.0"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("over this daemon's --max-instance-memory of 67108864 bytes"),
        "{}",
        stderr(&out)
    );
    let (status, body) = d.request(
        "POST",
        "/containers/create",
        r#"{"Image":"idle:1.0","HostConfig":{"Memory":107374182400}}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        !d.wrun_ok(&["ps", "-a", "-q"])
            .contains(char::is_alphanumeric)
    );
    d.wrun_ok(&["create", "--name", "fits", "-m", "64m", "idle:1.0"]);
}

#[test]
fn the_default_capacity_comes_from_the_host_and_an_instance_costs_two_mappings() {
    let d = Daemon::start_with(idle_env(), &[]);
    let max_map_count: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&d.request("GET", "/info", "").1).unwrap();
    let cap = &info["WrunCapacity"];
    let instances = cap["Instances"].as_u64().unwrap();
    let mem_total = info["MemTotal"].as_u64().unwrap();
    let expected = ((max_map_count - 4096) / 2)
        .min(mem_total / (64 << 10))
        .min(1_000_000);
    assert_eq!(instances, expected, "{cap}");
    assert_ne!(cap["Bound"], "--max-instances");
    let labels = info["Labels"].to_string();
    assert!(
        labels.contains(&format!("wrun.capacity.instances={instances}")),
        "{labels}"
    );

    // What the sizing assumes: a live instance costs its stack's two
    // mappings, its memory none of its own.
    let pid = d.child.as_ref().unwrap().id();
    let maps = || {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap()
            .lines()
            .count()
    };
    d.wrun_ok(&["run", "-d", "idle:1.0"]); // warm: module compiled and mapped
    let before = maps();
    let n = 200;
    for _ in 0..n {
        let (status, body) = d.request("POST", "/containers/create", r#"{"Image":"idle:1.0"}"#);
        assert_eq!(status, 201, "{body}");
        let id: serde_json::Value = serde_json::from_str(&body).unwrap();
        let (status, body) = d.request(
            "POST",
            &format!("/containers/{}/start", id["Id"].as_str().unwrap()),
            "",
        );
        assert_eq!(status, 204, "{body}");
    }
    let added = maps().saturating_sub(before);
    assert!(
        added <= n * 2 + 64,
        "{n} idle instances added {added} mappings (the sizing assumes 2 each)"
    );
}

#[test]
fn info_and_version_show_the_daemon_and_say_when_there_is_none() {
    let d = Daemon::start_with(idle_env(), &["--max-instances", "7"]);
    d.wrun_ok(&["run", "-d", "--name", "alpha", "idle:1.0"]);
    let info = d.wrun_ok(&["info"]);
    for line in [
        " Containers: 1\n  Running: 1\n",
        " Default Runtime: wasmtime\n",
        "  Instances: 7\n  In Use: 1\n",
        &format!(" Root Dir: {}\n", d.env.root().display()),
    ] {
        assert!(info.contains(line), "{line:?} not in:\n{info}");
    }
    assert_eq!(
        d.wrun_ok(&[
            "info",
            "--format",
            "{{.WrunCapacity.Instances}} {{.ContainersRunning}}"
        ]),
        "7 1\n"
    );
    let version = d.wrun_ok(&["version"]);
    assert!(
        version.starts_with("Client:\n Version:           "),
        "{version}"
    );
    assert!(version.contains("\nServer: wrun\n Engine:\n"), "{version}");
    assert!(
        version.contains(" wasmtime:\n  Version:          "),
        "{version}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&d.wrun_ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(v["Client"]["Version"], v["Server"]["Version"]);

    if have_tool("docker") {
        let info = d.docker_ok(&["info"]);
        assert!(info.contains("wrun.capacity.instances=7"), "{info}");
        assert!(info.contains("wrun.capacity.in-use=1"), "{info}");
        let version = d.docker_ok(&["version"]);
        assert!(version.contains(" wasmtime:\n  Version:"), "{version}");
    }

    // No daemon: the client part, then why the server part is missing.
    let out = d
        .env
        .cmd()
        .env(
            "WRUN_HOST",
            format!("unix://{}", d.env.path("none.sock").display()),
        )
        .arg("version")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Client:\n"));
    assert!(
        stderr(&out).contains("cannot connect to the wrun daemon"),
        "{}",
        stderr(&out)
    );
    assert!(
        !d.env.path("none.sock").exists(),
        "version started a daemon"
    );
}
