//! `POST /build` (`DOCKER_BUILDKIT=0 docker build`, `wrun build -H`): the
//! request body, a tar of the build context, unpacked confined into a temp
//! directory under the store, built there by wrun-bundler, its progress
//! streamed as dockerd's classic builder streams it (JSON lines).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cap_std::fs::Dir;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::mpsc;
use wrun_bundler::run_step::StepLimits;
use wrun_bundler::{BuildError, BuildEvent, BuildRequest, CachePolicy, ProgressSink};
use wrun_image::ImageRef;
use wrun_image::unpack::{UnpackBudget, UnpackLimits, apply_layer};

use crate::error::DaemonError;
use crate::http::{Body, Query, streaming};
use crate::state::Daemon;

/// One line of `POST /build`'s answer, as dockerd's classic builder
/// writes them: progress (`stream`), the image built (`aux`), or the
/// failure that ends the build (`error` and `errorDetail`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(any(test, feature = "openapi"), derive(utoipa::ToSchema))]
pub struct BuildMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<BuildAux>,
    #[serde(
        default,
        rename = "errorDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_detail: Option<BuildErrorDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The image a build stored.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(any(test, feature = "openapi"), derive(utoipa::ToSchema))]
pub struct BuildAux {
    #[serde(rename = "ID")]
    pub id: String,
}

/// Why a build failed, in one line.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(any(test, feature = "openapi"), derive(utoipa::ToSchema))]
pub struct BuildErrorDetail {
    /// A failed `RUN` step's exit code, which the docker client exits with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    pub message: String,
}

impl BuildMessage {
    fn stream(text: impl Into<String>) -> Self {
        BuildMessage {
            stream: Some(text.into()),
            ..Default::default()
        }
    }

    /// The message as one line of the answer.
    fn line(&self) -> Bytes {
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }
}

/// The largest context a build takes, uncompressed (dockerd has no cap;
/// the store's unpack limit for one image is the same figure).
const MAX_CONTEXT_BYTES: u64 = 16 << 30;

/// A build request's query, checked before the body is read.
#[derive(Debug, Default)]
struct BuildParams {
    /// `t`: the names the image gets (repeatable).
    tags: Vec<ImageRef>,
    /// `dockerfile`: the build file's path inside the context, made
    /// relative; `None`: wrun's defaults (wrun.toml, Wasmfile, Dockerfile).
    dockerfile: Option<PathBuf>,
    build_args: BTreeMap<String, String>,
    /// The `SOURCE_DATE_EPOCH` build argument (BuildKit's): the time of
    /// every file and of the config.
    source_date_epoch: Option<u64>,
    target: Option<String>,
    quiet: bool,
    /// `labels`: put on the image by `LABEL` lines added to the end of the
    /// Dockerfile, one a label, as dockerd's classic builder adds them.
    labels: BTreeMap<String, String>,
    /// `memory`: the memory limit of each `RUN` step, as dockerd's limit
    /// of each `RUN` container.
    memory: Option<u64>,
    /// `networkmode=host`: `RUN` steps get the host's network; none
    /// otherwise (`default`, `none`, `bridge`).
    network_host: bool,
    /// `nocache` and `pull`: the build cache's policy (`--no-cache`,
    /// `--pull`).
    cache: CachePolicy,
}

