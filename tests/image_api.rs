//! End to end: the image verbs given a daemon's socket (`-H`, `$WRUN_HOST`)
//! work on that daemon's store, through its REST API, never on the local one.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::{Output, Stdio};

use common::*;

/// A daemon on store A holding hello:1.0, and a CLI whose own store B is
/// another directory, never created: a verb that opened the local store
/// would create it (and find nothing in it).
struct Remote {
    daemon: Daemon,
    local: Env,
    id: String,
}

impl Remote {
    fn start() -> Remote {
        let a = Env::new();
        let id = a.build_hello("hello:1.0");
        Remote {
            daemon: Daemon::start(a),
            local: Env::new(),
            id,
        }
    }

    /// `wrun -H unix://<A's socket> ARGS` with `WRUN_ROOT` = B.
    fn run(&self, args: &[&str]) -> Output {
        self.local
            .cmd()
            .arg("-H")
            .arg(self.daemon.host())
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        succeeded("wrun", args, self.run(args))
    }

    /// Runs a verb expecting one line on stderr and exit status 1.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        one_line_failure(args, &out)
    }

    /// A's images as a CLI on A with no host named lists them: through the
    /// daemon that serves A (it holds A's `daemon.lock`).
    fn a_images(&self) -> String {
        self.daemon.env.ok(&["images"])
    }

    fn assert_local_store_untouched(&self) {
        assert!(
            !self.local.root().exists(),
            "the local store {} was opened",
            self.local.root().display()
        );
    }
}

fn one_line_failure(args: &[&str], out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "wrun {args:?} should have failed with 1; stdout: {}; stderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.starts_with("Error: ") && stderr.trim().lines().count() == 1,
        "wrun {args:?}: one line expected: {stderr}"
    );
    stderr
}

#[test]
fn images_lists_the_daemons_store_not_the_local_one() {
    let r = Remote::start();
    let images = r.ok(&["images"]);
    let lines: Vec<&str> = images.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID"),
        "{images}"
    );
    assert!(
        lines.len() == 2 && lines[1].starts_with("hello ") && lines[1].contains("1.0"),
        "{images}"
    );
    assert!(lines[1].contains(&r.id[7..19]), "{images}");
    assert_eq!(r.ok(&["images", "-q", "--no-trunc"]).trim(), r.id);
    assert_eq!(r.ok(&["image", "ls", "-q"]).trim(), &r.id[7..19]);

    // The manifest digest and created time are the store's, as a local
    // listing of A shows them.
    let digest = r.daemon.env.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Descriptor.digest}}",
        "hello:1.0",
    ]);
    assert!(
        r.ok(&["images", "--digests"]).contains(digest.trim()),
        "the DIGEST column"
    );
    let json: serde_json::Value =
        serde_json::from_str(r.ok(&["images", "--format", "json"]).trim()).unwrap();
    let local: serde_json::Value =
        serde_json::from_str(r.daemon.env.ok(&["images", "--format", "json"]).trim()).unwrap();
    for key in ["Repository", "Tag", "ID", "Digest", "CreatedAt", "Size"] {
        assert_eq!(json[key], local[key], "{key}");
    }
    assert_eq!(
        r.ok(&["images", "--filter", "reference=nosuch"])
            .lines()
            .count(),
        1,
        "filters apply to the daemon's images"
    );

    // $WRUN_HOST names the daemon as -H does.
    let out = r
        .local
        .cmd()
        .env("WRUN_HOST", r.daemon.host())
        .args(["images", "-q", "--no-trunc"])
        .output()
        .unwrap();
    assert_eq!(succeeded("wrun", &["images"], out).trim(), r.id);
    r.assert_local_store_untouched();

    // Without a host, B is what the CLI lists: empty.
    assert_eq!(r.local.ok(&["images", "-q"]).trim(), "");
}

