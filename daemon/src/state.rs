//! The daemon and the lifecycle operations on its instances: load, create,
//! start, stop, kill, pause, restart, rename, remove, each checked first.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use serde::Deserialize;
use tokio::sync::{oneshot, watch};
use wrun_api::containers::{ContainerConfig, HostConfig};
use wrun_api::time::now;
use wrun_image::Store;
use wrun_runtime::{OutputTarget, Runtime};

use crate::error::DaemonError;
use crate::events::{ContainerSubject, EventLog};
use crate::gate::RunGate;
use crate::instance::{Container, Inner, Lifecycle};
use crate::launch;
use crate::layout::{self, LOG_PACK, LOGS, log_max_size};
use crate::lifecycle::{self, EXIT_DAEMON_GONE, Removal, Start, Status, StopKind, Stopping};
use crate::logpack::LogPack;
use crate::logs::{LogFile, STDERR, STDOUT};
use crate::outcome;
use crate::record::{ContainerRecord, Interner, StateRecord};
use crate::records::{self, RecordJournal};
use crate::registry::{self, Registry};
use crate::rootfs_views::RootfsViews;
use crate::volume_store::{Volumes, mounts_of};

/// Instances started at once when the daemon applies restart policies.
const REVIVE_AT_ONCE: usize = 32;

/// Instance changes (creates, starts, ends, removals) after which a quiet
/// second returns the heap's free pages to the kernel ([`HeapTrimmer`]).
const TRIM_AFTER_CHANGES: u64 = 1000;

/// How often the heap trimmer looks at the count of changes.
const TRIM_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a removed instance's log stays for readers still draining it.
const READER_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long an auto-removed instance still answers `wait` and `logs`
/// ([`Daemon::find_or_recently_removed`]), and how many are kept so.
const RECENTLY_REMOVED_GRACE: std::time::Duration = std::time::Duration::from_secs(60);
const RECENTLY_REMOVED_MAX: usize = 256;

/// The daemon: the store, the one runtime, and every instance.
pub struct Daemon {
    pub store: Store,
    pub runtime: Runtime,
    pub socket: PathBuf,
    logs_dir: PathBuf,
    log_pack: Arc<LogPack>,
    registry: Mutex<Registry>,
    /// Instances auto-removed lately, oldest first, their logs kept: see
    /// [`Daemon::find_or_recently_removed`].
    recently_removed: Mutex<VecDeque<Arc<Container>>>,
    pub shutdown: tokio::sync::Notify,
    pub events: EventLog,
    /// Set once the daemon is stopping: no policy restarts from then on.
    shutting_down: AtomicBool,
    /// `--allow-dangerous-binds`: see [`launch::HostBinds`].
    allow_dangerous_binds: AtomicBool,
    /// Instances that were running when the previous daemon went away.
    interrupted: HashSet<String>,
    records: Arc<RecordJournal>,
    /// Records this daemon could not read, kept as they were: a rewrite of
    /// the journal keeps them for a daemon that can.
    unreadable: Vec<(String, serde_json::Value)>,
    /// One `Config` and one `HostConfig` for the instances that have the same.
    configs: Interner<ContainerConfig>,
    host_configs: Interner<HostConfig>,
    /// Creates, starts, ends and removals so far: what the heap trimmer
    /// watches.
    changes: AtomicU64,
    /// Every exec (`docker exec`) by ID.
    pub(crate) execs: crate::exec::table::ExecTable,
    /// Where each instance's writable rootfs lives, and the snapshots
    /// their views share.
    pub(crate) rootfs: RootfsViews,
    /// The user-defined networks and the instances on them.
    pub(crate) networks: Arc<crate::network_table::NetworkTable>,
}

/// What telling an instance to stop found.
enum Signalled {
    NotLive,
    /// It was waiting for a policy restart, now cancelled.
    RestartCancelled,
    /// It is ending; `rx` sees when it has: once more than `runs_ended`
    /// runs have.
    Ending {
        rx: watch::Receiver<Lifecycle>,
        runs_ended: u64,
        subject: ContainerSubject,
    },
}

impl Daemon {
    /// Grants binds of `/proc`, `/sys`, `/dev` and of directories holding
    /// the store (`wrun daemon --allow-dangerous-binds`); set before serving.
    pub fn allow_dangerous_binds(&self) {
        self.allow_dangerous_binds.store(true, Ordering::Relaxed);
    }

    /// What this daemon lets binds name.
    pub(crate) fn host_binds(&self) -> launch::HostBinds {
        launch::HostBinds::DAEMON.allowing(self.allow_dangerous_binds.load(Ordering::Relaxed))
    }

    /// Opens the records under `<root>/containers`; instances that were
    /// running when a previous daemon stopped are marked exited.
    pub fn load(store: Store, runtime: Runtime, socket: PathBuf) -> anyhow::Result<Arc<Self>> {
        let containers_dir = layout::containers_dir(store.root());
        // 0700, as the whole store: the journal holds every instance's env.
        wrun_image::store::create_private_dir_all(&containers_dir)
            .with_context(|| format!("creating {}", containers_dir.display()))?;
        let logs_dir = containers_dir.join(LOGS);
        wrun_image::store::create_private_dir_all(&logs_dir)
            .with_context(|| format!("creating {}", logs_dir.display()))?;
        let loaded = records::read(&containers_dir)?;
        for problem in &loaded.problems {
            eprintln!("wrun daemon: {problem}");
        }
        // A record this daemon cannot read is skipped but kept in the
        // journal (with its logs), for a daemon that can.
        let live = loaded.records;
        let mut parsed = Vec::new();
        let mut unreadable = Vec::new();
        for (id, value) in &live {
            match ContainerRecord::deserialize(value) {
                Ok(r) if r.id == *id => {
                    parsed.push(r);
                    continue;
                }
                Ok(r) => eprintln!(
                    "wrun daemon: skipping the record of {id}: it names instance {}",
                    r.id
                ),
                Err(e) => eprintln!("wrun daemon: skipping the record of {id}: {e}"),
            }
            unreadable.push((id.clone(), value.clone()));
        }
        let records = RecordJournal::start(&containers_dir, &live)?;
        // Uppers of instances removed while no daemon ran (or whose removal
        // was cut short) go now; a record this daemon cannot read keeps its.
        let rootfs = RootfsViews::open(&containers_dir, &|id| live.contains_key(id))?;
        let log_files = layout::forget_leftovers(&logs_dir, &live);
        let networks =
            crate::network_table::NetworkTable::load(store.root(), &|id| live.contains_key(id))?;
        let (log_pack, problems) = LogPack::open(containers_dir.join(LOG_PACK))?;
        for problem in &problems {
            eprintln!("wrun daemon: {problem}");
        }
        let log_pack = Arc::new(log_pack);
        let mut registry = Registry::default();
        let mut interrupted = HashSet::new();
        let configs = Interner::default();
        let host_configs = Interner::default();
        for mut record in parsed {
            record.config = configs.intern(record.config);
            record.host_config = host_configs.intern(record.host_config);
            let max = log_max_size(&record);
            let path = logs_dir.join(format!("{}.log", record.id));
            let pack = Arc::clone(&log_pack);
            let log = if log_files.contains(&record.id) {
                LogFile::open(path, max, Some((pack, record.id.clone())))
            } else {
                LogFile::packed(path, max, pack, record.id.clone())
            };
            let c = Container::new(log, record, &records);
            {
                let mut inner = c.lock();
                let st = &mut inner.record.state;
                if st.status.interrupted() {
                    st.status = Status::Exited;
                    st.exit_code = EXIT_DAEMON_GONE;
                    st.error = "the daemon stopped while the instance was running".into();
                    st.finished_at = Some(now());
                    c.save(&inner.record)?;
                    interrupted.insert(c.id.clone());
                    c.lifecycle.send_modify(|l| {
                        l.running = false;
                        l.exit_code = EXIT_DAEMON_GONE;
                    });
                }
            }
            registry.insert_named(c);
        }
        // Packed logs of instances removed since are dropped (a record the
        // daemon could not read keeps its log, like its files).
        log_pack.retain(|id| live.contains_key(id));
        let daemon = Arc::new(Self {
            store,
            runtime,
            socket,
            logs_dir,
            log_pack,
            registry: Mutex::new(registry),
            recently_removed: Mutex::new(VecDeque::new()),
            shutdown: tokio::sync::Notify::new(),
            events: EventLog::default(),
            shutting_down: AtomicBool::new(false),
            allow_dangerous_binds: AtomicBool::new(false),
            interrupted,
            records: Arc::clone(&records),
            unreadable,
            configs,
            host_configs,
            changes: AtomicU64::new(0),
            execs: crate::exec::table::ExecTable::default(),
            rootfs,
            networks,
        });
        // From now on the flusher may rewrite the journal from the records
        // held here (see `LiveRecords` below).
        records.set_live_source(&daemon);
        HeapTrimmer::start(&daemon)?;
        Ok(daemon)
    }

