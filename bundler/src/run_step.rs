//! `RUN` (exec form) of a build: runs a WASI module of the stage's rootfs
//! over a writable copy-on-write view of it and returns what it changed as
//! the step's layer, deletions as whiteouts.
//!
//! # Wiring it into a build
//!
//! ```text
//! let mut rootfs = StageRootfs::of_image(store, &base)?;   // FROM IMAGE (empty for FROM scratch)
//! rootfs.push(&copy_layer);                                 // after each COPY/ADD layer
//! let step = RunStep {
//!     argv, env: stage_env, workdir: stage_workdir,        // the exec form's list, the stage's Env/WorkingDir
//!     limits: StepLimits { memory, timeout, storage },     // default: 10 min, 4 GiB, the runtime's memory cap
//!     network: NetworkGrants::default(),                   // none unless `build` allows it
//!     mtime_clamp: Some(epoch),                            // the time COPY layers get (SOURCE_DATE_EPOCH or 0)
//!     stdout, stderr,                                      // OutputTarget: the build prints them live
//! };
//! match run_step(&runtime, &mut staging, &rootfs, &step)? {
//!     Some(layer) => { rootfs.push(&layer); /* descriptor + diff_id + history entry */ }
//!     None => { /* history entry with empty_layer: true, no diff_id, as dockerd's classic builder */ }
//! }
//! ```
//!
//! - The lower is the stage's snapshot by chain ID: the store's own when an
//!   image already has that chain (how the daemon runs images, nothing
//!   unpacked), else unpacked once into the build's `Staging` (where the
//!   next step finds it again). The upper is a fresh directory in the
//!   staging area, removed when the step ends, whatever the outcome.
//! - The history entry's `created_by` is [`RunStep::created_by`]: the list
//!   joined by spaces, as dockerd writes it for the exec form.
//! - `run_step` blocks (it runs the guest on its own current-thread
//!   executor): an async caller calls it from a blocking thread.
//! - A `runtime` for a build without a daemon: `Runtime::new(RuntimeConfig {
//!   cache_dir: Some(store.cache_dir().join("modules")), scratch_dir:
//!   Some(store.root().join("scratch")), ..RuntimeConfig::foreground() })`.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageConfigurationBuilder, ImageManifest, ImageManifestBuilder,
    MediaType, RootFsBuilder,
};
use wrun_image::layer::BuiltLayer;
use wrun_image::store::{Staging, chain_id};
use wrun_image::{Digest, ImageError, ImageRecord, Store};
use wrun_rootfs::{Kind, Layers, OpenOptions, Opened, UpperOptions};
use wrun_runtime::{
    InstanceSpec, Limits, ModuleDigest, ModuleKind, NetworkGrants, OutputSink, OutputTarget,
    PrepareOptions, RunOutcome, Runtime, RuntimeError, TrapReason,
};

/// How long a step may run unless the build says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Bytes of file data a step may write (or copy up from the image) unless
/// the build says otherwise.
pub const DEFAULT_STORAGE_LIMIT: u64 = 4 << 30;

/// gzip level of a step's layer: a build's, as `LayerWriter::new` uses.
const LAYER_GZIP_LEVEL: u32 = 6;

/// The largest module a step runs: a language interpreter is tens of MB.
const MAX_MODULE_BYTES: u64 = 512 << 20;

/// Lines of output an error of a failed step carries, and the longest kept.
const TAIL_LINES: usize = 10;
const TAIL_LINE_BYTES: usize = 512;

/// dockerd's `PATH` when the stage's Env has none: where a command without
/// a `/` is looked up.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The rootfs of a stage so far: its layer blobs, base first, and their
/// diff_ids. Empty for `FROM scratch` before any `COPY`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageRootfs {
    /// The layers as the manifest lists them (gzip or plain tar blobs).
    pub layers: Vec<Descriptor>,
    /// The digest of each layer's uncompressed tar, in the same order.
    pub diff_ids: Vec<Digest>,
}

impl StageRootfs {
    /// The rootfs of a stored image (`FROM IMAGE`).
    pub fn of_image(store: &Store, record: &ImageRecord) -> Result<StageRootfs, ImageError> {
        let manifest = store.manifest(record)?;
        let config = store.config(record)?;
        let diff_ids = wrun_image::document::diff_ids(&config)?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::invalid(
                format!("image {}", record.id.short()),
                format!(
                    "the config lists {} diff_ids but the manifest has {} layers",
                    diff_ids.len(),
                    manifest.layers().len()
                ),
            ));
        }
        Ok(StageRootfs {
            layers: manifest.layers().clone(),
            diff_ids,
        })
    }

    /// Adds a gzip layer built in the staging area (a `COPY` or `RUN`).
    pub fn push(&mut self, layer: &BuiltLayer) {
        self.layers.push(Descriptor::new(
            MediaType::ImageLayerGzip,
            layer.size,
            layer.digest.to_oci(),
        ));
        self.diff_ids.push(layer.diff_id);
    }

    /// The ChainID of the layers: what names the stage's snapshot.
    pub fn chain_id(&self) -> Option<Digest> {
        chain_id(&self.diff_ids)
    }

    /// The two documents `Staging::prepare_snapshot` reads the layers from.
    fn documents(&self) -> Result<(ImageManifest, ImageConfiguration), ImageError> {
        let invalid = |e: oci_spec::OciSpecError| ImageError::invalid("the stage", e.to_string());
        let config = ImageConfigurationBuilder::default()
            .architecture("wasm")
            .os("wasip1")
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(
                        self.diff_ids
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>(),
                    )
                    .build()
                    .map_err(invalid)?,
            )
            .build()
            .map_err(invalid)?;
        // Only the layers are read: the config descriptor is never opened.
        let config_descriptor = Descriptor::new(
            MediaType::ImageConfig,
            0,
            Digest::of(b"the stage's rootfs").to_oci(),
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_descriptor)
            .layers(self.layers.clone())
            .build()
            .map_err(invalid)?;
        Ok((manifest, config))
    }
}

