//! The build as a sequence of steps over a stage state (layers, config,
//! history): each instruction turns one state into the next; the last stage
//! (or `--target`) is stored. A step's identity is its parent state's ID plus
//! its history line, which names the content it added (`COPY file:<digest>`),
//! so a layer cache can key on it.

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{
    Config, Descriptor, History, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    ImageManifest, ImageManifestBuilder, MediaType, RootFsBuilder,
};
use wrun_image::digest::HashingReader;
use wrun_image::document::{self, canonical_json, entrypoint_module, is_wasm_platform};
use wrun_image::layer::LayerWriter;
use wrun_image::registry::{self, RemoteRef};
use wrun_image::store::{BuildCacheEntry, CachedLayer, Staging, chain_id};
use wrun_image::unpack::{self, UnpackBudget, UnpackLimits};
use wrun_image::{Digest, ImageError, ImageRecord, ImageRef, ModuleKind, Store};
use wrun_runtime::{OutputSink, OutputTarget, Runtime, RuntimeConfig};

use crate::cache::{CachePolicy, step_key};
use crate::context::{BuildContext, LayerEntry};
use crate::plan::{
    CommandForm, CopySource, Instruction, Op, Program, StageSpec, normalize_port, substitute,
};
use crate::run_step::{self, RunStep, StageRootfs};
use crate::{BuildError, BuildEvent, BuildRequest, ProgressSink, RegistryAccess};

/// dockerd's `PATH` for a stage whose Env has none (Linux's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's prefix of a history line for an instruction that runs nothing.
const NOP: &str = "/bin/sh -c #(nop) ";

/// What a stage has built so far.
#[derive(Clone, Debug)]
pub struct StageState {
    /// Layer descriptors, base first, and their diff_ids.
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
    pub config: Config,
    pub history: Vec<History>,
    pub author: Option<String>,
    /// The base image's `os` until the final image's module decides it.
    pub os: String,
    /// `ARG`s in scope: a declared name without a value maps to `None`.
    pub args: BTreeMap<String, Option<String>>,
    /// `CMD` was set in this stage (`ENTRYPOINT` then keeps it).
    pub cmd_set: bool,
    /// The ID of this state as an image (its config's digest); `None` for
    /// `scratch` before any step.
    pub id: Option<Digest>,
}

impl StageState {
    fn scratch() -> StageState {
        StageState {
            layers: Vec::new(),
            diff_ids: Vec::new(),
            config: Config::default(),
            history: Vec::new(),
            author: None,
            os: "wasip1".into(),
            args: BTreeMap::new(),
            cmd_set: false,
            id: None,
        }
    }

    fn from_image(store: &Store, record: &ImageRecord) -> Result<StageState, BuildError> {
        let manifest = store.manifest(record)?;
        let config = store.config(record)?;
        Ok(StageState {
            layers: manifest.layers().clone(),
            diff_ids: document::diff_ids(&config)?,
            config: config.config().clone().unwrap_or_default(),
            history: config.history().clone().unwrap_or_default(),
            author: config.author().clone(),
            os: config.os().to_string(),
            args: BTreeMap::new(),
            cmd_set: false,
            id: Some(record.id),
        })
    }

    /// The image config of this state, created at `created`.
    pub fn image_configuration(&self, created: &str) -> Result<ImageConfiguration, BuildError> {
        let mut doc = ImageConfigurationBuilder::default()
            .created(created.to_string())
            .architecture("wasm")
            .os(self.os.as_str())
            .config(self.config.clone())
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(
                        self.diff_ids
                            .iter()
                            .map(Digest::to_string)
                            .collect::<Vec<_>>(),
                    )
                    .build()
                    .map_err(|e| ImageError::invalid("config", e.to_string()))?,
            )
            .history(self.history.clone())
            .build()
            .map_err(|e| ImageError::invalid("config", e.to_string()))?;
        doc.set_author(self.author.clone());
        Ok(doc)
    }

    /// The values `$NAME` expands to: the `ARG`s in scope, then `Env`
    /// (which wins, as in Docker).
    fn vars(&self) -> BTreeMap<String, String> {
        let mut vars: BTreeMap<String, String> = self
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect();
        for kv in self.config.env().iter().flatten() {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            vars.insert(k.to_string(), v.to_string());
        }
        vars
    }

    fn working_dir(&self) -> String {
        self.config
            .working_dir()
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }
}

/// The stages built so far and everything a step needs.
pub(crate) struct Builder<'s, 'r> {
    store: &'s Store,
    staging: Staging<'s>,
    request: &'r BuildRequest,
    ctx: BuildContext,
    epoch: u64,
    created: String,
    step: usize,
    total: usize,
    /// Scratch directories made so far (their names' counter).
    scratch: usize,
    /// The stages built so far, in order.
    stages: Vec<StageState>,
    /// The engine `RUN` steps run on, made at the first one.
    runtime: Option<Runtime>,
    policy: CachePolicy,
    /// The steps run or taken from the cache, kept with the image.
    cache: Vec<BuildCacheEntry>,
    /// Remarks for the user (`--pull` of a stored base).
    warnings: Vec<String>,
    /// The options of a pull of a `FROM HOST[:PORT]/NAME`.
    registry: RegistryAccess<'r>,
}

/// What [`Builder::apply`] did: set the config (its history line), or
/// a whole step (`RUN`, `COPY`).
enum Applied {
    Config(String),
    Done(Box<StepDone>),
}

/// What one step did.
struct StepDone {
    created_by: String,
    layer: Option<(Descriptor, Digest)>,
    /// Taken from the build cache rather than run.
    cached: bool,
    /// Its cache key (`None`: a wrun.toml setting, which is no step).
    key: Option<Digest>,
}

