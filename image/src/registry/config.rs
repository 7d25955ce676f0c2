//! Registry configuration a user writes: the default registry, the
//! registries spoken to without checking TLS (docker's `insecure-registries`)
//! and the CAs trusted per registry (docker's `certs.d/HOST:PORT/*.crt`).
//!
//! The keys live in wrun's `config.json` beside `auths`, named as in
//! docker's `daemon.json`; the CLI and the daemon read the same file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    RegistryError, RegistryOptions, RemoteRef, Result, install_crypto_provider, is_loopback,
    runtime,
};
use crate::reference::ImageRef;

/// Docker's system-wide `certs.d`, read after wrun's own.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

/// Errors of the registry configuration; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "neither $WRUN_CONFIG, $XDG_CONFIG_HOME nor $HOME is set: set WRUN_CONFIG to a directory for wrun's config.json"
    )]
    NoConfigDir,
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a JSON config.json: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

/// wrun's configuration directory: `$WRUN_CONFIG`, else
/// `$XDG_CONFIG_HOME/wrun`, else `~/.config/wrun`.
pub fn wrun_config_dir() -> Result<PathBuf, ConfigError> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("WRUN_CONFIG") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(xdg) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(xdg).join("wrun"));
    }
    var("HOME")
        .map(|home| PathBuf::from(home).join(".config/wrun"))
        .ok_or(ConfigError::NoConfigDir)
}

/// An `insecure-registries` entry: one registry, or a CIDR of addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
enum InsecureEntry {
    Registry(String),
    Network { addr: IpAddr, prefix: u8 },
}

impl InsecureEntry {
    fn matches(&self, registry: &str) -> bool {
        match self {
            InsecureEntry::Registry(r) => r == registry,
            InsecureEntry::Network { addr, prefix } => {
                host_ip(registry).is_some_and(|ip| same_network(ip, *addr, *prefix))
            }
        }
    }
}

/// The IP a `host[:port]` names, when its host is an address.
fn host_ip(registry: &str) -> Option<IpAddr> {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host.parse().ok()
}

fn same_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Whether `text` is a registry `host[:port]` as an image name's first
/// component names one.
pub fn is_registry_host(text: &str) -> bool {
    format!("{text}/x")
        .parse::<ImageRef>()
        .ok()
        .and_then(|r| r.registry().map(|h| h == text))
        .unwrap_or(false)
}

/// The registry configuration: what `config.json` says, and where the CAs
/// are looked for. [`RegistryConfig::default`] is no default registry, no
/// insecure registry, and no `certs.d`.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// The registry of a name that names none (`default-registry`).
    pub default_registry: Option<String>,
    /// `insecure-registries`, as written (`host[:port]` or a CIDR).
    pub insecure: Vec<String>,
    /// Where `HOST[:PORT]/*.crt` are looked for, in order.
    pub certs_dirs: Vec<PathBuf>,
    /// The file the keys were read from, named in errors.
    pub file: Option<PathBuf>,
}

impl RegistryConfig {
    /// Reads `dir/config.json` (a missing file is an empty one): the keys
    /// `default-registry` (a `host[:port]`) and `insecure-registries` (a
    /// list of `host[:port]` or CIDRs, as docker's `daemon.json`); the CAs
    /// come from `dir/certs.d`, then docker's `/etc/docker/certs.d`.
    pub fn load(dir: &Path) -> Result<RegistryConfig, ConfigError> {
        let path = dir.join("config.json");
        let mut config = RegistryConfig {
            certs_dirs: vec![dir.join("certs.d"), PathBuf::from(DOCKER_CERTS_DIR)],
            file: Some(path.clone()),
            ..RegistryConfig::default()
        };
        let doc = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => return Ok(config),
            Ok(bytes) => {
                serde_json::from_slice::<Value>(&bytes).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(config),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let invalid = |what: String| ConfigError::Invalid {
            path: path.clone(),
            what,
        };
        match doc.get("default-registry") {
            None | Some(Value::Null) => {}
            Some(Value::String(r)) if is_registry_host(r) => {
                config.default_registry = Some(r.clone());
            }
            Some(other) => {
                return Err(invalid(format!(
                    "default-registry {other} is not a registry HOST[:PORT] (a name with a '.' or a ':', or localhost)"
                )));
            }
        }
        match doc.get("insecure-registries") {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for entry in entries {
                    let Some(text) = entry.as_str() else {
                        return Err(invalid(format!(
                            "insecure-registries holds {entry}, not a string"
                        )));
                    };
                    parse_insecure(text).map_err(invalid)?;
                    config.insecure.push(text.to_owned());
                }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "insecure-registries is {other}, not a list of HOST[:PORT] or CIDR strings"
                )));
            }
        }
        Ok(config)
    }

    /// The registry options this configuration gives; `insecure` adds
    /// `registry` to the insecure ones (the `--insecure` flag).
    pub fn options(&self, registry: Option<&str>, insecure: bool) -> RegistryOptions {
        let mut list = self.insecure.clone();
        if let Some(r) = registry.filter(|_| insecure) {
            list.push(r.to_owned());
        }
        RegistryOptions {
            insecure: list,
            certs_dirs: self.certs_dirs.clone(),
            config_file: self.file.clone(),
            ..RegistryOptions::default()
        }
    }

    /// Where `name` lives: its own registry, else the default registry,
    /// else an error that says how to name one.
    pub fn remote_ref(&self, name: &str) -> Result<RemoteRef> {
        let parsed: ImageRef = name.parse()?;
        match (parsed.registry(), &self.default_registry) {
            (None, Some(default)) => {
                let full = ImageRef {
                    repository: format!("{default}/{}", parsed.repository),
                    ..parsed
                };
                RemoteRef::from_image_ref(&full)
            }
            _ => RemoteRef::from_image_ref(&parsed),
        }
    }
}

