//! Registry credentials: docker's `config.json` (`auths` → base64
//! `user:password`) read and written (0600, temp + rename), the login check
//! (`GET /v2/` with Basic, or the Bearer token flow), and the credentials a
//! pull or push sends, only to the registry they belong to.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::RegistryTokenType;
use oci_client::{Client, Reference, RegistryOperation};
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::{Map, Value};

use super::{RegistryError, RegistryOptions, Result, runtime};

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the credentials are for: a Bearer token's scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
    /// The registry's catalog (`GET /v2/_catalog`, for search).
    Catalog,
}

/// Errors of the credential file.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a docker config.json: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A docker `config.json`: the `auths` map is wrun's; every other key is
/// kept as it was read.
#[derive(Debug)]
pub struct AuthFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

/// The host an `auths` key names (`https://host/v1/` → `host`), as docker
/// matches a stored key against a registry.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

impl AuthFile {
    /// Reads `path`; a missing file is an empty one.
    pub fn read(path: &Path) -> Result<AuthFile, AuthFileError> {
        let doc = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(doc)) => doc,
                Ok(_) => {
                    return Err(AuthFileError::Invalid {
                        path: path.to_owned(),
                        what: "not a JSON object".into(),
                    });
                }
                Err(source) => {
                    return Err(AuthFileError::Parse {
                        path: path.to_owned(),
                        source,
                    });
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(AuthFileError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(AuthFile {
            path: path.to_owned(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }

    /// The credentials stored for `registry` (`host[:port]`): the entry
    /// whose key names exactly that host, nothing for any other.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, AuthFileError> {
        let Some(auths) = self.auths() else {
            return Ok(None);
        };
        let entry = auths
            .get(registry)
            .or_else(|| {
                auths
                    .iter()
                    .find(|(k, _)| key_host(k) == registry)
                    .map(|(_, v)| v)
            })
            .and_then(|e| e.get("auth"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty());
        let Some(encoded) = entry else {
            return Ok(None);
        };
        let invalid = |what: &str| AuthFileError::Invalid {
            path: self.path.clone(),
            what: format!("the auth of {registry} {what}"),
        };
        let decoded = BASE64
            .decode(encoded)
            .map_err(|_| invalid("is not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid("is not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("is not user:password"))?;
        Ok(Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }))
    }

    /// Stores `credentials` for `registry` (docker's entry: `auth` alone).
    pub fn set(&mut self, registry: &str, credentials: &Credentials) {
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let encoded = BASE64.encode(format!("{}:{}", credentials.username, credentials.password));
        if let Value::Object(auths) = auths {
            auths.retain(|k, _| k == registry || key_host(k) != registry);
            auths.insert(registry.to_owned(), serde_json::json!({ "auth": encoded }));
        }
    }

    /// Removes every entry for `registry`; whether there was one.
    pub fn remove(&mut self, registry: &str) -> bool {
        let Some(Value::Object(auths)) = self.doc.get_mut("auths") else {
            return false;
        };
        let before = auths.len();
        auths.retain(|k, _| k != registry && key_host(k) != registry);
        auths.len() != before
    }

    /// Writes the file: mode 0600 from its creation, a temporary file in
    /// the same directory renamed over it (never half written). The
    /// directory is created 0700 when missing.
    pub fn write(&self) -> Result<(), AuthFileError> {
        let err = |source| AuthFileError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        let mut text =
            serde_json::to_string_pretty(&Value::Object(self.doc.clone())).map_err(|e| {
                AuthFileError::Write {
                    path: self.path.clone(),
                    source: e.into(),
                }
            })?;
        text.push('\n');
        let name = self
            .path
            .file_name()
            .map_or_else(|| "config.json".into(), |n| n.to_string_lossy());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            // A umask cannot widen 0600, but an older file's mode is not ours.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(err)
    }
}

/// How a registry asks for credentials (its `GET /v2/` challenge).
enum Challenge {
    /// 200 without credentials: nothing to check.
    Open,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

fn scheme(options: &RegistryOptions, registry: &str) -> &'static str {
    if options.plain_http(registry) {
        "http"
    } else {
        "https"
    }
}

/// The client of wrun's own calls to `registry` (its `certs.d` CAs
/// trusted): redirects to another host drop `Authorization` (reqwest's
/// policy), so credentials reach only their host.
fn http_client(options: &RegistryOptions, registry: &str) -> Result<reqwest::Client> {
    options
        .http_client(registry)
        .map_err(|e| RegistryError::Login {
            message: format!("making an HTTP client: {e}"),
        })
}

async fn challenge(client: &reqwest::Client, url: &str) -> Result<Challenge> {
    let res = client
        .get(url)
        .send()
        .await
        .map_err(|e| RegistryError::Login {
            message: format!("Get \"{url}\": {e}"),
        })?;
    if res.status().is_success() {
        return Ok(Challenge::Open);
    }
    let header = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    for c in http_auth::ChallengeParser::new(header).flatten() {
        if c.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                c.params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if let Some(realm) = param("realm") {
                return Ok(Challenge::Bearer {
                    realm,
                    service: param("service"),
                });
            }
        } else if c.scheme.eq_ignore_ascii_case("basic") {
            return Ok(Challenge::Basic);
        }
    }
    Err(RegistryError::Login {
        message: format!(
            "login attempt to {url} failed with status: {} (and no Basic or Bearer challenge)",
            status_words(res.status())
        ),
    })
}

fn status_words(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
}

/// The realm a Bearer challenge names gets the credentials only when it is
/// the registry itself (same host and port; HTTPS unless the registry is
/// spoken to over plain HTTP).
fn check_realm(options: &RegistryOptions, registry: &str, realm: &str) -> Result<reqwest::Url> {
    let url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Login {
        message: format!("{registry}'s token realm {realm:?} is no URL: {e}"),
    })?;
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => String::new(),
    };
    let same_host = authority == registry;
    let scheme_ok =
        url.scheme() == "https" || (url.scheme() == "http" && options.plain_http(registry));
    if !same_host || !scheme_ok {
        return Err(RegistryError::Login {
            message: format!(
                "{registry} asks for its credentials at {realm}, another host or scheme: wrun sends a registry's credentials only to that registry"
            ),
        });
    }
    Ok(url)
}

