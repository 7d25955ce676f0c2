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
    /// Display total file sizes (what each instance wrote, and its image under it)
    #[arg(short = 's', long)]
    pub size: bool,
    /// `table` (default), `json` (one object per line), `table TEMPLATE` or a
    /// Go template: {{.ID}} {{.Image}} {{.Command}} {{.CreatedAt}}
    /// {{.RunningFor}} {{.Ports}} {{.State}} {{.Status}} {{.Size}} {{.Names}}
    /// {{.Labels}} {{.Label "KEY"}} {{.Mounts}} {{.Networks}} {{.LocalVolumes}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// One instance as the docker client's formatter shows it (its container
/// context): a line of `ps --format json`, with Docker's keys, and the
/// cells of `ps`'s table and of `system df -v`'s instances table.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ContainerRow {
    command: String,
    created_at: String,
    #[serde(rename = "ID")]
    id: String,
    image: String,
    labels: String,
    local_volumes: String,
    mounts: String,
    names: String,
    networks: String,
    /// The image's platform, which Docker fills only from API 1.48.
    platform: Option<()>,
    ports: String,
    running_for: String,
    size: String,
    state: String,
    status: String,
}

impl ContainerRow {
    /// The row of `r`, its IDs, command and mounts cut as docker cuts them
    /// unless `no_trunc`; `now` is the time the ages are counted to.
    pub(super) fn new(r: &ContainerSummary, no_trunc: bool, now: i64) -> Self {
        let trunc = !no_trunc;
        let cut = |s: &str, max| {
            if trunc {
                ellipsis(s, max)
            } else {
                s.to_string()
            }
        };
        let join = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(",");
        // Docker's SIZE: what the instance wrote, and the image under it.
        let rw = human_size(u64::try_from(r.size_rw.unwrap_or(0)).unwrap_or(0));
        let size = match r.size_root_fs.filter(|&v| v > 0) {
            Some(v) => format!(
                "{rw} (virtual {})",
                human_size(u64::try_from(v).unwrap_or(0))
            ),
            None => rw,
        };
        let command = cut(&r.command, 20);
        ContainerRow {
            command: serde_json::to_string(&command).unwrap_or(command),
            created_at: docker_time(r.created),
            id: if trunc {
                r.id.chars().take(12).collect()
            } else {
                r.id.clone()
            },
            // An image ID cut to 12 digits unless --no-trunc.
            image: match r.image.strip_prefix("sha256:") {
                Some(hex) if trunc => hex.chars().take(12).collect(),
                _ => r.image.clone(),
            },
            labels: join(&mut r.labels.iter().map(|(k, v)| format!("{k}={v}"))),
            local_volumes: r
                .mounts
                .iter()
                .filter(|m| m.driver == "local")
                .count()
                .to_string(),
            // A volume by its name, a bind by its source.
            mounts: join(&mut r.mounts.iter().map(|m| {
                cut(
                    if m.name.is_empty() {
                        &m.source
                    } else {
                        &m.name
                    },
                    15,
                )
            })),
            names: join(
                &mut r
                    .names
                    .iter()
                    .map(|n| n.trim_start_matches('/').to_string()),
            ),
            networks: join(&mut r.network_settings.networks.keys().cloned()),
            platform: None,
            ports: wrun_api::network::ports_column(&r.ports),
            running_for: format!("{} ago", human_duration(now - r.created)),
            size,
            state: r.state.clone(),
            status: r.status.clone(),
        }
    }

    /// The cell of a column, by its template field name (`PS_HEADERS`).
    fn cell(&self, field: &str) -> &str {
        match field {
            "ID" => &self.id,
            "Image" => &self.image,
            "Command" => &self.command,
            "CreatedAt" => &self.created_at,
            "RunningFor" => &self.running_for,
            "Ports" => &self.ports,
            "State" => &self.state,
            "Status" => &self.status,
            "Size" => &self.size,
            "Names" => &self.names,
            "Labels" => &self.labels,
            "Mounts" => &self.mounts,
            "LocalVolumes" => &self.local_volumes,
            "Networks" => &self.networks,
            _ => "",
        }
    }
}

