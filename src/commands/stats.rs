//! `wrun stats [--no-stream] [-a] [INSTANCE...]`: CPU and memory of
//! instances, in Docker's columns. Memory is linear memory plus tables in
//! use; CPU % is the share of the host's CPU time the daemon spent running
//! the instance over the last second.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::api::containers::{ContainerStats, ContainerSummary};
use crate::client::Client;
use crate::output::{human_size, print_table};

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all instances (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print one sample and exit
    #[arg(long)]
    pub no_stream: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

/// Docker's binary sizes for memory ("1.5MiB").
fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.4}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
        + UNITS[unit]
}

fn sample(client: &Client, names: &[String], no_trunc: bool) -> anyhow::Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    for name in names {
        let s: ContainerStats = client.json(
            Method::GET,
            &format!("/containers/{}/stats?stream=false", super::escape(name)),
            None,
        )?;
        let id = if no_trunc {
            s.id.clone()
        } else {
            s.id.chars().take(12).collect()
        };
        rows.push(vec![
            id,
            s.name.trim_start_matches('/').to_string(),
            format!("{:.2}%", s.cpu_percent()),
            format!(
                "{} / {}",
                binary_size(s.memory_stats.usage),
                binary_size(s.memory_stats.limit)
            ),
            format!("{:.2}%", s.memory_percent()),
            format!("{} / {}", human_size(0), human_size(0)),
            format!("{} / {}", human_size(0), human_size(0)),
            s.pids_stats.current.to_string(),
        ]);
    }
    Ok(rows)
}

pub fn run(target: &DaemonTarget, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    let header = [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ];
    loop {
        let names = if args.instances.is_empty() {
            let path = format!("/containers/json?all={}", u8::from(args.all));
            let list: Vec<ContainerSummary> = client.json(Method::GET, &path, None)?;
            list.into_iter().map(|c| c.id).collect()
        } else {
            args.instances.clone()
        };
        let rows = sample(&client, &names, args.no_trunc)?;
        if !args.no_stream {
            // Clear the screen and go home, as docker stats redraws.
            print!("\x1b[2J\x1b[H");
        }
        print_table(&header, &rows)?;
        if args.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_sizes_are_binary_like_docker() {
        assert_eq!(super::binary_size(0), "0B");
        assert_eq!(super::binary_size(1536), "1.5KiB");
        assert_eq!(super::binary_size(1 << 20), "1MiB");
    }
}
