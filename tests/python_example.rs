#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! examples/python end to end: `build-base` makes python-wasi:3 once (and
//! then leaves it), the interpreter behaves as a `python` under wrun (files,
//! argv, env, `-c`, exit codes), and Docker's tutorial app runs on it, its
//! RUN and CMD taken from app/Dockerfile. One store, so the 21 MB module is
//! compiled once.

mod common;

use std::path::{Path, PathBuf};
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

/// The JSON array after `INSTRUCTION ` in app/Dockerfile (exec form).
fn exec_form(dockerfile: &str, instruction: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("app/Dockerfile has no {instruction}"));
    serde_json::from_str(line).unwrap()
}

/// `ENV K=V` lines of app/Dockerfile, as `-e K=V` values.
fn env_lines(dockerfile: &str) -> Vec<String> {
    dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .map(|kv| kv.trim().to_string())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
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

    // The same through the docker client, and the tutorial's RUN and CMD.
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
    assert_eq!(out.trim(), "hello from python");

    // The app: its Dockerfile's RUN (exec form, with its ENV) on a copy of the
    // folder, then its CMD through the base's ENTRYPOINT.
    let dockerfile = std::fs::read_to_string(Path::new(PYTHON_DIR).join("app/Dockerfile")).unwrap();
    let app: PathBuf = d.env.path("app");
    copy_dir(&Path::new(PYTHON_DIR).join("app"), &app);
    let _ = std::fs::remove_file(app.join("primes.json"));
    let app_vol = format!("{}:/app", app.display());
    let run = exec_form(&dockerfile, "RUN");
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "-v".into(), app_vol.clone()];
    for kv in env_lines(&dockerfile) {
        args.extend(["-e".into(), kv]);
    }
    args.extend([
        "--entrypoint".into(),
        run[0].clone(),
        "python-wasi:3".into(),
    ]);
    args.extend(run[1..].iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d.docker_ok(&args);
    assert!(out.contains("wrote /app/primes.json"), "{out}");
    assert!(app.join("primes.json").is_file());

    let cmd = exec_form(&dockerfile, "CMD");
    let mut args: Vec<&str> = vec![
        "run",
        "--rm",
        "-v",
        &app_vol,
        "-e",
        "NAME=Ann",
        "python-wasi:3",
    ];
    args.extend(cmd.iter().map(String::as_str));
    args.extend(["97", "91"]);
    let out = d.docker_ok(&args);
    assert_eq!(
        out,
        "Hello, Ann, from rustpython (Python 3.14.0) on wasi!\n\
         9592 primes below 100000, the largest 99991\n\
         97 is prime\n\
         91 is not prime\n"
    );
}
