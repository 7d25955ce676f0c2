#![allow(clippy::unwrap_used)]
//! Network grants in the runtime: nothing by default; each grant opens
//! exactly what it names; a published guest port lands on its host port; a
//! core module given grants is refused. Each attack on the grants is a test
//! named after it.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::net_probe::{assert_denied, line};
use common::{CaptureSink, capture, guest_path, prepare_file, repo_path, runtime, start_instance};
use wrun_runtime::net::ConnectRule;
use wrun_runtime::{
    InstanceSpec, NetworkGrants, PortMapping, PreparedModule, RunOutcome, Runtime, RuntimeError,
};

/// A listener the guest must not reach unless granted; `reached` says
/// whether anything connected to it.
struct Bait {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Bait {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        Self { listener, addr }
    }

    fn reached(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn rule(s: &str) -> ConnectRule {
    s.parse().unwrap()
}

fn mapping(s: &str) -> PortMapping {
    s.parse().unwrap()
}

/// Runs net-probe with these attempts and grants; returns its output.
fn probe(grants: NetworkGrants, attempts: &[&str]) -> String {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &guest_path("net-probe"));
    let (out, target) = capture();
    let mut spec = InstanceSpec::new(std::iter::once("net-probe").chain(attempts.iter().copied()))
        .stdout(target);
    spec.network = grants;
    let outcome = rt.run_blocking(&module, spec).unwrap();
    let text = out.text();
    assert_eq!(outcome, RunOutcome::Exited(0), "{text}");
    text
}

#[test]
fn component_cannot_connect_to_a_loopback_listener_by_default() {
    let bait = Bait::new();
    let addr = bait.addr.to_string();
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &guest_path("net-probe"));
    let (out, target) = capture();
    let outcome = rt
        .run_blocking(
            &module,
            InstanceSpec::new(["net-probe", &addr]).stdout(target),
        )
        .unwrap();
    let text = out.text();
    assert_eq!(outcome, RunOutcome::Exited(0), "network reachable: {text}");
    // Refused by the sandbox's policy, not merely unimplemented.
    assert!(
        text.contains(&format!("tcp-connect {addr}: err PermissionDenied")),
        "{text}"
    );
    assert!(text.contains("dns localhost: err"), "{text}");
    assert!(
        !bait.reached(),
        "the guest's connection reached the listener"
    );
}

#[test]
fn connect_to_loopback_metadata_or_an_ungranted_port_is_denied() {
    let granted = Bait::new();
    let other = Bait::new();
    let grants = NetworkGrants {
        connect: vec![rule(&granted.addr.to_string())],
        ..NetworkGrants::default()
    };
    let text = probe(
        grants,
        &[
            &format!("connect:{}", other.addr),
            "connect:169.254.169.254:80",
            &format!("connect:[::ffff:127.0.0.1]:{}", other.addr.port()),
            &format!("connect:{}", granted.addr),
        ],
    );
    assert_denied(&text, &format!("connect {}", other.addr));
    assert_denied(&text, "connect 169.254.169.254:80");
    // wasmtime-wasi refuses IPv4-mapped IPv6 destinations outright.
    assert!(
        line(&text, "connect [::ffff:127.0.0.1]").contains(": err"),
        "{text}"
    );
    assert!(!other.reached(), "an ungranted port was reached");
    assert!(
        line(&text, &format!("connect {}", granted.addr)).contains(": ok"),
        "{text}"
    );
    assert!(granted.reached(), "the granted connection never arrived");
}

#[test]
fn connect_grants_by_network_and_by_host_name_cover_only_what_they_name() {
    let bait = Bait::new();
    let port = bait.addr.port();
    // localhost resolves (on the host, at start) to 127.0.0.1: granted.
    let by_name = probe(
        NetworkGrants {
            connect: vec![rule(&format!("localhost:{port}"))],
            ..NetworkGrants::default()
        },
        &[
            &format!("connect:127.0.0.1:{port}"),
            &format!("connect:127.0.0.1:{}", port.wrapping_add(1).max(1)),
        ],
    );
    assert!(
        line(&by_name, "connect 127.0.0.1").contains(": ok"),
        "{by_name}"
    );
    assert_denied(
        &by_name,
        &format!("connect 127.0.0.1:{}", port.wrapping_add(1).max(1)),
    );
    assert!(bait.reached());

    let by_net = probe(
        NetworkGrants {
            connect: vec![rule("10.0.0.0/8")],
            ..NetworkGrants::default()
        },
        &[&format!("connect:127.0.0.1:{port}")],
    );
    assert_denied(&by_net, "connect 127.0.0.1");
    assert!(!bait.reached());
}

