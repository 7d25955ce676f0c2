#!/usr/bin/env bash
# echo-tcp throughput with 1 KiB messages: examples/echo-tcp run by
# `wrun run -p` (foreground, the published-port path), by `wasmtime run
# -Sinherit-network` (wasmtime-cli 48, all network) on the same .wasm, and
# the same Rust source built natively, each driven over 127.0.0.1 by one
# connection of benches/echo/client.rs: ping-pong (send 1 KiB, wait for it)
# and stream (send without waiting, read the echo). The three servers take
# turns for ROUNDS rounds; the report gives the medians.
#   cargo install wasmtime-cli --version 48.0.8 --locked      # the peer, once
# Usage: benches/echo_tcp.sh [path/to/wrun]   (default: target/release/wrun)
# Env: ROUNDS (default 5), DURATION of each run in seconds (default 5), SIZE (default 1024).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
command -v wasmtime >/dev/null || { echo "wasmtime is not installed (see the top of this file)" >&2; exit 1; }

ROUNDS=${ROUNDS:-5}
SECONDS_EACH=${DURATION:-5}
SIZE=${SIZE:-1024}

rustc -O --edition 2024 benches/echo/client.rs -o "$work/echo_client"
rustc -O --edition 2024 examples/echo-tcp/src/main.rs -o "$work/echo-native"
"$WRUN" build -q -t echo-tcp:1.0 examples/echo-tcp >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # port
  for _ in $(seq 200); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server on port $1 did not come up" >&2; exit 1
}

# A connection that only checks the server is up is served (and ended)
# before the measured one: the servers take connections one at a time.
wrun_port=$(free_port)
"$WRUN" run -p "127.0.0.1:$wrun_port:7" echo-tcp:1.0 >/dev/null 2>&1 &
wrun_pid=$!
wasmtime_port=$(free_port)
wasmtime run -Sinherit-network=y -Stcp=y examples/echo-tcp/echo-tcp.wasm "$wasmtime_port" >/dev/null 2>&1 &
wasmtime_pid=$!
native_port=$(free_port)
"$work/echo-native" "$native_port" >/dev/null 2>&1 &
native_pid=$!
trap 'kill $wrun_pid $wasmtime_pid $native_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
wait_up "$wrun_port"; wait_up "$wasmtime_port"; wait_up "$native_port"

results="$work/results.tsv"
for round in $(seq "$ROUNDS"); do
  for mode in pingpong stream; do
    for server in wrun wasmtime native; do
      port_var="${server}_port"
      printf '%s\t' "$server" >>"$results"
      "$work/echo_client" "$mode" "127.0.0.1:${!port_var}" "$SECONDS_EACH" "$SIZE" >>"$results"
    done
  done
done

python3 - "$results" "$SIZE" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print(f"| server | mode | messages/s | MiB/s | p50 round trip | p99 round trip |  ({sys.argv[2]}-byte messages, medians)")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for mode in ("pingpong", "stream"):
    for server in ("wrun", "wasmtime", "native"):
        rs = [r for r in rows if r[0] == server and r[1] == mode]
        med = lambda i: statistics.median(float(r[i]) for r in rs) if rs and rs[0][i] else None
        lat = lambda v: f"{v:.1f} µs" if v is not None else "—"
        print(f"| {server} | {mode} | {med(2):,.0f} | {med(3):.1f} | {lat(med(4))} | {lat(med(5))} |")
PY
