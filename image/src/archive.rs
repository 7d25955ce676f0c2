//! Image tars: `load` reads OCI layouts (wrun's, skopeo's, Docker's) and the
//! older `docker save` form, converting what it must; `save` writes an OCI
//! layout that also carries Docker's `manifest.json`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};

use oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageManifest, MediaType,
    RootFsBuilder,
};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::document::*;
use crate::error::{ImageError, IoContext, Result};
use crate::layer::LayerWriter;
use crate::reference::ImageRef;
use crate::store::{ImageRecord, MAX_DOCUMENT, Staging, Store};
use crate::wasm::ModuleKind;

/// Most entries an image tar may hold.
const MAX_ARCHIVE_ENTRIES: u64 = 200_000;
/// Deepest chain of nested indexes followed.
const MAX_INDEX_DEPTH: usize = 4;

/// What `load` stored and what it had to convert on the way.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Each stored image with the names this archive gave it.
    pub images: Vec<(ImageRecord, Vec<String>)>,
    /// One line per conversion or skipped name, for the user.
    pub notes: Vec<String>,
}

/// One element of Docker's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

enum Link {
    Blob(Digest),
    To(String),
}

/// Loads every image in an image tar (plain or gzip-compressed) into the
/// store. Nothing becomes visible unless the whole archive checks out.
pub fn load(store: &Store, reader: impl Read) -> Result<LoadReport> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let gz = buffered
        .fill_buf()
        .io_context(|| "reading the image archive".into())?
        .starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut staging = store.staging()?;
    let mut docs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut paths: HashMap<String, Link> = HashMap::new();
    let mut archive = tar::Archive::new(stream);
    let mut count = 0u64;
    let bad_tar = |e| ImageError::Io {
        context: "the image archive is not a valid tar (truncated or malformed)".into(),
        source: e,
    };
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        count += 1;
        if count > MAX_ARCHIVE_ENTRIES {
            return Err(ImageError::LimitExceeded {
                what: "the number of entries in the image archive".into(),
                limit: MAX_ARCHIVE_ENTRIES.to_string(),
            });
        }
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if raw_path.split('/').any(|c| c == "..") {
            return Err(ImageError::invalid(
                format!("archive entry {raw_path:?}"),
                "paths in an image archive must not contain '..'",
            ));
        }
        let path = normalize(&raw_path);
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = entry.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                        let base = path.rsplit_once('/').map_or("", |(d, _)| d);
                        normalize(&format!("{base}/{target}"))
                    } else {
                        normalize(&target)
                    };
                    paths.insert(path, Link::To(resolved));
                }
                continue;
            }
            _ => continue,
        }
        if matches!(
            path.as_str(),
            "oci-layout" | "index.json" | "manifest.json" | "repositories"
        ) {
            let mut buf = Vec::new();
            (&mut entry)
                .take(MAX_DOCUMENT + 1)
                .read_to_end(&mut buf)
                .map_err(bad_tar)?;
            if buf.len() as u64 > MAX_DOCUMENT {
                return Err(ImageError::LimitExceeded {
                    what: format!("{path} in the image archive"),
                    limit: format!("{MAX_DOCUMENT} bytes"),
                });
            }
            docs.insert(path, buf);
            continue;
        }
        let expected = match path.strip_prefix("blobs/sha256/") {
            Some(hex) => Some(Digest::from_hex(hex).map_err(|_| {
                ImageError::invalid(&path, "a blob file name must be 64 lowercase hex digits")
            })?),
            None => None,
        };
        let declared = entry.size();
        let mut limited = (&mut entry).take(declared);
        let (digest, size) = match staging.write_blob(&mut limited, expected.as_ref(), &path) {
            Err(ImageError::DigestMismatch { .. }) if limited.limit() > 0 => {
                return Err(truncated(&path));
            }
            other => other?,
        };
        if size != declared {
            return Err(truncated(&path));
        }
        paths.insert(path, Link::Blob(digest));
    }

    let mut report = LoadReport::default();
    let mut found: Vec<(Digest, Vec<ImageRef>)> = Vec::new();
    if let Some(index) = docs.get("index.json") {
        if let Some(layout) = docs.get("oci-layout") {
            let v: serde_json::Value =
                serde_json::from_slice(layout).map_err(|source| ImageError::Json {
                    what: "oci-layout".into(),
                    source,
                })?;
            let version = v
                .get("imageLayoutVersion")
                .and_then(|x| x.as_str())
                .unwrap_or("");
            if !version.starts_with("1.") {
                return Err(ImageError::invalid(
                    "oci-layout",
                    format!("unsupported imageLayoutVersion {version:?}"),
                ));
            }
        }
        let index = parse_index(index, None, "index.json")?;
        for desc in index.manifests() {
            let names = descriptor_names(desc, &mut report.notes);
            let (digest, manifest) = resolve_descriptor(&staging, desc, 0)?;
            let digest = normalize_image(&mut staging, digest, manifest, &mut report.notes)?;
            found.push((digest, names));
        }
    } else if let Some(list) = docs.get("manifest.json") {
        let entries: Vec<DockerManifestEntry> =
            serde_json::from_slice(list).map_err(|source| ImageError::Json {
                what: "manifest.json".into(),
                source,
            })?;
        for entry in entries {
            let (digest, manifest) = convert_docker_entry(&mut staging, &paths, &entry)?;
            report
                .notes
                .push("converted the docker-save manifest.json entry to an OCI manifest".into());
            let digest = normalize_image(&mut staging, digest, manifest, &mut report.notes)?;
            let mut names = Vec::new();
            for tag in entry.repo_tags.unwrap_or_default() {
                match tag.parse::<ImageRef>() {
                    Ok(r) => names.push(r.tagged()),
                    Err(e) => report.notes.push(format!("skipped the name {tag:?}: {e}")),
                }
            }
            found.push((digest, names));
        }
    } else {
        return Err(ImageError::invalid(
            "the image archive",
            "no index.json or manifest.json found (is it an image tar from `wrun save`, `docker save` or `skopeo copy … oci-archive:`?)",
        ));
    }
    if found.is_empty() {
        return Err(ImageError::invalid(
            "the image archive",
            "it holds no image",
        ));
    }
    // One commit for all images: a failure in any leaves the store as it was.
    let mut merged: BTreeMap<Digest, Vec<ImageRef>> = BTreeMap::new();
    let mut order = Vec::new();
    for (d, names) in found {
        if !merged.contains_key(&d) {
            order.push(d);
        }
        merged.entry(d).or_default().extend(names);
    }
    let batch: Vec<(Digest, Vec<ImageRef>)> = order
        .into_iter()
        .map(|d| {
            let names = merged.remove(&d).unwrap_or_default();
            (d, names)
        })
        .collect();
    let records = store.commit(staging, &batch)?;
    report.images = records
        .into_iter()
        .zip(batch)
        .map(|(record, (_, names))| (record, names.iter().map(ImageRef::name).collect()))
        .collect();
    Ok(report)
}

