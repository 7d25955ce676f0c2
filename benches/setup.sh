# Sourced by the benchmark scripts: goes to the repository root, sets WRUN
# to the wrun binary to measure ($1, default target/release/wrun, built when
# missing) and gives a private store under a temp dir ($work) removed on exit.
cd "$(dirname "${BASH_SOURCE[1]}")/.."
WRUN=${1:-target/release/wrun}
[ -x "$WRUN" ] || cargo build --release --quiet
WRUN=$(realpath "$WRUN")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export WRUN_ROOT="$work/store"
