//! End to end: the image commands as a user runs them.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;

#[test]
fn build_list_inspect_tag_save_rmi_load_round_trip() {
    let env = Env::new();
    let out = env.path("hello.tar");
    let build = env.run(&[
        "build",
        "-t",
        "hello:1.0",
        "-o",
        out.to_str().unwrap(),
        HELLO_DIR,
    ]);
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    // Docker's classic builder prints its steps and result on stdout.
    let stdout = String::from_utf8_lossy(&build.stdout);
    assert!(stdout.contains("Successfully tagged hello:1.0"), "{stdout}");
    assert!(out.is_file());

    let images = env.ok(&["images"]);
    let lines: Vec<&str> = images.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY")
            && lines[0].contains("IMAGE ID")
            && lines[0].contains("SIZE"),
        "{images}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hello ") && l.contains("1.0")),
        "{images}"
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "hello:1.0"])).unwrap();
    let img = &inspect[0];
    assert_eq!(img["Architecture"], "wasm");
    assert_eq!(img["Os"], "wasip1");
    assert_eq!(
        img["Config"]["Entrypoint"],
        serde_json::json!(["/hello.wasm"])
    );
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["world"]));
    assert_eq!(img["Config"]["Env"], serde_json::json!(["GREETING=Hello"]));
    assert_eq!(img["RepoTags"], serde_json::json!(["hello:1.0"]));
    assert_eq!(img["Wasm"]["Kind"], "wasip1");
    let id = img["Id"].as_str().unwrap().to_string();
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            "hello:1.0"
        ])
        .trim(),
        "wasip1/wasm"
    );

    let history = env.ok(&["history", "hello:1.0"]);
    assert!(history.contains("COPY hello.wasm /hello.wasm"), "{history}");
    assert!(
        history
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&id["sha256:".len()..][..12]),
        "{history}"
    );

    env.ok(&["tag", "hello:1.0", "hello:latest"]);
    assert!(env.ok(&["images", "hello"]).lines().count() == 3);
    let copy = env.path("copy.tar");
    env.ok(&["save", "-o", copy.to_str().unwrap(), "hello:1.0"]);

    let rmi = env.ok(&["rmi", "hello:1.0"]);
    assert_eq!(
        rmi.trim(),
        "Untagged: hello:1.0",
        "another name remains, so only untag"
    );
    let rmi = env.ok(&["rmi", "hello:latest"]);
    assert!(
        rmi.contains("Untagged: hello:latest") && rmi.contains(&format!("Deleted: {id}")),
        "{rmi}"
    );
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
    let blobs = std::fs::read_dir(env.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "rmi of the last name removes unreferenced blobs");

    let loaded = env.ok(&["load", "-i", copy.to_str().unwrap()]);
    assert_eq!(loaded.trim(), "Loaded image: hello:1.0");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "hello:1.0"])).unwrap();
    assert_eq!(
        inspect[0]["Id"].as_str().unwrap(),
        id,
        "a save/load round trip keeps the image ID"
    );
}

#[test]
fn builds_are_reproducible_across_stores() {
    let a = Env::new();
    let b = Env::new();
    let (ta, tb) = (a.path("a.tar"), b.path("b.tar"));
    a.ok(&[
        "build",
        "-q",
        "-t",
        "hello:1.0",
        "-o",
        ta.to_str().unwrap(),
        HELLO_DIR,
    ]);
    b.ok(&[
        "build",
        "-q",
        "-t",
        "hello:1.0",
        "-o",
        tb.to_str().unwrap(),
        HELLO_DIR,
    ]);
    let digest = |e: &Env| {
        e.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Descriptor.digest}}",
            "hello:1.0",
        ])
    };
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(
        std::fs::read(&ta).unwrap(),
        std::fs::read(&tb).unwrap(),
        "the image tars are byte-identical"
    );

    // SOURCE_DATE_EPOCH changes timestamps, hence the digest, reproducibly.
    let c = Env::new();
    let id = |e: &Env, epoch: &str| {
        e.cmd()
            .env("SOURCE_DATE_EPOCH", epoch)
            .args(["build", "-q", HELLO_DIR])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap()
    };
    let one = id(&c, "1700000000");
    assert_eq!(one, id(&c, "1700000000"));
    assert_ne!(one, a.ok(&["images", "-q", "--no-trunc"]).trim());
    let created = c.ok(&["image", "inspect", "-f", "{{.Created}}", &one]);
    assert_eq!(created.trim(), "2023-11-14T22:13:20Z");
}

