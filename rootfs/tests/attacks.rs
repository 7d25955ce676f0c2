//! The guest-filesystem attacks of issue 13's "Bad input" against the
//! writable view, each named after what it tries. A "secret" file sits on
//! the host beside the lower and the upper: no attack may read or change
//! it, and none may change the lower.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wrun_rootfs::{Error, Layers, OpenOptions, Opened, UpperOptions, ViewDir};

const SECRET: &str = "host secret";

struct Host {
    tmp: tempfile::TempDir,
    lower: PathBuf,
}

impl Host {
    fn new() -> Host {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lower = tmp.path().join("lower");
        std::fs::create_dir_all(lower.join("etc")).expect("mkdir");
        std::fs::create_dir_all(lower.join("data/deep")).expect("mkdir");
        std::fs::write(lower.join("etc/passwd"), "root:x:0:0\n").expect("write");
        std::fs::write(lower.join("data/deep/f"), "lower f").expect("write");
        std::fs::write(lower.join("x"), "lower x").expect("write");
        std::fs::write(tmp.path().join("secret"), SECRET).expect("write");
        std::fs::create_dir(tmp.path().join("secretdir")).expect("mkdir");
        std::fs::write(tmp.path().join("secretdir/secret"), SECRET).expect("write");
        Host { tmp, lower }
    }

    fn view(&self, name: &str, options: UpperOptions) -> Layers {
        let dir = cap_std::fs::Dir::open_ambient_dir(&self.lower, cap_std::ambient_authority())
            .expect("lower");
        Layers::open(Arc::new(dir), self.upper(name), options).expect("view")
    }

    fn upper(&self, name: &str) -> PathBuf {
        self.tmp.path().join("instances").join(name)
    }

    fn secret_path(&self) -> PathBuf {
        self.tmp.path().join("secret")
    }

    /// Every file of the lower with its bytes, to compare before and after.
    fn lower_snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        snapshot(&self.lower)
    }

    fn assert_host_untouched(&self, before: &BTreeMap<PathBuf, Vec<u8>>) {
        assert_eq!(&self.lower_snapshot(), before, "the lower changed");
        assert_eq!(
            std::fs::read_to_string(self.secret_path()).expect("secret"),
            SECRET
        );
        assert_eq!(
            std::fs::read_to_string(self.tmp.path().join("secretdir/secret")).expect("secret"),
            SECRET
        );
        let names: Vec<_> = std::fs::read_dir(self.tmp.path().join("secretdir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["secret"], "something was created beside the secret");
    }
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("list") {
            let e = e.expect("entry");
            let t = e.file_type().expect("type");
            let rel = e.path().strip_prefix(root).expect("below").to_path_buf();
            if t.is_dir() {
                stack.push(e.path());
                out.insert(rel, b"<dir>".to_vec());
            } else if t.is_symlink() {
                let target = std::fs::read_link(e.path()).expect("readlink");
                out.insert(rel, target.into_os_string().into_encoded_bytes());
            } else {
                out.insert(rel, std::fs::read(e.path()).expect("read"));
            }
        }
    }
    out
}

fn read(l: &Layers, dir: &ViewDir, path: &str) -> Result<String, Error> {
    let o = OpenOptions {
        read: true,
        follow: true,
        ..OpenOptions::default()
    };
    match l.open_at(dir, path, &o)? {
        Opened::File(f) => {
            let mut buf = vec![0; 1 << 16];
            let n = f.read_at(&mut buf, 0)?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        }
        Opened::Dir(_) => Err(Error::IsDir),
    }
}

fn write(l: &Layers, path: &str, data: &[u8]) -> Result<(), Error> {
    let o = OpenOptions {
        write: true,
        create: true,
        truncate: true,
        follow: true,
        ..OpenOptions::default()
    };
    match l.open_at(&l.root(), path, &o)? {
        Opened::File(f) => f.write_at(data, 0).map(|_| ()),
        Opened::Dir(_) => Err(Error::IsDir),
    }
}

