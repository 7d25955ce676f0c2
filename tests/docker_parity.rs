#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! The stock docker client (and the Docker SDK for Python, and raw API
//! requests) against wrun's daemon, where wrun must answer as dockerd
//! 20.10 does: each expectation below was read from a dockerd on this
//! machine kind first (the create merge, inspect's `LogConfig`, `Mounts`
//! and sizes, `/info`'s keys, prune's sub-requests, the router's 404, the
//! order of kill's checks), or, where wrun cannot do what a field asks,
//! checks that it says so instead of dropping the field.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, Env, FS_COPY_DIR, HELLO_DIR, IDLE_DIR, have_tool};
use serde_json::{Value, json};

/// A daemon whose store holds hello:1.0, idle:1.0 and fs-copy:1.0.
fn daemon() -> Option<Daemon> {
    if !have_tool("docker") {
        return None;
    }
    let env = Env::new();
    env.build("hello:1.0", HELLO_DIR);
    env.build("idle:1.0", IDLE_DIR);
    env.build("fs-copy:1.0", FS_COPY_DIR);
    Some(Daemon::start(env))
}

/// One raw HTTP/1.1 request (`Connection: close`, answers not chunked);
/// returns the status, the head (lower-cased) and the body.
fn exchange(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: wrun\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok());
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        status.unwrap_or(0),
        head.to_ascii_lowercase(),
        body.to_string(),
    )
}

fn raw(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = exchange(d, method, path, body);
    (status, body)
}

fn raw_json(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = raw(d, method, path, body);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}"));
    (status, v)
}

fn inspect(d: &Daemon, name: &str) -> Value {
    let (status, v) = raw_json(d, "GET", &format!("/containers/{name}/json"), "");
    assert_eq!(status, 200, "{v}");
    v
}

/// Runs docker expecting a refusal with dockerd's exit code (1 for
/// `create`, 125 for `run`); returns stderr.
fn refused(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "docker {args:?} should fail");
    let code = if args[0] == "run" { 125 } else { 1 };
    assert_eq!(out.status.code(), Some(code), "docker {args:?}: {err}");
    err
}

