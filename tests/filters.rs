//! The list filters and options of `images` and `ps`, read as Docker reads
//! them: the same rows from the store and from the daemon (wrun's CLI and
//! the stock docker client), Docker's errors for bad filters, labels ANDed,
//! `limit`, `before`/`since` and the port, volume, network and health keys.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, Env, HELLO_DIR, IDLE_DIR, have_tool};

const ECHO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/echo-tcp");

/// `filters=` of a `key=value` list, URL-escaped.
fn filters_query(flags: &[&str]) -> String {
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let json = wrun_api::parse::filters_json(&flags).unwrap();
    let escaped: String = form_urlencoded::byte_serialize(json.as_bytes()).collect();
    format!("filters={escaped}")
}

/// A build context of the hello module with its own labels.
fn context(env: &Env, name: &str, labels: &str) -> String {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        Path::new(HELLO_DIR).join("hello.wasm"),
        dir.join("hello.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.join("wrun.toml"),
        format!("name = \"{name}\"\nmodule = \"hello.wasm\"\nlabels = {{ {labels} }}\n"),
    )
    .unwrap();
    dir.to_str().unwrap().to_string()
}

/// `wrun build -t TAG` of a context, its config created at `epoch`.
fn build_at(env: &Env, tag: &str, dir: &str, epoch: u64) {
    let out = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .args(["build", "-q", "-t", tag, dir])
        .output()
        .unwrap();
    common::succeeded("wrun", &["build", tag], out);
}

/// The `REPOSITORY:TAG` rows of an `images --format json` listing, in order.
fn image_rows(json_lines: &str) -> Vec<String> {
    json_lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}:{}",
                v["Repository"].as_str().unwrap(),
                v["Tag"].as_str().unwrap()
            )
        })
        .collect()
}

/// The `images` cases: filter flags and the rows Docker would list.
fn image_cases() -> Vec<(Vec<&'static str>, Vec<&'static str>)> {
    vec![
        (
            vec![],
            vec!["new:1", "mid:1", "mid:2", "old:1", "<none>:<none>"],
        ),
        (vec!["-f", "reference=mid*"], vec!["mid:1", "mid:2"]),
        (vec!["mid"], vec!["mid:1", "mid:2"]),
        (vec!["-f", "reference=*:2"], vec!["mid:2"]),
        (vec!["-f", "reference=nosuch"], vec![]),
        (
            vec!["-f", "label=tier=app"],
            vec!["new:1", "mid:1", "mid:2"],
        ),
        // Labels are ANDed.
        (
            vec!["-f", "label=tier=app", "-f", "label=team"],
            vec!["mid:1", "mid:2"],
        ),
        (
            vec!["-f", "before=new:1"],
            vec!["mid:1", "mid:2", "old:1", "<none>:<none>"],
        ),
        (vec!["-f", "since=old:1"], vec!["new:1", "mid:1", "mid:2"]),
        (
            vec!["-f", "since=old:1", "-f", "before=new:1"],
            vec!["mid:1", "mid:2"],
        ),
        (vec!["-f", "until=1500"], vec!["old:1", "<none>:<none>"]),
        (vec!["-f", "dangling=true"], vec!["<none>:<none>"]),
        (
            vec!["-f", "dangling=false", "-a"],
            vec!["new:1", "mid:1", "mid:2", "old:1"],
        ),
    ]
}

/// The refused filters and a word of the error each gives.
const BAD_IMAGE_FILTERS: &[(&str, &str)] = &[
    ("colour=red", "Invalid filter 'colour'"),
    ("dangling=maybe", "Invalid filter 'dangling=[maybe]'"),
    ("before=nope:1", "No such image: nope:1"),
    ("reference=[", "syntax error in pattern"),
    ("until=soonish", "Invalid filter 'until=soonish'"),
    ("nokey", "bad format of filter (expected name=value)"),
];

