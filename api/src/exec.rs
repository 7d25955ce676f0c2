//! Serde types of the Docker Engine API's exec routes: `POST
//! /containers/{id}/exec`, `POST /exec/{id}/start`, `GET /exec/{id}/json`.

use serde::{Deserialize, Serialize};

/// The body of `POST /containers/{id}/exec` (Docker's `ExecConfig`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreateRequest {
    /// Empty: a wasm instance has no users (any other value is refused).
    #[cfg_attr(feature = "openapi", schema(max_length = 0))]
    pub user: String,
    /// Refused when true: an exec gets what its instance was granted.
    #[cfg_attr(feature = "openapi", schema(schema_with = only_false))]
    pub privileged: bool,
    /// Refused when true: wrun instances have no TTY.
    #[cfg_attr(feature = "openapi", schema(schema_with = only_false))]
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach: bool,
    /// Checked as Docker checks it (comma-separated single characters or
    /// `ctrl-X`) and shown by inspect; without a TTY no key sequence detaches.
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^((ctrl-[a-z@\[\\\]^_]|[\u0000-\u002b\u002d-\u007f])(,(ctrl-[a-z@\[\\\]^_]|[\u0000-\u002b\u002d-\u007f]))*)?$"
        )
    )]
    pub detach_keys: String,
    /// `KEY=VALUE` pairs added to (or replacing) the instance's environment.
    #[cfg_attr(feature = "openapi", schema(schema_with = env_pairs))]
    pub env: Option<Vec<String>>,
    /// Absolute; empty: the instance's working directory.
    pub working_dir: String,
    /// The command: a wasm module's path in the instance's filesystem (or a
    /// name found in its `PATH`) and its arguments, or else the arguments
    /// given to the image's entrypoint module.
    #[cfg_attr(feature = "openapi", schema(schema_with = command, required = true))]
    pub cmd: Option<Vec<String>>,
    /// Only for a TTY; wrun has none.
    pub console_size: Option<Vec<u32>>,
}

/// The answer to `POST /containers/{id}/exec`: 201 and the exec's ID.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreateResponse {
    /// 64 hex digits.
    pub id: String,
}

/// The body of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStartRequest {
    /// Start and answer 200 at once; the output is discarded.
    pub detach: bool,
    /// Refused when true: wrun instances have no TTY.
    #[cfg_attr(feature = "openapi", schema(schema_with = only_false))]
    pub tty: bool,
    pub console_size: Option<Vec<u32>>,
}

/// Whether `keys` is a detach key sequence Docker takes (`ctrl-p,ctrl-q`).
pub fn valid_detach_keys(keys: &str) -> bool {
    keys.is_empty()
        || keys.split(',').all(|key| {
            key.len() == 1
                || key.strip_prefix("ctrl-").is_some_and(|c| {
                    c.len() == 1
                        && c.bytes()
                            .all(|b| b.is_ascii_lowercase() || b"@[\\]^_".contains(&b))
                })
        })
}

/// A boolean that may only be false (a TTY, privileges).
#[cfg(feature = "openapi")]
fn only_false() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([false]))
        .build()
}

/// `Env`: null, or `KEY=VALUE` strings (a non-empty key, no NUL).
#[cfg(feature = "openapi")]
fn env_pairs() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[^=\\u0000]+=[^\\u0000]*$")),
        )
        .build()
}

/// `Cmd`: at least one word, none holding a NUL.
#[cfg(feature = "openapi")]
fn command() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .min_items(Some(1))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[^\\u0000]*$")),
        )
        .build()
}

/// `ProcessConfig` of `GET /exec/{id}/json`: dockerd's lower-case keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ExecProcessConfig {
    pub tty: bool,
    /// The command's first word, as given.
    pub entrypoint: String,
    /// The command's other words.
    pub arguments: Vec<String>,
    pub privileged: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
}

/// `GET /exec/{id}/json` (dockerd's `ExecInspect`, key for key).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    pub running: bool,
    /// `null` until the exec has ended.
    pub exit_code: Option<i64>,
    pub process_config: ExecProcessConfig,
    pub open_stdin: bool,
    pub open_stderr: bool,
    pub open_stdout: bool,
    pub can_remove: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub detach_keys: String,
    /// The daemon's pid (every instance and exec runs in it) once started;
    /// 0 before.
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_docker_clients_exec_body_reads() {
        let body = r#"{"User":"","Privileged":false,"Tty":false,"AttachStdin":false,"AttachStderr":true,"AttachStdout":true,"Detach":false,"DetachKeys":"","Env":["K=V"],"WorkingDir":"","Cmd":["/x","a","b"]}"#;
        let r: ExecCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.cmd.unwrap(), ["/x", "a", "b"]);
        assert_eq!(r.env.unwrap(), ["K=V"]);
        assert!(r.attach_stdout && r.attach_stderr && !r.attach_stdin);
    }

    #[test]
    fn detach_keys_read_as_dockers() {
        for ok in ["", "a", "ctrl-p,ctrl-q", "ctrl-@,x", "ctrl-\\", "ctrl-_"] {
            assert!(valid_detach_keys(ok), "{ok:?}");
        }
        for bad in ["zz", "ctrl-", "ctrl-A", "ctrl-pq", "a,,b", ",", "\u{e9}"] {
            assert!(!valid_detach_keys(bad), "{bad:?}");
        }
    }

    #[test]
    fn inspect_has_dockerds_keys() {
        let i = ExecInspect {
            id: "e".into(),
            process_config: ExecProcessConfig {
                entrypoint: "/x".into(),
                ..ExecProcessConfig::default()
            },
            ..ExecInspect::default()
        };
        let v = serde_json::to_value(&i).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "ID",
            "Running",
            "ExitCode",
            "ProcessConfig",
            "OpenStdin",
            "OpenStderr",
            "OpenStdout",
            "CanRemove",
            "ContainerID",
            "DetachKeys",
            "Pid",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert!(v["ExitCode"].is_null());
        assert_eq!(
            v["ProcessConfig"],
            serde_json::json!({"tty":false,"entrypoint":"/x","arguments":[],"privileged":false})
        );
    }
}
