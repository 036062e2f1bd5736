#!/bin/sh
# hack/fuzz.sh [SECONDS] [TARGET...] -- fuzz the parsers that take outside input, each for
# SECONDS (default 30): the stack file reader (fuzz_stackfile), the KONTENA_LB_* checks
# (fuzz_lbenv) and the master's agent log batches and log window (fuzz_logbatch). No TARGET:
# all three.
#
# Builds tests/fuzz/<target>.c with clang's libFuzzer and ASan/UBSan, straight from the
# sources it needs (no CMake), into build-fuzz/, and runs it; fuzz_stackfile starts from the
# stack files of tests/stackfiles/. New interesting inputs are kept in
# build-fuzz/corpus-<target>/; a crash leaves build-fuzz/<target>-crash-* (or leak-*,
# timeout-*, oom-*) and makes this script exit non-zero. Reproduce one with:
# build-fuzz/<target> FILE
set -eu

secs=${1:-30}
[ $# -gt 0 ] && shift
targets=${*:-fuzz_stackfile fuzz_lbenv fuzz_logbatch}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build-fuzz
cc=${CLANG:-clang}
# shellcheck disable=SC2089 # the quotes around "fuzz" are meant literally: a C string
flags="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -fno-omit-frame-pointer -D_GNU_SOURCE -DKONTENA_VERSION=\"fuzz\" -I$root
  -Wall -Wextra -Wno-unused-parameter"
c=$root/common

mkdir -p "$out/seeds-fuzz_stackfile"
cp "$root"/tests/stackfiles/*.yml "$out/seeds-fuzz_stackfile/"

status=0
for t in $targets; do
  case "$t" in
    fuzz_stackfile)
      # common/*.c but httpmini.c (it needs libmicrohttpd; the CLI does not link it either)
      srcs="$root/cli/stackfile/*.c"
      for f in "$c"/*.c; do
        [ "$f" = "$c/httpmini.c" ] || srcs="$srcs $f"
      done
      libs="yaml-0.1 jansson libcurl openssl"
      maxlen=16384
      ;;
    fuzz_lbenv)
      srcs="$c/lbenv.c $c/buf.c $c/err.c $c/xmalloc.c"
      libs="jansson"
      maxlen=4096
      ;;
    fuzz_logbatch)
      srcs="$root/apiserver/logbatch.c $root/apiserver/logstore.c $c/buf.c $c/err.c
            $c/xmalloc.c $c/log.c $c/timeutil.c"
      libs="jansson"
      maxlen=65536
      ;;
    *)
      echo "fuzz.sh: unknown target '$t' (fuzz_stackfile, fuzz_lbenv, fuzz_logbatch)" >&2
      exit 2
      ;;
  esac
  echo "=== $t ($secs s)"
  mkdir -p "$out/corpus-$t" "$out/seeds-$t"
  # shellcheck disable=SC2046,SC2086,SC2090 # flags, sources and pkg-config output are meant to split
  "$cc" $flags "$root/tests/fuzz/$t.c" $srcs $(pkg-config --cflags --libs $libs) -lm -lpthread \
    -o "$out/$t"
  # -timeout: one input may not take longer than this (a hang is a finding too).
  # libFuzzer's progress goes to build-fuzz/<target>.log; its last lines are shown when it
  # fails, its final stats always.
  if (cd "$out" && "./$t" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$out/$t-" -print_final_stats=1 \
    "$out/corpus-$t" "$out/seeds-$t") > "$out/$t.log" 2>&1; then
    grep '^stat::\|^Done ' "$out/$t.log" || true
  else
    tail -n 60 "$out/$t.log"
    echo "fuzz.sh: $t FAILED (whole output: $out/$t.log)" >&2
    status=1
  fi
done
exit $status
