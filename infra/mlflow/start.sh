#!/usr/bin/env bash
# Start an MLflow tracking server (tracking and model registry) on 127.0.0.1 for the feature
# store's MLflow tests and for trying `featurestore mlflow ...` locally: export
# MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT for the client.
#
# The server runs from its own venv (.mlflow-venv, installed by install.sh when missing: see there
# why), with a SQLite backend store and the artifacts (models) in a folder, both under
# MLFLOW_STATE. It serves the artifacts itself (--serve-artifacts, MLflow's default): clients
# upload and download models through it and need no access to the folder.
#
# Idempotent: if the server this script started is alive and answers, it returns at once; if the
# port already answers but not from this script's server, it says so and uses it. Unlike the
# Redis and PostgreSQL scripts, a restart keeps the runs and models (a tracking server's point);
# MLFLOW_WIPE=1 starts from an empty store.
#
# Knobs (environment):
#   MLFLOW_PORT           TCP port on 127.0.0.1                                default 15500
#   MLFLOW_STATE          mlflow.db, artifacts/, mlflow.log, mlflow.pid        default .mlflow/$MLFLOW_PORT at the repository root
#   MLFLOW_VENV           the server's venv (see install.sh)                   default .mlflow-venv at the repository root
#   MLFLOW_START_TIMEOUT  seconds to wait for the server to answer            default 120
#   MLFLOW_WIPE           1: delete MLFLOW_STATE's store and artifacts first   default 0
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PORT="${MLFLOW_PORT:-15500}"
STATE="${MLFLOW_STATE:-$REPO/.mlflow/$PORT}"
VENV="${MLFLOW_VENV:-$REPO/.mlflow-venv}"
TIMEOUT="${MLFLOW_START_TIMEOUT:-120}"
PIDFILE="$STATE/mlflow.pid"
LOG="$STATE/mlflow.log"
URL="http://127.0.0.1:$PORT"

# /health answers "OK" once the server (and its store's migrations) is up.
answers() { "$VENV/bin/python" - "$URL/health" <<'PY' 2>/dev/null
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
}

MLFLOW_VENV="$VENV" bash "$REPO/infra/mlflow/install.sh"

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && answers; then
    echo "mlflow: already running at $URL (pid $(cat "$PIDFILE"))"
    exit 0
fi
if answers; then
    echo "mlflow: port $PORT already answers but was not started by this script; using it" >&2
    exit 0
fi

if [ "${MLFLOW_WIPE:-0}" = 1 ]; then
    rm -rf "$STATE/mlflow.db" "$STATE/artifacts"
fi
mkdir -p "$STATE/artifacts"
started=$(date +%s)
# Its own session (setsid): stop.sh ends the server and the workers it forks as one process group.
# One worker: a test and a local trial need no more, and the machines have two cores.
# No job runner: its eight huey consumer processes serve GenAI evaluation jobs, which nothing here
# uses, and took most of the two cores while the server started.
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$VENV/bin/mlflow" server \
    --host 127.0.0.1 --port "$PORT" --workers 1 \
    --backend-store-uri "sqlite:///$STATE/mlflow.db" \
    --artifacts-destination "$STATE/artifacts" \
    >"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"

for _ in $(seq 1 $((TIMEOUT * 4))); do
    if answers; then
        echo "mlflow: running at $URL (pid $(cat "$PIDFILE"), $(($(date +%s) - started)) s; store $STATE)"
        exit 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "mlflow: the server exited before answering; log:" >&2
        tail -n 30 "$LOG" >&2 || true
        rm -f "$PIDFILE"
        exit 1
    fi
    sleep 0.25
done
echo "mlflow: did not answer at $URL within $TIMEOUT s; log:" >&2
tail -n 30 "$LOG" >&2 || true
exit 1
