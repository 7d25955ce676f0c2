//! `docker exec`: a second module run as a new wasm instance beside a running
//! one, sharing its filesystem view, volumes and network grants (the routes
//! `POST /containers/{id}/exec`, `POST /exec/{id}/start`, `GET /exec/{id}/json`,
//! `POST /exec/{id}/resize`; docs/cli.md says which module runs).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::sync::Notify;
use wrun_api::exec::{ExecCreateRequest, ExecCreateResponse, ExecStartRequest};
use wrun_api::stream::{STDERR, STDOUT};
use wrun_runtime::{
    InputSource, InputStream, ModuleDigest, ModuleKind, OutputSink, OutputTarget, PrepareOptions,
    PreparedModule,
};

use crate::container_streams::{FrameSource, frames_body, hijack};
use crate::error::DaemonError;
use crate::events::ContainerSubject;
use crate::gate::RunGate;
use crate::http::{Body, Query, empty, json, parse_json, read_body};
use crate::instance::Container;
use crate::lifecycle::Status;
use crate::state::Daemon;

pub(crate) mod table;
use table::{Exec, ExecState};

/// What dockerd's exec start answers with, upgraded or not.
const RAW_STREAM: &str = "application/vnd.docker.raw-stream";

/// The exit code of an exec that could not start (dockerd's 126, whatever
/// the cause), and of one ended by its instance's end (dockerd's SIGKILL).
const EXIT_CANNOT_START: i64 = 126;
const EXIT_INSTANCE_ENDED: i64 = 137;

/// The largest module an exec reads from the instance's filesystem.
const MAX_MODULE_BYTES: u64 = 512 << 20;

/// Output queued for a slow client above which the exec is paused (at its
/// next yield) until the client has read it down to [`LOW_WATER`].
const HIGH_WATER: usize = 1 << 20;
const LOW_WATER: usize = 256 << 10;

/// Bytes an attached client may write ahead of the exec's reads.
const STDIN_BUFFER: usize = 64 * 1024;

/// Docker's `PATH` when the instance sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The refusal of a TTY, worded as `run -t`'s.
fn no_tty() -> DaemonError {
    DaemonError::invalid("wrun instances have no TTY: run without -t")
}

/// Why an instance takes no exec now, in dockerd's words; `key` is how the
/// client named it.
fn check_active(c: &Container, key: &str) -> Result<(), DaemonError> {
    let r = c.record();
    if !r.state.status.is_live() {
        return Err(crate::lifecycle::not_running(&c.id));
    }
    if r.state.status == Status::Paused {
        return Err(DaemonError::conflict(format!(
            "Container {key} is paused, unpause the container before exec"
        )));
    }
    if r.state.restarting {
        return Err(DaemonError::conflict(format!(
            "Container {} is restarting, wait until the container is running",
            c.id
        )));
    }
    Ok(())
}

/// `POST /containers/{id}/exec`: 201 and the new exec's ID. Checked in
/// dockerd's order: the body, the command, the instance and its state, then
/// what wrun cannot give (a TTY, a user, privileges).
pub async fn create(
    daemon: &Arc<Daemon>,
    key: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let body = read_body(req).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DaemonError::invalid("got EOF while reading request body"));
    }
    let config: ExecCreateRequest = parse_json(&body)?;
    let cmd = config.cmd.clone().unwrap_or_default();
    if cmd.is_empty() {
        return Err(DaemonError::invalid("No exec command specified"));
    }
    let c = daemon.find(key)?;
    // Read before the check: a run that ends after it forgets the exec.
    let run = c.lifecycle.borrow().exits;
    check_active(&c, key)?;
    if config.tty {
        return Err(no_tty());
    }
    if !config.user.is_empty() {
        return Err(DaemonError::invalid(format!(
            "user {:?} cannot be applied: a wasm instance has no users; an exec reaches what its instance was granted",
            config.user
        )));
    }
    if config.privileged {
        return Err(DaemonError::invalid(
            "privileged mode is not supported: an exec gets what its instance was granted",
        ));
    }
    for kv in config.env.iter().flatten() {
        env_pair(kv)?;
    }
    if let Some(word) = cmd.iter().find(|w| w.contains('\0')) {
        return Err(DaemonError::invalid(format!(
            "invalid command word {word:?}: a NUL cannot be passed to a module"
        )));
    }
    if !wrun_api::exec::valid_detach_keys(&config.detach_keys) {
        return Err(DaemonError::invalid(format!(
            "Invalid escape keys ({}) provided",
            config.detach_keys
        )));
    }
    let id = crate::registry::new_id();
    let exec = Arc::new(Exec {
        id: id.clone(),
        serial: next_serial(),
        container: Arc::clone(&c),
        run,
        cmd: cmd.clone(),
        config,
        state: Mutex::new(ExecState::default()),
    });
    daemon.execs.insert(exec);
    let record = c.record();
    daemon.events.container(
        &format!("exec_create: {}", cmd.join(" ")),
        &c.id,
        &ContainerSubject::of(&record),
        &[("execID", id.clone())],
    );
    Ok(json(StatusCode::CREATED, &ExecCreateResponse { id }))
}

