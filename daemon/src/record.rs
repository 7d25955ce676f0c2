//! The persisted schema of an instance: what `containers/records.journal`
//! holds for each one, and so what survives a daemon restart.
//!
//! An instance's `Config` and `HostConfig` never change after its create
//! (but for a rename or an update, which replace them), and most instances
//! of one daemon share them: they are held once ([`Shared`], [`Interner`])
//! and stored without the fields left at their defaults, which a reader
//! (`#[serde(default)]`) fills in again. A full record of each cost about
//! 2 KiB of memory and 2.2 KB of journal per change, and a copy at each
//! read (docs/benchmarks/daemon-scale.md, "Regressions taken apart").

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

/// A part of a record stored without its default fields: what
/// [`Shared`] needs of it.
pub trait Stored: Clone + Default + Serialize + for<'de> Deserialize<'de> {
    /// The fields of `Self::default()` as stored, computed once.
    fn defaults() -> &'static serde_json::Map<String, serde_json::Value>;
}

fn defaults_of<T: Default + Serialize>() -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map,
        // A struct serializes to an object: nothing to leave out otherwise.
        _ => serde_json::Map::new(),
    }
}

impl Stored for ContainerConfig {
    fn defaults() -> &'static serde_json::Map<String, serde_json::Value> {
        static DEFAULTS: OnceLock<serde_json::Map<String, serde_json::Value>> = OnceLock::new();
        DEFAULTS.get_or_init(defaults_of::<Self>)
    }
}

impl Stored for HostConfig {
    fn defaults() -> &'static serde_json::Map<String, serde_json::Value> {
        static DEFAULTS: OnceLock<serde_json::Map<String, serde_json::Value>> = OnceLock::new();
        DEFAULTS.get_or_init(defaults_of::<Self>)
    }
}

/// A `Config` or `HostConfig` held once for every record (and copy of
/// one) with the same; reads go through `Deref`, a change (`DerefMut`)
/// copies it first when shared. Not `Clone`, on purpose: `.clone()` on a
/// field reaches the value (`HostConfig`), as before the sharing; a record
/// shares its parts with [`Shared::share`].
pub struct Shared<T>(Arc<SharedValue<T>>);

struct SharedValue<T> {
    value: T,
    /// The stored form: the fields that differ from the defaults. Made at
    /// the first write of the journal (or by the interner), dropped by a
    /// change.
    stored: OnceLock<serde_json::Value>,
}

impl<T: Clone> Clone for SharedValue<T> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            stored: self.stored.clone(),
        }
    }
}

impl<T: Stored> Shared<T> {
    pub fn new(value: T) -> Self {
        Self(Arc::new(SharedValue {
            value,
            stored: OnceLock::new(),
        }))
    }

    /// Another handle on the same value.
    pub fn share(&self) -> Self {
        Self(Arc::clone(&self.0))
    }

    /// The stored form: the value's fields that differ from the defaults.
    fn stored(&self) -> &serde_json::Value {
        self.0.stored.get_or_init(|| {
            let defaults = T::defaults();
            match serde_json::to_value(&self.0.value) {
                Ok(serde_json::Value::Object(mut fields)) => {
                    fields.retain(|k, v| defaults.get(k) != Some(v));
                    serde_json::Value::Object(fields)
                }
                // Unreachable for a struct; stored as it serializes.
                Ok(other) => other,
                Err(_) => serde_json::Value::Null,
            }
        })
    }
}

impl<T: Stored> Default for Shared<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Stored> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        let shared = Arc::make_mut(&mut self.0);
        shared.stored = OnceLock::new();
        &mut shared.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.value.fmt(f)
    }
}

impl<T: Stored> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.stored().serialize(serializer)
    }
}

impl<'de, T: Stored> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self::new)
    }
}

/// Hands out one [`Shared`] per distinct stored form, so the instances
/// created alike hold one `Config` and one `HostConfig` between them.
/// Entries are weak: a value goes with its last record, and dead entries
/// are swept once the map has doubled since the last sweep.
pub struct Interner<T> {
    held: Mutex<InternerMap<T>>,
}

struct InternerMap<T> {
    by_stored: HashMap<String, Weak<SharedValue<T>>>,
    sweep_at: usize,
}

/// Entries below which the interner never sweeps.
const SWEEP_FLOOR: usize = 64;

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            held: Mutex::new(InternerMap {
                by_stored: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }
}

impl<T: Stored> Interner<T> {
    /// The held value equal to `value` (by stored form), or `value`, now
    /// held.
    pub fn intern(&self, value: Shared<T>) -> Shared<T> {
        let Ok(key) = serde_json::to_string(value.stored()) else {
            return value;
        };
        // Each step leaves the map consistent: usable after a panic.
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = held.by_stored.get(&key).and_then(Weak::upgrade) {
            return Shared(found);
        }
        held.by_stored.insert(key, Arc::downgrade(&value.0));
        if held.by_stored.len() >= held.sweep_at {
            held.by_stored.retain(|_, v| v.strong_count() > 0);
            held.sweep_at = (held.by_stored.len() * 2).max(SWEEP_FLOOR);
        }
        value
    }
}

