//! The local content-addressed store: blobs by sha256, image records (names →
//! manifest digests), and unpacked rootfs snapshots keyed by layer chain.
//!
//! Layout under the root:
//! ```text
//! blobs/sha256/<hex>        verified content, written once
//! snapshots/<chain hex>/    rootfs/ (the merged layers) + meta.json
//! images.json               the image records (atomic rewrite)
//! build-cache.json          the build's layer cache: steps of stored images' builds
//! tmp/<pid>.<n>/            staging areas, removed on drop or when stale
//! downloads/<hex>[.partial]  blobs of an interrupted pull, kept for the next one
//! lock                      flock: held exclusively to change records or collect garbage
//! ```
//! Every change is staged under `tmp/`, synced, then renamed into place under
//! the lock, so a killed process leaves the old state or the new one.
//!
//! The store is private to its owner: every directory wrun makes in it is
//! 0700 and every file 0600 (they hold image contents and, under
//! `containers/`, every instance's environment), except inside snapshot
//! rootfs trees, which keep the image's own modes for the guests that see
//! them. Modes are given at creation; a store left looser by an older wrun
//! is tightened when opened ([`Store::open`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::document;
use crate::error::{ImageError, IoContext, Result, is_disk_error};
use crate::reference::ImageRef;
use crate::unpack::{self, UnpackBudget, UnpackLimits};
use crate::wasm::ModuleKind;

/// The on-disk format this build reads and writes.
pub const STORE_FORMAT: u32 = 1;

/// Largest JSON document (manifest, config, index) read into memory.
pub const MAX_DOCUMENT: u64 = 4 << 20;

/// One stored image: its digests, names and the facts `images` lists.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// Digest of the manifest: the image's identity in the store.
    pub digest: Digest,
    /// Digest of the config: the "IMAGE ID" users see.
    pub id: Digest,
    /// `repository:tag` names pointing at this image (may be empty: dangling).
    pub names: Vec<String>,
    /// The config's `created` time, if any (RFC 3339).
    pub created: Option<String>,
    /// When this store first got the image (RFC 3339).
    pub added: String,
    /// When a name was last put on the image (RFC 3339).
    pub last_tagged: Option<String>,
    /// Uncompressed size of all layers, in bytes.
    pub size: u64,
    pub os: String,
    pub architecture: String,
    /// ChainID of the layer stack: names the snapshot directory.
    pub chain_id: Option<Digest>,
    /// The entrypoint module found in the rootfs, if there is one.
    pub module: Option<ModuleInfo>,
    /// The image this one was committed from here: dockerd's local parent
    /// (inspect's `Parent`, the IDs `history` gives its rows), never part
    /// of the image itself, so a loaded or pulled image has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
}

/// The WebAssembly binary the image's entrypoint names.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModuleInfo {
    /// Absolute path inside the rootfs (`/hello.wasm`).
    pub path: String,
    pub digest: Digest,
    pub kind: ModuleKind,
    pub size: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ImageDb {
    format: u32,
    images: Vec<ImageRecord>,
}

/// Per-layer facts recorded beside a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub layers: Vec<SnapshotLayer>,
    /// [`rootfs_digest`] of the rootfs as unpacked: what tells a damaged
    /// snapshot from an intact one. Absent in snapshots older wruns made,
    /// which are unpacked again when their image is loaded or built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_digest: Option<Digest>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotLayer {
    pub diff_id: Digest,
    pub size: u64,
}

impl SnapshotMeta {
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// One step of a build, kept so the same step on the same parent is not
/// run again (`wrun build`'s layer cache, dockerd's intermediate images).
/// It holds no data of its own beyond a layer blob: it lives as long as
/// one of the images whose build recorded it (`owners`), and goes with the
/// last of them (`rmi`, `image prune`), its blob too.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BuildCacheEntry {
    /// The step's identity: its parent state, its instruction as expanded
    /// and the digests of what it reads (the bundler computes it).
    pub key: Digest,
    /// The step's history line.
    pub created_by: String,
    /// The layer the step added, `None` for a step that adds none.
    pub layer: Option<CachedLayer>,
    /// Manifest digests of the stored images whose builds recorded it.
    pub owners: Vec<Digest>,
    /// The chain of the state after the step, when its snapshot was made
    /// (a `RUN` after it ran over it) and kept, so the next build's `RUN`
    /// after this step runs over it instead of unpacking the layers again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Digest>,
}

/// A cached step's layer: its blob (kept in `blobs/`) and its diff_id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CachedLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct BuildCacheDb {
    entries: Vec<BuildCacheEntry>,
}

/// What `rmi` did to one reference.
#[derive(Debug, Default)]
pub struct RemoveOutcome {
    pub untagged: Vec<String>,
    /// The images deleted (with the names they had before).
    pub deleted: Vec<ImageRecord>,
}

/// What a prune or garbage collection freed.
#[derive(Debug, Default)]
pub struct PruneOutcome {
    pub deleted_images: Vec<ImageRecord>,
    pub reclaimed_bytes: u64,
}

/// Space used by the store, by kind.
#[derive(Debug, Default, Serialize)]
pub struct DiskUsage {
    pub images: usize,
    pub dangling_images: usize,
    pub blob_bytes: u64,
    pub snapshot_bytes: u64,
    pub cache_bytes: u64,
    pub tmp_bytes: u64,
}

/// A handle on a store directory. Cheap to create; holds no open files.
///
/// Clones share a cache of the parsed image records (checked against
/// `images.json`'s identity on every read, so changes made by another
/// process are seen) and of parsed image configs (content-addressed, so
/// never stale).
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    limits: UnpackLimits,
    parsed: Arc<ParsedCache>,
}

/// Most image configs kept parsed; the cache is emptied when full.
const MAX_CACHED_CONFIGS: usize = 256;

/// Parsed documents kept between calls: a daemon looks an image up on every
/// create and start, and reading and parsing `images.json` then cost more
/// than the rest of the create.
#[derive(Default)]
struct ParsedCache {
    index: Mutex<Option<(IndexIdentity, Arc<ImageDb>)>>,
    configs: Mutex<HashMap<Digest, Arc<ImageConfiguration>>>,
}

impl std::fmt::Debug for ParsedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedCache").finish_non_exhaustive()
    }
}

/// What identifies one version of `images.json`: every write replaces the
/// file by a rename (a new inode), and an edit in place changes its
/// modification and change times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IndexIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Whether a file was last changed more than a second ago.
fn settled(meta: &fs::Metadata) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age >= std::time::Duration::from_secs(1))
}

