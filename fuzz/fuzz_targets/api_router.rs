//! The Engine API as a client reaches it: each input is one request (method,
//! path and query, headers, body; see `wrun_fuzz::api_request`) sent through
//! the daemon's request handler over an in-memory HTTP/1 connection, against
//! a daemon on a temporary store holding `idle:1.0` and a running instance
//! `fz` of it. Checks: the response head arrives within ten seconds; an
//! error is Docker's one-line `{"message": …}`; a 5xx is one of those
//! dockerd gives too (501 for a Docker route wrun lacks, 503 for a full
//! pool, and its 500s listed below); a whole JSON body is JSON. After each
//! input the state is put back through the same API: other instances and
//! images removed, `idle:1.0` reloaded if it went, `fz` recreated and
//! running.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wrun_daemon::fuzzing::Engine;

/// The instance every input finds running, and its image.
const BASE: &str = "fz";
const IMAGE: &str = "idle:1.0";
/// How long a response head, or a whole error body, may take. The daemon
/// answers every route at once (streams send their head first), so this
/// is a hang, not a slow answer; it stays under dev/fuzz's `-timeout=20`.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// The 500s dockerd gives for the same requests (the message's start).
const DOCKERD_500S: [&str; 4] = [
    "more than one until filter specified",
    "failed to parse value as time or duration: ",
    "Cannot restart container ",
    // A signal Linux has no number for (`kill?signal=99`).
    "Cannot kill container: ",
];

/// No leak check, in libFuzzer's runs or at exit: the daemon keeps its
/// state across inputs by design, and a running instance's allocations are
/// held from its fiber stack, which LeakSanitizer does not scan (it reports
/// them as leaked).
#[unsafe(no_mangle)]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"detect_leaks=0".as_ptr()
}

struct World {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    /// `idle:1.0` as `GET /images/{name}/get` gave it, to load it back.
    image_tar: Bytes,
    image_id: String,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = if Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm")
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary directory for the store");
        let store = wrun_image::Store::open(dir.path()).expect("a fresh store opens");
        let request = wrun_bundler::BuildRequest {
            context: Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/idle"),
            tags: vec![IMAGE.parse().expect("a valid reference")],
            ..Default::default()
        };
        wrun_bundler::build(&store, &request).expect("examples/idle builds");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let engine = {
            let _in_runtime = rt.enter();
            Engine::open(store, 8).expect("the daemon loads on the fresh store")
        };
        let (image_tar, image_id) = rt.block_on(async {
            let tar = call(&engine, Method::GET, &format!("/images/{IMAGE}/get"), "").await;
            let inspect = call(&engine, Method::GET, &format!("/images/{IMAGE}/json"), "").await;
            let id = json(&inspect)["Id"]
                .as_str()
                .expect("an image ID")
                .to_owned();
            (tar, id)
        });
        let world = World {
            rt,
            engine,
            image_tar,
            image_id,
            _dir: dir,
        };
        world.rt.block_on(reset(&world));
        world
    })
}

fuzz_target!(|input: &[u8]| {
    let Some(req) = wrun_fuzz::api_request::parse(input) else {
        return;
    };
    let w = world();
    let what = format!("{} {}", req.method(), req.uri());
    let head = req.method() == Method::HEAD;
    w.rt.block_on(async {
        let sent = tokio::time::timeout(ANSWER_WITHIN, w.engine.send(req)).await;
        let answer = match sent {
            Err(_) => panic!("{what}: no response head within {ANSWER_WITHIN:?}"),
            // The client refused to send it (a header HTTP/1 cannot carry):
            // the daemon never saw it.
            Ok(Err(e)) if e.is_user() => return,
            Ok(Err(e)) => panic!("{what}: the connection failed: {e}"),
            Ok(Ok(answer)) => answer,
        };
        if head {
            // No body to read: only the status tells.
            assert!(
                !answer.status().is_server_error()
                    || answer.status() == StatusCode::NOT_IMPLEMENTED,
                "{what}: {}",
                answer.status()
            );
        } else {
            check(&what, answer, carries_newline(input)).await;
        }
    });
    w.rt.block_on(reset(w));
});

