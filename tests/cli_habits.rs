//! Docker habits that must work with wrun (issue 12): Go templates for
//! every `--format`, docker run flags wrun lacks refused with the reason,
//! image prune naming image IDs, and the docker client's verbs that wrun
//! does not serve answered with a message that names them.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::{Daemon, Env, have_tool};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn format_templates_work_for_ps_images_and_inspect() {
    let env = Env::new();
    let id = env.build_hello("hello:1.0");
    let d = Daemon::start(env);
    d.wrun_ok(&["create", "--name", "tpl", "-v", "/usr:/mnt", "hello:1.0"]);

    let names = d.wrun_ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}} {{.State}} {{upper .Status}}",
    ]);
    assert_eq!(names.trim(), "tpl created CREATED", "{names}");

    let table = d.wrun_ok(&["ps", "-a", "--format", "table {{.Names}}\\t{{.Image}}"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("NAMES") && lines[0].contains("IMAGE"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("tpl ") && lines[1].contains("hello:1.0"),
        "{table}"
    );

    let images = d.wrun_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert_eq!(images.trim(), format!("hello:1.0 {}", &id[7..19]));

    let mounts = d.wrun_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Source}}->{{.Destination}}{{end}} {{.State.Status}} {{json .Config.Cmd}}",
        "tpl",
    ]);
    assert!(mounts.starts_with("/usr->/mnt created "), "{mounts}");
    let history = d.wrun_ok(&["history", "--format", "{{.ID}}|{{.CreatedAt}}", "hello:1.0"]);
    assert!(
        history.starts_with(&format!("{}|", &id[7..19])),
        "{history}"
    );
    let stats = d.wrun_ok(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}}:{{.PIDs}}",
    ]);
    assert!(stats.starts_with("tpl:"), "{stats}");
    let df = d
        .env
        .ok(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]);
    assert!(df.lines().any(|l| l == "Images=1"), "{df}");
    let image_id = d.wrun_ok(&["image", "inspect", "-f", "{{.Id}}", "hello:1.0"]);
    assert_eq!(image_id.trim(), id);

    // Errors are one line, exit non-zero, in docker's words.
    let out = d.wrun(&["inspect", "-f", "{{.Nope}}", "tpl"]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("template parsing error") && err.contains("Nope"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = d.wrun(&["ps", "-a", "--format", "{{.Names"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("failed to parse template"),
        "{}",
        stderr_of(&out)
    );
    let out = d.wrun(&["images", "--format", "{{nope .}}"]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("function \"nope\" not defined"), "{err}");
}

#[test]
fn docker_run_flags_wrun_lacks_are_refused_with_the_reason() {
    let env = Env::new();
    for (args, flag, why) in [
        (vec!["run", "-it", "hello"], "--tty", "no TTY"),
        (vec!["run", "--cpus", "0.5", "hello"], "--cpus", "--fuel"),
        (
            vec!["create", "--privileged", "hello"],
            "--privileged",
            "no Linux process",
        ),
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("does not take {flag}")) && err.contains(why),
            "{err}"
        );
        assert!(!err.contains("tip:"), "clap's tip leaked: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn image_prune_names_image_ids_as_rmi_does() {
    let env = Env::new();
    let id = env.build_hello("hello:1.0");
    let out = env.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("deleted: {id}")), "{out}");
    assert!(out.contains("untagged: hello:1.0"), "{out}");

    let id = env.build_hello("hello:1.0");
    let d = Daemon::start(env);
    let out = d.wrun_ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("deleted: {id}")), "{out}");
    if have_tool("docker") {
        let id = d.env.build_hello("hello:2.0");
        let out = d.docker_ok(&["image", "prune", "-a", "-f"]);
        assert!(out.contains(&format!("deleted: {id}")), "{out}");
    }
}