/// One `KEY=VALUE` of an exec's `Env`.
fn env_pair(kv: &str) -> Result<(String, String), DaemonError> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() && !kv.contains('\0') => Ok((k.to_owned(), v.to_owned())),
        _ => Err(DaemonError::invalid(format!(
            "invalid environment variable: {kv:?} (KEY=VALUE, with a non-empty KEY and no NUL)"
        ))),
    }
}

fn next_serial() -> u64 {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `GET /exec/{id}/json`.
pub fn inspect(daemon: &Daemon, id: &str) -> Result<Response<Body>, DaemonError> {
    let exec = daemon.execs.find(id)?;
    Ok(json(StatusCode::OK, &exec.inspect()))
}

/// `POST /exec/{id}/resize?h=&w=`: dockerd's checks of the numbers; there
/// is no TTY to resize, so nothing else happens.
pub fn resize(daemon: &Daemon, id: &str, query: &Query) -> Result<Response<Body>, DaemonError> {
    for v in [query.get("h"), query.get("w")] {
        let v = v.unwrap_or("");
        v.parse::<i32>().map_err(|_| {
            DaemonError::invalid(format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
        })?;
    }
    daemon.execs.find(id)?;
    Ok(empty(StatusCode::OK))
}

/// `POST /exec/{id}/start`: with `Detach`, 200 once it runs; otherwise the
/// connection becomes the exec's stream (101 with `Upgrade: tcp`, else a
/// 200 body) of multiplexed frames, what the client sends is its stdin
/// (with `AttachStdin`), and the stream ends after the exec has ended and
/// its exit code is recorded. A failure to start is told in the stream, as
/// dockerd tells it, and recorded as exit code 126.
pub async fn start(
    daemon: &Arc<Daemon>,
    id: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let exec = daemon.execs.find(id)?;
    let on_upgrade = crate::container_streams::upgrade_of(&mut req);
    let upgrading = on_upgrade.is_some();
    let body = read_body(req).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DaemonError::invalid("got EOF while reading request body"));
    }
    let start: ExecStartRequest = parse_json(&body)?;
    if start.tty {
        return Err(no_tty());
    }
    {
        let mut s = exec.state();
        if s.exit_code.is_some() {
            return Err(DaemonError::conflict(format!(
                "Error: Exec command {} has already run",
                exec.id
            )));
        }
        if s.started {
            return Err(DaemonError::conflict(format!(
                "Error: Exec command {} is already running",
                exec.id
            )));
        }
        check_active(&exec.container, &exec.container.id)?;
        s.started = true;
    }
    let attached = !start.detach;
    let out = attached.then(|| Arc::new(Frames::default()));
    let (stdin, stdin_writer) = if attached && exec.config.attach_stdin && upgrading {
        let (r, w) = tokio::io::duplex(STDIN_BUFFER);
        (InputSource::Stream(InputStream::new(r)), Some(w))
    } else {
        (InputSource::Null, None)
    };
    let launched = launch(daemon, &exec, out.clone(), stdin).await;
    if start.detach {
        // dockerd answers a detached start that fails with the error.
        if let Err(message) = launched {
            exec.finish(EXIT_CANNOT_START);
            return Err(DaemonError::Internal(message));
        }
        // dockerd's 200 has no Content-Type; the one the API description
        // names for the start's 200 is given, for clients that check it.
        let mut r = empty(StatusCode::OK);
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(RAW_STREAM));
        return Ok(r);
    }
    let out = out.unwrap_or_default();
    if let Err(message) = launched {
        exec.finish(EXIT_CANNOT_START);
        out.push(STDOUT, format!("{message}\r\n").as_bytes());
        out.close();
    }
    Ok(match on_upgrade {
        Some(on_upgrade) => hijack(on_upgrade, RAW_STREAM, stdin_writer, out),
        None => frames_body(RAW_STREAM, out),
    })
}