    /// Counts a create, start, end or removal for the [`HeapTrimmer`].
    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// `wrun daemon --storage-opt size=`: the limit of the writable rootfs
    /// of every instance that does not ask for its own (`None`: no limit);
    /// set before serving. Applies to views opened from then on.
    pub fn set_default_storage_size(&self, size: Option<u64>) {
        self.rootfs.set_default_size(size);
    }

    /// The writable rootfs of the instance `key` names (full ID, name, or
    /// unique ID prefix): its one view, the very one its runs write
    /// through, for the verbs that read or change it (`diff`, `export`,
    /// `cp`, `commit`). Opened here when nothing holds it, then held weakly
    /// by the record (`wrun_rootfs::WeakLayers`): its descriptors close when
    /// no run, exec or verb uses it, and the next one reopens it from the
    /// same upper. Blocking (opening loads the upper an earlier run or
    /// daemon left: its whiteouts and, under a size limit, its usage): call
    /// it from a blocking thread.
    ///
    /// An instance created `--read-only` (`HostConfig.ReadonlyRootfs`)
    /// has a read-only view, over its image with nothing above it: its runs
    /// and execs see it (a change is EROFS, as on dockerd's read-only
    /// mount), and `export` and `cp` out read the image's files. A verb that
    /// would write through it should look at
    /// `record().host_config.readonly_rootfs` first and refuse in dockerd's
    /// words (`container rootfs is marked read-only`); the view refuses
    /// with `ReadOnly` anyway.
    ///
    /// Errors: `No such container: KEY` (404), as [`find`](Daemon::find);
    /// the image's snapshot gone or unreadable (500).
    pub fn rootfs_view(&self, key: &str) -> Result<wrun_rootfs::Layers, DaemonError> {
        let c = self.find(key)?;
        self.container_rootfs(&c)
    }

    /// [`rootfs_view`](Daemon::rootfs_view) of an instance already found.
    pub fn container_rootfs(&self, c: &Container) -> Result<wrun_rootfs::Layers, DaemonError> {
        // Held while opening: one view per instance, whoever asks first.
        let mut slot = c.rootfs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(view) = slot.as_ref().and_then(wrun_rootfs::WeakLayers::upgrade) {
            return Ok(view);
        }
        // A removed instance's upper is gone (or going): a view opened now
        // would make a new one that nothing removes.
        if c.lifecycle.borrow().removed {
            return Err(DaemonError::no_such_container(&c.id));
        }
        let r = c.record();
        let size = crate::rootfs_views::storage_size(r.host_config.storage_opt.as_ref())?;
        let image = self.store.find(&r.image_id).map_err(anyhow::Error::from)?;
        let rootfs = self.store.rootfs_path(&image).ok_or_else(|| {
            DaemonError::Internal(format!(
                "image {} of instance {} has no layers, so no rootfs",
                r.image, c.id
            ))
        })?;
        let read_only = r.host_config.readonly_rootfs;
        let view = self
            .rootfs
            .open_view(&c.id, &rootfs, size, read_only, slot.as_ref())?;
        *slot = Some(view.downgrade());
        Ok(view)
    }

