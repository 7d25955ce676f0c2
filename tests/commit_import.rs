//! End to end: `commit` and `import`, through `wrun` and the stock `docker`
//! client against a daemon, with examples/fsh as the guest: the committed
//! image runs and shows the instance's changes (a deleted file stays
//! deleted), its history names the commit, and hostile rootfs tars get
//! the refusals `load` gives their layers.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::*;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// A rootfs tar: `/fsh.wasm`, `/etc/a`, `/gone`, `/d/a`, `/d/b`.
fn fsh_rootfs() -> Vec<u8> {
    let wasm = std::fs::read(FSH).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("fsh.wasm", &wasm, 0o755);
    add("etc/a", b"a", 0o644);
    add("gone", b"g", 0o644);
    add("d/a", b"da", 0o644);
    add("d/b", b"db", 0o644);
    tar.into_inner().unwrap()
}

/// Writes the fsh rootfs tar into the test's directory.
fn rootfs_file(env: &Env) -> PathBuf {
    let p = env.path("rootfs.tar");
    std::fs::write(&p, fsh_rootfs()).unwrap();
    p
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A daemon whose store has `fsh:1` (imported, entrypoint `/fsh.wasm`).
fn daemon_with_fsh() -> Daemon {
    let env = Env::new();
    let tar = rootfs_file(&env);
    let id = env.ok(&[
        "import",
        "-c",
        r#"ENTRYPOINT ["/fsh.wasm"]"#,
        "-m",
        "the base",
        tar.to_str().unwrap(),
        "fsh:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    Daemon::start(env)
}

/// Runs fsh in a new detached instance `name` and waits for its end.
fn run_script(d: &Daemon, name: &str, script: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "fsh:1"];
    args.extend_from_slice(script);
    d.wrun_ok(&args);
    assert_eq!(d.wrun_ok(&["wait", name]).trim(), "0");
}

/// The changes of issue 13's example: a changed file, a deleted one, a new
/// directory, and a directory removed and made again (opaque).
const CHANGES: &[&str] = &[
    "write", "/etc/a", "new", ";", "rm", "/gone", ";", "mkdir", "/n", ";", "write", "/n/f", "hi",
    ";", "rm-r", "/d", ";", "mkdir", "/d", ";", "write", "/d/z", "z",
];

#[test]
fn a_committed_image_runs_and_shows_the_changes_deleted_files_stay_deleted() {
    let d = daemon_with_fsh();
    run_script(&d, "c1", CHANGES);
    let id = d.wrun_ok(&[
        "commit", "-m", "my msg", "-a", "me", "-c", "ENV A=1", "c1", "snap:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // fsh exits 1: the cat of the deleted file fails.
    let out = stdout(&d.wrun(&[
        "run", "--rm", "snap:1", "cat", "/etc/a", ";", "cat", "/gone", ";", "ls", "/d", ";", "cat",
        "/n/f",
    ]));
    assert_eq!(out, "new\ncat: error ENOENT\nz\nhi\n", "{out}");
    // The base image is as it was.
    let out = d.wrun(&["run", "--rm", "fsh:1", "cat", "/gone", ";", "ls", "/d"]);
    assert_eq!(stdout(&out), "g\na\nb\n");

    // The history names the commit (created_by: the instance's Cmd, as
    // dockerd), with the comment, above the import's entry.
    let history = d.wrun_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "snap:1",
    ]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(
        lines[0].starts_with("write /etc/a new ; rm /gone"),
        "{history}"
    );
    assert!(lines[0].ends_with("|my msg"), "{history}");
    assert_eq!(lines[1], "|the base");
    let inspect = d.wrun_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Env}} {{.Author}} {{.Comment}}",
        "snap:1",
    ]);
    assert_eq!(inspect.trim(), r#"["A=1"] me my msg"#);
}

/// `{{format}}` of image inspect of `name`, trimmed.
fn image_field(d: &Daemon, format: &str, name: &str) -> String {
    d.wrun_ok(&["image", "inspect", "--format", format, name])
        .trim()
        .to_string()
}

