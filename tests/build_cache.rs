//! End to end: the layer cache of `wrun build`, as Docker's classic builder
//! keeps it (` ---> Using cache` for a step whose parent, expanded
//! instruction and read content are unchanged), `--no-cache`, a cache kept
//! in the store across processes, and what a failing build leaves.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// Stores `base:1`: the file shell at /bin/fsh.
fn base_image(env: &Env) {
    let ctx = dockerfile_context(
        &[("fsh.wasm", &std::fs::read(FSH).unwrap())],
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nCMD [\"/bin/fsh\", \"ls\", \"/\"]\n",
    );
    env.ok(&["build", "-q", "-t", "base:1", p(&ctx)]);
}

/// A build's output step by step: each step's text and whether it said
/// ` ---> Using cache`.
fn steps(out: &str) -> Vec<(String, bool)> {
    let mut steps: Vec<(String, bool)> = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            let text = rest.split_once(" : ").unwrap().1.to_string();
            steps.push((text, false));
        } else if line == " ---> Using cache" {
            steps.last_mut().unwrap().1 = true;
        }
    }
    steps
}

fn cached(out: &str) -> Vec<bool> {
    steps(out).into_iter().map(|(_, c)| c).collect()
}

/// A line of output (a RUN's, not the step line that names it).
fn ran(out: &str, line: &str) -> bool {
    out.lines().any(|l| l == line)
}

fn image_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap()
        .to_string()
}

const DOCKERFILE: &str = "FROM base:1\n\
    ENV A=1\n\
    RUN [\"/bin/fsh\", \"write\", \"/one\", \"1\", \";\", \"echo\", \"ran one\"]\n\
    COPY data /data\n\
    ARG V=1\n\
    RUN [\"/bin/fsh\", \"cat\", \"/data\", \";\", \"write\", \"/two\", \"2\", \";\", \"echo\", \"ran two\"]\n\
    CMD [\"/bin/fsh\", \"cat\", \"/one\", \";\", \"cat\", \"/two\", \";\", \"cat\", \"/data\"]\n";

#[test]
fn a_second_build_reruns_nothing_and_gives_the_same_id() {
    let env = Env::new();
    base_image(&env);
    let ctx = dockerfile_context(&[("data", b"d1")], DOCKERFILE);
    let first = env.ok(&["build", "-t", "app:1", p(&ctx)]);
    assert!(ran(&first, "ran one") && ran(&first, "ran two"), "{first}");
    assert_eq!(
        cached(&first),
        [false; 7],
        "a new store has nothing cached: {first}"
    );
    // A new process: the cache is the store's, not the first build's.
    let second = env.ok(&["build", "-t", "app:2", p(&ctx)]);
    assert!(
        !ran(&second, "ran one") && !ran(&second, "ran two"),
        "no RUN ran again: {second}"
    );
    // FROM is never "Using cache" in docker's output; every other step is.
    assert_eq!(
        cached(&second),
        [false, true, true, true, true, true, true],
        "{second}"
    );
    assert_eq!(image_id(&first), image_id(&second));
    assert_eq!(env.ok(&["run", "--rm", "app:2"]), "1\n2\nd1\n");
    // Each cached step still shows the state's ID, as docker's does.
    let ids = second.lines().filter(|l| l.starts_with(" ---> ")).count();
    assert_eq!(ids, 7 + 6, "{second}");
}

#[test]
fn a_changed_copy_source_reruns_that_step_and_the_ones_after_it_only() {
    let env = Env::new();
    base_image(&env);
    let ctx = dockerfile_context(&[("data", b"d1")], DOCKERFILE);
    env.ok(&["build", "-t", "app:1", p(&ctx)]);
    std::fs::write(ctx.path().join("data"), b"d2").unwrap();
    let out = env.ok(&["build", "-t", "app:2", p(&ctx)]);
    assert_eq!(
        cached(&out),
        [false, true, true, false, false, false, false],
        "{out}"
    );
    assert!(
        !ran(&out, "ran one"),
        "the RUN before the COPY is cached: {out}"
    );
    assert!(
        out.contains("\nd2\nran two\n"),
        "the RUN after it ran: {out}"
    );
    assert_eq!(env.ok(&["run", "--rm", "app:2"]), "1\n2\nd2\n");
    // Back to the first content: its steps are still cached.
    std::fs::write(ctx.path().join("data"), b"d1").unwrap();
    let back = env.ok(&["build", "-t", "app:3", p(&ctx)]);
    assert_eq!(cached(&back)[1..], [true; 6], "{back}");
}