    /// The registry; taken before an instance's lock, never after.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Inserts and removes are single calls: usable after a panic.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.registry().all()
    }

    /// By full ID, name (with or without the leading `/`), or unique ID prefix.
    pub fn find(&self, key: &str) -> Result<Arc<Container>, DaemonError> {
        self.registry().find(key)
    }

    /// As [`find`](Daemon::find), and else, by its full ID, an instance
    /// auto-removed in the last minute: for `wait`, `logs` and `inspect`
    /// only. A client that started a short `--rm` instance asks for its
    /// output, its TTY setting and its exit code after the start
    /// (docker-py's `run` does); with dockerd that is a race the client
    /// loses now and then (`No such container`, docker-py issue 2655),
    /// here it always has its answer. The name is free at once, as in
    /// Docker, and finds nothing.
    pub fn find_or_recently_removed(&self, key: &str) -> Result<Arc<Container>, DaemonError> {
        self.find(key).or_else(|not_found| {
            self.recent()
                .iter()
                .rev()
                .find(|c| c.id == key)
                .cloned()
                .ok_or(not_found)
        })
    }

    fn recent(&self) -> MutexGuard<'_, VecDeque<Arc<Container>>> {
        // Pushes and removes are single calls: usable after a panic.
        self.recently_removed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Drops an instance kept among the recently removed, and its log,
    /// after [`RECENTLY_REMOVED_GRACE`] (unless [`RECENTLY_REMOVED_MAX`]
    /// newer ones pushed it out first).
    fn forget_recently_removed_later(self: &Arc<Self>, c: &Arc<Container>) {
        let daemon = Arc::clone(self);
        let c = Arc::clone(c);
        tokio::spawn(async move {
            tokio::time::sleep(RECENTLY_REMOVED_GRACE).await;
            let kept = {
                let mut recent = daemon.recent();
                let at = recent.iter().position(|x| Arc::ptr_eq(x, &c));
                at.and_then(|i| recent.remove(i)).is_some()
            };
            if kept {
                delete_log(&c);
            }
        });
    }

    /// Creates an instance record (not started). The image and the grants
    /// are checked now, so a bad request fails here and not at start.
    pub fn create(
        &self,
        name: Option<String>,
        config: ContainerConfig,
        host_config: HostConfig,
    ) -> Result<Arc<Container>, DaemonError> {
        if config.tty {
            return Err(DaemonError::invalid(
                "wrun instances have no TTY: run without -t",
            ));
        }
        if config.image.is_empty() {
            return Err(DaemonError::invalid(
                "no image given (Config.Image is empty)",
            ));
        }
        host_config
            .restart_policy
            .check()
            .map_err(DaemonError::invalid)?;
        host_config
            .log_config
            .max_size()
            .map_err(DaemonError::invalid)?;
        if host_config.auto_remove && !matches!(host_config.restart_policy.name.as_str(), "" | "no")
        {
            return Err(DaemonError::invalid(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }
        if let Some(n) = &name {
            wrun_api::parse::check_name(n).map_err(DaemonError::InvalidArgument)?;
        }
        let record = crate::image_views::find_for_create(&self.store, &config.image)?;
        let settings = launch::settings(&config, &host_config)?.host_binds(self.host_binds());
        let cap = self.runtime.config().max_memory_per_instance;
        if let Some(m) = settings.limits.memory.filter(|&m| m > cap) {
            return Err(DaemonError::invalid(format!(
                "Memory limit {m} bytes is over this daemon's --max-instance-memory of {cap} bytes: \
                 ask for less, or start the daemon with a larger --max-instance-memory"
            )));
        }
        let launch = launch::plan(&self.store, &record, &config.image, &settings)
            .map_err(|e| DaemonError::invalid(crate::error::describe(&e)))?;
        let id = registry::new_id();
        let mut args = launch.spec.args.clone();
        let path = if args.is_empty() {
            String::new()
        } else {
            args.remove(0)
        };
        // Reserve the name, then write the record without holding the
        // registry: on a slow file system a create's record takes a
        // millisecond, and every other request needs the registry. Until
        // the instance is inserted below, its name is taken but finds
        // nothing.
        let name = self.registry().claim_name(name, &id)?;
        // Merged with the image's defaults, as Docker stores and shows it;
        // each VOLUME nothing mounts gets an anonymous volume, as dockerd's.
        let config = launch.merged_config(config);
        let volumes = crate::volume_store::Volumes::of(self.store.root());
        let host_config = match crate::volume_store::add_anonymous(&volumes, &config, host_config) {
            Ok(h) => h,
            Err(e) => {
                self.registry().release_name(&name, &id);
                return Err(e);
            }
        };
        let record = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: now(),
            image: config.image.clone(),
            image_id: record.id.to_string(),
            path,
            args,
            config: self.configs.intern(config.into()),
            host_config: self.host_configs.intern(host_config.into()),
            state: StateRecord::default(),
            restart_count: 0,
        };
        // The log starts in the daemon's pack: a create allocates no inode,
        // and neither does an instance that prints a few lines.
        let log = LogFile::packed(
            self.logs_dir.join(format!("{id}.log")),
            log_max_size(&record),
            Arc::clone(&self.log_pack),
            id.clone(),
        );
        let c = Container::new(log, record.clone(), &self.records);
        // The record is appended before the instance is in the registry:
        // no journal rewrite may take its snapshot in between.
        let in_flight = self.records.in_flight();
        if let Err(e) = c.save(&record) {
            self.registry().release_name(&name, &id);
            return Err(e.into());
        }
        self.registry().insert(Arc::clone(&c));
        drop(in_flight);
        self.changed();
        self.events
            .container("create", &id, &ContainerSubject::of(&record), &[]);
        Ok(c)
    }

    /// Starts an instance by hand: `Ok(false)` when it was already running.
    /// The restart count starts again from 0, as Docker's does.
    pub async fn start(self: &Arc<Self>, c: &Arc<Container>) -> Result<bool, DaemonError> {
        self.start_run(c, false).await
    }

    /// Starts an instance; `by_policy`: a restart policy's start, counted in
    /// `RestartCount`.
    async fn start_run(
        self: &Arc<Self>,
        c: &Arc<Container>,
        by_policy: bool,
    ) -> Result<bool, DaemonError> {
        // Checked, slot taken and module prepared before anything changes:
        // a start that cannot happen (no free slot, image gone, port taken,
        // volume missing) fails now and leaves the instance as it was, with
        // the failure's exit code and error, as dockerd keeps a container
        // `created` whose start failed; no `die`, no policy restart.
        let reserved = {
            let inner = c.lock();
            match inner.record.state.status.start(&c.id)? {
                Start::AlreadyRunning => return Ok(false),
                Start::Run => {}
            }
            match self.runtime.reserve() {
                Ok(slot) => Ok((inner.record.clone(), slot)),
                Err(e) => Err(crate::capacity::refused(&inner.record.name, e)),
            }
        };
        let (snapshot, slot) = match reserved {
            Ok(r) => r,
            Err(err) => {
                self.start_failed(c, i64::from(crate::outcome::EXIT_RUN_ERROR), err.message());
                return Err(err);
            }
        };
        let gate = Arc::new(RunGate::default());
        let daemon = Arc::clone(self);
        let log = Arc::clone(&c.log);
        let memory = gate.memory.clone();
        let instance = Arc::clone(c);
        let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let record = snapshot;
            let image = daemon.store.find(&record.image_id)?;
            let settings = launch::settings(&record.config, &record.host_config)
                .map_err(anyhow::Error::from)?
                .host_binds(daemon.host_binds());
            let mut launch = launch::plan(&daemon.store, &image, &record.image, &settings)?;
            // The instance's one view, from run to run (`--read-only`: a
            // read-only view, so the guest's changes are EROFS).
            launch.spec.writable_rootfs = Some(daemon.container_rootfs(&instance)?);
            // Its peers on the networks it is on (docs/networks.md), for this run.
            launch.spec.network.peers = daemon.networks.attach(
                &instance.id,
                &record.name,
                &record.host_config.network_mode,
            );
            launch.spec.stdout = OutputTarget::Sink(log.sink(STDOUT));
            launch.spec.stderr = OutputTarget::Sink(log.sink(STDERR));
            launch.spec.memory_gauge = Some(memory);
            let module = launch::prepare(&daemon.runtime, &launch)?;
            // An HTTP handler is served: its ports are bound (held) now.
            let served = if module.serves_http() {
                let exposed = record.config.exposed_ports.iter().flat_map(|p| p.keys());
                let ports = crate::serve::bind_with_peers(&record.image, &mut launch, exposed)?;
                Some((ports, settings.serve))
            } else {
                launch::claim_ports(&mut launch)?;
                // The run's private /tmp, made here to be given to its
                // execs as well (`Inner::tmp`): one /tmp, as in a container.
                if launch.spec.tmp {
                    launch.spec.tmp = false;
                    launch.spec.shared_tmp = Some(daemon.runtime.shared_tmp()?);
                }
                None
            };
            Ok((launch, module, served))
        })
        .await
        .map_err(|e| anyhow::anyhow!("preparing the instance failed: {e}"))
        .and_then(|r| r);
        let (mut launch, module, served) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let code = outcome::failure_exit_code(&e);
                let err = DaemonError::from(e);
                self.start_failed(c, i64::from(code), err.message());
                return Err(err);
            }
        };
        let (rx, record) = {
            let mut inner = c.lock();
            // Another start, a stop or a removal may have come meanwhile.
            match inner.record.state.status.start(&c.id)? {
                Start::AlreadyRunning => return Ok(false),
                Start::Run => {}
            }
            // Saved before anything changes: a start that cannot be
            // recorded leaves the instance as it was, not marked running
            // with no run to end (a stop would then wait forever).
            let mut record = inner.record.clone();
            let st = &mut record.state;
            st.status = Status::Running;
            st.exit_code = 0;
            st.error.clear();
            st.oom_killed = false;
            st.manually_stopped = false;
            st.restarting = false;
            st.started_at = Some(now());
            st.finished_at = None;
            if by_policy {
                record.restart_count += 1;
            } else {
                record.restart_count = 0;
            }
            c.save(&record)?;
            inner.record = record;
            if !by_policy {
                inner.quick_restarts = 0;
            }
            let (tx, rx) = oneshot::channel();
            inner.stop = Some(tx);
            inner.gate = Some(Arc::clone(&gate));
            inner.tmp.clone_from(&launch.spec.shared_tmp);
            inner.run_started = Some(std::time::Instant::now());
            launch.spec.stdin = Container::run_stdin(&mut inner);
            c.lifecycle.send_modify(|l| l.running = true);
            (rx, inner.record.clone())
        };
        self.changed();
        self.events
            .container("start", &c.id, &ContainerSubject::of(&record), &[]);
        c.set_published(&launch.spec.network.publish);
        let daemon = Arc::clone(self);
        let c2 = Arc::clone(c);
        if let Some((ports, serve)) = served {
            // An HTTP server's requests take slots of their own, one each.
            drop(slot);
            c.lock().serving = true;
            tokio::spawn(async move {
                let (code, error) = crate::serving::serve(
                    &daemon.runtime,
                    OutputTarget::Sink(c2.log.sink(STDOUT)),
                    &module,
                    launch,
                    ports,
                    &serve,
                    rx,
                )
                .await;
                daemon.ended(&c2, code, error, false);
            });
            return Ok(true);
        }
        // Only what the run needs goes into its task: the rest of the plan
        // (the image's config among it) would stay allocated as long as the
        // instance runs.
        let module_name = launch.module_name;
        let spec = launch.spec;
        tokio::spawn(async move {
            let mut rx = rx;
            let runtime = daemon.runtime.clone();
            let run = gate.wrap(runtime.run_in_slot(slot, &module, spec));
            let (code, error, oom) = tokio::select! {
                biased;
                kind = &mut rx => {
                    let (code, error) = kind.unwrap_or(StopKind::Signal(9)).exit();
                    (code, error.to_string(), false)
                }
                outcome = run => match outcome {
                    Ok(o) => {
                        let e = outcome::ended(&o, &module_name);
                        (i64::from(e.exit_code), e.error.unwrap_or_default(), e.oom_killed)
                    }
                    Err(e) => (
                        i64::from(crate::outcome::EXIT_RUN_ERROR),
                        crate::error::describe(&anyhow::Error::from(e)),
                        false,
                    ),
                },
            };
            daemon.ended(&c2, code, error, oom);
        });
        Ok(true)
    }

    /// A start that failed before its run: the instance keeps its status
    /// (created or exited) and records the failure's exit code and error,
    /// as dockerd does; one created with `--rm` is removed, as dockerd
    /// removes it.
    fn start_failed(self: &Arc<Self>, c: &Arc<Container>, code: i64, error: &str) {
        let auto_remove = {
            let mut inner = c.lock();
            let mut record = inner.record.clone();
            record.state.exit_code = code;
            record.state.error = error.to_owned();
            if let Err(e) = c.save(&record) {
                eprintln!("wrun daemon: {}", crate::error::describe(&e));
            } else {
                inner.record = record;
            }
            inner.record.host_config.auto_remove
        };
        if auto_remove && let Ok((true, pushed_out)) = self.unregister_keeping(c, true) {
            if let Some(old) = pushed_out {
                delete_log(&old);
            }
            self.forget_recently_removed_later(c);
        }
    }

    /// A run ended: record it, announce `die`, then remove the instance if
    /// it was started with `--rm`, or start it again if its restart policy
    /// says so (after Docker's back-off).
    fn ended(self: &Arc<Self>, c: &Arc<Container>, code: i64, error: String, oom: bool) {
        // Decisions use the record as this run left it: `restart` may have
        // started the next run already.
        let may_restart = !self.shutting_down.load(Ordering::SeqCst);
        let (r, delay) = c.finish(code, error, oom, may_restart, |r| {
            self.events.container(
                "die",
                &c.id,
                &ContainerSubject::of(r),
                &[("exitCode", code.to_string())],
            );
        });
        self.changed();
        if r.host_config.auto_remove {
            // Unless started again meanwhile, which keeps it.
            if let Ok((true, pushed_out)) = self.unregister_keeping(c, true) {
                if let Some(old) = pushed_out {
                    delete_log(&old);
                }
                self.remove_anonymous_volumes_later(r);
                self.forget_recently_removed_later(c);
            }
            return;
        }
        let Some(delay) = delay else {
            return;
        };
        let daemon = Arc::clone(self);
        let c = Arc::clone(c);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            daemon.restart_by_policy(&c).await;
        });
    }

    /// Starts an instance for its restart policy, unless it was stopped,
    /// started or removed meanwhile, or the daemon is stopping.
    async fn restart_by_policy(self: &Arc<Self>, c: &Arc<Container>) {
        {
            let mut inner = c.lock();
            let st = &mut inner.record.state;
            let still_wanted = st.status.policy_may_start(st.restarting)
                && !self.shutting_down.load(Ordering::SeqCst);
            st.restarting = false;
            if !still_wanted {
                return;
            }
        }
        if let Err(e) = self.start_run(c, true).await {
            eprintln!(
                "wrun daemon: restarting {} by its policy: {}",
                c.id,
                e.message()
            );
        }
    }

    /// At daemon start: starts the instances whose restart policy asks for
    /// it (see [`RestartPolicy::starts_with_daemon`]).
    ///
    /// [`RestartPolicy::starts_with_daemon`]: wrun_api::containers::RestartPolicy::starts_with_daemon
    ///
    /// Up to [`REVIVE_AT_ONCE`] starts are in flight at a time: a daemon
    /// holding thousands of `--restart always` instances is back in seconds,
    /// without a blocking thread per instance.
    pub async fn apply_restart_policies(self: &Arc<Self>) {
        let mut starts = tokio::task::JoinSet::new();
        for c in self.all() {
            // Decided and marked under one lock: a `stop` or `start` in
            // between sees the pending restart.
            let wanted = {
                let mut inner = c.lock();
                let r = &inner.record;
                let wanted = r.state.status == Status::Exited
                    && r.host_config.restart_policy.starts_with_daemon(
                        self.interrupted.contains(&c.id),
                        r.state.manually_stopped,
                        r.restart_count,
                    );
                inner.record.state.restarting |= wanted;
                wanted
            };
            if wanted {
                while starts.len() >= REVIVE_AT_ONCE {
                    starts.join_next().await;
                }
                let daemon = Arc::clone(self);
                starts.spawn(async move { daemon.restart_by_policy(&c).await });
            }
        }
        while starts.join_next().await.is_some() {}
    }

    /// `stop` (and `kill` with [`StopKind::Signal`]): ends a running (or
    /// paused) instance and waits until it has ended. `Ok(false)` when
    /// nothing was running; for a kill that is Docker's 409 instead.
    pub async fn stop(&self, c: &Container, kind: StopKind) -> Result<bool, DaemonError> {
        let signalled = self.signal(c, kind)?;
        Ok(self.stopped(c, kind, signalled).await)
    }

    /// The first half of [`stop`](Daemon::stop): checks the state and
    /// tells the instance to end.
    fn signal(&self, c: &Container, kind: StopKind) -> Result<Signalled, DaemonError> {
        let inner = c.lock();
        let st = &inner.record.state;
        let stopping = match kind {
            StopKind::Signal(_) => st.status.kill(st.restarting, &c.id)?,
            StopKind::Stop | StopKind::Shutdown => st.status.stop(st.restarting, kind),
        };
        self.carry_out(c, inner, kind, stopping)
    }

    /// Carries out a stop decided under the instance's lock, `inner`.
    fn carry_out(
        &self,
        c: &Container,
        mut inner: MutexGuard<'_, Inner>,
        kind: StopKind,
        stopping: Stopping,
    ) -> Result<Signalled, DaemonError> {
        match stopping {
            Stopping::NotRunning => return Ok(Signalled::NotLive),
            Stopping::CancelRestart => {
                inner.record.state.restarting = false;
                inner.record.state.manually_stopped = true;
                c.save(&inner.record)?;
                return Ok(Signalled::RestartCancelled);
            }
            Stopping::Signal => {}
        }
        if !matches!(kind, StopKind::Shutdown) {
            // Stopped by hand: no policy restart follows this run.
            inner.record.state.manually_stopped = true;
            inner.record.state.restarting = false;
        }
        let rx = c.watch();
        // The lock orders this with the run's end and the next start, which
        // announce themselves under it: the count is the one before this
        // run ends.
        let runs_ended = rx.borrow().exits;
        if let Some(tx) = inner.stop.take() {
            let _ = tx.send(kind);
        }
        let subject = ContainerSubject::of(&inner.record);
        drop(inner);
        if let Some(n) = kind.signal() {
            self.events
                .container("kill", &c.id, &subject, &[("signal", n.to_string())]);
        }
        Ok(Signalled::Ending {
            rx,
            runs_ended,
            subject,
        })
    }

    /// The second half of [`stop`](Daemon::stop): waits for the run to
    /// end; whether anything was stopped.
    async fn stopped(&self, c: &Container, kind: StopKind, signalled: Signalled) -> bool {
        match signalled {
            Signalled::NotLive => false,
            Signalled::RestartCancelled => true,
            Signalled::Ending {
                mut rx,
                runs_ended,
                subject,
            } => {
                Container::run_ended(&mut rx, runs_ended).await;
                if matches!(kind, StopKind::Stop) {
                    self.events.container("stop", &c.id, &subject, &[]);
                }
                true
            }
        }
    }

    /// `restart`: stops the instance if it runs, then starts it.
    pub async fn restart(self: &Arc<Self>, c: &Arc<Container>) -> Result<(), DaemonError> {
        c.lock().record.state.status.restart(&c.id)?;
        self.stop(c, StopKind::Stop).await?;
        self.start(c).await?;
        let r = c.record();
        self.events
            .container("restart", &c.id, &ContainerSubject::of(&r), &[]);
        Ok(())
    }

    /// `pause`: the guest is no longer polled; it keeps its memory.
    pub fn pause(&self, c: &Container) -> Result<(), DaemonError> {
        let r = {
            let mut inner = c.lock();
            let paused = inner.record.state.status.pause(&c.id, inner.serving)?;
            // Set with the status at start, cleared with it at the end.
            let Some(gate) = inner.gate.clone() else {
                return Err(lifecycle::not_running(&c.id));
            };
            gate.pause();
            // Kept in memory only: a daemon that stops treats paused as
            // running (the instance ends either way), so no disk write.
            inner.record.state.status = paused;
            inner.record.clone()
        };
        self.events
            .container("pause", &c.id, &ContainerSubject::of(&r), &[]);
        Ok(())
    }

    /// `unpause`: the guest is polled again from where it stopped.
    pub fn unpause(&self, c: &Container) -> Result<(), DaemonError> {
        let r = {
            let mut inner = c.lock();
            inner.record.state.status = inner.record.state.status.unpause(&c.id)?;
            if let Some(gate) = &inner.gate {
                gate.resume();
            }
            inner.record.clone()
        };
        self.events
            .container("unpause", &c.id, &ContainerSubject::of(&r), &[]);
        Ok(())
    }

    /// `rename`, in any state: 409 when the name is taken, 400 when it is
    /// not a valid name.
    pub fn rename(&self, c: &Container, new_name: &str) -> Result<(), DaemonError> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if new_name.is_empty() {
            return Err(DaemonError::invalid(
                "Neither old nor new names may be empty",
            ));
        }
        // dockerd checks the name as it stores it, with its leading `/`.
        wrun_api::parse::check_name(new_name).map_err(|_| {
            DaemonError::invalid(format!(
                "Error when allocating new name: Invalid container name (/{new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            ))
        })?;
        let mut reg = self.registry();
        if !reg.contains(&c.id) {
            // Removed since it was found: its name must not come back.
            return Err(DaemonError::no_such_container(&c.id));
        }
        let mut inner = c.lock();
        let old = inner.record.name.clone();
        if old == new_name {
            return Err(DaemonError::conflict(
                "Renaming a container with the same name as its current name",
            ));
        }
        reg.check_free(new_name).map_err(|e| {
            DaemonError::conflict(format!("Error when allocating new name: {}", e.message()))
        })?;
        let mut record = inner.record.clone();
        record.name = new_name.to_string();
        c.save(&record)?;
        inner.record = record;
        reg.move_name(&c.id, &old, new_name);
        let subject = ContainerSubject::of(&inner.record);
        drop(inner);
        drop(reg);
        self.networks.renamed(&c.id, new_name);
        self.events
            .container("rename", &c.id, &subject, &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `DELETE /containers/{id}`: refused for a running instance unless
    /// forced, then killed first.
    pub async fn remove(&self, c: &Arc<Container>, force: bool) -> Result<(), DaemonError> {
        let killed = {
            let inner = c.lock();
            let removal = inner.record.state.status.remove(&c.id, force)?;
            match removal {
                Removal::Remove => None,
                Removal::KillFirst => {
                    let kind = StopKind::Signal(9);
                    Some((kind, self.carry_out(c, inner, kind, Stopping::Signal)?))
                }
            }
        };
        if let Some((kind, signalled)) = killed {
            self.stopped(c, kind, signalled).await;
        }
        self.remove_stopped(c)?;
        Ok(())
    }

    /// `container prune`: removes every instance that is not running;
    /// returns their IDs and the bytes their logs held.
    pub fn prune(&self) -> (Vec<String>, u64) {
        let mut deleted = Vec::new();
        let mut bytes = 0;
        for c in self.all() {
            if c.lock().record.state.is_live() {
                continue;
            }
            let held = c.log.disk_bytes();
            // A run started since is left alone.
            if let Ok(true) = self.remove_stopped(&c) {
                bytes += held;
                deleted.push(c.id.clone());
            }
        }
        (deleted, bytes)
    }

    /// Forgets an instance that is not running and deletes its logs:
    /// `Ok(false)` when it was gone already, 409 when it runs (again).
    fn remove_stopped(&self, c: &Arc<Container>) -> Result<bool, DaemonError> {
        let removed = self.unregister(c)?;
        if removed {
            delete_log(c);
        }
        Ok(removed)
    }

    /// Forgets an instance that is not running, its log left as it is:
    /// `Ok(false)` when it was gone already, 409 when it runs (again).
    fn unregister(&self, c: &Arc<Container>) -> Result<bool, DaemonError> {
        self.unregister_keeping(c, false)
            .map(|(removed, _)| removed)
    }

    /// [`unregister`](Daemon::unregister); with `keep`, the instance joins
    /// the recently removed in the same step as it leaves the registry, so
    /// a lookup by ID finds it in one or the other, and before anyone hears
    /// of its removal. Returns also the one that pushed out, if any.
    fn unregister_keeping(
        &self,
        c: &Arc<Container>,
        keep: bool,
    ) -> Result<(bool, Option<Arc<Container>>), DaemonError> {
        let (subject, pushed_out) = {
            let mut reg = self.registry();
            let mut inner = c.lock();
            inner.record.state.status.remove(&c.id, false)?;
            if !reg.remove(&c.id, &inner.record.name) {
                return Ok((false, None)); // removed already (auto-remove and rm raced)
            }
            inner.record.state.status = Status::Removing;
            let pushed_out = if keep {
                let mut recent = self.recent();
                recent.push_back(Arc::clone(c));
                if recent.len() > RECENTLY_REMOVED_MAX {
                    recent.pop_front()
                } else {
                    None
                }
            } else {
                None
            };
            (ContainerSubject::of(&inner.record), pushed_out)
        };
        self.changed();
        // The record goes at once, so a daemon restart never brings the
        // instance back; the logs may outlive it a little.
        if let Err(e) = self.records.remove(&c.id) {
            eprintln!("wrun daemon: {}", crate::error::describe(&e));
        }
        c.lifecycle.send_modify(|l| l.removed = true);
        for n in self.networks.leave_all(&c.id) {
            self.events
                .network("disconnect", &n.id, &n.name, Some(&c.id));
        }
        // After `removed` is set, under the view's lock: a verb opening the
        // view either finished before (and its view is dropped here) or
        // sees the instance removed.
        c.rootfs.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.rootfs.remove_upper(&c.id);
        self.events.container("destroy", &c.id, &subject, &[]);
        Ok((true, pushed_out))
    }

    /// Ends every running instance, recorded as exited because the daemon
    /// shut down. An HTTP server is told to stop and waited for (it drains
    /// its requests). Any other instance ends with the process: its record
    /// says so now, and its task is left as it is, never polled again once
    /// the daemon exits. Tearing each instance down (its pool slot, stack
    /// and memory) took 170 µs apiece, 17 s at 100,000, for nothing.
    pub async fn stop_all(self: &Arc<Self>) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let mut ending = Vec::new();
        let mut abandoned = Vec::new();
        for c in self.all() {
            let left = {
                let mut inner = c.lock();
                if inner.serving || !inner.record.state.is_live() {
                    None
                } else {
                    inner.stop.take()
                }
            };
            match left {
                Some(stop) => {
                    // Kept unsent: the task sees no stop and ends nothing
                    // twice.
                    abandoned.push(stop);
                    let (code, error) = StopKind::Shutdown.exit();
                    self.ended(&c, code, error.to_owned(), false);
                }
                None => {
                    if let Ok(Signalled::Ending { rx, runs_ended, .. }) =
                        self.signal(&c, StopKind::Shutdown)
                    {
                        ending.push((rx, runs_ended));
                    }
                }
            }
        }
        for (mut rx, runs_ended) in ending {
            Container::run_ended(&mut rx, runs_ended).await;
        }
        // The process is about to exit: the senders go with it.
        std::mem::forget(abandoned);
        if let Err(e) = self.records.flush() {
            eprintln!("wrun daemon: {}", crate::error::describe(&e));
        }
    }
}

/// Deletes the log of a removed instance; an attached client (`docker run
/// --rm`) may not have read the last output yet: then once it has, or
/// after a bound.
fn delete_log(c: &Arc<Container>) {
    if c.log.has_readers() {
        let c = Arc::clone(c);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(READER_GRACE, c.log.readers_done()).await;
            c.log.delete();
        });
    } else {
        c.log.delete();
    }
}

