//! Serde types of the Docker Engine API's container routes (v1.41+ field
//! names), shared by the daemon that serves them and the CLI that calls it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::empty::EmptyObject;

/// Docker's `StrSlice`: a JSON array of strings, or one string.
fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(vec![s]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}

/// Go's decoder leaves a field as it was for a JSON `null`, and clients
/// send `null` for fields they leave unset: read it as the default.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The schema of a [`str_slice`] field: an array of strings, one string, or
/// null.
#[cfg(feature = "openapi")]
fn str_slice_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// `StopSignal`: empty or null (the image's or TERM), a signal name of
/// dockerd's table with or without `SIG`, or a number: what
/// [`crate::signal::parse`] takes (dockerd refuses anything else with 400).
#[cfg(feature = "openapi")]
fn stop_signal_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(crate::signal::SCHEMA_PATTERN))
        .build()
}

/// An int64 that is 0 or at least `min` (null too when `nullable`): a
/// limit dockerd refuses with 400 when set below its minimum.
#[cfg(feature = "openapi")]
fn zero_or_at_least(min: i64, nullable: bool) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    use utoipa::openapi::{KnownFormat, SchemaFormat};
    let mut one_of = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([0])),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(min)),
        );
    if nullable {
        one_of = one_of.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    one_of.build().into()
}

/// `HostConfig.Memory`: 0 (no limit), null, or at least 6 MiB.
#[cfg(feature = "openapi")]
fn memory_schema() -> utoipa::openapi::schema::Schema {
    zero_or_at_least(6 * 1024 * 1024, true)
}

/// A `Healthcheck` duration in nanoseconds: 0 (inherit) or at least 1 ms.
#[cfg(feature = "openapi")]
fn health_duration_schema() -> utoipa::openapi::schema::Schema {
    zero_or_at_least(1_000_000, false)
}

/// `Config`: what runs, as in `POST /containers/create` and inspect.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub hostname: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub domainname: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub user: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub attach_stdin: bool,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub attach_stdout: bool,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub attach_stderr: bool,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub tty: bool,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub open_stdin: bool,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_slice")]
    #[cfg_attr(feature = "openapi", schema(schema_with = str_slice_schema))]
    pub cmd: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    #[cfg_attr(feature = "openapi", schema(required = true, min_length = 1))]
    pub image: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub working_dir: String,
    #[serde(deserialize_with = "str_slice")]
    #[cfg_attr(feature = "openapi", schema(schema_with = str_slice_schema))]
    pub entrypoint: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    /// `{"80/tcp": {}}`: ports the instance listens on (published only
    /// through `HostConfig.PortBindings` or `PublishAllPorts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    /// `{"/data": {}}`: anonymous volumes (the image's `VOLUME`s, `-v /data`).
    /// wrun has none: the user's are refused, the image's are shown.
    pub volumes: Option<BTreeMap<String, EmptyObject>>,
    /// Image metadata for builds; never used by a container.
    pub on_build: Option<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub network_disabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub mac_address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(schema_with = stop_signal_schema))]
    pub stop_signal: String,
    /// Seconds `stop` waits before killing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub args_escaped: bool,
}

/// `Config.Healthcheck` (`--health-cmd` and friends).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` off, `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub test: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(schema_with = health_duration_schema))]
    pub interval: i64,
    #[cfg_attr(feature = "openapi", schema(schema_with = health_duration_schema))]
    pub timeout: i64,
    #[cfg_attr(feature = "openapi", schema(schema_with = health_duration_schema))]
    pub start_period: i64,
    pub start_interval: i64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub retries: i64,
}

impl HealthConfig {
    /// Whether this asks for a check to run (not `[]` or `["NONE"]`).
    pub fn checks(&self) -> bool {
        self.test
            .as_deref()
            .is_some_and(|t| !t.is_empty() && t[0] != "NONE")
    }
}