/// Whether the request holds a newline a message may echo: raw in the
/// body, or escaped in the path, query or JSON (`%0A`, `\n`, `\u000a`).
fn carries_newline(input: &[u8]) -> bool {
    let lower = input.to_ascii_lowercase();
    let head_end = lower
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(lower.len(), |at| at + 2);
    lower[head_end..].contains(&b'\n')
        || [&b"%0a"[..], b"\\n", b"\\u000a", b"%5cn", b"%5cu000a"]
            .iter()
            .any(|needle| lower.windows(needle.len()).any(|w| w == *needle))
}

/// dockerd's 500s for what a route was asked rather than how the request
/// was written: a save of a name that is no reference (`invalid reference
/// format`), and a registry's refusal or absence on the routes that reach
/// one (pull, push, login, search).
fn dockerds_500_for_its_route(what: &str, message: &str) -> bool {
    let uri = what.split_once(' ').map_or(what, |(_, uri)| uri);
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    // The API version prefix (`/v1.41`), when there is one.
    let path = match path.strip_prefix("/v") {
        Some(rest) => rest.find('/').map_or(path, |i| &rest[i..]),
        None => path,
    };
    let image_route = |end: &str| path.starts_with("/images/") && path.ends_with(end);
    let save = path == "/images/get" || image_route("/get");
    let registry = path == "/auth"
        || path == "/images/search"
        || image_route("/push")
        || (path == "/images/create" && query.contains("fromImage"));
    (save && message.starts_with("invalid reference format")) || registry
}

/// The checks on one answer.
async fn check(what: &str, answer: Response<Incoming>, echoes_newline: bool) {
    let status = answer.status();
    let content_type = answer
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if status.is_client_error() || status.is_server_error() {
        let body = read_whole(what, answer).await;
        let text = String::from_utf8_lossy(&body);
        if status == StatusCode::BAD_REQUEST
            && content_type.starts_with("text/plain")
            && text.starts_with("client version ")
        {
            // dockerd's version middleware answers in plain text.
            return;
        }
        let message = error_message(what, status, &body, echoes_newline);
        if status.is_server_error() {
            let documented = match status {
                StatusCode::NOT_IMPLEMENTED | StatusCode::SERVICE_UNAVAILABLE => true,
                StatusCode::INTERNAL_SERVER_ERROR => {
                    DOCKERD_500S.iter().any(|m| message.starts_with(m))
                        || dockerds_500_for_its_route(what, &message)
                }
                _ => false,
            };
            assert!(documented, "{what}: {status} {message:?}");
        }
        return;
    }
    // A whole JSON answer (a stream has no length: it may never end).
    if answer.headers().contains_key(CONTENT_LENGTH) && content_type == "application/json" {
        let body = read_whole(what, answer).await;
        for value in serde_json::Deserializer::from_slice(&body).into_iter::<Value>() {
            if let Err(e) = value {
                panic!("{what}: {status} with a body that is not JSON ({e}): {body:?}");
            }
        }
    }
}

/// An error body's message; fails unless the body is Docker's one line
/// `{"message":"…"}` with a message of one line (`echoes_newline`: but for
/// a newline the request carried, which dockerd echoes too).
fn error_message(what: &str, status: StatusCode, body: &[u8], echoes_newline: bool) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.strip_suffix('\n').unwrap_or(&text);
    assert!(
        !line.contains('\n'),
        "{what}: {status} with a body of several lines: {text:?}"
    );
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("{what}: {status} with a body that is not JSON ({e}): {text:?}")
    });
    let message = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| {
            panic!("{what}: {status} with a body other than {{\"message\"}}: {text:?}")
        });
    assert!(
        !message.is_empty(),
        "{what}: {status} with an empty message"
    );
    assert!(
        echoes_newline || !message.contains('\n'),
        "{what}: {status} with a message of several lines: {message:?}"
    );
    message.to_owned()
}

