//! The registry routes' shapes: docker's `AuthConfig` (the `X-Registry-Auth`
//! header of a pull or push, the body of `POST /auth`), `POST /auth`'s
//! answer, and the JSON progress lines of a pull or push.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};

/// Credentials as docker's clients send them: `X-Registry-Auth` is this as
/// base64url JSON; `POST /auth` takes it as its body. `auth` is
/// base64(`user:password`), as in a `config.json` entry.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AuthConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The registry the credentials are for (`HOST[:PORT]`, or docker's
    /// `https://HOST/v1/` forms).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// An OAuth refresh token a daemon handed out at login (wrun hands out
    /// none and takes none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

/// The URL-safe and the standard alphabets both decode (docker's clients
/// write URL-safe with padding; some others write the standard one), with
/// or without padding.
fn engine(alphabet: &base64::alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

impl AuthConfig {
    /// Reads an `X-Registry-Auth` value: base64 (URL-safe or standard) of
    /// the JSON object.
    pub fn from_header(value: &str) -> Result<AuthConfig, String> {
        let value = value.trim();
        let bytes = engine(&base64::alphabet::URL_SAFE)
            .decode(value)
            .or_else(|_| engine(&base64::alphabet::STANDARD).decode(value))
            .map_err(|e| format!("X-Registry-Auth is not base64: {e}"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("X-Registry-Auth is not an auth config JSON object: {e}"))
    }

    /// The `X-Registry-Auth` value for these credentials (base64url JSON,
    /// as the docker client writes it).
    pub fn to_header(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    /// The user name and password: the fields, else the `auth` pair;
    /// `None` when neither gives a user name.
    pub fn user_password(&self) -> Result<Option<(String, String)>, String> {
        if !self.username.is_empty() {
            return Ok(Some((self.username.clone(), self.password.clone())));
        }
        if self.auth.is_empty() {
            return Ok(None);
        }
        let decoded = engine(&base64::alphabet::STANDARD)
            .decode(self.auth.trim())
            .map_err(|_| "the auth of the auth config is not base64".to_string())?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| "the auth of the auth config is not UTF-8".to_string())?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| "the auth of the auth config is not user:password".to_string())?;
        Ok(Some((user.to_owned(), password.to_owned())))
    }
}

/// `POST /auth`'s answer (dockerd's keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AuthResponse {
    // First: dockerd writes the keys in this order.
    /// Always empty from wrun: it hands out no tokens.
    #[serde(rename = "IdentityToken")]
    pub identity_token: String,
    #[serde(rename = "Status")]
    pub status: String,
}

/// Byte counts of a layer in progress (dockerd sends `{}` on the lines
/// that are not byte counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProgressDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// A failure told in the stream, after the 200.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
}

/// A push's result, in the `aux` of its last line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResult {
    #[serde(rename = "Tag")]
    pub tag: String,
    #[serde(rename = "Digest")]
    pub digest: String,
    #[serde(rename = "Size")]
    pub size: u64,
}

/// One line of a pull's (`POST /images/create?fromImage=`) or a push's
/// (`POST /images/{name}/push`) answer, dockerd's `jsonmessage`: a
/// `status` (per layer with its short `id`), or an `error`, or a push's
/// `aux`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ProgressMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<PushResult>,
}

impl ProgressMessage {
    /// A line of its own: `{"status": …}`.
    pub fn status(text: impl Into<String>) -> Self {
        ProgressMessage {
            status: Some(text.into()),
            ..Self::default()
        }
    }

    /// `Pulling from PATH` for the tag or digest (dockerd's first line).
    pub fn titled(text: impl Into<String>, id: impl Into<String>) -> Self {
        ProgressMessage {
            status: Some(text.into()),
            id: Some(id.into()),
            ..Self::default()
        }
    }

    /// A layer's line (`Pull complete`, `Pushed`, …), with dockerd's empty
    /// `progressDetail`.
    pub fn layer(text: impl Into<String>, id: impl Into<String>) -> Self {
        ProgressMessage {
            status: Some(text.into()),
            id: Some(id.into()),
            progress_detail: Some(ProgressDetail::default()),
            ..Self::default()
        }
    }

    /// The failure that ends the stream.
    pub fn failed(message: impl Into<String>) -> Self {
        let message = message.into();
        ProgressMessage {
            error_detail: Some(ErrorDetail {
                message: message.clone(),
            }),
            error: Some(message),
            ..Self::default()
        }
    }

    /// A push's last line.
    pub fn pushed(result: PushResult) -> Self {
        ProgressMessage {
            progress_detail: Some(ProgressDetail::default()),
            aux: Some(result),
            ..Self::default()
        }
    }

