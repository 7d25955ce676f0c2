//! The cost of the view against direct cap-std access on the same files:
//! open + read 4 KiB + stat of an image file 4 directories deep (no upper;
//! with an upper created), and the first write of a 1 MiB image file (its
//! copy-up). Figures go in docs/rootfs.md.
//!
//! Run: cargo bench -p wrun-rootfs --bench view

use std::hint::black_box;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use wrun_rootfs::{Layers, OpenOptions, Opened, UpperOptions};

const FILE: &str = "usr/lib/pkg/data/file42";

fn make_lower(root: &Path) {
    let dir = root.join("usr/lib/pkg/data");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..100 {
        std::fs::write(dir.join(format!("file{i}")), vec![i as u8; 4096]).expect("write");
    }
    std::fs::write(root.join("big"), vec![1u8; 1 << 20]).expect("write");
}

fn lower_dir(root: &Path) -> Arc<cap_std::fs::Dir> {
    Arc::new(cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority()).expect("lower"))
}

fn view_open_read_stat(l: &Layers) {
    let o = OpenOptions {
        read: true,
        follow: true,
        ..OpenOptions::default()
    };
    let Ok(Opened::File(f)) = l.open_at(&l.root(), FILE, &o) else {
        panic!("open");
    };
    let mut buf = [0u8; 4096];
    black_box(f.read_at(&mut buf, 0).expect("read"));
    black_box(f.stat().expect("stat"));
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = tmp.path().join("lower");
    make_lower(&lower);
    let lower_dir = lower_dir(&lower);

    let mut g = c.benchmark_group("open_read_stat");
    g.bench_function("cap_std", |b| {
        b.iter(|| {
            let mut f = lower_dir.open(FILE).expect("open");
            let mut buf = [0u8; 4096];
            black_box(f.read(&mut buf).expect("read"));
            black_box(f.metadata().expect("stat"));
        })
    });
    let idle = Layers::open(
        lower_dir.clone(),
        tmp.path().join("idle"),
        UpperOptions::default(),
    )
    .expect("view");
    g.bench_function("view_no_upper", |b| b.iter(|| view_open_read_stat(&idle)));
    let written = Layers::open(
        lower_dir.clone(),
        tmp.path().join("written"),
        UpperOptions::default(),
    )
    .expect("view");
    written
        .create_dir_at(&written.root(), "usr/lib/pkg/data/new")
        .expect("a write: the upper and the file's directories now exist");
    written
        .unlink_file_at(&written.root(), "usr/lib/pkg/data/file1")
        .expect("and a whiteout");
    g.bench_function("view_with_upper", |b| {
        b.iter(|| view_open_read_stat(&written))
    });
    g.finish();

    let mut g = c.benchmark_group("first_write");
    g.measurement_time(Duration::from_secs(10));
    let mut n = 0u64;
    g.bench_function("copy_up_1mib", |b| {
        b.iter_batched(
            || {
                n += 1;
                let l = Layers::open(
                    lower_dir.clone(),
                    tmp.path().join(format!("cu{n}")),
                    UpperOptions::default(),
                )
                .expect("view");
                // The upper and its copy-up area exist already (made by a
                // first, small copy-up): only this copy-up is measured.
                let o = OpenOptions {
                    write: true,
                    ..OpenOptions::default()
                };
                l.open_at(&l.root(), "usr/lib/pkg/data/file7", &o)
                    .expect("a first copy-up");
                l
            },
            |l| {
                let o = OpenOptions {
                    write: true,
                    ..OpenOptions::default()
                };
                let Ok(Opened::File(f)) = l.open_at(&l.root(), "big", &o) else {
                    panic!("open");
                };
                f.write_at(b"x", 0).expect("write");
                l
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("plain_copy_1mib", |b| {
        b.iter_batched(
            || {
                n += 1;
                tmp.path().join(format!("pc{n}"))
            },
            |dst| {
                std::fs::copy(lower.join("big"), &dst).expect("copy");
                dst
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(view, benches);
criterion_main!(view);
