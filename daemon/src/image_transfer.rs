//! The registry routes: `POST /images/create?fromImage=` (a pull), `POST
//! /images/{name}/push` and `POST /auth`, with the credentials of the
//! request's `X-Registry-Auth` (the daemon keeps none; docs/registry.md).

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;
use wrun_api::registry::{
    AuthConfig, AuthResponse, ProgressMessage, PullSummary, PushResult, PushSummary,
};
use wrun_image::registry::{
    self, Access, Credentials, ProgressSink, PullReport, RegistryError, RegistryOptions, RemoteRef,
    TransferEvent,
};
use wrun_image::{ImageError, ImageRef};

use crate::error::{DaemonError, describe_error};
use crate::http::{Body, Query, full, json, read_body, streaming};
use crate::image_search::{AUTH_HEADER, header_auth, registry_config, registry_options};
use crate::images::{blocking, familiar};
use crate::state::Daemon;

/// The JSON lines of a pull or push, answered with a 200.
fn json_lines(lines: &[ProgressMessage]) -> Response<Body> {
    let body: Vec<u8> = lines.iter().flat_map(ProgressMessage::to_line).collect();
    let mut r = Response::new(full(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The credentials of a request for `remote`'s registry: from
/// `X-Registry-Auth`, none when it is absent or names no user. Credentials
/// that name another registry are refused: wrun sends a registry's
/// credentials only to it.
fn credentials(auth: &AuthConfig, remote: &RemoteRef) -> Result<Option<Credentials>, DaemonError> {
    let server = auth
        .serveraddress
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let server = server.split('/').next().unwrap_or(server);
    if !server.is_empty() && server != remote.registry {
        return Err(DaemonError::invalid(format!(
            "{AUTH_HEADER} holds credentials for {server}, not for {}: wrun sends a registry's credentials only to that registry",
            remote.registry
        )));
    }
    let pair = auth.user_password().map_err(DaemonError::invalid)?;
    match pair {
        Some((username, password)) => Ok(Some(Credentials { username, password })),
        None if !auth.identitytoken.is_empty() || !auth.registrytoken.is_empty() => {
            Err(DaemonError::invalid(format!(
                "{AUTH_HEADER} holds a token, which wrun does not use: send the user name and password (wrun's POST /auth hands out no token)"
            )))
        }
        None => Ok(None),
    }
}

/// The options of a transfer of `remote` with `credentials` (a Bearer
/// token fetched with them when the registry asks for one). Blocking.
fn transfer_options(
    remote: &RemoteRef,
    credentials: Option<&Credentials>,
    access: Access,
) -> Result<RegistryOptions, RegistryError> {
    // The daemon's own registry configuration (insecure-registries,
    // certs.d), as its search's.
    let mut options = registry_options(&remote.registry)?;
    options.auth = registry::registry_auth(
        &options,
        &remote.registry,
        &remote.repository,
        credentials,
        access,
    )?;
    Ok(options)
}

/// A pull's failure before its first line (the manifest, its index, the
/// registry's refusal, the transport; a layer's failure comes after the
/// layers were announced): dockerd's status, 404 for a tag or digest the
/// registry lacks, 400 for a bad name, 500 for the rest.
fn status_before_stream(e: &RegistryError) -> DaemonError {
    let message = describe_error(e);
    match e {
        RegistryError::ManifestUnknown { .. } => DaemonError::not_found(message),
        RegistryError::NoRegistry { .. }
        | RegistryError::Image(ImageError::BadReference { .. }) => DaemonError::invalid(message),
        _ => DaemonError::Internal(message),
    }
}

/// The reference `fromImage` and `tag` name, as dockerd reads them: the
/// `tag` (a tag, or a digest `sha256:…`) replaces any in `fromImage`.
fn pull_reference(query: &Query) -> Result<RemoteRef, DaemonError> {
    let image = familiar(query.get("fromImage").unwrap_or(""));
    let bad = |e: ImageError| DaemonError::invalid(e.to_string());
    let parsed: ImageRef = image.parse().map_err(bad)?;
    let tag = query.get("tag").filter(|t| !t.is_empty());
    let named = match tag {
        Some(t) if t.starts_with("sha256:") => {
            format!("{}@{t}", parsed.repository).parse().map_err(bad)?
        }
        Some(t) => {
            if !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                || t.starts_with(['.', '-'])
                || t.len() > 128
            {
                // dockerd's words.
                return Err(DaemonError::invalid("invalid tag format"));
            }
            format!("{}:{t}", parsed.repository).parse().map_err(bad)?
        }
        None if parsed.tag.is_none() && parsed.digest.is_none() => {
            return Err(DaemonError::invalid(format!(
                "pulling every tag of {image} (docker pull --all-tags) is not served by wrun: name a tag or a digest"
            )));
        }
        None => parsed,
    };
    // A name without a registry is the configured default registry's.
    registry_config()
        .map_err(|e| DaemonError::Internal(describe_error(&e)))?
        .remote_ref(&named.to_string())
        .map_err(|e| DaemonError::invalid(describe_error(&e)))
}

/// What the thread of a pull tells the answer: each layer's progress,
/// then how it ended.
enum Pulling {
    Event(TransferEvent),
    Done(Box<Result<PullReport, RegistryError>>),
}

/// A pull's events as dockerd 20.10's lines, as they come: a layer to fetch
/// is `Pulling fs layer`, its bytes `Downloading` (with `progressDetail`),
/// its end `Verifying Checksum` and `Download complete`; a stored one
/// `Already exists`, held back until a layer is fetched (dockerd lists no
/// layer of an image it had); at the end each fetched layer's `Pull
/// complete`, `Digest:` and `Status:` ([`PullSummary`]'s lines).
struct PullStream {
    summary: PullSummary,
    /// The layer announced last, not yet known to be fetched or stored.
    pending: Option<String>,
    held: Vec<ProgressMessage>,
    fetching: bool,
}

impl PullStream {
    fn event(&mut self, event: TransferEvent) -> Vec<ProgressMessage> {
        let mut out = Vec::new();
        if let TransferEvent::Exists { layer } = event {
            let id = layer.short().to_string();
            if self.pending.as_ref() == Some(&id) {
                self.pending = None;
            }
            self.summary.layers.push((id.clone(), false));
            let line = ProgressMessage::layer("Already exists", id);
            if self.fetching {
                out.push(line);
            } else {
                self.held.push(line);
            }
            return out;
        }
        self.flush_pending(&mut out);
        match event {
            TransferEvent::Pending { layer, .. } => {
                self.pending = Some(layer.short().to_string());
            }
            TransferEvent::Bytes { layer, done, size } => {
                out.push(ProgressMessage::bytes(
                    "Downloading",
                    layer.short().to_string(),
                    done,
                    size,
                ));
            }
            TransferEvent::Done { layer } => {
                let id = layer.short().to_string();
                out.push(ProgressMessage::layer("Verifying Checksum", &id));
                out.push(ProgressMessage::layer("Download complete", id));
            }
            TransferEvent::Exists { .. }
            | TransferEvent::Mounted { .. }
            | TransferEvent::Storing => {}
        }
        out
    }

    /// The layer announced last is fetched: its first line (after the
    /// stored ones held back).
    fn flush_pending(&mut self, out: &mut Vec<ProgressMessage>) {
        let Some(id) = self.pending.take() else {
            return;
        };
        if !self.fetching {
            self.fetching = true;
            out.append(&mut self.held);
        }
        out.push(ProgressMessage::layer("Pulling fs layer", &id));
        self.summary.layers.push((id, true));
    }

    /// The last lines of a pull that stored the image whose manifest is
    /// `digest` (`up_to_date`: it had it under this name).
    fn finish(mut self, digest: String, up_to_date: bool) -> Vec<ProgressMessage> {
        let mut out = Vec::new();
        self.flush_pending(&mut out);
        if self.fetching && !up_to_date {
            out.extend(
                self.summary
                    .layers
                    .iter()
                    .filter(|(_, fetched)| *fetched)
                    .map(|(id, _)| ProgressMessage::layer("Pull complete", id)),
            );
        }
        self.summary.digest = digest;
        self.summary.up_to_date = up_to_date;
        // The last two of the summary's lines: `Digest:` and `Status:`.
        let lines = self.summary.messages();
        out.extend(lines.into_iter().rev().take(2).rev());
        out
    }
}

/// `POST /images/create?fromImage=NAME&tag=TAG`: pulls the image into the
/// store with the credentials of `X-Registry-Auth` (anonymous without).
/// dockerd's answer: a 404/400/500 when the manifest cannot be had, else a
/// 200 with its progress lines as the pull goes, a later failure as the
/// last line.
pub async fn pull(
    daemon: &Arc<Daemon>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let remote = pull_reference(query)?;
    let auth = header_auth(req.headers())?.unwrap_or_default();
    let credentials = credentials(&auth, &remote)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Pulling>();
    let d = Arc::clone(daemon);
    let r = remote.clone();
    tokio::task::spawn_blocking(move || {
        let events = tx.clone();
        let result =
            transfer_options(&r, credentials.as_ref(), Access::Pull).and_then(|mut options| {
                options.progress = ProgressSink::new(move |e| {
                    let _ = events.send(Pulling::Event(e));
                });
                registry::pull(&d.store, &r, &options)
            });
        let _ = tx.send(Pulling::Done(Box::new(result)));
    });
    let at = match (&remote.digest, &remote.tag) {
        (Some(_), _) => remote.to_string(),
        (None, tag) => tag.clone().unwrap_or_default(),
    };
    let name = remote.to_string();
    let title = ProgressMessage::titled(format!("Pulling from {}", remote.repository), &at);
    let mut stream = PullStream {
        summary: PullSummary {
            at,
            path: remote.repository.clone(),
            layers: Vec::new(),
            digest: String::new(),
            name: name.clone(),
            up_to_date: false,
        },
        pending: None,
        held: Vec::new(),
        fetching: false,
    };
    // Nothing is said before the manifest is in: its failure is a status.
    let first = match rx.recv().await {
        None => {
            return Err(DaemonError::Internal(
                "pulling the image failed: its thread panicked".into(),
            ));
        }
        Some(Pulling::Done(result)) => match *result {
            Err(e) => return Err(status_before_stream(&e)),
            Ok(report) => {
                daemon.events.image("pull", &name, &name);
                let mut lines = vec![title];
                lines.extend(stream.finish(report.digest.to_string(), report.up_to_date));
                return Ok(json_lines(&lines));
            }
        },
        Some(Pulling::Event(e)) => e,
    };
    let (body, response) = streaming("application/json");
    let d = Arc::clone(daemon);
    tokio::spawn(async move {
        let mut lines = vec![title];
        lines.extend(stream.event(first));
        loop {
            for line in lines.drain(..) {
                if body.send(Bytes::from(line.to_line())).await.is_err() {
                    // The client is gone; the pull ends on its own.
                    return;
                }
            }
            match rx.recv().await {
                Some(Pulling::Event(e)) => lines.extend(stream.event(e)),
                Some(Pulling::Done(result)) => {
                    let last = match *result {
                        Ok(report) => {
                            d.events.image("pull", &name, &name);
                            stream.finish(report.digest.to_string(), report.up_to_date)
                        }
                        Err(e) => vec![ProgressMessage::failed(describe_error(&e))],
                    };
                    for line in last {
                        if body.send(Bytes::from(line.to_line())).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                None => {
                    let _ = body
                        .send(Bytes::from(
                            ProgressMessage::failed(
                                "pulling the image failed: its thread panicked",
                            )
                            .to_line(),
                        ))
                        .await;
                    return;
                }
            }
        }
    });
    Ok(response)
}

/// The credentials of a push: `X-Registry-Auth`, else (dockerd's old
/// form) the body as JSON; neither is dockerd's 400.
async fn push_auth(req: Request<Incoming>) -> Result<AuthConfig, DaemonError> {
    if let Some(auth) = header_auth(req.headers())? {
        return Ok(auth);
    }
    let body = read_body(req).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DaemonError::invalid(
            "Bad parameters and missing X-Registry-Auth: EOF",
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        DaemonError::invalid(format!("Bad parameters and missing X-Registry-Auth: {e}"))
    })
}

/// `POST /images/{name}/push?tag=TAG`: pushes the stored `NAME:TAG` (every
/// stored tag of `NAME` when none is given, as dockerd) with the
/// credentials of `X-Registry-Auth`. dockerd's answer: a 200, `The push
/// refers to repository [NAME]`, each layer's lines, `TAG: digest: D size:
/// N` and its `aux`; a failure as the last line.
pub async fn push(
    daemon: &Arc<Daemon>,
    name: String,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let auth = push_auth(req).await?;
    let name = familiar(&name).to_owned();
    let parsed: ImageRef = name
        .parse()
        .map_err(|e: ImageError| DaemonError::invalid(e.to_string()))?;
    if parsed.digest.is_some() {
        return Err(DaemonError::invalid(format!(
            "cannot push a digest reference: {name}"
        )));
    }
    let tag = query
        .get("tag")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or(parsed.tag.clone());
    let repository = parsed.repository.clone();
    // The registry's part of the name, checked before anything is said.
    let remote = RemoteRef::from_image_ref(&ImageRef {
        repository: repository.clone(),
        tag: Some(tag.clone().unwrap_or_else(|| "latest".into())),
        digest: None,
    })
    .map_err(|e| DaemonError::invalid(describe_error(&e)))?;
    let credentials = credentials(&auth, &remote)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Pushing>();
    let d = Arc::clone(daemon);
    tokio::task::spawn_blocking(move || {
        let say = |m: ProgressMessage| {
            let _ = tx.send(Pushing::Line(m));
        };
        // The tags to push: the one named, or every stored one.
        let tags: Vec<String> = match tag {
            Some(t) => vec![t],
            None => {
                let mut tags: Vec<String> = match d.store.images() {
                    Ok(images) => images
                        .iter()
                        .flat_map(|r| r.names.iter())
                        .filter_map(|n| n.parse::<ImageRef>().ok())
                        .filter(|n| n.repository == repository)
                        .filter_map(|n| n.tag)
                        .collect(),
                    Err(e) => {
                        say(ProgressMessage::failed(describe_error(&e)));
                        return;
                    }
                };
                tags.sort();
                tags.dedup();
                if tags.is_empty() {
                    say(ProgressMessage::failed(describe_error(
                        &RegistryError::NotStored {
                            repository: repository.clone(),
                        },
                    )));
                    return;
                }
                tags
            }
        };
        say(PushSummary::first_line(&repository));
        // A Bearer token must also let the push read the repositories its
        // blobs may be mounted from.
        let options = registry::mount_sources(&d.store, &remote).and_then(|sources| {
            let mut from: Vec<String> = sources.into_values().flatten().collect();
            from.sort();
            from.dedup();
            let mut options = registry_options(&remote.registry)?;
            options.auth = registry::push_auth(
                &options,
                &remote.registry,
                &remote.repository,
                credentials.as_ref(),
                &from,
            )?;
            Ok(options)
        });
        let mut options = match options {
            Ok(o) => o,
            Err(e) => {
                say(ProgressMessage::failed(describe_error(&e)));
                return;
            }
        };
        let events = tx.clone();
        options.progress = ProgressSink::new(move |e| {
            let _ = events.send(Pushing::Event(e));
        });
        for t in tags {
            let at = RemoteRef {
                tag: Some(t),
                ..remote.clone()
            };
            match registry::push(&d.store, &at, &options) {
                Ok(report) => {
                    d.events.image("push", &at.to_string(), &at.to_string());
                    let result = PushResult {
                        tag: report.tag.clone(),
                        digest: report.digest.to_string(),
                        size: report.size,
                    };
                    let summary = PushSummary {
                        layers: Vec::new(),
                        result,
                    };
                    // Its last two lines: `TAG: digest: …` and the aux.
                    for line in summary.messages() {
                        say(line);
                    }
                }
                Err(e) => {
                    say(ProgressMessage::failed(describe_error(&e)));
                    return;
                }
            }
        }
    });
    let (body, response) = streaming("application/json");
    tokio::spawn(async move {
        let mut stream = PushStream::default();
        loop {
            let lines = match rx.recv().await {
                Some(Pushing::Event(e)) => stream.event(e),
                Some(Pushing::Line(line)) => {
                    let mut lines = stream.flush();
                    lines.push(line);
                    lines
                }
                None => return,
            };
            for line in lines {
                if body.send(Bytes::from(line.to_line())).await.is_err() {
                    // The client is gone; the push ends on its own.
                    return;
                }
            }
        }
    });
    Ok(response)
}

/// What the thread of a push tells the answer: a line of its own, or a
/// layer's progress.
enum Pushing {
    Line(ProgressMessage),
    Event(TransferEvent),
}

/// A push's events as dockerd 20.10's lines: the layers announced (base
/// first) are told `Preparing` top first, then each layer's `Layer already
/// exists`, or its `Pushing` byte counts and `Pushed`.
#[derive(Default)]
struct PushStream {
    announced: Vec<String>,
}

impl PushStream {
    fn flush(&mut self) -> Vec<ProgressMessage> {
        self.announced
            .drain(..)
            .rev()
            .map(|id| ProgressMessage::layer("Preparing", id))
            .collect()
    }

    fn event(&mut self, event: TransferEvent) -> Vec<ProgressMessage> {
        if let TransferEvent::Pending { layer, .. } = event {
            self.announced.push(layer.short().to_string());
            return Vec::new();
        }
        let mut out = self.flush();
        match event {
            TransferEvent::Exists { layer } => {
                out.push(ProgressMessage::layer(
                    "Layer already exists",
                    layer.short().to_string(),
                ));
            }
            TransferEvent::Bytes { layer, done, size } => {
                out.push(ProgressMessage::bytes(
                    "Pushing",
                    layer.short().to_string(),
                    done,
                    size,
                ));
            }
            TransferEvent::Done { layer } => {
                out.push(ProgressMessage::layer("Pushed", layer.short().to_string()));
            }
            TransferEvent::Mounted { layer, from } => {
                out.push(ProgressMessage::layer(
                    format!("Mounted from {from}"),
                    layer.short().to_string(),
                ));
            }
            TransferEvent::Pending { .. } | TransferEvent::Storing => {}
        }
        out
    }
}

/// `POST /auth` (`docker login`): checks the credentials against the
/// registry as `wrun login` does and answers dockerd's `Login Succeeded`;
/// the daemon keeps nothing (the client stores them). A refusal is
/// dockerd's 500 with the registry's words.
pub async fn login(req: Request<Incoming>) -> Result<Response<Body>, DaemonError> {
    let body = read_body(req).await?;
    let auth: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| DaemonError::invalid(format!("the login request is not JSON: {e}")))?;
    let server = auth
        .serveraddress
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let server = server.split('/').next().unwrap_or(server).to_owned();
    if server.is_empty() {
        return Err(DaemonError::invalid(
            "serveraddress is empty: wrun has no default registry; log in to HOST[:PORT]",
        ));
    }
    RemoteRef::parse(&format!("{server}/x"))
        .ok()
        .filter(|r| r.registry == server)
        .ok_or_else(|| {
            DaemonError::invalid(format!(
                "serveraddress {:?} is not a registry HOST[:PORT]",
                auth.serveraddress
            ))
        })?;
    let credentials = match auth.user_password().map_err(DaemonError::invalid)? {
        Some((username, password)) if !password.is_empty() => Credentials { username, password },
        _ => {
            return Err(DaemonError::invalid(
                "a login needs a user name and a password (wrun takes no identity token)",
            ));
        }
    };
    blocking("logging in", move || {
        registry_options(&server)
            .and_then(|options| registry::login(&options, &server, &credentials))
            .map_err(|e| DaemonError::Internal(describe_error(&e)))
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &AuthResponse {
            status: "Login Succeeded".into(),
            identity_token: String::new(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    fn d(n: u8) -> wrun_image::Digest {
        wrun_image::Digest::of(&[n])
    }

    fn plain(lines: &[ProgressMessage]) -> Vec<String> {
        lines
            .iter()
            .map(|l| match (&l.progress_detail, l.plain()) {
                (Some(p), None) if p.current.is_some() => {
                    format!(
                        "{}: {} {:?}",
                        l.id.clone().unwrap_or_default(),
                        l.status.clone().unwrap_or_default(),
                        p.current
                    )
                }
                (_, Some(text)) => text,
                (_, None) => "?".into(),
            })
            .collect()
    }

    fn pull_stream() -> PullStream {
        PullStream {
            summary: PullSummary {
                at: "1".into(),
                path: "team/x".into(),
                layers: Vec::new(),
                digest: String::new(),
                name: "reg:5000/team/x:1".into(),
                up_to_date: false,
            },
            pending: None,
            held: Vec::new(),
            fetching: false,
        }
    }

    #[test]
    fn a_pull_s_events_become_dockerd_s_lines_as_they_come() {
        let (a, b) = (d(1), d(2));
        let (sa, sb) = (a.short().to_string(), b.short().to_string());
        let mut stream = pull_stream();
        let mut lines = Vec::new();
        for e in [
            TransferEvent::Pending {
                layer: a,
                size: 3,
                kept: 3,
            },
            TransferEvent::Exists { layer: a },
            TransferEvent::Pending {
                layer: b,
                size: 9,
                kept: 0,
            },
            TransferEvent::Bytes {
                layer: b,
                done: 4,
                size: 9,
            },
            TransferEvent::Done { layer: b },
            TransferEvent::Storing,
        ] {
            lines.extend(stream.event(e));
        }
        lines.extend(stream.finish("sha256:m".into(), false));
        assert_eq!(
            plain(&lines),
            [
                format!("{sa}: Already exists"),
                format!("{sb}: Pulling fs layer"),
                format!("{sb}: Downloading Some(4)"),
                format!("{sb}: Verifying Checksum"),
                format!("{sb}: Download complete"),
                format!("{sb}: Pull complete"),
                "Digest: sha256:m".into(),
                "Status: Downloaded newer image for reg:5000/team/x:1".into(),
            ]
        );
        // Every layer stored: none listed, as dockerd.
        let mut stream = pull_stream();
        let mut lines = stream.event(TransferEvent::Pending {
            layer: a,
            size: 3,
            kept: 3,
        });
        lines.extend(stream.event(TransferEvent::Exists { layer: a }));
        lines.extend(stream.event(TransferEvent::Storing));
        lines.extend(stream.finish("sha256:m".into(), true));
        assert_eq!(
            plain(&lines),
            [
                "Digest: sha256:m",
                "Status: Image is up to date for reg:5000/team/x:1"
            ]
        );
    }

    #[test]
    fn a_push_s_events_prepare_every_layer_top_first_then_tell_each() {
        let (base, top) = (d(1), d(2));
        let mut stream = PushStream::default();
        let mut lines = Vec::new();
        for e in [
            TransferEvent::Pending {
                layer: base,
                size: 3,
                kept: 0,
            },
            TransferEvent::Pending {
                layer: top,
                size: 9,
                kept: 0,
            },
            TransferEvent::Exists { layer: base },
            TransferEvent::Bytes {
                layer: top,
                done: 9,
                size: 9,
            },
            TransferEvent::Done { layer: top },
        ] {
            lines.extend(stream.event(e));
        }
        let (b, t) = (base.short().to_string(), top.short().to_string());
        assert_eq!(
            plain(&lines),
            [
                format!("{t}: Preparing"),
                format!("{b}: Preparing"),
                format!("{b}: Layer already exists"),
                format!("{t}: Pushing Some(9)"),
                format!("{t}: Pushed"),
            ]
        );
        // A failure before any layer moved: the layers are still prepared.
        let mut stream = PushStream::default();
        assert!(
            stream
                .event(TransferEvent::Pending {
                    layer: base,
                    size: 3,
                    kept: 0
                })
                .is_empty()
        );
        assert_eq!(plain(&stream.flush()), [format!("{b}: Preparing")]);
    }

    #[test]
    fn a_mounted_layer_is_told_mounted_from_its_repository_as_dockerd() {
        let layer = d(3);
        let mut stream = PushStream::default();
        let mut lines = stream.event(TransferEvent::Pending {
            layer,
            size: 3,
            kept: 0,
        });
        lines.extend(stream.event(TransferEvent::Mounted {
            layer,
            from: "team/a".into(),
        }));
        let id = layer.short().to_string();
        assert_eq!(
            plain(&lines),
            [
                format!("{id}: Preparing"),
                format!("{id}: Mounted from team/a"),
            ]
        );
    }

    #[test]
    fn the_tag_parameter_names_the_tag_or_digest_pulled() {
        let r = pull_reference(&q("fromImage=127.0.0.1:5000/s/big&tag=1.0")).unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/s/big:1.0");
        let r = pull_reference(&q("fromImage=127.0.0.1:5000/s/big:1.0&tag=2.0")).unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/s/big:2.0");
        let r = pull_reference(&q("fromImage=127.0.0.1:5000/s/big:1.0")).unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/s/big:1.0");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = pull_reference(&q(&format!("fromImage=127.0.0.1:5000/s/big&tag={d}"))).unwrap();
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/s/big@{d}"));
        for bad in [
            "fromImage=127.0.0.1:5000/s/big&tag=a:b",
            "fromImage=127.0.0.1:5000/S/Big&tag=1",
            "fromImage=127.0.0.1:5000/s/big",
            "fromImage=hello&tag=1",
        ] {
            let e = pull_reference(&q(bad)).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}: {e}");
        }
        assert_eq!(
            pull_reference(&q("fromImage=127.0.0.1:5000/s/big&tag=a:b"))
                .unwrap_err()
                .message(),
            "invalid tag format"
        );
    }

    #[test]
    fn credentials_for_another_registry_are_refused_and_tokens_are_not_taken() {
        let remote = RemoteRef::parse("127.0.0.1:5000/s/big:1.0").unwrap();
        let mut auth = AuthConfig {
            username: "alice".into(),
            password: "secret".into(),
            serveraddress: "http://127.0.0.1:5000/v2/".into(),
            ..AuthConfig::default()
        };
        assert_eq!(
            credentials(&auth, &remote).unwrap(),
            Some(Credentials {
                username: "alice".into(),
                password: "secret".into()
            })
        );
        auth.serveraddress = "127.0.0.1:5001".into();
        let e = credentials(&auth, &remote).unwrap_err();
        assert!(e.message().contains("only to that registry"), "{e}");
        assert_eq!(credentials(&AuthConfig::default(), &remote).unwrap(), None);
        let token = AuthConfig {
            identitytoken: "t".into(),
            ..AuthConfig::default()
        };
        assert_eq!(
            credentials(&token, &remote).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
