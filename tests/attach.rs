//! The stream routes as Docker's clients use them: `attach` (its `logs` and
//! `stream` flags, with and without an upgrade, a client that half-closes
//! at once, foreground `docker run` and `start -a` repeated to catch a
//! race), `start -a` of an `--rm` instance, and `logs` with `since`,
//! `until` and `timestamps`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Daemon, Env, HELLO_DIR, IDLE_DIR, have_tool};

fn daemon() -> Daemon {
    let env = Env::with_image("hello:1.0", HELLO_DIR);
    env.build("idle:1.0", IDLE_DIR);
    Daemon::start(env)
}

/// An HTTP answer read to the connection's end.
struct Answer {
    status: u16,
    head: String,
    /// The body (de-chunked when chunked), or the raw stream after a 101.
    body: Vec<u8>,
}

impl Answer {
    /// The payloads of the multiplexed frames in the body, concatenated per
    /// stream: (stdout, stderr).
    fn output(&self) -> (String, String) {
        let (mut out, mut err) = (String::new(), String::new());
        let mut rest = &self.body[..];
        while rest.len() >= 8 {
            let len = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            let payload = String::from_utf8_lossy(&rest[8..8 + len]);
            match rest[0] {
                1 => out.push_str(&payload),
                2 => err.push_str(&payload),
                s => panic!("frame of stream {s}"),
            }
            rest = &rest[8 + len..];
        }
        assert!(rest.is_empty(), "a frame cut short: {rest:?}");
        (out, err)
    }
}

/// A raw client of the daemon's socket, as docker's hijacking clients are.
struct Raw {
    stream: UnixStream,
}

impl Raw {
    /// Sends `POST path` (upgrading to a raw stream when `upgrade`).
    fn post(d: &Daemon, path: &str, upgrade: bool) -> Raw {
        let mut stream = UnixStream::connect(&d.socket).unwrap();
        // A bound for a test that would hang, not a timing assertion.
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        // Without an upgrade the answer is an HTTP body; the connection
        // closes after it, so the read below has an end.
        let upgrade = if upgrade {
            "Connection: Upgrade\r\nUpgrade: tcp\r\n"
        } else {
            "Connection: close\r\n"
        };
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: wrun\r\n{upgrade}Content-Length: 0\r\n\r\n"
        )
        .unwrap();
        Raw { stream }
    }

    /// Closes the client's side, as docker does once it has no stdin to send.
    fn close_write(self) -> Raw {
        self.stream.shutdown(std::net::Shutdown::Write).unwrap();
        self
    }

    /// Reads up to the end of the answer's head (status line and headers).
    fn head(&mut self) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            match self.stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                other => panic!(
                    "the answer ended in its head ({other:?}): {:?}",
                    String::from_utf8_lossy(&head)
                ),
            }
        }
        String::from_utf8(head).unwrap()
    }

    /// Reads the whole answer, to the connection's end.
    fn answer(mut self) -> Answer {
        let head = self.head();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let length = head.lines().find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        let mut body = Vec::new();
        match length {
            // An error answer: the connection may stay open after it.
            Some(n) => {
                body.resize(n, 0);
                self.stream.read_exact(&mut body).unwrap();
            }
            None => {
                self.stream
                    .read_to_end(&mut body)
                    .expect("the answer ends (the read timed out)");
            }
        }
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        Answer { status, head, body }
    }
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).unwrap(), 16).unwrap();
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

/// The time now as the API takes `since` and `until`: Unix seconds and
/// nanoseconds.
fn unix_now() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

#[test]
fn an_attach_that_half_closes_at_once_still_gets_the_output_of_the_next_run() {
    let d = daemon();
    d.wrun_ok(&["create", "--name", "hc", "hello:1.0"]);
    // The daemon once dropped such an answer most times: 20 in a row.
    for round in 0..20 {
        let mut raw = Raw::post(
            &d,
            "/v1.45/containers/hc/attach?stream=1&stdout=1&stderr=1",
            true,
        )
        .close_write();
        let head = raw.head();
        assert!(head.starts_with("HTTP/1.1 101"), "round {round}: {head}");
        d.wrun_ok(&["start", "hc"]);
        let mut rest = Vec::new();
        raw.stream.read_to_end(&mut rest).unwrap();
        let answer = Answer {
            status: 101,
            head,
            body: rest,
        };
        assert_eq!(
            answer.output(),
            ("Hello, world!\n".into(), String::new()),
            "round {round}"
        );
    }
}

