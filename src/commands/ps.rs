//! `wrun ps [-a] [-q] [--no-trunc]`: list instances with Docker's columns.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::api::containers::ContainerSummary;
use crate::output::{human_duration, print_table};

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all instances (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

/// Docker's `Ellipsis`: at most `max` characters, the last one "…".
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

pub fn run(target: &DaemonTarget, args: PsArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/containers/json?all={}", u8::from(args.all));
    let rows: Vec<ContainerSummary> = target.client()?.json(Method::GET, &path, None)?;
    let id = |s: &ContainerSummary| {
        if args.no_trunc {
            s.id.clone()
        } else {
            s.id.chars().take(12).collect()
        }
    };
    if args.quiet {
        for r in &rows {
            println!("{}", id(r));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let command = if args.no_trunc {
                r.command.clone()
            } else {
                ellipsis(&r.command, 20)
            };
            vec![
                id(r),
                r.image.clone(),
                format!("\"{command}\""),
                format!("{} ago", human_duration(now - r.created)),
                r.status.clone(),
                String::new(),
                r.names
                    .iter()
                    .map(|n| n.trim_start_matches('/'))
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    print_table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &table,
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn commands_are_cut_like_docker() {
        assert_eq!(super::ellipsis("/hello.wasm Bob", 20), "/hello.wasm Bob");
        assert_eq!(
            super::ellipsis("/hello.wasm a-very-long-argument", 20),
            "/hello.wasm a-very-…"
        );
    }
}
