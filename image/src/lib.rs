//! OCI images for wrun: the image format, image layout tars, and the local
//! content-addressed store that holds blobs, names and unpacked rootfs.

pub mod archive;
pub mod changes;
pub mod commit;
pub mod digest;
pub mod document;
pub mod error;
pub mod import;
pub mod layer;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
pub mod wasm;

pub use digest::Digest;
pub use error::{ImageError, Result};
/// The OCI types of the documents (`oci_spec::image::Config` for commit).
pub use oci_spec;
pub use reference::ImageRef;
pub use store::{ImageRecord, ModuleInfo, Store};
pub use wasm::ModuleKind;
