//! The cost of `commit` of a 100 MB upper layer, in one process, for
//! docs/benchmarks/rootfs.md: `setup DIR` makes a store with a base image
//! and an upper holding 100 MB of random data (a copied-up, appended file);
//! `setup-small DIR` a base of 100 MB in 400 files and an upper holding
//! one new 3-byte file (a small change over a large base);
//! `commit DIR [LEVEL]` commits it (run it under `/usr/bin/time -v`); with
//! LEVEL, only writes the layer blob at that gzip level.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use cap_std::ambient_authority;
use wrun_image::Store;
use wrun_image::commit::{CommitSpec, commit, write_upper_layer_at};
use wrun_image::import::{ImportSpec, import};
use wrun_rootfs::{Layers, OpenOptions, Opened, UpperOptions};

const SIZE: usize = 100 << 20;
const USAGE: &str = "usage: commit_bench setup|setup-small|commit DIR [LEVEL]";
/// The files of `setup-small`'s base: 400 of 256 KiB, 100 MiB in all.
const SMALL_FILES: usize = 400;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let (mode, dir) = match args.as_slice() {
        [_, mode, dir, ..] => (mode.as_str(), std::path::PathBuf::from(dir)),
        _ => return Err(USAGE.into()),
    };
    let store = Store::open(dir.join("store"))?;
    if mode == "setup" || mode == "setup-small" {
        let mut data = vec![0u8; SIZE];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for chunk in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        let mut tar = tar::Builder::new(Vec::new());
        let files = if mode == "setup" { 1 } else { SMALL_FILES };
        for (i, part) in data.chunks(SIZE / files).enumerate() {
            let mut h = tar::Header::new_gnu();
            h.set_size(part.len() as u64);
            h.set_mode(0o644);
            let name = if files == 1 {
                "data".to_string()
            } else {
                format!("d{}/f{i}", i % 20)
            };
            tar.append_data(&mut h, name, part)?;
        }
        let bytes = tar.into_inner()?;
        let spec = ImportSpec {
            source: "-".into(),
            names: vec!["base:1".parse()?],
            ..Default::default()
        };
        import(&store, &bytes[..], spec)?;
    }
    let base = store.find("base:1")?;
    let lower = cap_std::fs::Dir::open_ambient_dir(
        store.rootfs_path(&base).ok_or("the base has no rootfs")?,
        ambient_authority(),
    )?;
    let layers = Layers::open(Arc::new(lower), dir.join("upper"), UpperOptions::default())?;
    match (mode, args.get(3)) {
        ("setup-small", _) => {
            let o = OpenOptions {
                write: true,
                create: true,
                ..OpenOptions::default()
            };
            let Opened::File(f) = layers.open_at(&layers.root(), "new.txt", &o)? else {
                return Err("new.txt is a directory".into());
            };
            f.append(b"new")?;
        }
        ("setup", _) => {
            let o = OpenOptions {
                write: true,
                ..OpenOptions::default()
            };
            let Opened::File(f) = layers.open_at(&layers.root(), "data", &o)? else {
                return Err("data is a directory".into());
            };
            f.append(b"x")?;
            std::io::stdout().flush()?;
        }
        ("commit", None) => {
            let started = Instant::now();
            let spec = CommitSpec {
                created_by: "bench".into(),
                ..Default::default()
            };
            let record = commit(&store, &base, &layers, spec)?;
            println!(
                "commit: {:.2} s, image {}",
                started.elapsed().as_secs_f64(),
                record.id.short()
            );
        }
        ("commit", Some(level)) => {
            let started = Instant::now();
            let mut staging = store.staging()?;
            let layer = write_upper_layer_at(&mut staging, &layers, level.parse()?)?
                .ok_or("the upper is empty")?;
            println!(
                "layer at gzip level {level}: {:.2} s, {} bytes",
                started.elapsed().as_secs_f64(),
                layer.size
            );
        }
        _ => return Err(USAGE.into()),
    }
    Ok(())
}