/// Plans, prepares and starts the exec's run; the error is the one line
/// its client is told.
async fn launch(
    daemon: &Arc<Daemon>,
    exec: &Arc<Exec>,
    out: Option<Arc<Frames>>,
    stdin: InputSource,
) -> Result<(), String> {
    let c = Arc::clone(&exec.container);
    // Read before the state is checked: an end after this check shows in
    // the count, so the exec never outlives its instance's run.
    let mut life = c.watch();
    let runs_ended = life.borrow().exits;
    check_active(&c, &c.id).map_err(|e| e.message().to_owned())?;
    // The run's gate and /tmp, read together: both of the same run.
    let (instance_gate, tmp) = {
        let inner = c.lock();
        (inner.gate.clone(), inner.tmp.clone())
    };
    let instance_gate =
        instance_gate.ok_or_else(|| crate::lifecycle::not_running(&c.id).message().to_owned())?;
    let slot = daemon
        .runtime
        .reserve()
        .map_err(|e| crate::capacity::refused(&c.name(), e).message().to_owned())?;
    let gate = Arc::new(RunGate::default());
    let (d, e, o, g) = (
        Arc::clone(daemon),
        Arc::clone(exec),
        out.clone(),
        Arc::clone(&gate),
    );
    let planned = tokio::task::spawn_blocking(move || plan(&d, &e, o, &g, stdin, tmp))
        .await
        .map_err(|e| format!("preparing the exec failed: {e}"))?;
    let (spec, module, module_name) = planned.map_err(|e| crate::error::describe(&e))?;
    {
        let mut s = exec.state();
        s.running = true;
        s.pid = std::process::id();
        s.gate = Some(Arc::clone(&gate));
    }
    let record = c.record();
    let subject = ContainerSubject::of(&record);
    daemon.events.container(
        &format!("exec_start: {}", exec.cmd.join(" ")),
        &c.id,
        &subject,
        &[("execID", exec.id.clone())],
    );
    if let Some(out) = &out {
        out.gate(Arc::clone(&gate));
    }
    let (daemon, exec) = (Arc::clone(daemon), Arc::clone(exec));
    tokio::spawn(async move {
        let runtime = daemon.runtime.clone();
        // The instance's gate outside: pausing the instance pauses its
        // execs, and their CPU time counts as the instance's too.
        let run = instance_gate.wrap(gate.wrap(runtime.run_in_slot(slot, &module, spec)));
        let (code, error) = tokio::select! {
            biased;
            () = Container::run_ended(&mut life, runs_ended) => (
                EXIT_INSTANCE_ENDED,
                String::new(),
            ),
            outcome = run => match outcome {
                Ok(o) => {
                    let e = crate::outcome::ended(&o, &module_name);
                    (i64::from(e.exit_code), e.error.unwrap_or_default())
                }
                Err(e) => (
                    i64::from(crate::outcome::EXIT_RUN_ERROR),
                    crate::error::describe(&anyhow::Error::from(e)),
                ),
            },
        };
        if let Some(out) = &out
            && !error.is_empty()
        {
            out.push(STDERR, format!("{error}\n").as_bytes());
        }
        exec.finish(code);
        daemon.events.container(
            "exec_die",
            &exec.container.id,
            &subject,
            &[("execID", exec.id.clone()), ("exitCode", code.to_string())],
        );
        if let Some(out) = out {
            out.close();
        }
    });
    Ok(())
}

