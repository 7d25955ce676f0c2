//! Where the image verbs work: one [`ImageBackend`] trait, served by the
//! store at `--root` ([`LocalImages`]) or a daemon's REST API ([`ApiImages`]).

use std::cell::OnceCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hyper::Method;
use wrun_api::images::{
    HistoryItem, ImageDeleteItem, ImageInspect, ImagePruneResponse, ImageSummary, ImportMessage,
    LoadMessage,
};
use wrun_api::parse::Filters;
use wrun_api::registry::{AuthConfig, ProgressMessage};
use wrun_bundler::run_step::StepLimits;
use wrun_bundler::{BuildOutcome, BuildRequest, CachePolicy};
use wrun_daemon::image_views;
use wrun_image::archive::{self, SaveItem};
use wrun_image::import::ImportSpec;
use wrun_image::registry::RemoteRef;
use wrun_image::{Digest, ImageRecord, ImageRef, ModuleKind, Store};

use crate::client::Client;
use crate::commands::escape;

/// An image tar ready to be written: what it holds is settled, the bytes
/// are written (or fetched) when it is called.
pub type ImageTar<'a> = Box<dyn FnOnce(&mut dyn Write) -> anyhow::Result<()> + 'a>;

/// An image a build stored, and the number of layers its manifest lists.
pub struct Built {
    pub outcome: BuildOutcome,
    pub layers: usize,
}

/// The image operations of the CLI, in the Docker API's shapes, whichever
/// engine serves them. Errors read the same way from either side, except
/// that the daemon's refusals say `Error response from daemon: …`.
pub trait ImageBackend {
    /// The images `filters` select, as `GET /images/json` lists them
    /// (one filter code for both engines: [`image_views::list`]).
    fn list(&self, filters: &Filters) -> anyhow::Result<Vec<ImageSummary>>;
    fn inspect(&self, name: &str) -> anyhow::Result<ImageInspect>;
    /// The image's layers, newest first.
    fn history(&self, name: &str) -> anyhow::Result<Vec<HistoryItem>>;
    /// Puts `target` on the image `source` names (moving it off another).
    fn tag(&self, source: &str, target: &ImageRef) -> anyhow::Result<()>;
    /// Removes the name, and the image when no name is left; images of
    /// instances are kept unless `force`.
    fn remove(&self, name: &str, force: bool) -> anyhow::Result<Vec<ImageDeleteItem>>;
    /// Removes the dangling images, or with `all` every image no instance
    /// uses.
    fn prune(&self, all: bool) -> anyhow::Result<ImagePruneResponse>;
    /// The OCI layout tar of `names` (by name: that name; by ID: all the
    /// image's names). The local store refuses an unknown name here, before
    /// anything is written.
    fn save(&self, names: &[String]) -> anyhow::Result<ImageTar<'_>>;
    /// Stores the images of a tar (plain or gzip; wrun's, skopeo's or
    /// Docker's); `what` names the input in errors. Returns `note: …`
    /// lines, then one `Loaded image` line per name.
    fn load(&self, tar: Box<dyn Read + Send>, what: &str) -> anyhow::Result<Vec<LoadMessage>>;
    /// Stores a rootfs tar (plain or gzip) as a one-layer image (`import`);
    /// returns its ID.
    fn import(&self, tar: Box<dyn Read + Send>, spec: &ImportSpec) -> anyhow::Result<String>;
    /// Builds an image and stores it here, also writing its tar to `output`.
    fn build(
        &self,
        request: &BuildRequest,
        policy: CachePolicy,
        output: Option<&Path>,
    ) -> anyhow::Result<Built>;
}

