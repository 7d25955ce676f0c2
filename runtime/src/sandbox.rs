//! Turns an `InstanceSpec` into a WASI context: the one place that decides
//! what a guest sees (files, env, args, stdio, network). Everything not
//! granted here is denied.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use cap_std::fs::Dir;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::host_dir::{DirIdentity, IfMissing, descriptor_path, host_dir_identity, open_host_dir};
use crate::scratch::{ScratchRoot, SharedTmp};
use crate::stdio::{InputSource, OutputTarget, SinkStdout};
use crate::{InstanceSpec, RuntimeError};

/// A WASI context builder holding exactly the spec's grants, plus the
/// private `/tmp` it refers to (held as long as the instance lives).
///
/// When `shared` is set, the builder has no preopened directory: the
/// directories are `shared`'s, installed with [`SharedView::install`] into
/// the built context, and `shared` must live as long as the instance (it
/// keeps the view findable for the next instance with the same grants).
pub(crate) struct Grants {
    pub(crate) builder: WasiCtxBuilder,
    pub(crate) tmp: Option<SharedTmp>,
    pub(crate) shared: Option<Arc<SharedView>>,
}

/// The preopened directories of an instance without a private `/tmp`: its
/// rootfs and volumes, in that order, with their permissions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ViewKey {
    rootfs: Option<PathBuf>,
    /// Host directory, normalized guest path, read-only.
    volumes: Vec<(PathBuf, String, bool)>,
}

/// One set of open directory handles shared by every live instance granted
/// the same rootfs and volumes: wasmtime-wasi's directory handle is an
/// `Arc<File>`, so cloning the filesystem context hands out the same
/// descriptors, and an idle instance costs none of its own.
pub(crate) struct SharedView {
    fs: WasiFilesystemCtx,
    /// What each host path named when it was opened: a path that names
    /// another directory now gets a view of its own.
    identities: Vec<DirIdentity>,
}

impl SharedView {
    /// Gives `ctx` this view's directories (and only them).
    pub(crate) fn install(&self, ctx: &mut WasiCtx) {
        *ctx.filesystem() = self.fs.clone();
    }
}

/// The runtime's shared views by grant set. An entry lives as long as an
/// instance uses it: the map holds weak references, so the descriptors of
/// a removed image close with its last instance.
#[derive(Default)]
pub(crate) struct SharedViews {
    views: Mutex<HashMap<ViewKey, Weak<SharedView>>>,
}

