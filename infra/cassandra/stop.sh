#!/usr/bin/env bash
# Stop the Cassandra node started by start.sh (by its PID) and wait until it is gone.
# No error when it is not running. Leaves the data and logs in $CASSANDRA_STATE for a look;
# the next start.sh wipes the data (unless CASSANDRA_KEEP_DATA=1).
# Knobs: CASSANDRA_PORT (default 9042), CASSANDRA_STATE, CASSANDRA_STOP_TIMEOUT (default 60 s,
# then SIGKILL).
set -euo pipefail

PORT="${CASSANDRA_PORT:-9042}"
STATE="${CASSANDRA_STATE:-/tmp/featurestore-cassandra-$PORT}"
PIDFILE="$STATE/cassandra.pid"
TIMEOUT="${CASSANDRA_STOP_TIMEOUT:-60}"

if [ ! -f "$PIDFILE" ]; then
    echo "cassandra: not running (no $PIDFILE)"
    exit 0
fi
PID="$(cat "$PIDFILE")"
# Only a process that is this state folder's server (not a PID reused by another program).
if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q -- "-Dcassandra.config=file://$STATE/conf/cassandra.yaml"; then
    # SIGTERM runs Cassandra's shutdown hook (drain: flush memtables, close the commit log).
    kill -TERM "$PID"
    for _ in $(seq 1 $((TIMEOUT * 10))); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$PID" 2>/dev/null; then
        echo "cassandra: pid $PID still alive after $TIMEOUT s; killing it" >&2
        kill -KILL "$PID"
        while kill -0 "$PID" 2>/dev/null; do sleep 0.1; done
    fi
    echo "cassandra: stopped (pid $PID)"
else
    echo "cassandra: not running (stale $PIDFILE)"
fi
rm -f "$PIDFILE"
