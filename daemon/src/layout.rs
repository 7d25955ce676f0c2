//! Where the daemon keeps its instances under `<root>/containers`: the
//! record journal, the log pack, `logs/` and what a start cleans up there.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::record::ContainerRecord;
use crate::records;

/// The daemon's directory in the store: `<root>/containers`.
pub(crate) fn containers_dir(store_root: &Path) -> PathBuf {
    store_root.join("containers")
}

/// Where the logs of instances live once they outgrow the pack:
/// `containers/logs/<id>.log` (one inode per instance, no directory).
pub(crate) const LOGS: &str = "logs";

/// The first KiB of every instance's log: `containers/logs.pack`.
pub(crate) const LOG_PACK: &str = "logs.pack";

/// Bytes one log file may reach before it is rotated (two are kept).
pub(crate) const LOG_MAX_SIZE: u64 = 10 << 20;

/// The size at which an instance's log file is rotated.
pub(crate) fn log_max_size(record: &ContainerRecord) -> u64 {
    record
        .host_config
        .log_config
        .max_size()
        .ok()
        .flatten()
        .unwrap_or(LOG_MAX_SIZE)
}

/// The image IDs of the instance records in the store at `store_root`.
pub(crate) fn image_ids_on_disk(store_root: &Path) -> HashSet<String> {
    let Ok(loaded) = records::read(&containers_dir(store_root)) else {
        return HashSet::new();
    };
    loaded
        .records
        .values()
        .filter_map(|r| r.get("image_id")?.as_str().map(str::to_owned))
        .collect()
}

/// Deletes from `logs_dir` what instances no longer in `live` left (logs
/// kept for a reader when the daemon stopped) and a move out of the pack
/// cut short (`.moving`: the pack still holds that log). Returns the live
/// instances that have a log file, from one listing, so an instance
/// without one costs no `stat`.
pub(crate) fn forget_leftovers(
    logs_dir: &Path,
    live: &BTreeMap<String, serde_json::Value>,
) -> HashSet<String> {
    let mut log_files = HashSet::new();
    for entry in std::fs::read_dir(logs_dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let id = name.split('.').next().unwrap_or_default();
        if !live.contains_key(id) || name.ends_with(".moving") {
            let _ = std::fs::remove_file(entry.path());
        } else {
            log_files.insert(id.to_owned());
        }
    }
    log_files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_deletes_the_logs_of_removed_instances_and_cut_moves_only() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join(LOGS);
        std::fs::create_dir(&logs).unwrap();
        for f in [
            "live.log",
            "live.log.1",
            "gone.log",
            "gone.log.1",
            "kept.log.moving",
        ] {
            std::fs::write(logs.join(f), b"x").unwrap();
        }
        let live: BTreeMap<String, serde_json::Value> = ["live", "kept", "packed"]
            .map(|id| (id.to_owned(), serde_json::Value::Null))
            .into_iter()
            .collect();
        let with_files = forget_leftovers(&logs, &live);
        assert_eq!(with_files, HashSet::from(["live".to_owned()]));
        let mut left: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["live.log", "live.log.1"]);
    }

    #[test]
    fn image_ids_are_read_from_the_journal_without_a_daemon() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(image_ids_on_disk(tmp.path()).is_empty(), "no containers/");
        let dir = containers_dir(tmp.path());
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join(records::JOURNAL),
            "{\"id\":\"a\",\"record\":{\"image_id\":\"sha256:aa\"}}\n\
             {\"id\":\"b\",\"record\":{\"image_id\":\"sha256:bb\"}}\n\
             {\"id\":\"b\",\"record\":null}\n",
        )
        .unwrap();
        assert_eq!(
            image_ids_on_disk(tmp.path()),
            HashSet::from(["sha256:aa".to_owned()])
        );
    }
}
