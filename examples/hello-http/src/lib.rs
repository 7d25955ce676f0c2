//! A `wasi:http/proxy` component (built for `wasm32-wasip2`): answers every
//! request with `Hello from wrun` and the request path. A few paths do more,
//! for the tests and the docs:
//!
//! - `/sleep?ms=N`: says `sleeping N ms` on stderr, then waits N
//!   milliseconds (in the host, as a slow backend would) before answering;
//! - `/spin`: computes forever (a runaway handler);
//! - `/echo`: answers with the size of the request body it read;
//! - `/env?NAME`: answers with the value of environment variable NAME;
//! - `/fetch?URL`: GETs the `http://` URL (as the host's grants allow) and
//!   answers with its status and body, or 502 and the error.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct HelloHttp;

impl Guest for HelloHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, q),
            None => (target.as_str(), ""),
        };
        let text = match path {
            "/sleep" => {
                let ms: u64 = query
                    .strip_prefix("ms=")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1000);
                // On stderr (the terminal, or `wrun logs`): tests wait for it
                // to know the request is being handled.
                eprintln!("sleeping {ms} ms");
                wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                format!("Slept {ms} ms\n")
            }
            "/spin" => {
                let mut x: u64 = 1;
                // Never ends; black_box keeps the optimizer from proving
                // that and removing the loop.
                while std::hint::black_box(x) != 0 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1) | 1;
                }
                format!("{x}\n")
            }
            "/echo" => match read_body(&request) {
                Some(n) => format!("Read {n} bytes\n"),
                None => {
                    respond(response_out, 400, "cannot read the request body\n");
                    return;
                }
            },
            "/env" => format!("{}\n", std::env::var(query).unwrap_or_default()),
            "/fetch" => match fetch(query) {
                Ok((status, body)) => format!("{status} {body}"),
                Err(e) => {
                    respond(response_out, 502, &format!("{e}\n"));
                    return;
                }
            },
            _ => format!("Hello from wrun: {path}\n"),
        };
        respond(response_out, 200, &text);
    }
}

/// Reads the whole request body, counting its bytes; `None` when the host
/// refuses it (for example past the body size limit).
fn read_body(request: &IncomingRequest) -> Option<u64> {
    let body = request.consume().ok()?;
    let stream = body.stream().ok()?;
    let mut total = 0u64;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => total += chunk.len() as u64,
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(_) => return None,
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Some(total)
}

/// GETs an `http://HOST[:PORT]/PATH` URL; (status, body) or the error.
fn fetch(url: &str) -> Result<(u16, String), String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Method, OutgoingRequest, Scheme};

    let rest = url
        .strip_prefix("http://")
        .ok_or("the URL must start with http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "bad method")?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "bad host")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "bad path")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "no body")?;
    let stream = body.stream().map_err(|()| "no body stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(_) => return Err("reading the body failed".into()),
        }
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

fn respond(out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::from_list(&[
        (
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        ),
        (
            "content-length".to_string(),
            text.len().to_string().into_bytes(),
        ),
    ])
    .expect("valid headers");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    // The host takes at most 4096 bytes per blocking write.
    for chunk in text.as_bytes().chunks(4096) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

wasi::http::proxy::export!(HelloHttp);