fn context_with(files: &[(&str, &[u8])], toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let module = std::fs::read(format!("{HELLO_DIR}/hello.wasm")).unwrap();
    std::fs::write(dir.path().join("hello.wasm"), module).unwrap();
    for (name, bytes) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::write(dir.path().join("wrun.toml"), toml).unwrap();
    dir
}

#[test]
fn copy_entries_land_in_the_rootfs_with_declared_metadata() {
    let env = Env::new();
    let ctx = context_with(
        &[
            ("static/index.html", b"<h1>hi</h1>"),
            ("static/css/site.css", b"body{}"),
        ],
        r#"
name = "site"
module = "hello.wasm"
expose = ["8080/tcp"]
volumes = ["/data"]
labels = { "org.example.team" = "edge" }
[[copy]]
src = "static"
dest = "/srv/static"
"#,
    );
    std::os::unix::fs::symlink("index.html", ctx.path().join("static/home.html")).unwrap();
    env.ok(&["build", ctx.path().to_str().unwrap()]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "site"])).unwrap();
    assert_eq!(
        inspect[0]["Config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(
        inspect[0]["Config"]["Volumes"],
        serde_json::json!({"/data": {}})
    );
    assert_eq!(inspect[0]["Config"]["Labels"]["org.example.team"], "edge");
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    // The snapshot holds the files where the build file put them.
    let snapshots: Vec<_> = std::fs::read_dir(env.root().join("snapshots"))
        .unwrap()
        .flatten()
        .collect();
    let rootfs = snapshots[0].path().join("rootfs");
    assert_eq!(
        std::fs::read(rootfs.join("srv/static/index.html")).unwrap(),
        b"<h1>hi</h1>"
    );
    assert_eq!(
        std::fs::read(rootfs.join("srv/static/css/site.css")).unwrap(),
        b"body{}"
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("srv/static/home.html"))
            .unwrap()
            .to_str(),
        Some("index.html")
    );
}

#[test]
fn build_refuses_sources_outside_the_context_naming_them() {
    let env = Env::new();
    for (src, needle) in [
        ("../outside", "outside the build context"),
        ("/etc/passwd", "absolute path"),
    ] {
        let ctx = context_with(
            &[],
            &format!("module = \"hello.wasm\"\n[[copy]]\nsrc = \"{src}\"\ndest = \"/x\"\n"),
        );
        let err = env.fails(&["build", ctx.path().to_str().unwrap()]);
        assert!(err.contains(src) && err.contains(needle), "{src}: {err}");
    }
    // A symlink in the context pointing out, as the source or inside a copied directory.
    let ctx = context_with(
        &[("dir/ok.txt", b"ok")],
        "module = \"hello.wasm\"\n[[copy]]\nsrc = \"link\"\ndest = \"/x\"\n",
    );
    std::os::unix::fs::symlink("/etc", ctx.path().join("link")).unwrap();
    let err = env.fails(&["build", ctx.path().to_str().unwrap()]);
    assert!(
        err.contains("\"link\"") && err.contains("outside the build context"),
        "{err}"
    );
    let ctx = context_with(
        &[("dir/ok.txt", b"ok")],
        "module = \"hello.wasm\"\n[[copy]]\nsrc = \"dir\"\ndest = \"/x\"\n",
    );
    std::os::unix::fs::symlink("../../../etc/shadow", ctx.path().join("dir/evil")).unwrap();
    let err = env.fails(&["build", ctx.path().to_str().unwrap()]);
    assert!(
        err.contains("dir/evil") && err.contains("outside the build context"),
        "{err}"
    );
    assert_eq!(
        env.ok(&["images", "-q"]).trim(),
        "",
        "a failed build stores nothing"
    );
}

/// Checks every failure it sees prints exactly one line.
struct OneLine(Env);

impl OneLine {
    fn fails(&self, args: &[&str]) -> String {
        let err = self.0.fails(args);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        err
    }
}

