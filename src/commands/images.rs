//! `wrun images`: list stored images, one row per name, from the engine
//! [`crate::image_backend::choose`] picks.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use wrun_image::ImageRef;

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

/// The `--filter` flags and the `REPOSITORY[:TAG]` argument.
struct Filter {
    dangling: Option<bool>,
    wanted: Vec<ImageRef>,
}

impl Filter {
    fn parse(args: &ImagesArgs) -> anyhow::Result<Filter> {
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
                    bail!(
                        "invalid filter {f:?} (supported: dangling=true|false, reference=NAME[:TAG])"
                    )
                }
            }
        }
        let wanted = references
            .iter()
            .map(|r| r.parse::<ImageRef>())
            .collect::<Result<_, _>>()?;
        Ok(Filter { dangling, wanted })
    }

    /// The rows of an image with these names: `(repository, tag)` pairs,
    /// `<none>` for an image without a name.
    fn rows(&self, names: &[String]) -> Vec<(String, String)> {
        if self.dangling.is_some_and(|d| d != names.is_empty()) {
            return Vec::new();
        }
        if names.is_empty() {
            return self
                .row_wanted("<none>", "<none>")
                .then(|| ("<none>".into(), "<none>".into()))
                .into_iter()
                .collect();
        }
        names
            .iter()
            .map(|n| {
                n.rsplit_once(':')
                    .map_or((n.clone(), String::new()), |(r, t)| {
                        (r.to_string(), t.to_string())
                    })
            })
            .filter(|(r, t)| self.row_wanted(r, t))
            .collect()
    }

    fn row_wanted(&self, repository: &str, tag: &str) -> bool {
        self.wanted.is_empty()
            || self
                .wanted
                .iter()
                .any(|w| w.repository == repository && w.tag.as_deref().is_none_or(|t| t == tag))
    }
}

pub fn run(root: &Path, host: Option<&str>, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let filter = Filter::parse(&args)?;
    let images = crate::image_backend::choose(root, host)?.list()?;
    let mut rows = Vec::new();
    for image in images {
        let digest = image.descriptor.map(|d| d.digest).unwrap_or_default();
        // The config's own `created` text: `Created` is 0 both for no time and for 1970.
        let created = image.wrun_created;
        for (repository, tag) in filter.rows(&image.repo_tags) {
            rows.push(Row {
                repository,
                tag,
                digest: digest.clone(),
                id: match image.id.strip_prefix("sha256:") {
                    Some(hex) if !args.no_trunc => hex.chars().take(12).collect(),
                    _ => image.id.clone(),
                },
                created: ago(created.as_deref()),
                created_at: created.clone().unwrap_or_default(),
                size: human_size(u64::try_from(image.size).unwrap_or(0)),
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
