//! A lean load client for `benches/daemon_scale.py --client rust`: creates
//! and starts N instances through the daemon's REST API from C concurrent
//! keep-alive connections, and prints one JSON line with what it measured.
//!
//! The Python harness's own HTTP client takes most of a core on this
//! 2-core machine; this one (std only, blocking sockets, one thread per
//! connection) takes a small fraction of that, so the daemon's rate is
//! measured nearer its ceiling.
//!
//! Build: rustc -O --edition 2024 benches/daemon_load/client.rs -o daemon_load
//! Usage: daemon_load SOCKET N CONCURRENCY CREATE_BODY_JSON

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One HTTP/1.1 exchange on a kept-alive connection: the status and body.
fn request(
    r: &mut BufReader<UnixStream>,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: wrun\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    r.get_mut().write_all(head.as_bytes())?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The `Id` of a create answer.
fn id_of(body: &str) -> Option<&str> {
    let at = body.find("\"Id\"")? + 4;
    let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i].as_secs_f64()
}

/// User + system CPU seconds of this process.
fn own_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: daemon_load SOCKET N CONCURRENCY CREATE_BODY_JSON");
        std::process::exit(2);
    }
    let socket = args[1].clone();
    let n: usize = args[2].parse().expect("N");
    let concurrency: usize = args[3].parse().expect("CONCURRENCY");
    let create_body = args[4].clone();

    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(n));
    let errors = Mutex::new(Vec::<String>::new());
    let cpu0 = own_cpu_s();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..concurrency {
            s.spawn(|| {
                let conn = UnixStream::connect(&socket).expect("connecting to the daemon");
                let mut r = BufReader::new(conn);
                let mut mine = Vec::new();
                let fail = |e: String| errors.lock().unwrap().push(e);
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let t = Instant::now();
                    let id = match request(&mut r, "POST", "/containers/create", &create_body) {
                        Ok((201, body)) => match id_of(&body) {
                            Some(id) => id.to_owned(),
                            None => {
                                fail(format!("create: no Id in {body:?}"));
                                continue;
                            }
                        },
                        Ok((status, body)) => {
                            fail(format!("create: {status} {body}"));
                            continue;
                        }
                        Err(e) => {
                            fail(format!("create: {e}"));
                            return;
                        }
                    };
                    match request(&mut r, "POST", &format!("/containers/{id}/start"), "") {
                        Ok((204 | 304, _)) => mine.push(t.elapsed()),
                        Ok((status, body)) => fail(format!("start: {status} {body}")),
                        Err(e) => {
                            fail(format!("start: {e}"));
                            return;
                        }
                    }
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let cpu = own_cpu_s() - cpu0;
    let mut lat = latencies.into_inner().unwrap();
    lat.sort();
    let errors = errors.into_inner().unwrap();
    let first: Vec<String> = errors
        .iter()
        .take(5)
        .map(|e| format!("{e:?}"))
        .collect();
    println!(
        "{{\"started\": {}, \"errors\": {}, \"first_errors\": [{}], \"wall_s\": {wall}, \"client_cpu_s\": {cpu}, \"p50_s\": {}, \"p99_s\": {}}}",
        lat.len(),
        errors.len(),
        first.join(", "),
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
    );
}
