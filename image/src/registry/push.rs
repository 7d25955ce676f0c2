//! `push`: a stored image to a registry. Each blob is asked for first (HEAD);
//! a missing one is mounted from another repository of the registry that the
//! store names it under, else uploaded, streamed from the store in chunks;
//! then the manifest, byte for byte as stored, under the tag.

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::io::AsyncReadExt;

use super::progress::TransferEvent;
use super::{
    Access, RegistryError, RegistryOptions, RemoteRef, Result, anonymous_refusal, auth, runtime,
};
use crate::digest::Digest;
use crate::document::OCI_MANIFEST;
use crate::error::ImageError;
use crate::reference::ImageRef;
use crate::store::{MAX_DOCUMENT, Store};

/// Bytes read from a blob at a time: a blob goes up in one request (a
/// `POST`, then a `PUT` whose body streams the file), so this bounds what
/// an upload holds in memory, not what a request carries.
const CHUNK: usize = 256 << 10;

/// Repositories a blob's mount is asked from at most (docker's three):
/// each refusal costs a request before the upload.
const MOUNT_ATTEMPTS: usize = 3;

/// How a layer got to the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerPush {
    /// The registry had it in the repository already (`HEAD`).
    Exists,
    /// The registry mounted it from this repository of its own.
    Mounted { from: String },
    /// Its bytes were uploaded.
    Uploaded,
}

/// What a push did.
#[derive(Debug)]
pub struct PushReport {
    /// The manifest's digest and size (docker's last line).
    pub digest: Digest,
    pub size: u64,
    /// Each layer (the manifest's order) and how it got there.
    pub layers: Vec<(Digest, LayerPush)>,
    pub tag: String,
}

