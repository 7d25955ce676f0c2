#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! Each instance's writable rootfs (issue 13), through `wrun` and the stock
//! docker client against the daemon, with the `fsh` file shell as guest:
//! an instance's writes are its own (kept by stop/start and a daemon
//! restart, unseen by other instances and new runs, the image snapshot
//! untouched), `rm` in all its forms removes them, `--read-only` refuses
//! them, `--storage-opt size=` bounds them (ENOSPC), a foreground run's
//! are gone when it ends. Docker's side was checked on dockerd 20.10
//! (overlay2) first: its words, exit codes and inspect fields.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{Daemon, Env, wait_until};
use serde_json::Value;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");
const FSH_COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/fsh/fsh-component.wasm"
);

/// What the image holds at `/etc/motd`.
const MOTD: &str = "from the image";

/// Builds `tag` from the fsh module at `wasm` with `/etc/motd` in it.
fn build_fsh(env: &Env, tag: &str, wasm: &str) {
    let ctx = env.path(&format!("ctx-{}", tag.replace([':', '/'], "-")));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(wasm, ctx.join("fsh.wasm")).unwrap();
    std::fs::write(ctx.join("motd"), MOTD).unwrap();
    std::fs::write(
        ctx.join("wrun.toml"),
        "name = \"fsh\"\nmodule = \"fsh.wasm\"\n\n[[copy]]\nsrc = \"motd\"\ndest = \"/etc/motd\"\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

/// A store holding `fsh:1` (a preview 1 module).
fn env_with_fsh() -> Env {
    let env = Env::new();
    build_fsh(&env, "fsh:1", FSH);
    env
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn inspect(d: &Daemon, name: &str) -> Value {
    let v: Value = serde_json::from_str(&d.docker_ok(&["inspect", name])).unwrap();
    v[0].clone()
}

/// The instance's upper directory (`GraphDriver.Data.UpperDir`): the
/// tree of the files it wrote, its parts beside it.
fn upper_of(d: &Daemon, name: &str) -> PathBuf {
    let doc = inspect(d, name);
    PathBuf::from(doc["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap())
}

/// Every path under the image snapshots with its kind, mode and content:
/// what no instance may change.
fn snapshots(env: &Env) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    let root = env.root().join("snapshots");
    let mut stack = vec![root.clone()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(&root).unwrap().display().to_string();
        let mode = meta.permissions().mode();
        let what = if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            format!("dir {mode:o}")
        } else if meta.is_file() {
            let data = std::fs::read(&p).unwrap();
            format!("file {mode:o} {}", common::sha256_hex(&data))
        } else {
            format!("other {mode:o}")
        };
        seen.insert(rel, what);
    }
    seen
}

/// The words of a command line (none holds a space).
fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

/// `docker start -a NAME`: one run's output.
fn start_attached(d: &Daemon, name: &str) -> String {
    let out = d.docker(&["start", "-a", name]);
    text(&out)
}

/// Starts a new daemon process on `d`'s store and socket after stopping
/// the running one.
fn restart_daemon(d: &mut Daemon) {
    let out = d.wrun(&["daemon", "--stop"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = d.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "the daemon exited with {status}");
    let child = d
        .env
        .cmd()
        .args(["daemon", "--socket", d.socket.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    d.child = Some(child);
    d.wait_until_up();
    // The socket is bound before the records are loaded: an answer is
    // what says the new daemon is done loading them.
    d.docker_ok(&["version"]);
}

#[test]
fn an_instances_writes_survive_stop_start_and_a_daemon_restart_and_no_one_else_sees_them() {
    let mut d = Daemon::start(env_with_fsh());
    let image_before = snapshots(&d.env);
    // Each run appends a line to a new file and rewrites an image file.
    d.docker_ok(&words(
        "create --name writer fsh:1 append /log x ; cat /log ; \
         write /etc/motd changed ; cat /etc/motd",
    ));
    let upper = upper_of(&d, "writer");
    assert!(!upper.exists(), "no upper before the first write");
    assert_eq!(start_attached(&d, "writer"), "x\nchanged\n");
    assert!(upper.join("log").is_file(), "{}", upper.display());
    let layers = upper.parent().unwrap();
    let mode = std::fs::metadata(layers).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the uppers are private as the store");
    // A second start: the same view, the write of the first run is there.
    assert_eq!(start_attached(&d, "writer"), "xx\nchanged\n");
    d.docker_ok(&["restart", "writer"]);
    d.docker_ok(&["wait", "writer"]);
    assert_eq!(
        d.docker_ok(&["logs", "writer"]).lines().last(),
        Some("changed")
    );

    // Another instance of the image, and a new run, see the image.
    let other = d.docker(&words("run --rm fsh:1 cat /log ; cat /etc/motd"));
    assert_eq!(
        stdout(&other),
        format!("cat: error ENOENT\n{MOTD}\n"),
        "{}",
        text(&other)
    );
    assert_eq!(other.status.code(), Some(1));

    // A new daemon loads the upper where the last one left it.
    restart_daemon(&mut d);
    assert_eq!(start_attached(&d, "writer"), "xxxx\nchanged\n");
    assert_eq!(
        snapshots(&d.env),
        image_before,
        "the image snapshot changed"
    );

    // inspect --size counts what the instance wrote: "xxxx" and "changed".
    let sized: Value =
        serde_json::from_str(&d.docker_ok(&["inspect", "--size", "writer"])).unwrap();
    assert_eq!(sized[0]["SizeRw"], 4 + "changed".len());

    d.docker_ok(&["rm", "writer"]);
    assert!(!upper.exists(), "rm left the upper {}", upper.display());
    assert_eq!(snapshots(&d.env), image_before);
}

#[test]
fn rm_f_container_prune_and_auto_remove_take_the_upper_with_them_and_a_restart_the_orphans() {
    let mut d = Daemon::start(env_with_fsh());
    let layers = d.env.root().join("containers/layers");
    let names = ["gone-f", "gone-prune"];
    for name in names {
        d.docker_ok(&["create", "--name", name, "fsh:1", "write", "/f", name]);
        assert_eq!(start_attached(&d, name), "");
    }
    let uppers: Vec<PathBuf> = names.iter().map(|n| upper_of(&d, n)).collect();
    assert!(uppers.iter().all(|u| u.join("f").is_file()));
    d.docker_ok(&["rm", "-f", "gone-f"]);
    assert!(!uppers[0].exists());
    d.docker_ok(&["container", "prune", "-f"]);
    assert!(!uppers[1].exists());
    // --rm: removed with the instance once its run is over.
    let out = d.docker(&words("run --rm --name gone-rm fsh:1 write /f x"));
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the --rm instance's upper is gone", || {
        std::fs::read_dir(&layers).unwrap().next().is_none()
    });

    // An upper whose record is gone (removed while no daemon ran, or a
    // removal cut short) goes when a daemon starts; a live one stays.
    // A copy-up and a deletion: the upper's staging area and journal
    // beside it, which live and go with it.
    d.docker_ok(&words(
        "create --name kept fsh:1 write /f kept ; append /etc/motd x ; rm /etc/motd",
    ));
    assert_eq!(start_attached(&d, "kept"), "");
    let kept = upper_of(&d, "kept");
    let kept = kept.file_name().unwrap().to_string_lossy().into_owned();
    let orphan = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    std::fs::create_dir_all(layers.join(orphan).join("deep")).unwrap();
    std::fs::create_dir_all(layers.join(format!("{orphan}.work"))).unwrap();
    std::fs::write(layers.join(format!("{orphan}.whiteouts")), "").unwrap();
    std::fs::create_dir_all(layers.join("feed.removing/x")).unwrap();
    std::fs::write(layers.join("feed.removing.whiteouts"), "").unwrap();
    restart_daemon(&mut d);
    let mut left: Vec<String> = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            kept.clone(),
            format!("{kept}.whiteouts"),
            format!("{kept}.work")
        ]
    );
    // rm takes the parts with the tree.
    d.docker_ok(&["rm", "kept"]);
    wait_until("kept's upper and its parts are gone", || {
        std::fs::read_dir(&layers).unwrap().next().is_none()
    });
}

/// The daemon's open descriptors: all of them, and those on its uppers
/// (`containers/layers/`: an upper's tree, staging area, journal).
fn daemon_fds(d: &Daemon) -> (usize, usize) {
    let pid = d.child.as_ref().unwrap().id();
    let layers = d.env.root().join("containers/layers");
    let (mut all, mut on_uppers) = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let Ok(entry) = entry else { continue };
        all += 1;
        if std::fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(&layers)) {
            on_uppers += 1;
        }
    }
    (all, on_uppers)
}

