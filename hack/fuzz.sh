#!/bin/sh
# hack/fuzz.sh [SECONDS] -- fuzz the stack file reader for SECONDS (default 30).
#
# Builds tests/fuzz/fuzz_stackfile.c with clang's libFuzzer and ASan/UBSan, straight from
# cli/stackfile/*.c and common/*.c (no CMake), into build-fuzz/, and runs it with the stack
# files of tests/stackfiles/ as the seed corpus. New interesting inputs are kept in
# build-fuzz/corpus/; a crash leaves build-fuzz/crash-* (or leak-*, timeout-*, oom-*) and
# makes this script exit non-zero. Reproduce one with: build-fuzz/fuzz_stackfile FILE
set -eu

secs=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build-fuzz
cc=${CLANG:-clang}

mkdir -p "$out/corpus" "$out/seeds"
cp "$root"/tests/stackfiles/*.yml "$out/seeds/"

# shellcheck disable=SC2046 # pkg-config output is meant to split
"$cc" -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer -D_GNU_SOURCE -DKONTENA_VERSION='"fuzz"' -I"$root" \
    -Wall -Wextra -Wno-unused-parameter \
    "$root"/tests/fuzz/fuzz_stackfile.c "$root"/cli/stackfile/*.c "$root"/common/*.c \
    $(pkg-config --cflags --libs yaml-0.1 jansson libcurl openssl) -lm -lpthread \
    -o "$out/fuzz_stackfile"

cd "$out"
# -timeout: one input may not take longer than this (a hang is a finding too).
exec ./fuzz_stackfile -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/" -print_final_stats=1 "$out/corpus" "$out/seeds"
