//! `pull`: a registry's image into the store. Every document and blob is
//! checked against its digest and size before the store sees it; blobs
//! stream to files, several at once, and only a complete, verified image is
//! committed (a failed pull leaves the store's images unchanged).
//!
//! Blobs are fetched into the store's `downloads/` (one file a blob, locked
//! while a pull writes it) and stay there until the image is committed: a
//! pull killed halfway leaves them, and the next pull of a blob checks what
//! is there and asks only for the rest (an HTTP `Range` request; a registry
//! that answers with the whole blob gets it written from the start).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::client::{BlobResponse, SizedStream};
use oci_client::errors::{OciDistributionError, OciEnvelope};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use oci_spec::image::{ImageIndex, ImageManifest};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::progress::{REPORT_EVERY, TransferEvent};
use super::{
    Access, RegistryError, RegistryOptions, RemoteRef, Result, anonymous_refusal, auth, runtime,
};
use crate::digest::Digest;
use crate::document::{self, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::error::{ImageError, IoContext as _};
use crate::reference::DEFAULT_TAG;
use crate::store::{
    ImageRecord, MAX_DOCUMENT, PRIVATE_FILE, Staging, Store, create_private_dir_all,
    create_private_file,
};

/// The documents a pull accepts, in `Accept` (distribution 2.8 answers 404
/// for an OCI manifest not asked for by type).
const ACCEPTED: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// What a pull did.
#[derive(Debug)]
pub struct PullReport {
    pub record: ImageRecord,
    /// The manifest's digest (docker's `Digest:` line).
    pub digest: Digest,
    /// Each layer, and whether it was fetched (false: the store had it).
    pub layers: Vec<(Digest, bool)>,
    /// The store already had this image under this name.
    pub up_to_date: bool,
}

/// Pulls `reference` into `store` and names it (`host/path:tag`; nothing
/// when pulled by digest alone, as docker).
pub fn pull(store: &Store, reference: &RemoteRef, options: &RegistryOptions) -> Result<PullReport> {
    let client = options.client(&reference.registry);
    let mut staging = store.staging()?;
    let fetched = runtime()?
        .block_on(fetch(&client, &mut staging, reference, options))
        .map_err(|e| anonymous_refusal(e, options, reference, Access::Pull))?;
    options.progress.send(TransferEvent::Storing);
    let names: Vec<_> = reference.stored_name().into_iter().collect();
    let up_to_date = store
        .images()?
        .iter()
        .any(|r| r.digest == fetched.digest && names.iter().all(|n| r.names.contains(&n.name())));
    let record = store
        .commit(staging, &[(fetched.digest, names)])?
        .pop()
        .ok_or_else(|| ImageError::invalid(reference.to_string(), "the store recorded nothing"))?;
    // Stored now: the kept copies are done with (a failure leaves them),
    // but for one another pull is reading.
    for path in fetched.downloaded {
        if File::open(&path).is_ok_and(|f| f.try_lock().is_ok()) {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(PullReport {
        record,
        digest: fetched.digest,
        layers: fetched.layers,
        up_to_date,
    })
}

struct Fetched {
    digest: Digest,
    layers: Vec<(Digest, bool)>,
    /// The files in `downloads/` whose blobs the staging area now holds.
    downloaded: Vec<PathBuf>,
}

/// The manifest (through the index's wasm entry when it is an index), its
/// config and missing layers, staged and checked.
async fn fetch(
    client: &Client,
    staging: &mut Staging<'_>,
    r: &RemoteRef,
    options: &RegistryOptions,
) -> Result<Fetched> {
    auth::pin_auth(client, &r.client_ref(), &options.auth).await;
    let (bytes, digest, sent_as) =
        manifest(client, r, options, &r.client_ref(), r.digest, None).await?;
    let what = format!("the manifest of {r}");
    check_content_type(sent_as.as_deref(), &bytes, &what)?;
    let (bytes, digest, descriptor_type) = if is_index(&bytes) {
        let index = document::parse_index(&bytes, None, &what)?;
        let entry = wasm_entry(&index, r)?;
        let want = Digest::from_oci(entry.digest())?;
        let (bytes, digest, sent_as) = manifest(
            client,
            r,
            options,
            &r.at(&want),
            Some(want),
            Some(entry.size()),
        )
        .await?;
        check_content_type(sent_as.as_deref(), &bytes, &what)?;
        (bytes, digest, Some(entry.media_type().to_string()))
    } else {
        (bytes, digest, None)
    };
    let manifest: ImageManifest =
        document::parse_manifest(&bytes, descriptor_type.as_deref(), &what)?;
    staging.write_blob(&mut &bytes[..], Some(&digest), &what)?;

    let config = manifest.config();
    if config.size() > MAX_DOCUMENT {
        return Err(ImageError::invalid(
            format!("the config of {r}"),
            format!(
                "{} bytes is more than a config may have ({MAX_DOCUMENT})",
                config.size()
            ),
        )
        .into());
    }
    let downloads = staging.store().downloads_dir();
    create_private_dir_all(&downloads)
        .io_context(|| format!("creating {}", downloads.display()))?;
    let mut wanted = vec![Wanted {
        digest: Digest::from_oci(config.digest())?,
        size: config.size(),
        what: "the config".to_owned(),
        layer: false,
    }];
    let mut layers = Vec::new();
    for layer in manifest.layers() {
        document::check_layer_media_type(layer)?;
        let d = Digest::from_oci(layer.digest())?;
        let present = staging.has_blob(&d);
        layers.push((d, !present));
        options.progress.send(TransferEvent::Pending {
            layer: d,
            size: layer.size(),
            kept: if present {
                layer.size()
            } else {
                kept_len(&downloads, &d).min(layer.size())
            },
        });
        if present {
            options.progress.send(TransferEvent::Exists { layer: d });
        } else {
            wanted.push(Wanted {
                digest: d,
                size: layer.size(),
                what: format!("layer {d}"),
                layer: true,
            });
        }
    }
    let mut seen = HashSet::new();
    let jobs: Vec<_> = wanted
        .into_iter()
        .filter(|w| seen.insert(w.digest) && !staging.has_blob(&w.digest))
        .map(|w| {
            let fallback = staging.new_file_path("pull");
            (w, fallback)
        })
        .collect();
    let done: Vec<Blob> = stream::iter(jobs)
        .map(|(w, fallback)| blob(client, r, options, &downloads, w, fallback))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;
    let mut downloaded = Vec::new();
    for b in done {
        match b.kept {
            // A link, not a move: until the image is committed the kept
            // copy stays in downloads/ for a retry (the lock is let go after).
            Some(_lock) => {
                let staged = staging.new_file_path("pull");
                std::fs::hard_link(&b.path, &staged)
                    .io_context(|| format!("staging {}", b.path.display()))?;
                staging.adopt_blob(&staged, b.digest, b.size)?;
                downloaded.push(b.path);
            }
            None => staging.adopt_blob(&b.path, b.digest, b.size)?,
        }
    }
    Ok(Fetched {
        digest,
        layers,
        downloaded,
    })
}

/// A blob the pull fetches.
struct Wanted {
    digest: Digest,
    size: u64,
    what: String,
    /// Reported to the progress sink (the config is not).
    layer: bool,
}

/// A fetched, checked blob: in `downloads/` (`kept` holds its lock) or, when
/// another pull held that file, in the staging area.
struct Blob {
    digest: Digest,
    size: u64,
    path: PathBuf,
    kept: Option<File>,
}

/// How many bytes of `d` an earlier pull left in `downloads`.
fn kept_len(downloads: &Path, d: &Digest) -> u64 {
    std::fs::metadata(downloads.join(d.hex())).map_or(0, |m| m.len())
}

/// A manifest or index, checked against `want` and `size` when known, and
/// the media type the registry sent it as (its `Content-Type`).
async fn manifest(
    client: &Client,
    r: &RemoteRef,
    options: &RegistryOptions,
    at: &oci_client::Reference,
    want: Option<Digest>,
    size: Option<u64>,
) -> Result<(Vec<u8>, Digest, Option<String>)> {
    let (bytes, content_type) = get_document(client, r, options, at).await?;
    let what = format!("the manifest of {r}");
    let digest = Digest::of(&bytes);
    if let Some(want) = want
        && want != digest
    {
        return Err(ImageError::DigestMismatch {
            what,
            expected: want.to_string(),
            actual: digest.to_string(),
        }
        .into());
    }
    if let Some(size) = size
        && size != bytes.len() as u64
    {
        return Err(ImageError::SizeMismatch {
            what,
            expected: size,
            actual: bytes.len() as u64,
        }
        .into());
    }
    Ok((bytes, digest, content_type))
}

/// `GET …/manifests/REF` by wrun rather than oci-client's
/// `pull_manifest_raw`, which reads any body whole: a body is refused past
/// [`MAX_DOCUMENT`] bytes, announced or sent. The credentials are those
/// oci-client would send (an anonymous token where the registry offers one).
async fn get_document(
    client: &Client,
    r: &RemoteRef,
    options: &RegistryOptions,
    at: &oci_client::Reference,
) -> Result<(Vec<u8>, Option<String>)> {
    let call = |e| RegistryError::from_call("the manifest", r, e);
    let url = format!(
        "{}://{}/v2/{}/manifests/{}",
        if options.plain_http(&r.registry) {
            "http"
        } else {
            "https"
        },
        at.resolve_registry(),
        at.repository(),
        at.digest().or(at.tag()).unwrap_or(DEFAULT_TAG)
    );
    let http = options
        .http_client(&r.registry)
        .map_err(|e| call(OciDistributionError::RequestError(e)))?;
    let mut request = http.get(&url).header(ACCEPT, ACCEPTED.join(", "));
    request = match &options.auth {
        RegistryAuth::Basic(user, password) => request.basic_auth(user, Some(password)),
        RegistryAuth::Bearer(token) => request.bearer_auth(token),
        // As oci-client does: a token when the registry hands out anonymous
        // ones, else nothing (a registry that wants more says 401 next).
        RegistryAuth::Anonymous => match client
            .auth(at, &RegistryAuth::Anonymous, RegistryOperation::Pull)
            .await
        {
            Ok(Some(token)) => request.bearer_auth(token),
            _ => request,
        },
    };
    let mut res = request
        .send()
        .await
        .map_err(|e| call(OciDistributionError::RequestError(e)))?;
    let status = res.status();
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    let what = format!("the manifest of {r}");
    if let Some(n) = res.content_length()
        && n > MAX_DOCUMENT
        && status.is_success()
    {
        return Err(ImageError::invalid(
            &what,
            format!(
                "the registry announces {n} bytes, more than a manifest may have ({MAX_DOCUMENT})"
            ),
        )
        .into());
    }
    let mut body = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > MAX_DOCUMENT {
                    if !status.is_success() {
                        break; // enough of an error's body to say what it is
                    }
                    return Err(ImageError::invalid(
                        &what,
                        format!("more than {MAX_DOCUMENT} bytes"),
                    )
                    .into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(RegistryError::Io {
                    what: format!("receiving {what}"),
                    source: io::Error::other(error_chain(&e)),
                });
            }
        }
    }
    if status != reqwest::StatusCode::OK {
        return Err(call(registry_refusal(status, &body, url)));
    }
    Ok((body, content_type))
}

/// A refusal as oci-client reports one (its words, so that
/// [`RegistryError::from_call`] says it as for any other call).
fn registry_refusal(status: reqwest::StatusCode, body: &[u8], url: String) -> OciDistributionError {
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return OciDistributionError::UnauthorizedError { url };
    }
    if status.is_success() {
        return OciDistributionError::SpecViolationError(format!(
            "Expected HTTP Status 200 OK, got {status} instead"
        ));
    }
    match serde_json::from_slice::<OciEnvelope>(body) {
        Ok(envelope) if status.is_client_error() => {
            OciDistributionError::RegistryError { envelope, url }
        }
        _ => OciDistributionError::ServerError {
            code: status.as_u16(),
            url,
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

/// An error and its causes in one line (`a: b: c`).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        next = cause.source();
    }
    line
}

/// The manifest's `Content-Type` must agree with the document: a registry
/// that sends an index as a manifest (or the other way round, or one kind
/// of manifest as another) is refused, as docker refuses it, rather than
/// read as whatever the body says (containerd CVE-2021-41190). A type wrun
/// does not know (`application/json`, none) leaves the document to say.
fn check_content_type(content_type: Option<&str>, bytes: &[u8], what: &str) -> Result<()> {
    let Some(sent) = content_type.filter(|t| ACCEPTED.contains(t)) else {
        return Ok(());
    };
    let own = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        });
    let sent_index = sent == OCI_INDEX || sent == DOCKER_LIST;
    let agrees = match &own {
        Some(own) => own == sent,
        None => is_index(bytes) == sent_index,
    };
    if agrees {
        return Ok(());
    }
    let says = own.unwrap_or_else(|| {
        if is_index(bytes) {
            "an index".to_owned()
        } else {
            "a manifest".to_owned()
        }
    });
    Err(ImageError::invalid(
        what,
        format!("the registry sent it as {sent:?} but the document is {says:?}"),
    )
    .into())
}

