//! Each example guest runs, and bad modules or specs are refused before the
//! guest starts with an error naming the cause.

mod common;

use common::{capture, prepare_file, repo_path, runtime};
use wrun_runtime::{
    InputSource, InputStream, InstanceSpec, ModuleDigest, ModuleKind, PrepareOptions, RunOutcome,
    RuntimeError,
};

#[test]
fn hello_greets_its_args_with_the_env_greeting() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &repo_path("examples/hello/hello.wasm"));
    assert_eq!(module.kind(), ModuleKind::CoreModule);
    let (out, target) = capture();
    let spec = InstanceSpec::new(["hello", "Alice", "Bob"])
        .env("GREETING", "Hey")
        .stdout(target);
    let outcome = rt.run_blocking(&module, spec).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(out.text(), "Hey, Alice and Bob!\n");
}

#[test]
fn host_environment_is_not_passed_to_the_guest() {
    assert!(
        std::env::var_os("PATH").is_some(),
        "precondition: the host has PATH"
    );
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &common::guest_path("fs-attack"));
    let (out, target) = capture();
    let spec = InstanceSpec::new(["fs-attack", "env"])
        .env("ONLY", "this")
        .stdout(target);
    let outcome = rt.run_blocking(&module, spec).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(out.text(), "ONLY=this\n");
}

#[test]
fn core_module_exit_code_passes_through() {
    let (rt, _scratch) = runtime(4);
    let module = common::prepare_wat(
        &rt,
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start") (call $exit (i32.const 42))))"#,
    );
    let outcome = rt
        .run_blocking(&module, InstanceSpec::new(["exit"]))
        .expect("run");
    assert_eq!(outcome, RunOutcome::Exited(42));
}

#[test]
fn wasip2_component_runs_with_args_and_env() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(
        &rt,
        &repo_path("examples/hello-component/hello-component.wasm"),
    );
    assert_eq!(module.kind(), ModuleKind::Component);
    let (out, target) = capture();
    let spec = InstanceSpec::new(["hello-component", "Carol"])
        .env("GREETING", "Hi")
        .stdout(target);
    let outcome = rt.run_blocking(&module, spec).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(out.text(), "Hi, Carol! (from a wasip2 component)\n");
}

#[test]
fn fs_copy_reads_its_rootfs_and_writes_into_a_volume() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &repo_path("examples/fs-copy/fs-copy.wasm"));
    let rootfs = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(rootfs.path().join("share")).expect("mkdir");
    std::fs::copy(
        repo_path("examples/fs-copy/words.txt"),
        rootfs.path().join("share/words.txt"),
    )
    .expect("copy");
    let volume = tempfile::tempdir().expect("tempdir");
    let (out, target) = capture();
    let spec = InstanceSpec::new(["fs-copy", "/share/words.txt", "/out/words.txt"])
        .env("FS_COPY_UPPERCASE", "1")
        .rootfs(rootfs.path())
        .volume(volume.path(), "/out", false)
        .stdout(target);
    let outcome = rt.run_blocking(&module, spec).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0), "stdout: {}", out.text());
    let written = std::fs::read_to_string(volume.path().join("words.txt")).expect("result");
    assert_eq!(written, "1: ALPHA\n2: BRAVO\n3: CHARLIE\n");
}

#[test]
fn fs_copy_cannot_write_into_its_read_only_rootfs() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &repo_path("examples/fs-copy/fs-copy.wasm"));
    let rootfs = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(rootfs.path().join("share")).expect("mkdir");
    std::fs::write(rootfs.path().join("share/words.txt"), "a\n").expect("write");
    let spec =
        InstanceSpec::new(["fs-copy", "/share/words.txt", "/share/out.txt"]).rootfs(rootfs.path());
    let outcome = rt.run_blocking(&module, spec).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(1));
    assert!(!rootfs.path().join("share/out.txt").exists());
}

