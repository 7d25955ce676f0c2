//! Serde types of the Docker Engine API's image routes (v1.41+ field names),
//! so `wrun` output and the daemon's JSON read like Docker's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::empty::EmptyObject;

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    /// The full ID of the container a commit made the image from (empty
    /// for any other image).
    pub container: String,
    /// That container's config as inspect showed it at the commit (every
    /// field empty for any other image, as dockerd shows it). Described as
    /// a plain object: create's `ContainerConfig` requires an `Image`,
    /// which this one leaves empty for images no commit made.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub container_config: crate::containers::ContainerConfig,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    pub last_tag_time: Option<String>,
}

/// The OCI descriptor of the image's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct WasmModule {
    pub path: String,
    pub kind: String,
    pub digest: String,
    pub size: u64,
}

/// An element of `GET /images/{name}/history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// An element of `GET /images/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size: i64,
    pub shared_size: i64,
    /// The config's labels; `null` when it has none, as Docker answers.
    pub labels: Option<BTreeMap<String, String>>,
    pub containers: i64,
    /// The manifest's OCI descriptor (Docker API 1.48).
    pub descriptor: Option<Descriptor>,
    /// wrun's own: the config's `created` text as written (`Created` is 0
    /// both for no time and for 1970); absent when the config has none.
    #[serde(rename = "WrunCreated", skip_serializing_if = "Option::is_none")]
    pub wrun_created: Option<String>,
}

/// An element of `DELETE /images/{name}`'s answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageDeleteItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

impl ImageDeleteItem {
    /// The items for an image deleted with its `names`: each name
    /// untagged, then the image ID deleted, as Docker lists them.
    pub fn for_deleted(names: impl IntoIterator<Item = String>, id: String) -> Vec<Self> {
        names
            .into_iter()
            .map(|n| Self {
                untagged: Some(n),
                deleted: None,
            })
            .chain(std::iter::once(Self {
                untagged: None,
                deleted: Some(id),
            }))
            .collect()
    }
}

/// `POST /images/prune`'s answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ImagePruneResponse {
    pub images_deleted: Option<Vec<ImageDeleteItem>>,
    pub space_reclaimed: u64,
}

/// One line of `POST /images/load`'s answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct LoadMessage {
    pub stream: String,
}

impl LoadMessage {
    /// The line for a loaded image known by `name`.
    pub fn loaded(name: &str) -> Self {
        Self {
            stream: format!("Loaded image: {name}\n"),
        }
    }

    /// The line for a loaded image that has no name, by its ID.
    pub fn loaded_id(id: &str) -> Self {
        Self {
            stream: format!("Loaded image ID: {id}\n"),
        }
    }

    /// A note on what the load converted (`note: …`).
    pub fn note(text: &str) -> Self {
        Self {
            stream: format!("note: {text}\n"),
        }
    }

    /// Whether this is a note rather than a result line.
    pub fn is_note(&self) -> bool {
        self.stream.starts_with("note: ")
    }

    /// What a `Loaded image` line names (a name or an ID); `None` for any
    /// other line.
    pub fn loaded_image(line: &str) -> Option<&str> {
        let line = line.trim_end();
        line.strip_prefix("Loaded image: ")
            .or_else(|| line.strip_prefix("Loaded image ID: "))
    }
}

/// `POST /commit`'s answer (Docker's `IdResponse`): the new image's ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct CommitResponse {
    pub id: String,
}

/// One line of `POST /images/create?fromSrc=-`'s answer (an import): its
/// `status` is the new image's ID, as dockerd writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ImportMessage {
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::LoadMessage;

    #[test]
    fn loaded_lines_are_read_back() {
        let named = LoadMessage::loaded("hello:1.0");
        assert_eq!(named.stream, "Loaded image: hello:1.0\n");
        assert_eq!(LoadMessage::loaded_image(&named.stream), Some("hello:1.0"));
        let id = LoadMessage::loaded_id("sha256:ab");
        assert_eq!(LoadMessage::loaded_image(&id.stream), Some("sha256:ab"));
        let note = LoadMessage::note("converted");
        assert_eq!(LoadMessage::loaded_image(&note.stream), None);
        assert!(note.is_note() && !named.is_note());
    }
}

/// An element of `GET /images/search`'s array (dockerd's keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ImageSearchResult {
    /// The repository as pull takes it (`HOST[:PORT]/PATH`).
    pub name: String,
    /// wrun's: the repository's tags (`tags: 1.0, latest`), empty when the
    /// registry does not list them.
    pub description: String,
    /// Always 0: a registry keeps no stars.
    pub star_count: u64,
    /// Always false: no repository of a registry is official.
    pub is_official: bool,
    /// Always false.
    pub is_automated: bool,
}
