//! End to end: `POST /build` — the stock docker client's classic builder
//! (`DOCKER_BUILDKIT=0 docker build`) and `wrun build` through a daemon
//! build with wrun; failed builds, hostile contexts and an upload cut
//! halfway leave the store as it was.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::*;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// A context directory with the file shell and a Dockerfile of `dockerfile`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(FSH, dir.path().join("fsh.wasm")).unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

const GOOD: &str = "FROM scratch\nARG WHO=nobody\nCOPY fsh.wasm /bin/fsh\nENV WHO=$WHO\nLABEL made=here\nCMD [\"/bin/fsh\", \"echo\", \"built\"]\n";

/// The classic builder's docker client against the daemon.
fn docker_build(d: &Daemon, args: &[&str]) -> std::process::Output {
    d.docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .arg("build")
        .args(args)
        .output()
        .unwrap()
}

/// Build directories left under the store's tmp/.
fn build_dirs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".build-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn docker_build_through_the_daemon_builds_with_wrun() {
    if !have_tool("docker") {
        return;
    }
    let d = Daemon::start(Env::new());
    let ctx = context(GOOD);
    let out = docker_build(&d, &["-t", "nb:1", "--build-arg", "WHO=me", p(&ctx)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "Step 1/6 : FROM scratch",
        "Step 3/6 : COPY fsh.wasm /bin/fsh",
        "Successfully built ",
        "Successfully tagged nb:1",
    ] {
        assert!(stdout.contains(want), "{want:?} missing in {stdout}");
    }
    let run = d.docker_ok(&["run", "--rm", "nb:1"]);
    assert_eq!(run.trim(), "built");
    let env = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.Env}} {{.Config.Labels}}",
        "nb:1",
    ]);
    assert!(env.contains("WHO=me"), "{env}");
    assert!(env.contains("made:here"), "{env}");

    // -q prints the ID alone; --label lands on the image.
    let out = docker_build(&d, &["-q", "--label", "extra=1", "-t", "nb:2", p(&ctx)]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id:?}");
    let labels = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}} {{.Config.Labels}}",
        "nb:2",
    ]);
    assert!(labels.starts_with(&id), "{labels}");
    assert!(labels.contains("extra:1"), "{labels}");
    assert!(build_dirs(&d.env.root()).is_empty());
}

#[test]
fn docker_build_of_a_multi_stage_file_stores_the_target() {
    if !have_tool("docker") {
        return;
    }
    let d = Daemon::start(Env::new());
    let ctx = context(
        "FROM scratch AS one\nCOPY fsh.wasm /bin/fsh\nCMD [\"/bin/fsh\", \"echo\", \"one\"]\nFROM scratch\nCOPY --from=one /bin/fsh /fsh\nCMD [\"/fsh\", \"echo\", \"two\"]\n",
    );
    let out = docker_build(&d, &["--target", "one", "-t", "nt:1", p(&ctx)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "nt:1"]).trim(), "one");
    let out = docker_build(&d, &["-t", "nt:2", p(&ctx)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "nt:2"]).trim(), "two");
}

