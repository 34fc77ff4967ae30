#!/usr/bin/env bash
# Builds pushgw and runs its tests with CTest.
#   tools/test.sh                   # ASan+UBSan build, every test (unit, integration, e2e)
#   tools/test.sh --preset release  # optimised build instead (also: debug, tsan)
#   tools/test.sh -L unit           # extra arguments go to ctest (labels: unit, integration, e2e)
# The default runs the tests under AddressSanitizer and UndefinedBehaviorSanitizer:
# one build that is both the test run and the sanitizer run (CI uses it as is).
set -euo pipefail
cd "$(dirname "$0")/.."

preset=asan-ubsan
if [ "${1:-}" = "--preset" ]; then preset=$2; shift 2; fi

tools/install-deps.sh
export CCACHE_BASEDIR=$PWD
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)" "$@"
