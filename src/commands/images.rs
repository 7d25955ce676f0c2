//! `wrun images`: list stored images, one row per name, from the engine
//! [`crate::image_backend::choose`] picks; the filters are applied there.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use wrun_api::images::ImageSummary;
use wrun_api::parse::Filters;

use crate::output::{
    RowFormat, TEMPLATE_ERRORS, ago, docker_time, go_json, human_size, human_size_with_precision,
    print_table,
};

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show all images (wrun keeps no intermediate images, so the list is the same)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output: reference=GLOB, dangling=true|false, label=KEY[=VALUE],
    /// before=IMAGE, since=IMAGE, until=TIME (repeatable)
    #[arg(short = 'f', long, value_name = "FILTER", value_parser = filter_flag)]
    pub filter: Vec<String>,
    /// Output format: "table" (default), "json" (one object per line),
    /// "table TEMPLATE" or a Go template: {{.ID}} {{.Repository}} {{.Tag}}
    /// {{.Digest}} {{.CreatedSince}} {{.CreatedAt}} {{.Size}} …
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only images of this repository (and tag); a glob, as reference=
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// A `--filter` value must be `KEY=VALUE` (Docker's words otherwise).
pub fn filter_flag(s: &str) -> Result<String, String> {
    wrun_api::parse::split_filter_flag(s)?;
    Ok(s.to_string())
}

/// The column titles of docker images' fields, for a `table` template.
const IMAGES_HEADERS: [(&str, &str); 11] = [
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "SIZE"),
];

/// One row of the list: an image under one of its names.
struct Row {
    repository: String,
    tag: String,
    digest: String,
    id: String,
    created: i64,
    created_text: Option<String>,
    size: u64,
}

/// The rows of one image as Docker's client makes them: one per name;
/// with `--digests`, the manifest digest of the name's repository.
fn rows_of(image: &ImageSummary, digests: bool, no_trunc: bool) -> Vec<Row> {
    let id = match image.id.strip_prefix("sha256:") {
        Some(hex) if !no_trunc => hex.chars().take(12).collect(),
        _ => image.id.clone(),
    };
    let row = |repository: &str, tag: &str, digest: &str| Row {
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest: digest.to_string(),
        id: id.clone(),
        created: image.created,
        // The config's own text: `Created` is 0 both for no time and for 1970.
        created_text: image.wrun_created.clone(),
        size: u64::try_from(image.size).unwrap_or(0),
    };
    let digest_of = |repository: &str| {
        image
            .repo_digests
            .iter()
            .filter_map(|d| d.split_once('@'))
            .find(|(r, _)| *r == repository)
            .map(|(_, d)| d)
    };
    if image.repo_tags.is_empty() && image.repo_digests.is_empty() {
        return vec![row("<none>", "<none>", "<none>")];
    }
    let mut rows: Vec<Row> = image
        .repo_tags
        .iter()
        .map(|name| {
            let (repository, tag) = name.rsplit_once(':').unwrap_or((name, ""));
            let digest = digest_of(repository)
                .filter(|_| digests)
                .unwrap_or("<none>");
            row(repository, tag, digest)
        })
        .collect();
    // A digest whose repository has no tag here gets its own row.
    for d in &image.repo_digests {
        if let Some((repository, digest)) = d.split_once('@')
            && !rows.iter().any(|r| r.repository == repository)
        {
            rows.push(row(
                repository,
                "<none>",
                if digests { digest } else { "<none>" },
            ));
        }
    }
    rows
}

pub fn run(root: &Path, host: Option<&str>, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let format = RowFormat::parse(args.format.as_deref(), &TEMPLATE_ERRORS)?;
    let mut filters = Filters::from_flags(&args.filter).map_err(anyhow::Error::msg)?;
    if let Some(r) = &args.reference {
        filters.add("reference", r);
    }
    let images = crate::image_backend::choose(root, host)?.list(&filters)?;
    let rows: Vec<Row> = images
        .iter()
        .flat_map(|i| rows_of(i, args.digests, args.no_trunc))
        .collect();
    if args.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let created_since = |r: &Row| match &r.created_text {
        Some(text) => ago(Some(text)),
        None => "N/A".to_string(),
    };
    if !matches!(format, RowFormat::Table) {
        let mut lines = Vec::with_capacity(rows.len());
        for r in &rows {
            lines.push(serde_json::json!({
                "Containers": "N/A",
                "CreatedAt": docker_time(r.created),
                "CreatedSince": created_since(r),
                "Digest": r.digest,
                "ID": r.id,
                "Repository": r.repository,
                "SharedSize": "N/A",
                "Size": human_size(r.size),
                "Tag": r.tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size_with_precision(r.size, 4),
            }));
        }
        if let RowFormat::Json = format {
            for line in &lines {
                println!("{}", go_json(line)?);
            }
        } else {
            format.print_rows(&lines, &IMAGES_HEADERS, &TEMPLATE_ERRORS)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![r.repository.clone(), r.tag.clone()];
            if args.digests {
                row.push(r.digest.clone());
            }
            row.extend([r.id.clone(), created_since(r), human_size(r.size)]);
            row
        })
        .collect();
    print_table(&header, &table)?;
    Ok(ExitCode::SUCCESS)
}
