//! A component's writable rootfs: `examples/fsh` built as a WASI 0.2
//! component, run through the runtime's public API with
//! `InstanceSpec::writable_rootfs`, sees a `wrun_rootfs::Layers` as its
//! `/` through `wasi:filesystem`. Every test checks the image's directory
//! (the lower) byte for byte afterwards.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use common::{capture, prepare_file, repo_path, runtime};
use wrun_rootfs::{Layers, UpperOptions};
use wrun_runtime::{InstanceSpec, PreparedModule, RunOutcome, Runtime, RuntimeError};

/// An image rootfs: files, a directory with contents, a symlink.
fn image() -> tempfile::TempDir {
    let lower = tempfile::tempdir().expect("tempdir");
    let p = lower.path();
    for dir in ["etc", "usr/lib/pkg", "bin", "empty"] {
        std::fs::create_dir_all(p.join(dir)).expect("mkdir");
    }
    std::fs::write(p.join("etc/motd"), "hello from the image").expect("write");
    std::fs::write(p.join("etc/hostname"), "image").expect("write");
    std::fs::write(p.join("usr/lib/pkg/data"), "data").expect("write");
    std::fs::write(p.join("bin/tool"), "tool").expect("write");
    std::os::unix::fs::symlink("/etc/motd", p.join("etc/motd.link")).expect("symlink");
    lower
}

/// Everything under `dir`: kind, data or target, permission bits.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readdir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let name = path
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            let mode = meta.permissions().mode() & 0o7777;
            let what = if meta.is_dir() {
                stack.push(path);
                "dir".to_owned()
            } else if meta.file_type().is_symlink() {
                format!(
                    "-> {}",
                    std::fs::read_link(&path).expect("readlink").display()
                )
            } else {
                String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned()
            };
            out.insert(name, format!("{mode:o} {what}"));
        }
    }
    out
}

/// The view of `lower` whose upper is `upper` (created on its first write).
fn view(lower: &Path, upper: &Path, size_limit: Option<u64>) -> Layers {
    let dir = cap_std::fs::Dir::open_ambient_dir(lower, cap_std::ambient_authority())
        .expect("open lower");
    Layers::open(Arc::new(dir), upper, UpperOptions { size_limit }).expect("open view")
}

struct Fsh {
    rt: Runtime,
    module: PreparedModule,
    _scratch: tempfile::TempDir,
}

impl Fsh {
    fn new() -> Fsh {
        let (rt, scratch) = runtime(4);
        let module = prepare_file(&rt, &repo_path("examples/fsh/fsh-component.wasm"));
        Fsh {
            rt,
            module,
            _scratch: scratch,
        }
    }

    /// Runs a script (commands split at `;`) over `spec`; its exit code and
    /// output.
    fn run(&self, spec: InstanceSpec, script: &str) -> (RunOutcome, String) {
        let (out, target) = capture();
        let mut spec = spec.stdout(target);
        spec.args = std::iter::once("fsh")
            .chain(script.split(' '))
            .map(str::to_owned)
            .collect();
        let outcome = self.rt.run_blocking(&self.module, spec).expect("run");
        (outcome, out.text())
    }

    /// Runs a script that must succeed; its output.
    fn ok(&self, spec: InstanceSpec, script: &str) -> String {
        let (outcome, out) = self.run(spec, script);
        assert_eq!(outcome, RunOutcome::Exited(0), "{script}\n{out}");
        out
    }
}

fn on(lower: &Path, layers: &Layers) -> InstanceSpec {
    InstanceSpec::default()
        .rootfs(lower)
        .writable_rootfs(layers.clone())
}

