//! HTTP plumbing of the daemon: the response body type, JSON and error
//! responses, streamed bodies and the request body's bound.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

pub use crate::error::DaemonError;
use wrun_api::ErrorResponse;
use wrun_api::parse::Filters;

/// Every response body: a whole buffer, or a stream fed from a channel.
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The largest request body read (a create request is a few KiB).
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// The answer to a failed request: the kind's status and Docker's
/// `{"message": …}` body. The one conversion of a [`DaemonError`].
pub fn error_response(err: DaemonError) -> Response<Body> {
    json(
        err.status(),
        &ErrorResponse {
            message: err.message().to_owned(),
        },
    )
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            let mut r = Response::new(full(bytes));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => {
            let mut r = Response::new(full(format!(
                "{{\"message\":\"cannot encode the response: {e}\"}}\n"
            )));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// Chunks a streamed body may queue between its producer and the
/// connection. A client that stops reading leaves the connection's write
/// buffer, this queue and the producer's next chunk in memory: with the
/// 256 KiB chunks of logs and save, a depth of 16 held some 4.2 MiB per
/// such client, 2 holds some 0.6 MiB (docs/benchmarks/hostile-clients.md).
const STREAM_DEPTH: usize = 2;

/// A streamed response: headers go out at once, the body as `tx` sends.
pub fn streaming(content_type: &'static str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel(STREAM_DEPTH);
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    (tx, r)
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Reads a request body of at most [`MAX_REQUEST_BODY`] bytes (413 beyond).
pub async fn read_body(req: hyper::Request<Incoming>) -> Result<Bytes, DaemonError> {
    let too_large = || {
        DaemonError::TooLarge(format!(
            "request body is larger than {MAX_REQUEST_BODY} bytes"
        ))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(DaemonError::invalid(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Parses a JSON body; an empty body is the type's default.
pub fn parse_json<T: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
) -> Result<T, DaemonError> {
    // No body at all is the defaults; a body of only spaces or line ends
    // is no JSON (Go's decoder says EOF).
    if bytes.is_empty() {
        return Ok(T::default());
    }
    // Every body is a JSON object: serde would also read a struct from an
    // array of its fields in order (`[]` as all defaults), which Go's
    // decoder, and so dockerd, refuses.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(DaemonError::invalid(
            "invalid JSON: the body must be a JSON object, not an array",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| DaemonError::invalid(format!("invalid JSON: {e}")))
}

/// Docker's `filters` query value (either of its JSON forms) with only the
/// `accepted` keys; Docker's 400 `invalid filter` otherwise.
pub fn query_filters(raw: Option<&str>, accepted: &[&str]) -> Result<Filters, DaemonError> {
    let filters = Filters::from_json(raw.unwrap_or_default()).map_err(DaemonError::invalid)?;
    filters.validate(accepted).map_err(DaemonError::invalid)?;
    Ok(filters)
}

/// [`query_filters`] as key → values.
pub fn parse_filters(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<std::collections::HashMap<String, Vec<String>>, DaemonError> {
    Ok(query_filters(raw, allowed)?.to_map().into_iter().collect())
}

/// The query string as pairs.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of a repeated key (`names=a&names=b`), in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// Docker's boolean query values (`httputils.BoolValue`): absent,
    /// empty, `0`, `no`, `false` and `none` (any case, blanks trimmed) are
    /// false; any other value is true.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Query, parse_json};

    #[test]
    fn a_body_is_an_object_never_an_array_of_fields() {
        let empty: wrun_api::volumes::VolumeCreateRequest = parse_json(b"").unwrap();
        assert!(empty.name.is_empty());
        assert!(parse_json::<wrun_api::volumes::VolumeCreateRequest>(b"\r").is_err());
        let named: wrun_api::volumes::VolumeCreateRequest =
            parse_json(br#" {"Name":"data"}"#).unwrap();
        assert_eq!(named.name, "data");
        for array in [&b"[]"[..], &br#" ["data"]"#[..]] {
            let e = parse_json::<wrun_api::volumes::VolumeCreateRequest>(array).unwrap_err();
            assert_eq!(e.status(), hyper::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn booleans_read_as_dockers() {
        let q = Query::parse(Some(
            "a=1&b=yes&c=off&d=0&e=No&f=FALSE&g=none&h=&i=%20true%20",
        ));
        for key in ["a", "b", "c", "i"] {
            assert!(q.flag(key), "{key}");
        }
        for key in ["d", "e", "f", "g", "h", "absent"] {
            assert!(!q.flag(key), "{key}");
        }
    }
}
