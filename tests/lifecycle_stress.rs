//! End to end: start, stop, kill, restart, pause and unpause sent in
//! parallel to one instance, round after round, through the API. Every
//! request is answered (a request left waiting is a hang: issue 12 saw a
//! `kill` wait ten minutes for a `stop` that came much later), and after
//! each round the instance is in one state that inspect, ps and wait agree
//! on.
//!
//! Rounds: 1,000 (some 6 s with a debug build), or `WRUN_STRESS_ROUNDS`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Daemon, Env, IDLE_DIR};

/// A request not answered by then is taken for a hang. Not a speed bound:
/// every one of these answers in milliseconds unless something is stuck.
const HANG: Duration = Duration::from_secs(10);

/// Requests of each kind in one round, all sent at once.
const EACH: usize = 3;

const OPS: [&str; 6] = ["start", "stop", "kill", "restart", "pause", "unpause"];

/// One request on the daemon's socket, `Connection: close`: the status and
/// the body, or a message naming the request when no answer came within
/// [`HANG`].
fn request(socket: &Path, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let what = format!("{method} {path}");
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{what}: connecting: {e}"))?;
    s.set_read_timeout(Some(HANG)).unwrap();
    s.set_write_timeout(Some(HANG)).unwrap();
    let started = Instant::now();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: wrun\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("{what}: sending: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "{what} got no complete answer within {} s (a hang); so far: {:?}",
                    started.elapsed().as_secs(),
                    String::from_utf8_lossy(&answer)
                ));
            }
            Err(e) => return Err(format!("{what}: reading: {e}")),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{what}: not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// [`request`], failing the test on a hang.