/// A `RUN` step's output, handed to the build's progress as it comes.
struct ProgressOutput(Option<ProgressSink>);

impl OutputSink for ProgressOutput {
    fn write(&self, chunk: &[u8]) -> std::io::Result<()> {
        if let Some(progress) = &self.0 {
            (progress.0)(&BuildEvent::Output { bytes: chunk });
        }
        Ok(())
    }
}

/// What the build stored.
pub(crate) struct Stored {
    pub record: ImageRecord,
    pub kind: ModuleKind,
    pub warnings: Vec<String>,
}

impl<'s, 'r> Builder<'s, 'r> {
    pub fn new(
        store: &'s Store,
        request: &'r BuildRequest,
        ctx: BuildContext,
        policy: CachePolicy,
        registry: RegistryAccess<'r>,
    ) -> Result<Self, BuildError> {
        let epoch = request.source_date_epoch.unwrap_or(0);
        Ok(Builder {
            store,
            staging: store.staging()?,
            request,
            ctx,
            epoch,
            created: crate::rfc3339(epoch),
            step: 0,
            total: 0,
            scratch: 0,
            stages: Vec::new(),
            runtime: None,
            policy,
            cache: Vec::new(),
            warnings: Vec::new(),
            registry,
        })
    }

    fn emit(&self, event: BuildEvent<'_>) {
        if let Some(progress) = &self.request.progress {
            (progress.0)(&event);
        }
    }

    fn announce(&mut self, ins: &Instruction) {
        self.step += 1;
        self.emit(BuildEvent::Step {
            number: self.step,
            total: self.total,
            text: &ins.text,
        });
    }

    /// Runs every stage up to the target and stores the target's image
    /// under `names`.
    pub fn run(mut self, program: &Program, names: Vec<ImageRef>) -> Result<Stored, BuildError> {
        let target = match &self.request.target {
            Some(t) => program
                .stage_named(t)
                .ok_or_else(|| BuildError::BuildFile {
                    file: program.file.clone(),
                    message: format!(
                        "failed to reach build target {t} in the build file (no stage is named {t})"
                    ),
                    line: None,
                })?,
            None => program.stages.len() - 1,
        };
        let stages = &program.stages[..=target];
        self.total = program.global_args.len()
            + stages
                .iter()
                .map(|s| 1 + s.instructions.len())
                .sum::<usize>();

        // ARGs before the first FROM: their values serve FROM lines, and
        // stages that declare them again.
        let mut global: BTreeMap<String, Option<String>> = BTreeMap::new();
        for ins in &program.global_args {
            self.announce(ins);
            if let Op::Arg { name, default } = &ins.op {
                let vars = global_vars(&global);
                let value = match self.request.build_args.get(name) {
                    Some(v) => Some(v.clone()),
                    None => default
                        .as_deref()
                        .map(|d| expand(d, &vars).map_err(|m| line_error(program, ins, m)))
                        .transpose()?,
                };
                global.insert(name.clone(), value);
            }
        }

        for (index, stage) in stages.iter().enumerate() {
            let state = self.start_stage(program, stage, index, &global)?;
            let state = self.run_stage(program, stage, state, &global)?;
            self.stages.push(state);
        }
        let state = self.stages.swap_remove(target);
        self.store_image(program, state, names)
    }

    /// `FROM`: the stage starts as `scratch`, an earlier stage or an image.
    fn start_stage(
        &mut self,
        program: &Program,
        stage: &StageSpec,
        index: usize,
        global: &BTreeMap<String, Option<String>>,
    ) -> Result<StageState, BuildError> {
        let ins = &stage.from;
        self.announce(ins);
        let Op::From { base } = &ins.op else {
            unreachable!("a stage starts with its FROM")
        };
        let base = if stage.literal {
            base.clone()
        } else {
            expand(base, &global_vars(global)).map_err(|m| line_error(program, ins, m))?
        };
        let state = if base.eq_ignore_ascii_case("scratch") {
            StageState::scratch()
        } else if let Some(earlier) = program.stage_named(&base) {
            if earlier >= index {
                return Err(line_error(
                    program,
                    ins,
                    format!(
                        "FROM {base}: stage {base} is {}; a stage builds only on stages before it",
                        if earlier == index {
                            "this stage itself"
                        } else {
                            "built after this one"
                        }
                    ),
                ));
            }
            let mut state = self.stages[earlier].clone();
            state.args.clear();
            state.cmd_set = false;
            state
        } else {
            let record = self
                .resolve_image(&base)
                .map_err(|e| line_error(program, ins, format!("FROM {base}: {e}")))?;
            let config = self.store.config(&record)?;
            // A wasm image: the config says so and, when it names an
            // entrypoint, that is a WebAssembly module (an imported Linux
            // rootfs says wasm but runs an ELF file).
            let entry_is_module = record.module.is_some() || entrypoint_module(&config).is_none();
            if !(is_wasm_platform(&config) && entry_is_module) {
                let entry = entrypoint_module(&config)
                    .map(|e| format!("its entrypoint {e} is not a WebAssembly module"))
                    .unwrap_or_else(|| "it names no WebAssembly module".into());
                return Err(line_error(
                    program,
                    ins,
                    format!(
                        "FROM {base}: {base} is not a wasm image ({}/{}, {entry}); wrun builds on images whose config says wasm or whose entrypoint is a WASI module",
                        record.os, record.architecture
                    ),
                ));
            }
            StageState::from_image(self.store, &record)?
        };
        self.emit(BuildEvent::Image {
            id: state.id.as_ref(),
        });
        // dockerd begins every stage by adding its default PATH to an Env
        // that has none (what RUN and exec look bare names up in).
        let mut state = state;
        let env = state.config.env().clone().unwrap_or_default();
        if !stage.literal && !env.iter().any(|kv| kv.starts_with("PATH=")) {
            let mut with_path = env;
            with_path.push(format!("PATH={DEFAULT_PATH}"));
            state.config.set_env(Some(with_path));
        }
        Ok(state)
    }

