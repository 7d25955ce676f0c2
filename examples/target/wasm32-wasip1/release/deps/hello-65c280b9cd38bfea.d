/work/main/examples/target/wasm32-wasip1/release/deps/hello-65c280b9cd38bfea.d: hello/src/main.rs

/work/main/examples/target/wasm32-wasip1/release/deps/hello-65c280b9cd38bfea.wasm: hello/src/main.rs

hello/src/main.rs:
