//! `wrun system df [-v]`: the space images, instances and volumes take, as
//! `GET /system/df` answers, in docker's rows and columns.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;
use wrun_api::containers::ContainerSummary;
use wrun_api::images::ImageSummary;
use wrun_api::volumes::DiskUsage;

use super::ps::{ContainerRow, print_container_table};
use crate::client::Client;
use crate::output::{
    RowFormat, TEMPLATE_ERRORS, human_duration, human_size, human_size_with_precision, print_table,
};

/// docker system df's template fields (in the order of a row) and titles.
const DF_HEADERS: [(&str, &str); 5] = [
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage: each image, instance and volume
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Output format: "table" (default), "json" (one object per row),
    /// "table TEMPLATE" or a Go template of each row: {{.Type}}
    /// {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// The figures, from the engine the image verbs would use (no daemon is
/// started): the daemon named with `-H`, else the one serving the store,
/// else the store and its instance records read directly.
fn disk_usage(root: &Path, host: Option<&str>) -> anyhow::Result<DiskUsage> {
    let socket = if host.is_some_and(|h| !h.is_empty()) {
        Some(crate::host::socket_path(host)?)
    } else {
        wrun_daemon::daemon_lock::DaemonLock::holder(root).map(|d| d.socket)
    };
    match socket {
        Some(socket) => Client::connect_existing(&socket)?.json(Method::GET, "/system/df", None),
        None => wrun_daemon::disk_usage::on_disk(&wrun_daemon::open_store(root)?),
    }
}

pub fn run(root: &Path, host: Option<&str>, args: DfArgs) -> anyhow::Result<ExitCode> {
    let format = RowFormat::parse(args.format.as_deref(), &TEMPLATE_ERRORS)?;
    if args.verbose && !matches!(format, RowFormat::Table) {
        anyhow::bail!("--format is not supported with --verbose: leave one of them out");
    }
    let usage = disk_usage(root, host)?;
    if args.verbose {
        print_verbose(&usage)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = summary_rows(&usage);
    match format {
        RowFormat::Table => {
            print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows)?;
        }
        RowFormat::Json => {
            for row in &rows {
                println!("{}", crate::output::go_json(&row_object(row))?);
            }
        }
        template => {
            let lines: Vec<serde_json::Value> = rows.iter().map(|r| row_object(r)).collect();
            template.print_rows(&lines, &DF_HEADERS, &TEMPLATE_ERRORS)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn row_object(row: &[String]) -> serde_json::Value {
    serde_json::Value::Object(
        DF_HEADERS
            .iter()
            .zip(row)
            .map(|((key, _), value)| ((*key).to_string(), value.clone().into()))
            .collect(),
    )
}

fn bytes(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// docker's `RECLAIMABLE`: the size, with its share of the whole when the
/// whole is not empty.
fn reclaimable(part: u64, whole: u64) -> String {
    match (part * 100).checked_div(whole) {
        Some(pct) => format!("{} ({pct}%)", human_size(part)),
        None => human_size(part),
    }
}

fn is_active(c: &ContainerSummary) -> bool {
    matches!(c.state.as_str(), "running" | "paused" | "restarting")
}

/// The four rows of `docker system df`, computed as docker's CLI does.
fn summary_rows(u: &DiskUsage) -> Vec<Vec<String>> {
    let layers = bytes(u.layers_size);
    let used: u64 = u
        .images
        .iter()
        .filter(|i| i.containers > 0 && i.shared_size >= 0)
        .map(|i| bytes(i.size - i.shared_size))
        .sum();
    let images = vec![
        "Images".into(),
        u.images.len().to_string(),
        u.images
            .iter()
            .filter(|i| i.containers > 0)
            .count()
            .to_string(),
        human_size(layers),
        reclaimable(layers.saturating_sub(used), layers),
    ];
    let written: u64 = u
        .containers
        .iter()
        .map(|c| bytes(c.size_rw.unwrap_or(0)))
        .sum();
    let idle_written: u64 = u
        .containers
        .iter()
        .filter(|c| !is_active(c))
        .map(|c| bytes(c.size_rw.unwrap_or(0)))
        .sum();
    let containers = vec![
        "Containers".into(),
        u.containers.len().to_string(),
        u.containers
            .iter()
            .filter(|c| is_active(c))
            .count()
            .to_string(),
        human_size(written),
        reclaimable(idle_written, written),
    ];
    let usage = |v: &wrun_api::volumes::Volume| v.usage_data.unwrap_or_default();
    let volume_bytes: u64 = u.volumes.iter().map(|v| bytes(usage(v).size)).sum();
    let unused_bytes: u64 = u
        .volumes
        .iter()
        .filter(|v| usage(v).ref_count == 0)
        .map(|v| bytes(usage(v).size))
        .sum();
    let volumes = vec![
        "Local Volumes".into(),
        u.volumes.len().to_string(),
        u.volumes
            .iter()
            .filter(|v| usage(v).ref_count > 0)
            .count()
            .to_string(),
        human_size(volume_bytes),
        reclaimable(unused_bytes, volume_bytes),
    ];
    let cache = vec![
        "Build Cache".into(),
        "0".into(),
        "0".into(),
        "0B".into(),
        "0B".into(),
    ];
    vec![images, containers, volumes, cache]
}

fn since(unix: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    format!("{} ago", human_duration(now - unix))
}

fn image_rows(images: &[ImageSummary]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for i in images {
        let short: String =
            i.id.trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect();
        let size = bytes(i.size);
        let shared = bytes(i.shared_size);
        let tail = |repo: String, tag: String| {
            vec![
                repo,
                tag,
                short.clone(),
                since(i.created),
                human_size_with_precision(size, 3),
                human_size_with_precision(shared, 4),
                human_size_with_precision(size.saturating_sub(shared), 4),
                i.containers.to_string(),
            ]
        };
        if i.repo_tags.is_empty() {
            rows.push(tail("<none>".into(), "<none>".into()));
        }
        for t in &i.repo_tags {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((t, "<none>"));
            rows.push(tail(repo.into(), tag.into()));
        }
    }
    rows
}

fn print_verbose(u: &DiskUsage) -> anyhow::Result<()> {
    println!("Images space usage:\n");
    print_table(
        &[
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ],
        &image_rows(&u.images),
    )?;
    println!("\nContainers space usage:\n");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let containers: Vec<ContainerRow> = u
        .containers
        .iter()
        .map(|c| {
            // As docker's: the virtual size (the image under it) is left out.
            let written = ContainerSummary {
                size_root_fs: None,
                ..c.clone()
            };
            ContainerRow::new(&written, false, now)
        })
        .collect();
    print_container_table(
        &containers,
        &[
            "ID",
            "Image",
            "Command",
            "LocalVolumes",
            "Size",
            "RunningFor",
            "Status",
            "Names",
        ],
    )?;
    println!("\nLocal Volumes space usage:\n");
    let volumes: Vec<Vec<String>> = u
        .volumes
        .iter()
        .map(|v| {
            let usage = v.usage_data.unwrap_or_default();
            vec![
                v.name.clone(),
                usage.ref_count.to_string(),
                human_size(bytes(usage.size)),
            ]
        })
        .collect();
    print_table(&["VOLUME NAME", "LINKS", "SIZE"], &volumes)?;
    println!("\nBuild cache usage: 0B\n");
    print_table(
        &[
            "CACHE ID",
            "CACHE TYPE",
            "SIZE",
            "CREATED",
            "LAST USED",
            "USAGE",
            "SHARED",
        ],
        &[],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wrun_api::volumes::{Volume, VolumeUsage};

    #[test]
    fn rows_count_as_dockers_cli() {
        let volume = |name: &str, size, refs| Volume {
            name: name.into(),
            usage_data: Some(VolumeUsage {
                size,
                ref_count: refs,
            }),
            ..Volume::default()
        };
        let usage = DiskUsage {
            layers_size: 1000,
            images: vec![
                ImageSummary {
                    size: 600,
                    shared_size: 0,
                    containers: 1,
                    ..ImageSummary::default()
                },
                ImageSummary {
                    size: 400,
                    containers: 0,
                    ..ImageSummary::default()
                },
            ],
            containers: vec![ContainerSummary {
                state: "exited".into(),
                ..ContainerSummary::default()
            }],
            volumes: vec![volume("a", 5, 1), volume("b", 3, 0)],
            ..DiskUsage::default()
        };
        let rows = summary_rows(&usage);
        assert_eq!(rows[0], ["Images", "2", "1", "1kB", "400B (40%)"]);
        assert_eq!(rows[1], ["Containers", "1", "0", "0B", "0B"]);
        assert_eq!(rows[2], ["Local Volumes", "2", "1", "8B", "3B (37%)"]);
        assert_eq!(rows[3], ["Build Cache", "0", "0", "0B", "0B"]);
    }
}
