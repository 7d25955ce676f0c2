#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! Debian's docker-compose 1.29 against the daemon (issue 21), as a user
//! drives it: `up -d` with `depends_on`, `ps` (each service once), `logs`
//! and `logs -f`, `exec -T`, `restart`, `stop`, `down` (its network and,
//! with `-v`, its volumes removed), `run --rm`, `--scale api=3`,
//! `environment`, `ports`, `volumes`, `labels`; the network events
//! compose's `up` and `down` cause; and the tutorial of `examples/compose`,
//! whose front calls its API service by name, which a handler off the
//! project's network cannot. The network test of `up`/`down` alone is in
//! tests/networks.rs.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::http_client::get;
use common::{Daemon, Env, have_tool, poll};
use serde_json::Value;

const HELLO_HTTP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello-http");
const IDLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/idle");
const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");
const TUTORIAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/compose/docker-compose.yml"
);

/// A daemon whose store holds hello-http:1.0, idle:1.0 and fsh:1 (the file
/// shell); `None` (the test skips) without docker-compose.
fn daemon() -> Option<Daemon> {
    if !have_tool("docker-compose") {
        return None;
    }
    let env = Env::new();
    env.build("hello-http:1.0", HELLO_HTTP);
    env.build("idle:1.0", IDLE);
    let fsh = env.path("fsh");
    std::fs::create_dir_all(&fsh).unwrap();
    std::fs::copy(FSH, fsh.join("fsh.wasm")).unwrap();
    std::fs::write(
        fsh.join("wrun.toml"),
        "name = \"fsh\"\nmodule = \"fsh.wasm\"\n",
    )
    .unwrap();
    env.build("fsh:1", fsh.to_str().unwrap());
    Some(Daemon::start(env))
}

