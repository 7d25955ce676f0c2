//! A preview 1 guest (examples/fsh/fsh.wasm) on a writable rootfs
//! (`InstanceSpec::writable_rootfs`): its writes land in the view's upper,
//! the image's lower never changes, and nothing it does reaches outside.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{capture, guest_path, prepare_file, prepare_wat, repo_path, runtime};
use wrun_rootfs::{Layers, UpperOptions};
use wrun_runtime::{InstanceSpec, PreparedModule, RunOutcome, Runtime, RuntimeError};

/// An image's lower, the place of its instances' uppers, and a host
/// secret beside them that no guest may read or change.
struct Fixture {
    dir: tempfile::TempDir,
    rt: Runtime,
    fsh: PreparedModule,
    _scratch: tempfile::TempDir,
}

const SECRET: &[u8] = b"host secret";

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let lower = dir.path().join("lower");
        for d in ["etc/conf", "usr/bin", "emptydir", "data"] {
            std::fs::create_dir_all(lower.join(d)).expect("mkdir");
        }
        std::fs::write(lower.join("etc/motd"), "hello").expect("write");
        std::fs::write(lower.join("etc/conf/a.conf"), "a=1").expect("write");
        std::fs::write(lower.join("etc/old"), "old").expect("write");
        std::fs::write(lower.join("usr/bin/tool"), "tool").expect("write");
        std::fs::write(lower.join("data/big"), vec![7u8; 200 << 10]).expect("write");
        std::fs::write(dir.path().join("secret.txt"), SECRET).expect("write");
        let (rt, scratch) = runtime(4);
        let fsh = prepare_file(&rt, &repo_path("examples/fsh/fsh.wasm"));
        Fixture {
            dir,
            rt,
            fsh,
            _scratch: scratch,
        }
    }

    fn lower(&self) -> PathBuf {
        self.dir.path().join("lower")
    }

    fn upper(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A view over the lower with its upper at `name` (opened afresh, as a
    /// restarted daemon opens it).
    fn view(&self, name: &str, size_limit: Option<u64>) -> Layers {
        let lower = cap_std::fs::Dir::open_ambient_dir(self.lower(), cap_std::ambient_authority())
            .expect("open lower");
        Layers::open(
            Arc::new(lower),
            self.upper(name),
            UpperOptions { size_limit },
        )
        .expect("open view")
    }

    /// Runs fsh with `script` (words split on spaces; `;` between commands)
    /// on the view, and returns its exit code and output.
    fn fsh(&self, view: &Layers, script: &str) -> (RunOutcome, String) {
        self.run(self.spec(script).writable_rootfs(view.clone()))
    }

    fn spec(&self, script: &str) -> InstanceSpec {
        let args = std::iter::once("fsh").chain(script.split(' '));
        InstanceSpec::new(args).rootfs(self.lower())
    }

    fn run(&self, spec: InstanceSpec) -> (RunOutcome, String) {
        let (out, target) = capture();
        let outcome = self
            .rt
            .run_blocking(&self.fsh, spec.stdout(target))
            .expect("run");
        (outcome, out.text())
    }
}

/// Every node under `dir`: path, kind, content or target, permission bits.
fn snapshot(dir: &Path) -> Vec<(String, String, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readdir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let name = path.strip_prefix(dir).expect("under").display().to_string();
            let mode = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                out.push((
                    name,
                    "symlink".into(),
                    target.into_os_string().into_encoded_bytes(),
                    mode,
                ));
            } else if meta.is_dir() {
                stack.push(path);
                out.push((name, "dir".into(), Vec::new(), mode));
            } else {
                out.push((
                    name,
                    "file".into(),
                    std::fs::read(&path).expect("read"),
                    mode,
                ));
            }
        }
    }
    out.sort();
    out
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