#[test]
fn a_changed_build_arg_reruns_the_run_that_sees_it_and_no_cache_reruns_all() {
    let env = Env::new();
    base_image(&env);
    let ctx = dockerfile_context(&[("data", b"d1")], DOCKERFILE);
    let first = env.ok(&["build", "-t", "app:1", p(&ctx)]);
    let out = env.ok(&["build", "--build-arg", "V=2", "-t", "app:2", p(&ctx)]);
    // ARG V's own line is unchanged (it names no value); the RUN after it
    // has V=2 in its environment and history line.
    assert_eq!(
        cached(&out),
        [false, true, true, true, true, false, false],
        "{out}"
    );
    assert!(ran(&out, "ran two") && !ran(&out, "ran one"), "{out}");
    assert_ne!(image_id(&first), image_id(&out));

    let all = env.ok(&["build", "--no-cache", "-t", "app:3", p(&ctx)]);
    assert_eq!(cached(&all), [false; 7], "{all}");
    assert!(ran(&all, "ran one") && ran(&all, "ran two"), "{all}");
    assert_eq!(
        image_id(&first),
        image_id(&all),
        "the steps rerun make the same image"
    );
}

#[test]
fn a_failed_build_exits_with_the_runs_code_and_caches_no_failing_step() {
    let env = Env::new();
    base_image(&env);
    let ctx = dockerfile_context(
        &[],
        "FROM base:1\n\
         RUN [\"/bin/fsh\", \"write\", \"/x\", \"1\"]\n\
         RUN [\"/bin/fsh\", \"echo\", \"failing\", \";\", \"exit\", \"3\"]\n\
         CMD [\"/bin/fsh\"]\n",
    );
    for round in 0..2 {
        let out = env.run(&["build", "-t", "failed:1", p(&ctx)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "as docker build: {stderr}");
        assert!(
            stderr.contains(
                "The command '/bin/fsh echo failing ; exit 3' returned a non-zero code: 3"
            ),
            "{stderr}"
        );
        assert!(
            ran(&stdout, "failing"),
            "round {round}: the failing step runs again, it was not cached: {stdout}"
        );
        assert!(!stdout.contains("Using cache"), "round {round}: {stdout}");
    }
    assert!(
        env.fails(&["image", "inspect", "failed:1"])
            .contains("failed:1")
    );
}

#[test]
fn the_cache_goes_with_the_image_that_kept_it() {
    let env = Env::new();
    base_image(&env);
    let ctx = dockerfile_context(&[("data", b"d1")], DOCKERFILE);
    env.ok(&["build", "-t", "app:1", p(&ctx)]);
    let blobs = |env: &Env| {
        std::fs::read_dir(env.root().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let with_image = blobs(&env);
    env.ok(&["rmi", "app:1"]);
    assert!(blobs(&env) < with_image, "the image's layers went");
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.root().join("build-cache.json")).unwrap())
            .unwrap();
    let entries = cache["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["owners"].as_array().unwrap().len() == 1),
        "only base:1's steps are left: {cache}"
    );
    let again = env.ok(&["build", "-t", "app:1", p(&ctx)]);
    assert!(ran(&again, "ran one"), "nothing was left to reuse: {again}");
}

#[test]
fn pull_of_a_stored_base_says_it_is_the_stored_image() {
    let env = Env::new();
    base_image(&env);
    let ctx = dockerfile_context(&[("data", b"d1")], DOCKERFILE);
    let out = env
        .cmd()
        .args(["build", "--pull", "-t", "app:1", p(&ctx)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--pull: base:1 names no registry (HOST[:PORT]/NAME): the stored image "),
        "{stderr}"
    );
}
