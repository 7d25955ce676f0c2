//! The wrun engine as a library: one tokio runtime, one wasm runtime, every
//! instance an async task, served as the Docker-shaped REST API on a Unix
//! socket (`wrun daemon`). The CLI's foreground run shares [`launch`].
//! docs/architecture.md lays out the layers.

mod archive;
mod build;
pub mod capacity;
mod commit;
mod container_fs;
mod container_inspect;
mod container_list;
mod container_streams;
mod containers;
pub mod daemon_lock;
pub mod disk_usage;
pub mod error;
mod events;
mod exec;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gate;
pub mod grants;
mod host;
mod http;
mod image_search;
mod image_transfer;
pub mod image_views;
mod images;
mod import;
mod instance;
pub mod launch;
mod layout;
pub mod lifecycle;
mod listener;
mod logpack;
mod logs;
mod network_table;
mod networks;
#[cfg(any(test, feature = "openapi"))]
pub mod openapi;
pub mod outcome;
mod prune_filters;
mod record;
mod records;
mod registry;
pub mod rootfs_views;
pub mod serve;
mod serving;
mod state;
mod stderr_relay;
mod system;
pub mod volume_store;
pub mod volumes;

pub use error::{DaemonError, describe, describe_error};
pub use listener::DEFAULT_HEADER_TIMEOUT;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use wrun_runtime::{Runtime, RuntimeConfig};

use self::http::{Body, Query};
use self::state::Daemon;
use wrun_api::{API_VERSION, MIN_API_VERSION};

/// The images the instance records under the store root were created from
/// (manifest digests): what `rmi` and `image prune` must keep without a
/// daemon to ask. Unreadable records are skipped.
pub fn images_in_use_on_disk(
    store: &wrun_image::Store,
) -> std::collections::HashSet<wrun_image::Digest> {
    let ids = layout::image_ids_on_disk(store.root());
    images::images_in_use(store, &ids)
}

/// Opens the image store at `root`, saying which on failure.
pub fn open_store(root: &Path) -> anyhow::Result<wrun_image::Store> {
    wrun_image::Store::open(root)
        .with_context(|| format!("opening the image store at {}", root.display()))
}

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub root: PathBuf,
    pub socket: PathBuf,
    /// Instances that can run at once; `None`: as many as the host holds
    /// (see [`capacity::Capacity::plan`]).
    pub max_instances: Option<u32>,
    /// Largest linear memory of one instance; `None`: the runtime's default.
    pub max_instance_memory: Option<u64>,
    /// How long a client has to send a request head; `None`:
    /// [`DEFAULT_HEADER_TIMEOUT`].
    pub api_header_timeout: Option<std::time::Duration>,
    /// Grant binds of `/proc`, `/sys`, `/dev` and of directories holding
    /// the store (see [`launch::HostBinds`]).
    pub allow_dangerous_binds: bool,
    /// The size limit of the writable rootfs of an instance that asks for
    /// none (`--storage-opt size=`); `None`: no limit.
    pub storage_size: Option<u64>,
}