impl BuildParams {
    fn parse(query: &Query) -> Result<Self, DaemonError> {
        if let Some(remote) = query.get("remote").filter(|r| !r.is_empty()) {
            return Err(DaemonError::invalid(format!(
                "remote={remote}: wrun builds only the context sent as the request body; fetch it and send it (docker build DIR, or docker build - < CONTEXT.tar)"
            )));
        }
        if let Some(v) = query.get("version").filter(|v| !v.is_empty() && *v != "1") {
            return Err(DaemonError::invalid(format!(
                "builder version {v:?}: wrun serves the classic builder's API only (version=1); build with DOCKER_BUILDKIT=0"
            )));
        }
        let tags = query
            .all("t")
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<ImageRef>()
                    .map(|r| r.tagged())
                    .map_err(|e| DaemonError::invalid(format!("invalid tag {t:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dockerfile = match query.get("dockerfile").filter(|f| !f.is_empty()) {
            None => None,
            Some(f) => Some(inside_context(f).ok_or_else(|| {
                DaemonError::Internal(format!("forbidden path outside the build context: {f}"))
            })?),
        };
        let mut build_args = BTreeMap::new();
        let mut source_date_epoch = None;
        for (k, v) in json_map::<Option<String>>(query.get("buildargs"), "buildargs")? {
            // A null value is an argument the client declared but left
            // unset: the Dockerfile's default applies, as on dockerd.
            let Some(v) = v else { continue };
            if k == "SOURCE_DATE_EPOCH" {
                source_date_epoch = Some(v.parse::<u64>().map_err(|_| {
                    DaemonError::invalid(format!(
                        "build-arg SOURCE_DATE_EPOCH={v:?} is not a number of seconds"
                    ))
                })?);
            } else {
                build_args.insert(k, v);
            }
        }
        let labels = json_map::<String>(query.get("labels"), "labels")?;
        let memory = match query.get("memory").filter(|m| !m.is_empty()) {
            None => None,
            Some(m) => match m.parse::<u64>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(DaemonError::invalid(format!(
                        "memory={m:?} is not a number of bytes"
                    )));
                }
            },
        };
        let network_host = match query.get("networkmode").unwrap_or("") {
            "host" => true,
            "" | "default" | "none" | "bridge" => false,
            other => {
                return Err(DaemonError::invalid(format!(
                    "networkmode={other:?} is not supported for build: none (the default) or host"
                )));
            }
        };
        Ok(BuildParams {
            network_host,
            tags,
            dockerfile,
            build_args,
            source_date_epoch,
            target: query
                .get("target")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            quiet: query.flag("q"),
            labels,
            memory,
            cache: CachePolicy {
                no_cache: query.flag("nocache"),
                pull: query.flag("pull"),
            },
        })
    }
}

/// A JSON object from the query (`buildargs`, `labels`); absent or empty is
/// an empty map.
fn json_map<V: serde::de::DeserializeOwned>(
    value: Option<&str>,
    name: &str,
) -> Result<BTreeMap<String, V>, DaemonError> {
    match value
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "null")
    {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_str(v).map_err(|e| {
            DaemonError::invalid(format!("{name}: not a JSON object of strings: {e}"))
        }),
    }
}

/// `path` made relative to the context root; `None` when it climbs out.
/// A leading `/` names the context root, as dockerd reads it.
fn inside_context(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// A context unpacked and its build file checked: what the build needs.
struct PreparedBuild {
    /// Under the store's `tmp/`, removed when dropped (and, after a crash,
    /// by the next start's sweep of `tmp/`).
    scratch: tempfile::TempDir,
    context: PathBuf,
    /// The build file, copied out of the context (with the `labels` line).
    file: PathBuf,
    /// The name the user gave it, for errors.
    shown: String,
}

/// `POST /build?t=&dockerfile=&buildargs=&target=&q=&labels=&memory=&…`:
/// the context is unpacked and the build file parsed before the answer
/// starts (a bad tar, a missing or malformed build file are JSON errors
/// with dockerd's status codes); then `200` and the progress as JSON
/// lines, a failure as the last line (`errorDetail`).
pub async fn build(
    daemon: &Arc<Daemon>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let params = match BuildParams::parse(query) {
        Ok(p) => p,
        Err(e) => {
            // The client is still sending its context: read it first, or
            // it sees a broken pipe, not the answer.
            let _ = crate::http::read_body(req).await;
            return Err(e);
        }
    };
    let d = Arc::clone(daemon);
    let dockerfile = params.dockerfile.clone();
    let labels = params.labels.clone();
    let build_args = params.build_args.clone();
    let target = params.target.clone();
    let prepared =
        crate::images::read_body_on_thread(req, "receiving a build context", move |body| {
            prepare(
                &d,
                body,
                dockerfile.as_deref(),
                &labels,
                &build_args,
                target.as_deref(),
            )
        })
        .await?;
    let (tx, response) = streaming("application/json");
    let d = Arc::clone(daemon);
    crate::images::client_thread("building an image", move || {
        run(&d, prepared, params, &tx);
    })?;
    Ok(response)
}

/// Unpacks the context and checks its build file.
fn prepare(
    daemon: &Daemon,
    body: impl Read,
    dockerfile: Option<&Path>,
    labels: &BTreeMap<String, String>,
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
) -> Result<PreparedBuild, DaemonError> {
    let tmp = daemon.store.root().join("tmp");
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{}.build-", std::process::id()))
        .tempdir_in(&tmp)
        .map_err(|e| {
            anyhow::anyhow!(
                "creating a directory for the build context in {}: {e}",
                tmp.display()
            )
        })?;
    let context = scratch.path().join("context");
    let file_dir = scratch.path().join("file");
    for d in [&context, &file_dir] {
        std::fs::create_dir(d).map_err(|e| anyhow::anyhow!("creating {}: {e}", d.display()))?;
    }
    let root = Dir::open_ambient_dir(&context, cap_std::ambient_authority())
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", context.display()))?;
    unpack_context(&root, body)?;

    // Read through the context's `Dir`: a build file that is a symlink out
    // of the context is not found, never read from the host.
    let (relative, text) = match dockerfile {
        Some(f) => (f.to_path_buf(), root.read_to_string(f).ok()),
        None => ["wrun.toml", "Wasmfile", "Dockerfile"]
            .iter()
            .map(|n| (PathBuf::from(n), root.read_to_string(n).ok()))
            .find(|(_, t)| t.is_some())
            .unwrap_or_else(|| (PathBuf::from("Dockerfile"), None)),
    };
    let shown = relative.display().to_string();
    let Some(mut text) = text else {
        return Err(DaemonError::Internal(format!(
            "Cannot locate specified Dockerfile: {shown}"
        )));
    };
    let is_toml = relative.extension().is_some_and(|e| e == "toml");
    let no_instructions = text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    });
    if !is_toml && no_instructions {
        return Err(DaemonError::invalid(
            "failed to parse Dockerfile: file with no instructions",
        ));
    }
    if !labels.is_empty() {
        if is_toml {
            return Err(DaemonError::invalid(format!(
                "labels: {shown} is a wrun.toml, which takes no labels from the request; set them in the file"
            )));
        }
        text.push_str(&label_line(labels));
    }
    let name = relative.file_name().unwrap_or(relative.as_os_str());
    let file = file_dir.join(name);
    std::fs::write(&file, &text).map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
    let program = wrun_bundler::parse_build_file(&file, build_args).map_err(|e| match e {
        BuildError::BuildFile { message, line, .. } => DaemonError::invalid(match line {
            Some(l) => format!("dockerfile parse error line {l}: {message}"),
            None => format!("{shown}: {message}"),
        }),
        other => DaemonError::Internal(other.to_string()),
    })?;
    // dockerd checks the target before it answers, in these words
    // whatever the build file's name.
    if let Some(t) = target
        && program.stage_named(t).is_none()
    {
        return Err(DaemonError::invalid(format!(
            "failed to reach build target {t} in Dockerfile"
        )));
    }
    Ok(PreparedBuild {
        scratch,
        context,
        file,
        shown,
    })
}

/// dockerd's `LABEL` lines for the `labels` parameter, one a label in
/// key order (as its `Step N/M : LABEL k=v` lines show them), added to the
/// end of the Dockerfile (so to its last stage). A key or value with more
/// than plain characters is quoted, so the line parses back to it.
fn label_line(labels: &BTreeMap<String, String>) -> String {
    let word = |s: &str| {
        let plain = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@,+%".contains(c));
        if plain {
            s.to_string()
        } else {
            serde_json::Value::from(s).to_string()
        }
    };
    let mut out = String::from("\n");
    for (k, v) in labels {
        out.push_str(&format!("LABEL {}={}\n", word(k), word(v)));
    }
    out
}

/// Unpacks the context tar (plain or gzip) into `root` as a layer is
/// unpacked: `..`, absolute paths and links out are refused or confined,
/// devices skipped, the size capped.
fn unpack_context(root: &Dir, body: impl Read) -> Result<(), DaemonError> {
    // dockerd answers a bad context tar with a 500, as a failed write.
    let malformed = |e: wrun_image::ImageError| {
        DaemonError::Internal(format!(
            "Error processing tar file: {}",
            crate::describe(&e.into())
        ))
    };
    let tar =
        wrun_image::unpack::archive_decompressed(body, "the build context").map_err(malformed)?;
    let limits = UnpackLimits {
        max_bytes: MAX_CONTEXT_BYTES,
        ..UnpackLimits::default()
    };
    apply_layer(
        root,
        tar,
        "the build context",
        &limits,
        &mut UnpackBudget::default(),
    )
    .map_err(malformed)?;
    Ok(())
}

