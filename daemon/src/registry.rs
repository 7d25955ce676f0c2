//! The instances the daemon knows, by ID and by name: lookup by full ID,
//! name or unique ID prefix, new IDs, and the names instances are given.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::DaemonError;
use crate::instance::Container;

/// Every instance by ID, and the names taken (name → ID). A name is taken
/// from the moment a create reserves it, before its instance is inserted.
#[derive(Default)]
pub(crate) struct Registry {
    by_id: BTreeMap<String, Arc<Container>>,
    names: HashMap<String, String>,
}

impl Registry {
    pub(crate) fn all(&self) -> Vec<Arc<Container>> {
        self.by_id.values().cloned().collect()
    }

    /// By full ID, name (with or without the leading `/`), or unique ID prefix.
    pub(crate) fn find(&self, key: &str) -> Result<Arc<Container>, DaemonError> {
        if let Some(c) = self.by_id.get(key) {
            return Ok(Arc::clone(c));
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(c) = self.names.get(name).and_then(|id| self.by_id.get(id)) {
            return Ok(Arc::clone(c));
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DaemonError::no_such_container(key));
        }
        let mut matches = self
            .by_id
            .range(key.to_string()..)
            .take_while(|(id, _)| id.starts_with(key));
        match (matches.next(), matches.next()) {
            (Some((_, c)), None) => Ok(Arc::clone(c)),
            (Some(_), Some(_)) => Err(DaemonError::invalid(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
            (None, _) => Err(DaemonError::no_such_container(key)),
        }
    }

    /// Takes `name` for instance `id`, or a generated name when none is
    /// asked for; 409 when the name is taken.
    pub(crate) fn claim_name(
        &mut self,
        name: Option<String>,
        id: &str,
    ) -> Result<String, DaemonError> {
        let name = match name {
            Some(n) => {
                self.check_free(&n)?;
                n
            }
            None => generate_name(id, &self.names),
        };
        self.names.insert(name.clone(), id.to_owned());
        Ok(name)
    }

    /// Gives `name` back, if instance `id` holds it.
    pub(crate) fn release_name(&mut self, name: &str, id: &str) {
        if self.names.get(name).map(String::as_str) == Some(id) {
            self.names.remove(name);
        }
    }

    /// 409 when `name` is taken.
    pub(crate) fn check_free(&self, name: &str) -> Result<(), DaemonError> {
        match self.names.get(name) {
            Some(other) => Err(DaemonError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            ))),
            None => Ok(()),
        }
    }

    /// Whether instance `id` is still here (not removed).
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Moves instance `id` from name `old` to `new` (checked free).
    pub(crate) fn move_name(&mut self, id: &str, old: &str, new: &str) {
        self.release_name(old, id);
        self.names.insert(new.to_owned(), id.to_owned());
    }

    /// Adds an instance whose name is claimed already.
    pub(crate) fn insert(&mut self, c: Arc<Container>) {
        self.by_id.insert(c.id.clone(), c);
    }

    /// Adds an instance loaded from its record, taking its name.
    pub(crate) fn insert_named(&mut self, c: Arc<Container>) {
        self.names.insert(c.name(), c.id.clone());
        self.insert(c);
    }

    /// Forgets instance `id` and frees its `name`; `false` when it was
    /// gone already.
    pub(crate) fn remove(&mut self, id: &str, name: &str) -> bool {
        if self.by_id.remove(id).is_none() {
            return false;
        }
        self.release_name(name, id);
        true
    }
}

