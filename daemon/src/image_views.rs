//! The image service's views: the Docker-shaped image documents built from
//! store records, the same for the daemon's routes and the CLI's local store.

use std::collections::BTreeMap;

use anyhow::Context;
use wrun_image::{ImageRecord, Store};

use wrun_api::images::{
    Descriptor, EmptyObject, HistoryItem, ImageConfig, ImageInspect, ImageMetadata, ImageSummary,
    RootFs, WasmModule,
};

fn unix(rfc3339: Option<&str>) -> i64 {
    wrun_api::time::unix_seconds(rfc3339).unwrap_or(0)
}

fn repo_digests(record: &ImageRecord) -> Vec<String> {
    let mut repos: Vec<String> = record
        .names
        .iter()
        .filter_map(|n| {
            n.rsplit_once(':')
                .map(|(r, _)| format!("{r}@{}", record.digest))
        })
        .collect();
    repos.dedup();
    repos
}

/// The stored image `name` names; Docker's 404 `No such image: NAME`
/// when none does.
pub fn find(store: &Store, name: &str) -> Result<ImageRecord, crate::DaemonError> {
    store.find(name).map_err(|e| {
        if e.is_not_found() {
            crate::DaemonError::no_such_image(name)
        } else {
            crate::DaemonError::from(anyhow::Error::from(e))
        }
    })
}

pub fn inspect(store: &Store, record: &ImageRecord) -> anyhow::Result<ImageInspect> {
    let config = store
        .config(record)
        .with_context(|| format!("reading the config of image {}", record.id.short()))?;
    let c = config.config().clone().unwrap_or_default();
    let set = |v: &Option<Vec<String>>| {
        v.as_ref().map(|items| {
            items
                .iter()
                .map(|i| (i.clone(), EmptyObject {}))
                .collect::<BTreeMap<_, _>>()
        })
    };
    Ok(ImageInspect {
        id: record.id.to_string(),
        repo_tags: record.names.clone(),
        repo_digests: repo_digests(record),
        parent: String::new(),
        comment: String::new(),
        created: record.created.clone().unwrap_or_default(),
        docker_version: String::new(),
        author: config.author().clone().unwrap_or_default(),
        config: ImageConfig {
            user: c.user().clone().unwrap_or_default(),
            exposed_ports: set(c.exposed_ports()),
            env: c.env().clone(),
            cmd: c.cmd().clone(),
            volumes: set(c.volumes()),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone(),
            labels: c.labels().clone().map(|l| l.into_iter().collect()),
        },
        architecture: record.architecture.clone(),
        os: record.os.clone(),
        size: record.size,
        root_fs: RootFs {
            kind: "layers".into(),
            layers: config.rootfs().diff_ids().clone(),
        },
        metadata: ImageMetadata {
            last_tag_time: record.last_tagged.clone(),
        },
        descriptor: manifest_descriptor(store, record),
        wasm: record.module.as_ref().map(|m| WasmModule {
            path: m.path.clone(),
            kind: m.kind.oci_os().into(),
            digest: m.digest.to_string(),
            size: m.size,
        }),
    })
}

/// Newest first, as `docker history` lists; layer sizes come from the
/// snapshot, entries without a layer are 0 bytes.
pub fn history(store: &Store, record: &ImageRecord) -> anyhow::Result<Vec<HistoryItem>> {
    let config = store
        .config(record)
        .with_context(|| format!("reading the config of image {}", record.id.short()))?;
    let sizes: Vec<u64> = match record.chain_id {
        Some(chain) => store
            .snapshot_meta(&chain)
            .map(|m| m.layers.iter().map(|l| l.size).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut layer = 0;
    let mut items = Vec::new();
    for h in config.history().clone().unwrap_or_default() {
        let empty = h.empty_layer().unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = sizes.get(layer).copied().unwrap_or(0);
            layer += 1;
            s
        };
        items.push(HistoryItem {
            id: "<missing>".into(),
            created: unix(h.created().as_deref()),
            created_by: h.created_by().clone().unwrap_or_default(),
            tags: Vec::new(),
            size,
            comment: h.comment().clone().unwrap_or_default(),
        });
    }
    items.reverse();
    if let Some(top) = items.first_mut() {
        top.id = record.id.to_string();
        top.tags = record.names.clone();
    }
    Ok(items)
}

/// An element of `GET /images/json`.
pub fn summary(store: &Store, record: &ImageRecord) -> ImageSummary {
    ImageSummary {
        id: record.id.to_string(),
        parent_id: String::new(),
        repo_tags: record.names.clone(),
        repo_digests: repo_digests(record),
        created: unix(record.created.as_deref()),
        size: i64::try_from(record.size).unwrap_or(i64::MAX),
        shared_size: -1,
        labels: BTreeMap::new(),
        containers: -1,
        descriptor: Some(manifest_descriptor(store, record)),
        wrun_created: record.created.clone(),
    }
}

/// The OCI descriptor of an image's manifest.
fn manifest_descriptor(store: &Store, record: &ImageRecord) -> Descriptor {
    Descriptor {
        media_type: wrun_image::document::OCI_MANIFEST.into(),
        digest: record.digest.to_string(),
        size: std::fs::metadata(store.blob_path(&record.digest))
            .map(|m| m.len())
            .unwrap_or(0),
    }
}