/// Binds the socket, loads the instance records and serves until
/// `POST /wrun/shutdown`, SIGTERM or SIGINT; running instances are then
/// ended and recorded as exited.
pub fn serve(config: DaemonConfig) -> anyhow::Result<()> {
    // Kept to the end: dropped, it lets what was said reach the log.
    let _stderr = stderr_relay::StderrRelay::start().context("relaying stderr")?;
    raise_open_file_limit();
    let capacity = capacity::Capacity::for_host(config.max_instances)?;
    // Before anything is created: a daemon refused for its socket leaves
    // no store behind.
    refuse_if_answering(&config.socket)?;
    let store = open_store(&config.root)?;
    // Before the socket and the records: a second daemon on this store
    // would replace the journal under the first one's feet.
    let _daemon_lock = daemon_lock::DaemonLock::acquire(store.root(), &config.socket)?;
    let listener = bind(&config.socket)?;
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: capacity.instances,
        max_memory_per_instance: config
            .max_instance_memory
            .unwrap_or(RuntimeConfig::default().max_memory_per_instance),
        cache_dir: Some(store.cache_dir().join("modules")),
        scratch_dir: Some(store.root().join("scratch")),
        ..RuntimeConfig::default()
    })
    .context("starting the wasm runtime")?;
    eprintln!(
        "wrun daemon: capacity {} instances (bound by {})",
        capacity.instances,
        capacity.bound_text()
    );
    capacity::set(capacity);
    let daemon = Daemon::load(store, runtime, config.socket.clone())?;
    daemon.set_default_storage_size(config.storage_size);
    if config.allow_dangerous_binds {
        daemon.allow_dangerous_binds();
        eprintln!(
            "wrun daemon: WARNING: --allow-dangerous-binds: instances may be given /proc, /sys, /dev or a directory holding the store, and so read this daemon's memory and environment"
        );
    }
    let executor = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async executor")?;
    let result = executor.block_on(async {
        let d = Arc::clone(&daemon);
        tokio::spawn(async move { d.apply_restart_policies().await });
        let header_timeout = config.api_header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT);
        listener::accept_loop(Arc::clone(&daemon), listener, header_timeout).await
    });
    let _ = std::fs::remove_file(&config.socket);
    eprintln!("wrun daemon: stopped");
    // Instances ended by the shutdown still sit in their tasks: dropping
    // the executor would tear each one down for nothing, as the process
    // exits next (see `Daemon::stop_all`).
    std::mem::forget(executor);
    result
}

/// Raises the descriptor limit as far as allowed (the soft limit to the hard
/// one; as root the hard one to `fs.nr_open`), as Docker's daemon does: each
/// running instance still holds a descriptor per preopened directory, so the
/// default limit would cap a daemon at a few thousand instances.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let wanted_hard = match (current.maximum, nr_open) {
        (Some(hard), Some(max)) => Some(hard.max(max)),
        (hard, _) => hard,
    };
    let raised = Rlimit {
        current: wanted_hard,
        maximum: wanted_hard,
    };
    if setrlimit(Resource::Nofile, raised).is_err() {
        // Not root: the soft limit can still go up to the hard one.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: current.maximum,
                maximum: current.maximum,
            },
        );
    }
}

/// Refuses a socket another daemon answers on.
fn refuse_if_answering(socket: &Path) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        bail!(
            "a daemon is already listening on {} (stop it with `wrun daemon --stop`)",
            socket.display()
        );
    }
    Ok(())
}

/// Creates the socket with mode 0600 (in a 0700 directory when wrun makes
/// it); refuses when another daemon answers there, replaces a stale one.
fn bind(socket: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    if socket.exists() {
        refuse_if_answering(socket)?;
        std::fs::remove_file(socket)
            .with_context(|| format!("removing the stale socket {}", socket.display()))?;
    }
    // The socket is never visible with wider permissions than 0600.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = std::os::unix::net::UnixListener::bind(socket);
    rustix::process::umask(old);
    let listener = bound.with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", socket.display()))?;
    listener
        .set_nonblocking(true)
        .context("making the socket non-blocking")?;
    Ok(listener)
}

async fn handle(daemon: Arc<Daemon>, req: Request<Incoming>) -> Response<Body> {
    if let Some(message) = version_too_old(req.uri().path()) {
        // dockerd's version middleware answers this one in plain text.
        let mut response = system::plain_text(hyper::StatusCode::BAD_REQUEST, message);
        system::add_headers(&mut response);
        return response;
    }
    let mut response = match dispatch(&daemon, req).await {
        Ok(r) => r,
        // dockerd answers a request no route takes from outside its API
        // versioning: no API-Version, OSType or Server header.
        Err(e) if e == page_not_found() => return http::error_response(e),
        Err(e) => http::error_response(e),
    };
    system::add_headers(&mut response);
    response
}

