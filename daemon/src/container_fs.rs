//! The routes on an instance's filesystem: `GET /containers/{id}/changes`
//! (`diff`), `GET …/export`, and `HEAD`/`GET`/`PUT …/archive` (`cp`), each
//! over the instance's one copy-on-write view (and, for `cp`, its volumes
//! and binds over it); the tars are `archive`'s.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;
use wrun_api::archive::{ContainerChange, PATH_STAT_HEADER};
use wrun_rootfs::{Layers, ViewPath};

use super::archive::{self, ArchiveError, ExtractOptions, Fs, Located, Mount, Namespace};
use super::events::ContainerSubject;
use super::http::{Body, Query, empty, json, streaming};
use super::instance::Container;
use super::state::Daemon;
use crate::error::DaemonError;
use crate::images::{blocking, client_thread};

/// dockerd's answer to each failure, `key` being the instance as asked.
fn answer(e: ArchiveError, key: &str) -> DaemonError {
    match e {
        ArchiveError::NotFound(path) => {
            DaemonError::not_found(format!("Could not find the file {path} in container {key}"))
        }
        e @ ArchiveError::BadTar(_) => DaemonError::invalid(e.to_string()),
        // dockerd's own 500s.
        e @ (ArchiveError::TooManyLinks(_) | ArchiveError::ReadOnlyMount) => {
            DaemonError::Internal(e.to_string())
        }
        e => DaemonError::Internal(e.to_string()),
    }
}

/// The mounts of an instance (named volumes and binds; not a `--tmpfs
/// /tmp`: dockerd 20.10 copies to and from the rootfs under it, and so does
/// wrun): host directory or volume name, mount point, read-only.
fn mount_points(c: &Container) -> Result<Vec<(std::path::PathBuf, ViewPath, bool)>, DaemonError> {
    let r = c.record();
    let settings = crate::launch::settings(&r.config, &r.host_config)?;
    settings
        .volumes
        .into_iter()
        .map(|(host, guest, read_only)| {
            let point = ViewPath::parse(&archive::container_path(&guest))
                .map_err(|e| DaemonError::Internal(format!("the mount point {guest:?}: {e}")))?;
            Ok((host, point, read_only))
        })
        .collect()
}

/// Where the instance's volumes and binds are mounted, from its record
/// alone: `export` makes these directories and reads no mount, so a host
/// directory gone since the create does not stop it (nor dockerd's).
fn export_points(c: &Container) -> Result<Vec<ViewPath>, DaemonError> {
    let r = c.record();
    let binds = r.host_config.binds.iter().flatten().map(|b| {
        wrun_api::parse::BindSpec::parse(b)
            .map(|spec| spec.guest)
            .map_err(DaemonError::InvalidArgument)
    });
    let mounts = (r.host_config.mounts.iter().flatten())
        .filter(|m| m.kind != "tmpfs")
        .map(|m| Ok(m.target.clone()));
    binds
        .chain(mounts)
        .map(|guest| {
            let guest = guest?;
            ViewPath::parse(&archive::container_path(&guest))
                .map_err(|e| DaemonError::Internal(format!("the mount point {guest:?}: {e}")))
        })
        .collect()
}

/// When the instance was made (its mount points' time).
fn created(c: &Container) -> std::time::SystemTime {
    std::time::UNIX_EPOCH
        + std::time::Duration::from_nanos(u64::try_from(c.created_nanos).unwrap_or(0))
}

