#!/usr/bin/env bash
# Stop the PostgreSQL server started by start.sh, by the PID in its postmaster.pid. No error when
# it is not running. SIGINT first (PostgreSQL's "fast" shutdown: open sessions are ended, which
# SIGTERM's "smart" shutdown would wait for), SIGQUIT after POSTGRES_STOP_TIMEOUT seconds
# (immediate), SIGKILL last. Data and logs stay for a look; the next start wipes the data.
set -euo pipefail

PORT="${POSTGRES_PORT:-5432}"
STATE="${POSTGRES_STATE:-/tmp/featurestore-postgres-$PORT}"
DATA="$STATE/data"
PIDFILE="$DATA/postmaster.pid"
TIMEOUT="${POSTGRES_STOP_TIMEOUT:-30}"

if [ ! -f "$PIDFILE" ]; then
    echo "postgres: not running (no $PIDFILE)"
    exit 0
fi
PID="$(head -n 1 "$PIDFILE")"
# Only the postmaster of this data folder (a PID reused by another program is left alone).
if [ -z "$PID" ] || ! kill -0 "$PID" 2>/dev/null || [ "$(readlink "/proc/$PID/cwd" 2>/dev/null)" != "$DATA" ]; then
    echo "postgres: not running (stale $PIDFILE)"
    rm -f "$PIDFILE"
    exit 0
fi

gone() { ! kill -0 "$PID" 2>/dev/null; }
wait_gone() { # $1: tenths of a second
    for _ in $(seq 1 "$1"); do
        gone && return 0
        sleep 0.1
    done
    gone
}

kill -INT "$PID"
if ! wait_gone $((TIMEOUT * 10)); then
    echo "postgres: pid $PID still running after $TIMEOUT s; immediate shutdown (SIGQUIT)" >&2
    kill -QUIT "$PID" 2>/dev/null || true
    if ! wait_gone 50; then
        kill -KILL "$PID" 2>/dev/null || true
        wait_gone 50 || true
    fi
fi
rm -f "$PIDFILE" # the postmaster removes it itself, except after SIGKILL
echo "postgres: stopped (pid $PID)"