/// The one rule for which engine an image verb (`build` included) uses;
/// none starts a daemon:
///
/// - a host named with `-H`/`$WRUN_HOST`: that daemon, whatever store it
///   serves; if nothing answers there, the error `cannot connect to the
///   wrun daemon at PATH`;
/// - no host named: the daemon that serves the store at `root` (it holds
///   the store's `daemon.lock`), on whatever socket; with none, that store
///   opened directly. So a store a daemon serves is only changed through it.
pub fn choose(root: &Path, host: Option<&str>) -> anyhow::Result<Box<dyn ImageBackend>> {
    if host.is_some_and(|h| !h.is_empty()) {
        let socket = crate::host::socket_path(host)?;
        return Ok(Box::new(ApiImages(Client::connect_existing(&socket)?)));
    }
    if let Some(daemon) = wrun_daemon::daemon_lock::DaemonLock::holder(root) {
        return Ok(Box::new(ApiImages(Client::connect_existing(
            &daemon.socket,
        )?)));
    }
    Ok(Box::new(LocalImages::open(root)?))
}

/// The daemon a pull or push goes through, by [`choose`]'s rule: the host
/// named, else the daemon serving the store; `None`: the store itself.
pub fn transfer_daemon(root: &Path, host: Option<&str>) -> anyhow::Result<Option<Client>> {
    if host.is_some_and(|h| !h.is_empty()) {
        let socket = crate::host::socket_path(host)?;
        return Ok(Some(Client::connect_existing(&socket)?));
    }
    match wrun_daemon::daemon_lock::DaemonLock::holder(root) {
        Some(daemon) => Ok(Some(Client::connect_existing(&daemon.socket)?)),
        None => Ok(None),
    }
}

/// `X-Registry-Auth` for a transfer with `registry`: wrun's stored
/// credentials for it (docker's `config.json` as the fallback), or none.
fn registry_auth_header(registry: &str) -> anyhow::Result<Option<String>> {
    let stored = crate::commands::login::stored_credentials(registry)?;
    Ok(stored.map(|c| {
        AuthConfig {
            username: c.username,
            password: c.password,
            serveraddress: registry.to_owned(),
            ..AuthConfig::default()
        }
        .to_header()
    }))
}

/// Where the lines of a pull or push go: stdout (`pull`, `push`), stderr
/// (the pull before a `run` or `create`), or nowhere (`-q`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutput {
    Stdout,
    Stderr,
    Quiet,
}

impl TransferOutput {
    /// `to`, or nothing with `-q`.
    pub fn unless_quiet(quiet: bool, to: TransferOutput) -> TransferOutput {
        if quiet { TransferOutput::Quiet } else { to }
    }

    /// Prints one line; a closed stream must not fail the transfer.
    pub fn line(self, text: &str) {
        let _ = match self {
            TransferOutput::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}").and_then(|()| out.flush())
            }
            TransferOutput::Stderr => writeln!(std::io::stderr().lock(), "{text}"),
            TransferOutput::Quiet => Ok(()),
        };
    }
}

/// Reads a pull's or push's JSON lines as they come, printing each to
/// `out` as the docker client prints them when it writes to no terminal
/// (`ID: status`; on stdout, for `wrun pull` and `push`, only a layer's
/// last status, as they print on a store); the line that tells a failure
/// is the error.
fn transfer_lines(
    client: &Client,
    path: &str,
    auth: Option<&str>,
    out: TransferOutput,
) -> anyhow::Result<()> {
    let headers: Vec<(&'static str, &str)> =
        auth.map(|a| ("X-Registry-Auth", a)).into_iter().collect();
    let mut pending = Vec::new();
    let read = |line: &[u8]| -> anyhow::Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let message: ProgressMessage =
            serde_json::from_slice(line).context("the daemon's answer is not the expected JSON")?;
        if let Some(error) = message.error {
            bail!("{error}");
        }
        // `wrun pull`/`push` print the lines they print on a store (a
        // layer's last status); a run's pull, docker's every line.
        let step = matches!(
            message.status.as_deref(),
            Some(
                "Pulling fs layer"
                    | "Waiting"
                    | "Verifying Checksum"
                    | "Download complete"
                    | "Preparing"
            )
        );
        if let Some(text) = message
            .plain()
            .filter(|_| !(step && out == TransferOutput::Stdout))
        {
            out.line(&text);
        }
        Ok(())
    };
    client.stream_with_request_headers(Method::POST, path, &headers, |chunk| {
        pending.extend_from_slice(chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            read(&line)?;
        }
        Ok(())
    })?;
    read(&pending)
}