#[test]
fn inspect_and_history_show_the_daemons_image() {
    let r = Remote::start();
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", "hello:1.0"])).unwrap();
    assert_eq!(inspect[0]["Id"], r.id.as_str());
    assert_eq!(inspect[0]["RepoTags"], serde_json::json!(["hello:1.0"]));
    assert_eq!(inspect[0]["Wasm"]["Kind"], "wasip1");
    assert_eq!(
        r.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            &r.id[7..19]
        ])
        .trim(),
        "wasip1/wasm"
    );
    let out = r.run(&["image", "inspect", "hello:1.0", "nosuch:1"]);
    let stderr = one_line_failure(&["image", "inspect"], &out);
    assert!(stderr.contains("No such image: nosuch:1"), "{stderr}");
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found[0]["Id"], r.id.as_str(), "the found one is printed");

    let history = r.ok(&["history", "hello:1.0"]);
    assert!(history.starts_with("IMAGE"), "{history}");
    assert!(history.contains("COPY hello.wasm /hello.wasm"), "{history}");
    assert!(
        history.lines().nth(1).unwrap().starts_with(&r.id[7..19]),
        "{history}"
    );
    assert_eq!(
        r.ok(&["history", "-q", "--no-trunc", "hello:1.0"])
            .lines()
            .next(),
        Some(r.id.as_str())
    );
    let err = r.fails(&["history", "nosuch:1"]);
    assert!(err.contains("No such image: nosuch:1"), "{err}");
    r.assert_local_store_untouched();
}

#[test]
fn tag_and_rmi_change_the_daemons_store() {
    let r = Remote::start();
    assert_eq!(r.ok(&["tag", "hello:1.0", "greeter:2"]), "");
    let images = r.a_images();
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("greeter ") && l.contains(" 2 ") && l.contains(&r.id[7..19])),
        "{images}"
    );
    r.ok(&["tag", "hello:1.0", "greeter"]);
    assert!(
        r.a_images()
            .lines()
            .any(|l| l.starts_with("greeter ") && l.contains("latest")),
        "no tag is latest"
    );
    let err = r.fails(&["tag", "hello:1.0", "Bad:Name"]);
    assert!(err.contains("invalid reference format"), "{err}");
    let err = r.fails(&["tag", "nosuch:1", "x:1"]);
    assert!(err.contains("No such image"), "{err}");

    assert_eq!(r.ok(&["rmi", "greeter:2"]).trim(), "Untagged: greeter:2");
    assert_eq!(
        r.ok(&["image", "rm", "greeter"]).trim(),
        "Untagged: greeter:latest"
    );
    let images = r.a_images();
    assert!(
        !images.contains("greeter") && images.contains("hello"),
        "{images}"
    );
    let out = r.run(&["rmi", "nosuch:1", "hello:1.0"]);
    let stderr = one_line_failure(&["rmi"], &out);
    assert!(stderr.contains("No such image: nosuch:1"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Untagged: hello:1.0") && stdout.contains(&format!("Deleted: {}", r.id)),
        "rmi goes on after a failure: {stdout}"
    );
    assert_eq!(r.daemon.env.ok(&["images", "-q"]).trim(), "");
    r.assert_local_store_untouched();
}

