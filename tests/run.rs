//! End to end: `wrun run` and `wrun IMAGE.tar` as a user runs them, the
//! examples, and the bad invocations with their exit codes.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

#[test]
fn hello_tar_runs_with_image_defaults_args_and_env() {
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
    let other = Env::new(); // a fresh store: the tar is loaded on first use
    assert_eq!(other.ok(&[tar.to_str().unwrap()]), "Hello, world!\n");
    assert_eq!(
        other.ok(&[tar.to_str().unwrap(), "Alice"]),
        "Hello, Alice!\n"
    );
    assert_eq!(
        other.ok(&["run", "--rm", "-e", "GREETING=hey", "hello:1.0", "Bob"]),
        "hey, Bob!\n"
    );
    assert!(
        other.ok(&["images"]).contains("hello"),
        "the tar was loaded into the store"
    );
    // --env-file and -e NAME (host value) follow Docker.
    let envfile = env.path("vars.env");
    std::fs::write(&envfile, "# comment\nGREETING=Howdy\n").unwrap();
    assert_eq!(
        other.ok(&[
            "run",
            "--env-file",
            envfile.to_str().unwrap(),
            "hello:1.0",
            "x"
        ]),
        "Howdy, x!\n"
    );
    let out = other
        .cmd()
        .env("GREETING", "Yo")
        .args(["run", "-e", "GREETING", "hello:1.0", "y"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Yo, y!\n");
}

#[test]
fn guest_exit_code_is_wruns_exit_code() {
    // A WAT guest that calls proc_exit(42).
    let env = Env::new();
    let ctx = tempfile::tempdir().unwrap();
    let wasm = wat_module(
        r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "_start") (call $exit (i32.const 42))))"#,
    );
    std::fs::write(ctx.path().join("exit.wasm"), wasm).unwrap();
    std::fs::write(
        ctx.path().join("wrun.toml"),
        "name = \"exit42\"\nmodule = \"exit.wasm\"\n",
    )
    .unwrap();
    env.ok(&["build", ctx.path().to_str().unwrap()]);
    assert_eq!(code(&env.run(&["run", "exit42"])), 42);
}

/// Encodes a tiny text-format module; the tests keep their guests readable.
fn wat_module(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

#[test]
fn fs_example_reads_its_rootfs_and_writes_into_a_volume() {
    let env = Env::new();
    env.ok(&[
        "build",
        "-q",
        "-t",
        "fs-copy:1.0",
        &format!("{EXAMPLES}/fs-copy"),
    ]);
    let out_dir = env.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let volume = format!("{}:/out", out_dir.display());
    let stdout = env.ok(&["run", "-v", &volume, "fs-copy:1.0"]);
    assert!(stdout.starts_with("copied "), "{stdout}");
    let written = std::fs::read_to_string(out_dir.join("words.txt")).unwrap();
    let source = std::fs::read_to_string(format!("{EXAMPLES}/fs-copy/words.txt")).unwrap();
    let first = source.lines().find(|l| !l.trim().is_empty()).unwrap();
    assert!(
        written.starts_with(&format!("1: {}", first.to_uppercase())),
        "{written}"
    );
    // Read-only volume: the write is refused and the guest reports it.
    std::fs::remove_file(out_dir.join("words.txt")).unwrap();
    let out = env.run(&["run", "-v", &format!("{volume}:ro"), "fs-copy:1.0"]);
    assert_eq!(code(&out), 1, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!out_dir.join("words.txt").exists());
    // The image rootfs is writable, the run's own copy (issue 13); with
    // --read-only it is not.
    let copy = ["fs-copy:1.0", "/share/words.txt", "/share/copy.txt"];
    let out = env.run(&[&["run"][..], &copy].concat());
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.run(&[&["run", "--read-only"][..], &copy].concat());
    assert_eq!(code(&out), 1);
}

#[test]
fn component_example_runs_with_wasi_0_2() {
    let env = Env::new();
    env.ok(&[
        "build",
        "-q",
        "-t",
        "hello-component:1.0",
        &format!("{EXAMPLES}/hello-component"),
    ]);
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Os}}", "hello-component:1.0"])
            .trim(),
        "wasip2"
    );
    let out = env.ok(&["run", "-e", "GREETING=Hi", "hello-component:1.0", "Ada"]);
    assert!(out.contains("Hi") && out.contains("Ada"), "{out}");
}