/// `POST /images/create?fromImage=HOST/PATH&tag=TAG` (or the digest as
/// `tag`), with the stored credentials for the registry: the daemon pulls
/// into its store; its lines are printed to `out` as they come.
pub fn pull_through_daemon(
    client: &Client,
    reference: &RemoteRef,
    out: TransferOutput,
) -> anyhow::Result<()> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair(
        "fromImage",
        &format!("{}/{}", reference.registry, reference.repository),
    );
    match (&reference.digest, &reference.tag) {
        (Some(d), _) => query.append_pair("tag", &d.to_string()),
        (None, Some(t)) => query.append_pair("tag", t),
        (None, None) => query.append_pair("tag", "latest"),
    };
    let path = format!("/images/create?{}", query.finish());
    let auth = registry_auth_header(&reference.registry)?;
    transfer_lines(client, &path, auth.as_deref(), out)
}

/// `POST /images/HOST/PATH/push?tag=TAG` with the stored credentials for
/// the registry (none: an anonymous `X-Registry-Auth`, which the route
/// needs); its lines are printed to `out` as they come.
pub fn push_through_daemon(
    client: &Client,
    reference: &RemoteRef,
    out: TransferOutput,
) -> anyhow::Result<()> {
    let Some(tag) = reference
        .tag
        .as_ref()
        .filter(|_| reference.digest.is_none())
    else {
        bail!(
            "invalid reference format {:?}: a push names a tag, not a digest",
            reference.to_string()
        );
    };
    let repository: String = form_urlencoded::byte_serialize(
        format!("{}/{}", reference.registry, reference.repository).as_bytes(),
    )
    .collect::<String>()
    .replace("%2F", "/");
    let tag: String = form_urlencoded::byte_serialize(tag.as_bytes()).collect();
    let path = format!("/images/{repository}/push?tag={tag}");
    let auth = registry_auth_header(&reference.registry)?
        .unwrap_or_else(|| AuthConfig::default().to_header());
    transfer_lines(client, &path, Some(&auth), out)
}

/// Whether the daemon stores the image `name` names (`GET
/// /images/NAME/json` answers, not 404).
pub fn daemon_has_image(client: &Client, name: &str) -> anyhow::Result<bool> {
    let escaped: String = form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace("%2F", "/");
    match client.call(Method::GET, &format!("/images/{escaped}/json"), None) {
        Ok(_) => Ok(true),
        Err(e) if crate::client::is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The store at `--root`, used directly.
pub struct LocalImages {
    store: Store,
    /// The images instance records use, read once on the first `remove`.
    in_use: OnceCell<HashSet<Digest>>,
}

impl LocalImages {
    fn open(root: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            store: wrun_daemon::open_store(root)?,
            in_use: OnceCell::new(),
        })
    }

    /// The images of recorded instances (running or not): kept unless
    /// forced. No daemon serves this store, so its records on disk say.
    fn in_use(&self) -> &HashSet<Digest> {
        self.in_use
            .get_or_init(|| wrun_daemon::images_in_use_on_disk(&self.store))
    }

    /// The images to write for `names`, one item per image.
    fn save_items(&self, names: &[String]) -> anyhow::Result<Vec<SaveItem>> {
        let mut items: Vec<SaveItem> = Vec::new();
        for name in names {
            let record = self.store.find(name)?;
            // Saving by name writes that name; saving by ID writes all its names.
            let wanted = match name.parse::<ImageRef>() {
                Ok(r) if record.names.contains(&r.tagged().name()) => vec![r.tagged().name()],
                _ => record.names.clone(),
            };
            let at = match items.iter().position(|i| i.record.digest == record.digest) {
                Some(at) => at,
                None => {
                    items.push(SaveItem {
                        record,
                        names: Vec::new(),
                    });
                    items.len() - 1
                }
            };
            for n in wanted {
                if !items[at].names.contains(&n) {
                    items[at].names.push(n);
                }
            }
        }
        Ok(items)
    }
}

