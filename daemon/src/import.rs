//! `POST /images/create?fromSrc=-` (`docker import`): the request body, a
//! rootfs tar (plain or gzip), stored as a one-layer image.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use wrun_api::images::ImportMessage;
use wrun_image::ImageRef;
use wrun_image::import::ImportSpec;

use crate::error::DaemonError;
use crate::http::{Body, Query, full};
use crate::state::Daemon;

/// An import request, checked before the body is read.
struct ImportRequest {
    spec: ImportSpec,
    /// The name the image gets (`repo:tag`), if any.
    reference: Option<String>,
}

impl ImportRequest {
    fn parse(query: &Query) -> Result<Self, DaemonError> {
        let source = query.get("fromSrc").unwrap_or_default();
        if source != "-" {
            return Err(DaemonError::invalid(format!(
                "importing from {source:?}: wrun imports only the request body (fromSrc=-); download the tar and import the file (wrun import FILE, docker import FILE)"
            )));
        }
        let reference = crate::commit::image_name(
            query.get("repo").unwrap_or_default(),
            query.get("tag").unwrap_or_default(),
        )?;
        let names = match &reference {
            Some(name) => vec![
                name.parse::<ImageRef>()
                    .map_err(|e| DaemonError::invalid(e.to_string()))?,
            ],
            None => Vec::new(),
        };
        let os = match query.get("platform").filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(wasm_platform_os(p)?),
        };
        let changes: Vec<String> = query.all("changes").into_iter().map(String::from).collect();
        // Refused before the body is read, in dockerd's words.
        wrun_image::changes::apply_changes(&mut Default::default(), &changes)
            .map_err(|e| DaemonError::invalid(e.to_string()))?;
        Ok(ImportRequest {
            spec: ImportSpec {
                changes,
                message: query.get("message").map(str::to_string),
                source: source.to_string(),
                os,
                names,
            },
            reference,
        })
    }
}

/// The OS of a `--platform` that names a wasm platform (`wasip1/wasm`,
/// `wasip2/wasm`, `wasi/wasm`); any other is refused.
fn wasm_platform_os(platform: &str) -> Result<String, DaemonError> {
    match platform.split('/').collect::<Vec<_>>().as_slice() {
        [os @ ("wasip1" | "wasip2" | "wasi"), "wasm"] => Ok(os.to_string()),
        _ => Err(DaemonError::invalid(format!(
            "invalid platform {platform:?}: wrun images are WebAssembly (wasip1/wasm, wasip2/wasm or wasi/wasm)"
        ))),
    }
}

/// `POST /images/create?fromSrc=-&repo=&tag=&message=&changes=&platform=`:
/// the body is read as it arrives (never held whole), checked as `load`
/// checks a layer, and stored; the answer is dockerd's one JSON line
/// `{"status":"sha256:…"}`. A bad tar is a 400 and stores nothing.
pub async fn import(
    daemon: &Arc<Daemon>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let request = match ImportRequest::parse(query) {
        Ok(r) => r,
        Err(e) => {
            // The client is still sending its tar: read it first, or it
            // sees a broken pipe, not the answer.
            let _ = crate::http::read_body(req).await;
            return Err(e);
        }
    };
    let d = Arc::clone(daemon);
    let spec = request.spec;
    let record = crate::images::read_body_on_thread(req, "importing an image", move |body| {
        wrun_image::import::import(&d.store, body, spec).map_err(|e| {
            let malformed = crate::images::archive_is_malformed(&e);
            let err = DaemonError::from(anyhow::Error::from(e).context("importing the rootfs tar"));
            if malformed { err.into_invalid() } else { err }
        })
    })
    .await?;
    let id = record.id.to_string();
    if let Some(name) = &request.reference {
        daemon.events.image("tag", &id, name);
    }
    daemon.events.image("import", &id, &id);
    let mut line = serde_json::to_vec(&ImportMessage { status: id })
        .map_err(|e| anyhow::anyhow!("writing the answer: {e}"))?;
    line.push(b'\n');
    let mut r = Response::new(full(line));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasm_platforms_are_taken() {
        assert_eq!(wasm_platform_os("wasip2/wasm").unwrap(), "wasip2");
        assert_eq!(wasm_platform_os("wasi/wasm").unwrap(), "wasi");
        assert!(wasm_platform_os("linux/amd64").is_err());
        assert!(wasm_platform_os("wasip1").is_err());
    }

    #[test]
    fn bad_queries_are_refused_before_the_body_is_read() {
        let q = |s: &str| ImportRequest::parse(&Query::parse(Some(s)));
        let msg = |s: &str| {
            q(s).err()
                .map(|e| e.message().to_string())
                .unwrap_or_default()
        };
        assert!(msg("fromSrc=http://example.com/x.tar").contains("only the request body"));
        assert!(msg("fromSrc=-&repo=Bad").contains("invalid reference format"));
        assert_eq!(msg("fromSrc=-&repo=x&tag=a:b"), "invalid tag format");
        assert_eq!(
            msg("fromSrc=-&changes=FOO%20x"),
            "foo is not a valid change command"
        );
        assert!(msg("fromSrc=-&platform=linux/amd64").contains("WebAssembly"));
        let ok = q("fromSrc=-&repo=app&tag=1&message=m").unwrap();
        assert_eq!(ok.reference.as_deref(), Some("app:1"));
        assert_eq!(ok.spec.message.as_deref(), Some("m"));
    }
}
