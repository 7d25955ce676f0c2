#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! `wrun exec` and `docker exec` through the daemon (issue 13): a module run
//! as a second instance beside a running one, sharing its filesystem view.
//! Which module runs (a path, a name in PATH, else the entrypoint with new
//! arguments), output and exit code, -e, -w, -i, -d, `top` rows, the end
//! of an exec with its instance, the 409 of a stopped instance, the -t
//! refusal, `GET /exec/{id}/json`, and the one writable rootfs an instance
//! and its execs share (a module written there runs; `--read-only` holds
//! for execs too). dockerd 20.10's words, codes and keys were checked first
//! (a static C binary image).

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Daemon, Env, poll};
use serde_json::Value;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");
const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello/hello.wasm");

/// A store holding `box:1`: the fsh file shell as entrypoint, hello at
/// `/bin/hello`, a stdin-to-stdout `cat` at `/bin/cat.wasm`, a text file at
/// `/bin/notes`, `PATH=/bin`.
fn env_with_box() -> Env {
    let env = Env::new();
    let ctx = env.path("ctx");
    common::write_cat_context(&ctx);
    std::fs::copy(FSH, ctx.join("fsh.wasm")).unwrap();
    std::fs::copy(HELLO, ctx.join("hello.wasm")).unwrap();
    std::fs::write(ctx.join("notes"), "not a module").unwrap();
    std::fs::write(
        ctx.join("wrun.toml"),
        "name = \"box\"\nmodule = \"fsh.wasm\"\n\n[env]\nPATH = \"/bin\"\nGREETING = \"Hello\"\n\n\
         [[copy]]\nsrc = \"hello.wasm\"\ndest = \"/bin/hello\"\n\n\
         [[copy]]\nsrc = \"cat.wasm\"\ndest = \"/bin/cat.wasm\"\n\n\
         [[copy]]\nsrc = \"notes\"\ndest = \"/bin/notes\"\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "box:1", ctx.to_str().unwrap()]);
    env
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Starts `name` running `fsh sleep 600000` (ten minutes: the tests stop it).
fn run_box(d: &Daemon, name: &str) -> String {
    d.wrun_ok(&["run", "-d", "--name", name, "box:1", "sleep", "600000"])
        .trim()
        .to_string()
}

/// An exec made and started detached through the API; its ID.
fn exec_detached(d: &Daemon, name: &str, cmd: &[&str]) -> String {
    let body = serde_json::json!({ "Cmd": cmd }).to_string();
    let (status, answer) = d.request("POST", &format!("/v1.41/containers/{name}/exec"), &body);
    assert_eq!(status, 201, "{answer}");
    let id = serde_json::from_str::<Value>(&answer).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = d.request("POST", &format!("/exec/{id}/start"), r#"{"Detach":true}"#);
    assert_eq!(status, 200, "{answer}");
    id
}

fn exec_json(d: &Daemon, id: &str) -> Value {
    let (status, answer) = d.request("GET", &format!("/v1.41/exec/{id}/json"), "");
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

fn top_rows(d: &Daemon, name: &str) -> Vec<String> {
    d.wrun_ok(&["top", name])
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn wrun_exec_runs_the_module_a_path_or_path_lookup_names_else_the_entrypoint() {
    let d = Daemon::start(env_with_box());
    run_box(&d, "box");
    // An absolute path, then a bare name found through the instance's PATH.
    let out = d.wrun(&["exec", "box", "/bin/hello", "Ann"]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (0, "Hello, Ann!\n"),
        "{}",
        stderr(&out)
    );
    let out = d.wrun(&["exec", "box", "hello", "Bo"]);
    assert_eq!(stdout(&out), "Hello, Bo!\n", "{}", stderr(&out));
    // -e replaces the instance's variable; --env-file adds.
    let env_file = d.env.path("exec.env");
    std::fs::write(&env_file, "# greeting\nGREETING=Hey\n").unwrap();
    let out = d.wrun(&["exec", "-e", "GREETING=Hi", "box", "hello"]);
    assert_eq!(stdout(&out), "Hi, world!\n", "{}", stderr(&out));
    let out = d.wrun(&[
        "exec",
        "--env-file",
        env_file.to_str().unwrap(),
        "box",
        "hello",
    ]);
    assert_eq!(stdout(&out), "Hey, world!\n", "{}", stderr(&out));
    // No module by that name: the entrypoint (fsh) gets the words, and the
    // exit code is its own.
    let out = d.wrun(&["exec", "box", "echo", "from", "fsh", ";", "exit", "7"]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (7, "from fsh\n"),
        "{}",
        stderr(&out)
    );
    // -i: stdin reaches the exec until its end.
    let out = common::output_with_input(
        d.wrun_cmd().args(["exec", "-i", "box", "/bin/cat.wasm"]),
        b"through stdin\n",
    );
    assert_eq!(stdout(&out), "through stdin\n", "{}", stderr(&out));
    // Without -i the exec's stdin is closed at once.
    let out = common::output_with_input(
        d.wrun_cmd().args(["exec", "box", "/bin/cat.wasm"]),
        b"never read",
    );
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (0, ""),
        "{}",
        stderr(&out)
    );
    // -w: an absolute directory of the instance's filesystem.
    let out = d.wrun(&["exec", "-w", "/bin", "box", "hello"]);
    assert_eq!(stdout(&out), "Hello, world!\n", "{}", stderr(&out));
    for (workdir, says) in [
        ("bin", "Cwd must be an absolute path"),
        ("/nowhere", "the working directory \"/nowhere\""),
    ] {
        let out = d.wrun(&["exec", "-w", workdir, "box", "hello"]);
        assert_eq!(code(&out), 126, "{workdir}");
        assert!(stdout(&out).contains(says), "{workdir}: {}", stdout(&out));
    }
    // A path that holds no module: dockerd's 126, the rule named.
    for path in ["/nope.wasm", "/bin/notes", "/bin", "./hello"] {
        let out = d.wrun(&["exec", "box", path]);
        assert_eq!(code(&out), 126, "{path}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("is no wasm module in the instance's filesystem (a command with a `/` names a module"),
            "{path}: {}",
            stdout(&out)
        );
    }
    // -t is refused as run -t is; so are a user and privileges.
    let out = d.wrun(&["exec", "-t", "box", "hello"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrun exec does not take --tty: wrun instances have no TTY"),
        "{}",
        stderr(&out)
    );
    for flags in [["-u", "1000"].as_slice(), ["--privileged"].as_slice()] {
        let out = d.wrun(&[&["exec"], flags, &["box", "hello"]].concat());
        assert!(!out.status.success(), "{flags:?}");
    }
}

#[test]
fn an_exec_shows_in_top_ends_with_its_instance_and_a_stopped_instance_takes_none() {
    let d = Daemon::start(env_with_box());
    let id = run_box(&d, "box");
    assert_eq!(top_rows(&d, "box").len(), 1);
    let exec = exec_detached(&d, "box", &["sleep", "600000"]);
    let doc = poll("the exec running", Duration::from_secs(60), || {
        let doc = exec_json(&d, &exec);
        if doc["Running"] == true {
            Ok(doc)
        } else {
            Err(doc.to_string())
        }
    });
    // dockerd's keys and values for a running exec.
    assert_eq!(doc["ID"], exec.as_str());
    assert_eq!(doc["ContainerID"], id.as_str());
    assert!(doc["ExitCode"].is_null(), "{doc}");
    assert_eq!(
        doc["ProcessConfig"],
        serde_json::json!({"tty":false,"entrypoint":"sleep","arguments":["600000"],"privileged":false})
    );
    assert_eq!(doc["OpenStdout"], false);
    assert!(doc["Pid"].as_u64().unwrap() > 0, "{doc}");
    // Another row in top, from both clients.
    let rows = top_rows(&d, "box");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[1].ends_with("sleep 600000"), "{rows:?}");
    let docker_top = d.docker_ok(&["top", "box"]);
    assert_eq!(docker_top.lines().count(), 3, "{docker_top}");
    // A second start of the same exec is dockerd's 409.
    let (status, answer) = d.request("POST", &format!("/exec/{exec}/start"), r#"{"Detach":true}"#);
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer.contains(&format!("Exec command {exec} is already running")),
        "{answer}"
    );
    // Stopping the instance ends its exec (dockerd: 137, the kill).
    d.wrun_ok(&["stop", "box"]);
    let doc = poll("the exec ended", Duration::from_secs(60), || {
        let doc = exec_json(&d, &exec);
        if doc["Running"] == false {
            Ok(doc)
        } else {
            Err(doc.to_string())
        }
    });
    assert_eq!(doc["ExitCode"], 137, "{doc}");
    // A stopped instance takes no exec: dockerd's 409 and words.
    let out = d.docker(&["exec", "box", "hello"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!(
            "Error response from daemon: Container {id} is not running"
        )),
        "{}",
        stderr(&out)
    );
    let out = d.wrun(&["exec", "box", "hello"]);
    assert!(
        stderr(&out).contains(&format!("Container {id} is not running")),
        "{}",
        stderr(&out)
    );
    // Unknown execs, bad bodies and resize, as dockerd answers them.
    let (status, answer) = d.request("GET", "/exec/nope/json", "");
    assert_eq!(
        (status, answer.trim()),
        (404, r#"{"message":"No such exec instance: nope"}"#)
    );
    let (status, answer) = d.request("POST", "/containers/box/exec", r#"{"Cmd":[]}"#);
    assert_eq!(
        (status, answer.trim()),
        (400, r#"{"message":"No exec command specified"}"#)
    );
    let (status, _) = d.request("POST", &format!("/exec/{exec}/resize?h=10&w=20"), "");
    assert_eq!(status, 200);
    let (status, answer) = d.request("POST", &format!("/exec/{exec}/resize?h=x&w=1"), "");
    assert_eq!(status, 400, "{answer}");
    // Forgotten with its instance.
    d.wrun_ok(&["rm", "box"]);
    let (status, _) = d.request("GET", &format!("/exec/{exec}/json"), "");
    assert_eq!(status, 404);
}

#[test]
fn docker_exec_through_the_daemon() {
    if !common::have_tool("docker") {
        eprintln!("skipped: no docker client");
        return;
    }
    let d = Daemon::start(env_with_box());
    run_box(&d, "box");
    let out = d.docker(&["exec", "-e", "GREETING=Hi", "box", "hello", "Cy"]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (0, "Hi, Cy!\n"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["exec", "box", "echo", "x", ";", "exit", "3"]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (3, "x\n"),
        "{}",
        stderr(&out)
    );
    let out = common::output_with_input(
        d.docker_cmd().args(["exec", "-i", "box", "/bin/cat.wasm"]),
        b"piped\n",
    );
    assert_eq!(stdout(&out), "piped\n", "{}", stderr(&out));
    // A command that cannot start: the message in the stream, exit 126.
    let out = d.docker(&["exec", "box", "/nope.wasm"]);
    assert_eq!(code(&out), 126);
    assert!(
        stdout(&out).contains("\"/nope.wasm\" is no wasm module"),
        "{}",
        stdout(&out)
    );
    // -t: the one line run -t gets.
    let out = d.docker(&["exec", "-t", "box", "hello"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrun instances have no TTY: run without -t"),
        "{}",
        stderr(&out)
    );
    // -d returns at once; the exec shows in docker top while it runs.
    d.docker_ok(&["exec", "-d", "box", "sleep", "600000"]);
    poll("the exec in docker top", Duration::from_secs(60), || {
        let top = d.docker_ok(&["top", "box"]);
        if top.lines().count() == 3 {
            Ok(())
        } else {
            Err(top)
        }
    });
    d.docker_ok(&["kill", "box"]);
    poll("the exec gone from top", Duration::from_secs(60), || {
        let out = d.docker(&["top", "box"]);
        if out.status.success() {
            Err(stdout(&out))
        } else {
            Ok(())
        }
    });
}

#[test]
fn an_instance_and_its_execs_share_one_writable_rootfs() {
    let d = Daemon::start(env_with_box());
    d.wrun_ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "box:1",
        "cat",
        "/from-exec",
        ";",
        "write",
        "/from-box",
        "made-by-box",
        ";",
        "sleep",
        "600000",
    ]);
    // What the instance wrote, an exec reads (polled: the instance writes
    // once it has started).
    poll(
        "the instance's write seen by an exec",
        Duration::from_secs(60),
        || {
            let out = d.wrun(&["exec", "box", "cat", "/from-box"]);
            if stdout(&out) == "made-by-box\n" {
                Ok(())
            } else {
                Err(stdout(&out))
            }
        },
    );
    // What an exec writes, the next exec and the instance itself see.
    let out = d.wrun(&["exec", "box", "write", "/from-exec", "made-by-exec"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    // A module written into the view runs from there.
    d.wrun_ok(&["exec", "box", "cp", "/bin/hello", "/made.wasm"]);
    let out = d.wrun(&["exec", "box", "/made.wasm", "Zed"]);
    assert_eq!(stdout(&out), "Hello, Zed!\n", "{}", stderr(&out));
    // The instance's next run (the same view, kept by restart) reads the
    // exec's file; its first run found none.
    d.wrun_ok(&["restart", "box"]);
    poll(
        "the exec's write seen by the instance",
        Duration::from_secs(60),
        || {
            let logs = d.wrun_ok(&["logs", "box"]);
            if logs.contains("made-by-exec") {
                Ok(logs)
            } else {
                Err(logs)
            }
        },
    );
    let logs = d.wrun_ok(&["logs", "box"]);
    assert!(logs.starts_with("cat: error ENOENT\n"), "{logs}");
    // Another instance of the image sees none of it.
    let out = d.wrun(&["run", "--rm", "box:1", "cat", "/from-exec"]);
    assert_eq!(stdout(&out), "cat: error ENOENT\n", "{}", stderr(&out));
    // A --read-only instance's execs cannot write either.
    d.wrun_ok(&[
        "run",
        "-d",
        "--read-only",
        "--name",
        "ro",
        "box:1",
        "sleep",
        "600000",
    ]);
    let out = d.wrun(&["exec", "ro", "write", "/x", "y"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("write: error "),
        "{}",
        stdout(&out)
    );
    let out = d.wrun(&["exec", "ro", "cat", "/x"]);
    assert_eq!(stdout(&out), "cat: error ENOENT\n");
}

/// The private `/tmp` directories in the daemon's scratch directory.
fn scratch_tmps(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.env.root().join("scratch"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_exec_shares_its_instances_tmp_and_volumes_both_ways() {
    let d = Daemon::start(env_with_box());
    let bind = d.env.path("bind");
    std::fs::create_dir_all(&bind).unwrap();
    // The instance writes into its /tmp (`--tmpfs`), a named volume and a
    // bind, then looks for what an exec writes there (every 100 ms for two
    // minutes at least: each look is logged, the test polls the log), then
    // idles.
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        "box",
        "--tmpfs",
        "/tmp",
        "-v",
        "shared:/vol",
        "-v",
        &format!("{}:/bind", bind.display()),
        "box:1",
        "write",
        "/tmp/from-box",
        "box-tmp",
        ";",
        "write",
        "/vol/from-box",
        "box-vol",
        ";",
        "write",
        "/bind/from-box",
        "box-bind",
    ]
    .map(str::to_string)
    .to_vec();
    for _ in 0..1200 {
        for w in [
            ";",
            "cat",
            "/tmp/from-exec",
            ";",
            "cat",
            "/vol/from-exec",
            ";",
            "sleep",
            "100",
        ] {
            args.push(w.into());
        }
    }
    args.extend([";", "sleep", "600000"].map(str::to_string));
    d.wrun_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // What the instance wrote, an exec reads, /tmp included.
    poll(
        "the instance's /tmp seen by an exec",
        Duration::from_secs(60),
        || {
            let out = d.wrun(&["exec", "box", "cat", "/tmp/from-box"]);
            if stdout(&out) == "box-tmp\n" {
                Ok(())
            } else {
                Err(stdout(&out))
            }
        },
    );
    let out = d.wrun(&[
        "exec",
        "box",
        "cat",
        "/vol/from-box",
        ";",
        "cat",
        "/bind/from-box",
    ]);
    assert_eq!(stdout(&out), "box-vol\nbox-bind\n", "{}", stderr(&out));
    // One /tmp directory on the host for the instance and its execs.
    assert_eq!(scratch_tmps(&d).len(), 1, "{:?}", scratch_tmps(&d));
    // What an exec writes there, the instance reads.
    let out = d.wrun(&[
        "exec",
        "box",
        "write",
        "/tmp/from-exec",
        "exec-tmp",
        ";",
        "write",
        "/vol/from-exec",
        "exec-vol",
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    poll(
        "the exec's /tmp and volume writes seen by the instance",
        Duration::from_secs(120),
        || {
            let logs = d.wrun_ok(&["logs", "box"]);
            if logs.contains("exec-tmp\n") && logs.contains("exec-vol\n") {
                Ok(())
            } else {
                Err(logs.lines().last().unwrap_or("").to_string())
            }
        },
    );
    // The /tmp goes with the run, as a tmpfs does: the next run's is new
    // and empty, its execs share that one; the volume stays.
    d.wrun_ok(&["restart", "-t", "0", "box"]);
    poll(
        "the next run's /tmp seen by an exec",
        Duration::from_secs(60),
        || {
            let out = d.wrun(&["exec", "box", "cat", "/tmp/from-box"]);
            if stdout(&out) == "box-tmp\n" {
                Ok(())
            } else {
                Err(stdout(&out))
            }
        },
    );
    let out = d.wrun(&[
        "exec",
        "box",
        "cat",
        "/tmp/from-exec",
        ";",
        "cat",
        "/vol/from-exec",
    ]);
    assert_eq!(
        stdout(&out),
        "cat: error ENOENT\nexec-vol\n",
        "{}",
        stderr(&out)
    );
    d.wrun_ok(&["rm", "-f", "box"]);
    poll("no /tmp left after rm", Duration::from_secs(60), || {
        let left = scratch_tmps(&d);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

/// `ExecIDs` of container inspect, through the API.
fn exec_ids(d: &Daemon, name: &str) -> Value {
    let (status, answer) = d.request("GET", &format!("/v1.41/containers/{name}/json"), "");
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str::<Value>(&answer).unwrap()["ExecIDs"].clone()
}

/// An exec made through the API and not started; its ID.
fn exec_created(d: &Daemon, name: &str, cmd: &[&str]) -> String {
    let body = serde_json::json!({ "Cmd": cmd }).to_string();
    let (status, answer) = d.request("POST", &format!("/v1.41/containers/{name}/exec"), &body);
    assert_eq!(status, 201, "{answer}");
    serde_json::from_str::<Value>(&answer).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn exec_status(d: &Daemon, id: &str) -> u16 {
    d.request("GET", &format!("/v1.41/exec/{id}/json"), "").0
}

#[test]
fn exec_ids_list_the_runs_created_and_running_execs_and_none_survive_a_daemon_restart() {
    let mut d = Daemon::start(env_with_box());
    run_box(&d, "box");
    assert_eq!(exec_ids(&d, "box"), Value::Null, "dockerd's null");
    // As dockerd 20.10 lists them: created and running execs, oldest
    // first; one that ended leaves the list at once, still inspected.
    let created = exec_created(&d, "box", &["hello"]);
    let running = exec_detached(&d, "box", &["sleep", "600000"]);
    let ended = exec_detached(&d, "box", &["exit", "3"]);
    poll("the exec ended", Duration::from_secs(60), || {
        let doc = exec_json(&d, &ended);
        if doc["ExitCode"] == 3 {
            Ok(())
        } else {
            Err(doc.to_string())
        }
    });
    assert_eq!(
        exec_ids(&d, "box"),
        serde_json::json!([created.clone(), running.clone()])
    );
    let docker_ids = d.docker_ok(&["inspect", "-f", "{{json .ExecIDs}}", "box"]);
    assert_eq!(
        serde_json::from_str::<Value>(&docker_ids).unwrap(),
        serde_json::json!([created.clone(), running.clone()])
    );
    assert_eq!(exec_json(&d, &ended)["CanRemove"], false);
    // The run ends: none listed; the exec never started is forgotten (404,
    // its start too), the ones that ran are still inspected.
    d.wrun_ok(&["stop", "box"]);
    assert_eq!(exec_ids(&d, "box"), Value::Null);
    assert_eq!(exec_status(&d, &created), 404);
    let (status, _) = d.request(
        "POST",
        &format!("/exec/{created}/start"),
        r#"{"Detach":true}"#,
    );
    assert_eq!(status, 404);
    assert_eq!(exec_json(&d, &running)["ExitCode"], 137);
    assert_eq!(exec_json(&d, &ended)["ExitCode"], 3);
    d.wrun_ok(&["start", "box"]);
    assert_eq!(exec_ids(&d, "box"), Value::Null);
    let next = exec_created(&d, "box", &["hello"]);
    assert_eq!(exec_ids(&d, "box"), serde_json::json!([next.clone()]));
    // dockerd keeps no exec across its restart (live-restore off: checked
    // on 20.10, ended, running and created ones all 404, ExecIDs null);
    // neither does wrun.
    let out = d.wrun(&["daemon", "--stop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.child.take().unwrap().wait().unwrap();
    let child = d
        .env
        .cmd()
        .args(["daemon", "--socket", d.socket.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    d.child = Some(child);
    d.wait_until_up();
    for id in [&running, &ended, &next] {
        assert_eq!(exec_status(&d, id), 404, "{id}");
    }
    assert_eq!(exec_ids(&d, "box"), Value::Null);
}