/// A request, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Ping,
    Version,
    Info,
    Shutdown,
    ImagesList,
    ImageInspect(String),
    ImageHistory(String),
    ImageTag(String),
    ImageRemove(String),
    ImagesSave(Option<String>),
    ImagesLoad,
    ImagesPrune,
    ImagesCreate,
    ImagePush(String),
    ImagesSearch,
    Auth,
    Commit,
    Build,
    ContainerCreate,
    ContainersList,
    ContainersPrune,
    NetworksPrune,
    NetworksList,
    NetworkCreate,
    NetworkInspect(String),
    NetworkRemove(String),
    NetworkConnect(String),
    NetworkDisconnect(String),
    BuildPrune,
    Events,
    SystemDf,
    VolumesList,
    VolumeCreate,
    VolumesPrune,
    VolumeInspect(String),
    VolumeRemove(String),
    Container(String, ContainerAction),
    ExecCreate(String),
    ExecStart(String),
    ExecInspect(String),
    ExecResize(String),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum ContainerAction {
    Inspect,
    Start,
    Stop,
    Kill,
    Wait,
    Logs,
    Attach,
    Remove,
    Restart,
    Pause,
    Unpause,
    Rename,
    Top,
    Stats,
    Changes,
    Export,
    ArchiveStat,
    ArchiveGet,
    ArchivePut,
}