/// `HostConfig`: what the instance is granted. wrun applies `Binds`,
/// `Mounts` (bind, and tmpfs at `/tmp`), `Tmpfs`, `AutoRemove`, `Memory`,
/// `RestartPolicy`, `LogConfig`, `NetworkMode`, `PortBindings`,
/// `PublishAllPorts` and its own `Wasm*`/`WrunAllow*`/`WrunHttp*` fields;
/// each other Docker field is refused or discarded with a warning when set
/// (`wrun_daemon::launch::adapt`, listed in docs/daemon.md), never ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `HOST:GUEST[:ro|rw]`, HOST absolute.
    pub binds: Option<Vec<String>>,
    /// The docker client's own (`--cidfile`); not the daemon's business.
    #[serde(rename = "ContainerIDFile")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub container_id_file: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub log_config: LogConfig,
    /// `none` (also ``, `default`, `bridge`: no network, wrun's default) or
    /// `host` (everything).
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub network_mode: String,
    /// Published guest ports (see [`crate::network`]).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, Option<Vec<super::network::PortBinding>>>>))]
    pub port_bindings: Option<super::network::PortMap>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub restart_policy: RestartPolicy,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub auto_remove: bool,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub volume_driver: String,
    pub volumes_from: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub console_size: [u64; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cgroupns_mode: String,
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub group_add: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub ipc_mode: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cgroup: String,
    pub links: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub oom_score_adj: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub pid_mode: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub privileged: bool,
    /// Publish every `ExposedPorts` entry on a port the kernel picks.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub publish_all_ports: bool,
    /// The guest's `/` is the image itself, read-only, instead of the
    /// instance's writable copy-on-write view of it.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    /// Options of the writable rootfs: `size` (Docker's units, e.g.
    /// `10G`), the most bytes of files it may hold over the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_opt: Option<BTreeMap<String, String>>,
    /// `--tmpfs`: guest path → options. wrun gives a private, empty,
    /// writable directory at `/tmp` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<BTreeMap<String, String>>,
    #[serde(rename = "UTSMode")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub uts_mode: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub userns_mode: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub shm_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub runtime: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub isolation: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpu_shares: i64,
    /// Bytes of linear memory and tables; 0: no limit.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(schema_with = memory_schema))]
    pub memory: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub nano_cpus: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cgroup_parent: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub blkio_weight: u16,
    pub blkio_weight_device: Option<Vec<WeightDevice>>,
    pub blkio_device_read_bps: Option<Vec<ThrottleDevice>>,
    pub blkio_device_write_bps: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Option<Vec<ThrottleDevice>>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpu_period: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpu_quota: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpu_realtime_period: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpu_realtime_runtime: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpuset_cpus: String,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpuset_mems: String,
    pub devices: Option<Vec<DeviceMapping>>,
    pub device_cgroup_rules: Option<Vec<String>>,
    pub device_requests: Option<Vec<DeviceRequest>>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub kernel_memory: i64,
    #[serde(rename = "KernelMemoryTCP")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub kernel_memory_tcp: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub memory_reservation: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub memory_swap: i64,
    /// `None` or -1: not set.
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    /// `None`, 0 or -1: no limit.
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpu_count: i64,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub cpu_percent: i64,
    #[serde(rename = "IOMaximumIOps")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub io_maximum_iops: u64,
    #[serde(rename = "IOMaximumBandwidth")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub io_maximum_bandwidth: u64,
    /// `--mount`: bind mounts (like `Binds`) and a tmpfs at `/tmp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    /// `--init`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// wrun: `--allow-connect` rules, `HOST[:PORT]` or `CIDR[:PORT]`.
    pub wrun_allow_connect: Option<Vec<String>>,
    /// wrun: `--allow-dns`, name lookup.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub wrun_allow_dns: bool,
    /// wrun: `--allow-udp`, UDP sockets.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub wrun_allow_udp: bool,
    /// wrun: wall-clock budget in nanoseconds; 0: none.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub wasm_timeout: i64,
    /// wrun: fuel budget; 0: none.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub wasm_fuel: u64,
    /// wrun, HTTP handlers: requests handled at once; 0: the default (100).
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub wrun_http_max_concurrency: u64,
    /// wrun, HTTP handlers: largest request body in bytes; 0: the default
    /// (10 MiB).
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub wrun_http_max_body_size: u64,
    /// wrun, HTTP handlers: header read timeout in nanoseconds; 0: the
    /// default (10 s).
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub wrun_http_header_timeout: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `BlkioWeightDevice` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
}

