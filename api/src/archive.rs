//! The shapes of an instance's filesystem routes: `GET /containers/{id}/changes`
//! (`diff`) and the stat header of `/containers/{id}/archive` (`cp`), with
//! Go's `os.FileMode` bits, which the header's `mode` carries.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// One line of `docker diff`: a path and what happened to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ContainerChange {
    /// Absolute path in the instance's rootfs.
    pub path: String,
    /// 0: changed, 1: added, 2: deleted.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2))]
    pub kind: u8,
}

impl ContainerChange {
    /// Docker's letter for `kind` (`C`, `A`, `D`); `?` for another number.
    pub fn letter(&self) -> char {
        match self.kind {
            0 => 'C',
            1 => 'A',
            2 => 'D',
            _ => '?',
        }
    }
}

/// The header of `GET`/`HEAD /containers/{id}/archive` holding the
/// [`ContainerPathStat`] of the path, as base64 of its JSON.
pub const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// What `HEAD /containers/{id}/archive?path=` says of a path (Docker's
/// `ContainerPathStat`, lower-case keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerPathStat {
    /// The last name of the path as asked (`/` for the root, `.` for `dir/.`).
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode`: permission bits and the `file_mode` type bits.
    pub mode: u32,
    /// RFC 3339 with nanoseconds.
    pub mtime: String,
    /// A symlink's target, resolved inside the instance, absolute; empty
    /// for anything else.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl ContainerPathStat {
    /// The header's value: base64 of the JSON.
    pub fn to_header(&self) -> String {
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a header's value; a one-line reason when it is not one.
    pub fn from_header(value: &str) -> Result<ContainerPathStat, String> {
        let json = STANDARD
            .decode(value.trim())
            .map_err(|e| format!("the path stat header is not base64: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| format!("the path stat header is not JSON: {e}"))
    }

    pub fn is_dir(&self) -> bool {
        self.mode & file_mode::DIR != 0
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & file_mode::SYMLINK != 0
    }

    /// A directory or a regular file: what `cp` copies to (docker's
    /// `ValidateOutputPathFileMode`).
    pub fn is_dir_or_regular(&self) -> bool {
        self.is_dir() || self.mode & file_mode::TYPE == 0
    }
}

/// Go's `os.FileMode` bits (the top bits of `mode`; the low 9 are the
/// permissions).
pub mod file_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
    pub const IRREGULAR: u32 = 1 << 19;
    /// The bits that say a node is not a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | IRREGULAR;

    /// Go's mode from a Unix `st_mode`'s type (`S_IFMT` bits) and its
    /// `0o7777` permission bits.
    pub fn from_unix(st_mode: u32) -> u32 {
        let mut mode = st_mode & 0o777;
        mode |= match st_mode & 0o170000 {
            0o060000 => DEVICE,
            0o020000 => DEVICE | CHAR_DEVICE,
            0o040000 => DIR,
            0o010000 => NAMED_PIPE,
            0o120000 => SYMLINK,
            0o140000 => SOCKET,
            _ => 0,
        };
        if st_mode & 0o4000 != 0 {
            mode |= SETUID;
        }
        if st_mode & 0o2000 != 0 {
            mode |= SETGID;
        }
        if st_mode & 0o1000 != 0 {
            mode |= STICKY;
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header dockerd 20.10 answered for `/data` (a 0755 directory)
    /// and for `/link` (a symlink to it).
    #[test]
    fn reads_and_writes_dockerds_header() {
        let dir = "eyJuYW1lIjoiZGF0YSIsInNpemUiOjQwOTYsIm1vZGUiOjIxNDc0ODQxNDEsIm10aW1lIjoiMjAyNi0xMi0wN1QyMjowMDowMi42MDAxMjQ2NFoiLCJsaW5rVGFyZ2V0IjoiIn0=";
        let stat = ContainerPathStat::from_header(dir).unwrap();
        assert_eq!(stat.name, "data");
        assert_eq!(stat.mode, file_mode::from_unix(0o040755));
        assert!(stat.is_dir() && !stat.is_symlink() && stat.is_dir_or_regular());
        assert_eq!(stat.mtime, "2026-12-07T22:00:02.60012464Z");
        assert_eq!(stat.to_header(), dir);
        let link = "eyJuYW1lIjoibGluayIsInNpemUiOjUsIm1vZGUiOjEzNDIxODIzOSwibXRpbWUiOiIyMDI2LTEyLTA3VDIxOjU5OjU4WiIsImxpbmtUYXJnZXQiOiIvZGF0YSJ9";
        let stat = ContainerPathStat::from_header(link).unwrap();
        assert_eq!(stat.mode, file_mode::from_unix(0o120777));
        assert!(stat.is_symlink() && !stat.is_dir_or_regular());
        assert_eq!(stat.link_target, "/data");
        assert_eq!(file_mode::from_unix(0o100644), 0o644);
        assert_eq!(
            file_mode::from_unix(0o041777),
            file_mode::DIR | file_mode::STICKY | 0o777
        );
        assert!(ContainerPathStat::from_header("not base64!").is_err());
    }

    #[test]
    fn changes_read_as_dockers_json() {
        let c: Vec<ContainerChange> = serde_json::from_str(
            r#"[{"Path":"/data","Kind":0},{"Path":"/data/new.txt","Kind":1}]"#,
        )
        .unwrap();
        assert_eq!(c[1].path, "/data/new.txt");
        assert_eq!((c[0].letter(), c[1].letter()), ('C', 'A'));
    }
}
