#![allow(clippy::unwrap_used)]
//! The in-process network through `wasi:sockets`: echo-tcp guests on a
//! network find each other by name, alias and address and talk with no
//! host socket; a guest on another network, a port nobody listens on and
//! a disconnect get what Linux would give.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CaptureSink, capture, prepare_file, repo_path, runtime, start_instance};
use wrun_runtime::peer_net::{PeerAddr, Route};
use wrun_runtime::{
    InstanceSpec, NetworkGrants, PeerDirectory, PeerNet, PreparedModule, RunOutcome, Runtime,
};

/// One instance on one network (10.N.0.0/24), with the names it answers to.
struct Member {
    instance: &'static str,
    network: u8,
    addr: Ipv4Addr,
    names: Vec<&'static str>,
}

/// A directory as the daemon's network table answers: names and addresses
/// of the instances on the networks the asking one is on.
#[derive(Default)]
struct Table(Mutex<Vec<Member>>);

impl Table {
    fn join(&self, instance: &'static str, network: u8, host: u8, names: &[&'static str]) {
        self.0.lock().unwrap().push(Member {
            instance,
            network,
            addr: Ipv4Addr::new(10, network, 0, host),
            names: names.to_vec(),
        });
    }

    fn leave(&self, instance: &str) {
        self.0.lock().unwrap().retain(|m| m.instance != instance);
    }

    fn networks_of(&self, instance: &str) -> Vec<u8> {
        let members = self.0.lock().unwrap();
        members
            .iter()
            .filter(|m| m.instance == instance)
            .map(|m| m.network)
            .collect()
    }
}

impl PeerDirectory for Table {
    fn resolve(&self, instance: &str, name: &str) -> Vec<PeerAddr> {
        let mine = self.networks_of(instance);
        let members = self.0.lock().unwrap();
        members
            .iter()
            .filter(|m| mine.contains(&m.network) && m.names.contains(&name))
            .map(|m| PeerAddr {
                instance: m.instance.into(),
                addr: m.addr,
            })
            .collect()
    }

    fn route(&self, instance: &str, addr: IpAddr) -> Route {
        let IpAddr::V4(v4) = addr else {
            return Route::Host;
        };
        let [10, network, 0, _] = v4.octets() else {
            return Route::Host;
        };
        let members = self.0.lock().unwrap();
        let from = members
            .iter()
            .find(|m| m.instance == instance && m.network == network);
        let to = members.iter().find(|m| m.addr == v4);
        match (from, to) {
            (Some(f), Some(t)) => Route::Peer {
                peer: t.instance.into(),
                from: f.addr,
            },
            _ => Route::Unreachable,
        }
    }

    fn own_addresses(&self, instance: &str) -> Vec<Ipv4Addr> {
        let members = self.0.lock().unwrap();
        members
            .iter()
            .filter(|m| m.instance == instance)
            .map(|m| m.addr)
            .collect()
    }
}

struct World {
    rt: Runtime,
    _scratch: tempfile::TempDir,
    module: PreparedModule,
    table: Arc<Table>,
    net: PeerNet,
}

/// `server` (aliases `web`) on network 0 at 10.0.0.3, `client` on network
/// 0 at 10.0.0.2, `stranger` alone on network 1.
fn world() -> World {
    let (rt, scratch) = runtime(8);
    let module = prepare_file(&rt, &repo_path("examples/echo-tcp/echo-tcp.wasm"));
    let table = Arc::new(Table::default());
    table.join("server", 0, 3, &["server", "web"]);
    table.join("client", 0, 2, &["client"]);
    table.join("stranger", 1, 2, &["stranger"]);
    let net = PeerNet::new(table.clone());
    World {
        rt,
        _scratch: scratch,
        module,
        table,
        net,
    }
}

impl World {
    fn spec(&self, instance: &str, args: &[&str]) -> InstanceSpec {
        let mut spec = InstanceSpec::new(std::iter::once("echo-tcp").chain(args.iter().copied()));
        spec.network = NetworkGrants {
            peers: Some(self.net.attach(instance)),
            ..NetworkGrants::default()
        };
        spec
    }

    async fn server(
        &self,
    ) -> (
        tokio::task::JoinHandle<Result<RunOutcome, wrun_runtime::RuntimeError>>,
        Arc<CaptureSink>,
    ) {
        start_instance(
            &self.rt,
            &self.module,
            self.spec("server", &[]),
            "listening",
        )
        .await
    }

