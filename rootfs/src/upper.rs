//! Where an upper lives on the host: the guest's tree is the upper path
//! itself, and the crate's own parts sit beside it, each made on first need.
//!
//! `<upper>` (the tree) exists from the instance's first write; its
//! existence is what says the instance wrote. `<upper>.work` (the staging
//! area: copy-ups in progress, and the tree itself until it is whole) is
//! made at the first copy-up; `<upper>.whiteouts` (the deletion journal) at
//! the first whiteout. A part without its tree is a leftover (of a removal
//! cut short, or of a tree never finished): the next first write removes
//! it, and so does the owner's sweep by [`upper_name_of`].

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::AtFlags;

use crate::error::{Error, Result};
use crate::host::{self, Kind};

/// The suffix of an upper's staging area: `<upper>.work`.
pub(crate) const WORK_SUFFIX: &str = ".work";
/// The suffix of an upper's deletion journal: `<upper>.whiteouts`.
pub(crate) const JOURNAL_SUFFIX: &str = ".whiteouts";

/// The host paths an upper may occupy. An upper path whose file name ends
/// in `.work` or `.whiteouts` is refused by `Layers::open` (it would be
/// another upper's part).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpperParts {
    /// The guest's files, names verbatim: the upper path itself.
    pub tree: PathBuf,
    /// Copy-ups in progress (and the tree before it is in place): made at
    /// the first copy-up, removed when the view is opened again.
    pub work: PathBuf,
    /// The deletion journal: made at the first whiteout.
    pub whiteouts: PathBuf,
}

impl UpperParts {
    /// The parts of the upper at `upper`; `Invalid` when the path has no
    /// file name (`/`, `..`) or names another upper's part.
    pub fn of(upper: &Path) -> Result<UpperParts> {
        let (dir, name) = split(upper)?;
        Ok(UpperParts {
            tree: dir.join(name),
            work: dir.join(part_name(name, WORK_SUFFIX)),
            whiteouts: dir.join(part_name(name, JOURNAL_SUFFIX)),
        })
    }
}

/// The file name of the upper that an entry of the directory holding
/// uppers belongs to: `x` for `x` (a tree), `x.work` and `x.whiteouts`.
/// What a sweep of that directory asks, so that it keeps every part of a
/// live upper and removes every part of a dead one.
pub fn upper_name_of(entry: &OsStr) -> &OsStr {
    let bytes = entry.as_bytes();
    for suffix in [WORK_SUFFIX, JOURNAL_SUFFIX] {
        if let Some(owner) = bytes.strip_suffix(suffix.as_bytes())
            && !owner.is_empty()
        {
            return OsStr::from_bytes(owner);
        }
    }
    entry
}