#[test]
fn writes_land_in_the_upper_and_the_lower_is_unchanged() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let view = fx.view("upper-a", None);
    assert!(!view.has_upper());

    let (outcome, out) = fx.fsh(
        &view,
        "write /etc/motd changed ; append /etc/motd +more ; write /new.txt new ; \
         mkdir /d ; write /d/f inner ; mv /etc/conf/a.conf /etc/conf/b.conf ; \
         rm /etc/old ; rmdir /emptydir ; ln-s /etc/motd /link ; ln /new.txt /hard ; \
         append /hard +linked ; truncate /usr/bin/tool 2 ; \
         cat /etc/motd ; cat /link ; cat /new.txt ; cat /usr/bin/tool ; readlink /link ; \
         stat /etc/old ; ls /etc/conf",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        lines(&out),
        [
            "changed+more",
            "changed+more",
            "new+linked",
            "to",
            "/etc/motd",
            "stat: error ENOENT",
            "b.conf",
        ]
    );
    assert_eq!(snapshot(&fx.lower()), before, "the lower changed");

    let tree = fx.upper("upper-a");
    assert_eq!(
        std::fs::read(tree.join("etc/motd")).expect("upper motd"),
        b"changed+more"
    );
    assert_eq!(
        std::fs::read(tree.join("new.txt")).expect("upper new"),
        b"new+linked"
    );
    assert_eq!(
        std::fs::read(tree.join("d/f")).expect("upper d/f"),
        b"inner"
    );
    assert_eq!(
        std::fs::read(tree.join("etc/conf/b.conf")).expect("renamed"),
        b"a=1"
    );
    assert_eq!(
        std::fs::read(tree.join("usr/bin/tool")).expect("truncated"),
        b"to"
    );
    assert_eq!(
        std::fs::read_link(tree.join("link")).expect("symlink"),
        Path::new("/etc/motd")
    );
    {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (
            std::fs::metadata(tree.join("new.txt")).expect("new"),
            std::fs::metadata(tree.join("hard")).expect("hard"),
        );
        assert_eq!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "not one hard-linked file"
        );
    }

    // Another instance of the image: a view of its own sees none of it.
    let other = fx.view("upper-b", None);
    let (outcome, out) = fx.fsh(
        &other,
        "cat /etc/motd ; stat /new.txt ; ls /etc/conf ; ls /",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        lines(&out),
        [
            "hello",
            "stat: error ENOENT",
            "a.conf",
            "data/",
            "emptydir/",
            "etc/",
            "usr/"
        ]
    );
    assert!(!other.has_upper(), "reading made an upper");

    // The same upper reopened (a daemon restart) shows every change.
    drop(view);
    let reopened = fx.view("upper-a", None);
    let (outcome, out) = fx.fsh(
        &reopened,
        "cat /etc/motd ; cat /hard ; cat /d/f ; stat /etc/old ; stat /emptydir ; ls /",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        lines(&out),
        [
            "changed+more",
            "new+linked",
            "inner",
            "stat: error ENOENT",
            "stat: error ENOENT",
            "d/",
            "data/",
            "etc/",
            "hard",
            "link@",
            "new.txt",
            "usr/"
        ]
    );
    assert_eq!(snapshot(&fx.lower()), before, "the lower changed");
}

#[test]
fn reads_see_the_lower_and_listings_merge_both_layers() {
    let fx = Fixture::new();
    let view = fx.view("upper", None);
    let (outcome, out) = fx.fsh(
        &view,
        "write /etc/zz z ; mkdir /etc/conf/sub ; rm /etc/old ; \
         cat /etc/conf/a.conf ; stat /data/big ; ls /etc ; tree /etc",
    );
    assert_eq!(outcome, RunOutcome::Exited(0), "{out}");
    assert_eq!(
        lines(&out),
        [
            "a=1",
            &format!("file {}", 200 << 10),
            "conf/",
            "motd",
            "zz",
            "/etc/conf",
            "/etc/conf/a.conf",
            "/etc/conf/sub",
            "/etc/motd",
            "/etc/zz",
        ]
    );
    // Reading the big lower file did not copy it up.
    assert!(!fx.upper("upper").join("data").exists());
}

#[test]
fn copies_and_recursive_removal_work_through_the_view() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let view = fx.view("upper", None);
    let (outcome, out) = fx.fsh(
        &view,
        "cp /data/big /copy ; stat /copy ; rm-r /etc ; stat /etc ; ls / ; mkdir /etc ; ls /etc",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        lines(&out),
        [
            &format!("file {}", 200 << 10),
            "stat: error ENOENT",
            "copy",
            "data/",
            "emptydir/",
            "usr/",
        ]
    );
    assert_eq!(
        std::fs::read(fx.upper("upper").join("copy")).expect("copy"),
        vec![7u8; 200 << 10]
    );
    assert_eq!(snapshot(&fx.lower()), before);
}

