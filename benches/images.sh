#!/usr/bin/env bash
# Measures the image commands: build of examples/hello (hyperfine), and
# build/save/load of a 200 MB image (wall time and peak RSS from
# /usr/bin/time -v). Needs: hyperfine, GNU time (dev/setup installs both).
# Usage: benches/images.sh [path/to/wrun]   (default: target/release/wrun)
set -euo pipefail
source "$(dirname "$0")/setup.sh"

echo "## wrun build examples/hello (warm store)"
"$WRUN" build -q -t hello:1.0 examples/hello >/dev/null
hyperfine -N --warmup 3 --runs 30 --style basic --export-json "$work/build.json" \
  "$WRUN build -q -t hello:1.0 examples/hello" \
  "$WRUN build -q -t hello:1.0 -o $work/hello.tar examples/hello" >/dev/null
python3 benches/summarize.py "$work/build.json"

echo "## 200 MB image (one 200 MB incompressible file + hello.wasm)"
ctx="$work/big"
mkdir -p "$ctx"
cp examples/hello/hello.wasm "$ctx/"
head -c 200000000 /dev/urandom >"$ctx/blob.bin"
printf 'name = "big"\nmodule = "hello.wasm"\n[[copy]]\nsrc = "blob.bin"\ndest = "/data/blob.bin"\n' >"$ctx/wrun.toml"
measure() { # label, command...
  local label=$1 out
  shift
  out=$( { /usr/bin/time -v "$@" >/dev/null; } 2>&1 )
  printf '%-8s wall %s  peak RSS %s kB\n' "$label" \
    "$(grep -F 'Elapsed (wall clock)' <<<"$out" | awk '{print $NF}')" \
    "$(grep -F 'Maximum resident set size' <<<"$out" | awk '{print $NF}')"
}
for i in 1 2 3; do
  rm -rf "$WRUN_ROOT"
  measure build "$WRUN" build -q -t big:1 "$ctx"
  measure save "$WRUN" save -o "$work/big.tar" big:1
  rm -rf "$WRUN_ROOT"
  measure load "$WRUN" load -q -i "$work/big.tar"
done
