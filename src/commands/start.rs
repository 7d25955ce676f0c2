//! `wrun start [-a] [-i] INSTANCE...`: start created or exited instances
//! again; with `-a` (or `-i`), stay attached to the one instance started and
//! exit with its exit code, as `docker start -a` does.

use std::io::Read;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::DaemonTarget;
use crate::client::{Client, Demux, Hijacked, print_frame};
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

/// Attaches first (so no output is missed), starts, then follows the run.
fn start_attached(client: &Client, name: &str, stdin: bool) -> anyhow::Result<ExitCode> {
    let id = super::escape(name);
    let attached = client.hijack(&attach_path(&id, stdin))?;
    client.call(Method::POST, &format!("/containers/{id}/start"), None)?;
    follow(client, &id, attached, stdin)
}

/// The attach request for instance `id` (escaped), with or without stdin.
pub fn attach_path(id: &str, stdin: bool) -> String {
    format!(
        "/containers/{id}/attach?stream=1&stdout=1&stderr=1{}",
        if stdin { "&stdin=1" } else { "" }
    )
}

/// Copies the attached output (and, with `stdin`, this process's stdin the
/// other way) until the run ends, then asks for its exit code.
pub fn follow(
    client: &Client,
    id: &str,
    mut attached: Hijacked,
    stdin: bool,
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
    let w: WaitResponse = client.json(Method::POST, &format!("/containers/{id}/wait"), None)?;
    Ok(ExitCode::from(
        u8::try_from(w.status_code & 0xff).unwrap_or(1),
    ))
}
