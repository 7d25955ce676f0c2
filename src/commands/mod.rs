//! One module per CLI verb, plus the one place errors become exit codes.

pub mod build;
pub mod history;
pub mod images;
pub mod inspect;
pub mod load;
pub mod rmi;
pub mod save;
pub mod system;
pub mod tag;

use std::path::Path;

use anyhow::Context;
use wrun_image::Store;

/// Exit code for failures of wrun itself (Docker's CLI uses 1 for image
/// commands; `run` will use 125/126/127 as Docker does).
pub const EXIT_FAILURE: u8 = 1;

pub fn open_store(root: &Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("opening the image store at {}", root.display()))
}

/// The one line the user sees: the outermost message, then each cause that
/// adds something, joined with ": ".
pub fn describe(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Maps an error to the process exit code.
pub fn exit_code(_err: &anyhow::Error) -> u8 {
    EXIT_FAILURE
}
