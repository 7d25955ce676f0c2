//! TLS to a registry (Debian's `docker-registry` serving a certificate from
//! a CA of its own): refused by default in one line that names the host and
//! how to trust it; trusted once the CA is in wrun's `certs.d/HOST:PORT/`
//! (a push and pull round trip over TLS); `insecure-registries` and
//! `--insecure` (login, search, push, pull) skip the check.

mod common;

use std::path::Path;

use common::Env;
use common::registry::{Registry, wrun_configured as wrun};

fn ok(env: &Env, config: &Path, args: &[&str]) -> String {
    common::succeeded("wrun", args, wrun(env, config, args))
}

/// The one-line error of a command that must fail.
fn refused(env: &Env, config: &Path, args: &[&str]) -> String {
    let out = wrun(env, config, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "wrun {args:?} should fail");
    // Besides login's warning about -p, as docker's.
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| !l.starts_with("WARNING!"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    stderr
}

/// What the registry holds: the repositories its storage has.
fn stored_repositories(reg: &Registry) -> Vec<String> {
    let dir = reg.data().join("docker/registry/v2/repositories");
    let mut names = Vec::new();
    for org in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for repo in std::fs::read_dir(org.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            names.push(format!(
                "{}/{}",
                org.file_name().to_string_lossy(),
                repo.file_name().to_string_lossy()
            ));
        }
    }
    names
}

#[test]
fn a_registry_signed_by_an_unknown_ca_is_refused_then_trusted_through_certs_d() {
    let Some(reg) = Registry::start_tls() else {
        return;
    };
    let env = Env::new();
    env.build_hello("hello:1.0");
    let name = format!("{}/team/hello:1.0", reg.host);
    env.ok(&["tag", "hello:1.0", &name]);
    let expected_run = env.ok(&["run", "--rm", "hello:1.0"]);
    let config = env.path("config");

    // Refused by default: push, pull, login and search, each in one line
    // that names the registry and both ways to trust it.
    for args in [
        vec!["push", name.as_str()],
        vec!["pull", name.as_str()],
        vec!["login", "-u", "a", "-p", "b", reg.host.as_str()],
        vec!["search", &format!("{}/hello", reg.host)],
    ] {
        let err = refused(&env, &config, &args);
        let ca_path = format!("{}/certs.d/{}/ca.crt", config.display(), reg.host);
        assert!(
            err.contains(&format!("Get \"https://{}/v2/\"", reg.host))
                && err.contains("TLS certificate is not trusted")
                && err.contains(&ca_path)
                && err.contains("insecure-registries")
                && err.contains("--insecure"),
            "{args:?}: {err}"
        );
    }
    assert!(
        stored_repositories(&reg).is_empty(),
        "a refused push sent something"
    );

    // Its CA in certs.d: trusted; a round trip over TLS.
    let certs = config.join("certs.d").join(&reg.host);
    std::fs::create_dir_all(&certs).expect("mkdir certs.d");
    std::fs::copy(
        reg.ca.as_ref().expect("a TLS registry's CA"),
        certs.join("ca.crt"),
    )
    .expect("copy ca.crt");
    let pushed = ok(&env, &config, &["push", &name]);
    assert!(pushed.contains(": Pushed"), "{pushed}");
    assert_eq!(stored_repositories(&reg), ["team/hello"]);
    let clean = Env::new();
    let pulled = ok(&clean, &config, &["pull", &name]);
    assert!(pulled.contains(": Pull complete"), "{pulled}");
    assert_eq!(clean.ok(&["run", "--rm", &name]), expected_run);
    let found = ok(&env, &config, &["search", &format!("{}/hello", reg.host)]);
    assert!(
        found.contains(&format!("{}/team/hello", reg.host)),
        "{found}"
    );

    // A CA file that is no certificate is named, not passed over.
    std::fs::write(certs.join("ca.crt"), "not a certificate").expect("spoil ca.crt");
    let err = refused(&env, &config, &["pull", &name]);
    assert!(err.contains("ca.crt") && err.contains("PEM"), "{err}");
}

#[test]
fn insecure_registries_and_the_insecure_flag_skip_the_certificate_check() {
    let Some(reg) = Registry::start_tls() else {
        return;
    };
    let env = Env::new();
    env.build_hello("hello:1.0");
    let name = format!("{}/team/hello:1.0", reg.host);
    env.ok(&["tag", "hello:1.0", &name]);
    let config = env.path("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    let search = format!("{}/", reg.host);

    // --insecure: login (an open registry takes any) and search.
    refused(&env, &config, &["login", "-u", "a", "-p", "b", &reg.host]);
    let login = ok(
        &env,
        &config,
        &["login", "--insecure", "-u", "a", "-p", "b", &reg.host],
    );
    assert!(login.contains("Login Succeeded"), "{login}");
    ok(&env, &config, &["search", "--insecure", &search]);
    refused(&env, &config, &["push", &name]);
    let pushed = ok(&env, &config, &["push", "--insecure", &name]);
    assert!(pushed.contains(": Pushed"), "{pushed}");
    let clean = Env::new();
    refused(&clean, &config, &["pull", &name]);
    ok(&clean, &config, &["pull", "--insecure", &name]);

    // insecure-registries, as docker's daemon.json writes it: the host, or
    // a CIDR holding its address.
    for entry in [reg.host.as_str(), "127.0.0.0/8"] {
        std::fs::write(
            config.join("config.json"),
            format!(r#"{{"insecure-registries":["{entry}"]}}"#),
        )
        .expect("write config.json");
        let pushed = ok(&env, &config, &["push", &name]);
        assert!(pushed.contains("digest: sha256:"), "{entry}: {pushed}");
        let clean = Env::new();
        ok(&clean, &config, &["pull", &name]);
    }
    // Another port's entry does not cover it.
    std::fs::write(
        config.join("config.json"),
        r#"{"insecure-registries":["127.0.0.1:1"]}"#,
    )
    .expect("write config.json");
    refused(&env, &config, &["push", &name]);
    // A malformed entry is named, not passed over.
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"insecure-registries":["https://{}"]}}"#, reg.host),
    )
    .expect("write config.json");
    let err = refused(&env, &config, &["push", &name]);
    assert!(err.contains("should not contain '://'"), "{err}");
}
