//! The `api_router` input: an HTTP/1 request head without its version, then
//! the body, so the seeds read as the requests they are and mutations keep
//! their shape.
//!
//! ```text
//! POST /v1.41/containers/create?name=web
//! Content-Type: application/json
//!
//! {"Image":"idle:1.0"}
//! ```

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use hyper::{Method, Request, Uri};

/// The request `input` describes, or `None` when its method, target or a
/// header is not something an HTTP/1 client can send. `Content-Length` and
/// `Transfer-Encoding` are left out: the client sets them for the body.
pub fn parse(input: &[u8]) -> Option<Request<Full<Bytes>>> {
    let (head, body) = match find(input, b"\n\n") {
        Some(at) => (&input[..at], &input[at + 2..]),
        None => (input, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next()?;
    let space = first.iter().position(|&b| b == b' ')?;
    let method = Method::from_bytes(&first[..space]).ok()?;
    let target = std::str::from_utf8(&first[space + 1..]).ok()?;
    if !target.starts_with('/') {
        return None;
    }
    let uri: Uri = target.parse().ok()?;
    let mut req = Request::builder().method(method).uri(uri);
    for line in lines {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        req = req.header(name, value);
    }
    req.body(Full::new(Bytes::copy_from_slice(body))).ok()
}

/// Writes a request in the form [`parse`] reads (for the seeds).
pub fn encode(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target}").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("\n{name}: {value}").as_bytes());
    }
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(body);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