#[test]
fn changes_land_in_the_upper_and_only_its_own_view_sees_them() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let store = tempfile::tempdir().expect("tempdir");
    let upper = store.path().join("upper");
    let layers = view(lower.path(), &upper, None);

    let out = fsh.ok(
        on(lower.path(), &layers),
        "write /etc/motd changed ; append /etc/motd +more ; cat /etc/motd \
         ; mkdir /new ; write /new/file created ; mv /etc/hostname /etc/renamed \
         ; rm /bin/tool ; mkdir /gone ; rmdir /gone ; rmdir /empty \
         ; ln-s /new/file /new/link ; readlink /new/link ; cat /new/link \
         ; ln /usr/lib/pkg/data /hard ; append /hard +linked ; cat /usr/lib/pkg/data \
         ; truncate /etc/renamed 2 ; cat /etc/renamed",
    );
    assert_eq!(
        out, "changed+more\n/new/file\ncreated\ndata+linked\nim\n",
        "what the guest read back"
    );
    assert_eq!(snapshot(lower.path()), before, "the image is unchanged");
    assert!(layers.has_upper());
    let tree = &upper;
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/motd")).expect("upper motd"),
        "changed+more"
    );
    assert_eq!(
        std::fs::read_to_string(tree.join("new/file")).expect("upper file"),
        "created"
    );
    assert_eq!(
        std::fs::read_link(tree.join("new/link")).expect("upper link"),
        Path::new("/new/file")
    );

    // Another instance of the image, with its own upper, sees the image.
    let other = view(lower.path(), &store.path().join("other"), None);
    let (outcome, out) = fsh.run(
        on(lower.path(), &other),
        "cat /etc/motd ; cat /etc/hostname ; cat /bin/tool ; stat /new ; ls /empty",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out, "hello from the image\nimage\ntool\nstat: error ENOENT\n",
        "the other view"
    );
    assert!(!other.has_upper(), "reading made no upper");

    // The same upper opened again (a restarted daemon) is the same view.
    let reopened = view(lower.path(), &upper, None);
    let (outcome, out) = fsh.run(
        on(lower.path(), &reopened),
        "cat /etc/motd ; cat /etc/renamed ; stat /etc/hostname ; stat /bin/tool \
         ; stat /empty ; cat /hard ; readlink /new/link",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out,
        "changed+more\nim\nstat: error ENOENT\nstat: error ENOENT\nstat: error ENOENT\n\
         data+linked\n/new/file\n"
    );
    assert_eq!(snapshot(lower.path()), before, "the image is unchanged");
}

#[test]
fn listings_merge_the_upper_and_the_image() {
    let fsh = Fsh::new();
    let lower = image();
    let store = tempfile::tempdir().expect("tempdir");
    let layers = view(lower.path(), &store.path().join("upper"), None);
    let out = fsh.ok(
        on(lower.path(), &layers),
        "ls / ; write /etc/added x ; rm /etc/hostname ; mkdir /etc/sub ; ls /etc ; tree /usr",
    );
    assert_eq!(
        out,
        "bin/\nempty/\netc/\nusr/\n\
         added\nmotd\nmotd.link@\nsub/\n\
         /usr/lib\n/usr/lib/pkg\n/usr/lib/pkg/data\n"
    );
}

#[test]
fn a_deleted_name_made_again_shows_nothing_of_the_image() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let store = tempfile::tempdir().expect("tempdir");
    let upper = store.path().join("upper");
    let script = "rm /etc/hostname ; mkdir /etc/hostname ; ls /etc/hostname \
                  ; rm-r /usr ; mkdir /usr ; ls /usr ; rmdir /usr ; write /usr file ; cat /usr";
    let expected = "file\n";
    let layers = view(lower.path(), &upper, None);
    assert_eq!(fsh.ok(on(lower.path(), &layers), script), expected);
    let reopened = view(lower.path(), &upper, None);
    let out = fsh.ok(
        on(lower.path(), &reopened),
        "stat /etc/hostname ; cat /usr ; tree /etc",
    );
    assert_eq!(out, "dir\nfile\n/etc/hostname\n/etc/motd\n/etc/motd.link\n");
    assert_eq!(snapshot(lower.path()), before);
}

