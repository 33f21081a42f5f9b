#!/usr/bin/env bash
# Start a Redis Cluster on 127.0.0.1 for the feature store's tests and demos: REDIS_CLUSTER_NODES
# primaries (default 3, no replicas) on ports REDIS_CLUSTER_PORT.. (default 17100..17102; each
# node also listens on its port + 10000 for the cluster bus), from Debian's redis-server.
# Idempotent: if its nodes answer and the cluster's state is ok, it returns at once. A fresh start
# wipes the nodes' cluster configuration and creates the cluster anew (no persistence: empty).
# Safe to run from several test sessions at once: starts and stops hold $STATE/lock, so a second
# caller waits for the first one's cluster and then uses it.
# Knobs: REDIS_CLUSTER_PORT, REDIS_CLUSTER_NODES, REDIS_CLUSTER_STATE, REDIS_CLUSTER_START_TIMEOUT.
set -euo pipefail

BASE="${REDIS_CLUSTER_PORT:-17100}"
NODES="${REDIS_CLUSTER_NODES:-3}"
STATE="${REDIS_CLUSTER_STATE:-/tmp/featurestore-redis-cluster-$BASE}"
TIMEOUT="${REDIS_CLUSTER_START_TIMEOUT:-30}"
PORTS=()
for i in $(seq 0 $((NODES - 1))); do PORTS+=($((BASE + i))); done
mkdir -p "$STATE"
exec 9>"$STATE/lock"
if ! flock -w $((TIMEOUT + 30)) 9; then
    echo "redis-cluster: another start or stop still holds $STATE/lock after $((TIMEOUT + 30)) s" >&2
    exit 1
fi
started_at="$(date +%s.%N)"
export REDIS_CLUSTER_LOCK_HELD=1 # for stop-cluster.sh, run below while this script holds the lock

if [ "$NODES" -lt 3 ]; then
    echo "redis-cluster: REDIS_CLUSTER_NODES=$NODES, but a cluster needs at least 3 primaries" >&2
    exit 1
fi

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}" 2>/dev/null; }
answers() { cli "$1" ping | grep -q PONG; }
cluster_ok() { # every node answers, knows all nodes and serves all slots
    local port info
    for port in "${PORTS[@]}"; do
        info="$(cli "$port" cluster info)" || return 1
        grep -q '^cluster_state:ok' <<<"$info" || return 1
        grep -q "^cluster_known_nodes:$NODES" <<<"$info" || return 1
        grep -q '^cluster_slots_assigned:16384' <<<"$info" || return 1
    done
}
ours() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
elapsed() { awk -v a="$started_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
fail() {
    echo "redis-cluster: $1; end of the node logs:" >&2
    for port in "${PORTS[@]}"; do
        echo "--- $STATE/$port.log" >&2
        tail -n 10 "$STATE/$port.log" >&2 || true
    done
    bash "$(dirname "$0")/stop-cluster.sh" >&2 || true
    exit 1
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis-cluster: installing Debian's redis-server"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

if cluster_ok; then
    all_ours=1
    for port in "${PORTS[@]}"; do ours "$port" || all_ours=0; done
    if [ "$all_ours" = 1 ]; then
        echo "redis-cluster: already running on 127.0.0.1:${PORTS[0]}..${PORTS[-1]}"
    else
        echo "redis-cluster: ports ${PORTS[0]}..${PORTS[-1]} already serve a cluster not started by this script; using it" >&2
    fi
    exit 0
fi

# Not a healthy cluster: stop what this script started earlier, refuse ports others use.
bash "$(dirname "$0")/stop-cluster.sh" >/dev/null
for port in "${PORTS[@]}"; do
    if answers "$port"; then
        echo "redis-cluster: port $port already answers but is not a node of a healthy cluster started by this script; stop it or set REDIS_CLUSTER_PORT" >&2
        exit 1
    fi
done

for port in "${PORTS[@]}"; do
    # No persistence: the online store is rebuilt by runs, and tests want an empty cluster. The
    # cluster configuration (nodes-<port>.conf) is wiped too, so the cluster is created anew.
    rm -f "$STATE/nodes-$port.conf"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
        --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 5000 \
        --pidfile "$STATE/$port.pid" --logfile "$STATE/$port.log" --dir "$STATE" 9>&- # not the lock
done

for _ in $(seq 1 100); do
    up=1
    for port in "${PORTS[@]}"; do answers "$port" || up=0; done
    [ "$up" = 1 ] && break
    sleep 0.1
done
[ "$up" = 1 ] || fail "not every node answered within 10 s"

addresses=()
for port in "${PORTS[@]}"; do addresses+=("127.0.0.1:$port"); done
# redis-cli waits for the nodes to agree with no time limit of its own (forever if one dies).
if ! timeout "$TIMEOUT" redis-cli --cluster create "${addresses[@]}" --cluster-replicas 0 --cluster-yes \
    >"$STATE/create.log" 2>&1; then
    cat "$STATE/create.log" >&2
    fail "redis-cli --cluster create failed or took more than $TIMEOUT s"
fi

deadline=$(($(date +%s) + TIMEOUT))
until cluster_ok; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "cluster_state did not become ok on every node within $TIMEOUT s"
    sleep 0.05
done
echo "redis-cluster: running on 127.0.0.1:${PORTS[0]}..${PORTS[-1]} ($NODES primaries), ready in $(elapsed) s"