#[test]
fn create_merges_the_image_config_as_dockerd_does() {
    let Some(d) = daemon() else { return };
    // hello:1.0: Entrypoint ["/hello.wasm"], Cmd ["world"], Env
    // ["GREETING=Hello"], WorkingDir "/", a title label.
    d.docker_ok(&[
        "create",
        "--name",
        "merged",
        "-e",
        "A=user",
        "-e",
        "GREETING=Hi",
        "-l",
        "team=edge",
        "hello:1.0",
    ]);
    let v = inspect(&d, "merged");
    let c = &v["Config"];
    // dockerd: the request's variables first, then the image's it does not name.
    assert_eq!(c["Env"], json!(["A=user", "GREETING=Hi"]));
    assert_eq!(c["Cmd"], json!(["world"]));
    assert_eq!(c["Entrypoint"], json!(["/hello.wasm"]));
    assert_eq!(c["WorkingDir"], "/");
    assert_eq!(c["Labels"]["team"], "edge");
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "hello");
    assert_eq!(v["Path"], "/hello.wasm");
    assert_eq!(v["Args"], json!(["world"]));
    // What is shown is what runs.
    let out = d.docker_ok(&["start", "-a", "merged"]);
    assert_eq!(out.trim(), "Hi, world!");

    // An entrypoint given drops the image's Cmd (dockerd: `Cmd: null`).
    d.docker_ok(&[
        "create",
        "--name",
        "ep",
        "--entrypoint",
        "/hello.wasm",
        "hello:1.0",
    ]);
    let v = inspect(&d, "ep");
    assert_eq!(v["Config"]["Cmd"], Value::Null);
    assert_eq!(v["Args"], json!([]));
    // `--entrypoint ""`: no entrypoint at all, shown as null; the Cmd runs.
    d.docker_ok(&[
        "create",
        "--name",
        "noep",
        "--entrypoint",
        "",
        "hello:1.0",
        "/hello.wasm",
        "Ann",
    ]);
    let v = inspect(&d, "noep");
    assert_eq!(v["Config"]["Entrypoint"], Value::Null);
    assert_eq!(v["Config"]["Cmd"], json!(["/hello.wasm", "Ann"]));
    assert_eq!(d.docker_ok(&["start", "-a", "noep"]).trim(), "Hello, Ann!");
    // A restarted daemon reads the merged records and runs them the same.
    let mut d = d;
    let out = d.wrun(&["daemon", "--stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.child.take().unwrap().wait().unwrap();
    let child = d
        .env
        .cmd()
        .args(["daemon", "--socket", d.socket.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    d.child = Some(child);
    d.wait_until_up();
    assert_eq!(d.docker_ok(&["start", "-a", "noep"]).trim(), "Hello, Ann!");
    let out = d.docker_ok(&["start", "-a", "merged"]);
    assert_eq!(out.trim(), "Hi, world!");

    // dockerd shows the log driver it writes, and sizes only when asked.
    let v = inspect(&d, "merged");
    assert_eq!(
        v["HostConfig"]["LogConfig"],
        json!({"Type": "json-file", "Config": {}})
    );
    assert!(
        v.get("SizeRw").is_none() && v.get("SizeRootFs").is_none(),
        "{v}"
    );
    // Every key dockerd's inspect has, empty where a wasm instance has nothing.
    for key in [
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "MountLabel",
        "ProcessLabel",
        "AppArmorProfile",
        "ExecIDs",
        "GraphDriver",
    ] {
        assert!(v.get(key).is_some(), "inspect lacks {key}");
    }
    assert_eq!(v["HostConfig"]["Runtime"], "wasmtime");
    assert!(
        v["Config"].get("ExposedPorts").is_none(),
        "dockerd omits an empty set"
    );
    let ip = d.docker_ok(&[
        "inspect",
        "-f",
        "[{{.NetworkSettings.IPAddress}}]",
        "merged",
    ]);
    assert_eq!(ip.trim(), "[]");
    let (_, sized) = raw_json(&d, "GET", "/containers/merged/json?size=1", "");
    assert_eq!(sized["SizeRw"], 0);
    assert!(sized["SizeRootFs"].as_i64().unwrap() > 0, "{sized}");
    let shown = d.docker_ok(&[
        "inspect",
        "-s",
        "-f",
        "{{.SizeRw}} {{.SizeRootFs}}",
        "merged",
    ]);
    assert!(
        shown.starts_with("0 ") && !shown.trim().ends_with(" 0"),
        "{shown}"
    );
    let shown = d.wrun_ok(&["inspect", "-s", "-f", "{{json .SizeRw}}", "merged"]);
    assert_eq!(shown.trim(), "0");
}

#[test]
fn the_python_sdk_reads_a_foreground_runs_output() {
    let Some(d) = daemon() else { return };
    let sdk = Command::new("python3")
        .args(["-c", "import docker"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !sdk {
        eprintln!("skipping: python3 has no Docker SDK");
        return;
    }
    // docker-py reads the output of `run(detach=False)` only from a
    // json-file (or journald, local) log; with any other driver it
    // returns None.
    let script = "import docker, sys\n\
        c = docker.DockerClient(base_url=sys.argv[1])\n\
        print(c.containers.run('hello:1.0', ['Bob'], remove=True).decode().strip())\n";
    let out = Command::new("python3")
        .args(["-c", script, &d.host()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Hello, Bob!");

    // docker-py (and docker-compose on it) names each bind's guest path in
    // Config.Volumes too: a bound path is no anonymous volume.
    let out_dir = d.env.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let script = "import docker, sys\n\
        c = docker.DockerClient(base_url=sys.argv[1])\n\
        c.containers.run('fs-copy:1.0', volumes={sys.argv[2]: {'bind': '/out', 'mode': 'rw'}}, remove=True)\n";
    let out = Command::new("python3")
        .args(["-c", script, &d.host(), out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_dir.join("words.txt").is_file());
}

#[test]
fn mounts_bind_like_binds_and_other_types_are_refused_in_dockerds_words() {
    let Some(d) = daemon() else { return };
    let out = d.env.path("out");
    std::fs::create_dir(&out).unwrap();
    let bind = format!("type=bind,source={},target=/out", out.display());
    // fs-copy copies /share/words.txt into /out: only a granted /out works.
    d.docker_ok(&["run", "--name", "copy", "--mount", &bind, "fs-copy:1.0"]);
    assert!(
        out.join("words.txt").is_file(),
        "the bind mount was not applied"
    );
    let v = inspect(&d, "copy");
    assert_eq!(
        v["Mounts"],
        json!([{"Type": "bind", "Source": out.display().to_string(), "Destination": "/out",
                "Mode": "", "RW": true, "Propagation": "rprivate"}])
    );
    assert_eq!(v["HostConfig"]["Mounts"][0]["Target"], "/out");

    std::fs::remove_file(out.join("words.txt")).unwrap();
    let read_only = format!("{bind},readonly");
    let ran = d.docker(&["run", "--rm", "--mount", &read_only, "fs-copy:1.0"]);
    assert!(!ran.status.success(), "a read-only mount was written");
    assert!(!out.join("words.txt").exists());

    let err = refused(
        &d,
        &["create", "--mount", "type=volume,target=/data", "hello:1.0"],
    );
    assert!(
        err.contains("invalid mount config for type \"volume\""),
        "{err}"
    );
    let err = refused(
        &d,
        &[
            "create",
            "--mount",
            "type=npipe,source=/a,target=/b",
            "hello:1.0",
        ],
    );
    assert!(
        err.contains("invalid mount config for type \"npipe\": mount type unknown"),
        "{err}"
    );
    let missing = format!("type=bind,source={}/nope,target=/x", out.display());
    let err = refused(&d, &["create", "--mount", &missing, "hello:1.0"]);
    assert!(err.contains("bind source path does not exist"), "{err}");
    let twice = format!("{bind},target=/x");
    let err = refused(
        &d,
        &[
            "create",
            "--mount",
            &twice,
            "-v",
            &format!("{}:/x", out.display()),
            "hello:1.0",
        ],
    );
    assert!(err.contains("Duplicate mount point: /x"), "{err}");
    // A tmpfs mount is wrun's private /tmp.
    d.docker_ok(&[
        "create",
        "--name",
        "tmp",
        "--mount",
        "type=tmpfs,target=/tmp",
        "hello:1.0",
    ]);
    let v = inspect(&d, "tmp");
    assert_eq!(v["Mounts"][0]["Type"], "tmpfs");
    // The image's VOLUME with nothing bound there: an anonymous volume,
    // as dockerd makes (tests/volumes.rs has the rest).
    let out = d.docker(&["create", "--name", "novol", "fs-copy:1.0"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("WARNING"), "{err}");
    let v = inspect(&d, "novol");
    assert_eq!(v["Config"]["Volumes"], json!({"/out": {}}));
    assert_eq!(v["Mounts"][0]["Type"], "volume");
    assert_eq!(v["Mounts"][0]["Destination"], "/out");
    let out = d.docker(&["create", "--mount", &bind, "fs-copy:1.0"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("WARNING"));
    // wrun's own CLI takes --mount too.
    d.wrun_ok(&[
        "create",
        "--name",
        "wrun-bind",
        "--mount",
        &bind,
        "fs-copy:1.0",
    ]);
    assert_eq!(inspect(&d, "wrun-bind")["Mounts"][0]["Destination"], "/out");
}

#[test]
fn fields_wrun_cannot_honour_are_refused_or_warned_never_dropped() {
    let Some(d) = daemon() else { return };
    for (flags, says) in [
        (&["-u", "4242"][..], "user \"4242\" cannot be applied"),
        (&["--privileged"], "privileged mode is not supported"),
        (&["--cpus", "1"], "NanoCPUs can not be set"),
        (&["--health-cmd", "true"], "health checks are not supported"),
        (&["--cap-add", "NET_ADMIN"], "capabilities cannot be added"),
        (&["--device", "/dev/null"], "devices cannot be given"),
        (
            &["--sysctl", "net.core.somaxconn=1"],
            "sysctls are not supported",
        ),
        (&["--pid", "host"], "PID mode \"host\" is not supported"),
        (&["--dns", "1.1.1.1"], "custom name resolution"),
        (
            &["--volume-driver", "nfs"],
            "VolumeDriver \"nfs\" is not supported",
        ),
        (&["--runtime", "runc"], "Unknown runtime specified runc"),
        (
            &["--ip", "10.1.2.3"],
            "a user specified IP address cannot be given",
        ),
        (
            &["--mac-address", "02:42:ac:11:00:02"],
            "MacAddress cannot be set",
        ),
    ] {
        let args: Vec<&str> = ["create"]
            .iter()
            .chain(flags)
            .chain(&["hello:1.0"])
            .copied()
            .collect();
        let err = refused(&d, &args);
        assert!(err.contains(says), "{flags:?}: {err}");
    }
    assert!(
        d.docker_ok(&["ps", "-aq"]).trim().is_empty(),
        "a refused create left an instance"
    );

    // Discarded with a warning the docker client prints, and not kept.
    let out = d.docker(&[
        "create",
        "--name",
        "warned",
        "--init",
        "--shm-size",
        "1g",
        "--cpu-shares",
        "512",
        "--ulimit",
        "nofile=10:10",
        "hello:1.0",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for says in [
        "Init discarded",
        "ShmSize discarded",
        "CPU shares discarded",
        "Ulimits discarded",
    ] {
        assert!(err.contains(&format!("WARNING: {says}")), "{says}: {err}");
    }
    let h = &inspect(&d, "warned")["HostConfig"];
    assert!(h.get("Init").is_none(), "{h}");
    assert_eq!(
        (&h["ShmSize"], &h["CpuShares"], &h["Ulimits"]),
        (&json!(0), &json!(0), &Value::Null)
    );
    // What the field asks is already so: accepted without a word.
    let out = d.docker(&[
        "create",
        "--cap-drop",
        "ALL",
        "--pids-limit",
        "5",
        "--no-healthcheck",
        "hello:1.0",
    ]);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("WARNING"));
}

#[test]
fn info_reports_the_host_and_every_key_dockerd_does() {
    let Some(d) = daemon() else { return };
    let (status, info) = raw_json(&d, "GET", "/info", "");
    assert_eq!(status, 200);
    // The keys of dockerd 20.10's /info on this machine kind.
    for key in [
        "ID",
        "Containers",
        "ContainersRunning",
        "ContainersPaused",
        "ContainersStopped",
        "Images",
        "Driver",
        "DriverStatus",
        "Plugins",
        "MemoryLimit",
        "SwapLimit",
        "KernelMemory",
        "KernelMemoryTCP",
        "CpuCfsPeriod",
        "CpuCfsQuota",
        "CPUShares",
        "CPUSet",
        "PidsLimit",
        "IPv4Forwarding",
        "BridgeNfIptables",
        "BridgeNfIp6tables",
        "Debug",
        "NFd",
        "OomKillDisable",
        "NGoroutines",
        "SystemTime",
        "LoggingDriver",
        "CgroupDriver",
        "CgroupVersion",
        "NEventsListener",
        "KernelVersion",
        "OperatingSystem",
        "OSVersion",
        "OSType",
        "Architecture",
        "IndexServerAddress",
        "RegistryConfig",
        "NCPU",
        "MemTotal",
        "GenericResources",
        "DockerRootDir",
        "HttpProxy",
        "HttpsProxy",
        "NoProxy",
        "Name",
        "Labels",
        "ExperimentalBuild",
        "ServerVersion",
        "Runtimes",
        "DefaultRuntime",
        "Swarm",
        "LiveRestoreEnabled",
        "Isolation",
        "InitBinary",
        "ContainerdCommit",
        "RuncCommit",
        "InitCommit",
        "SecurityOptions",
        "Warnings",
    ] {
        assert!(info.get(key).is_some(), "/info lacks {key}: {info}");
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(info["MemTotal"], kib * 1024);
    assert!(info["NCPU"].as_i64().unwrap() >= 1);
    assert_eq!(info["LoggingDriver"], "json-file");
    let id = info["ID"].as_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(raw_json(&d, "GET", "/info", "").1["ID"], id, "a stable ID");
    assert_eq!(info["Swarm"]["LocalNodeState"], "inactive");
    assert!(
        info["Runtimes"]
            .get(info["DefaultRuntime"].as_str().unwrap())
            .is_some()
    );
    let shown = d.docker_ok(&["info", "--format", "{{.MemTotal}} {{.NCPU}}"]);
    assert_eq!(shown.trim(), format!("{} {}", kib * 1024, info["NCPU"]));
}

#[test]
fn system_prune_runs_end_to_end() {
    let Some(d) = daemon() else { return };
    d.docker_ok(&["create", "--name", "stopped", "hello:1.0"]);
    d.docker_ok(&["run", "-d", "--name", "running", "idle:1.0"]);
    d.docker_ok(&["system", "prune", "-f"]);
    let left = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), "running");
    // Each sub-request answers as dockerd's: empty results, filters checked.
    let (status, v) = raw_json(&d, "POST", "/networks/prune", "");
    assert_eq!((status, v), (200, json!({"NetworksDeleted": null})));
    let (status, v) = raw_json(&d, "POST", "/build/prune", "");
    assert_eq!(
        (status, v),
        (200, json!({"CachesDeleted": null, "SpaceReclaimed": 0}))
    );
    let (status, v) = raw_json(&d, "POST", "/containers/prune", "");
    assert_eq!((status, &v["ContainersDeleted"]), (200, &Value::Null));
    let bad = "filters=%7B%22nope%22%3A%7B%22x%22%3Atrue%7D%7D";
    for (path, says) in [
        ("/containers/prune", "Invalid filter 'nope'"),
        ("/networks/prune", "Invalid filter 'nope'"),
        (
            "/build/prune",
            "failed to prune build cache: Invalid filter 'nope'",
        ),
    ] {
        let (status, v) = raw_json(&d, "POST", &format!("{path}?{bad}"), "");
        assert_eq!(
            (status, v["message"].as_str().unwrap()),
            (400, says),
            "{path}"
        );
    }
    // Docker's prune filters: labels select, `until` spares the new.
    d.docker_ok(&["create", "--name", "keep", "-l", "keep=1", "hello:1.0"]);
    d.docker_ok(&["create", "--name", "drop", "hello:1.0"]);
    d.docker_ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    d.docker_ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    let left = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut left: Vec<&str> = left.lines().collect();
    left.sort_unstable();
    assert_eq!(left, ["keep", "running"]);

    // Filters go to every sub-request; image prune takes label and until too.
    let images = d.docker_ok(&["images", "-q"]);
    d.docker_ok(&[
        "system",
        "prune",
        "-a",
        "-f",
        "--filter",
        "label=nope",
        "--filter",
        "until=1h",
    ]);
    assert_eq!(
        d.docker_ok(&["images", "-q"]),
        images,
        "no image has label nope"
    );
    d.docker_ok(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        "label=org.opencontainers.image.title=fs-copy",
    ]);
    let left = d.docker_ok(&["images", "--format", "{{.Repository}}"]);
    assert!(
        !left.contains("fs-copy") && left.contains("hello"),
        "{left}"
    );

    // wrun's own system prune starts with the daemon's stopped instances.
    let out = d.wrun_ok(&["system", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(),
        "running"
    );
    d.docker_ok(&["rm", "-f", "running"]);
}

#[test]
fn router_and_kill_refuse_in_dockerds_order_and_words() {
    let Some(d) = daemon() else { return };
    // A known path with a method it does not take: dockerd's 404.
    for (method, path) in [
        ("PUT", "/v1.41/containers/json"),
        ("PUT", "/containers/json"),
        ("GET", "/containers/abc/start"),
        ("DELETE", "/nope"),
    ] {
        let (status, v) = raw_json(&d, method, path, "");
        assert_eq!(
            (status, v),
            (404, json!({"message": "page not found"})),
            "{method} {path}"
        );
        // Outside the API's versioning, as dockerd: no API-Version header.
        let (_, head, _) = exchange(&d, method, path, "");
        assert!(!head.contains("api-version:"), "{head}");
    }
    let (_, head, _) = exchange(&d, "GET", "/containers/json", "");
    assert!(head.contains("api-version:"), "{head}");
    // dockerd checks the signal before it looks for the container.
    let out = d.docker(&["kill", "-s", "NOPE", "nosuch"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Invalid signal: NOPE"), "{err}");
    let (status, _) = raw(&d, "POST", "/containers/nosuch/kill?signal=NOPE", "");
    assert_eq!(status, 400);
}