#[test]
fn stopped_instances_that_wrote_hold_no_descriptors_and_a_restart_reopens_their_writes() {
    let d = Daemon::start(env_with_fsh());
    // Each run copies an image file up (the staging area), deletes it (the
    // journal) and appends to a file of its own (the tree): a writer's
    // three descriptors while it runs.
    let script = "cat /etc/motd ; append /log + ; cat /log ; append /etc/motd ! ; rm /etc/motd";
    let first = |name: &str| {
        let out = d.docker(&words(&format!("run --name {name} fsh:1 {script}")));
        assert_eq!(stdout(&out), format!("{MOTD}\n+\n"), "{}", text(&out));
    };
    // What every run shares (the snapshot, the module cache) is opened by
    // the first.
    first("w0");
    let settled = |most: usize| {
        let mut last = (0, 0);
        common::poll(
            "the stopped instances' views closing",
            std::time::Duration::from_secs(60),
            || {
                last = daemon_fds(&d);
                if last.1 == 0 && last.0 <= most {
                    Ok(last.0)
                } else {
                    Err(format!("{last:?} open (all, on uppers)"))
                }
            },
        )
    };
    let before = settled(usize::MAX);
    // A running writer holds its view's three descriptors: what is counted.
    d.docker_ok(&words(&format!(
        "run -d --name live fsh:1 {script} ; sleep 600000"
    )));
    common::poll(
        "a running writer's descriptors",
        std::time::Duration::from_secs(60),
        || match daemon_fds(&d) {
            (_, 3) => Ok(()),
            other => Err(format!("{other:?} open (all, on uppers)")),
        },
    );
    d.docker_ok(&["rm", "-f", "live"]);
    settled(before + 2);
    const WRITERS: usize = 16;
    for i in 1..=WRITERS {
        first(&format!("w{i}"));
    }
    // Not one descriptor per stopped writer (three each when a record kept
    // its view open): none on the uppers, and no more in all than before
    // (give or take a connection of the client's).
    let after = settled(before + 2);
    assert!(after < before + WRITERS, "{before} then {after}");
    for i in 0..=WRITERS {
        let upper = upper_of(&d, &format!("w{i}"));
        assert_eq!(std::fs::read_to_string(upper.join("log")).unwrap(), "+");
    }
    // A restart reopens the view from the same upper: the file it wrote,
    // and the image file it deleted still deleted (the journal read again).
    assert_eq!(start_attached(&d, "w7"), "cat: error ENOENT\n++\n");
    assert_eq!(start_attached(&d, "w7"), "cat: error ENOENT\n+++\n");
    settled(before + 2);
    // Verbs reopen it too, and let it go.
    let diff = d.docker_ok(&["diff", "w3"]);
    assert!(diff.lines().any(|l| l == "D /etc/motd"), "{diff}");
    assert!(diff.lines().any(|l| l == "A /log"), "{diff}");
    settled(before + 2);
}

