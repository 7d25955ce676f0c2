//! The daemon's execs by ID (`ExecTable`) and each one's state: what
//! `Daemon` keeps, apart from the routes (the parent module), which use the
//! daemon.
//!
//! What is kept and listed, as dockerd 20.10 keeps it: an instance's
//! `ExecIDs` are its execs created in its current run that have not ended;
//! an exec never started is forgotten when that run ends; an ended one
//! answers `GET /exec/{id}/json` until a sweep every five minutes has seen
//! it ended twice (the first marks it `CanRemove`); every exec goes with its
//! instance's removal, and none outlives the daemon (the table is memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use wrun_api::exec::{ExecCreateRequest, ExecInspect, ExecProcessConfig};

use crate::error::DaemonError;
use crate::gate::RunGate;
use crate::instance::Container;

/// Ended execs kept per instance at most: a sweep comes every
/// [`SWEEP_EVERY`], and a client that execs without pause meanwhile must
/// not grow the daemon without bound (dockerd has no such cap).
const ENDED_KEPT: usize = 64;

/// dockerd's exec sweep period.
const SWEEP_EVERY: Duration = Duration::from_secs(5 * 60);

type Execs = Mutex<HashMap<String, Arc<Exec>>>;

/// Every exec of the daemon by ID.
#[derive(Default)]
pub struct ExecTable {
    execs: Arc<Execs>,
    /// Set once the sweep task runs (started by the first insert).
    sweeping: OnceLock<()>,
}

fn lock(execs: &Execs) -> MutexGuard<'_, HashMap<String, Arc<Exec>>> {
    // Inserts and removes are single calls: usable after a panic.
    execs.lock().unwrap_or_else(|p| p.into_inner())
}

impl ExecTable {
    /// The exec `id`, unless it was forgotten ([`Exec::forgotten`]).
    pub(super) fn find(&self, id: &str) -> Result<Arc<Exec>, DaemonError> {
        let mut execs = lock(&self.execs);
        match execs.get(id) {
            Some(e) if e.forgotten() => {
                execs.remove(id);
                Err(no_such_exec(id))
            }
            Some(e) => Ok(Arc::clone(e)),
            None => Err(no_such_exec(id)),
        }
    }

    /// Adds `exec`, dropping forgotten execs and the oldest ended ones of
    /// its instance beyond [`ENDED_KEPT`].
    pub(super) fn insert(&self, exec: Arc<Exec>) {
        self.start_sweeping();
        let mut execs = lock(&self.execs);
        execs.retain(|_, e| !e.forgotten());
        let mut ended: Vec<(u64, String)> = execs
            .values()
            .filter(|e| Arc::ptr_eq(&e.container, &exec.container))
            .filter_map(|e| {
                let s = e.state();
                s.exit_code.map(|_| (e.serial, e.id.clone()))
            })
            .collect();
        if ended.len() >= ENDED_KEPT {
            ended.sort();
            for (_, id) in &ended[..=ended.len() - ENDED_KEPT] {
                execs.remove(id);
            }
        }
        execs.insert(exec.id.clone(), exec);
    }

    /// Container inspect's `ExecIDs` of `c`: its execs listed now
    /// ([`Exec::listed`]), oldest first; `None` (dockerd's null) when
    /// there are none.
    pub fn ids_of(&self, c: &Container) -> Option<Vec<String>> {
        let mut listed: Vec<(u64, String)> = lock(&self.execs)
            .values()
            .filter(|e| std::ptr::eq(Arc::as_ptr(&e.container), c) && e.listed())
            .map(|e| (e.serial, e.id.clone()))
            .collect();
        if listed.is_empty() {
            return None;
        }
        listed.sort();
        Some(listed.into_iter().map(|(_, id)| id).collect())
    }

    /// The running execs of instance `c`, oldest first.
    pub(super) fn running_of(&self, c: &Container) -> Vec<Arc<Exec>> {
        let mut running: Vec<Arc<Exec>> = lock(&self.execs)
            .values()
            .filter(|e| std::ptr::eq(Arc::as_ptr(&e.container), c) && e.state().running)
            .cloned()
            .collect();
        running.sort_by_key(|e| e.serial);
        running
    }

