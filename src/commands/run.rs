//! `wrun run IMAGE|IMAGE.tar [ARG...]` (and the `wrun IMAGE.tar` shorthand):
//! resolve the image, turn the flags' create request into the run with the
//! daemon's own conversion, run it in the foreground, exit with its code.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Parser;
use wrun_runtime::{InputSource, OutputSink, OutputTarget, Runtime, RuntimeConfig};

use wrun_api::parse::check_name;
use wrun_daemon::{launch, outcome};

use super::open_store;
use super::run_args::{RunArgs, create_request, resolve_image};

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
    args.refused.check("run")?;
    if let Some(name) = &args.name {
        check_name(name).map_err(anyhow::Error::msg)?;
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
    // A foreground run uses the store at `root`: a pull goes to it (through
    // the daemon serving it, if one does), not to a host named.
    super::run_args::pull_for_run(root, None, &args)?;
    let store = open_store(root)?;
    let record = resolve_image(&store, args.image())?;
    super::run_args::refuse_networks_in_foreground(&args)?;
    let mut request = create_request(&args, args.image().to_string())?;
    // The daemon's own conversion: a foreground run and a daemon's run of
    // the same flags cannot drift apart.
    for warning in launch::adapt(&mut request.config, &mut request.host_config)? {
        eprintln!("WARNING: {warning}");
    }
    let settings = launch::settings(&request.config, &request.host_config)?
        .host_binds(launch::HostBinds::FOREGROUND.allowing(args.allow_dangerous_binds));
    if settings.network.host {
        eprintln!("WARNING: {}", wrun_daemon::grants::HOST_MODE_WARNING);
    }
    let mut launch = launch::plan(&store, &record, args.image(), &settings)?;
    let merged = launch.merged_config(request.config.clone());
    for v in wrun_daemon::volume_store::unmounted_volumes(&merged, &request.host_config) {
        eprintln!("WARNING: {}", launch::image_volume_warning(v));
    }
    // Writable as in Docker, unless --read-only (then a change is EROFS, as
    // under the daemon); what the guest writes is gone when the run ends (a
    // foreground run keeps no record).
    let upper = ScratchUpper::new(&store)?;
    if settings.read_only {
        if let Some(rootfs) = launch.spec.rootfs.clone() {
            let view = wrun_daemon::rootfs_views::read_only_view(&rootfs, &upper.path)?;
            launch.spec.writable_rootfs = Some(view);
        }
    } else {
        launch::give_writable_rootfs(&mut launch, &upper.path, settings.storage_size)?;
    }
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
        return super::run_http::foreground(&store, launch, args.image(), &settings.serve);
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
    // A command's streams go through `Terminal`, which sees its reader go
    // away (an HTTP server's, above, write to ours as they are).
    let reader_gone = Arc::new(ReaderGone::default());
    launch.spec.stdout = Terminal::target(TerminalStream::Stdout, &reader_gone);
    launch.spec.stderr = Terminal::target(TerminalStream::Stderr, &reader_gone);
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the executor of the run")?;
    let outcome = executor.block_on(async {
        tokio::select! {
            biased;
            // Dropping the run stops the guest where it is.
            () = reader_gone.notified() => None,
            outcome = runtime.run(&module, launch.spec) => Some(outcome),
        }
    });
    // The process is about to exit: tearing down the instance pool (an
    // madvise over its whole reservation) would only delay that.
    std::mem::forget(module);
    std::mem::forget(runtime);
    // The guest may have ended in the poll that saw its reader go: the
    // reader going away decides how the run ends.
    let outcome = match outcome {
        Some(outcome) if !reader_gone.is_set() => outcome.map_err(anyhow::Error::from)?,
        _ => return Ok(ExitCode::from(crate::EXIT_CLOSED_STDOUT)),
    };
    let ended = outcome::ended(&outcome, &launch.module_name);
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

/// The upper of a foreground run's writable rootfs:
/// `<root>/scratch/tmp-<pid>-rootfs/upper` (made by the view on the first
/// write, with the parts it makes beside it), removed with its directory
/// when the run ends. The name is the scratch area's convention, so what a
/// killed run left is removed by the next wrun process that finds its pid
/// gone (the runtime's sweep, and this one).
struct ScratchUpper {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl ScratchUpper {
    fn new(store: &wrun_image::Store) -> anyhow::Result<ScratchUpper> {
        let scratch = store.root().join("scratch");
        wrun_image::store::create_private_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        for entry in std::fs::read_dir(&scratch).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let dead = name
                .to_str()
                .and_then(|n| n.strip_prefix("tmp-")?.strip_suffix("-rootfs"))
                .and_then(|pid| pid.parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
                .is_some_and(|pid| {
                    rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
                });
            if dead {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = scratch.join(format!("tmp-{}-rootfs", std::process::id()));
        // A leftover of an earlier process with this pid is no one's.
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("upper");
        Ok(ScratchUpper { dir, path })
    }
}

impl Drop for ScratchUpper {
    fn drop(&mut self) {
        // std's remove_dir_all does not follow the symlinks a guest made.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Set when a write to our stdout or stderr finds its reader gone
/// (`wrun run IMAGE | head -c 1`). The run then ends as the docker client
/// does when killed by SIGPIPE: quietly, the guest stopped, status 141.
#[derive(Default)]
struct ReaderGone {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl ReaderGone {
    fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        // A stored permit: the run's select sees it at its next poll.
        self.notify.notify_one();
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    async fn notified(&self) {
        if !self.is_set() {
            self.notify.notified().await;
        }
    }
}

#[derive(Clone, Copy)]
enum TerminalStream {
    Stdout,
    Stderr,
}

/// A guest stream written straight to ours, flushed at each write (a
/// prompt without a newline shows at once). Once a reader is gone nothing
/// more is written: the guest's writes succeed until the run is stopped,
/// as a docker guest's do when its client dies.
struct Terminal {
    stream: TerminalStream,
    reader_gone: Arc<ReaderGone>,
}

impl Terminal {
    fn target(stream: TerminalStream, reader_gone: &Arc<ReaderGone>) -> OutputTarget {
        OutputTarget::Sink(Arc::new(Self {
            stream,
            reader_gone: Arc::clone(reader_gone),
        }))
    }
}

impl OutputSink for Terminal {
    fn write(&self, chunk: &[u8]) -> std::io::Result<()> {
        if self.reader_gone.is_set() {
            return Ok(());
        }
        let written = match self.stream {
            TerminalStream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(chunk).and_then(|()| out.flush())
            }
            TerminalStream::Stderr => std::io::stderr().lock().write_all(chunk),
        };
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.reader_gone.set();
                Ok(())
            }
            other => other,
        }
    }

    fn is_terminal(&self) -> bool {
        use std::io::IsTerminal;
        match self.stream {
            TerminalStream::Stdout => std::io::stdout().is_terminal(),
            TerminalStream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}
