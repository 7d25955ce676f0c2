//! One instance as the daemon holds it: its record, its log, the controls
//! of its current run (stop, pause gate, stdin) and the watch of its ends.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::DuplexStream;
use tokio::sync::{oneshot, watch};
use wrun_api::time::now;
use wrun_runtime::{InputSource, InputStream};

use crate::error::DaemonError;
use crate::gate::RunGate;
use crate::lifecycle::{AttachTo, Status, StopKind};
use crate::logs::LogFile;
use crate::record::ContainerRecord;
use crate::records::RecordJournal;

/// What watchers of an instance (`wait`) see change.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    pub running: bool,
    /// Runs that have ended since the daemon loaded the instance.
    pub exits: u64,
    pub exit_code: i64,
    pub error: String,
    pub removed: bool,
}

pub struct Container {
    pub id: String,
    /// When it was created, in nanoseconds since the epoch: the order of
    /// `ps` (newest first), read without the instance's lock.
    pub created_nanos: i128,
    pub log: Arc<LogFile>,
    records: Arc<RecordJournal>,
    inner: Mutex<Inner>,
    pub(crate) lifecycle: watch::Sender<Lifecycle>,
    /// The instance's writable rootfs, opened by its first start or by a
    /// verb that reads it ([`Daemon::rootfs_view`]), then held weakly while
    /// the record lives: every run, exec and verb gets a clone of this one
    /// view while any of them holds it (two views over one upper would each
    /// miss the other's changes), and once none does its descriptors close
    /// and the next reopens it from the same upper. An instance never
    /// started nor looked at holds none.
    ///
    /// [`Daemon::rootfs_view`]: crate::state::Daemon::rootfs_view
    pub(crate) rootfs: Mutex<Option<wrun_rootfs::WeakLayers>>,
}

/// What changes under the instance's lock.
pub(crate) struct Inner {
    pub(crate) record: ContainerRecord,
    pub(crate) stop: Option<oneshot::Sender<StopKind>>,
    /// Pause control and meters of the current run.
    pub(crate) gate: Option<Arc<RunGate>>,
    /// The private `/tmp` of the current run (`--tmpfs /tmp`), which its
    /// execs are given too.
    pub(crate) tmp: Option<wrun_runtime::SharedTmp>,
    /// The current run serves HTTP (its requests run outside the gate).
    pub(crate) serving: bool,
    /// When the current (or last) run started, and how many policy
    /// restarts in a row followed runs shorter than [`STEADY_RUN`].
    pub(crate) run_started: Option<Instant>,
    pub(crate) quick_restarts: u32,
    stdin: StdinPipe,
}

/// The stdin of an instance created with `OpenStdin` (`docker run -i`): a
/// pipe made by whichever comes first, an attach with `stdin=1` or the
/// start, each taking its end; dropped when the run ends. Without an
/// attach the guest waits on an open, empty stdin, as in Docker.
#[derive(Default)]
struct StdinPipe {
    /// For the next run, when an attach came first.
    reader: Option<InputStream>,
    /// For the next attach, when the run came first.
    writer: Option<DuplexStream>,
}

/// Bytes an attached client may write ahead of the guest's reads.
const STDIN_BUFFER: usize = 64 * 1024;

/// A run this long resets the restart back-off.
const STEADY_RUN: Duration = Duration::from_secs(10);

/// Docker's back-off before a policy restart: 100 ms, doubled after each
/// quick restart in a row, at most a minute; a steady run starts it again
/// from 100 ms. Returns the quick restarts counted with this one, and the
/// delay.
fn back_off(quick_restarts: u32, steady: bool) -> (u32, Duration) {
    let quick = if steady {
        0
    } else {
        quick_restarts.saturating_add(1)
    };
    let doublings = quick.saturating_sub(1).min(10);
    let ms = 100u64.saturating_mul(1u64 << doublings);
    (quick, Duration::from_millis(ms.min(60_000)))
}

