#!/usr/bin/env bash
# Configure and build. Usage: hack/build.sh [--asan] [extra cmake args]
#   default  -> build/       (-Werror, RelWithDebInfo)
#   --asan   -> build-asan/  (AddressSanitizer + UndefinedBehaviorSanitizer)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
args=(-DDEVELOPER=ON)
if [ "${1:-}" = "--asan" ]; then
  dir=build-asan
  args+=(-DSANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug)
  shift
fi
cmake -S . -B "$dir" "${args[@]}" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
echo "$dir"