async fn dispatch(
    daemon: &Arc<Daemon>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let method = req.method().clone();
    let route = match route(&method, req.uri().path()) {
        Ok(r) => r,
        Err(e @ DaemonError::NotImplemented(_)) => {
            // The client may still be sending its body (a JSON or a
            // tar): read it first, or it sees a broken pipe, not the answer.
            let _ = http::read_body(req).await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let query = Query::parse(req.uri().query());
    match route {
        Route::Ping => Ok(system::ping(&method)),
        Route::Version => Ok(system::version()),
        Route::Info => Ok(system::info(daemon)),
        Route::Shutdown => Ok(system::shutdown(daemon)),
        Route::ImagesList => images::list(daemon, &query).await,
        Route::ImageInspect(name) => images::inspect(daemon, name).await,
        Route::ImageHistory(name) => images::history(daemon, name).await,
        Route::ImageTag(name) => images::tag(daemon, name, &query).await,
        Route::ImageRemove(name) => images::remove(daemon, name, &query).await,
        Route::ImagesSave(name) => images::save(daemon, name, &query).await,
        Route::ImagesLoad => images::load(daemon, &query, req).await,
        Route::ImagesPrune => images::prune(daemon, &query).await,
        // dockerd's: no `fromImage` is an import of `fromSrc`.
        Route::ImagesCreate if query.get("fromImage").is_none_or(str::is_empty) => {
            import::import(daemon, &query, req).await
        }
        Route::ImagesCreate => image_transfer::pull(daemon, &query, req).await,
        Route::ImagePush(name) => image_transfer::push(daemon, name, &query, req).await,
        Route::Auth => image_transfer::login(req).await,
        Route::ImagesSearch => image_search::search(&query, req.headers()).await,
        Route::Commit => commit::commit(daemon, &query, req).await,
        Route::Build => build::build(daemon, &query, req).await,
        Route::ContainerCreate => containers::create(daemon, &query, req).await,
        Route::ContainersList => container_list::list(daemon, &query),
        Route::ContainersPrune => containers::prune(daemon, &query).await,
        Route::NetworksPrune => networks::prune(daemon, &query),
        Route::NetworksList => networks::list(daemon, &query),
        Route::NetworkCreate => networks::create(daemon, req).await,
        Route::NetworkInspect(key) => networks::inspect(daemon, &key),
        Route::NetworkRemove(key) => networks::remove(daemon, &key),
        Route::NetworkConnect(key) => networks::connect(daemon, &key, req).await,
        Route::NetworkDisconnect(key) => networks::disconnect(daemon, &key, req).await,
        Route::BuildPrune => system::prune_build_cache(&query),
        Route::Events => events::stream(&daemon.events, &query),
        Route::SystemDf => disk_usage::df(daemon).await,
        Route::VolumesList => volumes::list(daemon, &query).await,
        Route::VolumeCreate => volumes::create(daemon, req).await,
        Route::VolumesPrune => volumes::prune(daemon, &query).await,
        Route::VolumeInspect(name) => volumes::inspect(daemon, name).await,
        Route::VolumeRemove(name) => volumes::remove(daemon, name, &query).await,
        Route::ExecCreate(key) => exec::create(daemon, &key, req).await,
        Route::ExecStart(id) => exec::start(daemon, &id, req).await,
        Route::ExecInspect(id) => exec::inspect(daemon, &id),
        Route::ExecResize(id) => exec::resize(daemon, &id, &query),
        Route::Container(key, action) => {
            if action == ContainerAction::Kill {
                // Docker checks the signal before it looks for the container.
                containers::signal(&query)?;
            }
            let found = match action {
                // A short `--rm` instance may be gone by the time a client
                // asks; these still answer for it a while (docker-py's run).
                ContainerAction::Wait | ContainerAction::Logs | ContainerAction::Inspect => {
                    daemon.find_or_recently_removed(&key)
                }
                _ => daemon.find(&key),
            };
            let c = found.map_err(|e| match (action, e) {
                // Docker names the verb that failed for a kill.
                (ContainerAction::Kill, DaemonError::NotFound(m)) => {
                    DaemonError::NotFound(format!("Cannot kill container: {key}: {m}"))
                }
                (_, e) => e,
            })?;
            match action {
                ContainerAction::Inspect => Ok(container_inspect::inspect(daemon, &c, &query)),
                ContainerAction::Start => containers::start(daemon, &c).await,
                ContainerAction::Stop => containers::stop(daemon, &c).await,
                ContainerAction::Kill => containers::kill(daemon, &c, &key, &query).await,
                ContainerAction::Wait => container_streams::wait(&c, &query),
                ContainerAction::Logs => container_streams::logs(&c, &query),
                ContainerAction::Attach => container_streams::attach(daemon, &c, &key, &query, req),
                ContainerAction::Remove => {
                    let removed = c.record();
                    let answer = containers::remove(daemon, &c, &query).await?;
                    if query.flag("v") {
                        // Docker's `rm -v`: the anonymous volumes go too.
                        let d = Arc::clone(daemon);
                        tokio::task::spawn_blocking(move || d.remove_anonymous_volumes(&removed))
                            .await
                            .map_err(|e| anyhow::anyhow!("removing the volumes failed: {e}"))?;
                    }
                    Ok(answer)
                }
                ContainerAction::Restart => containers::restart(daemon, &c, &key).await,
                ContainerAction::Pause => containers::pause(daemon, &c),
                ContainerAction::Unpause => containers::unpause(daemon, &c),
                ContainerAction::Rename => containers::rename(daemon, &c, &query),
                ContainerAction::Top => containers::top(daemon, &c),
                ContainerAction::Stats => containers::stats(&c, &query),
                ContainerAction::Changes => container_fs::changes(daemon, &c).await,
                ContainerAction::Export => container_fs::export(daemon, &c).await,
                ContainerAction::ArchiveStat => container_fs::stat(daemon, &c, &key, &query).await,
                ContainerAction::ArchiveGet => container_fs::get(daemon, &c, &key, &query).await,
                ContainerAction::ArchivePut => {
                    container_fs::put(daemon, &c, &key, &query, req).await
                }
            }
        }
    }
}

/// Maps method and path (with an optional `/v1.NN` prefix) to a route.
fn route(method: &Method, raw_path: &str) -> Result<Route, DaemonError> {
    // dockerd matches the decoded path against Go regexps, whose `.` never
    // matches a newline: no route takes a path holding one (`%0A`), and the
    // answer is its 404, not a message echoing a name cut in two lines.
    if percent_decode(strip_version(raw_path)?)?.contains('\n') {
        return Err(page_not_found());
    }
    if let Some(r) = route_served(method, raw_path)? {
        return Ok(r);
    }
    // Not DELETE: `DELETE /images/{name}` takes every path under /images.
    let others = [Method::GET, Method::POST];
    if others
        .iter()
        .any(|m| m != method && matches!(route_served(m, raw_path), Ok(Some(_))))
    {
        // A path served with another method: dockerd's 404 for this one,
        // not the 501 of a resource wrun lacks.
        return Err(page_not_found());
    }
    let path = percent_decode(strip_version(raw_path)?)?;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Err(not_served(method, &segments))
}

/// The route serving `method` on the path; `None` when none does.
fn route_served(method: &Method, raw_path: &str) -> Result<Option<Route>, DaemonError> {
    let path = strip_version(raw_path)?;
    let path = percent_decode(path)?;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // dockerd answers HEAD on /_ping only.
    let get = method == Method::GET;
    let post = method == Method::POST;
    let r = match segments.as_slice() {
        ["_ping"] if get || method == Method::HEAD => Route::Ping,
        ["version"] if get => Route::Version,
        ["info"] if get => Route::Info,
        ["wrun", "shutdown"] if post => Route::Shutdown,
        ["images", "json"] if get => Route::ImagesList,
        ["images", "load"] if post => Route::ImagesLoad,
        ["images", "prune"] if post => Route::ImagesPrune,
        ["images", "create"] if post => Route::ImagesCreate,
        ["images", "search"] if get => Route::ImagesSearch,
        ["commit"] if post => Route::Commit,
        ["build"] if post => Route::Build,
        ["images", rest @ .., "get"] if get => {
            Route::ImagesSave(Some(rest.join("/")).filter(|n| !n.is_empty()))
        }
        ["images", rest @ .., "json"] if get && !rest.is_empty() => {
            Route::ImageInspect(rest.join("/"))
        }
        ["images", rest @ .., "history"] if get && !rest.is_empty() => {
            Route::ImageHistory(rest.join("/"))
        }
        ["images", rest @ .., "tag"] if post && !rest.is_empty() => Route::ImageTag(rest.join("/")),
        ["images", rest @ .., "push"] if post && !rest.is_empty() => {
            Route::ImagePush(rest.join("/"))
        }
        ["auth"] if post => Route::Auth,
        ["images", rest @ ..] if method == Method::DELETE && !rest.is_empty() => {
            Route::ImageRemove(rest.join("/"))
        }
        ["containers", "create"] if post => Route::ContainerCreate,
        ["containers", "json"] if get => Route::ContainersList,
        ["containers", "prune"] if post => Route::ContainersPrune,
        ["networks", "prune"] if post => Route::NetworksPrune,
        ["networks"] if get => Route::NetworksList,
        ["networks", "create"] if post => Route::NetworkCreate,
        ["networks", key] if get => Route::NetworkInspect(key.to_string()),
        ["networks", key] if method == Method::DELETE => Route::NetworkRemove(key.to_string()),
        ["networks", key, "connect"] if post => Route::NetworkConnect(key.to_string()),
        ["networks", key, "disconnect"] if post => Route::NetworkDisconnect(key.to_string()),
        ["build", "prune"] if post => Route::BuildPrune,
        ["events"] if get => Route::Events,
        ["system", "df"] if get => Route::SystemDf,
        ["volumes"] if get => Route::VolumesList,
        ["volumes", "create"] if post => Route::VolumeCreate,
        ["volumes", "prune"] if post => Route::VolumesPrune,
        ["volumes", name] if get => Route::VolumeInspect(name.to_string()),
        ["volumes", name] if method == Method::DELETE => Route::VolumeRemove(name.to_string()),
        ["containers", id, "exec"] if post => Route::ExecCreate(id.to_string()),
        ["exec", id, "start"] if post => Route::ExecStart(id.to_string()),
        ["exec", id, "json"] if get => Route::ExecInspect(id.to_string()),
        ["exec", id, "resize"] if post => Route::ExecResize(id.to_string()),
        ["containers", id] if method == Method::DELETE => {
            Route::Container(id.to_string(), ContainerAction::Remove)
        }
        ["containers", id, action] => {
            let a = match (*action, get, post) {
                ("json", true, _) => ContainerAction::Inspect,
                ("logs", true, _) => ContainerAction::Logs,
                ("start", _, true) => ContainerAction::Start,
                ("stop", _, true) => ContainerAction::Stop,
                ("kill", _, true) => ContainerAction::Kill,
                ("wait", _, true) => ContainerAction::Wait,
                ("attach", _, true) => ContainerAction::Attach,
                ("top", true, _) => ContainerAction::Top,
                ("stats", true, _) => ContainerAction::Stats,
                ("restart", _, true) => ContainerAction::Restart,
                ("pause", _, true) => ContainerAction::Pause,
                ("unpause", _, true) => ContainerAction::Unpause,
                ("rename", _, true) => ContainerAction::Rename,
                ("changes", true, _) => ContainerAction::Changes,
                ("export", true, _) => ContainerAction::Export,
                ("archive", true, _) => ContainerAction::ArchiveGet,
                ("archive", ..) if method == Method::HEAD => ContainerAction::ArchiveStat,
                ("archive", ..) if method == Method::PUT => ContainerAction::ArchivePut,
                _ => return Ok(None),
            };
            Route::Container(id.to_string(), a)
        }
        _ => return Ok(None),
    };
    Ok(Some(r))
}

fn page_not_found() -> DaemonError {
    DaemonError::not_found("page not found")
}

/// The answer to a path no route serves: for a Docker API resource wrun
/// lacks, a 501 that names the docker verb and why (the docker client shows
/// it as "Error response from daemon: …"); otherwise dockerd's 404, also
/// for a method the Docker API never uses (TRACE, PATCH, …).
fn not_served(method: &Method, segments: &[&str]) -> DaemonError {
    let docker_method = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
    ];
    if !docker_method.contains(method) {
        return page_not_found();
    }
    const NO_PROCESSES: &str = "an instance is one wasm module in the daemon, with no processes to start or enter beside it";
    const NO_REGISTRY: &str =
        "of the registry routes wrun serves pull, push, login and search (docs/registry.md)";
    let (verb, why) = match segments {
        ["containers", _, "update"] => {
            ("update", "an instance's limits are set when it is created")
        }
        ["containers", _, "resize"] => ("run -t", "wrun instances have no TTY"),
        ["containers", _, "checkpoints", ..] => ("checkpoint", NO_PROCESSES),
        ["distribution", ..] => ("pull", NO_REGISTRY),
        ["session"] | ["grpc"] => (
            "build",
            "wrun serves the classic builder's POST /build, not BuildKit's: build with DOCKER_BUILDKIT=0",
        ),
        ["swarm", ..]
        | ["nodes", ..]
        | ["services", ..]
        | ["tasks", ..]
        | ["secrets", ..]
        | ["configs", ..] => ("swarm", "wrun is one daemon on one host, with no swarm"),
        ["plugins", ..] => ("plugin", "wrun has no plugins"),
        _ => return page_not_found(),
    };
    DaemonError::NotImplemented(format!(
        "docker {verb}: wrun does not support {verb} yet ({why})"
    ))
}

/// The `/v1.NN` prefix, as (major, minor), if the path has a well-formed one.
fn path_api_version(path: &str) -> Option<(&str, (u32, u32))> {
    let rest = path.strip_prefix("/v")?;
    let version = &rest[..rest.find('/').unwrap_or(rest.len())];
    Some((version, parse_api_version(version)?))
}

fn parse_api_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Docker's refusal of a path whose API version is below the minimum.
fn version_too_old(path: &str) -> Option<String> {
    let (version, asked) = path_api_version(path)?;
    let min = parse_api_version(MIN_API_VERSION)?;
    (asked < min).then(|| {
        format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )
    })
}

