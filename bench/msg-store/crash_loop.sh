#!/usr/bin/env bash
# SIGKILL the offline-router N times (default 100) at random points while it
# stores messages (a producer keeps writing during every run), checking after
# every kill that each message whose Kafka offset was committed is in the
# RocksDB store and that every store opens. It runs the integration test
# harness (OfflineRouterProcess) with a larger kill count, on copies of the
# binaries so that a rebuild during the loop does not disturb it.
#
#   bench/msg-store/crash_loop.sh [BUILD_DIR] [KILLS] [SEED]
set -euo pipefail
build="${1:-build/debug}"
kills="${2:-100}"
seed="${3:-$RANDOM}"
test_bin="$build/tests/integration/offline_router/integration_offline_router"
router_bin="$build/offline-router/offline-router"
for f in "$test_bin" "$router_bin"; do
  if [[ ! -x "$f" ]]; then
    echo "build it first: cmake --build $build --target integration_offline_router offline-router" >&2
    exit 2
  fi
done
copy="$(mktemp -d "${TMPDIR:-/tmp}/offline-crash-loop.XXXXXX")"
trap 'rm -rf "$copy"' EXIT
cp "$test_bin" "$router_bin" "$copy/"
echo "crash loop: $kills kills, seed $seed ($build)"
start=$(date +%s)
PUSHGW_CRASH_KILLS="$kills" PUSHGW_CRASH_SEED="$seed" \
  PUSHGW_OFFLINE_ROUTER_BIN="$copy/offline-router" \
  "$copy/integration_offline_router" \
  --gtest_filter='OfflineRouterProcess.CommittedMessagesSurviveSigkillAtRandomPoints'
echo "crash loop passed: $kills kills in $(( $(date +%s) - start )) s"
