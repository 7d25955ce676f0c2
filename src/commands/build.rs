//! `wrun build`: build an image from a build file, store it where the other
//! image verbs look ([`crate::image_backend::choose`]), optionally write it as a tar.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use wrun_bundler::run_step::StepLimits;
use wrun_bundler::{BuildError, BuildEvent, BuildRequest, CachePolicy, ProgressSink};
use wrun_image::ImageRef;

use crate::image_backend::Built;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (NAME[:TAG]); repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Build file [default: CONTEXT/wrun.toml, then Wasmfile, then Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Also write the image as an OCI image tar to this file
    #[arg(short = 'o', long = "output", value_name = "OUT.tar")]
    pub output: Option<PathBuf>,
    /// Set a build-time variable (KEY=VALUE); repeatable
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Print only the image ID
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set the target build stage to build
    #[arg(long = "target", value_name = "STAGE")]
    pub target: Option<String>,
    /// Memory limit of each RUN step (e.g. 512m, 1g)
    #[arg(short = 'm', long = "memory", value_name = "BYTES", value_parser = wrun_api::parse::parse_memory)]
    pub memory: Option<u64>,
    /// Time limit of each RUN step (e.g. 90s, 5m) [default: 10m]
    #[arg(long = "timeout", value_name = "DURATION", value_parser = wrun_api::parse::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Networking of RUN steps: none (the default; default and bridge mean
    /// it too) or host
    #[arg(long = "network", value_name = "MODE", value_parser = parse_network)]
    pub network: Option<bool>,
    /// What each RUN step may write (size=SIZE, e.g. size=10g) [default: size=4g]
    #[arg(long = "storage-opt", value_name = "size=SIZE", value_parser = parse_storage_size)]
    pub storage: Option<u64>,
    /// Do not use the build cache: run every step
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always pull the base images again (a registry base; see docs/build-files.md)
    #[arg(long = "pull")]
    pub pull: bool,
    /// Build context directory
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

pub fn run(root: &Path, host: Option<&str>, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let mut build_args = BTreeMap::new();
    for kv in &args.build_args {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("invalid --build-arg {kv:?}: expected KEY=VALUE");
        };
        build_args.insert(k.to_string(), v.to_string());
    }
    let tags = args
        .tags
        .iter()
        .map(|t| t.parse::<ImageRef>())
        .collect::<Result<Vec<_>, _>>()?;
    if !args.context.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found or not a directory",
            args.context.display().to_string()
        );
    }
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<u64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        ),
        _ => None,
    };
    let images = crate::image_backend::choose(root, host)?;
    let request = BuildRequest {
        context: args.context.clone(),
        file: args.file.clone(),
        build_args,
        source_date_epoch,
        tags,
        target: args.target.clone(),
        progress: (!args.quiet).then(|| {
            let printer = ProgressPrinter::new(std::io::stdout().is_terminal());
            ProgressSink(Arc::new(move |e: &BuildEvent<'_>| printer.print(e)))
        }),
        base_images: None,
        run_limits: (args.memory.is_some() || args.timeout.is_some() || args.storage.is_some())
            .then(|| {
                let defaults = StepLimits::default();
                StepLimits {
                    memory: args.memory.or(defaults.memory),
                    timeout: args.timeout.unwrap_or(defaults.timeout),
                    storage: args.storage.unwrap_or(defaults.storage),
                }
            }),
        run_network: wrun_runtime::NetworkGrants {
            host: args.network.unwrap_or(false),
            ..Default::default()
        },
    };
    let policy = CachePolicy {
        no_cache: args.no_cache,
        pull: args.pull,
    };
    let Built { outcome, layers } = match images.build(&request, policy, args.output.as_deref()) {
        Ok(built) => built,
        Err(err) => {
            // docker build exits with the failing RUN's code.
            let code = err
                .chain()
                .find_map(|c| {
                    c.downcast_ref::<BuildError>()
                        .and_then(BuildError::step_exit_code)
                        .or_else(|| {
                            c.downcast_ref::<crate::image_backend::BuildStepFailed>()
                                .map(|f| f.code)
                        })
                })
                .and_then(|c| u8::try_from(c).ok())
                .filter(|c| *c != 0);
            match code {
                Some(code) => {
                    eprintln!("Error: {}", crate::commands::describe(&err));
                    return Ok(ExitCode::from(code));
                }
                None => return Err(err),
            }
        }
    };
    for w in &outcome.warnings {
        eprintln!("[Warning] {w}");
    }
    let record = &outcome.record;
    if args.quiet {
        println!("{}", record.id);
    } else {
        println!("Successfully built {}", record.id.short());
        for n in &record.names {
            println!("Successfully tagged {n}");
        }
        eprintln!(
            "{} layer{}, {}",
            layers,
            if layers == 1 { "" } else { "s" },
            outcome.kind.describe()
        );
    }
    if let Some(out) = &args.output
        && !args.quiet
    {
        eprintln!("Wrote {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a build's progress as Docker's classic builder does, on stdout;
/// on a terminal each step's ` ---> ID` line also says how long it took
/// (issue 14: time per step on a terminal, plain lines otherwise).
struct ProgressPrinter {
    terminal: bool,
    /// When the current step was announced.
    started: Mutex<Option<Instant>>,
}

impl ProgressPrinter {
    fn new(terminal: bool) -> Self {
        ProgressPrinter {
            terminal,
            started: Mutex::new(None),
        }
    }

    fn print(&self, event: &BuildEvent<'_>) {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not fail the build; the image is still stored.
        let _ = match event {
            BuildEvent::Step {
                number,
                total,
                text,
            } => {
                self.mark(Some(Instant::now()));
                writeln!(out, "Step {number}/{total} : {text}")
            }
            BuildEvent::Image { id } => {
                let id = id.map(|d| d.short()).unwrap_or_default();
                match self.mark(None).filter(|_| self.terminal) {
                    Some(started) => {
                        let sep = if id.is_empty() { "" } else { " " };
                        writeln!(out, " ---> {id}{sep}({})", elapsed(started.elapsed()))
                    }
                    None => writeln!(out, " ---> {id}"),
                }
            }
            BuildEvent::Output { bytes } => out.write_all(bytes).and_then(|()| out.flush()),
        };
    }

    /// Sets when the current step started; returns the previous value.
    fn mark(&self, now: Option<Instant>) -> Option<Instant> {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *started, now)
    }
}

/// A step's time as a person reads it: `0.84s`, `12.3s`, `2m05s`.
fn elapsed(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// `--network`: whether RUN steps get the host's network (`host`) or none.
fn parse_network(mode: &str) -> Result<bool, String> {
    match mode {
        "host" => Ok(true),
        "none" | "default" | "bridge" => Ok(false),
        other => Err(format!(
            "network mode {other:?} is not supported for build: none (the default) or host"
        )),
    }
}

/// `--storage-opt size=SIZE`: the bytes each RUN step may write.
fn parse_storage_size(opt: &str) -> Result<u64, String> {
    let Some(size) = opt.strip_prefix("size=") else {
        return Err(format!(
            "invalid storage option {opt:?}: build takes only size=SIZE (e.g. size=10g)"
        ));
    };
    match wrun_api::parse::parse_memory(size) {
        Ok(0) => Err(format!(
            "invalid storage size {size:?}: it must be more than 0"
        )),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(format!("invalid storage size {size:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_times_read_as_seconds_then_minutes() {
        assert_eq!(elapsed(Duration::from_millis(840)), "0.84s");
        assert_eq!(elapsed(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(elapsed(Duration::from_secs(125)), "2m05s");
    }
}
