//! `wrun ps [-a] [-q] [-s] [-n N | -l] [--no-trunc] [--filter K=V] [--format F]`:
//! list instances with Docker's columns, as one JSON object per line, or
//! through a Go template; the daemon applies the filters and the limit.

use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::output::{
    RowFormat, TemplateErrorWords, docker_time, go_json, human_duration, human_size, print_table,
};
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
    /// Filter output: status=, name=, id=, label=, ancestor=, exited=,
    /// before=, since=, publish=, expose=, network=, volume=, health=,
    /// is-task=, isolation= (repeatable; labels must all match)
    #[arg(short = 'f', long = "filter", value_name = "FILTER", value_parser = super::images::filter_flag)]
    pub filters: Vec<String>,
    /// Show the N last created instances (stopped ones included)
    #[arg(short = 'n', long = "last", value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the latest created instance (stopped ones included)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Display total file sizes (an instance writes nothing over its image)
    #[arg(short = 's', long)]
    pub size: bool,
    /// `table` (default), `json` (one object per line), `table TEMPLATE` or a
    /// Go template: {{.ID}} {{.Image}} {{.Command}} {{.CreatedAt}}
    /// {{.RunningFor}} {{.Ports}} {{.State}} {{.Status}} {{.Size}} {{.Names}}
    /// {{.Labels}} {{.Label "KEY"}} {{.Mounts}} {{.Networks}} {{.LocalVolumes}}
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
    image: String,
    labels: String,
    local_volumes: &'a str,
    mounts: String,
    names: String,
    networks: String,
    /// The image's platform, which Docker fills only from API 1.48.
    platform: Option<()>,
    ports: &'a str,
    running_for: String,
    size: &'a str,
    state: &'a str,
    status: &'a str,
}

/// docker ps's words for a template that does not parse or run.
const PS_TEMPLATE_ERRORS: TemplateErrorWords = TemplateErrorWords {
    parse: "failed to parse template",
    execute: "failed to execute template",
};

/// The column titles of docker ps's fields, for a `table` template.
const PS_HEADERS: [(&str, &str); 15] = [
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
    ("Platform", "PLATFORM"),
];

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
    let format = RowFormat::parse(args.format.as_deref(), &PS_TEMPLATE_ERRORS)?;
    let json = !matches!(format, RowFormat::Table);
    let limit = if args.latest { 1 } else { args.last };
    let mut path = format!("/containers/json?all={}", u8::from(args.all));
    if limit > 0 {
        path.push_str(&format!("&limit={limit}"));
    }
    // As the docker client: sizes are asked for when the template reads them.
    let sizes = args.size || format.uses_field("Size");
    if sizes {
        path.push_str("&size=1");
    }
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
    let trunc = !args.no_trunc;
    // Docker's IMAGE: an image ID cut to 12 digits unless --no-trunc.
    let image = |r: &ContainerSummary| match r.image.strip_prefix("sha256:") {
        Some(hex) if trunc => hex.chars().take(12).collect(),
        _ => r.image.clone(),
    };
    let command = |r: &ContainerSummary| {
        let c = if trunc {
            ellipsis(&r.command, 20)
        } else {
            r.command.clone()
        };
        serde_json::to_string(&c).unwrap_or(c)
    };
    let names = |r: &ContainerSummary| {
        r.names
            .iter()
            .map(|n| n.trim_start_matches('/'))
            .collect::<Vec<_>>()
            .join(",")
    };
    // Docker's SIZE: what the instance wrote, and the image under it.
    let size = |r: &ContainerSummary| {
        let rw = human_size(u64::try_from(r.size_rw.unwrap_or(0)).unwrap_or(0));
        match r.size_root_fs.filter(|&v| v > 0) {
            Some(v) => format!(
                "{rw} (virtual {})",
                human_size(u64::try_from(v).unwrap_or(0))
            ),
            None => rw,
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if json {
        let mut lines = Vec::with_capacity(rows.len());
        for r in &rows {
            let line = PsLine {
                command: command(r),
                created_at: docker_time(r.created),
                id: id(r),
                image: image(r),
                labels: r
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                // Docker counts the mounts of local volumes; wrun has binds only.
                local_volumes: "0",
                mounts: r
                    .mounts
                    .iter()
                    .map(|m| {
                        if trunc {
                            ellipsis(&m.source, 15)
                        } else {
                            m.source.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                names: names(r),
                networks: r
                    .network_settings
                    .networks
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
                platform: None,
                ports: &wrun_api::network::ports_column(&r.ports),
                running_for: format!("{} ago", human_duration(now - r.created)),
                size: &size(r),
                state: &r.state,
                status: &r.status,
            };
            lines.push(serde_json::to_value(&line)?);
        }
        if let RowFormat::Json = format {
            for line in &lines {
                println!("{}", go_json(line)?);
            }
        } else {
            format.print_rows(&lines, &PS_HEADERS, &PS_TEMPLATE_ERRORS)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                id(r),
                image(r),
                command(r),
                format!("{} ago", human_duration(now - r.created)),
                r.status.clone(),
                wrun_api::network::ports_column(&r.ports),
                names(r),
            ];
            if args.size {
                row.push(size(r));
            }
            row
        })
        .collect();
    let mut header = vec![
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    if args.size {
        header.push("SIZE");
    }
    print_table(&header, &table)?;
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
