#!/bin/sh
# Gentle drain of a conn-node before it is stopped: POST /admin/drain (the
# node leaves dispatch, /readyz turns 503 and its links are redirected at
# drain.rate), then wait until no link is left or WAIT_S seconds passed.
# The SIGTERM that follows redirects whatever is left at drain.fast_rate.
#
# Used as the Kubernetes preStop hook (deploy/k8s/conn-node.yaml) and usable
# by hand or as a systemd ExecStop (deploy/systemd/README.md).
#   conn-node-drain.sh [ADMIN_HOST:PORT] [WAIT_S]      (defaults 127.0.0.1:9200 60)
# Needs curl. Always exits 0: a failed drain must not block the stop.
admin=${1:-127.0.0.1:9200}
wait_s=${2:-60}

if ! curl -fsS -m 5 -X POST "http://$admin/admin/drain" >/dev/null 2>&1; then
  echo "conn-node-drain: POST http://$admin/admin/drain failed; SIGTERM will drain" >&2
  exit 0
fi
# Give the node time to start redirecting (it first marks itself draining).
sleep 2
elapsed=2
while [ "$elapsed" -lt "$wait_s" ]; do
  links=$(curl -fsS -m 5 "http://$admin/metrics" 2>/dev/null |
    awk '/^pushgw_conn_links[{ ]/ { n += $NF } END { printf "%d", n }')
  [ -z "$links" ] && break
  [ "$links" -eq 0 ] && { echo "conn-node-drain: no links left after ${elapsed}s"; exit 0; }
  sleep 2
  elapsed=$((elapsed + 2))
done
echo "conn-node-drain: ${links:-?} links left after ${elapsed}s; SIGTERM drains the rest"
exit 0
