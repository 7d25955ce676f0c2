//! `push`: a stored image to a registry. Each blob is asked for first (HEAD)
//! and only the missing ones are uploaded, streamed from the store in
//! chunks; then the manifest, byte for byte as stored, under the tag.

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::Client;
use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use tokio::io::AsyncReadExt;

use super::progress::TransferEvent;
use super::{
    Access, RegistryError, RegistryOptions, RemoteRef, Result, anonymous_refusal, auth, runtime,
};
use crate::digest::Digest;
use crate::document::OCI_MANIFEST;
use crate::error::ImageError;
use crate::store::{MAX_DOCUMENT, Store};

/// Bytes read from a blob at a time: a blob goes up in one request (a
/// `POST`, then a `PUT` whose body streams the file), so this bounds what
/// an upload holds in memory, not what a request carries.
const CHUNK: usize = 256 << 10;

/// What a push did.
#[derive(Debug)]
pub struct PushReport {
    /// The manifest's digest and size (docker's last line).
    pub digest: Digest,
    pub size: u64,
    /// Each layer, and whether it was uploaded (false: the registry had it).
    pub layers: Vec<(Digest, bool)>,
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
            let uploaded: Vec<(Digest, bool)> = stream::iter(blobs.iter().copied().enumerate())
                .map(|(i, (d, size))| {
                    let progress = (i > 0).then_some(options);
                    upload(&client, store, reference, d, size, progress)
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

/// Uploads blob `d` unless the registry has it; whether it was uploaded.
/// With `progress`, its progress is reported there.
async fn upload(
    client: &Client,
    store: &Store,
    r: &RemoteRef,
    d: Digest,
    size: u64,
    progress: Option<&RegistryOptions>,
) -> Result<(Digest, bool)> {
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
        return Ok((d, false));
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
    Ok((d, true))
}
