//! `/images/…`: the stored images in Docker's shapes; tag, remove, save
//! (a streamed tar) and load (a streamed request body).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;
use wrun_image::archive::{self, SaveItem};
use wrun_image::{Digest, ImageRef, Store};

use wrun_api::images::{ImageDeleteItem, ImagePruneResponse, LoadMessage};

use crate::error::DaemonError;
use crate::http::{Body, Query, empty, json, query_filters, streaming};
use crate::image_views::{self, find};
use crate::state::Daemon;

/// Runs store work (images, volumes, their sizes) on a blocking thread,
/// off the async workers; a panic there is a 500 naming `what`.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, DaemonError> + Send + 'static,
) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("{what} failed: {e}"))?
}

/// Starts work that waits on a client (a load reading its request body, a
/// save writing to a client that may not read) on a thread of its own: on
/// tokio's shared blocking pool (512 threads) a few hundred stalled clients
/// would hold every thread, and create, start and every other store
/// operation would wait behind them (docs/benchmarks/hostile-clients.md).
/// The thread ends with its client: a closed connection fails its reads
/// and writes.
pub(crate) fn client_thread(
    what: &'static str,
    f: impl FnOnce() + Send + 'static,
) -> Result<(), DaemonError> {
    std::thread::Builder::new()
        .name(format!("wrun {what}"))
        .spawn(f)
        .map_err(|e| anyhow::anyhow!("{what}: cannot start a thread: {e}"))?;
    Ok(())
}

/// `GET /images/json?filters=&all=&digests=&shared-size=`: the images the
/// filters select ([`image_views::list`]), with `SharedSize` when asked. `all` asks for intermediate images and
/// wrun keeps none; `digests` is always answered (`RepoDigests`), as Docker.
pub async fn list(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = query_filters(query.get("filters"), image_views::LIST_FILTERS)?;
    let d = Arc::clone(daemon);
    // One config read and one `stat` per image (labels, the manifest's size).
    let shared_size = query.flag("shared-size");
    let rows = blocking("listing images", move || {
        image_views::list(&d.store, &filters, shared_size)
    })
    .await?;
    Ok(json(StatusCode::OK, &rows))
}

/// `GET /images/{name}/json`: 404 "No such image" when unknown.
pub async fn inspect(daemon: &Arc<Daemon>, name: String) -> Result<Response<Body>, DaemonError> {
    let d = Arc::clone(daemon);
    let view = blocking("inspecting the image", move || {
        // dockerd's image inspect puts the name as given before the usual
        // "No such image" and before its 400 for a name that is no reference.
        let record = find(&d.store, &name).map_err(|e| match e {
            DaemonError::NotFound(m) => {
                DaemonError::NotFound(format!("no such image: {name}: {m}"))
            }
            DaemonError::InvalidArgument(m) => {
                DaemonError::InvalidArgument(format!("no such image: {name}: {m}"))
            }
            e => e,
        })?;
        image_views::inspect(&d.store, &record).map_err(DaemonError::from)
    })
    .await?;
    Ok(json(StatusCode::OK, &view))
}

/// `GET /images/{name}/history`: the layers, newest first.
pub async fn history(daemon: &Arc<Daemon>, name: String) -> Result<Response<Body>, DaemonError> {
    let d = Arc::clone(daemon);
    let items = blocking("reading the image history", move || {
        let record = find(&d.store, &name)?;
        image_views::history(&d.store, &record).map_err(DaemonError::from)
    })
    .await?;
    Ok(json(StatusCode::OK, &items))
}

/// `POST /images/{name}/tag?repo=&tag=`: 201; 400 for a bad target name.
pub async fn tag(
    daemon: &Arc<Daemon>,
    name: String,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let repo = familiar(query.get("repo").unwrap_or(""));
    if repo.is_empty() {
        return Err(DaemonError::invalid(
            "repository name must be given (repo=)",
        ));
    }
    let target_text = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let target: ImageRef = target_text
        .parse()
        .map_err(|e: wrun_image::ImageError| DaemonError::invalid(e.to_string()))?;
    if target.digest.is_some() {
        return Err(DaemonError::invalid(format!(
            "refusing to create a tag with a digest reference: {target_text}"
        )));
    }
    let d = Arc::clone(daemon);
    let record = blocking("tagging the image", move || {
        find(&d.store, &name)?;
        d.store
            .tag(&name, &target)
            .map_err(|e| anyhow::Error::from(e).into())
    })
    .await?;
    daemon
        .events
        .image("tag", &record.id.to_string(), &target_text);
    Ok(empty(StatusCode::CREATED))
}

