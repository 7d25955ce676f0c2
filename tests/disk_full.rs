//! A store on a small tmpfs that fills up (issue 12, "Disk full"): a `load`
//! or `build` larger than the free space fails with one line naming what
//! it was writing and "no space left on device", leaves no staging behind
//! and changes nothing stored; a guest that logs until the disk is full
//! keeps running while its output is dropped (as dockerd's json-file
//! driver drops it), the daemon keeps serving, a create or start that
//! cannot be recorded fails with a 500, and once space is back logging
//! resumes and a restarted daemon finds every instance as it was left.
//!
//! The tmpfs needs root (CI runs as root); elsewhere the tests skip, unless
//! `WRUN_REQUIRE_PEERS` is set.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Env, HELLO_DIR, IDLE_DIR, big_context, poll};

/// A tmpfs of a given size mounted over a directory; unmounted when dropped.
struct SmallDisk {
    at: PathBuf,
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (mount's syntax: `32m`) at `at`; `None`
    /// (the test skips, saying why) when that is not allowed here.
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => {
                return Some(SmallDisk {
                    at: at.to_owned(),
                    filler: at.join("filler"),
                });
            }
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("running mount: {e}"),
        };
        assert!(
            std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
            "a tmpfs is required (WRUN_REQUIRE_PEERS is set) but cannot be mounted: {why}"
        );
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        eprintln!("skipping: cannot mount a tmpfs (uid {uid}; it needs root): {why}");
        None
    }

    /// Bytes still free.
    fn avail(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.at)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Fills the disk with a file of its own, then gives `leave` bytes of
    /// it back.
    fn fill_leaving(&self, leave: u64) {
        let mut f = File::create(&self.filler).unwrap();
        let chunk = vec![0x5a; 1 << 20];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "filling: {e}");
                    break;
                }
            }
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
        assert!(self.avail() <= leave + (1 << 20), "{} free", self.avail());
    }

    /// Deletes the filler: the space is back.
    fn free(&self) {
        std::fs::remove_file(&self.filler).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        let _ = std::fs::remove_dir(&self.at);
    }
}

/// A daemon on `env`'s store whose stderr goes to `err` (to read what it
/// says).
fn start_daemon(env: Env, err: &Path) -> Daemon {
    Daemon::start_from(env, |env, socket| spawn_daemon(env, socket, err))
}

fn spawn_daemon(env: &Env, socket: &Path, err: &Path) -> std::process::Child {
    env.cmd()
        .args(["daemon", "--socket", socket.to_str().unwrap()])
        .stdout(Stdio::null())
        // Appended to, as the log of a daemon started on demand.
        .stderr(File::options().create(true).append(true).open(err).unwrap())
        .spawn()
        .unwrap()
}

/// Stops the daemon as an init system does (SIGTERM: its shutdown runs)
/// and starts a new one on the same store, its stderr to `err`.
fn restart(d: &mut Daemon, err: &Path) {
    let mut child = d.child.take().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        child.wait().unwrap().success(),
        "the daemon's shutdown failed"
    );
    d.child = Some(spawn_daemon(&d.env, &d.socket, err));
    d.wait_until_up();
}

/// Waits (up to 60 s) until `file` contains `text`; returns all of it.
fn wait_for_text(file: &Path, text: &str) -> String {
    let what = format!("{} saying {text:?}", file.display());
    poll(&what, Duration::from_secs(60), || {
        let said = std::fs::read_to_string(file).unwrap_or_default();
        if said.contains(text) {
            Ok(said)
        } else {
            Err(said)
        }
    })
}

/// Checks a failure's stderr is one line that names the full disk, in
/// dockerd's words; returns it.
fn one_line_disk_full(what: &str, out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what} succeeded");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    assert!(err.contains("no space left on device"), "{what}: {err}");
    assert!(!err.contains("os error"), "{what}: {err}");
    err
}