impl ImageBackend for LocalImages {
    fn list(&self, filters: &Filters) -> anyhow::Result<Vec<ImageSummary>> {
        Ok(image_views::list(&self.store, filters, false)?)
    }

    fn inspect(&self, name: &str) -> anyhow::Result<ImageInspect> {
        image_views::inspect(&self.store, &self.store.find(name)?)
    }

    fn history(&self, name: &str) -> anyhow::Result<Vec<HistoryItem>> {
        image_views::history(&self.store, &self.store.find(name)?)
    }

    fn tag(&self, source: &str, target: &ImageRef) -> anyhow::Result<()> {
        self.store.tag(source, target)?;
        Ok(())
    }

    fn remove(&self, name: &str, force: bool) -> anyhow::Result<Vec<ImageDeleteItem>> {
        // The images of recorded instances (running or not) are kept
        // unless forced; without a daemon, the records on disk say which.
        let outcome = self.store.remove(name, force, self.in_use())?;
        let untagged = outcome.untagged.into_iter().map(|u| ImageDeleteItem {
            untagged: Some(u),
            deleted: None,
        });
        let deleted = outcome.deleted.iter().map(|r| ImageDeleteItem {
            untagged: None,
            deleted: Some(r.id.to_string()),
        });
        Ok(untagged.chain(deleted).collect())
    }

    fn prune(&self, all: bool) -> anyhow::Result<ImagePruneResponse> {
        let outcome = self.store.prune(all, self.in_use())?;
        let items: Vec<ImageDeleteItem> = outcome
            .deleted_images
            .iter()
            .flat_map(|r| ImageDeleteItem::for_deleted(r.names.iter().cloned(), r.id.to_string()))
            .collect();
        Ok(ImagePruneResponse {
            images_deleted: Some(items).filter(|i| !i.is_empty()),
            space_reclaimed: outcome.reclaimed_bytes,
        })
    }

    fn save(&self, names: &[String]) -> anyhow::Result<ImageTar<'_>> {
        let items = self.save_items(names)?;
        Ok(Box::new(move |out| {
            archive::save(&self.store, &items, out, archive_mtime())?;
            Ok(())
        }))
    }

    fn load(&self, tar: Box<dyn Read + Send>, what: &str) -> anyhow::Result<Vec<LoadMessage>> {
        let report = archive::load(&self.store, tar).with_context(|| format!("loading {what}"))?;
        let notes = report.notes.iter().map(|note| LoadMessage::note(note));
        let loaded = report.images.iter().flat_map(|(record, names)| {
            let by_id = names
                .is_empty()
                .then(|| LoadMessage::loaded_id(&record.id.to_string()));
            by_id
                .into_iter()
                .chain(names.iter().map(|n| LoadMessage::loaded(n)))
        });
        Ok(notes.chain(loaded).collect())
    }

    fn import(&self, tar: Box<dyn Read + Send>, spec: &ImportSpec) -> anyhow::Result<String> {
        let record = wrun_image::import::import(&self.store, tar, spec.clone())?;
        Ok(record.id.to_string())
    }

    fn build(
        &self,
        request: &BuildRequest,
        policy: CachePolicy,
        output: Option<&Path>,
    ) -> anyhow::Result<Built> {
        let built = build_into(&self.store, request, policy)?;
        if let Some(path) = output {
            write_image_tar(&self.store, &built.outcome.record, path)?;
        }
        Ok(built)
    }
}

/// A daemon, through its REST API.
pub struct ApiImages(Client);

impl ImageBackend for ApiImages {
    fn list(&self, filters: &Filters) -> anyhow::Result<Vec<ImageSummary>> {
        let mut path = "/images/json".to_string();
        if !filters.is_empty() {
            path.push_str("?filters=");
            path.push_str(&escape(&filters.to_json()));
        }
        self.0.json(Method::GET, &path, None)
    }