/// `BlkioDevice{Read,Write}{Bps,IOps}` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

/// `Devices` entry (`--device`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// `DeviceRequests` entry (`--gpus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceRequest {
    pub driver: String,
    pub count: i64,
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Option<Vec<String>>,
    pub capabilities: Option<Vec<Vec<String>>>,
    pub options: Option<BTreeMap<String, String>>,
}

/// `Ulimits` entry (`--ulimit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// `HostConfig.Mounts` entry (`--mount`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, `npipe`, `cluster`.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub target: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub non_recursive: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub create_mountpoint: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_copy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    #[serde(skip_serializing_if = "is_zero")]
    pub size_bytes: i64,
    #[serde(skip_serializing_if = "is_zero_mode")]
    pub mode: u32,
}

fn is_zero_mode(n: &u32) -> bool {
    *n == 0
}

/// The log driver Docker shows for a container created without one; wrun's
/// log file is read the same way (`logs`), so clients that read logs only
/// from this driver (docker-py) do.
pub const DEFAULT_LOG_DRIVER: &str = "json-file";

/// `HostConfig.LogConfig`: wrun always writes its own bounded log file;
/// `Type` may be empty, `json-file` or `local`, and `Config` may set
/// `max-size` (bytes one file may reach; two files are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: BTreeMap<String, String>,
}

/// Whether `--tmpfs` asks for the private `/tmp`; any other path is refused
/// (wrun has a private writable directory at `/tmp` only).
pub fn private_tmp<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<bool, String> {
    let mut tmp = false;
    for path in paths {
        let path = path.split_once(':').map_or(path, |(p, _)| p);
        if path.trim_end_matches('/') == "/tmp" {
            tmp = true;
        } else {
            return Err(format!(
                "invalid --tmpfs {path:?}: wrun gives a private writable directory only at /tmp"
            ));
        }
    }
    Ok(tmp)
}

impl LogConfig {
    /// The `max-size` asked for, checked; `None` when not set.
    pub fn max_size(&self) -> Result<Option<u64>, String> {
        if !matches!(self.kind.as_str(), "" | "json-file" | "local") {
            return Err(format!(
                "log driver {:?} is not supported: wrun keeps each instance's log in its own bounded file (json-file and local are accepted)",
                self.kind
            ));
        }
        let mut size = None;
        for (k, v) in &self.config {
            match k.as_str() {
                "max-size" => {
                    size = Some(
                        crate::parse::parse_memory(v)
                            .map_err(|e| format!("invalid log-opt max-size={v}: {e}"))?,
                    );
                }
                // Accepted: wrun keeps the current file and one rotated file.
                "max-file" => {}
                other => {
                    return Err(format!(
                        "unknown log opt '{other}' (wrun takes max-size and max-file)"
                    ));
                }
            }
        }
        Ok(size)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// "", `no`, `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    /// `on-failure` only: restarts allowed; 0: no limit.
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// Parses the CLI's `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let maximum_retry_count = match count {
            None => 0,
            Some(c) if name == "on-failure" => {
                c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    format!("invalid restart count {c:?}: expected a whole number")
                })?
            }
            Some(_) => {
                return Err(format!(
                    "invalid restart policy {s:?}: only on-failure takes a count"
                ));
            }
        };
        let policy = Self {
            name: name.to_string(),
            maximum_retry_count,
        };
        policy.check()?;
        Ok(policy)
    }

    /// Refuses unknown names and counts on other policies than `on-failure`.
    pub fn check(&self) -> Result<(), String> {
        match self.name.as_str() {
            "" | "no" | "always" | "unless-stopped" if self.maximum_retry_count == 0 => Ok(()),
            "" | "no" | "always" | "unless-stopped" => Err(format!(
                "maximum retry count cannot be used with restart policy '{}'",
                self.name
            )),
            "on-failure" if self.maximum_retry_count >= 0 => Ok(()),
            "on-failure" => Err("maximum retry count cannot be negative".into()),
            other => Err(format!(
                "invalid restart policy '{other}' (no, always, unless-stopped, on-failure[:N])"
            )),
        }
    }

    /// Whether an instance that ended this way is started again.
    /// `manually_stopped`: ended by `stop`/`kill`; `restarts`: done so far.
    pub fn restarts_after(&self, exit_code: i64, manually_stopped: bool, restarts: i64) -> bool {
        if manually_stopped {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                exit_code != 0
                    && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
            _ => false,
        }
    }

    /// Whether a starting daemon starts the instance: `always` does,
    /// `unless-stopped` unless it was stopped by hand, `on-failure` when it
    /// was running when the daemon went away (within its count).
    pub fn starts_with_daemon(
        &self,
        was_running: bool,
        manually_stopped: bool,
        restarts: i64,
    ) -> bool {
        match self.name.as_str() {
            "always" => true,
            "unless-stopped" => !manually_stopped,
            "on-failure" => {
                was_running
                    && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
            _ => false,
        }
    }
}

