//! The `wrun` binary: parses the command line and dispatches to one command.

mod cli;
mod client;
mod commands;
mod host;
mod image_backend;
mod output;
mod paths;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ContainerCommand, ImageCommand, SystemCommand};

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Docker exits 125 for a bad `run` or `create` flag; other usage
            // errors keep clap's 2.
            let is_run = verb().is_some_and(|a| a == "run" || a == "create" || a.ends_with(".tar"));
            let code = match e.exit_code() {
                0 => 0,
                _ if is_run => commands::EXIT_RUN_ERROR,
                other => u8::try_from(other).unwrap_or(2),
            };
            return ExitCode::from(code);
        }
    };
    let is_run = matches!(
        cli.command,
        Command::Run(_) | Command::Create(_) | Command::External(_)
    );
    match run(cli) {
        Ok(code) => code,
        Err(_) if stdout_closed() => ExitCode::from(EXIT_CLOSED_STDOUT),
        Err(err) => {
            eprintln!("Error: {}", commands::describe(&err));
            ExitCode::from(commands::exit_code(&err, is_run))
        }
    }
}

/// How a verb ends when its reader went away (`wrun logs X | head -c 10`):
/// as the docker client does, quietly, with the shell's status for death by
/// SIGPIPE (128 + 13). The docker client is killed by the signal; wrun
/// keeps SIGPIPE ignored (a write to a daemon that closed its socket must
/// be an error, not a death) and exits with the same status.
const EXIT_CLOSED_STDOUT: u8 = 128 + 13;

/// Whether our stdout is a pipe or socket whose reader is gone: the kernel
/// flags its write end with an error (`POLLERR`; a peer's shutdown of a
/// socket, `POLLHUP`).
fn stdout_closed() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero))
        .is_ok_and(|_| fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP))
}

/// `print!` and `println!` panic when stdout's reader is gone; that too
/// ends quietly (see [`EXIT_CLOSED_STDOUT`]). Any other panic is reported
/// as before.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && stdout_closed() {
            std::process::exit(i32::from(EXIT_CLOSED_STDOUT));
        }
        report(info);
    }));
}

/// The command line's first word that is not a global option or its value.
fn verb() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-H" | "--host" | "--root" => {
                args.next();
            }
            _ if a.starts_with('-') => {}
            _ => return Some(a),
        }
    }
    None
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let root = paths::store_root(cli.root.as_deref())?;
    let host = cli.host.as_deref();
    let target = || commands::DaemonTarget::new(&root, host);
    match cli.command {
        Command::Run(a) => commands::run::run(&root, host, *a),
        Command::External(words) => commands::run::run_shorthand(&root, host, words),
        Command::Daemon(a) => commands::daemon::run(&target()?, a),
        Command::System(SystemCommand::Shutdown) => commands::daemon::shutdown(&target()?),
        Command::Ps(a) => commands::ps::run(&target()?, a),
        Command::Info(a) => commands::info::run(&target()?, a),
        Command::Version(a) => commands::version::run(&target()?, a),
        Command::Logs(a) => commands::logs::run(&target()?, a),
        Command::Stop(a) => commands::stop::run(&target()?, a),
        Command::Create(a) => commands::run_detached::run_create(&root, host, *a),
        Command::Start(a) => commands::start::run(&target()?, a),
        Command::Attach(a) => commands::attach::run(&target()?, a),
        Command::Restart(a) => commands::restart::run(&target()?, a),
        Command::Pause(a) => commands::pause::run(&target()?, a),
        Command::Unpause(a) => commands::unpause::run(&target()?, a),
        Command::Rename(a) => commands::rename::run(&target()?, a),
        Command::Exec(a) => commands::exec::run(&target()?, a),
        Command::Top(a) => commands::top::run(&target()?, a),
        Command::Diff(a) | Command::Container(ContainerCommand::Diff(a)) => {
            commands::diff::run(&target()?, a)
        }
        Command::Cp(a) | Command::Container(ContainerCommand::Cp(a)) => {
            commands::cp::run(&target()?, a)
        }
        Command::Export(a) | Command::Container(ContainerCommand::Export(a)) => {
            commands::export::run(&target()?, a)
        }
        Command::Port(a) => commands::port::run(&target()?, a),
        Command::Stats(a) => commands::stats::run(&target()?, a),
        Command::Events(a) => commands::events::run(&target()?, a),
        Command::Container(ContainerCommand::Prune(a)) => {
            commands::container_prune::run(&target()?, a)
        }
        Command::Kill(a) => commands::kill::run(&target()?, a),
        Command::Wait(a) => commands::wait::run(&target()?, a),
        Command::Rm(a) => commands::rm::run(&target()?, a),
        Command::Inspect(a) => commands::container_inspect::run(&target()?, a),
        Command::Build(a) | Command::Image(ImageCommand::Build(a)) => {
            commands::build::run(&root, host, a)
        }
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => {
            commands::images::run(&root, host, a)
        }
        Command::Image(ImageCommand::Inspect(a)) => commands::inspect::run(&root, host, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            commands::history::run(&root, host, a)
        }
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => {
            commands::tag::run(&root, host, a)
        }
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => {
            commands::pull::run(&root, host, a)
        }
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => {
            commands::push::run(&root, host, a)
        }
        Command::Login(a) => commands::login::run(a),
        Command::Logout(a) => commands::logout::run(a),
        Command::Search(a) => match host {
            Some(_) => commands::search::run(Some(&target()?), a),
            None => commands::search::run(None, a),
        },
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => {
            commands::save::run(&root, host, a)
        }
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => {
            commands::load::run(&root, host, a)
        }
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => {
            commands::import::run(&root, host, a)
        }
        Command::Commit(a) | Command::Container(ContainerCommand::Commit(a)) => {
            commands::commit::run(&target()?, a)
        }
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => commands::rmi::run(&root, host, a),
        Command::Image(ImageCommand::Prune(a)) => commands::system::prune(&root, host, a, false),
        Command::System(SystemCommand::Df(a)) => commands::system_df::run(&root, host, a),
        Command::Volume(c) => commands::volume::run(&target()?, c),
        Command::Network(c) => commands::network::run(&target()?, c),
        Command::System(SystemCommand::Prune(a)) => commands::system::prune(&root, host, a, true),
    }
}