/// Whether a document says it is an index (its media type, or a
/// `manifests` list without one).
fn is_index(bytes: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(bytes)
    else {
        return false;
    };
    match map.get("mediaType").and_then(|t| t.as_str()) {
        Some(t) => t == OCI_INDEX || t == DOCKER_LIST,
        None => map.contains_key("manifests") && !map.contains_key("layers"),
    }
}

/// The index's WebAssembly entry: platform `wasip1/wasm` (Docker writes
/// `wasi/wasm`).
fn wasm_entry<'i>(index: &'i ImageIndex, r: &RemoteRef) -> Result<&'i oci_spec::image::Descriptor> {
    let platform = |d: &oci_spec::image::Descriptor| {
        d.platform()
            .as_ref()
            .map(|p| (p.os().to_string(), p.architecture().to_string()))
    };
    index
        .manifests()
        .iter()
        .find(|d| {
            matches!(platform(d), Some((os, arch)) if arch == "wasm" && (os == "wasip1" || os == "wasi"))
        })
        .ok_or_else(|| {
            let offered: Vec<String> = index
                .manifests()
                .iter()
                .map(|d| match platform(d) {
                    Some((os, arch)) => format!("{os}/{arch}"),
                    None => "no platform".into(),
                })
                .collect();
            RegistryError::NoWasmPlatform {
                reference: r.to_string(),
                offered: if offered.is_empty() {
                    "nothing".into()
                } else {
                    offered.join(", ")
                },
            }
        })
}

