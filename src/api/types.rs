//! Serde types that follow the Docker Engine API (v1.41+) field names, so
//! `wrun` output and the daemon's JSON read like Docker's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: ImageConfig,
    pub architecture: String,
    pub os: String,
    pub size: u64,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: ImageMetadata,
    pub descriptor: Descriptor,
    /// wrun's addition: the module the image runs.
    pub wasm: Option<WasmModule>,
}

/// The container defaults an image carries (Docker's `ContainerConfig` subset
/// that images use).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    pub user: String,
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub volumes: Option<BTreeMap<String, EmptyObject>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// Docker writes `{}` as the value of port and volume sets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EmptyObject {}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    pub last_tag_time: Option<String>,
}

/// The OCI descriptor of the image's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WasmModule {
    pub path: String,
    pub kind: String,
    pub digest: String,
    pub size: u64,
}

/// An element of `GET /images/{name}/history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub comment: String,
}
