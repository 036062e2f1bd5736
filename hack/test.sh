#!/usr/bin/env bash
# The whole test suite: install what is missing, start the machine's dockerd if it is not
# running and make the busybox test image, build, run every Criterion binary (unit and
# integration: they start their own etcd and API servers on free loopback ports), then the
# same again under ASan+UBSan, then the fuzzers (stack files, LB settings, log batches) for a short while each
# (KONTENA_FUZZ_SECONDS, default 30; 0 skips it).
#   hack/test.sh            everything
#   hack/test.sh --quick    skip the sanitizer pass
#   hack/test.sh --asan     only the sanitizer pass
# Extra arguments after -- go to every test binary (e.g. -- --filter 'api/*').
set -euo pipefail
cd "$(dirname "$0")/.."

mode=all
case "${1:-}" in
  --quick) mode=quick; shift ;;
  --asan) mode=asan; shift ;;
esac
[ "${1:-}" = "--" ] && shift

hack/install-deps.sh
hack/dockerd.sh start
hack/test-image.sh

run_suite() {
  local dir=$1; shift
  local failed=() t
  for t in "$dir"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "=== $(basename "$t") ($dir)"
    if ! "$t" -S -j2 "$@"; then
      failed+=("$(basename "$t")")
    fi
  done
  if [ ${#failed[@]} -ne 0 ]; then
    echo "FAILED in $dir: ${failed[*]}" >&2
    return 1
  fi
  echo "all test binaries in $dir passed"
}

status=0
start=$(date +%s)
if [ "$mode" != asan ]; then
  hack/build.sh >/dev/null
  run_suite build "$@" || status=1
fi
if [ "$mode" != quick ]; then
  hack/build.sh --asan >/dev/null
  # Criterion forks each test; leaks are reported per test process.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite build-asan "$@" || status=1
fi
if [ "$mode" != quick ] && [ "${KONTENA_FUZZ_SECONDS:-30}" != 0 ] && [ -x hack/fuzz.sh ]; then
  echo "=== fuzzers (${KONTENA_FUZZ_SECONDS:-30} s each)"
  hack/fuzz.sh "${KONTENA_FUZZ_SECONDS:-30}" || status=1
fi
echo "test.sh: $([ $status -eq 0 ] && echo PASS || echo FAIL) in $(( $(date +%s) - start )) s"
exit $status
