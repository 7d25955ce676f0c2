//! `import`: a rootfs tar (plain or gzip) as a one-layer image, as `docker
//! import` makes one. The tar becomes the layer as it is (its digest is the
//! diff_id dockerd gives the same bytes), then is unpacked with every
//! check `load` applies to a layer; nothing is stored unless all pass.

use std::io::{self, Read};

use oci_spec::image::{
    Config, Descriptor, HistoryBuilder, ImageConfigurationBuilder, MediaType, RootFsBuilder,
};

use crate::changes::apply_changes;
use crate::commit::write_runnable_image;
use crate::digest::LimitedReader;
use crate::error::{ImageError, Result};
use crate::layer::LayerSink;
use crate::reference::ImageRef;
use crate::store::{ImageRecord, Store, now_rfc3339};
use crate::unpack::{self, UnpackLimits};

/// The `os` of an imported image whose entrypoint names no module (yet): a
/// WASI image whose module kind is found when it runs.
const UNKNOWN_KIND_OS: &str = "wasi";

/// How to make the image.
#[derive(Clone, Debug, Default)]
pub struct ImportSpec {
    /// `--change` instructions applied to an empty config.
    pub changes: Vec<String>,
    /// `-m`: the history comment; dockerd's `Imported from SOURCE` when
    /// `None`.
    pub message: Option<String>,
    /// Where the tar came from (`-` for a stream), for that comment.
    pub source: String,
    /// `--platform`'s OS (`wasip1`, `wasip2` or `wasi`): the `os` when the
    /// entrypoint names no module; a module of another kind is an error.
    pub os: Option<String>,
    /// The names to put on the image (none: a dangling image).
    pub names: Vec<ImageRef>,
}

/// Stores the rootfs tar read from `tar` as a one-layer image.
pub fn import(store: &Store, tar: impl Read, spec: ImportSpec) -> Result<ImageRecord> {
    let mut config = Config::default();
    apply_changes(&mut config, &spec.changes)?;
    if let Some(os) = &spec.os
        && !matches!(os.as_str(), "wasip1" | "wasip2" | "wasi")
    {
        return Err(ImageError::invalid(
            format!("platform {os:?}"),
            "wrun images are WebAssembly: the platform must be wasip1/wasm, wasip2/wasm or wasi/wasm",
        ));
    }
    let mut staging = store.staging()?;
    let what = "the rootfs tar";
    let stream = unpack::decompressed(tar, what)?;
    let mut sink = LayerSink::new(&staging, 1)?;
    let limit = UnpackLimits::default().max_bytes;
    let copied =
        io::copy(&mut LimitedReader::new(stream, limit, what), &mut sink).map_err(|source| {
            ImageError::Io {
                context: format!("reading {what}"),
                source,
            }
        })?;
    if copied == 0 {
        return Err(ImageError::invalid(
            what,
            "it is empty (give a tar file, or pipe one to `-`)",
        ));
    }
    let layer = sink.finish(&mut staging)?;

    let created = now_rfc3339();
    let comment = spec
        .message
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("Imported from {}", spec.source));
    let os = spec.os.clone().unwrap_or_else(|| UNKNOWN_KIND_OS.into());
    let image = ImageConfigurationBuilder::default()
        .architecture("wasm")
        .os(os.as_str())
        .created(created.clone())
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id.to_string()])
                .build()
                .map_err(|e| ImageError::invalid("config", e.to_string()))?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created)
                .comment(comment)
                .build()
                .map_err(|e| ImageError::invalid("config", e.to_string()))?,
        ])
        .build()
        .map_err(|e| ImageError::invalid("config", e.to_string()))?;
    let desc = Descriptor::new(MediaType::ImageLayerGzip, layer.size, layer.digest.to_oci());
    let digest = write_runnable_image(&mut staging, image, vec![desc])?;
    if let Some(asked) = &spec.os
        && asked != UNKNOWN_KIND_OS
    {
        let found = staging
            .manifest(&digest)
            .and_then(|m| staging.config(&crate::digest::Digest::from_oci(m.config().digest())?))?;
        if found.os().to_string() != *asked {
            return Err(ImageError::invalid(
                format!("platform {asked}/wasm"),
                format!(
                    "the entrypoint's module is a {} (os {})",
                    if found.os().to_string() == "wasip2" {
                        "component"
                    } else {
                        "core module"
                    },
                    found.os()
                ),
            ));
        }
    }
    let mut records = store.commit(staging, &[(digest, spec.names)])?;
    records
        .pop()
        .ok_or_else(|| ImageError::invalid("import", "the store stored no image"))
}