    /// A layer's byte count so far (`Downloading`, `Pushing`): a terminal
    /// draws it as a bar.
    pub fn bytes(text: impl Into<String>, id: impl Into<String>, current: u64, total: u64) -> Self {
        ProgressMessage {
            status: Some(text.into()),
            id: Some(id.into()),
            progress_detail: Some(ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            ..Self::default()
        }
    }

    /// The line as the docker client prints it to no terminal (`ID:
    /// status` or the status alone); `None` for a line it leaves out there
    /// (byte counts, a push's `aux`).
    pub fn plain(&self) -> Option<String> {
        if self
            .progress_detail
            .as_ref()
            .is_some_and(|p| p.current.is_some())
        {
            return None;
        }
        let status = self.status.as_deref()?;
        Some(match &self.id {
            Some(id) => format!("{id}: {status}"),
            None => status.to_owned(),
        })
    }

    /// One JSON line, newline-terminated.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// What a pull did, as its progress lines tell it.
#[derive(Debug, Clone)]
pub struct PullSummary {
    /// The tag pulled, or the whole reference when pulled by digest
    /// (dockerd's `id` of the first line).
    pub at: String,
    /// The repository's path on its registry.
    pub path: String,
    /// Each layer's short ID (12 hex digits of its digest), base first, and
    /// whether it was fetched (false: the store had it).
    pub layers: Vec<(String, bool)>,
    /// The manifest's digest.
    pub digest: String,
    /// The reference as pulled, for the `Status:` line.
    pub name: String,
    /// The store had this image under this name already.
    pub up_to_date: bool,
}

impl PullSummary {
    /// dockerd 20.10's lines for it: `Pulling from`, then (when a layer was
    /// fetched: dockerd lists none for an image it had, under any name)
    /// each layer's `Pulling fs layer` or `Already exists`,
    /// each fetched one's `Verifying Checksum` and `Download complete`,
    /// their `Pull complete`; then `Digest:` and `Status:`.
    pub fn messages(&self) -> Vec<ProgressMessage> {
        let mut lines = vec![ProgressMessage::titled(
            format!("Pulling from {}", self.path),
            &self.at,
        )];
        if !self.up_to_date && self.layers.iter().any(|(_, fetched)| *fetched) {
            for (layer, fetched) in &self.layers {
                let first = if *fetched {
                    "Pulling fs layer"
                } else {
                    "Already exists"
                };
                lines.push(ProgressMessage::layer(first, layer));
            }
            let fetched = self.layers.iter().filter(|(_, f)| *f);
            for (layer, _) in fetched.clone() {
                lines.push(ProgressMessage::layer("Verifying Checksum", layer));
                lines.push(ProgressMessage::layer("Download complete", layer));
            }
            for (layer, _) in fetched {
                lines.push(ProgressMessage::layer("Pull complete", layer));
            }
        }
        lines.push(ProgressMessage::status(format!("Digest: {}", self.digest)));
        lines.push(ProgressMessage::status(format!(
            "Status: {} for {}",
            if self.up_to_date {
                "Image is up to date"
            } else {
                "Downloaded newer image"
            },
            self.name
        )));
        lines
    }
}

/// What a push did, as its progress lines tell it (after dockerd's first
/// line, `The push refers to repository [HOST/PATH]`).
#[derive(Debug, Clone)]
pub struct PushSummary {
    /// Each layer's short ID, top first (as dockerd lists them), and
    /// whether it was uploaded (false: the registry had it).
    pub layers: Vec<(String, bool)>,
    pub result: PushResult,
}

impl PushSummary {
    /// `The push refers to repository [NAME]`, the line before the others.
    pub fn first_line(repository: &str) -> ProgressMessage {
        ProgressMessage::status(format!("The push refers to repository [{repository}]"))
    }

    /// dockerd's lines: each layer's `Preparing`, then `Pushed` or `Layer
    /// already exists`, then `TAG: digest: D size: N` and the `aux` line.
    pub fn messages(&self) -> Vec<ProgressMessage> {
        let mut lines: Vec<ProgressMessage> = self
            .layers
            .iter()
            .map(|(layer, _)| ProgressMessage::layer("Preparing", layer))
            .collect();
        for (layer, uploaded) in &self.layers {
            let how = if *uploaded {
                "Pushed"
            } else {
                "Layer already exists"
            };
            lines.push(ProgressMessage::layer(how, layer));
        }
        lines.push(ProgressMessage::status(format!(
            "{}: digest: {} size: {}",
            self.result.tag, self.result.digest, self.result.size
        )));
        lines.push(ProgressMessage::pushed(self.result.clone()));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_headers_decode_from_either_alphabet_with_or_without_padding() {
        let config = AuthConfig {
            username: "alice".into(),
            password: "s?cr>t~".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..AuthConfig::default()
        };
        let header = config.to_header();
        assert_eq!(AuthConfig::from_header(&header).unwrap(), config);
        assert_eq!(
            AuthConfig::from_header(header.trim_end_matches('=')).unwrap(),
            config
        );
        let standard =
            base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&config).unwrap());
        assert_eq!(AuthConfig::from_header(&standard).unwrap(), config);
        // The docker client's anonymous header.
        assert_eq!(
            AuthConfig::from_header("e30=").unwrap(),
            AuthConfig::default()
        );
        assert!(AuthConfig::from_header("!!!").is_err());
        assert!(AuthConfig::from_header("WzFd").is_err()); // [1]
        // The password is never shown.
        assert!(!format!("{config:?}").contains("s?cr"));
    }

    #[test]
    fn the_auth_pair_stands_for_the_user_and_password() {
        let c = AuthConfig {
            auth: "YWxpY2U6c2VjcmV0".into(),
            ..AuthConfig::default()
        };
        assert_eq!(
            c.user_password().unwrap(),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(AuthConfig::default().user_password().unwrap(), None);
        let bad = AuthConfig {
            auth: "bm9jb2xvbg==".into(),
            ..AuthConfig::default()
        };
        assert!(bad.user_password().is_err());
    }

    #[test]
    fn a_pull_tells_each_layer_unless_the_image_was_stored() {
        let mut pull = PullSummary {
            at: "1.0".into(),
            path: "s/big".into(),
            layers: vec![("aaa".into(), false), ("bbb".into(), true)],
            digest: "sha256:d".into(),
            name: "127.0.0.1:5000/s/big:1.0".into(),
            up_to_date: false,
        };
        let plain = |p: &PullSummary| {
            p.messages()
                .iter()
                .filter_map(ProgressMessage::plain)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            plain(&pull),
            [
                "1.0: Pulling from s/big",
                "aaa: Already exists",
                "bbb: Pulling fs layer",
                "bbb: Verifying Checksum",
                "bbb: Download complete",
                "bbb: Pull complete",
                "Digest: sha256:d",
                "Status: Downloaded newer image for 127.0.0.1:5000/s/big:1.0",
            ]
        );
        pull.up_to_date = true;
        assert_eq!(
            plain(&pull),
            [
                "1.0: Pulling from s/big",
                "Digest: sha256:d",
                "Status: Image is up to date for 127.0.0.1:5000/s/big:1.0",
            ]
        );
        // Every layer stored (the image under another name): none listed.
        pull.up_to_date = false;
        pull.layers[1].1 = false;
        assert_eq!(
            plain(&pull),
            [
                "1.0: Pulling from s/big",
                "Digest: sha256:d",
                "Status: Downloaded newer image for 127.0.0.1:5000/s/big:1.0",
            ]
        );
    }

    #[test]
    fn a_push_prepares_each_layer_then_tells_its_fate_and_the_digest() {
        let push = PushSummary {
            layers: vec![("top".into(), true), ("base".into(), false)],
            result: PushResult {
                tag: "1.0".into(),
                digest: "sha256:d".into(),
                size: 9,
            },
        };
        let lines: Vec<String> = push
            .messages()
            .iter()
            .filter_map(ProgressMessage::plain)
            .collect();
        assert_eq!(
            lines,
            [
                "top: Preparing",
                "base: Preparing",
                "top: Pushed",
                "base: Layer already exists",
                "1.0: digest: sha256:d size: 9",
            ]
        );
        assert_eq!(push.messages().last().unwrap().aux, Some(push.result));
    }

    #[test]
    fn progress_lines_are_dockerds_json() {
        assert_eq!(
            String::from_utf8(ProgressMessage::titled("Pulling from s/hello", "1.0").to_line())
                .unwrap(),
            "{\"status\":\"Pulling from s/hello\",\"id\":\"1.0\"}\n"
        );
        assert_eq!(
            String::from_utf8(ProgressMessage::layer("Pull complete", "b7b8a692deff").to_line())
                .unwrap(),
            "{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"b7b8a692deff\"}\n"
        );
        assert_eq!(
            String::from_utf8(ProgressMessage::failed("boom").to_line()).unwrap(),
            "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\n"
        );
        let aux = ProgressMessage::pushed(PushResult {
            tag: "1.0".into(),
            digest: "sha256:ab".into(),
            size: 731,
        });
        assert_eq!(
            String::from_utf8(aux.to_line()).unwrap(),
            "{\"progressDetail\":{},\"aux\":{\"Tag\":\"1.0\",\"Digest\":\"sha256:ab\",\"Size\":731}}\n"
        );
        assert_eq!(aux.plain(), None);
        let bytes = ProgressMessage::bytes("Downloading", "ab", 5, 10);
        assert_eq!(
            String::from_utf8(bytes.to_line()).unwrap(),
            "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":5,\"total\":10},\"id\":\"ab\"}\n"
        );
        assert_eq!(bytes.plain(), None);
        assert_eq!(
            ProgressMessage::layer("Pushed", "ab").plain().as_deref(),
            Some("ab: Pushed")
        );
    }
}
