//! End to end: slow and hostile clients of the API socket (issue 12). Each
//! test names the attack and checks the daemon keeps answering `/_ping` and
//! `docker ps` through it, closes what it must and gives back what the
//! attack held. The figures (latency, RSS, descriptors) are in
//! docs/benchmarks/hostile-clients.md, from benches/hostile_clients.py.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Connections each of the idle and the half-sent attacks opens.
const CONNECTIONS: usize = 1000;

/// The daemon answers `/_ping`, and `docker ps` (when docker is here).
fn still_answers(d: &Daemon) {
    let (status, body) = d.request("GET", "/_ping", "");
    assert_eq!((status, body.as_str()), (200, "OK"), "/_ping");
    if have_tool("docker") {
        d.docker_ok(&["ps", "-a"]);
    }
}

fn daemon_pid(d: &Daemon) -> u32 {
    d.child.as_ref().unwrap().id()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// A `Field:  N kB` line of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Whether the daemon closed `s` (end of file or reset), without waiting.
fn closed_by_daemon(s: &UnixStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match (&*s).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the daemon answered a request that was never sent"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// The test's own descriptor limit must leave room for its connections.
fn assert_room_for(connections: usize) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft: usize = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap();
    assert!(
        soft >= connections + 256,
        "this test opens {connections} connections: raise `ulimit -n` (now {soft})"
    );
}

/// A daemon started with a soft descriptor limit of 1,024 (the usual
/// default), which it must raise itself to hold more connections.
fn start_with_low_fd_limit(env: Env, args: &[&str]) -> Daemon {
    Daemon::start_from(env, |env, socket| {
        std::process::Command::new("prlimit")
            .arg("--nofile=1024:")
            .arg(env!("CARGO_BIN_EXE_wrun"))
            .env("WRUN_ROOT", env.root())
            .args(["daemon", "--socket", socket.to_str().unwrap()])
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    })
}

/// The soft and hard `Max open files` of a process.
fn fd_limits(pid: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line.split_whitespace().skip(3);
    (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().to_string(),
    )
}

#[test]
fn a_thousand_idle_and_a_thousand_half_sent_connections_leave_the_daemon_answering() {
    assert_room_for(2 * CONNECTIONS);
    if !have_tool("prlimit") {
        return;
    }
    let d = start_with_low_fd_limit(Env::new(), &["--api-header-timeout", "20s"]);
    let pid = daemon_pid(&d);
    // The daemon raised its soft limit to its hard one (as dockerd does),
    // so 2,000 connections fit.
    let (soft, hard) = fd_limits(&pid.to_string());
    assert_eq!(soft, hard, "the daemon's descriptor limit (soft, hard)");
    assert!(
        hard == "unlimited" || hard.parse::<usize>().unwrap() > 2 * CONNECTIONS + 256,
        "the daemon's descriptor limit {hard} is too low for this test"
    );
    let before = open_fds(pid);
    let mut held: Vec<UnixStream> = (0..CONNECTIONS)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    for _ in 0..CONNECTIONS {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.write_all(b"GET /containers/json HTTP/1.1\r\nHost: docker\r\nX-Pad: aaaa")
            .unwrap();
        held.push(s);
    }
    // The daemon answers while it holds them (the header timeout is long
    // enough for the test to open them all on a busy machine) ...
    still_answers(&d);
    // ... and, as none sends a whole head, closes each at the header
    // timeout and gives its descriptor back.
    wait_until(
        "the daemon closing the connections that sent no head",
        || held.iter().all(closed_by_daemon),
    );
    drop(held);
    wait_until("the daemon's descriptors back to where they were", || {
        open_fds(pid) <= before + 16
    });
    still_answers(&d);
}

#[test]
fn a_head_sent_one_byte_a_second_is_closed_at_the_header_timeout() {
    let d = Daemon::start_with(Env::new(), &["--api-header-timeout", "2s"]);
    let head = b"GET /containers/json HTTP/1.1\r\nHost: docker\r\nX-Slow: ";
    let mut slow = UnixStream::connect(&d.socket).unwrap();
    let started = Instant::now();
    let mut sent = 0usize;
    // Each byte is sent before the timeout could end the wait for the
    // next: the bound is on the whole head, not between two bytes.
    while !closed_by_daemon(&slow) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "a head trickling in for 120 s is still open ({sent} bytes sent)"
        );
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if slow.write_all(&[byte]).is_err() {
            break;
        }
        sent += 1;
        still_answers(&d);
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(sent > 0);
    still_answers(&d);
}

#[test]
fn the_header_timeout_flag_refuses_what_is_not_a_duration() {
    let env = Env::new();
    let socket = env.path("wrun.sock");
    for bad in ["soon", "0", "-3s", "5 parsecs"] {
        let flag = format!("--api-header-timeout={bad}");
        let err = env.fails(&["daemon", "--socket", socket.to_str().unwrap(), &flag]);
        assert!(err.contains("--api-header-timeout"), "{bad}: {err}");
        assert!(!socket.exists(), "{bad}: the daemon must not start");
    }
}

/// A tar header of one regular file.
fn tar_header(path: &str, size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    *h.as_bytes()
}

/// Starts `POST /images/load` of an archive declared `total` bytes long
/// whose one entry is a blob filling it; returns the connection.
fn start_load(socket: &Path, total: u64) -> UnixStream {
    let mut s = UnixStream::connect(socket).unwrap();
    write!(
        s,
        "POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {total}\r\n\r\n"
    )
    .unwrap();
    let blob = format!("blobs/sha256/{}", sha256_hex(b"not its content"));
    s.write_all(&tar_header(&blob, total - 1024)).unwrap();
    s
}

