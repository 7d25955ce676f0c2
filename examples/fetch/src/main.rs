//! An HTTP client command (a WASI 0.2 component built for `wasm32-wasip2`):
//! `fetch URL` GETs the URL through `wasi:http/outgoing-handler` and prints
//! the status line and the body. The host decides whether the request may
//! leave: under wrun, only to hosts granted with `--allow-connect`.

use std::io::Write;
use std::process::ExitCode;

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: fetch http://HOST[:PORT]/PATH");
        return ExitCode::from(2);
    };
    match fetch(&url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fetch {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(url: &str) -> Result<(), String> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err("the URL must start with http:// or https://".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "bad method")?;
    request.set_scheme(Some(&scheme)).map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("bad host {authority:?}"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("bad path {path:?}"))?;

    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response after the wait")?
        .map_err(|()| "the response was already taken")?
        .map_err(|e| format!("{e:?}"))?;
    println!("HTTP {}", response.status());
    let body = response.consume().map_err(|()| "no body")?;
    let stream = body.stream().map_err(|()| "no body stream")?;
    let mut out = std::io::stdout().lock();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.write_all(&chunk).map_err(|e| e.to_string())?,
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("reading the body: {}", e.to_debug_string()));
            }
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(())
}
