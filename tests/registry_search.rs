//! `wrun search` and the daemon's `GET /images/search` against a real
//! registry (distribution 2.8): its catalog filtered by the term, docker
//! search's columns, `--limit`, `--filter`, `--format`; a registry that
//! lists its repositories only after a login; the stock `docker search`
//! through the daemon shows the same rows.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::registry::{Registry, wrun_configured as wrun};
use common::{Daemon, Env, have_tool};

fn ok(env: &Env, config: &Path, args: &[&str]) -> String {
    common::succeeded("wrun", args, wrun(env, config, args))
}

fn fails(env: &Env, config: &Path, args: &[&str]) -> String {
    let out = wrun(env, config, args);
    assert!(!out.status.success(), "wrun {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A registry holding `team/hello` (tags 1.0 and 2.0), `other/hello-web`
/// (tag 1) and `tools/box` (tag 1), pushed by wrun; the store that pushed.
fn registry_with_repositories() -> Option<(Registry, Env, std::path::PathBuf)> {
    let reg = Registry::start()?;
    let env = Env::new();
    let config = env.path("config");
    env.build_hello("hello:1.0");
    for name in [
        "team/hello:1.0",
        "team/hello:2.0",
        "other/hello-web:1",
        "tools/box:1",
    ] {
        let full = format!("{}/{name}", reg.host);
        env.ok(&["tag", "hello:1.0", &full]);
        ok(&env, &config, &["push", &full]);
    }
    Some((reg, env, config))
}

/// The table rows' names (the first column), header left out.
fn names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn search_lists_the_catalog_filtered_by_the_term_in_dockers_columns() {
    let Some((reg, env, config)) = registry_with_repositories() else {
        return;
    };
    let h = &reg.host;
    let table = ok(&env, &config, &["search", &format!("{h}/hello")]);
    let mut lines = table.lines();
    let header: Vec<_> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"],
        "{table}"
    );
    assert_eq!(
        names(&table),
        [format!("{h}/other/hello-web"), format!("{h}/team/hello")],
        "{table}"
    );
    // Each row: its tags as the description, no stars, not official.
    let team = table
        .lines()
        .find(|l| l.contains("team/hello"))
        .expect("row");
    let cells: Vec<_> = team
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [format!("{h}/team/hello").as_str(), "tags: 1.0, 2.0", "0"],
        "{table}"
    );

    // The term ignores case; --registry names the registry instead.
    assert_eq!(
        ok(&env, &config, &["search", "--registry", h, "HELLO"]),
        table
    );
    // --limit, filters, a term that matches nothing, --format.
    assert_eq!(
        names(&ok(
            &env,
            &config,
            &["search", "--limit", "1", &format!("{h}/hello")]
        )),
        [format!("{h}/other/hello-web")]
    );
    for (filter, expected) in [
        ("is-official=true", 0),
        ("is-official=false", 2),
        ("stars=1", 0),
        ("stars=0", 2),
        ("is-automated=false", 2),
    ] {
        let out = ok(
            &env,
            &config,
            &["search", "--filter", filter, &format!("{h}/hello")],
        );
        assert_eq!(names(&out).len(), expected, "{filter}: {out}");
    }
    let none = ok(
        &env,
        &config,
        &["search", &format!("{h}/nothing-is-called-this")],
    );
    assert_eq!(none.lines().count(), 1, "{none}");
    assert_eq!(
        ok(
            &env,
            &config,
            &["search", "--format", "{{.Name}}", &format!("{h}/")]
        ),
        format!("{h}/other/hello-web\n{h}/team/hello\n{h}/tools/box\n")
    );

    // Bad input, in dockerd's words where it has them.
    for (args, words) in [
        (
            vec!["--limit", "0"],
            "Limit 0 is outside the range of [1, 100]",
        ),
        (
            vec!["--limit", "101"],
            "Limit 101 is outside the range of [1, 100]",
        ),
        (vec!["--filter", "foo=1"], "Invalid filter 'foo'"),
        (vec!["--filter", "stars=x"], "Invalid filter 'stars=x'"),
    ] {
        let mut all = vec!["search"];
        all.extend(args);
        let term = format!("{h}/hello");
        all.push(&term);
        let err = fails(&env, &config, &all);
        assert!(err.contains(words), "{all:?}: {err}");
    }
    // No registry named and none configured: how to name one.
    let err = fails(&env, &config, &["search", "hello"]);
    assert!(
        err.contains("names no registry")
            && err.contains("--registry")
            && err.contains("default-registry"),
        "{err}"
    );
    // default-registry in config.json: a bare term searches it.
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"default-registry":"{h}"}}"#),
    )
    .expect("write config.json");
    assert_eq!(ok(&env, &config, &["search", "hello"]), table);
    // ... and a bare name pulls from it, stored under its full name.
    let clean = Env::new();
    let pulled = ok(&clean, &config, &["pull", "team/hello:2.0"]);
    assert!(
        pulled.ends_with(&format!("{h}/team/hello:2.0\n")),
        "{pulled}"
    );
    clean.ok(&["image", "inspect", &format!("{h}/team/hello:2.0")]);
}