/// Finds, without loading anything, an image of this tar that the store
/// already holds: reads `index.json` and the (small) manifests it names by
/// seeking past blob contents. `None` means "load it": the tar is not an
/// OCI layout, or the store lacks its image. Safe against lying tars: only
/// the store's own, verified copy of the named digest is ever used.
pub fn find_stored<R: Read + std::io::Seek>(store: &Store, reader: R) -> Option<ImageRecord> {
    let mut archive = tar::Archive::new(reader);
    let mut index = None;
    let mut count = 0u64;
    for entry in archive.entries_with_seek().ok()? {
        let mut entry = entry.ok()?;
        count += 1;
        if count > MAX_ARCHIVE_ENTRIES {
            return None;
        }
        let path = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        if path == "index.json" && entry.size() <= MAX_DOCUMENT {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).ok()?;
            index = Some(buf);
        }
    }
    let index = parse_index(&index?, None, "index.json").ok()?;
    let images = store.images().ok()?;
    let mut found = None;
    for desc in index.manifests() {
        let digest = Digest::from_oci(desc.digest()).ok()?;
        let record = images.iter().find(|r| r.digest == digest)?;
        match &found {
            Some(f) if f != record => return None, // several images: load and let the caller choose
            _ => found = Some(record.clone()),
        }
    }
    found
}

