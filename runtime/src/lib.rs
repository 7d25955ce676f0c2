//! The wrun runtime: one wasmtime engine, many capability-scoped WASI
//! instances. Takes typed specs, returns typed outcomes; knows no CLI or HTTP.
//!
//! ```no_run
//! use wrun_runtime::{InstanceSpec, ModuleDigest, PrepareOptions, Runtime, RuntimeConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let wasm = std::fs::read("hello.wasm")?;
//! let module = runtime.prepare(&ModuleDigest::of(&wasm), &wasm, PrepareOptions::default())?;
//! let outcome = runtime.run_blocking(&module, InstanceSpec::new(["hello", "Alice"]))?;
//! println!("{outcome:?}");
//! # Ok(()) }
//! ```

mod cache;
mod checked_body;
mod config;
mod engine;
mod error;
mod host_dir;
mod limiter;
mod memory;
mod module;
mod module_kind;
pub mod net;
mod outcome;
mod outgoing;
pub mod peer_net;
mod rootfs_p1;
mod rootfs_p2;
mod runtime;
mod sandbox;
mod scratch;
mod serve;
mod slots;
mod sockets;
mod spec;
mod stdio;
mod store;

pub use config::RuntimeConfig;
pub use engine::stack_bytes;
pub use error::{BoxError, RuntimeError};
pub use limiter::{MemoryGauge, TABLE_ELEMENT_BYTES};
pub use module::ModuleDigest;
pub use module_kind::ModuleKind;
pub use net::{ConnectRule, GrantParseError, NetworkGrants, PortMapping, Protocol, PublishError};
pub use outcome::{RunOutcome, TrapReason};
pub use peer_net::{InstancePeers, PeerDirectory, PeerNet};
pub use runtime::{CacheStats, ModuleOrigin, PrepareOptions, PreparedModule, Runtime};
pub use scratch::SharedTmp;
pub use serve::{ServeOptions, ServeReport};
pub use slots::InstanceSlot;
pub use sockets::MAX_SOCKETS;
pub use spec::{InstanceSpec, Limits, VolumeMount};
pub use stdio::{InputSource, InputStream, MAX_SINK_CHUNK, OutputSink, OutputTarget};

/// The version of wasmtime this runtime is built on (`wrun version`); a
/// test keeps it equal to the one in Cargo.lock.
pub const WASMTIME_VERSION: &str = "48.0.8";

#[cfg(test)]
mod tests {
    #[test]
    fn the_wasmtime_version_is_the_locked_one() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .expect("the workspace's Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_string());
        assert_eq!(locked.as_deref(), Some(super::WASMTIME_VERSION));
    }
}