/// Removes the upper at `upper` with all its parts (symlinks in the tree
/// are removed, never followed). Parts that do not exist are no error.
pub fn remove_upper(upper: &Path) -> Result<()> {
    let (dir, name) = split(upper)?;
    let Some(parent) = host::open_upper_dir(dir, false)? else {
        return Ok(());
    };
    let parent = cap_std::fs::Dir::from(parent);
    let mut first_error = None;
    for part in [
        name.to_owned(),
        part_name(name, WORK_SUFFIX),
        part_name(name, JOURNAL_SUFFIX),
    ] {
        if let Err(e) = remove_part(&parent, &part) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Renames the upper at `from` with all its parts to `to` (whose parts are
/// then `to.work` and `to.whiteouts`), the tree first: a crash in between
/// leaves parts without a tree, leftovers by the rule above. `Ok(false)`
/// when `from` has no part at all. `to` must be on the same filesystem.
pub fn rename_upper(from: &Path, to: &Path) -> Result<bool> {
    let (from_dir, from_name) = split(from)?;
    let (to_dir, to_name) = split(to)?;
    let Some(from_parent) = host::open_upper_dir(from_dir, false)? else {
        return Ok(false);
    };
    let to_parent: OwnedFd = host::open_upper_dir(to_dir, false)?.ok_or(Error::NotFound)?;
    let mut renamed = false;
    for suffix in ["", WORK_SUFFIX, JOURNAL_SUFFIX] {
        match rustix::fs::renameat(
            &from_parent,
            part_name(from_name, suffix),
            &to_parent,
            part_name(to_name, suffix),
        ) {
            Ok(()) => renamed = true,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(renamed)
}

/// The directory an upper sits in and its file name; `Invalid` for a path
/// without a file name or one that names a part.
pub(crate) fn split(upper: &Path) -> Result<(&Path, &OsStr)> {
    let name = upper.file_name().ok_or(Error::Invalid)?;
    if upper_name_of(name) != name {
        return Err(Error::Invalid);
    }
    let dir = match upper.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// `name` with `suffix` appended: the name of one of its parts.
pub(crate) fn part_name(name: &OsStr, suffix: &str) -> OsString {
    let mut part = name.to_owned();
    part.push(suffix);
    part
}

/// Removes one part (a directory tree or a file) from `parent`; none is
/// no error. Symlinks are removed, never followed.
pub(crate) fn remove_part(parent: &cap_std::fs::Dir, name: &OsStr) -> Result<()> {
    match host::lstat(parent.as_fd(), name)? {
        None => Ok(()),
        Some(st) if st.kind == Kind::Dir => Ok(parent.remove_dir_all(name)?),
        Some(_) => Ok(rustix::fs::unlinkat(parent, name, AtFlags::empty())?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_names_its_upper() {
        for (entry, owner) in [
            ("abc", "abc"),
            ("abc.work", "abc"),
            ("abc.whiteouts", "abc"),
            ("abc.removing", "abc.removing"),
            ("abc.removing.work", "abc.removing"),
            (".work", ".work"),
            (".whiteouts", ".whiteouts"),
            ("abc.work.x", "abc.work.x"),
        ] {
            assert_eq!(upper_name_of(OsStr::new(entry)), owner, "{entry}");
        }
    }

    #[test]
    fn the_parts_sit_beside_the_tree() {
        let parts = UpperParts::of(Path::new("/s/layers/abc/")).expect("parts");
        assert_eq!(parts.tree, Path::new("/s/layers/abc"));
        assert_eq!(parts.work, Path::new("/s/layers/abc.work"));
        assert_eq!(parts.whiteouts, Path::new("/s/layers/abc.whiteouts"));
        let relative = UpperParts::of(Path::new("u")).expect("parts");
        assert_eq!(relative.work, Path::new("./u.work"));
        for bad in ["/", "/s/..", "/s/abc.work", "/s/abc.whiteouts"] {
            assert!(
                matches!(UpperParts::of(Path::new(bad)), Err(Error::Invalid)),
                "{bad}"
            );
        }
    }

    #[test]
    fn rename_and_remove_take_every_part_and_nothing_else() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/sub")).expect("tree");
        std::fs::write(root.join("a/sub/f"), "f").expect("file");
        std::os::unix::fs::symlink(root.join("keep"), root.join("a/out")).expect("symlink");
        std::fs::create_dir(root.join("a.work")).expect("work");
        std::fs::write(root.join("a.work/copy-0"), "c").expect("copy");
        std::fs::write(root.join("a.whiteouts"), "").expect("journal");
        std::fs::create_dir(root.join("keep")).expect("keep");
        std::fs::write(root.join("keep/x"), "x").expect("x");
        std::fs::create_dir(root.join("ab")).expect("another upper");

        assert!(rename_upper(&root.join("a"), &root.join("a.removing")).expect("rename"));
        let mut names: Vec<String> = std::fs::read_dir(root)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "a.removing",
                "a.removing.whiteouts",
                "a.removing.work",
                "ab",
                "keep"
            ]
        );
        assert!(!rename_upper(&root.join("a"), &root.join("b")).expect("nothing"));

        remove_upper(&root.join("a.removing")).expect("remove");
        remove_upper(&root.join("a.removing")).expect("again: nothing left");
        remove_upper(&root.join("missing/a")).expect("no directory: nothing");
        let mut names: Vec<String> = std::fs::read_dir(root)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["ab", "keep"]);
        assert_eq!(
            std::fs::read_to_string(root.join("keep/x")).expect("x"),
            "x",
            "the symlink's target untouched"
        );
    }
}
