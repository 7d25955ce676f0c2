//! The view against a reference: random sequences of operations applied to
//! (a) the layered view over a lower directory and (b) a plain copy of that
//! directory operated with std::fs. Every result (value or errno) and the
//! final trees must be equal, and the lower must be byte for byte unchanged.
//! The one allowed difference is overlay2's: renaming a directory that has
//! content in the lower fails with EXDEV (the model then skips it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use wrun_rootfs::{Error, Kind, Layers, OpenOptions, Opened, UpperOptions};

const NAMES: &[&str] = &["a", "b", "c", "f", "g", "t", "s", "sd", "n"];
/// Relative targets that cannot leave the model's copy (no `..`, not
/// absolute), dangling and looping ones included.
const TARGETS: &[&str] = &["a", "f", "a/f", "a/b/g", "nx", "sd", "s", "c"];

#[derive(Clone, Debug)]
enum Op {
    Write(String, Vec<u8>, u64),
    Create(String, Vec<u8>),
    Append(String, Vec<u8>),
    SetSize(String, u64),
    Read(String),
    Stat(String),
    Mkdir(String),
    Rmdir(String),
    Unlink(String),
    Rename(String, String),
    Symlink(String, String),
    Readlink(String),
    Link(String, String),
    ReadDir(String),
    Chmod(String, u32),
    Reopen,
    /// Drop the view and reopen it through its `WeakLayers` (what the
    /// daemon does between a stopped instance's runs and verbs).
    Release,
}

fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(NAMES), 1..=3).prop_map(|v| v.join("/"))
}

fn dir_strategy() -> impl Strategy<Value = String> {
    prop_oneof![Just(".".to_string()), path_strategy()]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..12)
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (path_strategy(), data(), 0u64..8).prop_map(|(p, d, o)| Op::Write(p, d, o)),
        (path_strategy(), data()).prop_map(|(p, d)| Op::Create(p, d)),
        (path_strategy(), data()).prop_map(|(p, d)| Op::Append(p, d)),
        (path_strategy(), 0u64..16).prop_map(|(p, n)| Op::SetSize(p, n)),
        path_strategy().prop_map(Op::Read),
        path_strategy().prop_map(Op::Stat),
        path_strategy().prop_map(Op::Mkdir),
        path_strategy().prop_map(Op::Rmdir),
        path_strategy().prop_map(Op::Unlink),
        (path_strategy(), path_strategy()).prop_map(|(a, b)| Op::Rename(a, b)),
        (prop::sample::select(TARGETS), path_strategy())
            .prop_map(|(t, p)| Op::Symlink(t.to_string(), p)),
        path_strategy().prop_map(Op::Readlink),
        (path_strategy(), path_strategy()).prop_map(|(a, b)| Op::Link(a, b)),
        dir_strategy().prop_map(Op::ReadDir),
        (
            path_strategy(),
            prop::sample::select(&[0o600u32, 0o644, 0o755, 0o400][..])
        )
            .prop_map(|(p, m)| Op::Chmod(p, m)),
        Just(Op::Reopen),
        Just(Op::Release),
    ]
}

/// What an operation returned, comparable across both sides.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Bytes(Vec<u8>),
    Stat(Kind, u64, u32),
    Names(Vec<String>),
    Errno(i32),
}

fn errno_of_io(e: std::io::Error) -> Outcome {
    Outcome::Errno(e.raw_os_error().unwrap_or(-1))
}

fn io<T>(r: std::io::Result<T>, f: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => f(v),
        Err(e) => errno_of_io(e),
    }
}

fn view<T>(r: Result<T, Error>, f: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => f(v),
        Err(e) => Outcome::Errno(e.errno()),
    }
}

fn kind_of(ft: std::fs::FileType) -> Kind {
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Unknown
    }
}

/// The stat fields both sides agree on: a directory's size and link count
/// are the host filesystem's, not the guest's.
fn stat_outcome(kind: Kind, size: u64, mode: u32) -> Outcome {
    match kind {
        Kind::Dir => Outcome::Stat(kind, 0, mode & 0o7777),
        Kind::Symlink => Outcome::Stat(kind, size, 0),
        _ => Outcome::Stat(kind, size, mode & 0o7777),
    }
}

