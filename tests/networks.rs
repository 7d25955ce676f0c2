#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! User-defined networks (issue 21, the control plane): the Engine API's
//! `/networks` routes through the stock docker client and `wrun network`,
//! `--network NAME` and `--network-alias` on create, the addresses given
//! and released, a daemon restart keeping them, and docker-compose 1.29's
//! `up -d`/`down` of a two-service file. Each docker expectation was read
//! from dockerd 20.10 first (words, status codes, JSON keys, columns).

mod common;

use common::{Daemon, Env, have_tool};
use serde_json::Value;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// A store holding fsh:1 (the file shell, a preview 1 module).
fn fsh_env() -> Env {
    let env = Env::new();
    let dir = env.path("fsh");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(FSH, dir.join("fsh.wasm")).unwrap();
    std::fs::write(
        dir.join("wrun.toml"),
        "name = \"fsh\"\nmodule = \"fsh.wasm\"\n",
    )
    .unwrap();
    env.build("fsh:1", dir.to_str().unwrap());
    env
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The instance's endpoint on `network`, as inspect shows it.
fn endpoint(d: &Daemon, id: &str, network: &str) -> Value {
    let (status, body) = d.request("GET", &format!("/v1.41/containers/{id}/json"), "");
    assert_eq!(status, 200, "{body}");
    json(&body)["NetworkSettings"]["Networks"][network].clone()
}

#[test]
fn the_api_creates_lists_finds_and_refuses_networks_as_dockerd() {
    let d = Daemon::start(fsh_env());
    // The predefined ones, as a dockerd run with --bridge=none lists them.
    let (status, body) = d.request("GET", "/v1.41/networks", "");
    assert_eq!(status, 200);
    let names: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["host", "none"]);
    let (status, body) = d.request(
        "POST",
        "/v1.41/networks/create",
        r#"{"Name":"web","CheckDuplicate":true,"Labels":{"team":"a"}}"#,
    );
    assert_eq!(status, 201, "{body}");
    let id = json(&body)["Id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 64);
    // By name, by ID and by a prefix of it, with dockerd's keys.
    for key in ["web", id.as_str(), &id[..10]] {
        let (status, body) = d.request("GET", &format!("/v1.41/networks/{key}"), "");
        assert_eq!(status, 200, "{key}: {body}");
        let n = json(&body);
        assert_eq!(n["Id"], id.as_str());
        assert_eq!(n["Driver"], "bridge");
        assert_eq!(n["Scope"], "local");
        assert_eq!(n["Labels"]["team"], "a");
        assert_eq!(n["IPAM"]["Driver"], "default");
        assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
        assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "172.18.0.1");
        for k in [
            "Created",
            "EnableIPv6",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigFrom",
            "ConfigOnly",
            "Containers",
            "Options",
        ] {
            assert!(n.get(k).is_some(), "{k} missing: {n}");
        }
    }
    // A taken name, an overlapping pool, a missing network, a bad driver.
    let refused = [
        (
            r#"{"Name":"web","CheckDuplicate":true}"#,
            409,
            "network with name web already exists",
        ),
        (
            r#"{"Name":"w2","IPAM":{"Config":[{"Subnet":"172.18.5.0/24"}]}}"#,
            403,
            "Pool overlaps with other one on this address space",
        ),
        (
            r#"{"Name":"w3","Driver":"foo"}"#,
            404,
            "plugin \"foo\" not found",
        ),
        (
            r#"{"Name":"w4","IPAM":{"Config":[{"Subnet":"bogus"}]}}"#,
            500,
            "Invalid subnet bogus : invalid CIDR address: bogus",
        ),
        (r#"{"Name":""}"#, 500, "invalid name: "),
        (
            r#"{"Name":"w5","EnableIPv6":true}"#,
            400,
            "IPv6 is not supported",
        ),
    ];
    for (body, want, says) in refused {
        let (status, answer) = d.request("POST", "/v1.41/networks/create", body);
        assert_eq!(status, want, "{body}: {answer}");
        let message = json(&answer)["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, body) = d.request("GET", "/v1.41/networks/nope", "");
    assert_eq!(
        (status, json(&body)["message"].clone()),
        (404, "network nope not found".into())
    );
    // A given subnet that overlaps none; the label filter finds only web.
    let (status, _) = d.request(
        "POST",
        "/v1.41/networks/create",
        r#"{"Name":"back","IPAM":{"Config":[{"Subnet":"10.7.0.0/24","Gateway":"10.7.0.254"}]}}"#,
    );
    assert_eq!(status, 201);
    let (_, body) = d.request(
        "GET",
        "/v1.41/networks?filters=%7B%22label%22%3A%5B%22team%3Da%22%5D%7D",
        "",
    );
    let listed = json(&body);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["Name"], "web");
    let (_, body) = d.request(
        "GET",
        "/v1.41/networks?filters=%7B%22type%22%3A%5B%22custom%22%5D%7D",
        "",
    );
    assert_eq!(json(&body).as_array().unwrap().len(), 2);
    // The predefined ones cannot go.
    let (status, body) = d.request("DELETE", "/v1.41/networks/none", "");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("none is a pre-defined network and cannot be removed"),
        "{body}"
    );
}

#[test]
fn an_instance_on_a_network_gets_an_address_until_it_leaves_or_goes() {
    let d = Daemon::start(fsh_env());
    let net = d.docker_ok(&["network", "create", "--subnet", "10.9.0.0/29", "app"]);
    let net = net.trim();
    let a = d.docker_ok(&[
        "create",
        "--name",
        "ca",
        "--network",
        "app",
        "--network-alias",
        "api",
        "fsh:1",
        "ls",
        "/",
    ]);
    let a = a.trim().to_owned();
    let b = d.docker_ok(&[
        "create",
        "--name",
        "cb",
        "--network",
        "app",
        "fsh:1",
        "ls",
        "/",
    ]);
    let b = b.trim().to_owned();
    let ea = endpoint(&d, &a, "app");
    assert_eq!(ea["IPAddress"], "10.9.0.2");
    assert_eq!(ea["Gateway"], "10.9.0.1");
    assert_eq!(ea["IPPrefixLen"], 29);
    assert_eq!(ea["NetworkID"], net);
    assert_eq!(ea["MacAddress"], "02:42:0a:09:00:02");
    assert_eq!(ea["Aliases"], serde_json::json!(["api", &a[..12]]));
    assert_eq!(endpoint(&d, &b, "app")["IPAddress"], "10.9.0.3");
    let mode = d.docker_ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "ca"]);
    assert_eq!(mode.trim(), "app");
    // The network lists both; ps filters by its name and ID.
    let containers =
        json(&d.docker_ok(&["network", "inspect", "app", "-f", "{{json .Containers}}"]));
    assert_eq!(containers[&a]["Name"], "ca");
    assert_eq!(containers[&a]["IPv4Address"], "10.9.0.2/29");
    assert_eq!(containers[&b]["IPv4Address"], "10.9.0.3/29");
    for key in ["app", &net[..12]] {
        let listed = d.docker_ok(&[
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("network={key}"),
        ]);
        let mut ids: Vec<&str> = listed.lines().collect();
        ids.sort_unstable();
        let mut want = vec![a.as_str(), b.as_str()];
        want.sort_unstable();
        assert_eq!(ids, want, "network={key}");
    }
    let nets = d.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "name=ca",
        "--format",
        "{{.Networks}}",
    ]);
    assert_eq!(nets.trim(), "app");
    // In use: refused in dockerd's words and status.
    let out = d.docker(&["network", "rm", "app"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "error while removing network: network app id {net} has active endpoints"
        )),
        "{}",
        stderr(&out)
    );
    // Disconnect releases the address; the next connect takes the lowest free one.
    d.docker_ok(&["network", "disconnect", "app", "ca"]);
    assert!(endpoint(&d, &a, "app").is_null());
    let out = d.docker(&["network", "disconnect", "app", "ca"]);
    assert!(
        stderr(&out).contains(&format!(
            "container {a} is not connected to the network app"
        )),
        "{}",
        stderr(&out)
    );
    let c = d.docker_ok(&["create", "--name", "cc", "--network", "app", "fsh:1"]);
    assert_eq!(endpoint(&d, c.trim(), "app")["IPAddress"], "10.9.0.2");
    d.docker_ok(&["network", "connect", "--alias", "web", "app", "ca"]);
    assert_eq!(endpoint(&d, &a, "app")["IPAddress"], "10.9.0.4");
    // The subnet has 10.9.0.2 to .6 to give: .5 and .6 left, then none.
    d.docker_ok(&["create", "--name", "cd", "--network", "app", "fsh:1"]);
    d.docker_ok(&["create", "--name", "ce", "--network", "app", "fsh:1"]);
    let out = d.docker(&["create", "--name", "cf", "--network", "app", "fsh:1"]);
    assert!(
        stderr(&out).contains("no available IPv4 addresses"),
        "{}",
        stderr(&out)
    );
    // ... and the refused create left no instance behind.
    assert!(
        d.docker_ok(&["ps", "-a", "-q", "--filter", "name=cf"])
            .is_empty()
    );
    // Removing the instances releases everything; then the network goes.
    d.docker_ok(&["rm", "ca", "cb", "cc", "cd", "ce"]);
    let containers = d.docker_ok(&["network", "inspect", "app", "-f", "{{json .Containers}}"]);
    assert_eq!(containers.trim(), "{}");
    assert_eq!(d.docker_ok(&["network", "rm", "app"]), "app\n");
    // wrun's own rm: -f passes over a network that is gone, without -f it fails.
    assert_eq!(d.wrun_ok(&["network", "rm", "-f", "app"]), "");
    assert!(!d.wrun(&["network", "rm", "app"]).status.success());
    // host and none cannot take a user network; an alias needs one.
    d.docker_ok(&["network", "create", "app2"]);
    d.docker_ok(&["create", "--name", "cn", "--network", "none", "fsh:1"]);
    let out = d.docker(&["network", "connect", "app2", "cn"]);
    assert!(stderr(&out).contains("container cannot be connected to multiple networks with one of the networks in private (none) mode"), "{}", stderr(&out));
    let out = d.docker(&["create", "--network-alias", "x", "fsh:1"]);
    assert!(
        stderr(&out).contains("network-scoped alias"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["create", "--network", "missing", "fsh:1"]);
    assert!(
        stderr(&out).contains("network missing not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn networks_and_addresses_outlive_a_daemon_restart() {
    let mut d = Daemon::start(fsh_env());
    d.wrun_ok(&["network", "create", "--label", "k=v", "keep"]);
    d.wrun_ok(&[
        "create",
        "--name",
        "ka",
        "--network",
        "keep",
        "--network-alias",
        "db",
        "fsh:1",
    ]);
    let before = endpoint(&d, "ka", "keep");
    let mut child = d.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let env = std::mem::replace(&mut d.env, Env::new());
    drop(d);
    let d = Daemon::start(env);
    assert_eq!(endpoint(&d, "ka", "keep"), before);
    let ls = d.wrun_ok(&[
        "network",
        "ls",
        "--filter",
        "label=k=v",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert_eq!(ls, "keep bridge local\n");
}

#[test]
fn the_wrun_cli_reads_like_dockers() {
    let d = Daemon::start(fsh_env());
    let id = d.wrun_ok(&["network", "create", "front"]);
    assert_eq!(id.trim().len(), 64);
    let ls = d.wrun_ok(&["network", "ls"]);
    let lines: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]);
    assert_eq!(lines[1][1..], ["front", "bridge", "local"]);
    assert_eq!(lines[1][0], &id.trim()[..12]);
    assert_eq!(lines[2][1..], ["host", "host", "local"]);
    assert_eq!(lines[3][1..], ["none", "null", "local"]);
    let out = d.wrun(&["network", "create", "front"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("network with name front already exists"),
        "{}",
        stderr(&out)
    );
    d.wrun_ok(&["create", "--name", "fa", "fsh:1"]);
    d.wrun_ok(&["network", "connect", "--alias", "www", "front", "fa"]);
    let aliases = d.wrun_ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.front.Aliases}}",
        "fa",
    ]);
    assert!(aliases.contains("\"www\""), "{aliases}");
    d.wrun_ok(&["network", "disconnect", "front", "fa"]);
    d.wrun_ok(&["network", "create", "spare"]);
    assert_eq!(
        d.wrun_ok(&["network", "prune", "-f"]),
        "Deleted Networks:\nfront\nspare\n\n"
    );
    assert_eq!(d.wrun_ok(&["network", "ls", "-q"]).lines().count(), 2);
    // A foreground run has no daemon to keep its network: refused, one line.
    let out = d.env.run(&["run", "--network", "front", "fsh:1"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("run with -d"), "{}", stderr(&out));
}