/// The exec's spec and module (blocking: reads and maybe compiles). It
/// sees what its instance's run sees: the same rootfs view, volumes and
/// binds (the same host directories), and `tmp`, the run's private `/tmp`.
fn plan(
    daemon: &Daemon,
    exec: &Exec,
    out: Option<Arc<Frames>>,
    gate: &Arc<RunGate>,
    stdin: InputSource,
    tmp: Option<wrun_runtime::SharedTmp>,
) -> anyhow::Result<(wrun_runtime::InstanceSpec, PreparedModule, String)> {
    let c = &exec.container;
    let record = c.record();
    let image = daemon.store.find(&record.image_id)?;
    let settings = crate::launch::settings(&record.config, &record.host_config)
        .map_err(anyhow::Error::from)?
        .host_binds(daemon.host_binds());
    let mut launch = crate::launch::plan(&daemon.store, &image, &record.image, &settings)?;
    let view = daemon.container_rootfs(c).map_err(anyhow::Error::from)?;
    let spec = &mut launch.spec;
    for kv in exec.config.env.iter().flatten() {
        let (k, v) = env_pair(kv).map_err(anyhow::Error::from)?;
        match spec.env.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => spec.env.push((k, v)),
        }
    }
    let workdir = Some(exec.config.working_dir.clone())
        .filter(|w| !w.is_empty())
        .or_else(|| spec.workdir.clone())
        .unwrap_or_else(|| "/".into());
    if !workdir.starts_with('/') {
        anyhow::bail!("exec failed: Cwd must be an absolute path (got {workdir:?})");
    }
    match view.stat_at(&view.root(), &workdir, true) {
        Ok(s) if s.kind == wrun_rootfs::Kind::Dir => {}
        Ok(_) => anyhow::bail!("exec failed: the working directory {workdir:?} is not a directory"),
        Err(e) => anyhow::bail!("exec failed: the working directory {workdir:?}: {e}"),
    }
    spec.workdir = Some(workdir.clone());
    // The instance holds its published ports; an exec only connects out.
    spec.network.publish.clear();
    // It sees the instance's peers, as a container's processes share its
    // network (docs/networks.md).
    spec.network.peers =
        daemon
            .networks
            .attach(&c.id, &record.name, &record.host_config.network_mode);
    // The instance's view (read-only under `--read-only`: changes are EROFS).
    spec.writable_rootfs = Some(view.clone());
    if spec.tmp {
        // The run ended since the exec was checked (its /tmp went with it).
        let tmp = tmp.ok_or_else(|| {
            anyhow::anyhow!(crate::lifecycle::not_running(&c.id).message().to_owned())
        })?;
        spec.tmp = false;
        spec.shared_tmp = Some(tmp);
    }
    spec.stdin = stdin;
    (spec.stdout, spec.stderr) = match &out {
        Some(out) => (
            OutputTarget::Sink(Arc::new(StreamSink(Arc::clone(out), STDOUT))),
            OutputTarget::Sink(Arc::new(StreamSink(Arc::clone(out), STDERR))),
        ),
        None => (OutputTarget::Null, OutputTarget::Null),
    };
    spec.memory_gauge = Some(gate.memory.clone());
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str())
        .to_owned();
    let fuel = settings.limits.fuel.is_some();
    let (module, name) = match find_module(&view, &exec.cmd, &workdir, &path, &launch.module_name)?
    {
        Found::Module { path, wasm } => {
            let options = PrepareOptions { expect: None, fuel };
            let module = daemon
                .runtime
                .prepare(&ModuleDigest::of(&wasm), &wasm, options)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "exec failed: {path}: {}",
                        crate::error::describe(&anyhow::Error::from(e))
                    )
                })?;
            launch.spec.args.clone_from(&exec.cmd);
            (module, path)
        }
        Found::Entrypoint => {
            let module = crate::launch::prepare(&daemon.runtime, &launch)?;
            // The image's entrypoint with the exec's words as its arguments.
            let mut args = vec![launch.module_name.clone()];
            if let Some(entrypoint) = record.config.entrypoint.as_ref().filter(|e| !e.is_empty()) {
                args.extend(entrypoint.iter().skip(1).cloned());
            }
            args.extend(exec.cmd.iter().cloned());
            launch.spec.args = args;
            (module, launch.module_name.clone())
        }
    };
    if module.serves_http() {
        anyhow::bail!(
            "exec failed: {name} is a wasi:http handler, not a command: an exec runs a module with a `run` (a main)"
        );
    }
    if module.kind() == ModuleKind::CoreModule && !launch.spec.network.is_none() {
        anyhow::bail!(
            "exec failed: {name} is a core (preview 1) module, which cannot be given the network grants of this instance; exec a component"
        );
    }
    Ok((launch.spec, module, name))
}

