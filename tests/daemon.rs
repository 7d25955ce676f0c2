//! End to end: `wrun daemon` on a private socket, driven by the stock
//! docker client, by the `wrun` lifecycle verbs, and by malformed requests.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// A daemon whose store holds hello:1.0 and idle:1.0.
fn daemon() -> Daemon {
    let env = Env::new();
    env.build_hello("hello:1.0");
    env.build("idle:1.0", IDLE_DIR);
    Daemon::start(env)
}

/// What only these tests ask of a daemon.
impl Daemon {
    /// One raw HTTP/1.1 request; returns the status and the body.
    fn raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: wrun\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        // An oversized body is announced, not sent: the daemon answers 413
        // from the header, and closing with unread bytes would reset the
        // connection before the answer is read.
        if body.len() <= 1 << 20 {
            s.write_all(body).unwrap();
        }
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return (status, body.to_string());
        }
        // A streamed answer: join the chunks.
        let mut joined = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            joined.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        (status, joined)
    }

    /// `wrun inspect NAME`'s one element.
    fn inspect(&self, name: &str) -> serde_json::Value {
        let text = self.wrun_ok(&["inspect", name]);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v[0].take()
    }

    /// Polls the logs of `name` until they contain `text` (the guest got
    /// that far); gives up after a generous bound.
    fn wait_for_log(&self, name: &str, text: &str) {
        let mut last = String::new();
        for _ in 0..1500 {
            last = self.wrun_ok(&["logs", name]);
            if last.contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let tail: String = last
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!("{name} never logged {text:?}; logs end: {tail:?}");
    }

    /// Starts a second daemon process on the same socket and store.
    fn restart_process(&mut self) {
        let child = self
            .env
            .cmd()
            .args(["daemon", "--socket", self.socket.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_until_up();
    }

    fn stop(&mut self) {
        let out = self.wrun(&["daemon", "--stop"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = self.child.take().unwrap().wait().unwrap();
        assert!(status.success(), "the daemon exited with {status}");
    }
}

#[test]
fn the_stock_docker_client_drives_the_daemon() {
    if !have_tool("docker") {
        return;
    }
    let d = daemon();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is private");

    let version = d.docker_ok(&["version"]);
    assert!(version.contains("Server: wrun"), "{version}");

    // Foreground run: output, exit code, and --rm leaves nothing behind.
    let out = d.docker(&["run", "--rm", "hello:1.0", "Bob"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, Bob!\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]).trim(),
        "",
        "--rm removed the instance"
    );

    // Detached run, then ps, wait, logs, rm.
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "web1",
            "-e",
            "GREETING=Hey",
            "hello:1.0",
            "Ann",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "docker run -d prints the full ID: {id}");
    assert_eq!(d.docker_ok(&["wait", "web1"]).trim(), "0");
    assert_eq!(d.docker_ok(&["logs", "web1"]), "Hey, Ann!\n");
    let ps = d.docker_ok(&["ps", "-a"]);
    assert!(ps.contains("CONTAINER ID"), "{ps}");
    let row = ps
        .lines()
        .find(|l| l.contains("web1"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(
        row.starts_with(&id[..12]) && row.contains("Exited (0)"),
        "{row}"
    );
    assert!(
        row.contains("hello:1.0") && row.contains("/hello.wasm Ann"),
        "{row}"
    );
    assert!(
        !d.docker_ok(&["ps"]).contains("web1"),
        "ps without -a lists running instances only"
    );
    assert_eq!(d.docker_ok(&["rm", "web1"]).trim(), "web1");
    let gone = d.docker(&["logs", "web1"]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("No such container: web1"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );

    let images = d.docker_ok(&["images"]);
    let row = images
        .lines()
        .find(|l| l.starts_with("hello"))
        .unwrap_or_else(|| panic!("{images}"));
    assert!(row.contains("1.0"), "{row}");

    // A missing image is the client's "No such image" (it then tries a pull).
    let missing = d.docker(&["run", "--rm", "--pull", "never", "nope:1.0"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such image"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[test]
fn wrun_verbs_use_the_daemon_and_records_survive_a_restart() {
    let mut d = daemon();
    let id = d
        .wrun_ok(&["run", "-d", "--name", "greeter", "hello:1.0", "Zoe"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(d.wrun_ok(&["wait", "greeter"]).trim(), "0");
    assert_eq!(d.wrun_ok(&["logs", "greeter"]), "Hello, Zoe!\n");
    assert_eq!(
        d.wrun_ok(&["logs", "--tail", "1", "greeter"]),
        "Hello, Zoe!\n"
    );
    let ps = d.wrun_ok(&["ps", "-a"]);
    assert!(
        ps.starts_with("CONTAINER ID   IMAGE"),
        "docker's columns: {ps}"
    );
    assert!(ps.contains("greeter") && ps.contains("Exited (0)"), "{ps}");
    let inspect: serde_json::Value =
        serde_json::from_str(&d.wrun_ok(&["inspect", "greeter"])).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    assert_eq!(inspect[0]["State"]["Status"], "exited");
    assert_eq!(inspect[0]["Name"], "/greeter");

    // The name is taken: 409 from the daemon, one clear line.
    let dup = d.wrun(&["run", "-d", "--name", "greeter", "hello:1.0"]);
    assert!(!dup.status.success());
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("is already in use"),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );

    // A restarted daemon still lists the instance and its logs.
    d.stop();
    d.restart_process();
    assert!(d.wrun_ok(&["ps", "-a"]).contains("greeter"));
    assert_eq!(d.wrun_ok(&["logs", "greeter"]), "Hello, Zoe!\n");
    assert_eq!(d.wrun_ok(&["rm", "greeter"]).trim(), "greeter");
    assert!(!d.wrun_ok(&["ps", "-a"]).contains("greeter"));
    let gone = d.wrun(&["stop", "greeter"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("No such container"));
}

#[test]
fn malformed_requests_get_docker_json_errors_and_the_daemon_keeps_serving() {
    let d = daemon();
    let message = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body:?}"));
        v["message"].as_str().unwrap().to_string()
    };
    // Bad JSON.
    let (status, body) = d.raw("POST", "/v1.45/containers/create", b"{\"Image\": ");
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("invalid JSON"));
    // Wrong types.
    let (status, body) = d.raw("POST", "/containers/create", br#"{"Image": 42}"#);
    assert_eq!(status, 400, "{body}");
    message(&body);
    // Unknown id, unknown image, unknown route.
    let (status, body) = d.raw("GET", "/containers/0123456789ab/json", b"");
    assert_eq!(status, 404, "{body}");
    assert!(message(&body).contains("No such container"));
    let (status, body) = d.raw("POST", "/containers/create", br#"{"Image": "nope:1"}"#);
    assert_eq!(status, 404, "{body}");
    assert!(message(&body).contains("No such image"));
    let (status, body) = d.raw("GET", "/no/such/route", b"");
    assert_eq!(status, 404, "{body}");
    message(&body);
    // Oversized body.
    let big = vec![b' '; 2 << 20];
    let (status, body) = d.raw("POST", "/containers/create", &big);
    assert_eq!(status, 413, "{body}");
    message(&body);
    // Hostile grants and a bad name are refused at create (`name:/data`
    // names a volume; a relative host path or a bad name does not).
    for bind in ["./relative:/data", "bad/name:/data"] {
        let (status, body) = d.raw(
            "POST",
            "/containers/create",
            format!(r#"{{"Image": "hello:1.0", "HostConfig": {{"Binds": ["{bind}"]}}}}"#)
                .as_bytes(),
        );
        assert_eq!(status, 400, "{bind}: {body}");
    }
    let (status, body) = d.raw(
        "POST",
        "/containers/create?name=-bad",
        br#"{"Image": "hello:1.0"}"#,
    );
    assert_eq!(status, 400, "{body}");
    message(&body);
    // Wrong state: kill of an instance that is not running; name conflict.
    let (status, body) = d.raw(
        "POST",
        "/containers/create?name=c1",
        br#"{"Image": "hello:1.0"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = d.raw("POST", "/containers/c1/kill", b"");
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("is not running"));
    let (status, body) = d.raw(
        "POST",
        "/containers/create?name=c1",
        br#"{"Image": "hello:1.0"}"#,
    );
    assert_eq!(status, 409, "{body}");
    message(&body);
    let (status, body) = d.raw("GET", "/containers/c1/logs", b"");
    assert_eq!(status, 400, "no stream chosen: {body}");
    let (status, body) = d.raw("GET", "/v9.99/_ping", b"");
    assert_eq!(status, 400, "{body}");
    // The lifecycle and image routes: wrong states, bad names and values.
    let cases: [(&str, &str, &[u8], u16); 16] = [
        ("POST", "/containers/c1/pause", b"", 409),
        ("POST", "/containers/c1/unpause", b"", 409),
        ("GET", "/containers/c1/top", b"", 409),
        ("POST", "/containers/c1/rename?name=", b"", 400),
        ("POST", "/containers/c1/rename?name=-x", b"", 400),
        ("POST", "/containers/nope/restart", b"", 404),
        ("GET", "/containers/nope/stats?stream=false", b"", 404),
        (
            "GET",
            "/containers/json?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D",
            b"",
            400,
        ),
        ("GET", "/containers/json?filters=not-json", b"", 400),
        ("GET", "/events?since=yesterday", b"", 400),
        ("GET", "/events?filters=%5B1%5D", b"", 400),
        (
            "POST",
            "/containers/prune?filters=%7B%22nope%22%3A%5B%221h%22%5D%7D",
            b"",
            400,
        ),
        ("POST", "/images/hello:1.0/tag?repo=Bad%20Name", b"", 400),
        ("DELETE", "/images/nope:1", b"", 404),
        ("GET", "/images/get?names=nope:1", b"", 404),
        ("POST", "/images/load", b"not a tar at all", 400),
    ];
    for (method, path, body, want) in cases {
        let (status, answer) = d.raw(method, path, body);
        assert_eq!(status, want, "{method} {path}: {answer}");
        message(&answer);
    }
    let (status, body) = d.raw(
        "POST",
        "/containers/create",
        br#"{"Image": "hello:1.0", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}"#,
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = d.raw(
        "POST",
        "/containers/create",
        br#"{"Image": "hello:1.0", "HostConfig": {"LogConfig": {"Type": "syslog"}}}"#,
    );
    assert_eq!(status, 400, "{body}");
    // Still serving.
    let (status, body) = d.raw("GET", "/_ping", b"");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (status, body) = d.raw("DELETE", "/containers/c1", b"");
    assert_eq!(status, 204, "{body}");
}

#[test]
fn stop_and_kill_end_a_running_instance_and_wait_returns_the_code() {
    let d = daemon();
    d.wrun_ok(&["run", "-d", "--name", "sleeper", "idle:1.0"]);
    d.wait_for_log("sleeper", "ready\n");
    let ps = d.wrun_ok(&["ps"]);
    let row = ps
        .lines()
        .find(|l| l.contains("sleeper"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(row.contains("Up "), "a sleeping guest is running: {row}");
    assert_eq!(d.inspect("sleeper")["State"]["Running"], true);

    // wait blocks until the instance ends, from another client.
    let waiter = d
        .env
        .cmd()
        .env("WRUN_HOST", d.host())
        .args(["wait", "sleeper"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(d.wrun_ok(&["stop", "sleeper"]).trim(), "sleeper");
    let waited = waiter.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&waited.stdout).trim(), "143");
    let st = d.inspect("sleeper")["State"].clone();
    assert_eq!(st["Status"], "exited");
    assert_eq!(st["ExitCode"], 143, "stop is recorded as 128 + SIGTERM");
    assert_ne!(st["FinishedAt"], "0001-01-01T00:00:00Z");
    // Stopping a stopped instance is not an error (Docker's 304).
    d.wrun_ok(&["stop", "sleeper"]);

    d.wrun_ok(&["run", "-d", "--name", "victim", "idle:1.0"]);
    d.wait_for_log("victim", "ready\n");
    d.wrun_ok(&["kill", "victim"]);
    assert_eq!(d.wrun_ok(&["wait", "victim"]).trim(), "137");
    assert_eq!(d.inspect("victim")["State"]["ExitCode"], 137);
    let again = d.wrun(&["kill", "victim"]);
    assert!(!again.status.success(), "kill of an exited instance fails");
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not running"));

    d.wrun_ok(&["run", "-d", "--name", "doomed", "idle:1.0"]);
    d.wait_for_log("doomed", "ready\n");
    let refused = d.wrun(&["rm", "doomed"]);
    assert!(
        !refused.status.success(),
        "rm of a running instance needs -f"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot remove a running container"));
    assert_eq!(d.wrun_ok(&["rm", "-f", "doomed"]).trim(), "doomed");
    assert!(!d.wrun_ok(&["ps", "-a"]).contains("doomed"));
}

#[test]
fn a_daemon_restart_marks_running_instances_exited_with_the_reason() {
    let mut d = daemon();
    d.wrun_ok(&["run", "-d", "--name", "graceful", "idle:1.0"]);
    d.wait_for_log("graceful", "ready\n");
    d.stop();
    d.restart_process();
    let st = d.inspect("graceful")["State"].clone();
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["Running"], false);
    assert_eq!(st["ExitCode"], 255, "{st}");
    assert!(
        st["Error"].as_str().unwrap().contains("daemon shut down"),
        "{st}"
    );
    assert_eq!(d.wrun_ok(&["logs", "graceful"]), "ready\n");

    // A daemon killed outright: the next one notices at load.
    d.wrun_ok(&["run", "-d", "--name", "abrupt", "idle:1.0"]);
    d.wait_for_log("abrupt", "ready\n");
    let mut child = d.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    d.restart_process();
    let st = d.inspect("abrupt")["State"].clone();
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["ExitCode"], 255, "{st}");
    assert!(
        st["Error"]
            .as_str()
            .unwrap()
            .contains("daemon stopped while the instance was running"),
        "{st}"
    );
    // The instance can run again.
    d.wrun_ok(&["rm", "abrupt", "graceful"]);
}

#[test]
fn pause_restart_rename_top_stats_events_and_prune_through_the_wrun_verbs() {
    let d = daemon();
    let since = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 1
    );
    d.wrun_ok(&["run", "-d", "--name", "nap", "idle:1.0", "2"]);
    d.wait_for_log("nap", "ready\n");

    // Paused: not scheduled, so its 2 s sleep cannot end while paused.
    assert_eq!(d.wrun_ok(&["pause", "nap"]).trim(), "nap");
    let st = d.inspect("nap")["State"].clone();
    assert_eq!(
        (st["Status"].as_str(), st["Paused"].as_bool()),
        (Some("paused"), Some(true))
    );
    assert_eq!(
        st["Running"], true,
        "a paused instance still holds its guest"
    );
    assert!(d.wrun_ok(&["ps"]).contains("(Paused)"));
    let twice = d.wrun(&["pause", "nap"]);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already paused"));
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(
        d.wrun_ok(&["logs", "nap"]),
        "ready\n",
        "the guest ran while paused"
    );
    assert_eq!(d.inspect("nap")["State"]["Status"], "paused");
    d.wrun_ok(&["unpause", "nap"]);
    assert_eq!(d.wrun_ok(&["wait", "nap"]).trim(), "0");
    assert_eq!(d.wrun_ok(&["logs", "nap"]), "ready\ndone\n");
    let not_paused = d.wrun(&["unpause", "nap"]);
    assert!(String::from_utf8_lossy(&not_paused.stderr).contains("is not paused"));

    d.wrun_ok(&["rm", "nap"]);

    // A guest that sleeps a day: stop, then start runs it again; restart
    // replaces a running run.
    d.wrun_ok(&["run", "-d", "--name", "long", "idle:1.0"]);
    d.wait_for_log("long", "ready\n");
    d.wrun_ok(&["start", "long"]); // running already: nothing happens
    d.wrun_ok(&["stop", "long"]);
    d.wrun_ok(&["start", "long"]);
    d.wait_for_log("long", "ready\nready\n");
    let first = d.inspect("long")["State"]["StartedAt"].clone();
    d.wrun_ok(&["restart", "long"]);
    let st = d.inspect("long")["State"].clone();
    assert_eq!(st["Running"], true);
    assert_ne!(st["StartedAt"], first, "restart started a new run");

    // top: one row, the instance.
    let top = d.wrun_ok(&["top", "long"]);
    assert!(top.starts_with("PID"), "{top}");
    assert!(
        top.contains("/idle.wasm") && top.contains("running"),
        "{top}"
    );

    // stats: linear memory in use is known while running.
    let (status, body) = d.raw(
        "GET",
        "/containers/long/stats?stream=false&one-shot=true",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        stats["memory_stats"]["usage"].as_u64().unwrap() >= 65536,
        "{stats}"
    );
    assert_eq!(stats["name"], "/long");
    let table = d.wrun_ok(&["stats", "--no-stream"]);
    assert!(
        table.starts_with("CONTAINER ID") && table.contains("long"),
        "{table}"
    );

    // rename: the old name is gone, the new one answers.
    d.wrun_ok(&["rename", "long", "doze"]);
    assert_eq!(d.inspect("doze")["Name"], "/doze");
    assert!(!d.wrun(&["inspect", "long"]).status.success());
    d.wrun_ok(&["run", "-d", "--name", "other", "hello:1.0"]);
    let taken = d.wrun(&["rename", "doze", "other"]);
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already in use"));

    // prune removes what is not running, keeps what runs.
    assert_eq!(d.wrun_ok(&["wait", "other"]).trim(), "0");
    let pruned = d.wrun_ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    let ps = d.wrun_ok(&["ps", "-a"]);
    assert!(ps.contains("doze") && !ps.contains("other"), "{ps}");
    d.wrun_ok(&["rm", "-f", "doze"]);

    // events: the story so far, per instance.
    let until = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1
    );
    let events = d.wrun_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--format",
        "json",
    ]);
    let actions: Vec<(String, String)> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|e| {
            (
                e["Actor"]["Attributes"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e["Action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let of = |names: &[&str]| -> Vec<&str> {
        actions
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert_eq!(
        of(&["nap"]),
        ["create", "start", "pause", "unpause", "die", "destroy"],
        "{events}"
    );
    assert_eq!(
        of(&["long", "doze"]),
        [
            "create", "start", "kill", "die", "stop", "start", "kill", "die", "stop", "start",
            "restart", "rename", "kill", "die", "destroy"
        ],
        "{events}"
    );
    let only_die = d.wrun_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=die",
        "--filter",
        "container=other",
        "--format",
        "json",
    ]);
    assert_eq!(only_die.lines().count(), 1, "{only_die}");
    assert!(only_die.contains("\"exitCode\":\"0\""), "{only_die}");
}

/// Polls `inspect NAME` until `done` holds for its State and RestartCount.
fn wait_for_state(
    d: &Daemon,
    name: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..1500 {
        last = d.inspect(name);
        if done(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{name} never reached the expected state: {last}");
}

#[test]
fn restart_policies_apply_when_an_instance_ends_and_when_the_daemon_starts() {
    let mut d = daemon();
    // on-failure:2 — `idle x` exits 2 at once: two restarts, then it stays down.
    d.wrun_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "idle:1.0",
        "x",
    ]);
    let v = wait_for_state(&d, "flaky", |v| {
        v["RestartCount"] == 2 && v["State"]["Status"] == "exited"
    });
    assert_eq!(v["State"]["ExitCode"], 2);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    let logs = d.wrun(&["logs", "flaky"]);
    let errors = String::from_utf8_lossy(&logs.stderr)
        .matches("SECONDS must be")
        .count();
    assert_eq!(errors, 3, "one run and two restarts");

    // always: a guest that exits 0 comes back; stop ends it for good.
    d.wrun_ok(&[
        "run",
        "-d",
        "--name",
        "phoenix",
        "--restart",
        "always",
        "hello:1.0",
    ]);
    wait_for_state(&d, "phoenix", |v| {
        v["RestartCount"].as_i64().unwrap_or(0) >= 1
    });
    d.wrun_ok(&["stop", "phoenix"]);
    let v = d.inspect("phoenix");
    assert_eq!(v["State"]["Running"], false, "{v}");
    assert_eq!(v["State"]["Restarting"], false, "{v}");

    // A flag the daemon refuses: --rm with a restart policy.
    let both = d.wrun(&["run", "-d", "--rm", "--restart", "always", "hello:1.0"]);
    assert!(String::from_utf8_lossy(&both.stderr).contains("AutoRemove"));
    let bad = d.wrun(&["run", "-d", "--restart", "sometimes", "hello:1.0"]);
    assert!(!bad.status.success());

    // Daemon start: unless-stopped comes back, unless stopped by hand;
    // no policy stays exited.
    d.wrun_ok(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "--restart",
        "unless-stopped",
        "idle:1.0",
    ]);
    d.wrun_ok(&[
        "run",
        "-d",
        "--name",
        "parked",
        "--restart",
        "unless-stopped",
        "idle:1.0",
    ]);
    d.wrun_ok(&["run", "-d", "--name", "plain", "idle:1.0"]);
    d.wait_for_log("keeper", "ready\n");
    d.wait_for_log("parked", "ready\n");
    d.wait_for_log("plain", "ready\n");
    d.wrun_ok(&["stop", "parked"]);
    let phoenix_runs = d.inspect("phoenix")["RestartCount"].as_i64().unwrap();
    let mut child = d.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    d.restart_process();
    let v = wait_for_state(&d, "keeper", |v| v["State"]["Running"] == true);
    assert_eq!(v["RestartCount"], 1, "{v}");
    d.wait_for_log("keeper", "ready\nready\n");
    assert_eq!(d.inspect("parked")["State"]["Status"], "exited");
    assert_eq!(d.inspect("plain")["State"]["Status"], "exited");
    // always: back with the daemon even though it was stopped by hand.
    let v = wait_for_state(&d, "phoenix", |v| {
        v["RestartCount"].as_i64().unwrap_or(0) > phoenix_runs
    });
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "always");
    d.wrun_ok(&["stop", "phoenix"]);
}

#[test]
fn the_stock_docker_client_manages_images() {
    if !have_tool("docker") {
        return;
    }
    let d = daemon();
    let history = d.docker_ok(&["history", "hello:1.0"]);
    assert!(history.starts_with("IMAGE"), "{history}");
    assert!(history.lines().count() >= 2, "{history}");

    // tag: a second name for the same image.
    d.docker_ok(&["tag", "hello:1.0", "greeter:2"]);
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let id_of = |name: &str| {
        images
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from {images}"))
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(id_of("greeter:2"), id_of("hello:1.0"));
    let bad = d.docker(&["tag", "hello:1.0", "Bad Name"]);
    assert!(!bad.status.success());

    // save, rmi, load: the image comes back under its name.
    let tar = d.env.path("greeter.tar");
    d.docker_ok(&["save", "-o", tar.to_str().unwrap(), "greeter:2"]);
    let saved = std::fs::read(&tar).unwrap();
    assert!(
        saved.len() > 10_000,
        "a tar with the module: {} bytes",
        saved.len()
    );
    let untagged = d.docker_ok(&["rmi", "greeter:2"]);
    assert!(untagged.contains("Untagged: greeter:2"), "{untagged}");
    assert!(!d.docker_ok(&["images"]).contains("greeter"));
    let loaded = d.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: greeter:2"), "{loaded}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "greeter:2", "Lu"]),
        "Hello, Lu!\n"
    );

    // An image an instance uses is kept unless forced.
    d.docker_ok(&["rmi", "greeter:2"]);
    d.docker_ok(&["create", "--name", "holder", "hello:1.0"]);
    let refused = d.docker(&["rmi", "hello:1.0"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("used by a container"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(d.docker_ok(&["images"]).contains("hello"));
    let forced = d.docker_ok(&["rmi", "-f", "hello:1.0"]);
    assert!(forced.contains("Deleted:"), "{forced}");

    // A broken archive is refused with a clear error, the store unchanged.
    let junk = d.env.path("junk.tar");
    std::fs::write(&junk, b"this is not a tar").unwrap();
    let before = d.docker_ok(&["images", "-q"]);
    let out = d.docker(&["load", "-i", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(d.docker_ok(&["images", "-q"]), before);
    let missing = d.docker(&[
        "save",
        "-o",
        d.env.path("x.tar").to_str().unwrap(),
        "nope:1",
    ]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such image"));
}

#[test]
fn the_stock_docker_client_runs_the_instance_lifecycle() {
    if !have_tool("docker") {
        return;
    }
    let d = daemon();
    d.env.build("fs-copy:1.0", FS_COPY_DIR);
    let since = d.docker_ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(!since.trim().is_empty());
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;

    // -e and -v reach the guest: it writes through the volume as the env says.
    let out_dir = d.env.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let bind = format!("{}:/out", out_dir.display());
    let said = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "-e",
        "FS_COPY_UPPERCASE=0",
        "fs-copy:1.0",
    ]);
    assert!(said.contains("copied"), "{said}");
    let copied = std::fs::read_to_string(out_dir.join("words.txt")).unwrap();
    assert!(copied.starts_with("1: "), "{copied}");
    assert_eq!(
        copied,
        copied.to_lowercase(),
        "FS_COPY_UPPERCASE=0 was seen"
    );
    let said = d.docker_ok(&["run", "--rm", "-v", &bind, "fs-copy:1.0"]);
    assert!(said.contains("copied"), "{said}");
    let upper = std::fs::read_to_string(out_dir.join("words.txt")).unwrap();
    assert_eq!(
        upper,
        upper.to_uppercase(),
        "the image's env applies without -e"
    );
    assert_ne!(upper, copied);

    // A long-running instance: inspect, top, stats, pause, unpause, stop, start, kill, wait.
    let id = d
        .docker_ok(&["run", "-d", "--name", "svc", "idle:1.0"])
        .trim()
        .to_string();
    d.wait_for_log("svc", "ready\n");
    let fmt = |what: &str| {
        d.docker_ok(&["inspect", "--format", what, "svc"])
            .trim()
            .to_string()
    };
    assert_eq!(fmt("{{.State.Status}}"), "running");
    assert_eq!(fmt("{{.Name}}"), "/svc");
    assert_eq!(fmt("{{.Id}}"), id);
    let top = d.docker_ok(&["top", "svc"]);
    assert!(top.contains("PID") && top.contains("/idle.wasm"), "{top}");
    let stats = d.docker_ok(&["stats", "--no-stream"]);
    let row = stats
        .lines()
        .find(|l| l.contains("svc"))
        .unwrap_or_else(|| panic!("{stats}"));
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(
        row.contains("KiB / ") || row.contains("MiB / "),
        "linear memory in use is shown: {row}"
    );

    d.docker_ok(&["pause", "svc"]);
    assert_eq!(fmt("{{.State.Status}}"), "paused");
    assert!(d.docker_ok(&["ps"]).contains("(Paused)"));
    d.docker_ok(&["unpause", "svc"]);
    assert_eq!(fmt("{{.State.Status}}"), "running");

    assert_eq!(d.docker_ok(&["stop", "svc"]).trim(), "svc");
    assert_eq!(fmt("{{.State.ExitCode}}"), "143");
    assert_eq!(d.docker_ok(&["wait", "svc"]).trim(), "143");
    assert_eq!(d.docker_ok(&["start", "svc"]).trim(), "svc");
    assert_eq!(fmt("{{.State.Running}}"), "true");
    d.wait_for_log("svc", "ready\nready\n");
    d.docker_ok(&["restart", "svc"]);
    assert_eq!(fmt("{{.State.Running}}"), "true");
    d.docker_ok(&["kill", "svc"]);
    assert_eq!(d.docker_ok(&["wait", "svc"]).trim(), "137");
    d.docker_ok(&["rename", "svc", "svc2"]);
    assert_eq!(d.docker_ok(&["rm", "svc2"]).trim(), "svc2");

    // events: what happened to it, filtered by the client's own flags.
    let t1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = d.docker_ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &t1.to_string(),
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = events.lines().collect();
    for want in [
        "create", "start", "pause", "unpause", "kill", "die", "stop", "restart", "rename",
        "destroy",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let dies = d.docker_ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &t1.to_string(),
        "--filter",
        "event=die",
        "--filter",
        "image=idle:1.0",
    ]);
    assert_eq!(
        dies.lines().count(),
        3,
        "stop, restart and kill ended a run each: {dies}"
    );

    // container prune through the client.
    d.docker_ok(&["run", "--name", "once", "hello:1.0"]);
    let pruned = d.docker_ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert!(!d.docker_ok(&["ps", "-a"]).contains("once"));
}

#[test]
fn ps_filters_and_json_format_and_log_options() {
    let d = daemon();
    d.wrun_ok(&["run", "-d", "--name", "up", "idle:1.0"]);
    d.wrun_ok(&[
        "run",
        "-d",
        "--name",
        "done",
        "--log-opt",
        "max-size=1m",
        "hello:1.0",
    ]);
    assert_eq!(d.wrun_ok(&["wait", "done"]).trim(), "0");
    d.wait_for_log("up", "ready\n");

    // A status filter implies -a, as in Docker.
    let exited = d.wrun_ok(&["ps", "--filter", "status=exited", "--format", "json"]);
    let rows: Vec<serde_json::Value> = exited
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{exited}");
    assert_eq!(rows[0]["Names"], "done");
    assert_eq!(rows[0]["State"], "exited");
    assert!(
        rows[0]["Status"]
            .as_str()
            .unwrap()
            .starts_with("Exited (0)")
    );
    let running = d.wrun_ok(&[
        "ps",
        "-q",
        "--filter",
        "name=u",
        "--filter",
        "status=running",
    ]);
    assert_eq!(running.lines().count(), 1, "{running}");
    let by_image = d.wrun_ok(&["ps", "-a", "--filter", "ancestor=hello:1.0"]);
    assert!(
        by_image.contains("done") && !by_image.contains(" up"),
        "{by_image}"
    );
    let unknown = d.wrun(&["ps", "--filter", "colour=blue"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Invalid filter 'colour'"));

    // --log-opt is recorded, and a bad one is refused at create.
    let v = d.inspect("done");
    assert_eq!(
        v["HostConfig"]["LogConfig"]["Config"]["max-size"], "1m",
        "{v}"
    );
    let bad = d.wrun(&["run", "-d", "--log-opt", "max-size=lots", "hello:1.0"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid log-opt max-size"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    d.wrun_ok(&["rm", "-f", "up", "done"]);
}

#[test]
fn pausing_a_busy_guest_stops_it_computing_until_unpaused() {
    let d = daemon();
    d.wrun_ok(&["run", "-d", "--name", "spinner", "idle:1.0", "spin"]);
    d.wait_for_log("spinner", "tick 3\n");
    let busy = d.wrun_ok(&["stats", "--no-stream", "spinner"]);
    let row = busy.lines().nth(1).unwrap_or_else(|| panic!("{busy}"));
    assert!(row.contains("spinner"), "{busy}");
    let cpu = row.split_whitespace().nth(2).unwrap();
    assert_ne!(cpu, "0.00%", "a computing guest uses CPU: {busy}");
    d.wrun_ok(&["pause", "spinner"]);
    // The gate shuts at the guest's next epoch yield; let that pass.
    std::thread::sleep(Duration::from_millis(300));
    let frozen = d.wrun_ok(&["logs", "spinner"]);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        d.wrun_ok(&["logs", "spinner"]),
        frozen,
        "a paused busy guest went on computing"
    );
    // It used CPU while it ran, and keeps its memory while paused.
    let (status, body) = d.raw(
        "GET",
        "/containers/spinner/stats?stream=false&one-shot=true",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        stats["cpu_stats"]["cpu_usage"]["total_usage"]
            .as_u64()
            .unwrap()
            > 0,
        "{stats}"
    );
    assert!(
        stats["memory_stats"]["usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    let ticks = frozen.lines().count();
    d.wrun_ok(&["unpause", "spinner"]);
    d.wait_for_log("spinner", &format!("tick {ticks}\n"));
    d.wrun_ok(&["kill", "spinner"]);
    assert_eq!(d.wrun_ok(&["wait", "spinner"]).trim(), "137");
}

/// The daemon's open descriptors once they stop changing (connections of
/// the CLI calls just made may still be closing).
fn settled_fds(pid: u32) -> usize {
    let count = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let mut last = count();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = count();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[test]
fn idle_instances_hold_no_descriptor_in_the_daemon_unless_given_a_tmp() {
    let d = daemon();
    let pid = d.child.as_ref().unwrap().id();
    let running = || {
        d.wrun_ok(&["ps", "-q", "--filter", "status=running"])
            .lines()
            .count()
    };
    // The first start compiles the module and opens the stores it needs.
    d.wrun_ok(&["run", "-d", "idle:1.0"]);
    let before = settled_fds(pid);
    for i in 0..30 {
        // Neither a read-only rootfs nor a writable one nothing wrote to
        // holds a descriptor of its own (the image's lower is shared).
        let read_only: &[&str] = if i % 2 == 0 { &["--read-only"] } else { &[] };
        d.wrun_ok(&[&["run", "-d"][..], read_only, &["idle:1.0"]].concat());
    }
    assert_eq!(running(), 31);
    let with_read_only = settled_fds(pid);
    assert!(
        with_read_only <= before + 2,
        "30 default instances took the daemon from {before} to {with_read_only} descriptors"
    );
    // The control: an instance with a private /tmp holds its rootfs and /tmp.
    for _ in 0..10 {
        d.wrun_ok(&["run", "-d", "--tmpfs", "/tmp", "idle:1.0"]);
    }
    assert_eq!(running(), 41);
    let with_tmp = settled_fds(pid);
    assert!(
        with_tmp >= with_read_only + 2 * 10,
        "10 instances with /tmp: {with_read_only} -> {with_tmp} descriptors"
    );
}

/// Builds `cat:1.0` (stdin to stdout) into the daemon's store.
fn build_cat(d: &Daemon) {
    let ctx = d.env.path("cat");
    write_cat_context(&ctx);
    d.env
        .ok(&["build", "-q", "-t", "cat:1.0", ctx.to_str().unwrap()]);
}

#[test]
fn the_stock_docker_client_pipes_stdin_into_an_instance_with_dash_i() {
    if !have_tool("docker") {
        return;
    }
    let d = daemon();
    build_cat(&d);
    let docker_with_input =
        |args: &[&str], input: &[u8]| output_with_input(d.docker_cmd().args(args), input);
    // More than the pipe's buffer, in lines: all of it reaches the guest,
    // and closing stdin is its end of file (it exits 0 on its own).
    let input: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let out = docker_with_input(&["run", "-i", "--rm", "cat:1.0"], input.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), input);
    // Without -i the guest's stdin is closed from the start.
    let out = docker_with_input(&["run", "--rm", "cat:1.0"], b"ignored\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    // Detached with -i and never attached: stdin stays open, so the guest
    // waits (as under Docker) until stopped.
    d.docker_ok(&["run", "-d", "-i", "--name", "waiting", "cat:1.0"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "waiting"])
            .trim(),
        "true"
    );
    d.docker_ok(&["stop", "waiting"]);
}

#[test]
fn create_then_start_attached_and_attach_follow_a_run_with_its_stdin_and_exit_code() {
    let d = daemon();
    build_cat(&d);
    let wrun_with_input =
        |args: &[&str], input: &[u8]| output_with_input(d.wrun_cmd().args(args), input);
    // create: recorded, not started.
    let id = d.wrun_ok(&["create", "--name", "greeter", "hello:1.0", "Bob"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(
        d.wrun_ok(&["inspect", "-f", "{{.State.Status}}", "greeter"])
            .trim(),
        "created"
    );
    // Bad input to create exits 125, as docker create does, and records nothing.
    for bad in [
        &["create", "nosuch:1"][..],
        &["create", "--no-such-flag", "hello:1.0"],
    ] {
        let out = d.wrun(bad);
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {out:?}");
    }
    assert_eq!(d.wrun_ok(&["ps", "-aq"]).lines().count(), 1);
    // start -a: the run's output, then its exit code.
    assert_eq!(d.wrun_ok(&["start", "-a", "greeter"]), "Hello, Bob!\n");
    d.wrun_ok(&["create", "--name", "failing", "idle:1.0", "notanumber"]);
    let out = d.wrun(&["start", "-a", "failing"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SECONDS must be a whole number"),
        "{out:?}"
    );
    // create -i, then start -ai: our stdin is the guest's, to end of file.
    d.wrun_ok(&["create", "-i", "--name", "cat1", "cat:1.0"]);
    let out = wrun_with_input(&["start", "-ai", "cat1"], b"one\ntwo\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
    // run -d -i, then attach: the same, to a running instance.
    d.wrun_ok(&["run", "-d", "-i", "--name", "cat2", "cat:1.0"]);
    let out = wrun_with_input(&["attach", "cat2"], b"three\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "three\n");
    // Attaching to an instance that is not running is refused.
    let out = d.wrun(&["attach", "cat2"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("You cannot attach to a stopped container"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = d.wrun(&["start", "-a", "greeter", "cat1"]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
}
