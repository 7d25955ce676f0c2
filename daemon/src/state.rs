//! The daemon's state: the instance records (persisted under the store
//! root), names, and the lifecycle of each instance as an async task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::DuplexStream;
use tokio::sync::{oneshot, watch};
use wrun_image::Store;
use wrun_runtime::{InputSource, InputStream, OutputTarget, Runtime};

use super::events::EventLog;
use super::gate::RunGate;
use super::logpack::LogPack;
use super::logs::{LogFile, STDERR, STDOUT};
use super::records::{self, RecordJournal};
use crate::error::DaemonError;
use crate::launch;
use crate::lifecycle::{EXIT_DAEMON_GONE, Status, StopKind};
use crate::outcome;
use wrun_api::containers::{ContainerConfig, HostConfig};

/// Bytes one log file may reach before it is rotated (two are kept).
pub const LOG_MAX_SIZE: u64 = 10 << 20;

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
        matches!(self.status, Status::Running | Status::Paused)
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

/// What watchers of an instance (`wait`) see change.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    pub running: bool,
    /// Runs that have ended since the daemon loaded the instance.
    pub exits: u64,
    pub exit_code: i64,
    pub error: String,
    pub removed: bool,
}

pub struct Container {
    pub id: String,
    /// `containers/<id>/` of an instance created before the journal (its
    /// logs stay there); deleted with the instance.
    legacy_dir: Option<PathBuf>,
    pub log: Arc<LogFile>,
    records: Arc<RecordJournal>,
    inner: Mutex<Inner>,
    lifecycle: watch::Sender<Lifecycle>,
}

struct Inner {
    record: ContainerRecord,
    stop: Option<oneshot::Sender<StopKind>>,
    /// Pause control and meters of the current run.
    gate: Option<Arc<RunGate>>,
    /// The current run serves HTTP (its requests run outside the gate).
    serving: bool,
    /// When the current (or last) run started, and how many policy
    /// restarts in a row followed runs shorter than [`STEADY_RUN`].
    run_started: Option<std::time::Instant>,
    quick_restarts: u32,
    stdin: StdinPipe,
}

/// The stdin of an instance created with `OpenStdin` (`docker run -i`): a
/// pipe made by whichever comes first, an attach with `stdin=1` or the
/// start, each taking its end; dropped when the run ends. Without an
/// attach the guest waits on an open, empty stdin, as in Docker.
#[derive(Default)]
struct StdinPipe {
    /// For the next run, when an attach came first.
    reader: Option<InputStream>,
    /// For the next attach, when the run came first.
    writer: Option<DuplexStream>,
}

/// Bytes an attached client may write ahead of the guest's reads.
const STDIN_BUFFER: usize = 64 * 1024;

/// Instances started at once when the daemon applies restart policies.
const REVIVE_AT_ONCE: usize = 32;

/// A run this long resets the restart back-off.
const STEADY_RUN: std::time::Duration = std::time::Duration::from_secs(10);

/// Docker's back-off before a policy restart: 100 ms, doubled after each
/// quick restart, at most a minute.
fn restart_delay(quick_restarts: u32) -> std::time::Duration {
    let ms = 100u64.saturating_mul(1u64 << quick_restarts.min(10));
    std::time::Duration::from_millis(ms.min(60_000))
}

