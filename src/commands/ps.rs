//! `wrun ps [-a] [-q] [--no-trunc] [--filter K=V] [--format json]`: list
//! instances with Docker's columns, or as one JSON object per line.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::output::{human_duration, print_table};
use wrun_api::containers::ContainerSummary;

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
    /// Filter: status=, name=, id=, label=, ancestor=, exited= (repeatable)
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// `table` (default) or `json` (one object per line, as `docker ps --format json`)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// One line of `ps --format json`, with Docker's keys.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PsLine<'a> {
    command: String,
    created_at: String,
    #[serde(rename = "ID")]
    id: String,
    image: &'a str,
    labels: String,
    mounts: String,
    names: String,
    networks: &'a str,
    ports: &'a str,
    running_for: String,
    size: &'a str,
    state: &'a str,
    status: &'a str,
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
    let json = match args.format.as_deref() {
        None | Some("table") => false,
        Some("json" | "{{json .}}") => true,
        Some(other) => anyhow::bail!("unsupported format {other:?}: use table or json"),
    };
    let mut path = format!("/containers/json?all={}", u8::from(args.all));
    if !args.filters.is_empty() {
        path.push_str("&filters=");
        path.push_str(&super::escape(&super::filters_json(&args.filters)?));
    }
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
    if json {
        for r in &rows {
            let created_at = time::OffsetDateTime::from_unix_timestamp(r.created)
                .ok()
                .map(wrun_api::time::format)
                .unwrap_or_default();
            let line = PsLine {
                command: format!("\"{}\"", r.command),
                created_at,
                id: id(r),
                image: &r.image,
                labels: r
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                mounts: r
                    .mounts
                    .iter()
                    .map(|m| m.source.clone())
                    .collect::<Vec<_>>()
                    .join(","),
                names: r
                    .names
                    .iter()
                    .map(|n| n.trim_start_matches('/'))
                    .collect::<Vec<_>>()
                    .join(","),
                networks: &r.host_config.network_mode,
                ports: &wrun_api::network::ports_column(&r.ports),
                running_for: format!("{} ago", human_duration(now - r.created)),
                size: "0B",
                state: &r.state,
                status: &r.status,
            };
            println!("{}", serde_json::to_string(&line)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
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
                wrun_api::network::ports_column(&r.ports),
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
