//! End to end: Dockerfile builds on top of other images — `FROM` a stored
//! image, an image tar or an earlier stage, multi-stage `COPY --from`,
//! `--target`, `.dockerignore`, `ADD` of a tar, and the errors of each,
//! checked against what Docker's classic builder does.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::*;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// Stores `base:1`: the file shell at /bin/fsh, with an Env, a Label and a
/// Cmd for images built on it to inherit.
fn base_image(env: &Env) -> tempfile::TempDir {
    let ctx = dockerfile_context(
        &[("fsh.wasm", &std::fs::read(FSH).unwrap())],
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nENV A=1\nLABEL l1=v1\nCMD [\"/bin/fsh\", \"echo\", \"base\"]\n",
    );
    env.ok(&["build", "-q", "-t", "base:1", p(&ctx)]);
    ctx
}

fn inspect(env: &Env, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", name])).unwrap();
    v[0].clone()
}

fn history(env: &Env, name: &str) -> Vec<String> {
    env.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        name,
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

fn run(env: &Env, image: &str, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm", image];
    all.extend_from_slice(args);
    env.ok(&all)
}

/// Docker 20.10's classic builder on the same Dockerfile (checked against
/// the oracle): the base's layers, config and history come first; ENV,
/// LABEL, EXPOSE and VOLUME merge; ENTRYPOINT drops the base's Cmd; each
/// instruction adds a history line in Docker's words.
#[test]
fn from_an_image_extends_its_layers_config_and_history() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(
        &[("f.txt", b"hello from the context")],
        "ARG TAG=1\nFROM base:${TAG}\nARG TAG\nENV B=$TAG C=${A}x\nLABEL l2=v2\nCOPY f.txt /f.txt\nWORKDIR /w\nEXPOSE 80\nVOLUME /data\nUSER 1000\nSTOPSIGNAL SIGINT\nENTRYPOINT [\"/bin/fsh\"]\n",
    );
    let out = env.ok(&["build", "-t", "app:1", p(&ctx)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Step 1/12 : ARG TAG=1", "{out}");
    assert_eq!(lines[1], "Step 2/12 : FROM base:${TAG}", "{out}");
    let base_id = inspect(&env, "base:1")["Id"].as_str().unwrap().to_string();
    assert_eq!(lines[2], format!(" ---> {}", &base_id[7..19]), "{out}");
    assert!(
        out.contains("Step 12/12 : ENTRYPOINT [\"/bin/fsh\"]\n ---> "),
        "{out}"
    );
    let app = inspect(&env, "app:1");
    assert!(
        out.contains(&format!(
            "Successfully built {}\nSuccessfully tagged app:1\n",
            &app["Id"].as_str().unwrap()[7..19]
        )),
        "{out}"
    );

    let base = inspect(&env, "base:1");
    let base_layers = base["RootFS"]["Layers"].as_array().unwrap().clone();
    let layers = app["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), base_layers.len() + 1, "one COPY, one layer");
    assert_eq!(
        layers[..base_layers.len()],
        base_layers[..],
        "the base's layers first"
    );
    let c = &app["Config"];
    // dockerd adds its default PATH when a stage begins without one.
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=1",
            "B=1",
            "C=1x"
        ])
    );
    assert_eq!(c["Labels"], serde_json::json!({"l1": "v1", "l2": "v2"}));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/fsh"]));
    assert!(c["Cmd"].is_null(), "ENTRYPOINT drops the base's Cmd: {c}");
    assert_eq!(c["WorkingDir"], "/w");
    assert_eq!(c["User"], "1000");
    // `image inspect` leaves StopSignal out: the stored config has it.
    let id = app["Id"].as_str().unwrap();
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.root().join("blobs/sha256").join(&id[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["config"]["StopSignal"], "SIGINT");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));

    let h = history(&env, "app:1");
    let base_h = history(&env, "base:1");
    assert_eq!(
        h[h.len() - base_h.len()..],
        base_h[..],
        "the base's history last (oldest)"
    );
    let new: Vec<&str> = h[..h.len() - base_h.len()]
        .iter()
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(new.len(), 10, "{h:?}");
    assert_eq!(new[0], "/bin/sh -c #(nop)  ARG TAG|0B");
    assert_eq!(new[1], "/bin/sh -c #(nop)  ENV B=1 C=1x|0B");
    assert_eq!(new[2], "/bin/sh -c #(nop)  LABEL l2=v2|0B");
    assert!(
        new[3].starts_with("/bin/sh -c #(nop) COPY file:") && new[3].contains(" in /f.txt |"),
        "{}",
        new[3]
    );
    assert_eq!(new[4], "/bin/sh -c #(nop) WORKDIR /w|0B");
    assert_eq!(new[5], "/bin/sh -c #(nop)  EXPOSE 80|0B");
    assert_eq!(new[6], "/bin/sh -c #(nop)  VOLUME [/data]|0B");
    assert_eq!(new[7], "/bin/sh -c #(nop)  USER 1000|0B");
    assert_eq!(new[8], "/bin/sh -c #(nop)  STOPSIGNAL SIGINT|0B");
    assert_eq!(new[9], "/bin/sh -c #(nop)  ENTRYPOINT [\"/bin/fsh\"]|0B");

    // The image runs: the base's module, the build's file.
    assert_eq!(
        run(&env, "app:1", &["cat", "/f.txt"]),
        "hello from the context\n"
    );
    // The base is untouched.
    assert_eq!(run(&env, "base:1", &[]), "base\n");
    assert_store_consistent(&env);
}

