//! `wrun pull` and `wrun push` against a real registry (distribution 2.8,
//! anonymous), with skopeo as the other client.

mod common;

use common::registry::Registry;
use common::{Env, have_tool, output_with_input, skopeo};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `Digest: ` / `digest: ` value in pull's or push's output.
fn digest_in(output: &str) -> String {
    output
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("digest:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {output:?}"))
        .to_owned()
}

fn image_id(env: &Env, name: &str) -> String {
    env.ok(&["image", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_owned()
}

#[test]
fn build_push_rmi_pull_on_a_clean_store_runs_the_same_with_the_same_digests() {
    let Some(reg) = Registry::start() else { return };
    let name = format!("{}/team/hello:1.0", reg.host);
    let built = Env::new();
    built.build_hello("hello:1.0");
    built.ok(&["tag", "hello:1.0", &name]);
    let expected_run = built.ok(&["run", "--rm", "hello:1.0"]);
    let id = image_id(&built, &name);

    let pushed = built.ok(&["push", &name]);
    let mut lines = pushed.lines();
    assert_eq!(
        lines.next(),
        Some(format!("The push refers to repository [{}/team/hello]", reg.host).as_str())
    );
    assert!(
        lines.next().is_some_and(|l| l.ends_with(": Pushed")),
        "{pushed}"
    );
    let digest = digest_in(&pushed);
    // Pushed again: every blob is there already.
    let again = built.ok(&["push", &name]);
    assert!(again.contains(": Layer already exists"), "{again}");
    assert!(!again.contains(": Pushed"), "{again}");
    assert_eq!(digest_in(&again), digest);

    built.ok(&["rmi", &name]);
    let clean = Env::new();
    let pulled = clean.ok(&["pull", &name]);
    assert!(pulled.contains(": Pull complete"), "{pulled}");
    assert_eq!(digest_in(&pulled), digest, "{pulled}");
    assert!(
        pulled.ends_with(&format!(
            "Status: Downloaded newer image for {name}\n{name}\n"
        )),
        "{pulled}"
    );
    assert_eq!(image_id(&clean, &name), id);
    assert_eq!(clean.ok(&["run", "--rm", &name]), expected_run);
    // The stored manifest is the pushed one, byte for byte.
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(
        std::fs::read(clean.root().join("blobs/sha256").join(hex)).expect("pulled manifest"),
        std::fs::read(built.root().join("blobs/sha256").join(hex)).expect("pushed manifest")
    );
    // Pulled again: nothing fetched, and said so.
    let again = clean.ok(&["pull", &name]);
    assert!(again.contains(": Already exists"), "{again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );

    // By digest: the same image, no name added.
    let by_digest = format!("{}/team/hello@{digest}", reg.host);
    let third = Env::new();
    assert_eq!(third.ok(&["pull", "-q", &by_digest]).trim(), by_digest);
    assert_eq!(
        third.ok(&["images", "-q"]).trim(),
        &id["sha256:".len()..][..12]
    );
}

#[test]
fn skopeo_copies_in_wrun_pulls_and_runs_wrun_pushes_skopeo_reads_its_manifest() {
    let Some(reg) = Registry::start() else { return };
    if !have_tool("skopeo") {
        return;
    }
    let env = Env::new();
    env.build_hello("hello:1.0");
    let expected_run = env.ok(&["run", "--rm", "hello:1.0"]);
    let tar = env.path("hello.tar");
    env.ok(&["save", "-o", tar.to_str().expect("utf-8"), "hello:1.0"]);
    let into = format!("docker://{}/x:1", reg.host);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", tar.display()),
        &into,
    ]);
    let name = format!("{}/x:1", reg.host);
    let clean = Env::new();
    clean.ok(&["pull", &name]);
    assert_eq!(clean.ok(&["run", "--rm", &name]), expected_run);

    let pushed_name = format!("{}/wrun/pushed:2", reg.host);
    env.ok(&["tag", "hello:1.0", &pushed_name]);
    let digest = digest_in(&env.ok(&["push", &pushed_name]));
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{pushed_name}"),
    ]);
    let stored = std::fs::read_to_string(
        env.root()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("stored manifest");
    assert_eq!(raw, stored);
}

