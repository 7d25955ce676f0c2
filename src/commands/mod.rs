//! One module per CLI verb, plus the one place errors become exit codes.

pub mod attach;
pub mod build;
pub mod commit;
pub mod container_inspect;
pub mod container_prune;
pub mod cp;
pub mod daemon;
pub mod diff;
pub mod events;
pub mod exec;
pub mod export;
pub mod history;
pub mod images;
pub mod import;
pub mod info;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod network;
pub mod pause;
pub mod port;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod run_args;
pub mod run_detached;
pub mod run_http;
pub mod run_refused;
pub mod save;
pub mod search;
pub mod start;
pub mod stats;
pub mod stop;
pub mod system;
pub mod system_df;
pub mod tag;
pub mod top;
pub mod unpause;
pub mod version;
pub mod volume;
pub mod wait;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

/// Percent-escapes one path or query component.
pub fn escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `--filter k=v` flags as Docker's `{"k":{"v":true}}`.
pub fn filters_json(filters: &[String]) -> anyhow::Result<String> {
    wrun_api::parse::filters_json(filters).map_err(anyhow::Error::msg)
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

pub use wrun_daemon::describe;
pub use wrun_daemon::open_store;
pub use wrun_daemon::outcome::{EXIT_FAILURE, EXIT_RUN_ERROR, exit_code};