#[test]
fn symlinks_created_in_the_upper_pointing_out_stay_inside() {
    let host = Host::new();
    let before = host.lower_snapshot();
    let l = host.view("a", UpperOptions::default());
    let root = l.root();
    let abs_secret = host.secret_path().to_string_lossy().into_owned();
    let abs_dir = host
        .tmp
        .path()
        .join("secretdir")
        .to_string_lossy()
        .into_owned();
    let targets = [
        "../secret".to_string(),
        "../../secret".to_string(),
        "../../../../../../../../secret".to_string(),
        "/../../secret".to_string(),
        abs_secret.clone(),
        format!("{abs_dir}/secret"),
        "../instances/a/../../secret".to_string(),
    ];
    for (i, target) in targets.iter().enumerate() {
        let name = format!("out{i}");
        l.symlink_at(target, &root, &name).expect("symlink");
        assert!(
            matches!(read(&l, &root, &name), Err(Error::NotFound)),
            "{target} reached something"
        );
        // From inside a directory too, and through the link as a directory.
        let data = l
            .dir(&wrun_rootfs::ViewPath::parse("/data/deep").expect("path"))
            .expect("dir");
        assert!(matches!(
            read(&l, &data, &format!("/{name}")),
            Err(Error::NotFound)
        ));
    }
    l.symlink_at("../../../..", &root, "up").expect("symlink");
    assert!(matches!(read(&l, &root, "up/secret"), Err(Error::NotFound)));
    assert_eq!(
        read(&l, &root, "up/etc/passwd").expect("the view's root"),
        "root:x:0:0\n"
    );
    l.symlink_at(&abs_dir, &root, "hostdir").expect("symlink");
    assert!(l.create_dir_at(&root, "hostdir/new").is_err());
    assert!(matches!(
        read(&l, &root, "hostdir/secret"),
        Err(Error::NotFound)
    ));
    // Writing through them creates files inside the view, if at all.
    for i in 0..targets.len() {
        let name = format!("out{i}");
        let _ = write(&l, &name, b"overwritten");
        match read(&l, &root, &name) {
            Ok(data) => assert_eq!(data, "overwritten"),
            Err(e) => assert!(matches!(e, Error::NotFound), "{e:?}"),
        }
    }
    host.assert_host_untouched(&before);
}

#[test]
fn symlinks_into_another_instances_upper_find_nothing() {
    let host = Host::new();
    let before = host.lower_snapshot();
    let a = host.view("a", UpperOptions::default());
    let b = host.view("b", UpperOptions::default());
    write(&a, "private", b"a's data").expect("write");
    let a_file = host.upper("a").join("private");
    assert!(a_file.exists());
    b.symlink_at(&a_file.to_string_lossy(), &b.root(), "peek")
        .expect("symlink");
    b.symlink_at("../a/private", &b.root(), "peek2")
        .expect("symlink");
    assert!(matches!(read(&b, &b.root(), "peek"), Err(Error::NotFound)));
    assert!(matches!(read(&b, &b.root(), "peek2"), Err(Error::NotFound)));
    assert!(matches!(
        read(&b, &b.root(), "private"),
        Err(Error::NotFound)
    ));
    write(&b, "x", b"b's x").expect("write");
    assert_eq!(
        read(&a, &a.root(), "x").expect("a still sees the lower"),
        "lower x"
    );
    host.assert_host_untouched(&before);
}

