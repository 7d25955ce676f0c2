//! A `wrun pull` killed halfway through a big layer, then pulled again: the
//! blobs it had whole are not fetched again, the big one is asked for from
//! where it stopped (a `Range` request distribution 2.8 serves), the image
//! is stored whole. And on a terminal, pull and push draw docker's bars.
//! A byte-counting proxy in front of the real registry holds a transfer
//! at a chosen point, so nothing here depends on timing.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::registry::Registry;
use common::{Env, have_tool, poll};

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// The big layer: this many bytes that do not compress.
const BIG: usize = 24 << 20;

/// Where a held transfer stops: the first request whose head contains
/// `request` (method and path), after `after` bytes of its response (or,
/// with `upload`, of its request body) went through.
#[derive(Clone)]
struct Hold {
    request: String,
    upload: bool,
    after: u64,
}

/// One request seen: its head, and the bytes of its answer.
struct Seen {
    head: String,
    answered: AtomicU64,
}

/// A TCP proxy to the registry that logs each request's head and answer
/// size and holds the transfer `hold` names until released.
struct Proxy {
    host: String,
    seen: Arc<Mutex<Vec<Arc<Seen>>>>,
    hold: Arc<Mutex<Option<Hold>>>,
    released: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let proxy = Proxy {
            host,
            seen: Arc::default(),
            hold: Arc::default(),
            released: Arc::new(AtomicBool::new(false)),
        };
        let (seen, hold, released) = (
            Arc::clone(&proxy.seen),
            Arc::clone(&proxy.hold),
            Arc::clone(&proxy.released),
        );
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let conn = Connection {
                    seen: Arc::clone(&seen),
                    hold: Arc::clone(&hold),
                    released: Arc::clone(&released),
                    current: Arc::default(),
                };
                conn.run(client, server);
            }
        });
        proxy
    }

    /// Holds the next transfer `hold` names until [`Proxy::release`].
    fn hold(&self, hold: Hold) {
        self.released.store(false, Ordering::SeqCst);
        *self.hold.lock().unwrap() = Some(hold);
    }

    fn release(&self) {
        *self.hold.lock().unwrap() = None;
        self.released.store(true, Ordering::SeqCst);
    }

    /// The requests seen so far (and forgets them).
    fn take(&self) -> Vec<Arc<Seen>> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// One client connection: the request it is on, whether it is held.
#[derive(Clone)]
struct Connection {
    seen: Arc<Mutex<Vec<Arc<Seen>>>>,
    hold: Arc<Mutex<Option<Hold>>>,
    released: Arc<AtomicBool>,
    /// The request being answered, and its hold when it is the held one.
    current: Arc<Mutex<Option<Answering>>>,
}

type Answering = (Arc<Seen>, Option<Hold>);

