#!/usr/bin/env bash
# Start a Redis server on 127.0.0.1 for the feature store's tests and demos.
# Idempotent: if the server this script started is alive and answering, it returns at once.
# Installs Debian's redis-server when missing. Knobs: REDIS_PORT (default 6379), REDIS_STATE.
set -euo pipefail

PORT="${REDIS_PORT:-6379}"
STATE="${REDIS_STATE:-/tmp/featurestore-redis-$PORT}"
PIDFILE="$STATE/redis.pid"
mkdir -p "$STATE"

answers() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis: installing Debian's redis-server"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && answers; then
    echo "redis: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    exit 0
fi
if answers; then
    echo "redis: port $PORT already answers but was not started by this script; using it" >&2
    exit 0
fi

# No persistence: the online store is rebuilt by runs, and tests want a clean server.
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$PIDFILE" --logfile "$STATE/redis.log" --dir "$STATE"

for _ in $(seq 1 100); do
    if answers; then
        echo "redis: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
        exit 0
    fi
    sleep 0.1
done
echo "redis: did not answer on 127.0.0.1:$PORT within 10 s; log:" >&2
tail -n 20 "$STATE/redis.log" >&2 || true
exit 1
