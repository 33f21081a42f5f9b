#!/usr/bin/env bash
# Start a PostgreSQL server on 127.0.0.1 for the feature store's tests and demos (a registry
# at postgresql+psycopg://featurestore:featurestore@127.0.0.1:$POSTGRES_PORT/featurestore).
#
# Debian's own `postgresql` package (installed with apt-get when its binaries are missing), run
# on its own data folder with `initdb` and `pg_ctl`: the package's system cluster (`main`, port
# 5432) is neither used nor touched. PostgreSQL refuses to run as root: as root the server runs
# as the `postgres` user (created by the package), otherwise as the current user.
#
# Idempotent: if the server this script started is alive and answers, it returns at once; if the
# port already answers but not from this script's server, it says so and uses it. A fresh start
# wipes the previous data folder (tests want a clean server); POSTGRES_KEEP_DATA=1 keeps it.
# Then it makes sure the role and database below exist (the role may create databases: the tests
# give each test its own).
#
# Knobs (environment):
#   POSTGRES_PORT           TCP port on 127.0.0.1                     default 5432
#   POSTGRES_STATE          data/, postgres.log, the socket, the lock  default /tmp/featurestore-postgres-$POSTGRES_PORT
#   POSTGRES_USER           role to create, with a password, CREATEDB  default featurestore
#   POSTGRES_PASSWORD       its password                              default featurestore
#   POSTGRES_DB             database to create, owned by that role    default featurestore
#   POSTGRES_BIN            folder of initdb, pg_ctl, psql             default the newest /usr/lib/postgresql/*/bin
#   POSTGRES_START_TIMEOUT  seconds to wait for the server             default 60
#   POSTGRES_KEEP_DATA      1: keep the data of the previous run       default 0 (wipe)
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a '.' decimal point; initdb's locale

PORT="${POSTGRES_PORT:-5432}"
STATE="${POSTGRES_STATE:-/tmp/featurestore-postgres-$PORT}"
DB_USER="${POSTGRES_USER:-featurestore}"
DB_PASSWORD="${POSTGRES_PASSWORD:-featurestore}"
DB_NAME="${POSTGRES_DB:-featurestore}"
TIMEOUT="${POSTGRES_START_TIMEOUT:-60}"
DATA="$STATE/data"
LOG="$STATE/postgres.log"
T0="$EPOCHREALTIME"

say() { echo "postgres: $*"; }
fail() {
    echo "postgres: $*" >&2
    exit 1
}
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

find_bin() {
    if [ -n "${POSTGRES_BIN:-}" ]; then
        [ -x "$POSTGRES_BIN/pg_ctl" ] && echo "$POSTGRES_BIN"
        return
    fi
    # Debian keeps the server's programs out of PATH, one folder per major version (a version
    # with only its client installed has a bin/ too, without initdb).
    find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1 |
        sed 's:/initdb$::'
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    [ -z "${POSTGRES_BIN:-}" ] || fail "no initdb and pg_ctl in POSTGRES_BIN=$POSTGRES_BIN"
    say "installing Debian's postgresql"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    # (waiting for dpkg's lock: another start script may be installing its server)
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 postgresql >/dev/null
    BIN="$(find_bin || true)"
    [ -n "$BIN" ] && [ -x "$BIN/initdb" ] || fail "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb is there"
fi

# The account the server runs as: PostgreSQL refuses root.
if [ "$(id -u)" = 0 ]; then
    RUN_AS=postgres
    id -u "$RUN_AS" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$RUN_AS"
    as_server() { runuser -u "$RUN_AS" -- "$@"; }
else
    RUN_AS="$(id -un)"
    as_server() { "$@"; }
fi

# psql as the cluster's superuser (`postgres`, made by initdb -U) over the Unix socket in $STATE,
# which trusts local connections: no password for the script's own set-up.
psql_admin() { as_server "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$STATE" -p "$PORT" -U postgres "$@"; }
ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 >/dev/null 2>&1; }

