//! An instance's layered, copy-on-write view of an image rootfs (see
//! `docs/rootfs.md`): a shared read-only lower and a lazily created upper.
//!
//! `Layers` is the view; `ViewDir` and `ViewFile` are what a WASI
//! filesystem host keeps as descriptors. Every guest path is resolved by
//! this crate, component by component, inside the view: it cannot reach a
//! host file outside the lower and the upper, and it never writes the lower.

mod error;
mod file;
mod host;
mod journal;
mod layers;
mod path;
mod quota;
mod upper;
mod walk;

pub use error::{Error, Result};
pub use file::ViewFile;
pub use host::{Kind, SetTime, Stat};
pub use layers::{DirEntry, Layers, OpenOptions, Opened, UpperOptions, ViewDir, WeakLayers};
pub use path::{MAX_SYMLINKS, NAME_MAX, PATH_MAX, ViewPath};
pub use upper::{UpperParts, remove_upper, rename_upper, upper_name_of};
pub use walk::{Change, ChangeKind, LayerItem, MergedWalk, TreeEntry};

#[cfg(test)]
mod tests {
    /// A later `exec` shares one view between instances on several threads.
    #[test]
    fn the_view_and_its_handles_are_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<super::Layers>();
        shared::<super::ViewDir>();
        shared::<super::ViewFile>();
        shared::<super::MergedWalk>();
        shared::<super::WeakLayers>();
    }
}
