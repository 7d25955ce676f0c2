//! `wrun save`: write images as one OCI image layout tar.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use wrun_image::archive::{self, SaveItem};
use wrun_image::{ImageRecord, ImageRef, Store};

use super::open_store;

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Timestamp for tar entries: `SOURCE_DATE_EPOCH` when set, else 0, so
/// saving the same image twice gives the same bytes.
fn archive_mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn run(root: &Path, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let mut items: Vec<SaveItem> = Vec::new();
    for name in &args.images {
        let record = store.find(name)?;
        // Saving by name writes that name; saving by ID writes all its names.
        let names = match name.parse::<ImageRef>() {
            Ok(r) if record.names.contains(&r.tagged().name()) => vec![r.tagged().name()],
            _ => record.names.clone(),
        };
        match items.iter_mut().find(|i| i.record.digest == record.digest) {
            Some(existing) => {
                for n in names {
                    if !existing.names.contains(&n) {
                        existing.names.push(n);
                    }
                }
            }
            None => items.push(SaveItem { record, names }),
        }
    }
    match &args.output {
        Some(path) => write_items(&store, &items, path)?,
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = BufWriter::new(io::stdout().lock());
            archive::save(&store, &items, &mut out, archive_mtime())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes images to `path` through a temp file renamed into place, so a
/// failure never leaves a half-written tar (or destroys an older one).
pub fn write_tar_file(
    store: &Store,
    records: &[ImageRecord],
    names: &[String],
    path: &Path,
) -> anyhow::Result<()> {
    let items: Vec<SaveItem> = records
        .iter()
        .map(|r| SaveItem {
            record: r.clone(),
            names: names
                .iter()
                .filter(|n| r.names.contains(n))
                .cloned()
                .collect(),
        })
        .collect();
    write_items(store, &items, path)
}

fn write_items(store: &Store, items: &[SaveItem], path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.partial",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> anyhow::Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        archive::save(store, items, &mut out, archive_mtime())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("saving to {}", path.display()))
}
