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
PRESET=${PUSHGW_DEV_PRESET:-release}  # e.g. debug, to run a debug build
BIN=$ROOT/build/$PRESET
REDIS_PORT=${PUSHGW_DEV_REDIS_PORT:-6390}
keep=0

stop_group() {  # stop_group NAME...: SIGTERM, wait up to 20 s, then SIGKILL
  local pids=() names=() name pid f
  for name in "$@"; do
    f=$RUN/pids/$name.pid
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    rm -f "$f"
    kill -TERM "$pid" 2>/dev/null || continue
    pids+=("$pid")
    names+=("$name")
  done
  local i
  for i in "${!pids[@]}"; do
    for _ in $(seq 1 200); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "${names[$i]} did not stop within 20 s of SIGTERM: killed" >&2
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
  done
}

stop_all() {
  [ -d "$RUN/pids" ] || return 0
  # Clients of Kafka and Redis first (they commit offsets and unregister on
  # SIGTERM), then the infrastructure.
  stop_group push-api conn-node-1 conn-node-2
  stop_group router-normal router-marketing offline-router
  stop_group kafka redis
  for f in "$RUN"/pids/*.pid; do  # anything else left from an older layout
    [ -e "$f" ] || continue
    kill -KILL "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

case "${1:-}" in
  --keep) keep=1 ;;
  --stop) stop_all; echo "pushgw dev cluster stopped"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--keep | --stop]" >&2; exit 2 ;;
esac

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1/6 dependencies"
tools/install-deps.sh
echo "all Debian packages present"

step "2/6 build ($PRESET preset; the first build takes a while on 2 cores, later ones are incremental)"
export CCACHE_BASEDIR=$ROOT
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
cmake --preset "$PRESET" >/dev/null
TARGETS=(kafka-dev-broker conn-node online-router offline-router push-api pushctl pushgw-demo)
# Progress every 10 steps; a failed build stops here with the compiler's output.
set +e
cmake --build --preset "$PRESET" -j "$(nproc)" --target "${TARGETS[@]}" 2>&1 | tee "$ROOT/build/dev-cluster-build.log" |
  awk '/^\[[0-9]+\/[0-9]+\]/ { n++; if (n % 10 == 1) print; last = $0; next } { print } END { if (last) print last }'
build_rc=${PIPESTATUS[0]}
set -e
if [ "$build_rc" -ne 0 ]; then
  echo "build failed (full log: build/dev-cluster-build.log)" >&2
  exit 1
fi

stop_all
rm -rf "$RUN/data"
mkdir -p "$RUN/logs" "$RUN/pids" "$RUN/data" "$RUN/tls"
if [ "$keep" -eq 0 ]; then
  trap 'echo; step "stopping"; stop_all; echo "stopped"' EXIT
  trap 'exit 130' INT TERM
fi

start() {  # start NAME CMD...: background process with log and pid file
  local name=$1; shift
  # A subshell, so the process is not a job of this shell (no job messages).
  ( "$@" >"$RUN/logs/$name.log" 2>&1 &
    echo $! >"$RUN/pids/$name.pid" )
}

wait_for() {  # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what (logs: $RUN/logs/)" >&2
  tail -n 20 "$RUN"/logs/*.log >&2 || true
  exit 1
}

ready() { curl -sf "http://127.0.0.1:$1/readyz"; }

step "3/6 Redis and the Kafka dev broker"
start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$RUN/data"
wait_for "redis on port $REDIS_PORT" 10 redis-cli -p "$REDIS_PORT" ping
echo "redis           redis://127.0.0.1:$REDIS_PORT"
rm -f "$RUN/kafka.bootstrap"
TOPICS=pushgw.push.normal:8,pushgw.push.marketing:8,pushgw.fanout.normal:4,pushgw.fanout.marketing:4
TOPICS=$TOPICS,pushgw.offline:8,pushgw.presence:8,pushgw.acks:8
start kafka "$BIN/tools/kafka-dev-broker/kafka-dev-broker" --brokers 1 --topics "$TOPICS" \
  --bootstrap-file "$RUN/kafka.bootstrap"
wait_for "kafka dev broker" 20 test -s "$RUN/kafka.bootstrap"
echo "kafka           $(cat "$RUN/kafka.bootstrap")   (librdkafka mock cluster: in memory only)"

step "4/6 pushgw processes"
if [ ! -s "$RUN/tls/cert.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$RUN/tls/key.pem" -out "$RUN/tls/cert.pem" 2>/dev/null
fi
start offline-router "$BIN/offline-router/offline-router" --config deploy/local/offline-router.toml
start router-normal "$BIN/online-router/online-router" --config deploy/local/online-router-normal.toml
start router-marketing "$BIN/online-router/online-router" \
  --config deploy/local/online-router-marketing.toml
start conn-node-1 "$BIN/conn-node/conn-node" --config deploy/local/conn-node-1.toml
start conn-node-2 "$BIN/conn-node/conn-node" --config deploy/local/conn-node-2.toml
start push-api "$BIN/push-api/push-api" --config deploy/local/push-api.toml
for p in offline-router:9400 router-normal:9210 router-marketing:9211 conn-node-1:9200 \
  conn-node-2:9201 push-api:9300; do
  wait_for "${p%%:*} ready (admin port ${p##*:})" 60 ready "${p##*:}"
  printf '%-15s ready   admin http://127.0.0.1:%s/metrics   log .run/logs/%s.log\n' "${p%%:*}" \
    "${p##*:}" "${p%%:*}"
done
echo "push API        http://127.0.0.1:8080   (app 'demo', secrets in deploy/local/apps.toml)"
echo "conn-node-1     tcp 127.0.0.1:7000  tls :7443  ws :7080/ws  wss :7444/ws"
echo "conn-node-2     tcp 127.0.0.1:7100  tls :7543  ws :7180/ws  wss :7544/ws"

step "5/6 demo: simulated devices, pushes through the signed API"
demo_rc=0
"$BIN/tools/pushgw-demo/pushgw-demo" --api http://127.0.0.1:8080 --apps-file deploy/local/apps.toml \
  --app demo --devices "${PUSHGW_DEMO_DEVICES:-200}" --json "$RUN/demo.json" || demo_rc=$?

step "6/6 cluster view"
PUSHCTL=("$BIN/tools/pushctl/pushctl" --url http://127.0.0.1:8080 --app demo
  --secret demo-api-secret-change-me)
"${PUSHCTL[@]}" nodes || true

if [ "$keep" -eq 1 ]; then
  step "cluster left running"
  echo "try:  ${PUSHCTL[*]} push --device demo-dev-00000 --payload hi"
  echo "      ${PUSHCTL[*]} device demo-dev-00000"
  echo "      ${PUSHCTL[*]} token --device my-phone --apps-file deploy/local/apps.toml   # a device token"
  echo "logs  $RUN/logs/      stop with: tools/dev-cluster.sh --stop"
fi
if [ "$demo_rc" -ne 0 ]; then
  echo "demo FAILED (exit $demo_rc): see the table above and $RUN/logs/" >&2
  exit "$demo_rc"
fi
echo "demo passed: every accepted message arrived"
