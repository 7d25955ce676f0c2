#!/usr/bin/env bash
# Measures `wrun hello.tar` end to end (warm cache and cold), side by side
# with `wasmtime run` (wasmtime-cli 48, its cache on) on the same module and
# the native build of the same program, in one hyperfine run.
#   cargo install wasmtime-cli --version 48.0.8 --locked   # the peer, once
# Then, when a dockerd answers (--docker-host unix:///PATH, else $DOCKER_HOST,
# else /var/run/docker.sock; skipped with a note when none does, an error when
# the one named by --docker-host does not), one more hyperfine run of the
# one-shot case: `wrun hello.tar` beside `docker run --rm` of the same hello
# source built statically (rustc, crt-static) and imported with `docker
# import`, and the same docker client against a `wrun daemon` (DOCKER_RUNS,
# default 40, runs each).
# Usage: benches/run.sh [--docker-host unix:///PATH] [path/to/wrun]
#        (default: target/release/wrun)
set -euo pipefail
docker_host=""
while [ $# -gt 0 ]; do
  case $1 in
    --docker-host)
      [ $# -ge 2 ] || { echo "run.sh: --docker-host needs a value, e.g. unix:///tmp/dk/docker.sock" >&2; exit 2; }
      docker_host=$2; shift 2 ;;
    --docker-host=*) docker_host=${1#*=}; shift ;;
    -*) echo "run.sh: unknown option $1 (usage: benches/run.sh [--docker-host unix:///PATH] [path/to/wrun])" >&2
        exit 2 ;;
    *) break ;;
  esac
done
source "$(dirname "$0")/setup.sh"

dh=${docker_host:-${DOCKER_HOST:-unix:///var/run/docker.sock}}
docker_image="" wrund_pid=""
cleanup() {
  if [ -n "$wrund_pid" ]; then
    kill "$wrund_pid" 2>/dev/null || true
    wait "$wrund_pid" 2>/dev/null || true
  fi
  if [ -n "$docker_image" ]; then
    # A `docker run --rm` cut short by Ctrl-C may leave its container.
    left=$(docker -H "$dh" ps -aq --filter "ancestor=$docker_image" 2>/dev/null || true)
    [ -z "$left" ] || docker -H "$dh" rm -f $left >/dev/null 2>&1 || true
    docker -H "$dh" rmi -f "$docker_image" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

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

# Docker Engine, when a dockerd answers.
docker_ver=""
if ! command -v docker >/dev/null; then
  [ -z "$docker_host" ] || { echo "run.sh: --docker-host given but the docker client is not installed" >&2; exit 1; }
  echo "note: the docker client is not installed; skipping Docker Engine" >&2
elif ! docker_ver=$(docker -H "$dh" version --format '{{.Server.Version}}' 2>/dev/null); then
  [ -z "$docker_host" ] || { echo "run.sh: no dockerd answers on $docker_host" >&2; exit 1; }
  echo "note: no dockerd answers on $dh; skipping Docker Engine (pass --docker-host unix:///PATH)" >&2
  docker_ver=""
fi
if [ -n "$docker_ver" ]; then
  mkdir "$work/docker-rootfs"
  rustc -O -C target-feature=+crt-static -C strip=symbols --edition 2024 \
    -o "$work/docker-rootfs/hello" examples/hello/src/main.rs
  docker_image="bench-hello:run-$$"
  tar --owner=0 --group=0 -C "$work/docker-rootfs" -c hello \
    | docker -H "$dh" import -c 'CMD ["/hello"]' - "$docker_image" >/dev/null
  # The docker client against wrun's own daemon, on a store of its own (so
  # the foreground cases above never go through it).
  WRUN_ROOT="$work/daemon-store" "$WRUN" load -i "$work/hello.tar" >/dev/null
  WRUN_ROOT="$work/daemon-store" "$WRUN" daemon --socket "$work/wrun.sock" \
    >"$work/daemon.log" 2>&1 </dev/null &
  wrund_pid=$!
  for _ in $(seq 100); do
    docker -H "unix://$work/wrun.sock" version >/dev/null 2>&1 && break
    kill -0 "$wrund_pid" 2>/dev/null || { echo "run.sh: wrun daemon exited: $(tail -c 300 "$work/daemon.log")" >&2; exit 1; }
    sleep 0.1
  done
  docker -H "$dh" run --rm --network none "$docker_image" >/dev/null
  docker_cmds=(-n "wrun hello.tar (warm cache)" "$WRUN $work/hello.tar"
               -n "docker run --rm, Docker Engine $docker_ver" "docker -H $dh run --rm --network none $docker_image"
               -n "docker run --rm, wrun daemon" "docker -H unix://$work/wrun.sock run --rm --network none hello:1.0")
fi

RUNS=${RUNS:-200}
hyperfine -N --warmup 10 --runs "$RUNS" --style basic --export-json "$work/warm.json" "${warm[@]}" >/dev/null
# Cold: the compiled-module cache is emptied before every run.
hyperfine -N --warmup 2 --runs "$((RUNS / 10))" --style basic --export-json "$work/cold.json" \
  --prepare "rm -rf $WRUN_ROOT/cache/modules" "${cold[@]}" >/dev/null
exports=("$work/warm.json" "$work/cold.json")
if [ -n "$docker_ver" ]; then
  hyperfine -N --warmup 3 --runs "${DOCKER_RUNS:-40}" --style basic --export-json "$work/docker.json" \
    "${docker_cmds[@]}" >/dev/null
  exports+=("$work/docker.json")
fi
python3 benches/summarize.py "${exports[@]}"
