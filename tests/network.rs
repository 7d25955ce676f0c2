#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! End to end: networking through the `wrun` binary and the daemon as users
//! drive them — echo-tcp published on loopback, two instances on one guest
//! port, each network attack docs/networking.md lists denied, clear errors for a taken
//! host port, a core module given grants, and bad flags; and the stock
//! docker client's `run -p`, `port` and `ps` against the daemon.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::net_probe::{assert_denied, line};
use common::*;

const ECHO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/echo-tcp");
const NET_PROBE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/runtime/tests/guests/net-probe.wasm"
);

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A store holding echo-tcp:1.0.
fn echo_env() -> Env {
    Env::with_image("echo-tcp:1.0", ECHO_DIR)
}

/// A store holding net-probe:1.0 (one network attempt per argument).
fn probe_env() -> Env {
    let env = Env::new();
    let dir = env.path("net-probe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(NET_PROBE, dir.join("net-probe.wasm")).unwrap();
    std::fs::write(
        dir.join("wrun.toml"),
        "name = \"net-probe\"\nmodule = \"net-probe.wasm\"\n",
    )
    .unwrap();
    env.build("net-probe:1.0", dir.to_str().unwrap());
    env
}

/// A foreground `wrun run` that is killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `wrun run ARGS` in the background; returns once it printed a line with
/// `ready` on stdout.
fn start(env: &Env, args: &[&str], ready: &str) -> Running {
    let mut child = env
        .cmd()
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let running = Running(child);
    let first = first_line(out);
    assert!(first.contains(ready), "wrun run {args:?} printed {first:?}");
    running
}

/// The first line of a child's output, or "" if none comes within 30 s (a
/// test never hangs on a silent child).
fn first_line(stream: impl Read + Send + 'static) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let line = BufReader::new(stream).lines().next().and_then(Result::ok);
        let _ = tx.send(line.unwrap_or_default());
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default()
}

/// Sends `message`, closes the sending side, reads everything back.
fn round_trip(addr: SocketAddr, message: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connect {addr}: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(message).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    back
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn echo_tcp_published_on_loopback_answers_over_127_0_0_1() {
    let env = echo_env();
    let port = free_port();
    let _echo = start(
        &env,
        &["-p", &format!("127.0.0.1:{port}:7"), "echo-tcp:1.0"],
        "listening on 127.0.0.1:7",
    );
    assert_eq!(round_trip(addr(port), b"hello echo"), b"hello echo");
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    assert_eq!(round_trip(addr(port), &big), big);
}

#[test]
fn two_instances_binding_guest_port_7_run_at_once_on_different_host_ports() {
    let env = echo_env();
    let (p1, p2) = (free_port(), free_port());
    let _a = start(
        &env,
        &["-p", &format!("127.0.0.1:{p1}:7"), "echo-tcp:1.0"],
        "listening",
    );
    let _b = start(
        &env,
        &["-p", &format!("127.0.0.1:{p2}:7"), "echo-tcp:1.0"],
        "listening",
    );
    assert_eq!(round_trip(addr(p1), b"one"), b"one");
    assert_eq!(round_trip(addr(p2), b"two"), b"two");
}

#[test]
fn publish_all_publishes_the_ports_the_image_exposes() {
    let env = echo_env(); // its wrun.toml exposes 7/tcp
    let mut child = env
        .cmd()
        .args(["run", "-P", "echo-tcp:1.0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let _running = Running(child);
    let note = first_line(err);
    // "publishing 7/tcp -> 0.0.0.0:PORT"
    let landed: SocketAddr = note
        .strip_prefix("publishing 7/tcp -> ")
        .unwrap_or_else(|| panic!("no publishing note: {note:?}"))
        .parse()
        .unwrap();
    assert_eq!(round_trip(addr(landed.port()), b"all"), b"all");
}

#[test]
fn a_host_port_already_in_use_is_a_clear_error_at_start() {
    let env = echo_env();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = env.run(&["run", "-p", &format!("127.0.0.1:{port}:7"), "echo-tcp:1.0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 125, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn a_core_module_given_ports_or_grants_fails_with_one_line() {
    let env = Env::new();
    env.build_hello("hello:1.0");
    for flags in [
        vec!["-p", "127.0.0.1::8080"],
        vec!["--allow-connect", "10.0.0.1:80"],
        vec!["--allow-dns"],
    ] {
        let args: Vec<&str> = std::iter::once("run")
            .chain(flags.iter().copied())
            .chain(["hello:1.0"])
            .collect();
        let out = env.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 125, "{flags:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{flags:?}: the guest ran");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("core modules"), "{stderr}");
    }
}

#[test]
fn bad_network_flags_are_refused_with_the_value() {
    let env = echo_env();
    for (flags, says) in [
        (vec!["-p", "8080:80/sctp"], "sctp"),
        (vec!["-p", "1:2:3:4"], "1:2:3:4"),
        (vec!["--allow-connect", "bad_host:80"], "bad_host"),
        (vec!["--allow-connect", "10.0.0.0/40"], "prefix"),
        (vec!["--network", "overlay"], "overlay"),
        (vec!["--network", "none", "-p", "7"], "conflicts"),
        (vec!["-p", "8080:7", "-p", "8081:7"], "already published"),
    ] {
        let args: Vec<&str> = std::iter::once("run")
            .chain(flags.iter().copied())
            .chain(["echo-tcp:1.0"])
            .collect();
        let out = env.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 125, "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
}

/// Runs the probe with grant flags then attempts; returns its stdout.
fn probe(env: &Env, flags: &[&str], attempts: &[&str]) -> String {
    let args: Vec<&str> = std::iter::once("run")
        .chain(flags.iter().copied())
        .chain(["net-probe:1.0"])
        .chain(attempts.iter().copied())
        .collect();
    env.ok(&args)
}

/// A listener that must not be reached.
fn bait() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn reached(l: &TcpListener) -> bool {
    match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

#[test]
fn connect_to_loopback_without_a_grant_is_denied() {
    let env = probe_env();
    let (l, port) = bait();
    let text = probe(&env, &[], &[&format!("connect:127.0.0.1:{port}")]);
    assert_denied(&text, "connect 127.0.0.1");
    assert!(!reached(&l), "the guest reached a loopback listener");
}

#[test]
fn connect_to_the_metadata_address_is_denied() {
    let env = probe_env();
    // Even with another destination granted.
    let text = probe(
        &env,
        &["--allow-connect", "127.0.0.1:9"],
        &["connect:169.254.169.254:80"],
    );
    assert_denied(&text, "connect 169.254.169.254:80");
}

#[test]
fn connect_to_an_ungranted_port_is_denied_and_the_granted_one_works() {
    let env = probe_env();
    let (granted, gport) = bait();
    let (other, oport) = bait();
    let text = probe(
        &env,
        &["--allow-connect", &format!("127.0.0.1:{gport}")],
        &[
            &format!("connect:127.0.0.1:{oport}"),
            &format!("connect:127.0.0.1:{gport}"),
        ],
    );
    assert_denied(&text, &format!("connect 127.0.0.1:{oport}"));
    assert!(!reached(&other), "an ungranted port was reached");
    assert!(line(&text, &format!("connect 127.0.0.1:{gport}")).contains(": ok"));
    assert!(reached(&granted));
}

#[test]
fn dns_without_allow_dns_is_denied() {
    let env = probe_env();
    let without = probe(&env, &["--allow-connect", "127.0.0.1"], &["dns:localhost"]);
    assert!(
        line(&without, "dns localhost").contains(": err"),
        "{without}"
    );
    let with = probe(&env, &["--allow-dns"], &["dns:localhost"]);
    assert!(line(&with, "dns localhost").contains(": ok"), "{with}");
}

#[test]
fn binding_an_unpublished_port_is_denied() {
    let env = probe_env();
    let port = free_port();
    let text = probe(
        &env,
        &["-p", &format!("127.0.0.1:{port}:8080")],
        &[
            "listen:0.0.0.0:8081",
            "listen:0.0.0.0:0",
            "listen:0.0.0.0:8080",
        ],
    );
    assert_denied(&text, "listen 0.0.0.0:8081");
    assert_denied(&text, "listen 0.0.0.0:0");
    assert_eq!(
        line(&text, "listen 0.0.0.0:8080"),
        "listen 0.0.0.0:8080: ok 127.0.0.1:8080"
    );
}

#[test]
fn a_guest_opening_sockets_in_a_loop_gets_a_per_instance_error() {
    let env = probe_env();
    let text = probe(&env, &["--allow-udp"], &["sockets:100000"]);
    assert!(
        text.starts_with("sockets 100000: opened 256 then err"),
        "{text}"
    );
}

#[test]
fn the_docker_client_publishes_a_port_and_sees_it_in_port_ps_and_inspect() {
    if !have_tool("docker") {
        return;
    }
    let d = Daemon::start(echo_env());
    let port = free_port();
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-p",
        &format!("127.0.0.1:{port}:7"),
        "echo-tcp:1.0",
    ]);
    assert!(!id.trim().is_empty());
    assert_eq!(round_trip(addr(port), b"via docker"), b"via docker");

    let mapped = format!("127.0.0.1:{port}");
    assert_eq!(
        d.docker_ok(&["port", "echo"]).trim(),
        format!("7/tcp -> {mapped}")
    );
    assert_eq!(d.docker_ok(&["port", "echo", "7"]).trim(), mapped);
    assert_eq!(d.wrun_ok(&["port", "echo", "7/tcp"]).trim(), mapped);
    let ps = d.docker_ok(&["ps"]);
    assert!(ps.contains(&format!("{mapped}->7/tcp")), "{ps}");
    let wps = d.wrun_ok(&["ps"]);
    assert!(wps.contains(&format!("{mapped}->7/tcp")), "{wps}");
    let bindings = d.docker_ok(&["inspect", "-f", "{{json .HostConfig.PortBindings}}", "echo"]);
    assert_eq!(
        bindings.trim(),
        format!(r#"{{"7/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port}"}}]}}"#)
    );
    let network = d.wrun_ok(&["inspect", "-f", "{{.NetworkSettings.WrunNetwork}}", "echo"]);
    assert_eq!(network.trim(), "bind 7/tcp");

    // A second instance on the same host port: refused at start, clearly.
    let out = d.docker(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:7"),
        "echo-tcp:1.0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(code(&out), 0);
    assert!(stderr.contains("already in use"), "{stderr}");
    // The first still answers.
    assert_eq!(round_trip(addr(port), b"still"), b"still");

    // A port left to the kernel shows where it landed.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "any",
        "-p",
        "127.0.0.1::7",
        "echo-tcp:1.0",
    ]);
    let landed = d.docker_ok(&["port", "any", "7"]);
    let landed: SocketAddr = landed.trim().parse().unwrap();
    assert_ne!(landed.port(), 0);
    assert_eq!(round_trip(landed, b"anywhere"), b"anywhere");

    // -P publishes what the image exposes (7/tcp) on a kernel-picked port.
    d.docker_ok(&["run", "-d", "--name", "all", "-P", "echo-tcp:1.0"]);
    let landed: SocketAddr = d.docker_ok(&["port", "all", "7"]).trim().parse().unwrap();
    assert!(landed.ip().is_unspecified(), "{landed}");
    assert_eq!(round_trip(addr(landed.port()), b"published"), b"published");

    // Stopped: no ports shown any more.
    d.docker_ok(&["stop", "echo"]);
    assert_eq!(d.docker_ok(&["port", "echo"]).trim(), "");
}

#[test]
fn the_docker_client_sees_a_loud_host_network() {
    if !have_tool("docker") {
        return;
    }
    let d = Daemon::start(echo_env());
    let out = d.docker(&[
        "create",
        "--name",
        "wide",
        "--network",
        "host",
        "echo-tcp:1.0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 0, "{stderr}");
    assert!(stderr.contains("unrestricted network access"), "{stderr}");
    let mode = d.docker_ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "wide"]);
    assert_eq!(mode.trim(), "host");
    let network = d.wrun_ok(&["inspect", "-f", "{{.NetworkSettings.WrunNetwork}}", "wide"]);
    assert!(network.starts_with("UNRESTRICTED"), "{network}");
    // The docker client's own default (bridge) is wrun's: no network.
    d.docker_ok(&["create", "--name", "plain", "echo-tcp:1.0"]);
    let network = d.wrun_ok(&["inspect", "-f", "{{.NetworkSettings.WrunNetwork}}", "plain"]);
    assert_eq!(network.trim(), "none: no socket, no name lookup");
}
