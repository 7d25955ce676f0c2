//! The flags of `wrun run` and `wrun create`, and what they ask for: the
//! image they name and the create request the daemon (or a foreground run)
//! is given.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use wrun_api::containers::{
    BindOptions, ContainerConfig, ContainerCreateRequest, HostConfig, LogConfig, Mount,
};
use wrun_api::parse::{BindSpec, parse_duration, parse_memory};
use wrun_image::{ImageRecord, Store};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background (in the daemon) and print the instance ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// With -d: restart policy when the instance ends or the daemon starts (no, always, unless-stopped, on-failure[:N])
    #[arg(long, value_name = "POLICY", value_parser = wrun_api::containers::RestartPolicy::parse)]
    pub restart: Option<wrun_api::containers::RestartPolicy>,
    /// With -d: log option, max-size=SIZE (one file's bound; two files are kept)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Assign a name to the instance
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Remove the instance when it exits (foreground runs keep no record, so this is their default)
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables (KEY=VALUE, or KEY to pass the host's value)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read a file of environment variables (KEY=VALUE lines, # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Grant a host directory or a volume: HOST:GUEST[:ro|rw] (HOST absolute
    /// or ./relative), VOLUME:GUEST[:ro|rw] (made when missing), or /GUEST
    /// alone (an anonymous volume)
    #[arg(
        short = 'v',
        long = "volume",
        value_name = "[HOST|VOLUME:]GUEST[:ro|rw]"
    )]
    pub volumes: Vec<String>,
    /// Mount a host directory or a private /tmp, as Docker's --mount:
    /// type=bind,source=HOST,target=GUEST[,readonly] or type=tmpfs,target=/tmp
    #[arg(long = "mount", value_name = "type=bind|tmpfs,...", value_parser = parse_mount)]
    pub mounts: Vec<Mount>,
    /// Mount the instance's root filesystem as read only (by default `/` is
    /// the image, writable: the writes are the instance's own, copy-on-write)
    #[arg(long)]
    pub read_only: bool,
    /// Storage options of the writable rootfs: size=SIZE, the most its
    /// files may hold over the image (e.g. 10G; past it, writes fail with
    /// ENOSPC) [default: the daemon's --storage-opt size, else none]
    #[arg(long = "storage-opt", value_name = "size=SIZE", value_parser = parse_storage_opt)]
    pub storage_opts: Vec<(String, String)>,
    /// A private, empty, writable /tmp for this instance (PATH must be /tmp;
    /// options after ':' are discarded with a warning). Without it nothing is
    /// writable but volumes
    #[arg(long, value_name = "/tmp[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Working directory inside the instance
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run this module of the image instead of its entrypoint (a path in the image)
    #[arg(long, value_name = "PATH")]
    pub entrypoint: Option<String>,
    /// Keep STDIN open: the guest reads the host's stdin
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Memory limit for linear memories and tables (e.g. 64m, 1g)
    #[arg(short = 'm', long, value_name = "BYTES", value_parser = parse_memory)]
    pub memory: Option<u64>,
    /// Stop the guest after this long (e.g. 500ms, 5s, 2m; a bare number is seconds); for an HTTP handler, each request's deadline [default there: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// HTTP handler: requests handled at once; more wait in a queue, then get 503 [default: 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_concurrency: Option<u64>,
    /// HTTP handler: largest request body accepted (e.g. 1m); larger gets 413 [default: 10m]
    #[arg(long, value_name = "BYTES", value_parser = parse_memory)]
    pub max_body_size: Option<u64>,
    /// HTTP handler: time a client has to send a request's headers (and to idle between requests) [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub header_timeout: Option<Duration>,
    /// CPU budget in fuel units (about one per wasm instruction); 0: no budget, as the API's WasmFuel 0
    #[arg(long, value_name = "UNITS")]
    pub fuel: Option<u64>,
    /// Print the wasm backtrace when the guest traps
    #[arg(long)]
    pub debug: bool,
    /// Publish a guest port on the host: [IP:][HOSTPORT:]GUESTPORT[/tcp|udp] (the guest binds GUESTPORT; components only)
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[IP:][HOSTPORT:]GUESTPORT[/PROTO]"
    )]
    pub publish: Vec<wrun_runtime::PortMapping>,
    /// Allow outgoing connections to HOST[:PORT] or CIDR[:PORT] (repeatable; no network by default)
    #[arg(long = "allow-connect", value_name = "HOST[:PORT]|CIDR[:PORT]")]
    pub allow_connect: Vec<wrun_runtime::ConnectRule>,
    /// Allow name lookup (wasi:sockets/ip-name-lookup)
    #[arg(long)]
    pub allow_dns: bool,
    /// Allow UDP sockets (still limited to --allow-connect destinations)
    #[arg(long)]
    pub allow_udp: bool,
    /// Publish every port the image exposes on a port the kernel picks
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Foreground run: permit binds of /proc, /sys, /dev (or holding them,
    /// as /) and of directories holding the store, which let the guest read
    /// wrun's memory and environment (with -d: `wrun daemon
    /// --allow-dangerous-binds`)
    #[arg(long)]
    pub allow_dangerous_binds: bool,
    /// Network: none (the default: nothing but the grants above; bridge and default mean it too), host (everything), or a user-defined network's name (with -d: wrun network create; docs/networks.md)
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// An alias of the instance on its user-defined network (repeatable)
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Pull the image from its registry before the run: missing (when it
    /// is not stored), always, never
    #[arg(long, value_name = "POLICY", default_value = "missing", value_parser = PullPolicy::parse)]
    pub pull: PullPolicy,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// docker run's flags that wrun does not take, refused with the reason
    #[command(flatten)]
    pub refused: super::run_refused::RefusedFlags,
    /// The image (a stored name or ID, or the path of an image tar), then
    /// the arguments for the module, which replace the image's Cmd. As with
    /// `docker run`, every word after IMAGE is the module's, `-c` and `--`
    /// included.
    #[arg(
        value_names = ["IMAGE", "ARG"],
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    command: Vec<String>,
}

impl RunArgs {
    /// The image named: the first word of the command (clap requires one).
    pub fn image(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }

    /// The module's arguments: every word after the image.
    pub fn args(&self) -> &[String] {
        self.command.get(1..).unwrap_or_default()
    }
}

/// The create request the flags ask for, naming `image`: what `run -d` and
/// `create` send to the daemon and what a foreground run hands to the same
/// conversion (`wrun_daemon::launch::settings`). Client-side work happens here, as in
/// Docker's CLI: env files and `-e NAME` are read from this host, relative
/// volume paths made absolute.
pub fn create_request(args: &RunArgs, image: String) -> anyhow::Result<ContainerCreateRequest> {
    let mut binds = Vec::new();
    // `-v /path` alone: an anonymous volume there, as docker's CLI sends it.
    let mut anonymous = std::collections::BTreeMap::new();
    for v in &args.volumes {
        if v.starts_with('/') && !v.contains(':') {
            anonymous.insert(v.clone(), wrun_api::images::EmptyObject {});
            continue;
        }
        let mut bind = BindSpec::parse(v).map_err(anyhow::Error::msg)?;
        if bind.volume_name().is_none() {
            let host = std::path::absolute(&bind.host)
                .with_context(|| format!("resolving {}", bind.host))?;
            bind.host = host.display().to_string();
        }
        binds.push(bind.to_string());
    }
    let log_config = LogConfig {
        kind: String::new(),
        config: args
            .log_opts
            .iter()
            .map(|o| match o.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => anyhow::bail!("invalid --log-opt {o:?}: expected KEY=VALUE"),
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let mut request = ContainerCreateRequest {
        config: ContainerConfig {
            image,
            env: Some(
                given_env(args)?
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            cmd: Some(args.args().to_vec()).filter(|c| !c.is_empty()),
            entrypoint: args.entrypoint.clone().map(|e| vec![e]),
            working_dir: args.workdir.clone().unwrap_or_default(),
            // `-i`: stdin stays open for an attach (`wrun start -ai`,
            // `wrun attach`).
            open_stdin: args.interactive,
            volumes: Some(anonymous).filter(|a| !a.is_empty()),
            ..ContainerConfig::default()
        },
        host_config: HostConfig {
            binds: Some(binds),
            mounts: Some(
                args.mounts
                    .iter()
                    .map(|m| {
                        let mut m = m.clone();
                        if m.kind == "bind" {
                            m.source = std::path::absolute(&m.source)
                                .with_context(|| format!("resolving {}", m.source))?
                                .display()
                                .to_string();
                        }
                        Ok(m)
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            )
            .filter(|m| !m.is_empty()),
            auto_remove: args.rm,
            restart_policy: args.restart.clone().unwrap_or_default(),
            log_config,
            memory: args
                .memory
                .map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX)),
            readonly_rootfs: args.read_only,
            storage_opt: (!args.storage_opts.is_empty())
                .then(|| args.storage_opts.iter().cloned().collect()),
            tmpfs: (!args.tmpfs.is_empty()).then(|| {
                args.tmpfs
                    .iter()
                    .map(|t| match t.split_once(':') {
                        Some((path, options)) => (path.to_owned(), options.to_owned()),
                        None => (t.clone(), String::new()),
                    })
                    .collect()
            }),
            wasm_timeout: args.timeout.map_or(0, nanos),
            wasm_fuel: args.fuel.unwrap_or(0),
            publish_all_ports: args.publish_all,
            wrun_http_max_concurrency: args.max_concurrency.unwrap_or(0),
            wrun_http_max_body_size: args.max_body_size.unwrap_or(0),
            wrun_http_header_timeout: args.header_timeout.map_or(0, nanos),
            ..HostConfig::default()
        },
        networking_config: networking_config(args),
    };
    let wanted = wrun_runtime::NetworkGrants {
        host: false,
        connect: args.allow_connect.clone(),
        dns: args.allow_dns,
        udp: args.allow_udp,
        publish: args.publish.clone(),
        peers: None,
    };
    // Before the request shape, which keys ports by guest port.
    wanted.check()?;
    wrun_daemon::grants::request_fields(
        &wanted,
        args.network.as_deref().unwrap_or(""),
        &mut request.config,
        &mut request.host_config,
    );
    Ok(request)
}

/// `NetworkingConfig` as the docker CLI sends it: the endpoint of the
/// network `--network` names (`default` when none) with the
/// `--network-alias` aliases; the daemon refuses aliases off a
/// user-defined network in dockerd's words.
fn networking_config(args: &RunArgs) -> Option<wrun_api::network::NetworkingConfig> {
    let network = args.network.clone().unwrap_or_else(|| "default".into());
    if args.network_alias.is_empty() && wrun_api::network::user_network(&network).is_none() {
        return None;
    }
    let endpoint = wrun_api::network::EndpointSettings {
        aliases: Some(args.network_alias.clone()).filter(|a| !a.is_empty()),
        ..Default::default()
    };
    Some(wrun_api::network::NetworkingConfig {
        endpoints_config: Some(std::collections::BTreeMap::from([(network, endpoint)])),
    })
}

/// A foreground run has no daemon to keep networks: `--network NAME` and
/// `--network-alias` are for `run -d` and `create`, refused here.
pub fn refuse_networks_in_foreground(args: &RunArgs) -> anyhow::Result<()> {
    if let Some(name) = args
        .network
        .as_deref()
        .and_then(wrun_api::network::user_network)
    {
        anyhow::bail!(
            "--network {name}: a user-defined network is kept by the daemon: run with -d (or wrun create, then wrun start -a)"
        );
    }
    if !args.network_alias.is_empty() {
        anyhow::bail!(
            "--network-alias is for an instance on a user-defined network: run with -d and --network NAME"
        );
    }
    Ok(())
}

/// A `--storage-opt` value as Docker's CLI reads it: `KEY=VALUE`; the key
/// and the value are the daemon's to check (`size=` is the only key).
fn parse_storage_opt(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
        None => Err(format!(
            "invalid storage option {value:?}: expected KEY=VALUE (size=SIZE)"
        )),
    }
}

/// A `--mount` value as Docker's CLI reads it: comma-separated `KEY=VALUE`
/// (`type`, `source`/`src`, `target`/`destination`/`dst`,
/// `readonly`/`ro` with an optional boolean, `bind-propagation`); whether
/// wrun can serve the mount is the daemon's to say.
fn parse_mount(value: &str) -> Result<Mount, String> {
    let mut m = Mount {
        kind: "volume".into(),
        ..Mount::default()
    };
    for field in value.split(',') {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let flag = |v: Option<&str>| match v.map(str::to_ascii_lowercase).as_deref() {
            None | Some("1" | "true") => Ok(true),
            Some("0" | "false") => Ok(false),
            Some(other) => Err(format!("invalid value for {key}: {other}")),
        };
        let text = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"))
        };
        match key.as_str() {
            "type" => m.kind = text(val)?,
            "source" | "src" => m.source = text(val)?,
            "target" | "destination" | "dst" => m.target = text(val)?,
            "readonly" | "ro" => m.read_only = flag(val)?,
            "bind-propagation" => {
                m.bind_options = Some(BindOptions {
                    propagation: text(val)?,
                    ..BindOptions::default()
                });
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.target.is_empty() {
        return Err("target is required".into());
    }
    Ok(m)
}

/// A stored name or ID, or an image tar on disk (loaded once: a tar whose
/// image is already stored is not read again).
pub fn resolve_image(store: &Store, image: &str) -> anyhow::Result<ImageRecord> {
    if let Some(path) = image_file(image) {
        let file = File::open(path).with_context(|| format!("opening {image}"))?;
        if let Some(found) = wrun_image::archive::find_stored(store, file) {
            return Ok(found);
        }
        let file = File::open(path).with_context(|| format!("opening {image}"))?;
        let report =
            wrun_image::archive::load(store, file).with_context(|| format!("loading {image}"))?;
        for note in &report.notes {
            eprintln!("note: {note}");
        }
        return match report.images.as_slice() {
            [(record, _)] => Ok(record.clone()),
            _ => bail!(
                "{image} holds {} images; load it and run one by name",
                report.images.len()
            ),
        };
    }
    if image.ends_with(".tar") {
        bail!("{image}: no such file");
    }
    match store.find(image) {
        Err(e) if e.is_not_found() => match default_registry_ref(image)? {
            // What `pull NAME` stores with a default registry: found there.
            Some(remote) => match store.find(&remote.to_string()) {
                Ok(record) => Ok(record),
                Err(other) if other.is_not_found() => Err(e.into()),
                Err(other) => Err(other.into()),
            },
            None => Err(e.into()),
        },
        found => Ok(found?),
    }
}

/// Where a name without a registry is pulled from when `default-registry`
/// is configured: `DEFAULT/NAME`, the name `pull NAME` stores it under
/// (none for a name with a registry, an image tar, or without the key).
pub fn default_registry_ref(
    image: &str,
) -> anyhow::Result<Option<wrun_image::registry::RemoteRef>> {
    let Ok(parsed) = image.parse::<wrun_image::ImageRef>() else {
        return Ok(None);
    };
    if parsed.registry().is_some() || image_file(image).is_some() {
        return Ok(None);
    }
    let config = super::login::registry_config()?;
    if config.default_registry.is_none() {
        return Ok(None);
    }
    Ok(Some(config.remote_ref(image)?))
}

/// docker run's `--pull`: when the image is pulled before the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// When the store lacks it (docker's default).
    Missing,
    Always,
    Never,
}

impl PullPolicy {
    /// docker's words, and its refusal of others.
    pub fn parse(value: &str) -> Result<PullPolicy, String> {
        match value {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
            )),
        }
    }
}

/// Pulls the image of a `run` or `create` as docker run does: a registry
/// reference the store lacks (or any, with `--pull always`) is pulled
/// first, through the daemon named by `host` or serving the store at
/// `root`, else into that store itself; `Unable to find image 'NAME' locally` and the
/// pull's lines go to stderr (nothing with `-q`). A name without a registry
/// is pulled from the configured `default-registry` as `DEFAULT/NAME` when
/// neither name is stored. A tar, an ID or a name without a registry and
/// no default registry is never pulled (with `--pull always`, a warning
/// says so): the lookup that follows says what is missing.
pub fn pull_for_run(root: &Path, host: Option<&str>, args: &RunArgs) -> anyhow::Result<()> {
    use crate::image_backend::{self, TransferOutput};
    use wrun_image::registry::{self, Access, RemoteRef};

    let image = args.image();
    if args.pull == PullPolicy::Never {
        return Ok(());
    }
    // `--pull always` of what no registry holds is said, not ignored (as
    // `wrun build --pull` says it of a base).
    let always = args.pull == PullPolicy::Always;
    if image.ends_with(".tar") || image_file(image).is_some() {
        if always {
            eprintln!("WARNING: --pull always: {image} is an image tar, not pulled");
        }
        return Ok(());
    }
    // A name without a registry: the default registry's, if one is set.
    let (remote, bare) = match RemoteRef::parse(image) {
        Ok(remote) => (remote, false),
        Err(_) => match default_registry_ref(image)? {
            Some(remote) => (remote, true),
            None => {
                if always {
                    eprintln!(
                        "WARNING: --pull always: {image} names no registry (HOST[:PORT]/NAME): the stored image is used"
                    );
                }
                return Ok(());
            }
        },
    };
    let daemon = image_backend::transfer_daemon(root, host)?;
    let out = TransferOutput::unless_quiet(args.quiet, TransferOutput::Stderr);
    if args.pull == PullPolicy::Missing {
        // A bare name is stored as typed (built, loaded, tagged) or as the
        // default registry's (pulled).
        let full = remote.to_string();
        let names = std::iter::once(image).chain(bare.then_some(full.as_str()));
        for name in names {
            let stored = match &daemon {
                Some(client) => image_backend::daemon_has_image(client, name)?,
                None => match super::open_store(root)?.find(name) {
                    Ok(_) => true,
                    Err(e) if e.is_not_found() => false,
                    Err(e) => return Err(e.into()),
                },
            };
            if stored {
                return Ok(());
            }
        }
        // docker names the image as typed, tagged (`hello:latest`).
        let missing = match image.parse::<wrun_image::ImageRef>() {
            Ok(typed) if bare => typed.tagged().to_string(),
            _ => full,
        };
        out.line(&format!("Unable to find image '{missing}' locally"));
    }
    if let Some(client) = &daemon {
        return image_backend::pull_through_daemon(client, &remote, out);
    }
    let store = super::open_store(root)?;
    let options = super::login::transfer_options(&remote, Access::Pull)?;
    let report = registry::pull(&store, &remote, &options)?;
    let summary = wrun_api::registry::PullSummary {
        at: match (&remote.digest, &remote.tag) {
            (Some(_), _) => remote.to_string(),
            (None, tag) => tag.clone().unwrap_or_default(),
        },
        path: remote.repository.clone(),
        layers: report
            .layers
            .iter()
            .map(|(d, fetched)| (d.short().to_string(), *fetched))
            .collect(),
        digest: report.digest.to_string(),
        name: remote.to_string(),
        up_to_date: report.up_to_date,
    };
    for line in summary.messages() {
        if let Some(text) = line.plain() {
            out.line(&text);
        }
    }
    Ok(())
}

/// The image tar `image` names, if it names an existing file (a `.tar`
/// name, a path with a `/`, or any existing file).
pub fn image_file(image: &str) -> Option<&Path> {
    let path = Path::new(image);
    let looks_like_file = image.ends_with(".tar") || image.contains('/') || path.is_file();
    (looks_like_file && path.exists()).then_some(path)
}

/// The variables the flags give: `--env-file` lines, then `-e`; `-e NAME`
/// takes the host's value (unset stays unset), as Docker does.
fn given_env(args: &RunArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut given: Vec<String> = Vec::new();
    for file in &args.env_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading env file {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('=') {
                bail!(
                    "{}:{}: invalid environment variable {line:?}",
                    file.display(),
                    n + 1
                );
            }
            given.push(line.to_string());
        }
    }
    given.extend(args.env.iter().cloned());
    let mut env = Vec::new();
    for kv in given {
        match kv.split_once('=') {
            Some(("", _)) => bail!("invalid environment variable {kv:?}: the name is empty"),
            Some((k, v)) => env.push((k.to_string(), v.to_string())),
            None => {
                if let Ok(v) = std::env::var(&kv) {
                    env.push((kv, v));
                }
            }
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::RunArgs;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(words: &[&str]) -> RunArgs {
        let argv = std::iter::once("wrun").chain(words.iter().copied());
        Probe::try_parse_from(argv).expect("parses").run
    }

    #[test]
    fn every_word_after_the_image_is_the_modules() {
        let run = parse(&[
            "--rm", "-e", "A=1", "py:3", "-c", "print(1)", "-e", "--", "-t",
        ]);
        assert!(run.rm);
        assert_eq!(run.env, ["A=1"]);
        assert_eq!(run.image(), "py:3");
        assert_eq!(run.args(), ["-c", "print(1)", "-e", "--", "-t"]);
    }

    #[test]
    fn an_image_alone_has_no_args_and_none_is_an_error() {
        let run = parse(&["-d", "hello:1.0"]);
        assert!(run.detach);
        assert_eq!(run.image(), "hello:1.0");
        assert!(run.args().is_empty());
        let argv = ["wrun", "--rm"];
        assert!(Probe::try_parse_from(argv).is_err());
    }
}