fn apply_model(root: &Path, op: &Op) -> Outcome {
    let p = |s: &str| root.join(s);
    match op {
        Op::Write(path, d, off) => io(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(p(path)),
            |f| {
                io(
                    std::os::unix::fs::FileExt::write_all_at(&f, d, *off),
                    |()| Outcome::Done,
                )
            },
        ),
        Op::Create(path, d) => io(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(p(path)),
            |mut f| io(f.write_all(d), |()| Outcome::Done),
        ),
        Op::Append(path, d) => io(
            std::fs::OpenOptions::new().append(true).open(p(path)),
            |mut f| io(f.write_all(d), |()| Outcome::Done),
        ),
        Op::SetSize(path, n) => io(std::fs::OpenOptions::new().write(true).open(p(path)), |f| {
            io(f.set_len(*n), |()| Outcome::Done)
        }),
        Op::Read(path) => io(std::fs::File::open(p(path)), |mut f| {
            let mut buf = Vec::new();
            io(f.read_to_end(&mut buf), |_| Outcome::Bytes(buf))
        }),
        Op::Stat(path) => io(std::fs::symlink_metadata(p(path)), |m| {
            stat_outcome(kind_of(m.file_type()), m.len(), m.permissions().mode())
        }),
        Op::Mkdir(path) => io(
            std::fs::DirBuilder::new().mode(0o755).create(p(path)),
            |()| Outcome::Done,
        ),
        Op::Rmdir(path) => io(std::fs::remove_dir(p(path)), |()| Outcome::Done),
        Op::Unlink(path) => io(std::fs::remove_file(p(path)), |()| Outcome::Done),
        Op::Rename(a, b) => io(std::fs::rename(p(a), p(b)), |()| Outcome::Done),
        Op::Symlink(t, path) => io(std::os::unix::fs::symlink(t, p(path)), |()| Outcome::Done),
        Op::Readlink(path) => io(std::fs::read_link(p(path)), |t| {
            Outcome::Bytes(t.into_os_string().into_encoded_bytes())
        }),
        Op::Link(a, b) => io(std::fs::hard_link(p(a), p(b)), |()| Outcome::Done),
        Op::ReadDir(path) => io(std::fs::read_dir(p(path)), |rd| {
            let mut names: Vec<String> = rd
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Outcome::Names(names)
        }),
        Op::Chmod(path, m) => io(
            std::fs::set_permissions(p(path), std::fs::Permissions::from_mode(*m)),
            |()| Outcome::Done,
        ),
        Op::Reopen | Op::Release => Outcome::Done,
    }
}

fn open_file(l: &Layers, path: &str, o: OpenOptions) -> Result<wrun_rootfs::ViewFile, Error> {
    match l.open_at(&l.root(), path, &o)? {
        Opened::File(f) => Ok(f),
        Opened::Dir(_) => Err(Error::IsDir),
    }
}

fn apply_view(l: &Layers, op: &Op) -> Outcome {
    let root = l.root();
    let w = OpenOptions {
        write: true,
        follow: true,
        mode: Some(0o644),
        ..OpenOptions::default()
    };
    match op {
        Op::Write(path, d, off) => view(
            open_file(
                l,
                path,
                OpenOptions {
                    create: true,
                    ..w.clone()
                },
            ),
            |f| view(f.write_at(d, *off), |_| Outcome::Done),
        ),
        Op::Create(path, d) => view(
            open_file(
                l,
                path,
                OpenOptions {
                    create: true,
                    truncate: true,
                    ..w.clone()
                },
            ),
            |f| view(f.write_at(d, 0), |_| Outcome::Done),
        ),
        Op::Append(path, d) => view(open_file(l, path, w.clone()), |f| {
            view(f.append(d), |_| Outcome::Done)
        }),
        Op::SetSize(path, n) => view(open_file(l, path, w.clone()), |f| {
            view(f.set_size(*n), |()| Outcome::Done)
        }),
        Op::Read(path) => view(
            open_file(
                l,
                path,
                OpenOptions {
                    read: true,
                    follow: true,
                    ..OpenOptions::default()
                },
            ),
            |f| {
                let mut out = Vec::new();
                let mut buf = [0u8; 64];
                loop {
                    match f.read_at(&mut buf, out.len() as u64) {
                        Ok(0) => return Outcome::Bytes(out),
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                        Err(e) => return Outcome::Errno(e.errno()),
                    }
                }
            },
        ),
        Op::Stat(path) => view(l.stat_at(&root, path, false), |s| {
            stat_outcome(s.kind, s.size, s.mode)
        }),
        Op::Mkdir(path) => view(l.create_dir_at(&root, path), |()| Outcome::Done),
        Op::Rmdir(path) => view(l.remove_dir_at(&root, path), |()| Outcome::Done),
        Op::Unlink(path) => view(l.unlink_file_at(&root, path), |()| Outcome::Done),
        Op::Rename(a, b) => view(l.rename_at(&root, a, &root, b), |()| Outcome::Done),
        Op::Symlink(t, path) => view(l.symlink_at(t, &root, path), |()| Outcome::Done),
        Op::Readlink(path) => view(l.readlink_at(&root, path), |t| {
            Outcome::Bytes(t.into_encoded_bytes())
        }),
        Op::Link(a, b) => view(l.link_at(&root, a, false, &root, b), |()| Outcome::Done),
        Op::ReadDir(path) => view(
            l.open_at(
                &root,
                path,
                &OpenOptions {
                    follow: true,
                    directory: true,
                    ..OpenOptions::default()
                },
            )
            .and_then(|o| match o {
                Opened::Dir(d) => l.read_dir(&d, false),
                Opened::File(_) => Err(Error::NotDir),
            }),
            |entries| {
                Outcome::Names(
                    entries
                        .into_iter()
                        .map(|e| e.name.to_string_lossy().into_owned())
                        .collect(),
                )
            },
        ),
        Op::Chmod(path, m) => view(l.set_mode_at(&root, path, true, *m), |()| Outcome::Done),
        Op::Reopen | Op::Release => Outcome::Done,
    }
}

