//! `pull`: a registry's image into the store. Every document and blob is
//! checked against its digest and size before the store sees it; blobs
//! stream to files in a staging area, several at once, and only a complete,
//! verified image is committed (a failed pull leaves the store unchanged).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::Client;
use oci_client::manifest::OciDescriptor;
use oci_spec::image::{ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWrite;

use super::{
    Access, RegistryError, RegistryOptions, RemoteRef, Result, anonymous_refusal, runtime,
};
use crate::digest::Digest;
use crate::document::{self, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::error::ImageError;
use crate::store::{ImageRecord, MAX_DOCUMENT, Staging, Store};

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
    let names: Vec<_> = reference.stored_name().into_iter().collect();
    let up_to_date = store
        .images()?
        .iter()
        .any(|r| r.digest == fetched.digest && names.iter().all(|n| r.names.contains(&n.name())));
    let record = store
        .commit(staging, &[(fetched.digest, names)])?
        .pop()
        .ok_or_else(|| ImageError::invalid(reference.to_string(), "the store recorded nothing"))?;
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
}

/// The manifest (through the index's wasm entry when it is an index), its
/// config and missing layers, staged and checked.
async fn fetch(
    client: &Client,
    staging: &mut Staging<'_>,
    r: &RemoteRef,
    options: &RegistryOptions,
) -> Result<Fetched> {
    let (bytes, digest) = manifest(client, r, options, &r.client_ref(), r.digest, None).await?;
    let what = format!("the manifest of {r}");
    let (bytes, digest, descriptor_type) = if is_index(&bytes) {
        let index = document::parse_index(&bytes, None, &what)?;
        let entry = wasm_entry(&index, r)?;
        let want = Digest::from_oci(entry.digest())?;
        let (bytes, digest) = manifest(
            client,
            r,
            options,
            &r.at(&want),
            Some(want),
            Some(entry.size()),
        )
        .await?;
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
    let mut wanted = vec![(
        Digest::from_oci(config.digest())?,
        config.size(),
        "the config".to_owned(),
    )];
    let mut layers = Vec::new();
    for layer in manifest.layers() {
        document::check_layer_media_type(layer)?;
        let d = Digest::from_oci(layer.digest())?;
        let present = staging.has_blob(&d);
        layers.push((d, !present));
        if !present {
            wanted.push((d, layer.size(), format!("layer {d}")));
        }
    }
    wanted.dedup_by_key(|(d, _, _)| *d);
    let jobs = wanted
        .into_iter()
        .filter(|(d, _, _)| !staging.has_blob(d))
        .map(|(d, size, what)| (d, size, what, staging.new_file_path("pull")))
        .collect::<Vec<_>>();
    let done: Vec<(Digest, u64, PathBuf)> = stream::iter(jobs)
        .map(|(d, size, what, path)| blob(client, r, d, size, what, path))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;
    for (d, size, path) in done {
        staging.adopt_blob(&path, d, size)?;
    }
    Ok(Fetched { digest, layers })
}

/// A manifest or index, checked against `want` and `size` when known.
async fn manifest(
    client: &Client,
    r: &RemoteRef,
    options: &RegistryOptions,
    at: &oci_client::Reference,
    want: Option<Digest>,
    size: Option<u64>,
) -> Result<(Vec<u8>, Digest)> {
    let (bytes, _) = client
        .pull_manifest_raw(at, &options.auth, &ACCEPTED)
        .await
        .map_err(|e| RegistryError::from_call("the manifest", r, e))?;
    let what = format!("the manifest of {r}");
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(ImageError::invalid(&what, format!("more than {MAX_DOCUMENT} bytes")).into());
    }
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
    Ok((bytes.to_vec(), digest))
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

/// Streams blob `d` into `path`, checking its size and digest as it comes.
async fn blob(
    client: &Client,
    r: &RemoteRef,
    d: Digest,
    size: u64,
    what: String,
    path: PathBuf,
) -> Result<(Digest, u64, PathBuf)> {
    let file = tokio::fs::File::create(&path)
        .await
        .map_err(|source| RegistryError::Io {
            what: format!("creating {}", path.display()),
            source,
        })?;
    let mut out = CheckedWriter {
        file,
        hasher: Sha256::new(),
        written: 0,
        limit: size,
        over: false,
    };
    let descriptor = OciDescriptor {
        digest: d.to_string(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    };
    let pulled = client.pull_blob(&r.at(&d), &descriptor, &mut out).await;
    let what = format!("{what} of {r}");
    if out.over {
        return Err(RegistryError::TooLarge {
            what,
            reference: r.to_string(),
            expected: size,
        });
    }
    pulled.map_err(|e| RegistryError::from_call(&what, r, e))?;
    let actual = Digest::from_hex(&hex::encode(out.hasher.finalize()))?;
    if actual != d {
        return Err(ImageError::DigestMismatch {
            what,
            expected: d.to_string(),
            actual: actual.to_string(),
        }
        .into());
    }
    if out.written != size {
        return Err(ImageError::SizeMismatch {
            what,
            expected: size,
            actual: out.written,
        }
        .into());
    }
    Ok((d, size, path))
}

/// A blob's file: hashes what is written and refuses a byte past the
/// descriptor's size (a registry sending more is lying).
struct CheckedWriter {
    file: tokio::fs::File,
    hasher: Sha256,
    written: u64,
    limit: u64,
    over: bool,
}

impl AsyncWrite for CheckedWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.written + buf.len() as u64 > this.limit {
            this.over = true;
            return Poll::Ready(Err(io::Error::other(
                "more bytes than the blob's descriptor says",
            )));
        }
        match Pin::new(&mut this.file).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.written += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}