#[test]
fn docker_verbs_wrun_does_not_serve_name_themselves() {
    if !have_tool("docker") {
        eprintln!("skipped: no docker client");
        return;
    }
    let env = Env::new();
    env.build_hello("hello:1.0");
    let d = Daemon::start(env);
    d.wrun_ok(&["create", "--name", "xx", "hello:1.0"]);
    for (args, verb) in [
        (vec!["update", "--memory", "64m", "xx"], "update"),
        (vec!["plugin", "ls"], "plugin"),
    ] {
        let out = d.docker(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("docker {verb}: wrun does not support {verb} yet")),
            "{args:?}: {err}"
        );
        assert!(!err.contains("page not found"), "{err}");
    }
}

/// Writes the build context of a guest that prints `line\n` `lines` times
/// (`u32::MAX`: until stopped); a failed write makes it say so on stderr
/// and exit 3.
fn write_chatty_context(dir: &std::path::Path, lines: u32) {
    let wasm = wat::parse_str(format!(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "line\n")
        (data (i32.const 32) "write failed\n")
        (func (export "_start") (local $n i32)
          (i32.store (i32.const 0) (i32.const 16))
          (i32.store (i32.const 4) (i32.const 5))
          (i32.store (i32.const 8) (i32.const 32))
          (i32.store (i32.const 12) (i32.const 13))
          (loop $next
            (if (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 48))
              (then
                (drop (call $write (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 48)))
                (call $exit (i32.const 3))))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br_if $next (i32.lt_u (local.get $n) (i32.const {lines}))))))"#,
        lines = lines as i32
    ))
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("chatty.wasm"), wasm).unwrap();
    std::fs::write(
        dir.join("wrun.toml"),
        "name = \"chatty\"\nmodule = \"chatty.wasm\"\n",
    )
    .unwrap();
}

/// Runs `cmd` with its stdout read by a reader that takes one byte and
/// goes away (`cmd | head -c 1`); returns the exit status and stderr. A
/// run still going a minute later is killed and fails the test.
fn piped_into_head(cmd: &mut std::process::Command) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"l");
    drop(stdout);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run went on after its reader left");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

#[test]
fn a_foreground_run_whose_reader_leaves_ends_quietly_as_killed_by_sigpipe() {
    let env = Env::new();
    let endless = env.path("endless");
    write_chatty_context(&endless, u32::MAX);
    let tar = env.path("endless.tar");
    env.ok(&[
        "build",
        "-q",
        "-t",
        "endless:1",
        "-o",
        tar.to_str().unwrap(),
        endless.to_str().unwrap(),
    ]);
    // A guest that never ends on its own: the run ends only because its
    // reader went away, with the status of a death by SIGPIPE and no word.
    for args in [vec!["run", "endless:1"], vec![tar.to_str().unwrap()]] {
        let (status, err) = piped_into_head(env.cmd().args(&args));
        assert_eq!(status.code(), Some(141), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
    }

    // The same with a daemon serving the store: the foreground run is
    // still this process's.
    let finite = env.path("finite");
    write_chatty_context(&finite, 50_000);
    env.build("chatty:1", finite.to_str().unwrap());
    let d = Daemon::start(env);
    let (status, err) = piped_into_head(d.wrun_cmd().args(["run", "endless:1"]));
    assert_eq!(status.code(), Some(141), "{err}");
    assert_eq!(err, "");

    // The docker client through wrun's daemon: the client is what ends
    // (its own words); the guest runs on to its end, as under dockerd.
    if !have_tool("docker") {
        eprintln!("skipped the docker client half: no docker client");
        return;
    }
    let (status, _) = piped_into_head(d.docker_cmd().args(["run", "--name", "piped", "chatty:1"]));
    assert!(!status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let state = d.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "piped",
        ]);
        if state.trim() == "exited 0" {
            break;
        }
        assert!(
            state.trim() == "running" || state.starts_with("running "),
            "{state}"
        );
        assert!(std::time::Instant::now() < deadline, "still {state}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let logs = d.docker(&["logs", "piped"]);
    assert_eq!(logs.stdout.len(), 5 * 50_000);
    assert!(logs.stderr.is_empty(), "{}", stderr_of(&logs));
}
