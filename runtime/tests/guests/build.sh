#!/usr/bin/env bash
# Rebuilds the hostile test guests and copies each .wasm beside this script.
# Needs: rustup target add wasm32-wasip1 wasm32-wasip2
set -euo pipefail
cd "$(dirname "$0")"
export SOURCE_DATE_EPOCH=0
build() { # crate target
  cargo build --quiet --release --target "$2" -p "$1"
  cp "target/$2/release/$1.wasm" "$1.wasm"
  echo "built runtime/tests/guests/$1.wasm ($2)"
}
build fs-attack wasm32-wasip1
build net-probe wasm32-wasip2
