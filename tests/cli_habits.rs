//! Docker habits that must work with wrun (issue 12): Go templates for
//! every `--format`, docker run flags wrun lacks refused with the reason,
//! image prune naming image IDs, and the docker client's verbs that wrun
//! does not serve answered with a message that names them.

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
        (vec!["exec", "xx", "ls"], "exec"),
        (vec!["volume", "create", "v"], "volume"),
        (vec!["network", "create", "n"], "network"),
        (vec!["diff", "xx"], "diff"),
        (vec!["push", "hello:1.0"], "push"),
        (vec!["cp", "xx:/a", "/tmp/wrun-cli-habits-unused"], "cp"),
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
