//! The daemon's execs by ID (`ExecTable`) and each one's state: what
//! `Daemon` keeps, apart from the routes (the parent module), which use the
//! daemon.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use wrun_api::exec::{ExecCreateRequest, ExecInspect, ExecProcessConfig};

use crate::error::DaemonError;
use crate::gate::RunGate;
use crate::instance::Container;

/// Ended execs kept per instance for `GET /exec/{id}/json`; older ones are
/// forgotten (dockerd keeps every one until the container is removed).
const ENDED_KEPT: usize = 64;

/// Every exec of the daemon by ID; an exec is forgotten with its instance.
#[derive(Default)]
pub struct ExecTable {
    pub(super) execs: Mutex<HashMap<String, Arc<Exec>>>,
}

impl ExecTable {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Exec>>> {
        // Inserts and removes are single calls: usable after a panic.
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The exec `id`, unless its instance was removed (then forgotten).
    pub(super) fn find(&self, id: &str) -> Result<Arc<Exec>, DaemonError> {
        let mut execs = self.lock();
        match execs.get(id) {
            Some(e) if e.container.lifecycle.borrow().removed => {
                execs.remove(id);
                Err(no_such_exec(id))
            }
            Some(e) => Ok(Arc::clone(e)),
            None => Err(no_such_exec(id)),
        }
    }

    /// Adds `exec`, forgetting execs of removed instances and the oldest
    /// ended ones of its instance beyond [`ENDED_KEPT`].
    pub(super) fn insert(&self, exec: Arc<Exec>) {
        let mut execs = self.lock();
        execs.retain(|_, e| !e.container.lifecycle.borrow().removed);
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

    /// The running execs of instance `c`, oldest first.
    pub(super) fn running_of(&self, c: &Container) -> Vec<Arc<Exec>> {
        let mut running: Vec<Arc<Exec>> = self
            .lock()
            .values()
            .filter(|e| std::ptr::eq(Arc::as_ptr(&e.container), c) && e.state().running)
            .cloned()
            .collect();
        running.sort_by_key(|e| e.serial);
        running
    }
}

pub(super) fn no_such_exec(id: &str) -> DaemonError {
    DaemonError::not_found(format!("No such exec instance: {id}"))
}

/// One exec: what was asked, and how its run went.
pub struct Exec {
    pub(super) id: String,
    /// Creation order, for `top` and for forgetting the oldest.
    pub(super) serial: u64,
    pub(super) container: Arc<Container>,
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
}

impl Exec {
    pub(super) fn state(&self) -> MutexGuard<'_, ExecState> {
        // Fields assigned whole: usable after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
            can_remove: false,
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
