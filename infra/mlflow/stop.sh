#!/usr/bin/env bash
# Stop the MLflow server started by start.sh: its process group (the server and its workers), by
# the PID start.sh recorded. No error when it is not running. Keeps the store and the artifacts.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PORT="${MLFLOW_PORT:-15500}"
STATE="${MLFLOW_STATE:-$REPO/.mlflow/$PORT}"
PIDFILE="$STATE/mlflow.pid"

if [ ! -f "$PIDFILE" ]; then
    echo "mlflow: not running (no $PIDFILE)"
    exit 0
fi
PID="$(cat "$PIDFILE")"
if kill -0 "$PID" 2>/dev/null; then
    # start.sh ran it with setsid: its PID is its process group's id.
    kill -TERM -- "-$PID" 2>/dev/null || kill -TERM "$PID"
    for _ in $(seq 1 100); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$PID" 2>/dev/null && kill -KILL -- "-$PID" 2>/dev/null
    echo "mlflow: stopped (pid $PID)"
fi
rm -f "$PIDFILE"