/// How a registry is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS, the certificate checked against the system's roots and the
    /// registry's `certs.d` CAs.
    Https,
    /// TLS, the certificate not checked (an insecure registry).
    HttpsUnchecked,
    Http,
}

/// What [`RegistryOptions::reach`] found for one registry.
#[derive(Clone, Debug)]
pub struct Reach {
    pub transport: Transport,
    /// The registry's `certs.d` CAs (DER).
    pub cas: Vec<Vec<u8>>,
}

impl RegistryOptions {
    pub(super) fn named_insecure(&self, registry: &str) -> bool {
        listed_insecure(&self.insecure, registry)
    }

    /// Finds how to speak to `registry` and records it: TLS first (docker's
    /// order), its certificate checked against the system's roots and the
    /// `certs.d` CAs unless the registry is insecure; plain HTTP only for a
    /// loopback or insecure registry that does not speak TLS. A certificate
    /// that fails the check is an error that says how to trust it, also on
    /// loopback (where dockerd would not check it). Blocking: it runs its
    /// own runtime.
    pub fn reach(&mut self, registry: &str) -> Result<Transport> {
        let cas = read_cas(&self.certs_dirs, registry)?;
        let insecure = self.named_insecure(registry);
        let tls = if insecure {
            Transport::HttpsUnchecked
        } else {
            Transport::Https
        };
        self.reached.insert(
            registry.to_owned(),
            Reach {
                transport: tls,
                cas,
            },
        );
        let url = format!("https://{registry}/v2/");
        let client = self
            .http_client(registry)
            .map_err(|e| RegistryError::Unreachable {
                url: url.clone(),
                reason: innermost(&e),
            })?;
        let answer = runtime()?.block_on(async { client.get(&url).send().await.map(drop) });
        let Err(e) = answer else {
            return Ok(tls);
        };
        if let Some(reason) = certificate_error(&e) {
            return Err(RegistryError::Untrusted {
                registry: registry.to_owned(),
                reason,
                certs_dir: self
                    .certs_dirs
                    .first()
                    .map_or_else(|| "certs.d".to_owned(), |d| d.display().to_string()),
                config: self
                    .config_file
                    .as_ref()
                    .map(|f| format!(" in {}", f.display()))
                    .unwrap_or_default(),
            });
        }
        if insecure || is_loopback(registry) {
            if let Some(r) = self.reached.get_mut(registry) {
                r.transport = Transport::Http;
            }
            return Ok(Transport::Http);
        }
        Err(RegistryError::Unreachable {
            url,
            reason: innermost(&e),
        })
    }

    /// A client for wrun's own calls (login, tokens, search) to
    /// `registry`, trusting its CAs: redirects to another host drop
    /// `Authorization` (reqwest's policy), so credentials reach only their
    /// host.
    pub(super) fn http_client(&self, registry: &str) -> Result<reqwest::Client, reqwest::Error> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .read_timeout(super::READ_TIMEOUT)
            .connect_timeout(super::CONNECT_TIMEOUT);
        if let Some(reach) = self.reached.get(registry) {
            let mut certs = Vec::new();
            for der in &reach.cas {
                certs.push(reqwest::Certificate::from_der(der)?);
            }
            builder = builder
                .tls_certs_merge(certs)
                .danger_accept_invalid_certs(reach.transport == Transport::HttpsUnchecked);
        } else if self.named_insecure(registry) {
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder.build()
    }
}

/// Why a TLS certificate was refused, when that is why `e` failed.
fn certificate_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            return Some(format!("{c:?}"));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(reason) = certificate_error(inner)
        {
            return Some(reason);
        }
        next = err.source();
    }
    None
}

