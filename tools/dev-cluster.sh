#!/usr/bin/env bash
# Brings up a pushgw cluster on this one box and shows it working.
#
#   tools/dev-cluster.sh            # start, demo, stop everything on exit (or Ctrl-C)
#   tools/dev-cluster.sh --keep     # leave the cluster running; prints endpoints
#   tools/dev-cluster.sh --stop     # stop a cluster left running with --keep
#
# Installs missing Debian packages (tools/install-deps.sh), builds the release
# preset, then starts every process under .run/ (logs in .run/logs/). Kafka is
# librdkafka's mock cluster (tools/kafka-dev-broker): in memory only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=$ROOT/.run
BIN=$ROOT/build/release
REDIS_PORT=${PUSHGW_DEV_REDIS_PORT:-6390}
keep=0

stop_all() {
  if [ -d "$RUN/pids" ]; then
    for f in "$RUN"/pids/*.pid; do
      [ -e "$f" ] || continue
      pid=$(cat "$f")
      kill -TERM "$pid" 2>/dev/null || true
    done
    for f in "$RUN"/pids/*.pid; do
      [ -e "$f" ] || continue
      pid=$(cat "$f")
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$f"
    done
  fi
}

case "${1:-}" in
  --keep) keep=1 ;;
  --stop) stop_all; echo "pushgw dev cluster stopped"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--keep | --stop]" >&2; exit 2 ;;
esac

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1/5 dependencies"
tools/install-deps.sh
echo "all Debian packages present"

step "2/5 build (release preset; the first build takes several minutes on 2 cores)"
export CCACHE_BASEDIR=$ROOT
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target kafka-dev-broker pushgw-check bench_status_store \
  | grep -E '^\[[0-9]+/[0-9]+\]' | awk 'NR % 10 == 1 {print} END {print}' || true

stop_all
mkdir -p "$RUN/logs" "$RUN/pids" "$RUN/data"
if [ "$keep" -eq 0 ]; then
  trap 'echo; step "stopping"; stop_all; echo "stopped"' EXIT
  trap 'exit 130' INT TERM
fi

start() {  # start NAME CMD...: background process with log and pid file
  local name=$1; shift
  "$@" >"$RUN/logs/$name.log" 2>&1 &
  echo $! >"$RUN/pids/$name.pid"
}

wait_for() {  # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what (logs: $RUN/logs/)" >&2
  exit 1
}

step "3/5 start Redis and the Kafka dev broker"
start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$RUN/data"
wait_for "redis on port $REDIS_PORT" 10 redis-cli -p "$REDIS_PORT" ping
echo "redis      redis://127.0.0.1:$REDIS_PORT"
rm -f "$RUN/kafka.bootstrap"
TOPICS=pushgw.push.normal:8,pushgw.push.marketing:8,pushgw.fanout.normal:4,pushgw.fanout.marketing:4
TOPICS=$TOPICS,pushgw.offline:8,pushgw.presence:8,pushgw.acks:8
start kafka "$BIN/tools/kafka-dev-broker/kafka-dev-broker" --brokers 1 --topics "$TOPICS" \
  --bootstrap-file "$RUN/kafka.bootstrap"
wait_for "kafka dev broker" 20 test -s "$RUN/kafka.bootstrap"
echo "kafka      $(cat "$RUN/kafka.bootstrap")   (librdkafka mock cluster: in memory only)"

step "4/5 check the status store and the bus end to end"
"$BIN/tools/pushgw-check/pushgw-check" --redis "redis://127.0.0.1:$REDIS_PORT" \
  --kafka-bootstrap-file "$RUN/kafka.bootstrap"

step "5/5 status-store throughput (pipelined batch lookups, 3 s per batch size)"
"$BIN/bench/status-store/bench_status_store" --redis "redis://127.0.0.1:$REDIS_PORT" \
  --devices 20000 --batch 100,1000 --seconds 3

if [ "$keep" -eq 1 ]; then
  step "cluster left running"
  echo "redis      redis://127.0.0.1:$REDIS_PORT"
  echo "kafka      $(cat "$RUN/kafka.bootstrap")"
  echo "logs       $RUN/logs/"
  echo "stop with  tools/dev-cluster.sh --stop"
fi