/// The staging areas under the store's `tmp/` (none once a load or build
/// has ended, failed or not).
fn staging(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.root().join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// What a failed load or build must leave as it was.
struct Stored {
    images: String,
    state: String,
    avail: u64,
}

impl Stored {
    fn now(images: String, env: &Env, disk: &SmallDisk) -> Stored {
        Stored {
            images,
            state: env.store_state(),
            avail: disk.avail(),
        }
    }
}

/// Loads each tar and builds each context with `wrun` (`run`), each too
/// large for the disk: each fails with one line, and nothing changes.
fn fill_with_images(
    how: &str,
    run: &dyn Fn(&[&str]) -> Output,
    env: &Env,
    disk: &SmallDisk,
    tars: &[PathBuf],
    contexts: &[tempfile::TempDir],
) {
    let images = || String::from_utf8_lossy(&run(&["images"]).stdout).into_owned();
    let before = Stored::now(images(), env, disk);
    let check = |what: &str| {
        assert_eq!(images(), before.images, "{what}");
        assert_eq!(env.store_state(), before.state, "{what}");
        assert!(staging(env).is_empty(), "{what}: {:?}", staging(env));
        // What the failed write took is given back.
        let avail = disk.avail();
        assert!(
            avail + (1 << 20) >= before.avail,
            "{what}: {avail} bytes free, {} before",
            before.avail
        );
        common::assert_store_consistent(env);
    };
    for (i, tar) in tars.iter().enumerate() {
        let what = format!("load of big{i}.tar {how}");
        let err = one_line_disk_full(&what, &run(&["load", "-i", tar.to_str().unwrap()]));
        assert!(
            err.contains("loading") && err.contains("writing"),
            "{what}: {err}"
        );
        check(&what);
    }
    for (i, ctx) in contexts.iter().enumerate() {
        let what = format!("build of big{i} {how}");
        let tag = format!("big{i}:1");
        let out = run(&["build", "-t", &tag, ctx.path().to_str().unwrap()]);
        let err = one_line_disk_full(&what, &out);
        assert!(
            err.contains("building") || err.contains("loading the image built from"),
            "{what}: {err}"
        );
        check(&what);
    }
}

#[test]
fn a_load_or_build_larger_than_the_free_space_fails_cleanly_and_damages_nothing() {
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(&env.root(), "32m") else {
        return;
    };
    // Made elsewhere: 20 MB of layer (its blob fits, its unpacked copy
    // does not) and 40 MB (its blob does not fit).
    let elsewhere = Env::new();
    let contexts = [big_context(20 << 20), big_context(40 << 20)];
    let tars: Vec<PathBuf> = contexts
        .iter()
        .enumerate()
        .map(|(i, ctx)| {
            let tar = elsewhere.path(&format!("big{i}.tar"));
            elsewhere.ok(&[
                "build",
                "-q",
                "-t",
                &format!("big{i}:1"),
                "-o",
                tar.to_str().unwrap(),
                ctx.path().to_str().unwrap(),
            ]);
            tar
        })
        .collect();
    env.build("hello:1", HELLO_DIR);

    // The CLI on the store itself, then a daemon serving it.
    fill_with_images(
        "on the store",
        &|args| env.run(args),
        &env,
        &disk,
        &tars,
        &contexts,
    );
    let d = Daemon::start(env);
    fill_with_images(
        "through the daemon",
        &|args| d.wrun(args),
        &d.env,
        &disk,
        &tars,
        &contexts,
    );
    // The image stored before still runs.
    let out = d.wrun_ok(&["run", "--rm", "hello:1", "disk"]);
    assert_eq!(out, "Hello, disk!\n");
}

/// Bytes of each line the chatty guest writes (its newline included).
const CHATTY_LINE: usize = 4096;

/// The build context of `chatty`: a guest that writes a line of 4095 `x`
/// every millisecond, forever, and exits with code 3 should a write ever
/// fail (dockerd's guests never see their log failing, nor should ours).
fn write_chatty_context(dir: &Path) {
    let chatty = wat::parse_str(format!(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          ;; The line at 1024, its iovec at 0.
          (memory.fill (i32.const 1024) (i32.const 120) (i32.const {body}))
          (i32.store8 (i32.const {newline}) (i32.const 10))
          (i32.store (i32.const 0) (i32.const 1024))
          (i32.store (i32.const 4) (i32.const {line}))
          ;; A subscription at 64: the monotonic clock, 1 ms from now.
          (i32.store8 (i32.const 72) (i32.const 0))
          (i32.store (i32.const 80) (i32.const 1))
          (i64.store (i32.const 88) (i64.const 1000000))
          (loop $next
            (if (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
              (then (call $exit (i32.const 3))))
            (drop (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 200)))
            (br $next))))"#,
        line = CHATTY_LINE,
        body = CHATTY_LINE - 1,
        newline = 1024 + CHATTY_LINE - 1,
    ))
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("chatty.wasm"), chatty).unwrap();
    std::fs::write(
        dir.join("wrun.toml"),
        "name = \"chatty\"\nmodule = \"chatty.wasm\"\n",
    )
    .unwrap();
}

