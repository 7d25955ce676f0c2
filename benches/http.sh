#!/usr/bin/env bash
# Serverless HTTP throughput and latency: examples/hello-http served by
# `wrun run -p` (foreground, access log on, written to /dev/null) and by
# `wasmtime serve` (wasmtime-cli 48, -Scli for the guest's env import) on
# the same component, in the same run, under wrk at 1, 16 and 64
# connections. The two servers take turns for ROUNDS rounds; the report
# gives the medians.
#   apt-get install wrk                                       # the load tool (dev/setup installs it)
#   cargo install wasmtime-cli --version 48.0.8 --locked      # the peer, once
# Usage: benches/http.sh [path/to/wrun]   (default: target/release/wrun)
# Env: ROUNDS (default 3), DURATION of each wrk run (default 10s),
#      CONNECTIONS (default "1 16 64").
set -euo pipefail
source "$(dirname "$0")/setup.sh"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v wasmtime >/dev/null || { echo "wasmtime is not installed (see the top of this file)" >&2; exit 1; }

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-1 16 64}

"$WRUN" build -q -t hello-http:1.0 -o "$work/hello-http.tar" examples/hello-http >/dev/null
cp examples/hello-http/hello-http.wasm "$work/hello-http.wasm"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # url
  for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "server at $1 did not come up" >&2; exit 1
}

wrun_port=$(free_port)
"$WRUN" run -p "127.0.0.1:$wrun_port:80" --max-concurrency 128 "$work/hello-http.tar" \
  >/dev/null 2>/dev/null &
wrun_pid=$!
wasmtime_port=$(free_port)
wasmtime serve -Scli --addr "127.0.0.1:$wasmtime_port" "$work/hello-http.wasm" \
  >/dev/null 2>/dev/null &
wasmtime_pid=$!
trap 'kill $wrun_pid $wasmtime_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
wait_up "http://127.0.0.1:$wrun_port/"
wait_up "http://127.0.0.1:$wasmtime_port/"

results="$work/results.tsv"
for round in $(seq "$ROUNDS"); do
  for c in $CONNECTIONS; do
    threads=$(( c < 2 ? 1 : 2 ))
    for server in wrun wasmtime; do
      port_var="${server}_port"
      url="http://127.0.0.1:${!port_var}/bench"
      wrk -t "$threads" -c "$c" -d "$DURATION" --latency "$url" >"$work/wrk.txt"
      python3 - "$server" "$c" "$round" "$work/wrk.txt" >>"$results" <<'EOF'
import re, sys
text = open(sys.argv[4]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = int(errors.group(1)) if errors else 0
sock = re.search(r"Socket errors: (.*)", text)
print("\t".join([sys.argv[1], sys.argv[2], sys.argv[3], f"{rps:.0f}", f"{p50:.3f}", f"{p99:.3f}", str(errors), sock.group(1) if sock else ""]))
EOF
      echo "round $round, $c connections, $server: $(tail -1 "$results" | cut -f4-6)" >&2
    done
  done
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = {}
for server, c, _round, rps, p50, p99, errors, sock in rows:
    by.setdefault((int(c), server), []).append((float(rps), float(p50), float(p99), int(errors), sock))
print("| connections | server | requests/s | p50 | p99 | non-2xx | socket errors |")
print("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
for c in sorted({k[0] for k in by}):
    for server in ("wrun", "wasmtime"):
        runs = by.get((c, server), [])
        if not runs:
            continue
        med = lambda i: statistics.median(r[i] for r in runs)
        errs = sum(r[3] for r in runs)
        socks = "; ".join(sorted({r[4] for r in runs if r[4]})) or "none"
        name = "wrun run -p" if server == "wrun" else "wasmtime serve"
        print(f"| {c} | {name} | {med(0):,.0f} | {med(1):.3f} ms | {med(2):.3f} ms | {errs} | {socks} |")
print()
print("| connections | wrun/wasmtime requests/s | wasmtime/wrun p99 |")
print("| ---: | ---: | ---: |")
for c in sorted({k[0] for k in by}):
    w, m = by.get((c, "wrun")), by.get((c, "wasmtime"))
    if not (w and m):
        continue
    med = lambda runs, i: statistics.median(r[i] for r in runs)
    print(f"| {c} | {med(w, 0) / med(m, 0):.2f}x | {med(m, 2) / med(w, 2):.2f}x |")
EOF
