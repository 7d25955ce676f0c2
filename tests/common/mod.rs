//! Shared helpers for the end-to-end tests: run the built `wrun` binary
//! against a private store (and a daemon on it), and make image tars
//! (honest or hostile) by hand.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

#[path = "../../runtime/tests/common/http_client.rs"]
pub mod http_client;
#[path = "../../runtime/tests/common/net_probe.rs"]
pub mod net_probe;
pub mod registry;

pub const HELLO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello");
pub const IDLE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/idle");
pub const FS_COPY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fs-copy");

/// Writes the build context of `cat` into `dir`: a core module that copies
/// stdin to stdout until end of file (name `cat`, module `cat.wasm`).
pub fn write_cat_context(dir: &Path) {
    let cat = wat::parse_str(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (loop $next
            (i32.store (i32.const 0) (i32.const 100))
            (i32.store (i32.const 4) (i32.const 1000))
            (if (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)) (then return))
            (if (i32.eqz (i32.load (i32.const 8))) (then return))
            (i32.store (i32.const 4) (i32.load (i32.const 8)))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
            (br $next))))"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cat.wasm"), cat).unwrap();
    std::fs::write(
        dir.join("wrun.toml"),
        "name = \"cat\"\nmodule = \"cat.wasm\"\n",
    )
    .unwrap();
}

/// Runs `cmd` with `input` on its stdin (written from a thread while its
/// output is read, so neither side waits on a full pipe), then closed.
pub fn output_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A child that exits without reading all of it is the test's to judge.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// A private store directory and a way to run `wrun` against it.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wrun"));
        c.env("WRUN_ROOT", self.root())
            .env_remove("SOURCE_DATE_EPOCH");
        c
    }

    /// Runs wrun with `args`; returns the output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run wrun")
    }

    /// Runs wrun and fails the test unless it exits 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded("wrun", args, self.run(args))
    }

    /// Runs wrun expecting failure; returns stderr (one line, checked).
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "wrun {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !stderr.contains("panicked"),
            "wrun {args:?} panicked: {stderr}"
        );
        stderr
    }

    /// `wrun build -t hello:1.0 examples/hello`, returning the image ID.
    pub fn build_hello(&self, tag: &str) -> String {
        self.ok(&["build", "-q", "-t", tag, HELLO_DIR])
            .trim()
            .to_string()
    }

    /// `wrun build -t TAG DIR`, returning the image ID.
    pub fn build(&self, tag: &str, dir: &str) -> String {
        self.ok(&["build", "-q", "-t", tag, dir]).trim().to_string()
    }

    /// A new store holding one image: `wrun build -t TAG DIR`.
    pub fn with_image(tag: &str, dir: &str) -> Env {
        let env = Env::new();
        env.build(tag, dir);
        env
    }

    /// Everything in the store that matters for "unchanged" checks: the
    /// records file and the names of blobs and snapshots.
    pub fn store_state(&self) -> String {
        let root = self.root();
        let mut state = std::fs::read_to_string(root.join("images.json")).unwrap_or_default();
        for dir in ["blobs/sha256", "snapshots"] {
            let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            state.push_str(&format!("\n{dir}: {names:?}"));
        }
        state
    }
}

/// A `wrun daemon` on a private socket and `env`'s store; killed when
/// dropped.
pub struct Daemon {
    pub env: Env,
    pub socket: PathBuf,
    pub child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon on `env` (with the images the test needs built) and
    /// waits until it answers.
    pub fn start(env: Env) -> Daemon {
        Daemon::start_with(env, &[])
    }