/// Each instance's name and status, without its times ("Exited (0)",
/// "Created", "Up"), sorted.
fn states(d: &Daemon) -> Vec<String> {
    let mut rows: Vec<String> = d
        .wrun_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            let keep = if words.get(1) == Some(&"Exited") {
                3
            } else {
                2
            };
            words[..keep.min(words.len())].join(" ")
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn heavy_logging_on_a_full_disk_drops_output_and_the_daemon_and_its_records_hold() {
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(&env.root(), "32m") else {
        return;
    };
    let err_log = env.path("daemon.err");
    let chatty_dir = env.path("chatty");
    write_chatty_context(&chatty_dir);
    let mut d = start_daemon(env, &err_log);
    d.wrun_ok(&["build", "-q", "-t", "hello:1", HELLO_DIR]);
    d.wrun_ok(&["build", "-q", "-t", "idle:1", IDLE_DIR]);
    d.wrun_ok(&[
        "build",
        "-q",
        "-t",
        "chatty:1",
        chatty_dir.to_str().unwrap(),
    ]);
    // Long names: the records of these outweigh the creates below, so
    // once a create cannot be recorded, neither can they.
    let waiting = "waiting-to-be-started-while-the-disk-is-full";
    let sleeper = "stopped-while-the-disk-is-full-its-record-unwritten";
    d.wrun_ok(&["run", "-d", "--name", "greeter", "hello:1", "disk"]);
    assert_eq!(d.wrun_ok(&["wait", "greeter"]), "0\n");
    let greeting = d.wrun_ok(&["logs", "greeter"]);
    assert_eq!(greeting, "Hello, disk!\n");
    d.wrun_ok(&["create", "--name", waiting, "hello:1"]);
    d.wrun_ok(&["run", "-d", "--name", sleeper, "idle:1"]);

    // A guest that logs until the disk is full: its output is dropped,
    // the daemon says so once, and the guest goes on.
    disk.fill_leaving(1 << 20);
    d.wrun_ok(&["run", "-d", "--name", "chatty", "chatty:1"]);
    wait_for_text(&err_log, "dropping its output until a write succeeds");

    // The daemon keeps serving.
    let (status, body) = d.request("GET", "/_ping", "");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let running = |name: &str| {
        d.wrun_ok(&["inspect", "-f", "{{.State.Running}}", name])
            .trim()
            .to_string()
    };
    assert_eq!(running("chatty"), "true");
    assert_eq!(d.wrun_ok(&["logs", "greeter"]), greeting);

    // A create that cannot be recorded is a 500 in dockerd's words, and is
    // not half done: the name is free, nothing is listed. (A few may fit
    // in what the journal's last page has left.)
    let mut created = Vec::new();
    let refused = (0..40)
        .find_map(|i| {
            let name = format!("full-{i:02}");
            let (status, body) = d.request(
                "POST",
                &format!("/v1.41/containers/create?name={name}"),
                r#"{"Image":"hello:1"}"#,
            );
            if status == 201 {
                created.push(name);
                return None;
            }
            assert_eq!(status, 500, "{body}");
            assert!(body.contains("no space left on device"), "{body}");
            assert!(!body.contains("os error"), "{body}");
            Some(name)
        })
        .expect("a create was refused");
    let listed = d.wrun_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!listed.lines().any(|n| n == refused), "{listed}");
    // A start that cannot be recorded fails, with docker's client too, and
    // leaves the instance as it was.
    let out = d.wrun(&["start", waiting]);
    one_line_disk_full("wrun start", &out);
    let out = d.docker(&["start", waiting]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("Error response from daemon:") && said.contains("no space left on device"),
        "{said}"
    );
    assert_eq!(
        d.wrun_ok(&["inspect", "-f", "{{.State.Status}}", waiting])
            .trim(),
        "created"
    );
    // An end whose record cannot be written is still an end.
    d.wrun_ok(&["stop", sleeper]);
    assert_eq!(running(sleeper), "false");
    assert_eq!(running("chatty"), "true");

    // Space is back: logging resumes (and says how much was dropped), and
    // every line kept is whole.
    disk.free();
    wait_for_text(&err_log, "its log is written again");
    let lines_now = || d.wrun_ok(&["logs", "chatty"]).lines().count();
    let kept = lines_now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines_now() <= kept + 10 {
        assert!(Instant::now() < deadline, "the log did not grow again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = d.wrun_ok(&["logs", "chatty"]);
    let line = "x".repeat(CHATTY_LINE - 1);
    assert!(logs.lines().all(|l| l == line), "a torn line in the log");
    assert_eq!(running("chatty"), "true");
    // The refused name is free.
    d.wrun_ok(&["create", "--name", &refused, "hello:1"]);
    created.push(refused);
    d.wrun_ok(&["stop", "chatty"]);

    // A restarted daemon finds every instance as it was left, from a
    // journal it reads whole.
    let mut before = states(&d);
    restart(&mut d, &err_log);
    let said = std::fs::read_to_string(&err_log).unwrap();
    assert!(
        !said.contains("skipping") && !said.contains("torn"),
        "the journal was damaged:\n{said}"
    );
    assert_eq!(states(&d), before);
    before.sort();
    let mut expected = vec![
        "chatty Exited (143)".to_string(),
        "greeter Exited (0)".to_string(),
        format!("{sleeper} Exited (143)"),
        format!("{waiting} Created"),
    ];
    expected.extend(created.iter().map(|n| format!("{n} Created")));
    expected.sort();
    assert_eq!(before, expected);
    assert_eq!(d.wrun_ok(&["logs", "greeter"]), greeting);
    d.wrun_ok(&["start", "-a", waiting]);
}

/// Runs `cmd`; fails the test if it has not ended within 60 s (a hang).
fn output_within_a_minute(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The state the journal on disk holds for instance `id`.
fn journal_state(env: &Env, id: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(env.root().join("containers/records.journal")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["id"] == id)
        .map(|l| l["record"]["state"].clone())
}

#[test]
fn a_daemon_whose_own_log_is_on_the_full_disk_goes_on() {
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(&env.root(), "32m") else {
        return;
    };
    // Where a daemon started on demand writes what it says.
    let log = env.root().join("daemon.log");
    let d = start_daemon(env, &log);
    d.wrun_ok(&["build", "-q", "-t", "idle:1", IDLE_DIR]);
    let id = d.wrun_ok(&["run", "-d", "--name", "sleeper", "idle:1"]);
    let id = id.trim();

    // The disk is full, the log's last page too, and so is the journal's
    // (creates until one cannot be recorded).
    disk.fill_leaving(0);
    let mut f = File::options().append(true).open(&log).unwrap();
    while f.write(b".").is_ok_and(|n| n == 1) {}
    let refused = (0..100).any(|_| {
        let (status, _) = d.request("POST", "/containers/create", r#"{"Image":"idle:1"}"#);
        status == 500
    });
    assert!(refused, "a create was recorded on a full disk");

    // The end of a run whose record cannot be written, said to a log that
    // cannot be written: the stop and the wait still answer.
    let out = output_within_a_minute(d.wrun_cmd().args(["stop", "sleeper"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output_within_a_minute(d.wrun_cmd().args(["wait", "sleeper"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "143\n");
    // A few rounds of the record flusher, each failing its repair and
    // saying so to the full log (a thread that died of it would never
    // repair the journal below).
    std::thread::sleep(Duration::from_millis(3500));
    let (status, _) = d.request("GET", "/_ping", "");
    assert_eq!(status, 200);

    // Space is back: the journal is repaired, the stop recorded.
    disk.free();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let state = journal_state(&d.env, id);
        if state
            .as_ref()
            .is_some_and(|s| s["status"] == "exited" && s["exit_code"] == 143)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the journal still says {state:?} for the stopped instance"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
