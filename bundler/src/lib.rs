//! Build files (`wrun.toml`, Dockerfile syntax) turned into OCI images: parse
//! the file into a plan, copy the context into reproducible layers, store.

pub mod context;
pub mod dockerfile;
pub mod plan;
pub mod toml_file;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, MediaType, RootFsBuilder,
};
use wrun_image::layer::LayerWriter;
use wrun_image::{ImageError, ImageRecord, ImageRef, ModuleKind, Store};

use crate::context::{BuildContext, LayerEntry};
pub use crate::plan::BuildPlan;

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

/// Parses a build file into a plan, choosing the syntax by its name.
pub fn parse_build_file(
    path: &Path,
    build_args: &BTreeMap<String, String>,
) -> Result<BuildPlan, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::Io {
        context: format!("reading the build file {}", path.display()),
        source,
    })?;
    let shown = path.display().to_string();
    if path.extension().is_some_and(|e| e == "toml") {
        toml_file::parse(&text, &shown, build_args)
    } else {
        dockerfile::parse(&text, &shown, build_args)
    }
}

/// Builds and stores an image.
pub fn build(store: &Store, req: &BuildRequest) -> Result<BuildOutcome, BuildError> {
    let file = locate_build_file(&req.context, req.file.as_deref())?;
    let plan = parse_build_file(&file, &req.build_args)?;
    let mut warnings = plan.warnings.clone();
    let unused: Vec<&String> = req
        .build_args
        .keys()
        .filter(|k| !plan.consumed_args.contains(k))
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "One or more build-args {unused:?} were not consumed"
        ));
    }
    let ctx = BuildContext::open(&req.context)?;
    let epoch = req.source_date_epoch.unwrap_or(0);

    // Plan every layer first, so a bad source fails before any blob is written.
    let mut layer_plans = Vec::new();
    let mut rootfs_files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for step in &plan.copies {
        let mut entries = BTreeMap::new();
        ctx.plan_copy(&step.sources, &step.dest, step.mode, &mut entries)?;
        for (path, entry) in &entries {
            match entry {
                LayerEntry::File { source, .. } => {
                    rootfs_files.insert(format!("/{path}"), source.clone());
                }
                _ => {
                    rootfs_files.remove(&format!("/{path}"));
                }
            }
        }
        layer_plans.push((step.created_by.clone(), entries));
    }
    let entry = plan
        .entrypoint
        .as_ref()
        .and_then(|e| e.first())
        .or_else(|| plan.cmd.as_ref().and_then(|c| c.first()))
        .ok_or_else(|| BuildError::BuildFile {
            file: file.display().to_string(),
            message: "the image has no entrypoint: name the module (`module =` or ENTRYPOINT [\"/app.wasm\"])".into(),
            line: None,
        })?;
    let module_src = rootfs_files
        .get(entry)
        .ok_or_else(|| BuildError::BuildFile {
            file: file.display().to_string(),
            message: format!(
                "the entrypoint {entry} is not a file the build copies into the image"
            ),
            line: None,
        })?;
    let kind =
        wrun_image::wasm::validate(&ctx.read(module_src)?, &module_src.display().to_string())?;

    let mut staging = store.staging()?;
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    let created = rfc3339(epoch);
    for (created_by, entries) in &layer_plans {
        let mut writer = LayerWriter::new(&staging, epoch)?;
        for (path, entry) in entries {
            match entry {
                LayerEntry::Dir { mode } => writer.add_dir(path, *mode)?,
                LayerEntry::File { source, mode, size } => {
                    let file = ctx.open_file(source)?;
                    let mut counted = CountingReader {
                        inner: file,
                        count: 0,
                    };
                    writer.add_file(path, *mode, *size, &mut counted)?;
                    if counted.count != *size {
                        return Err(BuildError::Source {
                            src: source.display().to_string(),
                            reason: "changed size while the build read it".into(),
                        });
                    }
                }
                LayerEntry::Symlink { target } => writer.add_symlink(path, target)?,
            }
        }
        let built = writer.finish(&mut staging)?;
        descriptors.push(Descriptor::new(
            MediaType::ImageLayerGzip,
            built.size,
            built.digest.to_oci(),
        ));
        diff_ids.push(built.diff_id.to_string());
        history.push(
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(created_by.clone())
                .build()
                .map_err(|e| ImageError::invalid("history", e.to_string()))?,
        );
    }

    let mut cfg = ConfigBuilder::default();
    if let Some(e) = &plan.entrypoint {
        cfg = cfg.entrypoint(e.clone());
    }
    if let Some(c) = &plan.cmd {
        cfg = cfg.cmd(c.clone());
    }
    if !plan.env.is_empty() {
        cfg = cfg.env(
            plan.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        );
    }
    if let Some(w) = &plan.workdir {
        cfg = cfg.working_dir(w.clone());
    }
    if !plan.labels.is_empty() {
        cfg = cfg.labels(
            plan.labels
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    if !plan.expose.is_empty() {
        cfg = cfg.exposed_ports(plan.expose.clone());
    }
    if !plan.volumes.is_empty() {
        cfg = cfg.volumes(plan.volumes.clone());
    }
    let config = ImageConfigurationBuilder::default()
        .created(created)
        .architecture("wasm")
        .os(kind.oci_os())
        .config(
            cfg.build()
                .map_err(|e| ImageError::invalid("config", e.to_string()))?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(|e| ImageError::invalid("config", e.to_string()))?,
        )
        .history(history)
        .build()
        .map_err(|e| ImageError::invalid("config", e.to_string()))?;
    let manifest = staging.write_image(&config, descriptors, None)?;

    let names: Vec<ImageRef> = if !req.tags.is_empty() {
        req.tags.iter().map(ImageRef::tagged).collect()
    } else if let Some(name) = &plan.name {
        vec![name.parse::<ImageRef>()?.tagged()]
    } else {
        Vec::new()
    };
    let mut records = store.commit(staging, &[(manifest, names)])?;
    let record = records
        .pop()
        .expect("one image committed, one record returned");
    Ok(BuildOutcome {
        record,
        kind,
        warnings,
    })
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

fn rfc3339(epoch: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}