#[test]
fn a_registry_that_lists_its_catalog_only_after_a_login_says_so_in_one_line() {
    let Some(reg) = Registry::start_with_login("alice", "s3cret") else {
        return;
    };
    let env = Env::new();
    let config = env.path("config");
    let term = format!("{}/hello", reg.host);
    let err = fails(&env, &config, &["search", &term]);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("search {}:", reg.host))
            && err.contains("401 Unauthorized")
            && err.contains(&format!("wrun login {}", reg.host)),
        "{err}"
    );
    // After a login: the catalog, with the stored credentials.
    let mut login = env.cmd();
    login
        .env("WRUN_CONFIG", &config)
        .args(["login", "-u", "alice", "--password-stdin", &reg.host])
        .stdin(Stdio::piped());
    let out = common::output_with_input(&mut login, b"s3cret\n");
    assert!(out.status.success(), "{out:?}");
    env.build_hello("hello:1.0");
    let name = format!("{}/team/hello:1.0", reg.host);
    env.ok(&["tag", "hello:1.0", &name]);
    ok(&env, &config, &["push", &name]);
    let found = ok(&env, &config, &["search", &term]);
    assert_eq!(
        names(&found),
        [format!("{}/team/hello", reg.host)],
        "{found}"
    );
    // Through a daemon: wrun sends the stored credentials (X-Registry-Auth);
    // without them the daemon answers the same refusal.
    let d = daemon_with_config(env);
    let (status, body) = d.request("GET", &format!("/images/search?term={term}"), "");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("only after a login"), "{body}");
    let mut client = d.wrun_cmd();
    client
        .env("WRUN_CONFIG", d.env.path("config"))
        .args(["search", &term]);
    let out = client.output().expect("run wrun");
    assert_eq!(common::succeeded("wrun", &["search", &term], out), found);
}

/// A daemon on `env`'s store with `env`'s `config` as its configuration.
fn daemon_with_config(env: Env) -> Daemon {
    Daemon::start_from(env, |env, socket| {
        env.cmd()
            .env("WRUN_CONFIG", env.path("config"))
            .args(["daemon", "--socket", socket.to_str().expect("utf-8 path")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the daemon")
    })
}

#[test]
fn docker_search_through_the_daemon_shows_the_same_rows() {
    if !have_tool("docker") {
        return;
    }
    let Some((reg, env, config)) = registry_with_repositories() else {
        return;
    };
    let h = reg.host.clone();
    let here_table = ok(&env, &config, &["search", &format!("{h}/hello")]);
    let here_names = ok(
        &env,
        &config,
        &[
            "search",
            "--format",
            "{{.Name}}",
            "--limit",
            "1",
            &format!("{h}/"),
        ],
    );
    let d = daemon_with_config(env);
    assert_eq!(d.docker_ok(&["search", &format!("{h}/hello")]), here_table);
    assert_eq!(d.wrun_ok(&["search", &format!("{h}/hello")]), here_table);
    assert_eq!(
        d.docker_ok(&[
            "search",
            "--format",
            "{{.Name}}",
            "--limit",
            "1",
            &format!("{h}/")
        ]),
        here_names
    );
    // The route's JSON: dockerd's keys.
    let (status, body) = d.request("GET", &format!("/images/search?term={h}/box"), "");
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        rows,
        serde_json::json!([{
            "name": format!("{h}/tools/box"),
            "description": "tags: 1",
            "star_count": 0,
            "is_official": false,
            "is_automated": false,
        }])
    );
    // dockerd's refusals, through the stock client.
    let out = d.docker(&["search", "--limit", "101", &format!("{h}/hello")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Error response from daemon: Limit 101 is outside the range of [1, 100]"),
        "{stderr}"
    );
    let (status, body) = d.request(
        "GET",
        &format!("/images/search?term={h}/x&filters=%7B%22foo%22%3A%7B%22x%22%3Atrue%7D%7D"),
        "",
    );
    assert_eq!(
        (status, body.contains("Invalid filter 'foo'")),
        (400, true),
        "{body}"
    );
}
