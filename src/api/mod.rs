//! The Docker Engine API shapes wrun speaks, shared by the CLI and (later)
//! the daemon, and their construction from the store.

pub mod images;
pub mod types;