fn truncated(path: &str) -> ImageError {
    ImageError::invalid(
        "the image archive",
        format!("it is truncated: {path} ends early (was the file cut short while copying?)"),
    )
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn resolve_path(paths: &HashMap<String, Link>, path: &str) -> Result<Digest> {
    let mut current = normalize(path);
    for _ in 0..8 {
        match paths.get(&current) {
            Some(Link::Blob(d)) => return Ok(*d),
            Some(Link::To(next)) => current = next.clone(),
            None => break,
        }
    }
    Err(ImageError::invalid(
        "manifest.json",
        format!("it refers to {path}, which is not in the archive"),
    ))
}

/// The names an index entry carries: the containerd annotation (a full
/// reference) or `ref.name` when that is a full reference too.
fn descriptor_names(desc: &Descriptor, notes: &mut Vec<String>) -> Vec<ImageRef> {
    let Some(ann) = desc.annotations() else {
        return Vec::new();
    };
    let candidate = ann.get(ANNOTATION_CONTAINERD_NAME).or_else(|| {
        ann.get(ANNOTATION_REF_NAME)
            .filter(|n| n.contains([':', '/']))
    });
    match candidate {
        Some(name) => match name.parse::<ImageRef>() {
            Ok(r) => vec![r.tagged()],
            Err(e) => {
                notes.push(format!("skipped the name {name:?}: {e}"));
                Vec::new()
            }
        },
        None => Vec::new(),
    }
}

fn check_descriptor(staging: &Staging<'_>, desc: &Descriptor, what: &str) -> Result<Digest> {
    let digest = Digest::from_oci(desc.digest())?;
    let size = staging.blob_size(&digest).ok_or_else(|| {
        ImageError::invalid(
            what,
            format!("it refers to {digest}, which is not in the archive"),
        )
    })?;
    if size != desc.size() {
        return Err(ImageError::SizeMismatch {
            what: format!("blob {digest}"),
            expected: desc.size(),
            actual: size,
        });
    }
    Ok(digest)
}

/// Follows an index entry down to one image manifest, choosing the wasm
/// platform in multi-platform indexes.
fn resolve_descriptor(
    staging: &Staging<'_>,
    desc: &Descriptor,
    depth: usize,
) -> Result<(Digest, ImageManifest)> {
    let digest = check_descriptor(staging, desc, "index.json")?;
    let media = desc.media_type().to_string();
    let what = format!("manifest {digest}");
    match media.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let bytes = staging.read_blob(&digest, MAX_DOCUMENT)?;
            Ok((digest, parse_manifest(&bytes, Some(&media), &what)?))
        }
        OCI_INDEX | DOCKER_LIST if depth < MAX_INDEX_DEPTH => {
            let bytes = staging.read_blob(&digest, MAX_DOCUMENT)?;
            let index = parse_index(&bytes, Some(&media), &format!("index {digest}"))?;
            let platforms: Vec<String> = index
                .manifests()
                .iter()
                .map(|m| match m.platform() {
                    Some(p) => format!("{}/{}", p.os(), p.architecture()),
                    None => "unknown".into(),
                })
                .collect();
            let chosen = index
                .manifests()
                .iter()
                .find(|m| {
                    m.platform()
                        .as_ref()
                        .is_some_and(|p| p.architecture().to_string() == "wasm")
                })
                .or_else(|| (index.manifests().len() == 1).then(|| &index.manifests()[0]));
            match chosen {
                Some(child) => resolve_descriptor(staging, child, depth + 1),
                None => Err(ImageError::NotWasm {
                    os: platforms.join(","),
                    arch: "(multi-platform index without a wasm entry)".into(),
                }),
            }
        }
        OCI_INDEX | DOCKER_LIST => Err(ImageError::LimitExceeded {
            what: "nested image indexes".into(),
            limit: format!("{MAX_INDEX_DEPTH} levels"),
        }),
        other => Err(ImageError::invalid(
            what,
            format!("unsupported media type {other:?}"),
        )),
    }
}

fn convert_docker_entry(
    staging: &mut Staging<'_>,
    paths: &HashMap<String, Link>,
    entry: &DockerManifestEntry,
) -> Result<(Digest, ImageManifest)> {
    let config_digest = resolve_path(paths, &entry.config)?;
    // Parsed only to refuse a config that is not one before converting.
    staging.config(&config_digest)?;
    let mut layers = Vec::new();
    for layer_path in &entry.layers {
        let d = resolve_path(paths, layer_path)?;
        let mut head = [0u8; 2];
        let n = staging
            .open_blob(&d)?
            .read(&mut head)
            .io_context(|| format!("reading {layer_path}"))?;
        let media = if n == 2 && head == [0x1f, 0x8b] {
            MediaType::ImageLayerGzip
        } else {
            MediaType::ImageLayer
        };
        let size = staging.blob_size(&d).unwrap_or(0);
        layers.push(Descriptor::new(media, size, d.to_oci()));
    }
    // Keep the config blob exactly as Docker wrote it: the image ID stays.
    let config_size = staging.blob_size(&config_digest).unwrap_or(0);
    let manifest = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            config_digest.to_oci(),
        ))
        .layers(layers)
        .build()
        .map_err(|e| ImageError::invalid("manifest.json", e.to_string()))?;
    let digest = staging.write_blob_bytes(&canonical_json(&manifest), "the converted manifest")?;
    Ok((digest, manifest))
}