#[test]
fn rename_of_a_lower_directory_is_exdev_and_of_an_upper_one_works() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let view = fx.view("upper", None);
    let (outcome, out) = fx.fsh(
        &view,
        "mv /usr /usr2 ; mv /emptydir /e2 ; mkdir-p /new/deep ; write /new/deep/f x ; \
         mv /new /moved ; cat /moved/deep/f ; stat /new ; stat /usr/bin/tool",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        lines(&out),
        [
            "mv: error EXDEV",
            "mv: error EXDEV",
            "x",
            "stat: error ENOENT",
            "file 4"
        ]
    );
    assert_eq!(snapshot(&fx.lower()), before);
}

#[test]
fn guest_names_that_look_like_whiteouts_are_plain_files() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let view = fx.view("upper", None);
    let (outcome, out) = fx.fsh(
        &view,
        "write /etc/.wh.motd x ; write /etc/.wh..wh..opq y ; write /.wh.etc z ; \
         cat /etc/motd ; cat /etc/.wh.motd ; ls /etc",
    );
    assert_eq!(outcome, RunOutcome::Exited(0), "{out}");
    assert_eq!(
        lines(&out),
        [
            "hello",
            "x",
            ".wh..wh..opq",
            ".wh.motd",
            "conf/",
            "motd",
            "old"
        ]
    );
    let tree = fx.upper("upper");
    assert_eq!(
        std::fs::read(tree.join("etc/.wh.motd")).expect("plain"),
        b"x"
    );
    assert_eq!(std::fs::read(tree.join(".wh.etc")).expect("plain"), b"z");
    // A reopened view (the daemon after a restart) is not fooled either.
    drop(view);
    let (_, out) = fx.fsh(&fx.view("upper", None), "cat /etc/motd ; ls /etc/conf");
    assert_eq!(lines(&out), ["hello", "a.conf"]);
    assert_eq!(snapshot(&fx.lower()), before);
}

#[test]
fn guest_symlinks_pointing_out_of_the_view_stay_inside() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let host_dir = fx.dir.path().display().to_string();
    let view = fx.view("upper", None);
    let script = format!(
        "ln-s /../../../.. /up ; ln-s ../../../../.. /etc/rel ; ln-s {host_dir} /abs ; \
         ln-s {host_dir}/secret.txt /abs-file ; \
         cat /up/etc/motd ; cat /etc/rel/etc/motd ; cat /abs/secret.txt ; cat /abs-file ; \
         write /abs-file pwned ; write /up/escaped e ; write /etc/rel/escaped2 e ; \
         ls /up/ ; cat /escaped"
    );
    let (outcome, out) = fx.fsh(&view, &script);
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    let got = lines(&out);
    assert_eq!(
        &got[..4],
        ["hello", "hello", "cat: error ENOENT", "cat: error ENOENT"]
    );
    // Writing through the absolute link made the path inside the view, or
    // failed for want of its parents: never on the host.
    assert!(got[4] == "write: error ENOENT", "{out}");
    assert!(got.contains(&"escaped"), "{out}");
    assert_eq!(got.last(), Some(&"e"), "{out}");
    assert_eq!(
        std::fs::read(fx.dir.path().join("secret.txt")).expect("secret"),
        SECRET
    );
    assert!(!fx.dir.path().join("escaped").exists());
    assert!(!fx.dir.path().join("escaped2").exists());
    assert!(!fx.upper("escaped").exists());
    let tree = fx.upper("upper");
    assert!(tree.join("escaped").is_file() && tree.join("escaped2").is_file());
    assert_eq!(snapshot(&fx.lower()), before);
}

#[test]
fn hard_link_to_a_lower_file_then_written_never_reaches_the_lower() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let view = fx.view("upper", None);
    let (outcome, out) = fx.fsh(
        &view,
        "ln /etc/motd /m2 ; write /m2 through-link ; cat /etc/motd ; cat /m2",
    );
    assert_eq!(outcome, RunOutcome::Exited(0), "{out}");
    assert_eq!(lines(&out), ["through-link", "through-link"]);
    assert_eq!(snapshot(&fx.lower()), before);
}

#[test]
fn a_guest_filling_its_layer_gets_enospc_at_the_size_limit() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let view = fx.view("upper", Some(128 << 10));
    let (outcome, out) = fx.fsh(
        &view,
        "fill /a 100000 ; truncate /data/big 5 ; fill /b 100000 ; write /small ok ; \
         cat /small ; rm /a ; fill /c 100000 ; stat /c",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    // Copying the 200 KiB lower file up does not fit at all, nor a second
    // fill; a small write still does, and a deletion gives the room back.
    assert_eq!(
        lines(&out),
        [
            "truncate: error ENOSPC",
            "fill: error ENOSPC",
            "ok",
            "file 100000"
        ]
    );
    assert!(view.upper_usage() <= 128 << 10, "{}", view.upper_usage());
    assert_eq!(snapshot(&fx.lower()), before);
}