/// The last cause of an error chain, in one line (`Connection refused`).
pub(super) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// Checks one `insecure-registries` entry as docker does (no scheme).
fn parse_insecure(text: &str) -> Result<InsecureEntry, String> {
    if text.contains("://") {
        return Err(format!(
            "insecure registry {text} should not contain '://' (write HOST[:PORT] or a CIDR)"
        ));
    }
    if let Some((addr, prefix)) = text.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("insecure registry {text} is not HOST[:PORT] or a CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("insecure registry {text}: the prefix length is not 0-{max}"))?;
        return Ok(InsecureEntry::Network { addr, prefix });
    }
    // A bare host or address counts too: docker takes `myhost` as an index.
    let valid = is_registry_host(text)
        || format!("{text}/x")
            .parse::<ImageRef>()
            .is_ok_and(|r| r.repository.starts_with(&format!("{text}/")));
    if !valid || text.is_empty() {
        return Err(format!(
            "insecure registry {text} is not HOST[:PORT] or a CIDR"
        ));
    }
    Ok(InsecureEntry::Registry(text.to_owned()))
}

/// Whether `registry` is one of `entries` (exact `host[:port]`, or an
/// address inside a CIDR); entries that do not parse match nothing.
pub(super) fn listed_insecure(entries: &[String], registry: &str) -> bool {
    entries
        .iter()
        .filter_map(|e| parse_insecure(e).ok())
        .any(|e| e.matches(registry))
}

/// The CAs trusted for `registry`: every `*.crt` in `DIR/HOST[:PORT]/` of
/// each certs dir, as DER certificates. A client certificate (`*.cert`,
/// `*.key`) is refused: wrun's registry client cannot present one.
pub(super) fn read_cas(
    certs_dirs: &[PathBuf],
    registry: &str,
) -> Result<Vec<Vec<u8>>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut cas = Vec::new();
    for base in certs_dirs {
        let dir = base.join(registry);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(source) => return Err(ConfigError::Read { path: dir, source }),
        };
        let mut names: Vec<PathBuf> = entries
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|source| ConfigError::Read {
                path: dir.clone(),
                source,
            })?;
        names.sort();
        for path in names {
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })?;
                    let certs: Vec<CertificateDer<'static>> =
                        CertificateDer::pem_slice_iter(&bytes)
                            .collect::<Result<_, _>>()
                            .map_err(|e| ConfigError::Invalid {
                                path: path.clone(),
                                what: format!("not PEM certificates: {e}"),
                            })?;
                    if certs.is_empty() {
                        return Err(ConfigError::Invalid {
                            path,
                            what: "holds no PEM certificate".into(),
                        });
                    }
                    cas.extend(certs.into_iter().map(|c| c.as_ref().to_vec()));
                }
                Some("cert" | "key") => {
                    return Err(ConfigError::Invalid {
                        path,
                        what: "a client certificate: wrun cannot present one to a registry (only *.crt CAs are read)".into(),
                    });
                }
                _ => {}
            }
        }
    }
    Ok(cas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keys_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        std::fs::write(
            &file,
            r#"{"auths":{},"default-registry":"reg.lan:5000","insecure-registries":["other.lan","10.1.0.0/16"]}"#,
        )
        .expect("seed");
        let c = RegistryConfig::load(dir.path()).expect("load");
        assert_eq!(c.default_registry.as_deref(), Some("reg.lan:5000"));
        let r = c.remote_ref("team/hello:1").expect("ref");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("reg.lan:5000", "team/hello")
        );
        let r = c.remote_ref("127.0.0.1:9/x").expect("ref");
        assert_eq!(r.registry, "127.0.0.1:9");
        let o = c.options(Some("flag.lan"), true);
        for plain in ["other.lan", "10.1.2.3:5000", "flag.lan"] {
            assert!(listed_insecure(&o.insecure, plain), "{plain}");
        }
        for not in [
            "other.lan:5000",
            "10.2.0.1",
            "reg.lan:5000",
            "sub.other.lan",
        ] {
            assert!(!listed_insecure(&o.insecure, not), "{not}");
        }
        // No default registry: the error says how to name one.
        let err = RegistryConfig::default()
            .remote_ref("hello:1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("HOST[:PORT]/hello:1"), "{err}");
        for bad in [
            r#"{"insecure-registries":["http://reg:5000"]}"#,
            r#"{"insecure-registries":"reg:5000"}"#,
            r#"{"insecure-registries":["10.0.0.0/40"]}"#,
            r#"{"default-registry":"hello"}"#,
            r#"{"default-registry":5}"#,
            "{nope",
        ] {
            std::fs::write(&file, bad).expect("seed");
            let err = RegistryConfig::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains("config.json"), "{bad}: {err}");
        }
    }

    #[test]
    fn cas_come_from_certs_d_and_client_certificates_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = dir.path().join("reg.lan:5000");
        std::fs::create_dir(&host).expect("mkdir");
        let dirs = vec![dir.path().to_path_buf()];
        assert!(read_cas(&dirs, "other:1").expect("none").is_empty());
        std::fs::write(host.join("ca.crt"), "not a certificate").expect("seed");
        assert!(read_cas(&dirs, "reg.lan:5000").is_err());
        std::fs::remove_file(host.join("ca.crt")).expect("rm");
        std::fs::write(host.join("client.cert"), "x").expect("seed");
        let err = read_cas(&dirs, "reg.lan:5000").unwrap_err().to_string();
        assert!(err.contains("client certificate"), "{err}");
    }
}