async fn read_whole(what: &str, answer: Response<Incoming>) -> Bytes {
    let read = Limited::new(answer.into_body(), 16 << 20).collect();
    match tokio::time::timeout(ANSWER_WITHIN, read).await {
        Err(_) => panic!("{what}: the body did not end within {ANSWER_WITHIN:?}"),
        Ok(Err(e)) => panic!("{what}: reading the body failed: {e}"),
        Ok(Ok(c)) => c.to_bytes(),
    }
}

/// Puts the state back as every input finds it.
async fn reset(w: &World) {
    let e = &w.engine;
    let mut base_state = None;
    let listed = call(e, Method::GET, "/containers/json?all=1", "").await;
    for c in json(&listed).as_array().expect("a list of instances") {
        let id = c["Id"].as_str().expect("an instance ID");
        let names: Vec<&str> = c["Names"]
            .as_array()
            .map(|n| n.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if names == [format!("/{BASE}")] && c["ImageID"].as_str() == Some(w.image_id.as_str()) {
            base_state = c["State"].as_str().map(str::to_owned);
        } else {
            removed(e, &format!("/containers/{id}?force=1")).await;
        }
    }
    let mut tagged = false;
    let listed = call(e, Method::GET, "/images/json", "").await;
    for image in json(&listed).as_array().expect("a list of images") {
        let id = image["Id"].as_str().expect("an image ID");
        if id != w.image_id {
            removed(e, &format!("/images/{id}?force=1")).await;
            continue;
        }
        for tag in image["RepoTags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().expect("a tag");
            if tag == IMAGE {
                tagged = true;
            } else {
                removed(e, &format!("/images/{tag}")).await;
            }
        }
    }
    if !tagged {
        let req = Request::post("/images/load?quiet=1")
            .header(CONTENT_TYPE, "application/x-tar")
            .body(Full::new(w.image_tar.clone()))
            .expect("a valid request");
        expect(e, req, &[StatusCode::OK]).await;
    }
    match base_state.as_deref() {
        Some("running") => {}
        Some("paused") => post(e, &format!("/containers/{BASE}/unpause"), "").await,
        Some(_) => post(e, &format!("/containers/{BASE}/start"), "").await,
        None => {
            let body = format!(r#"{{"Image":"{IMAGE}"}}"#);
            post(e, &format!("/containers/create?name={BASE}"), &body).await;
            post(e, &format!("/containers/{BASE}/start"), "").await;
        }
    }
}

async fn call(e: &Engine, method: Method, target: &str, body: &str) -> Bytes {
    let req = Request::builder()
        .method(method)
        .uri(target)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid request");
    expect(
        e,
        req,
        &[StatusCode::OK, StatusCode::CREATED, StatusCode::NO_CONTENT],
    )
    .await
}

async fn post(e: &Engine, target: &str, body: &str) {
    call(e, Method::POST, target, body).await;
}

/// Removes with DELETE; already gone is fine (an auto-removed instance).
async fn removed(e: &Engine, target: &str) {
    let req = Request::delete(target)
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    expect(
        e,
        req,
        &[
            StatusCode::OK,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_FOUND,
        ],
    )
    .await;
}

/// Sends a request of the reset and reads its whole answer; anything but
/// `ok` fails the input (the reset is part of what it checks).
async fn expect(e: &Engine, req: Request<Full<Bytes>>, ok: &[StatusCode]) -> Bytes {
    let what = format!("reset: {} {}", req.method(), req.uri());
    let answer = tokio::time::timeout(ANSWER_WITHIN, e.send(req))
        .await
        .unwrap_or_else(|_| panic!("{what}: no response head within {ANSWER_WITHIN:?}"))
        .unwrap_or_else(|err| panic!("{what}: the connection failed: {err}"));
    let status = answer.status();
    let body = read_whole(&what, answer).await;
    assert!(
        ok.contains(&status),
        "{what}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    body
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a JSON answer")
}
