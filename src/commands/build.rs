//! `wrun build`: build an image from a build file, store it where the other
//! image verbs look ([`crate::image_backend::choose`]), optionally write it as a tar.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

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
        progress: (!args.quiet).then(|| ProgressSink(Arc::new(print_event))),
        base_images: None,
        run_limits: (args.memory.is_some() || args.timeout.is_some()).then(|| {
            let defaults = StepLimits::default();
            StepLimits {
                memory: args.memory.or(defaults.memory),
                timeout: args.timeout.unwrap_or(defaults.timeout),
                storage: defaults.storage,
            }
        }),
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
                .find_map(|c| c.downcast_ref::<BuildError>())
                .and_then(BuildError::step_exit_code)
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

/// Prints a build's progress as Docker's classic builder does, on stdout.
fn print_event(event: &BuildEvent<'_>) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not fail the build; the image is still stored.
    let _ = match event {
        BuildEvent::Step {
            number,
            total,
            text,
        } => writeln!(out, "Step {number}/{total} : {text}"),
        BuildEvent::Image { id } => {
            writeln!(out, " ---> {}", id.map(|d| d.short()).unwrap_or_default())
        }
        BuildEvent::Output { bytes } => out.write_all(bytes).and_then(|()| out.flush()),
    };
}
