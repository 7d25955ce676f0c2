//! `wrun volume create|ls|inspect|rm|prune`: named volumes, through the
//! daemon (it knows which instances mount each one), as docker's verbs.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hyper::Method;
use wrun_api::volumes::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};

use super::DaemonTarget;
use super::images::filter_flag;
use crate::output::{RowFormat, TEMPLATE_ERRORS, human_size, print_inspected, print_table};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes (refused while an instance mounts one)
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all volumes no instance mounts
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The volume's name; none: a generated one
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
    /// The volume's name (as the argument)
    #[arg(long = "name", value_name = "NAME")]
    pub name_flag: Option<String>,
    /// Volume driver: only "local" (a directory of the store)
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (KEY=VALUE or KEY; repeatable)
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Driver options: refused, as a wrun volume mounts nothing
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Filter output: dangling=true|false, name=PART, driver=local,
    /// label=KEY[=VALUE] (repeatable)
    #[arg(short = 'f', long, value_name = "FILTER", value_parser = filter_flag)]
    pub filter: Vec<String>,
    /// Output format: "table" (default), "json" (one object per line),
    /// "table TEMPLATE" or a Go template: {{.Name}} {{.Driver}} {{.Scope}}
    /// {{.Mountpoint}} {{.Labels}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output with a template ({{.Name}}, {{json .Labels}})
    #[arg(short = 'f', long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail on a volume that does not exist (one in use is still kept)
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Only volumes with (label=KEY[=VALUE]) or without (label!=KEY[=VALUE])
    /// these labels (repeatable)
    #[arg(long, value_name = "FILTER", value_parser = filter_flag)]
    pub filter: Vec<String>,
}

/// docker volume ls's template fields (in the order of a row) and titles.
const LS_HEADERS: [(&str, &str); 10] = [
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("Availability", "AVAILABILITY"),
    ("Group", "GROUP"),
    ("Status", "STATUS"),
];

pub fn run(target: &DaemonTarget, command: VolumeCommand) -> anyhow::Result<ExitCode> {
    match command {
        VolumeCommand::Create(a) => create(target, a),
        VolumeCommand::Ls(a) => ls(target, a),
        VolumeCommand::Inspect(a) => inspect(target, a),
        VolumeCommand::Rm(a) => rm(target, a),
        VolumeCommand::Prune(a) => prune(target, a),
    }
}

fn create(target: &DaemonTarget, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let name = match (args.name, args.name_flag) {
        (Some(a), Some(b)) if a != b => anyhow::bail!(
            "conflicting options: either specify --name or provide positional arg, not both"
        ),
        (a, b) => a.or(b).unwrap_or_default(),
    };
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut opts = BTreeMap::new();
    for o in &args.opts {
        let Some((k, v)) = o.split_once('=') else {
            anyhow::bail!("invalid argument {o:?} for \"-o, --opt\" flag: expected KEY=VALUE");
        };
        opts.insert(k.to_string(), v.to_string());
    }
    let request = VolumeCreateRequest {
        name,
        driver: args.driver,
        driver_opts: Some(opts).filter(|o| !o.is_empty()),
        labels: Some(labels),
    };
    let v: Volume = target.client()?.json(
        Method::POST,
        "/volumes/create",
        Some(serde_json::to_vec(&request)?),
    )?;
    println!("{}", v.name);
    Ok(ExitCode::SUCCESS)
}

/// A `docker volume ls` row: the fields docker's templates read.
fn row(v: &Volume) -> serde_json::Value {
    let labels = v
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    serde_json::json!({
        "Availability": "N/A",
        "Driver": v.driver,
        "Group": "N/A",
        "Labels": labels,
        "Links": "N/A",
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": v.scope,
        "Size": "N/A",
        "Status": "N/A",
    })
}

fn ls(target: &DaemonTarget, args: LsArgs) -> anyhow::Result<ExitCode> {
    let format = RowFormat::parse(args.format.as_deref(), &TEMPLATE_ERRORS)?;
    let filters = super::filters_json(&args.filter)?;
    let path = format!("/volumes?filters={}", super::escape(&filters));
    let list: VolumeListResponse = target.client()?.json(Method::GET, &path, None)?;
    if args.quiet {
        for v in &list.volumes {
            println!("{}", v.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        RowFormat::Table => {
            let rows: Vec<Vec<String>> = list
                .volumes
                .iter()
                .map(|v| vec![v.driver.clone(), v.name.clone()])
                .collect();
            print_table(&["DRIVER", "VOLUME NAME"], &rows)?;
        }
        RowFormat::Json => {
            for v in &list.volumes {
                println!("{}", crate::output::go_json(&row(v))?);
            }
        }
        template => {
            let rows: Vec<serde_json::Value> = list.volumes.iter().map(row).collect();
            template.print_rows(&rows, &LS_HEADERS, &TEMPLATE_ERRORS)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(target: &DaemonTarget, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    let mut found: Vec<serde_json::Value> = Vec::new();
    let code = super::for_each(&args.names, |name| {
        let path = format!("/volumes/{}", super::escape(name));
        found.push(client.json(Method::GET, &path, None)?);
        Ok(())
    })?;
    print_inspected(&found, args.format.as_deref())?;
    Ok(code)
}

fn rm(target: &DaemonTarget, args: RmArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.names, |name| {
        let path = format!(
            "/volumes/{}?force={}",
            super::escape(name),
            u8::from(args.force)
        );
        client.call(Method::DELETE, &path, None)?;
        println!("{name}");
        Ok(())
    })
}

fn prune(target: &DaemonTarget, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let filters = super::filters_json(&args.filter)?;
    if !args.force {
        eprint!(
            "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let path = format!("/volumes/prune?filters={}", super::escape(&filters));
    let r: VolumePruneResponse = target.client()?.json(Method::POST, &path, None)?;
    if !r.volumes_deleted.is_empty() {
        println!("Deleted Volumes:");
        for name in &r.volumes_deleted {
            println!("{name}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(r.space_reclaimed));
    Ok(ExitCode::SUCCESS)
}