    /// Finds `reference` in the store: an image tar path (loaded into the
    /// store first, as `wrun load` does), a name or an ID; an image the
    /// store lacks is asked of the request's [`crate::BaseImages`].
    fn resolve_image(&mut self, reference: &str) -> Result<ImageRecord, BuildError> {
        if looks_like_tar_path(reference) {
            // Read through the context's handle: a tar inside the context
            // only (a build sent to a daemon names no file of its host).
            let file = self
                .ctx
                .source_file(reference)?
                .ok_or_else(|| BuildError::Source {
                    src: reference.to_string(),
                    reason: "is a directory, not an image tar".into(),
                })?;
            let report = wrun_image::archive::load(self.store, file)?;
            return match report.images.as_slice() {
                [(record, _)] => Ok(record.clone()),
                [] => Err(BuildError::Source {
                    src: reference.to_string(),
                    reason: "holds no image".into(),
                }),
                _ => Err(BuildError::Source {
                    src: reference.to_string(),
                    reason: "holds several images; load it and name one in FROM".into(),
                }),
            };
        }
        // A name on a registry: pulled when the store lacks it, and again
        // with `--pull`, as dockerd's builder does.
        if let Some(named) = reference
            .parse::<ImageRef>()
            .ok()
            .filter(|r| r.registry().is_some())
        {
            match self.store.find(reference) {
                Ok(record) if !self.policy.pull => return Ok(record),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            return self.pull_base(&named);
        }
        let found = match self.store.find(reference) {
            // `--pull` with a base the daemon serves: fetched again.
            Ok(_) if self.policy.pull && self.request.base_images.is_some() => {
                Err(ImageError::NoSuchImage(reference.to_string()))
            }
            Ok(record) if self.policy.pull => {
                let warning = format!(
                    "--pull: {reference} names no registry (HOST[:PORT]/NAME): the stored image {} is used",
                    record.id.short()
                );
                if !self.warnings.contains(&warning) {
                    self.warnings.push(warning);
                }
                Ok(record)
            }
            other => other,
        };
        match found {
            Ok(record) => Ok(record),
            Err(e) if e.is_not_found() => {
                let Some(images) = &self.request.base_images else {
                    return Err(e.into());
                };
                let Some(tar) =
                    images
                        .0
                        .image_tar(reference)
                        .map_err(|reason| BuildError::Source {
                            src: reference.to_string(),
                            reason,
                        })?
                else {
                    return Err(e.into());
                };
                wrun_image::archive::load(self.store, tar)?;
                Ok(self.store.find(reference)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Pulls a base from its registry as `wrun pull` does, telling the
    /// build's progress docker's pull lines (the classic builder's, after
    /// its `Step N/M : FROM` line).
    fn pull_base(&mut self, named: &ImageRef) -> Result<ImageRecord, BuildError> {
        let remote = RemoteRef::from_image_ref(named)?;
        let options = (self.registry)(&remote).map_err(|source| BuildError::Credentials {
            registry: remote.registry.clone(),
            source,
        })?;
        let at = match (&remote.digest, &remote.tag) {
            (Some(d), _) => d.to_string(),
            (None, tag) => tag.clone().unwrap_or_default(),
        };
        // docker says nothing before the manifest is found.
        let report = registry::pull(self.store, &remote, &options)?;
        let mut lines = format!("{at}: Pulling from {}\n", remote.repository);
        // An image the store had whole: docker lists no layer. Otherwise
        // dockerd 20.10's lines: each layer's first, then each fetched
        // one's download, then their completions.
        if !report.up_to_date {
            let fetched: Vec<String> = report
                .layers
                .iter()
                .filter(|(_, fetched)| *fetched)
                .map(|(layer, _)| layer.short().to_string())
                .collect();
            for (layer, was_fetched) in &report.layers {
                let first = if *was_fetched {
                    "Pulling fs layer"
                } else {
                    "Already exists"
                };
                lines.push_str(&format!("{}: {first}\n", layer.short()));
            }
            for layer in &fetched {
                lines.push_str(&format!(
                    "{layer}: Verifying Checksum\n{layer}: Download complete\n"
                ));
            }
            for layer in &fetched {
                lines.push_str(&format!("{layer}: Pull complete\n"));
            }
        }
        lines.push_str(&format!("Digest: {}\n", report.digest));
        lines.push_str(&format!(
            "Status: {} for {remote}\n",
            if report.up_to_date {
                "Image is up to date"
            } else {
                "Downloaded newer image"
            }
        ));
        self.emit(BuildEvent::Output {
            bytes: lines.as_bytes(),
        });
        Ok(report.record)
    }

    fn run_stage(
        &mut self,
        program: &Program,
        stage: &StageSpec,
        mut state: StageState,
        global: &BTreeMap<String, Option<String>>,
    ) -> Result<StageState, BuildError> {
        for ins in &stage.instructions {
            self.announce(ins);
            let done = self
                .step_on(program, stage, &mut state, ins, global)
                .map_err(|e| match e {
                    // Errors that do not say where get the file and line.
                    BuildError::BuildFile { .. }
                    | BuildError::RunFailed { .. }
                    | BuildError::AtStep { .. } => e,
                    other => at_step(program, ins, other),
                })?;
            if done.cached {
                self.emit(BuildEvent::Output {
                    bytes: b" ---> Using cache\n",
                });
            }
            let StepDone {
                created_by,
                layer,
                key,
                ..
            } = done;
            if let Some(key) = key {
                let layer = match &layer {
                    Some((desc, diff_id)) => Some(CachedLayer {
                        digest: Digest::from_oci(desc.digest())?,
                        size: desc.size(),
                        diff_id: *diff_id,
                    }),
                    None => None,
                };
                self.cache.push(BuildCacheEntry {
                    key,
                    created_by: created_by.clone(),
                    layer,
                    owners: Vec::new(),
                    snapshot: None,
                });
            }
            let mut entry = HistoryBuilder::default()
                .created(self.created.clone())
                .created_by(created_by)
                .build()
                .map_err(|e| ImageError::invalid("history", e.to_string()))?;
            match layer {
                Some((desc, diff_id)) => {
                    state.layers.push(desc);
                    state.diff_ids.push(diff_id);
                    state.history.push(entry);
                }
                // wrun.toml's settings are not instructions: its history
                // lists the layers only.
                None if stage.literal => {}
                None => {
                    entry.set_empty_layer(Some(true));
                    state.history.push(entry);
                }
            }
            let doc = state.image_configuration(&self.created)?;
            state.id = Some(Digest::of(&canonical_json(&doc)));
            if let Some(last) = self.cache.last_mut().filter(|_| key.is_some()) {
                last.snapshot = chain_id(&state.diff_ids);
            }
            self.emit(BuildEvent::Image {
                id: state.id.as_ref(),
            });
        }
        Ok(state)
    }

    /// Applies one instruction to `state`, from the build cache when it
    /// has the step (a `RUN` or `COPY` is then not run); says what it did.
    fn step_on(
        &mut self,
        program: &Program,
        stage: &StageSpec,
        state: &mut StageState,
        ins: &Instruction,
        global: &BTreeMap<String, Option<String>>,
    ) -> Result<StepDone, BuildError> {
        let parent = state.id;
        let (created_by, layer) = match self.apply(program, stage, state, ins, global, parent)? {
            Applied::Done(done) => return Ok(*done),
            Applied::Config(line) => (line, None),
        };
        // A setting of wrun.toml is no step of its own.
        if stage.literal {
            return Ok(StepDone {
                created_by,
                layer,
                cached: false,
                key: None,
            });
        }
        let key = step_key(parent.as_ref(), self.epoch, "config", &created_by);
        Ok(StepDone {
            cached: self.cache_hit(&key)?.is_some(),
            created_by,
            layer,
            key: Some(key),
        })
    }

    /// The build cache's entry for `key`, unless `--no-cache`.
    fn cache_hit(&self, key: &Digest) -> Result<Option<BuildCacheEntry>, BuildError> {
        if self.policy.no_cache {
            return Ok(None);
        }
        Ok(self.store.build_cache_entry(key)?)
    }

    /// Applies one instruction to `state`: a setting gives its history
    /// line, a `RUN` or `COPY` what it did.
    fn apply(
        &mut self,
        program: &Program,
        stage: &StageSpec,
        state: &mut StageState,
        ins: &Instruction,
        global: &BTreeMap<String, Option<String>>,
        parent: Option<Digest>,
    ) -> Result<Applied, BuildError> {
        let err = |m: String| line_error(program, ins, m);
        let vars = state.vars();
        let x = |s: &str| -> Result<String, BuildError> {
            if stage.literal {
                Ok(s.to_string())
            } else {
                expand(s, &vars).map_err(err)
            }
        };
        let nop = |text: String| format!("{NOP} {text}");
        Ok(Applied::Config(match &ins.op {
            Op::From { .. } => unreachable!("FROM starts a stage"),
            Op::Arg { name, default } => {
                let value = match self.request.build_args.get(name) {
                    Some(v) => Some(v.clone()),
                    None => match default {
                        Some(d) => Some(x(d)?),
                        None => global.get(name).cloned().flatten(),
                    },
                };
                state.args.insert(name.clone(), value);
                let text = match default {
                    Some(d) => format!("ARG {name}={d}"),
                    None => format!("ARG {name}"),
                };
                nop(text)
            }
            Op::Env(pairs) => {
                let mut shown = Vec::new();
                let mut env = state.config.env().clone().unwrap_or_default();
                for (k, v) in pairs {
                    let (k, v) = (x(k)?, x(v)?);
                    env.retain(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) != k);
                    env.push(format!("{k}={v}"));
                    shown.push(format!("{k}={v}"));
                }
                state.config.set_env(Some(env));
                nop(format!("ENV {}", shown.join(" ")))
            }
            Op::Label(pairs) => {
                let mut labels = state.config.labels().clone().unwrap_or_default();
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let (k, v) = (x(k)?, x(v)?);
                    shown.push(format!("{k}={v}"));
                    labels.insert(k, v);
                }
                state.config.set_labels(Some(labels));
                nop(format!("LABEL {}", shown.join(" ")))
            }
            Op::Workdir(w) => {
                let w = x(w)?;
                let dir = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{}", state.working_dir().trim_end_matches('/'), w)
                };
                state.config.set_working_dir(Some(dir.clone()));
                format!("{NOP}WORKDIR {dir}")
            }
            Op::Expose(ports) => {
                let mut exposed = state.config.exposed_ports().clone().unwrap_or_default();
                let mut shown = Vec::new();
                for p in ports {
                    let p = x(p)?;
                    let port = normalize_port(&p).map_err(err)?;
                    if !exposed.contains(&port) {
                        exposed.push(port);
                    }
                    shown.push(p);
                }
                state.config.set_exposed_ports(Some(exposed));
                nop(format!("EXPOSE {}", shown.join(" ")))
            }
            Op::Volume(list) => {
                let mut volumes = state.config.volumes().clone().unwrap_or_default();
                let mut shown = Vec::new();
                for v in list {
                    let v = x(v)?;
                    if !v.starts_with('/') {
                        return Err(err(format!("VOLUME {v:?} must be an absolute path")));
                    }
                    if !volumes.contains(&v) {
                        volumes.push(v.clone());
                    }
                    shown.push(v);
                }
                state.config.set_volumes(Some(volumes));
                nop(format!("VOLUME [{}]", shown.join(" ")))
            }
            Op::User(u) => {
                let u = x(u)?;
                state.config.set_user(Some(u.clone()));
                nop(format!("USER {u}"))
            }
            Op::StopSignal(s) => {
                let s = x(s)?;
                state.config.set_stop_signal(Some(s.clone()));
                nop(format!("STOPSIGNAL {s}"))
            }
            Op::Maintainer(m) => {
                let m = x(m)?;
                state.author = Some(m.clone());
                nop(format!("MAINTAINER {m}"))
            }
            Op::Entrypoint(form) => {
                let argv = self.command_argv(state, form, "ENTRYPOINT").map_err(err)?;
                state.config.set_entrypoint(Some(argv.clone()));
                if !state.cmd_set {
                    // Docker: an ENTRYPOINT drops the Cmd the base set.
                    state.config.set_cmd(None);
                }
                nop(format!("ENTRYPOINT {}", go_list(&argv)))
            }
            Op::Cmd(form) => {
                let argv = self.command_argv(state, form, "CMD").map_err(err)?;
                state.config.set_cmd(Some(argv.clone()));
                state.cmd_set = true;
                nop(format!("CMD {}", go_list(&argv)))
            }
            Op::Run(form) => {
                let argv = self.command_argv(state, form, "RUN").map_err(err)?;
                return self
                    .run_step(state, argv, parent)
                    .map(|d| Applied::Done(Box::new(d)))
                    .map_err(|e| match e {
                        BuildError::BuildFile { .. } => e,
                        BuildError::Run(step) => BuildError::RunFailed {
                            file: program.file.clone(),
                            line: (ins.line > 0).then_some(ins.line),
                            step: Box::new(step),
                        },
                        other => at_step(program, ins, other),
                    });
            }
            Op::Copy {
                add,
                from,
                mode,
                sources,
                dest,
                created_by,
            } => {
                let sources = sources
                    .iter()
                    .map(|s| x(s))
                    .collect::<Result<Vec<_>, _>>()?;
                let dest = x(dest)?;
                let abs_dest = if dest.starts_with('/') {
                    dest.clone()
                } else {
                    let joined = format!("{}/{}", state.working_dir().trim_end_matches('/'), dest);
                    joined
                };
                let line = |content: &str| match created_by {
                    Some(c) => c.clone(),
                    None => format!(
                        "{NOP}{} {content} in {dest} ",
                        if *add { "ADD" } else { "COPY" }
                    ),
                };
                let from = self.copy_source(program, from, &vars).map_err(err)?;
                return self
                    .copy_step(*add, &from, *mode, &sources, &abs_dest, &line, parent)
                    .map(|d| Applied::Done(Box::new(d)));
            }
        }))
    }

    /// Where a `COPY --from` value that needed expanding (`--from=$STAGE`)
    /// reads, once expanded: an earlier stage (by name or index) or an
    /// image; other sources as the parser resolved them.
    fn copy_source(
        &self,
        program: &Program,
        from: &CopySource,
        vars: &BTreeMap<String, String>,
    ) -> Result<CopySource, String> {
        let CopySource::Image(value) = from else {
            return Ok(from.clone());
        };
        if !value.contains('$') {
            return Ok(from.clone());
        }
        let value = expand(value, vars)?;
        if value.is_empty() {
            return Err(format!(
                "COPY --from={value:?}: the value is empty once expanded"
            ));
        }
        let here = self.stages.len();
        let index = match value.parse::<usize>() {
            Ok(i) if i >= program.stages.len() => {
                return Err(format!(
                    "invalid from flag value {value}: index out of bounds (the file has {} stages)",
                    program.stages.len()
                ));
            }
            Ok(i) => Some(i),
            Err(_) => program.stage_named(&value),
        };
        match index {
            Some(i) if i < here => Ok(CopySource::Stage(i)),
            Some(_) => Err(format!(
                "COPY --from={value}: stage {value} is this stage or a later one; a stage copies only from stages before it"
            )),
            None => Ok(CopySource::Image(value)),
        }
    }

    /// The argv of `RUN`/`CMD`/`ENTRYPOINT`: the exec form as written; the
    /// shell form as `/bin/sh -c LINE`, only when the stage has a `/bin/sh`.
    fn command_argv(
        &mut self,
        state: &StageState,
        form: &CommandForm,
        instr: &str,
    ) -> Result<Vec<String>, String> {
        match form {
            CommandForm::Exec(argv) => {
                if argv.is_empty() && instr == "RUN" {
                    return Err("RUN [] names no module".into());
                }
                Ok(argv.clone())
            }
            CommandForm::Shell(line) => {
                let has_sh = match self.stage_rootfs(state) {
                    Ok(Some(root)) => BuildContext::open_rootfs(&root)
                        .ok()
                        .is_some_and(|c| c.is_file("/bin/sh")),
                    _ => false,
                };
                if !has_sh {
                    return Err(format!(
                        "{instr} {line}: the shell form runs /bin/sh -c, and this stage's rootfs has no /bin/sh (a WASI shell); write the exec form instead: {instr} [\"/path/to/module.wasm\", \"arg\", ...]"
                    ));
                }
                Ok(vec!["/bin/sh".into(), "-c".into(), line.clone()])
            }
        }
    }

    /// `RUN`: the module runs over a copy-on-write view of the stage's
    /// rootfs (run_step.rs); what it changed is the step's layer. The
    /// build args in scope are in its environment, and in its history line
    /// as dockerd writes them (`|N K=V … command`), so in its cache key
    /// too; its module, files, Env and WORKDIR are the parent state's.
    fn run_step(
        &mut self,
        state: &mut StageState,
        argv: Vec<String>,
        parent: Option<Digest>,
    ) -> Result<StepDone, BuildError> {
        let args: Vec<String> = state
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        // Env wins over a build arg of the same name, as in dockerd.
        let mut env: Vec<String> = args
            .iter()
            .filter(|kv| {
                let name = kv.split_once('=').map_or(kv.as_str(), |p| p.0);
                !state
                    .config
                    .env()
                    .iter()
                    .flatten()
                    .any(|e| e.split_once('=').map_or(e.as_str(), |p| p.0) == name)
            })
            .cloned()
            .collect();
        env.extend(state.config.env().clone().unwrap_or_default());
        let output = OutputTarget::Sink(Arc::new(ProgressOutput(self.request.progress.clone())));
        let mut step = RunStep::new(argv);
        step.env = env;
        step.workdir = state.config.working_dir().clone().filter(|w| !w.is_empty());
        step.limits = self.request.run_limits.unwrap_or_default();
        step.network = self.request.run_network.clone();
        step.mtime_clamp = Some(self.epoch);
        step.stdout = output.clone();
        step.stderr = output;
        let created_by = if args.is_empty() {
            step.created_by()
        } else {
            format!("|{} {} {}", args.len(), args.join(" "), step.created_by())
        };
        let key = step_key(parent.as_ref(), self.epoch, "RUN", &created_by);
        if let Some(hit) = self.cache_hit(&key)? {
            return Ok(StepDone {
                created_by,
                layer: hit.layer.map(|l| {
                    (
                        Descriptor::new(MediaType::ImageLayerGzip, l.size, l.digest.to_oci()),
                        l.diff_id,
                    )
                }),
                cached: true,
                key: Some(key),
            });
        }
        if self.runtime.is_none() {
            let config = RuntimeConfig {
                cache_dir: Some(self.store.cache_dir().join("modules")),
                scratch_dir: Some(self.store.root().join("scratch")),
                ..RuntimeConfig::foreground()
            };
            self.runtime = Some(Runtime::new(config).map_err(|e| BuildError::Source {
                src: "RUN".into(),
                reason: format!("cannot start the WebAssembly runtime: {e}"),
            })?);
        }
        let runtime = self.runtime.as_ref().expect("made above");
        let rootfs = StageRootfs {
            layers: state.layers.clone(),
            diff_ids: state.diff_ids.clone(),
        };
        let layer = run_step::run_step(runtime, &mut self.staging, &rootfs, &step)?;
        Ok(StepDone {
            created_by,
            layer: layer.map(|l| {
                (
                    Descriptor::new(MediaType::ImageLayerGzip, l.size, l.digest.to_oci()),
                    l.diff_id,
                )
            }),
            cached: false,
            key: Some(key),
        })
    }

    /// The stage's merged rootfs, unpacked (once per layer chain) in the
    /// staging area or found in the store; `None` for an empty stage.
    fn stage_rootfs(&mut self, state: &StageState) -> Result<Option<PathBuf>, BuildError> {
        if state.layers.is_empty() {
            return Ok(None);
        }
        let (manifest, config) = self.documents(state)?;
        let chain = self.staging.prepare_snapshot(&manifest, &config)?;
        Ok(chain.map(|c| self.staging.rootfs(&c)))
    }

    /// The manifest and config of `state`, not written anywhere.
    fn documents(
        &self,
        state: &StageState,
    ) -> Result<(ImageManifest, ImageConfiguration), BuildError> {
        let config = state.image_configuration(&self.created)?;
        let bytes = canonical_json(&config);
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                bytes.len() as u64,
                Digest::of(&bytes).to_oci(),
            ))
            .layers(state.layers.clone())
            .build()
            .map_err(|e| ImageError::invalid("image manifest", e.to_string()))?;
        Ok((manifest, config))
    }

