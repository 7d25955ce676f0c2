#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! `Runtime::serve` with the hello-http example: one fresh instance per
//! request, the limits clients run into (deadline 504, body cap 413, queue
//! 503), the access log, and a graceful shutdown that lets in-flight
//! requests finish.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http_client::{exchange, get};
use common::{CaptureSink, prepare_file, repo_path, runtime};
use wrun_runtime::{InstanceSpec, Limits, OutputTarget, RuntimeError, ServeOptions, ServeReport};

/// A server running on its own thread until `stop` is called.
struct Served {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<std::thread::JoinHandle<Result<ServeReport, RuntimeError>>>,
    log: Arc<CaptureSink>,
    stderr: Arc<CaptureSink>,
    _scratch: tempfile::TempDir,
}

impl Served {
    fn start(spec: InstanceSpec, options: ServeOptions) -> Self {
        let (rt, scratch) = runtime(8);
        let module = prepare_file(&rt, &repo_path("examples/hello-http/hello-http.wasm"));
        assert!(module.serves_http(), "hello-http is not seen as a proxy");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(CaptureSink::default());
        let stderr = Arc::new(CaptureSink::default());
        let spec = spec.stderr(OutputTarget::Sink(stderr.clone()));
        let options = ServeOptions {
            access_log: OutputTarget::Sink(log.clone()),
            ..options
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(rt.serve(&module, vec![listener], spec, options, async {
                    let _ = stopped.await;
                }))
        });
        Self {
            addr,
            stop: Some(stop),
            done: Some(done),
            log,
            stderr,
            _scratch: scratch,
        }
    }

    fn stop(&mut self) -> ServeReport {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().join().unwrap().unwrap()
    }

    /// Waits until the guests' stderr shows `text`.
    fn wait_for_stderr(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = String::from_utf8_lossy(&self.stderr.bytes.lock().unwrap()).into_owned();
            if seen.contains(text) {
                return;
            }
            assert!(Instant::now() < deadline, "no {text:?} in {seen:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.bytes.lock().unwrap()).into_owned()
    }
}

fn with_timeout(t: Duration) -> InstanceSpec {
    InstanceSpec::default().limits(Limits {
        timeout: Some(t),
        ..Limits::default()
    })
}

#[test]
fn each_request_is_answered_with_its_path_and_logged() {
    let mut s = Served::start(InstanceSpec::default(), ServeOptions::default());
    let (status, body) = get(s.addr, "/some/path?q=1");
    assert_eq!(
        (status, body.as_str()),
        (200, "Hello from wrun: /some/path\n")
    );
    let report = s.stop();
    assert_eq!(report.requests, 1);
    let log = s.log();
    assert!(
        log.contains("\"GET /some/path?q=1 HTTP/1.1\" 200 28 "),
        "access log: {log:?}"
    );
    assert!(!log.contains("client gone"), "access log: {log:?}");
}

#[test]
fn instances_see_the_spec_env_and_nothing_of_the_host() {
    let mut s = Served::start(
        InstanceSpec::default().env("GREETING", "hi"),
        ServeOptions::default(),
    );
    assert_eq!(get(s.addr, "/env?GREETING").1, "hi\n");
    assert_eq!(get(s.addr, "/env?PATH").1, "\n");
    s.stop();
}

#[test]
fn a_blocked_guest_past_the_deadline_gets_504_and_others_are_served() {
    let mut s = Served::start(
        with_timeout(Duration::from_millis(500)),
        ServeOptions::default(),
    );
    let started = Instant::now();
    let (status, _) = get(s.addr, "/sleep?ms=60000");
    assert_eq!(status, 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(get(s.addr, "/after").0, 200);
    s.stop();
}

#[test]
fn a_spinning_guest_past_the_deadline_gets_504() {
    let mut s = Served::start(
        with_timeout(Duration::from_millis(300)),
        ServeOptions::default(),
    );
    assert_eq!(get(s.addr, "/spin").0, 504);
    assert_eq!(get(s.addr, "/after").0, 200);
    s.stop();
}

#[test]
fn oversized_bodies_get_413_declared_or_chunked() {
    let options = ServeOptions {
        max_body_size: 1000,
        ..ServeOptions::default()
    };
    let mut s = Served::start(InstanceSpec::default(), options);
    let (status, body) = exchange(
        s.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\nConnection: close\r\n\r\n",
        &[b'x'; 500],
    );
    assert_eq!((status, body.as_str()), (200, "Read 500 bytes\n"));
    let (status, _) = exchange(
        s.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
        &[b'x'; 5000],
    );
    assert_eq!(status, 413);
    let chunk = format!("{:x}\r\n{}\r\n", 4000, "y".repeat(4000));
    let (status, _) = exchange(
        s.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        format!("{chunk}0\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 413);
    assert_eq!(get(s.addr, "/still-here").0, 200);
    s.stop();
}

#[test]
fn past_the_concurrency_and_queue_bounds_requests_get_503() {
    let options = ServeOptions {
        max_concurrency: 1,
        max_queue: 0,
        ..ServeOptions::default()
    };
    let mut s = Served::start(InstanceSpec::default(), options);
    let addr = s.addr;
    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=1500"));
    s.wait_for_stderr("sleeping 1500 ms");
    assert_eq!(get(addr, "/refused").0, 503);
    assert_eq!(slow.join().unwrap().0, 200);
    assert_eq!(get(addr, "/served").0, 200);
    s.stop();
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let mut s = Served::start(InstanceSpec::default(), ServeOptions::default());
    let addr = s.addr;
    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=1000"));
    s.wait_for_stderr("sleeping 1000 ms");
    let report = s.stop();
    assert_eq!(slow.join().unwrap(), (200, "Slept 1000 ms\n".to_owned()));
    assert_eq!(report.cut_off, 0);
    assert!(TcpStream::connect(addr).is_err(), "still accepting");
}

#[test]
fn the_drain_bound_cuts_off_requests_that_take_longer() {
    let options = ServeOptions {
        drain_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let mut s = Served::start(InstanceSpec::default(), options);
    let addr = s.addr;
    let slow = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /sleep?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        out
    });
    s.wait_for_stderr("sleeping 60000 ms");
    let started = Instant::now();
    let report = s.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.cut_off, 1);
    slow.join().unwrap();
}

#[test]
fn a_command_component_cannot_be_served() {
    let (rt, _scratch) = runtime(2);
    let module = prepare_file(
        &rt,
        &repo_path("examples/hello-component/hello-component.wasm"),
    );
    assert!(!module.serves_http());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(rt.serve(
            &module,
            vec![listener],
            InstanceSpec::default(),
            ServeOptions::default(),
            async {},
        ));
    assert!(matches!(result, Err(RuntimeError::NotAnHttpProxy)));
}

#[test]
fn a_proxy_component_cannot_be_run_as_a_command() {
    let (rt, _scratch) = runtime(2);
    let module = prepare_file(&rt, &repo_path("examples/hello-http/hello-http.wasm"));
    let err = rt
        .run_blocking(&module, InstanceSpec::default())
        .unwrap_err();
    assert!(matches!(err, RuntimeError::HttpProxyNotCommand), "{err}");
}