fn call(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    request(socket, method, path, body).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `op` answered as Docker may when other calls race it: done,
/// nothing to do (304), or refused for the state it found (409; a restart
/// whose start found the instance paused again is dockerd's 500).
fn acceptable(op: &str, status: u16, body: &str) -> bool {
    match (op, status) {
        (_, 204) => true,
        ("start" | "stop", 304) => true,
        ("start" | "kill" | "pause" | "unpause", 409) => true,
        ("restart", 500) => body.contains("Cannot restart container") && body.contains("paused"),
        _ => false,
    }
}

fn rounds() -> usize {
    match std::env::var("WRUN_STRESS_ROUNDS") {
        Ok(n) => n.parse().expect("WRUN_STRESS_ROUNDS is a number"),
        Err(_) => 1000,
    }
}

/// The instance's state as inspect and ps each show it, checked to agree.
fn agreed_state(socket: &Path, id: &str, round: usize) -> serde_json::Value {
    let (status, body) = call(socket, "GET", &format!("/containers/{id}/json"), "");
    assert_eq!(status, 200, "round {round}: inspect: {body}");
    let inspect: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let state = inspect["State"].clone();
    let (status, body) = call(socket, "GET", "/containers/json?all=1", "");
    assert_eq!(status, 200, "round {round}: ps: {body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(body.trim()).unwrap();
    let row = rows
        .iter()
        .find(|r| r["Id"] == id)
        .unwrap_or_else(|| panic!("round {round}: ps lost the instance: {body}"));
    assert_eq!(
        row["State"], state["Status"],
        "round {round}: ps and inspect disagree: {row} vs {state}"
    );
    let live = matches!(state["Status"].as_str(), Some("running" | "paused"));
    assert_eq!(
        state["Running"].as_bool(),
        Some(live),
        "round {round}: {state}"
    );
    assert_eq!(
        state["Paused"].as_bool(),
        Some(state["Status"] == "paused"),
        "round {round}: {state}"
    );
    state
}

#[test]
fn parallel_lifecycle_calls_on_one_instance_are_all_answered_and_leave_one_state() {
    let env = Env::with_image("idle:1.0", IDLE_DIR);
    let d = Daemon::start(env);
    let socket: Arc<PathBuf> = Arc::new(d.socket.clone());
    let (status, body) = call(
        &socket,
        "POST",
        "/containers/create?name=stressed",
        r#"{"Image": "idle:1.0"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created["Id"].as_str().unwrap().to_owned();

    let rounds = rounds();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..rounds {
        let mut threads = Vec::new();
        for i in 0..EACH * OPS.len() {
            // Interleaved, so the kinds race each other from the first.
            let op = OPS[(i + round) % OPS.len()];
            let socket = Arc::clone(&socket);
            let path = if op == "stop" || op == "restart" {
                // No grace period: what is raced here is the state, not the
                // guest's handling of SIGTERM.
                format!("/containers/{id}/{op}?t=0")
            } else {
                format!("/containers/{id}/{op}")
            };
            threads.push(std::thread::spawn(move || {
                (op, request(&socket, "POST", &path, ""))
            }));
        }
        for t in threads {
            let (op, answer) = t.join().unwrap();
            let (status, body) = answer.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(
                acceptable(op, status, &body),
                "round {round}: POST /containers/{id}/{op}: {status} {body}"
            );
            *seen.entry(format!("{op} {status}")).or_default() += 1;
        }

        // Quiet now: one state, the same in inspect and ps, and the
        // watchers agree with it. A live instance is killed and then
        // waited for; one that is not answers wait at once.
        let state = agreed_state(&socket, &id, round);
        if state["Status"] == "paused" {
            let (status, body) = call(&socket, "POST", &format!("/containers/{id}/unpause"), "");
            assert_eq!(status, 204, "round {round}: unpause: {body}");
        }
        if round % 2 == 0 && matches!(state["Status"].as_str(), Some("running" | "paused")) {
            let (status, body) = call(&socket, "POST", &format!("/containers/{id}/kill"), "");
            assert_eq!(status, 204, "round {round}: kill: {body}");
        }
        let state = agreed_state(&socket, &id, round);
        if state["Status"] != "running" {
            let (status, body) = call(&socket, "POST", &format!("/containers/{id}/wait"), "");
            assert_eq!(status, 200, "round {round}: wait: {body}");
            assert!(body.contains("StatusCode"), "round {round}: wait: {body}");
        }
    }
    // Every kind of call did something at least once: the rounds raced real
    // transitions, not refusals only.
    for op in OPS {
        assert!(
            seen.get(&format!("{op} 204")).is_some_and(|n| *n > 0),
            "no {op} ever succeeded: {seen:?}"
        );
    }

    // The instance still works as a fresh one would.
    let (status, body) = call(&socket, "POST", &format!("/containers/{id}/stop?t=0"), "");
    assert!(matches!(status, 204 | 304), "stop: {status} {body}");
    let (status, body) = call(&socket, "POST", &format!("/containers/{id}/start"), "");
    assert_eq!(status, 204, "start: {body}");
    assert_eq!(agreed_state(&socket, &id, rounds)["Status"], "running");
    let (status, body) = call(&socket, "DELETE", &format!("/containers/{id}?force=1"), "");
    assert_eq!(status, 204, "rm -f: {body}");
    let (status, _) = call(&socket, "GET", &format!("/containers/{id}/json"), "");
    assert_eq!(status, 404);
}

/// A stop's events come as dockerd sends them: `kill`, then the run's
/// `die`, then `stop`. The stop waits for the run's end, which wakes it;
/// `die` once came after `stop` when the woken stopper ran first (seen once
/// in CI on a busy machine; the window is too narrow to hit on a quiet one,
/// so this checks the order over many instances stopped at once; `die` is
/// now announced before any watcher wakes).
#[test]
fn a_stop_announces_kill_die_stop_in_dockers_order() {
    let env = Env::new();
    env.build("idle:1.0", IDLE_DIR);
    let d = Daemon::start(env);
    const INSTANCES: usize = 24;
    const ROUNDS: usize = 8;
    let names: Vec<String> = (0..INSTANCES).map(|i| format!("ordered{i}")).collect();
    for n in &names {
        d.wrun_ok(&["create", "--name", n, "idle:1.0"]);
    }
    for _ in 0..ROUNDS {
        let mut start = vec!["start"];
        start.extend(names.iter().map(String::as_str));
        d.wrun_ok(&start);
        // The docker client's stop of many: one request each, all at once.
        let stops: Vec<_> = names
            .iter()
            .map(|n| {
                let socket = d.socket.clone();
                let n = n.clone();
                std::thread::spawn(move || {
                    call(&socket, "POST", &format!("/containers/{n}/stop?t=0"), "")
                })
            })
            .collect();
        for s in stops {
            let (status, body) = s.join().unwrap();
            assert_eq!(status, 204, "{body}");
        }
    }
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    for n in &names {
        let actions = d.wrun_ok(&[
            "events",
            "--since",
            "0",
            "--until",
            &until.to_string(),
            "--filter",
            &format!("container={n}"),
            "--format",
            "{{.Action}}",
        ]);
        let actions: Vec<&str> = actions.lines().collect();
        let mut expected = vec!["create"];
        for _ in 0..ROUNDS {
            expected.extend(["start", "kill", "die", "stop"]);
        }
        assert_eq!(actions, expected, "{n}");
    }
}
