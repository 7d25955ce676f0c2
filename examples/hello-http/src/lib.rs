//! A `wasi:http/proxy` component (built for `wasm32-wasip2`): answers every
//! request with `Hello from wrun` and the request path. A few paths do more,
//! for the tests and the docs:
//!
//! - `/sleep?ms=N`: says `sleeping N ms` on stderr, then waits N
//!   milliseconds (in the host, as a slow backend would) before answering;
//! - `/spin`: computes forever (a runaway handler);
//! - `/echo`: answers with the size of the request body it read;
//! - `/env?NAME`: answers with the value of environment variable NAME.

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
