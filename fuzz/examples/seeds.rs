//! Writes the seed corpora (fuzz/corpus/<target>/seed-*): synthetic image
//! archives in each form `wrun load` reads, hostile layers, the examples'
//! wrun.toml files, Dockerfiles, the values the API parsers take, and
//! Engine API requests as the docker CLI, docker-py and compose send them.
//! Run from fuzz/: `cargo run --example seeds [TARGET...]` (only those
//! targets' seeds when named).

use std::path::Path;

use wrun_fuzz::api_request;
use wrun_fuzz::{
    Entry, FLAG_GZIP, FLAG_REFS, FLAG_TAR, KIND_DIR, KIND_FILE, KIND_HARDLINK, KIND_SYMLINK,
    MODE_GZIP, MODE_PLAIN, MODE_RAW, archive_bytes, encode_entries,
};

/// A tiny core module: the header is all the loader sniffs.
const WASM: &[u8] = b"\0asm\x01\0\0\0";
/// The header of a component.
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

fn entry(kind: u8, name: &str, data: &[u8]) -> Entry {
    Entry {
        kind,
        name: name.as_bytes().to_vec(),
        data: data.to_vec(),
    }
}

fn layer(files: &[Entry]) -> Vec<u8> {
    encode_entries(files)
}

fn config(os: &str, entrypoint: &str, diff_ids: &[usize]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|i| format!("\"$U{i}$\"")).collect();
    format!(
        r#"{{"architecture":"wasm","os":"{os}","config":{{"Entrypoint":["{entrypoint}"],"Env":["A=1"],"WorkingDir":"/","ExposedPorts":{{"80/tcp":{{}}}},"Labels":{{"k":"v"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}},"history":[{{"created_by":"seed"}}],"created":"2024-01-02T03:04:05Z"}}"#,
        ids.join(",")
    )
    .into_bytes()
}

fn manifest(config: usize, layers: &[(usize, &str)]) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|(i, media)| format!(r#"{{"mediaType":"{media}","digest":"$D{i}$","size":$S{i}$}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$D{config}$","size":$S{config}$}},"layers":[{}],"annotations":{{"a":"b"}}}}"#,
        layers.join(",")
    )
    .into_bytes()
}

fn index(manifest: usize, media: &str, name: &str) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{media}","digest":"$D{manifest}$","size":$S{manifest}$,"annotations":{{"io.containerd.image.name":"{name}","org.opencontainers.image.ref.name":"1.0"}}}}]}}"#
    )
    .into_bytes()
}

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const GZ_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const BLOB: &str = "blobs/sha256/$H";

fn blob(kind: u8, i: usize, data: &[u8]) -> Entry {
    entry(kind, &format!("{BLOB}{i}$"), data)
}

/// An OCI layout of one image whose layer holds `files`. Entries: 0
/// oci-layout, 1 blobs/, 2 layer, 3 config, 4 manifest, 5 index.json.
fn oci_image(files: &[Entry], gz: bool, os: &str) -> Vec<Entry> {
    let (flags, media) = if gz {
        (FLAG_TAR | FLAG_GZIP, GZ_LAYER)
    } else {
        (FLAG_TAR, TAR_LAYER)
    };
    vec![
        entry(KIND_FILE, "oci-layout", LAYOUT),
        entry(KIND_DIR, "blobs/", b""),
        blob(KIND_FILE | flags, 2, &layer(files)),
        blob(KIND_FILE | FLAG_REFS, 3, &config(os, "/app.wasm", &[2])),
        blob(KIND_FILE | FLAG_REFS, 4, &manifest(3, &[(2, media)])),
        entry(
            KIND_FILE | FLAG_REFS,
            "index.json",
            &index(4, OCI_MANIFEST, "seed/app:1.0"),
        ),
    ]
}

