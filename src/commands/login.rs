//! `wrun login SERVER -u USER (-p PASSWORD | --password-stdin)`: check the
//! credentials against the registry, then keep them in wrun's `config.json`
//! (docker's format, mode 0600); also where pull and push find them.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use wrun_image::registry::{
    self, Access, AuthFile, Credentials, RegistryConfig, RegistryOptions, RemoteRef, registry_auth,
};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// The registry, HOST[:PORT] [default: default-registry in wrun's config.json]
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// The registry flags of pull, push, login and search.
#[derive(Debug, Default, Args)]
pub struct RegistryFlags {
    /// Skip the registry's TLS certificate check, or speak plain HTTP to it
    /// (as if listed in insecure-registries)
    #[arg(long)]
    pub insecure: bool,
}

/// Where wrun keeps its credentials: `$WRUN_CONFIG/config.json`, else
/// `$XDG_CONFIG_HOME/wrun/config.json`, else `~/.config/wrun/config.json`.
pub fn wrun_config_file() -> anyhow::Result<PathBuf> {
    Ok(registry::wrun_config_dir()?.join("config.json"))
}

/// The registry configuration in wrun's `config.json` (default registry,
/// insecure registries) and its `certs.d`.
pub fn registry_config() -> anyhow::Result<RegistryConfig> {
    Ok(RegistryConfig::load(&registry::wrun_config_dir()?)?)
}

/// Where `name` lives: its registry, else the configured default one.
pub fn remote_ref(name: &str) -> anyhow::Result<RemoteRef> {
    Ok(registry_config()?.remote_ref(name)?)
}

/// `--insecure` names nothing a daemon takes: refused, not dropped.
pub fn refuse_insecure_through_daemon(flags: &RegistryFlags) -> anyhow::Result<()> {
    if flags.insecure {
        bail!(
            "--insecure is not sent to a daemon (the Docker API has no such field): list the registry in insecure-registries of the daemon's config.json"
        );
    }
    Ok(())
}

/// The options of a call to `registry`: the configuration's (and
/// `--insecure`'s), the transport found by reaching it, anonymous.
pub fn registry_options(registry: &str, flags: &RegistryFlags) -> anyhow::Result<RegistryOptions> {
    let mut options = registry_config()?.options(Some(registry), flags.insecure);
    options.reach(registry)?;
    Ok(options)
}

/// Docker's own file, read as a fallback: `$DOCKER_CONFIG/config.json`,
/// else `~/.docker/config.json` (none when neither can be named).
fn docker_config_file() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The credentials stored for `registry`: wrun's file first, then
/// docker's; never another host's.
pub fn stored_credentials(registry: &str) -> anyhow::Result<Option<Credentials>> {
    if let Some(c) = AuthFile::read(&wrun_config_file()?)?.get(registry)? {
        return Ok(Some(c));
    }
    match docker_config_file() {
        Some(path) => Ok(AuthFile::read(&path)?.get(registry)?),
        None => Ok(None),
    }
}

/// The options of a pull or push of `reference`: its registry's stored
/// credentials (a Bearer token fetched with them when it asks for one).
pub fn transfer_options(reference: &RemoteRef, access: Access) -> anyhow::Result<RegistryOptions> {
    transfer_options_with(reference, access, &RegistryFlags::default())
}

/// [`transfer_options`] with the registry flags of the command line.
pub fn transfer_options_with(
    reference: &RemoteRef,
    access: Access,
    flags: &RegistryFlags,
) -> anyhow::Result<RegistryOptions> {
    let mut options = registry_options(&reference.registry, flags)?;
    let credentials = stored_credentials(&reference.registry)?;
    options.auth = registry_auth(
        &options,
        &reference.registry,
        &reference.repository,
        credentials.as_ref(),
        access,
    )?;
    Ok(options)
}

/// `SERVER` as docker takes it (`http://host:port/v2/` → `host:port`).
pub fn server_host(server: Option<&str>, verb: &str) -> anyhow::Result<String> {
    let Some(server) = server.filter(|s| !s.is_empty()) else {
        if let Some(default) = registry_config()?.default_registry {
            return Ok(default);
        }
        bail!("wrun {verb} needs a SERVER, HOST[:PORT] (wrun has no default registry)");
    };
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = rest.split('/').next().unwrap_or(rest);
    // Checked as the registry part of an image name is.
    RemoteRef::parse(&format!("{host}/x"))
        .ok()
        .filter(|r| r.registry == host)
        .with_context(|| format!("{server:?} is not a registry HOST[:PORT]"))?;
    Ok(host.to_owned())
}

pub fn run(args: LoginArgs) -> anyhow::Result<ExitCode> {
    if args.password.is_some() && args.password_stdin {
        bail!("conflicting options: cannot specify both --password and --password-stdin");
    }
    if args.password_stdin && args.username.is_none() {
        bail!("the --password-stdin option requires --username to be set");
    }
    let host = server_host(args.server.as_deref(), "login")?;
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from stdin")?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        args.password.clone().unwrap_or_default()
    };
    let username = args.username.clone().unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        if !std::io::stdin().is_terminal() {
            bail!("Cannot perform an interactive login from a non TTY device");
        }
        bail!("wrun login asks no questions: pass -u USER and --password-stdin (or -p PASSWORD)");
    }
    let credentials = Credentials { username, password };
    registry::login(
        &registry_options(&host, &args.registry)?,
        &host,
        &credentials,
    )?;
    let path = wrun_config_file()?;
    let mut file = AuthFile::read(&path)?;
    file.set(&host, &credentials);
    file.write()?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.",
        path.display()
    );
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}
