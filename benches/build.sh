#!/usr/bin/env bash
# Measures `wrun build` with RUN steps (issue 14): the overhead of one RUN
# step (a no-op: examples/fsh's `exit 0`, 1 step vs 11), a FROM scratch + 3
# COPY build (each with --no-cache so every step runs, and again from the
# layer cache), and Docker's tutorial app (examples/python/app) cold (empty
# store: the module is compiled by the RUN step), warm-compile (the module in
# the store's compile cache, --no-cache: every step run again) and warm layer
# cache (the same build again: every step from the cache). With DOCKER_HOST set to a
# dockerd, the same FROM scratch + COPY and RUN builds there (a static C
# no-op, the classic builder: DOCKER_BUILDKIT=0), cached and --no-cache.
# Needs: hyperfine, python3; gcc for the dockerd part.
# Usage: benches/build.sh [path/to/wrun]   (default: target/release/wrun)
set -euo pipefail
source "$(dirname "$0")/setup.sh"
runs=${RUNS:-10}

# A base holding fsh, and contexts with 1 and 11 no-op RUN steps.
base="$work/fsh-base"
mkdir -p "$base"
cp examples/fsh/fsh.wasm "$base/"
printf 'FROM scratch\nCOPY fsh.wasm /fsh.wasm\nENTRYPOINT ["/fsh.wasm"]\n' >"$base/Dockerfile"
"$WRUN" build -q -t bench-fsh:1 "$base" >/dev/null
for n in 1 11; do
  ctx="$work/run$n"
  mkdir -p "$ctx"
  {
    echo 'FROM bench-fsh:1'
    for _ in $(seq "$n"); do echo 'RUN ["/fsh.wasm", "exit", "0"]'; done
  } >"$ctx/Dockerfile"
done
# The module is compiled into the store's cache by the first RUN.
"$WRUN" build -q -t bench-run:1 "$work/run1" >/dev/null

echo "## wrun: RUN steps (a no-op module), FROM scratch + 3 COPY"
copy="$work/copy3"
mkdir -p "$copy"
cp examples/fsh/fsh.wasm "$copy/"
echo hello >"$copy/a.txt"
echo world >"$copy/b.txt"
printf 'FROM scratch\nCOPY fsh.wasm /fsh.wasm\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nENTRYPOINT ["/fsh.wasm"]\n' >"$copy/Dockerfile"
hyperfine -N --warmup 2 --runs "$runs" --style basic --export-json "$work/run.json" \
  "$WRUN build -q -t bench-run:1 --no-cache $work/run1" \
  "$WRUN build -q -t bench-run:11 --no-cache $work/run11" \
  "$WRUN build -q -t bench-copy:1 --no-cache $copy" \
  "$WRUN build -q -t bench-run:11 $work/run11" \
  "$WRUN build -q -t bench-copy:1 $copy" >/dev/null
python3 benches/summarize.py "$work/run.json"
python3 - "$work/run.json" <<'EOF'
import json, sys
r = {x["command"].split()[4]: x for x in json.load(open(sys.argv[1]))["results"][:2]}
one, eleven = r["bench-run:1"], r["bench-run:11"]
print(f"per RUN step: {(eleven['median'] - one['median']) / 10 * 1000:.1f} ms (median of 11 steps - median of 1, / 10)")
EOF

echo "## wrun: examples/python/app (FROM python-wasi:3, COPY, RUN python, ENTRYPOINT)"
cold_root="$work/cold"
hyperfine -N --runs "${COLD_RUNS:-3}" --style basic --export-json "$work/cold.json" \
  --prepare "sh -c 'rm -rf $cold_root && WRUN_ROOT=$cold_root WRUN=$WRUN examples/python/build-base -q >/dev/null'" \
  "env WRUN_ROOT=$cold_root $WRUN build -q -t python-app examples/python/app" >/dev/null
echo "cold (empty store, build-base done, the module not compiled):"
python3 benches/summarize.py "$work/cold.json"
WRUN=$WRUN examples/python/build-base -q >/dev/null
"$WRUN" build -q -t python-app examples/python/app >/dev/null
hyperfine -N --warmup 1 --runs "$runs" --style basic --export-json "$work/warm.json" \
  "$WRUN build -q -t python-app --no-cache examples/python/app" >/dev/null
echo "warm compile (the module cached; --no-cache: every step runs):"
python3 benches/summarize.py "$work/warm.json"
hyperfine -N --warmup 1 --runs "$runs" --style basic --export-json "$work/cached.json" \
  "$WRUN build -q -t python-app examples/python/app" >/dev/null
echo "warm layer cache (the same build again: every step from the cache):"
python3 benches/summarize.py "$work/cached.json"

if [[ -z ${DOCKER_HOST:-} ]]; then
  echo "(DOCKER_HOST unset: no dockerd comparison)"
  exit 0
fi
echo "## dockerd ($DOCKER_HOST), classic builder: FROM scratch + 3 COPY, RUN steps (a static C no-op)"
native="$work/native"
mkdir -p "$native"
printf 'int main(void) { return 0; }\n' >"$work/x.c"
gcc -static -O2 -o "$native/x" "$work/x.c"
echo hello >"$native/a.txt"
echo world >"$native/b.txt"
printf 'FROM scratch\nCOPY x /x\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nCMD ["/x"]\n' >"$native/Dockerfile"
for n in 1 11; do
  mkdir -p "$native/run$n"
  cp "$native/x" "$native/run$n/"
  {
    printf 'FROM scratch\nCOPY x /x\n'
    for _ in $(seq "$n"); do echo 'RUN ["/x"]'; done
  } >"$native/run$n/Dockerfile"
done
export DOCKER_BUILDKIT=0
hyperfine -N --warmup 1 --runs "${DOCKER_RUNS:-5}" --style basic --export-json "$work/docker.json" \
  "docker build -q -t bench-copy:1 $native" \
  "docker build -q --no-cache -t bench-copy:1 $native" \
  "docker build -q --no-cache -t bench-run:1 $native/run1" \
  "docker build -q --no-cache -t bench-run:11 $native/run11" >/dev/null 2>&1
python3 benches/summarize.py "$work/docker.json"
docker rmi -f bench-copy:1 bench-run:1 bench-run:11 >/dev/null
docker image prune -f >/dev/null
