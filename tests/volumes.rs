#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! Named volumes (issue 13) and `system df`: `wrun volume …` and the stock
//! docker client against the daemon; each docker expectation was read from
//! dockerd 20.10 first (words, exit codes, the Mounts entries, what `rm -v`
//! and `--rm` take with them).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Daemon, Env, FS_COPY_DIR, have_tool};
use serde_json::Value;

/// A daemon whose store holds fs-copy:1.0 (it copies /share/words.txt to
/// /out/words.txt, and its image declares `VOLUME /out`).
fn daemon() -> Daemon {
    let env = Env::new();
    env.build("fs-copy:1.0", FS_COPY_DIR);
    Daemon::start(env)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn docker_json(d: &Daemon, args: &[&str]) -> Value {
    serde_json::from_str(&d.docker_ok(args)).unwrap()
}

fn volume_names(d: &Daemon) -> Vec<String> {
    d.wrun_ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Polls `check` until it holds; fails the test after 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_wrun_cli_manages_volumes_an_instance_writes_and_df_counts_them() {
    let d = daemon();
    assert_eq!(
        d.wrun_ok(&["volume", "create", "--label", "team=a", "data"]),
        "data\n"
    );
    let anonymous = d.wrun_ok(&["volume", "create"]);
    let anonymous = anonymous.trim();
    assert!(
        anonymous.len() == 64 && anonymous.bytes().all(|b| b.is_ascii_hexdigit()),
        "{anonymous}"
    );
    let inspected: Value =
        serde_json::from_str(&d.wrun_ok(&["volume", "inspect", "data"])).unwrap();
    let v = &inspected[0];
    assert_eq!(v["Name"], "data");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["team"], "a");
    assert!(v["Options"].is_null() && v["CreatedAt"].is_string(), "{v}");
    let mountpoint = PathBuf::from(v["Mountpoint"].as_str().unwrap());
    assert_eq!(mountpoint, d.env.root().join("volumes/data/_data"));
    // Private to the store, as the rest of it.
    for dir in [
        d.env.root().join("volumes"),
        d.env.root().join("volumes/data"),
    ] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    let table = d.wrun_ok(&["volume", "ls"]);
    assert!(table.starts_with("DRIVER    VOLUME NAME\n"), "{table}");
    assert!(table.contains("local     data\n"), "{table}");
    assert_eq!(
        d.wrun_ok(&[
            "volume",
            "ls",
            "--filter",
            "label=team=a",
            "--format",
            "{{.Name}} {{.Labels}}"
        ]),
        "data team=a\n"
    );

    let df = |d: &Daemon| {
        d.wrun_ok(&[
            "system",
            "df",
            "--format",
            "{{.Type}}={{.TotalCount}}/{{.Active}}/{{.Size}}",
        ])
    };
    let before = df(&d);
    assert!(before.contains("Local Volumes=2/0/0B"), "{before}");

    // An instance writes into the volume; its data is the volume's.
    let id = d.wrun_ok(&["run", "-d", "-v", "data:/out", "fs-copy:1.0"]);
    let id = id.trim();
    assert_eq!(d.wrun_ok(&["wait", id]).trim(), "0");
    let words = std::fs::read_to_string(mountpoint.join("words.txt")).unwrap();
    assert!(words.starts_with("1: "), "{words}");
    let after = df(&d);
    let size = words.len();
    assert!(
        after.contains(&format!("Local Volumes=2/1/{size}B")),
        "{after} (the volume holds {size} bytes)"
    );
    let verbose = d.wrun_ok(&["system", "df", "-v"]);
    assert!(
        verbose
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["data", "1", &format!("{size}B")]),
        "{verbose}"
    );

    // In use, even by a stopped instance: refused in dockerd's words.
    let out = d.wrun(&["volume", "rm", "data"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("remove data: volume is in use - [{id}]")),
        "{err}"
    );
    assert!(!d.wrun(&["volume", "rm", "-f", "data"]).status.success());
    assert!(mountpoint.join("words.txt").is_file());

    // Bad input: one line, non-zero.
    let out = d.wrun(&["volume", "create", "x"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("create x: volume name is too short, names should be at least two alphanumeric characters"),
        "{}",
        stderr_of(&out)
    );
    let out = d.wrun(&["run", "-d", "-v", "x:/out", "fs-copy:1.0"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr_of(&out).contains("create x: volume name is too short"));
    let out = d.wrun(&["volume", "create", "-o", "type=tmpfs", "scratch"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("volume options (type) are not supported"));
    let out = d.wrun(&["volume", "inspect", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("get nope: no such volume"));

    d.wrun_ok(&["rm", id]);
    assert_eq!(d.wrun_ok(&["volume", "rm", "data"]), "data\n");
    assert!(!mountpoint.exists());
    let pruned = d.wrun_ok(&["volume", "prune", "-f"]);
    assert_eq!(
        pruned,
        format!("Deleted Volumes:\n{anonymous}\n\nTotal reclaimed space: 0B\n")
    );
    assert!(volume_names(&d).is_empty());
}

#[test]
fn the_docker_client_creates_mounts_and_removes_volumes_as_with_dockerd() {
    if !have_tool("docker") {
        return;
    }
    let d = daemon();
    // `-v NAME:/path` creates the volume; a second instance reads what the
    // first wrote there.
    d.docker_ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "shared:/out",
        "fs-copy:1.0",
    ]);
    let host_out = d.env.path("host-out");
    std::fs::create_dir(&host_out).unwrap();
    // Something at /out too: no anonymous volume comes and goes here.
    let bind = format!("{}:/out", host_out.display());
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/in:ro",
        "-v",
        &bind,
        "fs-copy:1.0",
        "/in/words.txt",
        "/out/again.txt",
    ]);
    let again = std::fs::read_to_string(host_out.join("again.txt")).unwrap();
    assert!(again.starts_with("1: 1: "), "{again}");

    let v = docker_json(&d, &["inspect", "writer"]);
    let mounts = &v[0]["Mounts"];
    let mountpoint = d.env.root().join("volumes/shared/_data");
    assert_eq!(
        mounts,
        &serde_json::json!([{"Type": "volume", "Name": "shared",
            "Source": mountpoint.display().to_string(), "Destination": "/out",
            "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""}])
    );
    assert_eq!(v[0]["HostConfig"]["Binds"][0], "shared:/out");

    let out = d.docker(&["volume", "rm", "shared"]);
    assert_eq!(out.status.code(), Some(1));
    let id = v[0]["Id"].as_str().unwrap();
    assert!(
        stderr_of(&out).contains(&format!(
            "Error response from daemon: remove shared: volume is in use - [{id}]"
        )),
        "{}",
        stderr_of(&out)
    );

    // The API's shapes.
    let list = docker_json(&d, &["volume", "ls", "--format", "{{json .}}"]);
    assert_eq!(list["Name"], "shared");
    assert_eq!(list["Driver"], "local");
    assert_eq!(
        d.docker_ok(&["volume", "ls", "--filter", "dangling=true", "-q"]),
        ""
    );
    assert_eq!(
        d.docker_ok(&["volume", "ls", "--filter", "dangling=false", "-q"]),
        "shared\n"
    );
    let out = d.docker(&["volume", "ls", "--filter", "bogus=1"]);
    assert!(stderr_of(&out).contains("Invalid filter 'bogus'"));

    // dockerd's words for a name outside its rule.
    let out = d.docker(&["volume", "create", "bad/name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("create bad/name: \"bad/name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"),
        "{}",
        stderr_of(&out)
    );
    // dockerd refuses a one-letter name in Binds, but the docker CLI
    // sends `-v x:/out` as an anonymous volume path: refused too.
    let out = d.docker(&["run", "--rm", "-v", "x:/out", "fs-copy:1.0"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr_of(&out).contains("invalid volume \"x:/out\""),
        "{}",
        stderr_of(&out)
    );
    let out = d.docker(&["volume", "create", "-d", "nfs", "remote"]);
    assert!(stderr_of(&out).contains("plugin \"nfs\" not found"));

    d.docker_ok(&["volume", "create", "--label", "keep=no", "p1"]);
    d.docker_ok(&["volume", "create", "--label", "keep=yes", "p2"]);
    let pruned = d.docker_ok(&["volume", "prune", "-f", "--filter", "label=keep=no"]);
    assert!(pruned.starts_with("Deleted Volumes:\np1\n"), "{pruned}");
    assert_eq!(
        d.docker_ok(&["volume", "ls", "-q"]),
        "p2\nshared\n",
        "prune took a volume in use or one the filter left out"
    );
    d.docker_ok(&["rm", "writer"]);
    assert_eq!(
        d.docker_ok(&["volume", "rm", "shared", "p2"]),
        "shared\np2\n"
    );
    assert_eq!(d.docker_ok(&["volume", "rm", "-f", "gone"]), "gone\n");
}

#[test]
fn an_image_volume_gets_an_anonymous_volume_that_rm_v_and_rm_take() {
    if !have_tool("docker") {
        return;
    }
    let d = daemon();
    // fs-copy's image declares VOLUME /out and writes there.
    d.docker_ok(&["run", "--name", "anon", "fs-copy:1.0"]);
    let v = docker_json(&d, &["inspect", "anon"]);
    let m = &v[0]["Mounts"][0];
    assert_eq!(m["Type"], "volume", "{m}");
    assert_eq!(m["Destination"], "/out");
    assert_eq!(
        m["Mode"], "",
        "an image's volume has no mode, as with dockerd"
    );
    let name = m["Name"].as_str().unwrap().to_string();
    assert_eq!(name.len(), 64);
    let source = PathBuf::from(m["Source"].as_str().unwrap());
    assert!(
        source.join("words.txt").is_file(),
        "the guest's write is in the volume"
    );
    // A named volume at the same instance stays when it goes.
    d.docker_ok(&["run", "--name", "named", "-v", "kept:/out", "fs-copy:1.0"]);
    assert_eq!(volume_names(&d), [name.clone(), "kept".to_string()]);

    d.docker_ok(&["rm", "-v", "anon", "named"]);
    assert_eq!(volume_names(&d), ["kept"]);
    assert!(!source.exists());

    // --rm takes the anonymous volume once the run has ended.
    d.docker_ok(&["run", "--rm", "fs-copy:1.0"]);
    eventually("the --rm instance's anonymous volume is removed", || {
        volume_names(&d) == ["kept"]
    });
    // rm without -v keeps it, as dockerd does.
    d.docker_ok(&["run", "--name", "plain", "fs-copy:1.0"]);
    d.docker_ok(&["rm", "plain"]);
    assert_eq!(volume_names(&d).len(), 2);
    let pruned = d.docker_ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains("Deleted Volumes:"), "{pruned}");
    assert!(volume_names(&d).is_empty());
}

#[test]
fn system_df_answers_dockers_shape_with_volume_usage() {
    if !have_tool("docker") {
        return;
    }
    let d = daemon();
    d.docker_ok(&["volume", "create", "empty"]);
    d.docker_ok(&["run", "--name", "writer", "-v", "full:/out", "fs-copy:1.0"]);
    let out = d.docker_ok(&["system", "df"]);
    let volumes = out
        .lines()
        .find(|l| l.starts_with("Local Volumes"))
        .unwrap();
    let cols: Vec<&str> = volumes.split_whitespace().collect();
    assert_eq!(&cols[2..4], ["2", "1"], "{out}");
    assert_eq!(cols.last(), Some(&"(0%)"), "{out}");
    let verbose = d.docker_ok(&["system", "df", "-v"]);
    assert!(verbose.contains("Local Volumes space usage:"), "{verbose}");
    assert!(
        verbose
            .lines()
            .any(|l| l.starts_with("empty ") && l.split_whitespace().nth(1) == Some("0")),
        "{verbose}"
    );
}