    /// As `start`, with `args` after `daemon --socket S`.
    pub fn start_with(env: Env, args: &[&str]) -> Daemon {
        Daemon::start_from(env, |env, socket| {
            env.cmd()
                .args(["daemon", "--socket", socket.to_str().unwrap()])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
    }

    /// A daemon that `spawn` starts on `env`'s store and the socket it is
    /// given (`wrun.sock` in the test's directory), once it answers.
    pub fn start_from(env: Env, spawn: impl FnOnce(&Env, &Path) -> Child) -> Daemon {
        let socket = env.path("wrun.sock");
        let child = spawn(&env, &socket);
        let mut d = Daemon {
            env,
            socket,
            child: Some(child),
        };
        d.wait_until_up();
        d
    }

    /// Waits (up to 30 s) until the socket accepts a connection; fails the
    /// test if the daemon exits first.
    pub fn wait_until_up(&mut self) {
        for _ in 0..1500 {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the daemon never answered on {}", self.socket.display());
    }

    /// The daemon's address as `WRUN_HOST` and `DOCKER_HOST` take it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The stock docker client, pointed at the daemon.
    pub fn docker_cmd(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.env.path("docker-config"));
        cmd
    }

    /// Runs the stock docker client against the daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd().args(args).output().unwrap()
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        succeeded("docker", args, self.docker(args))
    }

    /// wrun as a client of the daemon.
    pub fn wrun_cmd(&self) -> Command {
        let mut cmd = self.env.cmd();
        cmd.env("WRUN_HOST", self.host());
        cmd
    }

    /// Runs wrun as a client of the daemon.
    pub fn wrun(&self, args: &[&str]) -> Output {
        self.wrun_cmd().args(args).output().unwrap()
    }

    pub fn wrun_ok(&self, args: &[&str]) -> String {
        succeeded("wrun", args, self.wrun(args))
    }

    /// One Engine API request on a new connection: the status and the body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http_request(&self.socket, method, path, body)
    }
}

/// One HTTP request with a JSON `body` on a new connection to `socket`:
/// the status and the body. Fails the test when no answer has come in
/// 120 s or the answer is not HTTP.
pub fn http_request(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    if let Err(e) = s.read_to_end(&mut answer) {
        panic!("no answer to {method} {path} (waited up to 120 s): {e}");
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer to {method} {path}: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Polls `attempt` every 50 ms until it gives a value; fails the test
/// after `within`, with `what` and the last `Err` it gave (what it saw,
/// if anything).
pub fn poll<T>(what: &str, within: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "{what}: not after {within:?}{}{seen}",
                if seen.is_empty() { "" } else { "; last seen: " }
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `done` until it holds; fails the test with `what` after 120 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    poll(what, Duration::from_secs(120), || {
        if done() { Ok(()) } else { Err(String::new()) }
    })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Fails the test unless `out` is a success; returns its stdout. `tool`
/// and `args` name the command in the failure message.
pub fn succeeded(tool: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Appends one tar entry with raw header fields, so hostile names and link
/// targets the `tar` crate's safe API refuses can be written.
pub fn raw_entry(
    out: &mut Vec<u8>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
    mode: u32,
) {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
}

pub fn end_tar(mut t: Vec<u8>) -> Vec<u8> {
    t.extend(std::iter::repeat_n(0u8, 1024));
    t
}

/// A layer tar holding the hello module at /hello.wasm.
pub fn hello_layer() -> Vec<u8> {
    let module = std::fs::read(format!("{HELLO_DIR}/hello.wasm")).expect("hello.wasm is committed");
    let mut t = Vec::new();
    raw_entry(
        &mut t,
        b"hello.wasm",
        tar::EntryType::Regular,
        b"",
        &module,
        0o755,
    );
    end_tar(t)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Builds an OCI layout tar by hand: `blobs` are written as given (so a
/// test can lie about digests), then `index.json` and `oci-layout`.
#[derive(Default)]
pub struct LayoutTar {
    pub files: Vec<(String, Vec<u8>)>,
}

impl LayoutTar {
    pub fn blob(&mut self, bytes: &[u8]) -> String {
        let d = digest(bytes);
        self.files.push((
            format!("blobs/sha256/{}", sha256_hex(bytes)),
            bytes.to_vec(),
        ));
        d
    }

    pub fn file(&mut self, name: &str, bytes: &[u8]) {
        self.files.push((name.to_string(), bytes.to_vec()));
    }

    pub fn write(&self, path: &Path) {
        // Raw headers, so hostile names reach the loader unchanged.
        let mut t = Vec::new();
        for (name, bytes) in &self.files {
            assert!(
                name.len() < 100,
                "raw tar names are limited to 99 bytes: {name}"
            );
            raw_entry(
                &mut t,
                name.as_bytes(),
                tar::EntryType::Regular,
                b"",
                bytes,
                0o644,
            );
        }
        std::fs::write(path, end_tar(t)).unwrap();
    }
}

/// A complete wasm image: layer (gzip or not), config, manifest; returns the
/// manifest bytes. `config_patch` edits the config JSON before it is stored.
pub fn wasm_image(
    t: &mut LayoutTar,
    layer_tar: &[u8],
    gzip_layer: bool,
    config_patch: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    let blob = if gzip_layer {
        gzip(layer_tar)
    } else {
        layer_tar.to_vec()
    };
    let layer_digest = t.blob(&blob);
    let mut config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Entrypoint": ["/hello.wasm"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]},
    });
    config_patch(&mut config);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = t.blob(&config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
        "layers": [{
            "mediaType": if gzip_layer { "application/vnd.oci.image.layer.v1.tar+gzip" } else { "application/vnd.oci.image.layer.v1.tar" },
            "digest": layer_digest, "size": blob.len()
        }],
    });
    serde_json::to_vec(&manifest).unwrap()
}

/// Adds `manifest` as a blob and an index.json naming it `name`.
pub fn finish_layout(t: &mut LayoutTar, manifest: &[u8], name: Option<&str>) {
    let d = t.blob(manifest);
    let mut desc = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": d, "size": manifest.len(),
    });
    if let Some(n) = name {
        desc["annotations"] = serde_json::json!({"io.containerd.image.name": n});
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [desc]});
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    t.file("index.json", &serde_json::to_vec(&index).unwrap());
}