    /// Runs echo-tcp as `instance` with `args` to its end: (exit code,
    /// stdout, stderr).
    async fn run(&self, instance: &str, args: &[&str]) -> (i32, String, String) {
        let (out, out_target) = capture();
        let (err, err_target) = capture();
        let spec = self
            .spec(instance, args)
            .stdout(out_target)
            .stderr(err_target);
        let outcome = self.rt.run(&self.module, spec).await.unwrap();
        let RunOutcome::Exited(code) = outcome else {
            panic!("echo-tcp {args:?}: {outcome:?}");
        };
        (code, out.text(), err.text())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reaches_a_peer_by_name_alias_and_address_in_process() {
    let w = world();
    let (server, out) = w.server().await;
    // Every address: the guest sees what it bound.
    assert!(
        out.text().contains("listening on 0.0.0.0:7"),
        "{}",
        out.text()
    );
    for target in ["server:7", "web:7", "10.0.0.3:7"] {
        let (code, stdout, stderr) = w.run("client", &["connect", target, "ping"]).await;
        assert_eq!(code, 0, "{target}: {stderr}");
        assert_eq!(stdout, "echoed: ping\n", "{target}");
    }
    server.abort();
    let _ = server.await;
    assert_eq!(w.net.open_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_on_another_network_can_neither_resolve_nor_reach_a_peer() {
    let w = world();
    let (server, _) = w.server().await;
    let (code, _, stderr) = w.run("stranger", &["connect", "server:7", "x"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot connect to server:7"), "{stderr}");
    let (code, _, stderr) = w.run("stranger", &["connect", "10.0.0.3:7", "x"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("HostUnreachable"), "{stderr}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_nobody_listens_on_is_refused() {
    let w = world();
    let (server, _) = w.server().await;
    let (code, _, stderr) = w.run("client", &["connect", "server:8", "x"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("ConnectionRefused"), "{stderr}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_address_never_reaches_the_host_even_when_granted() {
    let w = world();
    // 10.0.0.9 is on the client's network and nobody holds it; the grant
    // of all of 10.0.0.0/8 must not send the connect to the host.
    let mut spec = w.spec("client", &["connect", "10.0.0.9:7", "x"]);
    spec.network.connect = vec!["10.0.0.0/8".parse().unwrap()];
    let (err, target) = capture();
    let outcome = w.rt.run(&w.module, spec.stderr(target)).await.unwrap();
    assert_eq!(outcome, RunOutcome::Exited(1));
    assert!(err.text().contains("HostUnreachable"), "{}", err.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_leaves_is_no_longer_found_and_one_that_joins_is() {
    let w = world();
    let (server, _) = w.server().await;
    w.table.leave("server");
    let (code, _, stderr) = w.run("client", &["connect", "server:7", "x"]).await;
    assert_eq!(code, 1, "{stderr}");
    w.table.join("server", 0, 3, &["server"]);
    let (code, stdout, stderr) = w.run("client", &["connect", "server:7", "back"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "echoed: back\n");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_resets_the_open_connection_at_both_ends() {
    let w = world();
    let (server, server_out) = w.server().await;
    let (holder, held) = start_instance(
        &w.rt,
        &w.module,
        w.spec("client", &["hold", "server:7"]),
        "connected",
    )
    .await;
    w.net.disconnected("server", Ipv4Addr::new(10, 0, 0, 3));
    let deadline = Instant::now() + Duration::from_secs(30);
    // The stream failed (`connection-reset` at the WASI level; wasi-libc
    // makes every failed read EIO), it did not end cleanly.
    while !held.text().contains("failed: ") {
        assert!(Instant::now() < deadline, "no reset: {:?}", held.text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(holder.await.unwrap().unwrap(), RunOutcome::Exited(0));
    server.abort();
    let _ = server_out;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_leave_nothing_open() {
    let w = world();
    let (server, _) = w.server().await;
    let (code, stdout, stderr) = w.run("client", &["connect", "web:7", "x", "1000"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "echoed: x\n");
    // The server's last connection may still be ending.
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.net.open_connections() != 0 {
        assert!(Instant::now() < deadline, "connections left open");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_echo_whole_over_many_connections() {
    // 64 KiB a message, 200 times: each side waits on the pipe often
    // (its reads are shorter than the message).
    let w = world();
    let (server, _) = w.server().await;
    let message = "w".repeat(64 << 10);
    let (code, stdout, stderr) = w
        .run("client", &["connect", "server:7", &message, "200"])
        .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.len(), "echoed: \n".len() + message.len());
    server.abort();
}
