//! `wrun stats [--no-stream] [-a] [--format F] [INSTANCE...]`: CPU and memory
//! of instances, in Docker's columns, as JSON lines or through a Go template. Memory is linear memory plus tables in
//! use; CPU % is the share of the host's CPU time the daemon spent running
//! the instance over the last second.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::client::Client;
use crate::output::{RowFormat, TEMPLATE_ERRORS, go_json, human_size, print_table};
use wrun_api::containers::{ContainerStats, ContainerSummary};

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
    /// "table" (default), "json" (one object per line), "table TEMPLATE" or a
    /// Go template: {{.Container}} {{.ID}} {{.Name}} {{.CPUPerc}} {{.MemUsage}}
    /// {{.MemPerc}} {{.NetIO}} {{.BlockIO}} {{.PIDs}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
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
    // Go's "%.4g": four significant digits, trailing zeros dropped.
    let int_digits = (value.max(1.0).log10().floor() as usize) + 1;
    let decimals = 4usize.saturating_sub(int_digits);
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    text + UNITS[unit]
}

/// One-shot samples (no server-side wait) of each instance; with `listed`
/// (names from `ps`, not the user), one removed meanwhile is left out.
fn samples(client: &Client, names: &[String], listed: bool) -> anyhow::Result<Vec<ContainerStats>> {
    let mut out = Vec::new();
    for name in names {
        let path = format!(
            "/containers/{}/stats?stream=false&one-shot=true",
            super::escape(name)
        );
        match client.json::<ContainerStats>(Method::GET, &path, None) {
            Ok(s) => out.push(s),
            Err(e) if listed && crate::client::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn row(s: &ContainerStats, no_trunc: bool) -> Vec<String> {
    let id = if no_trunc {
        s.id.clone()
    } else {
        s.id.chars().take(12).collect()
    };
    vec![
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
    ]
}

/// The column titles of docker stats' fields, for a `table` template.
const STATS_HEADERS: [(&str, &str); 9] = [
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// A row as docker stats' template fields; `.Container` is the name or ID
/// the instance was asked by (its ID when listed).
fn fields(row: &[String], asked: &str) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("Container".into(), asked.into());
    for ((key, _), value) in STATS_HEADERS[1..].iter().zip(row) {
        map.insert((*key).into(), value.clone().into());
    }
    serde_json::Value::Object(map)
}

/// How far apart the two samples a CPU % is computed from are.
const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

pub fn run(target: &DaemonTarget, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let format = RowFormat::parse(args.format.as_deref(), &TEMPLATE_ERRORS)?;
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
    let names = || -> anyhow::Result<Vec<String>> {
        if args.instances.is_empty() {
            let path = format!("/containers/json?all={}", u8::from(args.all));
            let list: Vec<ContainerSummary> = client.json(Method::GET, &path, None)?;
            Ok(list.into_iter().map(|c| c.id).collect())
        } else {
            Ok(args.instances.clone())
        }
    };
    let listed = args.instances.is_empty();
    // CPU % needs two samples: take them a second apart for all instances
    // at once, rather than waiting a second per instance.
    let mut previous = samples(&client, &names()?, listed)?;
    loop {
        std::thread::sleep(INTERVAL);
        let mut current = samples(&client, &names()?, listed)?;
        for s in &mut current {
            if let Some(p) = previous.iter().find(|p| p.id == s.id) {
                s.precpu_stats = p.cpu_stats.clone();
                s.preread = p.read.clone();
            }
        }
        let rows: Vec<Vec<String>> = current.iter().map(|s| row(s, args.no_trunc)).collect();
        if !args.no_stream {
            // Clear the screen and go home, as docker stats redraws.
            print!("\x1b[2J\x1b[H");
        }
        if let RowFormat::Table = format {
            print_table(&header, &rows)?;
        } else {
            let lines: Vec<serde_json::Value> = current
                .iter()
                .zip(&rows)
                .map(|(s, row)| {
                    let asked = args
                        .instances
                        .iter()
                        .find(|n| {
                            s.id.starts_with(n.as_str())
                                || s.name.trim_start_matches('/') == n.as_str()
                        })
                        .cloned()
                        .unwrap_or_else(|| row[0].clone());
                    fields(row, &asked)
                })
                .collect();
            if let RowFormat::Json = format {
                for line in &lines {
                    println!("{}", go_json(line)?);
                }
            } else {
                format.print_rows(&lines, &STATS_HEADERS, &TEMPLATE_ERRORS)?;
            }
        }
        if args.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        previous = current;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_sizes_are_binary_like_docker() {
        assert_eq!(super::binary_size(0), "0B");
        assert_eq!(super::binary_size(1536), "1.5KiB");
        assert_eq!(super::binary_size(1 << 20), "1MiB");
        assert_eq!(super::binary_size(1_114_522), "1.063MiB");
        assert_eq!(super::binary_size(25_276_000_000), "23.54GiB");
    }
}