/// Fetches a Bearer token from `realm` with `credentials` (Basic).
async fn token(
    client: &reqwest::Client,
    realm: reqwest::Url,
    service: Option<&str>,
    scopes: &[String],
    credentials: &Credentials,
) -> Result<String> {
    let mut req = client
        .get(realm.clone())
        .query(&[("account", credentials.username.as_str())]);
    if let Some(s) = service {
        req = req.query(&[("service", s)]);
    }
    // One `scope` a resource, as docker sends several.
    for s in scopes {
        req = req.query(&[("scope", s)]);
    }
    let res = req
        .basic_auth(&credentials.username, Some(&credentials.password))
        .send()
        .await
        .map_err(|e| RegistryError::Login {
            message: format!("Get \"{realm}\": {e}"),
        })?;
    let status = res.status();
    if !status.is_success() {
        return Err(RegistryError::Login {
            message: format!(
                "Get \"{realm}\": unauthorized: the token server answered {}",
                status_words(status)
            ),
        });
    }
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let body = res.bytes().await.map_err(|e| RegistryError::Login {
        message: format!("Get \"{realm}\": {e}"),
    })?;
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| RegistryError::Login {
        message: format!("Get \"{realm}\": the token answer is not JSON: {e}"),
    })?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| RegistryError::Login {
            message: format!("Get \"{realm}\": the token answer holds no token"),
        })
}

/// Checks `credentials` against `registry` as `docker login` does: `GET
/// /v2/` with Basic, or a token from the Bearer challenge's realm. Errors
/// in docker's words (`login attempt to URL failed with status: 401
/// Unauthorized`).
pub fn login(options: &RegistryOptions, registry: &str, credentials: &Credentials) -> Result<()> {
    let url = format!("{}://{registry}/v2/", scheme(options, registry));
    runtime()?.block_on(async {
        let client = http_client(options, registry)?;
        match challenge(&client, &url).await? {
            Challenge::Open => Ok(()),
            Challenge::Basic => {
                let res = client
                    .get(&url)
                    .basic_auth(&credentials.username, Some(&credentials.password))
                    .send()
                    .await
                    .map_err(|e| RegistryError::Login {
                        message: format!("Get \"{url}\": {e}"),
                    })?;
                if res.status().is_success() {
                    Ok(())
                } else {
                    Err(RegistryError::Login {
                        message: format!(
                            "login attempt to {url} failed with status: {}",
                            status_words(res.status())
                        ),
                    })
                }
            }
            Challenge::Bearer { realm, service } => {
                let realm = check_realm(options, registry, &realm)?;
                token(&client, realm, service.as_deref(), &[], credentials)
                    .await
                    .map(drop)
            }
        }
    })
}