#[test]
fn a_directory_of_the_image_cannot_be_renamed_one_of_the_upper_can() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let store = tempfile::tempdir().expect("tempdir");
    let layers = view(lower.path(), &store.path().join("upper"), None);
    let (outcome, out) = fsh.run(
        on(lower.path(), &layers),
        "mv /usr/lib /usr/lib2 ; mv /empty /empty2 ; mkdir /mine ; write /mine/f x \
         ; mv /mine /yours ; cat /yours/f ; ls /usr",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out, "mv: error EXDEV\nmv: error EXDEV\nx\nlib/\n",
        "EXDEV as overlay2 answers, then the fallback callers use works"
    );
    assert_eq!(snapshot(lower.path()), before);
}

#[test]
fn a_guest_file_named_like_a_whiteout_is_a_plain_file() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let store = tempfile::tempdir().expect("tempdir");
    let upper = store.path().join("upper");
    let layers = view(lower.path(), &upper, None);
    let script = "write /etc/.wh.motd x ; write /etc/.wh..wh..opq y ; cat /etc/motd ; ls /etc";
    let out = fsh.ok(on(lower.path(), &layers), script);
    let expected = "hello from the image\n.wh..wh..opq\n.wh.motd\nhostname\nmotd\nmotd.link@\n";
    assert_eq!(out, expected);
    let reopened = view(lower.path(), &upper, None);
    let out = fsh.ok(on(lower.path(), &reopened), "cat /etc/motd ; ls /etc");
    assert_eq!(out, expected, "the same after a reopen");
    assert_eq!(snapshot(lower.path()), before);
}

#[test]
fn symlinks_made_by_the_guest_pointing_out_resolve_inside_the_view() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret"), "host secret").expect("write");
    let outside_before = snapshot(outside.path());
    let store = tempfile::tempdir().expect("tempdir");
    let layers = view(lower.path(), &store.path().join("upper"), None);
    let host_dir = outside.path().display().to_string();
    let script = format!(
        "ln-s {host_dir} /abs ; ln-s ../../../../../../../../{host_dir} /rel \
         ; ln-s ../../.. /up ; cat /abs/secret ; cat /rel/secret ; write /abs/secret pwned \
         ; write /rel/planted x ; ls /up ; cat /up/etc/motd ; cat /etc/motd.link"
    );
    let (outcome, out) = fsh.run(on(lower.path(), &layers), &script);
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out,
        "cat: error ENOENT\ncat: error ENOENT\nwrite: error ENOENT\nwrite: error ENOENT\n\
         abs@\nbin/\nempty/\netc/\nrel@\nup@\nusr/\n\
         hello from the image\nhello from the image\n",
        "the host path is looked up in the view, `..` stops at its root, \
         the image's absolute symlink resolves in the view"
    );
    assert_eq!(
        snapshot(outside.path()),
        outside_before,
        "nothing outside touched"
    );
    assert_eq!(snapshot(lower.path()), before);
}

#[test]
fn a_guest_filling_its_upper_is_stopped_at_its_size_limit() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let store = tempfile::tempdir().expect("tempdir");
    let limit = 256 * 1024;
    let layers = view(lower.path(), &store.path().join("upper"), Some(limit));
    let (outcome, out) = fsh.run(
        on(lower.path(), &layers),
        "fill /big 1048576 ; stat /big ; truncate /big 1048576 ; rm /big \
         ; write /small fits ; cat /small ; truncate /small 1048576 ; stat /small",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    // A write through a stream fails with insufficient-space in
    // filesystem-error-code; wasi-libc does not ask and says EIO for any
    // failed stream write. set-size answers its error code itself.
    assert_eq!(
        out,
        "fill: error EIO\nfile 262144\ntruncate: error ENOSPC\nfits\n\
         truncate: error ENOSPC\nfile 4\n"
    );
    assert!(
        layers.upper_usage() <= limit,
        "{} bytes used over a limit of {limit}",
        layers.upper_usage()
    );
    assert_eq!(snapshot(lower.path()), before);
}