#[test]
fn dns_without_allow_dns_is_denied() {
    let without = probe(
        NetworkGrants {
            connect: vec![rule("127.0.0.1")],
            ..NetworkGrants::default()
        },
        &["dns:localhost"],
    );
    assert!(
        line(&without, "dns localhost").contains(": err"),
        "{without}"
    );
    let with = probe(
        NetworkGrants {
            dns: true,
            ..NetworkGrants::default()
        },
        &["dns:localhost"],
    );
    assert!(line(&with, "dns localhost").contains(": ok"), "{with}");
}

#[test]
fn binding_an_unpublished_port_is_denied() {
    let mut grants = NetworkGrants {
        publish: vec![mapping("127.0.0.1::8080")],
        udp: true,
        ..NetworkGrants::default()
    };
    grants.claim_host_ports().unwrap();
    let text = probe(
        grants,
        &[
            "listen:0.0.0.0:8081",
            "listen:0.0.0.0:0",
            "listen:127.0.0.1:8081",
            "udp-bind:0.0.0.0:5353",
            "listen:0.0.0.0:8080",
        ],
    );
    assert_denied(&text, "listen 0.0.0.0:8081");
    assert_denied(&text, "listen 0.0.0.0:0");
    assert_denied(&text, "listen 127.0.0.1:8081");
    assert_denied(&text, "udp-bind 0.0.0.0:5353");
    // The published one binds, and the guest sees its own port.
    assert_eq!(
        line(&text, "listen 0.0.0.0:8080"),
        "listen 0.0.0.0:8080: ok 127.0.0.1:8080"
    );
}

#[test]
fn udp_needs_its_grant_and_sends_only_to_granted_addresses() {
    let no_udp = probe(
        NetworkGrants {
            connect: vec![rule("127.0.0.1")],
            ..NetworkGrants::default()
        },
        &["udp-bind:0.0.0.0:0"],
    );
    assert_denied(&no_udp, "udp-bind");

    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = sink.local_addr().unwrap();
    let text = probe(
        NetworkGrants {
            udp: true,
            connect: vec![rule(&to.to_string())],
            ..NetworkGrants::default()
        },
        &[
            "udp-send:169.254.169.254:53",
            &format!("udp-send:127.0.0.1:{}", to.port().wrapping_add(1).max(1)),
            &format!("udp-send:{to}"),
        ],
    );
    assert_denied(&text, "udp-send 169.254.169.254:53");
    assert_denied(
        &text,
        &format!("udp-send 127.0.0.1:{}", to.port().wrapping_add(1).max(1)),
    );
    assert!(
        line(&text, &format!("udp-send {to}")).contains(": ok"),
        "{text}"
    );
    let mut buf = [0u8; 16];
    let (n, _) = sink.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"probe");
}

#[test]
fn host_network_allows_any_address_and_lookup() {
    let bait = Bait::new();
    let text = probe(
        NetworkGrants {
            host: true,
            ..NetworkGrants::default()
        },
        &[
            &format!("connect:{}", bait.addr),
            "dns:localhost",
            "listen:127.0.0.1:0",
        ],
    );
    assert!(line(&text, "connect").contains(": ok"), "{text}");
    assert!(line(&text, "dns").contains(": ok"), "{text}");
    assert!(line(&text, "listen").contains(": ok"), "{text}");
    assert!(bait.reached());
}

#[test]
fn core_module_given_network_grants_is_refused_before_it_runs() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &repo_path("examples/hello/hello.wasm"));
    let mut spec = InstanceSpec::new(["hello"]);
    spec.network.publish.push(mapping("8080:80"));
    match rt.run_blocking(&module, spec) {
        Err(e @ RuntimeError::NetworkNeedsComponent) => {
            assert!(e.to_string().contains("core modules"), "{e}");
        }
        other => panic!("a core module with -p ran: {other:?}"),
    }
}

#[test]
fn host_port_in_use_is_an_error_at_instance_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &repo_path("examples/echo-tcp/echo-tcp.wasm"));
    let mut spec = InstanceSpec::new(["echo-tcp"]);
    spec.network
        .publish
        .push(mapping(&format!("127.0.0.1:{port}:7")));
    match rt.run_blocking(&module, spec) {
        Err(e @ RuntimeError::Publish(_)) => {
            let text = e.to_string();
            assert!(text.contains("already in use"), "{text}");
            assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        }
        other => panic!("started on a taken port: {other:?}"),
    }
}