#[test]
fn a_missing_tag_or_repository_fails_in_dockers_words_and_leaves_the_store_unchanged() {
    let Some(reg) = Registry::start() else { return };
    let env = Env::new();
    env.build_hello("hello:1.0");
    let before = env.store_state();
    for missing in [
        format!("{}/nobody/here:1", reg.host),
        format!("{}/nobody/here@sha256:{}", reg.host, "0".repeat(64)),
    ] {
        let out = env.run(&["pull", &missing]);
        assert_eq!(out.status.code(), Some(1), "{missing}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "Error: manifest for {missing} not found: manifest unknown: manifest unknown\n"
            )
        );
        assert_eq!(stdout(&out), "");
        assert_eq!(env.store_state(), before);
    }
    // A push of a name the store lacks: docker's words, nothing sent.
    let out = env.run(&["push", &format!("{}/nothing:1", reg.host)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: An image does not exist locally with the tag: {}/nothing\n",
            reg.host
        )
    );
    assert_eq!(reg.get("/v2/_catalog").1.trim(), r#"{"repositories":[]}"#);
    // No registry in the name: how to name one.
    let err = env.fails(&["pull", "hello:2"]);
    assert!(
        err.contains("names no registry") && err.contains("HOST[:PORT]/"),
        "{err}"
    );
}

/// `wrun ARGS` on `env`'s store with `config` as wrun's config directory
/// and `docker_config` as docker's (never the user's own files).
fn with_config(
    env: &Env,
    config: &std::path::Path,
    docker_config: &std::path::Path,
    args: &[&str],
    stdin: &[u8],
) -> std::process::Output {
    let mut cmd = env.cmd();
    cmd.args(args)
        .env("WRUN_CONFIG", config)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("XDG_CONFIG_HOME");
    output_with_input(&mut cmd, stdin)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn login_with_a_wrong_password_is_refused_the_right_one_kept_0600_for_push_and_pull_until_logout() {
    let Some(reg) = Registry::start_with_login("alice", "secret") else {
        return;
    };
    let host = reg.host.as_str();
    let env = Env::new();
    env.build_hello("hello:1.0");
    let expected_run = env.ok(&["run", "--rm", "hello:1.0"]);
    let name = format!("{host}/team/hello:1.0");
    env.ok(&["tag", "hello:1.0", &name]);
    let config = env.path("wrun-config");
    let docker_config = env.path("docker-config");
    let file = config.join("config.json");
    let wrun = |env: &Env, args: &[&str], stdin: &[u8]| {
        with_config(env, &config, &docker_config, args, stdin)
    };

    // A wrong password: docker's words, exit 1, nothing stored.
    let out = wrun(
        &env,
        &["login", host, "-u", "alice", "--password-stdin"],
        b"wrong\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("Error: login attempt to http://{host}/v2/ failed with status: 401 Unauthorized\n")
    );
    assert!(!file.exists());

    // Anonymous: the registry refuses, in docker's words; the store as it was.
    let out = wrun(&env, &["push", &name], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: no basic auth credentials\n");
    let before = env.store_state();
    let out = wrun(&env, &["pull", &format!("{host}/team/hello:2")], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "Error: Head \"http://{host}/v2/team/hello/manifests/2\": no basic auth credentials\n"
        )
    );
    assert_eq!(env.store_state(), before);

    // The right one: checked, stored in docker's format, mode 0600.
    let out = wrun(
        &env,
        &["login", host, "-u", "alice", "--password-stdin"],
        b"secret\n",
    );
    assert_eq!(stdout(&out), "Login Succeeded\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(&format!("stored unencrypted in '{}'", file.display())),
        "{}",
        stderr(&out)
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file)
        .expect("config.json")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_eq!(doc["auths"][host]["auth"], "YWxpY2U6c2VjcmV0");

    // Push and pull with it.
    let out = wrun(&env, &["push", &name], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(": Pushed"), "{}", stdout(&out));
    let clean = Env::new();
    let out = wrun(&clean, &["pull", &name], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(clean.ok(&["run", "--rm", &name]), expected_run);

    // Logout: docker's line, the entry gone, the file still 0600.
    let out = wrun(&env, &["logout", host], b"");
    assert_eq!(
        stdout(&out),
        format!("Removing login credentials for {host}\n")
    );
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert!(doc["auths"].get(host).is_none(), "{doc}");
    let mode = std::fs::metadata(&file)
        .expect("config.json")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = wrun(&env, &["push", &name], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: no basic auth credentials\n");

    // Docker's own config.json is read when wrun's has no entry.
    std::fs::create_dir_all(&docker_config).expect("mkdir");
    std::fs::write(
        docker_config.join("config.json"),
        format!(r#"{{"auths":{{"http://{host}/v2/":{{"auth":"YWxpY2U6c2VjcmV0"}}}}}}"#),
    )
    .expect("docker config");
    let third = Env::new();
    let out = wrun(&third, &["pull", "-q", &name], b"");
    assert_eq!(stdout(&out), format!("{name}\n"), "{}", stderr(&out));
    // Stored credentials that the registry refuses: its words.
    std::fs::write(
        docker_config.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"YWxpY2U6d3Jvbmc="}}}}}}"#),
    )
    .expect("docker config");
    let out = wrun(&Env::new(), &["pull", &name], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: unauthorized: authentication required\n"
    );
}

