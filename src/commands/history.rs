//! `wrun history`: the layers of an image, newest first.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use crate::output::{human_duration, human_size, print_table};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output format: "table" (default) or "json"
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

pub fn run(root: &Path, host: Option<&str>, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let items = crate::image_backend::choose(root, host)?.history(&args.image)?;
    let short_id = |id: &str| match id.strip_prefix("sha256:") {
        Some(hex) if !args.no_trunc => hex.chars().take(12).collect(),
        _ => id.to_string(),
    };
    if args.quiet {
        for i in &items {
            println!("{}", short_id(&i.id));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match args.format.as_deref() {
        Some("json") => {
            for i in &items {
                println!("{}", serde_json::to_string(i)?);
            }
        }
        None | Some("table") => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|i| {
                    let mut created_by = i.created_by.clone();
                    if !args.no_trunc && created_by.chars().count() > 45 {
                        created_by = created_by.chars().take(44).collect::<String>() + "…";
                    }
                    vec![
                        short_id(&i.id),
                        if args.human {
                            format!("{} ago", human_duration(now - i.created))
                        } else {
                            i.created.to_string()
                        },
                        created_by,
                        if args.human {
                            human_size(i.size)
                        } else {
                            i.size.to_string()
                        },
                        i.comment.clone(),
                    ]
                })
                .collect();
            print_table(
                &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                &rows,
            )?;
        }
        Some(other) => bail!("unsupported --format {other:?} (use table or json)"),
    }
    Ok(ExitCode::SUCCESS)
}