#[test]
fn the_same_context_and_base_give_the_same_image() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(
        &[("f.txt", b"x")],
        "FROM base:1\nCOPY f.txt /f.txt\nENV X=1\n",
    );
    let a = env.ok(&["build", "-q", p(&ctx)]);
    let b = env.ok(&["build", "-q", "-t", "again:1", p(&ctx)]);
    assert_eq!(a, b);
    assert!(
        a.trim().starts_with("sha256:") && a.trim().len() == 71,
        "-q prints only the ID: {a}"
    );
}

#[test]
fn multi_stage_copies_from_stages_by_name_and_index_and_from_images() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(
        &[("data/a.txt", b"a"), ("data/sub/b.txt", b"b")],
        "FROM base:1 AS build\nCOPY data /data\nFROM scratch AS second\nCOPY --from=build /data/a.txt /only-a\nFROM base:1\nCOPY --from=build /data /copied\nCOPY --from=1 /only-a /from-index\nCOPY --from=base:1 /bin/fsh /bin/fsh2\nENTRYPOINT [\"/bin/fsh2\"]\n",
    );
    let before: Vec<String> = env
        .ok(&["images", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    env.ok(&["build", "-q", "-t", "multi:1", p(&ctx)]);
    let after: Vec<String> = env
        .ok(&["images", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        after.len(),
        before.len() + 1,
        "only the last stage is stored: {after:?}"
    );
    assert_eq!(
        run(
            &env,
            "multi:1",
            &[
                "cat",
                "/copied/sub/b.txt",
                ";",
                "cat",
                "/from-index",
                ";",
                "ls",
                "/"
            ]
        ),
        "b\na\nbin/\ncopied/\nfrom-index\n"
    );

    // --target stores the stage it names, and only what it needs is built.
    env.ok(&["build", "-q", "--target", "BUILD", "-t", "stage:1", p(&ctx)]);
    assert_eq!(
        run(&env, "stage:1", &["/bin/fsh", "cat", "/data/a.txt"]),
        "a\n"
    );
    let err = env.fails(&["build", "--target", "nope", p(&ctx)]);
    assert!(err.contains("failed to reach build target nope"), "{err}");
}

#[test]
fn copy_from_a_missing_or_later_stage_fails_with_file_and_line() {
    let env = Env::new();
    let _base = base_image(&env);
    for (dockerfile, needle, line) in [
        (
            "FROM base:1\nCOPY --from=nope /x /y\n",
            "no earlier build stage and no image",
            2,
        ),
        (
            "FROM base:1 AS a\n\nCOPY --from=b /x /y\nFROM base:1 AS b\n",
            "built after this one",
            3,
        ),
        (
            "FROM base:1 AS a\nCOPY --from=a /x /y\n",
            "this stage itself",
            2,
        ),
        (
            "FROM base:1\nCOPY --from=3 /x /y\n",
            "index out of bounds",
            2,
        ),
        ("FROM b AS a\nFROM base:1 AS b\n", "built after this one", 1),
        ("FROM nope:1\n", "No such image: nope:1", 1),
        ("FROM base:1\nBOGUS x\n", "unknown instruction: BOGUS", 2),
        (
            "FROM base:1\nFROM base:1\nCOPY --from=0 /nothing /y\n",
            "does not exist",
            3,
        ),
    ] {
        let ctx = dockerfile_context(&[], dockerfile);
        let before = env.store_state();
        let err = env.fails(&["build", p(&ctx)]);
        assert!(err.contains(needle), "{dockerfile:?}: {err}");
        assert!(
            err.contains(&format!("Dockerfile:{line}: ")),
            "{dockerfile:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert_eq!(env.store_state(), before, "a failed build stores nothing");
    }
}

/// `load` refuses images of other platforms; `import` of a Linux rootfs
/// stores one that says wasm but whose Cmd is an ELF file: FROM refuses it.
#[test]
fn a_base_that_is_not_a_wasm_image_is_refused_naming_it() {
    let env = Env::new();
    let mut layer = Vec::new();
    raw_entry(
        &mut layer,
        b"x",
        tar::EntryType::Regular,
        b"",
        b"\x7fELF not wasm",
        0o755,
    );
    let rootfs = env.path("rootfs.tar");
    std::fs::write(&rootfs, end_tar(layer)).unwrap();
    env.ok(&[
        "import",
        "-c",
        "CMD [\"/x\"]",
        rootfs.to_str().unwrap(),
        "linux:1",
    ]);
    let ctx = dockerfile_context(&[], "FROM linux:1\nCMD [\"/x\"]\n");
    let before = env.store_state();
    let err = env.fails(&["build", p(&ctx)]);
    assert!(
        err.contains("Dockerfile:1: FROM linux:1: linux:1 is not a wasm image")
            && err.contains("its entrypoint /x is not a WebAssembly module"),
        "{err}"
    );
    assert_eq!(env.store_state(), before);
}

#[test]
fn from_an_image_tar_loads_it_first() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(
        &[],
        "FROM ./base.tar\nCMD [\"/bin/fsh\", \"echo\", \"from a tar\"]\n",
    );
    let tar = ctx.path().join("base.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "base:1"]);
    let fresh = Env::new();
    fresh.ok(&["build", "-q", "-t", "fromtar:1", p(&ctx)]);
    assert_eq!(run(&fresh, "fromtar:1", &[]), "from a tar\n");
    assert!(
        fresh.ok(&["images"]).contains("base"),
        "the tar's image is loaded too"
    );
    // Only a tar of the context: FROM names no other file of the host.
    for outside in ["/etc/passwd", "../base.tar"] {
        let ctx = dockerfile_context(&[], &format!("FROM {outside}\n"));
        let err = fresh.fails(&["build", p(&ctx)]);
        assert!(
            err.contains("Dockerfile:1: FROM") && err.contains("build context"),
            "{err}"
        );
    }
}

/// Docker: `.dockerignore` leaves paths out of `COPY`, exceptions bring
/// some back, and one that excludes the Dockerfile still lets the build
/// read it (the Dockerfile is then not copied by `COPY .`; `.dockerignore`
/// itself is, unless it excludes itself).
#[test]
fn dockerignore_leaves_paths_out_even_the_dockerfile() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(
        &[
            ("a.txt", b"a"),
            ("x.log", b"log"),
            ("deep/y.log", b"log"),
            ("secret/key", b"k"),
            ("secret/ok", b"ok"),
            (
                ".dockerignore",
                b"# build files\nDockerfile\n**/*.log\nsecret\n!secret/ok\n",
            ),
        ],
        "FROM base:1\nCOPY . /ctx/\nENTRYPOINT [\"/bin/fsh\"]\n",
    );
    env.ok(&["build", "-q", "-t", "ign:1", p(&ctx)]);
    assert_eq!(
        run(&env, "ign:1", &["tree", "/ctx"]),
        "/ctx/.dockerignore\n/ctx/a.txt\n/ctx/deep\n/ctx/secret\n/ctx/secret/ok\n"
    );
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM base:1\nCOPY x.log /x.log\n",
    )
    .unwrap();
    let err = env.fails(&["build", p(&ctx)]);
    assert!(
        err.contains("x.log") && err.contains("excluded by .dockerignore"),
        "{err}"
    );
    std::fs::write(ctx.path().join(".dockerignore"), "!\n").unwrap();
    let err = env.fails(&["build", p(&ctx)]);
    assert!(err.contains("illegal exclusion pattern"), "{err}");
}

#[test]
fn add_extracts_plain_gzip_bzip2_and_xz_tars_and_copies_other_files() {
    let env = Env::new();
    let _base = base_image(&env);
    let mut t = Vec::new();
    raw_entry(&mut t, b"dir/", tar::EntryType::Directory, b"", b"", 0o755);
    raw_entry(
        &mut t,
        b"dir/in.txt",
        tar::EntryType::Regular,
        b"",
        b"inside",
        0o644,
    );
    let plain = end_tar(t);
    let gz = gzip(&plain);
    let bz2 = compressed_by("bzip2", &plain);
    let xz = compressed_by("xz", &plain);
    let ctx = dockerfile_context(
        &[
            ("a.tar", &plain),
            ("b.tgz", &gz),
            ("c.txt", b"plain file"),
            ("d.tar.bz2", &bz2),
            ("e.tar.xz", &xz),
        ],
        "FROM base:1\nADD a.tar /x/\nADD b.tgz /y\nADD c.txt /z.txt\nCOPY a.tar /kept.tar\nADD d.tar.bz2 e.tar.xz /w/\nENTRYPOINT [\"/bin/fsh\"]\n",
    );
    env.ok(&["build", "-q", "-t", "add:1", p(&ctx)]);
    assert_eq!(
        run(
            &env,
            "add:1",
            &[
                "cat",
                "/x/dir/in.txt",
                ";",
                "cat",
                "/y/dir/in.txt",
                ";",
                "cat",
                "/z.txt",
                ";",
                "stat",
                "/kept.tar",
                ";",
                "tree",
                "/w"
            ]
        ),
        format!(
            "inside\ninside\nplain file\nfile {}\n/w/dir\n/w/dir/in.txt\n",
            plain.len()
        )
    );
    let h = history(&env, "add:1");
    assert!(
        h.iter()
            .any(|l| l.starts_with("/bin/sh -c #(nop) ADD file:") && l.contains(" in /x/ ")),
        "{h:?}"
    );

    // A compressed tar wrun cannot read is refused, not silently copied.
    let ctx = dockerfile_context(
        &[("c.tar.zst", b"\x28\xb5\x2f\xfd\x00\x00")],
        "FROM base:1\nADD c.tar.zst /\n",
    );
    let err = env.fails(&["build", p(&ctx)]);
    assert!(
        err.contains("zstd") && err.contains("Dockerfile:2"),
        "{err}"
    );
}

/// `bytes` compressed by the command `tool` (bzip2, xz) reading stdin.
fn compressed_by(tool: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new(tool)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

/// An `ADD`ed tar is extracted as a layer is: entries that climb out are
/// refused, nothing is written outside the extraction.
#[test]
fn add_of_a_tar_with_dot_dot_entries_escapes_nothing() {
    let env = Env::new();
    let _base = base_image(&env);
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        b"../../escaped",
        tar::EntryType::Regular,
        b"",
        b"x",
        0o644,
    );
    let ctx = dockerfile_context(
        &[("evil.tar", &end_tar(t))],
        "FROM base:1\nADD evil.tar /x/\n",
    );
    let before = env.store_state();
    let err = env.fails(&["build", p(&ctx)]);
    assert!(err.contains("escaped"), "{err}");
    assert_eq!(env.store_state(), before);
    assert!(!env.dir.path().join("escaped").exists());
    assert!(!Path::new(&env.root()).join("escaped").exists());
}

#[test]
fn shell_form_run_without_a_shell_is_refused_with_the_exec_form_hint() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(&[], "FROM base:1\nRUN fsh echo hi\n");
    let err = env.fails(&["build", p(&ctx)]);
    assert!(
        err.contains("Dockerfile:2:") && err.contains("no /bin/sh") && err.contains("RUN [\""),
        "{err}"
    );
}

