#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! examples/python end to end: `build-base` makes python-wasi:3 once (and
//! then leaves it), the interpreter behaves as a `python` under wrun (files,
//! argv, env, `-c`, exit codes), and Docker's tutorial (app/: FROM it, a
//! RUN step that runs the interpreter, the app) builds reproducibly and runs,
//! through wrun and the docker client. One store, so the 21 MB module is
//! compiled once.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Daemon, Env, have_tool, sha256_hex};

const PYTHON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python");

fn build_base(env: &Env) -> Output {
    Command::new(Path::new(PYTHON_DIR).join("build-base"))
        .env("WRUN", env!("CARGO_BIN_EXE_wrun"))
        .env("WRUN_ROOT", env.root())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn python_base_image_runs_python_and_the_tutorial_app() {
    let env = Env::new();

    // build-base: built once, labelled with the committed module's digest.
    let first = build_base(&env);
    assert!(
        first.status.success(),
        "build-base: {}",
        text(&first.stderr)
    );
    assert!(
        text(&first.stdout).contains("Successfully tagged python-wasi:3"),
        "{}",
        text(&first.stdout)
    );
    let module = std::fs::read(Path::new(PYTHON_DIR).join("interpreter/python.wasm")).unwrap();
    let label = env.ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .Config.Labels \"io.wrun.example.python.module-digest\"}}",
        "python-wasi:3",
    ]);
    assert_eq!(label.trim(), format!("sha256:{}", sha256_hex(&module)));
    let id = env.ok(&["image", "inspect", "-f", "{{.Id}}", "python-wasi:3"]);
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Id}}", "python-wasi:3.14"]),
        id
    );

    // ...and the second call finds it current and builds nothing.
    let second = build_base(&env);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("python-wasi:3 is current"),
        "{}",
        text(&second.stdout)
    );
    assert!(!text(&second.stdout).contains("Successfully built"));
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Id}}", "python-wasi:3"]),
        id
    );

    // A script with argv, env, the stdlib, and files in the writable rootfs
    // and in a volume.
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("probe.py"),
        r#"import json, os, sys
open("/made.txt", "w").write("rootfs\n")
os.makedirs("/a/b")
with open("/src/out.json", "w") as f:
    json.dump({
        "argv": sys.argv,
        "env": os.environ.get("GREETING"),
        "version": list(sys.version_info[:2]),
        "impl": sys.implementation.name,
        "made": open("/made.txt").read(),
        "dirs": os.path.isdir("/a/b"),
    }, f)
print("probe done")
"#,
    )
    .unwrap();
    let vol = format!("{}:/src", src.display());
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        &vol,
        "-e",
        "GREETING=hi",
        "python-wasi:3",
        "/src/probe.py",
        "one",
        "two words",
    ]);
    assert_eq!(out.trim(), "probe done");
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("out.json")).unwrap()).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "argv": ["/src/probe.py", "one", "two words"],
            "env": "hi",
            // The tag python-wasi:3.14 names this version.
            "version": [3, 14],
            "impl": "rustpython",
            "made": "rootfs\n",
            "dirs": true,
        })
    );

    // `python -c`: every word after the image is the module's, as with
    // `docker run` (wrun once took `-c` for Docker's --cpu-shares).
    let out = env.ok(&[
        "run",
        "--rm",
        "python-wasi:3",
        "-c",
        "import sys; print('hello from python', sys.argv[1:])",
        "-e",
        "--",
    ]);
    assert_eq!(out, "hello from python ['-e', '--']\n");

    // Exit codes: sys.exit(N) is N, an uncaught exception 1 with its
    // traceback on stderr.
    std::fs::write(src.join("exit3.py"), "import sys\nsys.exit(3)\n").unwrap();
    std::fs::write(src.join("raises.py"), "raise ValueError('boom')\n").unwrap();
    let exit3 = env.run(&["run", "--rm", "-v", &vol, "python-wasi:3", "/src/exit3.py"]);
    assert_eq!(exit3.status.code(), Some(3), "{}", text(&exit3.stderr));
    let raises = env.run(&["run", "--rm", "-v", &vol, "python-wasi:3", "/src/raises.py"]);
    assert_eq!(raises.status.code(), Some(1));
    assert!(
        text(&raises.stderr).contains("ValueError: boom"),
        "{}",
        text(&raises.stderr)
    );

    // Docker's tutorial: FROM python-wasi:3, COPY, a RUN step that runs the
    // interpreter at build time (the primes table), the app as ENTRYPOINT
    // with default arguments as CMD. The same context gives the same image.
    let app = format!("{PYTHON_DIR}/app");
    let built = env.ok(&["build", "-q", "-t", "python-app", &app]);
    assert_eq!(env.ok(&["build", "-q", "-t", "python-app", &app]), built);
    // That holds with the .pyc the RUN step writes (it records app.py's
    // mtime) because a guest sees a layer's files with their layer's times
    // (0 here: no SOURCE_DATE_EPOCH), not the time they were unpacked: the
    // base's, the COPY's and the RUN's.
    let probe = env.path("mtimes");
    std::fs::create_dir_all(&probe).unwrap();
    std::fs::write(
        probe.join("Dockerfile"),
        r#"FROM python-app
RUN ["/usr/local/bin/python", "-c", "import os; print('mtimes', [int(os.lstat(p).st_mtime) for p in ('/usr/local/bin/python', '/usr/local', '/app', '/app/app.py', '/app/__pycache__/app.cpython-314.pyc')])"]
"#,
    )
    .unwrap();
    let out = env.ok(&["build", probe.to_str().unwrap()]);
    assert!(out.contains("mtimes [0, 0, 0, 0, 0]\n"), "{out}");
    let expected = |name: &str, lines: &str| {
        format!(
            "Hello, {name}, from rustpython (Python 3.14.0) on wasi!\n\
             9592 primes below 100000, the largest 99991\n{lines}"
        )
    };
    assert_eq!(
        env.ok(&["run", "--rm", "python-app"]),
        expected("world", "97 is prime\n91 is not prime\n")
    );
    let with_args = [
        "run",
        "--rm",
        "-e",
        "NAME=Ann",
        "python-app",
        "99991",
        "1001",
    ];
    let answer = expected("Ann", "99991 is prime\n1001 is not prime\n");
    assert_eq!(env.ok(&with_args), answer);

    // The same through the stock docker client against the daemon.
    if !have_tool("docker") {
        return;
    }
    let d = Daemon::start(env);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "python-wasi:3",
        "-c",
        "print('hello from python')",
    ]);
    assert_eq!(out, "hello from python\n");
    assert_eq!(d.docker_ok(&with_args), answer);
}