/// Which module an exec runs.
enum Found {
    /// A module in the instance's filesystem, read through its view.
    Module { path: String, wasm: Vec<u8> },
    /// The image's entrypoint module, given the command as arguments.
    Entrypoint,
}

/// Docker's rule for the command's first word, over wasm modules: with a
/// `/` it is a path (from `workdir` when relative) that must hold a module;
/// a bare name is looked up in `path` (`PATH`), the first regular file that
/// is a wasm module wins; a name found nowhere is left to the entrypoint.
fn find_module(
    view: &wrun_rootfs::Layers,
    cmd: &[String],
    workdir: &str,
    path: &str,
    entrypoint: &str,
) -> anyhow::Result<Found> {
    let first = cmd.first().map_or("", String::as_str);
    if first.contains('/') {
        let full = if first.starts_with('/') {
            first.to_owned()
        } else {
            format!("{}/{first}", workdir.trim_end_matches('/'))
        };
        return match read_if_module(view, &full)? {
            Some(wasm) => Ok(Found::Module { path: full, wasm }),
            None => unreachable_module(first, entrypoint),
        };
    }
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let candidate = format!("{}/{first}", dir.trim_end_matches('/'));
        if let Ok(Some(wasm)) = read_if_module(view, &candidate) {
            return Ok(Found::Module {
                path: candidate,
                wasm,
            });
        }
    }
    Ok(Found::Entrypoint)
}

fn unreachable_module(first: &str, entrypoint: &str) -> anyhow::Result<Found> {
    anyhow::bail!(
        "exec failed: {first:?} is no wasm module in the instance's filesystem (a command with a `/` names a module; a bare name is looked up in PATH, else given as arguments to the image's entrypoint {entrypoint})"
    )
}

/// The bytes of the regular file at `path` in the view if it is a wasm
/// module (core or component); `None` for a missing path, a directory or
/// another file; an error for a module too large to read.
fn read_if_module(view: &wrun_rootfs::Layers, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let options = wrun_rootfs::OpenOptions {
        read: true,
        follow: true,
        ..wrun_rootfs::OpenOptions::default()
    };
    let file = match view.open_at(&view.root(), path, &options) {
        Ok(wrun_rootfs::Opened::File(f)) => f,
        Ok(wrun_rootfs::Opened::Dir(_)) | Err(_) => return Ok(None),
    };
    let mut magic = [0u8; 4];
    if file.read_at(&mut magic, 0).ok() != Some(4) || magic != *b"\0asm" {
        return Ok(None);
    }
    let size = file
        .stat()
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?
        .size;
    if size > MAX_MODULE_BYTES {
        anyhow::bail!(
            "exec failed: {path} is {size} bytes, over the {MAX_MODULE_BYTES} bytes an exec reads"
        );
    }
    let mut wasm = vec![0u8; usize::try_from(size)?];
    let mut at = 0;
    while at < wasm.len() {
        match file.read_at(&mut wasm[at..], at as u64) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) => anyhow::bail!("exec failed: reading {path}: {e}"),
        }
    }
    wasm.truncate(at);
    Ok(Some(wasm))
}

/// The exec's output as multiplexed frames on their way to the client:
/// queued by the guest's writes, taken by the connection's task. A client
/// that reads slower than the guest writes pauses the exec (at its next
/// yield) while more than [`HIGH_WATER`] bytes wait.
#[derive(Default)]
struct Frames {
    state: Mutex<FramesState>,
    ready: Notify,
}

#[derive(Default)]
struct FramesState {
    queue: VecDeque<Bytes>,
    queued: usize,
    closed: bool,
    client_gone: bool,
    gate: Option<Arc<RunGate>>,
    paused: bool,
}

