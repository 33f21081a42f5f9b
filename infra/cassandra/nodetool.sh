#!/usr/bin/env bash
# Cassandra's nodetool, from the jars start.sh fetched, against the local node. nodetool talks
# JMX, which start.sh enables only when given a port: start the node with CASSANDRA_JMX_PORT set
# and pass the same one here, e.g.
#   CASSANDRA_JMX_PORT=7199 infra/cassandra/start.sh
#   CASSANDRA_JMX_PORT=7199 infra/cassandra/nodetool.sh status
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$HERE/pom.xml")"
CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}"
LIB="${CASSANDRA_HOME:-$CACHE/featurestore/cassandra-$VERSION}/lib"
JMX_PORT="${CASSANDRA_JMX_PORT:?set CASSANDRA_JMX_PORT to the port the node was started with}"

[ -f "$LIB/.complete" ] || {
    echo "cassandra: no jars in $LIB; run infra/cassandra/start.sh first" >&2
    exit 1
}
exec "${JAVA_HOME:+$JAVA_HOME/bin/}java" "@$HERE/jvm17-modules.options" -Xss256k \
    "-Dlogback.configurationFile=$HERE/logback-tools.xml" -cp "$LIB/*" \
    org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$JMX_PORT" "$@"