    /// Runs [`sweep`] every [`SWEEP_EVERY`] from now on, on the current
    /// tokio runtime (none in unit tests: no sweep), for as long as the
    /// table lives.
    fn start_sweeping(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.sweeping.get_or_init(|| {
            let execs = Arc::downgrade(&self.execs);
            runtime.spawn(async move {
                let first = tokio::time::Instant::now() + SWEEP_EVERY;
                let mut ticks = tokio::time::interval_at(first, SWEEP_EVERY);
                loop {
                    ticks.tick().await;
                    let Some(execs) = execs.upgrade() else {
                        return;
                    };
                    sweep(&execs);
                }
            });
        });
    }
}

/// One pass of dockerd's exec sweep: an exec marked `CanRemove` by the
/// pass before goes, one no longer listed in its instance's `ExecIDs` is
/// marked, and forgotten ones go at once.
fn sweep(execs: &Execs) {
    lock(execs).retain(|_, e| {
        if e.forgotten() {
            return false;
        }
        let listed = e.listed();
        let mut s = e.state();
        if s.can_remove {
            return false;
        }
        if !listed {
            s.can_remove = true;
        }
        true
    });
}

pub(super) fn no_such_exec(id: &str) -> DaemonError {
    DaemonError::not_found(format!("No such exec instance: {id}"))
}

/// One exec: what was asked, and how its run went.
pub struct Exec {
    pub(super) id: String,
    /// Creation order, for `top`, `ExecIDs` and for forgetting the oldest.
    pub(super) serial: u64,
    pub(super) container: Arc<Container>,
    /// The instance's run it was created in: the count of the instance's
    /// ended runs then.
    pub(super) run: u64,
    pub(super) cmd: Vec<String>,
    pub(super) config: ExecCreateRequest,
    pub(super) state: Mutex<ExecState>,
}

#[derive(Default)]
pub(super) struct ExecState {
    pub(super) started: bool,
    pub(super) running: bool,
    pub(super) exit_code: Option<i64>,
    pub(super) pid: u32,
    /// The run's CPU time meter and back-pressure control.
    pub(super) gate: Option<Arc<RunGate>>,
    /// Seen ended by a sweep: the next one drops it (inspect's `CanRemove`).
    pub(super) can_remove: bool,
}

impl Exec {
    pub(super) fn state(&self) -> MutexGuard<'_, ExecState> {
        // Fields assigned whole: usable after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether its instance was removed, and whether the run it was
    /// created in has ended. Copied out of the watch at once: no lock is
    /// taken while it is read.
    fn instance_now(&self) -> (bool, bool) {
        let l = self.container.lifecycle.borrow();
        (l.removed, l.exits > self.run)
    }

    /// Gone for every route, as in dockerd: its instance was removed, or
    /// the run it was created in ended before it was started.
    fn forgotten(&self) -> bool {
        let (removed, run_ended) = self.instance_now();
        removed || (run_ended && !self.state().started)
    }

    /// In its instance's `ExecIDs`: created or running, in a run that goes
    /// on.
    fn listed(&self) -> bool {
        let (removed, run_ended) = self.instance_now();
        !removed && !run_ended && self.state().exit_code.is_none()
    }

    pub(super) fn inspect(&self) -> ExecInspect {
        let s = self.state();
        ExecInspect {
            id: self.id.clone(),
            running: s.running,
            exit_code: s.exit_code,
            process_config: ExecProcessConfig {
                tty: false,
                entrypoint: self.cmd.first().cloned().unwrap_or_default(),
                arguments: self.cmd.iter().skip(1).cloned().collect(),
                privileged: false,
                user: String::new(),
            },
            open_stdin: self.config.attach_stdin,
            open_stderr: self.config.attach_stderr,
            open_stdout: self.config.attach_stdout,
            can_remove: s.can_remove,
            container_id: self.container.id.clone(),
            detach_keys: self.config.detach_keys.clone(),
            pid: s.pid,
        }
    }