/// True when the named peer tool must be present (CI sets WRUN_REQUIRE_PEERS=1);
/// elsewhere a missing tool skips the test with a message.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
            "{tool} is required (WRUN_REQUIRE_PEERS is set) but not installed"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// Checks every record's manifest, config, layers and snapshot are present.
pub fn assert_store_consistent(env: &Env) {
    let root = env.root();
    let db: serde_json::Value = match std::fs::read(root.join("images.json")) {
        Ok(b) => serde_json::from_slice(&b).expect("images.json is valid JSON"),
        Err(_) => return,
    };
    for image in db["images"].as_array().unwrap() {
        let blob = |d: &str| {
            root.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"))
        };
        let manifest_path = blob(image["digest"].as_str().unwrap());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest blob present"))
                .unwrap();
        assert!(
            blob(image["id"].as_str().unwrap()).is_file(),
            "config blob present"
        );
        for layer in manifest["layers"].as_array().unwrap() {
            assert!(
                blob(layer["digest"].as_str().unwrap()).is_file(),
                "layer blob present"
            );
        }
        if let Some(chain) = image["chain_id"].as_str() {
            let snap = root
                .join("snapshots")
                .join(chain.trim_start_matches("sha256:"));
            assert!(
                snap.join("rootfs").is_dir() && snap.join("meta.json").is_file(),
                "snapshot complete"
            );
        }
    }
}

/// A context with the hello module and `size` bytes of incompressible data.
pub fn big_context(size: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{HELLO_DIR}/hello.wasm"),
        dir.path().join("hello.wasm"),
    )
    .unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(dir.path().join("blob.bin"), &data).unwrap();
    std::fs::write(
        dir.path().join("wrun.toml"),
        "name = \"big\"\nmodule = \"hello.wasm\"\n[[copy]]\nsrc = \"blob.bin\"\ndest = \"/data/blob.bin\"\n",
    )
    .unwrap();
    dir
}

/// Writes an image tar named `name` at `env.path(file)` whose one gzip layer
/// is `layer_tar`; `config_patch` edits the config first.
pub fn one_layer_image_tar(
    env: &Env,
    file: &str,
    name: &str,
    layer_tar: &[u8],
    config_patch: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let mut t = LayoutTar::default();
    let m = wasm_image(&mut t, layer_tar, true, config_patch);
    finish_layout(&mut t, &m, Some(name));
    let path = env.path(file);
    t.write(&path);
    path
}

/// A layer tar with one entry at `hello.wasm` of the given type.
pub fn layer_with_module_entry(kind: tar::EntryType, link: &[u8], data: &[u8]) -> Vec<u8> {
    let mut layer = Vec::new();
    raw_entry(&mut layer, b"hello.wasm", kind, link, data, 0o755);
    end_tar(layer)
}

/// Runs skopeo with `args`, failing the test unless it succeeds; returns stdout.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    succeeded("skopeo", args, out)
}

/// A build context directory with `files` (their folders made) and a
/// Dockerfile of `dockerfile`.
pub fn dockerfile_context(files: &[(&str, &[u8])], dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// A temporary directory's path as the `&str` a command line takes.
pub fn p(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}