#[test]
fn read_only_instances_cannot_write_and_inspect_shows_the_rootfs_fields() {
    let d = Daemon::start(env_with_fsh());
    let image_before = snapshots(&d.env);
    for client in ["docker", "wrun"] {
        let args = [
            "run",
            "--rm",
            "--read-only",
            "fsh:1",
            "write",
            "/etc/motd",
            "x",
            ";",
            "mkdir",
            "/d",
            ";",
            "cat",
            "/etc/motd",
        ];
        let out = if client == "docker" {
            d.docker(&args)
        } else {
            d.wrun(&args)
        };
        let said = stdout(&out);
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), 3, "{client}: {}", text(&out));
        // dockerd's read-only overlay mount: EROFS (not EPERM).
        assert_eq!(lines[0], "write: error EROFS", "{client}: {said}");
        assert_eq!(lines[1], "mkdir: error EROFS", "{client}: {said}");
        assert_eq!(lines[2], MOTD, "{client}");
        assert_eq!(out.status.code(), Some(1), "{client}");
    }
    assert_eq!(snapshots(&d.env), image_before);
    // An exec in a read-only instance sees the same read-only view.
    d.docker_ok(&words(
        "run -d --read-only --name ro-run fsh:1 sleep 600000",
    ));
    let out = d.docker(&words(
        "exec ro-run /fsh.wasm write /x y ; rm /etc/motd ; cat /etc/motd",
    ));
    assert_eq!(
        stdout(&out),
        format!("write: error EROFS\nrm: error EROFS\n{MOTD}\n"),
        "{}",
        text(&out)
    );
    assert_eq!(out.status.code(), Some(1));
    d.docker_ok(&["rm", "-f", "ro-run"]);
    assert_eq!(snapshots(&d.env), image_before);

    // inspect: HostConfig.ReadonlyRootfs and StorageOpt as given, and
    // GraphDriver's overlay2-like paths (the upper's under the store).
    d.docker_ok(&["create", "--name", "ro", "--read-only", "fsh:1"]);
    d.docker_ok(&[
        "create",
        "--name",
        "sized",
        "--storage-opt",
        "size=10G",
        "fsh:1",
    ]);
    let ro = inspect(&d, "ro");
    assert_eq!(ro["HostConfig"]["ReadonlyRootfs"], true);
    let sized = inspect(&d, "sized");
    assert_eq!(sized["HostConfig"]["ReadonlyRootfs"], false);
    assert_eq!(sized["HostConfig"]["StorageOpt"]["size"], "10G");
    let data = &sized["GraphDriver"]["Data"];
    let id = sized["Id"].as_str().unwrap();
    let upper = d.env.root().join("containers/layers").join(id);
    assert_eq!(data["UpperDir"], upper.display().to_string());
    let work = upper.with_file_name(format!("{id}.work"));
    assert_eq!(data["WorkDir"], work.display().to_string());
    let lower = data["LowerDir"].as_str().unwrap();
    assert!(
        Path::new(lower).join("etc/motd").is_file(),
        "LowerDir is the image snapshot: {lower}"
    );
    let wrun_view = d.wrun_ok(&["inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", "ro"]);
    assert_eq!(wrun_view.trim(), "true");
}