#[test]
fn big_files_stream_through_the_view() {
    let fsh = Fsh::new();
    let lower = image();
    let store = tempfile::tempdir().expect("tempdir");
    let upper = store.path().join("upper");
    let layers = view(lower.path(), &upper, None);
    let size = 3 * 1024 * 1024 + 17;
    let out = fsh.ok(
        on(lower.path(), &layers),
        &format!("fill /big {size} ; cp /big /copy ; stat /copy ; truncate /copy 5 ; stat /copy"),
    );
    assert_eq!(out, format!("file {size}\nfile 5\n"));
    let big = std::fs::read(upper.join("big")).expect("upper big");
    assert_eq!(big.len(), size);
    assert!(big.iter().all(|b| *b == 0));
}

#[test]
fn volumes_and_tmp_beside_the_view_are_still_host_directories() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let store = tempfile::tempdir().expect("tempdir");
    let upper = store.path().join("upper");
    let layers = view(lower.path(), &upper, None);
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("in"), "from the host").expect("write");
    let ro = tempfile::tempdir().expect("tempdir");
    std::fs::write(ro.path().join("file"), "read-only").expect("write");
    let spec = on(lower.path(), &layers)
        .volume(data.path(), "/data", false)
        .volume(ro.path(), "/ro", true)
        .tmp(true);
    let (outcome, out) = fsh.run(
        spec,
        "cat /data/in ; write /data/out written ; write /tmp/t scratch ; cat /tmp/t \
         ; write /etc/motd view ; mv /data/out /etc/moved ; mv /etc/motd /data/moved \
         ; ln /etc/motd /data/linked ; cat /ro/file ; write /ro/file no ; ls /",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out,
        "from the host\nscratch\nmv: error EXDEV\nmv: error EXDEV\nln: error EXDEV\n\
         read-only\nwrite: error EROFS\nbin/\nempty/\netc/\nusr/\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.path().join("out")).expect("volume file"),
        "written"
    );
    assert_eq!(
        std::fs::read_to_string(ro.path().join("file")).expect("ro file"),
        "read-only"
    );
    let tree = snapshot(&upper);
    assert_eq!(
        tree.keys().collect::<Vec<_>>(),
        ["etc", "etc/motd"],
        "{tree:?}"
    );
    assert_eq!(snapshot(lower.path()), before);
}

/// A `:ro` volume or bind (dockerd's read-only bind mount): every change
/// EROFS, a rename to a writable volume EXDEV, reads as before. The same
/// script and lines in rootfs_p1.rs.
#[test]
fn a_read_only_volume_gives_erofs_for_every_change_as_a_read_only_mount() {
    let fsh = Fsh::new();
    let lower = image();
    let store = tempfile::tempdir().expect("tempdir");
    let layers = view(lower.path(), &store.path().join("upper"), None);
    let (ro, rw) = (read_only_volume(), tempfile::tempdir().expect("tempdir"));
    let before = snapshot(ro.path());
    let spec = on(lower.path(), &layers)
        .volume(rw.path(), "/rw", false)
        .volume(ro.path(), "/ro", true);
    let (outcome, out) = fsh.run(spec, READ_ONLY_VOLUME_SCRIPT);
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        READ_ONLY_VOLUME_LINES,
        "{out}"
    );
    assert_eq!(snapshot(ro.path()), before);
    assert_eq!(std::fs::read_dir(rw.path()).expect("rw").count(), 0);
    // The same without a view (the rootfs read-only too).
    let spec = InstanceSpec::default()
        .rootfs(lower.path())
        .volume(rw.path(), "/rw", false)
        .volume(ro.path(), "/ro", true);
    let (outcome, out) = fsh.run(spec, READ_ONLY_VOLUME_SCRIPT);
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        READ_ONLY_VOLUME_LINES,
        "{out}"
    );
    assert_eq!(snapshot(ro.path()), before);
}

