#!/usr/bin/env bash
# Measures `wrun push` and `wrun pull` of a 50 MB image (a FROM scratch
# image: examples/fsh's module and a 50 MB layer of random bytes) against
# Debian's docker-registry on 127.0.0.1, beside skopeo copying the same
# image (`wrun save`'s oci-archive) to the same registry and back:
# `skopeo copy oci-archive:… docker://…` and `docker://… oci-archive:…`.
# Each push goes to a new repository (every blob is uploaded: skopeo's
# blob-info cache, which would mount the blobs from the last repository, is
# removed first); each pull goes into an empty store or a new archive
# (every blob is fetched). Prints
# hyperfine's medians (a loop of /usr/bin/time when hyperfine is missing)
# and the peak RSS of each (/usr/bin/time -f %M, median of 3).
# Needs: docker-registry, skopeo, python3, /usr/bin/time; hyperfine.
# Usage: benches/registry.sh [path/to/wrun]   (default: target/release/wrun)
set -euo pipefail
source "$(dirname "$0")/setup.sh"
runs=${RUNS:-5}
size_mb=${SIZE_MB:-50}

# The registry, on a port the kernel gives out now.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $reg
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -fs "http://$reg/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done

# The image, and the same image as an OCI archive for skopeo.
ctx="$work/ctx"
mkdir -p "$ctx"
cp examples/fsh/fsh.wasm "$ctx/"
head -c "$((size_mb * 1000 * 1000))" /dev/urandom >"$ctx/random.bin"
printf 'FROM scratch\nCOPY fsh.wasm /fsh.wasm\nCOPY random.bin /random.bin\nENTRYPOINT ["/fsh.wasm"]\n' >"$ctx/Dockerfile"
"$WRUN" build -q -t bench-reg:1 "$ctx" >/dev/null
"$WRUN" save -o "$work/image.tar" bench-reg:1
rm -rf "$ctx"
skopeo_flags=(--override-os wasip1 --override-arch wasm)

# A counter gives each push its own repository (and each pull its target).
echo 0 >"$work/n"
next='n=$(($(cat '"$work"'/n)+1)); echo $n >'"$work"'/n'
n='$(cat '"$work"'/n)'
"$WRUN" tag bench-reg:1 "$reg/bench/pulled:1"
"$WRUN" push -q "$reg/bench/pulled:1" >/dev/null

wrun_push="sh -c '$WRUN push -q $reg/bench/w$n:1 >/dev/null'"
wrun_push_prep="sh -c '$next; $WRUN tag bench-reg:1 $reg/bench/w\$n:1'"
skopeo_push="sh -c 'skopeo copy -q ${skopeo_flags[*]} --dest-tls-verify=false oci-archive:$work/image.tar docker://$reg/bench/s$n:1'"
# skopeo remembers where it pushed a blob (its blob-info cache) and mounts
# it from there into the next repository instead of uploading it: the cache
# is removed before each of its pushes, so that it uploads as wrun does.
skopeo_push_prep="sh -c '$next; rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb \$HOME/.local/share/containers/cache/blob-info-cache-v1.boltdb'"
wrun_pull="sh -c 'WRUN_ROOT=$work/pulled $WRUN pull -q $reg/bench/pulled:1 >/dev/null'"
wrun_pull_prep="rm -rf $work/pulled"
skopeo_pull="skopeo copy -q ${skopeo_flags[*]} --src-tls-verify=false docker://$reg/bench/pulled:1 oci-archive:$work/pulled.tar"
skopeo_pull_prep="rm -f $work/pulled.tar"

echo "## ${size_mb} MB image, registry on 127.0.0.1 (distribution $(docker-registry --version | awk '{print $3}')), skopeo $(skopeo --version | awk '{print $3}')"
if command -v hyperfine >/dev/null; then
  hyperfine -N --runs "$runs" --style basic --export-json "$work/push.json" \
    --prepare "$wrun_push_prep" "$wrun_push" \
    --prepare "$skopeo_push_prep" "$skopeo_push" >/dev/null
  hyperfine -N --runs "$runs" --style basic --export-json "$work/pull.json" \
    --prepare "$wrun_pull_prep" "$wrun_pull" \
    --prepare "$skopeo_pull_prep" "$skopeo_pull" >/dev/null
  python3 - "$work/push.json" "$work/pull.json" >"$work/times" <<'EOF'
import json, statistics, sys
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        print(statistics.median(r["times"]))
EOF
else
  # No hyperfine: the same commands, each timed by /usr/bin/time.
  for pair in "$wrun_push_prep|$wrun_push" "$skopeo_push_prep|$skopeo_push" \
    "$wrun_pull_prep|$wrun_pull" "$skopeo_pull_prep|$skopeo_pull"; do
    for _ in $(seq "$runs"); do
      sh -c "${pair%%|*}"
      /usr/bin/time -f %e -o "$work/t" sh -c "${pair#*|}"
      cat "$work/t"
    done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
  done >"$work/times"
fi

# Peak RSS: three more runs of each under /usr/bin/time.
for pair in "$wrun_push_prep|$wrun_push" "$skopeo_push_prep|$skopeo_push" \
  "$wrun_pull_prep|$wrun_pull" "$skopeo_pull_prep|$skopeo_pull"; do
  for _ in 1 2 3; do
    sh -c "${pair%%|*}"
    /usr/bin/time -f %M -o "$work/m" sh -c "${pair#*|}"
    cat "$work/m"
  done | sort -n | sed -n 2p
done >"$work/rss"

python3 - "$work/times" "$work/rss" <<'EOF'
import sys
t = [float(x) for x in open(sys.argv[1])]
m = [int(x) for x in open(sys.argv[2])]
print("| | wrun | skopeo | wrun / skopeo |")
print("| --- | ---: | ---: | ---: |")
for i, what in ((0, "push"), (2, "pull")):
    print(f"| {what}: median time | {t[i]*1e3:.0f} ms | {t[i+1]*1e3:.0f} ms | {t[i]/t[i+1]:.2f} |")
    print(f"| {what}: peak RSS | {m[i]/1024:.1f} MB | {m[i+1]/1024:.1f} MB | {m[i]/m[i+1]:.2f} |")
EOF
