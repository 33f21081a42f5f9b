#!/usr/bin/env bash
# Stop the Spark master and worker that start.sh started, by their pid files (nothing else).
# Same knobs as start.sh: SPARK_MASTER_PORT, SPARK_STATE.
set -euo pipefail

MASTER_PORT="${SPARK_MASTER_PORT:-7077}"
STATE="${SPARK_STATE:-/tmp/featurestore-spark-$MASTER_PORT}"

for role in worker master; do
    pidfile="$STATE/$role.pid"
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "spark: the $role (pid $pid) did not stop within 20 s; killing it" >&2
            kill -9 "$pid" 2>/dev/null || true
        fi
        echo "spark: stopped the $role (pid $pid)"
    fi
    rm -f "$pidfile"
done
