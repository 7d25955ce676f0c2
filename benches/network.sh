#!/usr/bin/env bash
# Issue 21's network benchmark: two instances on one user-defined network
# (wrun's in-process TCP, through the daemon) against two native processes
# over loopback TCP and two Docker containers on a bridge network (the
# oracle dockerd, dev/oracle). The server is the echo server of
# examples/echo-tcp (its .wasm for wrun, the same source built natively for
# the others); the client is benches/echo/client.rs (built for wasm32-wasip2
# for wrun, natively for the others). Three measures, each a run of its own:
#   connect  CONNECTS connections one after another: connect time p50/p99
#   pingpong SMALL-byte messages, one at a time: round trip p50/p99
#   bulk     BIG-byte writes, each echoed before the next: MiB/s echoed
# Then `docker-compose up -d` of a SERVICES-service file (the echo server
# in each, on its default port 7), timed against wrun's daemon and against
# dockerd, and `down`.
# Every contender takes its turn in each of ROUNDS rounds; medians reported.
#
# Usage: benches/network.sh [path/to/wrun]   (default: target/release/wrun)
# Env: ROUNDS (3), DURATION of a pingpong/bulk run in seconds (3), SMALL (64),
#      BIG (65536), CONNECTS (2000), SERVICES (10),
#      ORACLE: the dockerd socket (default unix:///tmp/wrun-oracle/docker.sock;
#      the Docker column is left out, with a line saying so, when it does
#      not answer). Needs rustup's wasm32-wasip2 target, docker, docker-compose.
#
# What it makes in the oracle dockerd is named for this run (xbench-PID...)
# and removed on any exit: the end, a failure, an interrupt (INT, TERM,
# HUP); a run killed outright is swept by the next run.
set -euo pipefail
source "$(dirname "$0")/setup.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}
SMALL=${SMALL:-64}
BIG=${BIG:-65536}
CONNECTS=${CONNECTS:-2000}
SERVICES=${SERVICES:-10}
ORACLE=${ORACLE:-unix:///tmp/wrun-oracle/docker.sock}
for tool in docker docker-compose; do
  command -v "$tool" >/dev/null || { echo "benches/network.sh: $tool is not installed" >&2; exit 1; }
done

# Builds: the client for the guest and the host, the echo server natively
# (static, for a Docker image with nothing else in it).
rustc -O --edition 2024 --target wasm32-wasip2 benches/echo/client.rs -o "$work/echo_client.wasm"
rustc -O --edition 2024 -C target-feature=+crt-static benches/echo/client.rs -o "$work/echo_client"
rustc -O --edition 2024 -C target-feature=+crt-static examples/echo-tcp/src/main.rs -o "$work/echo-native"
mkdir -p "$work/netbench"
cp "$work/echo_client.wasm" "$work/netbench/"
printf 'name = "netbench"\nmodule = "echo_client.wasm"\n' >"$work/netbench/wrun.toml"
"$WRUN" build -q -t netbench:1 "$work/netbench" >/dev/null
"$WRUN" build -q -t echo-tcp:1.0 examples/echo-tcp >/dev/null

results="$work/results.tsv"
: >"$results"

# --- Cleanup, set before anything is made. What this run makes in the
# oracle is named for it (xbench-PID, the compose project xbenchPID) and
# its containers and network carry the label wrun.bench.network=PID.
# Every step tolerates what is not there, so the cleanup runs whole
# wherever the script stopped; a second signal during it is ignored.
run=xbench-$$
label=wrun.bench.network=$$
dk() { DOCKER_HOST="$ORACLE" docker "$@"; }
docker_ok=0
dk version >/dev/null 2>&1 && docker_ok=1
oracle_sweep() { # PID: remove what run PID made in the oracle; say what is left
  local - r=xbench-$1 ids left
  set +e # each removal may find nothing to remove
  ids=$({ dk ps -aq --filter "label=wrun.bench.network=$1"
          dk ps -aq --filter "label=com.docker.compose.project=xbench$1"; } 2>/dev/null | sort -u)
  [ -z "$ids" ] || dk rm -f $ids >/dev/null 2>&1
  dk network rm "$r" "xbench${1}_default" >/dev/null 2>&1
  dk rmi "$r-echo:1" >/dev/null 2>&1
  left=$({ dk ps -aq --filter "label=wrun.bench.network=$1"
           dk network ls -q --filter "name=^$r\$" --filter "name=^xbench${1}_default\$"
           dk images -q "$r-echo"; } 2>/dev/null)
  [ -z "$left" ] || echo "benches/network.sh: still in $ORACLE after its cleanup: $left" >&2
}
daemon_pid='' native_pid=''
cleanup() {
  trap '' INT TERM HUP
  set +e
  [ -z "$daemon_pid" ] || { kill "$daemon_pid"; wait "$daemon_pid"; } >/dev/null 2>&1
  [ -z "$native_pid" ] || { kill "$native_pid"; wait "$native_pid"; } >/dev/null 2>&1
  [ "$docker_ok" = 0 ] || oracle_sweep $$
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# A run killed outright (SIGKILL) cleans nothing: its leftovers are swept
# here, by the PID in their names, once that process is gone.
if [ "$docker_ok" = 1 ]; then
  for pid in $({ dk network ls --format '{{.Name}}'; dk images --format '{{.Repository}}'; } 2>/dev/null |
               sed -nE 's/^xbench-?([0-9]+)(-echo|_default)?$/\1/p' | sort -u); do
    kill -0 "$pid" 2>/dev/null || oracle_sweep "$pid"
  done
fi

# --- wrun: a daemon of its own (its store under $work), the server and each
# client on network xbench.
sock="$work/wrun.sock"
"$WRUN" daemon --socket "$sock" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.05; done
wr() { WRUN_HOST="unix://$sock" "$WRUN" "$@"; }
wr network create xbench >/dev/null
wr run -d --network xbench --name echo echo-tcp:1.0 7 >/dev/null
wrun_client() { # NAME MODE ARGS...: one client instance on the network, its line
  local name=$1
  shift
  wr run -d --network xbench --name "$name" netbench:1 "$@" >/dev/null
  local code
  # A run that has not ended well past its length is reported, not waited for.
  code=$(timeout $((DURATION * 10 + 120)) env WRUN_HOST="unix://$sock" "$WRUN" wait "$name") || code="still running"
  [ "$code" = 0 ] || { echo "wrun client $* ended with: $code; its output: $(wr logs "$name" 2>&1)" >&2; exit 1; }
  wr logs "$name"
  wr rm "$name" >/dev/null
}

# --- native: the server on a loopback port.
native_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$work/echo-native" "$native_port" >/dev/null 2>&1 &
native_pid=$!
for _ in $(seq 200); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "$native_port" 2>/dev/null && break
  sleep 0.05
done

# --- Docker: both binaries in one image, the server and clients on a
# user-defined bridge network, the client given the server's address.
if [ "$docker_ok" = 1 ]; then
  mkdir -p "$work/rootfs"
  cp "$work/echo-native" "$work/echo_client" "$work/rootfs/"
  tar -C "$work/rootfs" -c . | dk import -c 'CMD ["/echo-native", "7"]' -c "LABEL $label" - "$run-echo:1" >/dev/null
  dk network create --label "$label" "$run" >/dev/null
  dk run -d --label "$label" --network "$run" --name "$run-echo" "$run-echo:1" >/dev/null
  docker_ip=$(dk inspect -f "{{(index .NetworkSettings.Networks \"$run\").IPAddress}}" "$run-echo")
else
  echo "benches/network.sh: no dockerd answers on $ORACLE (dev/oracle starts one): no Docker column" >&2
fi

measure() { # CONTENDER MODE ARGS (after ADDR)...
  local who=$1 mode=$2
  shift 2
  local line
  case $who in
    wrun)
      runs=$((runs + 1))
      line=$(wrun_client "client$runs" "$mode" echo:7 "$@")
      ;;
    native) line=$("$work/echo_client" "$mode" "127.0.0.1:$native_port" "$@") ;;
    docker) line=$(dk run --rm --label "$label" --network "$run" "$run-echo:1" /echo_client "$mode" "$docker_ip:7" "$@") ;;
  esac
  printf '%s\t%s\n' "$who" "$line" >>"$results"
}