#[test]
fn docker_compose_up_creates_the_default_network_and_down_removes_it() {
    if !have_tool("docker-compose") {
        eprintln!("skipped: no docker-compose");
        return;
    }
    let d = Daemon::start(fsh_env());
    let dir = d.env.path("two");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        "version: \"3.8\"\nservices:\n  api:\n    image: fsh:1\n    command: [\"ls\", \"/\"]\n  web:\n    image: fsh:1\n    command: [\"ls\", \"/\"]\n",
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let out = std::process::Command::new("docker-compose")
            .args(["-p", "two"])
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", d.host())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            stderr(&out)
        );
        stderr(&out)
    };
    let up = compose(&["up", "-d"]);
    assert!(
        up.contains("Creating network \"two_default\" with the default driver"),
        "{up}"
    );
    let api = endpoint(&d, "two_api_1", "two_default");
    let web = endpoint(&d, "two_web_1", "two_default");
    assert_eq!(api["Aliases"][0], "api");
    assert_eq!(web["Aliases"][0], "web");
    assert_ne!(api["IPAddress"], web["IPAddress"]);
    let down = compose(&["down"]);
    assert!(down.contains("Removing network two_default"), "{down}");
    let (status, _) = d.request("GET", "/v1.41/networks/two_default", "");
    assert_eq!(status, 404);
}