/// `/v1.45/containers/json` → `/containers/json`; a version newer than
/// wrun's is refused, as Docker does.
fn strip_version(path: &str) -> Result<&str, DaemonError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(asked) = parse_api_version(version) else {
        return Ok(path);
    };
    if parse_api_version(API_VERSION).is_some_and(|max| asked > max) {
        return Err(DaemonError::invalid(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    Ok(tail)
}

fn percent_decode(s: &str) -> Result<String, DaemonError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| DaemonError::invalid(format!("invalid escape in path {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DaemonError::invalid(format!("path {s:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_routes_wrun_lacks_name_the_verb() {
        for (method, path, verb) in [
            (Method::POST, "/containers/abc/update", "update"),
            (Method::GET, "/distribution/reg.example/app/json", "pull"),
            (Method::POST, "/session", "build"),
            (Method::GET, "/services", "swarm"),
        ] {
            let e = route(&method, path).unwrap_err();
            assert_eq!(e.status(), hyper::StatusCode::NOT_IMPLEMENTED, "{path}");
            assert!(
                e.message().starts_with(&format!(
                    "docker {verb}: wrun does not support {verb} yet ("
                )),
                "{path}: {e}"
            );
        }
        // Paths that are not Docker's keep dockerd's 404.
        assert_eq!(route(&Method::GET, "/nope").unwrap_err(), page_not_found());
        assert_eq!(
            route(&Method::PUT, "/containers/json").unwrap_err(),
            page_not_found()
        );
    }

    #[test]
    fn versions_below_the_minimum_are_refused() {
        assert_eq!(
            version_too_old("/v1.0/version").unwrap(),
            "client version 1.0 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
        assert!(version_too_old("/v1.23/_ping").is_some());
        assert!(version_too_old("/v1.24/_ping").is_none());
        assert!(version_too_old("/v1.45/version").is_none());
        assert!(version_too_old("/version").is_none());
        assert!(version_too_old("/vx/version").is_none());
    }

    #[test]
    fn routes_with_and_without_version_prefix() {
        let r = |m: Method, p: &str| route(&m, p);
        assert_eq!(r(Method::GET, "/_ping").unwrap(), Route::Ping);
        assert_eq!(r(Method::HEAD, "/v1.41/_ping").unwrap(), Route::Ping);
        assert_eq!(
            r(Method::POST, "/v1.45/containers/abc/start").unwrap(),
            Route::Container("abc".into(), ContainerAction::Start)
        );
        assert_eq!(
            r(Method::GET, "/images/reg.example/app%3A1.0/json").unwrap(),
            Route::ImageInspect("reg.example/app:1.0".into())
        );
        assert_eq!(
            r(Method::DELETE, "/containers/abc").unwrap(),
            Route::Container("abc".into(), ContainerAction::Remove)
        );
        assert!(r(Method::GET, "/containers/abc/start").is_err());
        assert_eq!(
            r(Method::POST, "/v1.45/containers/abc/pause").unwrap(),
            Route::Container("abc".into(), ContainerAction::Pause)
        );
        assert_eq!(
            r(Method::GET, "/containers/abc/stats").unwrap(),
            Route::Container("abc".into(), ContainerAction::Stats)
        );
        assert_eq!(
            r(Method::POST, "/containers/prune").unwrap(),
            Route::ContainersPrune
        );
        assert_eq!(r(Method::GET, "/v1.41/events").unwrap(), Route::Events);
        for (method, path, action) in [
            (
                Method::GET,
                "/containers/abc/changes",
                ContainerAction::Changes,
            ),
            (
                Method::GET,
                "/v1.41/containers/abc/export",
                ContainerAction::Export,
            ),
            (
                Method::HEAD,
                "/containers/abc/archive",
                ContainerAction::ArchiveStat,
            ),
            (
                Method::GET,
                "/containers/abc/archive",
                ContainerAction::ArchiveGet,
            ),
            (
                Method::PUT,
                "/v1.41/containers/abc/archive",
                ContainerAction::ArchivePut,
            ),
        ] {
            assert_eq!(
                r(method, path).unwrap(),
                Route::Container("abc".into(), action),
                "{path}"
            );
        }
        assert!(r(Method::POST, "/containers/abc/archive").is_err());
        assert_eq!(
            r(Method::POST, "/v1.41/containers/abc/exec").unwrap(),
            Route::ExecCreate("abc".into())
        );
        assert_eq!(
            r(Method::POST, "/exec/e1/start").unwrap(),
            Route::ExecStart("e1".into())
        );
        assert_eq!(
            r(Method::GET, "/v1.41/exec/e1/json").unwrap(),
            Route::ExecInspect("e1".into())
        );
        assert_eq!(
            r(Method::POST, "/exec/e1/resize").unwrap(),
            Route::ExecResize("e1".into())
        );
        assert!(r(Method::GET, "/exec/e1/start").is_err());
        assert_eq!(r(Method::GET, "/v1.41/system/df").unwrap(), Route::SystemDf);
        assert_eq!(r(Method::GET, "/volumes").unwrap(), Route::VolumesList);
        assert_eq!(
            r(Method::POST, "/v1.41/volumes/create").unwrap(),
            Route::VolumeCreate
        );
        assert_eq!(
            r(Method::POST, "/volumes/prune").unwrap(),
            Route::VolumesPrune
        );
        assert_eq!(
            r(Method::GET, "/volumes/data").unwrap(),
            Route::VolumeInspect("data".into())
        );
        assert_eq!(
            r(Method::DELETE, "/v1.41/volumes/data").unwrap(),
            Route::VolumeRemove("data".into())
        );
        assert!(r(Method::PUT, "/volumes/data").is_err());
        assert_eq!(
            r(Method::GET, "/images/get").unwrap(),
            Route::ImagesSave(None)
        );
        assert_eq!(
            r(Method::GET, "/images/hello:1.0/get").unwrap(),
            Route::ImagesSave(Some("hello:1.0".into()))
        );
        assert_eq!(
            r(Method::DELETE, "/v1.45/images/reg.example/app:1.0").unwrap(),
            Route::ImageRemove("reg.example/app:1.0".into())
        );
        assert_eq!(
            r(Method::POST, "/images/hello:1.0/tag").unwrap(),
            Route::ImageTag("hello:1.0".into())
        );
        assert_eq!(
            r(Method::GET, "/images/hello/history").unwrap(),
            Route::ImageHistory("hello".into())
        );
        assert_eq!(r(Method::POST, "/images/load").unwrap(), Route::ImagesLoad);
        assert_eq!(r(Method::POST, "/v1.41/build").unwrap(), Route::Build);
        assert_eq!(
            r(Method::POST, "/v1.41/images/prune").unwrap(),
            Route::ImagesPrune
        );
        assert!(r(Method::GET, "/containers/abc/rename").is_err());
        assert!(r(Method::GET, "/nope").is_err());
        let too_new = r(Method::GET, "/v9.99/version").unwrap_err();
        assert_eq!(too_new.status(), hyper::StatusCode::BAD_REQUEST);
        assert!(r(Method::GET, "/images/%zz/json").is_err());
    }

    #[test]
    fn a_path_holding_a_newline_is_no_route() {
        for (method, path) in [
            (Method::GET, "/v1.41/containers/a%0Ab/json"),
            (Method::GET, "/containers/fz%0A/json"),
            (Method::GET, "/images/a%0ab/json"),
            (Method::DELETE, "/images/a%0Ab"),
            (Method::POST, "/containers/a%0Ab/exec"),
            (Method::GET, "/version%0A"),
        ] {
            assert_eq!(
                route(&method, path).unwrap_err(),
                page_not_found(),
                "{path}"
            );
        }
        // A NUL is echoed, as dockerd does: only a newline ends its match.
        assert_eq!(
            route(&Method::GET, "/containers/a%00b/json").unwrap(),
            Route::Container("a\0b".into(), ContainerAction::Inspect)
        );
    }
}