#[test]
fn without_a_view_the_rootfs_stays_read_only() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let (outcome, out) =
        fx.run(fx.spec("write /etc/motd x ; mkdir /d ; rm /etc/old ; cat /etc/motd"));
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    let got = lines(&out);
    assert_eq!(got.len(), 4, "{out}");
    for (line, cmd) in got.iter().zip(["write", "mkdir", "rm"]) {
        assert!(line.starts_with(&format!("{cmd}: error ")), "{out}");
    }
    assert_eq!(got[3], "hello");
    assert_eq!(snapshot(&fx.lower()), before);
}

/// What `--read-only` gives a guest (dockerd's read-only overlay mount):
/// every change EROFS, reads as before. The same script and lines in
/// rootfs_p2.rs.
const READ_ONLY_SCRIPT: &str = "write /etc/motd x ; write /new y ; append /etc/motd z ; \
     rm /etc/old ; rm /missing ; mkdir /x ; mkdir /etc ; rmdir /emptydir ; mv /etc/old /etc/o ; \
     rm-r /etc/conf ; ln-s /etc/motd /l ; ln /etc/motd /h ; truncate /etc/motd 0 ; \
     cat /etc/motd ; ls /";

const READ_ONLY_LINES: [&str; 18] = [
    "write: error EROFS",
    "write: error EROFS",
    "append: error EROFS",
    "rm: error EROFS",
    "rm: error EROFS",
    "mkdir: error EROFS",
    "mkdir: error EEXIST",
    "rmdir: error EROFS",
    "mv: error EROFS",
    "rm-r: error EROFS",
    "ln-s: error EROFS",
    "ln: error EROFS",
    "truncate: error EROFS",
    "hello",
    "data/",
    "emptydir/",
    "etc/",
    "usr/",
];

#[test]
fn a_read_only_view_gives_erofs_for_every_change_as_a_read_only_mount() {
    let fx = Fixture::new();
    let before = snapshot(&fx.lower());
    let lower = cap_std::fs::Dir::open_ambient_dir(fx.lower(), cap_std::ambient_authority())
        .expect("open lower");
    let view = Layers::open_read_only(Arc::new(lower), fx.upper("upper")).expect("view");
    let (outcome, out) = fx.fsh(&view, READ_ONLY_SCRIPT);
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(lines(&out), READ_ONLY_LINES, "{out}");
    assert!(!fx.upper("upper").exists(), "no upper made");
    assert_eq!(snapshot(&fx.lower()), before);
}

/// A `:ro` volume or bind (dockerd's read-only bind mount): every change
/// EROFS, a rename to a writable volume EXDEV, reads as before; with a
/// view and without one. The same script and lines in rootfs_p2.rs.
#[test]
fn a_read_only_volume_gives_erofs_for_every_change_as_a_read_only_mount() {
    let fx = Fixture::new();
    let (ro, rw) = (fx.dir.path().join("ro"), fx.dir.path().join("rw"));
    std::fs::create_dir_all(ro.join("sub")).expect("mkdir");
    std::fs::create_dir_all(ro.join("empty")).expect("mkdir");
    std::fs::create_dir(&rw).expect("mkdir");
    std::fs::write(ro.join("kept.txt"), "kept").expect("write");
    std::fs::write(ro.join("sub/in.txt"), "in").expect("write");
    let before = snapshot(&ro);
    let script = "write /ro/kept.txt x ; write /ro/new y ; \
         append /ro/kept.txt z ; rm /ro/kept.txt ; mkdir /ro/x ; rmdir /ro/empty ; \
         mv /ro/kept.txt /ro/k ; mv /ro/kept.txt /rw/k ; rm-r /ro/sub ; ln-s /ro/kept.txt /ro/l ; \
         ln /ro/kept.txt /ro/h ; truncate /ro/kept.txt 0 ; cat /ro/kept.txt ; ls /ro";
    let expected = [
        "write: error EROFS",
        "write: error EROFS",
        "append: error EROFS",
        "rm: error EROFS",
        "mkdir: error EROFS",
        "rmdir: error EROFS",
        "mv: error EROFS",
        "mv: error EXDEV",
        "rm-r: error EROFS",
        "ln-s: error EROFS",
        "ln: error EROFS",
        "truncate: error EROFS",
        "kept",
        "empty/",
        "kept.txt",
        "sub/",
    ];
    for with_view in [true, false] {
        let mut spec = fx
            .spec(script)
            .tmp(true)
            .volume(&rw, "/rw", false)
            .volume(&ro, "/ro", true);
        if with_view {
            spec = spec.writable_rootfs(fx.view("upper", None));
        }
        let (outcome, out) = fx.run(spec);
        assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
        assert_eq!(lines(&out), expected, "view: {with_view}\n{out}");
        assert_eq!(snapshot(&ro), before);
        assert_eq!(std::fs::read_dir(&rw).expect("rw").count(), 0);
    }
}