#[test]
fn attach_replays_the_log_with_logs_and_follows_only_with_stream() {
    let d = daemon();
    d.wrun_ok(&["create", "--name", "ex", "hello:1.0", "ex"]);
    d.wrun_ok(&["start", "ex"]);
    assert_eq!(d.wrun_ok(&["wait", "ex"]).trim(), "0");
    let attach = |query: &str, upgrade: bool| {
        Raw::post(&d, &format!("/v1.45/containers/ex/attach?{query}"), upgrade).answer()
    };
    // logs=1&stream=0 on an exited instance: the log, then the end, both
    // upgraded (docker-py's attach(stream=False, logs=True)) and not.
    for upgrade in [true, false] {
        let a = attach("logs=1&stream=0&stdout=1&stderr=1", upgrade);
        assert_eq!(a.status, if upgrade { 101 } else { 200 }, "{}", a.head);
        assert_eq!(a.output(), ("Hello, ex!\n".into(), String::new()));
        // Neither flag: nothing, at once.
        let a = attach("stdout=1&stderr=1", upgrade);
        assert_eq!(a.output(), (String::new(), String::new()));
        // No stream asked for (and no stdin): nothing to follow.
        let a = attach("stream=1", upgrade);
        assert_eq!(a.output(), (String::new(), String::new()));
    }
    // stderr only: the stdout of the log is left out.
    let a = attach("logs=1&stderr=1", true);
    assert_eq!(a.output(), (String::new(), String::new()));

    // logs=1&stream=1 on an exited instance: the log, then the next run,
    // however long until it starts.
    let raw = Raw::post(
        &d,
        "/v1.45/containers/ex/attach?logs=1&stream=1&stdout=1&stderr=1",
        true,
    );
    let mut raw = raw;
    let head = raw.head();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    d.wrun_ok(&["start", "ex"]);
    let mut body = Vec::new();
    raw.stream.read_to_end(&mut body).unwrap();
    let a = Answer {
        status: 101,
        head,
        body,
    };
    assert_eq!(
        a.output(),
        ("Hello, ex!\nHello, ex!\n".into(), String::new())
    );
    // Docker's event for each attach.
    let (_, events) = {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        write!(
            s,
            "GET /v1.45/events?since=0&until={} HTTP/1.1\r\nHost: wrun\r\nConnection: close\r\n\r\n",
            unix_now().split('.').next().unwrap().parse::<u64>().unwrap() + 1
        )
        .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        ((), all)
    };
    assert!(events.contains(r#""Action":"attach""#), "{events}");

    // A paused instance is refused, in Docker's words.
    d.wrun_ok(&["run", "-d", "--name", "sleeper", "idle:1.0"]);
    d.wrun_ok(&["pause", "sleeper"]);
    let a = Raw::post(
        &d,
        "/v1.45/containers/sleeper/attach?stream=1&stdout=1",
        true,
    )
    .answer();
    assert_eq!(a.status, 409, "{}", a.head);
    assert!(
        String::from_utf8_lossy(&a.body)
            .contains("container sleeper is paused, unpause the container before attach"),
        "{:?}",
        String::from_utf8_lossy(&a.body)
    );
    d.wrun_ok(&["unpause", "sleeper"]);
    d.wrun_ok(&["kill", "sleeper"]);
}

#[test]
fn start_a_of_an_rm_instance_prints_its_output_and_exits_with_its_code() {
    let d = daemon();
    d.wrun_ok(&["create", "--rm", "--name", "once", "hello:1.0", "once"]);
    let out = d.wrun(&["start", "-a", "once"]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(0), "Hello, once!\n", "")
    );
    // `idle nope` says why on stderr and exits 2.
    d.wrun_ok(&["create", "--rm", "--name", "bad", "idle:1.0", "nope"]);
    let out = d.wrun(&["start", "-a", "bad"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "idle: SECONDS must be a whole number (or spin)\n"
    );
    let names = d.wrun_ok(&["ps", "-a", "--format", "json"]);
    assert!(!names.contains("once") && !names.contains("bad"), "{names}");

    if have_tool("docker") {
        d.docker_ok(&["create", "--rm", "--name", "dk", "idle:1.0", "nope"]);
        let out = d.docker(&["start", "-a", "dk"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "idle: SECONDS must be a whole number (or spin)\n"
        );
    }
}

#[test]
fn foreground_docker_run_and_start_a_never_lose_the_output() {
    if !have_tool("docker") {
        return;
    }
    let d = daemon();
    // The race once cost 1 run in 20 to 40 its output (with exit 0).
    for round in 0..200 {
        let out = d.docker(&["run", "--rm", "hello:1.0", "run"]);
        assert_eq!(
            (out.status.code(), String::from_utf8_lossy(&out.stdout)),
            (Some(0), "Hello, run!\n".into()),
            "docker run, round {round}: {out:?}"
        );
    }
    d.docker_ok(&["create", "--name", "again", "hello:1.0", "again"]);
    for round in 0..200 {
        let out = d.docker(&["start", "-a", "again"]);
        assert_eq!(
            (out.status.code(), String::from_utf8_lossy(&out.stdout)),
            (Some(0), "Hello, again!\n".into()),
            "docker start -a, round {round}: {out:?}"
        );
    }
}

#[test]
fn logs_take_since_until_and_timestamps_as_docker_logs_does() {
    let d = daemon();
    d.wrun_ok(&["create", "--name", "twice", "hello:1.0", "twice"]);
    d.wrun_ok(&["start", "twice"]);
    assert_eq!(d.wrun_ok(&["wait", "twice"]).trim(), "0");
    // Between the first run's output and the second's.
    let between = unix_now();
    d.wrun_ok(&["start", "twice"]);
    assert_eq!(d.wrun_ok(&["wait", "twice"]).trim(), "0");

    let stamped = d.wrun_ok(&["logs", "-t", "twice"]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 2, "{stamped}");
    for line in &lines {
        // RFC 3339 in UTC, nine digits of nanoseconds, a space, the line.
        let (time, text) = line.split_once(' ').unwrap();
        assert_eq!(text, "Hello, twice!");
        let b = time.as_bytes();
        assert_eq!(time.len(), 30, "{time}");
        for (i, c) in b.iter().enumerate() {
            let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 29);
            assert_eq!(c.is_ascii_digit(), want_digit, "{time}");
        }
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19], b[29]),
            (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
            "{time}"
        );
    }
    assert!(lines[0] < lines[1], "in order: {stamped}");
    assert_eq!(
        d.wrun_ok(&["logs", "--since", &between, "-t", "twice"]),
        format!("{}\n", lines[1])
    );
    assert_eq!(
        d.wrun_ok(&["logs", "--until", &between, "twice"]),
        "Hello, twice!\n"
    );
    assert_eq!(
        d.wrun_ok(&["logs", "--since", "1h", "twice"]),
        "Hello, twice!\nHello, twice!\n"
    );
    assert_eq!(d.wrun_ok(&["logs", "--until", "1h", "twice"]), "");
    // The tail is counted first, then until applies: nothing.
    assert_eq!(
        d.wrun_ok(&["logs", "--tail", "1", "--until", &between, "twice"]),
        ""
    );
    let bad = d.wrun(&["logs", "--since", "yesterday", "twice"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "Error: invalid value for --since: failed to parse value as time or duration: \"yesterday\"\n"
    );
    // The API takes what the docker CLI sends, and answers anything else
    // as bad input: 400 naming the key (dockerd 20.10 answers 500 with Go's
    // parse error).
    let mut raw = UnixStream::connect(&d.socket).unwrap();
    write!(
        raw,
        "GET /v1.45/containers/twice/logs?stdout=1&since=10m HTTP/1.1\r\nHost: wrun\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains(r#"invalid since \"10m\": expected Unix seconds"#),
        "{answer}"
    );

    if have_tool("docker") {
        assert_eq!(d.docker_ok(&["logs", "-t", "twice"]), stamped);
        assert_eq!(
            d.docker_ok(&["logs", "--since", &between, "-t", "twice"]),
            format!("{}\n", lines[1])
        );
        let t = lines[1].split_once(' ').unwrap().0;
        // An RFC 3339 time, as the docker CLI converts it: up to the
        // second line's time itself, both lines.
        assert_eq!(
            d.docker_ok(&["logs", "--until", t, "twice"]),
            "Hello, twice!\nHello, twice!\n"
        );
    }
}
