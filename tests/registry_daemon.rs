//! The daemon's registry routes (`POST /images/create?fromImage=`, `POST
//! /images/{name}/push`, `POST /auth`) driven by the stock docker client
//! and by wrun through the daemon, against a real registry (distribution
//! 2.8); the outputs and statuses are dockerd 20.10's, checked against it.

mod common;

use common::registry::Registry;
use common::{Daemon, Env, have_tool, output_with_input};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A daemon over a store holding the hello image as `NAME`; the run's
/// output of the image, for comparison.
fn daemon_with(name: &str) -> (Daemon, String) {
    let env = Env::new();
    env.build_hello("hello:1.0");
    env.ok(&["tag", "hello:1.0", name]);
    let expected = env.ok(&["run", "--rm", "hello:1.0"]);
    // Stored under `name` alone: a pull after its rmi fetches the layer.
    env.ok(&["rmi", "hello:1.0"]);
    (Daemon::start(env), expected)
}

fn docker_or_skip() -> bool {
    if have_tool("docker") {
        return true;
    }
    assert!(
        std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
        "docker is required (WRUN_REQUIRE_PEERS is set) but not installed"
    );
    eprintln!("skipping: no docker client");
    false
}

#[test]
fn docker_push_pull_and_run_of_an_image_not_stored_read_as_dockerds() {
    if !docker_or_skip() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let name = format!("{}/team/hello:1.0", reg.host);
    let (d, expected_run) = daemon_with(&name);

    let pushed = d.docker_ok(&["push", &name]);
    let lines: Vec<&str> = pushed.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("The push refers to repository [{}/team/hello]", reg.host).as_str()),
        "{pushed}"
    );
    assert!(
        lines[1].ends_with(": Preparing") && lines[2].ends_with(": Pushed"),
        "{pushed}"
    );
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("1.0: digest: sha256:") && last.contains(" size: "),
        "{pushed}"
    );
    let digest = last.split_whitespace().nth(2).unwrap().to_owned();
    // The registry has it: its manifest under the tag is the pushed one.
    let (status, _) = reg.get(&format!("/v2/team/hello/manifests/{digest}"));
    assert_eq!(status, 200);
    let again = d.docker_ok(&["push", &name]);
    assert!(again.contains(": Layer already exists"), "{again}");
    assert!(!again.contains(": Pushed"), "{again}");

    // Gone from the daemon's store: docker run pulls it, as docker does.
    d.docker_ok(&["rmi", &name]);
    let out = d.docker(&["run", "--rm", &name]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(text(&out.stdout), expected_run);
    assert!(
        err.starts_with(&format!(
            "Unable to find image '{name}' locally\n1.0: Pulling from team/hello\n"
        )),
        "{err}"
    );
    for line in [
        ": Pulling fs layer\n",
        ": Download complete\n",
        ": Pull complete\n",
    ] {
        assert!(err.contains(line), "{err}");
    }
    assert!(
        err.ends_with(&format!(
            "Digest: {digest}\nStatus: Downloaded newer image for {name}\n"
        )),
        "{err}"
    );

    // Pulled again: nothing fetched, and said so; the name last, as docker.
    let up_to_date = d.docker_ok(&["pull", &name]);
    assert_eq!(
        up_to_date,
        format!(
            "1.0: Pulling from team/hello\nDigest: {digest}\nStatus: Image is up to date for {name}\n{name}\n"
        )
    );
    // By digest: stored under no new name.
    let by_digest = format!("{}/team/hello@{digest}", reg.host);
    let pulled = d.docker_ok(&["pull", &by_digest]);
    assert!(
        pulled.starts_with(&format!("{by_digest}: Pulling from team/hello\n")),
        "{pulled}"
    );

    // A push of a name the daemon lacks: dockerd's words, nothing sent.
    let missing = d.docker(&["push", &format!("{}/team/missing:1", reg.host)]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains(&format!(
            "An image does not exist locally with the tag: {}/team/missing",
            reg.host
        )),
        "{}",
        text(&missing.stderr)
    );
    assert_eq!(reg.get("/v2/team/missing/tags/list").0, 404);
}