impl IndexIdentity {
    fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        IndexIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The exclusive store lock; released on drop.
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Opens (creating if needed) the store at `root` and removes staging
    /// areas left by processes that no longer exist.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        // Creating the directories costs syscalls on every command; a store
        // that has its first and last directory has them all.
        let dirs = ["blobs/sha256", "snapshots", "tmp", "cache"];
        if !(root.join(dirs[0]).is_dir() && root.join(dirs[3]).is_dir()) {
            for dir in dirs {
                create_private_dir_all(&root.join(dir)).io_context(|| {
                    format!("creating the store directory {}", root.join(dir).display())
                })?;
            }
        }
        make_private(&root)?;
        let store = Store {
            root,
            limits: UnpackLimits::default(),
            parsed: Arc::default(),
        };
        let db = store.read_db()?;
        if db.format > STORE_FORMAT {
            return Err(ImageError::StoreVersion {
                path: store.root.clone(),
                found: db.format,
                supported: STORE_FORMAT,
            });
        }
        store.remove_stale_tmp();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where compiled-module caches and other derived data may live.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Where pulls keep the blobs they fetched (`<hex>`, verified) and are
    /// fetching (`<hex>.partial`, locked by the pull writing it) until the
    /// image is committed, so that an interrupted pull's retry does not
    /// fetch them again; [`Store::prune`] removes what no pull holds.
    pub fn downloads_dir(&self) -> PathBuf {
        self.root.join("downloads")
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.blob_path(digest))
            .io_context(|| format!("blob {digest} is missing from the store"))
    }

    /// Reads a stored blob of at most `max` bytes.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        read_bounded(self.open_blob(digest)?, max, &digest.to_string())
    }

    /// The merged rootfs of an image, shared read-only by all its instances.
    pub fn rootfs_path(&self, record: &ImageRecord) -> Option<PathBuf> {
        record
            .chain_id
            .map(|c| self.root.join("snapshots").join(c.hex()).join("rootfs"))
    }

    fn snapshot_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain.hex())
    }

    /// Whether the snapshot of `chain` holds what was unpacked into it:
    /// every path, type, mode, file content and symlink target of its
    /// rootfs (one read of the whole tree). A snapshot that is missing, has
    /// no recorded digest (made by an older wrun) or cannot be read is not.
    pub fn snapshot_intact(&self, chain: &Digest) -> bool {
        let Ok(meta) = self.snapshot_meta(chain) else {
            return false;
        };
        let Some(recorded) = meta.rootfs_digest else {
            return false;
        };
        let rootfs = self.snapshot_dir(chain).join("rootfs");
        Dir::open_ambient_dir(&rootfs, ambient_authority())
            .and_then(|root| rootfs_digest(&root))
            .is_ok_and(|found| found == recorded)
    }

    /// Per-layer sizes of an image's snapshot.
    pub fn snapshot_meta(&self, chain: &Digest) -> Result<SnapshotMeta> {
        let path = self.snapshot_dir(chain).join("meta.json");
        let bytes = fs::read(&path).io_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: path.display().to_string(),
            source,
        })
    }

    /// Takes the store's exclusive lock (blocks until free).
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(PRIVATE_FILE)
            .open(&path)
            .io_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .io_context(|| format!("locking {}", path.display()))?;
        Ok(StoreLock { _file: file })
    }

    fn db_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn read_db(&self) -> Result<ImageDb> {
        let path = self.db_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
                what: path.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ImageDb {
                format: STORE_FORMAT,
                images: Vec::new(),
            }),
            Err(e) => Err(e).io_context(|| format!("reading {}", path.display())),
        }
    }

    /// The image records for reading: the parsed copy while `images.json`
    /// is the file it was parsed from (one `stat`), else read again.
    /// Changes go through [`Store::read_db`] under the lock instead.
    fn cached_db(&self) -> Result<Arc<ImageDb>> {
        let path = self.db_path();
        let identity = match fs::metadata(&path) {
            // A freed inode number can come back with the next write; two
            // writes of the same size within the timestamp granularity would
            // then look alike. A file changed in the last second is not
            // trusted to be told apart (git's "racy clean" rule).
            Ok(meta) if settled(&meta) => Some(IndexIdentity::of(&meta)),
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).io_context(|| format!("reading {}", path.display())),
        };
        let mut slot = self.parsed.index.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(id), Some((cached_id, db))) = (identity, &*slot)
            && id == *cached_id
        {
            return Ok(Arc::clone(db));
        }
        let db = Arc::new(self.read_db()?);
        // Keyed by the identity taken before the read: a write racing the
        // read leaves a different identity, so the next call reads again.
        *slot = identity.map(|id| (id, Arc::clone(&db)));
        Ok(db)
    }

    fn write_db(&self, db: &ImageDb, _lock: &StoreLock) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(db).map_err(|source| ImageError::Json {
            what: "the image records".into(),
            source,
        })?;
        write_atomic(&self.db_path(), &bytes)
    }

    /// All image records, newest first.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let mut images = self.cached_db()?.images.clone();
        images.sort_by(|a, b| b.added.cmp(&a.added).then(a.id.cmp(&b.id)));
        Ok(images)
    }

    /// Finds an image by `name[:tag]`, `name@digest`, full digest, or an ID
    /// prefix (as `docker` does), with Docker's "No such image" error.
    pub fn find(&self, reference: &str) -> Result<ImageRecord> {
        find_in(&self.cached_db()?.images, reference)
    }

    /// The image's manifest, read from the store.
    pub fn manifest(&self, record: &ImageRecord) -> Result<ImageManifest> {
        let bytes = self.read_blob(&record.digest, MAX_DOCUMENT)?;
        document::parse_manifest(&bytes, None, &format!("manifest {}", record.digest))
    }

    /// The image's config, read from the store (parsed once per process:
    /// a config blob never changes under its digest).
    pub fn config(&self, record: &ImageRecord) -> Result<ImageConfiguration> {
        let cached = {
            let configs = self
                .parsed
                .configs
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            configs.get(&record.id).cloned()
        };
        if let Some(config) = cached {
            return Ok((*config).clone());
        }
        let bytes = self.read_blob(&record.id, MAX_DOCUMENT)?;
        let config = document::parse_config(&bytes, &format!("config {}", record.id))?;
        let mut configs = self
            .parsed
            .configs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if configs.len() >= MAX_CACHED_CONFIGS {
            configs.clear();
        }
        configs.insert(record.id, Arc::new(config.clone()));
        Ok(config)
    }

    /// Begins staging new content; nothing is visible until [`Store::commit`].
    pub fn staging(&self) -> Result<Staging<'_>> {
        Ok(Staging {
            store: self,
            area: TempArea::new(&self.root.join("tmp"))?,
            blobs: HashMap::new(),
            snapshots: HashMap::new(),
            replacing: HashSet::new(),
            parents: HashMap::new(),
        })
    }

    /// Makes staged images visible under the given names. Unpacks each
    /// image's layers first (unless its snapshot exists), then moves blobs and
    /// snapshot into place and rewrites the records, all under the lock.
    pub fn commit(
        &self,
        staging: Staging<'_>,
        images: &[(Digest, Vec<ImageRef>)],
    ) -> Result<Vec<ImageRecord>> {
        self.commit_build(staging, images, Vec::new())
    }

    /// [`Store::commit`], also keeping a build's steps in the build cache,
    /// owned by the images committed (their layer blobs are published from
    /// the staging area with them).
    pub fn commit_build(
        &self,
        mut staging: Staging<'_>,
        images: &[(Digest, Vec<ImageRef>)],
        cache: Vec<BuildCacheEntry>,
    ) -> Result<Vec<ImageRecord>> {
        let mut prepared = Vec::new();
        for (manifest_digest, names) in images {
            let manifest = staging.manifest(manifest_digest)?;
            let config_digest = Digest::from_oci(manifest.config().digest())?;
            let config = staging.config(&config_digest)?;
            let chain = staging.prepare_snapshot(&manifest, &config)?;
            let module = staging.module_info(&config, chain.as_ref())?;
            prepared.push((
                *manifest_digest,
                config_digest,
                manifest,
                config,
                chain,
                module,
                names,
            ));
        }

        let lock = self.lock()?;
        staging.sync()?;
        let mut db = self.read_db()?;
        let now = now_rfc3339();
        let mut out = Vec::new();
        for (digest, id, manifest, config, chain, module, names) in prepared {
            let mut needed = vec![digest, id];
            for layer in manifest.layers() {
                needed.push(Digest::from_oci(layer.digest())?);
            }
            for blob in &needed {
                staging.publish_blob(blob)?;
            }
            let size = match &chain {
                Some(c) => staging.publish_snapshot(c, &manifest, &config)?.size(),
                None => 0,
            };
            let names: Vec<String> = names.iter().map(ImageRef::name).collect();
            for other in db.images.iter_mut() {
                if other.digest != digest {
                    other.names.retain(|n| !names.contains(n));
                }
            }
            let record = match db.images.iter_mut().find(|r| r.digest == digest) {
                Some(existing) => {
                    for n in &names {
                        if !existing.names.contains(n) {
                            existing.names.push(n.clone());
                        }
                    }
                    if !names.is_empty() {
                        existing.last_tagged = Some(now.clone());
                    }
                    existing.clone()
                }
                None => {
                    let record = ImageRecord {
                        digest,
                        id,
                        names: names.clone(),
                        created: config.created().clone(),
                        added: now.clone(),
                        last_tagged: (!names.is_empty()).then(|| now.clone()),
                        size,
                        os: config.os().to_string(),
                        architecture: config.architecture().to_string(),
                        chain_id: chain,
                        module,
                        parent: staging.parents.get(&digest).copied(),
                    };
                    db.images.push(record.clone());
                    record
                }
            };
            out.push(record);
        }
        if !cache.is_empty() {
            let mut cache_db = self.read_build_cache()?;
            for mut entry in cache {
                if let Some(layer) = &entry.layer {
                    // A cached blob collected while this build ran: the
                    // step is not kept (the next build runs it again).
                    if !staging.has_blob(&layer.digest) {
                        continue;
                    }
                    staging.publish_blob(&layer.digest)?;
                }
                if let Some(chain) = entry.snapshot {
                    let dest = self.snapshot_dir(&chain);
                    if !dest.is_dir()
                        && let Some((dir, _)) = staging.snapshots.remove(&chain)
                    {
                        fs::rename(&dir, &dest)
                            .io_context(|| format!("storing snapshot {}", chain.short()))?;
                    }
                    entry.snapshot = dest.is_dir().then_some(chain);
                }
                entry.owners = out.iter().map(|r| r.digest).collect();
                match cache_db.entries.iter_mut().find(|e| e.key == entry.key) {
                    Some(kept) => {
                        for o in entry.owners {
                            if !kept.owners.contains(&o) {
                                kept.owners.push(o);
                            }
                        }
                        kept.created_by = entry.created_by;
                        kept.layer = entry.layer;
                        kept.snapshot = kept.snapshot.or(entry.snapshot);
                    }
                    None => cache_db.entries.push(entry),
                }
            }
            self.write_build_cache(&cache_db)?;
        }
        sync_dir(&self.root.join("blobs/sha256"))?;
        sync_dir(&self.root.join("snapshots"))?;
        db.format = STORE_FORMAT;
        self.write_db(&db, &lock)?;
        Ok(out)
    }

    fn write_build_cache(&self, cache: &BuildCacheDb) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(cache).map_err(|source| ImageError::Json {
            what: "build-cache.json".into(),
            source,
        })?;
        write_atomic(&self.build_cache_path(), &bytes)
    }

    fn build_cache_path(&self) -> PathBuf {
        self.root.join("build-cache.json")
    }

    fn read_build_cache(&self) -> Result<BuildCacheDb> {
        match File::open(self.build_cache_path()) {
            Ok(f) => {
                let bytes = read_bounded(f, MAX_DOCUMENT * 4, "build-cache.json")?;
                serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
                    what: "build-cache.json".into(),
                    source,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BuildCacheDb::default()),
            Err(e) => Err(e).io_context(|| "reading build-cache.json".to_string()),
        }
    }

    /// The build cache's entry for `key`, when it has one whose layer blob
    /// is still stored.
    pub fn build_cache_entry(&self, key: &Digest) -> Result<Option<BuildCacheEntry>> {
        Ok(self
            .read_build_cache()?
            .entries
            .into_iter()
            .find(|e| &e.key == key)
            .filter(|e| e.layer.as_ref().is_none_or(|l| self.has_blob(&l.digest))))
    }

    /// How many steps the build cache keeps.
    pub fn build_cache_len(&self) -> Result<usize> {
        Ok(self.read_build_cache()?.entries.len())
    }

    /// Puts `target` on the image `source` resolves to (moving it off any
    /// other image, as `docker tag` does).
    pub fn tag(&self, source: &str, target: &ImageRef) -> Result<ImageRecord> {
        let lock = self.lock()?;
        let mut db = self.read_db()?;
        let found = find_in(&db.images, source)?;
        let name = target.tagged().name();
        for r in db.images.iter_mut() {
            if r.digest == found.digest {
                if !r.names.contains(&name) {
                    r.names.push(name.clone());
                }
                r.last_tagged = Some(now_rfc3339());
            } else {
                r.names.retain(|n| n != &name);
            }
        }
        self.write_db(&db, &lock)?;
        find_in(&db.images, &name)
    }

    /// `rmi`: removes a name, and the image when no name is left. A bare ID
    /// of an image with several names needs `force`. `in_use` says which
    /// images instances still use (they are never deleted without `force`).
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &HashSet<Digest>,
    ) -> Result<RemoveOutcome> {
        let lock = self.lock()?;
        let mut db = self.read_db()?;
        let found = find_in(&db.images, reference)?;
        let by_name = reference
            .parse::<ImageRef>()
            .ok()
            .map(|r| r.tagged().name())
            .filter(|n| found.names.contains(n));
        let mut outcome = RemoveOutcome::default();
        let record = db
            .images
            .iter_mut()
            .find(|r| r.digest == found.digest)
            .expect("find_in returned a record of this list");
        match by_name {
            Some(name) if record.names.len() > 1 => {
                record.names.retain(|n| n != &name);
                outcome.untagged.push(name);
            }
            _ => {
                if record.names.len() > 1 && !force {
                    return Err(ImageError::Conflict {
                        reference: reference.to_string(),
                        reason: format!(
                            "image {} is referenced in multiple repositories (must be forced)",
                            record.id.short()
                        ),
                    });
                }
                if in_use.contains(&record.digest) && !force {
                    return Err(ImageError::Conflict {
                        reference: reference.to_string(),
                        reason: format!(
                            "image {} is used by a container (must be forced)",
                            record.id.short()
                        ),
                    });
                }
                outcome.deleted.push(record.clone());
                outcome.untagged.append(&mut record.names);
            }
        }
        db.images
            .retain(|r| !outcome.deleted.iter().any(|d| d.digest == r.digest));
        self.write_db(&db, &lock)?;
        self.collect_garbage(&db, &lock)?;
        Ok(outcome)
    }

    /// Removes dangling images (all unused ones with `all`), then every blob
    /// and snapshot no image refers to, and stale staging areas.
    pub fn prune(&self, all: bool, in_use: &HashSet<Digest>) -> Result<PruneOutcome> {
        let lock = self.lock()?;
        let mut db = self.read_db()?;
        let (gone, kept): (Vec<_>, Vec<_>) = db
            .images
            .drain(..)
            .partition(|r| !in_use.contains(&r.digest) && (all || r.names.is_empty()));
        db.images = kept;
        self.write_db(&db, &lock)?;
        let reclaimed = self.collect_garbage(&db, &lock)? + self.remove_unheld_downloads();
        self.remove_stale_tmp();
        Ok(PruneOutcome {
            deleted_images: gone,
            reclaimed_bytes: reclaimed,
        })
    }

    /// Deletes blobs and snapshots that no record refers to; returns the
    /// bytes freed. Snapshots are renamed away before deletion so a crash
    /// never leaves a half-deleted snapshot under its valid name.
    fn collect_garbage(&self, db: &ImageDb, _lock: &StoreLock) -> Result<u64> {
        let mut blobs = BTreeSet::new();
        let mut chains = BTreeSet::new();
        // A cached build step goes with the last image whose build kept it.
        let mut cache_db = self.read_build_cache()?;
        let before = cache_db.entries.len();
        for e in cache_db.entries.iter_mut() {
            e.owners
                .retain(|o| db.images.iter().any(|r| &r.digest == o));
        }
        cache_db.entries.retain(|e| !e.owners.is_empty());
        if cache_db.entries.len() != before {
            self.write_build_cache(&cache_db)?;
        }
        for e in &cache_db.entries {
            if let Some(l) = &e.layer {
                blobs.insert(l.digest.hex());
            }
            if let Some(c) = e.snapshot {
                chains.insert(c.hex());
            }
        }
        for r in &db.images {
            blobs.insert(r.digest.hex());
            blobs.insert(r.id.hex());
            if let Ok(m) = self.manifest(r) {
                for l in m.layers() {
                    blobs.insert(l.digest().digest().to_string());
                }
            }
            if let Some(c) = r.chain_id {
                chains.insert(c.hex());
            }
        }
        let mut freed = 0;
        let blob_dir = self.root.join("blobs/sha256");
        for entry in
            fs::read_dir(&blob_dir).io_context(|| format!("listing {}", blob_dir.display()))?
        {
            let entry = entry.io_context(|| format!("listing {}", blob_dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !blobs.contains(&name) {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path()).io_context(|| format!("removing blob {name}"))?;
            }
        }
        let snap_dir = self.root.join("snapshots");
        for entry in
            fs::read_dir(&snap_dir).io_context(|| format!("listing {}", snap_dir.display()))?
        {
            let entry = entry.io_context(|| format!("listing {}", snap_dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !chains.contains(&name) {
                freed += dir_size(&entry.path());
                let area = TempArea::new(&self.root.join("tmp"))?;
                let doomed = area.path().join("doomed");
                fs::rename(entry.path(), &doomed)
                    .io_context(|| format!("removing snapshot {name}"))?;
                drop(area);
            }
        }
        sync_dir(&blob_dir)?;
        sync_dir(&snap_dir)?;
        Ok(freed)
    }

    /// Space used, by kind, for `system df`.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let images = self.read_db()?.images;
        Ok(DiskUsage {
            images: images.len(),
            dangling_images: images.iter().filter(|r| r.names.is_empty()).count(),
            blob_bytes: dir_size(&self.root.join("blobs")),
            snapshot_bytes: dir_size(&self.root.join("snapshots")),
            cache_bytes: dir_size(&self.root.join("cache")),
            tmp_bytes: dir_size(&self.root.join("tmp")) + dir_size(&self.downloads_dir()),
        })
    }

    /// Removes the kept downloads of interrupted pulls, but for a file a
    /// running pull holds locked; returns the bytes freed.
    fn remove_unheld_downloads(&self) -> u64 {
        let Ok(entries) = fs::read_dir(self.downloads_dir()) else {
            return 0;
        };
        let mut freed = 0;
        for entry in entries.flatten() {
            let Ok(file) = File::open(entry.path()) else {
                continue;
            };
            if file.try_lock().is_ok() {
                freed += file.metadata().map_or(0, |m| m.len());
                let _ = fs::remove_file(entry.path());
            }
        }
        freed
    }

    fn remove_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('.').next().unwrap_or_default();
            let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
            if !alive {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn find_in(images: &[ImageRecord], reference: &str) -> Result<ImageRecord> {
    let no_such = || ImageError::NoSuchImage(reference.to_string());
    if let Ok(r) = reference.parse::<ImageRef>() {
        if let Some(d) = r.digest {
            return images
                .iter()
                .find(|i| {
                    i.digest == d
                        && (r.repository.is_empty()
                            || i.names
                                .iter()
                                .any(|n| n.starts_with(&format!("{}:", r.repository))))
                })
                .cloned()
                .ok_or_else(no_such);
        }
        let name = r.tagged().name();
        if let Some(found) = images.iter().find(|i| i.names.contains(&name)) {
            return Ok(found.clone());
        }
    }
    // An ID (config digest) or manifest digest, whole or as a hex prefix.
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.is_empty()
        || hex.len() > 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(no_such());
    }
    let matches: Vec<&ImageRecord> = images
        .iter()
        .filter(|i| i.id.hex().starts_with(hex) || (hex.len() == 64 && i.digest.hex() == hex))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(no_such()),
        many => Err(ImageError::AmbiguousImage {
            reference: reference.to_string(),
            candidates: many
                .iter()
                .map(|i| i.id.short())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Blobs and snapshots being prepared for one operation. Dropping it without
/// committing removes everything it wrote.
pub struct Staging<'s> {
    store: &'s Store,
    area: TempArea,
    blobs: HashMap<Digest, u64>,
    snapshots: HashMap<Digest, (PathBuf, SnapshotMeta)>,
    /// Stored snapshots found damaged, whose staged copy replaces them.
    replacing: HashSet<Digest>,
    /// The parent of a staged image (by manifest digest), recorded with it.
    parents: HashMap<Digest, Digest>,
}

impl<'s> Staging<'s> {
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// A scratch directory inside the staging area (removed with it).
    pub fn scratch_dir(&self, name: &str) -> Result<PathBuf> {
        let p = self.area.path().join(format!("scratch-{name}"));
        create_private_dir_all(&p).io_context(|| format!("creating {}", p.display()))?;
        Ok(p)
    }

    fn staged_blob_path(&self, d: &Digest) -> PathBuf {
        self.area.path().join("blobs").join(d.hex())
    }

    /// Streams a blob into the staging area while hashing it. With
    /// `expected`, a mismatch fails and the bytes are discarded.
    pub fn write_blob(
        &mut self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let dir = self.area.path().join("blobs");
        create_private_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        let tmp = self.area.unique_path("incoming");
        let file =
            create_private_file(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, file));
        io::copy(reader, &mut w).map_err(|e| {
            let doing = if is_disk_error(&e) {
                "writing"
            } else {
                "reading"
            };
            ImageError::Io {
                context: format!("{doing} {what}"),
                source: e,
            }
        })?;
        let (buf, digest, size) = w.finish();
        buf.into_inner()
            .map_err(|e| e.into_error())
            .io_context(|| format!("writing {what} to the store"))?;
        if let Some(exp) = expected
            && exp != &digest
        {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::DigestMismatch {
                what: what.to_string(),
                expected: exp.to_string(),
                actual: digest.to_string(),
            });
        }
        let dest = self.staged_blob_path(&digest);
        fs::rename(&tmp, &dest).io_context(|| format!("staging {what}"))?;
        self.blobs.insert(digest, size);
        Ok((digest, size))
    }

    /// A fresh path inside the staging area for a file a caller writes and
    /// then hands over with [`Staging::adopt_blob`].
    pub fn new_file_path(&self, prefix: &str) -> PathBuf {
        self.area.unique_path(prefix)
    }

    /// Takes a file written at `path` (inside this area) whose digest and
    /// size the caller computed while writing it.
    pub fn adopt_blob(&mut self, path: &Path, digest: Digest, size: u64) -> Result<()> {
        let dir = self.area.path().join("blobs");
        create_private_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        fs::rename(path, self.staged_blob_path(&digest))
            .io_context(|| format!("staging blob {digest}"))?;
        self.blobs.insert(digest, size);
        Ok(())
    }

    /// Records `parent` (an image ID) as the parent of the staged image
    /// `manifest` when [`Store::commit`] stores it.
    pub fn set_parent(&mut self, manifest: Digest, parent: Digest) {
        self.parents.insert(manifest, parent);
    }

    pub fn write_blob_bytes(&mut self, bytes: &[u8], what: &str) -> Result<Digest> {
        Ok(self.write_blob(&mut &bytes[..], None, what)?.0)
    }

    /// Writes `config` and a manifest listing `layers` (canonical JSON) and
    /// returns the manifest digest.
    pub fn write_image(
        &mut self,
        config: &impl Serialize,
        layers: Vec<oci_spec::image::Descriptor>,
        annotations: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Digest> {
        let config_bytes = document::canonical_json(config);
        let config_digest = self.write_blob_bytes(&config_bytes, "the image config")?;
        let config_desc = oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::ImageConfig,
            config_bytes.len() as u64,
            config_digest.to_oci(),
        );
        let mut manifest = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(oci_spec::image::MediaType::ImageManifest)
            .config(config_desc)
            .layers(layers)
            .build()
            .map_err(|e| ImageError::invalid("image manifest", e.to_string()))?;
        manifest.set_annotations(annotations);
        let bytes = document::canonical_json(&manifest);
        self.write_blob_bytes(&bytes, "the image manifest")
    }

    /// The size of a blob staged here or already stored.
    pub fn blob_size(&self, d: &Digest) -> Option<u64> {
        self.blobs
            .get(d)
            .copied()
            .or_else(|| fs::metadata(self.store.blob_path(d)).ok().map(|m| m.len()))
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blobs.contains_key(d) || self.store.has_blob(d)
    }

    /// Opens a blob staged here, or else one already in the store.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        if self.blobs.contains_key(d) {
            let p = self.staged_blob_path(d);
            return File::open(&p).io_context(|| format!("opening staged blob {d}"));
        }
        self.store.open_blob(d)
    }

    pub fn read_blob(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        read_bounded(self.open_blob(d)?, max, &d.to_string())
    }

    pub fn manifest(&self, d: &Digest) -> Result<ImageManifest> {
        document::parse_manifest(
            &self.read_blob(d, MAX_DOCUMENT)?,
            None,
            &format!("manifest {d}"),
        )
    }

    pub fn config(&self, d: &Digest) -> Result<ImageConfiguration> {
        document::parse_config(&self.read_blob(d, MAX_DOCUMENT)?, &format!("config {d}"))
    }

    /// Makes sure the merged rootfs of these layers exists (staged here or
    /// stored), unpacking and verifying each layer against its diff_id.
    /// Returns the chain ID, or `None` for an image without layers.
    pub fn prepare_snapshot(
        &mut self,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
    ) -> Result<Option<Digest>> {
        let diff_ids = document::diff_ids(config)?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::invalid(
                "image",
                format!(
                    "the config lists {} diff_ids but the manifest has {} layers",
                    diff_ids.len(),
                    manifest.layers().len()
                ),
            ));
        }
        let Some(chain) = chain_id(&diff_ids) else {
            return Ok(None);
        };
        if self.snapshots.contains_key(&chain) {
            return Ok(Some(chain));
        }
        // A stored snapshot is used as it is only when it still holds what
        // was unpacked: one a guest or a host user changed (or an older
        // wrun's, with nothing to check it by) is unpacked again from the
        // layers and replaces it at commit.
        if self.store.snapshot_dir(&chain).is_dir() {
            if self.store.snapshot_intact(&chain) {
                return Ok(Some(chain));
            }
            self.replacing.insert(chain);
        }
        let dir = self.area.path().join(format!("snapshot-{}", chain.hex()));
        create_private_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        let rootfs = dir.join("rootfs");
        // The rootfs directory is the guest's `/`: the mode of an image root.
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&rootfs)
            .io_context(|| format!("creating {}", rootfs.display()))?;
        let root = Dir::open_ambient_dir(&rootfs, ambient_authority())
            .io_context(|| format!("opening {}", rootfs.display()))?;
        let mut budget = UnpackBudget::default();
        let mut layers = Vec::new();
        let mut read = FileDigests::default();
        if let Some((prefix, linked)) = self.link_prefix(&root, &diff_ids, &mut read)? {
            budget = UnpackBudget::spent(prefix.size(), linked);
            layers = prefix.layers;
        }
        for (desc, expected) in manifest.layers().iter().zip(&diff_ids).skip(layers.len()) {
            let digest = Digest::from_oci(desc.digest())?;
            document::check_layer_media_type(desc)?;
            let what = format!("layer {}", digest.short());
            let size = self
                .blob_size(&digest)
                .ok_or_else(|| ImageError::invalid(&what, format!("blob {digest} is missing")))?;
            if size != desc.size() {
                return Err(ImageError::SizeMismatch {
                    what,
                    expected: desc.size(),
                    actual: size,
                });
            }
            let blob = self.open_blob(&digest)?;
            let stream = unpack::decompressed(blob, &what)?;
            let stats = unpack::apply_layer(
                &root,
                stream,
                &digest.short(),
                &self.store.limits,
                &mut budget,
            )?;
            if &stats.diff_id != expected {
                return Err(ImageError::DigestMismatch {
                    what: format!("uncompressed {what} (diff_id)"),
                    expected: expected.to_string(),
                    actual: stats.diff_id.to_string(),
                });
            }
            layers.push(SnapshotLayer {
                diff_id: stats.diff_id,
                size: stats.size,
            });
        }
        let digest = rootfs_digest_with(&root, &mut read)
            .io_context(|| format!("reading back the unpacked {}", rootfs.display()))?;
        let meta = SnapshotMeta {
            layers,
            rootfs_digest: Some(digest),
        };
        let bytes = serde_json::to_vec(&meta).map_err(|source| ImageError::Json {
            what: "snapshot meta".into(),
            source,
        })?;
        create_private_file(&dir.join("meta.json"))
            .and_then(|mut f| f.write_all(&bytes))
            .io_context(|| "writing snapshot meta".into())?;
        self.snapshots.insert(chain, (dir, meta));
        Ok(Some(chain))
    }

    /// Hard-links into the empty `root` the tree of the stored snapshot of
    /// the longest proper prefix of `diff_ids` that has one still holding
    /// what was unpacked into it (a commit's base, a build's `FROM`), so
    /// those layers are not unpacked again; returns its meta and the number
    /// of entries linked. Applying a layer replaces or removes a file and
    /// never writes into one, so the linked files stay the prefix's. The
    /// prefix is read whole to check it; `read` keeps its files' digests
    /// for the new tree's.
    fn link_prefix(
        &self,
        root: &Dir,
        diff_ids: &[Digest],
        read: &mut FileDigests,
    ) -> Result<Option<(SnapshotMeta, u64)>> {
        for n in (1..diff_ids.len()).rev() {
            let Some(prefix) = chain_id(&diff_ids[..n]) else {
                continue;
            };
            let Ok(meta) = self.store.snapshot_meta(&prefix) else {
                continue;
            };
            let Some(recorded) = meta.rootfs_digest.filter(|_| meta.layers.len() == n) else {
                continue;
            };
            let path = self.store.snapshot_dir(&prefix).join("rootfs");
            let Ok(tree) = Dir::open_ambient_dir(&path, ambient_authority()) else {
                continue;
            };
            if !rootfs_digest_with(&tree, read).is_ok_and(|found| found == recorded) {
                read.0.clear();
                continue;
            }
            return match link_tree(&tree, root) {
                Ok(linked) => Ok(Some((meta, linked))),
                // The prefix changed or went (a prune) while it was linked:
                // what was linked goes, and every layer is unpacked.
                Err(_) => {
                    read.0.clear();
                    empty_dir(root).io_context(|| "clearing a snapshot being made".into())?;
                    Ok(None)
                }
            };
        }
        Ok(None)
    }

    /// The rootfs directory of a snapshot staged here or stored.
    pub fn rootfs(&self, chain: &Digest) -> PathBuf {
        match self.snapshots.get(chain) {
            Some((dir, _)) => dir.join("rootfs"),
            None => self
                .store
                .root
                .join("snapshots")
                .join(chain.hex())
                .join("rootfs"),
        }
    }

    /// Finds, hashes and classifies the module the entrypoint names.
    pub fn module_info(
        &self,
        config: &ImageConfiguration,
        chain: Option<&Digest>,
    ) -> Result<Option<ModuleInfo>> {
        let Some(chain) = chain else { return Ok(None) };
        let Some(entry) = document::entrypoint_module(config) else {
            return Ok(None);
        };
        let root = match Dir::open_ambient_dir(self.rootfs(chain), ambient_authority()) {
            Ok(d) => d,
            Err(_) => return Ok(None),
        };
        let rel = entry.trim_start_matches('/');
        let Ok(file) = root.open(rel) else {
            return Ok(None);
        };
        let mut reader = HashingReader::new(file);
        let mut header = [0u8; 8];
        let n = read_full(&mut reader, &mut header).io_context(|| format!("reading {entry}"))?;
        let Some(kind) = ModuleKind::sniff(&header[..n]) else {
            return Ok(None);
        };
        let (digest, size) = reader.finish().io_context(|| format!("reading {entry}"))?;
        Ok(Some(ModuleInfo {
            path: entry,
            digest,
            kind,
            size,
        }))
    }

    fn sync(&self) -> Result<()> {
        let dir = File::open(self.area.path()).io_context(|| "opening the staging area".into())?;
        rustix::fs::syncfs(&dir)
            .map_err(io::Error::from)
            .io_context(|| "syncing staged files to disk".into())
    }

    fn publish_blob(&mut self, d: &Digest) -> Result<()> {
        let dest = self.store.blob_path(d);
        if dest.is_file() {
            return Ok(());
        }
        if !self.blobs.contains_key(d) {
            return Err(ImageError::invalid("image", format!("blob {d} is missing")));
        }
        fs::rename(self.staged_blob_path(d), &dest).io_context(|| format!("storing blob {d}"))
    }

    fn publish_snapshot(
        &mut self,
        chain: &Digest,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
    ) -> Result<SnapshotMeta> {
        let dest = self.store.snapshot_dir(chain);
        if self.replacing.remove(chain) && dest.is_dir() {
            let (dir, meta) = self
                .snapshots
                .remove(chain)
                .expect("a replacement is staged when one is needed");
            // An older wrun's snapshot (no digest recorded) that holds just
            // what was unpacked now gets the digest and stays: instances
            // running on it keep their tree.
            let unrecorded = self
                .store
                .snapshot_meta(chain)
                .is_ok_and(|m| m.rootfs_digest.is_none());
            if unrecorded
                && Dir::open_ambient_dir(dest.join("rootfs"), ambient_authority())
                    .and_then(|root| rootfs_digest(&root))
                    .is_ok_and(|found| Some(found) == meta.rootfs_digest)
            {
                let bytes = serde_json::to_vec(&meta).map_err(|source| ImageError::Json {
                    what: "snapshot meta".into(),
                    source,
                })?;
                write_atomic(&dest.join("meta.json"), &bytes)?;
                return Ok(meta);
            }
            // One atomic swap: a run starting now finds the damaged tree
            // or the repaired one, never no snapshot. The damaged tree ends
            // up in the staging area and goes with it (an instance still
            // running on it loses what it had not opened yet).
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &dir,
                rustix::fs::CWD,
                &dest,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .map_err(io::Error::from)
            .io_context(|| format!("replacing the damaged snapshot {}", chain.short()))?;
            return Ok(meta);
        }
        if dest.is_dir() {
            return self.store.snapshot_meta(chain);
        }
        if !self.snapshots.contains_key(chain) {
            // Collected by a concurrent prune after our check: unpack again.
            self.prepare_snapshot(manifest, config)?;
            self.sync()?;
        }
        let (dir, meta) = self.snapshots.remove(chain).expect("prepared above");
        fs::rename(&dir, &dest).io_context(|| format!("storing snapshot {}", chain.short()))?;
        Ok(meta)
    }
}

