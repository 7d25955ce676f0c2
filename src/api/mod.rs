//! The Docker Engine API shapes wrun speaks, shared by the CLI and the
//! daemon, and their construction from the store.

pub mod containers;
pub mod images;
pub mod network;
pub mod system;
pub mod types;