    fn inspect(&self, name: &str) -> anyhow::Result<ImageInspect> {
        let path = format!("/images/{}/json", escape(name));
        self.0.json(Method::GET, &path, None)
    }

    fn history(&self, name: &str) -> anyhow::Result<Vec<HistoryItem>> {
        let path = format!("/images/{}/history", escape(name));
        self.0.json(Method::GET, &path, None)
    }

    fn tag(&self, source: &str, target: &ImageRef) -> anyhow::Result<()> {
        let mut path = format!(
            "/images/{}/tag?repo={}",
            escape(source),
            escape(&target.repository)
        );
        if let Some(tag) = &target.tag {
            path.push_str(&format!("&tag={}", escape(tag)));
        }
        self.0.call(Method::POST, &path, None)?;
        Ok(())
    }

    fn prune(&self, all: bool) -> anyhow::Result<ImagePruneResponse> {
        let mut path = "/images/prune".to_string();
        if all {
            path.push_str("?filters=");
            path.push_str(&escape(r#"{"dangling":["false"]}"#));
        }
        self.0.json(Method::POST, &path, None)
    }

    fn remove(&self, name: &str, force: bool) -> anyhow::Result<Vec<ImageDeleteItem>> {
        // The daemon keeps the images of its instances unless forced.
        let path = format!("/images/{}?force={}", escape(name), u8::from(force));
        self.0.json(Method::DELETE, &path, None)
    }

    /// `GET /images/get?names=…`: the daemon's tar, passed on as it
    /// arrives; the daemon refuses an unknown name before the first byte.
    fn save(&self, names: &[String]) -> anyhow::Result<ImageTar<'_>> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(names.iter().map(|n| ("names", n)))
            .finish();
        let path = format!("/images/get?{query}");
        Ok(Box::new(move |out| {
            let mut end = TarEnd::default();
            self.0.stream(Method::GET, &path, |chunk| {
                end.feed(chunk);
                out.write_all(chunk)?;
                Ok(())
            })?;
            if !end.complete() {
                bail!("the daemon's image tar ended early (see the daemon's log)");
            }
            Ok(())
        }))
    }

    fn load(&self, tar: Box<dyn Read + Send>, what: &str) -> anyhow::Result<Vec<LoadMessage>> {
        post_load(&self.0, tar, what)
    }

    /// `POST /images/create?fromSrc=-` with the tar as the body.
    fn import(&self, tar: Box<dyn Read + Send>, spec: &ImportSpec) -> anyhow::Result<String> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("fromSrc", "-");
        if let Some(name) = spec.names.first() {
            query.append_pair("repo", &name.repository);
            query.append_pair("tag", name.tag.as_deref().unwrap_or("latest"));
        }
        if let Some(m) = &spec.message {
            query.append_pair("message", m);
        }
        if let Some(os) = &spec.os {
            query.append_pair("platform", &format!("{os}/wasm"));
        }
        for c in &spec.changes {
            query.append_pair("changes", c);
        }
        let path = format!("/images/create?{}", query.finish());
        let answer = self
            .0
            .upload(Method::POST, &path, "application/x-tar", tar)?;
        let line: ImportMessage = serde_json::Deserializer::from_slice(&answer)
            .into_iter::<ImportMessage>()
            .last()
            .context("the daemon's answer is empty")?
            .context("the daemon's answer is not the expected JSON")?;
        Ok(line.status)
    }