impl Frames {
    fn lock(&self) -> MutexGuard<'_, FramesState> {
        // Fields assigned whole: usable after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The gate paused while the client lags.
    fn gate(&self, gate: Arc<RunGate>) {
        self.lock().gate = Some(gate);
    }

    /// Queues one frame; false once the client is gone.
    fn push(&self, stream: u8, payload: &[u8]) -> bool {
        {
            let mut s = self.lock();
            if s.client_gone {
                return false;
            }
            let frame = Bytes::from(wrun_api::stream::encode(stream, payload));
            s.queued += frame.len();
            s.queue.push_back(frame);
            if s.queued > HIGH_WATER
                && !s.paused
                && let Some(g) = &s.gate
            {
                g.pause();
                s.paused = true;
            }
        }
        self.ready.notify_one();
        true
    }

    /// No more frames after those queued.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// The client went away: later output is refused, a paused exec goes on.
    fn client_gone(&self) {
        let mut s = self.lock();
        s.client_gone = true;
        s.queue.clear();
        s.queued = 0;
        if s.paused
            && let Some(g) = &s.gate
        {
            g.resume();
        }
        s.paused = false;
    }

    /// The next queued bytes (frames joined), or `None` once closed and
    /// drained.
    async fn next(&self) -> Option<Bytes> {
        loop {
            let notified = self.ready.notified();
            {
                let mut s = self.lock();
                if !s.queue.is_empty() {
                    let mut joined = Vec::with_capacity(s.queued.min(256 << 10));
                    while let Some(f) = s.queue.front() {
                        if !joined.is_empty() && joined.len() + f.len() > 256 << 10 {
                            break;
                        }
                        joined.extend_from_slice(f);
                        s.queue.pop_front();
                    }
                    s.queued -= joined.len();
                    if s.paused
                        && s.queued <= LOW_WATER
                        && let Some(g) = &s.gate
                    {
                        g.resume();
                        s.paused = false;
                    }
                    return Some(Bytes::from(joined));
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
    }
}

impl FrameSource for Arc<Frames> {
    async fn next_frames(&mut self) -> Option<Bytes> {
        self.next().await
    }

    fn client_gone(&mut self) {
        Frames::client_gone(self);
    }
}

/// One of the exec's output streams.
struct StreamSink(Arc<Frames>, u8);

impl OutputSink for StreamSink {
    fn write(&self, chunk: &[u8]) -> std::io::Result<()> {
        if self.0.push(self.1, chunk) {
            Ok(())
        } else {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }
}

/// `top`'s rows of the running execs of `c`: the daemon's pid (every exec
/// runs in it), the CPU time spent on the exec, its state, its command.
pub fn top_rows(daemon: &Daemon, c: &Container, status: &str) -> Vec<Vec<String>> {
    daemon
        .execs
        .running_of(c)
        .iter()
        .map(|e| {
            let secs = e
                .state()
                .gate
                .as_ref()
                .map_or(0, |g| g.cpu_time().as_secs());
            vec![
                std::process::id().to_string(),
                "wasm".into(),
                format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
                status.to_owned(),
                e.cmd.join(" "),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn env_pairs_need_a_key_and_an_equals_sign() {
        assert_eq!(env_pair("K=V=W").unwrap(), ("K".into(), "V=W".into()));
        assert_eq!(env_pair("K=").unwrap(), ("K".into(), String::new()));
        for bad in ["=x", "K", "", "K=a\0b"] {
            let e = env_pair(bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_lagging_client_pauses_the_exec_until_it_reads() {
        let frames = Frames::default();
        let gate = Arc::new(RunGate::default());
        frames.gate(Arc::clone(&gate));
        let chunk = vec![b'x'; 64 << 10];
        while frames.lock().queued <= HIGH_WATER {
            assert!(frames.push(STDOUT, &chunk));
        }
        assert!(frames.lock().paused);
        while frames.lock().queued > LOW_WATER {
            frames.next().await.unwrap();
        }
        assert!(!frames.lock().paused);
        frames.close();
        while frames.next().await.is_some() {}
        // A client gone: the guest's writes fail, nothing is queued.
        frames.client_gone();
        assert!(!frames.push(STDOUT, b"late"));
        assert_eq!(frames.lock().queued, 0);
    }
}
