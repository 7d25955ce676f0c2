/work/main/examples/target/wasm32-wasip1/release/hello.wasm: /work/main/examples/hello/src/main.rs
