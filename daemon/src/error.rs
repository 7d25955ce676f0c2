//! The daemon's errors: what kind of failure (not found, conflict, invalid
//! argument, too large, capacity, internal) and its one line; the one
//! mapping to HTTP status codes is [`DaemonError::status`].

use hyper::StatusCode;

/// A failed operation of the daemon, as the client will be told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DaemonError {
    /// No such instance, image or route.
    #[error("{0}")]
    NotFound(String),
    /// The operation does not fit the object's state or name (in use,
    /// running, taken).
    #[error("{0}")]
    Conflict(String),
    /// Refused by the object's rules, as dockerd's 403 (a network's
    /// overlapping pool, its active endpoints, an endpoint twice).
    #[error("{0}")]
    Forbidden(String),
    /// The request itself is wrong: a bad value, a missing field, a module
    /// that cannot run.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request body is over the daemon's bound.
    #[error("{0}")]
    TooLarge(String),
    /// Every instance slot is taken: retry when one is free.
    #[error("{0}")]
    Capacity(String),
    /// The daemon or the machine failed (disk, I/O, a panic).
    #[error("{0}")]
    Internal(String),
    /// A Docker API route wrun knows but does not serve (exec, volumes, …):
    /// 501, as dockerd answers for a feature it lacks.
    #[error("{0}")]
    NotImplemented(String),
}

/// `name` as Docker shows a reference: `hello` is `hello:latest`; a tag, a
/// digest or an image ID (`sha256:…`) stays as given.
pub fn with_default_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.starts_with("sha256:") || name.contains('@') || last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

impl DaemonError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }
    pub fn no_such_container(key: &str) -> Self {
        Self::not_found(format!("No such container: {key}"))
    }
    /// Docker's `No such image: REF`, REF with the `:latest` a name
    /// without tag or digest stands for (an ID is shown as given).
    pub fn no_such_image(name: &str) -> Self {
        Self::not_found(format!("No such image: {}", with_default_tag(name)))
    }

    /// The one line the client shows.
    pub fn message(&self) -> &str {
        match self {
            Self::NotFound(m)
            | Self::Conflict(m)
            | Self::InvalidArgument(m)
            | Self::Forbidden(m)
            | Self::TooLarge(m)
            | Self::Capacity(m)
            | Self::Internal(m)
            | Self::NotImplemented(m) => m,
        }
    }

    /// The HTTP status of the answer, as Docker's API gives for each kind.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Capacity(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The same failure, reported as the request's fault.
    pub fn into_invalid(self) -> Self {
        Self::InvalidArgument(self.message().to_owned())
    }
}

/// The kind of a store error: a missing image, an image in use, bad input
/// (a name, an archive, a digest), or the machine.
fn image_error(e: &wrun_image::ImageError, message: String) -> DaemonError {
    use wrun_image::ImageError as E;
    match e {
        E::NoSuchImage(_) => DaemonError::NotFound(message),
        E::Conflict { .. } => DaemonError::Conflict(message),
        E::Io { .. } | E::StoreVersion { .. } => DaemonError::Internal(message),
        _ => DaemonError::InvalidArgument(message),
    }
}

/// Errors from the store and the runtime: store errors by their kind, a
/// module that cannot run is the request's fault, a full pool is capacity,
/// anything else is the daemon's fault.
impl From<anyhow::Error> for DaemonError {
    fn from(err: anyhow::Error) -> Self {
        let message = describe(&err);
        if let Some(e) = err
            .chain()
            .find_map(|c| c.downcast_ref::<wrun_image::ImageError>())
        {
            return image_error(e, message);
        }
        if let Some(e) = err.chain().find_map(|c| c.downcast_ref::<DaemonError>()) {
            return e.clone();
        }
        if err.chain().any(|c| c.is::<crate::outcome::RunFailure>()) {
            return Self::InvalidArgument(message);
        }
        if err.chain().any(|c| {
            matches!(
                c.downcast_ref::<wrun_runtime::RuntimeError>(),
                Some(wrun_runtime::RuntimeError::Capacity { .. })
            )
        }) {
            return Self::Capacity(message);
        }
        Self::Internal(message)
    }
}

