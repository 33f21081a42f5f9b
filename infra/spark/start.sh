#!/usr/bin/env bash
# Start a Spark standalone cluster on 127.0.0.1: one master and one worker, from the pyspark
# installed in the project's venv (its bin/spark-class), with pid files, for the Spark engine's
# tests and demos. Idempotent: if the master and worker this script started are alive and the
# worker is registered, it returns at once. Returns once the master's UI answers and lists an
# alive worker. Knobs: SPARK_MASTER_PORT (7077), SPARK_MASTER_WEBUI_PORT (8080),
# SPARK_WORKER_WEBUI_PORT (8081), SPARK_WORKER_CORES (2), SPARK_WORKER_MEMORY (2g), SPARK_STATE,
# PYTHON (the venv's python). Stop with stop.sh beside this file.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
MASTER_PORT="${SPARK_MASTER_PORT:-7077}"
MASTER_UI="${SPARK_MASTER_WEBUI_PORT:-8080}"
WORKER_UI="${SPARK_WORKER_WEBUI_PORT:-8081}"
WORKER_CORES="${SPARK_WORKER_CORES:-2}"
WORKER_MEMORY="${SPARK_WORKER_MEMORY:-2g}"
STATE="${SPARK_STATE:-/tmp/featurestore-spark-$MASTER_PORT}"
mkdir -p "$STATE/work"

SPARK_HOME="$("$PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null)" || {
    echo "spark: pyspark is not installed for $PYTHON; run 'make install' (the dev extra has it)" >&2
    exit 1
}
export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$STATE" SPARK_WORKER_DIR="$STATE/work"
# Executors run the venv's Python, which has the project installed.
export PYSPARK_PYTHON="$PYTHON"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Alive workers the master lists (its UI's JSON), or nothing when the master does not answer.
alive_workers() {
    "$PYTHON" - "$MASTER_UI" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=2) as r:
    print(json.load(r).get("aliveworkers", 0))
PY
}

if alive "$STATE/master.pid" && alive "$STATE/worker.pid" && [ "$(alive_workers || echo 0)" -ge 1 ]; then
    echo "spark: already running: spark://127.0.0.1:$MASTER_PORT (master pid $(cat "$STATE/master.pid"), worker pid $(cat "$STATE/worker.pid"))"
    exit 0
fi
if ! alive "$STATE/master.pid" && [ -n "$(alive_workers || true)" ]; then
    echo "spark: a master already answers on 127.0.0.1:$MASTER_UI but was not started by this script; using it" >&2
    exit 0
fi

if ! alive "$STATE/master.pid"; then
    nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
        --host 127.0.0.1 --port "$MASTER_PORT" --webui-port "$MASTER_UI" \
        >"$STATE/master.log" 2>&1 </dev/null &
    echo $! >"$STATE/master.pid"
fi
if ! alive "$STATE/worker.pid"; then
    nohup "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
        --host 127.0.0.1 --cores "$WORKER_CORES" --memory "$WORKER_MEMORY" --webui-port "$WORKER_UI" \
        --work-dir "$STATE/work" "spark://127.0.0.1:$MASTER_PORT" \
        >"$STATE/worker.log" 2>&1 </dev/null &
    echo $! >"$STATE/worker.pid"
fi

for _ in $(seq 1 180); do
    if [ "$(alive_workers || echo 0)" -ge 1 ]; then
        echo "spark: running: spark://127.0.0.1:$MASTER_PORT, UI http://127.0.0.1:$MASTER_UI (master pid $(cat "$STATE/master.pid"), worker pid $(cat "$STATE/worker.pid"))"
        exit 0
    fi
    for role in master worker; do
        if ! alive "$STATE/$role.pid"; then
            echo "spark: the $role exited; its log:" >&2
            tail -n 30 "$STATE/$role.log" >&2 || true
            exit 1
        fi
    done
    sleep 0.5
done
echo "spark: no worker registered with the master within 90 s; logs:" >&2
tail -n 20 "$STATE/master.log" "$STATE/worker.log" >&2 || true
exit 1