/// What a pull or push of `repository` on `registry` sends: anonymous
/// without credentials; with them, Basic when the registry asks for Basic,
/// else a Bearer token fetched with them for `access` (its realm checked
/// as [`login`] checks it).
pub fn registry_auth(
    options: &RegistryOptions,
    registry: &str,
    repository: &str,
    credentials: Option<&Credentials>,
    access: Access,
) -> Result<RegistryAuth> {
    let scope = match access {
        Access::Pull => format!("repository:{repository}:pull"),
        Access::Push => format!("repository:{repository}:pull,push"),
        Access::Catalog => "registry:catalog:*".to_owned(),
    };
    auth_for_scopes(options, registry, credentials, vec![scope])
}

/// [`registry_auth`] for a push of `repository` that may mount blobs from
/// the repositories `mount_from` of the same registry: a Bearer token is
/// also scoped `repository:R:pull` for each (the registry checks the
/// source's pull access on a mount), as docker asks for it.
pub fn push_auth(
    options: &RegistryOptions,
    registry: &str,
    repository: &str,
    credentials: Option<&Credentials>,
    mount_from: &[String],
) -> Result<RegistryAuth> {
    let scopes = std::iter::once(format!("repository:{repository}:pull,push"))
        .chain(mount_from.iter().map(|r| format!("repository:{r}:pull")))
        .collect();
    auth_for_scopes(options, registry, credentials, scopes)
}

/// What a transfer sends (see [`registry_auth`]), a token asked for `scopes`.
fn auth_for_scopes(
    options: &RegistryOptions,
    registry: &str,
    credentials: Option<&Credentials>,
    scopes: Vec<String>,
) -> Result<RegistryAuth> {
    let Some(credentials) = credentials else {
        return Ok(RegistryAuth::Anonymous);
    };
    let url = format!("{}://{registry}/v2/", scheme(options, registry));
    runtime()?.block_on(async {
        let client = http_client(options, registry)?;
        Ok(match challenge(&client, &url).await? {
            Challenge::Open => RegistryAuth::Anonymous,
            Challenge::Basic => {
                RegistryAuth::Basic(credentials.username.clone(), credentials.password.clone())
            }
            Challenge::Bearer { realm, service } => {
                let realm = check_realm(options, registry, &realm)?;
                RegistryAuth::Bearer(
                    token(&client, realm, service.as_deref(), &scopes, credentials).await?,
                )
            }
        })
    })
}