#[test]
fn build_errors_are_one_clear_line() {
    let env = OneLine(Env::new());
    let ctx = context_with(
        &[("bad.wasm", b"\0asm\x01\0\0\0\x05\xff\xff")],
        "module = \"bad.wasm\"\n",
    );
    let err = env.fails(&["build", ctx.path().to_str().unwrap()]);
    assert!(
        err.contains("bad.wasm") && err.contains("invalid WebAssembly"),
        "{err}"
    );
    let ctx = context_with(&[("app.txt", b"hello")], "module = \"app.txt\"\n");
    let err = env.fails(&["build", ctx.path().to_str().unwrap()]);
    assert!(
        err.contains("app.txt") && err.contains("not a WebAssembly binary"),
        "{err}"
    );
    let ctx = context_with(&[], "module = \"missing.wasm\"\n");
    let err = env.fails(&["build", ctx.path().to_str().unwrap()]);
    assert!(
        err.contains("missing.wasm") && err.contains("does not exist"),
        "{err}"
    );
    let ctx = context_with(&[], "module = \"hello.wasm\"\nargz = []\n");
    let err = env.fails(&["build", ctx.path().to_str().unwrap()]);
    assert!(err.contains("wrun.toml:2") && err.contains("argz"), "{err}");
    let err = env.fails(&["build", "-t", "Bad:Name", HELLO_DIR]);
    assert!(err.contains("invalid reference format"), "{err}");
    let err = env.fails(&["build", "/nonexistent/context"]);
    assert!(err.contains("/nonexistent/context"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn dockerfile_syntax_builds_the_same_kind_of_image() {
    let env = Env::new();
    let ctx = context_with(&[("static/a.txt", b"a")], "");
    std::fs::remove_file(ctx.path().join("wrun.toml")).unwrap();
    std::fs::write(
        ctx.path().join("Wasmfile"),
        "FROM scratch\nARG V=1\nCOPY hello.wasm /app/hello.wasm\nCOPY static /srv/\nENV GREETING=Hey\nLABEL v=$V\nENTRYPOINT [\"/app/hello.wasm\"]\nCMD [\"you\"]\n",
    )
    .unwrap();
    env.ok(&[
        "build",
        "-t",
        "df:1",
        "--build-arg",
        "V=7",
        ctx.path().to_str().unwrap(),
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "df:1"])).unwrap();
    assert_eq!(
        inspect[0]["Config"]["Entrypoint"],
        serde_json::json!(["/app/hello.wasm"])
    );
    assert_eq!(inspect[0]["Config"]["Labels"]["v"], "7");
    assert_eq!(inspect[0]["Wasm"]["Path"], "/app/hello.wasm");
}

#[test]
fn tag_moves_names_and_rmi_by_id_needs_force_for_many_names() {
    let env = Env::new();
    let id = env.build_hello("hello:1.0");
    env.ok(&["tag", "hello:1.0", "hello:2.0"]);
    let err = env.fails(&["rmi", &id[7..19]]);
    assert!(err.contains("must be forced"), "{err}");
    let out = env.ok(&["rmi", "-f", &id[7..19]]);
    assert!(
        out.contains("Untagged: hello:1.0")
            && out.contains("Untagged: hello:2.0")
            && out.contains("Deleted:"),
        "{out}"
    );
    let err = env.fails(&["rmi", "hello:1.0"]);
    assert!(err.contains("No such image: hello:1.0"), "{err}");
    let err = env.fails(&["tag", "nosuch:1", "x:1"]);
    assert!(err.contains("No such image"), "{err}");
}

#[test]
fn prune_removes_dangling_images_and_df_reports_space() {
    let env = Env::new();
    env.build_hello("hello:1.0");
    // Rebuilding the name onto a different image leaves the old one dangling.
    let other = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", "86400")
        .args(["build", "-q", "-t", "hello:1.0", HELLO_DIR])
        .output()
        .unwrap();
    assert!(other.status.success());
    let images = env.ok(&["images"]);
    assert!(images.contains("<none>"), "{images}");
    let df = env.ok(&["system", "df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("Images") && l.contains('2')),
        "{df}"
    );
    let pruned = env.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.contains("deleted: sha256:") && pruned.contains("Total reclaimed space"),
        "{pruned}"
    );
    let images = env.ok(&["images"]);
    assert!(
        !images.contains("<none>") && images.contains("hello"),
        "{images}"
    );
    env.ok(&["system", "prune", "-a", "-f"]);
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
}

#[test]
fn skopeo_accepts_the_image_tar() {
    if !have_tool("skopeo") {
        return;
    }
    let env = Env::new();
    let tar = env.path("hello.tar");
    env.ok(&[
        "build",
        "-q",
        "-t",
        "hello:1.0",
        "-o",
        tar.to_str().unwrap(),
        HELLO_DIR,
    ]);
    let archive = format!("oci-archive:{}", tar.display());
    let raw = skopeo(&["inspect", "--raw", &archive]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let dir = env.path("oci-dir");
    let layout = format!("oci:{}", dir.display());
    skopeo(&["copy", "-q", &archive, &layout]);
    assert!(dir.join("index.json").is_file());
    // And what skopeo writes loads back.
    let back = env.path("from-skopeo.tar");
    skopeo(&[
        "copy",
        "-q",
        &layout,
        &format!("oci-archive:{}:skopeo/hello:2.0", back.display()),
    ]);
    let other = Env::new();
    assert_eq!(
        other.ok(&["load", "-i", back.to_str().unwrap()]).trim(),
        "Loaded image: skopeo/hello:2.0"
    );
}