/// Checks an image is a runnable wasm image and rewrites the forms wrun
/// accepts but does not store as-is (wasm OCI artifacts, `os: "wasi"`).
fn normalize_image(
    staging: &mut Staging<'_>,
    digest: Digest,
    manifest: ImageManifest,
    notes: &mut Vec<String>,
) -> Result<Digest> {
    let config_desc = manifest.config();
    let config_digest = check_descriptor(staging, config_desc, &format!("manifest {digest}"))?;
    for layer in manifest.layers() {
        check_descriptor(staging, layer, &format!("manifest {digest}"))?;
    }
    if config_desc.media_type().to_string() == WASM_ARTIFACT_CONFIG {
        let converted = convert_artifact(staging, &manifest)?;
        notes.push(format!(
            "converted the wasm OCI artifact {} to a runnable image (module at /{})",
            digest.short(),
            converted.1
        ));
        return Ok(converted.0);
    }
    let config = staging.config(&config_digest)?;
    if !is_wasm_platform(&config) {
        return Err(ImageError::NotWasm {
            os: config.os().to_string(),
            arch: config.architecture().to_string(),
        });
    }
    if config.os().to_string() != "wasi" {
        return Ok(digest);
    }
    let chain = staging.prepare_snapshot(&manifest, &config)?;
    let kind = staging
        .module_info(&config, chain.as_ref())?
        .map_or(ModuleKind::Core, |m| m.kind);
    let mut config = config;
    config.set_os(kind.oci_os().into());
    let digest = staging.write_image(
        &config,
        manifest.layers().clone(),
        manifest.annotations().clone(),
    )?;
    notes.push(format!(
        "converted os \"wasi\" to \"{}\" ({}), new image ID {}",
        kind.oci_os(),
        kind.describe(),
        Digest::of(&canonical_json(&config)).short()
    ));
    Ok(digest)
}

/// Turns a CNCF wasm artifact (one `application/wasm` layer holding the
/// module) into a compat image: the module in a rootfs layer, Entrypoint set.
fn convert_artifact(
    staging: &mut Staging<'_>,
    manifest: &ImageManifest,
) -> Result<(Digest, String)> {
    let [layer] = manifest.layers().as_slice() else {
        return Err(ImageError::invalid(
            "wasm artifact",
            format!(
                "expected exactly one layer, found {}",
                manifest.layers().len()
            ),
        ));
    };
    let media = layer.media_type().to_string();
    if !matches!(
        media.as_str(),
        WASM_LAYER | WASM_COMPONENT_LAYER | "application/vnd.wasm.content.layer.v1+wasm"
    ) {
        return Err(ImageError::invalid(
            "wasm artifact",
            format!("unsupported layer media type {media:?}"),
        ));
    }
    let module_digest = Digest::from_oci(layer.digest())?;
    let mut header = [0u8; 8];
    let n = staging
        .open_blob(&module_digest)?
        .read(&mut header)
        .io_context(|| "reading the wasm layer".into())?;
    let kind = ModuleKind::sniff(&header[..n]).ok_or_else(|| {
        ImageError::invalid("wasm artifact", "its layer is not a WebAssembly binary")
    })?;
    let name = layer
        .annotations()
        .as_ref()
        .and_then(|a| a.get("org.opencontainers.image.title"))
        .filter(|t| {
            t.ends_with(".wasm")
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !t.starts_with('.')
        })
        .cloned()
        .unwrap_or_else(|| "app.wasm".to_string());
    let size = layer.size();
    let mut writer = LayerWriter::new(staging, 0)?;
    writer.add_file(&name, 0o755, size, staging.open_blob(&module_digest)?)?;
    let built = writer.finish(staging)?;
    let config = ImageConfigurationBuilder::default()
        .architecture("wasm")
        .os(kind.oci_os())
        .config(
            ConfigBuilder::default()
                .entrypoint(vec![format!("/{name}")])
                .build()
                .map_err(|e| ImageError::invalid("config", e.to_string()))?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![built.diff_id.to_string()])
                .build()
                .map_err(|e| ImageError::invalid("config", e.to_string()))?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created_by(format!(
                    "wrun load: wasm OCI artifact layer {module_digest} as /{name}"
                ))
                .build()
                .map_err(|e| ImageError::invalid("config", e.to_string()))?,
        ])
        .build()
        .map_err(|e| ImageError::invalid("config", e.to_string()))?;
    let desc = Descriptor::new(MediaType::ImageLayerGzip, built.size, built.digest.to_oci());
    let digest = staging.write_image(&config, vec![desc], None)?;
    Ok((digest, name))
}