fn staging_areas(d: &Daemon) -> usize {
    std::fs::read_dir(d.env.root().join("tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[test]
fn a_gigabyte_load_cut_halfway_leaves_no_staging_and_no_memory_behind() {
    let d = Daemon::start(Env::new());
    let pid = daemon_pid(&d);
    let peak_before = status_kib(pid, "VmHWM");
    let total: u64 = 1 << 30;
    let mut load = start_load(&d.socket, total);
    let chunk: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut sent = 512u64;
    while sent < total / 2 {
        load.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
        if sent == 512 + (64 << 20) {
            // The body goes to a staging area on disk as it arrives, and
            // the daemon answers meanwhile.
            wait_until("a staging area for the load", || staging_areas(&d) > 0);
            still_answers(&d);
        }
    }
    // The client goes away in the middle of the body.
    drop(load);
    wait_until("the staging area removed after the cut", || {
        staging_areas(&d) == 0
    });
    still_answers(&d);
    let grown_mib = (status_kib(pid, "VmHWM").saturating_sub(peak_before)) / 1024;
    assert!(
        grown_mib < 128,
        "the daemon's peak RSS grew {grown_mib} MiB while it read 512 MiB of body: the body is held in memory"
    );
    let (status, images) = d.request("GET", "/images/json", "");
    assert_eq!((status, images.trim()), (200, "[]"), "nothing was loaded");
}

#[test]
fn a_load_whose_valid_start_turns_to_garbage_is_refused_and_cleaned_up() {
    let d = Daemon::start(Env::new());
    // A well-formed first entry (a blob named by its digest), then garbage
    // where the next tar header should be.
    let blob: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let garbage = vec![0x5au8; 4 << 20];
    let total = 512 + blob.len() + garbage.len();
    let mut load = UnixStream::connect(&d.socket).unwrap();
    write!(
        load,
        "POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {total}\r\n\r\n"
    )
    .unwrap();
    let mut body = tar_header(
        &format!("blobs/sha256/{}", sha256_hex(&blob)),
        blob.len() as u64,
    )
    .to_vec();
    body.extend_from_slice(&blob);
    body.extend_from_slice(&garbage);
    let mut writer_end = load.try_clone().unwrap();
    // The daemon may answer before it has read it all: write beside.
    let writer = std::thread::spawn(move || {
        let _ = writer_end.write_all(&body);
    });
    let mut answer = Vec::new();
    let _ = load.read_to_end(&mut answer);
    drop(load);
    writer.join().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("not a valid tar"), "{answer}");
    wait_until("the staging area removed after the refusal", || {
        staging_areas(&d) == 0
    });
    still_answers(&d);
}

/// More stalled loads than tokio's shared blocking pool has threads (512).
const STALLED_LOADS: usize = 600;

#[test]
fn six_hundred_stalled_loads_leave_images_and_create_answering() {
    assert_room_for(STALLED_LOADS);
    let env = Env::new();
    env.build_hello("hello:1.0");
    let d = Daemon::start(env);
    // Each load sends the start of its archive, then nothing more.
    let stalled: Vec<UnixStream> = (0..STALLED_LOADS)
        .map(|_| start_load(&d.socket, 64 << 20))
        .collect();
    let (status, images) = d.request("GET", "/images/json", "");
    assert_eq!(status, 200, "{images}");
    assert!(images.contains("hello:1.0"), "{images}");
    let create = r#"{"Image": "hello:1.0"}"#;
    let (status, created) = d.request("POST", "/containers/create", create);
    assert_eq!(status, 201, "{created}");
    still_answers(&d);
    // The clients going away ends their loads and removes their staging.
    drop(stalled);
    wait_until("the stalled loads' staging areas removed", || {
        staging_areas(&d) == 0
    });
}

#[test]
fn clients_that_never_read_a_large_log_hold_little_memory_each() {
    const CLIENTS: u64 = 20;
    let env = Env::new();
    env.build_hello("hello:1.0");
    let d = Daemon::start(env);
    // hello greets every argument: some 900 KiB of log a run.
    let names: Vec<String> = (0..75_000).map(|i| format!("n{i:06}")).collect();
    let create = serde_json::json!({"Image": "hello:1.0", "Cmd": names}).to_string();
    let (status, created) = d.request("POST", "/containers/create", &create);
    assert_eq!(status, 201, "{created}");
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..32 {
        let (status, body) = d.request("POST", &format!("/containers/{id}/start"), "");
        assert_eq!(status, 204, "{body}");
        let (status, body) = d.request("POST", &format!("/containers/{id}/wait"), "");
        assert_eq!(status, 200, "{body}");
    }
    let pid = daemon_pid(&d);
    let before = status_kib(pid, "VmRSS");
    let stuck: Vec<UnixStream> = (0..CLIENTS)
        .map(|_| {
            let mut s = UnixStream::connect(&d.socket).unwrap();
            write!(
                s,
                "GET /containers/{id}/logs?stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    // Each answer fills what the connection may buffer, then waits on the
    // client: the RSS stops moving.
    let mut last = (status_kib(pid, "VmRSS"), Instant::now());
    wait_until("the daemon's RSS to settle with the stuck clients", || {
        let now = status_kib(pid, "VmRSS");
        if now.abs_diff(last.0) > 1024 {
            last = (now, Instant::now());
        }
        last.1.elapsed() > Duration::from_secs(2)
    });
    still_answers(&d);
    let per_client_kib = status_kib(pid, "VmRSS").saturating_sub(before) / CLIENTS;
    eprintln!("each client that never reads holds {per_client_kib} KiB");
    assert!(
        per_client_kib < 2048,
        "each client that never reads holds {per_client_kib} KiB of the daemon's memory"
    );
    drop(stuck);
    still_answers(&d);
}
