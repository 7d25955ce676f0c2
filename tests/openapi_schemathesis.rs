#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! schemathesis against a daemon, driven by docs/openapi.yaml, with every
//! check (what `--checks all` asks): first the stateful phase, following
//! the links from a created instance's `Id` to its routes, then every route
//! with generated valid and invalid requests. Bounded by examples per
//! operation and time budgets. What is left out, and why, is in
//! tests/schemathesis.toml.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Daemon, Env, HELLO_DIR, IDLE_DIR, have_tool};

/// Copies one direction of a bridged connection, then passes the end of
/// file on (an attach's client half-closes when it has no stdin).
fn pump(mut from: impl Read, mut to: impl Write, close: impl FnOnce()) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    close();
}

/// Serves 127.0.0.1:<free port> as a bridge to the daemon's Unix socket
/// (schemathesis speaks TCP only); returns the port. The threads end with
/// the test process.
fn bridge(socket: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(daemon) = UnixStream::connect(&socket) else {
                continue;
            };
            let (c2, d2) = (client.try_clone().unwrap(), daemon.try_clone().unwrap());
            let (c3, d3) = (client.try_clone().unwrap(), daemon.try_clone().unwrap());
            std::thread::spawn(move || {
                pump(client, daemon, move || {
                    let _ = d3.shutdown(Shutdown::Write);
                })
            });
            std::thread::spawn(move || {
                pump(d2, c2, move || {
                    let _ = c3.shutdown(Shutdown::Write);
                })
            });
        }
    });
    port
}

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Whether a TCP connection through the bridge gets an answer to a ping.
fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// The generator's seed: 20, or `WRUN_SCHEMATHESIS_SEED` (to search with
/// other seeds for what this one does not reach).
fn seed() -> String {
    std::env::var("WRUN_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20".into())
}

/// Runs schemathesis against the bridge with these phases for at most
/// `seconds`; fails the test on any failure it reports; returns its output.
fn schemathesis(d: &Daemon, port: u16, phases: &str, seconds: u32, extra: &[&str]) -> String {
    // Every check is on but those tests/schemathesis.toml turns off for an
    // operation, with the reason (a `--checks all` here would turn them
    // back on everywhere).
    let out = Command::new("schemathesis")
        .arg("--config-file")
        .arg(repo_file("tests/schemathesis.toml"))
        .arg("--no-color")
        .arg("run")
        .arg(repo_file("docs/openapi.yaml"))
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--phases", phases])
        .args(["--max-examples", "25", "--max-time", &seconds.to_string()])
        .args(["--request-timeout", "10", "--workers", "1"])
        .args(["--seed", &seed()])
        .args(["--generation-database", "none"])
        .args(extra)
        .current_dir(d.env.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis ({phases}) reports failures ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// The two numbers of a summary line `LABEL N` or `LABEL N/M` (M: N when
/// absent), e.g. `Tested: 33` or `API Links: 14 covered / 14 selected`.
fn counts(stdout: &str, label: &str) -> (usize, usize) {
    let rest = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in schemathesis' summary:\n{stdout}"));
    let numbers: Vec<usize> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers.as_slice() {
        [n] => (*n, *n),
        [n, m, ..] => (*n, *m),
        [] => panic!("no number after {label:?}:\n{stdout}"),
    }
}

#[test]
fn schemathesis_finds_nothing_against_the_daemon() {
    if !have_tool("schemathesis") {
        return;
    }
    let env = Env::new();
    // The images tests/schemathesis.toml offers as values of `Image` and
    // `{name}`: one to run, one that may be deleted.
    env.build("hello:1.0", HELLO_DIR);
    env.build("victim:1.0", IDLE_DIR);
    let d = Daemon::start(env);
    let port = bridge(d.socket.clone());
    assert!(pings(port), "the bridge reaches the daemon");

    // First the sequences that follow the links from a created instance to
    // its routes, while hello is there to create from (a later generated
    // `{name}` may be a prefix of its ID and remove it).
    // The instance routes only: the volume links, inferred by schemathesis,
    // would share the minute with them and leave some uncovered, and the
    // exec links start from an exec create, which schemathesis then sends
    // for random instances the whole minute; the network links (inferred
    // too) as the volume ones; volumes, execs and networks are tested with
    // every route below. A search has no links either, and its generated
    // sequences took the whole minute once, leaving no link followed.
    let stateful = schemathesis(
        &d,
        port,
        "stateful",
        60,
        &[
            "--exclude-tag",
            "Volume",
            "--exclude-tag",
            "Exec",
            "--exclude-tag",
            "Network",
            "--exclude-operation-id",
            "ImageSearch",
        ],
    );
    let (covered, links) = counts(&stateful, "API Links:");
    assert!(
        covered == links && links >= 14,
        "stateful testing followed {covered} of {links} links:\n{stateful}"
    );
    // Then every operation with generated valid and invalid requests.
    let rest = schemathesis(&d, port, "examples,coverage,fuzzing", 150, &[]);
    // A run that tested nothing would pass too: every selected operation
    // must have been tested (all but the two tests/schemathesis.toml turns
    // off).
    let (tested, _) = counts(&rest, "Tested:");
    let (selected, _) = counts(&rest, "Selected:");
    assert!(
        tested == selected && tested >= 30,
        "schemathesis tested {tested} of {selected} operations:\n{rest}"
    );
    assert!(pings(port), "the daemon still answers after the run");
}