/// A tree as comparable data: path → kind, bytes (a file's data, a
/// symlink's target) and a file's permission bits.
type Tree = BTreeMap<String, (Kind, Vec<u8>, u32)>;

fn host_tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).expect("list") {
            let e = e.expect("entry");
            let path = rel.join(e.file_name());
            let m = std::fs::symlink_metadata(e.path()).expect("lstat");
            let kind = kind_of(m.file_type());
            let (bytes, mode) = match kind {
                Kind::Dir => {
                    stack.push(path.clone());
                    (Vec::new(), m.permissions().mode() & 0o7777)
                }
                Kind::Symlink => (
                    std::fs::read_link(e.path())
                        .expect("readlink")
                        .into_os_string()
                        .into_encoded_bytes(),
                    0,
                ),
                _ => (
                    std::fs::read(e.path()).expect("read"),
                    m.permissions().mode() & 0o7777,
                ),
            };
            out.insert(format!("/{}", path.display()), (kind, bytes, mode));
        }
    }
    out
}

fn view_tree(l: &Layers) -> Tree {
    let mut out = Tree::new();
    for e in l.merged_tree() {
        let e = e.expect("walk");
        let bytes = match e.stat.kind {
            Kind::File => {
                let mut b = Vec::new();
                l.open_entry(&e)
                    .expect("open")
                    .read_to_end(&mut b)
                    .expect("read");
                b
            }
            Kind::Symlink => e
                .link_target
                .clone()
                .expect("a target")
                .into_encoded_bytes(),
            _ => Vec::new(),
        };
        let mode = if e.stat.kind == Kind::Symlink {
            0
        } else {
            e.stat.mode
        };
        out.insert(e.path.to_string(), (e.stat.kind, bytes, mode));
    }
    out
}

fn make_lower(root: &Path) {
    for d in ["a/b", "c", "n"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    for (f, data) in [
        ("a/f", "af"),
        ("a/b/g", "abg"),
        ("c/t", "ct"),
        ("t", "top"),
        ("n/f", "nf"),
    ] {
        std::fs::write(root.join(f), data).expect("write");
    }
    std::os::unix::fs::symlink("a/f", root.join("s")).expect("symlink");
    std::os::unix::fs::symlink("a", root.join("sd")).expect("symlink");
    std::os::unix::fs::symlink("a/b/nx", root.join("dangling")).expect("symlink");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        let t = e.file_type().expect("type");
        let dst = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dst);
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).expect("readlink"), dst)
                .expect("symlink");
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

fn open_view(lower: &Path, upper: &Path) -> Layers {
    let dir =
        cap_std::fs::Dir::open_ambient_dir(lower, cap_std::ambient_authority()).expect("lower");
    Layers::open(Arc::new(dir), upper, UpperOptions::default()).expect("view")
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = tmp.path().join("lower");
    let model = tmp.path().join("model");
    let upper = tmp.path().join("upper");
    make_lower(&lower);
    copy_tree(&lower, &model);
    let lower_before = host_tree(&lower);
    let mut l = open_view(&lower, &upper);
    for (i, op) in ops.iter().enumerate() {
        if let Op::Reopen = op {
            l = open_view(&lower, &upper);
            continue;
        }
        if let Op::Release = op {
            let weak = l.downgrade();
            drop(l);
            prop_assert!(weak.upgrade().is_none(), "step {}: still held", i);
            let dir = cap_std::fs::Dir::open_ambient_dir(&lower, cap_std::ambient_authority())
                .expect("lower");
            l = weak.reopen(Arc::new(dir)).expect("reopen");
            continue;
        }
        let got = apply_view(&l, op);
        if let (Op::Rename(..), Outcome::Errno(18)) = (op, &got) {
            // overlay2: a directory with lower content is not renamed.
            prop_assert!(
                matches!(apply_model_probe(&model, op), Some(true)),
                "EXDEV for something that is not a directory: {op:?}"
            );
            continue;
        }
        let want = apply_model(&model, op);
        prop_assert_eq!(&got, &want, "step {} {:?}", i, op);
        prop_assert_eq!(
            view_tree(&l),
            host_tree(&model),
            "trees after step {} {:?}",
            i,
            op
        );
    }
    prop_assert_eq!(
        view_tree(&open_view(&lower, &upper)),
        host_tree(&model),
        "after a reopen"
    );
    prop_assert_eq!(host_tree(&lower), lower_before, "the lower changed");
    Ok(())
}

/// For an EXDEV rename: whether its source is a directory in the model.
fn apply_model_probe(model: &Path, op: &Op) -> Option<bool> {
    match op {
        Op::Rename(a, _) => Some(
            std::fs::symlink_metadata(model.join(a))
                .map(|m| m.is_dir())
                .unwrap_or(false),
        ),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_view_behaves_like_a_plain_directory(ops in prop::collection::vec(op_strategy(), 1..40)) {
        run(&ops)?;
    }
}
