//! `wrun exec [-i] [-d] [-e K=V] [--env-file F] [-w DIR] INSTANCE CMD [ARG...]`:
//! runs a module as a second instance beside a running one, sharing its
//! filesystem, volumes and network grants; exits with the module's exit code.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use hyper::Method;
use wrun_api::exec::{ExecCreateRequest, ExecCreateResponse, ExecInspect, ExecStartRequest};

use super::DaemonTarget;
use crate::client::{Demux, print_frame};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: start the command and return (its output is discarded)
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open and pass it to the command
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Set environment variables (KEY=VALUE, or KEY to pass the host's value)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read a file of environment variables (KEY=VALUE lines, # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory of the command (absolute) [default: the instance's]
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Shown by `docker exec` inspect; without a TTY no key sequence detaches
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Refused: wrun instances have no TTY
    #[arg(short = 't', long, hide = true)]
    pub tty: bool,
    /// Refused: a wasm instance has no users
    #[arg(short = 'u', long, value_name = "USER", hide = true)]
    pub user: Option<String>,
    /// Refused: an exec gets what its instance was granted
    #[arg(long, hide = true)]
    pub privileged: bool,
    #[arg(value_name = "INSTANCE")]
    pub instance: String,
    /// A wasm module's path in the instance (or a name in its PATH) and its
    /// arguments; otherwise the arguments of the image's entrypoint module
    #[arg(value_name = "CMD", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: ExecArgs) -> anyhow::Result<ExitCode> {
    if args.tty {
        bail!(
            "wrun exec does not take --tty: wrun instances have no TTY: output is a plain stream (use -i alone to attach stdin)"
        );
    }
    if let Some(user) = &args.user {
        bail!(
            "wrun exec does not take --user ({user:?}): a wasm instance has no users; an exec reaches what its instance was granted"
        );
    }
    if args.privileged {
        bail!("wrun exec does not take --privileged: an exec gets what its instance was granted");
    }
    let env = given_env(&args.env, &args.env_file)?;
    let client = target.client()?;
    let id = super::escape(&args.instance);
    let attach = !args.detach;
    let request = ExecCreateRequest {
        attach_stdin: attach && args.interactive,
        attach_stdout: attach,
        attach_stderr: attach,
        detach: args.detach,
        detach_keys: args.detach_keys.clone().unwrap_or_default(),
        env: (!env.is_empty()).then_some(env),
        working_dir: args.workdir.clone().unwrap_or_default(),
        cmd: Some(args.cmd.clone()),
        ..ExecCreateRequest::default()
    };
    let created: ExecCreateResponse = client.json(
        Method::POST,
        &format!("/containers/{id}/exec"),
        Some(serde_json::to_vec(&request)?),
    )?;
    let exec_id = super::escape(&created.id);
    let start = serde_json::to_vec(&ExecStartRequest {
        detach: args.detach,
        ..ExecStartRequest::default()
    })?;
    let start_path = format!("/exec/{exec_id}/start");
    if args.detach {
        client.call(Method::POST, &start_path, Some(start))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut attached = client.hijack_with_json(&start_path, &start)?;
    if args.interactive {
        let mut to_exec = attached.to_daemon.try_clone()?;
        // A plain thread: reading our stdin blocks. At its end the exec
        // sees end of file; the thread is not waited for.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_exec);
            let _ = to_exec.shutdown(std::net::Shutdown::Write);
        });
    }
    let mut demux = Demux::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match attached.from_daemon.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the exec's output"),
        };
        demux.feed(&buf[..n], print_frame)?;
    }
    let inspect: ExecInspect = client.json(Method::GET, &format!("/exec/{exec_id}/json"), None)?;
    if inspect.running {
        bail!(
            "the exec's stream ended while it still runs (exec {})",
            created.id
        );
    }
    let code = inspect.exit_code.unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)))
}

/// The variables the flags give: `--env-file` lines, then `-e`; `-e NAME`
/// takes the host's value (unset stays unset), as docker exec does.
fn given_env(env: &[String], files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut given: Vec<String> = Vec::new();
    for file in files {
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
    given.extend(env.iter().cloned());
    let mut pairs = Vec::new();
    for kv in given {
        match kv.split_once('=') {
            Some(("", _)) => bail!("invalid environment variable {kv:?}: the name is empty"),
            Some(_) => pairs.push(kv),
            None => {
                if let Ok(v) = std::env::var(&kv) {
                    pairs.push(format!("{kv}={v}"));
                }
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn env_flags_read_as_dockers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "# a comment\nA=1\n\n  B=two words\n").unwrap();
        let env = given_env(&["C=3".into(), "A=4".into()], std::slice::from_ref(&file)).unwrap();
        assert_eq!(env, ["A=1", "B=two words", "C=3", "A=4"]);
        let e = given_env(&["=x".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("the name is empty"), "{e}");
        std::fs::write(&file, "=x\n").unwrap();
        let e = given_env(&[], &[file]).unwrap_err();
        assert!(
            e.to_string().contains(":1: invalid environment variable"),
            "{e}"
        );
    }
}