    /// `POST /build` with a tar of the context: the daemon builds and
    /// stores the image; its progress is printed as it arrives.
    fn build(
        &self,
        request: &BuildRequest,
        policy: CachePolicy,
        output: Option<&Path>,
    ) -> anyhow::Result<Built> {
        if request
            .run_limits
            .as_ref()
            .is_some_and(|l| l.timeout != StepLimits::default().timeout)
        {
            bail!(
                "--timeout is not sent to a daemon: Docker's POST /build has no step time limit, so the daemon's (10m) applies; build without -H to set one"
            );
        }
        if request
            .run_limits
            .as_ref()
            .is_some_and(|l| l.storage != StepLimits::default().storage)
        {
            bail!(
                "--storage-opt is not sent to a daemon: Docker's POST /build has no storage limit, so the daemon's (4g a step) applies; build without -H to set one"
            );
        }
        let (context, file) = context_tar(&request.context, request.file.as_deref())?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        for t in &request.tags {
            query.append_pair("t", &t.name());
        }
        if let Some(file) = &file {
            query.append_pair("dockerfile", file);
        }
        let mut args: std::collections::BTreeMap<&str, String> = request
            .build_args
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if let Some(epoch) = request.source_date_epoch {
            args.insert("SOURCE_DATE_EPOCH", epoch.to_string());
        }
        if !args.is_empty() {
            query.append_pair("buildargs", &serde_json::to_string(&args)?);
        }
        if let Some(target) = &request.target {
            query.append_pair("target", target);
        }
        // POST /build's own words for --no-cache and --pull.
        if policy.no_cache {
            query.append_pair("nocache", "1");
        }
        if policy.pull {
            query.append_pair("pull", "1");
        }
        if request.progress.is_none() {
            query.append_pair("q", "1");
        }
        if request.run_network.host {
            query.append_pair("networkmode", "host");
        }
        if let Some(memory) = request.run_limits.as_ref().and_then(|l| l.memory) {
            query.append_pair("memory", &memory.to_string());
        }
        let path = format!("/build?{}", query.finish());
        let mut pending = Vec::new();
        let mut progress = BuildProgress::default();
        let print = request.progress.is_some();
        self.0
            .upload_streaming(Method::POST, &path, "application/x-tar", context, |chunk| {
                pending.extend_from_slice(chunk);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    progress.read(&line, print)?;
                }
                Ok(())
            })
            .with_context(|| format!("building {}", request.context.display()))?;
        if !pending.is_empty() {
            progress.read(&pending, print)?;
        }
        let id = progress.id.with_context(|| {
            format!(
                "building {}: the daemon's answer ended before naming the image",
                request.context.display()
            )
        })?;
        let inspect = self.inspect(&id)?;
        if let Some(path) = output {
            let tar = self.save(std::slice::from_ref(&id))?;
            write_atomically(path, |out| tar(out))?;
        }
        let kind = match inspect.wasm.as_ref().map(|w| w.kind.as_str()) {
            Some("component") => ModuleKind::Component,
            Some(_) => ModuleKind::Core,
            None if inspect.os == "wasip2" => ModuleKind::Component,
            None => ModuleKind::Core,
        };
        let record = ImageRecord {
            digest: inspect.descriptor.digest.parse()?,
            id: inspect.id.parse()?,
            names: inspect.repo_tags.clone(),
            created: Some(inspect.created.clone()).filter(|c| !c.is_empty()),
            added: inspect.metadata.last_tag_time.clone().unwrap_or_default(),
            last_tagged: inspect.metadata.last_tag_time.clone(),
            size: inspect.size,
            os: inspect.os.clone(),
            architecture: inspect.architecture.clone(),
            chain_id: None,
            module: None,
            parent: None,
        };
        Ok(Built {
            layers: inspect.root_fs.layers.len(),
            outcome: BuildOutcome {
                record,
                kind,
                warnings: progress.warnings,
            },
        })
    }
}

/// What a daemon's build answer said, read line by line.
#[derive(Default)]
struct BuildProgress {
    /// The image built (`aux.ID`, or the one line of a quiet build).
    id: Option<String>,
    warnings: Vec<String>,
}

/// One line of `POST /build`'s answer.
#[derive(serde::Deserialize)]
struct BuildLine {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    aux: Option<BuildLineAux>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorDetail")]
    error_detail: Option<BuildLineError>,
}

#[derive(serde::Deserialize)]
struct BuildLineError {
    #[serde(default)]
    code: Option<i32>,
}

