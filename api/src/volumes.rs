//! Serde types of the Docker Engine API's volume routes and of
//! `GET /system/df` (whose new part is the volumes' usage), with Docker's
//! rule for local volume names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::containers::ContainerSummary;
use crate::empty::EmptyObject;
use crate::images::ImageSummary;

/// The one volume driver: a directory in the store.
pub const LOCAL_DRIVER: &str = "local";

/// `GET /volumes/{name}`, an element of `GET /volumes` and of `/system/df`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    /// RFC 3339, to the second, as dockerd writes it.
    pub created_at: String,
    pub driver: String,
    /// `null` when the volume has none, as Docker answers.
    pub labels: Option<BTreeMap<String, String>>,
    /// The host directory the volume's data is in.
    pub mountpoint: String,
    pub name: String,
    pub options: Option<BTreeMap<String, String>>,
    pub scope: String,
    /// Only in `/system/df`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<VolumeUsage>,
}

/// A volume's `UsageData` in `/system/df`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeUsage {
    /// Bytes of the files in the volume.
    pub size: i64,
    /// Instances that mount it, stopped ones too.
    pub ref_count: i64,
}

/// The body of `POST /volumes/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreateRequest {
    /// Empty: a new anonymous volume (64 hex digits).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^([a-zA-Z0-9][a-zA-Z0-9_.-]+)?$")
    )]
    pub name: String,
    /// Empty or `local`.
    pub driver: String,
    /// None: a wrun volume is a directory of the store, nothing is mounted.
    #[cfg_attr(feature = "openapi", schema(schema_with = no_driver_options))]
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// The schema of [`VolumeCreateRequest::driver_opts`]: null or `{}`.
#[cfg(feature = "openapi")]
fn no_driver_options() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .max_properties(Some(0))
        .description(Some(
            "None: a wrun volume is a directory of the store, nothing is mounted.",
        ))
        .build()
}

/// `GET /volumes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeListResponse {
    pub volumes: Vec<Volume>,
    pub warnings: Option<Vec<String>>,
}

/// `POST /volumes/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumePruneResponse {
    pub volumes_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

/// `GET /system/df`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct DiskUsage {
    /// Bytes of the image layers in the store, each counted once.
    pub layers_size: i64,
    pub images: Vec<ImageSummary>,
    pub containers: Vec<ContainerSummary>,
    pub volumes: Vec<Volume>,
    /// `null`: wrun keeps no build cache (dockerd 20.10 answers `null` too
    /// when it has none).
    pub build_cache: Option<Vec<EmptyObject>>,
    pub builder_size: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_dockers_keys() {
        let v = serde_json::to_value(Volume::default()).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "CreatedAt",
                "Driver",
                "Labels",
                "Mountpoint",
                "Name",
                "Options",
                "Scope"
            ]
        );
        let df = serde_json::to_value(DiskUsage::default()).unwrap();
        assert!(df["BuildCache"].is_null());
        assert!(df["Volumes"].is_array());
        let usage = serde_json::to_value(VolumeUsage::default()).unwrap();
        assert_eq!(usage, serde_json::json!({"Size": 0, "RefCount": 0}));
    }
}
