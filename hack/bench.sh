#!/usr/bin/env bash
# Run every benchmark program (tests/bench/bench_*.c, built into <build>/tests/bench/) and
# print its figures. Benchmarks are not tests: nothing is asserted, the numbers are printed
# (each program states its target beside them).
#   hack/bench.sh                     build/ (built first with hack/build.sh)
#   hack/bench.sh --build-dir DIR     use DIR as it is (no build)
#   hack/bench.sh [...] -- ARGS       extra arguments for every benchmark
# Docker benchmarks start the machine's dockerd and make the test image first.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
if [ -z "$dir" ]; then
  hack/install-deps.sh >/dev/null
  dir=$(hack/build.sh | tail -n 1)
fi
[ -d "$dir/tests/bench" ] || { echo "bench.sh: no $dir/tests/bench (build first)" >&2; exit 1; }
hack/dockerd.sh start
hack/test-image.sh

status=0
ran=0
for b in "$dir"/tests/bench/bench_*; do
  [ -x "$b" ] || continue
  ran=$((ran + 1))
  echo "=== $(basename "$b")"
  start=$(date +%s)
  if ! "$b" "$@"; then
    echo "bench.sh: $(basename "$b") failed" >&2
    status=1
  fi
  echo "--- $(basename "$b"): $(($(date +%s) - start)) s"
done
[ $ran -gt 0 ] || { echo "bench.sh: no benchmark programs in $dir/tests/bench" >&2; exit 1; }
exit $status
