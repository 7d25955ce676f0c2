//! The one error type of the image crate: every failure keeps its cause and
//! names the input (file, digest, reference) it was about.

use std::path::PathBuf;

/// Anything that can go wrong while reading, writing or storing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    BadDigest(String),
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} has {actual} bytes but its descriptor says {expected}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("invalid reference format {reference:?}: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{reference:?} matches more than one image ({candidates}); use a longer ID or a name")]
    AmbiguousImage {
        reference: String,
        candidates: String,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what} is not valid JSON for its type")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("layer {layer}: unsafe entry {path:?}: {reason}")]
    UnsafeEntry {
        layer: String,
        path: String,
        reason: String,
    },
    /// A `--change` instruction refused, in dockerd's words where it has some.
    #[error("{0}")]
    BadChange(String),
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded { what: String, limit: String },
    #[error("not a wasm image: os={os} arch={arch}")]
    NotWasm { os: String, arch: String },
    #[error("unable to remove {reference}: {reason}")]
    Conflict { reference: String, reason: String },
    #[error(
        "the store at {path} is from a newer wrun (format {found}); this wrun reads format {supported}"
    )]
    StoreVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Attaches a human context to an I/O error, keeping it as the source.
pub(crate) trait IoContext<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| ImageError::Io {
            context: context(),
            source,
        })
    }
}

/// Whether an I/O error is the disk's (full, over quota, read-only): about
/// where bytes go, never about what was read.
pub(crate) fn is_disk_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge | K::ReadOnlyFilesystem
    )
}

impl ImageError {
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// True when the failure is about the input rather than the machine
    /// (the CLI maps these to "bad input" exit codes and 4xx statuses).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::NoSuchImage(_))
    }
}