/// Runs the build, sending its progress to `tx` as dockerd's JSON lines.
/// The lines go through a thread of their own: a `RUN` step's output
/// arrives on a thread that drives the guest inside a tokio runtime, where
/// `tx`'s blocking send must not be called.
fn run(daemon: &Daemon, prepared: PreparedBuild, params: BuildParams, tx: &mpsc::Sender<Bytes>) {
    let (lines, pending) = std::sync::mpsc::sync_channel::<Bytes>(64);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for line in pending {
                // A client gone is no failure of the build: the image is
                // stored; the lines left are dropped.
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        build_sending(daemon, prepared, params, &lines);
        drop(lines);
    });
}

/// [`run`]'s build, each line sent to `tx`.
fn build_sending(
    daemon: &Daemon,
    prepared: PreparedBuild,
    params: BuildParams,
    tx: &std::sync::mpsc::SyncSender<Bytes>,
) {
    // A client gone is no failure of the build: the image is stored.
    let send = |message: BuildMessage| {
        let _ = tx.send(message.line());
    };
    let stream = |text: String| send(BuildMessage::stream(text));
    let progress = (!params.quiet).then(|| {
        let tx = tx.clone();
        ProgressSink(Arc::new(move |event: &BuildEvent<'_>| {
            let lines: Vec<String> = match event {
                // dockerd sends the step's words and its newline apart.
                BuildEvent::Step {
                    number,
                    total,
                    text,
                } => vec![format!("Step {number}/{total} : {text}"), "\n".into()],
                BuildEvent::Image { id } => vec![format!(
                    " ---> {}\n",
                    id.map(|d| d.short()).unwrap_or_default()
                )],
                BuildEvent::Output { bytes } => vec![String::from_utf8_lossy(bytes).into_owned()],
            };
            for l in lines {
                let _ = tx.send(BuildMessage::stream(l).line());
            }
        }))
    });
    let request = BuildRequest {
        context: prepared.context.clone(),
        file: Some(prepared.file.clone()),
        build_args: params.build_args,
        source_date_epoch: params.source_date_epoch,
        tags: params.tags.clone(),
        target: params.target,
        progress,
        base_images: None,
        run_limits: params.memory.map(|m| StepLimits {
            memory: Some(m),
            ..StepLimits::default()
        }),
        run_network: wrun_runtime::NetworkGrants {
            host: params.network_host,
            ..Default::default()
        },
    };
    let built = wrun_bundler::build_with(&daemon.store, &request, params.cache)
        .map_err(|e| (error_message(&e, &prepared), e.step_exit_code()));
    // Removed before the last line: a client that has read it finds no
    // trace of the build under the store.
    drop(prepared);
    match built {
        Ok(outcome) => {
            let id = outcome.record.id.to_string();
            if params.quiet {
                stream(format!("{id}\n"));
            } else {
                // dockerd sends the image's aux line, then the warnings.
                send(BuildMessage {
                    aux: Some(BuildAux { id: id.clone() }),
                    ..Default::default()
                });
                for w in &outcome.warnings {
                    stream(format!("[Warning] {w}\n"));
                }
                stream(format!(
                    "Successfully built {}\n",
                    outcome.record.id.short()
                ));
            }
            for name in
                outcome.record.names.iter().filter(|n| {
                    params.tags.is_empty() || params.tags.iter().any(|t| &t.name() == *n)
                })
            {
                daemon.events.image("tag", &id, name);
                if !params.quiet {
                    stream(format!("Successfully tagged {name}\n"));
                }
            }
        }
        Err((message, code)) => {
            send(BuildMessage {
                error_detail: Some(BuildErrorDetail {
                    code,
                    message: message.clone(),
                }),
                error: Some(message),
                ..Default::default()
            });
        }
    }
}

