//! One module per CLI verb, plus the one place errors become exit codes.

pub mod attach;
pub mod build;
pub mod container_inspect;
pub mod container_prune;
pub mod daemon;
pub mod events;
pub mod history;
pub mod images;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod logs;
pub mod pause;
pub mod port;
pub mod ps;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod run_detached;
pub mod save;
pub mod start;
pub mod stats;
pub mod stop;
pub mod system;
pub mod tag;
pub mod top;
pub mod unpause;
pub mod wait;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use wrun_image::Store;

/// Exit code for failures of image commands (as Docker's CLI).
pub const EXIT_FAILURE: u8 = 1;
/// `run`: wrun itself failed (bad flag, no such image, store error), as Docker.
pub const EXIT_RUN_ERROR: u8 = 125;
/// `run`: the module cannot be run (invalid, wrong kind, not a command), as Docker's 126.
pub const EXIT_CANNOT_RUN: u8 = 126;
/// `run`: the module is not in the image, as Docker's 127 "command not found".
pub const EXIT_NOT_FOUND: u8 = 127;
/// `run`: the guest ran past `--timeout` (the code GNU `timeout` uses).
pub const EXIT_TIMEOUT: u8 = 124;
/// `run`: the guest trapped (unreachable, out of bounds, stack overflow): 128 + SIGABRT.
pub const EXIT_TRAP: u8 = 134;
/// `run`: the guest hit `--memory` and trapped: 128 + SIGKILL, Docker's OOM-killed code.
pub const EXIT_MEMORY: u8 = 137;
/// `run`: the guest used up `--fuel`: 128 + SIGXCPU.
pub const EXIT_FUEL: u8 = 152;

/// Failures of `run` that have their own exit code.
#[derive(Debug)]
pub enum RunFailure {
    /// The entrypoint names no file in the image.
    ModuleMissing(String),
    /// The module exists but cannot run.
    CannotRun(String),
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunFailure::ModuleMissing(m) | RunFailure::CannotRun(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RunFailure {}

/// What `run` prints for a trap, naming the cause.
pub fn trap_summary(reason: wrun_runtime::TrapReason) -> String {
    use wrun_runtime::TrapReason as T;
    match reason {
        T::Timeout => "stopped: the --timeout ran out".into(),
        T::OutOfFuel => "stopped: the --fuel budget ran out".into(),
        T::MemoryLimit => "stopped: the --memory limit was reached".into(),
        other => format!("the guest trapped: {other}"),
    }
}

/// The exit code for a guest stopped by a trap.
pub fn trap_exit_code(reason: wrun_runtime::TrapReason) -> u8 {
    use wrun_runtime::TrapReason as T;
    match reason {
        T::Timeout => EXIT_TIMEOUT,
        T::OutOfFuel => EXIT_FUEL,
        T::MemoryLimit => EXIT_MEMORY,
        _ => EXIT_TRAP,
    }
}

/// The daemon a command talks to: its socket, and the store a daemon
/// started on demand serves.
pub struct DaemonTarget {
    pub root: PathBuf,
    pub socket: PathBuf,
}

impl DaemonTarget {
    pub fn new(root: &Path, host: Option<&str>) -> anyhow::Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            socket: crate::host::socket_path(host)?,
        })
    }

    /// A client of the daemon, started in the background if none answers.
    pub fn client(&self) -> anyhow::Result<crate::client::Client> {
        crate::client::Client::connect(&self.socket, &self.root)
    }
}

/// Where an image verb works: the daemon's REST API when a daemon answers
/// at the CLI's target, else the local store.
pub enum ImageBackend {
    Api(crate::client::Client),
    Local(Store),
}

impl ImageBackend {
    /// A host named with `-H`/`$WRUN_HOST` must answer (its store is
    /// whatever the daemon serves). With no host named, the daemon on the
    /// default socket is used when it serves `root`, which is where `build`
    /// puts images; otherwise the store at `root` is opened directly. Never
    /// starts a daemon: image verbs need none.
    pub fn choose(root: &Path, host: Option<&str>) -> anyhow::Result<Self> {
        let socket = crate::host::socket_path(host)?;
        if host.is_some_and(|h| !h.is_empty()) {
            return Ok(Self::Api(crate::client::Client::connect_existing(&socket)?));
        }
        if let Ok(client) = crate::client::Client::connect_existing(&socket)
            && serves(&client, root)
        {
            return Ok(Self::Api(client));
        }
        Ok(Self::Local(open_store(root)?))
    }
}

/// Whether the daemon's store is the directory `root`. A relative root in
/// the daemon's answer cannot be resolved here, so it never matches.
fn serves(client: &crate::client::Client, root: &Path) -> bool {
    let Ok(info) = client.json::<crate::api::system::SystemInfo>(hyper::Method::GET, "/info", None)
    else {
        return false;
    };
    let served = Path::new(&info.docker_root_dir);
    served.is_absolute()
        && matches!(
            (std::fs::canonicalize(served), std::fs::canonicalize(root)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// Percent-escapes one path or query component.
pub fn escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `--filter k=v` flags as Docker's `{"k":{"v":true}}`.
pub fn filters_json(filters: &[String]) -> anyhow::Result<String> {
    use std::collections::BTreeMap;
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("invalid filter {f:?}: expected KEY=VALUE");
        };
        map.entry(k.to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(serde_json::to_string(&map)?)
}

/// Runs `op` on each name, printing each failure as Docker does and going
/// on; exits 1 if any failed.
pub fn for_each(
    names: &[String],
    mut op: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for name in names {
        if let Err(e) = op(name) {
            eprintln!("Error: {}", describe(&e));
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn open_store(root: &Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("opening the image store at {}", root.display()))
}

/// The one line the user sees: the outermost message, then each cause that
/// adds something, joined with ": ".
pub fn describe(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Maps an error to the process exit code; `run` has Docker's 125/126/127.
pub fn exit_code(err: &anyhow::Error, is_run: bool) -> u8 {
    if !is_run {
        return EXIT_FAILURE;
    }
    match err.chain().find_map(|c| c.downcast_ref::<RunFailure>()) {
        Some(RunFailure::ModuleMissing(_)) => EXIT_NOT_FOUND,
        Some(RunFailure::CannotRun(_)) => EXIT_CANNOT_RUN,
        None => EXIT_RUN_ERROR,
    }
}