/// Hands a transfer's credentials to `client` so that it never asks the
/// registry again how to send them. oci-client, given Basic credentials,
/// makes its own `GET /v2/` first and sends them to whatever token realm
/// that answer names, on any host: a registry that said Basic to
/// [`registry_auth`] and names a realm elsewhere the second time would get
/// them sent there. Basic is pinned for pull and push as
/// [`registry_auth`] found it; a Bearer token oci-client sends as given,
/// and anonymous transfers have nothing to leak.
pub(super) async fn pin_auth(client: &Client, reference: &Reference, auth: &RegistryAuth) {
    client
        .store_auth_if_needed(reference.resolve_registry(), auth)
        .await;
    if let RegistryAuth::Basic(user, password) = auth {
        for op in [RegistryOperation::Pull, RegistryOperation::Push] {
            let basic = RegistryTokenType::Basic(user.clone(), password.clone());
            client.tokens.insert(reference, op, basic).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader};
    use std::net::TcpListener;

    use super::*;

    fn alice() -> Credentials {
        Credentials {
            username: "alice".into(),
            password: "s3:cret".into(),
        }
    }

    #[test]
    fn the_auth_file_is_dockers_format_0600_and_keeps_other_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/config.json");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(
            &path,
            r#"{"auths":{"https://other.example/v1/":{"auth":"eDp5"}},"psFormat":"x"}"#,
        )
        .expect("seed");
        let mut f = AuthFile::read(&path).expect("read");
        f.set("127.0.0.1:5000", &alice());
        f.write().expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let doc: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert_eq!(doc["psFormat"], "x");
        assert_eq!(
            doc["auths"]["127.0.0.1:5000"]["auth"],
            "YWxpY2U6czM6Y3JldA=="
        );
        let f = AuthFile::read(&path).expect("read");
        assert_eq!(f.get("127.0.0.1:5000").expect("get"), Some(alice()));
        // A key with a scheme and path still names its host; no other host.
        assert_eq!(
            f.get("other.example").expect("get").map(|c| c.username),
            Some("x".into())
        );
        assert_eq!(f.get("127.0.0.1:5001").expect("get"), None);
        assert_eq!(f.get("127.0.0.1").expect("get"), None);
        let mut f = f;
        assert!(f.remove("127.0.0.1:5000"));
        assert!(!f.remove("127.0.0.1:5000"));
        f.write().expect("write");
        // Only config.json in the directory: the temporary file is gone.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["config.json"]);
    }

    #[test]
    fn a_malformed_auth_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").expect("seed");
        assert!(matches!(
            AuthFile::read(&path),
            Err(AuthFileError::Parse { .. })
        ));
        std::fs::write(&path, r#"{"auths":{"h:1":{"auth":"!!"}}}"#).expect("seed");
        let err = AuthFile::read(&path).expect("read").get("h:1").unwrap_err();
        assert!(err.to_string().contains("is not base64"), "{err}");
    }

    /// A registry whose `/v2/` asks for a Bearer token from `realm` (a path
    /// on itself, or `realm_elsewhere`), serving `/token` to alice only.
    fn bearer_registry(
        realm_elsewhere: Option<&str>,
        connections: usize,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let realm = match realm_elsewhere {
            Some(r) => r.to_owned(),
            None => format!("http://{host}/token"),
        };
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            listener.set_nonblocking(false).expect("blocking");
            for stream in listener.incoming().take(connections) {
                let Ok(mut stream) = stream else { break };
                let mut head = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let answer = if head.starts_with("GET /v2/ ") && !head.contains("Bearer good") {
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                } else if head.starts_with("GET /token?") {
                    let good = format!("Basic {}", BASE64.encode("alice:s3:cret"));
                    if head.contains(&good) {
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"token\":\"good\"}".to_owned()
                    } else {
                        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                    }
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_owned()
                };
                seen.push(head);
                let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
            }
            seen
        });
        (host, handle)
    }

    #[test]
    fn bearer_login_fetches_a_token_from_the_realm_with_basic() {
        let (host, server) = bearer_registry(None, 4);
        let options = RegistryOptions::default();
        let auth =
            registry_auth(&options, &host, "team/x", Some(&alice()), Access::Push).expect("token");
        assert!(
            matches!(&auth, RegistryAuth::Bearer(t) if t == "good"),
            "{auth:?}"
        );
        // A wrong password: the token server's refusal, exit-worthy.
        let wrong = Credentials {
            password: "no".into(),
            ..alice()
        };
        let err = login(&options, &host, &wrong).unwrap_err().to_string();
        assert!(err.contains("unauthorized"), "{err}");
        let seen = server.join().expect("server");
        assert!(
            seen[1].contains("scope=repository%3Ateam%2Fx%3Apull%2Cpush")
                && seen[1].contains("service=test"),
            "{seen:?}"
        );
    }

    #[test]
    fn a_push_that_may_mount_asks_a_token_that_can_pull_the_sources_too() {
        let (host, server) = bearer_registry(None, 2);
        let from = ["team/a".to_owned(), "other/b".to_owned()];
        let auth = push_auth(
            &RegistryOptions::default(),
            &host,
            "team/x",
            Some(&alice()),
            &from,
        )
        .expect("token");
        assert!(
            matches!(&auth, RegistryAuth::Bearer(t) if t == "good"),
            "{auth:?}"
        );
        let seen = server.join().expect("server");
        let request = seen[1].lines().next().unwrap_or_default();
        for scope in [
            "scope=repository%3Ateam%2Fx%3Apull%2Cpush",
            "scope=repository%3Ateam%2Fa%3Apull&",
            "scope=repository%3Aother%2Fb%3Apull ",
        ] {
            assert!(request.contains(scope), "{scope} in {request}");
        }
    }

    #[test]
    fn credentials_never_go_to_a_token_realm_on_another_host() {
        let (host, server) = bearer_registry(Some("http://127.0.0.2:9/token"), 3);
        let err = login(&RegistryOptions::default(), &host, &alice())
            .unwrap_err()
            .to_string();
        assert!(err.contains("only to that registry"), "{err}");
        // Let the server's loop end: it waits for three connections.
        for _ in 0..2 {
            let _ = std::net::TcpStream::connect(&host);
        }
        let seen = server.join().expect("server");
        assert!(
            seen.iter().all(|h| !h.contains("Authorization")),
            "{seen:?}"
        );
    }
}
