//! `wrun run IMAGE|IMAGE.tar [ARG...]` (and the `wrun IMAGE.tar` shorthand):
//! resolve the image, build the instance spec from the image config and the
//! flags, run it in the foreground, and exit with the guest's code.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser};
use wrun_image::{ImageRecord, Store};
use wrun_runtime::{InputSource, Limits, OutputTarget, Runtime, RuntimeConfig};

use super::open_store;
use crate::launch::{self, RunSettings};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background (in the daemon) and print the instance ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// With -d: restart policy when the instance ends or the daemon starts (no, always, unless-stopped, on-failure[:N])
    #[arg(long, value_name = "POLICY", value_parser = crate::api::containers::RestartPolicy::parse)]
    pub restart: Option<crate::api::containers::RestartPolicy>,
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
    /// Grant a host directory: HOST:GUEST[:ro|rw] (HOST absolute or ./relative)
    #[arg(short = 'v', long = "volume", value_name = "HOST:GUEST[:ro|rw]")]
    pub volumes: Vec<String>,
    /// Accepted for Docker compatibility: the image rootfs is always read-only
    #[arg(long)]
    pub read_only: bool,
    /// A private, empty, writable /tmp for this instance (PATH must be /tmp;
    /// options after ':' are ignored). Without it nothing is writable but volumes
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
    /// CPU budget in fuel units (about one per wasm instruction)
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
    /// Network mode: none (the default: nothing but the grants above; bridge and default mean it too) or host (everything)
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// The image: a stored name or ID, or the path of an image tar
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Arguments for the module (replace the image's Cmd)
    #[arg(
        value_name = "ARG",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

/// `wrun IMAGE.tar ARGS…`: the words after `wrun` parsed as `wrun run`.
#[derive(Debug, Parser)]
#[command(name = "wrun")]
struct ShorthandRun {
    #[command(flatten)]
    run: RunArgs,
}

pub fn run_shorthand(
    root: &Path,
    host: Option<&str>,
    words: Vec<OsString>,
) -> anyhow::Result<ExitCode> {
    let first = words
        .first()
        .map(|w| w.to_string_lossy().into_owned())
        .unwrap_or_default();
    let argv = std::iter::once(OsString::from("wrun")).chain(words);
    let parsed = ShorthandRun::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!(e.to_string().trim().to_string()))?;
    run(root, host, parsed.run).map_err(|e| {
        if e.downcast_ref::<wrun_image::ImageError>()
            .is_some_and(|ie| ie.is_not_found())
        {
            e.context(format!(
                "{first:?} is neither a wrun command nor an image (see wrun --help)"
            ))
        } else {
            e
        }
    })
}

pub fn run(root: &Path, host: Option<&str>, args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(name) = &args.name {
        check_name(name)?;
    }
    if args.detach {
        return super::run_detached::run(root, host, args);
    }
    if args.restart.is_some() {
        anyhow::bail!("--restart needs -d: restart policies are applied by the daemon");
    }
    if !args.log_opts.is_empty() {
        anyhow::bail!("--log-opt needs -d: a foreground run writes to the terminal, not a log");
    }
    let store = open_store(root)?;
    let record = resolve_image(&store, &args.image)?;
    let settings = settings(&args)?;
    if settings.network.host {
        eprintln!("WARNING: {}", crate::api::network::HOST_MODE_WARNING);
    }
    let mut launch = launch::plan(&store, &record, &args.image, &settings)?;
    launch.spec.stdout = OutputTarget::Inherit;
    launch.spec.stderr = OutputTarget::Inherit;
    launch.spec.stdin = if args.interactive {
        InputSource::Inherit
    } else {
        InputSource::Null
    };

    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(store.cache_dir().join("modules")),
        scratch_dir: Some(store.root().join("scratch")),
        ..RuntimeConfig::foreground()
    })
    .context("starting the wasm runtime")?;
    let module = launch::prepare(&runtime, &launch)?;
    if module.serves_http() {
        drop(module);
        drop(runtime);
        return crate::serve::foreground(&store, launch, &args.image, &settings.serve);
    }
    let asked: Vec<u16> = launch
        .spec
        .network
        .publish
        .iter()
        .map(|m| m.host_port)
        .collect();
    launch::claim_ports(&mut launch)?;
    for (m, asked) in launch.spec.network.publish.iter().zip(asked) {
        if asked == 0 {
            eprintln!("publishing {m}");
        }
    }
    let outcome = runtime
        .run_blocking(&module, launch.spec)
        .map_err(anyhow::Error::from)?;
    // The process is about to exit: tearing down the instance pool (an
    // madvise over its whole reservation) would only delay that.
    std::mem::forget(module);
    std::mem::forget(runtime);
    let ended = launch::ended(&outcome, &launch.module_name);
    if let Some(error) = &ended.error {
        eprintln!("Error: {error}");
        if args.debug
            && let Some(bt) = &ended.backtrace
        {
            eprintln!("wasm backtrace:\n{bt}");
        }
    }
    Ok(ExitCode::from(ended.exit_code))
}