#[test]
fn a_failing_build_exits_1_in_dockerds_words_and_stores_nothing() {
    if !have_tool("docker") {
        return;
    }
    let d = Daemon::start(Env::new());
    let before = d.env.store_state();
    let ctx = context("FROM scratch\nCOPY fsh.wasm /bin/fsh\nCOPY missing /x\n");
    let out = docker_build(&d, &["-t", "nf:1", p(&ctx)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Step 3/3 : COPY missing /x"),
        "the steps before the failure are shown"
    );
    assert_eq!(
        d.env.store_state(),
        before,
        "a failed build stored something"
    );
    assert!(build_dirs(&d.env.root()).is_empty());

    // A bad instruction is refused before any step, with the line.
    let ctx = context("FROM scratch\nFOO bar\n");
    let out = docker_build(&d, &["-t", "nf:2", p(&ctx)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("dockerfile parse error line 2: unknown instruction"),
        "{stderr}"
    );
    assert_eq!(d.env.store_state(), before);
    assert!(build_dirs(&d.env.root()).is_empty());

    // A RUN that exits 3: the docker client and wrun build -H exit 3, as
    // with dockerd (its errorDetail carries the code).
    let ctx = context(
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nRUN [\"/bin/fsh\", \"echo\", \"bye\", \";\", \"exit\", \"3\"]\n",
    );
    let out = docker_build(&d, &["-t", "nf:3", p(&ctx)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("returned a non-zero code: 3"), "{stderr}");
    let out = d.wrun(&["build", "-t", "nf:3", p(&ctx)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("returned a non-zero code: 3"), "{stderr}");
    assert_eq!(d.env.store_state(), before);
}

#[test]
fn wrun_build_with_a_host_sends_its_context_to_the_daemon() {
    let d = Daemon::start(Env::new());
    let ctx = context(GOOD);
    let out = d.wrun_ok(&["build", "-t", "wb:1", "--build-arg", "WHO=you", p(&ctx)]);
    assert!(out.contains("Step 1/6 : FROM scratch"), "{out}");
    assert!(out.contains("Successfully tagged wb:1"), "{out}");
    // Stored in the daemon's store, seen through the daemon.
    let inspect = d.wrun_ok(&["image", "inspect", "wb:1"]);
    assert!(inspect.contains("WHO=you"), "{inspect}");
    let id = d.wrun_ok(&["build", "-q", "-t", "wb:2", p(&ctx)]);
    assert!(id.trim().starts_with("sha256:"), "{id}");

    // -o writes the image's tar as the local build does.
    let tar = d.env.path("wb.tar");
    d.wrun_ok(&[
        "build",
        "-q",
        "-t",
        "wb:3",
        "-o",
        tar.to_str().unwrap(),
        p(&ctx),
    ]);
    assert!(std::fs::metadata(&tar).unwrap().len() > 0);

    // A failure is the daemon's line and exit 1.
    let bad = context("FROM scratch\nCOPY missing /x\n");
    let out = d.wrun(&["build", "-t", "wb:4", p(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    let names = d.wrun_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!names.contains("wb:4"), "{names}");
}

/// Sends `head` then `body` as a POST /build; the status and the answer.
fn post_build(socket: &Path, query: &str, body: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "POST /v1.41/build?{query} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    (status, answer.split_once("\r\n\r\n").unwrap().1.to_string())
}

#[test]
fn the_answer_is_dockerds_stream_of_json_lines() {
    let d = Daemon::start(Env::new());
    let mut tar = Vec::new();
    let df = b"FROM scratch\nCOPY fsh.wasm /fsh\nCMD [\"/fsh\"]\n";
    raw_entry(
        &mut tar,
        b"Dockerfile",
        tar::EntryType::Regular,
        b"",
        df,
        0o644,
    );
    let fsh = std::fs::read(FSH).unwrap();
    raw_entry(
        &mut tar,
        b"fsh.wasm",
        tar::EntryType::Regular,
        b"",
        &fsh,
        0o755,
    );
    let tar = end_tar(tar);
    let (status, body) = post_build(&d.socket, "t=js%3A1", &gzip(&tar));
    assert_eq!(status, 200, "{body}");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["stream"], "Step 1/3 : FROM scratch");
    assert_eq!(lines[1]["stream"], "\n");
    assert_eq!(lines[2]["stream"], " ---> \n");
    let aux = lines.iter().find(|l| l.get("aux").is_some()).unwrap();
    let id = aux["aux"]["ID"].as_str().unwrap();
    assert!(id.starts_with("sha256:"));
    let n = lines.len();
    assert_eq!(
        lines[n - 2]["stream"],
        format!("Successfully built {}\n", &id[7..19])
    );
    assert_eq!(lines[n - 1]["stream"], "Successfully tagged js:1\n");

    // bzip2 and xz contexts, as dockerd takes them.
    for tool in ["bzip2", "xz"] {
        if !have_tool(tool) {
            continue;
        }
        let packed = output_with_input(std::process::Command::new(tool).arg("-c"), &tar);
        assert!(packed.status.success(), "{tool}");
        let (status, body) = post_build(&d.socket, "q=1", &packed.stdout);
        assert_eq!(status, 200, "{tool}: {body}");
        assert_eq!(
            body.lines().find(|l| l.starts_with('{')).unwrap(),
            format!("{{\"stream\":\"{id}\\n\"}}"),
            "{tool}: the same image, the ID alone"
        );
    }

    // A parse error is a 400 before the stream, in dockerd's words.
    let mut bad = Vec::new();
    raw_entry(
        &mut bad,
        b"Dockerfile",
        tar::EntryType::Regular,
        b"",
        b"FROM scratch\nFOO x\n",
        0o644,
    );
    let (status, body) = post_build(&d.socket, "", &end_tar(bad));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("dockerfile parse error line 2: unknown instruction"),
        "{body}"
    );
    // remote= is refused.
    let (status, body) = post_build(&d.socket, "remote=https%3A%2F%2Fexample.com%2Fc.tar", &tar);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("only the context sent"), "{body}");
}

#[test]
fn hostile_contexts_touch_nothing_outside_and_store_nothing() {
    let d = Daemon::start(Env::new());
    let before = d.env.store_state();
    let outside = d.env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            {
                let mut t = Vec::new();
                raw_entry(
                    &mut t,
                    b"../../../../escaped",
                    tar::EntryType::Regular,
                    b"",
                    b"x",
                    0o644,
                );
                end_tar(t)
            },
            "Error processing tar file",
        ),
        (
            "symlink_out_then_write_through_it",
            {
                let mut t = Vec::new();
                let target = outside.to_str().unwrap().as_bytes();
                raw_entry(&mut t, b"link", tar::EntryType::Symlink, target, b"", 0o777);
                raw_entry(
                    &mut t,
                    b"link/escaped",
                    tar::EntryType::Regular,
                    b"",
                    b"x",
                    0o644,
                );
                end_tar(t)
            },
            "Error processing tar file",
        ),
        (
            "dockerfile_symlinked_out_of_the_context",
            {
                let mut t = Vec::new();
                raw_entry(
                    &mut t,
                    b"Dockerfile",
                    tar::EntryType::Symlink,
                    b"/etc/passwd",
                    b"",
                    0o777,
                );
                end_tar(t)
            },
            "Cannot locate specified Dockerfile: Dockerfile",
        ),
        (
            "dockerfile_path_out_of_the_context",
            {
                let mut t = Vec::new();
                raw_entry(
                    &mut t,
                    b"Dockerfile",
                    tar::EntryType::Regular,
                    b"",
                    b"FROM scratch\n",
                    0o644,
                );
                end_tar(t)
            },
            "forbidden path outside the build context",
        ),
    ];
    for (attack, tar, words) in cases {
        let query = if attack == "dockerfile_path_out_of_the_context" {
            "dockerfile=..%2F..%2Fetc%2Fpasswd"
        } else {
            ""
        };
        let (status, body) = post_build(&d.socket, query, &tar);
        assert_eq!(status, 500, "{attack}: {body}");
        assert!(body.contains(words), "{attack}: {body}");
        assert!(
            !body.contains("root:"),
            "{attack}: a host file was read: {body}"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{attack}");
        assert_eq!(d.env.store_state(), before, "{attack}");
        assert!(build_dirs(&d.env.root()).is_empty(), "{attack}");
    }
}

#[test]
fn a_context_upload_cut_halfway_leaves_the_store_unchanged() {
    let d = Daemon::start(Env::new());
    let before = d.env.store_state();
    // A 100 MB context (one big file), of which 50 MB are sent.
    const TOTAL: usize = 100 << 20;
    let mut head = Vec::new();
    let mut h = tar::Header::new_gnu();
    h.set_path("big").unwrap();
    h.set_size((TOTAL - 2048) as u64);
    h.set_mode(0o644);
    h.set_cksum();
    head.extend_from_slice(h.as_bytes());
    let mut s = UnixStream::connect(&d.socket).unwrap();
    write!(
        s,
        "POST /v1.41/build?t=cut%3A1 HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {TOTAL}\r\n\r\n"
    )
    .unwrap();
    s.write_all(&head).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..50 {
        s.write_all(&chunk).unwrap();
    }
    // The context is being unpacked under the store's tmp/ by now or soon.
    poll(
        "the context being unpacked",
        Duration::from_secs(60),
        || {
            if build_dirs(&d.env.root()).is_empty() {
                Err("no build directory yet".into())
            } else {
                Ok(())
            }
        },
    );
    drop(s);
    poll(
        "the build directory removed",
        Duration::from_secs(60),
        || {
            let left = build_dirs(&d.env.root());
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
    assert_eq!(d.env.store_state(), before);
    // The daemon still serves, and builds.
    let ctx = context(GOOD);
    d.wrun_ok(&["build", "-q", "-t", "after:1", p(&ctx)]);
}
