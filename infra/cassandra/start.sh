#!/usr/bin/env bash
# Start one Apache Cassandra 5.0 node on 127.0.0.1 for the feature store's tests and demos.
#
# No Docker and no Debian package: the server is Apache's own `cassandra-all` artifact and its
# dependencies, fetched from Maven Central by pom.xml beside this script (once, into a cache
# outside the repository) and run as `java ... org.apache.cassandra.service.CassandraDaemon` with
# the flags of Cassandra's conf/jvm17-server.options.
#
# Idempotent: if the server this script started is alive and answers CQL, it returns at once; if
# the port already answers CQL but not from this script's server, it says so and uses it. A fresh
# start wipes the previous data folder (tests want a clean server); CASSANDRA_KEEP_DATA=1 keeps it.
# Installs Debian's OpenJDK 17 and Maven when missing (as redis/start.sh does for redis-server).
#
# Knobs (environment):
#   CASSANDRA_PORT           CQL (native protocol) port               default 9042
#   CASSANDRA_STORAGE_PORT   inter-node port, must be free too         default 7000
#   CASSANDRA_STATE          config, data, logs, pid                   default /tmp/featurestore-cassandra-$CASSANDRA_PORT
#   CASSANDRA_HOME           where the jars are cached (lib/)          default ~/.cache/featurestore/cassandra-<version>
#   CASSANDRA_HEAP           JVM heap (-Xms and -Xmx)                  default 1G
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL                   default 180
#   CASSANDRA_KEEP_DATA      1: keep the data of the previous run      default 0 (wipe)
#   CASSANDRA_AUTH           1: PasswordAuthenticator, user cassandra/cassandra   default 0 (no auth)
#   CASSANDRA_JMX_PORT       local JMX port (for nodetool)             default none (JMX off)
#   CASSANDRA_JVM_OPTS       more JVM options, space-separated (appended, so they win)
#   JAVA_HOME                the Java 17 to run (else `java` on PATH)
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a '.' decimal point

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$HERE/pom.xml")"
PORT="${CASSANDRA_PORT:-9042}"
STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
STATE="${CASSANDRA_STATE:-/tmp/featurestore-cassandra-$PORT}"
CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}"
HOME_DIR="${CASSANDRA_HOME:-$CACHE/featurestore/cassandra-$VERSION}"
LIB="$HOME_DIR/lib"
HEAP="${CASSANDRA_HEAP:-1G}"
TIMEOUT="${CASSANDRA_START_TIMEOUT:-180}"
PIDFILE="$STATE/cassandra.pid"
LOGDIR="$STATE/logs"
T0="$EPOCHREALTIME"

say() { echo "cassandra: $*"; }
fail() {
    echo "cassandra: $*" >&2
    exit 1
}
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# True when 127.0.0.1:$1 accepts a TCP connection.
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# True when the port speaks CQL: an OPTIONS request (protocol v4, stream 0, no body) gets a
# SUPPORTED response (version byte 0x84, opcode 0x06). No driver needed, a few milliseconds.
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
cql_answers() {
    local reply
    reply="$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "\x04\x00\x00\x00\x05\x00\x00\x00\x00" >&3
        head -c 5 <&3 | od -An -tx1 | tr -d " \n"' _ "$PORT" 2>/dev/null)" || return 1
    [ "$reply" = 8400000006 ]
}

# The PID of the server this script started for $STATE, if it is alive (checks the command
# line, so a PID reused by another program after a reboot is not taken for it).
our_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-Dcassandra.config=file://$STATE/conf/cassandra.yaml" || return 1
    echo "$pid"
}

log_tail() {
    for f in "$LOGDIR/system.log" "$LOGDIR/stdout.log"; do
        [ -s "$f" ] || continue
        echo "---- last lines of $f" >&2
        tail -n 40 "$f" | cut -c1-400 >&2 # the node configuration line runs to 15 kB
    done
}

mkdir -p "$STATE"
# One start at a time per state folder (two test sessions may call this at once). The server
# must not inherit this lock's descriptor (9>&- below), or the lock would live as long as it.
exec 9>"$STATE/start.lock"
flock -w "$TIMEOUT" 9 || fail "another start.sh for $STATE held its lock for $TIMEOUT s"

PID="$(our_pid || true)"
if [ -n "$PID" ] && cql_answers; then
    say "already running on 127.0.0.1:$PORT (pid $PID)"
    exit 0
