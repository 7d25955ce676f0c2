//! A registry that lies, for the hostile-registry tests: a std TCP server on
//! 127.0.0.1 speaking just enough of the distribution API (`/v2/`,
//! manifests, blobs) whose every answer a test's handler chooses, and which
//! records every request it got (to show where credentials went).
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The most a [`Then::Flood`] answer sends after its body.
pub const FLOOD_CAP: u64 = 256 << 20;

/// One request as it arrived: its request line and headers, verbatim.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The path and query (`/v2/x/blobs/sha256:…`).
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The whole head as received, to search for leaked secrets.
    pub raw: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    /// The digest or tag after `/blobs/` or `/manifests/`.
    pub fn blob(&self) -> Option<&str> {
        self.path().rsplit_once("/blobs/").map(|(_, d)| d)
    }

    pub fn manifest(&self) -> Option<&str> {
        self.path().rsplit_once("/manifests/").map(|(_, r)| r)
    }
}

/// What happens after a lying answer's body is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// The connection is closed (a short body is a truncated one).
    Close,
    /// Nothing more is sent and the connection stays open until the
    /// server is dropped (a registry that stopped mid-blob).
    Stall,
    /// Zero bytes are sent until the client goes away or [`FLOOD_CAP`] is
    /// reached (a body without end, capped so that a client which buffers
    /// it shows in its peak memory without taking the machine's).
    Flood,
}

/// An answer: a status, headers, a body, and a `Content-Length` that may
/// lie about it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `Content-Length` sent; `None`: the body's true length.
    pub length: Option<u64>,
    /// No `Content-Length` at all: the body ends when the connection does.
    pub no_length: bool,
    pub then: Then,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            length: None,
            no_length: false,
            then: Then::Close,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Announces `length` bytes whatever the body holds.
    pub fn claiming(mut self, length: u64) -> Reply {
        self.length = Some(length);
        self
    }

    /// Sends no `Content-Length`: the body runs until the close.
    pub fn without_length(mut self) -> Reply {
        self.no_length = true;
        self
    }

    pub fn then(mut self, then: Then) -> Reply {
        self.then = then;
        self
    }

    /// A distribution error body (`{"errors":[{code,message}]}`).
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::new(
            status,
            serde_json::to_vec(
                &serde_json::json!({"errors": [{"code": code, "message": message}]}),
            )
            .unwrap(),
        )
        .header("Content-Type", "application/json")
    }

    /// A redirect to `location`.
    pub fn redirect(location: &str) -> Reply {
        Reply::new(307, Vec::new()).header("Location", location)
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// The server; stops (and lets stalled answers end) when dropped.
pub struct LyingRegistry {
    /// `127.0.0.1:PORT`, as a reference names it.
    pub host: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    stopping: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl LyingRegistry {
    /// Serves `handler`'s answer to every request, one thread a connection.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> LyingRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (requests, stop, stopping) = (requests.clone(), stop.clone(), stopping.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (requests, stop, stopping, handler) = (
                        requests.clone(),
                        stop.clone(),
                        stopping.clone(),
                        handler.clone(),
                    );
                    std::thread::spawn(move || {
                        serve(stream, &*handler, &requests, &stop, &stopping);
                    });
                }
            })
        };
        LyingRegistry {
            host,
            requests,
            stop,
            stopping,
            accept: Some(accept),
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }
}

impl Drop for LyingRegistry {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
        // Wakes the accept loop so it sees `stopping`.
        let _ = TcpStream::connect(&self.host);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Answers one request on its connection (every answer closes it).
fn serve(
    stream: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
    stop: &(Mutex<bool>, Condvar),
    stopping: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    let mut raw = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        raw.push_str(&line);
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    if stopping.load(Ordering::SeqCst) {
        return;
    }
    let mut lines = raw.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let request = Request {
        method,
        target,
        headers,
        raw,
    };
    requests.lock().unwrap().push(request.clone());
    let reply = handler(&request);
    let length = reply.length.unwrap_or(reply.body.len() as u64);
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    if !reply.no_length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    if request.method != "HEAD" && out.write_all(&reply.body).is_err() {
        return;
    }
    let _ = out.flush();
    match reply.then {
        Then::Close => {}
        Then::Stall => {
            let (lock, cvar) = stop;
            let mut stopped = lock.lock().unwrap();
            while !*stopped {
                stopped = cvar.wait(stopped).unwrap();
            }
        }
        Then::Flood => {
            let zeros = vec![0u8; 64 * 1024];
            let mut sent = 0;
            while sent < FLOOD_CAP
                && !stopping.load(Ordering::SeqCst)
                && out.write_all(&zeros).is_ok()
            {
                sent += zeros.len() as u64;
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What an honest registry holds: manifests by tag and digest (with their
/// media type) and blobs by digest.
#[derive(Clone, Default)]
pub struct Content {
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    pub blobs: HashMap<String, Vec<u8>>,
}

impl Content {
    /// Adds a blob; returns its digest.
    pub fn blob(&mut self, bytes: &[u8]) -> String {
        let d = digest(bytes);
        self.blobs.insert(d.clone(), bytes.to_vec());
        d
    }

    /// Adds a manifest (or index) under its digest and `tag`; returns the
    /// digest.
    pub fn manifest(&mut self, tag: &str, media_type: &str, bytes: &[u8]) -> String {
        let d = digest(bytes);
        let entry = (media_type.to_owned(), bytes.to_vec());
        self.manifests.insert(tag.to_owned(), entry.clone());
        self.manifests.insert(d.clone(), entry);
        d
    }

    /// The honest answer to `r`: `/v2/` open, manifests and blobs as held,
    /// distribution's 404s otherwise.
    pub fn answer(&self, r: &Request) -> Reply {
        if r.path() == "/v2/" {
            return Reply::new(200, b"{}".to_vec()).header("Content-Type", "application/json");
        }
        if let Some(reference) = r.manifest() {
            return match self.manifests.get(reference) {
                Some((media_type, bytes)) => Reply::new(200, bytes.clone())
                    .header("Content-Type", media_type)
                    .header("Docker-Content-Digest", &digest(bytes)),
                None => Reply::error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
            };
        }
        if let Some(d) = r.blob() {
            return match self.blobs.get(d) {
                Some(bytes) => Reply::new(200, bytes.clone())
                    .header("Content-Type", "application/octet-stream")
                    .header("Docker-Content-Digest", d),
                None => Reply::error(404, "BLOB_UNKNOWN", "blob unknown to registry"),
            };
        }
        Reply::error(404, "NAME_UNKNOWN", "repository name not known to registry")
    }
}