/// The body of `POST /containers/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub host_config: HostConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking_config: Option<super::network::NetworkingConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreateResponse {
    pub id: String,
    pub warnings: Vec<String>,
}

/// `State` in `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    /// created, running, exited, removing.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    /// The daemon's pid while running (instances have no pid of their own).
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: String,
    /// A volume's name; absent for other types, as in Docker.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub source: String,
    pub destination: String,
    /// `local` for a volume; absent for other types, as in Docker.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    /// The networks the instance is on, by name, with its endpoint there.
    pub networks: BTreeMap<String, super::network::EndpointSettings>,
    /// While running: each published port and where it landed on the host
    /// (what `docker port` reads).
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, Option<Vec<super::network::PortBinding>>>))]
    pub ports: super::network::PortMap,
    /// wrun: one line saying what the instance may do on the network.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub wrun_network: String,
    /// Inspect's (not `ps`'s) default-endpoint fields, as dockerd shows
    /// them: empty, as an instance has no network interface.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<LegacyEndpoint>,
}

/// The default network's endpoint fields inspect's `NetworkSettings`
/// carries at its top level (Docker's deprecated `DefaultNetworkSettings`
/// and sandbox fields).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct LegacyEndpoint {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub hairpin_mode: bool,
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: i64,
    pub sandbox_key: String,
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<String>>,
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<String>>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    pub mac_address: String,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    pub image: String,
    pub log_path: String,
    pub name: String,
    pub restart_count: i64,
    pub driver: String,
    pub platform: String,
    /// Files Docker writes into a container; a wasm instance has none.
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    pub host_config: HostConfig,
    pub graph_driver: GraphDriver,
    /// With `?size=1`: bytes of the files the instance wrote over its
    /// image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    /// With `?size=1`: the image's size plus `SizeRw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    pub config: ContainerConfig,
    pub mounts: Vec<MountPoint>,
    pub network_settings: NetworkSettings,
}

/// `GraphDriver` of inspect: the storage driver and its paths.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct GraphDriver {
    pub data: BTreeMap<String, String>,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryHostConfig {
    pub network_mode: String,
}

/// An element of `GET /containers/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    /// Unix seconds.
    pub created: i64,
    pub ports: Vec<super::network::Port>,
    /// With `?size=1`: bytes written over the image (0: read-only rootfs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    /// With `?size=1`: the image's size plus `SizeRw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub status: String,
    pub host_config: SummaryHostConfig,
    pub network_settings: NetworkSettings,
    pub mounts: Vec<MountPoint>,
}

/// `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitResponse {
    pub status_code: i64,
    pub error: Option<WaitError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitError {
    pub message: String,
}

/// `GET /containers/{id}/top`: one row, the instance itself (it has no
/// processes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct TopResponse {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// `POST /containers/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerPruneResponse {
    pub containers_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}

