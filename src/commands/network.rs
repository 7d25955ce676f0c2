//! `wrun network create|ls|inspect|rm|connect|disconnect|prune`: the
//! daemon's user-defined networks, with docker's flags and columns.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hyper::Method;
use wrun_api::network::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, Network, NetworkConnectRequest,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
};
use wrun_api::system::NetworkPruneResponse;

use super::DaemonTarget;
use super::images::filter_flag;
use crate::output::{RowFormat, TEMPLATE_ERRORS, print_inspected, print_table};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks (refused while an instance is on one)
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Connect an instance to a network
    Connect(ConnectArgs),
    /// Disconnect an instance from a network
    Disconnect(DisconnectArgs),
    /// Remove all user-defined networks no instance is on
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(value_name = "NETWORK")]
    pub name: String,
    /// Driver: only "bridge" (wrun's in-process network)
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form (A.B.C.D/N); none: the next free default pool
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// The subnet's gateway address (kept out of the addresses given)
    #[arg(long, value_name = "IP")]
    pub gateway: Vec<String>,
    /// Refused: addresses come from the whole subnet
    #[arg(long = "ip-range", value_name = "CIDR")]
    pub ip_range: Vec<String>,
    /// Refused: no host shares a wrun network
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    pub aux_address: Vec<String>,
    /// IP address manager: only "default"
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// Refused: the address manager takes no options
    #[arg(long = "ipam-opt", value_name = "KEY=VALUE")]
    pub ipam_opt: Vec<String>,
    /// Restrict external access to the network (recorded; a wrun network
    /// reaches nothing outside it anyway)
    #[arg(long)]
    pub internal: bool,
    /// Let instances be connected after they are created (recorded; every
    /// wrun network allows it)
    #[arg(long)]
    pub attachable: bool,
    /// Refused: IPv4 only
    #[arg(long)]
    pub ipv6: bool,
    /// Refused: swarm's
    #[arg(long)]
    pub ingress: bool,
    /// Set metadata on a network (KEY=VALUE or KEY; repeatable)
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Driver options: refused, as wrun has no driver to give them to
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
    /// Refused: networks are local to the daemon
    #[arg(long)]
    pub scope: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output: driver=, id=, label=, name=, scope=, type=custom|builtin,
    /// dangling=true|false (repeatable)
    #[arg(short = 'f', long, value_name = "FILTER", value_parser = filter_flag)]
    pub filter: Vec<String>,
    /// Output format: "table" (default), "json" (one object per line),
    /// "table TEMPLATE" or a Go template: {{.ID}} {{.Name}} {{.Driver}}
    /// {{.Scope}} {{.IPv6}} {{.Internal}} {{.Labels}} {{.CreatedAt}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output with a template ({{.Name}}, {{json .Containers}})
    #[arg(short = 'f', long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail on a network that does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Add a network-scoped alias for the instance (repeatable)
    #[arg(long = "alias", value_name = "ALIAS")]
    pub aliases: Vec<String>,
    /// Refused: wrun gives the next free address of the subnet
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Refused: IPv4 only
    #[arg(long, value_name = "IP")]
    pub ip6: Option<String>,
    /// Refused: instances find each other by name on a network
    #[arg(long = "link", value_name = "CONTAINER:ALIAS")]
    pub links: Vec<String>,
    /// Refused: no driver takes options
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opts: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the instance to disconnect from the network
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (until=, label=KEY[=VALUE], label!=KEY[=VALUE])
    #[arg(long, value_name = "FILTER", value_parser = filter_flag)]
    pub filter: Vec<String>,
}

