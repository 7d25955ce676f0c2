//! Reading build sources through a capability handle: the context directory
//! (sources resolved inside it only, symlinks that lead out of it refused,
//! `.dockerignore` applied) or a rootfs (`COPY --from` a stage or an image,
//! an `ADD`ed tar: paths and absolute symlinks resolved against its root).

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::{Dir, PermissionsExt};

use crate::BuildError;
use crate::ignore::IgnoreRules;

/// What goes at one path of a layer.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerEntry {
    Dir {
        mode: u32,
    },
    File {
        source: PathBuf,
        mode: u32,
        size: u64,
    },
    Symlink {
        target: String,
    },
}

/// Which kind of tree a [`BuildContext`] reads.
enum SourceKind {
    /// The build context: relative sources only, nothing may lead out,
    /// `.dockerignore` leaves paths out.
    Context(IgnoreRules),
    /// An image rootfs: `/` is its root, absolute symlinks resolve inside it
    /// and are copied as they are.
    Rootfs,
}

/// A source tree: a directory handle plus its path for messages.
pub struct BuildContext {
    dir: Dir,
    path: PathBuf,
    kind: SourceKind,
}

/// Lexically normalizes `p` against an image root: `..` stops at `/`, as
/// it does in a rootfs.
fn normalize_clamped(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Lexically normalizes `p` relative to the context root; `None` when it
/// climbs above the root.
fn normalize_within(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

impl BuildContext {
    /// Opens the context directory and reads its `.dockerignore`. This and
    /// [`BuildContext::open_rootfs`] are the bundler's uses of ambient
    /// authority; everything below goes through the handle.
    pub fn open(path: &Path) -> Result<BuildContext, BuildError> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(|source| {
            BuildError::Io {
                context: format!("opening the build context {}", path.display()),
                source,
            }
        })?;
        let ignore = match dir.read_to_string(".dockerignore") {
            Ok(text) => IgnoreRules::parse(&text).map_err(|message| BuildError::BuildFile {
                file: path.join(".dockerignore").display().to_string(),
                message,
                line: None,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => IgnoreRules::default(),
            Err(source) => {
                return Err(BuildError::Io {
                    context: format!("reading {}", path.join(".dockerignore").display()),
                    source,
                });
            }
        };
        Ok(BuildContext {
            dir,
            path: path.to_path_buf(),
            kind: SourceKind::Context(ignore),
        })
    }

    /// Opens an unpacked rootfs (a stage's, an image's, an extracted tar's)
    /// as a source tree.
    pub fn open_rootfs(path: &Path) -> Result<BuildContext, BuildError> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(|source| {
            BuildError::Io {
                context: format!("opening the rootfs {}", path.display()),
                source,
            }
        })?;
        Ok(BuildContext {
            dir,
            path: path.to_path_buf(),
            kind: SourceKind::Rootfs,
        })
    }

    fn ignored(&self, rel: &Path) -> bool {
        match &self.kind {
            SourceKind::Context(rules) => {
                !rules.is_empty() && rules.excludes(&rel.to_string_lossy())
            }
            SourceKind::Rootfs => false,
        }
    }

    fn ignore_has_exceptions(&self) -> bool {
        matches!(&self.kind, SourceKind::Context(rules) if rules.has_exceptions())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn refuse(&self, src: &str, reason: impl Into<String>) -> BuildError {
        BuildError::Source {
            src: src.to_string(),
            reason: reason.into(),
        }
    }

    /// Checks a source path as written in the build file and resolves
    /// symlinks on the way, refusing anything that leaves the context.
    fn resolve_source(&self, src: &str) -> Result<PathBuf, BuildError> {
        let rootfs = matches!(self.kind, SourceKind::Rootfs);
        let mut rel = if rootfs {
            normalize_clamped(Path::new(src))
        } else {
            if src.starts_with('/') {
                return Err(self.refuse(
                    src,
                    "is an absolute path; sources are relative to the build context",
                ));
            }
            normalize_within(Path::new(src)).ok_or_else(|| {
                self.refuse(src, "is outside the build context ('..' climbs out of it)")
            })?
        };
        if self.ignored(&rel) {
            return Err(self.refuse(src, "is excluded by .dockerignore"));
        }
        // Follow a chain of symlinks at the path itself (Docker follows the
        // top-level source), checking each hop stays inside.
        for _ in 0..40 {
            if rel.as_os_str().is_empty() {
                return Ok(rel);
            }
            let meta = self
                .dir
                .symlink_metadata(&rel)
                .map_err(|e| self.missing(src, e))?;
            if !meta.is_symlink() {
                return Ok(rel);
            }
            let target = self
                .dir
                .read_link_contents(&rel)
                .map_err(|e| self.missing(src, e))?;
            let base = rel.parent().map(Path::to_path_buf).unwrap_or_default();
            rel = if rootfs {
                Some(normalize_clamped(&base.join(&target)))
            } else if target.is_absolute() {
                None
            } else {
                normalize_within(&base.join(&target))
            }
            .ok_or_else(|| {
                self.refuse(
                    src,
                    format!(
                        "is a symlink to {} outside the build context",
                        target.display()
                    ),
                )
            })?;
        }
        Err(self.refuse(src, "has too many levels of symlinks"))
    }

    fn missing(&self, src: &str, e: io::Error) -> BuildError {
        if e.kind() == io::ErrorKind::NotFound {
            let place = match self.kind {
                SourceKind::Context(_) => "the build context",
                SourceKind::Rootfs => "the source image",
            };
            self.refuse(
                src,
                format!("does not exist in {place} {}", self.path.display()),
            )
        } else {
            self.refuse(
                src,
                format!(
                    "cannot be read: {e} (a path through it may lead outside the build context)"
                ),
            )
        }
    }

    /// The file `src` (as written in a build file) names, opened; `None`
    /// when it is a directory.
    pub fn source_file(&self, src: &str) -> Result<Option<cap_std::fs::File>, BuildError> {
        let rel = self.resolve_source(src)?;
        let meta = self
            .dir
            .metadata(here(&rel))
            .map_err(|e| self.missing(src, e))?;
        if !meta.is_file() {
            return Ok(None);
        }
        self.open_file(&rel).map(Some)
    }

    /// Whether `src` names a directory (symlinks followed inside the tree).
    pub fn is_dir(&self, src: &str) -> bool {
        self.resolve_source(src)
            .ok()
            .and_then(|rel| self.dir.metadata(here(&rel)).ok())
            .is_some_and(|m| m.is_dir())
    }

    /// Whether `src` names a regular file (symlinks followed inside the tree).
    pub fn is_file(&self, src: &str) -> bool {
        self.resolve_source(src)
            .ok()
            .and_then(|rel| self.dir.metadata(here(&rel)).ok())
            .is_some_and(|m| m.is_file())
    }

    /// Reads the whole file `src` names (the module, for validation).
    pub fn read_source(&self, src: &str) -> Result<Vec<u8>, BuildError> {
        let rel = self.resolve_source(src)?;
        self.read(&rel)
    }

    /// Reads a whole file of the context (the module, for validation).
    pub fn read(&self, rel: &Path) -> Result<Vec<u8>, BuildError> {
        self.dir.read(rel).map_err(|source| BuildError::Io {
            context: format!("reading {} in the build context", rel.display()),
            source,
        })
    }

    pub fn open_file(&self, rel: &Path) -> Result<cap_std::fs::File, BuildError> {
        self.dir.open(rel).map_err(|source| BuildError::Io {
            context: format!("reading {} in the build context", rel.display()),
            source,
        })
    }

    /// Adds to `entries` what `COPY sources dest` puts in the rootfs (paths
    /// without the leading `/`), with Docker's file/directory rules.
    pub fn plan_copy(
        &self,
        sources: &[String],
        dest: &str,
        mode: Option<u32>,
        entries: &mut BTreeMap<String, LayerEntry>,
    ) -> Result<(), BuildError> {
        let dest_rel = normalize_within(Path::new(dest.trim_start_matches('/')))
            .ok_or_else(|| self.refuse(dest, "destination climbs out of the image root"))?;
        let into_dir = dest.ends_with('/') || sources.len() > 1;
        for src in sources {
            let rel = self.resolve_source(src)?;
            let meta = self
                .dir
                .metadata(here(&rel))
                .map_err(|e| self.missing(src, e))?;
            if meta.is_dir() {
                self.add_parents(&dest_rel, entries, true);
                self.walk(src, &rel, &dest_rel, mode, entries, 0)?;
            } else if meta.is_file() {
                let target = if into_dir {
                    let name = rel
                        .file_name()
                        .ok_or_else(|| self.refuse(src, "names no file"))?;
                    dest_rel.join(name)
                } else {
                    dest_rel.clone()
                };
                if target.as_os_str().is_empty() {
                    return Err(self.refuse(dest, "a file cannot replace the image root"));
                }
                self.add_parents(&target, entries, false);
                entries.insert(
                    path_key(&target),
                    LayerEntry::File {
                        source: rel,
                        mode: mode.unwrap_or(meta.permissions().mode() & 0o777),
                        size: meta.len(),
                    },
                );
            } else {
                return Err(self.refuse(src, "is neither a file nor a directory"));
            }
        }
        Ok(())
    }

    fn add_parents(
        &self,
        path: &Path,
        entries: &mut BTreeMap<String, LayerEntry>,
        include_self: bool,
    ) {
        let mut acc = PathBuf::new();
        let comps: Vec<_> = path.components().collect();
        let n = if include_self {
            comps.len()
        } else {
            comps.len().saturating_sub(1)
        };
        for c in &comps[..n] {
            acc.push(c);
            entries
                .entry(path_key(&acc))
                .or_insert(LayerEntry::Dir { mode: 0o755 });
        }
    }

    fn walk(
        &self,
        src: &str,
        rel: &Path,
        dest: &Path,
        mode: Option<u32>,
        entries: &mut BTreeMap<String, LayerEntry>,
        depth: usize,
    ) -> Result<(), BuildError> {
        if depth > 64 {
            return Err(self.refuse(src, "is nested more than 64 directories deep"));
        }
        let read_err = |e: io::Error| BuildError::Io {
            context: format!("listing {} in the build context", rel.display()),
            source: e,
        };
        let handle = self.dir.open_dir(here(rel)).map_err(read_err)?;
        let mut names: Vec<_> = handle
            .entries()
            .map_err(read_err)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        names.sort();
        for name in names {
            let child_rel = rel.join(&name);
            let child_dest = dest.join(&name);
            let shown = format!("{}", child_rel.display());
            let meta = self
                .dir
                .symlink_metadata(&child_rel)
                .map_err(|e| self.missing(&shown, e))?;
            let ignored = self.ignored(&child_rel);
            if ignored && !(meta.is_dir() && self.ignore_has_exceptions()) {
                continue;
            }
            if meta.is_symlink() {
                let target = self
                    .dir
                    .read_link_contents(&child_rel)
                    .map_err(|e| self.missing(&shown, e))?;
                let inside = matches!(self.kind, SourceKind::Rootfs)
                    || (!target.is_absolute() && normalize_within(&rel.join(&target)).is_some());
                if !inside {
                    return Err(self.refuse(
                        &shown,
                        format!(
                            "is a symlink to {} outside the build context",
                            target.display()
                        ),
                    ));
                }
                entries.insert(
                    path_key(&child_dest),
                    LayerEntry::Symlink {
                        target: target.to_string_lossy().into_owned(),
                    },
                );
            } else if meta.is_dir() {
                // An excluded directory is walked only for what an
                // exception brings back, and kept only if something did.
                let mut below = BTreeMap::new();
                self.walk(src, &child_rel, &child_dest, mode, &mut below, depth + 1)?;
                if !ignored || !below.is_empty() {
                    entries.insert(
                        path_key(&child_dest),
                        LayerEntry::Dir {
                            mode: meta.permissions().mode() & 0o777,
                        },
                    );
                }
                entries.extend(below);
            } else if meta.is_file() {
                entries.insert(
                    path_key(&child_dest),
                    LayerEntry::File {
                        source: child_rel,
                        mode: mode.unwrap_or(meta.permissions().mode() & 0o777),
                        size: meta.len(),
                    },
                );
            }
            // Sockets, FIFOs and devices in the context are skipped.
        }
        Ok(())
    }
}

/// `rel` as cap-std takes it: the root itself is `.`.
fn here(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

fn path_key(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
