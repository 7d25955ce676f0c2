//! The store is private to its owner: what wrun writes there (image
//! records, blobs, the instance journal with every `-e` value, logs, the
//! module cache) is 0600 in 0700 directories, an older loose store is
//! tightened when opened, and a snapshot changed behind wrun's back is
//! found out and repaired by the next load or build of its image.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, Env, HELLO_DIR};

/// Every process the tests start inherits umask 0, so a file or directory
/// created without an explicit private mode shows up as world-readable.
fn no_umask() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        rustix::process::umask(rustix::fs::Mode::empty());
    });
}

/// Every path under `root` (root included) whose mode lets group or
/// others in, except a snapshot's rootfs tree (the image's own modes,
/// which guests see).
fn loose_paths(root: &Path) -> Vec<String> {
    let mut loose = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() || is_rootfs(&path) {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            loose.push(format!("{mode:o} {}", path.display()));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    loose.sort();
    loose
}

fn is_rootfs(path: &Path) -> bool {
    path.ends_with("rootfs")
        && path
            .parent()
            .and_then(Path::parent)
            .is_some_and(|p| p.ends_with("snapshots"))
}

fn snapshot_rootfs(env: &Env) -> PathBuf {
    let snapshots: Vec<PathBuf> = std::fs::read_dir(env.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(snapshots.len(), 1, "one image, one snapshot: {snapshots:?}");
    snapshots[0].join("rootfs")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn a_store_used_by_build_load_run_and_the_daemon_lets_no_one_else_in() {
    no_umask();
    let env = Env::new();
    env.build_hello("hello:1");
    let tar = env.path("hello.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "hello:1"]);
    env.ok(&["rmi", "hello:1"]);
    env.ok(&["load", "-i", tar.to_str().unwrap()]);
    env.ok(&["run", "--rm", "hello:1"]);

    let d = Daemon::start(env);
    let id = d
        .wrun_ok(&["run", "-d", "-e", "SECRET=hunter2", "hello:1"])
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !d.wrun_ok(&["logs", &id]).contains("Hello") {
        assert!(Instant::now() < deadline, "the instance never logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    let root = d.env.root();
    // What the issue found readable by anyone: the journal with the -e
    // values, and the image records.
    let journal = root.join("containers/records.journal");
    assert!(
        std::fs::read_to_string(&journal)
            .unwrap()
            .contains("hunter2"),
        "the test reads the journal it means"
    );
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(&root.join("images.json")), 0o600);
    assert_eq!(mode(&root), 0o700);
    assert_eq!(loose_paths(&root), Vec::<String>::new());
    // The guest's view keeps the image's modes: hello.wasm is 0755 in it.
    assert_eq!(mode(&snapshot_rootfs(&d.env).join("hello.wasm")), 0o755);
}

#[test]
fn an_old_loose_store_is_tightened_when_opened() {
    no_umask();
    let env = Env::with_image("hello:1", HELLO_DIR);
    let root = env.root();
    // The store as an older wrun left it: 0755 directories, 0644 files;
    // the rootfs as the image has it, and a file of the user's in the root.
    let rootfs = snapshot_rootfs(&env);
    std::fs::write(root.join("notes.txt"), b"the user's own").unwrap();
    std::fs::create_dir_all(root.join("containers/logs")).unwrap();
    std::fs::write(root.join("containers/records.journal"), b"").unwrap();
    let mut stack = vec![root.clone()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let loose = if meta.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    std::fs::set_permissions(
        rootfs.join("hello.wasm"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert!(loose_paths(&root).len() > 10, "the store was made loose");

    env.ok(&["images"]);

    let left: Vec<String> = loose_paths(&root)
        .into_iter()
        .filter(|p| !p.ends_with("notes.txt"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(mode(&root.join("containers/records.journal")), 0o600);
    assert_eq!(
        mode(&root.join("notes.txt")),
        0o644,
        "a file wrun does not own is left alone"
    );
    assert_eq!(mode(&rootfs), 0o755, "the guest's / keeps its mode");
    assert_eq!(mode(&rootfs.join("hello.wasm")), 0o755);
    // And it still works.
    assert!(env.ok(&["run", "--rm", "hello:1"]).contains("Hello"));
}

#[test]
fn a_damaged_snapshot_says_so_and_build_or_load_repairs_it() {
    no_umask();
    let env = Env::with_image("hello:1", HELLO_DIR);
    let tar = env.path("hello.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "hello:1"]);
    let module = snapshot_rootfs(&env).join("hello.wasm");
    // Compiled code cached under the image's digest would still run: the
    // damage shows when the module is read again.
    let forget_compiled = || {
        let _ = std::fs::remove_dir_all(env.root().join("cache/modules"));
    };
    let damage = |bytes: &[u8]| {
        std::fs::write(&module, bytes).unwrap();
        forget_compiled();
    };
    let fails_as_damaged = || {
        let out = env.run(&["run", "--rm", "hello:1"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(126), "{stderr}");
        assert!(
            stderr.contains("the snapshot of image")
                && stderr.contains("is damaged")
                && stderr.contains("`wrun load` or `wrun build`"),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    };
    let runs = || assert!(env.ok(&["run", "--rm", "hello:1"]).contains("Hello"));

    // Overwritten with garbage: before, every run failed with 126 and a
    // rebuild of the same image skipped the existing snapshot.
    damage(b"not wasm at all");
    fails_as_damaged();
    env.build_hello("hello:1");
    runs();

    // Removed, and a file planted beside it: a load of the same image
    // brings the snapshot back as it was unpacked.
    std::fs::remove_file(&module).unwrap();
    forget_compiled();
    let planted = module.with_file_name("planted");
    std::fs::write(&planted, b"x").unwrap();
    fails_as_damaged();
    env.ok(&["load", "-i", tar.to_str().unwrap()]);
    runs();
    assert!(
        !planted.exists(),
        "the repaired snapshot is the image's own"
    );

    // Another valid module put in its place is never compiled as the
    // image's (the compiled cache is keyed by the image's digest).
    let other = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
    damage(&other);
    fails_as_damaged();
    env.build_hello("hello:1");
    runs();
    // Nothing of the repairs is left in the staging area.
    assert_eq!(
        std::fs::read_dir(env.root().join("tmp")).unwrap().count(),
        0,
        "staging areas left behind"
    );
}

#[test]
fn an_older_snapshot_without_a_digest_is_kept_when_intact_and_replaced_when_not() {
    use std::os::unix::fs::MetadataExt;
    no_umask();
    let env = Env::with_image("hello:1", HELLO_DIR);
    let rootfs = snapshot_rootfs(&env);
    let meta_path = rootfs.with_file_name("meta.json");
    // What an older wrun wrote: the layers, no rootfs digest.
    let strip_digest = || {
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        assert!(meta["rootfs_digest"].is_string(), "{meta}");
        meta.as_object_mut().unwrap().remove("rootfs_digest");
        std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    };
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();

    strip_digest();
    let before = inode(&rootfs);
    env.build_hello("hello:1");
    assert_eq!(inode(&rootfs), before, "an intact snapshot was swapped");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert!(
        meta["rootfs_digest"].is_string(),
        "no digest recorded: {meta}"
    );

    strip_digest();
    std::fs::write(rootfs.join("planted"), b"x").unwrap();
    env.build_hello("hello:1");
    assert_ne!(inode(&rootfs), before, "a changed snapshot was kept");
    assert!(!rootfs.join("planted").exists());
    assert!(env.ok(&["run", "--rm", "hello:1"]).contains("Hello"));
}