/// A build the daemon ran whose `RUN` step exited non-zero: `wrun build`
/// exits with that code, as the docker client does.
#[derive(Debug)]
pub struct BuildStepFailed {
    pub message: String,
    pub code: i32,
}

impl std::fmt::Display for BuildStepFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildStepFailed {}

#[derive(serde::Deserialize)]
struct BuildLineAux {
    #[serde(rename = "ID")]
    id: String,
}

impl BuildProgress {
    /// Reads one line; prints its progress when `print`, but not the
    /// `Successfully …` lines `wrun build` prints itself, nor warnings
    /// (returned, for it to print); a failure is an error.
    fn read(&mut self, line: &[u8], print: bool) -> anyhow::Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let line: BuildLine =
            serde_json::from_slice(line).context("the daemon's answer is not the expected JSON")?;
        if let Some(error) = line.error {
            if let Some(code) = line.error_detail.and_then(|d| d.code) {
                return Err(BuildStepFailed {
                    message: error,
                    code,
                }
                .into());
            }
            bail!("{error}");
        }
        if let Some(aux) = line.aux {
            self.id = Some(aux.id);
        }
        let Some(text) = line.stream else {
            return Ok(());
        };
        if let Some(w) = text.strip_prefix("[Warning] ") {
            self.warnings.push(w.trim_end().to_string());
        } else if !print {
            // A quiet build's one line is the image's ID.
            if text.starts_with("sha256:") {
                self.id = Some(text.trim_end().to_string());
            }
        } else if !text.starts_with("Successfully built ")
            && !text.starts_with("Successfully tagged ")
        {
            let mut out = std::io::stdout().lock();
            // A closed stdout must not fail the build; the image is stored.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
        Ok(())
    }
}

/// The context directory as a tar in a temp file, and the build file's
/// path in it (`None`: the daemon finds it as `wrun build` does). Symlinks
/// are sent as links, never followed. A build file outside the context is
/// added to the tar under `.wrun-build-file/`, as Docker's CLI adds one.
fn context_tar(
    context: &Path,
    file: Option<&Path>,
) -> anyhow::Result<(Box<dyn Read + Send>, Option<String>)> {
    let mut spool = tempfile::tempfile().context("creating a temp file for the build context")?;
    let mut tar = tar::Builder::new(BufWriter::new(&mut spool));
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    tar.append_dir_all(".", context)
        .with_context(|| format!("reading the build context {}", context.display()))?;
    let name = match file {
        None => None,
        Some(f) => {
            let root = context
                .canonicalize()
                .with_context(|| format!("reading the build context {}", context.display()))?;
            let full = f
                .canonicalize()
                .with_context(|| format!("reading the build file {}", f.display()))?;
            match full.strip_prefix(&root) {
                Ok(inside) => Some(inside.to_string_lossy().into_owned()),
                Err(_) => {
                    let base = full
                        .file_name()
                        .with_context(|| format!("{} is not a file", f.display()))?;
                    let at = Path::new(".wrun-build-file").join(base);
                    tar.append_path_with_name(&full, &at)
                        .with_context(|| format!("reading the build file {}", f.display()))?;
                    Some(at.to_string_lossy().into_owned())
                }
            }
        }
    };
    tar.into_inner()
        .context("writing the build context's tar")?
        .flush()
        .context("writing the build context's tar")?;
    spool
        .rewind()
        .context("reading back the build context's tar")?;
    Ok((Box::new(spool), name))
}

/// Sends an image tar to the daemon's `POST /images/load`; returns its
/// answer's lines.
pub fn post_load(
    client: &Client,
    tar: Box<dyn Read + Send>,
    what: &str,
) -> anyhow::Result<Vec<LoadMessage>> {
    // Not `quiet=1`: the daemon would drop the notes, which `load -q` keeps.
    let answer = client
        .upload(Method::POST, "/images/load", "application/x-tar", tar)
        .with_context(|| format!("loading {what}"))?;
    serde_json::Deserializer::from_slice(&answer)
        .into_iter::<LoadMessage>()
        .map(|m| m.context("the daemon's answer is not the expected JSON"))
        .collect()
}