#[test]
fn a_failed_pull_through_the_daemon_leaves_no_image_listed() {
    if !docker_or_skip() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let (d, _) = daemon_with(&format!("{}/team/hello:1.0", reg.host));
    let before = d.env.store_state();
    let nope = format!("{}/team/nope:1.0", reg.host);
    let out = d.docker(&["pull", &nope]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Error response from daemon: manifest for {nope} not found: manifest unknown: manifest unknown\n"
        )
    );
    // The route's own status, as dockerd's: a 404 before any line.
    let (status, body) = d.request(
        "POST",
        &format!(
            "/v1.41/images/create?fromImage={}/team/nope&tag=1.0",
            reg.host
        ),
        "",
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = d.request(
        "POST",
        &format!(
            "/v1.41/images/create?fromImage={}/team/hello&tag=a:b",
            reg.host
        ),
        "",
    );
    assert_eq!(
        (status, body.trim()),
        (400, r#"{"message":"invalid tag format"}"#)
    );
    // A registry that is not there.
    let out = d.docker(&["pull", "127.0.0.1:9/team/hello:1.0"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).starts_with("Error response from daemon: "),
        "{}",
        text(&out.stderr)
    );
    let run = d.docker(&["run", "--rm", &nope]);
    assert_eq!(run.status.code(), Some(125), "{}", text(&run.stderr));
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!images.contains("nope"), "{images}");
    assert_eq!(d.env.store_state(), before);
}

#[test]
fn docker_login_checks_credentials_and_push_and_pull_carry_them() {
    if !docker_or_skip() {
        return;
    }
    let Some(reg) = Registry::start_with_login("alice", "secret") else {
        return;
    };
    let host = reg.host.as_str();
    let name = format!("{host}/team/hello:1.0");
    let (d, _) = daemon_with(&name);
    let login = |password: &str| {
        output_with_input(
            d.docker_cmd()
                .args(["login", host, "-u", "alice", "--password-stdin"]),
            format!("{password}\n").as_bytes(),
        )
    };

    let wrong = login("wrong");
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(
        text(&wrong.stderr),
        format!(
            "Error response from daemon: login attempt to http://{host}/v2/ failed with status: 401 Unauthorized\n"
        )
    );
    // Anonymous: dockerd's words for a push and a pull.
    let out = d.docker(&["push", &name]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no basic auth credentials"),
        "{}",
        text(&out.stderr)
    );

    let right = login("secret");
    assert!(right.status.success(), "{}", text(&right.stderr));
    assert_eq!(text(&right.stdout), "Login Succeeded\n");
    // The client stores them; the daemon gets them in X-Registry-Auth.
    let config = std::fs::read_to_string(d.env.path("docker-config/config.json")).unwrap();
    assert!(config.contains(host), "{config}");
    let pushed = d.docker_ok(&["push", &name]);
    assert!(pushed.contains(": Pushed"), "{pushed}");
    d.docker_ok(&["rmi", &name]);
    let pulled = d.docker_ok(&["pull", &name]);
    assert!(
        pulled.contains(&format!("Status: Downloaded newer image for {name}")),
        "{pulled}"
    );

    d.docker_ok(&["logout", host]);
    d.docker_ok(&["rmi", &name]);
    let out = d.docker(&["pull", &name]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!(
            "Error response from daemon: Head \"http://{host}/v2/team/hello/manifests/1.0\": no basic auth credentials\n"
        )
    );
    // Credentials sent for another registry are not passed on to this one.
    let auth = wrun_api::registry::AuthConfig {
        username: "alice".into(),
        password: "secret".into(),
        serveraddress: "127.0.0.1:1".into(),
        ..Default::default()
    }
    .to_header();
    let (status, body) = d.request_with_header(
        &format!("/v1.41/images/create?fromImage={host}/team/hello&tag=1.0"),
        &auth,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("only to that registry"), "{body}");
}

trait HeaderRequest {
    fn request_with_header(&self, path: &str, auth: &str) -> (u16, String);
}