    /// An empty directory in the staging area.
    fn empty_dir(&mut self, what: &str) -> Result<PathBuf, BuildError> {
        self.scratch += 1;
        Ok(self
            .staging
            .scratch_dir(&format!("{what}-{}", self.scratch))?)
    }

    /// `COPY`/`ADD`: plans the entries from their source tree and names
    /// their content (`file:HEX`, `dir:HEX` or `multi:HEX`, HEX hashing
    /// every path, mode and file content) for the history line `line`
    /// makes and the cache key; unless the cache has the step, writes them
    /// as one layer.
    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &mut self,
        add: bool,
        from: &CopySource,
        mode: Option<u32>,
        sources: &[String],
        dest: &str,
        line: &dyn Fn(&str) -> String,
        parent: Option<Digest>,
    ) -> Result<StepDone, BuildError> {
        // Source trees besides the context (a stage's or an image's rootfs,
        // an extracted tar); an entry names its tree (`None`: the context).
        let mut roots: Vec<BuildContext> = Vec::new();
        let mut entries: BTreeMap<String, (Option<usize>, LayerEntry)> = BTreeMap::new();
        let mut kinds = Vec::new();
        match from {
            CopySource::Context => {
                let into_dir = dest.ends_with('/') || sources.len() > 1;
                let dest_dir = format!("{}/", dest.trim_end_matches('/'));
                for src in sources {
                    if add
                        && let Some(file) = self.ctx.source_file(src)?
                        && let Some(stream) = archive_stream(file, src)?
                    {
                        let dir = self.empty_dir("add")?;
                        let root =
                            cap_std::fs::Dir::open_ambient_dir(&dir, cap_std::ambient_authority())
                                .map_err(|source| BuildError::Io {
                                    context: format!("opening {}", dir.display()),
                                    source,
                                })?;
                        unpack::apply_layer(
                            &root,
                            stream,
                            src,
                            &UnpackLimits::default(),
                            &mut UnpackBudget::default(),
                        )?;
                        let tree = BuildContext::open_rootfs(&dir)?;
                        let mut planned = BTreeMap::new();
                        tree.plan_copy(&["/".to_string()], &dest_dir, mode, &mut planned)?;
                        entries.extend(
                            planned
                                .into_iter()
                                .map(|(k, v)| (k, (Some(roots.len()), v))),
                        );
                        roots.push(tree);
                        kinds.push("file");
                        continue;
                    }
                    let mut planned = BTreeMap::new();
                    let to = if into_dir { dest_dir.as_str() } else { dest };
                    self.ctx
                        .plan_copy(std::slice::from_ref(src), to, mode, &mut planned)?;
                    kinds.push(if self.ctx.is_dir(src) { "dir" } else { "file" });
                    entries.extend(planned.into_iter().map(|(k, v)| (k, (None, v))));
                }
            }
            CopySource::Stage(_) | CopySource::Image(_) => {
                let root = match from {
                    CopySource::Image(name) => {
                        let record = self.resolve_image(name).map_err(|e| BuildError::Source {
                            src: format!("--from={name}"),
                            reason: format!("is no earlier build stage and no image: {e}"),
                        })?;
                        self.store.rootfs_path(&record)
                    }
                    CopySource::Stage(index) => {
                        let stage = self.stages[*index].clone();
                        self.stage_rootfs(&stage)?
                    }
                    CopySource::Context => unreachable!("matched above"),
                };
                let root = match root {
                    Some(r) => r,
                    None => self.empty_dir("empty")?,
                };
                let tree = BuildContext::open_rootfs(&root)?;
                let mut planned = BTreeMap::new();
                tree.plan_copy(sources, dest, mode, &mut planned)?;
                for src in sources {
                    kinds.push(if tree.is_dir(src) { "dir" } else { "file" });
                }
                entries.extend(
                    planned
                        .into_iter()
                        .map(|(k, v)| (k, (Some(roots.len()), v))),
                );
                roots.push(tree);
            }
        }

        let tree_of = |root: &Option<usize>| match root {
            Some(i) => &roots[*i],
            None => &self.ctx,
        };
        // What the layer will hold, read once to name it (the cache key);
        // read again as it is written, and the two must agree.
        let mut listing = String::new();
        for (path, (root, entry)) in &entries {
            listing.push_str(&listing_line(path, tree_of(root), entry, None)?);
        }
        let kind = match kinds.as_slice() {
            [one] => *one,
            _ => "multi",
        };
        let content = format!("{kind}:{}", Digest::of(listing.as_bytes()).hex());
        let created_by = line(&content);
        let key = step_key(
            parent.as_ref(),
            self.epoch,
            "COPY",
            &format!("{created_by}\n{content}"),
        );
        if let Some(hit) = self.cache_hit(&key)?
            && let Some(l) = hit.layer
        {
            return Ok(StepDone {
                created_by,
                layer: Some((
                    Descriptor::new(MediaType::ImageLayerGzip, l.size, l.digest.to_oci()),
                    l.diff_id,
                )),
                cached: true,
                key: Some(key),
            });
        }

        let mut writer = LayerWriter::new(&self.staging, self.epoch)?;
        let mut written = String::new();
        for (path, (root, entry)) in &entries {
            written.push_str(&listing_line(
                path,
                tree_of(root),
                entry,
                Some(&mut writer),
            )?);
        }
        if written != listing {
            return Err(BuildError::Source {
                src: sources.join(" "),
                reason: "changed while the build read it".into(),
            });
        }
        let built = writer.finish(&mut self.staging)?;
        Ok(StepDone {
            created_by,
            layer: Some((
                Descriptor::new(MediaType::ImageLayerGzip, built.size, built.digest.to_oci()),
                built.diff_id,
            )),
            cached: false,
            key: Some(key),
        })
    }

    /// Writes the final image: its module (the entrypoint) is validated and
    /// decides `os`; the store commits it under `names`.
    fn store_image(
        mut self,
        program: &Program,
        mut state: StageState,
        names: Vec<ImageRef>,
    ) -> Result<Stored, BuildError> {
        let file_error = |message: String| BuildError::BuildFile {
            file: program.file.clone(),
            message,
            line: None,
        };
        let doc = state.image_configuration(&self.created)?;
        let entry = entrypoint_module(&doc).ok_or_else(|| {
            file_error("the image has no entrypoint: name the module (`module =` or ENTRYPOINT [\"/app.wasm\"])".into())
        })?;
        // The store has this very image (its config names the layers, the
        // entrypoint and the os its module's kind gave): that kind stands,
        // and the module is not read and validated again (most of a build
        // whose every step came from the cache).
        let id = Digest::of(&canonical_json(&doc));
        let known = self
            .store
            .images()?
            .into_iter()
            .find(|r| r.id == id)
            .and_then(|r| r.module)
            .filter(|m| m.path == entry)
            .map(|m| m.kind);
        let kind = match known {
            Some(kind) => kind,
            None => {
                let root = self.stage_rootfs(&state)?;
                let module = root
                    .as_deref()
                    .map(BuildContext::open_rootfs)
                    .transpose()?
                    .filter(|tree| tree.is_file(&entry))
                    .ok_or_else(|| {
                        file_error(format!("the entrypoint {entry} is not a file in the image"))
                    })?
                    .read_source(&entry)?;
                wrun_image::wasm::validate(&module, &entry)?
            }
        };
        state.os = kind.oci_os().into();
        let config = state.image_configuration(&self.created)?;
        let manifest = self
            .staging
            .write_image(&config, state.layers.clone(), None)?;
        let mut records =
            self.store
                .commit_build(self.staging, &[(manifest, names)], self.cache)?;
        let record = records
            .pop()
            .expect("one image committed, one record returned");
        Ok(Stored {
            record,
            kind,
            warnings: self.warnings,
        })
    }
}

