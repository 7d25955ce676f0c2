#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! End to end: serverless HTTP through the `wrun` binary and the daemon as
//! users drive them — hello-http served in the foreground and with `-d`,
//! many clients at once, the per-request deadline, the body cap, slow-loris
//! clients, a taken host port, graceful stop, the stock docker client; and
//! `fetch` reaching a granted server while ungranted ports, names and the
//! metadata address are denied.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http_client::{exchange, get};
use common::*;

const HELLO_HTTP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello-http");
const FETCH_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fetch");

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

/// A foreground `wrun run -p …` of hello-http, killed when dropped; its
/// stderr (start-up line, access log) is collected.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(env: &Env, flags: &[&str]) -> Server {
        let mut child = env
            .cmd()
            .args(["run", "-p", "127.0.0.1::80"])
            .args(flags)
            .arg("hello-http:1.0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().map(|l| l.unwrap()).unwrap_or_default();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in the start-up line {first:?}"));
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Server {
            child,
            addr,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr (the guest's and the access log) shows `text`.
    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit code within `within`.
    fn terminate(&mut self, within: Duration) -> i32 {
        let pid = self.child.id().to_string();
        let out = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .output()
            .unwrap();
        assert!(out.status.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "still running after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hello_env() -> Env {
    Env::with_image("hello-http:1.0", HELLO_HTTP_DIR)
}

#[test]
fn hello_http_in_the_foreground_answers_with_the_path_and_logs_each_request() {
    let env = hello_env();
    let server = Server::start(&env, &[]);
    assert_eq!(
        get(server.addr, "/greet/me?x=1"),
        (200, "Hello from wrun: /greet/me\n".to_string())
    );
    server.wait_for("\"GET /greet/me?x=1 HTTP/1.1\" 200 27 ");
}

#[test]
fn many_concurrent_clients_are_all_answered() {
    let env = hello_env();
    let server = Server::start(&env, &["--max-concurrency", "8"]);
    let addr = server.addr;
    let clients: Vec<_> = (0..32)
        .map(|c| {
            std::thread::spawn(move || {
                for r in 0..10 {
                    let path = format!("/client/{c}/request/{r}");
                    assert_eq!(
                        get(addr, &path),
                        (200, format!("Hello from wrun: {path}\n"))
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn a_slow_guest_past_the_request_timeout_gets_504_and_others_are_served() {
    let env = hello_env();
    let server = Server::start(&env, &["--timeout", "1s"]);
    let addr = server.addr;
    let started = Instant::now();
    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=60000"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(addr, "/meanwhile").0, 200);
    assert_eq!(slow.join().unwrap().0, 504);
    assert!(started.elapsed() < Duration::from_secs(15));
    // A guest that computes forever is stopped by the same deadline.
    assert_eq!(get(addr, "/spin").0, 504);
    assert_eq!(get(addr, "/after").0, 200);
}

#[test]
fn an_oversized_body_gets_413_and_others_are_served() {
    let env = hello_env();
    let server = Server::start(&env, &["--max-body-size", "1k"]);
    let post = |len: usize| {
        exchange(
            server.addr,
            &format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            ),
            &vec![b'x'; len],
        )
    };
    assert_eq!(post(1000), (200, "Read 1000 bytes\n".to_string()));
    assert_eq!(post(100_000).0, 413);
    let chunked = format!("{:x}\r\n{}\r\n0\r\n\r\n", 5000, "y".repeat(5000));
    let (status, _) = exchange(
        server.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        chunked.as_bytes(),
    );
    assert_eq!(status, 413);
    assert_eq!(get(server.addr, "/still-served").0, 200);
}

#[test]
fn slow_loris_clients_are_cut_off_and_others_are_served() {
    let env = hello_env();
    let server = Server::start(&env, &["--header-timeout", "1s"]);
    let addr = server.addr;
    // Each sends a request line and then one header byte every 200 ms,
    // never finishing the header.
    let loris: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let started = Instant::now();
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
                while started.elapsed() < Duration::from_secs(20) {
                    std::thread::sleep(Duration::from_millis(200));
                    if s.write_all(b"a").is_err() {
                        break;
                    }
                }
                started.elapsed()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        assert_eq!(get(addr, &format!("/ok/{i}")).0, 200);
    }
    for l in loris {
        let held = l.join().unwrap();
        assert!(
            held < Duration::from_secs(10),
            "a slow client held on {held:?}"
        );
    }
    assert_eq!(get(addr, "/after").0, 200);
}

#[test]
fn sigterm_finishes_requests_in_flight_then_stops_accepting() {
    let env = hello_env();
    let mut server = Server::start(&env, &[]);
    let addr = server.addr;
    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=1500"));
    server.wait_for("sleeping 1500 ms");
    assert_eq!(server.terminate(Duration::from_secs(10)), 0);
    assert_eq!(slow.join().unwrap(), (200, "Slept 1500 ms\n".to_string()));
    assert!(TcpStream::connect(addr).is_err(), "still accepting");
    assert!(server.stderr().contains("Stopped after 1 requests"));
}

#[test]
fn a_taken_host_port_is_a_clear_error_at_start() {
    let env = hello_env();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let publish = format!("127.0.0.1:{port}:80");
    let out = env.run(&["run", "-p", &publish, "hello-http:1.0"]);
    assert_eq!(code(&out), 125);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn serving_without_a_published_port_says_which_flag_to_add() {
    let env = hello_env();
    let out = env.run(&["run", "hello-http:1.0"]);
    assert_eq!(code(&out), 125);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("-p 8080:80"), "{stderr}");
}

#[test]
fn a_private_tmp_for_a_handler_is_refused_with_what_to_use_instead() {
    let env = hello_env();
    let out = env.run(&[
        "run",
        "--tmpfs",
        "/tmp",
        "-p",
        "127.0.0.1::80",
        "hello-http:1.0",
    ]);
    assert_eq!(code(&out), 125);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--tmpfs /tmp is not available"), "{stderr}");
    assert!(stderr.contains("volume"), "{stderr}");
}

/// A one-request-at-a-time HTTP server on 127.0.0.1 that answers every
/// request with `body` and records the request lines it saw.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start(body: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                log.lock().unwrap().push(line.trim_end().to_string());
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Upstream { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn fetch_env() -> Env {
    Env::with_image("fetch:1.0", FETCH_DIR)
}

#[test]
fn fetch_reaches_a_granted_local_server() {
    let env = fetch_env();
    let upstream = Upstream::start("upstream says hi\n");
    let grant = format!("127.0.0.1:{}", upstream.port);
    let url = format!("http://127.0.0.1:{}/some/page?q=1", upstream.port);
    let stdout = env.ok(&["run", "--allow-connect", &grant, "fetch:1.0", &url]);
    assert_eq!(stdout, "HTTP 200\nupstream says hi\n");
    assert_eq!(upstream.seen(), vec!["GET /some/page?q=1 HTTP/1.1"]);
}

/// Runs fetch expecting a refusal; returns its stderr.
fn fetch_denied(env: &Env, flags: &[&str], url: &str) -> String {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["fetch:1.0", url]);
    let out = env.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(code(&out), 1, "fetch {url} was not refused: {stderr}");
    assert!(stderr.contains("HttpRequestDenied"), "{stderr}");
    stderr
}

#[test]
fn fetch_to_an_ungranted_port_or_host_is_denied() {
    let env = fetch_env();
    let granted = Upstream::start("granted\n");
    let bait = Upstream::start("bait\n");
    let grant = format!("127.0.0.1:{}", granted.port);
    fetch_denied(
        &env,
        &["--allow-connect", &grant],
        &format!("http://127.0.0.1:{}/", bait.port),
    );
    fetch_denied(
        &env,
        &["--allow-connect", &grant],
        &format!("http://127.0.0.2:{}/", granted.port),
    );
    // A name is not looked up to match an address rule without --allow-dns.
    fetch_denied(
        &env,
        &["--allow-connect", &grant],
        &format!("http://localhost:{}/", granted.port),
    );
    // No grant at all.
    fetch_denied(&env, &[], &format!("http://127.0.0.1:{}/", granted.port));
    assert!(bait.seen().is_empty(), "the bait was reached");
    assert!(granted.seen().is_empty(), "a denied request arrived");
}

#[test]
fn fetch_to_the_metadata_address_is_denied() {
    let env = fetch_env();
    fetch_denied(
        &env,
        &["--allow-connect", "127.0.0.1", "--allow-dns"],
        "http://169.254.169.254/latest/meta-data/",
    );
    fetch_denied(
        &env,
        &["--allow-connect", "10.0.0.0/8"],
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
    );
}

#[test]
fn a_handler_reaches_only_granted_hosts() {
    let env = hello_env();
    let upstream = Upstream::start("from upstream\n");
    let bait = Upstream::start("bait\n");
    let grant = format!("127.0.0.1:{}", upstream.port);
    let server = Server::start(&env, &["--allow-connect", &grant]);
    let granted = format!("/fetch?http://127.0.0.1:{}/up", upstream.port);
    assert_eq!(
        get(server.addr, &granted),
        (200, "200 from upstream\n".to_string())
    );
    for denied in [
        format!("/fetch?http://127.0.0.1:{}/", bait.port),
        "/fetch?http://169.254.169.254/latest/meta-data/".to_string(),
        format!("/fetch?http://localhost:{}/", upstream.port),
    ] {
        let (status, body) = get(server.addr, &denied);
        assert_eq!(status, 502, "{denied}: {body}");
        assert!(body.contains("HttpRequestDenied"), "{denied}: {body}");
    }
    assert!(bait.seen().is_empty(), "the bait was reached");
    assert_eq!(upstream.seen(), vec!["GET /up HTTP/1.1"]);
}

#[test]
fn detached_hello_http_serves_logs_and_stops_gracefully() {
    let daemon = Daemon::start(hello_env());
    let id = daemon
        .wrun_ok(&["run", "-d", "-p", "127.0.0.1::80", "hello-http:1.0"])
        .trim()
        .to_string();
    let port_line = daemon.wrun_ok(&["port", &id]);
    let addr: SocketAddr = port_line
        .trim()
        .rsplit(" -> ")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{port_line:?}: {e}"));
    assert_eq!(
        get(addr, "/from/the/daemon"),
        (200, "Hello from wrun: /from/the/daemon\n".to_string())
    );

    // The same host port again: a clear error at start, exit 125.
    let taken = format!("127.0.0.1:{}:80", addr.port());
    let out = daemon.wrun(&["run", "-d", "-p", &taken, "hello-http:1.0"]);
    assert_eq!(code(&out), 125);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"));

    // Pausing would not stop requests that run in instances of their own.
    let out = daemon.wrun(&["pause", &id]);
    assert_ne!(code(&out), 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("serves HTTP and cannot be paused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(addr, "/not/paused").0, 200);

    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=1500"));
    // The guest's stderr line says the request is being handled.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&daemon.wrun(&["logs", &id]).stderr).contains("sleeping 1500 ms")
    {
        assert!(Instant::now() < deadline, "the request never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.wrun_ok(&["stop", &id]);
    assert_eq!(slow.join().unwrap(), (200, "Slept 1500 ms\n".to_string()));
    assert!(TcpStream::connect(addr).is_err(), "still accepting");

    let logs = daemon.wrun_ok(&["logs", &id]);
    assert!(
        logs.contains("\"GET /from/the/daemon HTTP/1.1\" 200 34 "),
        "{logs}"
    );
    assert!(
        logs.contains("\"GET /sleep?ms=1500 HTTP/1.1\" 200 14 "),
        "{logs}"
    );
    let status = daemon.wrun_ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]);
    assert_eq!(status.trim(), "143");
}

#[test]
fn the_docker_client_serves_hello_http_with_run_p() {
    if !have_tool("docker") {
        return;
    }
    let daemon = Daemon::start(hello_env());
    let id = daemon
        .docker_ok(&["run", "-d", "-p", "127.0.0.1::80", "hello-http:1.0"])
        .trim()
        .to_string();
    let port_line = daemon.docker_ok(&["port", &id, "80/tcp"]);
    let addr: SocketAddr = port_line
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{port_line:?}: {e}"));
    assert_eq!(
        get(addr, "/via/docker"),
        (200, "Hello from wrun: /via/docker\n".to_string())
    );
    let logs = daemon.docker_ok(&["logs", &id]);
    assert!(
        logs.contains("\"GET /via/docker HTTP/1.1\" 200 29 "),
        "{logs}"
    );
    daemon.docker_ok(&["stop", &id]);
    assert!(TcpStream::connect(addr).is_err(), "still accepting");
}