/// One image to save and the names to write for it.
pub struct SaveItem {
    pub record: ImageRecord,
    pub names: Vec<String>,
}

/// Writes an OCI image layout tar holding `items`, with Docker's
/// `manifest.json` beside `index.json`. Entries are in a fixed order with
/// modification time `mtime`, so the same images give the same bytes.
pub fn save(store: &Store, items: &[SaveItem], out: impl Write, mtime: u64) -> Result<()> {
    let mut index_entries = Vec::new();
    let mut docker_entries = Vec::new();
    let mut blobs: BTreeMap<String, Digest> = BTreeMap::new();
    for item in items {
        let manifest = store.manifest(&item.record)?;
        let manifest_size = std::fs::metadata(store.blob_path(&item.record.digest))
            .io_context(|| format!("reading manifest {}", item.record.digest))?
            .len();
        let media = if manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .as_deref()
            == Some(DOCKER_MANIFEST)
        {
            MediaType::Other(DOCKER_MANIFEST.into())
        } else {
            MediaType::ImageManifest
        };
        blobs.insert(item.record.digest.hex(), item.record.digest);
        blobs.insert(item.record.id.hex(), item.record.id);
        let mut layer_paths = Vec::new();
        for l in manifest.layers() {
            let d = Digest::from_oci(l.digest())?;
            blobs.insert(d.hex(), d);
            layer_paths.push(format!("blobs/sha256/{}", d.hex()));
        }
        let annotated = |name: Option<&String>| {
            let mut desc =
                Descriptor::new(media.clone(), manifest_size, item.record.digest.to_oci());
            if let Some(n) = name {
                let tag = n.rsplit_once(':').map_or(n.as_str(), |(_, t)| t);
                desc.set_annotations(Some(HashMap::from([
                    (ANNOTATION_CONTAINERD_NAME.to_string(), n.clone()),
                    (ANNOTATION_REF_NAME.to_string(), tag.to_string()),
                ])));
            }
            desc
        };
        if item.names.is_empty() {
            index_entries.push(annotated(None));
        } else {
            index_entries.extend(item.names.iter().map(|n| annotated(Some(n))));
        }
        docker_entries.push(DockerManifestEntry {
            config: format!("blobs/sha256/{}", item.record.id.hex()),
            repo_tags: Some(item.names.clone()),
            layers: layer_paths,
        });
    }
    let index = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_entries)
        .build()
        .map_err(|e| ImageError::invalid("index.json", e.to_string()))?;

    let mut tar = tar::Builder::new(out);
    let header = |kind: tar::EntryType, size: u64, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let write_err = |what: &str| format!("writing {what} to the image tar");
    let small: [(&str, Vec<u8>); 3] = [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", canonical_json(&index)),
        (
            "manifest.json",
            serde_json::to_vec(&docker_entries).map_err(|source| ImageError::Json {
                what: "manifest.json".into(),
                source,
            })?,
        ),
    ];
    for (name, bytes) in small {
        let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
        tar.append_data(&mut h, name, &bytes[..])
            .io_context(|| write_err(name))?;
    }
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        tar.append_data(&mut h, dir, std::io::empty())
            .io_context(|| write_err(dir))?;
    }
    for (hex, digest) in &blobs {
        let file = store.open_blob(digest)?;
        let size = file
            .metadata()
            .io_context(|| format!("reading blob {digest}"))?
            .len();
        let mut h = header(tar::EntryType::Regular, size, 0o644);
        let name = format!("blobs/sha256/{hex}");
        tar.append_data(&mut h, &name, BufReader::with_capacity(256 * 1024, file))
            .io_context(|| write_err(&name))?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .io_context(|| "finishing the image tar".into())?;
    Ok(())
}