/// A `FROM` value that names an image tar rather than an image: a path
/// (`./`, `../`, `/`: the last two are then refused as outside the
/// context) or a name ending in `.tar`, `.tar.gz` or `.tgz`.
fn looks_like_tar_path(reference: &str) -> bool {
    reference.starts_with("./")
        || reference.starts_with("../")
        || reference.starts_with('/')
        || [".tar", ".tar.gz", ".tgz"]
            .iter()
            .any(|ext| reference.ends_with(ext))
}

/// `ADD`'s test of a local file: a plain, gzip, bzip2 or xz tar is
/// extracted (its stream returned), as Docker extracts them; a zstd one is
/// refused; anything else is copied as a file.
fn archive_stream(
    mut file: cap_std::fs::File,
    src: &str,
) -> Result<Option<Box<dyn Read>>, BuildError> {
    let io = |source| BuildError::Io {
        context: format!("reading {src} in the build context"),
        source,
    };
    let mut head = [0u8; 4];
    let n = read_up_to(&mut file, &mut head).map_err(io)?;
    if head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(BuildError::Source {
            src: src.to_string(),
            reason: "is a zstd-compressed file: ADD extracts plain, gzip, bzip2 and xz tars; decompress it first, or COPY it to keep it as a file".into(),
        });
    }
    file.rewind().map_err(io)?;
    let mut block = vec![0u8; 512];
    let is_tar = {
        let mut reader = unpack::archive_decompressed(&mut file, src)?;
        let n = read_up_to(&mut reader, &mut block).unwrap_or(0);
        n == 512 && &block[257..262] == b"ustar"
    };
    if !is_tar {
        return Ok(None);
    }
    file.rewind().map_err(io)?;
    Ok(Some(unpack::archive_decompressed(file, src)?))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// One entry's line of a `COPY`'s content listing (its path, mode and