#[test]
fn save_rmi_load_round_trips_through_the_daemon() {
    let r = Remote::start();
    let tar = r.daemon.env.path("saved.tar");
    assert_eq!(
        r.ok(&["save", "-o", tar.to_str().unwrap(), "hello:1.0"]),
        ""
    );
    let bytes = std::fs::read(&tar).unwrap();
    let mut entries: Vec<String> = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    entries.sort();
    assert!(
        entries.contains(&"index.json".to_string()) && entries.contains(&"oci-layout".to_string()),
        "{entries:?}"
    );
    // To stdout, the same bytes.
    let out = r.run(&["save", "hello:1.0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == bytes, "save to stdout writes what -o writes");
    // An unknown name fails before a file is made.
    let missing = r.daemon.env.path("missing.tar");
    let err = r.fails(&["save", "-o", missing.to_str().unwrap(), "nosuch:1"]);
    assert!(err.contains("No such image: nosuch:1"), "{err}");
    assert!(!missing.exists());
    let leftovers: Vec<_> = std::fs::read_dir(r.daemon.env.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let rmi = r.ok(&["rmi", "hello:1.0"]);
    assert!(
        rmi.contains("Untagged: hello:1.0") && rmi.contains(&format!("Deleted: {}", r.id)),
        "{rmi}"
    );
    assert_eq!(r.daemon.env.ok(&["images", "-q"]).trim(), "");

    let loaded = r.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(loaded.trim(), "Loaded image: hello:1.0");
    assert_eq!(
        r.daemon
            .env
            .ok(&["images", "-q", "--no-trunc", "hello:1.0"])
            .trim(),
        r.id,
        "back in A, same ID"
    );

    // From stdin, quietly.
    r.ok(&["rmi", "hello:1.0"]);
    let out = r
        .local
        .cmd()
        .arg("-H")
        .arg(r.daemon.host())
        .args(["load", "-q"])
        .stdin(Stdio::from(std::fs::File::open(&tar).unwrap()))
        .output()
        .unwrap();
    assert_eq!(succeeded("wrun", &["load", "-q"], out), "");
    assert_eq!(
        r.daemon.env.ok(&["images", "-q", "--no-trunc"]).trim(),
        r.id
    );

    // Not a tar (larger than one upload chunk): the daemon refuses it, A
    // is unchanged.
    let junk = r.daemon.env.path("junk.tar");
    std::fs::write(&junk, vec![b'x'; 3 << 20]).unwrap();
    let before = r.daemon.env.store_state();
    let err = r.fails(&["load", "-i", junk.to_str().unwrap()]);
    assert!(err.contains("junk.tar"), "{err}");
    assert_eq!(r.daemon.env.store_state(), before);
    r.assert_local_store_untouched();
}

#[test]
fn a_named_host_that_does_not_answer_is_an_error() {
    let env = Env::new();
    let socket = env.path("nobody.sock");
    let host = format!("unix://{}", socket.display());
    let tar = env.path("some.tar");
    std::fs::write(&tar, b"").unwrap();
    let out_tar = env.path("out.tar");
    let verbs: [&[&str]; 8] = [
        &["images"],
        &["image", "inspect", "hello:1.0"],
        &["history", "hello:1.0"],
        &["tag", "hello:1.0", "x:1"],
        &["rmi", "hello:1.0"],
        &["save", "-o", out_tar.to_str().unwrap(), "hello:1.0"],
        &["load", "-i", tar.to_str().unwrap()],
        &["image", "ls", "-q"],
    ];
    for args in verbs {
        let out = env.cmd().arg("-H").arg(&host).args(args).output().unwrap();
        let stderr = one_line_failure(args, &out);
        assert!(
            stderr.contains("cannot connect to the wrun daemon")
                && stderr.contains(&socket.display().to_string()),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!socket.exists(), "no daemon was started");
    assert!(!out_tar.exists());
    assert!(!env.root().exists(), "the local store was not used instead");
}

#[test]
fn run_detached_and_inspect_use_the_daemons_images() {
    let r = Remote::start();
    // A name only the daemon's store holds: the daemon resolves it.
    let id = r.ok(&["run", "-d", "--name", "h1", "hello:1.0", "Remote"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(r.ok(&["wait", "h1"]).trim(), "0");
    assert_eq!(r.ok(&["logs", "h1"]), "Hello, Remote!\n");
    // `inspect` of a name no instance has is the daemon's image.
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["inspect", "hello:1.0"])).unwrap();
    assert_eq!(inspect[0]["Id"], r.id.as_str());
    let err = r.fails(&["inspect", "nosuch:1"]);
    assert!(err.contains("No such object: nosuch:1"), "{err}");
    // An image tar given to `run -d` is loaded into the daemon's store.
    let tar = r.daemon.env.path("hello.tar");
    r.daemon
        .env
        .ok(&["save", "-o", tar.to_str().unwrap(), "hello:1.0"]);
    r.daemon.env.ok(&["rmi", "-f", "hello:1.0"]);
    assert!(!r.a_images().contains("hello"));
    r.ok(&["run", "-d", "--name", "t1", tar.to_str().unwrap(), "Tar"]);
    assert_eq!(r.ok(&["wait", "t1"]).trim(), "0");
    assert_eq!(r.ok(&["logs", "t1"]), "Hello, Tar!\n");
    assert!(r.a_images().contains("hello"), "{}", r.a_images());
    // A name the daemon does not have is the daemon's 404, exit 125 as docker run.
    let out = r.run(&["run", "-d", "nosuch:1"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such image"),
        "{out:?}"
    );
    r.assert_local_store_untouched();
}

#[test]
fn build_with_a_named_host_stores_the_image_in_that_daemon() {
    let r = Remote::start();
    let context = r.daemon.env.path("cat");
    write_cat_context(&context);
    // The CLI's scratch store lives under $TMPDIR; it must be gone after.
    let tmp = r.daemon.env.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let tar = r.daemon.env.path("cat.tar");
    let args = [
        "build",
        "-t",
        "cat:2",
        "-o",
        tar.to_str().unwrap(),
        context.to_str().unwrap(),
    ];
    let out = r
        .local
        .cmd()
        .arg("-H")
        .arg(r.daemon.host())
        .env("TMPDIR", &tmp)
        .args(args)
        .output()
        .unwrap();
    // Docker's classic builder prints its steps and result on stdout.
    let stdout = succeeded("wrun", &args, out);
    assert!(
        stdout.contains("Successfully built") && stdout.contains("Successfully tagged cat:2"),
        "{stdout}"
    );
    assert!(tar.is_file(), "-o still writes the tar");
    let id = r.ok(&["images", "-q", "--no-trunc", "cat:2"]);
    assert_eq!(
        id.trim().len(),
        71,
        "the daemon lists the built image: {id}"
    );
    assert!(
        r.a_images().lines().any(|l| l.starts_with("cat ")),
        "it is in A's store: {}",
        r.a_images()
    );
    r.assert_local_store_untouched();
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the scratch store is removed"
    );

    // With $WRUN_HOST and -q, the printed ID is the daemon's.
    let out = r
        .local
        .cmd()
        .env("WRUN_HOST", r.daemon.host())
        .args(["build", "-q", "-t", "cat:3", context.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(succeeded("wrun", &["build", "-q"], out), id);
    assert_eq!(r.ok(&["images", "-q", "--no-trunc", "cat:3"]), id);
    r.assert_local_store_untouched();
}

#[test]
fn build_with_a_host_that_does_not_answer_fails_as_images_does() {
    let env = Env::new();
    let dead = env.path("nobody.sock");
    let failure = |args: &[&str]| {
        let out = env
            .cmd()
            .env("WRUN_HOST", format!("unix://{}", dead.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.stdout.is_empty(), "{args:?}");
        one_line_failure(args, &out)
    };
    let images = failure(&["images"]);
    let expected = format!(
        "Error: cannot connect to the wrun daemon at {}",
        dead.display()
    );
    assert!(images.starts_with(&expected), "{images}");
    assert_eq!(failure(&["build", "-t", "hello:1.0", HELLO_DIR]), images);
    assert!(!dead.exists(), "no daemon was started");
    assert!(
        !env.root().exists(),
        "nothing was built into the local store"
    );
}

#[test]
fn prune_goes_to_the_daemon_serving_the_store_and_keeps_its_instances_images() {
    let r = Remote::start();
    let a = &r.daemon.env;
    // No host named: build and prune find the daemon that serves store A.
    a.build("idle:1.0", "examples/idle");
    r.daemon.wrun_ok(&["create", "--name", "user", "hello:1.0"]);
    let pruned = a.ok(&["image", "prune", "-a", "-f"]);
    assert!(pruned.contains("untagged: idle:1.0"), "{pruned}");
    assert!(
        !pruned.contains("hello:1.0"),
        "an instance uses it: {pruned}"
    );
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let listed = r.a_images();
    assert!(
        listed.contains("hello") && !listed.contains("idle"),
        "{listed}"
    );
    // The daemon pruned it: its event log says so.
    let events = r.daemon.wrun_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=image",
    ]);
    assert!(events.contains("delete"), "{events}");
    // The stock docker client's prune is served too; nothing is left to
    // prune, and hello:1.0 stays.
    if std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = r.daemon.docker_ok(&["image", "prune", "-a", "-f"]);
        assert!(out.contains("Total reclaimed space: 0B"), "{out}");
        assert!(r.a_images().contains("hello"));
    }
}