#[test]
fn a_guest_listing_every_fd_sees_only_stdio_and_its_declared_mounts_with_a_view() {
    let fx = Fixture::new();
    let attack = prepare_file(&fx.rt, &guest_path("fs-attack"));
    let vol = fx.dir.path().join("vol");
    std::fs::create_dir(&vol).expect("mkdir");
    let spec = InstanceSpec::new(["fs-attack", "list-fds"])
        .rootfs(fx.lower())
        .tmp(true)
        .volume(&vol, "/data", true)
        .writable_rootfs(fx.view("upper", None));
    let (out, target) = capture();
    let outcome = fx
        .rt
        .run_blocking(&attack, spec.stdout(target))
        .expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0), "{}", out.text());
    assert_eq!(
        lines(&out.text()),
        [
            "fd 0",
            "fd 1",
            "fd 2",
            "fd 3 preopen /",
            "fd 4 preopen /tmp",
            "fd 5 preopen /data"
        ]
    );
}

#[test]
fn a_view_without_the_rootfs_it_covers_is_refused() {
    let fx = Fixture::new();
    let spec = InstanceSpec::new(["fsh", "ls", "/"]).writable_rootfs(fx.view("upper", None));
    let err = fx
        .rt
        .run_blocking(&fx.fsh, spec)
        .expect_err("ran a view without its rootfs");
    assert!(matches!(err, RuntimeError::InvalidSpec { .. }), "{err}");
}

#[test]
fn a_view_that_is_only_read_creates_no_upper() {
    let fx = Fixture::new();
    let view = fx.view("upper", None);
    let (outcome, out) = fx.fsh(
        &view,
        "ls / ; tree /etc ; cat /data/big ; stat /usr/bin/tool",
    );
    assert_eq!(outcome, RunOutcome::Exited(0), "{out}");
    assert!(!fx.upper("upper").exists(), "reading created the upper");
}

#[test]
fn volumes_and_tmp_beside_the_view_are_the_host_s_and_renames_across_are_exdev() {
    let fx = Fixture::new();
    let vol = fx.dir.path().join("vol");
    std::fs::create_dir(&vol).expect("mkdir");
    std::fs::write(vol.join("v.txt"), "volume").expect("write");
    let view = fx.view("upper", None);
    let spec = fx
        .spec(
            "write /etc/motd view ; write /vol/w.txt written ; cat /vol/v.txt ; \
             write /tmp/t x ; cat /tmp/t ; cat /etc/motd ; \
             mv /vol/v.txt /moved ; mv /etc/motd /vol/motd ; ln /vol/v.txt /l ; ls /",
        )
        .volume(&vol, "/vol", false)
        .tmp(true)
        .writable_rootfs(view.clone());
    let (outcome, out) = fx.run(spec);
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        lines(&out),
        [
            "volume",
            "x",
            "view",
            "mv: error EXDEV",
            "mv: error EXDEV",
            "ln: error EXDEV",
            "data/",
            "emptydir/",
            "etc/",
            "usr/",
        ]
    );
    assert_eq!(
        std::fs::read(vol.join("w.txt")).expect("volume write"),
        b"written"
    );
    let tree = fx.upper("upper");
    assert_eq!(
        std::fs::read(tree.join("etc/motd")).expect("upper"),
        b"view"
    );
    assert!(!tree.join("vol").exists() && !tree.join("tmp").exists());
}