impl Container {
    pub(crate) fn new(
        log: Arc<LogFile>,
        record: ContainerRecord,
        records: &Arc<RecordJournal>,
    ) -> Arc<Self> {
        let life = Lifecycle {
            running: record.state.status == Status::Running,
            exit_code: record.state.exit_code,
            error: record.state.error.clone(),
            ..Lifecycle::default()
        };
        Arc::new(Self {
            id: record.id.clone(),
            created_nanos: wrun_api::time::parse(&record.created)
                .map_or(0, |t| t.unix_timestamp_nanos()),
            log,
            records: Arc::clone(records),
            inner: Mutex::new(Inner {
                record,
                stop: None,
                gate: None,
                tmp: None,
                serving: false,
                run_started: None,
                quick_restarts: 0,
                stdin: StdinPipe::default(),
            }),
            lifecycle: watch::Sender::new(life),
            rootfs: Mutex::new(None),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update of Inner is a whole assignment: usable after a panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the record.
    pub fn record(&self) -> ContainerRecord {
        self.lock().record.clone()
    }

    pub fn name(&self) -> String {
        self.lock().record.name.clone()
    }

    /// Records where the current run's published ports landed. Not saved
    /// on its own: they are shown only while live, and the end of the run
    /// saves the record.
    pub(crate) fn set_published(&self, published: &[wrun_runtime::PortMapping]) {
        self.lock().record.state.published = published.iter().map(|m| m.spec()).collect();
    }

    /// Whether an attach may start now, as Docker decides: not to a paused
    /// instance, nor to one waiting for its policy restart (`key`: how the
    /// client named it, for the message). Returns a copy of the record.
    pub fn check_attach(&self, key: &str) -> Result<ContainerRecord, DaemonError> {
        let r = self.record();
        r.state.status.attach(r.state.restarting, key)?;
        Ok(r)
    }

    /// The writing end of the instance's stdin, for an attach with
    /// `stdin=1`; `None` unless it was created with `OpenStdin`, or when
    /// another attach holds it already.
    pub fn attach_stdin(&self) -> Option<DuplexStream> {
        let mut inner = self.lock();
        if !inner.record.config.open_stdin {
            return None;
        }
        if let Some(w) = inner.stdin.writer.take() {
            return Some(w);
        }
        let state = &inner.record.state;
        match state.status.attach(state.restarting, &inner.record.id) {
            Err(_) | Ok(AttachTo::CurrentRun) => None,
            Ok(AttachTo::NextRun) if inner.stdin.reader.is_some() => None,
            Ok(AttachTo::NextRun) => {
                let (r, w) = tokio::io::duplex(STDIN_BUFFER);
                inner.stdin.reader = Some(InputStream::new(r));
                Some(w)
            }
        }
    }

    /// The stdin of a run about to start.
    pub(crate) fn run_stdin(inner: &mut Inner) -> InputSource {
        if !inner.record.config.open_stdin {
            return InputSource::Null;
        }
        if let Some(r) = inner.stdin.reader.take() {
            return InputSource::Stream(r);
        }
        let (r, w) = tokio::io::duplex(STDIN_BUFFER);
        inner.stdin.writer = Some(w);
        InputSource::Stream(InputStream::new(r))
    }

    /// The pause control and meters of the current run, while live.
    pub fn gate(&self) -> Option<Arc<RunGate>> {
        self.lock().gate.clone()
    }

    pub fn watch(&self) -> watch::Receiver<Lifecycle> {
        self.lifecycle.subscribe()
    }

    /// Waits until the run that was current when `runs_ended` was read
    /// (as `Lifecycle::exits`, under the instance's lock, while it ran) has
    /// ended. Not `!running`: a watch keeps only its latest value, so a
    /// start right after the end would hide it, and the waiter would wait
    /// for the next run's end instead (a `kill` hung so until some later
    /// `stop`).
    pub async fn run_ended(rx: &mut watch::Receiver<Lifecycle>, runs_ended: u64) {
        // Err: the sender is gone with the instance; nothing runs anymore.
        let _ = rx.wait_for(|l| l.exits > runs_ended).await;
    }

    pub(crate) fn save(&self, record: &ContainerRecord) -> anyhow::Result<()> {
        self.records
            .put(&self.id, record)
            .with_context(|| format!("saving the record of instance {}", self.id))
    }

    /// Records the end of a run, calls `announce` with the record (the
    /// `die` event: before any watcher wakes, so a `stop` waiting for this
    /// end announces its `stop` after it, as dockerd orders them) and wakes
    /// every watcher; returns the record
    /// as the run left it (a watcher may start the next run at once) and,
    /// when its restart policy starts it again, after what delay. The
    /// policy is decided under the same lock as the end, so a `stop` sees
    /// either a live instance or one already marked restarting.
    pub(crate) fn finish(
        &self,
        exit_code: i64,
        error: String,
        oom_killed: bool,
        may_restart: bool,
        announce: impl FnOnce(&ContainerRecord),
    ) -> (ContainerRecord, Option<Duration>) {
        let mut inner = self.lock();
        inner.stop = None;
        inner.gate = None;
        inner.tmp = None;
        inner.serving = false;
        inner.stdin = StdinPipe::default();
        let st = &mut inner.record.state;
        st.status = Status::Exited;
        st.exit_code = exit_code;
        st.error = error.clone();
        st.oom_killed = oom_killed;
        st.finished_at = Some(now());
        if let Err(e) = self.save(&inner.record) {
            eprintln!("wrun daemon: {}", crate::error::describe(&e));
        }
        let r = &inner.record;
        let restart = may_restart
            && !r.host_config.auto_remove
            && r.host_config.restart_policy.restarts_after(
                exit_code,
                r.state.manually_stopped,
                r.restart_count,
            );
        let delay = restart.then(|| {
            let steady = inner.run_started.is_some_and(|t| t.elapsed() >= STEADY_RUN);
            let (quick, delay) = back_off(inner.quick_restarts, steady);
            inner.quick_restarts = quick;
            inner.record.state.restarting = true;
            delay
        });
        let ended = inner.record.clone();
        announce(&ended);
        // Announced under the lock, as a start announces its run: a start
        // right after this end must not be overtaken by it (watchers would
        // see `running: false` while the next run goes on).
        self.log.end_run();
        self.lifecycle.send_modify(|l| {
            l.running = false;
            l.exits += 1;
            l.exit_code = exit_code;
            l.error = error;
        });
        drop(inner);
        (ended, delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_back_off_doubles_from_100_ms_to_a_minute_and_a_steady_run_resets_it() {
        let mut quick = 0;
        let mut delays = Vec::new();
        for _ in 0..12 {
            let (q, delay) = back_off(quick, false);
            quick = q;
            delays.push(delay.as_millis());
        }
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 51_200, 60_000, 60_000
            ]
        );
        // After a run of STEADY_RUN or more, the next restart waits 100 ms
        // again (it once underflowed to a minute), and the count restarts.
        assert_eq!(back_off(quick, true), (0, Duration::from_millis(100)));
        assert_eq!(back_off(0, false), (1, Duration::from_millis(100)));
        assert_eq!(back_off(u32::MAX - 1, false).1, Duration::from_secs(60));
    }
}