/// The run settings the flags ask for (env files and `-e NAME` resolved
/// here, on the client side, as Docker does).
pub fn settings(args: &RunArgs) -> anyhow::Result<RunSettings> {
    let mut volumes = Vec::new();
    for v in &args.volumes {
        volumes.push(parse_volume(v)?);
    }
    let network = network_grants(args)?;
    Ok(RunSettings {
        entrypoint: args.entrypoint.iter().cloned().collect(),
        cmd: args.args.clone(),
        env: given_env(args)?,
        workdir: args.workdir.clone(),
        volumes,
        tmp: crate::api::containers::private_tmp(args.tmpfs.iter().map(String::as_str))
            .map_err(anyhow::Error::msg)?,
        limits: Limits {
            memory: args.memory,
            timeout: args.timeout,
            fuel: args.fuel,
        },
        network,
        publish_all: args.publish_all,
        serve: crate::serve::ServeSettings {
            max_concurrency: args
                .max_concurrency
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_body_size: args.max_body_size,
            header_timeout: args.header_timeout,
        },
    })
}

/// The grants `--network`, `-p` and `--allow-*` ask for, checked as the
/// daemon checks a create request.
fn network_grants(args: &RunArgs) -> anyhow::Result<wrun_runtime::NetworkGrants> {
    let mode = args.network.as_deref().unwrap_or("");
    let mut config = crate::api::containers::ContainerConfig::default();
    let mut host = crate::api::containers::HostConfig::default();
    let wanted = wrun_runtime::NetworkGrants {
        host: false,
        connect: args.allow_connect.clone(),
        dns: args.allow_dns,
        udp: args.allow_udp,
        publish: args.publish.clone(),
    };
    // Before the request shape, which keys ports by guest port.
    wanted.check()?;
    crate::api::network::request_fields(&wanted, mode, &mut config, &mut host);
    host.publish_all_ports = args.publish_all;
    crate::api::network::grants(&config, &host).map_err(anyhow::Error::msg)
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
    Ok(store.find(image)?)
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

/// `HOST:GUEST[:ro|rw]` with HOST an existing directory (absolute or
/// relative to the current directory).
pub fn parse_volume(spec: &str) -> anyhow::Result<(PathBuf, String, bool)> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, guest, mode) = match parts.as_slice() {
        [h, g] => (*h, *g, "rw"),
        [h, g, m] => (*h, *g, *m),
        _ => bail!("invalid volume {spec:?}: expected HOST:GUEST[:ro|rw]"),
    };
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => bail!("invalid volume {spec:?}: mode {other:?} is not ro or rw"),
    };
    if !(host.starts_with('/') || host.starts_with('.')) {
        bail!(
            "invalid volume {spec:?}: named volumes are not supported; give a host directory (absolute or ./relative)"
        );
    }
    if !guest.starts_with('/') || guest == "/" {
        bail!("invalid volume {spec:?}: the guest path must be absolute and not /");
    }
    let host = std::path::absolute(host).with_context(|| format!("resolving {host}"))?;
    if !host.is_dir() {
        bail!(
            "invalid volume {spec:?}: host directory {} does not exist",
            host.display()
        );
    }
    Ok((host, guest.to_string(), read_only))
}

/// Docker's memory syntax: a number with an optional b, k, m, g, t suffix
/// (binary multiples, optional trailing "b": 64m, 64mb, 1g).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number with an optional unit (b, k, m, g)")
    })?;
    let mult: u64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (use b, k, m, g)"
            ));
        }
    };
    let bytes = value * mult as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("invalid size {s:?}: must be positive"));
    }
    Ok(bytes as u64)
}

/// `500ms`, `5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 5s, 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {unit:?} (use ms, s, m, h)"
            ));
        }
    };
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn check_name(name: &str) -> anyhow::Result<()> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    if !ok {
        bail!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_follow_docker() {
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert_eq!(parse_memory("64MB"), Ok(64 << 20));
        assert_eq!(parse_memory("1g"), Ok(1 << 30));
        assert_eq!(parse_memory("512"), Ok(512));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("10x").is_err());
        assert!(parse_memory("0").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn volumes_need_existing_dirs_and_absolute_guest_paths() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (host, guest, ro) = parse_volume(&format!("{d}:/data:ro")).unwrap();
        assert_eq!(
            (host.as_path(), guest.as_str(), ro),
            (dir.path(), "/data", true)
        );
        assert!(parse_volume(&format!("{d}:data")).is_err());
        assert!(parse_volume(&format!("{d}:/")).is_err());
        assert!(parse_volume(&format!("{d}:/data:rx")).is_err());
        assert!(
            parse_volume("myvol:/data")
                .unwrap_err()
                .to_string()
                .contains("named volumes")
        );
        assert!(
            parse_volume("/nonexistent/dir:/data")
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }
}