#[test]
fn login_options_are_refused_in_dockers_words() {
    let env = Env::new();
    let config = env.path("wrun-config");
    let docker_config = env.path("docker-config");
    for (args, stdin, err) in [
        (
            &[
                "login",
                "127.0.0.1:9",
                "-u",
                "a",
                "-p",
                "b",
                "--password-stdin",
            ][..],
            &b"b\n"[..],
            "conflicting options: cannot specify both --password and --password-stdin",
        ),
        (
            &["login", "127.0.0.1:9", "--password-stdin"][..],
            &b"b\n"[..],
            "the --password-stdin option requires --username to be set",
        ),
        (
            &["login", "127.0.0.1:9", "-u", "a", "--password-stdin"][..],
            &b"\n"[..],
            "Cannot perform an interactive login from a non TTY device",
        ),
        (
            &["login", "-u", "a", "--password-stdin"][..],
            &b"b\n"[..],
            "wrun login needs a SERVER, HOST[:PORT] (wrun has no default registry)",
        ),
        (
            &["logout"][..],
            &b""[..],
            "wrun logout needs a SERVER, HOST[:PORT] (wrun has no default registry)",
        ),
    ] {
        let out = with_config(&env, &config, &docker_config, args, stdin);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), format!("Error: {err}\n"), "{args:?}");
    }
    assert!(!config.exists());
}

/// The layer lines of a push's output (those between its first line and
/// its digest line).
fn layer_lines(pushed: &str) -> Vec<&str> {
    let lines: Vec<&str> = pushed.lines().collect();
    lines[1..lines.len() - 1].to_vec()
}

