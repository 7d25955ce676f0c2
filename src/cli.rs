//! The command line: clap definitions for every verb. Parsing only; each
//! command's behaviour lives in `commands/<verb>.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use std::ffi::OsString;

use crate::commands::{
    attach, build, container_inspect, container_prune, daemon, events, exec, history, images, info,
    inspect, kill, load, logs, pause, port, ps, pull, push, rename, restart, rm, rmi, run_args,
    save, start, stats, stop, system, system_df, tag, top, unpause, version, volume, wait,
};

/// Run WebAssembly (WASI) images the way Docker runs containers.
///
/// `wrun IMAGE.tar [ARG...]` is short for `wrun run IMAGE.tar [ARG...]`.
#[derive(Debug, Parser)]
#[command(name = "wrun", version, about, long_about = None, propagate_version = true)]
#[command(override_usage = "wrun [OPTIONS] <COMMAND>\n       wrun IMAGE.tar [ARG...]")]
pub struct Cli {
    /// Store directory [default: $WRUN_ROOT, /var/lib/wrun as root, else $XDG_DATA_HOME/wrun]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "WRUN_ROOT",
        hide_env = true
    )]
    pub root: Option<PathBuf>,

    /// Daemon socket: unix:///PATH or PATH, given before the command, as docker's -H [default: $WRUN_HOST, /run/wrun/wrun.sock as root, else $XDG_RUNTIME_DIR/wrun.sock]
    #[arg(
        short = 'H',
        long,
        value_name = "HOST",
        env = "WRUN_HOST",
        hide_env = true
    )]
    pub host: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new instance: wrun run [OPTIONS] IMAGE|IMAGE.tar [ARG...]
    Run(Box<run_args::RunArgs>),
    /// Build an image from a wrun.toml or Dockerfile-syntax build file
    Build(build::BuildArgs),
    /// Run the daemon that holds instances and serves the Docker-shaped API
    Daemon(daemon::DaemonArgs),
    /// List instances
    Ps(ps::PsArgs),
    /// Fetch the logs of an instance
    Logs(logs::LogsArgs),
    /// Create a new instance without starting it (the flags of `run`)
    Create(Box<run_args::RunArgs>),
    /// Start one or more stopped instances
    Start(start::StartArgs),
    /// Attach to a running instance's output (and stdin, if created with -i)
    Attach(attach::AttachArgs),
    /// Stop one or more running instances
    Stop(stop::StopArgs),
    /// Restart one or more instances
    Restart(restart::RestartArgs),
    /// Pause all scheduling of one or more instances (they keep their memory)
    Pause(pause::PauseArgs),
    /// Unpause one or more instances
    Unpause(unpause::UnpauseArgs),
    /// Rename an instance
    Rename(rename::RenameArgs),
    /// Run a command (a wasm module) beside a running instance, sharing its filesystem
    Exec(exec::ExecArgs),
    /// Display what runs in an instance (the instance, then its running execs)
    Top(top::TopArgs),
    /// Inspect changes to files or directories on an instance's filesystem
    Diff(crate::commands::diff::DiffArgs),
    /// Copy files/folders between an instance and the local filesystem
    Cp(crate::commands::cp::CpArgs),
    /// Export an instance's filesystem as a tar archive
    Export(crate::commands::export::ExportArgs),
    /// List the published ports of an instance, or where one guest port landed
    Port(port::PortArgs),
    /// Display CPU and memory use of instances
    Stats(stats::StatsArgs),
    /// Get real time events from the daemon
    Events(events::EventsArgs),
    /// Manage instances
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Kill one or more running instances
    Kill(kill::KillArgs),
    /// Block until instances stop, then print their exit codes
    Wait(wait::WaitArgs),
    /// Remove one or more instances
    Rm(rm::RmArgs),
    /// Display detailed information on instances (or images)
    Inspect(container_inspect::ContainerInspectArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// Log in to a registry (credentials kept for pull and push)
    Login(crate::commands::login::LoginArgs),
    /// Log out from a registry
    Logout(crate::commands::logout::LogoutArgs),
    /// Search a registry's repositories (its catalog) for a term
    Search(crate::commands::search::SearchArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::SaveArgs),
    /// Load images from a tar archive or STDIN
    Load(load::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(crate::commands::import::ImportArgs),
    /// Create a new image from an instance's changes
    Commit(crate::commands::commit::CommitArgs),
    /// Remove one or more images
    Rmi(rmi::RmiArgs),
    /// Display system-wide information: instances, images, capacity
    Info(info::InfoArgs),
    /// Show the wrun version information (client and daemon)
    Version(version::VersionArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(crate::commands::network::NetworkCommand),
    /// Manage wrun (disk usage, pruning)
    #[command(subcommand)]
    System(SystemCommand),
    /// `wrun IMAGE.tar [ARG...]`: run an image tar (or stored image)
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image from a build file
    Build(build::BuildArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(inspect::InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// Save one or more images to a tar archive
    Save(save::SaveArgs),
    /// Load images from a tar archive or STDIN
    Load(load::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(crate::commands::import::ImportArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(rmi::RmiArgs),
    /// Remove unused images
    Prune(system::PruneArgs),
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Copy files/folders between an instance and the local filesystem
    Cp(crate::commands::cp::CpArgs),
    /// Inspect changes to files or directories on an instance's filesystem
    Diff(crate::commands::diff::DiffArgs),
    /// Export an instance's filesystem as a tar archive
    Export(crate::commands::export::ExportArgs),
    /// Create a new image from an instance's changes
    Commit(crate::commands::commit::CommitArgs),
    /// Remove all stopped instances
    Prune(container_prune::ContainerPruneArgs),
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show wrun disk usage
    Df(system_df::DfArgs),
    /// Remove unused data
    Prune(system::PruneArgs),
    /// Stop the daemon
    Shutdown,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
