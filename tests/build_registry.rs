//! End to end: `FROM HOST[:PORT]/NAME:TAG` pulled from a real registry
//! (distribution 2.8) when the store lacks it, again with `--pull`, with
//! docker's pull lines after the classic builder's `Step 1/N : FROM` line.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::registry::Registry;
use common::*;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

fn image_id(env: &Env, name: &str) -> String {
    env.ok(&["image", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_owned()
}

/// Builds the file shell's image in a store of its own and pushes it to
/// `reg` as `name`; returns its ID and the manifest digest pushed.
fn push_base(reg: &Registry, name: &str) -> (String, String) {
    let env = Env::new();
    let ctx = dockerfile_context(
        &[("fsh.wasm", &std::fs::read(FSH).unwrap())],
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nCMD [\"/bin/fsh\", \"echo\", \"base\"]\n",
    );
    env.ok(&["build", "-q", "-t", name, ctx.path().to_str().unwrap()]);
    let pushed = env.ok(&["push", name]);
    let digest = pushed
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {pushed:?}"))
        .to_owned();
    assert!(reg.get("/v2/_catalog").1.contains("team/base"));
    (image_id(&env, name), digest)
}

#[test]
fn a_registry_base_the_store_lacks_is_pulled_once_and_again_with_pull() {
    let Some(reg) = Registry::start() else { return };
    let base = format!("{}/team/base:1", reg.host);
    let (base_id, digest) = push_base(&reg, &base);

    let env = Env::new();
    let ctx = dockerfile_context(
        &[("a", b"from the context\n")],
        &format!("FROM {base}\nCOPY a /a\n"),
    );
    let dir = ctx.path().to_str().unwrap();
    let out = env.ok(&["build", "-t", "app:1", dir]);
    let lines: Vec<&str> = out.lines().collect();
    let short = &base_id["sha256:".len()..][..12];
    assert_eq!(lines[0], format!("Step 1/2 : FROM {base}"), "{out}");
    assert_eq!(lines[1], "1: Pulling from team/base", "{out}");
    // dockerd 20.10's lines for one layer fetched (checked with a registry
    // on 127.0.0.1, which it takes as insecure).
    let layer = lines[2].strip_suffix(": Pulling fs layer").unwrap_or("?");
    assert!(
        layer.len() == 12 && layer.bytes().all(|b| b.is_ascii_hexdigit()),
        "{out}"
    );
    assert_eq!(
        lines[3..6],
        [
            format!("{layer}: Verifying Checksum"),
            format!("{layer}: Download complete"),
            format!("{layer}: Pull complete"),
        ],
        "{out}"
    );
    assert_eq!(lines[6], format!("Digest: {digest}"), "{out}");
    assert_eq!(
        lines[7],
        format!("Status: Downloaded newer image for {base}"),
        "{out}"
    );
    assert_eq!(lines[8], format!(" ---> {short}"), "{out}");
    assert_eq!(lines[9], "Step 2/2 : COPY a /a", "{out}");
    // The pulled base is stored under its name, the very image pushed.
    assert_eq!(image_id(&env, &base), base_id);
    assert_eq!(
        env.ok(&["run", "--rm", "app:1", "/bin/fsh", "cat", "/a"])
            .trim_end(),
        "from the context"
    );

    // Stored now: not pulled again, and the COPY comes from the cache.
    let again = env.ok(&["build", "-t", "app:1", dir]);
    assert!(!again.contains("Pulling from"), "{again}");
    assert!(again.contains(" ---> Using cache"), "{again}");

    // --pull asks the registry again; the image is the stored one.
    let pulled = env.ok(&["build", "--pull", "-t", "app:1", dir]);
    let lines: Vec<&str> = pulled.lines().collect();
    assert_eq!(
        lines[1..5],
        [
            "1: Pulling from team/base".to_owned(),
            format!("Digest: {digest}"),
            format!("Status: Image is up to date for {base}"),
            format!(" ---> {short}"),
        ],
        "{pulled}"
    );
    assert!(pulled.contains(" ---> Using cache"), "{pulled}");

    // A newer image pushed under the same tag: --pull fetches it and the
    // COPY runs over it.
    let newer = Env::new();
    let ctx2 = dockerfile_context(
        &[("fsh.wasm", &std::fs::read(FSH).unwrap())],
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nENV NEWER=1\nCMD [\"/bin/fsh\", \"echo\", \"newer\"]\n",
    );
    newer.ok(&["build", "-q", "-t", &base, ctx2.path().to_str().unwrap()]);
    newer.ok(&["push", &base]);
    let newer_id = image_id(&newer, &base);
    let repulled = env.ok(&["build", "--pull", "-t", "app:1", dir]);
    assert!(
        repulled.contains(&format!("Status: Downloaded newer image for {base}")),
        "{repulled}"
    );
    assert!(!repulled.contains(" ---> Using cache"), "{repulled}");
    assert_eq!(image_id(&env, &base), newer_id);
}

#[test]
fn a_registry_base_that_is_not_there_fails_in_dockers_words_and_stores_nothing() {
    let Some(reg) = Registry::start() else { return };
    let env = Env::new();
    let before = env.store_state();
    let missing = format!("{}/nobody/here:1", reg.host);
    let ctx = dockerfile_context(&[], &format!("FROM {missing}\n"));
    let out = env.run(&["build", "-t", "x:1", ctx.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, format!("Step 1/1 : FROM {missing}\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "manifest for {missing} not found: manifest unknown: manifest unknown"
        )),
        "{stderr}"
    );
    assert_eq!(env.store_state(), before);
}

#[test]
fn a_build_through_the_daemon_pulls_its_registry_base_into_the_daemons_store() {
    let Some(reg) = Registry::start() else { return };
    let base = format!("{}/team/base:1", reg.host);
    let (base_id, digest) = push_base(&reg, &base);
    let d = Daemon::start(Env::new());
    let ctx = dockerfile_context(
        &[("a", b"through the daemon")],
        &format!("FROM {base}\nCOPY a /a\n"),
    );
    let out = d.wrun_ok(&["build", "-t", "app:1", ctx.path().to_str().unwrap()]);
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {base}\n")),
        "{out}"
    );
    // The daemon lists and runs what its build pulled.
    assert_eq!(
        d.wrun_ok(&["image", "inspect", "-f", "{{.Id}}", &base])
            .trim(),
        base_id
    );
    assert_eq!(
        d.wrun_ok(&["run", "--rm", "app:1", "/bin/fsh", "cat", "/a"])
            .trim_end(),
        "through the daemon"
    );
}
