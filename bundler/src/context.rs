//! Reading the build context through a capability handle: sources are
//! resolved inside the context directory only, and symlinks that lead out of
//! it are refused with the offending path.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::{Dir, PermissionsExt};

use crate::BuildError;

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

/// The build context: a directory handle plus its path for messages.
pub struct BuildContext {
    dir: Dir,
    path: PathBuf,
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
    /// Opens the context directory. This is the bundler's one use of ambient
    /// authority; everything below goes through the handle.
    pub fn open(path: &Path) -> Result<BuildContext, BuildError> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(|source| {
            BuildError::Io {
                context: format!("opening the build context {}", path.display()),
                source,
            }
        })?;
        Ok(BuildContext {
            dir,
            path: path.to_path_buf(),
        })
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
        if src.starts_with('/') {
            return Err(self.refuse(
                src,
                "is an absolute path; sources are relative to the build context",
            ));
        }
        let mut rel = normalize_within(Path::new(src)).ok_or_else(|| {
            self.refuse(src, "is outside the build context ('..' climbs out of it)")
        })?;
        // Follow a chain of symlinks at the path itself (Docker follows the
        // top-level source), checking each hop stays inside.
        for _ in 0..40 {
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
            rel = if target.is_absolute() {
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
            self.refuse(
                src,
                format!(
                    "does not exist in the build context {}",
                    self.path.display()
                ),
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
            let meta = self.dir.metadata(&rel).map_err(|e| self.missing(src, e))?;
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
        let handle = self.dir.open_dir(rel).map_err(read_err)?;
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
            if meta.is_symlink() {
                let target = self
                    .dir
                    .read_link_contents(&child_rel)
                    .map_err(|e| self.missing(&shown, e))?;
                let inside =
                    !target.is_absolute() && normalize_within(&rel.join(&target)).is_some();
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
                entries.insert(
                    path_key(&child_dest),
                    LayerEntry::Dir {
                        mode: meta.permissions().mode() & 0o777,
                    },
                );
                self.walk(src, &child_rel, &child_dest, mode, entries, depth + 1)?;
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

fn path_key(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
