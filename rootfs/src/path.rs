//! Names and canonical paths of the merged view: a `ViewPath` is a chain of
//! plain names from the view's root (no `.`, `..`, empty name or symlink).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::error::{Error, Result};

/// Longest name of one path component, in bytes (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Longest path a guest may pass, in bytes, terminator excluded (Linux
/// `PATH_MAX` less the NUL).
pub const PATH_MAX: usize = 4095;
/// Symlinks followed in one resolution before it fails with `Loop` (Linux's
/// `MAXSYMLINKS`).
pub const MAX_SYMLINKS: u32 = 40;

/// A directory or file of the view named by its canonical path from the
/// root: every component a real name, no symlink on the way.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewPath(Vec<OsString>);

impl ViewPath {
    /// The view's root, `/`.
    pub fn root() -> ViewPath {
        ViewPath(Vec::new())
    }

    /// Parses `/a/b` or `a/b` made only of plain names (no `.`, `..`, or
    /// empty components other than slashes): how the later verbs name paths
    /// they got from `diff` or a tar.
    pub fn parse(path: &str) -> Result<ViewPath> {
        let mut names = Vec::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            if c == "." || c == ".." {
                return Err(Error::Invalid);
            }
            names.push(checked_name(c.as_bytes())?);
        }
        Ok(ViewPath(names))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> &[OsString] {
        &self.0
    }

    /// The last name, `None` at the root.
    pub fn file_name(&self) -> Option<&OsStr> {
        self.0.last().map(|n| n.as_os_str())
    }

    /// The parent directory, `None` at the root.
    pub fn parent(&self) -> Option<ViewPath> {
        let (_, init) = self.0.split_last()?;
        Some(ViewPath(init.to_vec()))
    }

    pub fn join(&self, name: &OsStr) -> ViewPath {
        let mut names = self.0.clone();
        names.push(name.to_owned());
        ViewPath(names)
    }

    /// Whether `self` is `other` or below it.
    pub fn starts_with(&self, other: &ViewPath) -> bool {
        self.0.starts_with(&other.0)
    }

    pub(crate) fn push(&mut self, name: OsString) {
        self.0.push(name);
    }

    /// `a/b/c` without a leading slash (empty at the root): the form the
    /// whiteout journal stores and a tar entry takes.
    pub fn to_relative_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(n.as_bytes());
        }
        out
    }

    pub(crate) fn from_relative_bytes(bytes: &[u8]) -> Result<ViewPath> {
        let mut names = Vec::new();
        for c in bytes.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
            if c == b"." || c == b".." {
                return Err(Error::Invalid);
            }
            names.push(checked_name(c)?);
        }
        Ok(ViewPath(names))
    }
}

/// `/a/b`, `/` for the root, names shown lossily when not UTF-8.
impl fmt::Display for ViewPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for n in &self.0 {
            write!(f, "/{}", n.to_string_lossy())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ViewPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// One name as the host will take it: not empty, no `/`, no NUL, at most
/// `NAME_MAX` bytes.
pub(crate) fn checked_name(bytes: &[u8]) -> Result<OsString> {
    if bytes.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if bytes.is_empty() || bytes.contains(&0) || bytes.contains(&b'/') {
        return Err(Error::Invalid);
    }
    Ok(OsString::from_vec(bytes.to_vec()))
}

/// A guest path or symlink target split into its components, checked
/// against `PATH_MAX` and NUL. Empty components (`a//b`) are dropped, as
/// the kernel does.
pub(crate) struct Components {
    pub absolute: bool,
    pub trailing_slash: bool,
    pub parts: Vec<Vec<u8>>,
}

pub(crate) fn split(path: &[u8]) -> Result<Components> {
    if path.len() > PATH_MAX {
        return Err(Error::NameTooLong);
    }
    if path.contains(&0) {
        return Err(Error::Invalid);
    }
    if path.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Components {
        absolute: path[0] == b'/',
        trailing_slash: path.len() > 1 && path[path.len() - 1] == b'/',
        parts: path
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_paths_print_and_parse() {
        let p = ViewPath::parse("/a//b/").expect("plain names");
        assert_eq!(p.to_string(), "/a/b");
        assert_eq!(p.to_relative_bytes(), b"a/b");
        assert_eq!(ViewPath::root().to_string(), "/");
        assert!(matches!(ViewPath::parse("/a/../b"), Err(Error::Invalid)));
        assert_eq!(ViewPath::from_relative_bytes(b"a/b").expect("plain"), p);
        assert!(p.starts_with(&ViewPath::parse("a").expect("plain")));
        assert_eq!(p.parent().expect("not root").to_string(), "/a");
    }

    #[test]
    fn names_and_paths_are_bounded() {
        assert!(checked_name(&[b'x'; NAME_MAX]).is_ok());
        assert!(matches!(
            checked_name(&[b'x'; NAME_MAX + 1]),
            Err(Error::NameTooLong)
        ));
        assert!(matches!(checked_name(b"a\0b"), Err(Error::Invalid)));
        assert!(split(&[b'a'; PATH_MAX]).is_ok());
        assert!(matches!(
            split(&[b'a'; PATH_MAX + 1]),
            Err(Error::NameTooLong)
        ));
        assert!(matches!(split(b""), Err(Error::NotFound)));
        let c = split(b"/x//y/").expect("valid");
        assert!(c.absolute && c.trailing_slash);
        assert_eq!(c.parts, vec![b"x".to_vec(), b"y".to_vec()]);
    }
}