/// Prints a load's `note:` lines on stderr; returns the other lines
/// (`Loaded image: NAME`, `Loaded image ID: ID`).
pub fn print_notes(messages: Vec<LoadMessage>) -> Vec<String> {
    let mut lines = Vec::new();
    for message in messages {
        let line = message.stream.trim_end();
        if message.is_note() {
            eprintln!("{line}");
        } else if !line.is_empty() {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// Builds `request` into `store`; a `FROM` pulled from a registry sends
/// the credentials `wrun pull` would.
fn build_into(store: &Store, request: &BuildRequest, policy: CachePolicy) -> anyhow::Result<Built> {
    let credentials = |r: &wrun_image::registry::RemoteRef| {
        crate::commands::login::transfer_options(r, wrun_image::registry::Access::Pull)
            .map_err(Into::into)
    };
    let outcome = wrun_bundler::build_pulling(store, request, policy, &credentials)
        .with_context(|| format!("building {}", request.context.display()))?;
    let layers = store
        .manifest(&outcome.record)
        .map(|m| m.layers().len())
        .unwrap_or(0);
    Ok(Built { outcome, layers })
}

/// Writes the image `record` of `store`, with all its names, as a tar at
/// `path`.
fn write_image_tar(store: &Store, record: &ImageRecord, path: &Path) -> anyhow::Result<()> {
    let items = [SaveItem {
        record: record.clone(),
        names: record.names.clone(),
    }];
    write_atomically(path, |out| {
        archive::save(store, &items, out, archive_mtime())?;
        Ok(())
    })
}

/// Timestamp for tar entries: `SOURCE_DATE_EPOCH` when set, else 0, so
/// saving the same image twice gives the same bytes.
fn archive_mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes `path` through a temp file beside it, renamed into place once
/// `write` succeeded and the data is on disk, so a failure never leaves a
/// half-written file (or destroys an older one).
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.partial",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> anyhow::Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("saving to {}", path.display()))
}

/// Watches a streamed tar for its end-of-archive marker (two zero blocks
/// at a block boundary): the daemon can only report a failure after the
/// first byte by cutting the tar short.
#[derive(Default)]
struct TarEnd {
    tail: Vec<u8>,
    len: u64,
}

impl TarEnd {
    const MARKER: usize = 1024;

    fn feed(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if bytes.len() >= Self::MARKER {
            self.tail.clear();
            self.tail
                .extend_from_slice(&bytes[bytes.len() - Self::MARKER..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let excess = self.tail.len().saturating_sub(Self::MARKER);
            self.tail.drain(..excess);
        }
    }

    fn complete(&self) -> bool {
        self.len.is_multiple_of(512)
            && self.tail.len() == Self::MARKER
            && self.tail.iter().all(|b| *b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_is_complete_only_with_its_end_marker() {
        let mut whole = TarEnd::default();
        whole.feed(&[7u8; 512]);
        for _ in 0..4 {
            whole.feed(&[0u8; 256]);
        }
        assert!(whole.complete());

        let mut cut = TarEnd::default();
        cut.feed(&[7u8; 4096]);
        assert!(!cut.complete(), "no end marker");
        let mut short = TarEnd::default();
        short.feed(&[0u8; 512]);
        assert!(!short.complete(), "one zero block is not the marker");
        let mut unaligned = TarEnd::default();
        unaligned.feed(&[7u8; 100]);
        unaligned.feed(&[0u8; 1024]);
        assert!(
            !unaligned.complete(),
            "the marker starts on a block boundary"
        );
    }

    #[test]
    fn notes_go_to_stderr_and_loaded_lines_are_returned() {
        let messages = vec![
            LoadMessage::note("converted"),
            LoadMessage::loaded("hello:1.0"),
            LoadMessage::loaded_id("sha256:ab"),
            LoadMessage::default(),
        ];
        assert_eq!(
            print_notes(messages),
            ["Loaded image: hello:1.0", "Loaded image ID: sha256:ab"]
        );
    }
}
