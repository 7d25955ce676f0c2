//! The Docker Engine API as wrun speaks it: serde types with Docker's field
//! names, the multiplexed stream codec, and the parsers of user-facing
//! values. Depends on nothing of wrun: the daemon serves these shapes and
//! the CLI sends them.

pub mod archive;
pub mod containers;
pub mod empty;
pub mod error;
pub mod exec;
pub mod images;
pub mod network;
pub mod parse;
pub mod registry;
pub mod signal;
pub mod stream;
pub mod system;
pub mod time;
pub mod volumes;

pub use error::ErrorResponse;
pub use system::{API_VERSION, MIN_API_VERSION};