#[test]
fn core_module_given_where_a_component_is_expected_is_named_in_the_error() {
    let (rt, _scratch) = runtime(4);
    let wasm = std::fs::read(repo_path("examples/hello/hello.wasm")).expect("read");
    let err = rt
        .prepare(
            &ModuleDigest::of(&wasm),
            &wasm,
            PrepareOptions {
                expect: Some(ModuleKind::Component),
                ..PrepareOptions::default()
            },
        )
        .expect_err("wrong kind accepted");
    assert!(matches!(
        err,
        RuntimeError::WrongModuleKind {
            expected: ModuleKind::Component,
            found: ModuleKind::CoreModule
        }
    ));
    assert!(
        err.to_string().contains("expected a wasm component"),
        "{err}"
    );
}

#[test]
fn malformed_module_is_refused_before_it_runs() {
    let (rt, _scratch) = runtime(4);
    let mut wasm = std::fs::read(repo_path("examples/hello/hello.wasm")).expect("read");
    wasm.truncate(wasm.len() / 2);
    let err = rt
        .prepare(&ModuleDigest::of(&wasm), &wasm, PrepareOptions::default())
        .expect_err("truncated module accepted");
    assert!(matches!(err, RuntimeError::Compile { .. }), "{err:?}");

    let elf = b"\x7fELF\x02\x01\x01\0rest";
    let err = rt
        .prepare(&ModuleDigest::of(elf), elf, PrepareOptions::default())
        .expect_err("elf accepted");
    assert!(matches!(err, RuntimeError::NotWasm), "{err:?}");
}

#[test]
fn bytes_that_do_not_match_the_digest_are_refused() {
    let (rt, _scratch) = runtime(4);
    let wasm = std::fs::read(repo_path("examples/hello/hello.wasm")).expect("read");
    let other = ModuleDigest::of(b"something else");
    let err = rt
        .prepare(&other, &wasm, PrepareOptions::default())
        .expect_err("mismatch accepted");
    assert!(
        matches!(err, RuntimeError::DigestMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn missing_rootfs_or_volume_is_an_error_naming_the_path() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &repo_path("examples/hello/hello.wasm"));
    let gone = tempfile::tempdir().expect("tempdir").path().join("gone");
    let err = rt
        .run_blocking(&module, InstanceSpec::new(["hello"]).rootfs(&gone))
        .expect_err("missing rootfs accepted");
    assert!(
        matches!(err, RuntimeError::HostDir { what: "rootfs", .. }),
        "{err:?}"
    );
    let err = rt
        .run_blocking(
            &module,
            InstanceSpec::new(["hello"]).volume(&gone, "/data", false),
        )
        .expect_err("missing volume accepted");
    assert!(
        matches!(err, RuntimeError::HostDir { what: "volume", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("gone"), "{err}");
    assert!(!gone.exists(), "a missing volume must not be created");
}

#[test]
fn stdin_is_closed_by_default_and_carries_given_bytes() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &common::guest_path("fs-attack"));
    let (out, target) = capture();
    let outcome = rt
        .run_blocking(
            &module,
            InstanceSpec::new(["fs-attack", "stdin"]).stdout(target),
        )
        .expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(out.text(), "stdin Ok(0): \"\"\n");

    let (out, target) = capture();
    let spec = InstanceSpec::new(["fs-attack", "stdin"])
        .stdin(InputSource::Bytes(b"piped in".to_vec()))
        .stdout(target);
    let outcome = rt.run_blocking(&module, spec).expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(out.text(), "stdin Ok(8): \"piped in\"\n");
}

#[test]
fn stdin_streams_what_the_host_writes_until_it_closes() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &common::guest_path("fs-attack"));
    let (out, target) = capture();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let outcome = tokio.block_on(async {
        let (reader, writer) = tokio::net::UnixStream::pair().unwrap();
        let spec = InstanceSpec::new(["fs-attack", "stdin"])
            .stdin(InputSource::Stream(InputStream::new(reader)))
            .stdout(target);
        // The guest reads to end of file: it sees both writes, made while
        // it waits, and ends only once the writer is closed.
        let feed = tokio::spawn(async move {
            for part in ["first ", "second"] {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                writer.writable().await.unwrap();
                writer.try_write(part.as_bytes()).unwrap();
            }
            drop(writer);
        });
        let outcome = rt.run(&module, spec).await.expect("run");
        feed.await.unwrap();
        outcome
    });
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(out.text(), "stdin Ok(12): \"first second\"\n");
}
