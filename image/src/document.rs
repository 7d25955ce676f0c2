//! Parsing and checking OCI JSON documents (manifest, index, config) from
//! untrusted bytes, and writing them canonically so digests are reproducible.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Serialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{ImageError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// The CNCF wasm OCI artifact config and layer types.
pub const WASM_ARTIFACT_CONFIG: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER: &str = "application/wasm";
pub const WASM_COMPONENT_LAYER: &str =
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// Index annotations that carry an image's name.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Serializes with object keys sorted (serde_json's map is a BTreeMap), so
/// the same document always has the same bytes and digest.
pub fn canonical_json<T: Serialize>(doc: &T) -> Vec<u8> {
    let value = serde_json::to_value(doc).expect("OCI documents always serialize to JSON");
    serde_json::to_vec(&value).expect("a JSON value always serializes")
}

fn parse_object(bytes: &[u8], what: &str) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ImageError::invalid(what, "not a JSON object")),
        Err(source) => Err(ImageError::Json {
            what: what.to_string(),
            source,
        }),
    }
}

/// The document's own `mediaType`, when present, must be one of `allowed`
/// and agree with the descriptor that led to it.
fn check_media_type(
    map: &serde_json::Map<String, Value>,
    allowed: [&str; 2],
    kind: &str,
    descriptor_type: Option<&str>,
    what: &str,
) -> Result<()> {
    let Some(own) = map.get("mediaType").and_then(Value::as_str) else {
        return Ok(());
    };
    if !allowed.contains(&own) {
        return Err(ImageError::invalid(
            what,
            format!("media type {own:?} is not {kind}"),
        ));
    }
    match descriptor_type {
        Some(desc) if desc != own => Err(ImageError::invalid(
            what,
            format!("the document says media type {own:?} but its descriptor says {desc:?}"),
        )),
        _ => Ok(()),
    }
}

/// Parses an image manifest, refusing documents that are also indexes or
/// whose media type disagrees with the descriptor that led to them
/// (containerd CVE-2021-41190).
pub fn parse_manifest(
    bytes: &[u8],
    descriptor_type: Option<&str>,
    what: &str,
) -> Result<ImageManifest> {
    let map = parse_object(bytes, what)?;
    if map.contains_key("manifests") {
        return Err(ImageError::invalid(
            what,
            "a manifest must not also have \"manifests\" (ambiguous manifest/index)",
        ));
    }
    if map.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(ImageError::invalid(what, "schemaVersion must be 2"));
    }
    check_media_type(
        &map,
        [OCI_MANIFEST, DOCKER_MANIFEST],
        "an image manifest",
        descriptor_type,
        what,
    )?;
    serde_json::from_value(Value::Object(map)).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })
}

/// Parses an image index with the same ambiguity checks as manifests.
pub fn parse_index(bytes: &[u8], descriptor_type: Option<&str>, what: &str) -> Result<ImageIndex> {
    let map = parse_object(bytes, what)?;
    if map.contains_key("layers") || map.contains_key("config") {
        return Err(ImageError::invalid(
            what,
            "an index must not also have \"layers\" or \"config\" (ambiguous manifest/index)",
        ));
    }
    check_media_type(
        &map,
        [OCI_INDEX, DOCKER_LIST],
        "an image index",
        descriptor_type,
        what,
    )?;
    serde_json::from_value(Value::Object(map)).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })
}

pub fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })
}

/// The config's diff_ids as checked digests.
pub fn diff_ids(config: &ImageConfiguration) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>())
        .collect()
}

/// Accepts the layer media types wrun can unpack; says clearly which it
/// cannot.
pub fn check_layer_media_type(desc: &Descriptor) -> Result<()> {
    let t = desc.media_type().to_string();
    match t.as_str() {
        OCI_LAYER_TAR | OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_LAYER_TAR => Ok(()),
        other => Err(ImageError::invalid(
            format!("layer {}", desc.digest()),
            format!("unsupported layer media type {other:?} (wrun reads tar and tar+gzip layers)"),
        )),
    }
}

/// The rootfs path of the module the image runs: the first Entrypoint
/// element, or the first Cmd element when there is no Entrypoint.
pub fn entrypoint_module(config: &ImageConfiguration) -> Option<String> {
    let c = config.config().as_ref()?;
    let first = c
        .entrypoint()
        .as_ref()
        .and_then(|e| e.first())
        .or_else(|| c.cmd().as_ref().and_then(|e| e.first()))?;
    Some(if first.starts_with('/') {
        first.clone()
    } else {
        format!("/{first}")
    })
}

/// True when the config says this is a WebAssembly image.
pub fn is_wasm_platform(config: &ImageConfiguration) -> bool {
    config.architecture().to_string() == "wasm"
        && matches!(
            config.os().to_string().as_str(),
            "wasip1" | "wasip2" | "wasi"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_that_is_also_an_index_is_rejected() {
        let doc = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","size":1},
            "layers":[],"manifests":[]}"#;
        let err = parse_manifest(doc, None, "m").unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
    }

    #[test]
    fn media_type_disagreeing_with_descriptor_is_rejected() {
        let doc = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","size":1},
            "layers":[]}"#;
        assert!(parse_manifest(doc, Some(OCI_MANIFEST), "m").is_ok());
        let err = parse_manifest(doc, Some(DOCKER_MANIFEST), "m").unwrap_err();
        assert!(err.to_string().contains("descriptor says"), "{err}");
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}"#;
        assert!(parse_index(index, None, "i").is_err());
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut m = std::collections::HashMap::new();
        for k in ["zeta", "alpha", "mid"] {
            m.insert(k.to_string(), 1);
        }
        assert_eq!(canonical_json(&m), br#"{"alpha":1,"mid":1,"zeta":1}"#);
    }
}