fn main() {
    let out = Path::new("corpus");
    let app = [
        entry(KIND_DIR, "etc/", b""),
        entry(KIND_FILE, "etc/motd", b"hello\n"),
        entry(KIND_FILE, "app.wasm", WASM),
    ];
    let mut loads: Vec<(&str, Vec<Entry>)> = vec![
        ("oci-gzip", oci_image(&app, true, "wasip1")),
        ("oci-plain-wasi", oci_image(&app, false, "wasi")),
        (
            "oci-component",
            oci_image(&[entry(KIND_FILE, "app.wasm", COMPONENT)], true, "wasip2"),
        ),
        (
            "hostile-dotdot",
            oci_image(
                &[
                    entry(KIND_FILE, "../../../pwned", b"x"),
                    entry(KIND_FILE, "app.wasm", WASM),
                ],
                true,
                "wasip1",
            ),
        ),
        (
            "hostile-symlink-then-write",
            oci_image(
                &[
                    entry(KIND_SYMLINK, "link", b"../../../.."),
                    entry(KIND_FILE, "link/pwned", b"x"),
                    entry(KIND_FILE, "app.wasm", WASM),
                ],
                true,
                "wasip1",
            ),
        ),
        (
            "hostile-hardlink-out",
            oci_image(
                &[
                    entry(KIND_HARDLINK, "hl", b"../../../../etc/passwd"),
                    entry(KIND_FILE, "app.wasm", WASM),
                ],
                false,
                "wasip1",
            ),
        ),
        (
            "whiteouts",
            oci_image(
                &[
                    entry(KIND_DIR, "d/", b""),
                    entry(KIND_FILE, "d/.wh..wh..opq", b""),
                    entry(KIND_FILE, ".wh.gone", b""),
                    entry(KIND_SYMLINK, "app.wasm", b"real.wasm"),
                    entry(KIND_FILE, "real.wasm", WASM),
                ],
                true,
                "wasip1",
            ),
        ),
    ];
    // Two layers, the second removing a file of the first.
    loads.push((
        "oci-two-layers",
        vec![
            entry(KIND_FILE, "oci-layout", LAYOUT),
            blob(KIND_FILE | FLAG_TAR | FLAG_GZIP, 1, &layer(&app)),
            blob(
                KIND_FILE | FLAG_TAR,
                2,
                &layer(&[entry(KIND_FILE, "etc/.wh.motd", b"")]),
            ),
            blob(
                KIND_FILE | FLAG_REFS,
                3,
                &config("wasip1", "/app.wasm", &[1, 2]),
            ),
            blob(
                KIND_FILE | FLAG_REFS,
                4,
                &manifest(3, &[(1, GZ_LAYER), (2, TAR_LAYER)]),
            ),
            entry(
                KIND_FILE | FLAG_REFS,
                "index.json",
                &index(4, OCI_MANIFEST, "seed/two:latest"),
            ),
        ],
    ));
    // A multi-platform index naming a wasm and a linux entry.
    let mut nested = oci_image(&app, true, "wasip1");
    nested.truncate(5);
    nested.push(blob(
        KIND_FILE | FLAG_REFS,
        5,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$D4$","size":$S4$,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$D4$","size":$S4$,"platform":{"architecture":"wasm","os":"wasip1"}}]}"#,
    ));
    nested.push(entry(
        KIND_FILE | FLAG_REFS,
        "index.json",
        &index(5, "application/vnd.oci.image.index.v1+json", "seed/multi:2"),
    ));
    loads.push(("oci-nested-index", nested));
    // A CNCF wasm artifact: the module itself is the only layer.
    loads.push((
        "wasm-artifact",
        vec![
            entry(KIND_FILE, "oci-layout", LAYOUT),
            blob(KIND_FILE, 1, WASM),
            blob(
                KIND_FILE,
                2,
                br#"{"architecture":"wasm","os":"wasip1","layerDigests":[]}"#,
            ),
            blob(
                KIND_FILE | FLAG_REFS,
                3,
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.wasm.config.v0+json","digest":"$D2$","size":$S2$},"layers":[{"mediaType":"application/wasm","digest":"$D1$","size":$S1$,"annotations":{"org.opencontainers.image.title":"mod.wasm"}}]}"#,
            ),
            entry(
                KIND_FILE | FLAG_REFS,
                "index.json",
                &index(3, OCI_MANIFEST, "seed/artifact:1"),
            ),
        ],
    ));
    // `docker save` without an index: manifest.json names paths; the
    // older form keeps each layer in a directory, here through a symlink.
    loads.push((
        "docker-save",
        vec![
            entry(KIND_FILE | FLAG_TAR, "abc/layer.tar", &layer(&app)),
            entry(KIND_SYMLINK, "def/layer.tar", b"../abc/layer.tar"),
            entry(
                KIND_FILE | FLAG_REFS,
                "cfg.json",
                &config("wasip1", "/app.wasm", &[0]),
            ),
            entry(
                KIND_FILE,
                "manifest.json",
                br#"[{"Config":"cfg.json","RepoTags":["seed/docker:1","Bad Name"],"Layers":["def/layer.tar"]}]"#,
            ),
            entry(KIND_FILE, "repositories", br#"{"seed/docker":{"1":"abc"}}"#),
        ],
    ));

    for (name, entries) in &loads {
        let mode = if name.contains("gzip") {
            MODE_GZIP
        } else {
            MODE_PLAIN
        };
        let mut input = vec![mode];
        input.extend(encode_entries(entries));
        write(out, "image_load", name, &input);
        // The same archive as plain bytes, for mutations of the tar itself.
        let mut raw = vec![MODE_RAW];
        raw.extend(archive_bytes(&input));
        if raw.len() <= 16 * 1024 {
            write(out, "image_load", &format!("raw-{name}"), &raw);
        }
    }

    let sha = format!("sha256:{}", "a".repeat(64));
    for (i, r) in [
        "hello",
        "hello:1.0",
        "localhost:5000/team/app:v2",
        "registry.example.com:443/a/b/c",
        "a__b.c-d---e/f_g",
        &format!("app@{sha}"),
        &format!("app:tag@{sha}"),
        "UPPER:case",
        "host/Name",
        "x:-bad",
    ]
    .iter()
    .enumerate()
    {
        write(out, "image_reference", &i.to_string(), r.as_bytes());
    }

    for dir in std::fs::read_dir("../examples").expect("listing ../examples") {
        let dir = dir.expect("listing ../examples").path();
        let toml = dir.join("wrun.toml");
        if let Ok(text) = std::fs::read(&toml) {
            let name = dir
                .file_name()
                .expect("a directory name")
                .to_string_lossy()
                .into_owned();
            write(out, "wrun_toml", &name, &text);
        }
    }
    write(
        out,
        "wrun_toml",
        "everything",
        br#"name = "${NAME}:1"
module = "build/${MOD}.wasm"
args = ["--port", "${PORT:-80}"]
env = { MODE = "prod", GREETING = "hi ${WHO}" }
workdir = "/srv"
labels = { "org.opencontainers.image.title" = "x" }
expose = ["80", "53/udp", "${PORT}/tcp"]
volumes = ["/data"]
copy = [{ src = "static/", dest = "/srv/static/" }, { src = "a.txt", dest = "/a.txt" }]
[build-args]
NAME = "seed"
MOD = "app"
---
WHO=world
PORT=8080
"#,
    );

    write(
        out,
        "dockerfile",
        "everything",
        br#"# syntax is ignored
ARG BASE=scratch
FROM ${BASE}
ARG VERSION=1
ARG WHO
COPY hello.wasm /hello.wasm
COPY --chmod=644 static/ \
     /srv/static/
ADD a.txt /a.txt
ENV GREETING="hi there" MODE=prod
ENV LEGACY value with spaces
WORKDIR /srv
WORKDIR sub
LABEL org.example.version=$VERSION "quoted key"="v"
EXPOSE 8080 53/udp ${PORT:-80}
VOLUME ["/data"]
VOLUME /cache /tmp/x
USER 1000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/hello.wasm"]
CMD ["world", "${WHO:+x}"]
---
VERSION=2
PORT=9090
"#,
    );
    write(
        out,
        "dockerfile",
        "refused",
        b"FROM scratch\nRUN make\nCMD run.sh\nHEALTHCHECK NONE\nONBUILD COPY a b\n",
    );

    let api: &[(u8, &[u8])] = &[
        (0, b"64m"),
        (0, b"1.5g"),
        (0, b"100KB"),
        (0, b"1t"),
        (1, b"500ms"),
        (1, b"1.5h"),
        (1, "3µs".as_bytes()),
        (2, b"/host:/guest:ro"),
        (2, b"./rel:/g"),
        (2, b"vol:/g:rw"),
        (3, b"my-name_1.x"),
        (
            4,
            br#"{"label":{"a=b":true,"c":true},"dangling":{"true":true}}"#,
        ),
        (4, br#"{"reference":["app:*","x"],"before":["abc"]}"#),
        (5, b"label=a=b\ndangling=1\nreference=*/app:[0-9]*"),
        (6, b"*/app:[a-z]?\nlib/app:x1"),
        (6, b"a\\*b[^c-e]*\na*bz"),
        (7, b"2024-01-02T03:04:05.123456789Z"),
        (7, b"2024-01-02T03:04:05+02:00"),
        (8, &3600i64.to_le_bytes()),
    ];
    for (i, (which, text)) in api.iter().enumerate() {
        let mut input = vec![*which];
        input.extend_from_slice(text);
        write(out, "api_parse", &i.to_string(), &input);
    }

    api_seeds(out);

    let mut stream = vec![7u8];
    for (s, payload) in [
        (1u8, &b"hello\n"[..]),
        (2, b"oops\n"),
        (0, b""),
        (1, &[0u8; 40][..]),
    ] {
        wrun_api::stream::encode_into(&mut stream, s, payload);
    }
    stream.extend_from_slice(&[1, 0, 0, 0, 0, 0, 1]);
    write(out, "stream_demux", "frames", &stream);
}

/// Writes one seed; with target names as arguments, only theirs.
fn write(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let only: Vec<String> = std::env::args().skip(1).collect();
    if !only.is_empty() && !only.iter().any(|t| t == target) {
        return;
    }
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).expect("creating a corpus directory");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("writing a seed");
}

