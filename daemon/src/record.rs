//! The persisted schema of an instance: what `containers/records.journal`
//! holds for each one, and so what survives a daemon restart.

use serde::{Deserialize, Serialize};
use wrun_api::containers::{ContainerConfig, HostConfig};

use crate::lifecycle::Status;

/// What is kept of an instance's state across daemon restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StateRecord {
    pub status: Status,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Ended by `stop` or `kill`: restart policies leave it alone until it
    /// is started again by hand.
    pub manually_stopped: bool,
    /// Waiting to be started again by its restart policy (not persisted).
    #[serde(skip)]
    pub restarting: bool,
    /// The published ports of the current (or last) run as they landed on
    /// the host (`-p` form, host port resolved), shown while live.
    pub published: Vec<String>,
}

impl StateRecord {
    /// Running or paused: the instance holds a guest.
    pub fn is_live(&self) -> bool {
        self.status.is_live()
    }
}

/// One instance as stored in `containers/records.journal`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The image as the request named it.
    pub image: String,
    /// The image ID (config digest) it resolved to.
    pub image_id: String,
    /// argv\[0\] and the rest, as resolved at create.
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: StateRecord,
    pub restart_count: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written_but_a_pending_restart_is_not_kept() {
        let record = ContainerRecord {
            id: "abc".into(),
            name: "web".into(),
            created: "2024-01-01T00:00:00Z".into(),
            image: "hello:1.0".into(),
            image_id: "sha256:00".into(),
            path: "/hello.wasm".into(),
            args: vec!["world".into()],
            config: ContainerConfig::default(),
            host_config: HostConfig::default(),
            state: StateRecord {
                status: Status::Exited,
                exit_code: 3,
                manually_stopped: true,
                restarting: true,
                ..StateRecord::default()
            },
            restart_count: 2,
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["state"]["status"], "exited");
        assert!(json["state"].get("restarting").is_none(), "{json}");
        let back: ContainerRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.state.status, Status::Exited);
        assert_eq!(back.state.exit_code, 3);
        assert!(back.state.manually_stopped);
        assert!(!back.state.restarting);
        assert_eq!(back.restart_count, 2);
        assert_eq!(back.args, ["world"]);
    }

    #[test]
    fn a_state_with_missing_fields_reads_as_created() {
        let st: StateRecord = serde_json::from_str("{}").unwrap();
        assert_eq!(st.status, Status::Created);
        assert!(!st.is_live());
    }
}
