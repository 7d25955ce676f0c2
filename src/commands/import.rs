//! `wrun import`: a rootfs tar (a file, or `-` for stdin; plain or gzip)
//! as a one-layer image, in the store of the engine
//! [`crate::image_backend::choose`] picks (as `docker import`).

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use wrun_image::ImageRef;
use wrun_image::import::ImportSpec;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT,
    /// ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR)
    #[arg(short = 'c', long = "change", value_name = "CHANGE")]
    pub changes: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// The OS when the entrypoint names no module: wasip1/wasm, wasip2/wasm
    /// or wasi/wasm
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// The rootfs tar, or - for STDIN
    #[arg(value_name = "file|-")]
    pub source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

pub fn run(root: &Path, host: Option<&str>, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let spec = spec(&args)?;
    let (input, what): (Box<dyn Read + Send>, String) = if args.source == "-" {
        if io::stdin().is_terminal() {
            bail!("requested import from stdin, but stdin is a terminal (give a FILE or redirect)");
        }
        (Box::new(io::stdin()), "the rootfs tar from stdin".into())
    } else if args.source.contains("://") {
        bail!(
            "importing from a URL is not supported: download {} and import the file",
            args.source
        );
    } else {
        let file = File::open(&args.source).with_context(|| format!("opening {}", args.source))?;
        (Box::new(file), args.source.clone())
    };
    let id = crate::image_backend::choose(root, host)?
        .import(input, &spec)
        .with_context(|| format!("importing {what}"))?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// The image to make, the name and platform checked before anything is
/// read. The comment of a stream is dockerd's (`Imported from -`).
fn spec(args: &ImportArgs) -> anyhow::Result<ImportSpec> {
    let names = match args.repository.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => {
            let r: ImageRef = name.parse()?;
            if r.digest.is_some() {
                bail!("invalid reference format: {name:?} names a digest; give REPOSITORY[:TAG]");
            }
            vec![r.tagged()]
        }
        None => Vec::new(),
    };
    let os = match args.platform.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match p.split_once('/') {
            Some((os @ ("wasip1" | "wasip2" | "wasi"), "wasm")) => Some(os.to_string()),
            _ => bail!(
                "invalid platform {p:?}: wrun images are WebAssembly (wasip1/wasm, wasip2/wasm or wasi/wasm)"
            ),
        },
    };
    Ok(ImportSpec {
        changes: args.changes.clone(),
        message: args.message.clone(),
        // The docker client sends a file as a stream too.
        source: "-".into(),
        os,
        names,
    })
}