/// What the docker 28 CLI sent to dockerd 20.10 for `docker create` with
/// many flags (captured on the Unix socket), its image and paths renamed to
/// the `api_router` state's.
const CLI_CREATE: &str = r#"{"Hostname":"h1","Domainname":"","User":"1000:1000","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["A=1"],"Cmd":["a","b"],"Image":"idle:1.0","Volumes":{},"WorkingDir":"/","Entrypoint":["/idle.wasm"],"OnBuild":null,"Labels":{"k":"v"},"StopSignal":"SIGINT","StopTimeout":5,"HostConfig":{"Binds":["/tmp:/data:ro"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{"max-size":"1m"}},"NetworkMode":"none","PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"0"}]},"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":true,"SecurityOpt":null,"Tmpfs":{"/tmp":""},"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":67108864,"NanoCpus":500000000,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/m"}],"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{}}}"#;

/// Other create bodies: docker-py's `containers.run` and compose 1.29's.
const CREATE_BODIES: [&str; 5] = [
    r#"{"Image":"idle:1.0"}"#,
    r#"{"Image":"idle:1.0","Cmd":["60"],"Env":["X=y"],"Labels":{"a":"b"},"HostConfig":{"AutoRemove":true,"LogConfig":{"Type":"json-file","Config":{}},"Memory":33554432,"RestartPolicy":{"Name":"no"},"NetworkMode":"default"}}"#,
    r#"{"Image":"idle:1.0","Labels":{"com.docker.compose.project":"p","com.docker.compose.service":"s"},"HostConfig":{"NetworkMode":"p_default","Binds":[],"Links":[],"LogConfig":{"Type":"","Config":{}}},"NetworkingConfig":{"EndpointsConfig":{"p_default":{"Aliases":["s"],"IPAMConfig":{}}}}}"#,
    r#"{"Image":"idle:1.0","HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576}},{"Type":"volume","Target":"/v"}],"PortBindings":{"53/udp":[{"HostPort":""}]},"PublishAllPorts":true,"StopTimeout":1}}"#,
    r#"{"Hostname":"x","HostConfig":{"Binds":["/:/host"],"NetworkMode":"host"}}"#,
];