fi
if [ -z "$PID" ] && port_open "$PORT"; then
    if cql_answers; then
        say "port $PORT already answers CQL but was not started by this script; using it" >&2
        exit 0
    fi
    fail "port $PORT is taken by a server that does not speak CQL; pick another with CASSANDRA_PORT"
fi

install_debian() { # $1: package, for a fresh Debian machine
    say "installing Debian's $1"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$1" >/dev/null
}

JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
command -v "$JAVA" >/dev/null 2>&1 || install_debian openjdk-17-jre-headless
JAVA_SPEC="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
if [ "$JAVA_SPEC" != 17 ]; then
    say "warning: Cassandra $VERSION is run here with Java 17's flags; $JAVA is Java $JAVA_SPEC (set JAVA_HOME)" >&2
fi

# Fetch the jars unless a complete copy made from this very pom.xml is there. Into a temporary
# folder first, renamed when Maven has succeeded, so an interrupted fetch is never taken as done.
fetch_jars() {
    local want stamp="$LIB/.complete" tmp t0="$EPOCHREALTIME"
    want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
    mkdir -p "$HOME_DIR"
    exec 8>"$HOME_DIR/fetch.lock" # servers on two ports may share the cache
    flock 8
    if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
        command -v mvn >/dev/null 2>&1 || install_debian maven
        say "fetching Cassandra $VERSION and its dependencies from Maven Central into $LIB"
        tmp="$HOME_DIR/lib.tmp.$$"
        rm -rf "$tmp"
        if ! mvn -q -B -f "$HERE/pom.xml" -Dcassandra.lib="$tmp" dependency:copy-dependencies \
            </dev/null >"$HOME_DIR/fetch.log" 2>&1 8>&- 9>&-; then
            rm -rf "$tmp"
            sed 's/\x1b\[[0-9;]*m//g' "$HOME_DIR/fetch.log" >&2
            fail "Maven could not fetch org.apache.cassandra:cassandra-all:$VERSION (its output is above)"
        fi
        echo "$want" >"$tmp/.complete"
        rm -rf "$LIB"
        mv "$tmp" "$LIB"
        say "fetched $(find "$LIB" -name '*.jar' | wc -l) jars in $(since "$t0") s"
    fi
    exec 8>&-
}