/// `wrun -H` builds in a scratch store of its own, then loads the image
/// into the daemon: the base images come from the daemon's store.
#[test]
fn a_build_through_a_daemon_starts_from_the_daemons_images() {
    let d = Daemon::start(Env::new());
    let base = dockerfile_context(
        &[("fsh.wasm", &std::fs::read(FSH).unwrap())],
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nENTRYPOINT [\"/bin/fsh\"]\n",
    );
    d.wrun_ok(&["build", "-q", "-t", "dbase:1", p(&base)]);
    let ctx = dockerfile_context(
        &[("f.txt", b"via the daemon")],
        "FROM dbase:1 AS first\nCOPY f.txt /f.txt\nFROM dbase:1\nCOPY --from=first /f.txt /g.txt\nCOPY --from=dbase:1 /bin/fsh /bin/again\n",
    );
    let out = d.wrun_ok(&["build", "-t", "dapp:1", p(&ctx)]);
    assert!(out.contains("Step 5/5 : COPY --from=dbase:1"), "{out}");
    assert_eq!(
        d.wrun_ok(&["run", "--rm", "dapp:1", "cat", "/g.txt"]),
        "via the daemon\n"
    );
    let err = String::from_utf8_lossy(
        &d.wrun(&["build", p(&dockerfile_context(&[], "FROM nothere:1\n"))])
            .stderr,
    )
    .into_owned();
    assert!(
        err.contains("Dockerfile:1: FROM nothere:1") && err.contains("No such image"),
        "{err}"
    );
}

/// `RUN` (exec form) runs a module of the stage over a writable view; its
/// changes are the step's layer, its output is shown, the build args in
/// scope reach it and its history line as dockerd writes them.
#[test]
fn run_steps_add_layers_and_the_shell_form_goes_through_bin_sh() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(
        &[],
        "FROM base:1\nARG V=7\nRUN [\"/bin/fsh\", \"write\", \"/made\", \"hi\", \";\", \"echo\", \"from the step\"]\nRUN [\"/bin/fsh\", \"cat\", \"/made\"]\nENTRYPOINT [\"/bin/fsh\"]\n",
    );
    let out = env.ok(&["build", "-t", "ran:1", p(&ctx)]);
    assert!(
        out.contains("from the step\n"),
        "the step's output is shown: {out}"
    );
    assert_eq!(run(&env, "ran:1", &["cat", "/made"]), "hi\n");
    let h = history(&env, "ran:1");
    assert!(h[1].starts_with("|1 V=7 /bin/fsh cat /made|"), "{h:?}");
    assert!(
        h[2].starts_with("|1 V=7 /bin/fsh write /made hi ; echo from the step|"),
        "{h:?}"
    );
    let layers = |name: &str| {
        inspect(&env, name)["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        layers("ran:1"),
        layers("base:1") + 1,
        "a step that changes nothing adds no layer"
    );

    // A failing step stops the build with its code and last lines.
    let ctx = dockerfile_context(
        &[],
        "FROM base:1\nRUN [\"/bin/fsh\", \"echo\", \"last words\", \";\", \"exit\", \"3\"]\n",
    );
    let before = env.store_state();
    let err = env.fails(&["build", p(&ctx)]);
    assert!(err.contains("Dockerfile:2: The command '/bin/fsh echo last words ; exit 3' returned a non-zero code: 3"), "{err}");
    assert!(err.contains("last words"), "{err}");
    assert_eq!(env.store_state(), before);

    // With a /bin/sh in the stage, the shell form runs `/bin/sh -c LINE`
    // (fsh is no shell: it fails on `-c`, which shows how it was called).
    let ctx = dockerfile_context(
        &[("fsh.wasm", &std::fs::read(FSH).unwrap())],
        "FROM base:1\nCOPY fsh.wasm /bin/sh\nRUN write /x y\n",
    );
    let err = env.fails(&["build", p(&ctx)]);
    assert!(
        err.contains("The command '/bin/sh -c write /x y' returned a non-zero code: 1"),
        "{err}"
    );
}

#[test]
fn build_flags_set_the_limits_of_run_steps() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(
        &[],
        "FROM base:1\nRUN [\"/bin/fsh\", \"sleep\", \"600000\"]\n",
    );
    let err = env.fails(&["build", "--timeout", "1s", p(&ctx)]);
    assert!(err.contains("ran past the step timeout of 1s"), "{err}");
    let err = env.fails(&["build", "--memory", "lots", p(&ctx)]);
    assert!(err.contains("--memory"), "{err}");
}