/// The `api_router` and `api_bodies` seeds.
fn api_seeds(out: &Path) {
    const CLIENT: (&str, &str) = ("User-Agent", "Docker-Client/28.2.2 (linux)");
    const JSON: (&str, &str) = ("Content-Type", "application/json");
    let filters = |f: &str| -> String { form_urlencoded(f) };
    let label_exited = filters(r#"{"label":{"a=b":true},"status":{"exited":true}}"#);
    let dangling_ref = filters(r#"{"dangling":{"true":true},"reference":{"idle*":true}}"#);
    let events = filters(r#"{"event":{"start":true},"type":{"container":true}}"#);
    let prune = filters(r#"{"label":{"k":true},"until":{"1h":true}}"#);
    let image_prune = filters(r#"{"dangling":{"true":true}}"#);
    let gets = [
        "/_ping".to_string(),
        "/v1.41/version".into(),
        "/v1.41/info".into(),
        "/v1.41/containers/json".into(),
        format!("/v1.41/containers/json?all=1&filters={label_exited}"),
        "/v1.41/containers/json?all=1&limit=2&size=1".into(),
        "/v1.41/images/json".into(),
        format!("/v1.41/images/json?filters={dangling_ref}"),
        "/v1.41/images/json?all=1&digests=1&shared-size=1".into(),
        "/v1.41/images/idle:1.0/json".into(),
        "/v1.41/images/idle:1.0/history".into(),
        "/v1.41/images/get?names=idle%3A1.0".into(),
        "/v1.41/containers/fz/json?size=1".into(),
        "/v1.41/containers/fz/logs?since=1796668196&stderr=1&stdout=1&tail=5&timestamps=1".into(),
        "/v1.41/containers/fz/logs?stdout=1&follow=1&until=2030-01-01T00:00:00Z".into(),
        "/v1.41/containers/fz/top?ps_args=-ef".into(),
        "/v1.41/containers/fz/stats?stream=0".into(),
        "/v1.41/containers/fz/stats?stream=1&one-shot=1".into(),
        format!("/v1.41/events?filters={events}&since=1796668501"),
        "/v1.41/events?since=0&until=1".into(),
        "/v1.41/system/df".into(),
        "/v1.41/exec/434966a23c29/json".into(),
        "/v1.99/version".into(),
        "/v1.12/version".into(),
        "/v1.41/images/%zz/json".into(),
    ];
    let mut requests: Vec<Vec<u8>> = gets
        .iter()
        .map(|target| api_request::encode("GET", target, &[CLIENT], b""))
        .collect();
    requests.push(api_request::encode("HEAD", "/_ping", &[CLIENT], b""));
    let posts = [
        "/v1.41/containers/fz/start",
        "/v1.41/containers/fz/pause",
        "/v1.41/containers/fz/unpause",
        "/v1.41/containers/fz/rename?name=fz2",
        "/v1.41/containers/fz/kill?signal=SIGUSR1",
        "/v1.41/containers/fz/kill?signal=99",
        "/v1.41/containers/fz/stop?t=1",
        "/v1.41/containers/fz/wait?condition=next-exit",
        "/v1.41/containers/fz/restart?t=1",
        "/v1.41/containers/fz/attach?stream=1&stdout=1&stderr=1&logs=1",
        "/v1.41/images/idle:1.0/tag?repo=docker.io%2Flibrary%2Fidle-y&tag=2",
        "/v1.41/images/idle:1.0/tag?repo=UPPER&tag=x",
        "/v1.41/networks/prune",
        "/v1.41/build/prune?all=1",
        "/v1.41/images/create?fromImage=alpine&tag=3",
        "/wrun/shutdown",
    ];
    for target in posts {
        requests.push(api_request::encode("POST", target, &[CLIENT], b""));
    }
    requests.push(api_request::encode(
        "POST",
        &format!("/v1.41/containers/prune?filters={prune}"),
        &[CLIENT],
        b"",
    ));
    requests.push(api_request::encode(
        "POST",
        &format!("/v1.41/images/prune?filters={image_prune}"),
        &[CLIENT],
        b"",
    ));
    requests.push(api_request::encode(
        "POST",
        "/v1.41/containers/create?name=hd-c1",
        &[CLIENT, JSON],
        CLI_CREATE.as_bytes(),
    ));
    for body in CREATE_BODIES {
        requests.push(api_request::encode(
            "POST",
            "/v1.45/containers/create",
            &[JSON],
            body.as_bytes(),
        ));
    }
    requests.push(api_request::encode(
        "POST",
        "/v1.41/containers/create",
        &[CLIENT, JSON],
        b"{",
    ));
    requests.push(api_request::encode(
        "POST",
        "/v1.41/containers/fz/exec",
        &[CLIENT, JSON],
        br#"{"User":"","Privileged":false,"Tty":false,"AttachStdin":false,"AttachStderr":true,"AttachStdout":true,"Detach":false,"DetachKeys":"","Env":null,"WorkingDir":"","Cmd":["/x"]}"#,
    ));
    requests.push(api_request::encode(
        "POST",
        "/v1.41/containers/fz/attach?stream=1&stdin=1&stdout=1",
        &[CLIENT, ("Connection", "Upgrade"), ("Upgrade", "tcp")],
        b"",
    ));
    requests.push(api_request::encode(
        "POST",
        "/v1.41/images/load?quiet=1",
        &[CLIENT, ("Content-Type", "application/x-tar")],
        &archive_bytes(&{
            let app = [entry(KIND_FILE, "app.wasm", WASM)];
            let mut input = vec![MODE_GZIP];
            input.extend(encode_entries(&oci_image(&app, true, "wasip1")));
            input
        }),
    ));
    for target in [
        "/v1.41/containers/fz?force=1&v=1",
        "/v1.41/images/idle:1.0?force=1&noprune=1",
        "/v1.41/images/sha256:0000",
    ] {
        requests.push(api_request::encode("DELETE", target, &[CLIENT], b""));
    }
    requests.push(api_request::encode(
        "PUT",
        "/v1.41/containers/json",
        &[],
        b"",
    ));
    requests.push(api_request::encode(
        "PATCH",
        "/v1.41/containers/fz/update",
        &[JSON],
        b"{}",
    ));
    for (i, request) in requests.iter().enumerate() {
        assert!(
            api_request::parse(request).is_some(),
            "seed {i} does not parse: {}",
            String::from_utf8_lossy(request)
        );
        write(out, "api_router", &format!("{i:02}"), request);
    }

    let mut bodies: Vec<(u8, &[u8])> = vec![(0, CLI_CREATE.as_bytes()), (0, b"{"), (0, b"")];
    bodies.extend(CREATE_BODIES.iter().map(|b| (0, b.as_bytes())));
    bodies.extend([
        (
            1,
            &br#"{"event":{"start":true},"type":{"container":true}}"#[..],
        ),
        (
            1,
            br#"{"label":["a=b"],"image":["idle:1.0"],"container":["fz"]}"#,
        ),
        (2, br#"{"label":{"k":true},"until":{"1h":true}}"#),
        (
            2,
            br#"{"until":["2030-01-01T00:00:00Z","10m"],"label!":["x=y"]}"#,
        ),
        (
            3,
            br#"{"dangling":{"false":true},"until":["1700000000.5"]}"#,
        ),
    ]);
    for (i, (parser, body)) in bodies.iter().enumerate() {
        let mut input = vec![*parser];
        input.extend_from_slice(body);
        write(out, "api_bodies", &format!("{i:02}"), &input);
    }
}

/// Percent-encodes a query value as Go's `url.QueryEscape` (the docker CLI).
fn form_urlencoded(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