/// Raw preview 1 calls the file shell does not make: a guest opening files
/// in a loop, `fd_renumber` within and across the view, `fd_close` of the
/// root. The exit code says which step failed (0: all as expected).
const RAW_CALLS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "etc/motd")
  (data (i32.const 32) "etc")
  ;; iovec at 64: 16 bytes at 128; bytes read at 96
  (data (i32.const 64) "\80\00\00\00\10\00\00\00")
  (func $open_motd (result i32)
    (call $open (i32.const 3) (i32.const 1) (i32.const 16) (i32.const 8) (i32.const 0)
      (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8)))
  (func $open_etc (result i32)
    (call $open (i32.const 3) (i32.const 1) (i32.const 32) (i32.const 3) (i32.const 2)
      (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8)))
  (func $check (param $got i32) (param $want i32) (param $step i32)
    (if (i32.ne (local.get $got) (local.get $want)) (then (call $exit (local.get $step)))))
  (func (export "_start") (local $i i32) (local $first i32) (local $second i32)
    ;; The first descriptor under the view is 1<<30, the next 1<<30 + 1.
    (call $check (call $open_motd) (i32.const 0) (i32.const 10))
    (local.set $first (i32.load (i32.const 8)))
    (call $check (local.get $first) (i32.const 0x40000000) (i32.const 11))
    (call $check (call $open_motd) (i32.const 0) (i32.const 12))
    (local.set $second (i32.load (i32.const 8)))
    (call $check (local.get $second) (i32.const 0x40000001) (i32.const 13))
    ;; Renumber within the view: the second now names the first's file.
    (call $check (call $renumber (local.get $first) (local.get $second)) (i32.const 0) (i32.const 20))
    (call $check (call $read (local.get $second) (i32.const 64) (i32.const 1) (i32.const 96))
      (i32.const 0) (i32.const 21))
    (call $check (i32.load (i32.const 96)) (i32.const 5) (i32.const 22))
    (call $check (call $close (local.get $first)) (i32.const 8) (i32.const 23)) ;; EBADF: moved
    ;; Across the two tables: ENOTSUP; onto a number nobody has: EBADF.
    (call $check (call $renumber (local.get $second) (i32.const 1)) (i32.const 58) (i32.const 30))
    (call $check (call $renumber (local.get $second) (i32.const 77)) (i32.const 8) (i32.const 31))
    (call $check (call $close (local.get $second)) (i32.const 0) (i32.const 32))
    ;; Opening in a loop stops at the per-instance cap with EMFILE (33)
    ;; (directories: they cost the host no descriptor, so the test process's
    ;; own limit cannot be what stops it).
    (block $done
      (loop $more
        (local.set $first (call $open_etc))
        (br_if $done (i32.ne (local.get $first) (i32.const 0)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $more (i32.lt_u (local.get $i) (i32.const 100000)))))
    (call $check (local.get $first) (i32.const 33) (i32.const 40))
    (call $check (local.get $i) (i32.const 1024) (i32.const 41))
    ;; Closing the root: it is gone for path calls too.
    (call $check (call $close (i32.const 3)) (i32.const 0) (i32.const 50))
    (call $check (call $open_motd) (i32.const 8) (i32.const 51))
    (call $exit (i32.const 0))))
"#;

#[test]
fn raw_calls_renumber_close_and_a_guest_opening_files_in_a_loop() {
    let fx = Fixture::new();
    let module = prepare_wat(&fx.rt, RAW_CALLS);
    let view = fx.view("upper", None);
    let spec = fx.spec("").writable_rootfs(view);
    let outcome = fx.rt.run_blocking(&module, spec).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
}