#[test]
fn a_committed_image_names_its_container_and_parent_and_history_gives_their_ids() {
    let d = daemon_with_fsh();
    run_script(&d, "c1", &["write", "/one", "1"]);
    let cid = d.wrun_ok(&["inspect", "--format", "{{.Id}}", "c1"]);
    let base = image_field(&d, "{{.Id}}", "fsh:1");
    let one = d.wrun_ok(&["commit", "c1", "one:1"]).trim().to_string();
    // dockerd's: the container's full ID, its config as inspect showed it
    // (not the image's merged one), the base as the parent.
    assert_eq!(
        image_field(
            &d,
            "{{.Container}} {{json .ContainerConfig.Cmd}} {{.ContainerConfig.Image}} {{.Parent}}",
            "one:1"
        ),
        format!(r#"{} ["write","/one","1"] fsh:1 {base}"#, cid.trim())
    );
    // An image not committed names no container and has no parent.
    assert_eq!(
        image_field(
            &d,
            "{{.Container}}|{{json .ContainerConfig.Cmd}}|{{.Parent}}",
            "fsh:1"
        ),
        "|null|"
    );

    // History gives the IDs up the chain of parents, one a row.
    d.wrun_ok(&["run", "-d", "--name", "c2", "one:1", "write", "/two", "2"]);
    assert_eq!(d.wrun_ok(&["wait", "c2"]).trim(), "0");
    let two = d.wrun_ok(&["commit", "c2", "two:1"]).trim().to_string();
    let ids = d.wrun_ok(&["history", "--no-trunc", "--format", "{{.ID}}", "two:1"]);
    assert_eq!(
        ids.lines().collect::<Vec<_>>(),
        [&two, &one, &base],
        "{ids}"
    );
    assert_eq!(image_field(&d, "{{.Parent}}", "two:1"), one);
    // The new image runs with both commits' files.
    let out = d.wrun_ok(&["run", "--rm", "two:1", "cat", "/one", ";", "cat", "/two"]);
    assert_eq!(out, "1\n2\n");
}

#[test]
fn an_unchanged_instance_commits_to_an_empty_history_entry() {
    let d = daemon_with_fsh();
    d.wrun_ok(&["create", "--name", "idle", "fsh:1", "ls", "/"]);
    d.wrun_ok(&["commit", "idle", "same:1"]);
    let rows = d.wrun_ok(&["history", "--format", "{{.Size}}|{{.CreatedBy}}", "same:1"]);
    assert_eq!(rows.lines().next(), Some("0B|ls /"), "{rows}");
    let layers = |name: &str| {
        d.wrun_ok(&[
            "image",
            "inspect",
            "--format",
            "{{len .RootFS.Layers}}",
            name,
        ])
        .trim()
        .to_string()
    };
    assert_eq!(layers("same:1"), layers("fsh:1"));
}

#[test]
fn commit_changes_set_the_new_images_config_as_dockerd_does() {
    let d = daemon_with_fsh();
    run_script(&d, "c1", &["write", "/msg", "hello"]);
    // ENTRYPOINT given without CMD drops the Cmd (the instance's script).
    d.wrun_ok(&[
        "commit",
        "-c",
        r#"ENTRYPOINT ["/fsh.wasm", "cat"]"#,
        "-c",
        "WORKDIR /srv",
        "-c",
        "EXPOSE 8080",
        "-c",
        "LABEL k=v",
        "c1",
        "cfg:1",
    ]);
    let cfg = d.wrun_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.WorkingDir}} {{json .Config.ExposedPorts}} {{json .Config.Labels}}",
        "cfg:1",
    ]);
    assert_eq!(
        cfg.trim(),
        r#"["/fsh.wasm","cat"] null /srv {"8080/tcp":{}} {"k":"v"}"#
    );
    assert_eq!(d.wrun_ok(&["run", "--rm", "cfg:1", "/msg"]), "hello\n");
    // Without changes the Cmd is the instance's.
    d.wrun_ok(&["commit", "c1", "cfg:2"]);
    let cmd = d.wrun_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        "cfg:2",
    ]);
    assert_eq!(cmd.trim(), r#"["write","/msg","hello"]"#);

    for (change, wanted) in [
        ("FOO bar", "foo is not a valid change command"),
        ("ONBUILD RUN x", "ONBUILD is not supported"),
        ("EXPOSE abc", "Invalid containerPort: abc"),
        ("CMD /msg", "use the JSON form"),
    ] {
        let out = d.wrun(&["commit", "-c", change, "c1", "bad:1"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(wanted), "{change}: {}", stderr(&out));
    }
    let out = d.wrun(&["commit", "nope", "bad:1"]);
    assert!(
        stderr(&out).contains("No such container: nope"),
        "{}",
        stderr(&out)
    );
    let out = d.wrun(&["images", "-q", "bad"]);
    assert_eq!(stdout(&out), "", "a refused commit stores nothing");
}

#[test]
fn a_guest_made_whiteout_name_is_refused_not_committed_as_a_deletion() {
    let d = daemon_with_fsh();
    run_script(&d, "c1", &["write", "/.wh.etc", "x"]);
    let out = d.wrun(&["commit", "c1", "evil:1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot commit /.wh.etc"), "{err}");
    assert!(err.contains(".wh."), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(stdout(&d.wrun(&["images", "-q", "evil"])), "");
    // The base still has the /etc the name would have deleted.
    assert_eq!(d.wrun_ok(&["run", "--rm", "fsh:1", "cat", "/etc/a"]), "a\n");
}

#[test]
fn commit_of_an_instance_still_writing_pauses_it_and_gives_a_consistent_layer() {
    let d = daemon_with_fsh();
    // 128 MiB in 64 KiB writes: still writing when the commit comes.
    d.wrun_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "fsh:1",
        "write",
        "/started",
        "1",
        ";",
        "fill",
        "/big",
        "134217728",
        ";",
        "sleep",
        "600000",
    ]);
    wait_until("the instance writes", || {
        d.wrun_ok(&["inspect", "--format", "{{.State.Running}}", "busy"])
            .trim()
            == "true"
    });
    poll("the guest began writing", Duration::from_secs(60), || {
        let out = d.wrun(&["commit", "busy", "mid:1"]);
        if !out.status.success() {
            return Err(stderr(&out));
        }
        let out = d.wrun_ok(&[
            "run", "--rm", "mid:1", "cat", "/started", ";", "stat", "/big",
        ]);
        if out.starts_with("1\n") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    let out = d.wrun_ok(&["run", "--rm", "mid:1", "stat", "/big"]);
    let size: u64 = out
        .trim()
        .strip_prefix("file ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("stat /big: {out}"));
    assert_eq!(size % 65536, 0, "a write cut in two by the commit: {size}");
    // Resumed after the commit, as dockerd does.
    let state = d.wrun_ok(&["inspect", "--format", "{{.State.Status}}", "busy"]);
    assert_eq!(state.trim(), "running");
    d.wrun_ok(&["rm", "-f", "busy"]);
}

#[test]
fn docker_commit_and_import_through_the_daemon() {
    if !have_tool("docker") {
        eprintln!("skipped: no docker client");
        return;
    }
    let d = daemon_with_fsh();
    run_script(&d, "c1", CHANGES);
    let id = d.docker_ok(&[
        "commit",
        "-m",
        "by docker",
        "-c",
        r#"CMD ["cat", "/n/f"]"#,
        "c1",
        "dsnap:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.docker_ok(&["run", "--rm", "dsnap:1"]), "hi\n");
    let history = d.docker_ok(&["history", "--format", "{{.Comment}}", "dsnap:1"]);
    assert_eq!(
        history.lines().collect::<Vec<_>>(),
        ["by docker", "the base"]
    );

    let tar = d.env.path("rootfs.tar");
    let id = d.docker_ok(&[
        "import",
        "-c",
        r#"ENTRYPOINT ["/fsh.wasm"]"#,
        tar.to_str().unwrap(),
        "dimp:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "dimp:1", "cat", "/etc/a"]),
        "a\n"
    );
    let comment = d.docker_ok(&["history", "--format", "{{.Comment}}", "dimp:1"]);
    assert_eq!(comment.trim(), "Imported from -");

    for (args, wanted) in [
        (vec!["commit", "nope", "x:1"], "No such container: nope"),
        (
            vec!["commit", "-c", "FOO bar", "c1", "x:1"],
            "foo is not a valid change command",
        ),
    ] {
        let out = d.docker(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(wanted), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn the_api_answers_as_dockerd_does() {
    let d = daemon_with_fsh();
    run_script(&d, "c1", &["write", "/x", "1"]);
    let (status, body) = d.request("POST", "/v1.41/commit?container=c1&repo=api&tag=1", "");
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["Id"].as_str().unwrap().starts_with("sha256:"), "{body}");
    for (query, code, wanted) in [
        ("container=", 400, "invalid name or ID supplied"),
        ("container=nope", 404, "No such container: nope"),
        ("container=c1&repo=Bad", 400, "invalid reference format"),
        ("container=c1&repo=x&tag=a:b", 400, "invalid tag format"),
        (
            "container=c1&changes=FOO%20bar",
            400,
            "foo is not a valid change command",
        ),
    ] {
        let (status, body) = d.request("POST", &format!("/v1.41/commit?{query}"), "");
        assert_eq!(status, code, "{query}: {body}");
        assert!(body.contains(wanted), "{query}: {body}");
    }
    // The body's config, as dockerd takes it, under the changes.
    let (status, body) = d.request(
        "POST",
        "/v1.41/commit?container=c1&repo=api&tag=2&changes=ENV%20B%3D2",
        r#"{"Env":["A=1"],"Cmd":["cat","/x"]}"#,
    );
    assert_eq!(status, 201, "{body}");
    let env = d.wrun_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        "api:2",
    ]);
    assert_eq!(env.trim(), r#"["A=1","B=2"]"#);
    assert_eq!(d.wrun_ok(&["run", "--rm", "api:2"]), "1\n");
    let (status, body) = d.request(
        "POST",
        "/v1.41/images/create?fromSrc=http://example.com/r.tar",
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("only the request body"), "{body}");
}

#[test]
fn import_reads_plain_gzip_and_stdin_and_keeps_the_tars_digest() {
    let env = Env::new();
    let tar = fsh_rootfs();
    let plain = rootfs_file(&env);
    env.ok(&["import", plain.to_str().unwrap(), "plain:1"]);
    // The layer is the tar as given: its digest is the diff_id dockerd
    // gives the same bytes.
    let layers = env.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        "plain:1",
    ]);
    assert_eq!(layers.trim(), format!(r#"["{}"]"#, digest(&tar)));
    let gz = env.path("rootfs.tar.gz");
    std::fs::write(&gz, gzip(&tar)).unwrap();
    env.ok(&["import", gz.to_str().unwrap(), "gz:1"]);
    let layers_gz = env.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        "gz:1",
    ]);
    assert_eq!(layers_gz, layers);
    let out = output_with_input(
        env.cmd().args([
            "import",
            "-m",
            "piped",
            "-c",
            r#"CMD ["/fsh.wasm", "cat", "/etc/a"]"#,
            "-",
            "piped:1",
        ]),
        &tar,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.ok(&["run", "--rm", "piped:1"]), "a\n");
    let os = env.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}",
        "piped:1",
    ]);
    assert_eq!(os.trim(), "wasip1/wasm", "the module's kind sets the os");
    let history = env.ok(&["history", "--format", "{{.Comment}}", "piped:1"]);
    assert_eq!(history.trim(), "piped");
    let zstd = env.path("r.tar.zst");
    std::fs::write(&zstd, [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]).unwrap();
    let err = env.fails(&["import", zstd.to_str().unwrap()]);
    assert!(err.contains("zstd"), "{err}");
    let empty = env.path("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    let err = env.fails(&["import", empty.to_str().unwrap()]);
    assert!(err.contains("empty"), "{err}");
    let err = env.fails(&[
        "import",
        "--platform",
        "linux/amd64",
        plain.to_str().unwrap(),
    ]);
    assert!(err.contains("WebAssembly"), "{err}");
}

/// Imports a hostile rootfs tar, through `wrun import` on the store and
/// `docker import` through a daemon; returns both errors. Each must be one
/// line, and the store unchanged.
fn import_attack(name: &str, tar: Vec<u8>) -> Vec<String> {
    let env = Env::new();
    let plain = rootfs_file(&env);
    env.ok(&["import", plain.to_str().unwrap(), "good:1"]);
    let before = env.store_state();
    let path = env.path(name);
    std::fs::write(&path, &tar).unwrap();
    let mut errors = vec![env.fails(&["import", path.to_str().unwrap(), "evil:1"])];
    assert_eq!(env.store_state(), before, "{name}: the store changed");
    let d = Daemon::start(env);
    let out = d.wrun(&["import", path.to_str().unwrap(), "evil:1"]);
    assert!(!out.status.success(), "{name}");
    errors.push(stderr(&out));
    if have_tool("docker") {
        let out = d.docker(&["import", path.to_str().unwrap(), "evil:1"]);
        assert!(!out.status.success(), "{name}");
        errors.push(stderr(&out));
    }
    assert_eq!(d.env.store_state(), before, "{name}: the store changed");
    let tmp_left: Vec<_> = std::fs::read_dir(d.env.root().join("tmp"))
        .unwrap()
        .collect();
    assert!(tmp_left.is_empty(), "{name}: staging areas are removed");
    for e in &errors {
        assert_eq!(e.trim().lines().count(), 1, "{name}: one error line: {e}");
    }
    errors
}

fn hostile(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut t = Vec::new();
    for (name, kind, link) in entries {
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"pwned"
        } else {
            b""
        };
        raw_entry(&mut t, name, *kind, link, data, 0o644);
    }
    end_tar(t)
}

#[test]
fn import_of_a_zip_slip_entry_is_refused() {
    let victim = tempfile::tempdir().unwrap();
    let target = format!(
        "../../../../../../../../..{}/pwned",
        victim.path().display()
    );
    for e in import_attack(
        "slip.tar",
        hostile(&[(target.as_bytes(), tar::EntryType::Regular, b"")]),
    ) {
        assert!(e.contains("unsafe entry") && e.contains("'..'"), "{e}");
    }
    assert!(!victim.path().join("pwned").exists());
}

#[test]
fn import_of_a_symlink_then_a_write_through_it_is_refused() {
    let victim = tempfile::tempdir().unwrap();
    let link = victim.path().display().to_string();
    import_attack(
        "symlink.tar",
        hostile(&[
            (b"d", tar::EntryType::Symlink, link.as_bytes()),
            (b"d/pwned", tar::EntryType::Regular, b""),
        ]),
    );
    assert!(!victim.path().join("pwned").exists());
}

#[test]
fn import_of_a_hard_link_to_a_host_file_is_refused() {
    for e in import_attack(
        "hardlink.tar",
        hostile(&[(b"passwd", tar::EntryType::Link, b"/etc/passwd")]),
    ) {
        assert!(e.contains("not in the image"), "{e}");
    }
}

#[test]
fn import_of_a_whiteout_of_the_parent_is_refused() {
    for e in import_attack(
        "whiteout.tar",
        hostile(&[(b".wh...", tar::EntryType::Regular, b"")]),
    ) {
        assert!(e.contains("whiteout"), "{e}");
    }
}

#[test]
fn import_of_a_malformed_or_truncated_tar_is_refused() {
    let mut t = Vec::new();
    raw_entry(&mut t, b"f", tar::EntryType::Regular, b"", b"data", 0o644);
    t[148..156].copy_from_slice(b"xxxxxxxx"); // corrupt the checksum field
    for e in import_attack("malformed.tar", end_tar(t)) {
        assert!(e.contains("malformed or truncated"), "{e}");
    }
    let whole = fsh_rootfs();
    for e in import_attack("cut.tar", whole[..whole.len() / 2 + 100].to_vec()) {
        assert!(e.contains("malformed or truncated"), "{e}");
    }
    for e in import_attack("text.tar", b"this is not a tar file, just text".to_vec()) {
        assert!(e.contains("malformed or truncated"), "{e}");
    }
}
