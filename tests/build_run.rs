//! End to end: `RUN` steps of a Dockerfile build (`wrun build`), the module
//! a file of the image being built (examples/fsh, as a preview 1 module and
//! as a WASI 0.2 component), checked against what Docker's classic builder
//! does with the same steps (dockerd 20.10: an exec-form RUN's history line
//! is its list joined by spaces; a RUN that changes nothing adds a 0B
//! history row and no layer; a failing one stops the build with "The
//! command '…' returned a non-zero code: N"). The engine's own cases
//! (limits, attacks, layers) are unit tests in bundler/src/run_step.rs.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");
const FSH_COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/fsh/fsh-component.wasm"
);

/// Stores `base:1` (FROM scratch + COPY): both builds of the file shell
/// and /etc/a, /etc/b.
fn base_image(env: &Env) {
    let ctx = dockerfile_context(
        &[
            ("fsh.wasm", &std::fs::read(FSH).unwrap()),
            ("fshc.wasm", &std::fs::read(FSH_COMPONENT).unwrap()),
            ("etc/a", b"a"),
            ("etc/b", b"b"),
        ],
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nCOPY fshc.wasm /bin/fshc\nCOPY etc /etc\nCMD [\"/bin/fsh\", \"ls\", \"/etc\"]\n",
    );
    env.ok(&["build", "-q", "-t", "base:1", p(&ctx)]);
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

fn layer_count(env: &Env, name: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", name])).unwrap();
    v[0]["RootFS"]["Layers"].as_array().unwrap().len()
}

#[test]
fn run_steps_of_both_module_kinds_become_layers_the_image_runs_with() {
    let env = Env::new();
    base_image(&env);
    let ctx = dockerfile_context(
        &[],
        "FROM base:1\n\
         RUN [\"/bin/fsh\", \"write\", \"/etc/new\", \"hi\", \";\", \"rm\", \"/etc/b\", \";\", \"echo\", \"step one\"]\n\
         RUN [\"/bin/fshc\", \"echo\", \"changes nothing\"]\n\
         RUN [\"/bin/fshc\", \"append\", \"/etc/new\", \"!\", \";\", \"mv\", \"/etc/a\", \"/etc/a2\"]\n\
         CMD [\"/bin/fsh\", \"cat\", \"/etc/new\", \";\", \"ls\", \"/etc\"]\n",
    );
    let out = env.ok(&["build", "-t", "ran:1", p(&ctx)]);
    assert!(
        out.contains("step one\n"),
        "the step's output is shown: {out}"
    );
    assert!(out.contains("changes nothing\n"), "{out}");
    assert_eq!(
        env.ok(&["run", "--rm", "ran:1"]),
        "hi!\na2\nnew\n",
        "the image holds each step's changes, deletions and renames included"
    );
    // As dockerd's classic builder: one row per RUN, its list joined by
    // spaces; the one that changed nothing is 0B and adds no layer.
    let rows = history(&env, "ran:1");
    assert!(rows[0].contains("CMD"), "{rows:?}");
    assert!(
        rows[1].starts_with("/bin/fshc append /etc/new ! ; mv /etc/a /etc/a2|"),
        "{rows:?}"
    );
    assert_eq!(rows[2], "/bin/fshc echo changes nothing|0B");
    assert!(
        rows[3].starts_with("/bin/fsh write /etc/new hi ; rm /etc/b ; echo step one|"),
        "{rows:?}"
    );
    assert!(!rows[3].ends_with("|0B"), "{rows:?}");
    assert_eq!(layer_count(&env, "ran:1"), layer_count(&env, "base:1") + 2);
    // The base is unchanged.
    assert_eq!(env.ok(&["run", "--rm", "base:1"]), "a\nb\n");
}

#[test]
fn a_failing_run_stops_the_build_with_dockers_words_and_leaves_the_store_as_it_was() {
    let env = Env::new();
    base_image(&env);
    let before = env.store_state();
    let ctx = dockerfile_context(
        &[],
        "FROM base:1\n\
         RUN [\"/bin/fsh\", \"write\", \"/etc/x\", \"1\"]\n\
         RUN [\"/bin/fsh\", \"echo\", \"last words\", \";\", \"exit\", \"3\"]\n\
         CMD [\"/bin/fsh\"]\n",
    );
    let err = env.fails(&["build", "-t", "failed:1", p(&ctx)]);
    assert!(
        err.contains("The command '/bin/fsh echo last words ; exit 3' returned a non-zero code: 3"),
        "{err}"
    );
    assert!(
        err.contains("last words"),
        "the last lines come with it: {err}"
    );
    assert_eq!(
        env.store_state(),
        before,
        "no image, blob or snapshot added"
    );
    let tmp = std::fs::read_dir(env.root().join("tmp")).unwrap().count();
    assert_eq!(tmp, 0, "no staging area left");
}

#[test]
fn a_run_naming_no_module_of_the_image_is_refused_with_the_path() {
    let env = Env::new();
    base_image(&env);
    let ctx = dockerfile_context(&[], "FROM base:1\nRUN [\"/bin/nope.wasm\"]\n");
    let err = env.fails(&["build", p(&ctx)]);
    assert!(
        err.contains("/bin/nope.wasm: no such file or directory in the stage's rootfs"),
        "{err}"
    );
    let ctx = dockerfile_context(&[], "FROM base:1\nRUN [\"/etc/a\"]\n");
    let err = env.fails(&["build", p(&ctx)]);
    assert!(err.contains("/etc/a cannot be run"), "{err}");
}

#[test]
fn storage_opt_bounds_what_a_run_writes_and_bad_build_flags_are_refused() {
    let env = Env::new();
    base_image(&env);
    let before = env.store_state();
    let ctx = dockerfile_context(
        &[],
        "FROM base:1\nRUN [\"/bin/fsh\", \"fill\", \"/big\", \"3145728\"]\n",
    );
    let err = env.fails(&["build", "--storage-opt", "size=1m", "-t", "big:1", p(&ctx)]);
    assert!(
        err.contains("wrote more than the step storage limit of 1 MiB"),
        "{err}"
    );
    assert_eq!(env.store_state(), before, "nothing stored");
    // Under a larger limit the same step builds.
    env.ok(&[
        "build",
        "-q",
        "--storage-opt",
        "size=8m",
        "-t",
        "big:1",
        p(&ctx),
    ]);
    for (flags, says) in [
        (
            &["--storage-opt", "size=0"][..],
            "invalid storage size \"0\"",
        ),
        (&["--storage-opt", "quota=1g"][..], "only size=SIZE"),
        (&["--network", "bridge2"][..], "none (the default) or host"),
    ] {
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push(p(&ctx));
        let err = env.fails(&args);
        assert!(err.contains(says), "{flags:?}: {err}");
    }
}
