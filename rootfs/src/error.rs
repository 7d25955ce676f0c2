//! The one error type of the view: each variant is one errno (and one WASI
//! `error-code`), so the WASI glue maps it without losing meaning.

use std::io;

/// What a view operation failed with. `errno()` gives the POSIX number the
/// guest sees; `Io` keeps a host error that has no better name.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("too many levels of symbolic links")]
    Loop,
    #[error("cross-device link: a directory with contents in the image cannot be renamed")]
    CrossDevice,
    #[error("permission denied")]
    Access,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("no space left: the instance's writable layer would exceed its size limit")]
    NoSpace,
    #[error("invalid argument")]
    Invalid,
    #[error("file name too long")]
    NameTooLong,
    /// A change asked of a read-only view (`--read-only`): EROFS, as a
    /// read-only mount answers.
    #[error("read-only file system")]
    ReadOnly,
    #[error("bad descriptor: the file is not open for {0}")]
    BadDescriptor(&'static str),
    #[error("input/output error")]
    Io(#[source] io::Error),
}

impl Error {
    /// The Linux errno of this error (what a guest's libc reports).
    pub fn errno(&self) -> i32 {
        use rustix::io::Errno;
        let e = match self {
            Error::NotFound => Errno::NOENT,
            Error::Exists => Errno::EXIST,
            Error::NotDir => Errno::NOTDIR,
            Error::IsDir => Errno::ISDIR,
            Error::NotEmpty => Errno::NOTEMPTY,
            Error::Loop => Errno::LOOP,
            Error::CrossDevice => Errno::XDEV,
            Error::Access => Errno::ACCESS,
            Error::NotPermitted => Errno::PERM,
            Error::NoSpace => Errno::NOSPC,
            Error::Invalid => Errno::INVAL,
            Error::NameTooLong => Errno::NAMETOOLONG,
            Error::ReadOnly => Errno::ROFS,
            Error::BadDescriptor(_) => Errno::BADF,
            Error::Io(err) => return err.raw_os_error().unwrap_or(Errno::IO.raw_os_error()),
        };
        e.raw_os_error()
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        use rustix::io::Errno;
        match e {
            Errno::NOENT => Error::NotFound,
            Errno::EXIST => Error::Exists,
            Errno::NOTDIR => Error::NotDir,
            Errno::ISDIR => Error::IsDir,
            Errno::NOTEMPTY => Error::NotEmpty,
            Errno::LOOP => Error::Loop,
            Errno::XDEV => Error::CrossDevice,
            Errno::ACCESS => Error::Access,
            Errno::PERM => Error::NotPermitted,
            Errno::NOSPC | Errno::DQUOT => Error::NoSpace,
            Errno::INVAL => Error::Invalid,
            Errno::NAMETOOLONG => Error::NameTooLong,
            Errno::ROFS => Error::ReadOnly,
            other => Error::Io(io::Error::from_raw_os_error(other.raw_os_error())),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(raw) => {
                let mapped = Error::from(rustix::io::Errno::from_raw_os_error(raw));
                match mapped {
                    Error::Io(_) => Error::Io(e),
                    other => other,
                }
            }
            None => Error::Io(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_map_to_their_variant_and_back() {
        for e in [
            Error::NotFound,
            Error::Exists,
            Error::NotDir,
            Error::IsDir,
            Error::NotEmpty,
            Error::Loop,
            Error::CrossDevice,
            Error::Access,
            Error::NotPermitted,
            Error::Invalid,
            Error::NameTooLong,
            Error::ReadOnly,
        ] {
            let back = Error::from(io::Error::from_raw_os_error(e.errno()));
            assert_eq!(back.errno(), e.errno(), "{e}");
            assert!(!matches!(back, Error::Io(_)), "{e} came back as Io");
        }
        assert_eq!(Error::NoSpace.errno(), 28);
        assert_eq!(Error::ReadOnly.errno(), 30);
        let eio = Error::from(io::Error::from_raw_os_error(5));
        assert!(matches!(eio, Error::Io(_)));
        assert_eq!(eio.errno(), 5);
    }
}