/// Pushes the stored image named `reference` (`host/path:tag`).
pub fn push(store: &Store, reference: &RemoteRef, options: &RegistryOptions) -> Result<PushReport> {
    let Some(name) = reference
        .stored_name()
        .filter(|_| reference.digest.is_none())
    else {
        return Err(ImageError::BadReference {
            reference: reference.to_string(),
            reason: "a push names a tag, not a digest".into(),
        }
        .into());
    };
    let record = match store.find(&name.name()) {
        Ok(record) => record,
        Err(ImageError::NoSuchImage(_)) => {
            return Err(RegistryError::NotStored {
                repository: name.repository,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = store.read_blob(&record.digest, MAX_DOCUMENT)?;
    let manifest = store.manifest(&record)?;
    let media_type = manifest
        .media_type()
        .as_ref()
        .map_or_else(|| OCI_MANIFEST.to_owned(), ToString::to_string);
    let mut blobs = vec![(
        Digest::from_oci(manifest.config().digest())?,
        manifest.config().size(),
    )];
    for layer in manifest.layers() {
        let d = Digest::from_oci(layer.digest())?;
        blobs.push((d, layer.size()));
        options.progress.send(TransferEvent::Pending {
            layer: d,
            size: layer.size(),
            kept: 0,
        });
    }
    let sources = mount_sources(store, reference)?;
    let client = options.client(&reference.registry);
    let target = reference.client_ref();
    let uploaded = runtime()?
        .block_on(async {
            // Basic is pinned, never asked about again (auth::pin_auth);
            // a token, or none, is what oci-client's auth call settles.
            auth::pin_auth(&client, &target, &options.auth).await;
            if !matches!(options.auth, RegistryAuth::Basic(..)) {
                client
                    .auth(&target, &options.auth, RegistryOperation::Push)
                    .await
                    .map_err(|e| RegistryError::from_call("authenticating", reference, e))?;
            }
            // The config (first) is no layer: its progress is not reported.
            let uploaded: Vec<(Digest, LayerPush)> =
                stream::iter(blobs.iter().copied().enumerate())
                    .map(|(i, (d, size))| {
                        let progress = (i > 0).then_some(options);
                        let from = sources.get(&d).map_or(&[][..], Vec::as_slice);
                        upload(&client, store, reference, d, size, from, progress)
                    })
                    .buffered(options.concurrency.max(1))
                    .try_collect()
                    .await?;
            let content_type = media_type.parse().map_err(|_| {
                ImageError::invalid(
                    format!("manifest {}", record.digest),
                    "its media type is no header value",
                )
            })?;
            client
                .push_manifest_raw(&target, bytes.clone(), content_type)
                .await
                .map_err(|e| RegistryError::from_call("the manifest", reference, e))?;
            Ok::<_, RegistryError>(uploaded)
        })
        .map_err(|e| anonymous_refusal(e, options, reference, Access::Push))?;
    Ok(PushReport {
        digest: record.digest,
        size: bytes.len() as u64,
        layers: uploaded.into_iter().skip(1).collect(),
        tag: reference.tag.clone().unwrap_or_default(),
    })
}

/// The other repositories of `reference`'s registry that the store names
/// an image in, for each blob of those images (config and layers): where
/// the registry may hold a blob already, to mount it from there. A name
/// is no proof (an image built here and tagged for the registry may never
/// have been pushed): a mount the registry refuses costs one request.
pub fn mount_sources(
    store: &Store,
    reference: &RemoteRef,
) -> Result<BTreeMap<Digest, Vec<String>>> {
    let mut sources: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for record in store.images()? {
        let mut repositories: Vec<String> = record
            .names
            .iter()
            .filter_map(|n| n.parse::<ImageRef>().ok())
            .filter(|n| n.registry() == Some(reference.registry.as_str()))
            .map(|n| n.repository[reference.registry.len() + 1..].to_owned())
            .filter(|repository| *repository != reference.repository)
            .collect();
        repositories.sort();
        repositories.dedup();
        if repositories.is_empty() {
            continue;
        }
        // A hint only: an image whose manifest cannot be read gives none,
        // and the push goes on (it reads the pushed image's own manifest itself).
        let Ok(manifest) = store.manifest(&record) else {
            continue;
        };
        let blobs = std::iter::once(manifest.config()).chain(manifest.layers());
        for blob in blobs {
            let Ok(digest) = Digest::from_oci(blob.digest()) else {
                continue;
            };
            let listed = sources.entry(digest).or_default();
            for repository in &repositories {
                if listed.len() < MOUNT_ATTEMPTS && !listed.contains(repository) {
                    listed.push(repository.clone());
                }
            }
        }
    }
    Ok(sources)
}

/// Gets blob `d` to the registry unless it has it: mounted from one of the
/// repositories in `from` that the registry accepts (201), else uploaded.
/// With `progress`, its progress is reported there.
async fn upload(
    client: &Client,
    store: &Store,
    r: &RemoteRef,
    d: Digest,
    size: u64,
    from: &[String],
    progress: Option<&RegistryOptions>,
) -> Result<(Digest, LayerPush)> {
    let report = |event| {
        if let Some(o) = progress {
            o.progress.send(event);
        }
    };
    let at = r.client_ref();
    let what = format!("blob {d}");
    if client
        .blob_exists(&at, &d.to_string())
        .await
        .map_err(|e| RegistryError::from_call(&what, r, e))?
    {
        report(TransferEvent::Exists { layer: d });
        return Ok((d, LayerPush::Exists));
    }
    for repository in from {
        let source = Reference::with_digest(r.registry.clone(), repository.clone(), d.to_string());
        // 201: mounted. Anything else (202 with an upload session the
        // registry opened instead, a refusal, a repository it lacks): the
        // next source, then a plain upload. The session a 202 opened is
        // left to the registry to expire.
        if client
            .mount_blob(&at, &source, &d.to_string())
            .await
            .is_ok()
        {
            report(TransferEvent::Mounted {
                layer: d,
                from: repository.clone(),
            });
            return Ok((
                d,
                LayerPush::Mounted {
                    from: repository.clone(),
                },
            ));
        }
    }
    report(TransferEvent::Bytes {
        layer: d,
        done: 0,
        size,
    });
    let file = tokio::fs::File::from_std(store.open_blob(&d)?);
    let chunks = stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            let n = file.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(None);
        }
        buf.truncate(filled);
        Ok(Some((bytes::Bytes::from(buf), file)))
    });
    // A chunk is reported as it is handed to the client (its upload is
    // under way): a bar moves a chunk ahead of the bytes on the wire.
    let sink = progress.map(|o| o.progress.clone());
    let mut sent = 0u64;
    let chunks = chunks.inspect_ok(move |chunk: &bytes::Bytes| {
        sent += chunk.len() as u64;
        if let Some(sink) = &sink {
            sink.send(TransferEvent::Bytes {
                layer: d,
                done: sent,
                size,
            });
        }
    });
    client
        .push_blob_stream(&at, chunks, &d.to_string(), Some(size))
        .await
        .map_err(|e| RegistryError::from_call(&what, r, e))?;
    report(TransferEvent::Done { layer: d });
    Ok((d, LayerPush::Uploaded))
}
