//! The `wrun` binary: parses the command line and dispatches to one command.

mod api;
mod cli;
mod commands;
mod output;
mod paths;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ImageCommand, SystemCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {}", commands::describe(&err));
            ExitCode::from(commands::exit_code(&err))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let root = paths::store_root(cli.root.as_deref())?;
    match cli.command {
        Command::Build(a) | Command::Image(ImageCommand::Build(a)) => {
            commands::build::run(&root, a)
        }
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => commands::images::run(&root, a),
        Command::Image(ImageCommand::Inspect(a)) => commands::inspect::run(&root, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            commands::history::run(&root, a)
        }
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => commands::tag::run(&root, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => commands::save::run(&root, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => commands::load::run(&root, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => commands::rmi::run(&root, a),
        Command::Image(ImageCommand::Prune(a)) => commands::system::prune(&root, a, false),
        Command::System(SystemCommand::Df(a)) => commands::system::df(&root, a),
        Command::System(SystemCommand::Prune(a)) => commands::system::prune(&root, a, true),
    }
}