/// Docker's client spells `greeter` as `docker.io/library/greeter`; wrun
/// names images as users type them, so the default registry is dropped.
pub(crate) fn familiar(repo: &str) -> &str {
    [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ]
    .iter()
    .find_map(|p| repo.strip_prefix(p))
    .unwrap_or(repo)
}

/// The manifest digests of the images instances were created from.
pub fn images_in_use(store: &Store, image_ids: &HashSet<String>) -> HashSet<Digest> {
    store
        .images()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| image_ids.contains(&r.id.to_string()))
        .map(|r| r.digest)
        .collect()
}

/// `DELETE /images/{name}?force=`: untags, and deletes the image when no
/// name is left; 409 when an instance uses it (unless forced).
pub async fn remove(
    daemon: &Arc<Daemon>,
    name: String,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let force = query.flag("force");
    let used_ids: HashSet<String> = daemon.all().iter().map(|c| c.record().image_id).collect();
    let d = Arc::clone(daemon);
    let (image_id, outcome) = blocking("removing the image", move || {
        let image_id = find(&d.store, &name)?.id.to_string();
        let in_use = images_in_use(&d.store, &used_ids);
        let outcome = d
            .store
            .remove(&name, force, &in_use)
            .map_err(anyhow::Error::from)?;
        Ok((image_id, outcome))
    })
    .await?;
    let mut items = Vec::new();
    for u in &outcome.untagged {
        // dockerd's untag event names the image by its ID, not the name.
        daemon.events.image("untag", &image_id, &image_id);
        items.push(ImageDeleteItem {
            untagged: Some(u.clone()),
            deleted: None,
        });
    }
    for r in &outcome.deleted {
        let id = r.id.to_string();
        daemon.events.image("delete", &id, &id);
        items.push(ImageDeleteItem {
            untagged: None,
            deleted: Some(id),
        });
    }
    Ok(json(StatusCode::OK, &items))
}

/// `POST /images/prune?filters=`: the dangling images, or with
/// `dangling=false` every image no instance uses (read from the registry,
/// so an instance created a moment ago keeps its image).
pub async fn prune(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    // Docker's image prune filters: `dangling`, and `until`, `label`,
    // `label!` as for containers.
    let (selected, filters) = crate::prune_filters::PruneFilters::parse_with(query, &["dangling"])?;
    let all = match filters.get("dangling").map(Vec::as_slice) {
        None => false,
        Some([v]) if matches!(v.as_str(), "true" | "1") => false,
        Some([v]) if matches!(v.as_str(), "false" | "0") => true,
        Some(other) => {
            return Err(DaemonError::invalid(format!(
                "invalid filter 'dangling={}': expected true or false",
                other.join(",")
            )));
        }
    };
    let used_ids: HashSet<String> = daemon.all().iter().map(|c| c.record().image_id).collect();
    let d = Arc::clone(daemon);
    let outcome = blocking("pruning images", move || {
        let mut in_use = images_in_use(&d.store, &used_ids);
        if !selected.is_empty() {
            // An image the filters leave out is kept as if in use.
            for r in d.store.images().unwrap_or_default() {
                let labels = d
                    .store
                    .config(&r)
                    .ok()
                    .and_then(|c| c.config().as_ref()?.labels().clone())
                    .unwrap_or_default();
                let created = wrun_api::time::unix_seconds(r.created.as_deref());
                if !selected.matches(&labels.into_iter().collect(), created) {
                    in_use.insert(r.digest);
                }
            }
        }
        d.store
            .prune(all, &in_use)
            .map_err(|e| anyhow::Error::from(e).into())
    })
    .await?;
    let mut items = Vec::new();
    for r in &outcome.deleted_images {
        let id = r.id.to_string();
        for _ in &r.names {
            daemon.events.image("untag", &id, &id);
        }
        daemon.events.image("delete", &id, &id);
        items.extend(ImageDeleteItem::for_deleted(r.names.iter().cloned(), id));
    }
    Ok(json(
        StatusCode::OK,
        &ImagePruneResponse {
            images_deleted: Some(items).filter(|i| !i.is_empty()),
            space_reclaimed: outcome.reclaimed_bytes,
        },
    ))
}

/// A `Write` that hands 256 KiB chunks to a response body.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for ChannelWriter {
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