# The postmaster's PID from its postmaster.pid, if it is alive and serves $DATA.
our_pid() {
    [ -f "$DATA/postmaster.pid" ] || return 1
    local pid
    pid="$(head -n 1 "$DATA/postmaster.pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$DATA" ] || return 1
    echo "$pid"
}

# The role and database the tests use; each statement only when it is missing, so it is
# idempotent (also when the server was already running).
ensure_role_and_database() {
    # psql quotes the values itself: :'name' as a literal, :"name" as an identifier.
    psql_admin -d postgres -v user="$DB_USER" -v password="$DB_PASSWORD" -v db="$DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I', :'user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN CREATEDB PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
}

mkdir -p "$STATE"
# One start at a time per state folder (two test sessions may call this at once). The server
# must not inherit this lock's descriptor (9>&- below), or the lock would live as long as it.
exec 9>"$STATE/start.lock"
flock -w "$TIMEOUT" 9 || fail "another start.sh for $STATE held its lock for $TIMEOUT s"

PID="$(our_pid || true)"
if [ -n "$PID" ] && ready; then
    ensure_role_and_database
    say "already running on 127.0.0.1:$PORT (pid $PID)"
    exit 0
fi
if [ -z "$PID" ] && ready; then
    say "port $PORT already answers but was not started by this script; using it" >&2
    exit 0
fi
if [ -z "$PID" ] && timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$PORT" 2>/dev/null; then
    fail "port $PORT is taken by a program that is not PostgreSQL; pick another with POSTGRES_PORT"
fi

if [ -z "$PID" ]; then
    if [ "${POSTGRES_KEEP_DATA:-0}" != 1 ] || [ ! -f "$DATA/PG_VERSION" ]; then
        rm -rf "$DATA"
        mkdir -p "$DATA"
        chown "$RUN_AS" "$STATE" "$DATA"
        chmod 700 "$DATA"
        # Local (socket) connections trusted, TCP ones with a password (scram-sha-256).
        (cd "$STATE" && as_server "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 --encoding=UTF8 --no-instructions >"$STATE/initdb.log" 2>&1) ||
            {
                cat "$STATE/initdb.log" >&2
                fail "initdb failed for $DATA (its output is above)"
            }
        # A test server: loopback only, the socket in $STATE (not /var/run/postgresql, which
        # belongs to the system cluster), and no fsync: test data need not survive a crash.
        cat >>"$DATA/postgresql.conf" <<CONF

# featurestore infra/postgres/start.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$STATE'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
CONF
    fi
    chown "$RUN_AS" "$STATE"
    touch "$LOG"
    chown "$RUN_AS" "$LOG"
    # pg_ctl runs the postmaster in the background, its output to $LOG and its stdin from
    # /dev/null; -w waits until it accepts connections. Nothing else of ours is passed down
    # (9>&-: this lock), so whoever reads this script's output is not kept waiting by the server.
    if ! (cd "$STATE" && as_server "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$TIMEOUT" start \
        </dev/null >"$STATE/pg_ctl.log" 2>&1 9>&-); then
        echo "postgres: pg_ctl could not start the server; last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
        cat "$STATE/pg_ctl.log" >&2 || true
        exit 1
    fi
    PID="$(our_pid)" || fail "pg_ctl started a server but $DATA/postmaster.pid names no live process"
    say "started PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (pid $PID, as $RUN_AS, state in $STATE)"
else
    say "the server started earlier (pid $PID) does not answer yet; waiting for it"
fi

DEADLINE=$((SECONDS + TIMEOUT))
until ready; do
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "postgres: the server exited during start-up; last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
    if [ "$SECONDS" -ge "$DEADLINE" ]; then
        echo "postgres: no answer on 127.0.0.1:$PORT within $TIMEOUT s; stopping it" >&2
        tail -n 30 "$LOG" >&2 || true
        "$(dirname "${BASH_SOURCE[0]}")/stop.sh" >&2 || true
        exit 1
    fi
    sleep 0.1
done
ensure_role_and_database
say "running on 127.0.0.1:$PORT (pid $PID); ready $(since "$T0") s after this script began"
