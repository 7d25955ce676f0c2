//! The registry client: pull an image from an OCI distribution registry into
//! the store, push a stored image to one (blob-level calls of `oci-client`).
//!
//! Layout: this module parses where an image lives ([`RemoteRef`]) and makes
//! the client ([`RegistryOptions::client`]: TLS unless the registry is on
//! loopback or named insecure); `pull.rs` and `push.rs` are the two
//! transfers; `auth.rs` keeps credentials (docker's `config.json`), checks
//! them (`login`) and turns them into what a transfer sends. See
//! docs/registry.md.

mod auth;
mod config;
mod progress;
mod pull;
mod push;
mod search;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::digest::Digest;
use crate::error::ImageError;
use crate::reference::{DEFAULT_TAG, ImageRef};

pub use auth::{Access, AuthFile, AuthFileError, Credentials, login, push_auth, registry_auth};
pub use config::{
    ConfigError, DOCKER_CERTS_DIR, Reach, RegistryConfig, Transport, is_registry_host,
    wrun_config_dir,
};
pub use progress::{ProgressSink, TransferEvent};
pub use pull::{PullReport, pull};
pub use push::{LayerPush, PushReport, mount_sources, push};
pub use search::{DEFAULT_LIMIT, MAX_LIMIT, SearchFilters, SearchQuery, SearchResult, search};