/// Starts `module` with `args`, publishing the one `mapping` (its host port
/// left to the kernel); returns once its output shows `ready`, with the task
/// (abort it to stop the instance), the host address and the output.
async fn start_published(
    rt: &Runtime,
    module: &PreparedModule,
    args: &[&str],
    mapping: PortMapping,
    ready: &str,
) -> (
    tokio::task::JoinHandle<Result<RunOutcome, RuntimeError>>,
    SocketAddr,
    Arc<CaptureSink>,
) {
    let mut grants = NetworkGrants {
        publish: vec![mapping],
        ..NetworkGrants::default()
    };
    grants.claim_host_ports().unwrap();
    let addr = grants.publish[0].host_addr();
    let mut spec = InstanceSpec::new(args.iter().copied());
    spec.network = grants;
    let (task, sink) = start_instance(rt, module, spec, ready).await;
    (task, addr, sink)
}

fn round_trip(addr: SocketAddr, message: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(message).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_binding_the_same_guest_port_run_at_once_on_their_host_ports() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &repo_path("examples/echo-tcp/echo-tcp.wasm"));
    // Guest port 7 published twice, on kernel-picked 127.0.0.1 ports.
    let echo = || {
        start_published(
            &rt,
            &module,
            &["echo-tcp"],
            mapping("127.0.0.1::7"),
            "listening",
        )
    };
    let (a, addr_a, out_a) = echo().await;
    let (b, addr_b, out_b) = echo().await;
    assert_ne!(addr_a, addr_b);
    // Each guest bound its port 7 and sees port 7, not the host port.
    for out in [&out_a, &out_b] {
        assert!(
            out.text().contains("listening on 127.0.0.1:7\n"),
            "{}",
            out.text()
        );
    }
    let (back_a, back_b) = tokio::task::spawn_blocking(move || {
        (
            round_trip(addr_a, b"to the first"),
            round_trip(addr_b, &[7u8; 100_000]),
        )
    })
    .await
    .unwrap();
    assert_eq!(back_a, b"to the first");
    assert_eq!(back_b, vec![7u8; 100_000]);
    for t in [a, b] {
        t.abort();
        assert!(t.await.unwrap_err().is_cancelled());
    }
    // Stopping the instances frees their host ports.
    for addr in [addr_a, addr_b] {
        TcpListener::bind(addr).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_udp_port_answers_the_peer_that_wrote_to_it() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &guest_path("net-probe"));
    let (task, host, sink) = start_published(
        &rt,
        &module,
        &["net-probe", "udp-echo:0.0.0.0:5353"],
        mapping("127.0.0.1::5353/udp"),
        "bound",
    )
    .await;
    // The guest bound its port 5353 and sees it; the host port received.
    assert!(
        sink.text().starts_with("bound 127.0.0.1:5353\n"),
        "{}",
        sink.text()
    );
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    peer.send_to(b"ping", host).await.unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = tokio::time::timeout(Duration::from_secs(10), peer.recv_from(&mut buf))
        .await
        .expect("no answer from the published UDP port")
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], host));
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome, RunOutcome::Exited(0), "{}", sink.text());
    assert!(sink.text().contains("echoed 4 bytes"), "{}", sink.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_connections_count_toward_the_per_instance_socket_cap() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &guest_path("net-probe"));
    let (task, host, sink) = start_published(
        &rt,
        &module,
        &["net-probe", "accept:0.0.0.0:8080"],
        mapping("127.0.0.1::8080"),
        "bound",
    )
    .await;
    // More clients than the cap; the guest holds each one it accepts.
    let clients = tokio::task::spawn_blocking(move || {
        let mut open = Vec::new();
        for _ in 0..wrun_runtime::MAX_SOCKETS + 20 {
            match TcpStream::connect_timeout(&host, Duration::from_secs(2)) {
                Ok(s) => open.push(s),
                Err(_) => break,
            }
        }
        open
    });
    // Past the cap the guest's accept fails and it ends; without a cap it
    // would wait for more clients.
    let outcome = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the guest accepted every client: no cap")
        .unwrap()
        .unwrap();
    drop(clients.await.unwrap());
    let text = sink.text();
    assert_eq!(outcome, RunOutcome::Exited(0), "{text}");
    // The listener is one of the instance's sockets.
    let limit = wrun_runtime::MAX_SOCKETS - 1;
    assert!(
        text.contains(&format!("accept 0.0.0.0:8080: accepted {limit} then err")),
        "{text}"
    );
}