/// The journal's rewrites while the daemon runs take the records from
/// here. Every change is appended under its instance's lock, after the
/// record held here changed (or, for a create, under the journal's
/// `in_flight` until the instance is in the registry), and a removal is
/// appended once the instance left the registry: what the journal needs
/// for a rewrite to lose no change.
impl records::LiveRecords for Daemon {
    fn visit_live(
        &self,
        visit: &mut dyn FnMut(&str, &serde_json::Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for c in self.all() {
            let value = serde_json::to_value(&c.lock().record)?;
            visit(&c.id, &value)?;
        }
        for (id, value) in &self.unreadable {
            visit(id, value)?;
        }
        Ok(())
    }
}

/// Gives the heap's free pages back to the kernel after a burst of instance
/// changes, once a second passes without one.
///
/// Why: creates and starts run on many threads (the blocking pool, the
/// executor's workers), and glibc's allocator gives each its own arena.
/// The temporaries of a burst (request bodies, JSON, plans) are freed in
/// between the allocations that stay (records, stores, instances), and an
/// arena returns only the free space at its top to the kernel by itself:
/// after 10,000 creates and starts about 4 KiB per instance stayed
/// resident unused (docs/benchmarks/daemon-scale.md, "Regressions taken
/// apart"). `malloc_trim` releases the free pages inside each arena as
/// well. It takes each arena's lock while it walks it (milliseconds at
/// 10,000 instances), so it runs only once things are quiet, and not
/// during steady churn.
struct HeapTrimmer {
    daemon: std::sync::Weak<Daemon>,
    /// The count of changes at the last look and at the last trim.
    seen: u64,
    trimmed: u64,
}

impl HeapTrimmer {
    /// Starts the trimmer's thread, which ends with the daemon.
    fn start(daemon: &Arc<Daemon>) -> anyhow::Result<()> {
        let mut trimmer = Self {
            daemon: Arc::downgrade(daemon),
            seen: 0,
            trimmed: 0,
        };
        std::thread::Builder::new()
            .name("wrun-heap".into())
            .spawn(move || {
                while trimmer.look() {
                    std::thread::sleep(TRIM_CHECK_EVERY);
                }
            })
            .context("starting the heap trimmer thread")?;
        Ok(())
    }