/// What can go wrong talking to a registry; each names the reference.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(
        "{reference} names no registry: name one, as in HOST[:PORT]/{reference} (or set default-registry in wrun's config.json)"
    )]
    NoRegistry { reference: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A registry whose TLS certificate failed the check, and how to trust it.
    #[error(
        "Get \"https://{registry}/v2/\": {registry}'s TLS certificate is not trusted ({reason}): put its CA in {certs_dir}/{registry}/ca.crt, or list {registry} in insecure-registries{config} (or pass --insecure) to skip the check"
    )]
    Untrusted {
        registry: String,
        reason: String,
        certs_dir: String,
        config: String,
    },
    /// A registry that could not be reached at all.
    #[error("Get \"{url}\": {reason}")]
    Unreachable { url: String, reason: String },
    /// A search a registry cannot answer, or a search's bad input.
    #[error("{message}")]
    Search { message: String },
    /// Docker's words for a tag or digest the registry does not have.
    #[error("manifest for {reference} not found: manifest unknown: {message}")]
    ManifestUnknown { reference: String, message: String },
    /// Docker's words for credentials the registry refused.
    #[error("unauthorized: {message}")]
    Unauthorized { reference: String, message: String },
    /// Docker's words for an anonymous request a registry refused: `Head
    /// "URL": ` before them for a pull, nothing for a push.
    #[error("{prefix}no basic auth credentials")]
    NoCredentials { prefix: String },
    /// A login refused or not completed (docker's words where it has them).
    #[error("{message}")]
    Login { message: String },
    #[error(transparent)]
    AuthFile(#[from] AuthFileError),
    #[error("{reference}: the registry answered: {message}")]
    Registry { reference: String, message: String },
    #[error("{what} of {reference}: {source}")]
    Transfer {
        what: String,
        reference: String,
        #[source]
        source: OciDistributionError,
    },
    /// Docker's words for a push of a name the store lacks.
    #[error("An image does not exist locally with the tag: {repository}")]
    NotStored { repository: String },
    #[error(
        "{reference} has no WebAssembly entry (wasip1/wasm or wasi/wasm) in its index; it offers {offered}"
    )]
    NoWasmPlatform { reference: String, offered: String },
    #[error("{what} of {reference} is larger than its descriptor's {expected} bytes")]
    TooLarge {
        what: String,
        reference: String,
        expected: u64,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The error of a call to the registry: its `errors` body in one line
    /// when it sent one (`MANIFEST_UNKNOWN` in docker's words).
    fn from_call(what: &str, reference: &RemoteRef, source: OciDistributionError) -> Self {
        let reference = reference.to_string();
        match &source {
            OciDistributionError::RegistryError { envelope, .. } => {
                if let Some(e) = envelope
                    .errors
                    .iter()
                    .find(|e| e.code == oci_client::errors::OciErrorCode::ManifestUnknown)
                {
                    return RegistryError::ManifestUnknown {
                        reference,
                        message: e.message.clone(),
                    };
                }
                if let Some(e) = envelope
                    .errors
                    .iter()
                    .find(|e| e.code == oci_client::errors::OciErrorCode::Unauthorized)
                {
                    return RegistryError::Unauthorized {
                        reference,
                        message: e.message.clone(),
                    };
                }
                let message = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                RegistryError::Registry { reference, message }
            }
            OciDistributionError::RequestError(e)
                if e.status() == Some(reqwest::StatusCode::UNAUTHORIZED) =>
            {
                RegistryError::Unauthorized {
                    reference,
                    message: "authentication required".into(),
                }
            }
            OciDistributionError::UnauthorizedError { .. } => RegistryError::Unauthorized {
                reference,
                message: "authentication required".into(),
            },
            OciDistributionError::ImageManifestNotFoundError(message) => {
                RegistryError::ManifestUnknown {
                    reference,
                    message: message.clone(),
                }
            }
            // One line, whatever the registry sent with its 5xx: its
            // `errors`, else its text (an HTML page's lines joined), cut short.
            OciDistributionError::ServerError { code, message, .. } => {
                let said = match serde_json::from_str::<oci_client::errors::OciEnvelope>(message) {
                    Ok(envelope) if !envelope.errors.is_empty() => envelope
                        .errors
                        .iter()
                        .map(|e| {
                            let code = serde_json::to_value(&e.code)
                                .ok()
                                .and_then(|c| c.as_str().map(str::to_owned))
                                .unwrap_or_else(|| format!("{:?}", e.code));
                            format!("{code}: {}", e.message)
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                    _ => message.split_whitespace().collect::<Vec<_>>().join(" "),
                };
                let said = if said.chars().count() > 200 {
                    said.chars().take(200).chain(['…']).collect()
                } else {
                    said
                };
                let status = reqwest::StatusCode::from_u16(*code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .map_or_else(|| code.to_string(), |r| format!("{code} {r}"));
                RegistryError::Registry {
                    reference,
                    message: if said.is_empty() {
                        format!("{what}: {status}")
                    } else {
                        format!("{what}: {status}: {said}")
                    },
                }
            }
            _ => RegistryError::Transfer {
                what: what.to_owned(),
                reference,
                source,
            },
        }
    }
}

/// A registry's refusal of an anonymous transfer in docker's words: `Head
/// "URL": no basic auth credentials` for a pull, the bare words for a push.
fn anonymous_refusal(
    error: RegistryError,
    options: &RegistryOptions,
    reference: &RemoteRef,
    access: Access,
) -> RegistryError {
    if !matches!(error, RegistryError::Unauthorized { .. })
        || !matches!(options.auth, RegistryAuth::Anonymous)
    {
        return error;
    }
    let prefix = match access {
        Access::Push | Access::Catalog => String::new(),
        Access::Pull => {
            let at = match (&reference.digest, &reference.tag) {
                (Some(d), _) => d.to_string(),
                (None, tag) => tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned()),
            };
            format!(
                "Head \"{}://{}/v2/{}/manifests/{at}\": ",
                if options.plain_http(&reference.registry) {
                    "http"
                } else {
                    "https"
                },
                reference.registry,
                reference.repository
            )
        }
    };
    RegistryError::NoCredentials { prefix }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// How long a registry may send nothing (no answer, or no byte of a body
/// under way) before the transfer fails: a registry that stops mid-blob
/// ends the pull with an error instead of holding it forever.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long connecting to a registry may take (docker's dialer's 30 s).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where an image lives: the registry (`host[:port]`), the repository path
/// on it, and the tag or digest (docker's grammar; `latest` when neither).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RemoteRef {
    /// Parses `HOST[:PORT]/PATH[:TAG][@DIGEST]`; a name without a registry
    /// host is refused (no default registry yet).
    pub fn parse(reference: &str) -> Result<RemoteRef> {
        let parsed: ImageRef = reference.parse()?;
        RemoteRef::from_image_ref(&parsed)
    }

    pub fn from_image_ref(r: &ImageRef) -> Result<RemoteRef> {
        let Some(registry) = r.registry() else {
            return Err(RegistryError::NoRegistry {
                reference: r.to_string(),
            });
        };
        let repository = r.repository[registry.len() + 1..].to_owned();
        Ok(RemoteRef {
            registry: registry.to_owned(),
            repository,
            tag: match (&r.tag, &r.digest) {
                (None, None) => Some(DEFAULT_TAG.to_owned()),
                (tag, _) => tag.clone(),
            },
            digest: r.digest,
        })
    }

    /// The name an image pulled by this reference is stored under
    /// (`host/path:tag`; none when pulled by digest alone, as docker).
    pub fn stored_name(&self) -> Option<ImageRef> {
        self.tag.as_ref().map(|tag| ImageRef {
            repository: format!("{}/{}", self.registry, self.repository),
            tag: Some(tag.clone()),
            digest: None,
        })
    }

    /// oci-client's reference (the digest wins over the tag, as in a pull).
    fn client_ref(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.to_string(),
            ),
            (None, tag) => Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned()),
            ),
        }
    }

    /// The same repository at `digest`.
    fn at(&self, digest: &Digest) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }
}