/// 64 hex digits, unpredictable enough for names of instances.
pub(crate) fn new_id() -> String {
    use sha2::{Digest, Sha256};
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update(RandomState::new().hash_one(n).to_le_bytes());
    h.update(n.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(
        time::OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_le_bytes(),
    );
    hex::encode(h.finalize())
}

/// Docker-like `adjective_noun` names, with a number on collision.
fn generate_name(id: &str, taken: &HashMap<String, String>) -> String {
    const ADJ: [&str; 16] = [
        "agile", "bold", "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen",
        "lucid", "merry", "nimble", "quiet", "swift", "tidy",
    ];
    const NOUN: [&str; 16] = [
        "babbage", "curie", "dijkstra", "euler", "gauss", "hopper", "kepler", "knuth", "lovelace",
        "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wirth",
    ];
    let b = id.as_bytes();
    let pick = |i: usize| (b.get(i).copied().unwrap_or(0) as usize) % 16;
    let base = format!("{}_{}", ADJ[pick(0)], NOUN[pick(1)]);
    if !taken.contains_key(&base) {
        return base;
    }
    // 256 bases: with thousands of instances, counting up from 2 would try
    // every taken suffix first. Start at a number drawn from the ID, among
    // more numbers than there are names, so a free one is a few tries away.
    let drawn = id
        .get(2..10)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0) as usize;
    let start = 2 + drawn % (taken.len() + 1);
    (start..)
        .map(|n| format!("{base}{n}"))
        .find(|n| !taken.contains_key(n))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logpack::LogPack;
    use crate::logs::LogFile;
    use crate::record::{ContainerRecord, StateRecord};
    use crate::records::RecordJournal;

    /// Instances with the given IDs and names, their records in a journal
    /// under `dir`.
    fn instances(dir: &std::path::Path, named: &[(&str, &str)]) -> Vec<Arc<Container>> {
        let journal = RecordJournal::start(dir, &BTreeMap::new()).unwrap();
        let (pack, _) = LogPack::open(dir.join("logs.pack")).unwrap();
        let pack = Arc::new(pack);
        named
            .iter()
            .map(|(id, name)| {
                let log = LogFile::packed(
                    dir.join(format!("{id}.log")),
                    1 << 20,
                    Arc::clone(&pack),
                    (*id).to_owned(),
                );
                let record = ContainerRecord {
                    id: (*id).to_owned(),
                    name: (*name).to_owned(),
                    created: String::new(),
                    image: "hello:1.0".into(),
                    image_id: String::new(),
                    path: String::new(),
                    args: Vec::new(),
                    config: Default::default(),
                    host_config: Default::default(),
                    state: StateRecord::default(),
                    restart_count: 0,
                };
                Container::new(log, record, &journal)
            })
            .collect()
    }

    fn registry(dir: &std::path::Path) -> Registry {
        let mut reg = Registry::default();
        for c in instances(dir, &[("abc1", "web"), ("abc2", "db"), ("f00d", "cache")]) {
            reg.insert_named(c);
        }
        reg
    }

    fn refused(r: Result<Arc<Container>, DaemonError>) -> DaemonError {
        match r {
            Ok(c) => panic!("found {}", c.id),
            Err(e) => e,
        }
    }

    #[test]
    fn an_instance_is_found_by_id_name_or_unique_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = registry(tmp.path());
        for (key, id) in [
            ("abc1", "abc1"),
            ("web", "abc1"),
            ("/web", "abc1"),
            ("db", "abc2"),
            ("f0", "f00d"),
            ("abc2", "abc2"),
        ] {
            assert_eq!(reg.find(key).unwrap().id, id, "{key}");
        }
        assert_eq!(
            refused(reg.find("abc")),
            DaemonError::invalid("multiple IDs found with provided prefix: abc")
        );
        for key in ["nope", "ff", "", "/"] {
            assert_eq!(
                refused(reg.find(key)),
                DaemonError::no_such_container(key),
                "{key:?}"
            );
        }
    }

    #[test]
    fn a_taken_name_is_refused_and_freed_by_its_holder_only() {
        let tmp = tempfile::tempdir().unwrap();
        let mut reg = registry(tmp.path());
        let taken = "Conflict. The container name \"/web\" is already in use by container \"abc1\". You have to remove (or rename) that container to be able to reuse that name.";
        assert_eq!(
            reg.claim_name(Some("web".into()), "beef"),
            Err(DaemonError::conflict(taken))
        );
        reg.release_name("web", "beef");
        assert_eq!(reg.find("web").unwrap().id, "abc1");
        assert_eq!(reg.claim_name(Some("api".into()), "beef").unwrap(), "api");
        // Reserved before its instance is inserted: taken, finds nothing.
        assert!(reg.check_free("api").is_err());
        assert_eq!(
            refused(reg.find("api")),
            DaemonError::no_such_container("api")
        );

        reg.move_name("abc2", "db", "store");
        assert!(reg.check_free("db").is_ok());
        assert_eq!(reg.find("store").unwrap().id, "abc2");

        assert!(reg.contains("abc1"));
        assert!(reg.remove("abc1", "web"));
        assert!(!reg.remove("abc1", "web"), "removed twice");
        assert!(!reg.contains("abc1"));
        assert!(reg.check_free("web").is_ok());
        assert_eq!(
            refused(reg.find("abc1")),
            DaemonError::no_such_container("abc1")
        );
    }

    #[test]
    fn generated_names_never_collide() {
        let tmp = tempfile::tempdir().unwrap();
        let mut reg = registry(tmp.path());
        let mut seen = std::collections::HashSet::new();
        // The same ID every time: the same base name, numbered after it.
        for _ in 0..300 {
            let name = reg.claim_name(None, "0a1b2c3d4e5f").unwrap();
            assert!(seen.insert(name.clone()), "{name} given twice");
            assert!(
                name.starts_with("agile_"),
                "{name}: the base comes from the ID"
            );
        }
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, new_id());
    }
}