/// The instance's files as `cp` reaches them: its view, with its named
/// volumes and binds over it, each host directory found and checked as a
/// start finds it (a bind's source checked again against the daemon's
/// policy, so a path swapped since the create grants nothing new).
fn namespace(d: &Daemon, c: &Container) -> Result<Namespace, DaemonError> {
    let view = d.container_rootfs(c)?;
    let mut mounts = Vec::new();
    for (i, (host, guest, read_only)) in mount_points(c)?.into_iter().enumerate() {
        let source = match host.to_str().filter(|h| !h.starts_with('/')) {
            Some(name) => crate::volume_store::Volumes::of(d.store.root()).mount_source(name)?,
            None => host.clone(),
        };
        let real = crate::launch::check_bind(&source, d.store.root(), d.host_binds())?;
        let opening = |e: &dyn std::fmt::Display| {
            DaemonError::Internal(format!(
                "opening {} (mounted at {}): {e}",
                real.display(),
                archive::shown(&guest)
            ))
        };
        let dir = crate::rootfs_views::open_image_rootfs(&real).map_err(|e| opening(&e))?;
        let lower = Arc::new(dir.try_clone().map_err(|e| opening(&e))?);
        // Read as the lower of a read-only view whose upper is a path
        // never made (a read-only view makes none), checked to be absent.
        let never = d.rootfs.upper_path(&format!("{}.mount-{i}-read", c.id));
        let read = Layers::open_read_only(lower, never).map_err(|e| opening(&e))?;
        if read.has_upper() {
            return Err(opening(&"the read view found an upper it never makes"));
        }
        mounts.push(Mount {
            guest,
            dir,
            read,
            read_only,
        });
    }
    Ok(Namespace {
        view,
        mounts,
        created: created(c),
    })
}

/// `GET /containers/{id}/changes`: docker's `[{"Path","Kind"}]`, `null`
/// when the instance changed nothing.
pub async fn changes(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
) -> Result<Response<Body>, DaemonError> {
    let (d, c) = (Arc::clone(daemon), Arc::clone(c));
    let list = blocking("listing the changes", move || {
        let view = d.container_rootfs(&c)?;
        view.changes()
            .map_err(|e| DaemonError::Internal(format!("reading the changes of {}: {e}", c.id)))
    })
    .await?;
    let rows: Option<Vec<ContainerChange>> = (!list.is_empty()).then(|| {
        list.iter()
            .map(|ch| ContainerChange {
                path: archive::shown(&ch.path),
                kind: ch.kind.docker_kind(),
            })
            .collect()
    });
    Ok(json(StatusCode::OK, &rows))
}

/// Writes a tar into a streamed answer in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

/// Streams what `write` writes as the body of `response`. The headers are
/// out before the first byte: a failure then can only cut the tar short,
/// and is logged.
fn stream_tar(
    what: &'static str,
    content_type: &'static str,
    write: impl FnOnce(&mut ChannelWriter) -> std::io::Result<()> + Send + 'static,
) -> Result<Response<Body>, DaemonError> {
    let (tx, response) = streaming(content_type);
    client_thread(what, move || {
        let mut out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let done = write(&mut out).and_then(|()| std::io::Write::flush(&mut out));
        if let Err(e) = done
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            eprintln!("wrun daemon: {what}: {e}; the tar was cut short");
        }
    })?;
    Ok(response)
}

/// `GET /containers/{id}/export`: the merged rootfs as a tar, streamed.
pub async fn export(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
) -> Result<Response<Body>, DaemonError> {
    let (d, c2) = (Arc::clone(daemon), Arc::clone(c));
    // Only the mount points: no mount's files are exported.
    let (view, points) = blocking("opening the rootfs", move || {
        Ok((d.container_rootfs(&c2)?, export_points(&c2)?))
    })
    .await?;
    let made = created(c);
    daemon
        .events
        .container("export", &c.id, &ContainerSubject::of(&c.record()), &[]);
    stream_tar(
        "exporting a rootfs",
        "application/octet-stream",
        move |out| archive::write_export(&view, &points, made, out).map(drop),
    )
}

/// The required `path` of the archive routes (dockerd's words when absent).
fn path_param(query: &Query) -> Result<String, DaemonError> {
    match query.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(DaemonError::invalid("bad parameter: pathcannot be empty")),
    }
}

/// Finds the path a `HEAD`/`GET` asks for, in the view or a mount.
async fn locate(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    key: &str,
    path: String,
) -> Result<(Namespace, Located), DaemonError> {
    let (d, c, key) = (Arc::clone(daemon), Arc::clone(c), key.to_string());
    blocking("finding a path", move || {
        let ns = namespace(&d, &c)?;
        let found = archive::locate(&ns, &path).map_err(|e| answer(e, &key))?;
        Ok((ns, found))
    })
    .await
}

fn with_stat(
    mut response: Response<Body>,
    stat: &wrun_api::archive::ContainerPathStat,
) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&stat.to_header()) {
        response.headers_mut().insert(PATH_STAT_HEADER, v);
    }
    response
}