#[test]
fn image_filters_select_the_same_rows_from_the_store_and_from_the_daemon() {
    let env = Env::new();
    let base = context(&env, "old", r#""tier" = "base""#);
    let app = context(&env, "mid", r#""tier" = "app", "team" = "x""#);
    let newer = context(&env, "new", r#""tier" = "app""#);
    let lost = context(&env, "lost", r#""tier" = "gone""#);
    build_at(&env, "old:1", &base, 1000);
    build_at(&env, "mid:1", &app, 2000);
    env.ok(&["tag", "mid:1", "mid:2"]);
    // Built under a name the next build takes: left without one.
    build_at(&env, "new:1", &lost, 500);
    build_at(&env, "new:1", &newer, 3000);

    for (flags, want) in image_cases() {
        let mut args = vec!["images", "--format", "json"];
        args.extend(&flags);
        assert_eq!(image_rows(&env.ok(&args)), want, "local store, {flags:?}");
    }
    for (filter, words) in BAD_IMAGE_FILTERS {
        let err = env.fails(&["images", "-f", filter]);
        assert!(err.contains(words), "{filter}: {err}");
    }
    assert_eq!(
        env.ok(&["images", "-q", "mid"]).lines().count(),
        2,
        "one ID per row, as docker"
    );

    let d = Daemon::start(env);
    for (flags, want) in image_cases() {
        let mut args = vec!["images", "--format", "json"];
        args.extend(&flags);
        assert_eq!(image_rows(&d.wrun_ok(&args)), want, "daemon, {flags:?}");
    }
    for (filter, words) in BAD_IMAGE_FILTERS {
        let out = d.wrun(&["images", "-f", filter]);
        assert!(!out.status.success(), "{filter}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{filter}: {err}");
    }

    // The API itself: Docker's 400s for malformed and unknown filters.
    for (query, status, message) in [
        ("filters=%7B", 400, "invalid filter"),
        ("filters=%5B%5D", 400, "invalid filter"),
        (
            "filters=%7B%22x%22%3A%5B%22a%22%5D%7D",
            400,
            "Invalid filter 'x'",
        ),
    ] {
        let (got, body) = d.request("GET", &format!("/images/json?{query}"), "");
        assert_eq!(got, status, "{query}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["message"], message, "{query}");
    }
    let (status, body) = d.request(
        "GET",
        &format!(
            "/images/json?all=1&digests=1&{}",
            filters_query(&["label=team=x"])
        ),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(rows[0]["RepoTags"], serde_json::json!(["mid:1", "mid:2"]));
    assert_eq!(rows[0]["Labels"]["team"], "x", "Labels are the config's");
    let (_, body) = d.request(
        "GET",
        "/images/json?filters=%7B%22dangling%22%3A%5B%22true%22%5D%7D",
        "",
    );
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows[0]["RepoTags"], serde_json::json!([]), "{body}");
    assert_eq!(rows[0]["Labels"]["tier"], "gone", "{body}");

    if have_tool("docker") {
        for (flags, want) in image_cases() {
            let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
            args.extend(&flags);
            let got: Vec<String> = d.docker_ok(&args).lines().map(String::from).collect();
            assert_eq!(got, want, "docker {flags:?}");
        }
        let out = d.docker(&["images", "-f", "colour=red"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid filter 'colour'"));
    }
}

/// Creates (and with `start`, starts) an instance through the API.
fn create(d: &Daemon, name: &str, body: serde_json::Value, start: bool) {
    let (status, answer) = d.request(
        "POST",
        &format!("/containers/create?name={name}"),
        &body.to_string(),
    );
    assert_eq!(status, 201, "create {name}: {answer}");
    if start {
        let (status, answer) = d.request("POST", &format!("/containers/{name}/start"), "");
        assert_eq!(status, 204, "start {name}: {answer}");
    }
}

/// The names `GET /containers/json?QUERY` lists, in order, or the error.
fn listed(d: &Daemon, query: &str) -> Result<Vec<String>, (u16, String)> {
    let (status, body) = d.request("GET", &format!("/containers/json?{query}"), "");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    if status != 200 {
        return Err((
            status,
            v["message"].as_str().unwrap_or_default().to_string(),
        ));
    }
    Ok(v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["Names"][0]
                .as_str()
                .unwrap()
                .trim_start_matches('/')
                .to_string()
        })
        .collect())
}

#[test]
fn ps_filters_limit_and_order_follow_docker() {
    let env = Env::new();
    env.build("hello:1.0", HELLO_DIR);
    env.build("idle:1.0", IDLE_DIR);
    env.build("echo:1.0", ECHO_DIR);
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let d = Daemon::start(env);

    // Oldest to newest: fa (created), fb (running), fc (exited 0), fp (running, a port).
    create(
        &d,
        "fa",
        serde_json::json!({"Image": "hello:1.0", "Labels": {"a": "1", "b": "2"}}),
        false,
    );
    create(
        &d,
        "fb",
        serde_json::json!({"Image": "idle:1.0", "Labels": {"a": "1"}}),
        true,
    );
    create(
        &d,
        "fc",
        serde_json::json!({"Image": "hello:1.0", "Labels": {"b": "2"}}),
        true,
    );
    create(
        &d,
        "fp",
        serde_json::json!({
            "Image": "echo:1.0",
            "ExposedPorts": {"9000/tcp": {}},
            "HostConfig": {
                "PortBindings": {"7/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                "Binds": [format!("{}:/data", data.display())],
            },
        }),
        true,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while listed(&d, &format!("all=1&{}", filters_query(&["status=exited"]))).unwrap() != ["fc"] {
        assert!(Instant::now() < deadline, "fc never exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let inspect: serde_json::Value = serde_json::from_str(&d.wrun_ok(&["inspect", "fp"])).unwrap();
    let inspect = if inspect.is_array() {
        inspect[0].clone()
    } else {
        inspect
    };
    let host_port = inspect["NetworkSettings"]["Ports"]["7/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .to_string();

    let f = |flags: &[&str]| format!("all=1&{}", filters_query(flags));
    let cases: Vec<(String, Vec<&str>)> = vec![
        (String::new(), vec!["fp", "fb"]),
        ("all=1".into(), vec!["fp", "fc", "fb", "fa"]),
        // Several labels: each must hold (docker-compose lists by three).
        (f(&["label=a=1", "label=b=2"]), vec!["fa"]),
        (f(&["label=a=1"]), vec!["fb", "fa"]),
        (f(&["label=a"]), vec!["fb", "fa"]),
        // Values of one key are alternatives.
        (f(&["name=fa", "name=fc"]), vec!["fc", "fa"]),
        (f(&["name=^fa$"]), vec!["fa"]),
        // A name is a regular expression, as Docker reads it.
        (f(&["name=^/?f[ab]$"]), vec!["fb", "fa"]),
        (
            f(&["status=created", "status=running"]),
            vec!["fp", "fb", "fa"],
        ),
        (filters_query(&["status=exited"]), vec!["fc"]),
        (f(&["exited=0"]), vec!["fc"]),
        (f(&["exited=3"]), vec![]),
        (f(&["ancestor=hello:1.0"]), vec!["fc", "fa"]),
        (f(&["ancestor=nosuch:1"]), vec![]),
        (f(&["before=fc"]), vec!["fb", "fa"]),
        (f(&["since=fb"]), vec!["fp", "fc"]),
        (f(&["since=fa", "before=fp"]), vec!["fc", "fb"]),
        (filters_query(&["before=fp"]), vec!["fb"]),
        (f(&[&format!("publish={host_port}")]), vec!["fp"]),
        (f(&["publish=7"]), vec![]),
        (f(&["expose=7"]), vec!["fp"]),
        (f(&["expose=8990-9010/tcp"]), vec!["fp"]),
        (f(&["expose=9000/udp"]), vec![]),
        (f(&["volume=/data"]), vec!["fp"]),
        (f(&[&format!("volume={}", data.display())]), vec!["fp"]),
        (f(&["network=none"]), vec!["fp", "fc", "fb", "fa"]),
        (f(&["network=host"]), vec![]),
        (f(&["health=none"]), vec!["fp", "fc", "fb", "fa"]),
        (f(&["health=healthy"]), vec![]),
        (f(&["is-task=false"]), vec!["fp", "fc", "fb", "fa"]),
        (f(&["is-task=true"]), vec![]),
        // A limit lists stopped ones too, newest first.
        ("limit=2".into(), vec!["fp", "fc"]),
        (
            format!("limit=1&{}", filters_query(&["label=b"])),
            vec!["fc"],
        ),
        ("limit=0".into(), vec!["fp", "fb"]),
    ];
    for (query, want) in &cases {
        assert_eq!(listed(&d, query).unwrap(), *want, "{query}");
    }

    for (flags, status, message) in [
        (
            vec!["colour=red"],
            400,
            "Invalid filter 'colour'".to_string(),
        ),
        (
            vec!["status=sleeping"],
            400,
            "Invalid filter 'status=sleeping'".into(),
        ),
        (
            vec!["health=fine"],
            400,
            "Unrecognised filter value for health: fine".into(),
        ),
        (
            vec!["is-task=maybe"],
            400,
            "Invalid filter 'is-task=[maybe]'".into(),
        ),
        (
            vec!["exited=zero"],
            400,
            r#"strconv.Atoi: parsing "zero": invalid syntax"#.into(),
        ),
        (
            vec!["expose=1:2"],
            400,
            "filter for 'expose' should not contain ':': 1:2".into(),
        ),
        (vec!["before=nope"], 404, "No such container: nope".into()),
    ] {
        assert_eq!(
            listed(&d, &filters_query(&flags)),
            Err((status, message)),
            "{flags:?}"
        );
    }
    assert_eq!(
        listed(&d, "filters=%7B"),
        Err((400, "invalid filter".into()))
    );
    assert_eq!(listed(&d, "limit=x").unwrap_err().0, 400);

    // size=1: nothing written over the image (a zero SizeRw is left out,
    // as dockerd's), the image's size under it.
    let (_, body) = d.request("GET", "/containers/json?all=1&size=1", "");
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    for row in rows.as_array().unwrap() {
        assert!(row.get("SizeRw").is_none(), "{row}");
        assert!(row["SizeRootFs"].as_i64().unwrap() > 0, "{row}");
    }
    let (_, body) = d.request("GET", "/containers/json?all=1", "");
    assert!(!body.contains("SizeRw"), "sizes only when asked: {body}");
    // The JSON lines read as the docker client's (Go's escapes included).
    let line = d.wrun_ok(&["ps", "-l", "--format", "json"]);
    assert!(
        line.contains(&format!("9000/tcp, 127.0.0.1:{host_port}-\\u003e7/tcp")),
        "{line}"
    );
    let table = d.wrun_ok(&["ps", "-l", "-s"]);
    assert!(table.lines().next().unwrap().ends_with("SIZE"), "{table}");
    assert!(table.contains("0B (virtual "), "{table}");

    // The CLI: -n, -l, --filter, -q.
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ps", "--format", "json"];
        all.extend(args);
        d.wrun_ok(&all)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["Names"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(names(&["-n", "3"]), ["fp", "fc", "fb"]);
    assert_eq!(names(&["-l"]), ["fp"]);
    assert_eq!(names(&["-a", "-f", "label=a=1", "-f", "label=b=2"]), ["fa"]);
    assert_eq!(names(&["-f", "expose=7"]), ["fp"]);
    assert_eq!(
        d.wrun_ok(&["ps", "-q", "-a", "-f", "before=fb"])
            .lines()
            .count(),
        1
    );
    let err = d.wrun(&["ps", "-f", "nokey"]);
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("bad format of filter (expected name=value)"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );

    // A name that now names another image: the row shows the image ID, as Docker's.
    let old_id = d
        .wrun_ok(&["inspect", "-f", "{{.Image}}", "fa"])
        .trim()
        .to_string();
    d.wrun_ok(&["tag", "idle:1.0", "hello:1.0"]);
    let image_of = |name: &str| -> String {
        d.wrun_ok(&[
            "ps",
            "-a",
            "--format",
            "json",
            "-f",
            &format!("name=^{name}$"),
        ])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["Image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
    };
    assert_eq!(image_of("fa"), old_id["sha256:".len()..][..12]);
    assert_eq!(image_of("fb"), "idle:1.0");

    if have_tool("docker") {
        let docker_names = |args: &[&str]| -> Vec<String> {
            let mut all = vec!["ps", "--format", "{{.Names}}"];
            all.extend(args);
            d.docker_ok(&all).lines().map(String::from).collect()
        };
        assert_eq!(docker_names(&["-n", "2"]), ["fp", "fc"]);
        assert_eq!(docker_names(&["-l"]), ["fp"]);
        assert_eq!(
            docker_names(&["-a", "-f", "label=a=1", "-f", "label=b=2"]),
            ["fa"]
        );
        assert_eq!(docker_names(&["-a", "-f", "since=fb"]), ["fp", "fc"]);
        // Docker's columns of `ps --format json`, as the stock client reads
        // them from the daemon.
        let line = d.docker_ok(&["ps", "-l", "--format", "{{json .}}"]);
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["Networks"], "none");
        let ports = v["Ports"].as_str().unwrap();
        assert!(
            ports.contains(&format!("127.0.0.1:{host_port}->7/tcp")) && ports.contains("9000/tcp"),
            "{ports}"
        );
    }
}

#[test]
fn shared_size_counts_the_layers_another_image_has() {
    let env = Env::new();
    // The same module at the same time: one layer in two images.
    build_at(&env, "a:1", &context(&env, "a", r#""x" = "a""#), 100);
    build_at(&env, "b:1", &context(&env, "b", r#""x" = "b""#), 100);
    build_at(&env, "c:1", &context(&env, "c", r#""x" = "c""#), 200);
    let d = Daemon::start(env);
    let sizes = |query: &str| -> Vec<(String, i64, i64)> {
        let (status, body) = d.request("GET", &format!("/images/json?{query}"), "");
        assert_eq!(status, 200, "{body}");
        let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["RepoTags"][0].as_str().unwrap().to_string(),
                    r["SharedSize"].as_i64().unwrap(),
                    r["Size"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    for (tag, shared, _) in sizes("") {
        assert_eq!(shared, -1, "{tag}: not computed unless asked");
    }
    for (tag, shared, size) in sizes("shared-size=1") {
        let want = if tag == "c:1" { 0 } else { size };
        assert_eq!(shared, want, "{tag}");
    }
}
