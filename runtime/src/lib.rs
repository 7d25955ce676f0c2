//! The wrun runtime: one wasmtime engine, many capability-scoped WASI instances.
