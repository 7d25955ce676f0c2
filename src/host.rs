//! Where the daemon's socket is: `-H unix://PATH` / `$WRUN_HOST`, else
//! `/run/wrun/wrun.sock` for root, else `$XDG_RUNTIME_DIR/wrun.sock`.

use std::path::PathBuf;

use anyhow::bail;

/// The socket path `-H`/`$WRUN_HOST` (a `unix://` URL or a plain path) names,
/// or the default for this user.
pub fn socket_path(host: Option<&str>) -> anyhow::Result<PathBuf> {
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        let path = match h.split_once("://") {
            Some(("unix", p)) => p,
            Some((scheme, _)) => {
                bail!("unsupported host {h:?}: wrun serves only unix:// sockets, not {scheme}://")
            }
            None => h,
        };
        if path.is_empty() {
            bail!("invalid host {h:?}: the socket path is empty");
        }
        return Ok(PathBuf::from(path));
    }
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/run/wrun/wrun.sock"));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("wrun.sock"));
    }
    let uid = rustix::process::geteuid().as_raw();
    Ok(std::env::temp_dir()
        .join(format!("wrun-{uid}"))
        .join("wrun.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_unix_urls_or_paths() {
        assert_eq!(
            socket_path(Some("unix:///tmp/x.sock")).unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert_eq!(
            socket_path(Some("/tmp/y.sock")).unwrap(),
            PathBuf::from("/tmp/y.sock")
        );
        assert!(socket_path(Some("tcp://1.2.3.4:2375")).is_err());
        assert!(socket_path(Some("unix://")).is_err());
    }
}