/// The limits of one step. Deny by default where a default can be had:
/// [`DEFAULT_TIMEOUT`], [`DEFAULT_STORAGE_LIMIT`]; memory is bounded by
/// the runtime's cap per instance (4 GiB by default) unless set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepLimits {
    /// Bytes of linear memory and tables; `None`: the runtime's cap.
    pub memory: Option<u64>,
    /// Wall-clock time from the module's start (waits included).
    pub timeout: Duration,
    /// Bytes of file data the step may write or copy up from the stage's
    /// rootfs. A step that reaches it fails, even when its command then
    /// exits 0: what it wrote is not whole.
    pub storage: u64,
}

impl Default for StepLimits {
    fn default() -> Self {
        StepLimits {
            memory: None,
            timeout: DEFAULT_TIMEOUT,
            storage: DEFAULT_STORAGE_LIMIT,
        }
    }
}

/// One `RUN ["/path/in/rootfs.wasm", "arg", …]`.
///
/// Defaults ([`RunStep::new`]): no environment, `/` as working directory,
/// [`StepLimits::default`], no network, the guest's own file times, output
/// discarded (keep for the error's last lines).
#[derive(Clone, Debug)]
pub struct RunStep {
    /// The exec form's list. `argv[0]` is the module: an absolute path in
    /// the stage's rootfs, a path relative to `workdir`, or a name without
    /// `/` looked up in the Env's `PATH` (dockerd's default when unset).
    /// The guest gets the list as given.
    pub argv: Vec<String>,
    /// The stage's `KEY=VALUE` pairs, in order (the image config's form).
    pub env: Vec<String>,
    /// The stage's `WORKDIR` (absolute), made if missing as runc makes a
    /// container's; `None`: `/`.
    pub workdir: Option<String>,
    pub limits: StepLimits,
    /// What the guest may reach; none by default. A preview 1 module has no
    /// sockets, so grants are dropped for one. Publishing ports is refused.
    pub network: NetworkGrants,
    /// Modification times later than this (seconds since the epoch) are
    /// written as it in the layer, so a deterministic step gives the same
    /// layer digest every build; `None` keeps the guest's times.
    pub mtime_clamp: Option<u64>,
    /// Where the guest's stdout and stderr go while it runs.
    pub stdout: OutputTarget,
    pub stderr: OutputTarget,
}

impl RunStep {
    /// A step running `argv` with every default (see the type's doc).
    pub fn new<I, S>(argv: I) -> RunStep
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RunStep {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            workdir: None,
            limits: StepLimits::default(),
            network: NetworkGrants::default(),
            mtime_clamp: None,
            stdout: OutputTarget::Null,
            stderr: OutputTarget::Null,
        }
    }

    /// The history entry's `created_by` for the exec form, as dockerd
    /// writes it: the list joined by spaces.
    pub fn created_by(&self) -> String {
        self.argv.join(" ")
    }
}

/// The last lines a failed step printed (stdout and stderr as they came).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputTail(pub Vec<String>);

