#!/usr/bin/env bash
# Stop the Redis Cluster nodes started by start-cluster.sh (by their PID files). No error when
# none runs. Same knobs as start-cluster.sh: REDIS_CLUSTER_PORT, REDIS_CLUSTER_NODES, REDIS_CLUSTER_STATE.
set -euo pipefail

BASE="${REDIS_CLUSTER_PORT:-17100}"
NODES="${REDIS_CLUSTER_NODES:-3}"
STATE="${REDIS_CLUSTER_STATE:-/tmp/featurestore-redis-cluster-$BASE}"

if [ "${REDIS_CLUSTER_LOCK_HELD:-}" != 1 ] && [ -d "$STATE" ]; then # not when start-cluster.sh runs it
    exec 9>"$STATE/lock"
    flock -w 120 9 || echo "redis-cluster: $STATE/lock still held after 120 s; stopping anyway" >&2
fi

pids=()
for i in $(seq 0 $((NODES - 1))); do
    pidfile="$STATE/$((BASE + i)).pid"
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        pids+=("$pid")
    fi
    rm -f "$pidfile"
done
if [ "${#pids[@]}" = 0 ]; then
    echo "redis-cluster: not running (no live PID files in $STATE)"
    exit 0
fi
for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
    if [ "$alive" = 0 ]; then break; fi
    sleep 0.1
done
for pid in "${pids[@]}"; do if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi; done
echo "redis-cluster: stopped (pids ${pids[*]})"