    /// Records the end of the run (once).
    pub(super) fn finish(&self, code: i64) {
        let mut s = self.state();
        s.running = false;
        s.exit_code.get_or_insert(code);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::logpack::LogPack;
    use crate::logs::LogFile;
    use crate::record::{ContainerRecord, StateRecord};
    use crate::records::RecordJournal;

    fn instance(dir: &std::path::Path) -> Arc<Container> {
        let journal = RecordJournal::start(dir, &BTreeMap::new()).unwrap();
        let (pack, _) = LogPack::open(dir.join("logs.pack")).unwrap();
        let log = LogFile::packed(dir.join("c.log"), 1 << 20, Arc::new(pack), "c".into());
        let record = ContainerRecord {
            id: "c".into(),
            name: "c".into(),
            created: String::new(),
            image: "hello:1.0".into(),
            image_id: String::new(),
            path: String::new(),
            args: Vec::new(),
            config: Default::default(),
            host_config: Default::default(),
            state: StateRecord::default(),
            restart_count: 0,
        };
        Container::new(log, record, &journal)
    }

    fn exec(table: &ExecTable, c: &Arc<Container>, id: &str) -> Arc<Exec> {
        let e = Arc::new(Exec {
            id: id.into(),
            serial: crate::exec::next_serial(),
            container: Arc::clone(c),
            run: c.lifecycle.borrow().exits,
            cmd: vec!["x".into()],
            config: ExecCreateRequest::default(),
            state: Mutex::new(ExecState::default()),
        });
        table.insert(Arc::clone(&e));
        e
    }

    fn ids(table: &ExecTable, c: &Container) -> Vec<String> {
        table.ids_of(c).unwrap_or_default()
    }

    /// 404 for `id`, the exec forgotten.
    fn gone(table: &ExecTable, id: &str) -> bool {
        matches!(table.find(id), Err(e) if e.status() == hyper::StatusCode::NOT_FOUND)
    }

    fn end_run(c: &Container) {
        c.lifecycle.send_modify(|l| l.exits += 1);
    }

    #[test]
    fn exec_ids_list_the_created_and_running_execs_of_the_run_as_dockerd_does() {
        let dir = tempfile::tempdir().unwrap();
        let (c, table) = (instance(dir.path()), ExecTable::default());
        assert_eq!(table.ids_of(&c), None, "dockerd's null");
        let (created, running, ended) = (
            exec(&table, &c, "a"),
            exec(&table, &c, "b"),
            exec(&table, &c, "c"),
        );
        running.state().started = true;
        running.state().running = true;
        ended.state().started = true;
        ended.finish(3);
        // An ended exec leaves the list at once and is still inspected.
        assert_eq!(ids(&table, &c), ["a", "b"]);
        assert_eq!(table.find("c").unwrap().inspect().exit_code, Some(3));
        // The run ends: none listed; the unstarted exec is forgotten, the
        // one that ran answers (its end, 137, recorded by its task).
        end_run(&c);
        running.finish(137);
        assert_eq!(table.ids_of(&c), None);
        assert!(gone(&table, "a"));
        assert_eq!(table.find("b").unwrap().inspect().exit_code, Some(137));
        // The next run lists only its own.
        exec(&table, &c, "d");
        assert_eq!(ids(&table, &c), ["d"]);
        drop(created);
        // All go with the instance.
        c.lifecycle.send_modify(|l| l.removed = true);
        for id in ["b", "c", "d"] {
            assert!(gone(&table, id), "{id}");
        }
    }

    #[test]
    fn the_sweep_marks_an_ended_exec_then_drops_it_and_keeps_listed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (c, table) = (instance(dir.path()), ExecTable::default());
        let (_created, ended) = (exec(&table, &c, "a"), exec(&table, &c, "b"));
        ended.finish(0);
        sweep(&table.execs);
        assert!(table.find("b").unwrap().inspect().can_remove);
        assert!(!table.find("a").unwrap().inspect().can_remove);
        sweep(&table.execs);
        assert!(gone(&table, "b"));
        assert_eq!(ids(&table, &c), ["a"]);
    }

    #[test]
    fn an_instance_keeps_its_latest_ended_execs_only() {
        let dir = tempfile::tempdir().unwrap();
        let (c, table) = (instance(dir.path()), ExecTable::default());
        let mut ids = Vec::new();
        for n in 0..=ENDED_KEPT {
            let id = format!("e{n}");
            exec(&table, &c, &id).finish(0);
            ids.push(id);
        }
        // Each insert makes room for one more: the oldest go first.
        exec(&table, &c, "z");
        assert!(gone(&table, &ids[0]) && gone(&table, &ids[1]));
        assert!(table.find(&ids[2]).is_ok() && table.find(&ids[ENDED_KEPT]).is_ok());
    }
}