#[test]
fn a_symlink_swapped_during_resolution_never_leads_out() {
    let host = Host::new();
    let before = host.lower_snapshot();
    let l = host.view("a", UpperOptions::default());
    let root = l.root();
    l.create_dir_at(&root, "sw").expect("mkdir");
    write(&l, "sw/secret", b"inside").expect("write");
    let tree = host.upper("a");
    let secretdir = host.tmp.path().join("secretdir");
    let stop = Arc::new(AtomicBool::new(false));
    // One thread swaps `sw` between a directory and a symlink, through the
    // view (a second guest thread) and behind its back on the host (what a
    // bug elsewhere could do).
    let swapper = {
        let l = l.clone();
        let stop = stop.clone();
        let tree = tree.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let root = l.root();
                let _ = l.rename_at(&root, "sw", &root, "sw.dir");
                let _ = l.symlink_at(&secretdir.to_string_lossy(), &root, "sw");
                let _ = l.unlink_file_at(&root, "sw");
                let _ = l.rename_at(&root, "sw.dir", &root, "sw");
                if i.is_multiple_of(2) {
                    let _ = std::fs::rename(tree.join("sw"), tree.join("sw.host"));
                    let _ = std::os::unix::fs::symlink(&secretdir, tree.join("sw"));
                    let _ = std::fs::remove_file(tree.join("sw"));
                    let _ = std::fs::rename(tree.join("sw.host"), tree.join("sw"));
                }
                i += 1;
            }
        })
    };
    let mut inside = 0;
    for _ in 0..3000 {
        match read(&l, &root, "sw/secret") {
            Ok(data) => {
                assert_eq!(data, "inside", "read outside the view");
                inside += 1;
            }
            Err(Error::NotFound | Error::NotDir | Error::Loop) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        let _ = write(&l, "sw/secret", b"inside");
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper");
    assert!(inside > 0, "the reader never got through");
    host.assert_host_untouched(&before);
}

#[test]
fn a_hard_link_to_a_lower_file_then_written_leaves_the_lower() {
    let host = Host::new();
    let before = host.lower_snapshot();
    let l = host.view("a", UpperOptions::default());
    let root = l.root();
    l.link_at(&root, "etc/passwd", false, &root, "p2")
        .expect("link");
    write(&l, "p2", b"owned\n").expect("write");
    assert_eq!(read(&l, &root, "etc/passwd").expect("read"), "owned\n");
    // Another instance still sees the image.
    let other = host.view("b", UpperOptions::default());
    assert_eq!(
        read(&other, &other.root(), "etc/passwd").expect("read"),
        "root:x:0:0\n"
    );
    host.assert_host_untouched(&before);
}

#[test]
fn rename_of_a_lower_directory_is_cross_device() {
    let host = Host::new();
    let before = host.lower_snapshot();
    let l = host.view("a", UpperOptions::default());
    let root = l.root();
    assert!(matches!(
        l.rename_at(&root, "data", &root, "moved"),
        Err(Error::CrossDevice)
    ));
    assert!(matches!(
        l.rename_at(&root, "data/deep", &root, "deep"),
        Err(Error::CrossDevice)
    ));
    // Even after a copy-up made the directory exist in the upper too.
    write(&l, "data/deep/g", b"g").expect("write");
    assert!(matches!(
        l.rename_at(&root, "data/deep", &root, "deep"),
        Err(Error::CrossDevice)
    ));
    assert_eq!(read(&l, &root, "data/deep/f").expect("read"), "lower f");
    host.assert_host_untouched(&before);
}

#[test]
fn whiteout_looking_names_are_plain_files() {
    let host = Host::new();
    let before = host.lower_snapshot();
    let l = host.view("a", UpperOptions::default());
    let root = l.root();
    for name in [
        ".wh.x",
        ".wh..wh..opq",
        "data/.wh.deep",
        ".wh.",
        "whiteouts",
        "tree",
        "work",
        "a.whiteouts",
        "a.work",
    ] {
        write(&l, name, name.as_bytes()).expect("create");
        assert_eq!(read(&l, &root, name).expect("read"), name);
    }
    assert_eq!(read(&l, &root, "x").expect("x is not hidden"), "lower x");
    assert_eq!(
        read(&l, &root, "data/deep/f").expect("deep not hidden"),
        "lower f"
    );
    let names: Vec<String> = l
        .read_dir(&root, false)
        .expect("list")
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    for n in [
        ".wh.",
        ".wh..wh..opq",
        ".wh.x",
        "a.whiteouts",
        "a.work",
        "data",
        "etc",
        "tree",
        "whiteouts",
        "work",
        "x",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    // The whiteout journal and the staging area beside the tree are
    // untouched by guest files of their names: a reopen sees no deletion.
    let again = host.view("a", UpperOptions::default());
    assert_eq!(read(&again, &again.root(), "x").expect("read"), "lower x");
    host.assert_host_untouched(&before);
}

#[test]
fn delete_then_recreate() {
    let host = Host::new();
    let before = host.lower_snapshot();
    let l = host.view("a", UpperOptions::default());
    let root = l.root();
    for round in 0..3 {
        l.unlink_file_at(&root, "x").expect("unlink");
        assert!(matches!(read(&l, &root, "x"), Err(Error::NotFound)));
        l.create_dir_at(&root, "x")
            .expect("a directory where the file was");
        assert!(
            l.read_dir(
                &l.dir(&wrun_rootfs::ViewPath::parse("/x").expect("p"))
                    .expect("d"),
                false
            )
            .expect("ls")
            .is_empty()
        );
        l.remove_dir_at(&root, "x").expect("rmdir");
        write(&l, "x", format!("round {round}").as_bytes()).expect("recreate");
        assert_eq!(
            read(&l, &root, "x").expect("read"),
            format!("round {round}")
        );
    }
    l.unlink_file_at(&root, "data/deep/f").expect("unlink");
    l.remove_dir_at(&root, "data/deep").expect("rmdir");
    l.create_dir_at(&root, "data/deep").expect("mkdir");
    assert!(
        matches!(read(&l, &root, "data/deep/f"), Err(Error::NotFound)),
        "opaque"
    );
    host.assert_host_untouched(&before);
}

#[test]
fn a_guest_filling_the_disk_gets_no_space() {
    let host = Host::new();
    std::fs::write(host.lower.join("big"), vec![7u8; 64 * 1024]).expect("write");
    let before = host.lower_snapshot();
    let l = host.view(
        "a",
        UpperOptions {
            size_limit: Some(32 * 1024),
        },
    );
    let root = l.root();
    // A copy-up larger than the limit: refused, nothing half-copied.
    let o = OpenOptions {
        write: true,
        ..OpenOptions::default()
    };
    assert!(matches!(l.open_at(&root, "big", &o), Err(Error::NoSpace)));
    assert!(!host.upper("a").join("big").exists());
    let work = wrun_rootfs::UpperParts::of(&host.upper("a"))
        .expect("parts")
        .work;
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a partial copy was left in {work:?}");
    // Many small files until full.
    let mut written = 0;
    let err = loop {
        match write(&l, &format!("f{written}"), &[1u8; 1000]) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 100, "the limit was not enforced");
    };
    assert!(matches!(err, Error::NoSpace), "{err:?}");
    assert_eq!(err.errno(), 28);
    assert_eq!(written, 32);
    // A sparse extension counts its full size.
    let Opened::File(f) = l
        .open_at(
            &root,
            "f0",
            &OpenOptions {
                write: true,
                ..OpenOptions::default()
            },
        )
        .expect("open")
    else {
        panic!("a file");
    };
    assert!(matches!(f.set_size(1 << 30), Err(Error::NoSpace)));
    assert!(matches!(f.write_at(b"x", 1 << 30), Err(Error::NoSpace)));
    assert!(matches!(f.append(&[0u8; 40_000]), Err(Error::NoSpace)));
    // Freeing space lets writes go on.
    l.unlink_file_at(&root, "f1").expect("unlink");
    write(&l, "again", &[1u8; 1000]).expect("fits after a delete");
    host.assert_host_untouched(&before);
}

#[test]
fn symlink_chains_stop_at_forty() {
    let host = Host::new();
    let l = host.view("a", UpperOptions::default());
    let root = l.root();
    l.symlink_at("etc/passwd", &root, "l0").expect("symlink");
    for i in 1..=40 {
        l.symlink_at(&format!("l{}", i - 1), &root, &format!("l{i}"))
            .expect("symlink");
    }
    assert_eq!(read(&l, &root, "l39").expect("40 links"), "root:x:0:0\n");
    assert!(matches!(read(&l, &root, "l40"), Err(Error::Loop)));
    l.symlink_at("self/x", &root, "self").expect("symlink");
    assert!(matches!(read(&l, &root, "self"), Err(Error::Loop)));
    let long_target = "a/".repeat(2100);
    assert!(matches!(
        l.symlink_at(&long_target, &root, "long"),
        Err(Error::NameTooLong)
    ));
    let long_path = "./".repeat(2100) + "x";
    assert!(matches!(
        read(&l, &root, &long_path),
        Err(Error::NameTooLong)
    ));
}

#[test]
fn a_deep_tree_holds_no_descriptor_per_level() {
    let host = Host::new();
    let l = host.view("a", UpperOptions::default());
    let mut dir = l.root();
    // Deeper than the descriptors this process may open: a view that held
    // one per level would fail with EMFILE.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let lowered = rustix::process::Rlimit {
        current: Some(200),
        maximum: limit.maximum,
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lowered).expect("setrlimit");
    for _ in 0..300 {
        l.create_dir_at(&dir, "d").expect("mkdir");
        let Opened::Dir(d) = l.open_at(&dir, "d", &OpenOptions::default()).expect("open") else {
            panic!("a directory");
        };
        dir = d;
    }
    write_in(&l, &dir, "leaf", b"leaf");
    assert_eq!(read(&l, &dir, "leaf").expect("read"), "leaf");
    assert_eq!(
        read(&l, &dir, "/etc/passwd").expect("absolute from deep"),
        "root:x:0:0\n"
    );
    let count = l.merged_tree().filter(|e| e.is_ok()).count();
    assert!(count > 300);
    let changes = l.changes().expect("diff");
    assert_eq!(changes.len(), 301);
    let mut s = String::new();
    let leaf = l
        .merged_tree()
        .filter_map(Result::ok)
        .find(|e| e.path.file_name() == Some("leaf".as_ref()))
        .expect("leaf");
    l.open_entry(&leaf)
        .expect("open")
        .read_to_string(&mut s)
        .expect("read");
    assert_eq!(s, "leaf");
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).expect("setrlimit");
}

fn write_in(l: &Layers, dir: &ViewDir, path: &str, data: &[u8]) {
    let o = OpenOptions {
        write: true,
        create: true,
        ..OpenOptions::default()
    };
    let Opened::File(f) = l.open_at(dir, path, &o).expect("create") else {
        panic!("a file");
    };
    f.write_at(data, 0).expect("write");
}
