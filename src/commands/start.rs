//! `wrun start [-a] [-i] INSTANCE...`: start created or exited instances
//! again; with `-a` (or `-i`), stay attached to the one instance started and
//! exit with its exit code, as `docker start -a` does.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::client::{Client, Demux, Hijacked, Pending, print_frame};
use wrun_api::containers::WaitResponse;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR: print the instance's output until it ends, then exit with its exit code
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach STDIN too (the instance must have been created with -i)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true, value_name = "INSTANCE")]
    pub instances: Vec<String>,
}

pub fn run(target: &DaemonTarget, args: StartArgs) -> anyhow::Result<ExitCode> {
    let client = target.client()?;
    if args.attach || args.interactive {
        let [name] = args.instances.as_slice() else {
            anyhow::bail!("you cannot start and attach multiple instances at once");
        };
        return start_attached(&client, name, args.interactive);
    }
    super::for_each(&args.instances, |name| {
        client.call(
            Method::POST,
            &format!("/containers/{}/start", super::escape(name)),
            None,
        )?;
        println!("{name}");
        Ok(())
    })
}

/// As `docker start -a`: attaches first (so no output is missed), places
/// the `wait` (for the instance's removal when it was created with `--rm`,
/// else for its next exit, so neither can slip past), starts, then follows
/// the run and exits with its exit code.
fn start_attached(client: &Client, name: &str, stdin: bool) -> anyhow::Result<ExitCode> {
    let view: serde_json::Value = client.json(
        Method::GET,
        &format!("/containers/{}/json", super::escape(name)),
        None,
    )?;
    let id = view["Id"]
        .as_str()
        .context("the daemon's inspect answer has no Id")?
        .to_owned();
    let condition = if view["HostConfig"]["AutoRemove"] == true {
        "removed"
    } else {
        "next-exit"
    };
    let attached = client.hijack(&attach_path(&id, stdin))?;
    let waiting = client.begin(Method::POST, &wait_path(&id, condition))?;
    client.call(Method::POST, &format!("/containers/{id}/start"), None)?;
    follow(client, attached, stdin, waiting)
}

/// The attach request for instance `id` (escaped), with or without stdin.
pub fn attach_path(id: &str, stdin: bool) -> String {
    format!(
        "/containers/{id}/attach?stream=1&stdout=1&stderr=1{}",
        if stdin { "&stdin=1" } else { "" }
    )
}

/// The wait request for instance `id` (escaped) until `condition`.
pub fn wait_path(id: &str, condition: &str) -> String {
    format!("/containers/{id}/wait?condition={condition}")
}

/// Copies the attached output (and, with `stdin`, this process's stdin the
/// other way) until the run ends, then reads the exit code `waiting` was
/// placed for.
pub fn follow(
    client: &Client,
    mut attached: Hijacked,
    stdin: bool,
    waiting: Pending,
) -> anyhow::Result<ExitCode> {
    if stdin {
        let mut to_guest = attached.to_daemon.try_clone()?;
        // A plain thread: reading our stdin blocks. At its end the guest
        // sees end of file; the thread is not waited for (the process ends
        // with the instance).
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_guest);
            let _ = to_guest.shutdown(std::net::Shutdown::Write);
        });
    }
    let mut demux = Demux::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match attached.from_daemon.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        demux.feed(&buf[..n], print_frame)?;
    }
    let w: WaitResponse = client.finish_json(waiting)?;
    Ok(ExitCode::from(
        u8::try_from(w.status_code & 0xff).unwrap_or(1),
    ))
}
