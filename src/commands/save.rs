//! `wrun save`: write images as one OCI image layout tar.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use hyper::Method;
use wrun_image::archive::{self, SaveItem};
use wrun_image::{ImageRecord, ImageRef, Store};

use super::ImageBackend;
use crate::client::Client;

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

pub fn run(root: &Path, host: Option<&str>, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let store = match ImageBackend::choose(root, host)? {
        ImageBackend::Local(store) => store,
        ImageBackend::Api(client) => return save_from_daemon(&client, &args),
    };
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
    write_atomically(path, |out| {
        archive::save(store, items, out, archive_mtime())?;
        Ok(())
    })
}

/// `GET /images/get?names=…`: the daemon's tar, streamed to the file or
/// stdout as it arrives.
fn save_from_daemon(client: &Client, args: &SaveArgs) -> anyhow::Result<ExitCode> {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(args.images.iter().map(|n| ("names", n)))
        .finish();
    let path = format!("/images/get?{query}");
    let fetch = |out: &mut dyn Write| -> anyhow::Result<()> {
        let mut end = TarEnd::default();
        client.stream(Method::GET, &path, |chunk| {
            end.feed(chunk);
            out.write_all(chunk)?;
            Ok(())
        })?;
        if !end.complete() {
            bail!("the daemon's image tar ended early (see the daemon's log)");
        }
        Ok(())
    };
    match &args.output {
        Some(file) => write_atomically(file, fetch)?,
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = BufWriter::new(io::stdout().lock());
            fetch(&mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Watches a streamed tar for its end-of-archive marker (two zero blocks
/// at a block boundary): the daemon can only report a failure after the
/// first byte by cutting the tar short.
#[derive(Default)]
struct TarEnd {
    tail: Vec<u8>,
    len: u64,
}

impl TarEnd {
    const MARKER: usize = 1024;

    fn feed(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if bytes.len() >= Self::MARKER {
            self.tail.clear();
            self.tail
                .extend_from_slice(&bytes[bytes.len() - Self::MARKER..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let excess = self.tail.len().saturating_sub(Self::MARKER);
            self.tail.drain(..excess);
        }
    }

    fn complete(&self) -> bool {
        self.len.is_multiple_of(512)
            && self.tail.len() == Self::MARKER
            && self.tail.iter().all(|b| *b == 0)
    }
}

/// Writes `path` through a temp file beside it, renamed into place once
/// `write` succeeded and the data is on disk.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
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
        write(&mut out)?;
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

#[cfg(test)]
mod tests {
    use super::TarEnd;

    #[test]
    fn a_tar_is_complete_only_with_its_end_marker() {
        let mut whole = TarEnd::default();
        whole.feed(&[7u8; 512]);
        for _ in 0..4 {
            whole.feed(&[0u8; 256]);
        }
        assert!(whole.complete());

        let mut cut = TarEnd::default();
        cut.feed(&[7u8; 4096]);
        assert!(!cut.complete(), "no end marker");
        let mut short = TarEnd::default();
        short.feed(&[0u8; 512]);
        assert!(!short.complete(), "one zero block is not the marker");
        let mut unaligned = TarEnd::default();
        unaligned.feed(&[7u8; 100]);
        unaligned.feed(&[0u8; 1024]);
        assert!(
            !unaligned.complete(),
            "the marker starts on a block boundary"
        );
    }
}