#[test]
fn a_push_mounts_the_blobs_another_repository_of_the_registry_holds_instead_of_uploading() {
    let Some(reg) = Registry::start() else { return };
    let env = Env::new();
    env.build_hello("hello:1");
    let expected_run = env.ok(&["run", "--rm", "hello:1"]);
    let a = format!("{}/team/a:1", reg.host);
    let b = format!("{}/team/b:1", reg.host);
    env.ok(&["tag", "hello:1", &a]);
    let pushed_a = env.ok(&["push", &a]);
    assert!(
        layer_lines(&pushed_a)
            .iter()
            .all(|l| l.ends_with(": Pushed")),
        "{pushed_a}"
    );
    // Tagged for another repository of the same registry: docker's line.
    env.ok(&["tag", &a, &b]);
    let pushed_b = env.ok(&["push", &b]);
    let layers = layer_lines(&pushed_b);
    assert!(!layers.is_empty(), "{pushed_b}");
    assert!(
        layers.iter().all(|l| l.ends_with(": Mounted from team/a")),
        "{pushed_b}"
    );
    assert_eq!(digest_in(&pushed_b), digest_in(&pushed_a));
    // The registry opened no upload in team/b (distribution keeps an
    // `_uploads` directory in a repository once one was opened there).
    let repos = reg.data().join("docker/registry/v2/repositories/team");
    assert!(repos.join("a/_uploads").is_dir(), "team/a was uploaded to");
    assert!(
        !repos.join("b/_uploads").exists(),
        "a blob of team/b was uploaded, not mounted"
    );
    let clean = Env::new();
    clean.ok(&["pull", &b]);
    assert_eq!(clean.ok(&["run", "--rm", &b]), expected_run);

    // A name that claims a repository the registry does not have: the
    // mount is refused (202, an upload offered) and the blob uploaded.
    let other = Env::new();
    other.build_hello("hello:1");
    let never = format!("{}/never/pushed:1", reg.host);
    let c = format!("{}/team/c:1", reg.host);
    other.ok(&["tag", "hello:1", &never]);
    other.ok(&["tag", "hello:1", &c]);
    let pushed_c = other.ok(&["push", &c]);
    assert!(
        layer_lines(&pushed_c)
            .iter()
            .all(|l| l.ends_with(": Pushed")),
        "{pushed_c}"
    );
    let fresh = Env::new();
    fresh.ok(&["pull", &c]);
    assert_eq!(fresh.ok(&["run", "--rm", &c]), expected_run);
}

#[test]
fn a_bare_name_runs_from_the_default_registry_pulled_when_missing_found_after_a_pull() {
    let Some(reg) = Registry::start() else { return };
    let side = Env::new();
    side.build_hello("hello:1");
    let expected_run = side.ok(&["run", "--rm", "hello:1"]);
    for tag in ["1", "2"] {
        let name = format!("{}/hello:{tag}", reg.host);
        side.ok(&["tag", "hello:1", &name]);
        side.ok(&["push", &name]);
    }
    let user = Env::new();
    let config = user.path("config");
    let docker_config = user.path("docker-config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"default-registry":"{}"}}"#, reg.host),
    )
    .expect("config.json");
    let wrun = |args: &[&str]| with_config(&user, &config, &docker_config, args, b"");

    // Neither hello:1 nor DEFAULT/hello:1 stored: pulled as docker run pulls.
    let out = wrun(&["run", "--rm", "hello:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected_run);
    let err = stderr(&out);
    assert!(
        err.starts_with("Unable to find image 'hello:1' locally\n")
            && err.contains(": Pull complete"),
        "{err}"
    );
    assert_eq!(
        user.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        format!("{}/hello:1\n", reg.host)
    );
    // Stored as DEFAULT/hello:1 now: found under the bare name, not pulled.
    let out = wrun(&["run", "--rm", "hello:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected_run);
    assert_eq!(stderr(&out), "");

    // docker's `pull x; run x`.
    let out = wrun(&["pull", "-q", "hello:2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = wrun(&["run", "--pull", "never", "--rm", "hello:2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected_run);

    // Without default-registry nothing changes: the bare name is not
    // stored, nothing is pulled.
    let plain = user.path("plain-config");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let out = with_config(
        &user,
        &plain,
        &docker_config,
        &["run", "--rm", "hello:2"],
        b"",
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("No such image") && !err.contains("Unable to find"),
        "{err}"
    );
}