/// As dockerd: an unset `$NAME` expands to nothing (no error), `:-` and
/// `:+` apply, and a `COPY --from` value is expanded from the ARGs in scope.
#[test]
fn unset_names_are_empty_and_copy_from_values_are_expanded() {
    let env = Env::new();
    let _base = base_image(&env);
    let ctx = dockerfile_context(
        &[("data/a.txt", b"a")],
        "FROM base:1 AS build\nCOPY data /data\nFROM base:1\nARG SRC=build\nLABEL x=a${NOPE}b y=${NOPE:-dflt} z=${A:+set}\nCOPY --from=$SRC /data/a.txt /a\nCMD [\"/bin/fsh\", \"cat\", \"/a\"]\n",
    );
    let id = env.ok(&["build", "-q", "-t", "expanded:1", p(&ctx)]);
    let labels = &inspect(&env, "expanded:1")["Config"]["Labels"];
    assert_eq!(labels["x"], "ab");
    assert_eq!(labels["y"], "dflt");
    assert_eq!(labels["z"], "set", "A=1 comes from the base's Env");
    // The same file with --from written out gives the same image.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM base:1 AS build\nCOPY data /data\nFROM base:1\nARG SRC=build\nLABEL x=a${NOPE}b y=${NOPE:-dflt} z=${A:+set}\nCOPY --from=build /data/a.txt /a\nCMD [\"/bin/fsh\", \"cat\", \"/a\"]\n",
    )
    .unwrap();
    assert_eq!(env.ok(&["build", "-q", p(&ctx)]), id);
    // A --from that expands to a later stage is refused with the line.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM base:1\nARG SRC=1\nCOPY --from=$SRC /x /x\nFROM base:1\n",
    )
    .unwrap();
    let err = env.fails(&["build", p(&ctx)]);
    assert!(
        err.contains("Dockerfile:3:") && err.contains("stage 1 is this stage or a later one"),
        "{err}"
    );
}