impl SharedViews {
    /// The live view for these grants, or a new one opened now.
    fn get(&self, spec: &InstanceSpec, mounts: &[String]) -> Result<Arc<SharedView>, RuntimeError> {
        let key = ViewKey {
            rootfs: spec.rootfs.clone(),
            volumes: spec
                .volumes
                .iter()
                .zip(mounts)
                .map(|(v, guest)| (v.host.clone(), guest.clone(), v.read_only))
                .collect(),
        };
        let found = self.lock().get(&key).and_then(Weak::upgrade);
        if let Some(view) = found
            && current_identities(&key)? == view.identities
        {
            return Ok(view);
        }
        // Opened outside the lock: other grant sets need not wait for it.
        let mut b = WasiCtxBuilder::new();
        b.allow_blocking_current_thread(false);
        let (tmp, identities) = preopen_dirs(&mut b, spec, mounts, None)?;
        debug_assert!(tmp.is_none(), "a shared view has no private /tmp");
        let view = Arc::new(SharedView {
            fs: b.build().filesystem().clone(),
            identities,
        });
        let mut views = self.lock();
        views.retain(|_, v| v.strong_count() > 0);
        views.insert(key, Arc::downgrade(&view));
        Ok(view)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ViewKey, Weak<SharedView>>> {
        // Single inserts and removals: consistent after a panic.
        self.views.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.lock().len()
    }
}

/// What the key's host paths name now.
fn current_identities(key: &ViewKey) -> Result<Vec<DirIdentity>, RuntimeError> {
    let identity = |what, path: &PathBuf| {
        host_dir_identity(path).map_err(|source| RuntimeError::HostDir {
            what,
            path: path.clone(),
            source,
        })
    };
    let mut out = Vec::with_capacity(key.volumes.len() + 1);
    if let Some(rootfs) = &key.rootfs {
        out.push(identity("rootfs", rootfs)?);
    }
    for (host, _, _) in &key.volumes {
        out.push(identity("volume", host)?);
    }
    Ok(out)
}

/// Checks the spec and builds the WASI context it grants.
///
/// Defaults, each set explicitly so a change of wasmtime-wasi's defaults
/// cannot widen them: no host env, no args beyond the spec's, stdin closed,
/// stdout/stderr discarded, no preopened directory, TCP, UDP and name lookup
/// off and every socket address refused unless `spec.network` grants them
/// (see `crate::sockets`).
pub(crate) fn grant(
    spec: &InstanceSpec,
    scratch: Option<&ScratchRoot>,
) -> Result<Grants, RuntimeError> {
    grant_with(spec, scratch, Dirs::Own)
}

/// Where an instance's rootfs and volumes come from.
enum Dirs<'a> {
    /// Opened for it alone (with its private `/tmp`, if any).
    Own,
    /// The live shared view for its grants, found or opened now.
    Lookup(&'a SharedViews),
    /// A view the caller already holds for these grants (a server's, for
    /// each request): no lookup, no check of the host paths again.
    Held(&'a Arc<SharedView>),
}

/// [`grant`] with the directories of `view`, which the caller got from
/// [`grant_shared`] for the same spec and keeps alive.
pub(crate) fn grant_in_view(
    spec: &InstanceSpec,
    view: &Arc<SharedView>,
) -> Result<Grants, RuntimeError> {
    grant_with(spec, None, Dirs::Held(view))
}

/// [`grant`], with the rootfs and volumes of an instance without a private
/// `/tmp` taken from (or added to) `views` instead of opened for it alone:
/// the same directories with the same permissions, and no descriptor of
/// its own. (wasmtime-wasi cannot merge a private preopen into a shared
/// set, so an instance with `/tmp` opens all of its directories.)
pub(crate) fn grant_shared(
    spec: &InstanceSpec,
    scratch: Option<&ScratchRoot>,
    views: &SharedViews,
) -> Result<Grants, RuntimeError> {
    let has_dirs = spec.rootfs.is_some() || !spec.volumes.is_empty();
    if spec.tmp || spec.shared_tmp.is_some() || !has_dirs {
        return grant(spec, scratch);
    }
    grant_with(spec, scratch, Dirs::Lookup(views))
}

fn grant_with(
    spec: &InstanceSpec,
    scratch: Option<&ScratchRoot>,
    dirs: Dirs<'_>,
) -> Result<Grants, RuntimeError> {
    check_strings(spec)?;
    let mounts = check_mounts(spec)?;

    let mut b = WasiCtxBuilder::new();
    // Never block the executor thread: with blocking allowed, wasmtime-wasi
    // serves a p1 sleep with `std::thread::sleep`, which pins a thread per
    // sleeping guest and cannot be interrupted by the timeout.
    b.allow_blocking_current_thread(false)
        .args(&spec.args)
        .envs(&spec.env)
        .initial_cwd(spec.workdir.as_deref().unwrap_or("/"));
    crate::sockets::configure(&mut b, &spec.network);

    match &spec.stdin {
        InputSource::Null => b.stdin(MemoryInputPipe::new(Vec::new())),
        InputSource::Inherit => b.stdin(wasmtime_wasi::cli::stdin()),
        InputSource::Bytes(bytes) => b.stdin(MemoryInputPipe::new(bytes.clone())),
        InputSource::Stream(stream) => match stream.take() {
            Some(reader) => b.stdin(wasmtime_wasi::cli::AsyncStdinStream::new(reader)),
            None => b.stdin(MemoryInputPipe::new(Vec::new())),
        },
    };
    match &spec.stdout {
        OutputTarget::Null => b.stdout(tokio::io::empty()),
        OutputTarget::Inherit => b.stdout(std::io::stdout()),
        OutputTarget::Sink(sink) => b.stdout(SinkStdout(Arc::clone(sink))),
    };
    match &spec.stderr {
        OutputTarget::Null => b.stderr(tokio::io::empty()),
        OutputTarget::Inherit => b.stderr(std::io::stderr()),
        OutputTarget::Sink(sink) => b.stderr(SinkStdout(Arc::clone(sink))),
    };

    let shared = match dirs {
        Dirs::Lookup(views) => views.get(spec, &mounts)?,
        Dirs::Held(view) => Arc::clone(view),
        Dirs::Own => {
            let (tmp, _) = preopen_dirs(&mut b, spec, &mounts, scratch)?;
            return Ok(Grants {
                builder: b,
                tmp,
                shared: None,
            });
        }
    };
    Ok(Grants {
        builder: b,
        tmp: None,
        shared: Some(shared),
    })
}

/// Preopens the rootfs (read-only, at `/`), the private `/tmp` when the
/// spec asks for one (made now, or the shared one it was given), and the
/// volumes, in that order: the one definition of an instance's directories
/// and their permissions. Returns the `/tmp` handle and what each host
/// directory (not `/tmp`) was when opened.
fn preopen_dirs(
    b: &mut WasiCtxBuilder,
    spec: &InstanceSpec,
    mounts: &[String],
    scratch: Option<&ScratchRoot>,
) -> Result<(Option<SharedTmp>, Vec<DirIdentity>), RuntimeError> {
    let mut identities = Vec::new();
    if let Some(rootfs) = &spec.rootfs {
        let dir =
            open_host_dir(rootfs, IfMissing::Fail).map_err(|source| RuntimeError::HostDir {
                what: "rootfs",
                path: rootfs.clone(),
                source,
            })?;
        identities.push(DirIdentity::of(&dir));
        preopen(b, &dir, "/", FsPerms::ReadOnly, "rootfs", rootfs)?;
    }
    let tmp = match &spec.shared_tmp {
        Some(shared) => Some(shared.clone()),
        None if spec.tmp => {
            let root = scratch.ok_or_else(|| RuntimeError::Scratch {
                source: std::io::Error::other("no scratch directory configured"),
            })?;
            Some(root.create()?)
        }
        None => None,
    };
    if let Some(tmp) = &tmp {
        preopen(
            b,
            &tmp.open()?,
            "/tmp",
            FsPerms::ReadWrite,
            "tmp",
            std::path::Path::new("/tmp"),
        )?;
    }
    for (volume, guest) in spec.volumes.iter().zip(mounts) {
        let dir = open_host_dir(&volume.host, IfMissing::Fail).map_err(|source| {
            RuntimeError::HostDir {
                what: "volume",
                path: volume.host.clone(),
                source,
            }
        })?;
        identities.push(DirIdentity::of(&dir));
        let perms = if volume.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        preopen(b, &dir, guest, perms, "volume", &volume.host)?;
    }
    Ok((tmp, identities))
}

/// The preview 1 numbers of the read-only preopens [`preopen_dirs`] makes,
/// numbered as wasmtime-wasi numbers them (after stdin, stdout and stderr,
/// in its order): the rootfs, not `/tmp`, each `:ro` volume.
pub(crate) fn read_only_preopen_fds(spec: &InstanceSpec) -> Vec<u32> {
    let mut next = 3u32;
    let mut read_only = Vec::new();
    if spec.rootfs.is_some() {
        read_only.push(next);
        next += 1;
    }
    if spec.tmp || spec.shared_tmp.is_some() {
        next += 1;
    }
    for volume in &spec.volumes {
        if volume.read_only {
            read_only.push(next);
        }
        next += 1;
    }
    read_only
}

/// Hands an open directory to wasmtime-wasi, which only takes paths: the
/// descriptor path reopens exactly the directory we opened.
fn preopen(
    b: &mut WasiCtxBuilder,
    dir: &Dir,
    guest: &str,
    perms: FsPerms,
    what: &'static str,
    host: &std::path::Path,
) -> Result<(), RuntimeError> {
    b.preopened_dir(descriptor_path(dir), guest, perms)
        .map(|_| ())
        .map_err(|e| RuntimeError::HostDir {
            what,
            path: host.to_owned(),
            source: std::io::Error::other(e.into_boxed_dyn_error()),
        })
}

fn check_strings(spec: &InstanceSpec) -> Result<(), RuntimeError> {
    let invalid = |what, value: &str, reason| RuntimeError::InvalidSpec {
        what,
        value: value.to_owned(),
        reason,
    };
    for arg in &spec.args {
        if arg.contains('\0') {
            return Err(invalid("argument", arg, "contains a NUL byte"));
        }
    }
    for (key, value) in &spec.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(invalid(
                "environment variable name",
                key,
                "must be non-empty, without '=' or NUL",
            ));
        }
        if value.contains('\0') {
            return Err(invalid(
                "environment variable value",
                value,
                "contains a NUL byte",
            ));
        }
    }
    if let Some(workdir) = &spec.workdir {
        normalize_guest_path(workdir)?;
    }
    Ok(())
}