/// the digest of a file's bytes); with `writer`, the entry is also
/// written to the layer as it is read.
fn listing_line(
    path: &str,
    tree: &BuildContext,
    entry: &LayerEntry,
    writer: Option<&mut LayerWriter>,
) -> Result<String, BuildError> {
    Ok(match entry {
        LayerEntry::Dir { mode } => {
            if let Some(w) = writer {
                w.add_dir(path, *mode)?;
            }
            format!("d {mode:o} {path}\n")
        }
        LayerEntry::File { source, mode, size } => {
            let file = tree.open_file(source)?;
            let mut hashing = HashingReader::new(file);
            match writer {
                Some(w) => w.add_file(path, *mode, *size, &mut hashing)?,
                None => {
                    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| {
                        BuildError::Io {
                            context: format!("reading {}", source_name(tree, source)),
                            source: e,
                        }
                    })?;
                }
            }
            let (digest, count) = hashing.finish().map_err(|e| BuildError::Io {
                context: format!("reading {}", source_name(tree, source)),
                source: e,
            })?;
            if count != *size {
                return Err(BuildError::Source {
                    src: source.display().to_string(),
                    reason: "changed size while the build read it".into(),
                });
            }
            format!("f {mode:o} {path} {digest}\n")
        }
        LayerEntry::Symlink { target } => {
            if let Some(w) = writer {
                w.add_symlink(path, target)?;
            }
            format!("l {path} {target}\n")
        }
    })
}

fn source_name(root: &BuildContext, rel: &Path) -> String {
    root.path().join(rel).display().to_string()
}

/// Go's `%v` of a string slice with quotes (`["/x" "a"]`), as Docker's
/// history lines print command lines.
fn go_list(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

fn global_vars(global: &BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
    global
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect()
}

/// Substitutes `$NAME` and `${NAME}` from `vars`.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    substitute(text, vars, &mut Vec::new(), true)
}

/// `error`, which does not say where, at the step `ins`.
fn at_step(program: &Program, ins: &Instruction, error: BuildError) -> BuildError {
    BuildError::AtStep {
        file: program.file.clone(),
        line: (ins.line > 0).then_some(ins.line),
        source: Box::new(error),
    }
}

fn line_error(program: &Program, ins: &Instruction, message: String) -> BuildError {
    BuildError::BuildFile {
        file: program.file.clone(),
        message,
        line: (ins.line > 0).then_some(ins.line),
    }
}