impl fmt::Display for OutputTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("; its last lines of output:")?;
        for line in &self.0 {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// Why a step failed. `command` is the list joined by spaces, as dockerd
/// quotes it in "The command '…' returned a non-zero code: N".
#[derive(Debug, thiserror::Error)]
pub enum RunStepError {
    #[error("RUN needs a command: the exec form's list is empty or starts with an empty string")]
    NoCommand,
    #[error("The command '{command}' cannot run: {reason}")]
    Invalid { command: String, reason: String },
    #[error("The command '{command}' cannot start: {reason}")]
    ModuleMissing { command: String, reason: String },
    #[error("The command '{command}' cannot start: {module} cannot be run")]
    CannotStart {
        command: String,
        module: String,
        #[source]
        source: Box<RuntimeError>,
    },
    #[error("The command '{command}' returned a non-zero code: {code}{tail}")]
    NonZeroExit {
        command: String,
        code: i32,
        tail: OutputTail,
    },
    #[error("The command '{command}' ran past the step timeout of {}{tail}", go_duration(*limit))]
    Timeout {
        command: String,
        limit: Duration,
        tail: OutputTail,
    },
    #[error("The command '{command}' ran out of memory: its limit is {}{tail}", size(*limit))]
    MemoryLimit {
        command: String,
        limit: u64,
        tail: OutputTail,
    },
    #[error("The command '{command}' wrote more than the step storage limit of {}{tail}", size(*limit))]
    StorageLimit {
        command: String,
        limit: u64,
        tail: OutputTail,
    },
    #[error("The command '{command}' was stopped by a trap ({reason}): {message}{tail}")]
    Trap {
        command: String,
        reason: TrapReason,
        message: String,
        /// The wasm call stack at the trap, when known.
        backtrace: Option<String>,
        tail: OutputTail,
    },
    #[error("The command '{command}': {context}")]
    View {
        command: String,
        context: String,
        #[source]
        source: wrun_rootfs::Error,
    },
    #[error("The command '{command}': {context}")]
    Image {
        command: String,
        context: String,
        #[source]
        source: Box<ImageError>,
    },
}

/// Runs `step` over `rootfs` and returns its layer: `None` when it changed
/// nothing (the caller then records an empty history entry, as dockerd's
/// classic builder does). The layer's blob is staged in `staging`; the
/// step's upper is removed before this returns, on success and failure
/// alike. Blocking.
pub fn run_step(
    runtime: &Runtime,
    staging: &mut Staging<'_>,
    rootfs: &StageRootfs,
    step: &RunStep,
) -> Result<Option<BuiltLayer>, RunStepError> {
    let command = step.created_by();
    if step.argv.first().is_none_or(String::is_empty) {
        return Err(RunStepError::NoCommand);
    }
    let invalid = |reason: String| RunStepError::Invalid {
        command: command.clone(),
        reason,
    };
    let env = parse_env(&step.env).map_err(invalid)?;
    let workdir = step.workdir.as_deref().filter(|w| !w.is_empty());
    if let Some(w) = workdir
        && !w.starts_with('/')
    {
        return Err(invalid(format!(
            "the working directory {w:?} is not absolute"
        )));
    }
    if !step.network.publish.is_empty() {
        return Err(invalid("a build step publishes no ports".into()));
    }
    if step.limits.timeout.is_zero() || step.limits.storage == 0 {
        return Err(invalid(
            "the step's timeout and storage limit must be above zero".into(),
        ));
    }
    let image_error = |context: &str| {
        let command = command.clone();
        let context = context.to_string();
        move |source| RunStepError::Image {
            command,
            context,
            source: Box::new(source),
        }
    };
    let view_error = |context: String| {
        let command = command.clone();
        move |source| RunStepError::View {
            command,
            context,
            source,
        }
    };

    let lower_path = stage_lower(staging, rootfs)
        .map_err(image_error("preparing the stage's rootfs"))?
        .ok_or_else(|| RunStepError::ModuleMissing {
            command: command.clone(),
            reason: "the stage's rootfs is empty (FROM scratch with nothing copied in yet)".into(),
        })?;
    let scratch = StepScratch::new(staging).map_err(image_error("making the step's upper"))?;
    let lower = open_lower(&lower_path).map_err(image_error("opening the stage's rootfs"))?;
    let layers = Layers::open(
        Arc::new(lower),
        scratch.upper(),
        UpperOptions {
            size_limit: Some(step.limits.storage),
        },
    )
    .map_err(view_error("opening the step's writable rootfs".into()))?;
    if let Some(w) = workdir {
        make_workdir(&layers, w)
            .map_err(view_error(format!("making the working directory {w}")))?;
    }
    let (module_path, wasm) = read_module(&layers, &step.argv[0], workdir, &env, &command)?;
    let cannot_start = |source| RunStepError::CannotStart {
        command: command.clone(),
        module: module_path.clone(),
        source: Box::new(source),
    };
    let module = runtime
        .prepare(&ModuleDigest::of(&wasm), &wasm, PrepareOptions::default())
        .map_err(cannot_start)?;
    drop(wasm);
    if module.serves_http() {
        return Err(invalid(format!(
            "{module_path} is a wasi:http server (a proxy component), not a command"
        )));
    }

    let tail = Arc::new(Mutex::new(Tail::default()));
    let mut spec = InstanceSpec::new(step.argv.clone())
        .rootfs(&lower_path)
        .writable_rootfs(layers.clone())
        .stdout(tee(&tail, &step.stdout, Inherited::Stdout))
        .stderr(tee(&tail, &step.stderr, Inherited::Stderr))
        .limits(Limits {
            memory: step.limits.memory,
            timeout: Some(step.limits.timeout),
            fuel: None,
        });
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    if let Some(w) = workdir {
        spec = spec.workdir(w);
    }
    if module.kind() == ModuleKind::Component {
        spec.network = step.network.clone();
    }
    let outcome = runtime.run_blocking(&module, spec).map_err(cannot_start)?;
    let tail = OutputTail(
        std::mem::take(&mut *tail.lock().unwrap_or_else(PoisonError::into_inner)).lines(),
    );

    if layers.size_limit_reached() {
        return Err(RunStepError::StorageLimit {
            command,
            limit: step.limits.storage,
            tail,
        });
    }
    match outcome {
        RunOutcome::Exited(0) => {}
        RunOutcome::Exited(code) => {
            return Err(RunStepError::NonZeroExit {
                command,
                code,
                tail,
            });
        }
        RunOutcome::Trapped {
            reason: TrapReason::Timeout,
            ..
        } => {
            return Err(RunStepError::Timeout {
                command,
                limit: step.limits.timeout,
                tail,
            });
        }
        RunOutcome::Trapped {
            reason: TrapReason::MemoryLimit,
            ..
        } => {
            let cap = runtime.config().max_memory_per_instance;
            return Err(RunStepError::MemoryLimit {
                command,
                limit: step.limits.memory.map_or(cap, |m| m.min(cap)),
                tail,
            });
        }
        RunOutcome::Trapped {
            reason,
            message,
            backtrace,
        } => {
            return Err(RunStepError::Trap {
                command,
                reason,
                message,
                backtrace,
                tail,
            });
        }
    }
    let layer = wrun_image::commit::write_upper_layer_clamped(
        staging,
        &layers,
        LAYER_GZIP_LEVEL,
        step.mtime_clamp,
    )
    .map_err(image_error("writing its layer"))?;
    drop(layers);
    drop(scratch);
    Ok(layer)
}

/// The snapshot the step runs over: staged in this build, or stored for an
/// image of the same chain (trusted as the daemon trusts it for runs), or
/// else unpacked into the staging area now. `None` for an empty stage.
fn stage_lower(
    staging: &mut Staging<'_>,
    rootfs: &StageRootfs,
) -> Result<Option<PathBuf>, ImageError> {
    let Some(chain) = rootfs.chain_id() else {
        return Ok(None);
    };
    let path = staging.rootfs(&chain);
    let store = staging.store();
    let stored = path.starts_with(store.root().join("snapshots"));
    if !stored {
        return Ok(Some(path));
    }
    if path.is_dir() && store.images()?.iter().any(|r| r.chain_id == Some(chain)) {
        return Ok(Some(path));
    }
    let (manifest, config) = rootfs.documents()?;
    staging.prepare_snapshot(&manifest, &config)?;
    Ok(Some(staging.rootfs(&chain)))
}

/// The one place this module opens a host path with ambient authority: the
/// stage's snapshot, the view's read-only lower.
fn open_lower(path: &Path) -> Result<cap_std::fs::Dir, ImageError> {
    cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(|source| {
        ImageError::Io {
            context: format!("opening {}", path.display()),
            source,
        }
    })
}

/// A directory of the staging area holding one step's upper; removed with
/// everything in it when dropped (symlinks removed, never followed).
struct StepScratch {
    dir: PathBuf,
}

static STEP_SEQ: AtomicU64 = AtomicU64::new(0);

impl StepScratch {
    fn new(staging: &Staging<'_>) -> Result<StepScratch, ImageError> {
        let n = STEP_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = staging.scratch_dir(&format!("run-step-{n}"))?;
        Ok(StepScratch { dir })
    }

    /// The upper: made by the view at the step's first write.
    fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

impl Drop for StepScratch {
    fn drop(&mut self) {
        // The staging area goes when the build ends, and the store removes
        // areas of dead processes: a failure here leaves nothing for good.
        let _ = wrun_rootfs::remove_upper(&self.upper());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `KEY=VALUE` pairs as the runtime takes them.
fn parse_env(env: &[String]) -> Result<Vec<(String, String)>, String> {
    env.iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() && !pair.contains('\0') => {
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(format!(
                "the environment entry {pair:?} is not KEY=VALUE (a non-empty key, no NUL)"
            )),
        })
        .collect()
}

/// `mkdir -p` of the working directory in the view, as runc makes a
/// container's missing cwd (the directories land in the step's layer).
fn make_workdir(layers: &Layers, workdir: &str) -> wrun_rootfs::Result<()> {
    let root = layers.root();
    let mut at = String::new();
    for name in workdir.split('/').filter(|n| !n.is_empty()) {
        at.push('/');
        at.push_str(name);
        match layers.stat_at(&root, &at, true) {
            Ok(st) if st.kind == Kind::Dir => {}
            Ok(_) => return Err(wrun_rootfs::Error::NotDir),
            Err(wrun_rootfs::Error::NotFound) => layers.create_dir_at(&root, &at)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Finds `argv0` in the view (as runc does: a path with a `/` from the
/// working directory, a bare name along `PATH`) and reads it through the
/// view, so a symlink in the image never reaches a host file.
fn read_module(
    layers: &Layers,
    argv0: &str,
    workdir: Option<&str>,
    env: &[(String, String)],
    command: &str,
) -> Result<(String, Vec<u8>), RunStepError> {
    let missing = |reason: String| RunStepError::ModuleMissing {
        command: command.to_string(),
        reason,
    };
    let path = if argv0.contains('/') {
        if argv0.starts_with('/') {
            argv0.to_string()
        } else {
            format!("{}/{argv0}", workdir.unwrap_or("").trim_end_matches('/'))
        }
    } else {
        let path_var = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        path_var
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{argv0}", d.trim_end_matches('/')))
            .find(|p| {
                layers
                    .stat_at(&layers.root(), p, true)
                    .is_ok_and(|st| st.kind == Kind::File)
            })
            .ok_or_else(|| {
                missing(format!(
                    "exec: {argv0:?}: executable file not found in $PATH"
                ))
            })?
    };
    let read = OpenOptions {
        read: true,
        follow: true,
        ..OpenOptions::default()
    };
    let file = match layers.open_at(&layers.root(), &path, &read) {
        Ok(Opened::File(f)) => f,
        Ok(Opened::Dir(_)) => return Err(missing(format!("{path}: is a directory"))),
        Err(e) => return Err(missing(format!("{path}: {e} in the stage's rootfs"))),
    };
    let reading = |e| RunStepError::View {
        command: command.to_string(),
        context: format!("reading the module {path}"),
        source: e,
    };
    let len = file.stat().map_err(reading)?.size;
    if len > MAX_MODULE_BYTES {
        return Err(RunStepError::Invalid {
            command: command.to_string(),
            reason: format!(
                "{path} is {}, more than the {} a step's module may be",
                measured(len),
                size(MAX_MODULE_BYTES)
            ),
        });
    }
    let mut wasm = vec![0; usize::try_from(len).unwrap_or(0)];
    let mut at = 0;
    while at < wasm.len() {
        match file.read_at(&mut wasm[at..], at as u64).map_err(reading)? {
            0 => break,
            n => at += n,
        }
    }
    wasm.truncate(at);
    Ok((path, wasm))
}

/// A size for a message: exact, in the largest binary unit it is a whole
/// number of.
fn size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// A measured size for a message: one decimal in the largest unit.
fn measured(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift {
            return format!("{:.1} {unit}", bytes as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{bytes} bytes")
}

/// A duration as Go (and so the docker CLI) prints one: `10m0s`, `1.5s`,
/// `300ms`.
fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = d.subsec_millis();
    let s = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// The last lines of the guest's output, both streams as they came.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        let mut parts = chunk.split(|&b| b == b'\n').peekable();
        while let Some(part) = parts.next() {
            let room = TAIL_LINE_BYTES.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&part[..part.len().min(room)]);
            if parts.peek().is_some() {
                let line = String::from_utf8_lossy(&self.partial)
                    .trim_end_matches('\r')
                    .to_string();
                self.partial.clear();
                self.lines.push_back(line);
                if self.lines.len() > TAIL_LINES {
                    self.lines.pop_front();
                }
            }
        }
    }

    /// The lines kept, a last one without its newline included.
    fn lines(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.lines
                .push_back(String::from_utf8_lossy(&self.partial).into_owned());
            if self.lines.len() > TAIL_LINES {
                self.lines.pop_front();
            }
        }
        self.lines.into()
    }
}

/// Which of the host's streams [`OutputTarget::Inherit`] means.
#[derive(Clone, Copy)]
enum Inherited {
    Stdout,
    Stderr,
}

/// A guest stream kept in the tail and passed on to where the step sends it.
struct TeeSink {
    tail: Arc<Mutex<Tail>>,
    to: OutputTarget,
    inherited: Inherited,
}

fn tee(tail: &Arc<Mutex<Tail>>, to: &OutputTarget, inherited: Inherited) -> OutputTarget {
    OutputTarget::Sink(Arc::new(TeeSink {
        tail: Arc::clone(tail),
        to: to.clone(),
        inherited,
    }))
}

impl OutputSink for TeeSink {
    fn write(&self, chunk: &[u8]) -> std::io::Result<()> {
        self.tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(chunk);
        match (&self.to, self.inherited) {
            (OutputTarget::Null, _) => Ok(()),
            (OutputTarget::Sink(sink), _) => sink.write(chunk),
            (OutputTarget::Inherit, Inherited::Stdout) => {
                let mut out = std::io::stdout().lock();
                out.write_all(chunk).and_then(|()| out.flush())
            }
            (OutputTarget::Inherit, Inherited::Stderr) => std::io::stderr().lock().write_all(chunk),
        }
    }

    fn is_terminal(&self) -> bool {
        use std::io::IsTerminal as _;
        match (&self.to, self.inherited) {
            (OutputTarget::Null, _) => false,
            (OutputTarget::Sink(sink), _) => sink.is_terminal(),
            (OutputTarget::Inherit, Inherited::Stdout) => std::io::stdout().is_terminal(),
            (OutputTarget::Inherit, Inherited::Stderr) => std::io::stderr().is_terminal(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Read as _;
    use std::sync::OnceLock;

    use wrun_runtime::RuntimeConfig;

    use crate::{BuildRequest, build};

    const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fsh/fsh.wasm");
    const FSH_COMPONENT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fsh/fsh-component.wasm"
    );
    /// Where the base image has each build of fsh: a preview 1 module and a
    /// WASI 0.2 component run the same scripts.
    const MODULES: [&str; 2] = ["/bin/fsh.wasm", "/bin/fshc.wasm"];
    const SECRET: &str = "host secret";

    /// One runtime for the tests of this process: each module compiles once.
    fn runtime() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| {
            Runtime::new(RuntimeConfig {
                max_instances: 16,
                ..RuntimeConfig::default()
            })
            .unwrap()
        })
    }

    /// A store with the test base image, built by the bundler (`FROM
    /// scratch` + `COPY`): both fsh builds under /bin, /etc/{a,b,c},
    /// /data/keep, /data/old/x; a host secret beside the store.
    struct Base {
        tmp: tempfile::TempDir,
        store: Store,
        rootfs: StageRootfs,
    }

    impl Base {
        fn new() -> Base {
            let tmp = tempfile::tempdir().unwrap();
            let ctx = tmp.path().join("ctx");
            for (path, text) in [
                ("files/etc/a", "a"),
                ("files/etc/b", "b"),
                ("files/etc/c", "c"),
                ("files/data/keep", "keep"),
                ("files/data/old/x", "x"),
            ] {
                let path = ctx.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            std::fs::copy(FSH, ctx.join("fsh.wasm")).unwrap();
            std::fs::copy(FSH_COMPONENT, ctx.join("fshc.wasm")).unwrap();
            std::fs::write(
                ctx.join("Dockerfile"),
                "FROM scratch\nCOPY fsh.wasm /bin/fsh.wasm\nCOPY fshc.wasm /bin/fshc.wasm\nCOPY files/ /\nENTRYPOINT [\"/bin/fsh.wasm\"]\n",
            )
            .unwrap();
            std::fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
            let store = Store::open(tmp.path().join("store")).unwrap();
            let request = BuildRequest {
                context: ctx,
                ..BuildRequest::default()
            };
            let built = build(&store, &request).unwrap();
            let rootfs = StageRootfs::of_image(&store, &built.record).unwrap();
            Base { tmp, store, rootfs }
        }

        /// Runs `step` in a staging area of its own, returning the layer's
        /// entries (or the error) and what the guest printed.
        fn run(&self, step: RunStep) -> (Result<Vec<Entry>, RunStepError>, String) {
            let mut staging = self.store.staging().unwrap();
            let (out, step) = collected(step);
            let result = run_step(runtime(), &mut staging, &self.rootfs, &step)
                .map(|layer| layer.map(|l| entries(&staging, &l)).unwrap_or_default());
            assert_no_upper_left(&self.store);
            (result, out.text())
        }

        /// The host secret beside the store, as it is now.
        fn secret(&self) -> String {
            std::fs::read_to_string(self.tmp.path().join("secret.txt")).unwrap()
        }

        /// Whether the image's snapshot still holds what was unpacked.
        fn snapshot_intact(&self) -> bool {
            self.store.snapshot_intact(&self.rootfs.chain_id().unwrap())
        }
    }

    /// An error with its causes, as the CLI shows it.
    fn chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut cause = err.source();
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text
    }

    /// fsh at `module` running `script` (words split on spaces, `;`
    /// between commands).
    fn fsh(module: &str, script: &str) -> RunStep {
        RunStep::new(std::iter::once(module).chain(script.split(' ')))
    }

    #[derive(Default)]
    struct Collected(Mutex<Vec<u8>>);

    impl Collected {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl OutputSink for Collected {
        fn write(&self, chunk: &[u8]) -> std::io::Result<()> {
            self.0.lock().unwrap().extend_from_slice(chunk);
            Ok(())
        }
    }

    /// `step` with its stdout and stderr collected.
    fn collected(mut step: RunStep) -> (Arc<Collected>, RunStep) {
        let out = Arc::new(Collected::default());
        step.stdout = OutputTarget::Sink(out.clone());
        step.stderr = OutputTarget::Sink(out.clone());
        (out, step)
    }

    /// (path, kind, data or link target, mtime) of a layer's tar entries.
    type Entry = (String, char, String, u64);

    fn entries(staging: &Staging<'_>, layer: &BuiltLayer) -> Vec<Entry> {
        let mut blob = Vec::new();
        staging
            .open_blob(&layer.digest)
            .unwrap()
            .read_to_end(&mut blob)
            .unwrap();
        assert_eq!(blob.len() as u64, layer.size, "the size is the blob's");
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of(&tar), layer.diff_id, "the diff_id is the tar's");
        let mut out = Vec::new();
        for e in tar::Archive::new(&tar[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = match e.header().entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                _ => 'f',
            };
            let mtime = e.header().mtime().unwrap();
            let mut data = String::new();
            match kind {
                'l' | 'h' => {
                    data = String::from_utf8_lossy(&e.link_name_bytes().unwrap()).into_owned();
                }
                _ => {
                    e.read_to_string(&mut data).unwrap();
                }
            }
            out.push((path, kind, data, mtime));
        }
        out
    }

    /// The entries without their times, sorted.
    fn changes(entries: &[Entry]) -> Vec<(String, char, String)> {
        let mut out: Vec<_> = entries
            .iter()
            .map(|(p, k, d, _)| (p.clone(), *k, d.clone()))
            .collect();
        out.sort();
        out
    }

    fn want(items: &[(&str, char, &str)]) -> Vec<(String, char, String)> {
        items
            .iter()
            .map(|(p, k, d)| (p.to_string(), *k, d.to_string()))
            .collect()
    }

    /// No step's directory is left in the store's staging areas.
    fn assert_no_upper_left(store: &Store) {
        let mut stack = vec![store.root().join("tmp")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                assert!(
                    !name.contains("run-step"),
                    "{} is left",
                    entry.path().display()
                );
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                }
            }
        }
    }

    /// The store as a user sees it: images, blobs, snapshots, staging areas.
    fn store_state(store: &Store) -> Vec<String> {
        let mut out: Vec<String> = store
            .images()
            .unwrap()
            .iter()
            .map(|r| format!("image {} {:?}", r.digest, r.names))
            .collect();
        for dir in ["blobs/sha256", "snapshots", "tmp"] {
            for entry in std::fs::read_dir(store.root().join(dir)).unwrap() {
                out.push(format!(
                    "{dir}/{}",
                    entry.unwrap().file_name().to_string_lossy()
                ));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn writes_deletes_and_renames_become_exactly_those_changes() {
        let base = Base::new();
        for module in MODULES {
            let script = "write /new hi ; rm /etc/b ; mv /etc/c /etc/c2 ; mkdir /d ; write /d/f x ; rm-r /data/old";
            let (layer, out) = base.run(fsh(module, script));
            let layer = layer.unwrap();
            assert_eq!(out, "", "{module}: every command worked");
            assert_eq!(
                changes(&layer),
                want(&[
                    ("d/", 'd', ""),
                    ("d/f", 'f', "x"),
                    ("data/", 'd', ""),
                    ("data/.wh.old", 'f', ""),
                    ("etc/", 'd', ""),
                    ("etc/.wh.b", 'f', ""),
                    ("etc/.wh.c", 'f', ""),
                    ("etc/c2", 'f', "c"),
                    ("new", 'f', "hi"),
                ]),
                "{module}"
            );
            // Each directory comes before what is in it.
            for (i, (path, ..)) in layer.iter().enumerate() {
                if let Some((dir, _)) = path.trim_end_matches('/').rsplit_once('/') {
                    let at = layer.iter().position(|(p, ..)| p == &format!("{dir}/"));
                    assert!(
                        at.is_some_and(|at| at < i),
                        "{module}: {path} before its directory"
                    );
                }
            }
            assert!(base.snapshot_intact(), "{module}: the image is unchanged");
        }
    }

    #[test]
    fn a_step_that_changes_nothing_gives_no_layer_and_its_output_goes_out_live() {
        let base = Base::new();
        for module in MODULES {
            let (layer, out) = base.run(fsh(module, "cat /etc/a ; ls /data ; stat /etc/b"));
            assert_eq!(layer.unwrap(), Vec::<Entry>::new(), "{module}");
            assert_eq!(out, "a\nkeep\nold/\nfile 1\n", "{module}");
        }
    }

    #[test]
    fn the_next_step_runs_over_the_layer_of_the_last() {
        let base = Base::new();
        let mut staging = base.store.staging().unwrap();
        let mut rootfs = base.rootfs.clone();
        let step = fsh(MODULES[0], "mv /etc/c /etc/c2 ; write /new hi");
        let layer = run_step(runtime(), &mut staging, &rootfs, &step)
            .unwrap()
            .unwrap();
        rootfs.push(&layer);
        for module in MODULES {
            let (out, step) = collected(fsh(module, "ls /etc ; cat /new ; rm /new"));
            let layer = run_step(runtime(), &mut staging, &rootfs, &step)
                .unwrap()
                .unwrap();
            assert_eq!(out.text(), "a\nb\nc2\nhi\n", "{module}");
            assert_eq!(
                changes(&entries(&staging, &layer)),
                want(&[(".wh.new", 'f', "")]),
                "{module}: a deletion of the last step's file"
            );
        }
        assert!(base.snapshot_intact());
    }

    #[test]
    fn a_deterministic_step_gives_the_same_layer_every_build() {
        let base = Base::new();
        let mut digests = Vec::new();
        for _ in 0..2 {
            let mut staging = base.store.staging().unwrap();
            let mut step = fsh(
                MODULES[0],
                "write /etc/a new ; mkdir-p /x/y ; write /x/y/z z",
            );
            step.mtime_clamp = Some(0);
            let layer = run_step(runtime(), &mut staging, &base.rootfs, &step)
                .unwrap()
                .unwrap();
            assert!(
                entries(&staging, &layer).iter().all(|e| e.3 == 0),
                "every time clamped"
            );
            digests.push((layer.digest, layer.diff_id));
        }
        assert_eq!(digests[0], digests[1]);
    }

    #[test]
    fn a_symlink_out_of_the_view_then_writes_through_it_stay_inside() {
        let base = Base::new();
        let host_dir = base.tmp.path().display().to_string();
        for module in MODULES {
            let script = format!(
                "mkdir-p {host_dir} ; ln-s /../../../../../../../.. /up ; write /up{host_dir}/secret.txt pwned ; ln-s {host_dir} /hostdir ; append /hostdir/secret.txt 2 ; cat {host_dir}/secret.txt"
            );
            let (layer, out) = base.run(fsh(module, &script));
            let layer = layer.unwrap();
            assert_eq!(out, "pwned2\n", "{module}");
            assert_eq!(
                base.secret(),
                SECRET,
                "{module}: the host file is unchanged"
            );
            let rel = host_dir.trim_start_matches('/');
            let got = changes(&layer);
            assert!(
                got.contains(&(format!("{rel}/secret.txt"), 'f', "pwned2".into())),
                "{module}: the write landed in the view: {got:?}"
            );
            assert!(got.contains(&("up".into(), 'l', "/../../../../../../../..".into())));
            assert!(got.contains(&("hostdir".into(), 'l', host_dir.clone())));
            assert!(base.snapshot_intact(), "{module}");
        }
    }

    #[test]
    fn dot_dot_paths_stay_inside_the_view() {
        let base = Base::new();
        let host_dir = base.tmp.path().display().to_string();
        let rel = host_dir.trim_start_matches('/');
        for module in MODULES {
            let script = format!(
                "mkdir-p /{rel} ; write /../../../../../../../../../{rel}/secret.txt pwned ; write /etc/../../../../{rel}/other x"
            );
            let (layer, out) = base.run(fsh(module, &script));
            let got = changes(&layer.unwrap());
            assert_eq!(out, "", "{module}");
            assert_eq!(base.secret(), SECRET, "{module}");
            assert!(!base.tmp.path().join("other").exists(), "{module}");
            assert!(got.contains(&(format!("{rel}/secret.txt"), 'f', "pwned".into())));
            assert!(got.contains(&(format!("{rel}/other"), 'f', "x".into())));
        }
    }

    #[test]
    fn a_hard_link_to_an_image_file_written_through_never_changes_the_image() {
        let base = Base::new();
        for module in MODULES {
            let (layer, out) = base.run(fsh(
                module,
                "ln /etc/a /etc/a2 ; append /etc/a2 X ; cat /etc/a",
            ));
            assert_eq!(out, "aX\n", "{module}: one file, two names");
            assert_eq!(
                changes(&layer.unwrap()),
                want(&[
                    ("etc/", 'd', ""),
                    ("etc/a", 'f', "aX"),
                    ("etc/a2", 'h', "etc/a")
                ]),
                "{module}"
            );
            assert!(
                base.snapshot_intact(),
                "{module}: the image's /etc/a is unchanged"
            );
        }
    }

    #[test]
    fn a_guest_made_whiteout_name_fails_the_step_rather_than_delete_a_file() {
        let base = Base::new();
        for module in MODULES {
            let (layer, _) = base.run(fsh(module, "write /etc/.wh.a x"));
            let err = chain(&layer.unwrap_err());
            assert!(err.contains("/etc/.wh.a"), "{module}: {err}");
            assert!(err.contains("starting with .wh."), "{module}: {err}");
        }
    }

    #[test]
    fn a_step_that_never_ends_is_stopped_at_its_timeout() {
        let base = Base::new();
        for module in MODULES {
            let mut step = fsh(module, "write /started 1 ; echo waiting ; sleep 600000");
            step.limits.timeout = Duration::from_millis(300);
            let (layer, out) = base.run(step);
            let err = layer.unwrap_err();
            assert!(
                matches!(err, RunStepError::Timeout { .. }),
                "{module}: {err:?}"
            );
            assert_eq!(out, "waiting\n");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "The command '{module} write /started 1 ; echo waiting ; sleep 600000' ran past the step timeout of 300ms"
                )),
                "{text}"
            );
            assert!(text.ends_with("\n  waiting"), "{text}");
        }
    }

    #[test]
    fn a_step_that_writes_without_bound_is_stopped_at_the_storage_limit() {
        let base = Base::new();
        for module in MODULES {
            let mut step = fsh(module, "fill /big 100000000 ; echo done");
            step.limits.storage = 1 << 20;
            let (layer, _) = base.run(step);
            let err = layer.unwrap_err();
            assert!(
                matches!(err, RunStepError::StorageLimit { .. }),
                "{module}: {err:?}"
            );
            assert!(
                err.to_string()
                    .contains("wrote more than the step storage limit of 1 MiB"),
                "{err}"
            );
        }
        // Within the limit, the same step's layer is whole.
        let mut step = fsh(MODULES[0], "fill /big 100000");
        step.limits.storage = 1 << 20;
        let (layer, _) = base.run(step);
        assert_eq!(layer.unwrap()[0].2.len(), 100_000);
    }

    #[test]
    fn a_module_that_needs_more_memory_than_the_limit_is_stopped() {
        let base = Base::new();
        for module in MODULES {
            let mut step = fsh(module, "write /never 1");
            // Less than the memory the module declares it starts with.
            step.limits.memory = Some(256 << 10);
            let (layer, _) = base.run(step);
            let err = layer.unwrap_err();
            assert!(
                matches!(err, RunStepError::MemoryLimit { .. }),
                "{module}: {err:?}"
            );
            assert!(
                err.to_string()
                    .contains("ran out of memory: its limit is 256 KiB"),
                "{err}"
            );
        }
    }

    /// A grow past the limit fails in the guest (`malloc` returns NULL):
    /// one that reports it and exits is a failed step with its own words.
    #[test]
    fn a_guest_refused_memory_at_its_limit_fails_the_step_in_its_own_words() {
        let base = Base::new();
        for module in MODULES {
            let mut step = fsh(module, "fill /m 16000000 ; cat /m");
            step.limits.memory = Some(8 << 20);
            let (layer, _) = base.run(step);
            match layer.unwrap_err() {
                RunStepError::NonZeroExit { tail, .. } => {
                    assert_eq!(tail.0, ["cat: error OutOfMemory"], "{module}")
                }
                other => panic!("{module}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_non_zero_exit_names_the_code_and_carries_the_last_lines() {
        let base = Base::new();
        let echoes: Vec<String> = (1..=12).map(|i| format!("echo line {i}")).collect();
        for module in MODULES {
            let script = format!("{} ; write /partial x ; exit 3", echoes.join(" ; "));
            let (layer, out) = base.run(fsh(module, &script));
            let err = layer.unwrap_err();
            let RunStepError::NonZeroExit { code, tail, .. } = &err else {
                panic!("{module}: {err:?}");
            };
            // WASI 0.2's exit carries success or failure only: 1.
            let want = if module.ends_with("fshc.wasm") { 1 } else { 3 };
            assert_eq!(*code, want, "{module}");
            let last: Vec<String> = (3..=12).map(|i| format!("line {i}")).collect();
            assert_eq!(tail.0, last, "{module}: the last ten lines");
            assert_eq!(out.lines().count(), 12, "{module}: all of it went out live");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("The command '{module} {script}' returned a non-zero code: {want}; its last lines of output:\n  line 3\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn the_upper_is_removed_and_the_store_unchanged_after_success_and_failure() {
        let base = Base::new();
        let before = store_state(&base.store);
        {
            let mut staging = base.store.staging().unwrap();
            let ok = fsh(MODULES[1], "write /a 1");
            assert!(
                run_step(runtime(), &mut staging, &base.rootfs, &ok)
                    .unwrap()
                    .is_some()
            );
            assert_no_upper_left(&base.store);
            let failing = fsh(MODULES[1], "write /b 1 ; exit 1");
            assert!(run_step(runtime(), &mut staging, &base.rootfs, &failing).is_err());
            assert_no_upper_left(&base.store);
            let trapping = fsh(MODULES[0], "write /c 1 ; sleep 600000");
            let mut trapping = trapping;
            trapping.limits.timeout = Duration::from_millis(100);
            assert!(run_step(runtime(), &mut staging, &base.rootfs, &trapping).is_err());
            assert_no_upper_left(&base.store);
        }
        assert_eq!(store_state(&base.store), before);
    }

    #[test]
    fn a_module_is_found_as_runc_finds_a_program_and_missing_ones_are_named() {
        let base = Base::new();
        let (layer, _) = base.run(fsh("/nope.wasm", "x"));
        let err = layer.unwrap_err().to_string();
        assert_eq!(
            err,
            "The command '/nope.wasm x' cannot start: /nope.wasm: no such file or directory in the stage's rootfs"
        );
        let (layer, _) = base.run(fsh("nope.wasm", "x"));
        let err = layer.unwrap_err().to_string();
        assert!(
            err.ends_with("exec: \"nope.wasm\": executable file not found in $PATH"),
            "{err}"
        );
        // The Env's PATH, else dockerd's default (which has /bin).
        let mut step = fsh("fsh.wasm", "write /p 1");
        step.env = vec!["PATH=/usr/bin".into()];
        let err = base.run(step).0.unwrap_err().to_string();
        assert!(err.ends_with("not found in $PATH"), "{err}");
        let (layer, _) = base.run(fsh("/etc/a", "x"));
        let err = layer.unwrap_err();
        assert!(matches!(err, RunStepError::CannotStart { .. }), "{err:?}");
        assert!(err.to_string().ends_with("/etc/a cannot be run"), "{err}");

        let step = fsh("fsh.wasm", "write /p 1");
        assert_eq!(
            changes(&base.run(step).0.unwrap()),
            want(&[("p", 'f', "1")])
        );
        let mut step = fsh("fsh.wasm", "write /p 1");
        step.env = vec!["PATH=/usr/bin:/bin".into()];
        assert_eq!(
            changes(&base.run(step).0.unwrap()),
            want(&[("p", 'f', "1")])
        );
        let mut step = fsh("../bin/fsh.wasm", "write /q 1");
        step.workdir = Some("/etc".into());
        assert_eq!(
            changes(&base.run(step).0.unwrap()),
            want(&[("q", 'f', "1")])
        );
    }

    #[test]
    fn a_missing_working_directory_is_made_in_the_layer() {
        let base = Base::new();
        for module in MODULES {
            let mut step = fsh(module, "ls /w/x");
            step.workdir = Some("/w/x".into());
            let (layer, _) = base.run(step);
            assert_eq!(
                changes(&layer.unwrap()),
                want(&[("w/", 'd', ""), ("w/x/", 'd', "")]),
                "{module}"
            );
        }
        let mut step = fsh(MODULES[0], "echo");
        step.workdir = Some("/etc/a".into());
        let err = base.run(step).0.unwrap_err().to_string();
        assert!(err.contains("making the working directory /etc/a"), "{err}");
    }

    #[test]
    fn bad_steps_are_refused_before_anything_runs() {
        let base = Base::new();
        let (layer, _) = base.run(RunStep::new(Vec::<String>::new()));
        assert!(matches!(layer, Err(RunStepError::NoCommand)));
        let mut step = fsh(MODULES[0], "echo");
        step.env = vec!["NOEQUALS".into()];
        let err = base.run(step).0.unwrap_err().to_string();
        assert!(err.contains("\"NOEQUALS\" is not KEY=VALUE"), "{err}");
        let mut step = fsh(MODULES[0], "echo");
        step.workdir = Some("rel".into());
        let err = base.run(step).0.unwrap_err().to_string();
        assert!(err.contains("\"rel\" is not absolute"), "{err}");

        let mut staging = base.store.staging().unwrap();
        let err = run_step(
            runtime(),
            &mut staging,
            &StageRootfs::default(),
            &fsh(MODULES[0], "echo"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("the stage's rootfs is empty"), "{err}");
    }

    #[test]
    fn the_tail_keeps_the_last_lines_of_both_streams_bounded() {
        let mut tail = Tail::default();
        tail.push(b"one\r\ntw");
        tail.push(b"o\n");
        tail.push(&vec![b'x'; 2000]);
        tail.push(b"\nlast");
        let lines = tail.lines();
        assert_eq!(lines[..2], ["one", "two"]);
        assert_eq!(lines[2].len(), TAIL_LINE_BYTES);
        assert_eq!(lines[3], "last");
        let mut tail = Tail::default();
        for i in 0..25 {
            tail.push(format!("{i}\n").as_bytes());
        }
        assert_eq!(tail.lines().first().map(String::as_str), Some("15"));
    }

    /// A build's error type holds it: it stays small (clippy's
    /// `result_large_err` draws the line at 128 bytes).
    #[test]
    fn the_error_is_small() {
        assert!(std::mem::size_of::<RunStepError>() <= 104);
    }

    #[test]
    fn limits_read_as_docker_users_write_them() {
        assert_eq!(go_duration(Duration::from_secs(600)), "10m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(size(4 << 30), "4 GiB");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size(1000), "1000 bytes");
        assert_eq!(measured(3 << 19), "1.5 MiB");
    }
}
