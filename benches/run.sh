#!/usr/bin/env bash
# Measures `wrun hello.tar` end to end (warm cache and cold), side by side
# with `wasmtime run` (wasmtime-cli 48, its cache on) on the same module and
# the native build of the same program, in one hyperfine run.
#   cargo install wasmtime-cli --version 48.0.8 --locked   # the peer, once
# Usage: benches/run.sh [path/to/wrun]   (default: target/release/wrun)
set -euo pipefail
source "$(dirname "$0")/setup.sh"

"$WRUN" build -q -t hello:1.0 -o "$work/hello.tar" examples/hello >/dev/null
"$WRUN" "$work/hello.tar" >/dev/null          # load + compile once: the warm cases start warm
cp examples/hello/hello.wasm "$work/hello.wasm"

# The same program built natively, for scale.
native="$work/hello-native"
rustc -O -o "$native" examples/hello/src/main.rs 2>/dev/null || native=""

warm=(-n "wrun hello.tar (warm cache)" "$WRUN $work/hello.tar"
      -n "wrun run hello:1.0 (warm cache)" "$WRUN run hello:1.0")
cold=(-n "wrun hello.tar (cold: compiles)" "$WRUN $work/hello.tar")
if command -v wasmtime >/dev/null; then
  wasmtime run -C cache=y "$work/hello.wasm" world >/dev/null
  warm+=(-n "wasmtime run (cache on)" "wasmtime run -C cache=y $work/hello.wasm world")
  cold+=(-n "wasmtime run (cache off: compiles)" "wasmtime run -C cache=n $work/hello.wasm world")
else
  echo "note: wasmtime not installed; skipping the peer (see the comment at the top)" >&2
fi
[ -n "$native" ] && warm+=(-n "native hello (same source)" "$native world")

RUNS=${RUNS:-200}
hyperfine -N --warmup 10 --runs "$RUNS" --style basic --export-json "$work/warm.json" "${warm[@]}" >/dev/null
# Cold: the compiled-module cache is emptied before every run.
hyperfine -N --warmup 2 --runs "$((RUNS / 10))" --style basic --export-json "$work/cold.json" \
  --prepare "rm -rf $WRUN_ROOT/cache/modules" "${cold[@]}" >/dev/null
python3 benches/summarize.py "$work/warm.json" "$work/cold.json"
