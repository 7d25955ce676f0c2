//! `wrun images`: list stored images, one row per name.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use wrun_image::ImageRef;

use super::open_store;
use crate::output::{ago, human_size, print_table};

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show all images (wrun has no intermediate images; accepted for Docker compatibility)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show manifest digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output (dangling=true|false, reference=NAME[:TAG])
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Output format: "table" (default) or "json" (one object per line)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

struct Row {
    repository: String,
    tag: String,
    digest: String,
    id: String,
    created: String,
    created_at: String,
    size: String,
}

pub fn run(root: &Path, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let mut dangling: Option<bool> = None;
    let mut references: Vec<String> = args.reference.iter().cloned().collect();
    for f in &args.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={v}': expected true or false"),
                })
            }
            Some(("reference", v)) => references.push(v.to_string()),
            _ => {
                bail!("invalid filter {f:?} (supported: dangling=true|false, reference=NAME[:TAG])")
            }
        }
    }
    let wanted: Vec<ImageRef> = references
        .iter()
        .map(|r| r.parse::<ImageRef>())
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for record in store.images()? {
        if let Some(d) = dangling
            && d != record.names.is_empty()
        {
            continue;
        }
        let names: Vec<Option<&String>> = if record.names.is_empty() {
            vec![None]
        } else {
            record.names.iter().map(Some).collect()
        };
        for name in names {
            let (repository, tag) = match name {
                Some(n) => n
                    .rsplit_once(':')
                    .map_or((n.clone(), String::new()), |(r, t)| {
                        (r.to_string(), t.to_string())
                    }),
                None => ("<none>".into(), "<none>".into()),
            };
            if !wanted.is_empty()
                && !wanted.iter().any(|w| {
                    w.repository == repository && w.tag.as_deref().is_none_or(|t| t == tag)
                })
            {
                continue;
            }
            rows.push(Row {
                repository,
                tag,
                digest: record.digest.to_string(),
                id: if args.no_trunc {
                    record.id.to_string()
                } else {
                    record.id.short()
                },
                created: ago(record.created.as_deref()),
                created_at: record.created.clone().unwrap_or_default(),
                size: human_size(record.size),
            });
        }
    }
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in rows.iter().filter(|r| seen.insert(r.id.clone())) {
            println!("{}", r.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_deref() {
        None | Some("table") => {
            let mut header = vec!["REPOSITORY", "TAG"];
            if args.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            let table: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| {
                    let mut row = vec![r.repository, r.tag];
                    if args.digests {
                        row.push(r.digest);
                    }
                    row.extend([r.id, r.created, r.size]);
                    row
                })
                .collect();
            print_table(&header, &table)?;
        }
        Some("json") => {
            for r in rows {
                let v = serde_json::json!({
                    "Containers": "N/A",
                    "CreatedAt": r.created_at,
                    "CreatedSince": r.created,
                    "Digest": r.digest,
                    "ID": r.id,
                    "Repository": r.repository,
                    "SharedSize": "N/A",
                    "Size": r.size,
                    "Tag": r.tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": r.size,
                });
                println!("{v}");
            }
        }
        Some(other) => bail!("unsupported --format {other:?} (use table or json)"),
    }
    Ok(ExitCode::SUCCESS)
}
