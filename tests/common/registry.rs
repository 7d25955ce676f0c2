//! A real registry for the tests: Debian's `docker-registry` (distribution
//! 2.8) on 127.0.0.1 on a free port, its storage in a temporary directory;
//! killed when dropped.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct Registry {
    /// `127.0.0.1:PORT`, as a reference names it.
    pub host: String,
    pub dir: tempfile::TempDir,
    /// The CA (PEM) that signed the registry's certificate, when it speaks
    /// TLS ([`Registry::start_tls`]).
    pub ca: Option<PathBuf>,
    child: Child,
}

impl Registry {
    /// Starts an anonymous registry, or `None` (the test is skipped) where
    /// `docker-registry` is not installed.
    pub fn start() -> Option<Registry> {
        Registry::start_with(None)
    }

    /// Starts a registry that takes only `user` with `password` (Basic,
    /// an `htpasswd -B` file), or `None` as [`Registry::start`]; `None`
    /// too where `htpasswd` (apache2-utils) is missing.
    pub fn start_with_login(user: &str, password: &str) -> Option<Registry> {
        if !super::have_tool("htpasswd") {
            assert!(
                std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
                "htpasswd is required (WRUN_REQUIRE_PEERS is set) but not installed"
            );
            eprintln!("skipping: htpasswd (apache2-utils) is not installed");
            return None;
        }
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("run htpasswd");
        assert!(out.status.success(), "htpasswd: {out:?}");
        Registry::start_with(Some(&out.stdout))
    }

    /// Starts an anonymous registry that speaks TLS only, its certificate
    /// (for IP 127.0.0.1) signed by a CA made for it (`ca`), or `None` as
    /// [`Registry::start`]; `None` too where `openssl` is missing.
    pub fn start_tls() -> Option<Registry> {
        if !super::have_tool("openssl") {
            assert!(
                std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
                "openssl is required (WRUN_REQUIRE_PEERS is set) but not installed"
            );
            eprintln!("skipping: openssl is not installed");
            return None;
        }
        let certs = tempfile::tempdir().expect("tempdir");
        let d = certs.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("run openssl");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=wrun test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "key.pem",
                    "-out",
                    "req.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext.cnf");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let mut registry = Registry::start_with_tls(None, Some(certs.path()))?;
        let ca = registry.dir.path().join("ca.crt");
        std::fs::copy(d.join("ca.crt"), &ca).expect("copy ca.crt");
        registry.ca = Some(ca);
        Some(registry)
    }

    fn start_with(htpasswd: Option<&[u8]>) -> Option<Registry> {
        Registry::start_with_tls(htpasswd, None)
    }

    /// `certs`: a directory holding `cert.pem` and `key.pem` to serve TLS.
    fn start_with_tls(
        htpasswd: Option<&[u8]>,
        certs: Option<&std::path::Path>,
    ) -> Option<Registry> {
        if !std::path::Path::new(REGISTRY_BIN).exists() {
            assert!(
                std::env::var_os("WRUN_REQUIRE_PEERS").is_none(),
                "{REGISTRY_BIN} is required (WRUN_REQUIRE_PEERS is set) but not installed"
            );
            eprintln!("skipping: {REGISTRY_BIN} is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        // A port the kernel gave out just now; the registry binds it next.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some(entries) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, entries).expect("write htpasswd");
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wrun-test\n    path: {}\n",
                file.display()
            ));
        }
        if let Some(certs) = certs {
            for f in ["cert.pem", "key.pem"] {
                std::fs::copy(certs.join(f), dir.path().join(f)).expect("copy the certificate");
            }
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            ));
        }
        std::fs::write(&config, yaml).expect("write config");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry {
            host,
            dir,
            ca: None,
            child,
        };
        registry.wait_until_up();
        Some(registry)
    }

    /// Waits (up to 30 s) until `GET /v2/` answers (200, or 401 with a
    /// login; a TLS registry answers plain HTTP with a 400).
    fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("docker-registry exited at start: {status}");
            }
            if matches!(self.get("/v2/").0, 200 | 400 | 401) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "docker-registry did not answer on {} within 30 s",
            self.host
        );
    }

    /// `GET path` over plain HTTP: the status (0 when no answer) and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect(&self.host) else {
            return (0, String::new());
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n",
            self.host
        );
        if s.write_all(request.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        status_and_body(&answer)
    }

    /// Where the registry keeps its blobs.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status and body of a raw HTTP/1 answer read whole (status 0 when
/// there is none).
pub fn status_and_body(answer: &str) -> (u16, String) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// wrun on `env`'s store with `config` as its configuration directory
/// (`WRUN_CONFIG`: credentials, registries, certs.d).
pub fn wrun_configured(env: &super::Env, config: &Path, args: &[&str]) -> Output {
    env.cmd()
        .env("WRUN_CONFIG", config)
        .args(args)
        .output()
        .expect("run wrun")
}
