//! `InstanceSpec`: everything one instance is granted — args, env, files,
//! stdio, limits. Every field defaults to "nothing granted".

use std::path::PathBuf;
use std::time::Duration;

use crate::limiter::MemoryGauge;
use crate::stdio::{InputSource, OutputTarget};

/// What one instance may see and use.
///
/// Defaults deny everything: no args (not even argv\[0\]), no env (the host
/// env is never passed through), no filesystem at all (no rootfs, no `/tmp`,
/// no volumes), working directory `/`, stdin closed, stdout and stderr
/// discarded, no memory limit beyond the runtime's own cap, no timeout, no
/// fuel budget, no network (no socket, no name lookup).
#[derive(Clone, Debug, Default)]
pub struct InstanceSpec {
    /// The full argv, argv\[0\] included; the caller decides what it is.
    pub args: Vec<String>,
    /// Environment variables, in order. Keys are non-empty and contain no
    /// `=`; neither keys nor values contain NUL.
    pub env: Vec<(String, String)>,
    /// Host directory shown read-only as the guest's `/`. `None`: no `/`.
    pub rootfs: Option<PathBuf>,
    /// The writable, copy-on-write view of `rootfs` the guest sees as `/`
    /// instead of the read-only `rootfs` (see `docs/rootfs.md`): its
    /// writes land in the view's own upper layer. The caller opens it over
    /// the same directory as `rootfs` and keeps it for the instance's
    /// record (every clone is the same view). `None`: `/` is read-only.
    pub writable_rootfs: Option<wrun_rootfs::Layers>,
    /// A private, writable, initially empty `/tmp`, removed when the instance
    /// ends. Off by default.
    pub tmp: bool,
    /// A private `/tmp` made beforehand with
    /// [`Runtime::shared_tmp`](crate::Runtime::shared_tmp), given to every
    /// instance whose spec holds a clone of it (an instance and its execs
    /// see one `/tmp`); in place of `tmp`, which must then be off. None by
    /// default.
    pub shared_tmp: Option<crate::SharedTmp>,
    /// Host directories granted at guest paths, read-only or read-write.
    pub volumes: Vec<VolumeMount>,
    /// The guest's initial working directory (absolute). `None`: `/`.
    ///
    /// WASI 0.2 components receive it through `wasi:cli/environment`
    /// `initial-cwd`; preview 1 has no such call. Note that today's
    /// wasi-libc (Rust and C guests) ignores `initial-cwd` and starts in `/`
    /// either way, so guests should use absolute paths.
    pub workdir: Option<String>,
    /// Stdin; closed by default.
    pub stdin: InputSource,
    /// Stdout; discarded by default.
    pub stdout: OutputTarget,
    /// Stderr; discarded by default.
    pub stderr: OutputTarget,
    /// Resource limits; none by default.
    pub limits: Limits,
    /// Network grants; none by default.
    pub network: crate::NetworkGrants,
    /// Updated with the memory and tables in use while the instance runs;
    /// none by default.
    pub memory_gauge: Option<MemoryGauge>,
}

/// A host directory granted to the guest at `guest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeMount {
    /// Host directory. It must exist; it is never created.
    pub host: PathBuf,
    /// Absolute guest path, e.g. `/data`. Not `/`, no `.` or `..` parts.
    pub guest: String,
    /// Refuse every write, truncate, create, rename, link and delete.
    pub read_only: bool,
}

/// Per-instance resource limits. `None` means "no limit beyond the runtime's
/// own cap" (`RuntimeConfig::max_memory_per_instance`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of linear memory plus tables (a table element counts as
    /// [`TABLE_ELEMENT_BYTES`](crate::TABLE_ELEMENT_BYTES)) summed over the
    /// instance. A `memory.grow` or `table.grow` past it returns -1 to the
    /// guest.
    pub memory: Option<u64>,
    /// Wall-clock budget, measured from the start of instantiation. The guest
    /// is interrupted when it runs out, also while blocked in a WASI sleep
    /// or poll.
    pub timeout: Option<Duration>,
    /// Deterministic CPU budget in wasmtime fuel units (about one per wasm
    /// instruction). Needs a module prepared with fuel metering.
    pub fuel: Option<u64>,
}

impl InstanceSpec {
    /// A spec with this argv and every default denied (see the type's doc).
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Shows `host` read-only as the guest's `/`.
    pub fn rootfs(mut self, host: impl Into<PathBuf>) -> Self {
        self.rootfs = Some(host.into());
        self
    }

    /// Shows the guest `layers` (a view over the same directory as
    /// [`rootfs`](Self::rootfs)) as a writable `/`.
    pub fn writable_rootfs(mut self, layers: wrun_rootfs::Layers) -> Self {
        self.writable_rootfs = Some(layers);
        self
    }

    /// Gives the guest a private writable `/tmp`.
    pub fn tmp(mut self, enabled: bool) -> Self {
        self.tmp = enabled;
        self
    }

    /// Grants `host` at `guest`.
    pub fn volume(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
        read_only: bool,
    ) -> Self {
        self.volumes.push(VolumeMount {
            host: host.into(),
            guest: guest.into(),
            read_only,
        });
        self
    }

    /// Sets the initial working directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Sets stdin.
    pub fn stdin(mut self, stdin: InputSource) -> Self {
        self.stdin = stdin;
        self
    }

    /// Sets stdout.
    pub fn stdout(mut self, stdout: OutputTarget) -> Self {
        self.stdout = stdout;
        self
    }

    /// Sets stderr.
    pub fn stderr(mut self, stderr: OutputTarget) -> Self {
        self.stderr = stderr;
        self
    }

    /// Sets the resource limits.
    pub fn memory_gauge(mut self, gauge: MemoryGauge) -> Self {
        self.memory_gauge = Some(gauge);
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}