/// The one line the user sees for an error: the outermost message, then
/// each cause that adds something, joined with ": ". A full disk reads as
/// dockerd says it (`no space left on device`, Go's words), not as Rust's
/// `No space left on device (os error 28)`.
pub fn describe(err: &anyhow::Error) -> String {
    describe_causes(err.chain())
}

/// [`describe`] of an error that is not in an `anyhow::Error`: it and its
/// sources.
pub fn describe_error(err: &(dyn std::error::Error + 'static)) -> String {
    describe_causes(std::iter::successors(Some(err), |e| e.source()))
}

fn describe_causes<'a>(
    chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in chain {
        let text = match cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
        {
            Some(std::io::ErrorKind::StorageFull) => "no space left on device".to_owned(),
            Some(std::io::ErrorKind::QuotaExceeded) => "disk quota exceeded".to_owned(),
            _ => cause.to_string(),
        };
        if parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn each_kind_has_dockers_status() {
        let cases = [
            (DaemonError::no_such_container("x"), 404),
            (DaemonError::conflict("in use"), 409),
            (DaemonError::invalid("bad"), 400),
            (DaemonError::TooLarge("big".into()), 413),
            (DaemonError::Capacity("full".into()), 503),
            (DaemonError::Internal("disk".into()), 500),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
        }
        assert_eq!(
            DaemonError::no_such_container("web").message(),
            "No such container: web"
        );
    }

    #[test]
    fn store_and_runtime_errors_keep_their_kind_through_context() {
        let missing = anyhow::Error::from(wrun_image::ImageError::NoSuchImage("nope:1".into()))
            .context("creating the instance");
        let err = DaemonError::from(missing);
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        assert!(
            err.message().starts_with("creating the instance: "),
            "{err}"
        );

        let cannot_run = anyhow::Error::from(crate::outcome::RunFailure::CannotRun(
            "/app.wasm: not wasm".into(),
        ));
        assert_eq!(
            DaemonError::from(cannot_run).status(),
            StatusCode::BAD_REQUEST
        );

        let io: anyhow::Result<()> = Err(std::io::Error::other("disk on fire").into());
        let err = DaemonError::from(io.context("saving the record").unwrap_err());
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.message(), "saving the record: disk on fire");

        let inner = anyhow::Error::from(DaemonError::conflict("name taken")).context("renaming");
        assert_eq!(DaemonError::from(inner).status(), StatusCode::CONFLICT);
    }

    #[test]
    fn a_missing_image_is_named_with_the_tag_docker_assumes() {
        for (given, shown) in [
            ("hello", "hello:latest"),
            ("hello:1", "hello:1"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost:5000/app:2", "localhost:5000/app:2"),
            ("app@sha256:ab", "app@sha256:ab"),
            ("sha256:abcd", "sha256:abcd"),
        ] {
            assert_eq!(
                DaemonError::no_such_image(given).message(),
                format!("No such image: {shown}")
            );
        }
    }

    #[test]
    fn describe_drops_causes_already_said() {
        let err = anyhow::anyhow!("no such file").context("opening a.tar: no such file");
        assert_eq!(describe(&err), "opening a.tar: no such file");
        let err = anyhow::anyhow!("denied").context("opening a.tar");
        assert_eq!(describe(&err), "opening a.tar: denied");
    }

    #[test]
    fn a_full_disk_is_said_in_dockerds_words() {
        let full = std::io::Error::from_raw_os_error(28);
        let err = anyhow::Error::from(full).context("writing blob sha256:ab");
        assert_eq!(
            describe(&err),
            "writing blob sha256:ab: no space left on device"
        );
        // Also when the I/O error is the source of a typed error.
        let err = anyhow::Error::from(wrun_image::ImageError::Io {
            context: "writing layer 3d86".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert_eq!(
            describe(&err),
            "writing layer 3d86: no space left on device"
        );
    }
}
