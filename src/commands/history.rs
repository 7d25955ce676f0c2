//! `wrun history`: the layers of an image, newest first.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::output::{RowFormat, TEMPLATE_ERRORS, go_json, human_duration, human_size, print_table};

/// docker history's template fields (in the order of a row) and titles.
const HISTORY_HEADERS: [(&str, &str); 6] = [
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

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
    /// Output format: "table" (default), "json" (one object per line),
    /// "table TEMPLATE" or a Go template: {{.ID}} {{.CreatedSince}}
    /// {{.CreatedAt}} {{.CreatedBy}} {{.Size}} {{.Comment}}
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
    let format = RowFormat::parse(args.format.as_deref(), &TEMPLATE_ERRORS)?;
    // Docker's fields: -H=false shows the raw time and byte count.
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|i| {
            let mut created_by = i.created_by.clone();
            if !args.no_trunc && created_by.chars().count() > 45 {
                created_by = created_by.chars().take(44).collect::<String>() + "…";
            }
            let created_at = wrun_api::time::format(
                time::OffsetDateTime::from_unix_timestamp(i.created)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            );
            [
                short_id(&i.id),
                if args.human {
                    format!("{} ago", human_duration(now - i.created))
                } else {
                    created_at.clone()
                },
                created_at,
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
    if let RowFormat::Table = format {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|[id, since, _, by, size, comment]| {
                vec![
                    id.clone(),
                    since.clone(),
                    by.clone(),
                    size.clone(),
                    comment.clone(),
                ]
            })
            .collect();
        print_table(
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &table,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let lines: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut map = serde_json::Map::new();
            for ((key, _), value) in HISTORY_HEADERS.iter().zip(r) {
                map.insert((*key).into(), value.clone().into());
            }
            serde_json::Value::Object(map)
        })
        .collect();
    if let RowFormat::Json = format {
        for line in &lines {
            println!("{}", go_json(line)?);
        }
    } else {
        format.print_rows(&lines, &HISTORY_HEADERS, &TEMPLATE_ERRORS)?;
    }
    Ok(ExitCode::SUCCESS)
}
