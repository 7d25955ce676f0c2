//! `wrun top INSTANCE`: what runs in an instance. An instance has no
//! processes: the first row is the instance itself (the daemon's pid, the
//! CPU time spent on it, its state and argv), then one per running exec.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::output::print_table;
use wrun_api::containers::TopResponse;

#[derive(Debug, Args)]
pub struct TopArgs {
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
}

pub fn run(target: &DaemonTarget, args: TopArgs) -> anyhow::Result<ExitCode> {
    let top: TopResponse = target.client()?.json(
        Method::GET,
        &format!("/containers/{}/top", super::escape(&args.instance)),
        None,
    )?;
    let titles: Vec<&str> = top.titles.iter().map(String::as_str).collect();
    print_table(&titles, &top.processes)?;
    Ok(ExitCode::SUCCESS)
}