impl Connection {
    fn run(self, mut client: TcpStream, mut server: TcpStream) {
        let (mut client_r, mut server_w) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = self.clone();
        std::thread::spawn(move || {
            // Request heads are found in the bytes as they pass (a window
            // keeps a head cut between two reads).
            let mut window: Vec<u8> = Vec::new();
            let mut body_sent = 0u64;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match client_r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                window.extend_from_slice(&buf[..n]);
                let mut new_head = false;
                while let Some(head) = take_head(&mut window) {
                    let held = up
                        .hold
                        .lock()
                        .unwrap()
                        .clone()
                        .filter(|h| head.starts_with(&h.request));
                    let seen = Arc::new(Seen {
                        head,
                        answered: AtomicU64::new(0),
                    });
                    up.seen.lock().unwrap().push(Arc::clone(&seen));
                    *up.current.lock().unwrap() = Some((seen, held));
                    new_head = true;
                    body_sent = 0;
                }
                if window.len() > 16 << 10 {
                    window.drain(..window.len() - (16 << 10));
                }
                let upload_hold = up
                    .current
                    .lock()
                    .unwrap()
                    .as_ref()
                    .and_then(|(_, h)| h.clone())
                    .filter(|h| h.upload);
                if let Some(h) = upload_hold
                    && !new_head
                {
                    if body_sent >= h.after {
                        up.wait_for_release();
                    }
                    body_sent += n as u64;
                }
                if server_w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = server_w.shutdown(std::net::Shutdown::Write);
        });
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match server.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let current = self.current.lock().unwrap().clone();
                if let Some((seen, held)) = current {
                    if let Some(h) = held.filter(|h| !h.upload)
                        && seen.answered.load(Ordering::SeqCst) >= h.after
                    {
                        self.wait_for_release();
                    }
                    seen.answered.fetch_add(n as u64, Ordering::SeqCst);
                }
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = client.shutdown(std::net::Shutdown::Write);
        });
    }

    fn wait_for_release(&self) {
        while !self.released.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The first request head in `window` (`METHOD /v2/… HTTP/1.1` up to the
/// blank line), removed from it with what came before.
fn take_head(window: &mut Vec<u8>) -> Option<String> {
    let text = String::from_utf8_lossy(window).into_owned();
    let start = [
        "GET /v2/",
        "HEAD /v2/",
        "POST /v2/",
        "PATCH /v2/",
        "PUT /v2/",
    ]
    .iter()
    .filter_map(|m| text.find(m))
    .min()?;
    let end = text[start..].find("\r\n\r\n")? + start + 4;
    let head = text[start..end].to_owned();
    // Lossy text and bytes line up only before the first invalid byte:
    // drop what the head's bytes are, found again in the bytes.
    let needle = head.as_bytes();
    let at = window.windows(needle.len()).position(|w| w == needle)?;
    window.drain(..at + needle.len());
    Some(head)
}

/// Bytes that gzip cannot shrink (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A store holding `NAME` (three layers: a module, the big noise, a small
/// file), pushed to `reg`; the manifest's blobs (config first) with sizes.
fn pushed_image(reg: &Registry, name: &str) -> (Env, Vec<(String, u64)>) {
    let env = Env::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(FSH, ctx.path().join("fsh.wasm")).unwrap();
    std::fs::write(ctx.path().join("big.bin"), noise(BIG)).unwrap();
    std::fs::write(ctx.path().join("small.txt"), "small\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nCOPY big.bin /big.bin\nCOPY small.txt /small.txt\nCMD [\"/bin/fsh\", \"cat\", \"/small.txt\"]\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", name, ctx.path().to_str().unwrap()]);
    env.ok(&["push", name]);
    let path = name.split_once('/').unwrap().1.replace(':', "/manifests/");
    let (status, manifest) = reg.get(&format!("/v2/{path}"));
    assert_eq!(status, 200, "{manifest}");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let blob = |d: &serde_json::Value| {
        (
            d["digest"].as_str().unwrap().to_owned(),
            d["size"].as_u64().unwrap(),
        )
    };
    let mut blobs = vec![blob(&manifest["config"])];
    blobs.extend(manifest["layers"].as_array().unwrap().iter().map(blob));
    (env, blobs)
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

#[test]
fn a_pull_killed_halfway_is_resumed_without_fetching_what_it_had() {
    let Some(reg) = Registry::start() else { return };
    let direct = format!("{}/team/big:1", reg.host);
    let (built, blobs) = pushed_image(&reg, &direct);
    let expected_run = built.ok(&["run", "--rm", &direct]);
    let id = built.ok(&["image", "inspect", "-f", "{{.Id}}", &direct]);
    let (big, big_size) = blobs
        .iter()
        .find(|(_, size)| *size > BIG as u64)
        .cloned()
        .unwrap();

    let proxy = Proxy::start(&reg.host);
    let name = format!("{}/team/big:1", proxy.host);
    proxy.hold(Hold {
        request: format!("GET /v2/team/big/blobs/{big}"),
        upload: false,
        after: 4 << 20,
    });
    let env = Env::new();
    let before = env.store_state();
    let mut child = env
        .cmd()
        .args(["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the other blobs are kept whole and the big one is held
    // with some of its bytes written.
    let downloads = env.root().join("downloads");
    let len = |d: &str| std::fs::metadata(downloads.join(hex(d))).map_or(0, |m| m.len());
    poll(
        "the first pull's blobs in downloads/",
        Duration::from_secs(120),
        || {
            let whole = blobs
                .iter()
                .filter(|(d, _)| *d != big)
                .all(|(d, s)| len(d) == *s);
            if whole && len(&big) > 0 {
                Ok(())
            } else {
                Err(format!(
                    "{:?}",
                    std::fs::read_dir(&downloads).map(|r| r.count())
                ))
            }
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = len(&big);
    assert!(kept < big_size, "the big blob was held halfway");
    // Nothing stored: no image, no blob, no snapshot.
    assert_eq!(env.store_state(), before);
    proxy.release();
    proxy.take();

    let out = env.ok(&["pull", &name]);
    assert!(out.contains(": Pull complete"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    let requests = proxy.take();
    let blob_gets: Vec<&Arc<Seen>> = requests
        .iter()
        .filter(|s| s.head.starts_with("GET ") && s.head.contains("/blobs/"))
        .collect();
    // The kept blobs are not asked for again; the big one from byte `kept`.
    assert_eq!(
        blob_gets.len(),
        1,
        "{:?}",
        requests.iter().map(|s| &s.head).collect::<Vec<_>>()
    );
    let get = blob_gets[0];
    assert!(get.head.contains(&big), "{}", get.head);
    assert!(
        get.head
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={kept}-")),
        "{}",
        get.head
    );
    // distribution 2.8 served the range: fewer bytes than the blob.
    let answered = get.answered.load(Ordering::SeqCst);
    assert!(
        answered < big_size - kept + 4096,
        "{answered} bytes answered for the {} missing",
        big_size - kept
    );
    // The store is whole: same image, it runs, nothing left in downloads/.
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", &name]), id);
    assert_eq!(env.ok(&["run", "--rm", &name]), expected_run);
    assert_eq!(std::fs::read_dir(&downloads).unwrap().count(), 0);
}

#[test]
fn a_kept_download_that_is_not_the_blob_is_fetched_again_from_the_start() {
    let Some(reg) = Registry::start() else { return };
    let direct = format!("{}/team/big:1", reg.host);
    let (built, blobs) = pushed_image(&reg, &direct);
    let id = built.ok(&["image", "inspect", "-f", "{{.Id}}", &direct]);
    let proxy = Proxy::start(&reg.host);
    let name = format!("{}/team/big:1", proxy.host);
    let env = Env::new();
    // A "kept" first MiB of the big blob that is not its bytes.
    env.ok(&["images"]);
    let downloads = env.root().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let (big, _) = blobs.iter().find(|(_, s)| *s > BIG as u64).unwrap();
    std::fs::write(downloads.join(hex(big)), vec![0u8; 1 << 20]).unwrap();

    let out = env.ok(&["pull", &name]);
    assert!(out.contains(": Pull complete"), "{out}");
    // Asked for from the kept length, found wrong at the end, asked for whole
    // (from byte 0).
    let gets: Vec<String> = proxy
        .take()
        .iter()
        .filter(|s| s.head.starts_with(&format!("GET /v2/team/big/blobs/{big}")))
        .map(|s| s.head.to_ascii_lowercase())
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets[0].contains("range: bytes=1048576-"), "{gets:?}");
    assert!(gets[1].contains("range: bytes=0-"), "{gets:?}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", &name]), id);
    assert_eq!(std::fs::read_dir(&downloads).unwrap().count(), 0);
}

/// Runs `wrun ARGS` on a pty (script(1)); its output as it comes.
fn on_a_terminal(env: &Env, args: &str) -> (std::process::Child, Arc<Mutex<String>>) {
    let wrun = env.cmd();
    let mut cmd = Command::new("script");
    for (k, v) in wrun.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let line = format!("{} {args}", wrun.get_program().to_str().unwrap());
    let mut child = cmd
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, text)
}

#[test]
fn on_a_terminal_pull_and_push_draw_dockers_bars() {
    if !have_tool("script") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let direct = format!("{}/team/big:1", reg.host);
    let (built, blobs) = pushed_image(&reg, &direct);
    let (big, _) = blobs
        .iter()
        .find(|(_, s)| *s > BIG as u64)
        .cloned()
        .unwrap();
    let short = &hex(&big)[..12];
    let proxy = Proxy::start(&reg.host);
    let name = format!("{}/team/big:1", proxy.host);

    // Pull: the big layer's bar while it is held, then its last word.
    proxy.hold(Hold {
        request: format!("GET /v2/team/big/blobs/{big}"),
        upload: false,
        after: 4 << 20,
    });
    let env = Env::new();
    let (mut child, text) = on_a_terminal(&env, &format!("pull {name}"));
    poll("a Downloading bar", Duration::from_secs(120), || {
        let t = text.lock().unwrap();
        if t.contains(&format!("{short}: Downloading [==")) && t.contains("MB/25.") {
            Ok(())
        } else {
            Err(t.clone())
        }
    });
    proxy.release();
    assert!(child.wait().unwrap().success());
    let t = text.lock().unwrap().clone();
    assert!(t.starts_with("1: Pulling from team/big"), "{t}");
    assert!(t.contains(&format!("{short}: Pull complete")), "{t}");
    assert!(t.contains("Status: Downloaded newer image for"), "{t}");

    // Push under another name: the big layer's upload held, then Pushed.
    let other = format!("{}/team/other:1", proxy.host);
    built.ok(&["tag", &direct, &other]);
    proxy.hold(Hold {
        // A blob goes up in one PUT after its POST (no PATCH).
        request: "PUT /v2/team/other/blobs/uploads/".into(),
        upload: true,
        after: 4 << 20,
    });
    let (mut child, text) = on_a_terminal(&built, &format!("push {other}"));
    poll("a Pushing bar", Duration::from_secs(120), || {
        let t = text.lock().unwrap();
        if t.contains(": Pushing [") {
            Ok(())
        } else {
            Err(t.clone())
        }
    });
    proxy.release();
    assert!(child.wait().unwrap().success());
    let t = text.lock().unwrap().clone();
    assert!(t.contains(&format!("{short}: Pushed")), "{t}");
    assert!(t.contains("1: digest: sha256:"), "{t}");

    // -q on a terminal: the name alone, no bar.
    let quiet = Env::new();
    let (mut child, text) = on_a_terminal(&quiet, &format!("pull -q {direct}"));
    assert!(child.wait().unwrap().success());
    poll("the quiet pull's name", Duration::from_secs(120), || {
        let t = text.lock().unwrap();
        if t.contains(&direct) {
            Ok(())
        } else {
            Err(t.clone())
        }
    });
    let t = text.lock().unwrap().replace("\r\n", "\n");
    assert_eq!(t, format!("{direct}\n"));
}