const NET_PROBE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/runtime/tests/guests/net-probe.wasm"
);

/// The attack: a guest on a network tries the network's addresses (the
/// gateway, a peer's address) and a peer's name and alias. Until the data
/// plane serves them, each is denied as any address is without a grant.
#[test]
fn a_guest_on_a_network_reaches_no_address_or_name_of_it() {
    let env = fsh_env();
    let dir = env.path("net-probe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(NET_PROBE, dir.join("net-probe.wasm")).unwrap();
    std::fs::write(
        dir.join("wrun.toml"),
        "name = \"net-probe\"\nmodule = \"net-probe.wasm\"\n",
    )
    .unwrap();
    env.build("net-probe:1.0", dir.to_str().unwrap());
    let d = Daemon::start(env);
    d.docker_ok(&["network", "create", "--subnet", "10.77.0.0/24", "lan"]);
    d.docker_ok(&[
        "create",
        "--name",
        "peer",
        "--network",
        "lan",
        "--network-alias",
        "db",
        "fsh:1",
    ]);
    assert_eq!(endpoint(&d, "peer", "lan")["IPAddress"], "10.77.0.2");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "prober",
        "--network",
        "lan",
        "net-probe:1.0",
        "connect:10.77.0.1:80",
        "connect:10.77.0.2:80",
        "dns:peer",
        "dns:db",
    ]);
    assert_eq!(d.docker_ok(&["wait", "prober"]).trim(), "0");
    let logs = d.docker(&["logs", "prober"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    for attempt in [
        "connect 10.77.0.1:80",
        "connect 10.77.0.2:80",
        "dns peer",
        "dns db",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(attempt))
            .unwrap_or_else(|| panic!("no line for {attempt}: {text}"));
        assert!(line.contains(": err"), "{attempt} was not denied: {line}");
    }
}