/// `GET /images/get?names=…` and `GET /images/{name}/get`: an OCI layout
/// tar (with Docker's manifest.json) streamed as it is written. Names are
/// checked before the first byte, so an unknown one is a 404.
pub async fn save(
    daemon: &Arc<Daemon>,
    name: Option<String>,
    query: &Query,
) -> Result<Response<Body>, DaemonError> {
    let mut names: Vec<String> = query.all("names").into_iter().map(String::from).collect();
    names.extend(name);
    if names.is_empty() {
        return Err(DaemonError::invalid("no image named (names=)"));
    }
    let d = Arc::clone(daemon);
    let items = blocking("saving images", move || {
        let mut items: Vec<SaveItem> = Vec::new();
        for name in &names {
            // dockerd's save answers a name that is no reference with a
            // 500 (its words all the same).
            let record = find(&d.store, name).map_err(|e| match e {
                DaemonError::InvalidArgument(m) => DaemonError::Internal(m),
                e => e,
            })?;
            // By name: that name; by ID: every name of the image.
            let chosen = match name.parse::<ImageRef>() {
                Ok(r) if record.names.contains(&r.tagged().name()) => vec![r.tagged().name()],
                _ => record.names.clone(),
            };
            match items.iter_mut().find(|i| i.record.digest == record.digest) {
                Some(existing) => {
                    for n in chosen {
                        if !existing.names.contains(&n) {
                            existing.names.push(n);
                        }
                    }
                }
                None => items.push(SaveItem {
                    record,
                    names: chosen,
                }),
            }
        }
        Ok(items)
    })
    .await?;
    for i in &items {
        let id = i.record.id.to_string();
        daemon
            .events
            .image("save", &id, i.names.first().unwrap_or(&id));
    }
    let (tx, response) = streaming("application/x-tar");
    let d = Arc::clone(daemon);
    client_thread("saving images", move || {
        let mut out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        // The headers are gone: a failure can only cut the tar short,
        // which the client sees as a truncated archive.
        match archive::save(&d.store, &items, &mut out, 0) {
            Ok(()) => {
                let _ = out.flush();
            }
            Err(e) => eprintln!("wrun daemon: saving images: {e}"),
        }
    })?;
    Ok(response)
}

/// A blocking `Read` over a request body fed by an async task.
pub(crate) struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for BodyReader {
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

/// Runs `f` on a thread of its own ([`client_thread`]) with the request
/// body as a blocking `Read`, fed as it arrives (never held whole).
pub(crate) async fn read_body_on_thread<T: Send + 'static>(
    req: Request<Incoming>,
    what: &'static str,
    f: impl FnOnce(BodyReader) -> Result<T, DaemonError> + Send + 'static,
) -> Result<T, DaemonError> {
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
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let (done, result) = tokio::sync::oneshot::channel();
    client_thread(what, move || {
        let reader = BodyReader {
            rx,
            current: Bytes::new(),
        };
        let _ = done.send(f(reader));
    })?;
    result
        .await
        .map_err(|_| anyhow::anyhow!("{what} failed: its thread panicked"))?
}

/// Whether a load failed on the archive's bytes (a truncated or malformed
/// tar reads as an I/O error) rather than on the daemon's own disk.
pub(crate) fn archive_is_malformed(e: &wrun_image::ImageError) -> bool {
    use std::io::ErrorKind as K;
    match e {
        wrun_image::ImageError::Io { source, .. } => matches!(
            source.kind(),
            K::UnexpectedEof | K::InvalidData | K::InvalidInput | K::Other
        ),
        _ => false,
    }
}

/// `POST /images/load?quiet=`: the body is an image tar (plain or gzip),
/// read as it arrives (never held whole); the answer is Docker's JSON
/// progress lines. A bad archive is a 400 and stores nothing.
pub async fn load(
    daemon: &Arc<Daemon>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let quiet = query.flag("quiet");
    let d = Arc::clone(daemon);
    let report = read_body_on_thread(req, "loading images", move |body| {
        archive::load(&d.store, body).map_err(|e| {
            let malformed = archive_is_malformed(&e);
            let err =
                DaemonError::from(anyhow::Error::from(e).context("loading the image archive"));
            if malformed { err.into_invalid() } else { err }
        })
    })
    .await?;
    let mut lines = Vec::new();
    for note in &report.notes {
        if !quiet {
            lines.push(LoadMessage::note(note).stream);
        }
    }
    for (record, names) in &report.images {
        let id = record.id.to_string();
        if names.is_empty() {
            lines.push(LoadMessage::loaded_id(&id).stream);
            daemon.events.image("load", &id, &id);
        }
        for n in names {
            lines.push(LoadMessage::loaded(n).stream);
            daemon.events.image("load", &id, n);
        }
    }
    let mut out = Vec::new();
    for l in lines {
        if let Ok(mut b) = serde_json::to_vec(&LoadMessage { stream: l }) {
            b.push(b'\n');
            out.extend(b);
        }
    }
    let mut r = Response::new(super::http::full(out));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_hub_spellings_become_the_names_users_type() {
        assert_eq!(super::familiar("docker.io/library/greeter"), "greeter");
        assert_eq!(super::familiar("docker.io/me/app"), "me/app");
        assert_eq!(
            super::familiar("reg.example:5000/app"),
            "reg.example:5000/app"
        );
    }
}