runs=0
contenders=(wrun native)
[ "$docker_ok" = 1 ] && contenders+=(docker)
for round in $(seq "$ROUNDS"); do
  for who in "${contenders[@]}"; do
    measure "$who" connect "$CONNECTS"
    measure "$who" pingpong "$DURATION" "$SMALL"
    measure "$who" bulk "$DURATION" "$BIG"
  done
  echo "round $round of $ROUNDS done" >&2
done

# --- docker-compose up -d of SERVICES services, against each daemon.
compose_file="$work/compose.yml"
write_compose() { # IMAGE
  {
    echo 'version: "3.8"'
    echo 'services:'
    for i in $(seq "$SERVICES"); do
      printf '  s%d:\n    image: %s\n' "$i" "$1"
    done
  } >"$compose_file"
}
compose_up() { # CONTENDER HOST IMAGE
  write_compose "$3"
  local t0 t1
  t0=$(date +%s.%N)
  DOCKER_HOST=$2 docker-compose -p "${run//-/}" -f "$compose_file" up -d >/dev/null 2>&1
  t1=$(date +%s.%N)
  DOCKER_HOST=$2 docker-compose -p "${run//-/}" -f "$compose_file" down >/dev/null 2>&1
  printf '%s\tcompose\t%s\n' "$1" "$(python3 -c "print(f'{$t1 - $t0:.3f}')")" >>"$results"
}
for round in $(seq "$ROUNDS"); do
  compose_up wrun "unix://$sock" echo-tcp:1.0
  [ "$docker_ok" = 1 ] && compose_up docker "$ORACLE" "$run-echo:1"
done

python3 - "$results" "$SMALL" "$BIG" "$CONNECTS" "$SERVICES" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
small, big, connects, services = sys.argv[2:6]
who_name = {"wrun": "wrun, two instances on one network (in process)",
            "native": "two native processes, loopback TCP",
            "docker": "two Docker containers, bridge network"}
def med(who, mode, i):
    vals = [float(r[i]) for r in rows if r[0] == who and r[1] == mode and len(r) > i and r[i]]
    return statistics.median(vals) if vals else None
print(f"| | connect p50 | connect p99 | round trip p50 ({small} B) | round trip p99 | round trips/s | MiB/s echoed ({big} B writes) | compose up -d ({services} services) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for who in ("wrun", "native", "docker"):
    if not any(r[0] == who for r in rows):
        continue
    us = lambda v: f"{v:.1f} µs" if v is not None else "—"
    num = lambda v, f: format(v, f) if v is not None else "—"
    up = med(who, "compose", 2)
    print(f"| {who_name[who]} | {us(med(who, 'connect', 4))} | {us(med(who, 'connect', 5))} "
          f"| {us(med(who, 'pingpong', 4))} | {us(med(who, 'pingpong', 5))} | {num(med(who, 'pingpong', 2), ',.0f')} "
          f"| {num(med(who, 'bulk', 3), ',.1f')} | {num(up, '.2f') + ' s' if up is not None else '—'} |")
print(f"\n({connects} connections per connect run; medians of the rounds)")
PY