impl Container {
    fn new(
        log: Arc<LogFile>,
        legacy_dir: Option<PathBuf>,
        record: ContainerRecord,
        records: &Arc<RecordJournal>,
    ) -> Arc<Self> {
        let life = Lifecycle {
            running: record.state.status == Status::Running,
            exit_code: record.state.exit_code,
            error: record.state.error.clone(),
            ..Lifecycle::default()
        };
        Arc::new(Self {
            id: record.id.clone(),
            log,
            legacy_dir,
            records: Arc::clone(records),
            inner: Mutex::new(Inner {
                record,
                stop: None,
                gate: None,
                serving: false,
                run_started: None,
                quick_restarts: 0,
                stdin: StdinPipe::default(),
            }),
            lifecycle: watch::Sender::new(life),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update of Inner is a whole assignment: usable after a panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the record.
    pub fn record(&self) -> ContainerRecord {
        self.lock().record.clone()
    }

    pub fn name(&self) -> String {
        self.lock().record.name.clone()
    }

    /// Records where the current run's published ports landed. Not saved
    /// on its own: they are shown only while live, and the end of the run
    /// saves the record.
    fn set_published(&self, published: &[wrun_runtime::PortMapping]) {
        self.lock().record.state.published = published.iter().map(|m| m.spec()).collect();
    }

    /// The writing end of the instance's stdin, for an attach with
    /// `stdin=1`; `None` unless it was created with `OpenStdin`, or when
    /// another attach holds it already.
    pub fn attach_stdin(&self) -> Option<DuplexStream> {
        let mut inner = self.lock();
        if !inner.record.config.open_stdin {
            return None;
        }
        if let Some(w) = inner.stdin.writer.take() {
            return Some(w);
        }
        if inner.stdin.reader.is_some() || inner.record.state.is_live() {
            return None;
        }
        let (r, w) = tokio::io::duplex(STDIN_BUFFER);
        inner.stdin.reader = Some(InputStream::new(r));
        Some(w)
    }

    /// The stdin of a run about to start.
    fn run_stdin(inner: &mut Inner) -> InputSource {
        if !inner.record.config.open_stdin {
            return InputSource::Null;
        }
        if let Some(r) = inner.stdin.reader.take() {
            return InputSource::Stream(r);
        }
        let (r, w) = tokio::io::duplex(STDIN_BUFFER);
        inner.stdin.writer = Some(w);
        InputSource::Stream(InputStream::new(r))
    }

    /// The pause control and meters of the current run, while live.
    pub fn gate(&self) -> Option<Arc<RunGate>> {
        self.lock().gate.clone()
    }

    pub fn watch(&self) -> watch::Receiver<Lifecycle> {
        self.lifecycle.subscribe()
    }

    fn save(&self, record: &ContainerRecord) -> anyhow::Result<()> {
        self.records
            .put(&self.id, record)
            .with_context(|| format!("saving the record of instance {}", self.id))
    }

    /// Bytes the instance holds on disk: its logs and, for an instance from
    /// before the journal, its directory.
    fn disk_bytes(&self) -> u64 {
        match &self.legacy_dir {
            Some(dir) => dir_size(dir),
            None => self.log.disk_bytes(),
        }
    }

    /// Deletes the instance's logs (and its directory from before the
    /// journal).
    fn delete_files(&self) {
        match &self.legacy_dir {
            Some(dir) => remove_dir(dir),
            None => self.log.delete(),
        }
    }

    /// Records the end of a run and wakes every watcher; returns the record
    /// as the run left it (a watcher may start the next run at once) and,
    /// when its restart policy starts it again, after what delay. The
    /// policy is decided under the same lock as the end, so a `stop` sees
    /// either a live instance or one already marked restarting.
    fn finish(
        &self,
        exit_code: i64,
        error: String,
        oom_killed: bool,
        may_restart: bool,
    ) -> (ContainerRecord, Option<std::time::Duration>) {
        let mut inner = self.lock();
        inner.stop = None;
        inner.gate = None;
        inner.serving = false;
        inner.stdin = StdinPipe::default();
        let st = &mut inner.record.state;
        st.status = Status::Exited;
        st.exit_code = exit_code;
        st.error = error.clone();
        st.oom_killed = oom_killed;
        st.finished_at = Some(now());
        if let Err(e) = self.save(&inner.record) {
            eprintln!("wrun daemon: {}", crate::error::describe(&e));
        }
        let r = &inner.record;
        let restart = may_restart
            && !r.host_config.auto_remove
            && r.host_config.restart_policy.restarts_after(
                exit_code,
                r.state.manually_stopped,
                r.restart_count,
            );
        let delay = restart.then(|| {
            let steady = inner.run_started.is_some_and(|t| t.elapsed() >= STEADY_RUN);
            inner.quick_restarts = if steady { 0 } else { inner.quick_restarts + 1 };
            inner.record.state.restarting = true;
            restart_delay(inner.quick_restarts - 1)
        });
        let ended = inner.record.clone();
        drop(inner);
        self.log.end_run();
        self.lifecycle.send_modify(|l| {
            l.running = false;
            l.exits += 1;
            l.exit_code = exit_code;
            l.error = error;
        });
        (ended, delay)
    }
}

pub use wrun_api::time::now;

/// The daemon: the store, the one runtime, and every instance.
pub struct Daemon {
    pub store: Store,
    pub runtime: Runtime,
    pub socket: PathBuf,
    logs_dir: PathBuf,
    log_pack: Arc<LogPack>,
    registry: Mutex<Registry>,
    pub shutdown: tokio::sync::Notify,
    pub events: EventLog,
    /// Set once the daemon is stopping: no policy restarts from then on.
    shutting_down: std::sync::atomic::AtomicBool,
    /// Instances that were running when the previous daemon went away.
    interrupted: HashSet<String>,
    records: Arc<RecordJournal>,
    /// Records this daemon could not read, kept as they were: a rewrite of
    /// the journal keeps them for a daemon that can.
    unreadable: Vec<(String, serde_json::Value)>,
}

#[derive(Default)]
struct Registry {
    by_id: BTreeMap<String, Arc<Container>>,
    names: HashMap<String, String>,
}

impl Daemon {
    /// Opens the records under `<root>/containers`; instances that were
    /// running when a previous daemon stopped are marked exited.
    pub fn load(store: Store, runtime: Runtime, socket: PathBuf) -> anyhow::Result<Arc<Self>> {
        let containers_dir = store.root().join("containers");
        std::fs::create_dir_all(&containers_dir)
            .with_context(|| format!("creating {}", containers_dir.display()))?;
        let logs_dir = containers_dir.join(LOGS);
        std::fs::create_dir_all(&logs_dir)
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
        let files = forget_leftovers(&containers_dir, &logs_dir, &live);
        let (log_pack, problems) = LogPack::open(containers_dir.join(LOG_PACK))?;
        for problem in &problems {
            eprintln!("wrun daemon: {problem}");
        }
        let log_pack = Arc::new(log_pack);
        let mut registry = Registry::default();
        let mut interrupted = HashSet::new();
        for record in parsed {
            let max = log_max_size(&record);
            let path = logs_dir.join(format!("{}.log", record.id));
            let pack = Arc::clone(&log_pack);
            let (log, legacy_dir) = if files.legacy_dirs.contains(&record.id) {
                let dir = containers_dir.join(&record.id);
                (LogFile::open(dir.join(LEGACY_LOG), max, None), Some(dir))
            } else if files.log_files.contains(&record.id) {
                (
                    LogFile::open(path, max, Some((pack, record.id.clone()))),
                    None,
                )
            } else {
                (LogFile::packed(path, max, pack, record.id.clone()), None)
            };
            let c = Container::new(log, legacy_dir, record, &records);
            {
                let mut inner = c.lock();
                let st = &mut inner.record.state;
                if matches!(
                    st.status,
                    Status::Running | Status::Paused | Status::Removing
                ) {
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
            registry.names.insert(c.name(), c.id.clone());
            registry.by_id.insert(c.id.clone(), c);
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
            shutdown: tokio::sync::Notify::new(),
            events: EventLog::default(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            interrupted,
            records: Arc::clone(&records),
            unreadable,
        });
        // From now on the flusher may rewrite the journal from the records
        // held here (see `LiveRecords` below).
        records.set_live_source(&daemon);
        Ok(daemon)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Inserts and removes are single calls: usable after a panic.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.registry().by_id.values().cloned().collect()
    }

    /// By full ID, name (with or without the leading `/`), or unique ID prefix.
    pub fn find(&self, key: &str) -> Result<Arc<Container>, DaemonError> {
        let reg = self.registry();
        if let Some(c) = reg.by_id.get(key) {
            return Ok(Arc::clone(c));
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(c) = reg.names.get(name).and_then(|id| reg.by_id.get(id)) {
            return Ok(Arc::clone(c));
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DaemonError::no_such_container(key));
        }
        let mut matches = reg
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
            wrun_api::parse::check_name(n).map_err(|e| DaemonError::invalid(e.to_string()))?;
        }
        let record = self.store.find(&config.image).map_err(|e| {
            if e.is_not_found() {
                DaemonError::not_found(format!("No such image: {}", config.image))
            } else {
                DaemonError::from(anyhow::Error::from(e))
            }
        })?;
        let settings = launch::settings(&config, &host_config)?;
        let launch = launch::plan(&self.store, &record, &config.image, &settings)
            .map_err(|e| DaemonError::invalid(crate::error::describe(&e)))?;
        let id = new_id();
        let mut args = launch.spec.args.clone();
        let path = if args.is_empty() {
            String::new()
        } else {
            args.remove(0)
        };
        let mut reg = self.registry();
        let name = match name {
            Some(n) => {
                if let Some(other) = reg.names.get(&n) {
                    return Err(DaemonError::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => generate_name(&id, &reg.names),
        };
        // Reserve the name, then write the record without holding the
        // registry: on a slow file system a create's directory and record
        // take a millisecond, and every other request needs the registry.
        // Until the instance is inserted below, its name is taken but
        // finds nothing.
        reg.names.insert(name.clone(), id.clone());
        drop(reg);
        let record = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: now(),
            image: config.image.clone(),
            image_id: record.id.to_string(),
            path,
            args,
            config,
            host_config,
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
        let c = Container::new(log, None, record.clone(), &self.records);
        // The record is appended before the instance is in the registry:
        // no journal rewrite may take its snapshot in between.
        let in_flight = self.records.in_flight();
        let c = match c.save(&record) {
            Ok(()) => c,
            Err(e) => {
                let mut reg = self.registry();
                if reg.names.get(&name) == Some(&id) {
                    reg.names.remove(&name);
                }
                return Err(e.into());
            }
        };
        self.registry().by_id.insert(id.clone(), Arc::clone(&c));
        drop(in_flight);
        self.events
            .container("create", &id, &name, &record.image, &[]);
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
        let (rx, gate, record, stdin) = {
            let mut inner = c.lock();
            match inner.record.state.status {
                Status::Running | Status::Paused => return Ok(false),
                Status::Removing => {
                    return Err(DaemonError::conflict(format!(
                        "container {} is marked for removal and cannot be started",
                        c.id
                    )));
                }
                Status::Created | Status::Exited => {}
            }
            let (tx, rx) = oneshot::channel();
            inner.stop = Some(tx);
            let gate = Arc::new(RunGate::default());
            inner.gate = Some(Arc::clone(&gate));
            let st = &mut inner.record.state;
            st.status = Status::Running;
            st.exit_code = 0;
            st.error.clear();
            st.oom_killed = false;
            st.manually_stopped = false;
            st.restarting = false;
            st.started_at = Some(now());
            st.finished_at = None;
            if by_policy {
                inner.record.restart_count += 1;
            } else {
                inner.record.restart_count = 0;
                inner.quick_restarts = 0;
            }
            inner.run_started = Some(std::time::Instant::now());
            let stdin = Container::run_stdin(&mut inner);
            c.save(&inner.record)?;
            c.lifecycle.send_modify(|l| l.running = true);
            (rx, gate, inner.record.clone(), stdin)
        };
        self.events
            .container("start", &c.id, &record.name, &record.image, &[]);
        let daemon = Arc::clone(self);
        let log = Arc::clone(&c.log);
        let memory = gate.memory.clone();
        let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let image = daemon.store.find(&record.image_id)?;
            let settings = launch::settings(&record.config, &record.host_config)
                .map_err(anyhow::Error::from)?;
            let mut launch = launch::plan(&daemon.store, &image, &record.image, &settings)?;
            launch.spec.stdin = stdin;
            launch.spec.stdout = OutputTarget::Sink(log.sink(STDOUT));
            launch.spec.stderr = OutputTarget::Sink(log.sink(STDERR));
            launch.spec.memory_gauge = Some(memory);
            let module = launch::prepare(&daemon.runtime, &launch)?;
            // An HTTP handler is served: its ports are bound (held) now.
            let served = if module.serves_http() {
                let listeners = crate::serve::bind(&record.image, &mut launch)?;
                Some((listeners, settings.serve))
            } else {
                launch::claim_ports(&mut launch)?;
                None
            };
            Ok((launch, module, served))
        })
        .await
        .map_err(|e| anyhow::anyhow!("preparing the instance failed: {e}"))
        .and_then(|r| r);
        let (launch, module, served) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let code = outcome::failure_exit_code(&e);
                let err = DaemonError::from(e);
                self.ended(c, i64::from(code), err.message().to_owned(), false);
                return Err(err);
            }
        };
        c.set_published(&launch.spec.network.publish);
        let daemon = Arc::clone(self);
        let c2 = Arc::clone(c);
        if let Some((listeners, serve)) = served {
            c.lock().serving = true;
            tokio::spawn(async move {
                let (code, error) = super::serving::serve(
                    &daemon.runtime,
                    OutputTarget::Sink(c2.log.sink(STDOUT)),
                    &module,
                    launch,
                    listeners,
                    &serve,
                    rx,
                )
                .await;
                daemon.ended(&c2, code, error, false);
            });
            return Ok(true);
        }
        tokio::spawn(async move {
            let mut rx = rx;
            let runtime = daemon.runtime.clone();
            let module_name = launch.module_name.clone();
            let run = gate.wrap(runtime.run(&module, launch.spec));
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

    /// A run ended: record it, announce `die`, then remove the instance if
    /// it was started with `--rm`, or start it again if its restart policy
    /// says so (after Docker's back-off).
    fn ended(self: &Arc<Self>, c: &Arc<Container>, code: i64, error: String, oom: bool) {
        // Decisions use the record as this run left it: `restart` may have
        // started the next run already.
        let may_restart = !self.shutting_down.load(std::sync::atomic::Ordering::SeqCst);
        let (r, delay) = c.finish(code, error, oom, may_restart);
        self.events.container(
            "die",
            &c.id,
            &r.name,
            &r.image,
            &[("exitCode", code.to_string())],
        );
        if r.host_config.auto_remove {
            if !c.lock().record.state.is_live() {
                self.remove_stopped(c);
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
            let still_wanted = inner.record.state.restarting
                && inner.record.state.status == Status::Exited
                && !self.shutting_down.load(std::sync::atomic::Ordering::SeqCst);
            inner.record.state.restarting = false;
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
            let r = c.record();
            let was_running = self.interrupted.contains(&c.id);
            let wanted = r.state.status == Status::Exited
                && r.host_config.restart_policy.starts_with_daemon(
                    was_running,
                    r.state.manually_stopped,
                    r.restart_count,
                );
            if wanted {
                c.lock().record.state.restarting = true;
                while starts.len() >= REVIVE_AT_ONCE {
                    starts.join_next().await;
                }
                let daemon = Arc::clone(self);
                starts.spawn(async move { daemon.restart_by_policy(&c).await });
            }
        }
        while starts.join_next().await.is_some() {}
    }

    /// Ends a running (or paused) instance and waits until it has ended;
    /// `Ok(false)` when it was not running.
    pub async fn stop(&self, c: &Container, kind: StopKind) -> Result<bool, DaemonError> {
        match self.signal(c, kind)? {
            Signalled::NotLive => Ok(false),
            Signalled::RestartCancelled => Ok(true),
            Signalled::Ending {
                mut rx,
                name,
                image,
            } => {
                let _ = rx.wait_for(|l| !l.running).await;
                if matches!(kind, StopKind::Stop) {
                    self.events.container("stop", &c.id, &name, &image, &[]);
                }
                Ok(true)
            }
        }
    }

    /// The first half of [`stop`](Daemon::stop): tells the instance to end.
    fn signal(&self, c: &Container, kind: StopKind) -> Result<Signalled, DaemonError> {
        let rx = c.watch();
        let (name, image) = {
            let mut inner = c.lock();
            if inner.record.state.restarting && !matches!(kind, StopKind::Shutdown) {
                // Waiting for its policy restart: cancel it.
                inner.record.state.restarting = false;
                inner.record.state.manually_stopped = true;
                c.save(&inner.record)?;
                return Ok(Signalled::RestartCancelled);
            }
            if !inner.record.state.is_live() {
                return Ok(Signalled::NotLive);
            }
            if !matches!(kind, StopKind::Shutdown) {
                inner.record.state.manually_stopped = true;
            }
            if let Some(tx) = inner.stop.take() {
                let _ = tx.send(kind);
            }
            (inner.record.name.clone(), inner.record.image.clone())
        };
        if let Some(n) = kind.signal() {
            self.events
                .container("kill", &c.id, &name, &image, &[("signal", n.to_string())]);
        }
        Ok(Signalled::Ending { rx, name, image })
    }

    /// `restart`: stops the instance if it runs, then starts it.
    pub async fn restart(self: &Arc<Self>, c: &Arc<Container>) -> Result<(), DaemonError> {
        self.stop(c, StopKind::Stop).await?;
        self.start(c).await?;
        let r = c.record();
        self.events
            .container("restart", &c.id, &r.name, &r.image, &[]);
        Ok(())
    }

    /// `pause`: the guest is no longer polled; it keeps its memory.
    pub fn pause(&self, c: &Container) -> Result<(), DaemonError> {
        let r = {
            let mut inner = c.lock();
            match inner.record.state.status {
                Status::Running => {}
                Status::Paused => {
                    return Err(DaemonError::conflict(format!(
                        "Container {} is already paused",
                        c.id
                    )));
                }
                _ => {
                    return Err(DaemonError::conflict(format!(
                        "Container {} is not running",
                        c.id
                    )));
                }
            }
            if inner.serving {
                return Err(DaemonError::conflict(format!(
                    "Container {} serves HTTP and cannot be paused: stop it instead (requests in flight finish)",
                    c.id
                )));
            }
            let Some(gate) = inner.gate.clone() else {
                return Err(DaemonError::conflict(format!(
                    "Container {} is not running",
                    c.id
                )));
            };
            gate.pause();
            // Kept in memory only: a daemon that stops treats paused as
            // running (the instance ends either way), so no disk write.
            inner.record.state.status = Status::Paused;
            inner.record.clone()
        };
        self.events
            .container("pause", &c.id, &r.name, &r.image, &[]);
        Ok(())
    }

    /// `unpause`: the guest is polled again from where it stopped.
    pub fn unpause(&self, c: &Container) -> Result<(), DaemonError> {
        let r = {
            let mut inner = c.lock();
            if inner.record.state.status != Status::Paused {
                return Err(DaemonError::conflict(format!(
                    "Container {} is not paused",
                    c.id
                )));
            }
            inner.record.state.status = Status::Running;
            if let Some(gate) = &inner.gate {
                gate.resume();
            }
            inner.record.clone()
        };
        self.events
            .container("unpause", &c.id, &r.name, &r.image, &[]);
        Ok(())
    }

    /// `rename`: 409 when the name is taken, 400 when it is not a valid name.
    pub fn rename(&self, c: &Container, new_name: &str) -> Result<(), DaemonError> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if new_name.is_empty() {
            return Err(DaemonError::invalid(
                "Neither old nor new names may be empty",
            ));
        }
        wrun_api::parse::check_name(new_name).map_err(|e| DaemonError::invalid(e.to_string()))?;
        let mut reg = self.registry();
        let mut inner = c.lock();
        let old = inner.record.name.clone();
        if old == new_name {
            return Err(DaemonError::conflict(format!(
                "Renaming a container with the same name as its current name: {old}"
            )));
        }
        if let Some(other) = reg.names.get(new_name) {
            return Err(DaemonError::conflict(format!(
                "Conflict. The container name \"/{new_name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        let mut record = inner.record.clone();
        record.name = new_name.to_string();
        c.save(&record)?;
        inner.record = record;
        reg.names.remove(&old);
        reg.names.insert(new_name.to_string(), c.id.clone());
        let image = inner.record.image.clone();
        drop(inner);
        drop(reg);
        self.events.container(
            "rename",
            &c.id,
            new_name,
            &image,
            &[("oldName", format!("/{old}"))],
        );
        Ok(())
    }

    /// `DELETE /containers/{id}`: refused for a running instance unless forced.
    pub async fn remove(&self, c: &Arc<Container>, force: bool) -> Result<(), DaemonError> {
        let live = c.lock().record.state.is_live();
        if live {
            if !force {
                return Err(DaemonError::conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            self.stop(c, StopKind::Signal(9)).await?;
        }
        self.remove_stopped(c);
        Ok(())
    }

    /// `container prune`: removes every instance that is not running;
    /// returns their IDs and the bytes their directories held.
    pub fn prune(&self) -> (Vec<String>, u64) {
        let mut deleted = Vec::new();
        let mut bytes = 0;
        for c in self.all() {
            if c.lock().record.state.is_live() {
                continue;
            }
            bytes += c.disk_bytes();
            if self.remove_stopped(&c) {
                deleted.push(c.id.clone());
            }
        }
        (deleted, bytes)
    }

    /// Forgets an instance that is not running and deletes its directory;
    /// `false` when it was gone already.
    fn remove_stopped(&self, c: &Arc<Container>) -> bool {
        let name = {
            let mut reg = self.registry();
            if reg.by_id.remove(&c.id).is_none() {
                return false; // removed already (auto-remove and rm raced)
            }
            let name = c.name();
            if reg.names.get(&name) == Some(&c.id) {
                reg.names.remove(&name);
            }
            name
        };
        let image = {
            let mut inner = c.lock();
            inner.record.state.status = Status::Removing;
            inner.record.image.clone()
        };
        // The record goes at once, so a daemon restart never brings the
        // instance back; the logs may outlive it a little.
        if let Err(e) = self.records.remove(&c.id) {
            eprintln!("wrun daemon: {}", crate::error::describe(&e));
        }
        if c.log.has_readers() {
            // An attached client (`docker run --rm`) may not have read the
            // last output yet: delete once it has, or after a bound.
            let c = Arc::clone(c);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READER_GRACE, c.log.readers_done()).await;
                c.delete_files();
            });
        } else {
            c.delete_files();
        }
        c.lifecycle.send_modify(|l| l.removed = true);
        self.events.container("destroy", &c.id, &name, &image, &[]);
        true
    }

    /// Ends every running instance, recorded as exited because the daemon
    /// shut down. An HTTP server is told to stop and waited for (it drains
    /// its requests). Any other instance ends with the process: its record
    /// says so now, and its task is left as it is, never polled again once
    /// the daemon exits. Tearing each instance down (its pool slot, stack
    /// and memory) took 170 µs apiece, 17 s at 100,000, for nothing.
    pub async fn stop_all(self: &Arc<Self>) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
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
                    if let Ok(Signalled::Ending { rx, .. }) = self.signal(&c, StopKind::Shutdown) {
                        ending.push(rx);
                    }
                }
            }
        }
        for mut rx in ending {
            let _ = rx.wait_for(|l| !l.running).await;
        }
        // The process is about to exit: the senders go with it.
        std::mem::forget(abandoned);
        if let Err(e) = self.records.flush() {
            eprintln!("wrun daemon: {}", crate::error::describe(&e));
        }
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

/// What telling an instance to stop found.
enum Signalled {
    NotLive,
    /// It was waiting for a policy restart, now cancelled.
    RestartCancelled,
    /// It is ending; `rx` sees when it has.
    Ending {
        rx: watch::Receiver<Lifecycle>,
        name: String,
        image: String,
    },
}

/// How long a removed instance's log stays for readers still draining it.
const READER_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

fn remove_dir(dir: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("wrun daemon: removing {}: {e}", dir.display());
    }
}

/// The image IDs of the instance records in `containers_dir`.
pub fn image_ids_on_disk(containers_dir: &std::path::Path) -> std::collections::HashSet<String> {
    let Ok(loaded) = records::read(containers_dir) else {
        return Default::default();
    };
    loaded
        .records
        .values()
        .filter_map(|r| r.get("image_id")?.as_str().map(str::to_owned))
        .collect()
}

/// Where the logs of instances live once they outgrow the pack:
/// `containers/logs/<id>.log` (one inode per instance, no directory).
const LOGS: &str = "logs";
/// The first KiB of every instance's log: `containers/logs.pack`.
const LOG_PACK: &str = "logs.pack";

/// The size at which an instance's log file is rotated.
fn log_max_size(record: &ContainerRecord) -> u64 {
    record
        .host_config
        .log_config
        .max_size()
        .ok()
        .flatten()
        .unwrap_or(LOG_MAX_SIZE)
}
/// The log of an instance created before the journal, in its directory.
const LEGACY_LOG: &str = "container.log";

/// Which live instances have files of their own, from one listing of each
/// directory at start (so an instance with neither costs no `stat`).
#[derive(Default)]
struct InstanceFiles {
    /// A directory `containers/<id>/` (the layout before the journal).
    legacy_dirs: HashSet<String>,
    /// A log file in `containers/logs/` (it outgrew the pack).
    log_files: HashSet<String>,
}

/// Deletes what instances no longer in `live` left: the record files of the
/// layout before the journal (now folded into it, and durable), and logs
/// kept for a reader when the daemon stopped. Returns what the live ones
/// have.
fn forget_leftovers(
    containers_dir: &std::path::Path,
    logs_dir: &std::path::Path,
    live: &BTreeMap<String, serde_json::Value>,
) -> InstanceFiles {
    let mut files = InstanceFiles::default();
    for (id, legacy) in records::legacy_records(containers_dir) {
        if live.contains_key(&id) {
            for p in [legacy.clone(), legacy.with_file_name(".config.json.tmp")] {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    for entry in std::fs::read_dir(containers_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = entry.path();
        let name = entry.file_name();
        let id = name.to_string_lossy();
        if id == LOGS || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if live.contains_key(id.as_ref()) {
            files.legacy_dirs.insert(id.into_owned());
        } else if !dir.join(records::LEGACY_RECORD).exists() {
            // A directory without a record: the logs of an instance removed
            // while a reader drained them.
            remove_dir(&dir);
        }
    }
    for entry in std::fs::read_dir(logs_dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let id = name.split('.').next().unwrap_or_default();
        // A `.moving` file is a move out of the pack cut short: the pack
        // still holds that log.
        if !live.contains_key(id) || name.ends_with(".moving") {
            let _ = std::fs::remove_file(entry.path());
        } else {
            files.log_files.insert(id.to_owned());
        }
    }
    files
}

/// Bytes of the files directly in `dir` (an instance's record and logs).
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// 64 hex digits, unpredictable enough for names of instances.
fn new_id() -> String {
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
        OffsetDateTime::now_utc()
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