/// Every preview 1 call on a file and a directory of the view, as C and
/// other libcs make them (fsh, on Rust's std, does not make all of them).
/// The exit code says which step failed (0: all as expected).
const FILE_CALLS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_tell" (func $tell (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $ftruncate (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_times" (func $futimes (param i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $setfl (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_sync" (func $sync (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_datasync" (func $datasync (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_advise" (func $advise (param i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_allocate" (func $allocate (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_readlink" (func $readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_set_times"
    (func $utimes (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "file")
  (data (i32.const 24) ".")
  (data (i32.const 32) "abcZq")
  ;; iovecs: "abc" at 64, "Z" at 72, "q" at 80, a 64-byte read buffer at 88
  (data (i32.const 64) "\20\00\00\00\03\00\00\00\23\00\00\00\01\00\00\00\24\00\00\00\01\00\00\00\00\02\00\00\40\00\00\00")
  (func $check (param $got i32) (param $want i32) (param $step i32)
    (if (i32.ne (local.get $got) (local.get $want)) (then (call $exit (local.get $step)))))
  (func $check64 (param $got i64) (param $want i64) (param $step i32)
    (if (i64.ne (local.get $got) (local.get $want)) (then (call $exit (local.get $step)))))
  (func (export "_start") (local $fd i32)
    ;; Create /file for reading and writing (rights FD_READ | FD_WRITE).
    (call $check (call $open (i32.const 3) (i32.const 1) (i32.const 16) (i32.const 4)
      (i32.const 1) (i64.const 66) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 0) (i32.const 10))
    (local.set $fd (i32.load (i32.const 0)))
    (call $check (call $write (local.get $fd) (i32.const 64) (i32.const 1) (i32.const 0)) (i32.const 0) (i32.const 11))
    (call $check (i32.load (i32.const 0)) (i32.const 3) (i32.const 12))
    (call $check (call $tell (local.get $fd) (i32.const 0)) (i32.const 0) (i32.const 13))
    (call $check64 (i64.load (i32.const 0)) (i64.const 3) (i32.const 14))
    ;; Seek back and read; pwrite "Z" at 1 and pread from 0: "aZc".
    (call $check (call $seek (local.get $fd) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 0) (i32.const 20))
    (call $check (call $read (local.get $fd) (i32.const 88) (i32.const 1) (i32.const 0)) (i32.const 0) (i32.const 21))
    (call $check (i32.load (i32.const 0)) (i32.const 3) (i32.const 22))
    (call $check (i32.load (i32.const 512)) (i32.const 0x636261) (i32.const 23))
    (call $check (call $pwrite (local.get $fd) (i32.const 72) (i32.const 1) (i64.const 1) (i32.const 0)) (i32.const 0) (i32.const 24))
    (call $check (call $pread (local.get $fd) (i32.const 88) (i32.const 1) (i64.const 0) (i32.const 0)) (i32.const 0) (i32.const 25))
    (call $check (i32.load (i32.const 512)) (i32.const 0x635a61) (i32.const 26))
    (call $check (call $tell (local.get $fd) (i32.const 0)) (i32.const 0) (i32.const 27))
    (call $check64 (i64.load (i32.const 0)) (i64.const 3) (i32.const 28))
    (call $check (call $seek (local.get $fd) (i64.const -1) (i32.const 2) (i32.const 0)) (i32.const 0) (i32.const 29))
    (call $check64 (i64.load (i32.const 0)) (i64.const 2) (i32.const 30))
    ;; fstat: a regular file (4) of 3 bytes; truncate to 1.
    (call $check (call $fstat (local.get $fd) (i32.const 256)) (i32.const 0) (i32.const 31))
    (call $check (i32.load8_u (i32.const 272)) (i32.const 4) (i32.const 32))
    (call $check64 (i64.load (i32.const 288)) (i64.const 3) (i32.const 33))
    (call $check (call $ftruncate (local.get $fd) (i64.const 1)) (i32.const 0) (i32.const 34))
    (call $check (call $fstat (local.get $fd) (i32.const 256)) (i32.const 0) (i32.const 35))
    (call $check64 (i64.load (i32.const 288)) (i64.const 1) (i32.const 36))
    ;; fdstat: a regular file, no flags, FD_READ and FD_WRITE among the rights.
    (call $check (call $fdstat (local.get $fd) (i32.const 256)) (i32.const 0) (i32.const 40))
    (call $check (i32.load8_u (i32.const 256)) (i32.const 4) (i32.const 41))
    (call $check (i32.load16_u (i32.const 258)) (i32.const 0) (i32.const 42))
    (call $check64 (i64.and (i64.load (i32.const 264)) (i64.const 66)) (i64.const 66) (i32.const 43))
    ;; O_APPEND set later: a write goes to the end whatever the offset.
    (call $check (call $setfl (local.get $fd) (i32.const 1)) (i32.const 0) (i32.const 44))
    (call $check (call $setfl (local.get $fd) (i32.const 16)) (i32.const 28) (i32.const 45))
    (call $check (call $seek (local.get $fd) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 0) (i32.const 46))
    (call $check (call $write (local.get $fd) (i32.const 80) (i32.const 1) (i32.const 0)) (i32.const 0) (i32.const 47))
    (call $check (call $tell (local.get $fd) (i32.const 0)) (i32.const 0) (i32.const 48))
    (call $check64 (i64.load (i32.const 0)) (i64.const 2) (i32.const 49))
    (call $check (call $fdstat (local.get $fd) (i32.const 256)) (i32.const 0) (i32.const 50))
    (call $check (i32.load16_u (i32.const 258)) (i32.const 1) (i32.const 51))
    ;; Times: mtime set to 1,000 s after the epoch, seen by path_filestat_get.
    (call $check (call $futimes (local.get $fd) (i64.const 0) (i64.const 1000000000000) (i32.const 4)) (i32.const 0) (i32.const 52))
    (call $check (call $futimes (local.get $fd) (i64.const 0) (i64.const 0) (i32.const 12)) (i32.const 28) (i32.const 53))
    (call $check (call $stat (i32.const 3) (i32.const 1) (i32.const 16) (i32.const 4) (i32.const 256)) (i32.const 0) (i32.const 54))
    (call $check64 (i64.load (i32.const 304)) (i64.const 1000000000000) (i32.const 55))
    (call $check64 (i64.load (i32.const 288)) (i64.const 2) (i32.const 56))
    (call $check (call $utimes (i32.const 3) (i32.const 1) (i32.const 16) (i32.const 4)
      (i64.const 0) (i64.const 2000000000000) (i32.const 4)) (i32.const 0) (i32.const 57))
    (call $check (call $stat (i32.const 3) (i32.const 1) (i32.const 16) (i32.const 4) (i32.const 256)) (i32.const 0) (i32.const 58))
    (call $check64 (i64.load (i32.const 304)) (i64.const 2000000000000) (i32.const 59))
    ;; sync, datasync, advise accepted; allocate ENOTSUP as wasmtime-wasi.
    (call $check (call $sync (local.get $fd)) (i32.const 0) (i32.const 60))
    (call $check (call $datasync (local.get $fd)) (i32.const 0) (i32.const 61))
    (call $check (call $advise (local.get $fd) (i64.const 0) (i64.const 0) (i32.const 0)) (i32.const 0) (i32.const 62))
    (call $check (call $allocate (local.get $fd) (i64.const 0) (i64.const 9)) (i32.const 58) (i32.const 63))
    ;; poll: reading the file is ready at once, with 2 bytes left from 0.
    (call $check (call $seek (local.get $fd) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 0) (i32.const 70))
    (i64.store (i32.const 1024) (i64.const 42))
    (i32.store8 (i32.const 1032) (i32.const 1))
    (i32.store (i32.const 1040) (local.get $fd))
    (call $check (call $poll (i32.const 1024) (i32.const 1152) (i32.const 1) (i32.const 0)) (i32.const 0) (i32.const 71))
    (call $check (i32.load (i32.const 0)) (i32.const 1) (i32.const 72))
    (call $check64 (i64.load (i32.const 1152)) (i64.const 42) (i32.const 73))
    (call $check64 (i64.load (i32.const 1168)) (i64.const 2) (i32.const 74))
    ;; A file is no directory: path calls on it and O_DIRECTORY fail.
    (call $check (call $open (local.get $fd) (i32.const 0) (i32.const 24) (i32.const 1)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 54) (i32.const 80))
    (call $check (call $mkdir (local.get $fd) (i32.const 24) (i32.const 1)) (i32.const 8) (i32.const 81))
    (call $check (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 4)
      (i32.const 2) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 54) (i32.const 82))
    (call $check (call $readlink (i32.const 3) (i32.const 16) (i32.const 4) (i32.const 512) (i32.const 64) (i32.const 0))
      (i32.const 28) (i32.const 83))
    (call $check (call $readdir (local.get $fd) (i32.const 2048) (i32.const 1024) (i64.const 0) (i32.const 0))
      (i32.const 8) (i32.const 84))
    ;; The root: a directory (3) to path_filestat_get "." and fd_filestat_get.
    (call $check (call $stat (i32.const 3) (i32.const 0) (i32.const 24) (i32.const 1) (i32.const 256)) (i32.const 0) (i32.const 90))
    (call $check (i32.load8_u (i32.const 272)) (i32.const 3) (i32.const 91))
    (call $check (call $fstat (i32.const 3) (i32.const 256)) (i32.const 0) (i32.const 92))
    (call $check (i32.load8_u (i32.const 272)) (i32.const 3) (i32.const 93))
    (call $exit (i32.const 0))))
"#;

#[test]
fn every_file_call_on_the_view_answers_as_on_a_host_file() {
    let fx = Fixture::new();
    let module = prepare_wat(&fx.rt, FILE_CALLS);
    let view = fx.view("upper", None);
    let outcome = fx
        .rt
        .run_blocking(&module, fx.spec("").writable_rootfs(view.clone()))
        .expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(
        std::fs::read(fx.upper("upper").join("file")).expect("upper"),
        b"aq"
    );
    assert!(!fx.lower().join("file").exists());
}