/// docker network ls's template fields (in the order of a row) and titles.
const LS_HEADERS: [(&str, &str); 8] = [
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

pub fn run(target: &DaemonTarget, command: NetworkCommand) -> anyhow::Result<ExitCode> {
    match command {
        NetworkCommand::Create(a) => create(target, a),
        NetworkCommand::Ls(a) => ls(target, a),
        NetworkCommand::Inspect(a) => inspect(target, a),
        NetworkCommand::Rm(a) => rm(target, a),
        NetworkCommand::Connect(a) => connect(target, a),
        NetworkCommand::Disconnect(a) => disconnect(target, a),
        NetworkCommand::Prune(a) => prune(target, a),
    }
}

/// `KEY=VALUE` flags as a map (`KEY` alone: an empty value when `bare`).
fn key_values(
    flag: &str,
    values: &[String],
    bare: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None if bare => Ok((v.clone(), String::new())),
            None => anyhow::bail!("invalid argument {v:?} for \"{flag}\" flag: expected KEY=VALUE"),
        })
        .collect()
}

fn create(target: &DaemonTarget, args: CreateArgs) -> anyhow::Result<ExitCode> {
    if args.gateway.len() > args.subnet.len().max(1) || args.subnet.len() > 1 {
        anyhow::bail!(
            "one --subnet (and at most one --gateway) per network: wrun hands out IPv4 addresses from a single pool"
        );
    }
    if args.ip_range.len() > 1 {
        anyhow::bail!("one --ip-range per --subnet");
    }
    let aux = key_values("--aux-address", &args.aux_address, false)?;
    let config = (!args.subnet.is_empty() || !args.gateway.is_empty() || !args.ip_range.is_empty())
        .then(|| IpamConfig {
            subnet: args.subnet.first().cloned().unwrap_or_default(),
            ip_range: args.ip_range.first().cloned().unwrap_or_default(),
            gateway: args.gateway.first().cloned().unwrap_or_default(),
            auxiliary_addresses: Some(aux.clone()).filter(|a| !a.is_empty()),
        });
    let request = NetworkCreateRequest {
        name: args.name,
        check_duplicate: true,
        driver: args.driver,
        scope: args.scope.unwrap_or_default(),
        internal: args.internal,
        attachable: args.attachable,
        ingress: args.ingress,
        ipam: Some(Ipam {
            driver: args.ipam_driver,
            options: Some(key_values("--ipam-opt", &args.ipam_opt, false)?),
            config: Some(config.into_iter().collect()),
        }),
        enable_ipv6: args.ipv6,
        options: Some(key_values("--opt", &args.opts, false)?),
        labels: Some(key_values("--label", &args.labels, true)?),
        ..NetworkCreateRequest::default()
    };
    if !aux.is_empty() && args.subnet.is_empty() {
        anyhow::bail!("--aux-address needs a --subnet");
    }
    let r: NetworkCreateResponse = target.client()?.json(
        Method::POST,
        "/networks/create",
        Some(serde_json::to_vec(&request)?),
    )?;
    if !r.warning.is_empty() {
        eprintln!("WARNING: {}", r.warning);
    }
    println!("{}", r.id);
    Ok(ExitCode::SUCCESS)
}

/// A `docker network ls` row: the fields docker's templates read.
fn row(n: &Network, no_trunc: bool) -> serde_json::Value {
    let labels = n
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let created = wrun_api::time::parse(&n.created)
        .map(|t| {
            let nanos = t.unix_timestamp_nanos();
            let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(0);
            // Go's time.String: the fraction without its trailing zeros.
            let frac = format!("{:09}", nanos.rem_euclid(1_000_000_000));
            let frac = frac.trim_end_matches('0');
            let base = crate::output::docker_time(secs);
            let base = base.trim_end_matches(" +0000 UTC");
            if frac.is_empty() {
                format!("{base} +0000 UTC")
            } else {
                format!("{base}.{frac} +0000 UTC")
            }
        })
        .unwrap_or_default();
    serde_json::json!({
        "CreatedAt": created,
        "Driver": n.driver,
        "ID": short(&n.id, no_trunc),
        "IPv4": "false",
        "IPv6": n.enable_ipv6.to_string(),
        "Internal": n.internal.to_string(),
        "Labels": labels,
        "Name": n.name,
        "Scope": n.scope,
    })
}