/// A failed build's one line, naming the build file as the user named it,
/// not by its copy under the store.
fn error_message(e: &BuildError, prepared: &PreparedBuild) -> String {
    let text = crate::describe_error(e);
    let text = text.replace(&prepared.file.display().to_string(), &prepared.shown);
    let context = format!("{}/", prepared.context.display());
    let text = text.replace(&context, "");
    // "… in the build context /…/context" names the context twice.
    let text = text.replace(&format!(" {}", prepared.context.display()), "");
    text.replace(
        &prepared.scratch.path().display().to_string(),
        "the build context",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<BuildParams, DaemonError> {
        BuildParams::parse(&Query::parse(Some(s)))
    }

    fn msg(s: &str) -> String {
        q(s).err()
            .map(|e| e.message().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn docker_clis_query_is_read() {
        // What `DOCKER_BUILDKIT=0 docker build -t app:1 -t app .` sends.
        let p = q("buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&cachefrom=%5B%5D&cgroupparent=&cpuperiod=0&dockerfile=Dockerfile&labels=%7B%22k%22%3A%22v%22%7D&memory=0&networkmode=default&rm=1&shmsize=0&t=app%3A1&t=app&target=&ulimits=null&version=1").unwrap();
        assert_eq!(
            p.tags.iter().map(ImageRef::name).collect::<Vec<_>>(),
            ["app:1", "app:latest"]
        );
        assert_eq!(p.dockerfile.as_deref(), Some(Path::new("Dockerfile")));
        assert_eq!(p.build_args.len(), 1, "a null build-arg is left unset");
        assert_eq!(p.build_args["A"], "1");
        assert_eq!(p.labels["k"], "v");
        assert_eq!(p.memory, None);
        assert_eq!(p.target, None);
        assert!(!p.quiet);
        assert_eq!(p.cache, CachePolicy::default());
        let p =
            q("q=1&memory=1048576&target=base&buildargs=%7B%22SOURCE_DATE_EPOCH%22%3A%2210%22%7D&nocache=1&pull=1")
                .unwrap();
        assert_eq!(
            p.cache,
            CachePolicy {
                no_cache: true,
                pull: true
            }
        );
        assert!(p.quiet);
        assert_eq!(p.memory, Some(1 << 20));
        assert_eq!(p.target.as_deref(), Some("base"));
        assert_eq!(p.source_date_epoch, Some(10));
        assert!(p.build_args.is_empty());
        assert!(
            !p.network_host,
            "networkmode=default (above too): no network"
        );
        assert!(q("networkmode=host").unwrap().network_host);
        assert!(!q("networkmode=none").unwrap().network_host);
        let err = q("networkmode=mynet").err().unwrap();
        assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST);
        assert!(
            err.message().contains("none (the default) or host"),
            "{err}"
        );
    }

    #[test]
    fn bad_queries_are_refused_before_the_body_is_read() {
        assert!(msg("remote=https://example.com/ctx.tar").contains("only the context sent"));
        assert!(msg("version=2").contains("DOCKER_BUILDKIT=0"));
        assert!(msg("t=Bad%20Name").contains("invalid tag"));
        assert!(msg("buildargs=%5B1%5D").starts_with("buildargs: not a JSON object"));
        assert!(msg("labels=x").starts_with("labels: not a JSON object"));
        assert!(msg("memory=lots").contains("not a number"));
        assert_eq!(
            msg("dockerfile=../x"),
            "forbidden path outside the build context: ../x"
        );
        assert_eq!(
            msg("dockerfile=a/../../x"),
            "forbidden path outside the build context: a/../../x"
        );
    }

    #[test]
    fn a_dockerfile_path_is_read_inside_the_context() {
        assert_eq!(inside_context("/Dockerfile"), Some("Dockerfile".into()));
        assert_eq!(inside_context("./a/../b/D"), Some("b/D".into()));
        assert_eq!(inside_context(".."), None);
        assert_eq!(inside_context("."), None);
    }

    #[test]
    fn labels_become_label_lines_in_key_order() {
        let mut labels = BTreeMap::new();
        labels.insert("b".to_string(), "x y".to_string());
        labels.insert("a\"".to_string(), String::new());
        labels.insert("c".to_string(), "v1.0".to_string());
        assert_eq!(
            label_line(&labels),
            "\nLABEL \"a\\\"\"=\nLABEL b=\"x y\"\nLABEL c=v1.0\n"
        );
    }
}