/// Fetches blob `w` into `downloads/<hex>`, after the bytes an earlier pull
/// left there (checked again as they are read back), or into `fallback` when
/// another pull is writing that file. Its size and digest are checked as it
/// comes; a blob that fails the check is not kept.
async fn blob(
    client: &Client,
    r: &RemoteRef,
    options: &RegistryOptions,
    downloads: &Path,
    w: Wanted,
    fallback: PathBuf,
) -> Result<Blob> {
    let what = format!("{} of {r}", w.what);
    let path = downloads.join(w.digest.hex());
    let (file, kept, path) = match open_kept(&path)? {
        Some(file) => (file, true, path),
        None => {
            let file = create_private_file(&fallback)
                .io_context(|| format!("creating {}", fallback.display()))?;
            (file, false, fallback)
        }
    };
    let report = |event| {
        if w.layer {
            options.progress.send(event);
        }
    };
    let mut hasher = Sha256::new();
    let mut have = if kept {
        read_back(&file, &mut hasher, w.size)
            .io_context(|| format!("reading {}", path.display()))?
    } else {
        0
    };
    // Bytes kept from before that turn out not to be the blob's are
    // dropped and the blob fetched once more, whole.
    let mut resumed = have > 0;
    loop {
        if have < w.size {
            have = fetch_rest(
                client,
                r,
                &w,
                &what,
                &file,
                &path,
                &mut hasher,
                have,
                &report,
            )
            .await?;
        }
        let actual = Digest::from_hex(&hex::encode(hasher.clone().finalize()))?;
        if actual == w.digest && have == w.size {
            break;
        }
        // Not this blob: nothing of it is worth keeping for a retry.
        let _ = file.set_len(0);
        if resumed {
            resumed = false;
            hasher = Sha256::new();
            have = 0;
            continue;
        }
        return Err(if actual != w.digest {
            ImageError::DigestMismatch {
                what,
                expected: w.digest.to_string(),
                actual: actual.to_string(),
            }
        } else {
            ImageError::SizeMismatch {
                what,
                expected: w.size,
                actual: have,
            }
        }
        .into());
    }
    report(TransferEvent::Done { layer: w.digest });
    Ok(Blob {
        digest: w.digest,
        size: w.size,
        path,
        kept: kept.then_some(file),
    })
}