    /// One look: trims when due. `false` once the daemon is gone.
    fn look(&mut self) -> bool {
        let Some(daemon) = self.daemon.upgrade() else {
            return false;
        };
        let changes = daemon.changes.load(Ordering::Relaxed);
        drop(daemon);
        if self.due(changes) {
            release_free_heap();
        }
        true
    }

    /// Whether a trim is due, given the count of changes now: many changes
    /// since the last trim, and none since the last look.
    fn due(&mut self, changes: u64) -> bool {
        let quiet = changes == self.seen;
        self.seen = changes;
        if quiet && changes.abs_diff(self.trimmed) >= TRIM_AFTER_CHANGES {
            self.trimmed = changes;
            return true;
        }
        false
    }
}

/// Returns the free pages of every heap arena to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_heap() {
    unsafe extern "C" {
        /// glibc's: releases free memory at the top of the main arena
        /// beyond `pad` bytes, and every whole free page of each arena.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's `malloc_trim` takes a plain size, touches only the
    // allocator's own state under its locks, and may be called from any
    // thread at any time; its result (whether anything was released) is
    // not needed.
    unsafe {
        malloc_trim(0);
    }
}

/// Other allocators return free memory by themselves (or not at all).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}

/// The daemon core in process: a store in a temp directory with the
/// `hello` and `idle` examples built into it, no socket.
/// The volumes instances mount, as far as the daemon's records say.
impl Daemon {
    /// The instances (IDs, oldest first as listed) that mount volume
    /// `name`, stopped ones too.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.all()
            .iter()
            .filter(|c| {
                mounts_of(&c.lock().record.host_config)
                    .iter()
                    .any(|m| m.name == name)
            })
            .map(|c| c.id.clone())
            .collect()
    }