/// `GET /containers/{id}/stats` (Docker's snake_case field names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ContainerStats {
    pub read: String,
    pub preread: String,
    pub name: String,
    pub id: String,
    pub pids_stats: PidsStats,
    pub num_procs: u32,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PidsStats {
    pub current: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    /// Nanoseconds of CPU time the host has spent, all CPUs (from /proc/stat).
    pub system_cpu_usage: u64,
    pub online_cpus: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CpuUsage {
    /// Nanoseconds the daemon spent running this instance.
    pub total_usage: u64,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct MemoryStats {
    /// Bytes of linear memory plus tables in use.
    pub usage: u64,
    pub limit: u64,
    pub stats: BTreeMap<String, u64>,
}

impl ContainerStats {
    /// Docker's CPU %: the instance's share of the host's CPU time between
    /// the two samples, scaled by the number of CPUs.
    pub fn cpu_percent(&self) -> f64 {
        let cpu = self
            .cpu_stats
            .cpu_usage
            .total_usage
            .saturating_sub(self.precpu_stats.cpu_usage.total_usage) as f64;
        let system = self
            .cpu_stats
            .system_cpu_usage
            .saturating_sub(self.precpu_stats.system_cpu_usage) as f64;
        if cpu > 0.0 && system > 0.0 {
            cpu / system * f64::from(self.cpu_stats.online_cpus.max(1)) * 100.0
        } else {
            0.0
        }
    }

    pub fn memory_percent(&self) -> f64 {
        if self.memory_stats.limit == 0 {
            0.0
        } else {
            self.memory_stats.usage as f64 / self.memory_stats.limit as f64 * 100.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RestartPolicy, private_tmp};

    #[test]
    fn tmpfs_grants_a_private_tmp_only_at_tmp() {
        assert_eq!(private_tmp([]), Ok(false));
        assert_eq!(private_tmp(["/tmp"]), Ok(true));
        assert_eq!(private_tmp(["/tmp/:rw,size=64m"]), Ok(true));
        let err = private_tmp(["/tmp", "/var/cache"]).unwrap_err();
        assert!(err.contains("\"/var/cache\""), "{err}");
        assert!(private_tmp(["/"]).is_err());
    }

    #[test]
    fn a_create_request_reads_null_as_unset_as_dockerd_does() {
        let r: super::ContainerCreateRequest = serde_json::from_str(
            r#"{"Image":"a","User":null,"Tty":null,"HostConfig":{"Memory":null,"LogConfig":null,
                "NetworkMode":null,"ConsoleSize":null,"RestartPolicy":null}}"#,
        )
        .unwrap();
        assert_eq!((r.config.image.as_str(), r.host_config.memory), ("a", 0));
        let r: super::ContainerCreateRequest =
            serde_json::from_str(r#"{"Image":"a","HostConfig":null}"#).unwrap();
        assert!(r.host_config.binds.is_none());
    }

    #[test]
    fn restart_policies_parse_like_dockers_flag() {
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 3));
        assert_eq!(RestartPolicy::parse("always").unwrap().name, "always");
        assert!(RestartPolicy::parse("always:2").is_err());
        assert!(RestartPolicy::parse("on-failure:-1").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
    }

    #[test]
    fn log_options_bound_the_file_or_are_refused() {
        use super::LogConfig;
        let with = |kind: &str, k: &str, v: &str| LogConfig {
            kind: kind.into(),
            config: [(k.to_string(), v.to_string())].into_iter().collect(),
        };
        assert_eq!(with("", "max-size", "1m").max_size(), Ok(Some(1 << 20)));
        assert_eq!(with("json-file", "max-file", "3").max_size(), Ok(None));
        assert!(with("", "max-size", "lots").max_size().is_err());
        assert!(with("syslog", "max-size", "1m").max_size().is_err());
        assert!(with("", "compress", "true").max_size().is_err());
        assert_eq!(LogConfig::default().max_size(), Ok(None));
    }

    #[test]
    fn on_failure_counts_and_manual_stops_win() {
        let p = RestartPolicy::parse("on-failure:2").unwrap();
        assert!(p.restarts_after(1, false, 0));
        assert!(p.restarts_after(1, false, 1));
        assert!(!p.restarts_after(1, false, 2), "the count is used up");
        assert!(!p.restarts_after(0, false, 0), "success is not a failure");
        let always = RestartPolicy::parse("always").unwrap();
        assert!(always.restarts_after(0, false, 99));
        assert!(!always.restarts_after(0, true, 0), "stopped by hand");
        assert!(!RestartPolicy::default().restarts_after(1, false, 0));
        let unless = RestartPolicy::parse("unless-stopped").unwrap();
        assert!(unless.starts_with_daemon(false, false, 0));
        assert!(!unless.starts_with_daemon(true, true, 0));
        assert!(always.starts_with_daemon(false, true, 0));
        assert!(p.starts_with_daemon(true, false, 0));
        assert!(!p.starts_with_daemon(false, false, 0));
    }
}