impl std::fmt::Display for RemoteRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// How to reach registries. Defaults: TLS with the system's roots for every
/// registry but loopback ones, anonymous, four layers at once.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) spoken to over plain HTTP besides
    /// loopback ones (docker's `insecure-registries`).
    pub insecure: Vec<String>,
    pub auth: RegistryAuth,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Where pull and push report each layer's progress.
    pub progress: ProgressSink,
    /// Directories holding `HOST[:PORT]/*.crt`: the CAs trusted for that
    /// registry beside the system's roots (docker's `certs.d`), in order.
    pub certs_dirs: Vec<PathBuf>,
    /// The configuration file, named by errors that say how to change it.
    pub config_file: Option<PathBuf>,
    /// How each registry was found to be reached ([`RegistryOptions::reach`]).
    pub reached: BTreeMap<String, Reach>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            auth: RegistryAuth::Anonymous,
            concurrency: 4,
            progress: ProgressSink::default(),
            certs_dirs: Vec::new(),
            config_file: None,
            reached: BTreeMap::new(),
        }
    }
}

impl RegistryOptions {
    /// Whether `registry` is spoken to over plain HTTP: as
    /// [`RegistryOptions::reach`] found; before that, a loopback address
    /// (`127.0.0.0/8`, `::1`, `localhost`) or one named insecure.
    pub fn plain_http(&self, registry: &str) -> bool {
        match self.reached.get(registry) {
            Some(r) => r.transport == Transport::Http,
            None => self.named_insecure(registry) || is_loopback(registry),
        }
    }

    /// A client for `registry`.
    fn client(&self, registry: &str) -> Client {
        install_crypto_provider();
        let protocol = if self.plain_http(registry) {
            ClientProtocol::HttpsExcept(vec![registry.to_owned()])
        } else {
            ClientProtocol::Https
        };
        let reach = self.reached.get(registry);
        Client::new(ClientConfig {
            protocol,
            accept_invalid_certificates: reach.map_or(self.named_insecure(registry), |r| {
                r.transport == Transport::HttpsUnchecked
            }),
            extra_root_certificates: reach
                .map(|r| {
                    r.cas
                        .iter()
                        .map(|der| Certificate {
                            encoding: CertificateEncoding::Der,
                            data: der.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            max_concurrent_download: self.concurrency.max(1),
            max_concurrent_upload: self.concurrency.max(1),
            // A blob in one PUT streaming the file (after its POST), not a
            // PATCH per 4 MiB, each held in memory and waited on in turn.
            use_monolithic_push: true,
            read_timeout: Some(READ_TIMEOUT),
            connect_timeout: Some(CONNECT_TIMEOUT),
            ..ClientConfig::default()
        })
    }
}

/// `host[:port]` names a loopback host.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// rustls over ring (the aws-lc default needs cmake to build): installed
/// once as the process default, which reqwest's no-provider build uses.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Deprecated only to steer users to aws-lc, which wrun cannot build
        // without cmake. Err: another provider came first; that one serves.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A runtime for one transfer (the CLI and tests are synchronous; the
/// daemon will call the async parts from its own).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| RegistryError::Io {
            what: "starting the registry client".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_registry_repository_tag_and_digest() {
        let r = RemoteRef::parse("127.0.0.1:5000/team/hello:1.0").expect("parse");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/hello", Some("1.0"))
        );
        let r = RemoteRef::parse("localhost/hello").expect("parse");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("localhost", Some("latest"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = RemoteRef::parse(&format!("reg.example.com/a/b@{d}")).expect("parse");
        assert_eq!(
            (r.tag.clone(), r.digest.map(|d| d.to_string())),
            (None, Some(d))
        );
        assert!(r.stored_name().is_none());
        assert!(matches!(
            RemoteRef::parse("hello:1"),
            Err(RegistryError::NoRegistry { .. })
        ));
        assert!(RemoteRef::parse("127.0.0.1:5000/UPPER:1").is_err());
    }

    #[test]
    fn plain_http_only_for_loopback_and_registries_named_insecure() {
        let o = RegistryOptions {
            insecure: vec!["reg.lan:5000".into()],
            ..RegistryOptions::default()
        };
        for plain in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "[::1]:5000",
            "reg.lan:5000",
        ] {
            assert!(o.plain_http(plain), "{plain}");
        }
        for tls in [
            "reg.lan",
            "example.com:5000",
            "10.0.0.1:5000",
            "localhost.evil.com",
            "[::2]:5000",
        ] {
            assert!(!o.plain_http(tls), "{tls}");
        }
    }
}
