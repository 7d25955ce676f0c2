//! Where wrun keeps its state: the store root, chosen as Docker users expect
//! (system-wide for root, per-user otherwise).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// `--root`/`$WRUN_ROOT` if given, else `/var/lib/wrun` for root, else
/// `$XDG_DATA_HOME/wrun` (default `~/.local/share/wrun`).
pub fn store_root(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        if p.as_os_str().is_empty() {
            bail!("--root is empty");
        }
        return Ok(p.to_path_buf());
    }
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/wrun"));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("wrun"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither $XDG_DATA_HOME nor $HOME is set; pass --root DIR")?;
    Ok(PathBuf::from(home).join(".local/share/wrun"))
}