/// One compose project: its file in a directory of its own.
struct Project<'a> {
    d: &'a Daemon,
    name: &'static str,
    dir: PathBuf,
    file: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl<'a> Project<'a> {
    fn new(d: &'a Daemon, name: &'static str, yaml: &str) -> Self {
        let dir = d.env.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("docker-compose.yml");
        std::fs::write(&file, yaml).unwrap();
        Project {
            d,
            name,
            dir,
            file,
            env: Vec::new(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new("docker-compose")
            .args(["-p", self.name, "-f", self.file.to_str().unwrap()])
            .args(args)
            .current_dir(&self.dir)
            .env("DOCKER_HOST", self.d.host())
            .env("DOCKER_CONFIG", self.d.env.path("docker-config"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    /// Runs `docker-compose ARGS`, failing the test unless it succeeds;
    /// (stdout, stderr): compose tells its progress on stderr.
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        (text(&out.stdout), text(&out.stderr))
    }

    /// `docker-compose ps`'s rows: (name, state), the header left out.
    fn ps(&self) -> Vec<(String, String)> {
        let (out, _) = self.ok(&["ps"]);
        out.lines()
            .skip(2)
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let name = l.split_whitespace().next().unwrap().to_string();
                let state = if l.contains(" Up ") || l.trim_end().ends_with(" Up") {
                    "Up".to_string()
                } else if l.contains(" Exit ") {
                    "Exit".to_string()
                } else {
                    l.to_string()
                };
                (name, state)
            })
            .collect()
    }

    /// Where `docker-compose port SERVICE PORT` says the port is published.
    fn port(&self, service: &str, port: &str) -> SocketAddr {
        let (out, _) = self.ok(&["port", service, port]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("port {service} {port}: {out:?}: {e}"))
    }
}

fn inspect(d: &Daemon, what: &str, name: &str) -> Value {
    let path = match what {
        "networks" | "volumes" => format!("/v1.41/{what}/{name}"),
        _ => format!("/v1.41/{what}/{name}/json"),
    };
    let (status, body) = d.request("GET", &path, "");
    assert_eq!(status, 200, "{what} {name}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn is_gone(d: &Daemon, what: &str, name: &str) -> bool {
    let path = match what {
        "networks" | "volumes" => format!("/v1.41/{what}/{name}"),
        _ => format!("/v1.41/{what}/{name}/json"),
    };
    d.request("GET", &path, "").0 == 404
}

const FRONT_AND_API: &str = r#"version: "3.8"
services:
  web:
    image: hello-http:1.0
    ports:
      - "127.0.0.1::80"
    environment:
      GREETING: hi from compose
    labels:
      tier: front
    depends_on:
      - api
  api:
    image: idle:1.0
    command: ["3600"]
    labels:
      tier: back
"#;

#[test]
fn up_starts_dependencies_first_and_applies_environment_ports_and_labels() {
    let Some(d) = daemon() else { return };
    let p = Project::new(&d, "fa", FRONT_AND_API);
    let (_, up) = p.ok(&["up", "-d"]);
    // depends_on: the API is up before the front is created.
    let api_done = up.find("Creating fa_api_1 ... done").expect(&up);
    let web_created = up.find("Creating fa_web_1").expect(&up);
    assert!(api_done < web_created, "{up}");
    // ps: each service once, both up.
    assert_eq!(
        p.ps(),
        [
            ("fa_api_1".to_string(), "Up".to_string()),
            ("fa_web_1".to_string(), "Up".to_string())
        ]
    );
    assert_eq!(p.ok(&["ps", "--services"]).0, "api\nweb\n");
    // ports and environment: the front answers on the published port with
    // the variable compose gave it.
    let addr = p.port("web", "80");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_eq!(
        get(addr, "/env?GREETING"),
        (200, "hi from compose\n".to_string())
    );
    // labels: on the instance, beside compose's own, and filterable.
    let web = inspect(&d, "containers", "fa_web_1");
    assert_eq!(web["Config"]["Labels"]["tier"], "front");
    assert_eq!(web["Config"]["Labels"]["com.docker.compose.service"], "web");
    let front = d.docker_ok(&[
        "ps",
        "--filter",
        "label=tier=front",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(front, "fa_web_1\n");
    p.ok(&["down"]);
    assert!(is_gone(&d, "containers", "fa_web_1"));
    assert!(is_gone(&d, "networks", "fa_default"));
}

const WITH_WORKER: &str = r#"version: "3.8"
services:
  api:
    image: idle:1.0
    command: ["3600"]
  worker:
    image: fsh:1
    command: ["write", "/data/out", "hello from the worker", ";", "cat", "/data/out"]
    volumes:
      - data:/data
volumes:
  data:
"#;

#[test]
fn logs_restart_stop_and_down_with_its_network_and_volume() {
    let Some(d) = daemon() else { return };
    let p = Project::new(&d, "lw", WITH_WORKER);
    p.ok(&["up", "-d"]);
    let logs = poll(
        "the worker's output in logs",
        Duration::from_secs(60),
        || {
            let (out, _) = p.ok(&["logs", "--no-color", "worker"]);
            if out.contains("worker_1  | hello from the worker") {
                Ok(out)
            } else {
                Err(out)
            }
        },
    );
    assert!(!logs.contains("api_1"), "{logs}");
    // logs -f: the same line, then it follows until stopped.
    let mut follow = std::process::Command::new("docker-compose")
        .args(["-p", p.name, "-f", p.file.to_str().unwrap()])
        .args(["logs", "-f", "--no-color", "worker"])
        .current_dir(&p.dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.env.path("docker-config"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("logs -f did not print the worker's line");
        if line.contains("hello from the worker") {
            break;
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    // exec -T: a second instance of the service's module beside it (-t,
    // compose's default, needs a terminal the test has not).
    assert_eq!(
        p.ok(&["exec", "-T", "api", "/idle.wasm", "0"]).0,
        "ready\ndone\n"
    );
    // restart: the API runs again, started anew.
    let started = |name: &str| inspect(&d, "containers", name)["State"]["StartedAt"].clone();
    let before = started("lw_api_1");
    let (_, restart) = p.ok(&["restart", "api"]);
    assert!(
        restart.contains("Restarting lw_api_1 ... done"),
        "{restart}"
    );
    let api = inspect(&d, "containers", "lw_api_1");
    assert_eq!(api["State"]["Running"], true);
    assert_ne!(api["State"]["StartedAt"], before);
    // stop: nothing left running, the instances kept.
    p.ok(&["stop"]);
    for (name, state) in p.ps() {
        assert_eq!(state, "Exit", "{name}");
    }
    // down -v: instances, the project's network and its named volume go.
    let (_, down) = p.ok(&["down", "-v"]);
    assert!(down.contains("Removing network lw_default"), "{down}");
    assert!(down.contains("Removing volume lw_data"), "{down}");
    assert!(is_gone(&d, "containers", "lw_api_1"));
    assert!(is_gone(&d, "containers", "lw_worker_1"));
    assert!(is_gone(&d, "networks", "lw_default"));
    assert!(is_gone(&d, "volumes", "lw_data"));
}

#[test]
fn run_rm_reads_the_named_volume_and_leaves_no_instance() {
    let Some(d) = daemon() else { return };
    let p = Project::new(&d, "rr", WITH_WORKER);
    p.ok(&["up", "-d", "worker"]);
    poll(
        "the worker to finish",
        Duration::from_secs(60),
        || match inspect(&d, "containers", "rr_worker_1")["State"]["Status"].as_str() {
            Some("exited") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let (out, _) = p.ok(&["run", "--rm", "worker", "cat", "/data/out"]);
    assert_eq!(out.trim_end(), "hello from the worker");
    let all = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(all, "rr_worker_1\n", "the one-off instance is left: {all}");
    p.ok(&["down", "-v"]);
}

#[test]
fn scale_runs_three_replicas_each_under_the_service_alias() {
    let Some(d) = daemon() else { return };
    let p = Project::new(&d, "sc", FRONT_AND_API);
    p.ok(&["up", "-d", "--scale", "api=3"]);
    let names: Vec<String> = p.ps().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["sc_api_1", "sc_api_2", "sc_api_3", "sc_web_1"]);
    let mut addresses = Vec::new();
    for n in 1..=3 {
        let c = inspect(&d, "containers", &format!("sc_api_{n}"));
        assert_eq!(c["State"]["Running"], true);
        let e = &c["NetworkSettings"]["Networks"]["sc_default"];
        assert_eq!(e["Aliases"][0], "api", "{e}");
        addresses.push(e["IPAddress"].as_str().unwrap().to_string());
    }
    addresses.dedup();
    assert_eq!(addresses.len(), 3, "{addresses:?}");
    p.ok(&["up", "-d", "--scale", "api=1"]);
    assert_eq!(p.ps().len(), 2);
    assert!(is_gone(&d, "containers", "sc_api_3"));
    p.ok(&["down"]);
}

/// Now as `docker events --since` takes it: Unix seconds and nanoseconds.
fn unix_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// `docker events` while compose brings a project up and down: the
/// network's create, each instance's connect and disconnect, its destroy,
/// as dockerd words them (Type network, Actor.ID the network's ID, the
/// name, type and container attributes).
#[test]
fn compose_up_and_down_show_dockers_network_events() {
    let Some(d) = daemon() else { return };
    let start = unix_now();
    let p = Project::new(&d, "ev", FRONT_AND_API);
    p.ok(&["up", "-d"]);
    let network = inspect(&d, "networks", "ev_default")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let ids: Vec<String> = ["ev_api_1", "ev_web_1"]
        .iter()
        .map(|n| {
            inspect(&d, "containers", n)["Id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    p.ok(&["down"]);
    let until = unix_now();
    let events = |filter: &str| -> Vec<Value> {
        d.docker_ok(&[
            "events",
            "--since",
            &start,
            "--until",
            &until,
            "--filter",
            filter,
            "--format",
            "{{json .}}",
        ])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
    };
    let seen = events("type=network");
    let actions: Vec<&str> = seen.iter().map(|e| e["Action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "connect",
            "connect",
            "disconnect",
            "disconnect",
            "destroy"
        ],
        "{seen:?}"
    );
    for e in &seen {
        assert_eq!(e["Type"], "network");
        assert_eq!(e["Actor"]["ID"], network.as_str());
        assert_eq!(e["Actor"]["Attributes"]["name"], "ev_default");
        assert_eq!(e["Actor"]["Attributes"]["type"], "bridge");
        assert_eq!(e["scope"], "local");
        let container = e["Actor"]["Attributes"]["container"].as_str();
        match e["Action"].as_str().unwrap() {
            "connect" | "disconnect" => {
                assert!(ids.iter().any(|id| Some(id.as_str()) == container), "{e}");
            }
            _ => assert_eq!(container, None, "{e}"),
        }
    }
    // The same events by the network's name, and none for another name.
    assert_eq!(events("network=ev_default").len(), 6);
    assert!(events("network=nope").is_empty());
}

/// A free port on 127.0.0.1 for the tutorial's front.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// examples/compose: the front, on a published port, fetches
/// `http://api/env?ROLE` from the API service by name; the API publishes
/// no port, so only the in-process network reaches it.
#[test]
fn the_compose_tutorial_front_calls_the_api_by_name() {
    let Some(d) = daemon() else { return };
    let yaml = std::fs::read_to_string(TUTORIAL).unwrap();
    let mut p = Project::new(&d, "tut", &yaml);
    let port = free_port();
    p.env.push(("WEB_PORT", port.to_string()));
    p.ok(&["up", "-d"]);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(p.port("web", "80"), front);
    let api = inspect(&d, "containers", "tut_api_1");
    // Exposed, published nowhere (dockerd's null).
    let ports = &api["NetworkSettings"]["Ports"];
    assert_eq!(*ports, serde_json::json!({"80/tcp": null}), "{api}");
    let answer = poll("the front's answer", Duration::from_secs(60), || {
        let got = get(front, "/fetch?http://api/env?ROLE");
        if got.0 == 200 {
            Ok(got.1)
        } else {
            Err(format!("{got:?}"))
        }
    });
    assert_eq!(answer, "200 api\n");
    // The front itself answers as the front.
    assert_eq!(get(front, "/env?ROLE"), (200, "web\n".to_string()));
    p.ok(&["down"]);
    assert!(is_gone(&d, "networks", "tut_default"));
}

/// The attack: an HTTP handler on no network (or on another one) asks for
/// a project's API by its service name and by its network address.
#[test]
fn a_front_off_the_projects_network_cannot_reach_its_api() {
    let Some(d) = daemon() else { return };
    let yaml = std::fs::read_to_string(TUTORIAL).unwrap();
    let mut p = Project::new(&d, "own", &yaml);
    p.env.push(("WEB_PORT", free_port().to_string()));
    p.ok(&["up", "-d"]);
    let api = inspect(&d, "containers", "own_api_1");
    let address = api["NetworkSettings"]["Networks"]["own_default"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    d.docker_ok(&["network", "create", "elsewhere"]);
    // bridge: wrun's default, on no network.
    for network in ["bridge", "elsewhere"] {
        let name = format!("outsider-{network}");
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            network,
            "-p",
            "127.0.0.1::80",
            "hello-http:1.0",
        ]);
        let port = d.docker_ok(&["port", &name, "80"]);
        let outsider: SocketAddr = port.lines().next().unwrap().trim().parse().unwrap();
        for url in ["http://api/env?ROLE", &format!("http://{address}/env?ROLE")] {
            let (status, body) = get(outsider, &format!("/fetch?{url}"));
            assert_eq!(status, 502, "{network} reached {url}: {body}");
            assert!(!body.contains("api"), "{network}, {url}: {body}");
        }
        d.docker_ok(&["rm", "-f", &name]);
    }
    p.ok(&["down"]);
}
