//! Set-up shared by the benches: a runtime and one prepared example module.

use wrun_runtime::{ModuleDigest, PrepareOptions, PreparedModule, Runtime, RuntimeConfig};

/// A runtime with `config` and `examples/NAME/NAME.wasm` prepared on it.
pub fn prepared_example(name: &str, config: RuntimeConfig) -> (Runtime, PreparedModule) {
    let path = format!(
        "{}/../examples/{name}/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{path} is built: {e}"));
    let runtime = Runtime::new(config).expect("runtime");
    let module = runtime
        .prepare(&ModuleDigest::of(&wasm), &wasm, PrepareOptions::default())
        .expect("prepare");
    (runtime, module)
}