/// `HEAD /containers/{id}/archive?path=`: the path's stat, in the
/// `X-Docker-Container-Path-Stat` header only.
pub async fn stat(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    key: &str,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let path = path_param(query)?;
    let (_, found) = locate(daemon, c, key, path).await?;
    Ok(with_stat(empty(StatusCode::OK), &found.stat))
}

/// `GET /containers/{id}/archive?path=`: the path as a tar (a directory
/// with everything below it), streamed, with its stat header.
pub async fn get(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    key: &str,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let path = path_param(query)?;
    let (ns, found) = locate(daemon, c, key, path).await?;
    daemon.events.container(
        "archive-path",
        &c.id,
        &ContainerSubject::of(&c.record()),
        &[],
    );
    let stat = found.stat.clone();
    let response = stream_tar(
        "copying from an instance",
        "application/x-tar",
        move |out| archive::write_path(&ns, &found, out).map(drop),
    )?;
    Ok(with_stat(response, &stat))
}

/// Reads a request body, chunk by chunk, on a blocking thread.
struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Most bytes of a refused `PUT`'s body read and dropped before the
/// connection is closed on it.
const DRAIN_LIMIT: u64 = 256 << 20;

fn body_reader(req: Request<Incoming>) -> BodyReader {
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let mut body = req.into_body();
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let item = match frame {
                Ok(f) => match f.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue, // trailers
                },
                Err(e) => Err(format!("reading the request body: {e}")),
            };
            let data = match item {
                Ok(data) => data,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let len = data.len() as u64;
            if tx.send(Ok(data)).await.is_err() {
                // Refused or failed: the rest is read and dropped, up to a
                // bound, so the client gets to read the answer rather
                // than a broken pipe.
                let mut left = DRAIN_LIMIT.saturating_sub(len);
                while let Some(Ok(frame)) = body.frame().await {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    if n > left {
                        return;
                    }
                    left -= n;
                }
                return;
            }
        }
    });
    BodyReader {
        rx,
        current: Bytes::new(),
    }
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`:
/// extracts the tar of the body into the directory `path` names, in the
/// view or a mount, as dockerd does (`archive::extract`). Refused into the
/// view of a `--read-only` instance and into a `:ro` mount, and with
/// `copyUIDGID`: an instance has no users (WASI has no owners), so there
/// is no owner to give the files.
pub async fn put(
    daemon: &Arc<Daemon>,
    c: &Arc<Container>,
    key: &str,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    // Read from the start: a refusal below drops the reader, and the body
    // is drained while the answer goes out.
    let reader = body_reader(req);
    let path = path_param(query)?;
    if query.flag("copyUIDGID") {
        return Err(DaemonError::invalid(
            "copyUIDGID: a wrun instance has no users or file owners (WASI has none), so there is no owner to give the files; copy without -a",
        ));
    }
    let options = ExtractOptions {
        no_overwrite_dir_non_dir: query.flag("noOverwriteDirNonDir"),
    };
    let (d, c2, key2) = (Arc::clone(daemon), Arc::clone(c), key.to_string());
    let (ns, dest) = blocking("finding the destination", move || {
        let ns = namespace(&d, &c2)?;
        let (fs, dest) = archive::extraction_point(&ns, &path).map_err(|e| answer(e, &key2))?;
        // dockerd looks at the path first, then at the mode of what holds
        // it: a volume of a read-only instance takes the copy.
        if fs == Fs::View && c2.record().host_config.readonly_rootfs {
            return Err(DaemonError::Internal(
                "container rootfs is marked read-only".into(),
            ));
        }
        Ok((ns, dest))
    })
    .await?;
    let (done, report) = tokio::sync::oneshot::channel();
    client_thread("copying into an instance", move || {
        let _ = done.send(archive::extract(&ns, &dest, reader, options));
    })?;
    let key = key.to_string();
    report
        .await
        .map_err(|_| anyhow::anyhow!("copying into {key} failed: its thread panicked"))?
        .map_err(|e| answer(e, &key))?;
    daemon.events.container(
        "extract-to-dir",
        &c.id,
        &ContainerSubject::of(&c.record()),
        &[],
    );
    Ok(empty(StatusCode::OK))
}