    /// After an instance is removed with `-v` or by `--rm`: its anonymous
    /// volumes that no other instance mounts go with it, as in Docker.
    pub fn remove_anonymous_volumes(&self, removed: &ContainerRecord) {
        let volumes = Volumes::of(self.store.root());
        for m in mounts_of(&removed.host_config) {
            if !volumes.is_anonymous(&m.name) || !self.volume_users(&m.name).is_empty() {
                continue;
            }
            if let Err(e) = volumes.delete(&m.name) {
                eprintln!("wrun daemon: removing volume {}: {e}", m.name);
            }
        }
    }

    /// [`Daemon::remove_anonymous_volumes`] on a blocking thread: for an
    /// `--rm` instance whose run has just ended.
    pub fn remove_anonymous_volumes_later(self: &Arc<Self>, removed: ContainerRecord) {
        if mounts_of(&removed.host_config).is_empty() {
            return;
        }
        let d = Arc::clone(self);
        tokio::task::spawn_blocking(move || d.remove_anonymous_volumes(&removed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{Follow, Streams};
    use std::sync::OnceLock;
    use std::time::Duration;
    use wrun_api::containers::RestartPolicy;
    use wrun_runtime::RuntimeConfig;

    /// One runtime for every test: each example is compiled once.
    fn runtime() -> Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME
            .get_or_init(|| {
                Runtime::new(RuntimeConfig {
                    max_instances: 16,
                    max_memory_per_instance: 64 << 20,
                    ..RuntimeConfig::default()
                })
                .unwrap()
            })
            .clone()
    }

    /// A daemon over a fresh store holding `hello:1.0` and `idle:1.0`.
    fn daemon() -> (tempfile::TempDir, Arc<Daemon>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for example in ["hello", "idle"] {
            let request = wrun_bundler::BuildRequest {
                context: format!("{}/../examples/{example}", env!("CARGO_MANIFEST_DIR")).into(),
                tags: vec![format!("{example}:1.0").parse().unwrap()],
                ..Default::default()
            };
            wrun_bundler::build(&store, &request).unwrap();
        }
        let daemon = Daemon::load(store, runtime(), dir.path().join("wrun.sock")).unwrap();
        (dir, daemon)
    }

    fn config(image: &str, cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            image: image.into(),
            cmd: (!cmd.is_empty()).then(|| cmd.iter().map(|s| s.to_string()).collect()),
            ..ContainerConfig::default()
        }
    }

    fn create(d: &Daemon, name: &str, image: &str, cmd: &[&str]) -> Arc<Container> {
        d.create(Some(name.into()), config(image, cmd), HostConfig::default())
            .unwrap()
    }

    /// The record once `n` runs have ended since the daemon loaded it.
    async fn ended(c: &Container, n: u64) -> ContainerRecord {
        let mut rx = c.watch();
        tokio::time::timeout(Duration::from_secs(120), rx.wait_for(|l| l.exits >= n))
            .await
            .expect("the run ends")
            .expect("the instance is kept");
        c.record()
    }

    /// What the instance's runs wrote to stdout and stderr.
    async fn output(c: &Arc<Container>) -> String {
        let streams = Streams {
            stdout: true,
            stderr: true,
        };
        let mut reader = c.log.reader_all(streams.into(), Follow::No);
        let mut bytes = Vec::new();
        while let Some(frames) = reader.next().await {
            bytes.extend(frames);
        }
        // Docker's frames: the stream, 3 zero bytes, the length, the bytes.
        let mut text = String::new();
        let mut rest = &bytes[..];
        while rest.len() >= 8 {
            let len = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            text.push_str(std::str::from_utf8(&rest[8..8 + len]).unwrap());
            rest = &rest[8 + len..];
        }
        text
    }

    fn status(c: &Container) -> Status {
        c.record().state.status
    }

    fn refused<T>(r: Result<T, DaemonError>) -> DaemonError {
        match r {
            Ok(_) => panic!("allowed"),
            Err(e) => e,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_instance_runs_to_its_exit_and_runs_again_on_start() {
        let (_dir, d) = daemon();
        let c = create(&d, "greeter", "hello:1.0", &["wrun"]);
        assert_eq!(status(&c), Status::Created);
        assert_eq!(c.record().path, "/hello.wasm");
        assert!(d.start(&c).await.unwrap());
        let r = ended(&c, 1).await;
        assert_eq!(r.state.status, Status::Exited);
        assert_eq!(r.state.exit_code, 0);
        assert!(r.state.finished_at.is_some());
        assert_eq!(output(&c).await, "Hello, wrun!\n");

        assert!(
            d.start(&c).await.unwrap(),
            "an exited instance starts again"
        );
        let r = ended(&c, 2).await;
        assert_eq!((r.state.status, r.state.exit_code), (Status::Exited, 0));
        assert_eq!(output(&c).await, "Hello, wrun!\nHello, wrun!\n");

        // Nothing runs: stop does nothing, kill, pause, unpause are 409.
        assert!(!d.stop(&c, StopKind::Stop).await.unwrap());
        let id = &c.id;
        assert_eq!(
            refused(d.stop(&c, StopKind::Signal(9)).await),
            DaemonError::conflict(format!("Container {id} is not running"))
        );
        assert_eq!(
            refused(d.pause(&c)),
            DaemonError::conflict(format!("Container {id} is not running"))
        );
        assert_eq!(
            refused(d.unpause(&c)),
            DaemonError::conflict(format!("Container {id} is not paused"))
        );
        d.remove(&c, false).await.unwrap();
        assert_eq!(
            refused(d.find("greeter")),
            DaemonError::no_such_container("greeter")
        );
        assert_eq!(refused(d.find(id)), DaemonError::no_such_container(id));
        assert!(c.watch().borrow().removed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_instance_is_paused_resumed_and_removed_only_by_force() {
        let (_dir, d) = daemon();
        let c = create(&d, "sleeper", "idle:1.0", &[]);
        let id = c.id.clone();
        assert_eq!(
            refused(d.pause(&c)),
            DaemonError::conflict(format!("Container {id} is not running")),
            "pause of a created instance"
        );
        assert!(d.start(&c).await.unwrap());
        assert!(!d.start(&c).await.unwrap(), "already running");
        assert_eq!(status(&c), Status::Running);
        assert_eq!(
            refused(d.unpause(&c)),
            DaemonError::conflict(format!("Container {id} is not paused"))
        );

        d.pause(&c).unwrap();
        assert_eq!(status(&c), Status::Paused);
        assert_eq!(
            refused(d.pause(&c)),
            DaemonError::conflict(format!("Container {id} is already paused"))
        );
        assert_eq!(
            refused(d.start(&c).await),
            DaemonError::conflict("cannot start a paused container, try unpause instead")
        );
        assert_eq!(
            refused(d.remove(&c, false).await),
            DaemonError::conflict(format!(
                "You cannot remove a paused container {id}. Unpause and then stop the container before attempting removal or force remove"
            ))
        );
        d.unpause(&c).unwrap();
        assert_eq!(status(&c), Status::Running);

        assert_eq!(
            refused(d.remove(&c, false).await),
            DaemonError::conflict(format!(
                "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
            ))
        );
        assert_eq!(d.find("sleeper").unwrap().id, id, "still there");
        d.remove(&c, true).await.unwrap();
        let r = c.record();
        assert_eq!(r.state.status, Status::Removing);
        assert_eq!(r.state.exit_code, 137, "killed: 128 + SIGKILL");
        assert!(r.state.manually_stopped);
        assert_eq!(refused(d.find(&id)), DaemonError::no_such_container(&id));
        assert_eq!(
            refused(d.start(&c).await),
            DaemonError::conflict(format!(
                "container {id} is marked for removal and cannot be started"
            ))
        );
        assert_eq!(
            refused(d.restart(&c).await),
            DaemonError::conflict(format!(
                "container {id} is marked for removal and cannot be started"
            ))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_and_kill_record_dockers_exit_codes_and_restart_runs_again() {
        let (_dir, d) = daemon();
        let c = create(&d, "sleeper", "idle:1.0", &[]);
        d.start(&c).await.unwrap();
        assert!(d.stop(&c, StopKind::Stop).await.unwrap());
        let r = c.record();
        assert_eq!((r.state.status, r.state.exit_code), (Status::Exited, 143));
        assert!(r.state.manually_stopped);
        assert!(
            !d.stop(&c, StopKind::Stop).await.unwrap(),
            "stopped already"
        );

        d.restart(&c).await.unwrap();
        let r = c.record();
        assert_eq!((r.state.status, r.state.exit_code), (Status::Running, 0));
        assert!(!r.state.manually_stopped, "a start by hand clears it");
        assert!(d.stop(&c, StopKind::Signal(2)).await.unwrap());
        assert_eq!(c.record().state.exit_code, 130, "128 + SIGINT");

        // The daemon's shutdown ends a run as the daemon gone.
        d.start(&c).await.unwrap();
        d.stop_all().await;
        let r = c.record();
        assert_eq!(r.state.status, Status::Exited);
        assert_eq!(r.state.exit_code, EXIT_DAEMON_GONE);
        assert!(!r.state.manually_stopped);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn names_are_unique_and_lookups_say_what_is_missing() {
        let (_dir, d) = daemon();
        let web = create(&d, "web", "hello:1.0", &[]);
        let taken = |name: &str, id: &str| {
            DaemonError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
            ))
        };
        assert_eq!(
            refused(d.create(
                Some("web".into()),
                config("hello:1.0", &[]),
                HostConfig::default()
            )),
            taken("web", &web.id)
        );
        let other = d
            .create(None, config("hello:1.0", &[]), HostConfig::default())
            .unwrap();
        let generated = other.name();
        assert!(generated.contains('_'), "{generated}");
        assert_eq!(d.find(&format!("/{generated}")).unwrap().id, other.id);
        assert_eq!(
            refused(d.find("nope")),
            DaemonError::no_such_container("nope")
        );
        assert_eq!(d.find(&web.id[..12]).unwrap().id, web.id);

        // Docker's words for a rename, checked against dockerd 20.10.
        assert_eq!(
            refused(d.rename(&other, "/web")),
            DaemonError::conflict(format!(
                "Error when allocating new name: {}",
                taken("web", &web.id).message()
            ))
        );
        assert_eq!(
            refused(d.rename(&web, "web")),
            DaemonError::conflict("Renaming a container with the same name as its current name")
        );
        assert_eq!(
            refused(d.rename(&web, "")),
            DaemonError::invalid("Neither old nor new names may be empty")
        );
        assert!(matches!(
            refused(d.rename(&web, "no/slash")),
            DaemonError::InvalidArgument(_)
        ));
        d.rename(&web, "www").unwrap();
        assert_eq!(d.find("www").unwrap().id, web.id);
        assert_eq!(
            refused(d.find("web")),
            DaemonError::no_such_container("web")
        );
        let again = create(&d, "web", "hello:1.0", &[]);
        assert_ne!(again.id, web.id);

        // A removed instance cannot take its name back by a rename.
        d.remove(&web, false).await.unwrap();
        assert_eq!(
            refused(d.rename(&web, "ghost")),
            DaemonError::no_such_container(&web.id)
        );
        assert_eq!(
            refused(d.find("ghost")),
            DaemonError::no_such_container("ghost")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_create_is_refused_before_anything_is_kept() {
        let (_dir, d) = daemon();
        let cases = [
            (
                ContainerConfig {
                    tty: true,
                    ..config("hello:1.0", &[])
                },
                HostConfig::default(),
                DaemonError::invalid("wrun instances have no TTY: run without -t"),
            ),
            (
                config("", &[]),
                HostConfig::default(),
                DaemonError::invalid("no image given (Config.Image is empty)"),
            ),
            (
                config("nope:1", &[]),
                HostConfig::default(),
                DaemonError::no_such_image("nope:1"),
            ),
            (
                config("hello:1.0", &[]),
                HostConfig {
                    auto_remove: true,
                    restart_policy: RestartPolicy {
                        name: "always".into(),
                        maximum_retry_count: 0,
                    },
                    ..HostConfig::default()
                },
                DaemonError::invalid("can't create 'AutoRemove' container with restart policy"),
            ),
        ];
        for (config, host_config, expected) in cases {
            assert_eq!(
                refused(d.create(Some("bad".into()), config, host_config)),
                expected
            );
        }
        assert!(
            matches!(
                refused(d.create(
                    Some("-x".into()),
                    config("hello:1.0", &[]),
                    HostConfig::default()
                )),
                DaemonError::InvalidArgument(_)
            ),
            "a bad name"
        );
        assert!(d.all().is_empty());
        // No name was left reserved by a refused create.
        create(&d, "bad", "hello:1.0", &[]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn auto_remove_and_restart_policies_act_when_a_run_ends() {
        let (_dir, d) = daemon();
        let gone = d
            .create(
                Some("gone".into()),
                config("hello:1.0", &[]),
                HostConfig {
                    auto_remove: true,
                    ..HostConfig::default()
                },
            )
            .unwrap();
        let mut rx = gone.watch();
        d.start(&gone).await.unwrap();
        tokio::time::timeout(Duration::from_secs(120), rx.wait_for(|l| l.removed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            refused(d.find("gone")),
            DaemonError::no_such_container("gone")
        );
        // Its exit code and output are still there for `wait`, `logs` and
        // `inspect` by its full ID, for a while; not by its name.
        let found = d.find_or_recently_removed(&gone.id).unwrap();
        assert!(Arc::ptr_eq(&found, &gone));
        assert_eq!(gone.watch().borrow().exit_code, 0);
        assert_eq!(output(&gone).await, "Hello, world!\n");
        for key in ["gone", &gone.id[..12]] {
            assert_eq!(
                refused(d.find_or_recently_removed(key)),
                DaemonError::no_such_container(key)
            );
        }

        // `idle nope` exits 2; on-failure:1 starts it once more, then not.
        let flaky = d
            .create(
                Some("flaky".into()),
                config("idle:1.0", &["nope"]),
                HostConfig {
                    restart_policy: RestartPolicy {
                        name: "on-failure".into(),
                        maximum_retry_count: 1,
                    },
                    ..HostConfig::default()
                },
            )
            .unwrap();
        d.start(&flaky).await.unwrap();
        let r = ended(&flaky, 2).await;
        assert_eq!((r.state.status, r.state.exit_code), (Status::Exited, 2));
        assert_eq!(r.restart_count, 1);
        assert!(!r.state.restarting, "the retry count is spent");

        // A stop while a policy restart is pending cancels it.
        let always = d
            .create(
                Some("always".into()),
                config("hello:1.0", &[]),
                HostConfig {
                    restart_policy: RestartPolicy {
                        name: "always".into(),
                        maximum_retry_count: 0,
                    },
                    ..HostConfig::default()
                },
            )
            .unwrap();
        d.start(&always).await.unwrap();
        ended(&always, 1).await;
        assert!(d.stop(&always, StopKind::Stop).await.unwrap());
        let r = always.record();
        assert!(!r.state.is_live());
        assert!(!r.state.restarting);
        assert!(r.state.manually_stopped);
    }

    #[test]
    fn the_heap_is_trimmed_after_a_burst_once_it_is_quiet() {
        let mut trimmer = HeapTrimmer {
            daemon: std::sync::Weak::new(),
            seen: 0,
            trimmed: 0,
        };
        // Quiet from the start: nothing to trim.
        assert!(!trimmer.due(0));
        // A burst: no trim while it goes on, one at the first quiet look.
        assert!(!trimmer.due(600));
        assert!(!trimmer.due(1500));
        assert!(trimmer.due(1500));
        assert!(!trimmer.due(1500));
        // Steady churn never trims, nor do a few changes after a trim.
        assert!(!trimmer.due(1600));
        assert!(!trimmer.due(1600));
        assert!(!trimmer.due(2400));
        assert!(!trimmer.due(2400));
        assert!(!trimmer.due(2600));
        assert!(trimmer.due(2600));
        // A daemon that is gone ends the thread's loop.
        assert!(!trimmer.look());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_daemon_loads_the_records_and_ends_what_was_running() {
        let (dir, d) = daemon();
        let kept = create(&d, "kept", "hello:1.0", &[]);
        let running = create(&d, "running", "idle:1.0", &[]);
        d.start(&running).await.unwrap();

        // The records as a daemon that went away left them.
        let store = Store::open(dir.path()).unwrap();
        let next = Daemon::load(store, runtime(), dir.path().join("wrun.sock")).unwrap();
        let names: Vec<String> = next.all().iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), 2);
        let r = next.find("kept").unwrap().record();
        assert_eq!((r.id, r.state.status), (kept.id.clone(), Status::Created));
        let r = next.find("running").unwrap().record();
        assert_eq!(r.state.status, Status::Exited);
        assert_eq!(r.state.exit_code, EXIT_DAEMON_GONE);
        assert_eq!(
            r.state.error,
            "the daemon stopped while the instance was running"
        );
        assert!(next.interrupted.contains(&running.id));
        d.stop(&running, StopKind::Signal(9)).await.unwrap();
    }
}
