//! What the later verbs read of a view: its changes (`diff`, computed like
//! docker's overlay2 diff), its upper as a layer (`commit`: entries,
//! whiteouts, opaque directories) and its merged tree (`export`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;

use rustix::fs::OFlags;

use crate::error::{Error, Result};
use crate::file::Layer;
use crate::host::{self, Kind, Stat};
use crate::host::{lstat_at, open_chain, walk_host};
use crate::layers::{Layers, ViewDir};
use crate::path::ViewPath;

/// A line of `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// `C`: in both, different (or a directory whose contents changed).
    Changed,
    /// `A`: only in the view.
    Added,
    /// `D`: only in the image.
    Deleted,
}

impl ChangeKind {
    /// Docker's letter.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Changed => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }

    /// Docker's number in `GET /containers/{id}/changes` (`Kind`).
    pub fn docker_kind(self) -> u8 {
        match self {
            ChangeKind::Changed => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: ViewPath,
    pub kind: ChangeKind,
}

/// A node met by a walk, with what a tar writer needs; its data is read
/// with `Layers::open_entry`.
#[derive(Clone, Debug)]
pub struct TreeEntry {
    pub path: ViewPath,
    pub stat: Stat,
    /// A symlink's target, as stored.
    pub link_target: Option<OsString>,
    layer: Layer,
}

/// An item of the upper as a layer, in an order a tar wants (a directory
/// before what is in it).
#[derive(Clone, Debug)]
pub enum LayerItem {
    Node(TreeEntry),
    /// The lower's node at this path is deleted (`.wh.<name>` in OCI).
    Whiteout(ViewPath),
    /// Nothing of the lower's directory at this path shows
    /// (`<dir>/.wh..wh..opq` in OCI); comes right after the directory.
    Opaque(ViewPath),
}

impl Layers {
    /// The view's changes against the image, as `docker diff` lists them on
    /// overlay2, sorted by path: each upper node is Added (not in the
    /// lower) or Changed (in it; a directory only when its size, mode or
    /// mtime differ), a whiteout is Deleted, an opaque directory is Changed
    /// with the lower's entries it hides Deleted, and every directory above
    /// a change is Changed.
    pub fn changes(&self) -> Result<Vec<Change>> {
        self.inner().view(|ctx| {
            let Some(tree) = ctx.upper_tree() else {
                return Ok(Vec::new());
            };
            let lower = ctx.lower_root();
            let whiteouts = ctx.whiteouts();
            let mut out: BTreeMap<ViewPath, ChangeKind> = BTreeMap::new();
            let mut in_upper = HashSet::new();
            walk_host(tree, |path, st| {
                in_upper.insert(path.clone());
                let Some(l) = lstat_at(lower, path)? else {
                    out.insert(path.clone(), ChangeKind::Added);
                    return Ok(());
                };
                if st.kind == Kind::Dir && whiteouts.contains(path) && l.kind == Kind::Dir {
                    out.insert(path.clone(), ChangeKind::Changed);
                    let (Some(up), Some(low)) = (open_chain(tree, path)?, open_chain(lower, path)?)
                    else {
                        return Ok(());
                    };
                    for e in host::list(low.as_fd())? {
                        if host::lstat(up.as_fd(), &e.name)?.is_none() {
                            out.insert(path.join(&e.name), ChangeKind::Deleted);
                        }
                    }
                    return Ok(());
                }
                let same_dir = st.kind == Kind::Dir
                    && l.kind == Kind::Dir
                    && (st.size, st.mode, st.mtime) == (l.size, l.mode, l.mtime);
                if !same_dir {
                    out.insert(path.clone(), ChangeKind::Changed);
                }
                Ok(())
            })?;
            for w in whiteouts.iter() {
                if !in_upper.contains(w) && lstat_at(lower, w)?.is_some() {
                    out.insert(w.clone(), ChangeKind::Deleted);
                }
            }
            // Docker shows every directory above a change as changed (for
            // a copy-up too: overlayfs leaves the copied-up parents' times
            // changed), the root aside.
            let changed: Vec<ViewPath> = out.keys().cloned().collect();
            for p in changed {
                let mut p = p.parent();
                while let Some(dir) = p.filter(|d| !d.is_root()) {
                    if out.contains_key(&dir) {
                        break;
                    }
                    p = dir.parent();
                    out.insert(dir, ChangeKind::Changed);
                }
            }
            Ok(out
                .into_iter()
                .map(|(path, kind)| Change { path, kind })
                .collect())
        })
    }

    /// The upper as a layer: every node of the upper (parents first, names
    /// sorted), each opaque directory right after itself, and whiteouts
    /// where the upper has nothing, listed in their parent directory.
    /// Empty when the view never wrote.
    pub fn upper_layer(&self) -> Result<Vec<LayerItem>> {
        self.inner().view(|ctx| {
            let Some(tree) = ctx.upper_tree() else {
                return Ok(Vec::new());
            };
            let lower = ctx.lower_root();
            let whiteouts = ctx.whiteouts();
            let mut by_parent: HashMap<ViewPath, Vec<ViewPath>> = HashMap::new();
            for w in whiteouts.iter() {
                if let Some(parent) = w.parent() {
                    by_parent.entry(parent).or_default().push(w.clone());
                }
            }
            let mut out = Vec::new();
            let emit_whiteouts = |dir: &ViewPath,
                                  out: &mut Vec<LayerItem>,
                                  by_parent: &mut HashMap<ViewPath, Vec<ViewPath>>|
             -> Result<()> {
                if let Some(mut ws) = by_parent.remove(dir) {
                    ws.sort();
                    for w in ws {
                        if lstat_at(tree, &w)?.is_none() {
                            out.push(LayerItem::Whiteout(w));
                        }
                    }
                }
                Ok(())
            };
            emit_whiteouts(&ViewPath::root(), &mut out, &mut by_parent)?;
            walk_host(tree, |path, st| {
                let link_target = match st.kind {
                    Kind::Symlink => {
                        let parent = open_chain(tree, &path.parent().unwrap_or_default())?
                            .ok_or(Error::NotFound)?;
                        Some(host::read_link(
                            parent.as_fd(),
                            path.file_name().ok_or(Error::Invalid)?,
                        )?)
                    }
                    _ => None,
                };
                out.push(LayerItem::Node(TreeEntry {
                    path: path.clone(),
                    stat: st.clone(),
                    link_target,
                    layer: Layer::Upper,
                }));
                if st.kind == Kind::Dir {
                    if whiteouts.contains(path)
                        && lstat_at(lower, path)?.is_some_and(|l| l.kind == Kind::Dir)
                    {
                        out.push(LayerItem::Opaque(path.clone()));
                    }
                    emit_whiteouts(path, &mut out, &mut by_parent)?;
                }
                Ok(())
            })?;
            // Whiteouts whose directory is not in the upper (not made by
            // this crate, which always makes it) come last.
            let mut rest: Vec<ViewPath> = by_parent.into_values().flatten().collect();
            rest.sort();
            out.extend(rest.into_iter().map(LayerItem::Whiteout));
            Ok(out)
        })
    }

    /// The merged tree for `export`: a lazy walk, parents first, names
    /// sorted, the root left out. Each step reads the view afresh, so a
    /// node removed while the walk runs is skipped, never an error.
    pub fn merged_tree(&self) -> MergedWalk {
        self.merged_tree_below(ViewPath::root())
    }

    /// The same walk below the directory `top` (`cp` of a directory, `GET
    /// …/archive`), `top` itself left out.
    pub fn merged_tree_below(&self, top: ViewPath) -> MergedWalk {
        MergedWalk {
            layers: self.clone(),
            stack: vec![(top, None)],
        }
    }

    /// The node `path` in the view, without following a final symlink.
    pub fn entry(&self, path: &ViewPath) -> Result<TreeEntry> {
        let Some((parent, name)) = path.parent().zip(path.file_name()) else {
            let stat = self.stat(&self.root())?;
            return Ok(TreeEntry {
                path: path.clone(),
                stat,
                link_target: None,
                layer: Layer::Upper,
            });
        };
        let name = name.to_owned();
        self.inner().view(|ctx| {
            let cur = ctx.cursor_at(&parent)?;
            let e = ctx.lookup(&cur, &name)?.ok_or(Error::NotFound)?;
            let root = match e.layer {
                Layer::Upper => ctx.upper_tree().ok_or(Error::NotFound)?,
                Layer::Lower => ctx.lower_root(),
            };
            let link_target = if e.stat.kind == Kind::Symlink {
                let dir = open_chain(root, &parent)?.ok_or(Error::NotFound)?;
                Some(host::read_link(dir.as_fd(), &name)?)
            } else {
                None
            };
            Ok(TreeEntry {
                path: path.clone(),
                stat: e.stat,
                link_target,
                layer: e.layer,
            })
        })
    }

    /// Opens the data of a file met by a walk, read-only, from the layer it
    /// was met in. Fails with `NotFound` when that path is no longer the
    /// same file (replaced since the walk): never another file's data.
    pub fn open_entry(&self, e: &TreeEntry) -> Result<File> {
        if e.stat.kind != Kind::File {
            return Err(Error::Invalid);
        }
        let (parent, name) = e
            .path
            .parent()
            .zip(e.path.file_name())
            .ok_or(Error::Invalid)?;
        self.inner().view(|ctx| {
            let root = match e.layer {
                Layer::Upper => ctx.upper_tree().ok_or(Error::NotFound)?,
                Layer::Lower => ctx.lower_root(),
            };
            let dir = open_chain(root, &parent)?.ok_or(Error::NotFound)?;
            let fd = host::open_file(dir.as_fd(), name, OFlags::RDONLY, 0)?;
            let st = host::fstat(fd.as_fd())?;
            if (st.dev, st.ino) != (e.stat.dev, e.stat.ino) {
                return Err(Error::NotFound);
            }
            Ok(File::from(fd))
        })
    }
}

/// The lazy walk of `Layers::merged_tree` and `merged_tree_below`.
pub struct MergedWalk {
    layers: Layers,
    /// Directories being listed: their path and the names left.
    stack: Vec<(ViewPath, Option<std::vec::IntoIter<OsString>>)>,
}

impl Iterator for MergedWalk {
    type Item = Result<TreeEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (dir, names) = self.stack.last_mut()?;
            let names = match names {
                Some(n) => n,
                None => {
                    let listing = self
                        .layers
                        .dir(dir)
                        .and_then(|d: ViewDir| self.layers.read_dir(&d, false));
                    match listing {
                        Ok(l) => names.insert(
                            l.into_iter()
                                .map(|e| e.name)
                                .collect::<Vec<_>>()
                                .into_iter(),
                        ),
                        Err(Error::NotFound | Error::NotDir) => {
                            self.stack.pop();
                            continue;
                        }
                        Err(e) => {
                            self.stack.pop();
                            return Some(Err(e));
                        }
                    }
                }
            };
            let Some(name) = names.next() else {
                self.stack.pop();
                continue;
            };
            let path = dir.join(&name);
            match self.layers.entry(&path) {
                Ok(e) => {
                    if e.stat.kind == Kind::Dir {
                        self.stack.push((path, None));
                    }
                    return Some(Ok(e));
                }
                Err(Error::NotFound | Error::NotDir) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