#[test]
fn a_size_limit_gives_the_guest_enospc_and_bad_storage_options_are_one_line_errors() {
    let d = Daemon::start(env_with_fsh());
    // 1 MiB: a file of 2 MB fails part way, a small one still fits after.
    let out = d.docker(&words(
        "run --rm --storage-opt size=1m fsh:1 fill /big 2000000 ; \
         write /small ok ; rm /big ; write /small ok ; cat /small",
    ));
    assert_eq!(
        stdout(&out),
        "fill: error ENOSPC\nwrite: error ENOSPC\nok\n",
        "{}",
        text(&out)
    );
    // Without a limit the same file fits.
    let out = d.docker(&words("run --rm fsh:1 fill /big 2000000 ; stat /big"));
    assert_eq!(stdout(&out), "file 2000000\n", "{}", text(&out));

    // Bad values: the daemon's one line, docker run's 125, nothing created.
    for (opt, says) in [
        ("size=abc", "invalid storage option size: "),
        ("size=-1", "invalid storage option size: "),
        ("foo=bar", "Unknown option foo"),
    ] {
        for client in ["docker", "wrun"] {
            let args = ["run", "--rm", "--storage-opt", opt, "fsh:1", "echo", "ran"];
            let out = if client == "docker" {
                d.docker(&args)
            } else {
                d.wrun(&args)
            };
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{client} {opt}: {err}");
            assert!(err.contains(says), "{client} {opt}: {err}");
            assert!(!stdout(&out).contains("ran"), "{client} {opt}");
            let first = err.lines().next().unwrap_or_default();
            assert!(first.contains(says), "{client} {opt}: one line: {err}");
        }
    }
    // Not KEY=VALUE: each client's own parse (docker's words: `invalid
    // storage option`).
    let out = d.wrun(&["run", "--storage-opt", "size", "fsh:1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("invalid storage option"),
        "{}",
        text(&out)
    );
    let listed = d.docker_ok(&["ps", "-aq"]);
    assert_eq!(listed, "", "a refused create left an instance");
}

#[test]
fn the_daemons_default_size_applies_to_instances_that_ask_for_none() {
    let d = Daemon::start_with(env_with_fsh(), &["--storage-opt", "size=1m"]);
    let out = d.docker(&["run", "--rm", "fsh:1", "fill", "/big", "2000000"]);
    assert_eq!(stdout(&out), "fill: error ENOSPC\n", "{}", text(&out));
    // Their own size wins.
    let out = d.docker(&words(
        "run --rm --storage-opt size=4m fsh:1 fill /big 2000000",
    ));
    assert_eq!(stdout(&out), "", "{}", text(&out));
    assert_eq!(out.status.code(), Some(0));
    // A bad daemon option is refused before anything starts.
    let env = Env::new();
    let out = env.run(&["daemon", "--storage-opt", "quota=1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Unknown option quota"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_foreground_run_writes_its_own_rootfs_and_leaves_nothing_behind() {
    let env = env_with_fsh();
    let image_before = snapshots(&env);
    let out = env.run(&words(
        "run fsh:1 write /etc/motd mine ; cat /etc/motd ; mkdir /new ; ls /",
    ));
    let said = stdout(&out);
    assert!(said.starts_with("mine\n"), "{}", text(&out));
    assert!(said.lines().any(|l| l == "new/"), "{said}");
    assert!(out.status.success());
    // The shorthand of an image tar too.
    let tar = env.path("fsh.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "fsh:1"]);
    let out = env.run(&[tar.to_str().unwrap(), "write", "/x", "y", ";", "cat", "/x"]);
    assert_eq!(stdout(&out), "y\n", "{}", text(&out));
    // Nothing of either run is left: not in the image, not in a new run,
    // not in the scratch area.
    let out = env.run(&["run", "fsh:1", "cat", "/etc/motd", ";", "cat", "/x"]);
    assert_eq!(stdout(&out), format!("{MOTD}\ncat: error ENOENT\n"));
    assert_eq!(snapshots(&env), image_before);
    let scratch = env.root().join("scratch");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", scratch.display());
    // --read-only and --storage-opt apply to a foreground run as well.
    let out = env.run(&["run", "--read-only", "fsh:1", "write", "/x", "y"]);
    assert_eq!(stdout(&out), "write: error EROFS\n", "{}", text(&out));
    let out = env.run(&[
        "run",
        "--storage-opt",
        "size=64k",
        "fsh:1",
        "fill",
        "/big",
        "100000",
    ]);
    assert_eq!(stdout(&out), "fill: error ENOSPC\n", "{}", text(&out));
    let out = env.run(&["run", "--storage-opt", "size=lots", "fsh:1"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        text(&out).contains("invalid storage option size: "),
        "{}",
        text(&out)
    );
}

#[test]
fn a_component_writes_through_the_same_view() {
    let env = Env::new();
    build_fsh(&env, "fsh-component:1", FSH_COMPONENT);
    let d = Daemon::start(env);
    d.docker_ok(&words(
        "create --name comp fsh-component:1 append /etc/motd + ; cat /etc/motd",
    ));
    assert_eq!(start_attached(&d, "comp"), format!("{MOTD}+\n"));
    assert_eq!(start_attached(&d, "comp"), format!("{MOTD}++\n"));
    let out = d.docker(&["run", "--rm", "fsh-component:1", "cat", "/etc/motd"]);
    assert_eq!(stdout(&out), format!("{MOTD}\n"));
}