/// The host directory a `:ro` volume shows: `kept.txt`, `empty/`,
/// `sub/in.txt`.
fn read_only_volume() -> tempfile::TempDir {
    let ro = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(ro.path().join("sub")).expect("mkdir");
    std::fs::create_dir(ro.path().join("empty")).expect("mkdir");
    std::fs::write(ro.path().join("kept.txt"), "kept").expect("write");
    std::fs::write(ro.path().join("sub/in.txt"), "in").expect("write");
    ro
}

const READ_ONLY_VOLUME_SCRIPT: &str = "write /ro/kept.txt x ; write /ro/new y ; \
     append /ro/kept.txt z ; rm /ro/kept.txt ; mkdir /ro/x ; rmdir /ro/empty ; \
     mv /ro/kept.txt /ro/k ; mv /ro/kept.txt /rw/k ; rm-r /ro/sub ; ln-s /ro/kept.txt /ro/l ; \
     ln /ro/kept.txt /ro/h ; truncate /ro/kept.txt 0 ; cat /ro/kept.txt ; ls /ro";

const READ_ONLY_VOLUME_LINES: [&str; 16] = [
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

#[test]
fn without_a_view_the_rootfs_is_read_only_as_before() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let spec = InstanceSpec::default().rootfs(lower.path());
    let (outcome, out) = fsh.run(
        spec,
        "cat /etc/motd ; write /etc/motd no ; mkdir /new ; rm /bin/tool ; ls /",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out,
        "hello from the image\nwrite: error EROFS\nmkdir: error EROFS\nrm: error EROFS\n\
         bin/\nempty/\netc/\nusr/\n"
    );
    assert_eq!(snapshot(lower.path()), before);
}

#[test]
fn a_read_only_view_gives_erofs_for_every_change_as_a_read_only_mount() {
    let fsh = Fsh::new();
    let lower = image();
    let before = snapshot(lower.path());
    let store = tempfile::tempdir().expect("tempdir");
    let upper = store.path().join("upper");
    let dir = cap_std::fs::Dir::open_ambient_dir(lower.path(), cap_std::ambient_authority())
        .expect("open lower");
    let layers = Layers::open_read_only(Arc::new(dir), &upper).expect("view");
    let (outcome, out) = fsh.run(
        on(lower.path(), &layers),
        "write /etc/motd x ; write /new y ; append /etc/motd z ; rm /bin/tool ; rm /missing \
         ; mkdir /x ; mkdir /etc ; rmdir /empty ; mv /etc/hostname /etc/h ; rm-r /usr/lib \
         ; ln-s /etc/motd /l ; ln /etc/motd /h ; truncate /etc/motd 0 ; cat /etc/motd ; ls /",
    );
    assert_eq!(outcome, RunOutcome::Exited(1), "{out}");
    assert_eq!(
        out,
        "write: error EROFS\nwrite: error EROFS\nappend: error EROFS\nrm: error EROFS\n\
         rm: error EROFS\nmkdir: error EROFS\nmkdir: error EEXIST\nrmdir: error EROFS\n\
         mv: error EROFS\nrm-r: error EROFS\nln-s: error EROFS\nln: error EROFS\n\
         truncate: error EROFS\nhello from the image\nbin/\nempty/\netc/\nusr/\n"
    );
    assert!(!upper.exists(), "no upper made");
    assert_eq!(snapshot(lower.path()), before);
}

#[test]
fn a_view_without_its_rootfs_is_refused_before_the_start() {
    let fsh = Fsh::new();
    let lower = image();
    let store = tempfile::tempdir().expect("tempdir");
    let layers = view(lower.path(), &store.path().join("upper"), None);
    let mut spec = InstanceSpec::default().writable_rootfs(layers.clone());
    spec.args = vec!["fsh".into(), "write".into(), "/x".into(), "y".into()];
    let err = fsh
        .rt
        .run_blocking(&fsh.module, spec)
        .expect_err("ran a view without its rootfs");
    assert!(
        matches!(
            err,
            RuntimeError::InvalidSpec {
                what: "writable rootfs",
                ..
            }
        ),
        "{err}"
    );
    assert!(!layers.has_upper());
}