/// Prints `rows` as docker's table of the columns `fields` (template field
/// names), titled as docker titles them.
pub(super) fn print_container_table(rows: &[ContainerRow], fields: &[&str]) -> anyhow::Result<()> {
    let header: Vec<&str> = fields
        .iter()
        .map(|f| {
            PS_HEADERS
                .iter()
                .find(|(name, _)| name == f)
                .map_or(*f, |(_, title)| *title)
        })
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| fields.iter().map(|f| r.cell(f).to_string()).collect())
        .collect();
    print_table(&header, &cells)?;
    Ok(())
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
pub(super) fn ellipsis(s: &str, max: usize) -> String {
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
    if args.quiet {
        for r in &rows {
            if args.no_trunc {
                println!("{}", r.id);
            } else {
                println!("{}", r.id.chars().take(12).collect::<String>());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let lines: Vec<ContainerRow> = rows
        .iter()
        .map(|r| ContainerRow::new(r, args.no_trunc, now))
        .collect();
    match format {
        RowFormat::Table => {
            let mut fields = vec![
                "ID",
                "Image",
                "Command",
                "RunningFor",
                "Status",
                "Ports",
                "Names",
            ];
            if args.size {
                fields.push("Size");
            }
            print_container_table(&lines, &fields)?;
        }
        RowFormat::Json => {
            for line in &lines {
                println!("{}", go_json(line)?);
            }
        }
        template => {
            let values = lines
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            template.print_rows(&values, &PS_HEADERS, &PS_TEMPLATE_ERRORS)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wrun_api::containers::MountPoint;

    #[test]
    fn rows_show_volumes_by_name_and_count_them_as_docker() {
        let summary = ContainerSummary {
            id: "0123456789abcdef0123".into(),
            names: vec!["/web".into()],
            image: "sha256:fedcba9876543210fedc".into(),
            command: "/app.wasm \"a\" b c d e f g h".into(),
            created: 100,
            mounts: vec![
                MountPoint {
                    kind: "volume".into(),
                    name: "a-long-volume-name".into(),
                    source: "/store/volumes/a-long-volume-name/_data".into(),
                    destination: "/data".into(),
                    driver: "local".into(),
                    ..MountPoint::default()
                },
                MountPoint {
                    kind: "bind".into(),
                    source: "/srv".into(),
                    destination: "/srv".into(),
                    ..MountPoint::default()
                },
            ],
            size_rw: Some(1000),
            size_root_fs: Some(2_000_000),
            ..ContainerSummary::default()
        };
        let cut = ContainerRow::new(&summary, false, 160);
        assert_eq!(cut.cell("ID"), "0123456789ab");
        assert_eq!(cut.cell("Image"), "fedcba987654");
        assert_eq!(cut.cell("Command"), r#""/app.wasm \"a\" b c d…""#);
        assert_eq!(cut.cell("Mounts"), "a-long-volume-…,/srv");
        assert_eq!(cut.cell("LocalVolumes"), "1");
        assert_eq!(cut.cell("Names"), "web");
        assert_eq!(cut.cell("RunningFor"), "About a minute ago");
        assert_eq!(cut.cell("Size"), "1kB (virtual 2MB)");
        let whole = ContainerRow::new(&summary, true, 160);
        assert_eq!(whole.cell("ID"), summary.id);
        assert_eq!(whole.cell("Image"), summary.image);
        assert_eq!(whole.cell("Mounts"), "a-long-volume-name,/srv");
    }

    #[test]
    fn commands_are_cut_like_docker() {
        assert_eq!(super::ellipsis("/hello.wasm Bob", 20), "/hello.wasm Bob");
        assert_eq!(
            super::ellipsis("/hello.wasm a-very-long-argument", 20),
            "/hello.wasm a-very-…"
        );
    }
}