/// One instance as stored in `containers/records.journal`.
#[derive(Debug, Serialize, Deserialize)]
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
    pub config: Shared<ContainerConfig>,
    pub host_config: Shared<HostConfig>,
    pub state: StateRecord,
    pub restart_count: i64,
}

impl Clone for ContainerRecord {
    /// A copy whose `Config` and `HostConfig` are the same shared values.
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            name: self.name.clone(),
            created: self.created.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            path: self.path.clone(),
            args: self.args.clone(),
            config: self.config.share(),
            host_config: self.host_config.share(),
            state: self.state.clone(),
            restart_count: self.restart_count,
        }
    }
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
            config: ContainerConfig::default().into(),
            host_config: HostConfig::default().into(),
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

    fn host_config(json: serde_json::Value) -> HostConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_record_is_stored_without_default_fields_and_reads_back_whole() {
        let hc = host_config(serde_json::json!({
            "AutoRemove": true,
            "Binds": ["/srv:/data:ro"],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
            "Memory": 1048576,
        }));
        let record = ContainerRecord {
            id: "abc".into(),
            name: "web".into(),
            created: "2024-01-01T00:00:00Z".into(),
            image: "hello:1.0".into(),
            image_id: "sha256:00".into(),
            path: "/hello.wasm".into(),
            args: Vec::new(),
            config: ContainerConfig {
                image: "hello:1.0".into(),
                working_dir: "/".into(),
                ..ContainerConfig::default()
            }
            .into(),
            host_config: hc.clone().into(),
            state: StateRecord::default(),
            restart_count: 0,
        };
        let line = serde_json::to_value(&record).unwrap();
        let stored = line["host_config"].as_object().unwrap();
        let mut keys: Vec<&str> = stored.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["AutoRemove", "Binds", "LogConfig", "Memory"],
            "{line}"
        );
        let config = line["config"].as_object().unwrap();
        assert!(
            config.contains_key("WorkingDir") && !config.contains_key("Tty"),
            "{line}"
        );
        let back: ContainerRecord = serde_json::from_value(line).unwrap();
        // What inspect shows is built from the values: the same as before.
        assert_eq!(
            serde_json::to_value(&*back.host_config).unwrap(),
            serde_json::to_value(&hc).unwrap()
        );
        assert_eq!(back.config.working_dir, "/");
    }

    #[test]
    fn a_record_written_whole_by_an_older_daemon_still_reads() {
        let hc = host_config(serde_json::json!({"AutoRemove": true, "CpuShares": 0}));
        let old = serde_json::json!({
            "id": "a", "name": "n", "created": "", "image": "i", "image_id": "",
            "path": "/a.wasm", "args": [],
            "config": serde_json::to_value(ContainerConfig::default()).unwrap(),
            "host_config": serde_json::to_value(&hc).unwrap(),
            "state": {"status": "exited", "exit_code": 1},
            "restart_count": 0
        });
        let r: ContainerRecord = serde_json::from_value(old).unwrap();
        assert!(r.host_config.auto_remove);
        assert_eq!(r.state.exit_code, 1);
        // Written again, it is the short form.
        let again = serde_json::to_value(&r).unwrap();
        assert_eq!(
            again["host_config"],
            serde_json::json!({"AutoRemove": true})
        );
        assert_eq!(again["config"], serde_json::json!({}));
    }

    #[test]
    fn alike_configs_are_held_once_and_a_change_copies_first() {
        let interner = Interner::<HostConfig>::default();
        let auto = || host_config(serde_json::json!({"AutoRemove": true}));
        let a = interner.intern(auto().into());
        let b = interner.intern(auto().into());
        assert!(Arc::ptr_eq(&a.0, &b.0));
        let other = interner.intern(HostConfig::default().into());
        assert!(!Arc::ptr_eq(&a.0, &other.0));
        // A change to one record's copy leaves the other's as it was, and
        // its stored form follows the change.
        let mut changed = b.share();
        changed.memory = 4096;
        assert!(!Arc::ptr_eq(&a.0, &changed.0));
        assert_eq!(a.memory, 0);
        assert_eq!(
            serde_json::to_value(&changed).unwrap(),
            serde_json::json!({"AutoRemove": true, "Memory": 4096})
        );
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"AutoRemove": true})
        );
        // `.clone()` of a field is the value, as before the sharing.
        let plain: HostConfig = a.clone();
        assert!(plain.auto_remove);
    }

    #[test]
    fn the_interner_forgets_values_no_record_holds() {
        let interner = Interner::<ContainerConfig>::default();
        for i in 0..1000 {
            let config = ContainerConfig {
                image: format!("image-{i}"),
                ..ContainerConfig::default()
            };
            drop(interner.intern(config.into()));
        }
        let held = interner.held.lock().unwrap().by_stored.len();
        assert!(held < 2 * SWEEP_FLOOR, "{held} entries kept");
        let kept = interner.intern(ContainerConfig::default().into());
        let again = interner.intern(ContainerConfig::default().into());
        assert!(Arc::ptr_eq(&kept.0, &again.0));
    }

    #[test]
    fn a_state_with_missing_fields_reads_as_created() {
        let st: StateRecord = serde_json::from_str("{}").unwrap();
        assert_eq!(st.status, Status::Created);
        assert!(!st.is_live());
    }
}