if [ -z "$PID" ]; then
    fetch_jars
    JAMM="$(find "$LIB" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)"
    [ -n "$JAMM" ] || fail "no jamm jar in $LIB; delete that folder and run again"
    if port_open "$STORAGE_PORT"; then
        fail "storage port $STORAGE_PORT is taken by another program; pick another with CASSANDRA_STORAGE_PORT"
    fi

    rm -f "$PIDFILE"
    if [ "${CASSANDRA_KEEP_DATA:-0}" != 1 ]; then
        rm -rf "$STATE/data"
    fi
    # The previous run's logs stay one run longer, for a look at why it ended.
    if [ -d "$LOGDIR" ]; then
        rm -rf "$LOGDIR.previous"
        mv "$LOGDIR" "$LOGDIR.previous"
    fi
    mkdir -p "$STATE/conf" "$STATE/data" "$STATE/triggers" "$LOGDIR"
    if [ "${CASSANDRA_AUTH:-0}" = 1 ]; then
        AUTHENTICATOR=PasswordAuthenticator AUTHORIZER=CassandraAuthorizer
    else
        AUTHENTICATOR=AllowAllAuthenticator AUTHORIZER=AllowAllAuthorizer
    fi
    sed -e "s|@STATE@|$STATE|g" -e "s|@PORT@|$PORT|g" -e "s|@STORAGE_PORT@|$STORAGE_PORT|g" \
        -e "s|@AUTHENTICATOR@|$AUTHENTICATOR|g" -e "s|@AUTHORIZER@|$AUTHORIZER|g" \
        "$HERE/cassandra.yaml.in" >"$STATE/conf/cassandra.yaml"

    JVM_OPTS=(
        "-Xms$HEAP" "-Xmx$HEAP" -Xss256k
        # C1 only: on 2 busy cores the node answers in about half the time, and test-sized
        # workloads ran no slower (CASSANDRA_JVM_OPTS=-XX:TieredStopAtLevel=4 restores C2)
        -XX:TieredStopAtLevel=1
        # conf/jvm-server.options (less -XX:+AlwaysPreTouch, which would make the whole heap resident)
        -ea -da:net.openhft... -XX:+UseThreadPriorities -XX:+UseTLAB -XX:+ResizeTLAB
        -XX:+PerfDisableSharedMem -Djava.net.preferIPv4Stack=true
        -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$LOGDIR" "-XX:ErrorFile=$LOGDIR/hs_err_%p.log"
        -XX:+ExitOnOutOfMemoryError
        # conf/jvm17-server.options: G1, the module flags (in a file nodetool.sh shares), Netty
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
        -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
        -Djdk.attach.allowAttachSelf=true
        "@$HERE/jvm17-modules.options"
        -Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true
        -Dio.netty.allocator.maxOrder=11
        # bin/cassandra and conf/cassandra-env.sh
        "-javaagent:$JAMM"
        "-Dcassandra.config=file://$STATE/conf/cassandra.yaml"
        "-Dcassandra.storagedir=$STATE/data"
        "-Dcassandra.triggers_dir=$STATE/triggers"
        "-Dcassandra.logdir=$LOGDIR"
        "-Dlogback.configurationFile=$HERE/logback.xml"
        # keep stdout/stderr open (they go to stdout.log): start-up errors land there
        -Dcassandra-foreground=yes
        # A lone test node: no other node to wait for, and test data needs no fsync.
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        -Dcassandra.ring_delay_ms=1000
        -Dcassandra.superuser_setup_delay_ms=0
        -Dcassandra.unsafesystem=true
        -Dcassandra.skip_sync=true
        # and nobody to tell of its shutdown: stop.sh takes ~3 s instead of ~7
        -Dcassandra.shutdown_announce_in_ms=0
        -Dcassandra.test.messagingService.nonGracefulShutdown=true
    )
    if [ -n "${CASSANDRA_JMX_PORT:-}" ]; then
        JVM_OPTS+=("-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT")
    fi
    # shellcheck disable=SC2206 # split on spaces on purpose: a list of JVM options
    JVM_OPTS+=(${CASSANDRA_JVM_OPTS:-})

    # Cassandra mlockall()s its memory at start-up when it may: as root (CI) that pins the whole
    # 1 GiB heap in RAM at once. A test server should not, so run it without CAP_IPC_LOCK; the
    # memlock limit then applies and Cassandra logs that it could not lock (a warning, no harm).
    NO_MLOCK=(setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock)
    if [ "$(id -u)" != 0 ] || ! "${NO_MLOCK[@]}" true 2>/dev/null; then
        NO_MLOCK=() # not root (the memlock limit applies anyway), or no setpriv / CAP_SETPCAP here
    fi

    # In its own session, detached from the caller's terminal and from every descriptor it passed
    # down (this lock, a test runner's or CI's output pipes: whoever reads one would otherwise
    # wait for the server to exit). setsid and setpriv exec in place, so $! is the JVM's PID.
    (
        cd "$STATE"
        for fd in /proc/"$BASHPID"/fd/*; do
            fd="${fd##*/}"
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        exec setsid "${NO_MLOCK[@]}" "$JAVA" "${JVM_OPTS[@]}" -cp "$STATE/conf:$LIB/*" \
            org.apache.cassandra.service.CassandraDaemon </dev/null >"$LOGDIR/stdout.log" 2>&1
    ) &
    PID=$!
    echo "$PID" >"$PIDFILE"
    say "starting Cassandra $VERSION on 127.0.0.1:$PORT (pid $PID, heap $HEAP, state in $STATE)"
else
    say "the server started earlier (pid $PID) does not answer CQL yet; waiting for it"
fi

DEADLINE=$((SECONDS + TIMEOUT))
while ! cql_answers; do
    if ! kill -0 "$PID" 2>/dev/null; then
        rm -f "$PIDFILE"
        echo "cassandra: the server exited during start-up" >&2
        log_tail
        exit 1
    fi
    if [ "$SECONDS" -ge "$DEADLINE" ]; then
        echo "cassandra: no CQL answer on 127.0.0.1:$PORT within $TIMEOUT s; stopping it" >&2
        log_tail
        "$HERE/stop.sh" >&2 || true
        exit 1
    fi
    sleep 0.25
done
say "running on 127.0.0.1:$PORT (pid $PID); answered CQL $(since "$T0") s after this script began"