#[test]
fn traps_print_the_cause_and_exit_with_documented_codes() {
    let env = Env::new();
    let ctx = tempfile::tempdir().unwrap();
    let guests = [
        (
            "spin",
            r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#,
        ),
        (
            "boom",
            r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
        ),
        (
            "deep",
            r#"(module (memory (export "memory") 1) (func $f (call $f)) (func (export "_start") (call $f)))"#,
        ),
        (
            "grow",
            r#"(module (memory (export "memory") 1)
            (func (export "_start") (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable))))"#,
        ),
    ];
    for (name, text) in guests {
        std::fs::write(ctx.path().join(format!("{name}.wasm")), wat_module(text)).unwrap();
        std::fs::write(
            ctx.path().join("wrun.toml"),
            format!("name = \"{name}\"\nmodule = \"{name}.wasm\"\n"),
        )
        .unwrap();
        env.ok(&["build", "-q", ctx.path().to_str().unwrap()]);
    }
    let out = env.run(&["run", "--timeout", "200ms", "spin"]);
    assert_eq!(code(&out), 124);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--timeout"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run(&["run", "--fuel", "100000", "spin"]);
    assert_eq!(code(&out), 152);
    let out = env.run(&["run", "boom"]);
    assert_eq!(code(&out), 134);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    let out = env.run(&["run", "--debug", "deep"]);
    assert_eq!(code(&out), 134);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stack overflow") && stderr.contains("wasm backtrace"),
        "{stderr}"
    );
    let out = env.run(&["run", "--memory", "16m", "grow"]);
    assert_eq!(code(&out), 137, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--memory"));
    // Without the limit the same grow (256 MiB) succeeds.
    assert_eq!(code(&env.run(&["run", "grow"])), 0);
}

#[test]
fn bad_invocations_get_one_line_and_distinct_codes() {
    let env = Env::new();
    env.build_hello("hello:1.0");
    let one_line = |out: &std::process::Output| {
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        e
    };
    let out = env.run(&["run", "nosuch:1"]);
    assert_eq!(code(&out), 125);
    assert!(one_line(&out).contains("No such image: nosuch:1"));
    let out = env.run(&["missing.tar"]);
    assert_eq!(code(&out), 125);
    assert!(one_line(&out).contains("missing.tar"));
    let out = env.run(&["run", "-v", "/nonexistent/dir:/data", "hello:1.0"]);
    assert_eq!(code(&out), 125);
    assert!(one_line(&out).contains("/nonexistent/dir"));
    let out = env.run(&["run", "--memory", "lots", "hello:1.0"]);
    assert_eq!(code(&out), 125);
    assert!(String::from_utf8_lossy(&out.stderr).contains("lots"));
    let out = env.run(&["run", "--entrypoint", "/nope.wasm", "hello:1.0"]);
    assert_eq!(code(&out), 127);
    assert!(one_line(&out).contains("/nope.wasm"));

    // A Linux image tar: refused as not wasm.
    let linux = one_layer_image_tar(&env, "linux.tar", "ubuntu:22.04", &hello_layer(), |c| {
        c["os"] = "linux".into();
        c["architecture"] = "amd64".into();
    });
    let out = env.run(&[linux.to_str().unwrap()]);
    assert_eq!(code(&out), 125);
    assert!(one_line(&out).contains("not a wasm image: os=linux arch=amd64"));

    // An image whose module is not WebAssembly: 126.
    let script = layer_with_module_entry(tar::EntryType::Regular, b"", b"#!/bin/sh\necho hi\n");
    let bad = one_layer_image_tar(&env, "bad.tar", "bad:1", &script, |_| {});
    let out = env.run(&[bad.to_str().unwrap()]);
    assert_eq!(code(&out), 126);
    assert!(one_line(&out).contains("/hello.wasm"));
}

#[test]
fn a_symlinked_module_cannot_make_wrun_read_a_host_file() {
    let env = Env::new();
    let link = layer_with_module_entry(tar::EntryType::Symlink, b"/etc/passwd", b"");
    let p = one_layer_image_tar(&env, "sneaky.tar", "sneaky:1", &link, |_| {});
    let out = env.run(&[p.to_str().unwrap()]);
    assert_eq!(code(&out), 127, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("root:"),
        "no host file content leaks"
    );
}

#[test]
fn interactive_gives_stdin_and_tmpfs_grants_a_private_tmp() {
    let env = Env::new();
    let ctx = tempfile::tempdir().unwrap();
    write_cat_context(ctx.path());
    env.ok(&["build", "-q", ctx.path().to_str().unwrap()]);
    let run_with_input = |args: &[&str]| output_with_input(env.cmd().args(args), b"input line\n");
    let out = run_with_input(&["run", "-i", "cat"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "input line\n");
    let out = run_with_input(&["run", "cat"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "without -i stdin is closed"
    );

    env.ok(&[
        "build",
        "-q",
        "-t",
        "fs-copy:1.0",
        &format!("{EXAMPLES}/fs-copy"),
    ]);
    let to_tmp = ["fs-copy:1.0", "/share/words.txt", "/tmp/copy.txt"];
    assert_eq!(
        code(&env.run(&[&["run"][..], &to_tmp].concat())),
        1,
        "nothing writable by default"
    );
    assert_eq!(
        code(&env.run(&[&["run", "--tmpfs", "/tmp"][..], &to_tmp].concat())),
        0,
        "--tmpfs /tmp: a private writable /tmp"
    );
    let out = env.run(&[&["run", "--tmpfs", "/var"][..], &to_tmp].concat());
    assert_eq!(code(&out), 125, "--tmpfs elsewhere than /tmp is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only at /tmp"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn timeout_interrupts_a_guest_blocked_in_a_sleep() {
    let env = Env::new();
    env.ok(&["build", "-q", "-t", "idle:1.0", &format!("{EXAMPLES}/idle")]);
    let out = env.run(&["run", "--timeout", "300ms", "idle:1.0"]);
    assert_eq!(code(&out), 124, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ready\n",
        "it started, then slept"
    );
}
