//! `wrun pull` and `wrun push` against a real registry (distribution 2.8,
//! anonymous), with skopeo as the other client.

mod common;

use common::registry::Registry;
use common::{Env, have_tool, skopeo};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `Digest: ` / `digest: ` value in pull's or push's output.
fn digest_in(output: &str) -> String {
    output
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("digest:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {output:?}"))
        .to_owned()
}

fn image_id(env: &Env, name: &str) -> String {
    env.ok(&["image", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_owned()
}

#[test]
fn build_push_rmi_pull_on_a_clean_store_runs_the_same_with_the_same_digests() {
    let Some(reg) = Registry::start() else { return };
    let name = format!("{}/team/hello:1.0", reg.host);
    let built = Env::new();
    built.build_hello("hello:1.0");
    built.ok(&["tag", "hello:1.0", &name]);
    let expected_run = built.ok(&["run", "--rm", "hello:1.0"]);
    let id = image_id(&built, &name);

    let pushed = built.ok(&["push", &name]);
    let mut lines = pushed.lines();
    assert_eq!(
        lines.next(),
        Some(format!("The push refers to repository [{}/team/hello]", reg.host).as_str())
    );
    assert!(
        lines.next().is_some_and(|l| l.ends_with(": Pushed")),
        "{pushed}"
    );
    let digest = digest_in(&pushed);
    // Pushed again: every blob is there already.
    let again = built.ok(&["push", &name]);
    assert!(again.contains(": Layer already exists"), "{again}");
    assert!(!again.contains(": Pushed"), "{again}");
    assert_eq!(digest_in(&again), digest);

    built.ok(&["rmi", &name]);
    let clean = Env::new();
    let pulled = clean.ok(&["pull", &name]);
    assert!(pulled.contains(": Pull complete"), "{pulled}");
    assert_eq!(digest_in(&pulled), digest, "{pulled}");
    assert!(
        pulled.ends_with(&format!(
            "Status: Downloaded newer image for {name}\n{name}\n"
        )),
        "{pulled}"
    );
    assert_eq!(image_id(&clean, &name), id);
    assert_eq!(clean.ok(&["run", "--rm", &name]), expected_run);
    // The stored manifest is the pushed one, byte for byte.
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(
        std::fs::read(clean.root().join("blobs/sha256").join(hex)).expect("pulled manifest"),
        std::fs::read(built.root().join("blobs/sha256").join(hex)).expect("pushed manifest")
    );
    // Pulled again: nothing fetched, and said so.
    let again = clean.ok(&["pull", &name]);
    assert!(again.contains(": Already exists"), "{again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );

    // By digest: the same image, no name added.
    let by_digest = format!("{}/team/hello@{digest}", reg.host);
    let third = Env::new();
    assert_eq!(third.ok(&["pull", "-q", &by_digest]).trim(), by_digest);
    assert_eq!(
        third.ok(&["images", "-q"]).trim(),
        &id["sha256:".len()..][..12]
    );
}

#[test]
fn skopeo_copies_in_wrun_pulls_and_runs_wrun_pushes_skopeo_reads_its_manifest() {
    let Some(reg) = Registry::start() else { return };
    if !have_tool("skopeo") {
        return;
    }
    let env = Env::new();
    env.build_hello("hello:1.0");
    let expected_run = env.ok(&["run", "--rm", "hello:1.0"]);
    let tar = env.path("hello.tar");
    env.ok(&["save", "-o", tar.to_str().expect("utf-8"), "hello:1.0"]);
    let into = format!("docker://{}/x:1", reg.host);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", tar.display()),
        &into,
    ]);
    let name = format!("{}/x:1", reg.host);
    let clean = Env::new();
    clean.ok(&["pull", &name]);
    assert_eq!(clean.ok(&["run", "--rm", &name]), expected_run);

    let pushed_name = format!("{}/wrun/pushed:2", reg.host);
    env.ok(&["tag", "hello:1.0", &pushed_name]);
    let digest = digest_in(&env.ok(&["push", &pushed_name]));
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{pushed_name}"),
    ]);
    let stored = std::fs::read_to_string(
        env.root()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("stored manifest");
    assert_eq!(raw, stored);
}

#[test]
fn a_missing_tag_or_repository_fails_in_dockers_words_and_leaves_the_store_unchanged() {
    let Some(reg) = Registry::start() else { return };
    let env = Env::new();
    env.build_hello("hello:1.0");
    let before = env.store_state();
    for missing in [
        format!("{}/nobody/here:1", reg.host),
        format!("{}/nobody/here@sha256:{}", reg.host, "0".repeat(64)),
    ] {
        let out = env.run(&["pull", &missing]);
        assert_eq!(out.status.code(), Some(1), "{missing}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "Error: manifest for {missing} not found: manifest unknown: manifest unknown\n"
            )
        );
        assert_eq!(stdout(&out), "");
        assert_eq!(env.store_state(), before);
    }
    // A push of a name the store lacks: docker's words, nothing sent.
    let out = env.run(&["push", &format!("{}/nothing:1", reg.host)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: An image does not exist locally with the tag: {}/nothing\n",
            reg.host
        )
    );
    assert_eq!(reg.get("/v2/_catalog").1.trim(), r#"{"repositories":[]}"#);
    // No registry in the name: how to name one.
    let err = env.fails(&["pull", "hello:2"]);
    assert!(
        err.contains("names no registry") && err.contains("HOST[:PORT]/"),
        "{err}"
    );
}