impl HeaderRequest for Daemon {
    /// `POST path` with `X-Registry-Auth: auth` and no body.
    fn request_with_header(&self, path: &str, auth: &str) -> (u16, String) {
        use std::io::{Read as _, Write as _};
        let mut s =
            std::os::unix::net::UnixStream::connect(&self.socket).expect("connect to the daemon");
        s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .expect("a read timeout");
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: wrun\r\nX-Registry-Auth: {auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send the request");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read the answer");
        common::registry::status_and_body(&answer)
    }
}

#[test]
fn wrun_pull_push_and_run_go_through_the_daemon_with_wrun_s_credentials() {
    let Some(reg) = Registry::start_with_login("alice", "secret") else {
        return;
    };
    let host = reg.host.as_str();
    let name = format!("{host}/team/hello:1.0");
    let (d, expected_run) = daemon_with(&name);
    let config = d.env.path("wrun-config");
    let wrun = |args: &[&str]| {
        let mut cmd = d.wrun_cmd();
        cmd.env("WRUN_CONFIG", &config)
            .env("DOCKER_CONFIG", &config);
        output_with_input(cmd.args(args), b"secret\n")
    };
    // Without credentials the daemon's refusal comes back.
    let out = wrun(&["push", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "Error: no basic auth credentials\n");

    let out = wrun(&["login", host, "-u", "alice", "--password-stdin"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = wrun(&["push", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pushed = text(&out.stdout);
    assert!(
        pushed.starts_with(&format!(
            "The push refers to repository [{host}/team/hello]\n"
        )),
        "{pushed}"
    );
    assert_eq!(
        pushed.lines().nth(1).map(|l| &l[12..]),
        Some(": Pushed"),
        "{pushed}"
    );
    let digest = pushed
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap()
        .to_owned();

    // Pulled into the daemon's store by another tag's name: the same image.
    let out = wrun(&["rmi", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = wrun(&["pull", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pulled = text(&out.stdout);
    // The lines wrun pull prints on a store: each layer's last status.
    assert!(
        pulled.starts_with("1.0: Pulling from team/hello\n"),
        "{pulled}"
    );
    assert_eq!(
        pulled
            .lines()
            .filter(|l| l.contains(": "))
            .nth(1)
            .map(|l| &l[12..]),
        Some(": Pull complete"),
        "{pulled}"
    );
    assert!(
        pulled.ends_with(&format!(
            "Digest: {digest}\nStatus: Downloaded newer image for {name}\n{name}\n"
        )),
        "{pulled}"
    );
    let out = wrun(&["pull", "-q", &name]);
    assert_eq!(text(&out.stdout), format!("{name}\n"));

    // run -d of a name the daemon lacks pulls it first (stderr), then runs.
    let out = wrun(&["rmi", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = wrun(&["create", "--name", "c1", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("Unable to find image '{name}' locally\n")),
        "{err}"
    );
    assert!(err.contains(": Pull complete\n"), "{err}");
    let out = wrun(&["start", "-a", "c1"]);
    assert_eq!(text(&out.stdout), expected_run);
    // --pull never: no pull, the lookup's error.
    let out = wrun(&["create", "--pull", "never", &format!("{host}/team/other:1")]);
    assert!(!out.status.success());
    assert!(
        !text(&out.stderr).contains("Unable to find image"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn wrun_run_pulls_an_image_the_store_lacks_without_a_daemon() {
    let Some(reg) = Registry::start() else { return };
    let name = format!("{}/team/hello:1.0", reg.host);
    let built = Env::new();
    built.build_hello("hello:1.0");
    built.ok(&["tag", "hello:1.0", &name]);
    let expected_run = built.ok(&["run", "--rm", &name]);
    built.ok(&["push", &name]);

    let env = Env::new();
    let out = env.run(&["run", "--rm", "--pull", "never", &name]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains(&format!("No such image: {name}")),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["run", "--rm", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected_run);
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "Unable to find image '{name}' locally\n1.0: Pulling from team/hello\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{err}"
    );
    // Stored now: no pull; --pull always asks again; -q says nothing.
    let out = env.run(&["run", "--rm", &name]);
    assert_eq!(text(&out.stderr), "");
    let out = env.run(&["run", "--rm", "--pull", "always", &name]);
    assert!(
        text(&out.stderr).contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["run", "--rm", "-q", "--pull", "always", &name]);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout), expected_run);
    // What no registry holds is not pulled, and --pull always says so.
    let out = built.run(&["run", "--rm", "--pull", "always", "hello:1.0"]);
    assert_eq!(text(&out.stdout), expected_run);
    assert_eq!(
        text(&out.stderr),
        "WARNING: --pull always: hello:1.0 names no registry (HOST[:PORT]/NAME): the stored image is used\n"
    );
    let out = env.run(&["run", "--rm", "--pull", "sometimes", &name]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains(
            r#"invalid pull option: 'sometimes': must be one of "always", "missing" or "never""#
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn docker_push_through_the_daemon_mounts_from_another_repository_in_dockers_words() {
    if !docker_or_skip() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let a = format!("{}/team/a:1", reg.host);
    let b = format!("{}/team/b:1", reg.host);
    let (d, _) = daemon_with(&a);
    let pushed = d.docker_ok(&["push", &a]);
    assert!(pushed.contains(": Pushed"), "{pushed}");
    d.docker_ok(&["tag", &a, &b]);
    let pushed = d.docker_ok(&["push", &b]);
    let layers: Vec<&str> = pushed
        .lines()
        .filter(|l| l.len() > 14 && l.as_bytes()[12] == b':')
        .filter(|l| !l.ends_with(": Preparing"))
        .collect();
    assert!(!layers.is_empty(), "{pushed}");
    assert!(
        layers.iter().all(|l| l.ends_with(": Mounted from team/a")),
        "{pushed}"
    );
    let repos = reg.data().join("docker/registry/v2/repositories/team");
    assert!(repos.join("a/_uploads").is_dir(), "team/a was uploaded to");
    assert!(
        !repos.join("b/_uploads").exists(),
        "a blob of team/b was uploaded, not mounted"
    );
}

#[test]
fn docker_run_and_pull_of_a_bare_name_find_it_on_the_daemons_default_registry() {
    if !docker_or_skip() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let side = Env::new();
    side.build_hello("hello:1");
    let expected_run = side.ok(&["run", "--rm", "hello:1"]);
    for tag in ["1", "2", "3", "4"] {
        let name = format!("{}/hello:{tag}", reg.host);
        side.ok(&["tag", "hello:1", &name]);
        side.ok(&["push", &name]);
    }
    let config = side.path("daemon-config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"default-registry":"{}"}}"#, reg.host),
    )
    .expect("config.json");
    let d = Daemon::start_from(Env::new(), |env, socket| {
        env.cmd()
            .env("WRUN_CONFIG", &config)
            .args(["daemon", "--socket", socket.to_str().expect("utf-8")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the daemon")
    });
    // The create's 404, the pull of hello:1 (DEFAULT/hello:1), the create
    // again by the bare name: it finds what the pull stored.
    let out = d.docker(&["run", "--rm", "hello:1"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(text(&out.stdout), expected_run);
    assert!(
        err.starts_with("Unable to find image 'hello:1' locally\n"),
        "{err}"
    );
    // Found now: not pulled again.
    let out = d.docker(&["run", "--rm", "hello:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    // docker's `pull x; run x`.
    d.docker_ok(&["pull", "hello:2"]);
    let out = d.docker(&["run", "--rm", "--pull", "never", "hello:2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected_run);
    // wrun with the same configuration: a foreground run pulls through the
    // daemon serving the store; a detached one creates by the bare name.
    let wrun = |args: &[&str]| {
        d.wrun_cmd()
            .args(args)
            .env("WRUN_CONFIG", &config)
            .output()
            .expect("run wrun")
    };
    let out = wrun(&["run", "--rm", "hello:3"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(text(&out.stdout), expected_run);
    assert!(
        err.starts_with(
            "Unable to find image 'hello:3' locally
"
        ),
        "{err}"
    );
    let out = wrun(&["run", "-d", "--name", "four", "hello:4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with(
            "Unable to find image 'hello:4' locally
"
        ),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.Config.Image}}", "four"]),
        "hello:4\n"
    );
    // A name neither stored nor on the registry: docker's 404 after the pull.
    let out = d.docker(&["run", "--rm", "hello:9"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("manifest for"),
        "{}",
        text(&out.stderr)
    );
}
