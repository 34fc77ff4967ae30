#!/usr/bin/env bash
# SIGKILL the offline-router N times (default 100) at random points while it
# stores messages, checking after every kill that each message whose Kafka
# offset was committed is in the RocksDB store and that every store opens.
# It runs the integration test harness with a larger kill count.
#
#   bench/msg-store/crash_loop.sh [BUILD_DIR] [KILLS] [SEED]
set -euo pipefail
build="${1:-build/debug}"
kills="${2:-100}"
seed="${3:-$RANDOM}"
bin="$build/tests/integration/offline_router/integration_offline_router"
if [[ ! -x "$bin" ]]; then
  echo "build it first: cmake --build $build --target integration_offline_router" >&2
  exit 2
fi
echo "crash loop: $kills kills, seed $seed"
PUSHGW_CRASH_KILLS="$kills" PUSHGW_CRASH_SEED="$seed" \
  "$bin" --gtest_filter='OfflineRouterProcess.CommittedMessagesSurviveSigkillAtRandomPoints'
