#!/usr/bin/env bash
# Rebuilds every example guest and copies each .wasm beside its source, where
# the tests and the README expect it. Needs: rustup target add wasm32-wasip1 wasm32-wasip2
set -euo pipefail
cd "$(dirname "$0")"
export SOURCE_DATE_EPOCH=0
build() { # crate target [artifact name, for a library crate]
  cargo build --quiet --release --target "$2" -p "$1"
  cp "target/$2/release/${3:-$1}.wasm" "$1/$1.wasm"
  echo "built examples/$1/$1.wasm ($2)"
}
build hello wasm32-wasip1
build hello-component wasm32-wasip2
build fs-copy wasm32-wasip1
build idle wasm32-wasip1
build hello-http wasm32-wasip2 hello_http
build fetch wasm32-wasip2
build echo-tcp wasm32-wasip2
build fsh wasm32-wasip1
# The same file shell as a WASI 0.2 component (wrun's other filesystem host).
cargo build --quiet --release --target wasm32-wasip2 -p fsh
cp target/wasm32-wasip2/release/fsh.wasm fsh/fsh-component.wasm
echo "built examples/fsh/fsh-component.wasm (wasm32-wasip2)"
# The WASI python of examples/python (RustPython from crates.io): its own
# workspace and target dir, and a long build (about 13 minutes on 2 cores).
python/build-interpreter