/// Normalizes each volume's guest path and refuses overlaps that would make
/// one grant shadow another, and a writable rootfs without its rootfs.
fn check_mounts(spec: &InstanceSpec) -> Result<Vec<String>, RuntimeError> {
    if let Some(view) = &spec.writable_rootfs
        && spec.rootfs.is_none()
    {
        // Checked here for modules, components and servers alike.
        return Err(RuntimeError::InvalidSpec {
            what: "writable rootfs",
            value: view.upper_path().display().to_string(),
            reason: "needs `rootfs` too: the view is served in place of its read-only `/`",
        });
    }
    if spec.tmp
        && let Some(shared) = &spec.shared_tmp
    {
        return Err(RuntimeError::InvalidSpec {
            what: "tmp",
            value: format!("{shared:?}"),
            reason: "a private `/tmp` and a shared one: give one of them",
        });
    }
    let mut taken: Vec<String> = Vec::new();
    if spec.tmp || spec.shared_tmp.is_some() {
        taken.push("/tmp".to_owned());
    }
    let mut out = Vec::with_capacity(spec.volumes.len());
    for v in &spec.volumes {
        let guest = normalize_guest_path(&v.guest)?;
        if guest == "/" {
            return Err(RuntimeError::InvalidGuestPath {
                path: v.guest.clone(),
                reason: "a volume cannot be mounted at / (that is the rootfs)",
            });
        }
        if taken.contains(&guest) {
            return Err(RuntimeError::InvalidGuestPath {
                path: v.guest.clone(),
                reason: "already mounted",
            });
        }
        taken.push(guest.clone());
        out.push(guest);
    }
    Ok(out)
}

/// An absolute guest path without `.`/`..`/empty parts or NUL, trailing `/`
/// removed.
fn normalize_guest_path(path: &str) -> Result<String, RuntimeError> {
    let bad = |reason| RuntimeError::InvalidGuestPath {
        path: path.to_owned(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(bad("must be absolute"));
    }
    if path.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad("must not contain . or .. components"));
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_tmp_is_one_directory_removed_with_its_last_holder() {
        let root = tempfile::tempdir().expect("tempdir");
        let scratch = ScratchRoot::open(root.path()).expect("open");
        let shared = scratch.create().expect("create");
        let dir = root.path().join(shared.name());
        let spec = InstanceSpec {
            shared_tmp: Some(shared.clone()),
            ..InstanceSpec::new(["x"])
        };
        // Two instances given it (no scratch root needed: nothing is made).
        let first = grant(&spec, None).expect("grant");
        let second = grant(&spec, None).expect("grant");
        for g in [&first, &second] {
            let held = g.tmp.as_ref().expect("a /tmp");
            assert!(held.is(&shared), "another /tmp was made");
        }
        std::fs::write(dir.join("f"), b"x").expect("write");
        drop((shared, spec, first));
        assert!(dir.join("f").exists(), "removed while an instance holds it");
        drop(second);
        assert!(!dir.exists(), "kept after its last holder");
        // Both a private and a shared /tmp: refused.
        let spec = InstanceSpec {
            shared_tmp: Some(scratch.create().expect("create")),
            ..InstanceSpec::new(["x"]).tmp(true)
        };
        assert!(check_mounts(&spec).is_err());
    }

    #[test]
    fn guest_paths_that_climb_or_are_relative_are_refused() {
        for bad in ["data", "/data/../etc", "/./x", "", "/a\0b"] {
            assert!(normalize_guest_path(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            normalize_guest_path("/data//x/").ok().as_deref(),
            Some("/data/x")
        );
    }

    #[test]
    fn volume_over_rootfs_or_tmp_or_twice_is_refused() {
        let base = InstanceSpec::new(["x"]).tmp(true);
        for guest in ["/", "/tmp", "/tmp/"] {
            let spec = base.clone().volume("/nonexistent", guest, true);
            assert!(check_mounts(&spec).is_err(), "{guest} accepted");
        }
        let twice = base.volume("/a", "/d", true).volume("/b", "/d/", false);
        assert!(check_mounts(&twice).is_err());
    }

    #[test]
    fn a_shared_view_is_reused_while_held_and_forgotten_after() {
        let host = tempfile::tempdir().expect("tempdir");
        let (a, b) = (host.path().join("a"), host.path().join("b"));
        std::fs::create_dir(&a).expect("mkdir");
        std::fs::create_dir(&b).expect("mkdir");
        let views = SharedViews::default();
        let spec_a = InstanceSpec::new(["x"]).rootfs(&a);
        let first = views.get(&spec_a, &[]).expect("view");
        let second = views.get(&spec_a, &[]).expect("view");
        assert!(Arc::ptr_eq(&first, &second), "a live view was not reused");
        let other = views
            .get(
                &InstanceSpec::new(["x"]).rootfs(&a).volume(&b, "/b", true),
                &["/b".into()],
            )
            .expect("view");
        assert!(!Arc::ptr_eq(&first, &other));
        drop((first, second, other));
        // The next new view prunes the dead entries.
        let _b = views
            .get(&InstanceSpec::new(["x"]).rootfs(&b), &[])
            .expect("view");
        assert_eq!(views.entries(), 1);
    }

    #[test]
    fn env_name_with_equals_sign_is_refused() {
        let spec = InstanceSpec::new(["x"]).env("A=B", "c");
        assert!(check_strings(&spec).is_err());
    }
}
