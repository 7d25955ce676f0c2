//! Build files (`wrun.toml`, Dockerfile syntax) turned into OCI images: parse
//! the file into a program of stages and steps, run each step over its
//! stage's state (layers, config, history), store the last stage's image.

pub mod cache;
pub mod context;
pub mod dockerfile;
pub mod ignore;
pub mod plan;
pub mod run_step;
pub mod steps;
pub mod toml_file;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wrun_image::registry::{RegistryError, RegistryOptions, RemoteRef};
use wrun_image::{Digest, ImageError, ImageRecord, ImageRef, ModuleKind, Store};

pub use crate::cache::CachePolicy;
use crate::context::BuildContext;
pub use crate::plan::{BuildPlan, Program};

/// Why a build failed; each names the file or source at fault.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    BuildFile {
        file: String,
        message: String,
        line: Option<usize>,
    },
    #[error(
        "no build file in {0}: expected wrun.toml, Wasmfile or Dockerfile (or name one with -f)"
    )]
    NoBuildFile(PathBuf),
    #[error("source {src:?} {reason}")]
    Source { src: String, reason: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Run(#[from] run_step::RunStepError),
    /// A `FROM` image pulled from its registry that could not be.
    #[error(transparent)]
    Pull(#[from] RegistryError),
    /// The credentials of a registry a `FROM` pulls from could not be read.
    #[error("the credentials for {registry}: {source}")]
    Credentials {
        registry: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A step's error that does not say where, with where the build file
    /// has the step. The error stays the source, so its causes (a full
    /// disk, say) are still there for whoever reads the chain.
    #[error("{file}{}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    AtStep {
        file: String,
        line: Option<usize>,
        #[source]
        source: Box<BuildError>,
    },
    /// A `RUN` step that failed, with where the build file has it.
    #[error("{file}{}: {step}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    RunFailed {
        file: String,
        line: Option<usize>,
        step: Box<run_step::RunStepError>,
    },
}

impl BuildError {
    /// The exit code of a `RUN` step that failed with one: what `docker
    /// build` exits with (`The command '…' returned a non-zero code: N`).
    pub fn step_exit_code(&self) -> Option<i32> {
        match self {
            BuildError::Run(run_step::RunStepError::NonZeroExit { code, .. }) => Some(*code),
            BuildError::RunFailed { step, .. } => match step.as_ref() {
                run_step::RunStepError::NonZeroExit { code, .. } => Some(*code),
                _ => None,
            },
            _ => None,
        }
    }
}

/// What to build and how to name it.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    /// The context directory: sources are read from here and nowhere else.
    pub context: PathBuf,
    /// The build file; default `CONTEXT/wrun.toml`, then `Wasmfile`, then
    /// `Dockerfile`. A name ending in `.toml` is read as wrun.toml.
    pub file: Option<PathBuf>,
    pub build_args: BTreeMap<String, String>,
    /// Timestamp for every file and the config (`SOURCE_DATE_EPOCH`); 0 when unset.
    pub source_date_epoch: Option<u64>,
    /// Names to store the image under; empty means the file's `name` (tag
    /// `latest`), or no name.
    pub tags: Vec<ImageRef>,
    /// `--target`: the stage to build and store (default: the last).
    pub target: Option<String>,
    /// Told each step as it starts and ends (Docker's `Step N/M` lines).
    pub progress: Option<ProgressSink>,
    /// Where base images the store lacks come from (a daemon's store when
    /// the build runs in a scratch store); `None`: only the store.
    pub base_images: Option<BaseImageSource>,
    /// The limits of each `RUN` step; `None`: [`run_step::StepLimits`]'s
    /// defaults (10 minutes, 4 GiB written, the runtime's memory cap).
    pub run_limits: Option<run_step::StepLimits>,
    /// What each `RUN` step may do on the network: nothing by default;
    /// `build --network host` grants the host's network (to components:
    /// a preview 1 module has no sockets).
    pub run_network: wrun_runtime::NetworkGrants,
}