fn short(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

fn ls(target: &DaemonTarget, args: LsArgs) -> anyhow::Result<ExitCode> {
    let format = RowFormat::parse(args.format.as_deref(), &TEMPLATE_ERRORS)?;
    let filters = super::filters_json(&args.filter)?;
    let path = format!("/networks?filters={}", super::escape(&filters));
    let mut list: Vec<Network> = target.client()?.json(Method::GET, &path, None)?;
    // The docker CLI sorts by name.
    list.sort_by(|a, b| a.name.cmp(&b.name));
    if args.quiet {
        for n in &list {
            println!("{}", short(&n.id, args.no_trunc));
        }
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        RowFormat::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|n| {
                    vec![
                        short(&n.id, args.no_trunc),
                        n.name.clone(),
                        n.driver.clone(),
                        n.scope.clone(),
                    ]
                })
                .collect();
            print_table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)?;
        }
        RowFormat::Json => {
            for n in &list {
                println!("{}", crate::output::go_json(&row(n, args.no_trunc))?);
            }
        }
        template => {
            let rows: Vec<serde_json::Value> = list.iter().map(|n| row(n, args.no_trunc)).collect();
            template.print_rows(&rows, &LS_HEADERS, &TEMPLATE_ERRORS)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(target: &DaemonTarget, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    let mut found: Vec<serde_json::Value> = Vec::new();
    let code = super::for_each(&args.names, |name| {
        let path = format!("/networks/{}", super::escape(name));
        found.push(client.json(Method::GET, &path, None)?);
        Ok(())
    })?;
    print_inspected(&found, args.format.as_deref())?;
    Ok(code)
}

fn rm(target: &DaemonTarget, args: RmArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    super::for_each(&args.names, |name| {
        let path = format!("/networks/{}", super::escape(name));
        match client.call(Method::DELETE, &path, None) {
            Ok(_) => println!("{name}"),
            // docker's -f: a network that does not exist is no error.
            Err(e) if args.force && crate::client::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    })
}

fn connect(target: &DaemonTarget, args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let ipam = (args.ip.is_some() || args.ip6.is_some()).then(|| EndpointIpamConfig {
        ipv4_address: args.ip.clone(),
        ipv6_address: args.ip6.clone(),
        link_local_ips: None,
    });
    let request = NetworkConnectRequest {
        container: args.container,
        endpoint_config: Some(EndpointSettings {
            ipam_config: ipam,
            links: Some(args.links).filter(|l| !l.is_empty()),
            aliases: Some(args.aliases).filter(|a| !a.is_empty()),
            driver_opts: Some(key_values("--driver-opt", &args.driver_opts, false)?)
                .filter(|o| !o.is_empty()),
            ..EndpointSettings::default()
        }),
    };
    let path = format!("/networks/{}/connect", super::escape(&args.network));
    target
        .client()?
        .call(Method::POST, &path, Some(serde_json::to_vec(&request)?))?;
    Ok(ExitCode::SUCCESS)
}

fn disconnect(target: &DaemonTarget, args: DisconnectArgs) -> anyhow::Result<ExitCode> {
    let request = NetworkDisconnectRequest {
        container: args.container,
        force: args.force,
    };
    let path = format!("/networks/{}/disconnect", super::escape(&args.network));
    target
        .client()?
        .call(Method::POST, &path, Some(serde_json::to_vec(&request)?))?;
    Ok(ExitCode::SUCCESS)
}

fn prune(target: &DaemonTarget, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let filters = super::filters_json(&args.filter)?;
    if !args.force {
        eprint!(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let path = format!("/networks/prune?filters={}", super::escape(&filters));
    let r: NetworkPruneResponse = target.client()?.json(Method::POST, &path, None)?;
    let deleted = r.networks_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for name in &deleted {
            println!("{name}");
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
