//! End to end: the daemon keeps its instance records in one journal
//! (`containers/records.journal`), which survives a restart and a `kill -9`,
//! loads around a torn or garbled line, and leaves an instance one inode on
//! disk: its log.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::{Env, succeeded};

/// A daemon on a private socket and store whose stderr goes to a file;
/// killed when dropped.
struct JournalDaemon {
    env: Env,
    socket: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl JournalDaemon {
    fn start() -> JournalDaemon {
        let env = Env::new();
        env.build_hello("hello:1.0");
        let mut d = JournalDaemon {
            socket: env.path("wrun.sock"),
            env,
            child: None,
            starts: 0,
        };
        d.spawn();
        d
    }

    /// Starts a daemon process (again); its stderr goes to `stderr(n)`.
    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.stderr_path()).unwrap();
        let child = self
            .env
            .cmd()
            .args(["daemon", "--socket", self.socket.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..1500 {
            if UnixStream::connect(&self.socket).is_ok() {
                // The socket is bound before the records load: a request
                // is answered once they have.
                self.wrun_ok(&["ps", "-a"]);
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited at start: {status}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the daemon never answered on {}", self.socket.display());
    }

    fn stderr_path(&self) -> PathBuf {
        self.env.path(&format!("daemon-{}.err", self.starts))
    }

    /// What the current (or last) daemon process printed on stderr.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    fn wrun(&self, args: &[&str]) -> Output {
        self.env
            .cmd()
            .env("WRUN_HOST", format!("unix://{}", self.socket.display()))
            .args(args)
            .output()
            .unwrap()
    }

    fn wrun_ok(&self, args: &[&str]) -> String {
        succeeded("wrun", args, self.wrun(args))
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(&self.wrun_ok(&["inspect", name])).unwrap();
        v[0].take()
    }

    /// `wrun daemon --stop`, checked to end the process cleanly.
    fn stop(&mut self) {
        self.wrun_ok(&["daemon", "--stop"]);
        let status = self.child.take().unwrap().wait().unwrap();
        assert!(status.success(), "the daemon exited with {status}");
    }

    /// SIGKILL: no shutdown, no last flush.
    fn kill_9(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn containers(&self) -> PathBuf {
        self.env.root().join("containers")
    }

    fn journal(&self) -> PathBuf {
        self.containers().join("records.journal")
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .wrun_ok(&["ps", "-a", "--format", "json"])
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["Names"].as_str().unwrap().to_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// Runs `hello:1.0 ARG...` as `name` to its end.
    fn run_hello(&self, name: &str, args: &[&str]) {
        let mut argv = vec!["run", "-d", "--name", name, "hello:1.0"];
        argv.extend_from_slice(args);
        self.wrun_ok(&argv);
        assert_eq!(self.wrun_ok(&["wait", name]).trim(), "0");
    }

    /// Creates `hello:1.0` as `name` without starting it.
    fn create(&self, name: &str) {
        self.create_with(name, br#"{"Image": "hello:1.0"}"#);
    }

    /// Creates `name` from a whole create request body.
    fn create_with(&self, name: &str, body: &[u8]) {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        write!(
            s,
            "POST /containers/create?name={name} HTTP/1.1\r\nHost: wrun\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
}

impl Drop for JournalDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Files and directories under `dir`, recursively (each one an inode).
fn inodes_under(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            1 + if e.file_type().unwrap().is_dir() {
                inodes_under(&e.path())
            } else {
                0
            }
        })
        .sum()
}

#[test]
fn records_survive_a_restart_and_a_kill_9_and_the_journal_is_compacted() {
    let mut d = JournalDaemon::start();
    for name in ["alpha", "beta", "gamma"] {
        d.run_hello(name, &[name]);
    }
    d.create("fresh");
    d.wrun_ok(&["rename", "gamma", "gamma2"]);
    d.wrun_ok(&["rm", "beta"]);
    let id_a = d.inspect("alpha")["Id"].as_str().unwrap().to_owned();
    // Every change is one line: 4 creates, 3 starts, 3 ends, a rename, a
    // removal at least.
    let lines = std::fs::read_to_string(d.journal())
        .unwrap()
        .lines()
        .count();
    assert!(lines >= 12, "{lines} lines");

    d.kill_9();
    d.spawn();
    assert_eq!(d.names(), ["alpha", "fresh", "gamma2"]);
    assert_eq!(d.wrun_ok(&["logs", "alpha"]), "Hello, alpha!\n");
    assert_eq!(d.wrun_ok(&["logs", "gamma2"]), "Hello, gamma!\n");
    assert_eq!(d.inspect("alpha")["Id"], id_a.as_str());
    assert_eq!(d.inspect("alpha")["State"]["Status"], "exited");
    assert_eq!(d.inspect("fresh")["State"]["Status"], "created");
    // The start rewrote the journal: one line per live record.
    let text = std::fs::read_to_string(d.journal()).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(!d.stderr().contains("skipping"), "{}", d.stderr());

    // A record written by this daemon survives a clean stop too, and the
    // instance still runs.
    d.wrun_ok(&["start", "fresh"]);
    assert_eq!(d.wrun_ok(&["wait", "fresh"]).trim(), "0");
    d.stop();
    d.spawn();
    assert_eq!(d.names(), ["alpha", "fresh", "gamma2"]);
    assert_eq!(d.wrun_ok(&["logs", "fresh"]), "Hello, world!\n");
    assert_eq!(d.inspect("fresh")["State"]["ExitCode"], 0);
}

#[test]
fn a_torn_last_line_and_a_garbled_middle_line_lose_no_other_record() {
    let mut d = JournalDaemon::start();
    for name in ["one", "two"] {
        d.run_hello(name, &[name]);
    }
    d.stop();
    // A garbled line between the two records, and an append cut short by a
    // kill at the end.
    let text = std::fs::read_to_string(d.journal()).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let last = text.lines().last().unwrap();
    // And a record this daemon cannot read (a newer one's, say).
    let foreign = r#"{"id":"f00d","record":{"from":"the future"}}"#;
    let damaged = format!(
        "{first}\n\u{0}\u{ff}not json at all\n{foreign}\n{rest}{}",
        &last[..last.len() / 2]
    );
    std::fs::write(d.journal(), damaged).unwrap();

    d.spawn();
    assert_eq!(d.names(), ["one", "two"]);
    assert_eq!(d.wrun_ok(&["logs", "two"]), "Hello, two!\n");
    let err = d.stderr();
    assert!(err.contains("skipping line 2:"), "{err}");
    assert!(err.contains("torn last line"), "{err}");
    assert!(err.contains("skipping the record of f00d"), "{err}");
    // The damage is gone from the rewritten journal; the record it could
    // not read is kept.
    let text = std::fs::read_to_string(d.journal()).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains(foreign), "{text}");
    d.wrun_ok(&["rm", "one"]);
    d.stop();
    d.spawn();
    assert_eq!(d.names(), ["two"]);
    let err = d.stderr();
    assert!(
        !err.contains("skipping line") && !err.contains("torn"),
        "{err}"
    );
}

#[test]
fn a_log_costs_no_inode_until_it_outgrows_the_pack() {
    let mut d = JournalDaemon::start();
    let containers = d.containers();
    let pack = containers.join("logs.pack");
    let before = inodes_under(&containers);
    const N: usize = 8;
    for n in 0..N {
        d.run_hello(&format!("i{n}"), &[]);
    }
    d.create("silent");
    // A line or two of output goes to the daemon's pack: no inode at all.
    assert_eq!(inodes_under(&containers), before);
    assert!(std::fs::metadata(&pack).unwrap().len() > 0);
    assert_eq!(d.wrun_ok(&["logs", "i3"]), "Hello, world!\n");
    // A log past a few KiB moves to a file of its own: one inode.
    let long = "x".repeat(6000);
    d.run_hello("chatty", &[&long]);
    assert_eq!(inodes_under(&containers), before + 1);
    let logs = std::fs::read_dir(containers.join("logs")).unwrap().count();
    assert_eq!(logs, 1);
    assert_eq!(d.wrun_ok(&["logs", "chatty"]), format!("Hello, {long}!\n"));
    // rm and prune take the logs with them, packed or not, and the next
    // start drops what the pack held for them.
    d.wrun_ok(&["rm", "i0", "chatty"]);
    assert_eq!(inodes_under(&containers), before);
    assert_eq!(d.wrun_ok(&["logs", "i1"]), "Hello, world!\n");
    d.wrun_ok(&["container", "prune", "-f"]);
    assert!(d.names().is_empty());
    d.stop();
    d.spawn();
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), 0);
    assert_eq!(inodes_under(&containers), before);
}

#[test]
fn a_running_daemon_compacts_its_journal_and_loses_no_record() {
    use std::os::unix::fs::MetadataExt;
    let mut d = JournalDaemon::start();
    let first = std::fs::metadata(d.journal()).unwrap().ino();
    // Records of some 100 KiB each (a long environment), each removed right
    // after its create: 200 of them append some 20 MiB, past the 8 MiB at
    // which a running daemon rewrites its journal, while hardly any record
    // is live at a time.
    let big = "x".repeat(100 * 1024);
    let body = format!(r#"{{"Image": "hello:1.0", "Env": ["BIG={big}"]}}"#);
    d.create("keeper");
    d.wrun_ok(&["rename", "keeper", "kept"]);
    for i in 0..200 {
        let name = format!("big{i}");
        d.create_with(&name, body.as_bytes());
        d.wrun_ok(&["rm", &name]);
    }
    // The flusher (once a second) has rewritten it (a new file), and what
    // is left is what came after the last rewrite: under the 8 MiB floor
    // plus a second's appends, far from the 20 MiB appended.
    let mut rewritten = false;
    for _ in 0..100 {
        if std::fs::metadata(d.journal()).unwrap().ino() != first {
            rewritten = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let now = std::fs::metadata(d.journal()).unwrap().len();
    assert!(rewritten, "never rewritten ({now} bytes): {}", d.stderr());
    assert!(now < 12 << 20, "{now} bytes after 20 MiB of changes");
    // Changes go on in the rewritten journal, and survive a kill -9.
    d.create("after");
    d.kill_9();
    d.spawn();
    assert_eq!(d.names(), ["after", "kept"]);
    let text = std::fs::read_to_string(d.journal()).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}