/// One thing a build reports as it goes.
#[derive(Debug)]
pub enum BuildEvent<'a> {
    /// A step starts: `Step NUMBER/TOTAL : TEXT`.
    Step {
        number: usize,
        total: usize,
        text: &'a str,
    },
    /// A step ended with the stage in this state (an image ID); `None`
    /// for `FROM scratch`.
    Image { id: Option<&'a Digest> },
    /// Text to show as it is: a `RUN` step's output as it comes, and
    /// ` ---> Using cache` when a step is taken from the build cache.
    Output { bytes: &'a [u8] },
}

/// The callback a build reports its [`BuildEvent`]s to.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Fn(&BuildEvent<'_>) + Send + Sync>);

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// Images a build may start from besides the store's own.
pub trait BaseImages: Send + Sync {
    /// An image tar (as `save` writes it) holding `reference`, or `None`
    /// when there is no such image; `Err` says why it could not be asked.
    fn image_tar(&self, reference: &str) -> Result<Option<Box<dyn Read + Send>>, String>;
}

/// A shared [`BaseImages`].
#[derive(Clone)]
pub struct BaseImageSource(pub Arc<dyn BaseImages>);

impl std::fmt::Debug for BaseImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BaseImageSource")
    }
}

/// The stored image and what the user should be told.
#[derive(Debug)]
pub struct BuildOutcome {
    pub record: ImageRecord,
    pub kind: ModuleKind,
    pub warnings: Vec<String>,
}

/// Finds the build file: `-f` as given, else the first of the defaults.
pub fn locate_build_file(context: &Path, file: Option<&Path>) -> Result<PathBuf, BuildError> {
    if let Some(f) = file {
        return Ok(f.to_path_buf());
    }
    ["wrun.toml", "Wasmfile", "Dockerfile"]
        .iter()
        .map(|n| context.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| BuildError::NoBuildFile(context.to_path_buf()))
}

/// Parses a build file into a program, choosing the syntax by its name.
/// The file is read even when `.dockerignore` excludes it, as Docker does.
pub fn parse_build_file(
    path: &Path,
    build_args: &BTreeMap<String, String>,
) -> Result<Program, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::Io {
        context: format!("reading the build file {}", path.display()),
        source,
    })?;
    let shown = path.display().to_string();
    if path.extension().is_some_and(|e| e == "toml") {
        Ok(toml_file::parse(&text, &shown, build_args)?.into_program(&shown))
    } else {
        dockerfile::parse(&text, &shown)
    }
}

/// How a build reaches the registry of a `FROM` it pulls: the options
/// (credentials, plain HTTP) of one reference's transfer.
pub type RegistryAccess<'a> = &'a (
        dyn Fn(&RemoteRef) -> Result<RegistryOptions, Box<dyn std::error::Error + Send + Sync>>
            + Sync
    );

/// Anonymous pulls with [`RegistryOptions`]' defaults (no stored
/// credentials: the library reads no user's config).
pub fn anonymous_registry(
    _: &RemoteRef,
) -> Result<RegistryOptions, Box<dyn std::error::Error + Send + Sync>> {
    Ok(RegistryOptions::default())
}

/// Builds and stores an image, using the store's build cache.
pub fn build(store: &Store, req: &BuildRequest) -> Result<BuildOutcome, BuildError> {
    build_with(store, req, CachePolicy::default())
}

/// Builds and stores an image, using the build cache and base images as
/// `policy` says (`--no-cache`, `--pull`).
pub fn build_with(
    store: &Store,
    req: &BuildRequest,
    policy: CachePolicy,
) -> Result<BuildOutcome, BuildError> {
    build_pulling(store, req, policy, &anonymous_registry)
}

/// [`build_with`], pulling a `FROM HOST[:PORT]/NAME` the store lacks (or
/// every one with `--pull`) from its registry with `registry`'s options,
/// as `wrun pull` does.
pub fn build_pulling(
    store: &Store,
    req: &BuildRequest,
    policy: CachePolicy,
    registry: RegistryAccess<'_>,
) -> Result<BuildOutcome, BuildError> {
    let file = locate_build_file(&req.context, req.file.as_deref())?;
    let program = parse_build_file(&file, &req.build_args)?;
    let mut warnings = program.warnings.clone();
    let unused: Vec<&String> = req
        .build_args
        .keys()
        .filter(|k| !program.declared_args.contains(k))
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "One or more build-args {unused:?} were not consumed"
        ));
    }
    let names: Vec<ImageRef> = if !req.tags.is_empty() {
        req.tags.iter().map(ImageRef::tagged).collect()
    } else if let Some(name) = &program.name {
        vec![name.parse::<ImageRef>()?.tagged()]
    } else {
        Vec::new()
    };
    let ctx = BuildContext::open(&req.context)?;
    let stored = steps::Builder::new(store, req, ctx, policy, registry)?.run(&program, names)?;
    warnings.extend(stored.warnings);
    Ok(BuildOutcome {
        record: stored.record,
        kind: stored.kind,
        warnings,
    })
}

pub(crate) fn rfc3339(epoch: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}
