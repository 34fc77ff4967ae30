#!/usr/bin/env bash
# Builds pushgw and runs its tests with CTest.
#   tools/test.sh                   # release build, every test (unit, integration, e2e)
#   tools/test.sh --preset asan-ubsan
#   tools/test.sh -L unit           # extra arguments go to ctest (labels: unit, integration, e2e)
set -euo pipefail
cd "$(dirname "$0")/.."

preset=release
if [ "${1:-}" = "--preset" ]; then preset=$2; shift 2; fi

tools/install-deps.sh
export CCACHE_BASEDIR=$PWD
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)" "$@"