/// ChainID of a layer stack (OCI image spec): the identity of the merged
/// rootfs, shared by every image with the same layers in the same order.
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let mut iter = diff_ids.iter();
    let mut chain = *iter.next()?;
    for d in iter {
        chain = Digest::of(format!("{chain} {d}").as_bytes());
    }
    Some(chain)
}

/// A private directory under `tmp/`, removed on drop. Its name starts with
/// the owner's pid so `Store::open` can remove areas of dead processes.
pub struct TempArea {
    path: PathBuf,
    counter: AtomicU64,
}

static AREA_SEQ: AtomicU64 = AtomicU64::new(0);

impl TempArea {
    fn new(tmp: &Path) -> Result<TempArea> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = tmp.join(format!(
            "{}.{}.{}",
            std::process::id(),
            nanos,
            AREA_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        create_private_dir_all(&path).io_context(|| format!("creating {}", path.display()))?;
        Ok(TempArea {
            path,
            counter: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unique_path(&self, prefix: &str) -> PathBuf {
        self.path.join(format!(
            "{prefix}-{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for TempArea {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Mode of the files wrun writes in its store.
pub const PRIVATE_FILE: u32 = 0o600;

/// Mode of the directories wrun makes in its store.
pub const PRIVATE_DIR: u32 = 0o700;

/// Creates `path` and its missing parents, each 0700 from the start (no
/// window in which another user could open it).
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(path)
}

/// Creates (or truncates) `path` for writing, 0600 from the start.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE)
        .open(path)
}

/// What wrun keeps at the top of a store root: the image store's entries,
/// the daemon's (`containers/`, `networks/`, `daemon.lock`, `daemon.log`)
/// and the runtime's (`scratch/`). Only these are made private: a root shared with
/// other files leaves those alone.
const STORE_ENTRIES: &[&str] = &[
    "blobs",
    "snapshots",
    "tmp",
    "downloads",
    "cache",
    "images.json",
    "build-cache.json",
    "lock",
    "containers",
    "networks",
    "daemon.lock",
    "daemon.log",
    "scratch",
];

/// Whether a mode lets anyone but the owner in.
fn loose(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o077 != 0
}

/// Makes an existing store private, as [`Store::open`] finds it: when the
/// root or one of wrun's entries at its top lets group or others in (a
/// store an older wrun made 0755/0644), every directory and file wrun keeps
/// there loses its group and other bits. Snapshot rootfs trees keep the
/// image's modes; symlinks are never followed.
pub fn make_private(root: &Path) -> Result<()> {
    let failed = |path: &Path| {
        format!(
            "making the store private (removing group and other access to {}; `chmod -R go= {}` does it by hand)",
            path.display(),
            root.display()
        )
    };
    // The root may be a symlink to the real directory: its target counts.
    let root_meta = fs::metadata(root).io_context(|| failed(root))?;
    let entries: Vec<PathBuf> = STORE_ENTRIES
        .iter()
        .map(|name| root.join(name))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    let any_loose = loose(&root_meta)
        || entries
            .iter()
            .any(|p| fs::symlink_metadata(p).is_ok_and(|m| loose(&m)));
    if !any_loose {
        return Ok(());
    }
    tighten(root, &root_meta).io_context(|| failed(root))?;
    let mut stack = entries;
    while let Some(path) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Removed meanwhile (a staging area ending): nothing to tighten.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).io_context(|| failed(&path)),
        };
        // A rootfs (stored, staged or being deleted) is the guest's view:
        // its modes are the image's.
        if meta.file_type().is_symlink() || (meta.is_dir() && path.ends_with("rootfs")) {
            continue;
        }
        tighten(&path, &meta).io_context(|| failed(&path))?;
        if meta.is_dir() {
            for entry in fs::read_dir(&path).io_context(|| failed(&path))? {
                stack.push(entry.io_context(|| failed(&path))?.path());
            }
        }
    }
    Ok(())
}

/// Removes the group and other bits of one directory or file.
fn tighten(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7700))
}

/// A digest of everything a rootfs holds: each path (in byte order), its
/// type and permission bits, and a file's content or a symlink's target.
/// Recorded at unpack time, it tells whether a snapshot was changed since.
pub fn rootfs_digest(root: &Dir) -> io::Result<Digest> {
    rootfs_digest_with(root, &mut FileDigests::default())
}

/// The content digests of the files a [`rootfs_digest_with`] read, by
/// inode (device, inode, size, mtime): a tree of hard links to them is
/// digested without reading their data again.
#[derive(Default)]
struct FileDigests(HashMap<(u64, u64, u64, i64, i64), Digest>);

/// [`rootfs_digest`], with the file digests of `read` used and added to.
fn rootfs_digest_with(root: &Dir, read: &mut FileDigests) -> io::Result<Digest> {
    use cap_std::fs::MetadataExt as _;
    use cap_std::fs::PermissionsExt as _;
    use std::os::unix::ffi::OsStrExt;
    let mut tree = HashingWriter::new(io::sink());
    // (directory handle, its path from the root) still to list.
    let mut pending = vec![(root.try_clone()?, Vec::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let mut names = Vec::new();
        for entry in dir.entries()? {
            names.push(entry?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let meta = dir.symlink_metadata(&name)?;
            let mut path = prefix.clone();
            path.push(b'/');
            path.extend_from_slice(name.as_bytes());
            tree.write_all(&path)?;
            let mode = meta.permissions().mode() & 0o7777;
            let kind = meta.file_type();
            if kind.is_dir() {
                writeln!(tree, "\0d{mode:o}")?;
                pending.push((dir.open_dir(&name)?, path));
            } else if kind.is_symlink() {
                write!(tree, "\0l")?;
                tree.write_all(dir.read_link_contents(&name)?.as_os_str().as_bytes())?;
                tree.write_all(b"\n")?;
            } else if kind.is_file() {
                let key = (
                    meta.dev(),
                    meta.ino(),
                    meta.len(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                );
                let digest = match read.0.get(&key) {
                    Some(digest) => *digest,
                    None => {
                        let mut content = HashingReader::new(dir.open(&name)?);
                        io::copy(&mut content, &mut io::sink())?;
                        let (digest, size) = content.finish()?;
                        if size == meta.len() {
                            read.0.insert(key, digest);
                        }
                        digest
                    }
                };
                let size = meta.len();
                writeln!(tree, "\0f{mode:o} {size} {digest}")?;
            } else {
                writeln!(tree, "\0o{mode:o}")?;
            }
        }
    }
    Ok(tree.finish().1)
}

/// Recreates the tree of `from` in the empty directory `to`: directories
/// made with their modes, symlinks with their targets, files hard-linked
/// (copied when a file has as many links as the filesystem allows), all
/// with their times (a layer's, as unpacking set them; `to`'s own too).
/// Returns the number of entries. Other kinds (an unpacked snapshot has
/// none) are left out.
fn link_tree(from: &Dir, to: &Dir) -> io::Result<u64> {
    use cap_fs_ext::{DirExt as _, SystemTimeSpec};
    use cap_std::fs::PermissionsExt as _;
    let mut entries = 0;
    // Directory modes are set once their entries are in (a directory
    // without write permission could not be filled).
    let mut modes = Vec::new();
    let times = |meta: &cap_std::fs::Metadata| -> io::Result<_> {
        let spec = |t: cap_std::time::SystemTime| Some(SystemTimeSpec::Absolute(t));
        Ok((spec(meta.accessed()?), spec(meta.modified()?)))
    };
    let mut pending = vec![(from.try_clone()?, to.try_clone()?, PathBuf::new())];
    while let Some((src, dst, path)) = pending.pop() {
        for entry in src.entries()? {
            let name = entry?.file_name();
            let meta = src.symlink_metadata(&name)?;
            let kind = meta.file_type();
            entries += 1;
            if kind.is_dir() {
                dst.create_dir(&name)?;
                modes.push((
                    path.join(&name),
                    meta.permissions().mode() & 0o7777,
                    times(&meta)?,
                ));
                pending.push((src.open_dir(&name)?, dst.open_dir(&name)?, path.join(&name)));
            } else if kind.is_symlink() {
                dst.symlink_contents(src.read_link_contents(&name)?, &name)?;
                let (atime, mtime) = times(&meta)?;
                dst.set_symlink_times(&name, atime, mtime)?;
            } else if kind.is_file() {
                match src.hard_link(&name, &dst, &name) {
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::MLINK.raw_os_error()) => {
                        let mut copy = dst.create(&name)?;
                        io::copy(&mut src.open(&name)?, &mut copy)?;
                        copy.set_permissions(cap_std::fs::Permissions::from_mode(
                            meta.permissions().mode() & 0o7777,
                        ))?;
                        let (atime, mtime) = times(&meta)?;
                        dst.set_times(&name, atime, mtime)?;
                    }
                    other => other?,
                }
            } else {
                entries -= 1;
            }
        }
    }
    for (path, mode, (atime, mtime)) in modes.into_iter().rev() {
        to.set_permissions(&path, cap_std::fs::Permissions::from_mode(mode))?;
        to.set_times(&path, atime, mtime)?;
    }
    let (atime, mtime) = times(&from.dir_metadata()?)?;
    to.set_times(".", atime, mtime)?;
    Ok(entries)
}

/// Removes everything in `dir` (symlinks removed, never followed).
fn empty_dir(dir: &Dir) -> io::Result<()> {
    for entry in dir.entries()? {
        let name = entry?.file_name();
        if dir.symlink_metadata(&name)?.is_dir() {
            dir.remove_dir_all(&name)?;
        } else {
            dir.remove_file(&name)?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` so that readers see the old or the new content,
/// never a mix: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = create_private_file(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .io_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .io_context(|| format!("syncing {}", tmp.display()))?;
    fs::rename(&tmp, path).io_context(|| format!("replacing {}", path.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context(|| format!("syncing {}", dir.display()))
}

fn read_bounded(file: File, max: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .io_context(|| format!("reading {what}"))?;
    if buf.len() as u64 > max {
        return Err(ImageError::LimitExceeded {
            what: format!("document {what}"),
            limit: format!("{max} bytes"),
        });
    }
    Ok(buf)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Bytes used by the files under `path` (not following symlinks).
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else {
            total += meta.len();
        }
    }
    total
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(name: &str) -> ImageRecord {
        ImageRecord {
            digest: Digest::of(name.as_bytes()),
            id: Digest::of(format!("config of {name}").as_bytes()),
            names: vec![name.to_owned()],
            created: None,
            added: "2026-01-01T00:00:00Z".into(),
            last_tagged: None,
            size: 0,
            os: "wasip1".into(),
            architecture: "wasm".into(),
            chain_id: None,
            module: None,
            parent: None,
        }
    }

    /// Writes `images.json` as another process (the CLI) would, then ages
    /// it when `age` is set so the cache may trust it.
    fn write_index(store: &Store, names: &[&str], age: Option<u64>) {
        let db = ImageDb {
            format: STORE_FORMAT,
            images: names.iter().map(|n| record(n)).collect(),
        };
        write_atomic(&store.db_path(), &serde_json::to_vec(&db).unwrap()).unwrap();
        if let Some(secs) = age {
            let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
            File::options()
                .write(true)
                .open(store.db_path())
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
    }

    #[test]
    fn a_linked_tree_keeps_the_times_of_directories_symlinks_and_files() {
        use std::time::{Duration, SystemTime};
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("from"), tmp.path().join("to"));
        fs::create_dir_all(from.join("d/sub")).unwrap();
        fs::write(from.join("d/f"), "f").unwrap();
        std::os::unix::fs::symlink("f", from.join("d/l")).unwrap();
        fs::create_dir(&to).unwrap();
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::new(s, 250);
        let times = |s: u64| fs::FileTimes::new().set_accessed(at(s)).set_modified(at(s));
        // Leaves first: setting a child's times leaves its directory's.
        File::open(from.join("d/f"))
            .unwrap()
            .set_times(times(3))
            .unwrap();
        rustix::fs::utimensat(
            rustix::fs::CWD,
            from.join("d/l"),
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 4,
                    tv_nsec: 250,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: 4,
                    tv_nsec: 250,
                },
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        for (dir, s) in [("d/sub", 2), ("d", 1), ("", 5)] {
            File::open(from.join(dir))
                .unwrap()
                .set_times(times(s))
                .unwrap();
        }
        let open = |p: &Path| Dir::open_ambient_dir(p, ambient_authority()).unwrap();
        assert_eq!(link_tree(&open(&from), &open(&to)).unwrap(), 4);
        for (path, s) in [("d/sub", 2), ("d", 1), ("", 5), ("d/f", 3), ("d/l", 4)] {
            let meta = fs::symlink_metadata(to.join(path)).unwrap();
            assert_eq!(meta.modified().unwrap(), at(s), "{path:?}");
        }
    }

    #[test]
    fn cached_image_index_follows_changes_made_by_another_handle() {
        let tmp = tempfile::tempdir().unwrap();
        let daemon = Store::open(tmp.path()).unwrap();
        let cli = Store::open(tmp.path()).unwrap();
        write_index(&cli, &["a:1"], Some(10));
        assert!(daemon.find("a:1").is_ok());
        // Cached now; a rename-replace of the same size must still be seen,
        // whether it is fresh (not trusted) or already aged.
        write_index(&cli, &["b:1"], None);
        assert!(daemon.find("b:1").is_ok(), "a fresh change was missed");
        assert!(daemon.find("a:1").is_err(), "a removed name is still found");
        write_index(&cli, &["c:1"], Some(5));
        assert!(daemon.find("c:1").is_ok(), "an aged change was missed");
        assert_eq!(daemon.images().unwrap().len(), 1);
        std::fs::remove_file(cli.db_path()).unwrap();
        assert!(
            daemon.find("c:1").is_err(),
            "the removed index is still used"
        );
    }
    /// Every directory and file under `root` whose mode lets group or
    /// others in, except inside snapshot rootfs trees.
    fn loose_paths(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() || p.ends_with("rootfs") {
                continue;
            }
            if loose(&meta) {
                out.push(format!("{:o} {}", meta.permissions().mode(), p.display()));
            }
            if meta.is_dir() {
                stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
        out
    }

    #[test]
    fn a_new_store_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a/store");
        let store = Store::open(&root).unwrap();
        write_index(&store, &["a:1"], None);
        drop(store.lock().unwrap());
        let staging = store.staging().unwrap();
        staging.scratch_dir("x").unwrap();
        assert_eq!(loose_paths(&tmp.path().join("a")), Vec::<String>::new());
    }

    #[test]
    fn an_old_loose_store_is_tightened_on_open_but_not_its_rootfs_trees() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("store");
        Store::open(&root).unwrap();
        let rootfs = root.join("snapshots/abc/rootfs");
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::write(rootfs.join("etc/motd"), b"hi").unwrap();
        fs::write(root.join("snapshots/abc/meta.json"), b"{}").unwrap();
        fs::create_dir_all(root.join("containers/logs")).unwrap();
        fs::write(root.join("containers/records.journal"), b"").unwrap();
        fs::write(root.join("unrelated"), b"the user's").unwrap();
        let chmod =
            |p: &Path, mode: u32| fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
        for dir in [
            "",
            "snapshots",
            "snapshots/abc",
            "containers",
            "containers/logs",
        ] {
            chmod(&root.join(dir), 0o755);
        }
        for file in [
            "snapshots/abc/meta.json",
            "containers/records.journal",
            "unrelated",
        ] {
            chmod(&root.join(file), 0o644);
        }
        for p in [&rootfs, &rootfs.join("etc")] {
            chmod(p, 0o755);
        }
        chmod(&rootfs.join("etc/motd"), 0o644);
        // An executable stays one, for its owner.
        fs::write(root.join("cache/tool"), b"").unwrap();
        chmod(&root.join("cache/tool"), 0o755);

        Store::open(&root).unwrap();
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("snapshots/abc")), 0o700);
        assert_eq!(mode(&root.join("containers/logs")), 0o700);
        assert_eq!(mode(&root.join("containers/records.journal")), 0o600);
        assert_eq!(mode(&root.join("snapshots/abc/meta.json")), 0o600);
        assert_eq!(mode(&root.join("cache/tool")), 0o700);
        // The guest's view keeps the image's modes; other files are the user's.
        assert_eq!(mode(&rootfs), 0o755);
        assert_eq!(mode(&rootfs.join("etc/motd")), 0o644);
        assert_eq!(mode(&root.join("unrelated")), 0o644);
        let loose_left: Vec<String> = loose_paths(&root)
            .into_iter()
            .filter(|p| !p.ends_with("unrelated"))
            .collect();
        assert_eq!(loose_left, Vec::<String>::new());
    }

    #[test]
    fn the_rootfs_digest_sees_a_changed_file_mode_link_or_a_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root_path = tmp.path().join("rootfs");
        fs::create_dir_all(root_path.join("d")).unwrap();
        fs::write(root_path.join("d/f"), b"one").unwrap();
        std::os::unix::fs::symlink("d/f", root_path.join("l")).unwrap();
        let root = Dir::open_ambient_dir(&root_path, ambient_authority()).unwrap();
        let before = rootfs_digest(&root).unwrap();
        assert_eq!(rootfs_digest(&root).unwrap(), before, "stable");
        let changes: [&dyn Fn(); 4] = [
            &|| fs::write(root_path.join("d/f"), b"two").unwrap(),
            &|| {
                fs::set_permissions(root_path.join("d/f"), fs::Permissions::from_mode(0o600))
                    .unwrap()
            },
            &|| {
                fs::remove_file(root_path.join("l")).unwrap();
                std::os::unix::fs::symlink("d", root_path.join("l")).unwrap();
            },
            &|| fs::write(root_path.join("d/new"), b"").unwrap(),
        ];
        let mut seen = vec![before];
        for change in changes {
            change();
            let now = rootfs_digest(&root).unwrap();
            assert!(!seen.contains(&now), "a change left the digest as it was");
            seen.push(now);
        }
    }

    #[test]
    fn prune_removes_kept_downloads_but_not_one_a_pull_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("store")).unwrap();
        let dir = store.downloads_dir();
        create_private_dir_all(&dir).unwrap();
        fs::write(dir.join("aa"), b"kept blob").unwrap();
        fs::write(dir.join("bb.partial"), b"half").unwrap();
        let held = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("cc.partial"))
            .unwrap();
        held.lock().unwrap();
        // Opening the store (as every command does) keeps them all.
        let store = Store::open(tmp.path().join("store")).unwrap();
        assert!(dir.join("aa").exists() && dir.join("bb.partial").exists());
        let outcome = store.prune(false, &HashSet::new()).unwrap();
        assert_eq!(outcome.reclaimed_bytes, 13);
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["cc.partial"]);
        drop(held);
    }
}
