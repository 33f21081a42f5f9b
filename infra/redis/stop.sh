#!/usr/bin/env bash
# Stop the Redis server started by start.sh (by its PID). No error when it is not running.
set -euo pipefail

PORT="${REDIS_PORT:-6379}"
STATE="${REDIS_STATE:-/tmp/featurestore-redis-$PORT}"
PIDFILE="$STATE/redis.pid"

if [ ! -f "$PIDFILE" ]; then
    echo "redis: not running (no $PIDFILE)"
    exit 0
fi
PID="$(cat "$PIDFILE")"
if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    for _ in $(seq 1 100); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$PID" 2>/dev/null && kill -KILL "$PID"
    echo "redis: stopped (pid $PID)"
fi
rm -f "$PIDFILE"