/// Asks for blob `w` from byte `have` on (`Range: bytes=HAVE-`) and appends
/// it to `file`; the bytes it now holds. A registry that answers with the
/// whole blob has it written from the start.
#[allow(clippy::too_many_arguments)]
async fn fetch_rest(
    client: &Client,
    r: &RemoteRef,
    w: &Wanted,
    what: &str,
    file: &File,
    path: &Path,
    hasher: &mut Sha256,
    mut have: u64,
    report: &impl Fn(TransferEvent),
) -> Result<u64> {
    let descriptor = OciDescriptor {
        digest: w.digest.to_string(),
        size: i64::try_from(w.size).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    };
    let at = r.at(&w.digest);
    // Asked as a range even from byte 0: a `206` body is hashed once, here
    // (oci-client hashes a `200` body again as it streams it).
    let body = match client
        .pull_blob_stream_partial(&at, &descriptor, have, None)
        .await
        .map_err(|e| RegistryError::from_call(&w.what, r, e))?
    {
        BlobResponse::Partial(body) => body,
        BlobResponse::Full(body) => {
            if have > 0 {
                file.set_len(0)
                    .io_context(|| format!("truncating {}", path.display()))?;
                *hasher = Sha256::new();
                have = 0;
            }
            body
        }
    };
    report(TransferEvent::Bytes {
        layer: w.digest,
        done: have,
        size: w.size,
    });
    let clone = file
        .try_clone()
        .io_context(|| format!("opening {}", path.display()))?;
    let received = receive(body, clone, hasher, have, w, what, r, report).await;
    if matches!(received, Err(RegistryError::TooLarge { .. })) {
        // A lying registry's bytes are not kept for a retry.
        let _ = file.set_len(0);
    }
    received
}

/// Appends the body of a blob's answer to `file` (positioned at its end,
/// `have` bytes in), hashing it and refusing a byte past the descriptor's
/// size (a registry announcing or sending more is lying); the bytes now held.
#[allow(clippy::too_many_arguments)]
async fn receive(
    mut body: SizedStream,
    file: File,
    hasher: &mut Sha256,
    mut have: u64,
    w: &Wanted,
    what: &str,
    r: &RemoteRef,
    report: &impl Fn(TransferEvent),
) -> Result<u64> {
    // `what` names the reference already; the error adds it.
    let too_large = || RegistryError::TooLarge {
        what: w.what.clone(),
        reference: r.to_string(),
        expected: w.size,
    };
    if body
        .content_length
        .is_some_and(|n| have.saturating_add(n) > w.size)
    {
        return Err(too_large());
    }
    let io_error = |source| RegistryError::Io {
        what: format!("writing {what}"),
        source,
    };
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
    let mut reported = have;
    while let Some(chunk) = body.stream.next().await {
        let chunk = chunk.map_err(|source| RegistryError::Io {
            what: format!("receiving {what}"),
            source,
        })?;
        if have + chunk.len() as u64 > w.size {
            out.flush().await.map_err(io_error)?;
            return Err(too_large());
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(io_error)?;
        have += chunk.len() as u64;
        if have - reported >= REPORT_EVERY || have == w.size {
            reported = have;
            report(TransferEvent::Bytes {
                layer: w.digest,
                done: have,
                size: w.size,
            });
        }
    }
    out.flush().await.map_err(io_error)?;
    Ok(have)
}

/// Opens and locks `downloads/<hex>` for this pull, or `None` when another
/// pull holds it. A file `prune` removed between the open and the lock is
/// opened again (a few times; then `None`: the pull fetches its own copy).
fn open_kept(path: &Path) -> Result<Option<File>> {
    for _ in 0..3 {
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .mode(PRIVATE_FILE)
            .open(path)
            .io_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(ImageError::Io {
                    context: format!("locking {}", path.display()),
                    source,
                }
                .into());
            }
        }
        let held = file
            .metadata()
            .io_context(|| format!("reading {}", path.display()))?;
        match std::fs::metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(Some(file)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ImageError::Io {
                    context: format!("reading {}", path.display()),
                    source,
                }
                .into());
            }
        }
    }
    Ok(None)
}

/// Hashes the bytes a kept file holds (up to `size`; a longer file is cut
/// back to nothing); how many there are.
fn read_back(file: &File, hasher: &mut Sha256, size: u64) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len > size {
        file.set_len(0)?;
        return Ok(0);
    }
    let mut reader = file;
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
    }
    Ok(read)
}
